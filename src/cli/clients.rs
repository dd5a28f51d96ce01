//! `keygate clients …`: create, list, read, regenerate the secret of and disable OAuth2 API clients.

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
  SECRET=$(keygate clients create --name 'XSOAR production' --scope investigations:read)
  keygate clients list --search xsoar
  keygate clients get xsoar-production-3f9a2c --output json
  keygate clients update xsoar-production-3f9a2c --scope investigations:read --rate-limit-per-minute 100
  SECRET=$(keygate clients regenerate-secret xsoar-production-3f9a2c)
  keygate clients disable xsoar-production-3f9a2c --revoke-tokens

A new secret is printed alone on stdout (the client id and token endpoint go to stderr); with
--output json the whole answer, secret included, is printed as JSON.";

/// `keygate clients`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ClientsArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[command(subcommand)]
    pub command: ClientsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client; prints its secret, once, alone on stdout.
    Create {
        /// 1 to 100 characters; the client id is derived from it.
        #[arg(long)]
        name: String,
        /// Up to 1000 characters.
        #[arg(long, default_value = "")]
        description: String,
        /// A scope the client's tokens may carry; repeat for more (at least one).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// The organization (slug) to create it in [default: the caller's].
        #[arg(long, value_name = "SLUG", default_value = "")]
        organization: String,
        #[command(flatten)]
        limits: LimitsArgs,
        /// A label, e.g. owner=secops; repeat for more.
        #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List clients; never a secret.
    List {
        #[command(flatten)]
        list: ListArgs,
        /// Only clients of this status.
        #[arg(long, value_parser = ["active", "disabled"])]
        status: Option<String>,
    },
    /// Show one client.
    Get { client_id: String },
    /// Change a client's name, description, scopes or limits; what is not given stays. Its
    /// outstanding tokens follow at once.
    Update {
        client_id: String,
        #[command(flatten)]
        changes: ChangesArgs,
    },
    /// Replace a client's secret (the old one stops at once); prints it, once, alone on stdout.
    RegenerateSecret {
        client_id: String,
        /// Keep the tokens issued with the old secret valid until they expire (by default they
        /// are revoked, since a secret is usually replaced because it leaked).
        #[arg(long)]
        keep_tokens: bool,
    },
    /// Disable a client for good: it gets no new tokens.
    Disable {
        client_id: String,
        /// Also stop every token it holds, at once.
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// Show a client's tokens issued per day over the last 14 days and its quota this month.
    Usage { client_id: String },
}

/// Runs a `clients` command against the server.
pub async fn run(args: ClientsArgs) -> Result<(), Failure> {
    let session = Session::open(&args.remote).await?;
    let format = args.remote.output;
    let mut client = session.client.clone();
    match args.command {
        ClientsCommand::Create { name, description, scopes, organization, limits, labels } => {
            let limits = limits.to_proto();
            let labels = labels.into_iter().collect();
            let request = pb::CreateApiClientRequest { name, description, scopes, organization, limits, labels };
            let created = client
                .create_api_client(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            let view = created.client.unwrap_or_default();
            match format {
                Format::Json => output::print_json(&json!({
                    "client_id": created.client_id,
                    "client_secret": created.client_secret,
                    "token_endpoint": created.token_endpoint,
                    "client": output::api_client(&view),
                })),
                Format::Table => output::print_secret(
                    &created.client_secret,
                    &[
                        ("client_id", created.client_id.clone()),
                        ("organization", view.organization.clone()),
                        ("scopes", view.scopes.join(" ")),
                        ("token_endpoint", created.token_endpoint.clone()),
                    ],
                ),
            }
        }
        ClientsCommand::List { list, status } => {
            let status = match status.as_deref() {
                Some("active") => pb::api_client::Status::Active,
                Some("disabled") => pb::api_client::Status::Disabled,
                _ => pb::api_client::Status::Unspecified,
            };
            let request = pb::ListApiClientsRequest {
                status: status.into(),
                unused_since: list.unused_since(),
                labels: list.label_map(),
                search: list.search,
                offset: list.offset,
                limit: list.limit,
                organization: list.organization,
            };
            let listed = client
                .list_api_clients(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            output::print_list(
                format,
                ListShape {
                    field: "clients",
                    json: output::api_client,
                    header: &["CLIENT_ID", "NAME", "STATUS", "SCOPES", "LAST_USED_AT"],
                    cells: output::client_cells,
                },
                &listed.clients,
                listed.total,
            );
        }
        ClientsCommand::Get { client_id } => {
            let request = pb::GetApiClientRequest { client_id };
            let view = client.get_api_client(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_client(format, &view.into_inner());
        }
        ClientsCommand::Update { client_id, changes } => {
            let request = pb::UpdateApiClientRequest {
                client_id,
                scopes: changes.scope_list(),
                limits: changes.limits.to_proto(),
                labels: changes.label_map(),
                name: changes.name,
                description: changes.description,
                reset_limits: changes.reset_limits,
            };
            let view =
                client.update_api_client(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_client(format, &view.into_inner());
        }
        ClientsCommand::RegenerateSecret { client_id, keep_tokens } => {
            let request = pb::RegenerateClientSecretRequest { client_id, revoke_tokens: Some(!keep_tokens) };
            let regenerated = client
                .regenerate_client_secret(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            match format {
                Format::Json => output::print_json(&json!({
                    "client_id": regenerated.client_id,
                    "client_secret": regenerated.client_secret,
                    "tokens_revoked": regenerated.tokens_revoked,
                })),
                Format::Table => output::print_secret(
                    &regenerated.client_secret,
                    &[
                        ("client_id", regenerated.client_id.clone()),
                        ("tokens_revoked", regenerated.tokens_revoked.to_string()),
                    ],
                ),
            }
        }
        ClientsCommand::Disable { client_id, revoke_tokens } => {
            let request = pb::DisableApiClientRequest { client_id, revoke_tokens };
            let view =
                client.disable_api_client(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            print_client(format, &view.into_inner());
        }
        ClientsCommand::Usage { client_id } => {
            let request = pb::GetApiClientUsageRequest { client_id };
            let usage =
                client.get_api_client_usage(session.request(request)).await.map_err(|s| Failure::from_status(&s))?;
            output::print_usage(format, &usage.into_inner());
        }
    }
    Ok(())
}

fn print_client(format: Format, client: &pb::ApiClient) {
    match format {
        Format::Json => output::print_json(&output::api_client(client)),
        Format::Table => output::print_record(&output::client_rows(client)),
    }
}
