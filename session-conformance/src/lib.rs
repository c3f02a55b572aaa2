//! # session-conformance
//!
//! The suite every session store runs, built-in or not: the same scenarios against any
//! [`SessionStore`], through the [`SessionManager`](session_core::SessionManager) and on the
//! bare store, with time driven by a [`ManualClock`](session_core::ManualClock).
//!
//! ## One line for your store
//!
//! In `tests/conformance.rs` of your crate (with `tokio` as a dev-dependency, features
//! `macros` and `rt-multi-thread`):
//!
//! ```ignore
//! session_conformance::conformance_tests!(async { MyStore::connect_fresh().await });
//! ```
//!
//! `tests/custom_store.rs` in this crate does exactly that for a deliberately small store (one
//! mutex around one map), and `tests/catches_faulty_stores.rs` shows the suite failing stores
//! that break the contract in one place each.
//!
//! The expression is a future that yields a **fresh, isolated** store (its own table, key
//! prefix or namespace); it is evaluated once per test. The macro stamps one
//! `#[tokio::test(flavor = "multi_thread")]` per scenario, so `cargo test` names each one, plus
//! `model_based_sequences`, a property test that runs random operation sequences on your store
//! and on a reference model and compares every answer.
//!
//! ## What it covers
//!
//! | area | scenarios |
//! |---|---|
//! | create, find, list, logout, logout-all, logout-others, password change | [`scenarios::login_creates_session`] … [`scenarios::list_breaks_ties_by_id`] |
//! | per-user cap: eviction order, reject mode | `cap_*` |
//! | idle and absolute expiry, sliding expiry and its throttle | `idle_*`, `sliding_*`, [`scenarios::refresh_extends_idle_expiry`] |
//! | rotation, reuse detection, grace window, malformed tokens | [`scenarios::refresh_rotates_token`] … [`scenarios::malformed_tokens_are_rejected`] |
//! | any former token is reuse; older than the detection depth, not recognised | [`scenarios::former_tokens_trigger_reuse`] |
//! | a made-up secret gets one answer whatever the state, and changes nothing | [`scenarios::unknown_secret_is_refused_without_revoking`], [`scenarios::unknown_secret_reveals_nothing`] |
//! | a refresh records the device; over-long user agents are cut | [`scenarios::refresh_records_device`] |
//! | a lost rotation reply: the retry gets the successor | [`scenarios::lost_reply_retry_gets_successor`] |
//! | bad input | [`scenarios::oversized_input_is_rejected`], [`scenarios::user_id_bounds`] |
//! | the bare store contract | `store_*`, among them [`scenarios::store_rotate_writes_device`] and [`scenarios::store_shared_secret_is_insert_if_absent`] |
//! | purge and the cleanup task | [`scenarios::purge_removes_only_expired`], [`scenarios::purge_at_a_later_instant_finds_newly_expired`], [`scenarios::cleanup_task_purges_in_background`] |
//! | races on a multi-thread runtime, each repeated [`scenarios::ROUNDS`] times with [`scenarios::TASKS`] tasks | `race_*`, among them [`scenarios::race_refresh_default_config_keeps_session`] (two tabs under the default configuration) |
//! | random sequences against a reference model | [`model::run`] |
//!
//! Stores that expire records on their own (Redis) declare
//! [`StoreCapabilities::native_expiry`](session_core::StoreCapabilities); the purge scenarios
//! then check only that live sessions survive.

pub mod checked;
pub mod contract;
pub mod generate;
pub mod harness;
pub mod linearizability;
pub mod model;
pub mod scenarios;
pub mod store_model;

use std::sync::Arc;

use session_core::SessionStore;

pub use harness::Harness;

/// Shares a store as the suite's scenarios take it.
pub fn shared<S: SessionStore>(store: S) -> Arc<dyn SessionStore> {
    Arc::new(store)
}

/// The environment variable listing backends a run opts out of, comma-separated
/// (`SESSION_TEST_SKIP=postgres,redis-cluster`).
pub const OPT_OUT_VAR: &str = "SESSION_TEST_SKIP";

/// `true` when [`OPT_OUT_VAR`] names `backend`. Says so loudly on the process's standard error
/// (not the test harness's captured output), so a skipped backend is never a silent pass.
#[must_use]
pub fn opted_out(backend: Option<&str>) -> bool {
    let Some(backend) = backend else {
        return false;
    };
    let skipped = std::env::var(OPT_OUT_VAR)
        .is_ok_and(|list| list.split(',').any(|name| name.trim() == backend));
    if skipped {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: conformance test for `{backend}`, because {OPT_OUT_VAR} contains it"
        );
    }
    skipped
}

/// Stamps the whole suite for a store: one test per scenario and the model-based property test.
///
/// `$make` is a future expression yielding a fresh, isolated store; it is evaluated once per
/// test. See the crate docs.
///
/// With `opt_out = "name"` first, a run whose [`OPT_OUT_VAR`] lists `name` skips every test
/// of the suite, announcing each skip on standard error; without it, nothing can skip. Use it
/// for stores that need a server, so a machine without that server can opt out explicitly.
#[macro_export]
macro_rules! conformance_tests {
    (opt_out = $backend:literal, $make:expr $(,)?) => {
        $crate::__conformance_tests!(::core::option::Option::Some($backend), $make);
    };
    ($make:expr $(,)?) => {
        $crate::__conformance_tests!(::core::option::Option::None, $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:expr, $make:expr) => {
        $crate::__stamp_scenarios!(
            $backend, $make;
            login_creates_session,
            device_and_data_round_trip,
            unknown_session_is_not_found,
            logout_revokes_one_session,
            logout_all_revokes_every_session,
            logout_others_keeps_current,
            password_change_revokes_sessions,
            list_is_live_newest_first_and_bounded,
            list_breaks_ties_by_id,
            cap_evicts_oldest,
            cap_evicts_several_when_lowered,
            cap_reject_mode_writes_nothing,
            cap_counts_live_sessions_only,
            idle_session_expires,
            sliding_expiration_is_throttled,
            sliding_stops_at_absolute_lifetime,
            sliding_off_never_touches,
            refresh_extends_idle_expiry,
            refresh_rotates_token,
            reuse_revokes_session,
            unknown_secret_is_refused_without_revoking,
            grace_window_tolerates_previous_token,
            grace_window_covers_only_previous_token,
            grace_window_with_key_returns_winners_token,
            former_tokens_trigger_reuse,
            unknown_secret_reveals_nothing,
            refresh_records_device,
            lost_reply_retry_gets_successor,
            malformed_tokens_are_rejected,
            oversized_input_is_rejected,
            user_id_bounds,
            store_rejects_duplicate_id,
            store_rotate_is_compare_and_swap,
            store_writes_respect_liveness,
            store_revoked_stays_revoked,
            store_list_honours_now_and_limit,
            store_out_of_order_calls_keep_sessions_covered,
            store_rotate_writes_device,
            store_shared_secret_is_insert_if_absent,
            store_user_ids_compare_exactly,
            store_every_field_round_trips,
            store_boundaries_are_exact,
            store_written_values_are_exact,
            store_large_population,
            store_purge_is_exact_in_batches,
            store_unknown_ids_answer_nothing,
            store_failed_writes_change_nothing,
            purge_removes_only_expired,
            purge_at_a_later_instant_finds_newly_expired,
            cleanup_task_purges_in_background,
            race_refresh_exactly_one_wins,
            race_refresh_with_grace_keeps_session,
            race_refresh_with_key_all_get_one_token,
            race_refresh_default_config_keeps_session,
            race_store_rotate_exactly_one,
            race_logins_respect_cap,
            race_logins_reject_mode,
            race_revoke_all_against_logins,
            race_logout_against_refresh,
            race_store_create_cap_one,
            race_list_against_logouts,
            race_eviction_against_logout,
        );

        #[test]
        fn model_based_sequences() {
            if $crate::opted_out($backend) {
                return;
            }
            $crate::model::run(|| $make);
        }

        #[test]
        fn store_model_sequences() {
            if $crate::opted_out($backend) {
                return;
            }
            $crate::store_model::run(|| $make);
        }

        #[test]
        fn store_linearizability() {
            if $crate::opted_out($backend) {
                return;
            }
            $crate::linearizability::run(|| $make);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_scenarios {
    ($backend:expr, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if $crate::opted_out($backend) {
                    return;
                }
                let store = $crate::shared($make.await);
                $crate::scenarios::$name(store).await;
            }
        )*
    };
}
