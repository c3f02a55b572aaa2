//! The split benches (`commandstats`, `pg_validate`) run briefly as part of the test suite, so
//! they cannot rot: each must finish without error and print every row it measures. They need
//! the local servers (`scripts/services.sh up`; `commandstats` starts its own `redis-server`).

mod support;

use support::run;

#[test]
fn commandstats_measures_every_row() {
    let stdout = run(
        env!("CARGO_BIN_EXE_commandstats"),
        &["--calls", "50", "--rate-seconds", "0.2"],
    );
    for row in [
        "| functions | refresh (rotate) | fcall |",
        "| scripts | revoke | evalsha |",
        "| | bare SET of a record-sized value",
        "a compare-and-swap without the contract's checks) | fcall |",
        "a revoke without the liveness check) | fcall |",
        "| FCALL of the bare compare-and-swap",
        "| RedisStore::rotate (our refresh's store call) |",
        "| RedisStore::create, cap 20, a new user (our login's store call) |",
    ] {
        assert!(stdout.contains(row), "no row `{row}`:\n{stdout}");
    }
}

#[test]
fn pg_validate_measures_every_layer() {
    let stdout = run(env!("CARGO_BIN_EXE_pg_validate"), &["--seconds", "0.1"]);
    for row in [
        "| SessionManager::validate |",
        "| SessionManager::login (cap 20) |",
        "| peer save (sqlx 0.8, encode, upsert) |",
        "| our rotation statement on sqlx 0.9, no decode |",
        "| SessionManager::refresh |",
    ] {
        assert_eq!(
            stdout.matches(row).count(),
            2,
            "row `{row}` is not in both rounds:\n{stdout}"
        );
    }
}
