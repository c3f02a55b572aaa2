//! The whole conformance suite against an SQLite file per store (pooled connections, WAL), each store on its own table.

mod support;

session_conformance::conformance_tests!(async {
    support::conformance_store(support::Backend::SqliteFile).await
});
