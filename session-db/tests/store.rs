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
use std::sync::Arc;

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    AppData, ConfigError, CreateOutcome, DeviceInfo, Error, LimitMode, Revocation, RevokeReason,
    RotateOutcome, Rotation, SessionConfig, SessionId, SessionLimit, SessionManager, SessionRecord,
    SessionStore, TokenHash, UserId,
};
use session_db::sea_orm::sea_query::{Alias, IntoIden};
use session_db::sea_orm::{ConnectionTrait, DynIden, Statement};
use session_db::sea_orm_migration::{MigrationTrait, MigratorTraitSelf};
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

/// A rotation with a device stores it in the same step; without one, the stored device stays.
async fn rotation_records_the_device(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let r = record("roamer", NOW);
    store
        .create(r.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let seen = DeviceInfo::new()
        .with_user_agent("elsewhere/2.0")
        .with_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        .with_device_name("laptop");
    let later = NOW + time::Duration::seconds(5);
    let rotation = Rotation {
        id: r.id,
        presented: r.token_hash,
        next: TokenHash::from_bytes([9; 32]),
        now: later,
        idle_expires_at: later + time::Duration::hours(1),
        device: Some(seen.clone()),
    };
    let RotateOutcome::Rotated(rotated) = store.rotate(rotation.clone()).await.unwrap() else {
        panic!("the current hash rotates");
    };
    assert_eq!(rotated.device, seen);
    assert_eq!(store.find(&r.id).await.unwrap().unwrap(), rotated);

    let plain = Rotation {
        presented: rotated.token_hash,
        next: TokenHash::from_bytes([10; 32]),
        device: None,
        ..rotation
    };
    let RotateOutcome::Rotated(again) = store.rotate(plain).await.unwrap() else {
        panic!("the current hash rotates");
    };
    assert_eq!(again.device, seen, "no device given: the stored one stays");
    assert_eq!(again.generation, 2);
    assert_eq!(store.find(&r.id).await.unwrap().unwrap(), again);
}

/// Every store declares its app-data bound; `SessionManager::new` refuses a configuration above
/// it. SQLite's and PostgreSQL's columns hold more than the 16 MiB a configuration may ask
/// for; MySQL's bound is the server's `max_allowed_packet` minus 64 KiB.
async fn app_data_bound_is_declared(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let declared = store.capabilities().max_app_data_bytes.unwrap();
    let most = 16 * 1024 * 1024;
    let store = Arc::new(store);
    if backend == Backend::MySql {
        let packet = usize::try_from(store.max_allowed_packet().unwrap()).unwrap();
        assert_eq!(declared, packet - 64 * 1024);
    } else {
        assert!(declared > most, "{declared}");
        assert_eq!(store.max_allowed_packet(), None);
    }
    let at_bound = SessionConfig::default().with_max_app_data_bytes(declared.min(most));
    SessionManager::new(store.clone(), at_bound).unwrap();
    if declared < most {
        let above = SessionConfig::default().with_max_app_data_bytes(declared + 1);
        let error = SessionManager::new(store, above).unwrap_err();
        assert!(
            matches!(error, ConfigError::ExceedsStore { max, .. } if max == declared),
            "{error:?}"
        );
    }
}

/// The first migration alone, as the previous version of this crate applied it.
struct FirstMigrationOnly(session_db::TableName);

#[async_trait::async_trait]
impl MigratorTraitSelf for FirstMigrationOnly {
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        let mut all = session_db::migrations(&self.0);
        all.truncate(1);
        all
    }

    fn migration_table_name(&self) -> DynIden {
        Alias::new(format!("{}_migrations", self.0)).into_iden()
    }
}

/// A schema made by the previous version (the first migration only) upgrades with `migrate`:
/// sessions stay, shared secrets and (PostgreSQL, whose capped login is a function of the third
/// migration) capped logins work, and on MySQL the lock rows of users without sessions (which
/// that version never removed) are dropped while the others stay.
async fn an_existing_schema_upgrades(backend: Backend) {
    if support::skip(backend) {
        return;
    }
    let store = DbStore::connect_with(support::config(backend))
        .await
        .unwrap();
    FirstMigrationOnly(store.table().clone())
        .up(store.connection(), None)
        .await
        .unwrap();
    let cap = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::EvictOldest);
    let kept = record("kept", NOW);
    if backend == Backend::Postgres {
        let error = store.create(kept.clone(), cap).await.unwrap_err();
        assert!(matches!(error, Error::Backend { .. }), "{error:?}");
        store
            .create(kept.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
    } else {
        store.create(kept.clone(), cap).await.unwrap();
    }
    let error = store.shared_secret("key", &[1; 32]).await.unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    let db = store.connection();
    let locks = format!("`{}_user_locks`", store.table());
    if backend == Backend::MySql {
        db.execute_unprepared(&format!(
            "INSERT INTO {locks} (user_id) VALUES ('ghost'), ('ghost2')"
        ))
        .await
        .unwrap();
    }

    store.migrate().await.unwrap();
    assert_eq!(store.find(&kept.id).await.unwrap(), Some(kept.clone()));
    let later = record("kept", NOW + time::Duration::seconds(1));
    assert_eq!(
        store.create(later, cap).await.unwrap(),
        CreateOutcome::Created { evicted: vec![] }
    );
    assert_eq!(
        store.shared_secret("key", &[1; 32]).await.unwrap(),
        vec![1; 32]
    );
    if backend == Backend::MySql {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT CAST(GROUP_CONCAT(user_id ORDER BY user_id) AS CHAR) FROM {locks}"),
            ))
            .await
            .unwrap()
            .unwrap();
        let left: String = row.try_get_by_index(0).unwrap();
        assert_eq!(left, "kept", "only users with sessions keep a lock row");
    }
}

/// Instants from year 1000 to 9999 (what a MySQL `DATETIME(6)` holds) round-trip to the
/// microsecond, and compare right in the statements: a session that expires in 9999 is live in
/// 2039 (past MariaDB's `TIMESTAMP` range) for `list`, `touch` and `rotate`.
async fn far_instants_round_trip(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let early = datetime!(1000-01-01 0:00:00.000001 UTC);
    let late = datetime!(9999-12-31 23:59:59.999999 UTC);
    let mut written = record("far instants", early);
    written.idle_expires_at = late;
    written.absolute_expires_at = late;
    written.rotated_at = Some(datetime!(2038-01-19 3:14:08.000001 UTC));
    store
        .create(written.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(store.find(&written.id).await.unwrap().unwrap(), written);

    let now = datetime!(2039-06-01 0:00:00.5 UTC);
    let listed = store
        .list(&written.user_id, now, NonZeroUsize::new(5).unwrap())
        .await
        .unwrap();
    assert_eq!(listed, vec![written.clone()]);
    let idle = datetime!(2100-02-28 23:59:59.999999 UTC);
    assert!(store.touch(&written.id, now, idle).await.unwrap());
    let rotation = Rotation {
        id: written.id,
        presented: written.token_hash,
        next: TokenHash::from_bytes([0xEE; 32]),
        now,
        idle_expires_at: late,
        device: None,
    };
    let RotateOutcome::Rotated(rotated) = store.rotate(rotation).await.unwrap() else {
        panic!("a session live until 9999 rotates in 2039");
    };
    assert_eq!(rotated.idle_expires_at, late);
    assert_eq!(rotated.rotated_at, Some(now));
    assert_eq!(store.find(&written.id).await.unwrap().unwrap(), rotated);
}

/// A rotation at the largest generation the column keeps writes nothing and fails with a
/// backend error saying the generation is exhausted; the record reads back unchanged.
async fn exhausted_generation_is_refused(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let mut written = record("exhausted", NOW);
    written.generation = i64::MAX.unsigned_abs();
    store
        .create(written.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let rotation = Rotation {
        id: written.id,
        presented: written.token_hash,
        next: TokenHash::from_bytes([0xAB; 32]),
        now: NOW + time::Duration::seconds(1),
        idle_expires_at: NOW + time::Duration::hours(1),
        device: None,
    };
    let refused = store.rotate(rotation).await;
    let Err(error @ Error::Backend { .. }) = refused else {
        panic!("expected a backend error, got {refused:?}");
    };
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("exhausted"), "{chain}");
    assert_eq!(store.find(&written.id).await.unwrap().unwrap(), written);
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
    rotation_records_the_device,
    app_data_bound_is_declared,
    an_existing_schema_upgrades,
    far_instants_round_trip,
    exhausted_generation_is_refused,
);

/// MySQL: app data above the server's `max_allowed_packet` is refused at once with a
/// non-retryable backend error that says so (the server would close the connection instead of
/// answering), whether the store read the limit at connect or not; the store keeps working. App
/// data right at the declared bound goes through a login and comes back byte for byte.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn mysql_app_data_above_the_packet_limit() {
    let Some(store) = support::store(Backend::MySql).await else {
        return;
    };
    let packet = usize::try_from(store.max_allowed_packet().unwrap()).unwrap();
    let oversized = AppData::from_json(format!("\"{}\"", "x".repeat(packet + 1024))).unwrap();
    // The same pool without what the connect learned: the limit is read before sending.
    let unread = DbStore::new(store.connection().clone())
        .unwrap()
        .with_table(store.table().clone());
    assert_eq!(unread.max_allowed_packet(), None);
    for (label, store) in [("read at connect", &store), ("read on demand", &unread)] {
        let mut r = record("hoarder", NOW);
        r.data = Some(oversized.clone());
        let started = std::time::Instant::now();
        let error = store.create(r, SessionLimit::UNLIMITED).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(error, Error::Backend { .. }), "{label}: {error:?}");
        assert!(!error.is_retryable());
        let message = std::error::Error::source(&error).unwrap().to_string();
        assert!(message.contains("max_allowed_packet"), "{message}");
        assert!(
            took < std::time::Duration::from_secs(3),
            "{label}: {took:?}"
        );
        let fine = record("hoarder", NOW);
        store
            .create(fine.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
        assert_eq!(store.find(&fine.id).await.unwrap(), Some(fine));
    }
    assert_eq!(unread.max_allowed_packet(), Some(packet as u64));

    let bound = store.capabilities().max_app_data_bytes.unwrap();
    let manager = SessionManager::new(
        Arc::new(store.clone()),
        SessionConfig::default().with_max_app_data_bytes(bound),
    )
    .unwrap();
    let largest = AppData::from_json(format!("\"{}\"", "y".repeat(bound - 2))).unwrap();
    assert_eq!(largest.len(), bound);
    let login = manager
        .login(
            &UserId::new("hoarder").unwrap(),
            session_core::LoginRequest::new().with_data(largest.clone()),
        )
        .await
        .unwrap();
    let read = store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(
        read.data.as_ref().map(AppData::as_json),
        Some(largest.as_json())
    );
}

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
