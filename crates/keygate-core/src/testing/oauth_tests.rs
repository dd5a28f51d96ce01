//! The OAuth2 client-credentials grant and token introspection, on the in-memory store with a
//! manual clock: what is checked before a token is signed, what the token carries, how long it
//! works, and whom introspection answers.

use chrono::Duration;

use crate::admin::clients::{IssuedClient, NewClient};
use crate::credentials::client::generate_secret;
use crate::error::{CoreError, OAuthErrorKind};
use crate::model::{Credentials, PrincipalKind, Reason};
use crate::oauth::{CLIENT_CREDENTIALS, Introspection, IntrospectionCaller, TokenRequest};
use crate::ports::{ClientStore, UsageStore};
use crate::testing::harness::{Core, code, ctx, scopes};

/// A core with organizations `acme` and `globex`, and a client in `acme` holding `held`.
async fn with_client(held: &[&str]) -> (Core, String, IssuedClient) {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    core.organization(&root, "acme", "pro").await;
    core.organization(&root, "globex", "pro").await;
    let client = client_in(&core, &root, "acme", held).await;
    (core, root, client)
}

async fn client_in(core: &Core, root: &str, organization: &str, held: &[&str]) -> IssuedClient {
    let request = NewClient {
        name: format!("{organization} sync"),
        scopes: scopes(held),
        organization: organization.to_owned(),
        ..NewClient::default()
    };
    core.admin.create_client(&ctx(root), request).await.expect("create client")
}

fn request(client: &IssuedClient, scope: &str) -> TokenRequest {
    TokenRequest {
        grant_type: CLIENT_CREDENTIALS.to_owned(),
        client_id: client.client.client_id.clone(),
        client_secret: client.client_secret.clone(),
        scope: scope.to_owned(),
    }
}

/// The RFC 6749 error a token request was refused with.
fn refused<T>(result: &Result<T, CoreError>) -> Option<OAuthErrorKind> {
    match result {
        Err(CoreError::OAuth(err)) => Some(err.kind),
        _ => None,
    }
}

#[tokio::test]
async fn a_client_gets_a_token_for_the_scopes_it_holds() {
    let (core, _root, client) = with_client(&["search", "graph:read"]).await;
    let all = core.oauth.issue_token(&request(&client, "")).await.expect("every scope of the client");
    assert_eq!((all.scopes.clone(), all.expires_in), (scopes(&["search", "graph:read"]), 1800));
    let principal = core.authenticate(&all.token).await.expect("the token works");
    assert_eq!((principal.kind, principal.id.as_str()), (PrincipalKind::Client, client.client.client_id.as_str()));
    assert_eq!((principal.organization.as_str(), principal.expires_at), ("acme", core.now() + Duration::minutes(30)));

    let narrow = core.oauth.issue_token(&request(&client, "search:read")).await.expect("a scope below a held one");
    assert_eq!(core.authenticate(&narrow.token).await.expect("works").scopes, scopes(&["search:read"]));
    let beyond = core.oauth.issue_token(&request(&client, "search:read incidents:read")).await;
    assert_eq!(refused(&beyond), Some(OAuthErrorKind::InvalidScope));
    assert_eq!(refused(&core.oauth.issue_token(&request(&client, "a\"b")).await), Some(OAuthErrorKind::InvalidScope));
}

#[tokio::test]
async fn the_grant_and_the_client_are_checked_before_anything_is_signed() {
    let (core, _root, client) = with_client(&["search:read"]).await;
    let no_grant = TokenRequest { grant_type: String::new(), ..request(&client, "") };
    assert_eq!(code(&core.oauth.issue_token(&no_grant).await), "INVALID_ARGUMENT");
    let password = TokenRequest { grant_type: "password".into(), ..request(&client, "") };
    assert_eq!(refused(&core.oauth.issue_token(&password).await), Some(OAuthErrorKind::UnsupportedGrantType));

    let verifications = core.hasher.verifications();
    for bad in [
        TokenRequest { client_id: String::new(), ..request(&client, "") },
        TokenRequest { client_secret: String::new(), ..request(&client, "") },
        TokenRequest { client_secret: "not-a-secret".into(), ..request(&client, "") },
        TokenRequest { client_id: "Not-An-Id".into(), ..request(&client, "") },
    ] {
        assert_eq!(refused(&core.oauth.issue_token(&bad).await), Some(OAuthErrorKind::InvalidClient), "{bad:?}");
    }
    assert_eq!(core.hasher.verifications(), verifications, "malformed credentials cost no argon2");
    let unknown = TokenRequest { client_id: "no-such-client-000000".into(), ..request(&client, "") };
    assert_eq!(refused(&core.oauth.issue_token(&unknown).await), Some(OAuthErrorKind::InvalidClient));
    let other = generate_secret();
    let wrong = TokenRequest { client_secret: other, ..request(&client, "") };
    assert_eq!(refused(&core.oauth.issue_token(&wrong).await), Some(OAuthErrorKind::InvalidClient));
}

#[tokio::test]
async fn a_token_expires_by_the_clock_with_its_leeway() {
    let (core, _root, client) = with_client(&["search:read"]).await;
    let token = core.oauth.issue_token(&request(&client, "")).await.expect("token").token;
    core.clock.advance(Duration::minutes(30) + Duration::seconds(29));
    assert!(core.authenticate(&token).await.is_ok(), "within the 30 s leeway");
    core.clock.advance(Duration::seconds(1));
    assert_eq!(core.authenticate(&token).await.map(|p| p.id), Err(Reason::ExpiredToken));
}

#[tokio::test]
async fn a_secret_costs_one_argon2_per_cache_lifetime() {
    let (core, root, client) = with_client(&["search:read"]).await;
    let before = core.hasher.verifications();
    core.oauth.issue_token(&request(&client, "")).await.expect("first");
    core.oauth.issue_token(&request(&client, "")).await.expect("second");
    assert_eq!(core.hasher.verifications(), before + 1, "the second is answered from the verdict cache");
    // A regenerated secret drops the old one's verdict: it stops at once.
    let id = client.client.client_id.clone();
    let regenerated = core.admin.regenerate_client_secret(&ctx(&root), &id, false).await.expect("regenerate");
    assert_eq!(refused(&core.oauth.issue_token(&request(&client, "")).await), Some(OAuthErrorKind::InvalidClient));
    core.oauth.issue_token(&request(&regenerated, "")).await.expect("the new secret");

    // Last use is noted in memory and written in a batch.
    let store = core.store.as_ref();
    core.last_used.flush(store, store, store, core.now()).await.expect("flush");
    let stored = core.store.client(&id).await.expect("store").expect("client");
    assert_eq!(stored.last_used_at, Some(core.now()));
    // And counted for the day: two tokens issued with the old secret, one with the new.
    let daily = core.store.daily_uses(&format!("client:{id}"), core.now().date_naive()).await.expect("daily");
    assert_eq!(daily.iter().map(|row| row.uses).sum::<u64>(), 3, "{daily:?}");
}

#[tokio::test]
async fn introspection_answers_only_within_the_organization() {
    let (core, root, client) = with_client(&["search:read"]).await;
    let globex = client_in(&core, &root, "globex", &["search:read"]).await;
    let token = core.oauth.issue_token(&request(&client, "")).await.expect("token").token;
    let as_client = |c: &IssuedClient| IntrospectionCaller::Client {
        client_id: c.client.client_id.clone(),
        client_secret: c.client_secret.clone(),
    };
    match core.oauth.introspect(as_client(&client), &token).await {
        Ok(Introspection::Active(principal)) => assert_eq!(principal.id, client.client.client_id),
        other => panic!("a token of the caller's organization is active: {other:?}"),
    }
    assert_eq!(core.oauth.introspect(as_client(&globex), &token).await.ok(), Some(Introspection::Inactive));
    let acme_key = core.key(&root, "acme", &["search:read"]).await.api_key;
    let bearer = IntrospectionCaller::Bearer(Credentials { authorization: String::new(), api_key: acme_key });
    assert!(matches!(core.oauth.introspect(bearer, &token).await, Ok(Introspection::Active(_))));
    let stranger = IntrospectionCaller::Client {
        client_id: globex.client.client_id.clone(),
        client_secret: client.client_secret.clone(),
    };
    assert_eq!(refused(&core.oauth.introspect(stranger, &token).await), Some(OAuthErrorKind::InvalidClient));
    assert_eq!(code(&core.oauth.introspect(as_client(&client), "").await), "INVALID_ARGUMENT");
    assert_eq!(core.oauth.introspect(as_client(&client), "garbage").await.ok(), Some(Introspection::Inactive));
    core.clock.advance(Duration::hours(1));
    assert_eq!(core.oauth.introspect(as_client(&client), &token).await.ok(), Some(Introspection::Inactive), "expired");
}
