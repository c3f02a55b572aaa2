//! The throughput harness in smoke mode, as part of the test suite, so the benches cannot rot:
//! every store, its raw limit and its tower-sessions peer, a fraction of a second per row. It
//! needs the local servers (`scripts/services.sh up`); any store error fails it.

mod support;

use support::run;

#[test]
fn throughput_harness_smoke_run_succeeds() {
    let stdout = run(env!("CARGO_BIN_EXE_throughput"), &["--smoke"]);
    for store in ["postgres", "redis"] {
        let near_cache = stdout
            .split("### Near cache: validate")
            .nth(1)
            .unwrap_or_default();
        assert!(
            near_cache.contains(&format!("| {store} | 16 |")),
            "no near-cache validate row for {store}:\n{stdout}"
        );
        let visibility = stdout
            .split("### Near cache: revocation visibility")
            .nth(1)
            .unwrap_or_default();
        assert!(
            visibility.contains(&format!("| {store} | 20 |")),
            "no revocation-visibility row for {store}:\n{stdout}"
        );
    }
    for store in ["memory", "sqlite", "postgres", "mysql", "redis"] {
        assert!(
            stdout.contains(&format!("| {store} | validate |")),
            "no validate row for {store}:\n{stdout}"
        );
    }
}
