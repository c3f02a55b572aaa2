//! The whole conformance suite against the cluster topology (see `support` for how to start it).

mod support;

session_conformance::conformance_tests!(opt_out = "redis-cluster", async {
    support::conformance_store(support::Topo::Cluster).await
});
