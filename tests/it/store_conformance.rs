//! The store conformance suite of keygate-core (`keygate_core::testing::store_conformance`) on
//! SQLite and PostgreSQL: the checks the in-memory store passes in the core's unit tests, so
//! that the two stay held to the same contract, with the SQL store as the reference.

use std::sync::Arc;

use keygate::app;
use keygate_core::testing::store_conformance;

use crate::backend_tests;
use crate::support::{Backend, TestDb, test_config};

backend_tests!(the_sql_store_passes_the_conformance_tests);

async fn the_sql_store_passes_the_conformance_tests(backend: Backend) {
    let db = TestDb::create(backend).await;
    let config = test_config(&db.url, &[]);
    let store = app::open_store(&config, true).await.expect("store");
    store_conformance::run_all(Arc::new(store)).await;
    db.drop_database().await;
}
