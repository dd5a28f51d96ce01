//! `keygate audit list`: the audit log of admin changes and refused attempts, newest first.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::connect::{Remote, Session};
use super::failure::Failure;
use super::output::{self, ListShape};
use crate::proto::keygate_v1 as pb;

const EXAMPLES: &str = "\
Examples:
  keygate audit list --action api_key.rotate --since 2026-11-01T00:00:00Z
  keygate audit list --target k_abc123def456 --output json";

/// `keygate audit`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct AuditArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events of one organization, newest first (needs admin:audit:read).
    List {
        /// Events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<DateTime<Utc>>,
        /// Events before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<DateTime<Utc>>,
        /// Only events by this key id, client id or user id.
        #[arg(long, default_value = "")]
        actor: String,
        /// Only events of this action, e.g. api_key.rotate.
        #[arg(long, default_value = "")]
        action: String,
        /// Only events about this key id, client id, organization slug or signing key id.
        #[arg(long, default_value = "")]
        target: String,
        /// The organization (slug) whose log to read [default: the caller's].
        #[arg(long, value_name = "SLUG", default_value = "")]
        organization: String,
        /// Events to skip.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        offset: i32,
        /// Events to show (the server's default: 20, at most 100).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        limit: i32,
    },
}

/// Runs an `audit` command against the server.
pub async fn run(args: AuditArgs) -> Result<(), Failure> {
    let session = Session::open(&args.remote).await?;
    let format = args.remote.output;
    let mut client = session.client.clone();
    let AuditCommand::List { since, until, actor, action, target, organization, offset, limit } = args.command;
    let request = pb::ListAuditEventsRequest {
        start_time: since.map(crate::grpc::convert::timestamp),
        end_time: until.map(crate::grpc::convert::timestamp),
        actor,
        action,
        target,
        organization,
        offset,
        limit,
    };
    let listed =
        client.list_audit_events(session.request(request)).await.map_err(|s| Failure::from_status(&s))?.into_inner();
    output::print_list(
        format,
        ListShape {
            field: "events",
            json: output::audit_event,
            header: &["ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME"],
            cells: output::audit_cells,
        },
        &listed.events,
        listed.total,
    );
    Ok(())
}
