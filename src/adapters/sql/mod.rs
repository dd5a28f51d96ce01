//! The SeaORM adapter: the core's store ports (`Store`, `ClientStore`, `SigningKeyStore`,
//! `AuditStore`, `UsageStore`) on SQLite and PostgreSQL, one file per port, and the
//! LISTEN/NOTIFY change listener. This file opens the pool.

pub mod audit;
pub mod clients;
pub mod entities;
mod keys;
pub mod notify;
pub mod plumbing;
pub mod quota_usage;
pub mod signing_keys;

use std::time::Duration;

use keygate_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::Connection as _;
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

use self::plumbing::map_err;
use crate::config::DatabaseConfig;
use crate::observability::metrics::PoolStats;
use keygate_core::error::StoreError;

/// SQLite or PostgreSQL through SeaORM.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
    /// The hot-path look-up gives up after this long, so a hung database means UNAVAILABLE.
    timeout: Duration,
}

impl SqlStore {
    /// Connects to `settings.url` with its pool size and timeout (creating a SQLite file when
    /// needed). Does not migrate.
    pub async fn connect(settings: &DatabaseConfig) -> Result<Self, StoreError> {
        if let Some(path) = sqlite_file(&settings.url) {
            owner_only(&path)?;
        }
        let statement_ms = settings.timeout.as_millis();
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .max_connections(settings.max_connections)
            .min_connections(1)
            .connect_timeout(settings.timeout)
            .acquire_timeout(settings.timeout)
            .sqlx_logging(false)
            .map_sqlx_postgres_opts(move |opts| opts.options([("statement_timeout", format!("{}ms", statement_ms))]))
            .map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // Deleted and overwritten rows are zeroed, so a replaced secret (a signing
                    // key sealed in place) leaves no copy in the file's free pages.
                    .pragma("secure_delete", "ON")
            })
            .map_sqlx_sqlite_before_acquire(|conn, _| {
                // A connection whose transaction did not end (its COMMIT and then ROLLBACK
                // failed, as on a full disk) would make its next user's BEGIN a savepoint inside
                // it, released and never committed: an acknowledged write lost. Discarded.
                let ended = !conn.is_in_transaction();
                if !ended {
                    tracing::warn!("a database connection left inside a transaction was closed");
                }
                Box::pin(async move { Ok(ended) })
            });
        let db = Database::connect(options).await.map_err(map_err)?;
        Ok(Self { db, timeout: settings.timeout })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(map_err)
    }

    /// Whether every migration has been applied.
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        let pending = Migrator::get_pending_migrations(&self.db).await.map_err(map_err)?;
        Ok(pending.is_empty())
    }

    /// The connection pool, for the other port implementations.
    pub(super) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs a hot-path look-up, giving up after the configured timeout so that a hung database
    /// means UNAVAILABLE.
    pub(super) async fn within_timeout<T>(&self, lookup: impl Future<Output = T>) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| StoreError::Unavailable(format!("look-up took longer than {:?}", self.timeout)))
    }

    /// Open and idle connections of the pool, for metrics.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = match self.db.get_database_backend() {
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => (0, 0),
        };
        PoolStats { size, idle: u32::try_from(idle).unwrap_or(u32::MAX) }
    }

    /// Whether other replicas may share this database (PostgreSQL), so changes must be announced.
    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }
}

/// The file of a `sqlite:` URL; `None` for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Makes the database file readable by its owner alone before SQLite opens it: it holds hashes,
/// signing keys and the audit log. SQLite gives its `-wal` and `-shm` files the database file's
/// permissions, so those follow. A file that exists with wider permissions is narrowed, with a
/// warning.
#[cfg(unix)]
fn owner_only(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |err: std::io::Error| StoreError::Unavailable(format!("{}: {err}", path.display()));
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(io(err)),
    }
    // A file keygate cannot write (a read-only mount, another owner's file) would fail later as
    // SQLite's "unable to open database file"; this says why.
    std::fs::OpenOptions::new().append(true).open(path).map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(metadata) = std::fs::metadata(&file) else { continue };
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "database file was readable by others; narrowing it to its owner");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_path: &std::path::Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://keygate.db?mode=rwc"), Some("keygate.db".into()));
        assert_eq!(sqlite_file("sqlite:///var/lib/keygate/keygate.db"), Some("/var/lib/keygate/keygate.db".into()));
        assert_eq!(sqlite_file("sqlite:data.db"), Some("data.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h:5432/db"), None);
    }
}
