//! The one-shot commands that build keygate without serving it: `bootstrap` and
//! `rotate-signing-key`.

use std::sync::Arc;

use super::{AppError, build_state, open_store};
use crate::config::Config;
use keygate_core::ports::Clock;

/// Creates the platform organization and its first admin key; returns the key, shown once.
pub async fn bootstrap(config: &Config, clock: Arc<dyn Clock>, org: &str, force: bool) -> Result<String, AppError> {
    let store = open_store(config, config.database.run_migrations).await?;
    let state = build_state(config, store, clock).await?;
    let issued = state.admin.bootstrap(org, force).await?;
    Ok(issued.api_key)
}

/// Rotates the token signing key from the command line (the operator has the database); returns
/// the new key id.
pub async fn rotate_signing_key(config: &Config, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let store = open_store(config, config.database.run_migrations).await?;
    let state = build_state(config, store, clock).await?;
    Ok(state.admin.rotate_signing_key_as_operator().await?.kid)
}
