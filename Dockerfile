# syntax=docker/dockerfile:1
# keygate's container image: built in a full Rust image, run in distroless as a non-root user with
# a read-only root filesystem. `docker build -t keygate:0.1.0 .` at the repository root.

# The toolchain keygate is developed with (edition 2024; protoc comes vendored through build.rs).
FROM rust:1.95-slim-bookworm AS build
# libssl-dev: josekit (access-token signing and JWT checks) links OpenSSL; the listeners, Redis
# and outbound HTTPS use rustls. The runtime image (distroless/cc) ships the libssl3 it loads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds; the binary is copied
# out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin keygate \
 && install -D -m 0755 target/release/keygate /out/usr/local/bin/keygate \
 && mkdir -p /out/var/lib/keygate

# glibc, libgcc, libssl3 and CA certificates, no shell; user "nonroot" is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="keygate" \
      org.opencontainers.image.description="gRPC authorization service: API keys, OAuth2 clients and JWTs, for backends and Envoy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/usr/local/bin/keygate /usr/local/bin/keygate
# The working directory is the one writable place keygate needs, and only for the embedded
# SQLite default (keygate.db lands here): mount a volume on it, e.g.
# `docker run --read-only -v keygate-data:/var/lib/keygate keygate:0.1.0`. With PostgreSQL
# (KEYGATE_DATABASE_URL, as the Helm chart runs it) nothing is written at all.
COPY --from=build --chown=65532:65532 /out/var/lib/keygate /var/lib/keygate
WORKDIR /var/lib/keygate
VOLUME /var/lib/keygate
USER 65532:65532
# The listen addresses as settings, not flags, so that `docker run -e KEYGATE_GRPC_ADDR=...`
# (or any KEYGATE_ variable) is obeyed: flags would win over the environment.
ENV KEYGATE_GRPC_ADDR=0.0.0.0:50051 \
    KEYGATE_HTTP_ADDR=0.0.0.0:8080
EXPOSE 50051 8080
# No shell and no grpcurl here: keygate asks its own gRPC health service (the server as a
# whole: alive, whatever the database does), with the same settings as the server (address, TLS).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/keygate", "healthcheck"]
ENTRYPOINT ["keygate"]
CMD ["serve"]
