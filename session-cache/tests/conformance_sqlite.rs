//! The whole conformance suite against an in-memory SQLite store behind a near cache with a
//! bounded staleness.

use std::sync::Arc;
use std::time::Duration;

use session_cache::CachedStore;
use session_db::DbStore;

session_conformance::conformance_tests!(async {
    let store = DbStore::connect("sqlite::memory:")
        .await
        .unwrap_or_else(|error| unreachable!("in-memory SQLite opens: {error}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|error| unreachable!("in-memory SQLite migrates: {error}"));
    CachedStore::builder(Arc::new(store))
        .bounded_staleness(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|error| unreachable!("a valid cache configuration: {error}"))
});
