//! The whole conformance suite against Redis behind a near cache invalidated by
//! `CLIENT TRACKING`: the standalone server, the shared Sentinel topology and the shared
//! Cluster (see `support` for how to start them).

mod support;

mod standalone {
    use super::support;

    session_conformance::conformance_tests!(opt_out = "redis", async {
        support::redis_conformance(support::redis_config()).await
    });
}

mod sentinel {
    use super::support;

    session_conformance::conformance_tests!(opt_out = "redis-sentinel", async {
        support::redis_conformance(support::redis_sentinel_config()).await
    });
}

mod cluster {
    use super::support;

    session_conformance::conformance_tests!(opt_out = "redis-cluster", async {
        support::redis_conformance(support::redis_cluster_config()).await
    });
}
