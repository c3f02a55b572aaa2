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
//! | the bare store contract | `store_*` |
//! | production-like inputs on the bare store: confusable user ids, µs boundaries, every field at its bounds, exact written values, a large population, exact purge batches, unknown ids, failed writes | [`scenarios::store_user_ids_compare_exactly`] … [`scenarios::store_failed_writes_change_nothing`] |
//! | purge and the cleanup task | [`scenarios::purge_removes_only_expired`], [`scenarios::purge_at_a_later_instant_finds_newly_expired`], [`scenarios::cleanup_task_purges_in_background`] |
//! | races on a multi-thread runtime, each repeated [`scenarios::ROUNDS`] times with [`scenarios::TASKS`] tasks | `race_*`, among them [`scenarios::race_refresh_default_config_keeps_session`] (two tabs under the default configuration) |
//! | random manager-level sequences against a reference model | `model_based_sequences` ([`model::run`]) |
//! | random store-level sequences, whole records checked after every call | `store_model_sequences` ([`store_model::run`]) |
//! | random concurrent histories checked for linearizability | `store_linearizability` ([`linearizability::run`]) |
//!
//! **Every call is checked whole.** [`Harness::new`] wraps the store in a
//! [`Checked`](checked::Checked): every store call a scenario makes, directly or through a
//! manager, is checked against the contract ([`contract`]), and every record it may have
//! changed is read back and compared field by field, including the fields the call had to leave
//! alone. The race scenarios run unwrapped (the check serializes calls), and the
//! linearizability test covers their answers.
//!
//! **Inputs** come from shared generators ([`generate`]): user ids that differ only by case, a
//! prefix, a trailing space or Unicode normalization; instants at odd microseconds and exactly
//! at, one microsecond before and after each record's expiry; records with every field set at
//! its bounds; ten-year lifetimes; ids that never existed or were purged.
//!
//! ## Knobs for long runs
//!
//! | variable | test | default |
//! |---|---|---|
//! | `PROPTEST_CASES` | `model_based_sequences` | 64 sequences |
//! | [`SESSION_CONFORMANCE_CASES`](store_model::CASES_VAR) | `store_model_sequences` | 128 sequences |
//! | [`SESSION_CONFORMANCE_HISTORIES`](linearizability::HISTORIES_VAR) | `store_linearizability` | 64 histories of 4 tasks × 4 calls |
//!
//! `scripts/catch-rates.sh` runs the faulty-store tests `RUNS` times (20 by default) and prints
//! in how many runs each faulty store was caught.
//!
//! Stores that expire records on their own (Redis) declare
//! [`StoreCapabilities::native_expiry`](session_core::StoreCapabilities); the purge checks
//! then accept fewer deletions, and an expired record may be gone.
//!
//! ## Clauses and the scenarios that fail a store breaking them
//!
//! The contract of [`SessionStore`] and the terms of its module, clause by clause. Each clause
//! names the scenarios or model tests that fail a store breaking it; the faulty stores in
//! `tests/catches_faulty_stores.rs` (one or more per clause, named in the last column) prove it
//! in every run. `Model` is `store_model_sequences`, `Lin` is `store_linearizability`,
//! `Mgr` is `model_based_sequences`; every scenario built with [`Harness::new`] also checks whole
//! records after each call.
//!
//! | id | clause | failed by | faulty stores |
//! |---|---|---|---|
//! | T1 | live at `now` = not revoked and `now` < min(idle, absolute expiry): at the expiry it is expired | [`scenarios::store_boundaries_are_exact`], Model | `TouchIgnoresAbsolute`, `ListAtExpiry`, `TouchAtExpiry`, `RotateAtExpiry` |
//! | T2 | oldest first is ascending `(created_at, id)`, newest first the reverse; the id breaks ties | [`scenarios::list_breaks_ties_by_id`], [`scenarios::list_is_live_newest_first_and_bounded`], [`scenarios::store_large_population`], Model, Mgr | `ListTiesReversed`, `ListOldestFirst` |
//! | T3 | `find` returns a record as stored, revoked or expired; a revoked record is kept until it expires; only an expired record may be forgotten (by purge, or by native expiry) | [`scenarios::logout_revokes_one_session`], [`scenarios::store_written_values_are_exact`], [`scenarios::store_boundaries_are_exact`], Model | `FindHidesRevoked`, `ForgetsRevoked`, `FindHidesExpired` |
//! | T4 | user ids are compared exactly, byte for byte, in every method (caps, listings, revoke-all) | [`scenarios::store_user_ids_compare_exactly`], Model | `LooseUserIds`, `PrefixUserIds`, `NormalizedUserIds` |
//! | E1 | every method is one atomic step: no read-then-write race | Lin, and the clauses C7, U3, R6, V3, A3, L3, S4 | `CreateCapReadThenWrite`, `TouchReadThenWrite`, `RotateReadThenWrite`, `RevokeReadThenWrite`, `RevokeAllReadThenWrite`, `ListReadsTwice`, `SecretReadThenWrite` |
//! | E2 | a failure leaves no half-written state | [`scenarios::store_failed_writes_change_nothing`] | `DuplicateEvictsFirst` |
//! | C1 | the cap counts the user's sessions live at `record.created_at` | [`scenarios::cap_counts_live_sessions_only`], [`scenarios::store_boundaries_are_exact`], Model, Mgr | `IgnoreCap`, `CapCountsAll` |
//! | C2 | in evict mode the `\|L\| - m + 1` oldest live sessions are revoked | [`scenarios::cap_evicts_oldest`], [`scenarios::cap_evicts_several_when_lowered`], [`scenarios::store_large_population`], Model | `EvictsNewest`, `EvictsOne` |
//! | C3 | evicted sessions are revoked with `Evicted` at `record.created_at` | [`scenarios::cap_evicts_oldest`], [`scenarios::store_written_values_are_exact`], Model | `EvictionWrongReason` |
//! | C4 | the outcome lists the evicted sessions, oldest first | [`scenarios::cap_evicts_several_when_lowered`], [`scenarios::store_large_population`], Model | `EvictedNewestFirst` |
//! | C5 | in reject mode at the cap nothing is written and `LimitReached` is returned | [`scenarios::cap_reject_mode_writes_nothing`], Model | `RejectStillEvicts` |
//! | C6 | the record is stored as given: every field, every instant to the microsecond, app data up to the configured or declared bound | [`scenarios::store_every_field_round_trips`], Model | `CreateTruncatesMicros`, `CreateNarrowUserAgent`, `CreateDropsLargeData` |
//! | C7 | counting, evicting and inserting are one step: never more than `m` live, no login fails because of another | [`scenarios::race_logins_respect_cap`], [`scenarios::race_logins_reject_mode`], [`scenarios::race_store_create_cap_one`], [`scenarios::race_eviction_against_logout`], Lin | `CreateCountThenInsert`, `EvictionReportsWhatItPicked`, `CreateCapReadThenWrite` |
//! | C8 | an existing id is `Error::Backend`, and the stored record is untouched | [`scenarios::store_rejects_duplicate_id`], Model | `DuplicateOverwrites` |
//! | U1 | touch of a live record sets `last_active_at = now` and the idle expiry to min(given, absolute), shrinking as well as growing | [`scenarios::store_writes_respect_liveness`], [`scenarios::store_written_values_are_exact`], Model | `TouchNoCap`, `TouchOnlyExtends`, `TouchKeepsLastActive` |
//! | U2 | touch of a record not live changes nothing and answers `false`; it never revives | [`scenarios::store_revoked_stays_revoked`], [`scenarios::store_writes_respect_liveness`], Model | `TouchRevives`, `TouchExpired` |
//! | U3 | touch is atomic | Lin | `TouchReadThenWrite` |
//! | R1 | rotation is a compare-and-swap on the stored hash | [`scenarios::store_rotate_is_compare_and_swap`], [`scenarios::reuse_revokes_session`], Model, Mgr | `RotateWithoutCompare` |
//! | R2 | only a record live at `rotation.now` rotates | [`scenarios::store_writes_respect_liveness`], [`scenarios::store_boundaries_are_exact`], Model | `RotateExpired`, `RotateAtExpiry` |
//! | R3 | a rotation writes previous = current hash, current = next, generation + 1, `rotated_at` = `last_active_at` = `now`, idle = min(given, absolute), every time | [`scenarios::store_written_values_are_exact`], [`scenarios::store_writes_respect_liveness`], Model | `RotateKeepsFirstRotatedAt`, `RotateNoIdleCap`, `RotateKeepsPrevious` |
//! | R4 | `device: Some` replaces the device in the same step; `None` keeps it | [`scenarios::store_rotate_writes_device`], [`scenarios::refresh_records_device`], Model | `RotateIgnoresDevice`, `RotateClearsDevice` |
//! | R5 | a refused rotation answers `Rejected` with the record as stored; a missing one `NotFound` | [`scenarios::store_revoked_stays_revoked`], [`scenarios::store_unknown_ids_answer_nothing`], Model | `RejectedAsNotFound` |
//! | R6 | of concurrent rotations presenting one hash, exactly one wins | [`scenarios::race_store_rotate_exactly_one`], Lin | `RotateReadThenWrite` |
//! | R7 | a generation that cannot grow is `Error::Backend`, nothing written | [`scenarios::store_failed_writes_change_nothing`] | `GenerationWraps` |
//! | V1 | revoke of a live record stores (`now`, reason) exactly and answers `true` | [`scenarios::store_written_values_are_exact`], Model | `RevokeFixedReason`, `RevokeTruncatesInstant` |
//! | V2 | revoke of a record not live answers `false` and keeps the first revocation | [`scenarios::store_written_values_are_exact`], [`scenarios::store_boundaries_are_exact`], Model | `RevokeOverwrites`, `RevokeExpired` |
//! | V3 | revoke is atomic | Lin | `RevokeReadThenWrite` |
//! | A1 | revoke-all revokes every session of the user live at `now` but `keep`, stamping `now` and the reason, and counts them | [`scenarios::logout_others_keeps_current`], [`scenarios::store_written_values_are_exact`], [`scenarios::store_boundaries_are_exact`], Model | `RevokeAllIgnoresKeep`, `RevokeAllStampsLastActive`, `RevokeAllCountsAll`, `RevokeAllRevokesExpired` |
//! | A2 | every session created before the call began is covered, whatever its `created_at` | [`scenarios::store_out_of_order_calls_keep_sessions_covered`] | `RevokeAllCreatedBefore` |
//! | A3 | revoke-all is one step | [`scenarios::race_revoke_all_against_logins`], Lin | `RevokeAllReadThenWrite` |
//! | L1 | list returns the user's sessions live at `now`, newest first | [`scenarios::list_is_live_newest_first_and_bounded`], [`scenarios::logout_revokes_one_session`], Model | `ListIncludesRevoked`, `ListOldestFirst` |
//! | L2 | list returns `min(limit, live)` sessions | [`scenarios::store_list_honours_now_and_limit`], [`scenarios::store_large_population`], Model | `ListIgnoresLimit`, `ListLimitsBeforeFiltering` |
//! | L3 | a listing is one snapshot | [`scenarios::race_list_against_logouts`], Lin | `ListReadsTwice` |
//! | P1 | purge deletes exactly the records whose expiry is at or before `now`, revoked or not, never a live one | [`scenarios::purge_removes_only_expired`], [`scenarios::store_boundaries_are_exact`], [`scenarios::purge_at_a_later_instant_finds_newly_expired`], Model | `PurgeDeletesLive`, `PurgeSparesRevoked`, `PurgeStrictlyBefore`, `PurgeIdleOnly`, `PurgeKeepsFirstInstant` |
//! | P2 | purge deletes at most `batch` | [`scenarios::store_purge_is_exact_in_batches`], Model | `PurgeIgnoresBatch` |
//! | P3 | purge returns how many it deleted | [`scenarios::store_purge_is_exact_in_batches`], Model | `PurgeMiscounts` |
//! | P4 | alone, without native expiry, purge deletes `min(batch, expired)`: fewer than `batch` means none was left | [`scenarios::store_purge_is_exact_in_batches`], Model | `PurgeStopsEarly` |
//! | S1 | `shared_secret` is insert-if-absent then read: never replaced | [`scenarios::store_shared_secret_is_insert_if_absent`], [`scenarios::race_refresh_default_config_keeps_session`] | `SecretLastWriteWins`, `SecretNotStored` |
//! | S2 | a secret never expires and is never purged | [`scenarios::store_shared_secret_is_insert_if_absent`] | `SecretPurged` |
//! | S3 | out-of-bounds names and candidates are `InvalidInput`, nothing stored | [`scenarios::store_shared_secret_is_insert_if_absent`] | `SecretUnchecked` |
//! | S4 | concurrent first calls all return one value | [`scenarios::store_shared_secret_is_insert_if_absent`] | `SecretReadThenWrite` |
//!
//! Not checked by a black-box suite: that a store never turns a backend failure into "not
//! found" (it needs a failing backend: each built-in store's own tests inject failures) and the
//! cost bounds (one lookup per `find`, bounded purges), which the built-in stores measure in
//! their own tests.

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
