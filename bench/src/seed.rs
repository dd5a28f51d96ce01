//! Fills a keygate SQLite store with many keys at once, for the store-size cases. Every seeded key
//! shares one secret, hashed once with cheap argon2id parameters, so that seeding a million keys
//! takes seconds; their ids differ, so every look-up is a real primary-key read.

use keygate::adapters::sql::entities::api_key;
use keygate_core::credentials::api_key as credential;
use keygate_core::credentials::hashing::{HashLimits, HashParams, SecretHasher};
use keygate_core::model::Fingerprint;
use sea_orm::{ActiveValue, Database, EntityTrait};

/// The shared secret of seeded keys (32 base62 characters).
const SECRET: &str = "BenchSeedSecret0123456789abcdefg";

/// The full key of seeded key number `n`.
pub fn seeded_key(n: u64) -> String {
    credential::assemble("sk_live_", &seeded_id(n), SECRET).full
}

fn seeded_id(n: u64) -> String {
    format!("k_s{n:011}")
}

/// Inserts seeded keys `from..to` into organization `platform` of the SQLite store at `url`.
pub async fn seed_range(url: &str, from: u64, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let hasher = SecretHasher::new(
        HashParams { memory_kib: 8, iterations: 1, lanes: 1 },
        HashLimits { max_concurrent: 1, max_waiting: 1, nice: 0 },
    )?;
    let hash = hasher.hash(SECRET.to_owned()).await?;
    let db = Database::connect(url).await?;
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::days(365);
    let mut n = from;
    while n < count {
        let batch_end = (n + 1000).min(count);
        let models = (n..batch_end).map(|i| api_key::ActiveModel {
            key_id: ActiveValue::Set(seeded_id(i)),
            key_prefix: ActiveValue::Set(format!("sk_live_{}", seeded_id(i))),
            organization: ActiveValue::Set("platform".into()),
            name: ActiveValue::Set(format!("seeded {i}")),
            description: ActiveValue::Set(String::new()),
            search_text: ActiveValue::Set(format!("seeded {i}\n")),
            scopes: ActiveValue::Set("graph:read".into()),
            secret_hash: ActiveValue::Set(hash.phc.clone()),
            previous_secret_hash: ActiveValue::Set(None),
            secret_fingerprint: ActiveValue::Set(hash.fingerprint.map(Fingerprint::to_column)),
            previous_secret_fingerprint: ActiveValue::Set(None),
            previous_key_expires_at: ActiveValue::Set(None),
            created_by: ActiveValue::Set("bench".into()),
            created_at: ActiveValue::Set(now),
            updated_at: ActiveValue::Set(now),
            expires_at: ActiveValue::Set(expires),
            disabled_at: ActiveValue::Set(None),
            last_used_at: ActiveValue::Set(None),
            last_rotated_at: ActiveValue::Set(None),
            rate_limit_per_minute: ActiveValue::Set(None),
            rate_limit_burst: ActiveValue::Set(None),
            max_quota: ActiveValue::Set(None),
            max_concurrency: ActiveValue::Set(None),
            labels: ActiveValue::Set("{}".into()),
        });
        api_key::Entity::insert_many(models).exec_without_returning(&db).await?;
        n = batch_end;
    }
    db.close().await?;
    Ok(())
}
