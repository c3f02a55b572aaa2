//! Configuration from a file and the environment: layering, the twelve-factor URLs, and errors
//! that name the variable at fault. Each test runs in a `figment::Jail`, which serializes the
//! tests that touch the process environment and restores it afterwards.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::result_large_err,
    reason = "a test fails by panicking; Jail's closures return figment::Error"
)]

use std::time::Duration;

use auth_sessions::{LoadError, SessionsConfig};
use figment::Jail;

/// Runs `test` in a jail whose environment starts empty, so variables of the machine running
/// the tests (a `DATABASE_URL` of CI, say) do not leak in.
fn jailed(test: impl FnOnce(&mut Jail) -> figment::Result<()>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        test(jail)
    });
}

fn load() -> Result<SessionsConfig, LoadError> {
    SessionsConfig::load(None)
}

fn load_err() -> String {
    match load() {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn nothing_set_gives_the_defaults() {
    jailed(|_| {
        let config = load().unwrap();
        assert_eq!(config.storage.kind(), "database");
        assert_eq!(
            config.session.idle_timeout,
            Duration::from_secs(30 * 86_400)
        );
        assert!(config.telemetry.metrics);
        assert!(!config.telemetry.redact_user_ids);
        Ok(())
    });
}

#[test]
fn prefixed_variables_set_nested_keys() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "14d");
        jail.set_env("AUTH_SESSIONS_SESSION__MAX_SESSIONS_PER_USER", "5");
        jail.set_env("AUTH_SESSIONS_SESSION__LIMIT_MODE", "reject");
        jail.set_env("AUTH_SESSIONS_CLEANUP__BATCH_SIZE", "250");
        jail.set_env("AUTH_SESSIONS_TELEMETRY__REDACT_USER_IDS", "true");
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "memory");
        let config = load().unwrap();
        assert_eq!(
            config.session.idle_timeout,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(config.session.max_sessions_per_user, Some(5));
        assert_eq!(config.session.limit_mode, auth_sessions::LimitMode::Reject);
        assert_eq!(config.cleanup.config.batch_size, 250);
        assert!(config.telemetry.redact_user_ids);
        assert_eq!(config.storage.kind(), "memory");
        Ok(())
    });
}

#[test]
fn the_environment_overrides_the_file() {
    jailed(|jail| {
        jail.create_file(
            "sessions.toml",
            r#"
            [session]
            idle_timeout = "7d"
            touch_interval = "10m"

            [storage]
            type = "memory"
            "#,
        )?;
        jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "2d");
        let config = SessionsConfig::load(Some("sessions.toml".as_ref())).unwrap();
        assert_eq!(config.session.idle_timeout, Duration::from_secs(2 * 86_400));
        assert_eq!(config.session.touch_interval, Duration::from_secs(600));
        assert_eq!(config.storage.kind(), "memory");
        // The file may also be named by AUTH_SESSIONS_CONFIG.
        jail.set_env("AUTH_SESSIONS_CONFIG", "sessions.toml");
        let config = load().unwrap();
        assert_eq!(config.session.touch_interval, Duration::from_secs(600));
        Ok(())
    });
}

#[test]
fn database_url_selects_and_configures_the_database() {
    jailed(|jail| {
        jail.set_env("DATABASE_URL", "sqlite://sessions.db?mode=rwc");
        let config = load().unwrap();
        assert_eq!(config.storage.kind(), "database");
        #[cfg(feature = "sqlite")]
        {
            let auth_sessions::StorageConfig::Database(settings) = &config.storage else {
                panic!("not the database: {config:?}");
            };
            assert_eq!(
                settings.url.as_deref(),
                Some("sqlite://sessions.db?mode=rwc")
            );
            // The prefixed variable wins over DATABASE_URL.
            jail.set_env("AUTH_SESSIONS_STORAGE__URL", "sqlite::memory:");
            let config = load().unwrap();
            let auth_sessions::StorageConfig::Database(settings) = &config.storage else {
                panic!("not the database: {config:?}");
            };
            assert_eq!(settings.url.as_deref(), Some("sqlite::memory:"));
        }
        Ok(())
    });
}

#[test]
fn redis_url_selects_redis_and_is_ignored_for_another_type() {
    jailed(|jail| {
        jail.set_env("REDIS_URL", "redis://127.0.0.1:6379/2");
        let config = load().unwrap();
        assert_eq!(config.storage.kind(), "redis");
        // With the type configured as memory, neither URL applies.
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "memory");
        jail.set_env("DATABASE_URL", "sqlite::memory:");
        let config = load().unwrap();
        assert_eq!(config.storage.kind(), "memory");
        // With the type configured as database, DATABASE_URL applies and REDIS_URL does not.
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "database");
        let config = load().unwrap();
        assert_eq!(config.storage.kind(), "database");
        Ok(())
    });
}

#[test]
fn both_urls_without_a_type_is_an_error() {
    jailed(|jail| {
        jail.set_env("DATABASE_URL", "postgres://app@db.internal/app");
        jail.set_env("REDIS_URL", "redis://127.0.0.1:6379");
        assert!(matches!(load(), Err(LoadError::AmbiguousStorage)));
        let message = load_err();
        assert!(message.contains("AUTH_SESSIONS_STORAGE__TYPE"), "{message}");
        Ok(())
    });
}

#[test]
fn an_unparsable_value_names_its_variable() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "soon");
        let message = load_err();
        assert!(
            message.contains("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT") && message.contains("soon"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn a_value_out_of_range_names_its_variable() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_SESSION__REUSE_GRACE", "1h");
        let error = load().unwrap_err();
        let LoadError::Invalid { key, origin, .. } = &error else {
            panic!("not Invalid: {error:?}");
        };
        assert_eq!(key, "session.reuse_grace");
        assert_eq!(
            origin,
            "environment variable AUTH_SESSIONS_SESSION__REUSE_GRACE"
        );
        let message = error.to_string();
        assert!(message.contains("5m"), "the allowed range: {message}");
        Ok(())
    });
}

#[test]
fn an_unknown_key_names_its_variable() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMOUT", "1d");
        let message = load_err();
        assert!(
            message.contains("AUTH_SESSIONS_SESSION__IDLE_TIMOUT") && message.contains("unknown"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn an_error_from_the_file_names_the_file_and_key() {
    jailed(|jail| {
        jail.create_file(
            "bad.toml",
            r#"
            [cleanup]
            batch_size = 0
            "#,
        )?;
        let error = SessionsConfig::load(Some("bad.toml".as_ref())).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("cleanup.batch_size"), "{message}");
        assert!(message.contains("bad.toml"), "{message}");
        Ok(())
    });
}

#[test]
fn a_missing_file_is_an_error() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_CONFIG", "absent.toml");
        assert!(matches!(load(), Err(LoadError::MissingFile(_))));
        assert!(load_err().contains("absent.toml"));
        Ok(())
    });
}

#[cfg(feature = "sqlite")]
#[test]
fn a_bad_database_url_names_database_url() {
    jailed(|jail| {
        jail.set_env("DATABASE_URL", "oracle://db/app");
        let message = load_err();
        assert!(message.contains("DATABASE_URL"), "{message}");
        Ok(())
    });
}

#[cfg(feature = "redis")]
#[test]
fn a_bad_redis_setting_names_its_variable() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "redis");
        jail.set_env("AUTH_SESSIONS_STORAGE__RESPONSE_TIMEOUT", "10m");
        let message = load_err();
        assert!(
            message.contains("AUTH_SESSIONS_STORAGE__RESPONSE_TIMEOUT"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn a_variable_that_is_set_but_empty_counts_as_unset() {
    jailed(|jail| {
        jail.set_env("DATABASE_URL", "");
        jail.set_env("REDIS_URL", "redis://127.0.0.1:6379");
        assert_eq!(load().unwrap().storage.kind(), "redis");
        Ok(())
    });
}

#[test]
fn values_that_look_like_numbers_or_booleans_stay_text_where_text_is_wanted() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "database");
        jail.set_env("AUTH_SESSIONS_STORAGE__TABLE", "sessions2");
        jail.set_env("AUTH_SESSIONS_SESSION__SLIDING_EXPIRATION", "false");
        jail.set_env("AUTH_SESSIONS_SESSION__MAX_LISTED", "42");
        let config = load().unwrap();
        assert!(!config.session.sliding_expiration);
        assert_eq!(config.session.max_listed, 42);
        Ok(())
    });
}

#[cfg(feature = "redis")]
#[test]
fn a_redis_password_of_digits_is_a_string() {
    jailed(|jail| {
        jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "redis");
        jail.set_env("AUTH_SESSIONS_STORAGE__PASSWORD", "12345");
        jail.set_env("AUTH_SESSIONS_STORAGE__KEY_PREFIX", "true");
        jail.set_env("AUTH_SESSIONS_STORAGE__PORT", "6380");
        jail.set_env(
            "AUTH_SESSIONS_STORAGE__TOPOLOGY",
            "{mode=\"cluster\",nodes=[\"127.0.0.1:7000\",\"127.0.0.1:7001\"]}",
        );
        let config = load().unwrap();
        let auth_sessions::StorageConfig::Redis(redis) = &config.storage else {
            panic!("not redis: {config:?}");
        };
        assert_eq!(redis.password.as_deref(), Some("12345"));
        assert_eq!(redis.key_prefix, "true");
        assert_eq!(redis.port, 6380);
        assert!(matches!(
            redis.topology,
            auth_sessions::redis::Topology::Cluster(_)
        ));
        Ok(())
    });
}
