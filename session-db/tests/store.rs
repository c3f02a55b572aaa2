//! What the conformance suite does not see: exact round trips of every column, byte-exact user
//! ids, the rollback of a failed login, migrations, and configuration errors. Each test runs on
//! every backend this build has.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod support;

use session_conformance::scenarios::record_at;

use std::net::{IpAddr, Ipv6Addr};
use std::num::{NonZeroU32, NonZeroUsize};

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    AppData, ConfigError, DeviceInfo, Error, LimitMode, Revocation, RevokeReason, SessionId,
    SessionLimit, SessionRecord, SessionStore, TokenHash, UserId,
};
use session_db::{ConnectError, DbConfig, DbStore};
use support::Backend;

const NOW: OffsetDateTime = datetime!(2030-06-15 12:34:56.789012 UTC);

fn record(user: &str, at: OffsetDateTime) -> SessionRecord {
    record_at(&UserId::new(user).unwrap(), at)
}

/// A record with every optional column set and awkward values in each.
fn full_record() -> SessionRecord {
    let mut r = record("Ünïcödé user ✓", NOW);
    r.last_active_at = NOW + time::Duration::microseconds(1);
    r.generation = 41;
    r.token_hash = TokenHash::from_bytes(std::array::from_fn(|i| u8::try_from(i).unwrap()));
    r.previous_token_hash = Some(TokenHash::from_bytes([0; 32]));
    r.rotated_at = Some(NOW + time::Duration::microseconds(999_999));
    r.revoked = Some(Revocation {
        at: NOW + time::Duration::seconds(2),
        reason: RevokeReason::PasswordChanged,
    });
    r.device = DeviceInfo::new()
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) \u{1F600} ' \" \\ ; --")
        .with_ip(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)))
        .with_device_name("name with trailing spaces   ");
    r.data = Some(
        AppData::from_json("{ \"b\" : [1, 2.50, null],\n\t\"a\": \"\\u00e9 é 𝄞\", \"z\":{} }")
            .unwrap(),
    );
    r
}

async fn every_column_round_trips(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let written = full_record();
    store
        .create(written.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let read = store.find(&written.id).await.unwrap().unwrap();
    assert_eq!(read, written);
    assert_eq!(
        read.data.as_ref().unwrap().as_json(),
        written.data.as_ref().unwrap().as_json(),
        "app data must come back byte for byte"
    );
    assert_eq!(read.created_at.offset(), time::UtcOffset::UTC);

    let plain = record("plain", NOW);
    store
        .create(plain.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(store.find(&plain.id).await.unwrap().unwrap(), plain);
}

async fn user_ids_compare_exactly(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    for name in ["alice", "Alice", "alice ", "ALICE"] {
        store
            .create(record(name, NOW), SessionLimit::UNLIMITED)
            .await
            .unwrap();
    }
    let limit = NonZeroUsize::new(10).unwrap();
    for name in ["alice", "Alice", "alice ", "ALICE"] {
        let user = UserId::new(name).unwrap();
        let listed = store.list(&user, NOW, limit).await.unwrap();
        assert_eq!(listed.len(), 1, "{name:?}");
        assert_eq!(listed.first().map(|r| &r.user_id), Some(&user));
    }
    let revoked = store
        .revoke_all(
            &UserId::new("alice").unwrap(),
            None,
            NOW,
            RevokeReason::LogoutAll,
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1, "revoke-all must not reach `Alice` or `alice `");
}

async fn failed_login_rolls_back_its_evictions(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let old = record("bob", NOW);
    store
        .create(old.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    // A login at the cap whose insert fails (the id exists already): the eviction it made in the
    // same step must be undone.
    let mut clash = record("bob", NOW + time::Duration::seconds(1));
    clash.id = old.id;
    let cap = SessionLimit::new(NonZeroU32::MIN, LimitMode::EvictOldest);
    let error = store.create(clash, cap).await.unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    let after = store.find(&old.id).await.unwrap().unwrap();
    assert_eq!(after, old, "the eviction was not rolled back");
    assert!(after.is_live(NOW + time::Duration::seconds(1)));
}

async fn migrate_is_idempotent_and_tables_are_separate(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let other = store.clone().with_table(support::fresh_table());
    other.migrate().await.unwrap();
    let r = record("carol", NOW);
    store
        .create(r.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    assert!(other.find(&r.id).await.unwrap().is_none());
    let user = UserId::new("carol").unwrap();
    let limit = NonZeroUsize::new(5).unwrap();
    assert!(other.list(&user, NOW, limit).await.unwrap().is_empty());
    assert_eq!(store.list(&user, NOW, limit).await.unwrap().len(), 1);
}

async fn missing_table_is_a_backend_error(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let unmigrated = store.with_table(support::fresh_table());
    let error = unmigrated
        .find(&SessionId::generate(&UserId::new("x").unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some());
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_file {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Backend::SqliteFile).await; })*
        }
        mod sqlite_memory {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Backend::SqliteMemory).await; })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Backend::Postgres).await; })*
        }
        #[cfg(feature = "mysql")]
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Backend::MySql).await; })*
        }
    };
}

on_every_backend!(
    every_column_round_trips,
    user_ids_compare_exactly,
    failed_login_rolls_back_its_evictions,
    migrate_is_idempotent_and_tables_are_separate,
    missing_table_is_a_backend_error,
);

#[tokio::test]
async fn malformed_urls_are_config_errors() {
    for url in [
        "postgres://user@host:notaport/db",
        "mysql://[::1/db",
        "ftp://example.com/db",
        "sqlite://db?mode=sideways",
        "",
    ] {
        let error = DbStore::connect(url).await.unwrap_err();
        assert!(
            matches!(error, ConnectError::Config(ConfigError::Store(_))),
            "{url:?}: {error:?}"
        );
    }
    let error = DbStore::connect_with(DbConfig::new().with_table("Bad Name"))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Config(_)), "{error:?}");
}

#[tokio::test]
async fn default_url_names_an_sqlite_file_and_a_file_url_connects() {
    assert_eq!(
        DbConfig::new().effective_url(),
        "sqlite://auth_sessions.sqlite3?mode=rwc"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sessions.sqlite3").display()
    );
    let store = DbStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let r = record("dave", NOW);
    store
        .create(r.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    store.close().await.unwrap();
    // A second store on the same file sees the session: it is on disk.
    let reopened = DbStore::connect(&url).await.unwrap();
    assert_eq!(reopened.find(&r.id).await.unwrap().unwrap(), r);
    assert!(matches!(
        store.find(&r.id).await.unwrap_err(),
        Error::Unavailable { .. }
    ));
}
