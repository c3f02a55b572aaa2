//! Metrics through the `metrics` facade, read back with a debugging recorder.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use auth_sessions::telemetry::{
    EVICTIONS, LOGINS, PURGE_BATCHES, PURGED, REFRESHES, REUSE_DETECTED, REVOCATIONS, STORE_ERRORS,
    STORE_LATENCY,
};
use auth_sessions::{
    Error, LoginRequest, ManualClock, RotationKey, Sessions, SessionsConfig, StorageConfig, UserId,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

const KEY_B64: &str = "c2VjcmV0LXJvdGF0aW9uLWtleS1vZi10aGlydHktdHdvLWJ5dGVz";

fn memory_config() -> SessionsConfig {
    let mut config = SessionsConfig::new()
        .with_storage(toml::from_str::<StorageConfig>(r#"type = "memory""#).unwrap());
    config.session = config
        .session
        .with_rotation_key(Some(RotationKey::from_base64(KEY_B64).unwrap()))
        .with_reuse_grace(Duration::from_secs(10))
        .with_max_sessions_per_user(Some(2));
    config.cleanup.enabled = false;
    config
}

fn counter(snapshot: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _)| key.kind() == MetricKind::Counter && key.key().name() == name)
        .filter(|(key, _)| {
            labels.iter().all(|(k, v)| {
                key.key()
                    .labels()
                    .any(|label| label.key() == *k && label.value() == *v)
            })
        })
        .map(|(_, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

fn histogram_samples(
    snapshot: &[(CompositeKey, DebugValue)],
    name: &str,
    operation: &str,
) -> usize {
    snapshot
        .iter()
        .filter(|(key, _)| key.kind() == MetricKind::Histogram && key.key().name() == name)
        .filter(|(key, _)| {
            key.key()
                .labels()
                .any(|label| label.key() == "operation" && label.value() == operation)
        })
        .map(|(_, value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn with_recorder<T>(run: impl FnOnce() -> T) -> (T, Vec<(CompositeKey, DebugValue)>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    let value = metrics::with_local_recorder(&recorder, run);
    let snapshot = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    (value, snapshot)
}

#[test]
fn metrics_count_what_happened() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let user = UserId::new("carol-metrics").unwrap();
    let ((), snapshot) = with_recorder(|| {
        runtime.block_on(async {
            let clock = Arc::new(ManualClock::new(auth_sessions::Clock::now(
                &auth_sessions::SystemClock,
            )));
            let sessions = Sessions::builder(memory_config())
                .clock(clock.clone())
                .start()
                .await
                .unwrap();
            let manager = sessions.manager();
            // Three logins with a cap of two: one eviction.
            let first = manager.login(&user, LoginRequest::new()).await.unwrap();
            clock.advance(Duration::from_secs(1));
            manager.login(&user, LoginRequest::new()).await.unwrap();
            clock.advance(Duration::from_secs(1));
            let third = manager.login(&user, LoginRequest::new()).await.unwrap();
            assert_eq!(third.evicted, vec![first.session.id]);
            // Refresh, grace retry, second refresh, reuse.
            let a = manager.refresh(third.token.expose_secret()).await.unwrap();
            manager.refresh(third.token.expose_secret()).await.unwrap();
            manager.refresh(a.token.expose_secret()).await.unwrap();
            assert!(manager.refresh(third.token.expose_secret()).await.is_err());
            // A refresh of an evicted session's token: revoked.
            assert!(matches!(
                manager.refresh(first.token.expose_secret()).await,
                Err(Error::Revoked { .. })
            ));
            // Logout of all: the one live session left.
            assert_eq!(manager.logout_all(&user).await.unwrap(), 1);
            // A purge after everything expired deletes the three records.
            clock.advance(Duration::from_secs(400 * 86_400));
            let purged = auth_sessions::purge_all_expired(
                manager.store().as_ref(),
                manager.now(),
                std::num::NonZeroU32::new(2).unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(purged, 3);
            sessions.shutdown().await;
        });
    });
    assert_eq!(counter(&snapshot, LOGINS, &[("outcome", "ok")]), 3);
    assert_eq!(counter(&snapshot, REFRESHES, &[("outcome", "ok")]), 2);
    assert_eq!(counter(&snapshot, REFRESHES, &[("outcome", "grace")]), 1);
    assert_eq!(
        counter(&snapshot, REFRESHES, &[("outcome", "reuse_detected")]),
        1
    );
    assert_eq!(counter(&snapshot, REFRESHES, &[("outcome", "revoked")]), 1);
    assert_eq!(counter(&snapshot, REUSE_DETECTED, &[]), 1);
    assert_eq!(counter(&snapshot, EVICTIONS, &[]), 1);
    assert_eq!(counter(&snapshot, REVOCATIONS, &[("reason", "evicted")]), 1);
    assert_eq!(
        counter(&snapshot, REVOCATIONS, &[("reason", "reuse_detected")]),
        1
    );
    assert_eq!(
        counter(&snapshot, REVOCATIONS, &[("reason", "logout_all")]),
        1
    );
    assert_eq!(counter(&snapshot, STORE_ERRORS, &[]), 0);
    // Batches of two: 2 + 1 deleted, so two batches.
    assert_eq!(counter(&snapshot, PURGED, &[("store", "memory")]), 3);
    assert_eq!(counter(&snapshot, PURGE_BATCHES, &[("store", "memory")]), 2);
    assert_eq!(histogram_samples(&snapshot, STORE_LATENCY, "create"), 3);
    // Four refreshes reached the store's rotate (the fifth was refused as revoked there too).
    assert_eq!(histogram_samples(&snapshot, STORE_LATENCY, "rotate"), 5);
    assert_eq!(histogram_samples(&snapshot, STORE_LATENCY, "revoke_all"), 1);
}

#[test]
fn metrics_can_be_turned_off() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let user = UserId::new("dave-quiet").unwrap();
    let ((), snapshot) = with_recorder(|| {
        runtime.block_on(async {
            let sessions = Sessions::builder(memory_config())
                .metrics(false)
                .start()
                .await
                .unwrap();
            let login = sessions
                .manager()
                .login(&user, LoginRequest::new())
                .await
                .unwrap();
            sessions
                .manager()
                .refresh(login.token.expose_secret())
                .await
                .unwrap();
            sessions.shutdown().await;
        });
    });
    assert!(snapshot.is_empty(), "metrics recorded: {snapshot:?}");
}

#[test]
fn store_errors_are_counted_by_kind() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ((), snapshot) = with_recorder(|| {
        runtime.block_on(async {
            let store: Arc<dyn auth_sessions::SessionStore> = Arc::new(
                auth_sessions::InstrumentedStore::new(Arc::new(session_memory::MemoryStore::new())),
            );
            // An invalid shared-secret name is refused by the store: an invalid_input error.
            assert!(store.shared_secret("bad name!", b"x").await.is_err());
        });
    });
    assert_eq!(
        counter(
            &snapshot,
            STORE_ERRORS,
            &[("operation", "shared_secret"), ("kind", "invalid_input")]
        ),
        1
    );
}

/// A store that is down: every failed call is counted by kind, and the login by its outcome.
#[cfg(feature = "postgres")]
#[test]
fn a_store_that_is_down_is_counted_as_unavailable() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let user = UserId::new("erin-down").unwrap();
    let ((), snapshot) = with_recorder(|| {
        runtime.block_on(async {
            // Nothing listens on port 1; `lazy` starts without connecting.
            let mut config: SessionsConfig = toml::from_str(
                r#"
                migrate = false
                [storage]
                type = "database"
                url = "postgres://postgres@127.0.0.1:1/test"
                lazy = true
                acquire_timeout = "200ms"
                "#,
            )
            .unwrap();
            config.session = config
                .session
                .with_rotation_key(Some(RotationKey::from_base64(KEY_B64).unwrap()));
            config.cleanup.enabled = false;
            let sessions = Sessions::start(config).await.unwrap();
            let login = sessions.manager().login(&user, LoginRequest::new()).await;
            assert!(matches!(login, Err(Error::Unavailable { .. })), "{login:?}");
            sessions.shutdown().await;
        });
    });
    assert_eq!(counter(&snapshot, LOGINS, &[("outcome", "unavailable")]), 1);
    assert_eq!(
        counter(
            &snapshot,
            STORE_ERRORS,
            &[
                ("store", "postgres"),
                ("operation", "create"),
                ("kind", "unavailable")
            ]
        ),
        1
    );
    assert_eq!(histogram_samples(&snapshot, STORE_LATENCY, "create"), 1);
}
