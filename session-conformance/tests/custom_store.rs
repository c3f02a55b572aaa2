//! A custom store passes the whole suite with one line: the documentation for store authors.

mod support {
    pub(crate) mod mutex_store;
}

use support::mutex_store::MutexStore;

session_conformance::conformance_tests!(async { MutexStore::default() });
