//! The `keygate` command: the server's own commands (`serve`, `migrate`, `bootstrap`,
//! `rotate-signing-key`, `healthcheck`) and the admin CLI of [`keygate::cli`] (`keys`, `clients`,
//! `orgs`, `audit`, `config check`, `policy check`, `completions`, `man`). Parses and dispatches.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use keygate::app;
use keygate::cli::{self, Common, Failure};
use keygate::config::Config;
use keygate_core::clock::SystemClock;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "gRPC authorization service: API keys, OAuth2 clients and JWTs",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Exit codes of the admin commands (keys, clients, orgs, audit, config, policy):
  0  done
  1  a problem on this side: no admin credential, an unreadable file, a check found problems
  2  a usage error
  3  the server refused the request (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
     UNAUTHENTICATED, FAILED_PRECONDITION, ALREADY_EXISTS, ...)
  4  the server or the network failed (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, no connection)";

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC and HTTP servers (SQLite file keygate.db unless a database URL is given).
    Serve {
        #[command(flatten)]
        common: Common,
        /// gRPC listen address [env: KEYGATE_GRPC_ADDR] [default: 127.0.0.1:50051]
        #[arg(long, value_name = "HOST:PORT")]
        grpc_addr: Option<String>,
        /// HTTP listen address for token, JWKS and metrics endpoints [env: KEYGATE_HTTP_ADDR] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<String>,
        /// Serve /metrics here alone instead of on the HTTP address [env: KEYGATE_METRICS_ADDR]
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<String>,
    },
    /// Ask the local server's gRPC health service; exit 0 when SERVING, 1 otherwise. For exec
    /// probes and Docker's HEALTHCHECK; reads the same config as serve (address, TLS).
    Healthcheck {
        #[command(flatten)]
        common: Common,
        /// The service to ask about, e.g. keygate.v1.AuthService (readiness); none asks about the
        /// server as a whole (liveness).
        #[arg(long, value_name = "NAME", default_value = "")]
        service: String,
        /// The server's gRPC address [default: the configured grpc_addr, 0.0.0.0 as 127.0.0.1]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<std::net::SocketAddr>,
        /// How long connecting and answering may take.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Create the platform organization and its first admin key; prints the key alone on stdout.
    Bootstrap {
        #[command(flatten)]
        common: Common,
        /// Slug of the platform organization to create.
        #[arg(long, value_name = "SLUG", default_value = "platform")]
        org: String,
        /// Create another admin key even though keygate is already bootstrapped.
        #[arg(long)]
        force: bool,
    },
    /// Make a new key sign access tokens; the old one stays published until its tokens expire.
    /// Prints the new key id.
    RotateSigningKey {
        #[command(flatten)]
        common: Common,
    },
    /// Manage API keys on a running server (over gRPC).
    Keys(cli::keys::KeysArgs),
    /// Manage OAuth2 API clients on a running server (over gRPC).
    Clients(cli::clients::ClientsArgs),
    /// Manage organizations on a running server (over gRPC).
    Orgs(cli::orgs::OrgsArgs),
    /// Read the audit log of a running server (over gRPC).
    Audit(cli::audit::AuditArgs),
    /// Check the configuration without starting anything.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a route policy file without starting anything.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print a shell completion script, e.g. `keygate completions bash > /etc/bash_completion.d/keygate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `keygate man > keygate.1`.
    Man,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load the config file and the KEYGATE_ environment exactly as serve does and print every
    /// problem; exit 0 with "config ok" when there is none. Opens no database.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a route policy file as the server does (scopes checked against the config's) and print
    /// every problem; exit 0 with "policy ok: N routes" when there is none.
    Check {
        /// The route policy file (TOML).
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

fn flag(path: &'static str, value: Option<String>) -> Vec<(&'static str, String)> {
    value.map(|v| (path, v)).into_iter().collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Keys(args) => cli::keys::run(args).await,
        Command::Clients(args) => cli::clients::run(args).await,
        Command::Orgs(args) => cli::orgs::run(args).await,
        Command::Audit(args) => cli::audit::run(args).await,
        Command::Config { command: ConfigCommand::Check { common } } => cli::checks::config(common),
        Command::Policy { command: PolicyCommand::Check { file, common } } => cli::checks::policy(&file, common),
        Command::Completions { shell } => {
            cli::docs::completions(shell, Cli::command());
            Ok(())
        }
        Command::Man => cli::docs::man(Cli::command()),
        server => run(server).await.map_err(Failure::local),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("keygate: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { common, grpc_addr, http_addr, metrics_addr } => {
            let mut flags = flag("grpc_addr", grpc_addr);
            flags.extend(flag("http_addr", http_addr));
            flags.extend(flag("metrics_addr", metrics_addr));
            let config = common.load(flags).map_err(|e| e.to_string())?;
            let telemetry = keygate::observability::telemetry::init_with_traces(&config.log, &config.traces)
                .map_err(|e| e.to_string())?;
            log_ignored(&config);
            let grpc = bind(config.grpc_addr).await?;
            let http = bind(config.http_addr).await?;
            let metrics = match config.metrics_addr {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            };
            let grpc_addr = grpc.local_addr().map_err(|e| e.to_string())?;
            let http_addr = http.local_addr().map_err(|e| e.to_string())?;
            // The issuer follows the bound port when it is derived from http_addr (port 0 in tests).
            let mut config = config;
            config.http_addr = http_addr;
            tracing::info!(%grpc_addr, %http_addr, version = env!("CARGO_PKG_VERSION"), "keygate listening");
            let listeners = app::Listeners { grpc, http, metrics };
            let served = app::serve(config, Arc::new(SystemClock), listeners, shutdown_signal()).await;
            // Spans of the last requests are still batched: send them before exiting.
            telemetry.shutdown().await;
            served.map_err(|e| e.to_string())
        }
        Command::Healthcheck { common, service, addr, timeout_ms } => {
            let config = common.load(Vec::new()).map_err(|e| e.to_string())?;
            let timeout = std::time::Duration::from_millis(timeout_ms);
            let status = keygate::healthcheck::check(&config, addr, &service, timeout).await?;
            println!("{}", status.as_str_name());
            match status {
                tonic_health::pb::health_check_response::ServingStatus::Serving => Ok(()),
                _ => Err(format!(
                    "{} is {}",
                    if service.is_empty() { "the server" } else { &service },
                    status.as_str_name()
                )),
            }
        }
        Command::RotateSigningKey { common } => {
            let config = common.load(Vec::new()).map_err(|e| e.to_string())?;
            keygate::observability::telemetry::init(&config.log);
            log_ignored(&config);
            let kid = app::rotate_signing_key(&config, Arc::new(SystemClock)).await.map_err(|e| e.to_string())?;
            eprintln!("keygate: new signing key in use; the previous one stays published until its tokens expire");
            println!("{kid}");
            Ok(())
        }
        Command::Migrate { common } => {
            let config = common.load(Vec::new()).map_err(|e| e.to_string())?;
            keygate::observability::telemetry::init(&config.log);
            log_ignored(&config);
            app::open_store(&config, true).await.map_err(|e| e.to_string())?;
            eprintln!("keygate: database migrated");
            Ok(())
        }
        Command::Keys(_)
        | Command::Clients(_)
        | Command::Orgs(_)
        | Command::Audit(_)
        | Command::Config { .. }
        | Command::Policy { .. }
        | Command::Completions { .. }
        | Command::Man => Err("not a server command".to_owned()),
        Command::Bootstrap { common, org, force } => {
            let config = common.load(Vec::new()).map_err(|e| e.to_string())?;
            keygate::observability::telemetry::init(&config.log);
            log_ignored(&config);
            let key = app::bootstrap(&config, Arc::new(SystemClock), &org, force).await.map_err(|e| e.to_string())?;
            eprintln!("keygate: created the platform admin key for organization {org:?}; it is shown once, below");
            println!("{key}");
            Ok(())
        }
    }
}

/// One debug line for the Kubernetes service-link variables the loader skipped.
fn log_ignored(config: &Config) {
    if !config.ignored_env.is_empty() {
        tracing::debug!(variables = ?config.ignored_env, "ignored kubernetes service-link variables");
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
