//! Where keys come from at start: the key-encryption key, the signing keys (PEM files or the
//! database), and each outside issuer's JWKS (a URL or a file).

use std::sync::Arc;
use std::time::Duration;

use super::AppError;
use crate::adapters::jwks::{FileSource, UrlSource};
use crate::adapters::sql::SqlStore;
use crate::config::Config;
use keygate_core::model::SigningKeyRecord;
use keygate_core::ports::{Clock, JwksSource};
use keygate_core::tokens::issuers::TrustedIssuer;
use keygate_core::tokens::sealing::KeyEncryptionKey;
use keygate_core::tokens::signing::{self, KeySource};

/// How long fetching an outside issuer's JWKS may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The configured key-encryption key: given in the environment, or read from its file.
pub(super) fn key_encryption_key(config: &Config) -> Result<Option<KeyEncryptionKey>, AppError> {
    if let Some(kek) = &config.oauth.signing_key_encryption_key {
        return Ok(Some(kek.clone()));
    }
    let Some(path) = &config.oauth.signing_key_encryption_key_file else {
        return Ok(None);
    };
    let problem =
        |e: String| AppError::Startup(format!("oauth.signing_key_encryption_key_file: {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let kek = KeyEncryptionKey::parse(&text).map_err(problem)?;
    tracing::info!(kek = kek.id(), "key-encryption key loaded");
    Ok(Some(kek))
}

/// Signing keys from the configured PEM files, else from the database (sealed with `kek`).
pub(super) fn key_source(
    config: &Config,
    store: &Arc<SqlStore>,
    kek: Option<KeyEncryptionKey>,
    clock: &dyn Clock,
) -> Result<KeySource, AppError> {
    if config.oauth.signing_key_files.is_empty() {
        return Ok(KeySource::Stored { store: store.clone(), kek });
    }
    let mut records: Vec<SigningKeyRecord> = Vec::new();
    let mut problems = Vec::new();
    for path in &config.oauth.signing_key_files {
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| signing::from_pem(&pem, clock.now()));
        match loaded {
            Ok(record) => records.push(record),
            Err(err) => problems.push(format!("oauth.signing_key_files: {}: {err}", path.display())),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Startup(problems.join("\n")));
    }
    Ok(KeySource::Files(records))
}

/// The configured outside issuers of user tokens.
pub(super) fn trusted_issuers(config: &Config, clock: &Arc<dyn Clock>) -> Result<Vec<Arc<TrustedIssuer>>, AppError> {
    let mut issuers = Vec::new();
    for (name, issuer) in &config.oauth.issuers {
        let source: Arc<dyn JwksSource> = match &issuer.jwks_file {
            Some(path) => Arc::new(FileSource::new(path.clone())),
            None => Arc::new(
                UrlSource::new(issuer.jwks_url.clone(), JWKS_FETCH_TIMEOUT)
                    .map_err(|e| AppError::Startup(format!("oauth.issuers.{name}.jwks_url: {e}")))?,
            ),
        };
        issuers.push(Arc::new(TrustedIssuer::new(issuer.settings(name), source, clock.clone())));
    }
    Ok(issuers)
}
