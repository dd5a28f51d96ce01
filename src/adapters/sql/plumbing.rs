//! What every SQL adapter file shares: error mapping, change announcements, search patterns
//! and the columns of secrets and limits.

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, LikeExpr};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, SqlErr, Statement, Value};

use keygate_core::error::StoreError;
use keygate_core::model::{Fingerprint, Labels, LimitField, LimitOverrides, StoredSecret};

/// SQLite's BUSY and LOCKED (the database is held by another writer past busy_timeout): the
/// database cannot answer now, which is not the caller's fault.
fn is_busy(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    let code = e.as_database_error().and_then(|db| db.code().map(|c| c.into_owned()));
    let primary = code.and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
    matches!(primary, Some(5 | 6))
}

/// Out of room or unable to write: SQLite's READONLY, IOERR and FULL, PostgreSQL's class 53
/// (insufficient resources: disk full, out of memory, too many connections). The operator's to
/// fix, and the same request may succeed later: not an internal error.
fn is_out_of_room(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    let Some(code) = e.as_database_error().and_then(|db| db.code().map(|c| c.into_owned())) else {
        return false;
    };
    // A SQLSTATE has five characters; SQLite's codes (extended ones included) fewer.
    if code.len() == 5 {
        return code.starts_with("53");
    }
    code.parse::<i64>().is_ok_and(|sqlite| matches!(sqlite & 0xff, 8 | 10 | 13))
}

pub(crate) fn map_err(err: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
        return StoreError::Conflict(message);
    }
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
                | sea_orm::sqlx::Error::Tls(_)
        ),
        _ => false,
    } || is_busy(&err)
        || is_out_of_room(&err);
    if unavailable { StoreError::Unavailable(err.to_string()) } else { StoreError::Internal(err.to_string()) }
}

/// The PostgreSQL channel on which key, client and signing-key changes are announced; payload
/// `"{key_id or client_id or SIGNING_KEYS_CHANGED} {sent_unix_micros}"`, or for a creation
/// `"{CREATED} {key_id or client_id} {sent_unix_micros}"`.
pub const KEY_CHANGES_CHANNEL: &str = "keygate_key_changes";
/// The announced id that means "the signing keys changed".
pub const SIGNING_KEYS_CHANGED: &str = "@signing-keys";

/// The payload prefix that announces a new key or client (`"@created {id} {sent}"`), so that
/// other replicas learn its id (see `keygate_core::known_ids`); a replica that does not know the
/// prefix takes it for a change to a key named `@created`, which drops nothing.
pub const CREATED: &str = "@created";

/// Announces a change to `key_id` to the other replicas. `pg_notify` inside a transaction is
/// delivered on commit, and not at all on rollback. SQLite has one process: nothing to announce.
pub(crate) async fn announce<C: ConnectionTrait>(conn: &C, key_id: &str) -> Result<(), DbErr> {
    notify(conn, key_id).await
}

/// Announces a new key or client to the other replicas, as [`announce`] does a change.
pub(crate) async fn announce_created<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    notify(conn, &format!("{CREATED} {id}")).await
}

async fn notify<C: ConnectionTrait>(conn: &C, subject: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    // Wall time, for measuring propagation delay only; no decision depends on it.
    let sent = Utc::now().timestamp_micros();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [KEY_CHANGES_CHANNEL.into(), format!("{subject} {sent}").into()],
    );
    conn.execute_raw(statement).await?;
    Ok(())
}

/// What a search matches, lowercased: the name, the description and every label value.
pub(crate) fn search_text(name: &str, description: &str, labels: &Labels) -> String {
    let mut text = format!("{}\n{}", name.to_lowercase(), description.to_lowercase());
    for value in labels.values() {
        text.push('\n');
        text.push_str(&value.to_lowercase());
    }
    text
}

/// Labels as stored: a JSON object, names sorted, no spaces, so that one label has one spelling
/// (see [`carries_label`]).
pub(crate) fn labels_column(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// Labels as read; a column keygate did not write reads as none, with a warning.
pub(crate) fn labels_from_column(column: &str) -> Labels {
    serde_json::from_str(column).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "unreadable labels column read as none");
        Labels::new()
    })
}

/// Rows whose `labels` column holds `name` with exactly `value`: the pair's JSON text, found as
/// a case-sensitive substring (`instr` on SQLite, `strpos` on PostgreSQL; LIKE would ignore
/// case on SQLite). Names and values hold no quote or backslash (`validate::labels`), so the
/// text `"name":"value"` occurs only as that pair.
pub(crate) fn carries_label(backend: DbBackend, name: &str, value: &str) -> sea_orm::sea_query::SimpleExpr {
    let pair = format!("{}:{}", serde_json::Value::from(name), serde_json::Value::from(value));
    // Each builder reads its own placeholder: numbered on PostgreSQL, `?` on SQLite.
    let found = if backend == DbBackend::Postgres { "strpos(labels, $1) > 0" } else { "instr(labels, ?) > 0" };
    Expr::cust_with_values(found, [pair])
}

pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// A hash column and its fingerprint column; an unreadable fingerprint counts as none.
pub(crate) fn stored_secret(phc: String, fingerprint: Option<&str>) -> StoredSecret {
    StoredSecret { phc, fingerprint: fingerprint.and_then(Fingerprint::from_column) }
}

pub(crate) fn fingerprint_column(secret: &StoredSecret) -> Option<String> {
    secret.fingerprint.map(Fingerprint::to_column)
}

/// `%term%` with LIKE's wildcards in `term` escaped by `\`.
pub(crate) fn contains_pattern(term: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}

/// A credential's limits from its four nullable columns (a negative number, which keygate never
/// writes, reads as "no limit").
pub(crate) fn limits_from_columns(
    per_minute: Option<i32>,
    burst: Option<i32>,
    max_quota: Option<i64>,
    max_concurrency: Option<i32>,
) -> LimitOverrides {
    LimitOverrides {
        rate_per_minute: per_minute.map(|n| u32::try_from(n).unwrap_or(0)),
        rate_burst: burst.map(|n| u32::try_from(n).unwrap_or(0)),
        max_quota: max_quota.map(|n| u64::try_from(n).unwrap_or(0)),
        max_concurrency: max_concurrency.map(|n| u32::try_from(n).unwrap_or(0)),
    }
}

/// The four columns of a credential's limits; values beyond the column range are clamped (the
/// admin use cases bound them far below).
/// The column assignments a change of limits makes, on either credential table (their limit
/// columns share the wire names): the limits set, then those reset to NULL (the configured
/// default again). Resets come last, as SQLite applies the last of two assignments to one column.
pub(crate) fn limit_assignments(limits: &LimitOverrides, resets: &[String]) -> Vec<(Alias, Value)> {
    let (per_minute, burst, max_quota, max_concurrency) = limit_columns(limits);
    let set = [
        (LimitField::RatePerMinute, per_minute.map(|v| Value::Int(Some(v)))),
        (LimitField::RateBurst, burst.map(|v| Value::Int(Some(v)))),
        (LimitField::MaxQuota, max_quota.map(|v| Value::BigInt(Some(v)))),
        (LimitField::MaxConcurrency, max_concurrency.map(|v| Value::Int(Some(v)))),
    ];
    let set = set.into_iter().filter_map(|(field, value)| Some((Alias::new(field.name()), value?)));
    let reset = resets.iter().filter_map(|name| LimitField::from_name(name)).map(|field| {
        let null = if field == LimitField::MaxQuota { Value::BigInt(None) } else { Value::Int(None) };
        (Alias::new(field.name()), null)
    });
    set.chain(reset).collect()
}

pub(crate) fn limit_columns(limits: &LimitOverrides) -> (Option<i32>, Option<i32>, Option<i64>, Option<i32>) {
    let small = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    (
        limits.rate_per_minute.map(small),
        limits.rate_burst.map(small),
        limits.max_quota.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        limits.max_concurrency.map(small),
    )
}
