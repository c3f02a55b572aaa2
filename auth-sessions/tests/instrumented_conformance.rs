//! The instrumented wrapper changes no behaviour: the whole conformance suite passes through it.

use std::sync::Arc;

use auth_sessions::InstrumentedStore;

session_conformance::conformance_tests!(async {
    InstrumentedStore::new(Arc::new(session_memory::MemoryStore::new()))
});
