//! The whole conformance suite against the MariaDB/MySQL server (see `support` for how to start it), each store on its own table.

mod support;

session_conformance::conformance_tests!(opt_out = "mysql", async {
    support::conformance_store(support::Backend::MySql).await
});
