//! The whole conformance suite against the standalone Redis server behind a near cache
//! invalidated by `CLIENT TRACKING` (see `support` for how to start the server).

mod support;

session_conformance::conformance_tests!(opt_out = "redis", async {
    support::redis_conformance().await
});
