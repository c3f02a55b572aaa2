//! The whole conformance suite against PostgreSQL behind a near cache invalidated by
//! `LISTEN/NOTIFY`, each store on its own table (see `support` for how to start the server).

mod support;

session_conformance::conformance_tests!(opt_out = "postgres", async {
    support::postgres_conformance().await
});
