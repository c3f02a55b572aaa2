//! The whole conformance suite against the standalone topology with the operations sent as Lua
//! scripts (`use_functions = false`), as on a server without Redis Functions.

mod support;

session_conformance::conformance_tests!(opt_out = "redis", async {
    let store = support::connect(
        support::Topo::Standalone,
        support::config(support::Topo::Standalone).with_use_functions(false),
    )
    .await;
    assert_eq!(store.function_library(), None, "scripts were asked for");
    store
});
