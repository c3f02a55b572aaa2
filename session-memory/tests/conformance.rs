//! The memory store runs the whole conformance suite.

session_conformance::conformance_tests!(async { session_memory::MemoryStore::new() });
