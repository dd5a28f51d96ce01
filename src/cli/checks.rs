//! `keygate config check` and `keygate policy check`: validate what a rollout will load, with the
//! loaders the server uses, printing every problem at once. Neither opens the database.

use std::path::Path;

use super::Common;
use super::failure::Failure;
use crate::adapters::policy_file;
use keygate_core::credentials::scopes::ScopeRegistry;

/// Loads the config file and the environment as `serve` does; "config ok" when they hold.
pub fn config(common: Common) -> Result<(), Failure> {
    common.load(Vec::new()).map_err(|errors| Failure::local(errors.to_string().trim_end().to_owned()))?;
    println!("config ok");
    Ok(())
}

/// Loads the route policy at `path` as the server does, its scopes checked against the
/// configured ones; "policy ok: N routes" when it holds.
pub fn policy(path: &Path, common: Common) -> Result<(), Failure> {
    let config = common.load(Vec::new()).map_err(|errors| {
        Failure::local(
            format!("the policy's scopes are checked against the config, which is {errors}").trim_end().to_owned(),
        )
    })?;
    let registry = ScopeRegistry::new(config.scopes.iter().cloned());
    match policy_file::load(path, &registry) {
        Ok((policy, _)) => {
            let routes = policy.len();
            println!("policy ok: {routes} route{}", if routes == 1 { "" } else { "s" });
            Ok(())
        }
        Err(err) => Err(Failure::local(err.to_string())),
    }
}
