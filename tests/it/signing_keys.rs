//! What a copy of the database's signing keys is worth (issue 15, M3). A token signed with the
//! real key, read from the database as an attacker would, is held to its client's record: another
//! organization is refused, scopes beyond the client's are dropped. With a key-encryption key the
//! rows hold no PEM at all (existing plain keys are sealed at start), tokens still verify across
//! restarts, and a start with another KEK, or none, fails with the reason and adds no key.

use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use keygate::app;
use keygate::proto::keygate_v1 as pb;
use keygate_core::tokens::signing::Algorithm;
use pb::DecisionReason as R;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::Value;
use tonic::Code;

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, bearer, expect_code, test_config};

backend_tests!(a_stolen_signing_key_mints_nothing_beyond_the_client, signing_keys_are_sealed_with_the_kek);

/// A fixed issuer, so that tokens outlive a restart on another port.
const ISSUER: (&str, &str) = ("oauth.issuer", "https://keygate.test");
const KEK_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEK_B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

/// The signing keys as the database holds them: (kid, algorithm, private key column).
async fn stored_keys(server: &TestServer) -> Vec<(String, String, String)> {
    let db = Database::connect(&server.db.url).await.expect("connect");
    let sql = "SELECT kid, algorithm, private_key_pem FROM signing_keys ORDER BY created_at DESC";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("select");
    let _ = db.close().await;
    rows.iter()
        .map(|row| {
            let text = |name: &str| row.try_get::<String>("", name).expect(name);
            (text("kid"), text("algorithm"), text("private_key_pem"))
        })
        .collect()
}

async fn create_client(server: &TestServer, organization: &str, scopes: &[&str]) -> (String, String) {
    let request = pb::CreateApiClientRequest {
        name: "integration".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        organization: organization.into(),
        ..Default::default()
    };
    let created = server.admin().await.create_api_client(as_admin(request, &server.admin_key)).await.expect("client");
    let created = created.into_inner();
    (created.client_id, created.client_secret)
}

async fn token(server: &TestServer, client_id: &str, secret: &str) -> String {
    let grant = pb::IssueTokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        scope: String::new(),
    };
    server.auth().await.issue_token(grant).await.expect("token").into_inner().access_token
}

/// `template`'s claims with `changes`, signed with the stolen key.
fn forge(template: &str, (kid, algorithm, pem): &(String, String, String), changes: &[(&str, &str)]) -> String {
    let payload = template.split('.').nth(1).expect("payload");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).expect("b64");
    let mut claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).expect("claims");
    for (name, value) in changes {
        claims.insert((*name).to_owned(), Value::from(*value));
    }
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id(kid.clone());
    let signer = Algorithm::parse(algorithm).expect("algorithm").signer(pem.as_bytes()).expect("a PEM private key");
    jwt::encode_with_signer(&JwtPayload::from_map(claims).expect("payload"), &header, signer.as_ref()).expect("sign")
}

async fn a_stolen_signing_key_mints_nothing_beyond_the_client(backend: Backend) {
    let server = TestServer::start_with(backend, &[ISSUER]).await;
    let org = pb::CreateOrganizationRequest { slug: "acme".into(), name: "Acme".into(), plan: String::new() };
    server.admin().await.create_organization(as_admin(org, &server.admin_key)).await.expect("org");
    let (client_id, secret) = create_client(&server, "acme", &["investigations:read"]).await;
    let real = token(&server, &client_id, &secret).await;
    let stolen = stored_keys(&server).await.into_iter().next().expect("a signing key");
    assert!(stolen.2.contains("PRIVATE KEY"), "without a KEK the database holds the PEM");

    // The platform organization and every scope: refused, for the admin API and for decisions.
    let platform = forge(&real, &stolen, &[("org", "platform"), ("scope", "*")]);
    assert_eq!(server.reason(&platform, &["investigations:read"]).await, R::InvalidToken);
    let mut request = tonic::Request::new(pb::ListOrganizationsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {platform}").parse().expect("ascii"));
    expect_code(server.admin().await.list_organizations(request).await, Code::Unauthenticated);
    // Another tenant's organization: refused too.
    let org = pb::CreateOrganizationRequest { slug: "globex".into(), name: "Globex".into(), plan: String::new() };
    server.admin().await.create_organization(as_admin(org, &server.admin_key)).await.expect("org");
    let globex = forge(&real, &stolen, &[("org", "globex")]);
    assert_eq!(server.reason(&globex, &["investigations:read"]).await, R::InvalidToken);

    // The client's own organization with every scope: narrowed to what the client holds.
    let widened = forge(&real, &stolen, &[("scope", "* admin:keys:write investigations:write investigations:read")]);
    let request = pb::AuthenticateRequest { credentials: Some(bearer(&widened)) };
    let principal = server.auth().await.authenticate(request).await.expect("authenticates").into_inner();
    let principal = principal.principal.expect("principal");
    assert_eq!(
        (principal.organization.as_str(), principal.scopes.as_slice()),
        ("acme", ["investigations:read".to_owned()].as_slice())
    );
    assert_eq!(server.reason(&widened, &["investigations:write"]).await, R::InsufficientScope);
    assert_eq!(server.reason(&widened, &["investigations:read"]).await, R::Allowed);
    let mut request = tonic::Request::new(pb::ListApiKeysRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {widened}").parse().expect("ascii"));
    expect_code(server.admin().await.list_api_keys(request).await, Code::PermissionDenied);

    // Real tokens are what they were.
    assert_eq!(server.reason(&real, &["investigations:read"]).await, R::Allowed);
    assert_eq!(server.reason(&real, &["investigations:write"]).await, R::InsufficientScope);
    server.stop().await;
}

async fn signing_keys_are_sealed_with_the_kek(backend: Backend) {
    // An existing database: keys in plain text, a token they signed.
    let mut server = TestServer::start_with(backend, &[ISSUER]).await;
    let (client_id, secret) = create_client(&server, "", &["incidents:read"]).await;
    let before_kek = token(&server, &client_id, &secret).await;
    assert!(stored_keys(&server).await.iter().all(|(_, _, pem)| pem.contains("BEGIN PRIVATE KEY")));

    // A KEK at start seals them in place; the token they signed still verifies.
    let with_a = [ISSUER, ("oauth.signing_key_encryption_key", KEK_A)];
    server = server.restart(&with_a).await;
    let sealed = stored_keys(&server).await;
    assert_eq!(sealed.len(), 1);
    assert_eq!(server.reason(&before_kek, &["incidents:read"]).await, R::Allowed);
    // A rotation writes the new key sealed.
    let rotate = pb::RotateSigningKeyRequest {};
    server.admin().await.rotate_signing_key(as_admin(rotate, &server.admin_key)).await.expect("rotate");
    let after_kek = token(&server, &client_id, &secret).await;
    let stored = stored_keys(&server).await;
    assert_eq!(stored.len(), 2);
    for (kid, _, column) in &stored {
        assert!(column.starts_with("kgsealed:v1:") && !column.contains("PRIVATE KEY"), "{kid}: {column}");
    }
    // The raw SQLite file (write-ahead log included) holds no PEM either.
    server.shutdown_only().await;
    if backend == Backend::Sqlite {
        let raw = server.db.dump().await;
        assert!(!raw.contains("PRIVATE KEY"), "a PEM private key in the database file");
    }

    // The same KEK again, from a file: both tokens verify.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("kek");
    std::fs::write(&file, format!("{KEK_A}\n")).expect("write kek");
    let path = file.display().to_string();
    server = server.restart(&[ISSUER, ("oauth.signing_key_encryption_key_file", &path)]).await;
    assert_eq!(server.reason(&before_kek, &["incidents:read"]).await, R::Allowed);
    assert_eq!(server.reason(&after_kek, &["incidents:read"]).await, R::Allowed);
    server.shutdown_only().await;

    // Another KEK, or none: start-up stops with the reason, and no key is generated instead.
    for (extra, reason) in [
        (vec![ISSUER, ("oauth.signing_key_encryption_key", KEK_B)], "but the configured one is"),
        (vec![ISSUER], "none is configured"),
    ] {
        let config = test_config(&server.db.url, &extra);
        let store = app::open_store(&config, true).await.expect("store");
        let clock = server.clock.clone();
        let failed = match app::build_state(&config, store, clock).await {
            Ok(_) => panic!("started with the wrong key-encryption key"),
            Err(err) => err.to_string(),
        };
        assert!(failed.contains("cannot be opened") && failed.contains(reason), "{failed}");
        assert!(!failed.contains(KEK_A) && !failed.contains(KEK_B), "the error names keys by id only: {failed}");
    }
    assert_eq!(stored_keys(&server).await, stored, "the failed starts changed no key and added none");
    server.db.drop_database().await;
}
