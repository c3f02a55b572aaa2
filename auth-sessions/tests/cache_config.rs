//! The near cache chosen in configuration (`[cache]`): on for SQLite with a staleness, refused
//! without one, and on Redis (standalone and Cluster) invalidated by `CLIENT TRACKING` across two
//! instances.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use auth_sessions::{ConnectError, LoginRequest, Sessions, SessionsConfig, UserId};

fn parse(text: &str) -> SessionsConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("config does not parse: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_a_staleness_serves_validations_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let config = parse(&format!(
        "[storage]\ntype = \"database\"\nurl = \"{url}\"\n[cache]\nenabled = true\nstaleness = \"500ms\"\n"
    ));
    let sessions = Sessions::start(config).await.unwrap();
    let manager = sessions.manager();
    let login = manager
        .login(&UserId::new("cached").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    manager.validate(&login.session.id).await.unwrap();
    manager.logout(&login.session.id).await.unwrap();
    assert!(
        manager.validate(&login.session.id).await.is_err(),
        "a write through this instance is seen at once"
    );
    sessions.shutdown().await;

    let refused = parse(&format!(
        "[storage]\ntype = \"database\"\nurl = \"{url}\"\n[cache]\nenabled = true\n"
    ));
    let error = Sessions::start(refused).await.unwrap_err();
    assert!(matches!(error, ConnectError::Config(_)), "{error}");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_instances_see_each_others_revocations() {
    let prefix = format!("cachecfg{:x}:", std::process::id());
    two_redis_instances(&format!(
        "[storage]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n[cache]\nenabled = true\n"
    ))
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_instances_see_each_others_revocations_without_a_staleness() {
    if std::env::var("SESSION_TEST_SKIP").is_ok_and(|list| list.contains("redis-cluster")) {
        return;
    }
    let prefix = format!("cachecfgc{:x}:", std::process::id());
    two_redis_instances(&format!(
        "[storage]\ntype = \"redis\"\nkey_prefix = \"{prefix}\"\n[storage.topology]\nmode = \"cluster\"\nnodes = [\"127.0.0.1:7010\", \"127.0.0.1:7011\", \"127.0.0.1:7012\"]\n[cache]\nenabled = true\n"
    ))
    .await;
}

/// Two instances started from the configuration `text`: a revocation through one is refused
/// by the other.
#[cfg(feature = "redis")]
async fn two_redis_instances(text: &str) {
    use std::time::Duration;

    let a = Sessions::start(parse(text)).await.unwrap();
    let b = Sessions::start(parse(text)).await.unwrap();
    let login = a
        .manager()
        .login(&UserId::new("tracked").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    // B reads the session into its cache (twice: the second read is from memory once the
    // tracking connection is up).
    for _ in 0..2 {
        b.manager().validate(&login.session.id).await.unwrap();
    }
    a.manager().logout(&login.session.id).await.unwrap();
    let started = std::time::Instant::now();
    while b.manager().validate(&login.session.id).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "instance B still serves a session A revoked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
