//! The whole conformance suite against the sentinel topology (see `support` for how to start it).

mod support;

session_conformance::conformance_tests!(opt_out = "redis-sentinel", async {
    support::conformance_store(support::Topo::Sentinel).await
});
