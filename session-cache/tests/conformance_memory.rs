//! The whole conformance suite against the memory store behind a near cache with a bounded
//! staleness (every change goes through the cache, so none is ever stale).

use std::sync::Arc;
use std::time::Duration;

use session_cache::CachedStore;
use session_memory::MemoryStore;

session_conformance::conformance_tests!(async {
    CachedStore::builder(Arc::new(MemoryStore::new()))
        .bounded_staleness(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|error| unreachable!("a valid cache configuration: {error}"))
});
