//! Shared by the integration tests: where the test databases are, a fresh table (and, for
//! SQLite, a fresh file) per store, and the loud opt-out.
//!
//! A server that cannot be reached makes the test **fail** with the command that starts it.
//! `SESSION_TEST_SKIP=postgres,mysql` (either or both) opts backends out, and says so on stderr.
//! `SESSION_TEST_POSTGRES_URL` and `SESSION_TEST_MYSQL_URL` override the local defaults.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of this module"
)]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "test support: failing and announcing skips is its job"
)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_db::sea_orm::ConnectionTrait;
use session_db::{DbConfig, DbStore, Dialect, TableName};

/// The backends the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in the target directory (several pooled connections, WAL).
    SqliteFile,
    /// An in-memory SQLite database (one connection).
    SqliteMemory,
    /// The PostgreSQL server on 127.0.0.1:5432.
    Postgres,
    /// The MariaDB/MySQL server on 127.0.0.1:3306.
    MySql,
}

impl Backend {
    /// The name used in `SESSION_TEST_SKIP`, `None` for the embedded SQLite.
    pub fn skip_name(self) -> Option<&'static str> {
        match self {
            Self::SqliteFile | Self::SqliteMemory => None,
            Self::Postgres => Some("postgres"),
            Self::MySql => Some("mysql"),
        }
    }

    /// How to start the server.
    pub fn how_to_start(self) -> &'static str {
        match self {
            Self::SqliteFile | Self::SqliteMemory => "(embedded, nothing to start)",
            Self::Postgres => {
                "start it with `scripts/services.sh up` (or `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`)"
            }
            Self::MySql => {
                "start it with `scripts/services.sh up` (or `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`)"
            }
        }
    }

    /// `true` when the run opted this backend out.
    pub fn skipped(self) -> bool {
        let Some(name) = self.skip_name() else {
            return false;
        };
        std::env::var("SESSION_TEST_SKIP")
            .is_ok_and(|list| list.split(',').any(|item| item.trim() == name))
    }

    /// The server URL (or a fresh SQLite URL).
    pub fn url(self) -> String {
        match self {
            Self::SqliteFile => {
                let path = sqlite_dir().join(format!("{}.sqlite3", fresh_name()));
                format!("sqlite://{}?mode=rwc", path.display())
            }
            Self::SqliteMemory => "sqlite::memory:".to_owned(),
            Self::Postgres => std::env::var("SESSION_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
            Self::MySql => std::env::var("SESSION_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
        }
    }
}

/// Where SQLite test files go: inside the target directory, never the source tree. Files left
/// by runs that started over an hour ago are removed the first time a binary asks.
fn sqlite_dir() -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("session-db-tests");
    std::fs::create_dir_all(&dir).unwrap();
    SWEPT.call_once(|| {
        let cutoff = unix_secs().saturating_sub(3600);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let secs = name
                .strip_prefix("sdbt_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if secs.is_some_and(|secs| secs < cutoff) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
    dir
}

/// Seconds since the Unix epoch (test names carry it so stale tables can be recognised).
#[expect(
    clippy::disallowed_methods,
    reason = "names test tables after the real time, not a session clock"
)]
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A table name no other test uses: `sdbt_<unix seconds>_<random>`.
pub fn fresh_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("sdbt_{}_{}", unix_secs(), &random[..12])
}

/// A fresh [`TableName`].
pub fn fresh_table() -> TableName {
    TableName::new(fresh_name()).unwrap()
}

/// The configuration of a fresh, isolated store on `backend`.
pub fn config(backend: Backend) -> DbConfig {
    DbConfig::new()
        .with_url(backend.url())
        .with_table(fresh_name())
        .with_connect_timeout(Duration::from_secs(5))
        .with_acquire_timeout(Duration::from_secs(10))
        .with_max_connections(8)
}

/// Connects with `config` and migrates, failing the test with instructions when `backend` is
/// unreachable.
pub async fn connect(backend: Backend, config: DbConfig) -> DbStore {
    let store = match DbStore::connect_with(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "the {backend:?} test database is unreachable ({error}); {}{}",
            backend.how_to_start(),
            backend
                .skip_name()
                .map(|name| format!(" or opt out with SESSION_TEST_SKIP={name}"))
                .unwrap_or_default()
        ),
    };
    store.migrate().await.unwrap();
    drop_stale_tables(&store).await;
    store
}

/// A fresh, migrated store on `backend`, or `None` (announced on stderr) when the run opted
/// the backend out.
pub async fn store(backend: Backend) -> Option<DbStore> {
    if skip(backend) {
        return None;
    }
    Some(connect(backend, config(backend)).await)
}

/// `true` (announced on the process's stderr, which the test harness does not capture) when
/// the run opted `backend` out.
pub fn skip(backend: Backend) -> bool {
    let skipped = backend.skipped();
    if skipped {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {backend:?} tests, because SESSION_TEST_SKIP contains `{}`",
            backend.skip_name().unwrap_or_default()
        );
    }
    skipped
}

/// A fresh store for the conformance suite (whose macro handles the opt-out itself).
pub async fn conformance_store(backend: Backend) -> DbStore {
    connect(backend, config(backend)).await
}

/// Drops test tables (`sdbt_<secs>_…`) left by runs that started over an hour ago, so the test
/// databases do not grow without bound. Never touches a table of a run still going.
async fn drop_stale_tables(store: &DbStore) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let query = match store.dialect() {
        Dialect::Postgres => {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'sdbt\\_%'"
        }
        Dialect::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'sdbt\\_%'"
        }
        _ => return,
    };
    let db = store.connection();
    let Ok(rows) = db
        .query_all_raw(session_db::sea_orm::Statement::from_string(
            db.get_database_backend(),
            query,
        ))
        .await
    else {
        return;
    };
    let cutoff = unix_secs().saturating_sub(3600);
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let secs = name
            .strip_prefix("sdbt_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if secs.is_some_and(|secs| secs < cutoff) {
            let quoted = match store.dialect() {
                Dialect::MySql => format!("`{name}`"),
                _ => format!("\"{name}\""),
            };
            let _ = db
                .execute_unprepared(&format!("DROP TABLE IF EXISTS {quoted}"))
                .await;
        }
    }
}
