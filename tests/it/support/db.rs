//! A fresh database per test: a SQLite file in a temporary directory, or a new PostgreSQL
//! database on the server named by `TEST_POSTGRES_URL`.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// The PostgreSQL server tests use unless `TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// For PostgreSQL: the database name and the admin URL to drop it through.
    postgres: Option<(String, String)>,
    /// For SQLite: the directory holding the file.
    pub dir: Option<tempfile::TempDir>,
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

async fn connect_postgres(url: &str) -> DatabaseConnection {
    match Database::connect(url).await {
        Ok(db) => db,
        Err(err) => panic!(
            "PostgreSQL is needed for the postgres tests and {url} cannot be reached: {err}\n\
             Start PostgreSQL or point TEST_POSTGRES_URL at one (a role that may CREATE DATABASE), \
             e.g. TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres"
        ),
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let server = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && server.len() > server.find("://").unwrap_or(0) + 3 => server,
        _ => base,
    };
    format!("{server}/{name}{query}")
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/keygate.db?mode=rwc", dir.path().display());
                Self { backend, url, postgres: None, dir: Some(dir) }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("keygate_test_{}", uuid::Uuid::new_v4().simple());
                let admin = connect_postgres(&admin_url).await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE on {admin_url} failed: {e}"));
                let _ = admin.close().await;
                let url = with_database(&admin_url, &name);
                Self { backend, url, postgres: Some((name, admin_url)), dir: None }
            }
        }
    }

    /// A database that exists already, e.g. on a cluster of the test's own; never dropped.
    pub fn existing(backend: Backend, url: String) -> Self {
        Self { backend, url, postgres: None, dir: None }
    }

    /// Every row of every keygate table, as text: for checking what the database holds.
    pub async fn dump(&self) -> String {
        let db = Database::connect(&self.url).await.expect("connect for dump");
        let mut out = String::new();
        for table in ["organizations", "api_keys", "api_clients", "audit_events"] {
            let sql = match self.backend {
                Backend::Postgres => format!("SELECT t::text AS row FROM {table} t"),
                Backend::Sqlite => format!("SELECT count(*) FROM {table}"),
            };
            let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("dump");
            for row in rows {
                if self.backend == Backend::Postgres {
                    out.push_str(&row.try_get::<String>("", "row").expect("row as text"));
                    out.push('\n');
                }
            }
        }
        let _ = db.close().await;
        if let Some(dir) = &self.dir {
            // The raw file bytes too, write-ahead log included.
            for entry in std::fs::read_dir(dir.path()).expect("read dir").flatten() {
                let bytes = std::fs::read(entry.path()).unwrap_or_default();
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        out
    }

    pub async fn drop_database(&self) {
        if let Some((name, admin_url)) = &self.postgres {
            let admin = connect_postgres(admin_url).await;
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            let _ = admin.close().await;
        }
    }
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
    assert_eq!(
        with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
}
