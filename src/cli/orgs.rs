//! `keygate orgs …`: create, list, read and change organizations.

use clap::{Args, Subcommand};

use super::connect::{Remote, Session};
use super::failure::Failure;
use super::output::{self, Format, ListShape};
use crate::proto::keygate_v1 as pb;

const EXAMPLES: &str = "\
Examples:
  keygate orgs create acme --name 'Acme Corp' --plan pro
  keygate orgs list
  keygate orgs get acme --output json
  keygate orgs update acme --plan free

Creating an organization or changing its plan needs a platform admin's key (admin:orgs:write);
an organization's own admins may rename it. Keys over a lowered plan's limit keep working; new
ones are refused until the organization is back under it.";

/// `keygate orgs`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct OrgsArgs {
    #[command(flatten)]
    pub remote: Remote,
    #[command(subcommand)]
    pub command: OrgsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organization (platform admins).
    Create {
        /// Lowercase letters, digits and '-', 2 to 63 characters.
        slug: String,
        #[arg(long)]
        name: String,
        /// A configured plan [default: the configured default plan].
        #[arg(long, default_value = "")]
        plan: String,
    },
    /// List organizations.
    List {
        /// Organizations to skip.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        offset: i32,
        /// Organizations to show (the server's default: 20, at most 100).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        limit: i32,
    },
    /// Show one organization.
    Get { slug: String },
    /// Rename an organization or move it to another plan; what is not given stays.
    Update {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// A configured plan (platform admins).
        #[arg(long)]
        plan: Option<String>,
    },
}

/// Runs an `orgs` command against the server.
pub async fn run(args: OrgsArgs) -> Result<(), Failure> {
    let session = Session::open(&args.remote).await?;
    let format = args.remote.output;
    let mut client = session.client.clone();
    let org = match args.command {
        OrgsCommand::Create { slug, name, plan } => {
            let request = pb::CreateOrganizationRequest { slug, name, plan };
            client.create_organization(session.request(request)).await
        }
        OrgsCommand::Get { slug } => {
            let request = pb::GetOrganizationRequest { slug };
            client.get_organization(session.request(request)).await
        }
        OrgsCommand::Update { slug, name, plan } => {
            let request = pb::UpdateOrganizationRequest { slug, name, plan };
            client.update_organization(session.request(request)).await
        }
        OrgsCommand::List { offset, limit } => {
            let request = pb::ListOrganizationsRequest { offset, limit };
            let listed = client
                .list_organizations(session.request(request))
                .await
                .map_err(|s| Failure::from_status(&s))?
                .into_inner();
            output::print_list(
                format,
                ListShape {
                    field: "organizations",
                    json: output::organization,
                    header: &["SLUG", "NAME", "PLAN", "MAX_ACTIVE_KEYS", "PLATFORM"],
                    cells: output::organization_cells,
                },
                &listed.organizations,
                listed.total,
            );
            return Ok(());
        }
    };
    let org = org.map_err(|s| Failure::from_status(&s))?.into_inner();
    match format {
        Format::Json => output::print_json(&output::organization(&org)),
        Format::Table => output::print_record(&output::organization_rows(&org)),
    }
    Ok(())
}
