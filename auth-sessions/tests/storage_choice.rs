//! Choosing the store in configuration, as an app does at start-up.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use auth_sessions::{
    ConfigError, ConnectError, LoginRequest, Sessions, SessionsConfig, StorageConfig, UserId,
};

fn parse(text: &str) -> SessionsConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("config does not parse: {e}"))
}

fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{prefix}_{:08x}", n & 0xffff_ffff)
}

async fn exercise(sessions: &Sessions) {
    let manager = sessions.manager();
    let user = UserId::new(unique("user")).unwrap();
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    manager.validate(&login.session.id).await.unwrap();
    let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(refreshed.session.generation, 1);
    assert_eq!(manager.logout_all(&user).await.unwrap(), 1);
}

#[test]
fn no_storage_section_means_the_database() {
    let config = parse("");
    assert_eq!(config.storage.kind(), "database");
    assert!(matches!(
        StorageConfig::default(),
        StorageConfig::Database(_)
    ));
    assert!(config.migrate.0);
    assert!(config.cleanup.enabled);
}

#[test]
fn every_type_parses_with_its_settings() {
    let db = parse(
        r#"
        [storage]
        type = "database"
        url = "postgres://app@127.0.0.1/app"
        table = "my_sessions"
        "#,
    );
    assert_eq!(db.storage.kind(), "database");
    let redis = parse(
        r#"
        [storage]
        type = "redis"
        host = "redis.internal"
        port = 6380
        key_prefix = "auth:"
        "#,
    );
    assert_eq!(redis.storage.kind(), "redis");
    let memory = parse(
        r#"
        [storage]
        type = "memory"

        [cleanup]
        interval = "30s"
        batch_size = 500
        "#,
    );
    assert_eq!(memory.storage.kind(), "memory");
    assert_eq!(memory.cleanup.config.interval, Duration::from_secs(30));
    assert_eq!(memory.cleanup.config.batch_size, 500);
}

#[test]
fn unknown_types_and_fields_are_errors() {
    let err = toml::from_str::<SessionsConfig>("[storage]\ntype = \"mongo\"").unwrap_err();
    assert!(err.to_string().contains("mongo"), "{err}");
    assert!(toml::from_str::<SessionsConfig>("[sesion]\nidle_timeout = \"1d\"").is_err());
    let stray = toml::from_str::<SessionsConfig>("[storage]\ntype = \"memory\"\nurl = \"x\"");
    assert!(stray.is_err(), "the memory store takes no settings");
}

#[tokio::test]
async fn bad_policies_fail_before_any_connection() {
    let config = parse(
        r#"
        [session]
        idle_timeout = "0s"

        [storage]
        type = "database"
        url = "postgres://nobody@127.0.0.1:1/none"
        "#,
    );
    let started = std::time::Instant::now();
    let err = Sessions::start(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Config(ConfigError::OutOfRange {
                field: "idle_timeout",
                ..
            })
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "nothing was contacted"
    );
}

#[tokio::test]
async fn malformed_database_url_is_a_config_error() {
    let config = parse("[storage]\ntype = \"database\"\nurl = \"not a url at all\"");
    let err = Sessions::start(config).await.unwrap_err();
    assert!(matches!(err, ConnectError::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_sqlite_default_works_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let config = parse(&format!("[storage]\ntype = \"database\"\nurl = \"{url}\""));
    let sessions = Sessions::start(config).await.unwrap();
    exercise(&sessions).await;
    assert!(
        sessions.cleanup().is_some(),
        "the database needs the cleanup task"
    );
    assert_eq!(sessions.manager().store().capabilities().name, "sqlite");
    sessions.shutdown().await;
}

#[cfg(feature = "memory")]
#[tokio::test(flavor = "multi_thread")]
async fn memory_store_works() {
    let sessions = Sessions::start(parse("[storage]\ntype = \"memory\""))
        .await
        .unwrap();
    exercise(&sessions).await;
    assert!(
        sessions.cleanup().is_some(),
        "the memory store is swept by the cleanup task"
    );
}

#[cfg(not(feature = "memory"))]
#[tokio::test]
async fn a_store_not_compiled_in_names_its_feature() {
    let err = Sessions::start(parse("[storage]\ntype = \"memory\""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`memory` feature"), "{err}");
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn redis_not_compiled_in_names_its_feature() {
    let err = Sessions::start(parse("[storage]\ntype = \"redis\"\nhost = \"x\""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`redis` feature"), "{err}");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn postgres_works() {
    let url = std::env::var("SESSION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let table = unique("umbrella");
    let config = parse(&format!(
        "[storage]\ntype = \"database\"\nurl = \"{url}\"\ntable = \"{table}\""
    ));
    let sessions = Sessions::start(config).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is needed: start it with `scripts/services.sh up` ({e})")
    });
    exercise(&sessions).await;
    assert_eq!(sessions.manager().store().capabilities().name, "postgres");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn redis_works_without_a_cleanup_task() {
    let prefix = format!("{}:", unique("umbrella"));
    let config = parse(&format!(
        "[storage]\ntype = \"redis\"\nhost = \"127.0.0.1\"\nport = 6379\nkey_prefix = \"{prefix}\""
    ));
    let sessions = Sessions::start(config).await.unwrap_or_else(|e| {
        panic!("Redis at 127.0.0.1:6379 is needed: start it with `scripts/services.sh up` ({e})")
    });
    exercise(&sessions).await;
    assert!(sessions.cleanup().is_none(), "Redis expires keys itself");
}
