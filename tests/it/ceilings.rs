//! Operator ceilings on the limits organization admins grant: per plan
//! (`organizations.plans.NAME.*`), else `limits.ceiling.*`, else the defaults of the credential's
//! kind. An organization admin holding `admin:keys:write` cannot lift them (no limit, 0, or more
//! than the ceiling is INVALID_ARGUMENT naming the field), cannot grant more than its own
//! credential has (PERMISSION_DENIED naming it), and what it leaves unset is capped; a platform
//! admin may exceed them. Keys granted more before a ceiling was lowered keep it until changed.

use keygate::proto::keygate_v1 as pb;
use tonic::Code;

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, expect_code, violated_fields};

backend_tests!(organization_admins_cannot_lift_the_operators_limits, lowering_a_ceiling_binds_new_grants_only);

/// team: 100 a minute, 2 slots; every plan: at most 1000 a minute and 100000 a month.
const CEILINGS: &[(&str, &str)] = &[
    ("limits.ceiling.rate_per_minute", "1000"),
    ("limits.ceiling.max_quota", "100000"),
    ("organizations.plans.team.max_active_keys", "50"),
    ("organizations.plans.team.rate_per_minute", "100"),
    ("organizations.plans.team.max_concurrency", "2"),
];

const ADMIN_SCOPES: &[&str] = &["admin:keys:read", "admin:keys:write", "admin:clients:write", "graph:read"];

fn limits(rate: Option<u32>, quota: Option<u64>, concurrency: Option<u32>) -> Option<pb::Limits> {
    Some(pb::Limits {
        rate_limit_per_minute: rate,
        rate_limit_burst: None,
        max_quota: quota,
        max_concurrency: concurrency,
    })
}

fn key_request(name: &str, limits: Option<pb::Limits>, organization: &str) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: vec!["graph:read".into()],
        organization: organization.into(),
        limits,
        ..Default::default()
    }
}

/// Creates organization `slug` on `plan` and an admin key in it (with `limits`, by the platform admin).
async fn org_admin(server: &TestServer, slug: &str, plan: &str, limits: Option<pb::Limits>) -> String {
    let mut admin = server.admin().await;
    let org = pb::CreateOrganizationRequest { slug: slug.into(), name: slug.into(), plan: plan.into() };
    let _ = admin.create_organization(as_admin(org, &server.admin_key)).await;
    let request = pb::CreateApiKeyRequest {
        name: format!("{slug} admin"),
        scopes: ADMIN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        organization: slug.into(),
        limits,
        ..Default::default()
    };
    admin.create_api_key(as_admin(request, &server.admin_key)).await.expect("admin key").into_inner().api_key
}

async fn create(
    server: &TestServer,
    caller: &str,
    request: pb::CreateApiKeyRequest,
) -> Result<pb::ApiKey, tonic::Status> {
    let created = server.admin().await.create_api_key(as_admin(request, caller)).await?;
    Ok(created.into_inner().key.expect("view"))
}

/// The rate limit in force for `key`, as Authorize reports it.
async fn rate_in_force(server: &TestServer, key_id: &str, key: &str) -> Option<u32> {
    let response = server.authorize(key, &["graph:read"]).await;
    assert!(response.decision.as_ref().is_some_and(|d| d.allowed), "{key_id}: {response:?}");
    response.rate_limit.map(|rate| rate.limit)
}

async fn organization_admins_cannot_lift_the_operators_limits(backend: Backend) {
    let server = TestServer::start_with(backend, CEILINGS).await;
    let mut admin = server.admin().await;
    let acme = org_admin(&server, "acme", "team", None).await;
    let globex = org_admin(&server, "globex", "pro", None).await;

    // The attack: an acme admin asks for no limit (0), or for more than the plan allows.
    let lifted = key_request("lifted", limits(Some(0), Some(0), Some(0)), "");
    let status = expect_code(create(&server, &acme, lifted).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["rate_limit_per_minute", "max_quota", "max_concurrency"]);
    assert!(status.message().contains("at most 100, the ceiling of plan team"), "{}", status.message());
    assert!(status.message().contains("0, no limit"), "{}", status.message());
    let beyond = key_request("beyond", limits(Some(101), Some(100_001), Some(3)), "");
    let status = expect_code(create(&server, &acme, beyond).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["rate_limit_per_minute", "max_quota", "max_concurrency"]);
    let burst = pb::Limits { rate_limit_per_minute: Some(50), rate_limit_burst: Some(101), ..Default::default() };
    let status =
        expect_code(create(&server, &acme, key_request("burst", Some(burst), "")).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["rate_limit_burst"]);

    // At the ceiling is fine; what is left unset is capped at it, stored, and in force.
    let within = create(&server, &acme, key_request("within", limits(Some(100), Some(100_000), Some(2)), "")).await;
    assert!(within.is_ok(), "{within:?}");
    let request = key_request("unset", None, "");
    let created = admin.create_api_key(as_admin(request, &acme)).await.expect("create").into_inner();
    let stored = created.key.as_ref().and_then(|k| k.limits).expect("limits stored");
    assert_eq!(
        (stored.rate_limit_per_minute, stored.max_quota, stored.max_concurrency),
        (Some(100), Some(100_000), Some(2)),
        "keys have no rate limit or quota by default, and 5 slots: capped at the plan's"
    );
    let key_id = created.key.expect("view").key_id;
    assert_eq!(rate_in_force(&server, &key_id, &created.api_key).await, Some(100));

    // The pro plan sets nothing itself: the configured ceiling, then the defaults, apply.
    assert!(create(&server, &globex, key_request("fast", limits(Some(1000), None, Some(5)), "")).await.is_ok());
    let status = expect_code(
        create(&server, &globex, key_request("faster", limits(Some(1001), None, Some(6)), "")).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["rate_limit_per_minute", "max_concurrency"]);

    // API clients: the same bounds; the clients' default (200 a minute) is capped at team's 100.
    let client = |limits| pb::CreateApiClientRequest {
        name: "svc".into(),
        scopes: vec!["graph:read".into()],
        limits,
        ..Default::default()
    };
    let status = expect_code(
        admin.create_api_client(as_admin(client(limits(Some(0), None, None)), &acme)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["rate_limit_per_minute"]);
    let created = admin.create_api_client(as_admin(client(None), &acme)).await.expect("client").into_inner();
    let client_limits = created.client.and_then(|c| c.limits).expect("limits stored");
    assert_eq!(client_limits.rate_limit_per_minute, Some(100));

    // Changes: setting 0 or more is refused; resetting to the default (no limit) too, by its entry.
    let set =
        pb::UpdateApiKeyRequest { key_id: key_id.clone(), limits: limits(Some(0), None, None), ..Default::default() };
    let status = expect_code(admin.update_api_key(as_admin(set, &acme)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["rate_limit_per_minute"]);
    let reset = pb::UpdateApiKeyRequest {
        key_id: key_id.clone(),
        reset_limits: vec!["rate_limit_per_minute".into(), "max_concurrency".into()],
        ..Default::default()
    };
    let status = expect_code(admin.update_api_key(as_admin(reset, &acme)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["reset_limits[0]", "reset_limits[1]"]);
    assert!(
        status.message().contains("the default of API keys for rate_limit_per_minute (no limit)"),
        "{}",
        status.message()
    );
    let lower =
        pb::UpdateApiKeyRequest { key_id: key_id.clone(), limits: limits(Some(10), None, None), ..Default::default() };
    admin.update_api_key(as_admin(lower, &acme)).await.expect("tightening is always fine");

    // No looser than the caller's own limits: an acme admin held to 10 a minute.
    let slow = org_admin(&server, "acme", "team", limits(Some(10), None, None)).await;
    let status = expect_code(
        create(&server, &slow, key_request("quick", limits(Some(50), None, None), "")).await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("rate_limit_per_minute (yours: 10)"), "{}", status.message());
    let capped = create(&server, &slow, key_request("capped", None, "")).await.expect("capped at its own");
    assert_eq!(capped.limits.and_then(|l| l.rate_limit_per_minute), Some(10));

    // A platform admin may exceed the ceilings, in any organization.
    let root = server.admin_key.clone();
    let exceeding =
        create(&server, &root, key_request("exceeding", limits(Some(0), Some(0), Some(1000)), "acme")).await;
    let exceeding = exceeding.expect("a platform admin is not bound");
    let raised = pb::UpdateApiKeyRequest {
        key_id: exceeding.key_id,
        limits: limits(Some(50_000), None, None),
        ..Default::default()
    };
    admin.update_api_key(as_admin(raised, &root)).await.expect("a platform admin is not bound");
    server.stop().await;
}

/// A ceiling lowered in the configuration binds what is granted from then on; keys granted more
/// before keep it (lowering a ceiling does not change running integrations behind their backs)
/// until a change touches that limit, which must then respect the new ceiling.
async fn lowering_a_ceiling_binds_new_grants_only(backend: Backend) {
    let server = TestServer::start_with(backend, CEILINGS).await;
    let acme = org_admin(&server, "acme", "team", None).await;
    let request = key_request("granted 100", limits(Some(100), None, None), "");
    let created = server.admin().await.create_api_key(as_admin(request, &acme)).await.expect("create").into_inner();
    let key_id = created.key.expect("view").key_id;

    let lowered = [CEILINGS, &[("organizations.plans.team.rate_per_minute", "20")]].concat();
    let server = server.restart(&lowered).await;
    let mut admin = server.admin().await;
    assert_eq!(rate_in_force(&server, &key_id, &created.api_key).await, Some(100), "the key keeps what it was granted");
    // Changes that leave the rate alone are fine.
    let rename = pb::UpdateApiKeyRequest { key_id: key_id.clone(), name: Some("renamed".into()), ..Default::default() };
    admin.update_api_key(as_admin(rename, &acme)).await.expect("rename");
    let quota =
        pb::UpdateApiKeyRequest { key_id: key_id.clone(), limits: limits(None, Some(10), None), ..Default::default() };
    admin.update_api_key(as_admin(quota, &acme)).await.expect("another limit");
    // Setting the rate again must respect the new ceiling.
    let same =
        pb::UpdateApiKeyRequest { key_id: key_id.clone(), limits: limits(Some(50), None, None), ..Default::default() };
    let status = expect_code(admin.update_api_key(as_admin(same, &acme)).await, Code::InvalidArgument);
    assert!(status.message().contains("at most 20"), "{}", status.message());
    let down =
        pb::UpdateApiKeyRequest { key_id: key_id.clone(), limits: limits(Some(20), None, None), ..Default::default() };
    admin.update_api_key(as_admin(down, &acme)).await.expect("within the new ceiling");
    assert_eq!(rate_in_force(&server, &key_id, &created.api_key).await, Some(20));
    // New keys get the new ceiling.
    let fresh = create(&server, &acme, key_request("fresh", None, "")).await.expect("create");
    assert_eq!(fresh.limits.and_then(|l| l.rate_limit_per_minute), Some(20));
    server.stop().await;
}
