//! Console sessions: an opaque random token in the browser's cookie, and on the server the
//! admin credential it stands for, its CSRF token and its deadlines. Kept in this replica's
//! memory only, bounded in number: the credential never reaches the browser, a log or the
//! database, and a restart signs everyone out.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use rand::RngCore;
use sha2::{Digest, Sha256};

use keygate_core::model::Credentials;

/// At most this many sessions at once; the least recently used goes first beyond it.
const MAX_SESSIONS: u64 = 10_000;

/// A signed-in admin's session.
#[derive(Clone)]
pub struct Session {
    /// The credential signed in with: presented again on every admin call, so that its
    /// scopes, organization and revocation apply as they do to the API.
    pub credentials: Credentials,
    /// Sent back with every form; a request without it changes nothing.
    pub csrf: String,
    /// When the session ends, in use or not: sign-in plus the maximum, or the credential's own
    /// expiry when sooner.
    pub ends_at: DateTime<Utc>,
}

/// The sessions of this replica.
#[derive(Clone)]
pub struct Sessions {
    /// By the SHA-256 of the cookie's token: the map never holds a token a browser holds.
    by_digest: Cache<[u8; 32], Arc<Session>>,
    max_age: chrono::Duration,
}

impl Sessions {
    /// Sessions that end after `idle` without a request, and `max_age` after sign-in at most.
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        let by_digest = Cache::builder().max_capacity(MAX_SESSIONS).time_to_idle(idle).build();
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::hours(8));
        Self { by_digest, max_age }
    }

    /// Starts a session for `credentials` at `now`, ending by `credential_expires_at` at the
    /// latest; returns the cookie's token and the session.
    pub async fn start(
        &self,
        credentials: Credentials,
        now: DateTime<Utc>,
        credential_expires_at: DateTime<Utc>,
    ) -> (String, Arc<Session>) {
        let token = random_token();
        let ends_at = (now + self.max_age).min(credential_expires_at);
        let session = Arc::new(Session { credentials, csrf: random_token(), ends_at });
        self.by_digest.insert(digest(&token), session.clone()).await;
        (token, session)
    }

    /// The live session of a cookie's token at `now`; an ended one is removed.
    pub async fn find(&self, token: &str, now: DateTime<Utc>) -> Option<Arc<Session>> {
        let key = digest(token);
        let session = self.by_digest.get(&key).await?;
        if now >= session.ends_at {
            self.by_digest.invalidate(&key).await;
            return None;
        }
        Some(session)
    }

    /// Ends the session of a cookie's token, if there is one.
    pub async fn end(&self, token: &str) {
        self.by_digest.invalidate(&digest(token)).await;
    }
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (digest(given), digest(expected));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("a time")
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_token_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(600), Duration::from_secs(3600));
        let creds = Credentials { authorization: String::new(), api_key: "sk_test".to_owned() };
        let (token, session) = sessions.start(creds, at(0), at(100_000)).await;
        assert_eq!(session.ends_at, at(3600), "the maximum age, the credential lasting longer");
        assert!(sessions.find(&token, at(10)).await.is_some());
        assert!(sessions.find("another", at(10)).await.is_none());
        assert!(sessions.find(&token, at(3600)).await.is_none(), "ended at its maximum age");
        assert!(sessions.find(&token, at(10)).await.is_none(), "and removed");
    }

    #[tokio::test]
    async fn a_session_never_outlives_its_credential_and_sign_out_ends_it() {
        let sessions = Sessions::new(Duration::from_secs(600), Duration::from_secs(3600));
        let (token, session) = sessions.start(Credentials::default(), at(0), at(60)).await;
        assert_eq!(session.ends_at, at(60));
        sessions.end(&token).await;
        assert!(sessions.find(&token, at(1)).await.is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("", "abc"));
    }
}
