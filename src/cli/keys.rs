//! `keygate keys …`: create, list, read, update, rotate and disable API keys.

use clap::{Args, Subcommand};
use serde_json::json;

use super::connect::{Remote, Session};
use super::failure::Failure;
use super::output::{self, Format, ListShape};
use super::{ChangesArgs, LimitsArgs, ListArgs, parse_label};
use crate::proto::keygate_v1 as pb;

const EXAMPLES: &str = "\
Examples:
  export KEYGATE_SERVER=https://keygate.example.com:50051 KEYGATE_ADMIN_KEY=sk_live_...
  KEY=$(keygate keys create --name ci-runner --scope investigations:read --expires-in-days 90)
  keygate keys list --search ci --output json
  keygate keys get k_abc123def456
  keygate keys update k_abc123def456 --scope investigations:read --scope investigations:write
  NEW=$(keygate keys rotate k_abc123def456 --grace-period-days 1)
  keygate keys disable k_abc123def456

A new key is printed alone on stdout (its id and expiry go to stderr); with --output json the
whole answer, key included, is printed as JSON.";

/// `keygate keys`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct KeysArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it, once, alone on stdout.
    Create {
        /// 1 to 100 characters.
        #[arg(long)]
        name: String,
        /// Up to 1000 characters.
        #[arg(long, default_value = "")]
        description: String,
        /// A scope the key grants; repeat for more (at least one).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Days until the key expires [default: the server's, 365].
        #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
        expires_in_days: Option<i32>,
        /// The organization (slug) to create it in [default: the caller's].
        #[arg(long, value_name = "SLUG", default_value = "")]
        organization: String,
        #[command(flatten)]
        limits: LimitsArgs,
        /// A label, e.g. owner=secops; repeat for more.
        #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List keys, newest first; never a secret.
    List {
        #[command(flatten)]
        list: ListArgs,
        /// Only keys of this status now.
        #[arg(long, value_parser = ["active", "expired", "disabled"])]
        status: Option<String>,
        /// Only active keys that expire within this many days.
        #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
        expiring_within_days: Option<i32>,
    },
    /// Show one key.
    Get {
        /// The key's id, e.g. k_abc123def456.
        key_id: String,
    },
    /// Change a key's name, description, scopes or limits; what is not given stays.
    Update {
        key_id: String,
        #[command(flatten)]
        changes: ChangesArgs,
    },
    /// Give a key a new secret; prints it, once, alone on stdout. The old one works for the grace period.
    Rotate {
        key_id: String,
        /// Days the old secret keeps working (0: it stops now; at most 90) [default: 7].
        #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
        grace_period_days: Option<i32>,
        /// A new expiry in days from now [default: the key keeps its expiry].
        #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
        expires_in_days: Option<i32>,
    },
    /// Disable a key for good, and its grace-period secret.
    Disable { key_id: String },
    /// Show a key's requests per day over the last 14 days and its quota this month.
    Usage { key_id: String },
}

/// Runs a `keys` command against the server.
pub async fn run(args: KeysArgs) -> Result<(), Failure> {
    let session = Session::open(&args.remote).await?;
    let format = args.remote.output;
    let mut client = session.client.clone();
    match args.command {
        KeysCommand::Create { name, description, scopes, expires_in_days, organization, limits, labels } => {
            let request = pb::CreateApiKeyRequest {
                name,
                description,
                scopes,
                expires_in_days,
                organization,
                limits: limits.to_proto(),
                labels: labels.into_iter().collect(),
            };
            let created = client
                .create_api_key(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            let key = created.key.unwrap_or_default();
            match format {
                Format::Json => output::print_json(&json!({
                    "api_key": created.api_key,
                    "header_name": created.header_name,
                    "key": output::api_key(&key),
                })),
                Format::Table => output::print_secret(
                    &created.api_key,
                    &[
                        ("key_id", key.key_id.clone()),
                        ("organization", key.organization.clone()),
                        ("scopes", key.scopes.join(" ")),
                        ("expires_at", output::text_time(&key.expires_at).unwrap_or_else(|| "never".into())),
                        ("header_name", created.header_name.clone()),
                    ],
                ),
            }
        }
        KeysCommand::List { list, status, expiring_within_days } => {
            let status = match status.as_deref() {
                Some("active") => pb::api_key::Status::Active,
                Some("expired") => pb::api_key::Status::Expired,
                Some("disabled") => pb::api_key::Status::Disabled,
                _ => pb::api_key::Status::Unspecified,
            };
            let request = pb::ListApiKeysRequest {
                status: status.into(),
                expiring_within_days,
                unused_since: list.unused_since(),
                labels: list.label_map(),
                search: list.search,
                offset: list.offset,
                limit: list.limit,
                organization: list.organization,
            };
            let listed = client
                .list_api_keys(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            output::print_list(
                format,
                ListShape {
                    field: "api_keys",
                    json: output::api_key,
                    header: &["KEY_ID", "NAME", "STATUS", "SCOPES", "EXPIRES_AT", "LAST_USED_AT"],
                    cells: output::key_cells,
                },
                &listed.api_keys,
                listed.total,
            );
        }
        KeysCommand::Get { key_id } => {
            let request = pb::GetApiKeyRequest { key_id };
            let key = client.get_api_key(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_key(format, &key.into_inner());
        }
        KeysCommand::Update { key_id, changes } => {
            let request = pb::UpdateApiKeyRequest {
                key_id,
                scopes: changes.scope_list(),
                limits: changes.limits.to_proto(),
                labels: changes.label_map(),
                name: changes.name,
                description: changes.description,
                reset_limits: changes.reset_limits,
            };
            let key = client.update_api_key(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_key(format, &key.into_inner());
        }
        KeysCommand::Rotate { key_id, grace_period_days, expires_in_days } => {
            let request = pb::RotateApiKeyRequest { key_id, grace_period_days, expires_in_days };
            let rotated = client
                .rotate_api_key(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            match format {
                Format::Json => output::print_json(&json!({
                    "key_id": rotated.key_id,
                    "api_key": rotated.api_key,
                    "expires_at": output::time(&rotated.expires_at),
                    "previous_key_expires_at": output::time(&rotated.previous_key_expires_at),
                    "key": rotated.key.as_ref().map(output::api_key),
                })),
                Format::Table => output::print_secret(
                    &rotated.api_key,
                    &[
                        ("key_id", rotated.key_id.clone()),
                        ("expires_at", output::text_time(&rotated.expires_at).unwrap_or_else(|| "never".into())),
                        (
                            "previous_key_expires_at",
                            output::text_time(&rotated.previous_key_expires_at)
                                .unwrap_or_else(|| "none: the old secret stopped now".into()),
                        ),
                    ],
                ),
            }
        }
        KeysCommand::Disable { key_id } => {
            let request = pb::DisableApiKeyRequest { key_id };
            let key = client.disable_api_key(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_key(format, &key.into_inner());
        }
        KeysCommand::Usage { key_id } => {
            let request = pb::GetApiKeyUsageRequest { key_id };
            let usage =
                client.get_api_key_usage(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            output::print_usage(format, &usage.into_inner());
        }
    }
    Ok(())
}

fn print_key(format: Format, key: &pb::ApiKey) {
    match format {
        Format::Json => output::print_json(&output::api_key(key)),
        Format::Table => output::print_record(&output::key_rows(key)),
    }
}
