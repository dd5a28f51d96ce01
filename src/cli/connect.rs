//! Reaching a running server's AdminService: the address, TLS, and the admin credential sent as
//! `authorization: Bearer …` on every call. The credential is never printed, logged or put in an
//! error message.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::failure::Failure;
use super::output::Format;
use crate::proto::keygate_v1::admin_service_client::AdminServiceClient;

/// Where the server is, how to trust it, how to prove who we are, and how to print answers.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The server's gRPC URL; https:// uses TLS (the system's roots, or --ca-file).
    #[arg(long, global = true, value_name = "URL", env = "KEYGATE_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// A PEM file of the CA that signed the server's certificate, for a private CA.
    #[arg(long, global = true, value_name = "PATH", env = "KEYGATE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A file holding the admin API key (surrounding whitespace is ignored); without it the key
    /// is read from the environment variable KEYGATE_ADMIN_KEY.
    #[arg(long, global = true, value_name = "PATH", env = "KEYGATE_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// How long connecting and each call may take, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub timeout_secs: u64,
    /// table: for people, with a new secret alone on stdout; json: the whole answer, snake_case.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// The variable holding the admin credential when no file is named.
pub const ADMIN_KEY_ENV: &str = "KEYGATE_ADMIN_KEY";

/// A connected AdminService client and the credential to send with each call.
#[derive(Clone)]
pub struct Session {
    pub client: AdminServiceClient<Channel>,
    authorization: MetadataValue<Ascii>,
}

impl Session {
    /// Reads the credential, then connects; a missing credential fails before any connection.
    pub async fn open(remote: &Remote) -> Result<Self, Failure> {
        let key = credential(remote.admin_key_file.as_deref(), std::env::var(ADMIN_KEY_ENV).ok())?;
        let mut authorization = MetadataValue::try_from(format!("Bearer {key}"))
            .map_err(|_| Failure::local("the admin credential holds characters a header cannot carry"))?;
        authorization.set_sensitive(true);
        let channel = connect(remote).await?;
        Ok(Self { client: AdminServiceClient::new(channel), authorization })
    }

    /// `message` with the credential in its metadata.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", self.authorization.clone());
        request
    }
}

/// The admin key: the file's contents when a file is named, else the environment's value.
fn credential(file: Option<&Path>, env: Option<String>) -> Result<String, Failure> {
    let key = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::local(format!("--admin-key-file {}: cannot read: {e}", path.display())))?,
        None => env.unwrap_or_default(),
    };
    let key = key.trim();
    if key.is_empty() {
        let source = match file {
            Some(path) => format!("{} is empty", path.display()),
            None => format!("{ADMIN_KEY_ENV} is not set"),
        };
        return Err(Failure::local(format!(
            "no admin credential: {source}; set {ADMIN_KEY_ENV} or pass --admin-key-file PATH"
        )));
    }
    Ok(key.to_owned())
}

/// A channel to `remote.server`, over TLS for `https://`.
pub async fn connect(remote: &Remote) -> Result<Channel, Failure> {
    let server = &remote.server;
    let timeout = Duration::from_secs(remote.timeout_secs.max(1));
    let mut endpoint = Endpoint::from_shared(server.clone())
        .map_err(|e| Failure::local(format!("--server {server}: not a URL: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let tls = server.starts_with("https://");
    if tls {
        let mut config = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = &remote.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Failure::local(format!("--ca-file {}: cannot read: {e}", path.display())))?;
            config = config.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(config).map_err(|e| Failure::local(format!("--server {server}: {e}")))?;
    } else if remote.ca_file.is_some() {
        return Err(Failure::local(format!("--ca-file needs an https:// server, not {server}")));
    } else if !server.starts_with("http://") {
        return Err(Failure::local(format!("--server {server}: expected an http:// or https:// URL")));
    }
    endpoint
        .connect()
        .await
        .map_err(|e| Failure::server(format!("UNAVAILABLE: cannot connect to {server}: {}", chain(&e))))
}

/// An error and its causes, `: `-separated (tonic's own message alone says "transport error").
fn chain(err: &tonic::transport::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    let mut last = text.clone();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and tonic wrap some causes in an error of the same words.
        if cause_text != last {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
        last = cause_text;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_comes_trimmed_from_the_file_before_the_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "  sk_file\n").expect("write");
        assert_eq!(credential(Some(&path), Some("sk_env".into())).expect("file"), "sk_file");
        assert_eq!(credential(None, Some(" sk_env\n".into())).expect("env"), "sk_env");
    }

    #[test]
    fn a_missing_credential_says_where_to_put_one_and_exits_1() {
        let missing = credential(None, None).expect_err("none");
        assert_eq!(missing.exit_code(), 1);
        assert!(missing.message.contains(ADMIN_KEY_ENV) && missing.message.contains("--admin-key-file"));
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(credential(Some(&empty), None).expect_err("empty").message.contains("is empty"));
    }
}
