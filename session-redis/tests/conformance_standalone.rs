//! The whole conformance suite against the standalone topology (see `support` for how to start it).

mod support;

session_conformance::conformance_tests!(opt_out = "redis", async {
    support::conformance_store(support::Topo::Standalone).await
});
