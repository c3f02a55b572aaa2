//! # session-db
//!
//! A [`SessionStore`](session_core::SessionStore) on SQL databases through sea-orm: **SQLite**
//! (the embedded default: a file, or in memory), **PostgreSQL** and **MySQL/MariaDB**, chosen by
//! the connection URL. Every store operation is one SQL statement, or one short transaction
//! where a per-user cap must hold under concurrent logins (and, on MySQL, where a revoke-all
//! must see such a login whole); on PostgreSQL every operation is one statement (the capped
//! login and the revoke-all call functions that the third migration installs). The tables below
//! list exactly what each operation sends.
//!
//! On every database each statement has one typed wrapper that holds its text, binds its
//! arguments in placeholder order and reads its rows. On PostgreSQL the store runs its
//! statements on the sqlx pool under the sea-orm connection, as prepared statements that each
//! pooled connection caches (a repeated operation sends no `Parse`); on SQLite and MySQL it
//! runs them through sea-orm, whose sqlx driver prepares and caches them by text likewise.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! use session_core::{LoginRequest, SessionConfig, SessionManager, UserId};
//! use session_db::DbStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `DbStore::connect_with(DbConfig::new())` opens the default SQLite file instead.
//! let store = DbStore::connect("sqlite::memory:").await?;
//! store.migrate().await?;
//!
//! let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
//! let user = UserId::new("alice")?;
//! let login = manager.login(&user, LoginRequest::new()).await?;
//! manager.validate(&login.session.id).await?;
//! let refreshed = manager.refresh(login.token.expose_secret()).await?;
//! // A retry of the same token within the grace window (30 s) gets the very same successor.
//! let retried = manager.refresh(login.token.expose_secret()).await?;
//! assert_eq!(retried.token.expose_secret(), refreshed.token.expose_secret());
//! manager.logout_all(&user).await?;
//! assert_eq!(manager.list(&user).await?.len(), 0);
//! # Ok(())
//! # }
//! ```
//!
//! `cargo run -p session-db --example quickstart` walks through the same life cycle on an SQLite
//! file and prints each step.
//!
//! ## Features and URLs
//!
//! | cargo feature | database | URL |
//! |---|---|---|
//! | `sqlite` (default) | SQLite 3.35 or later (bundled) | `sqlite://path/file.sqlite3?mode=rwc`, `sqlite::memory:` |
//! | `postgres` | PostgreSQL 11 or later | `postgres://user:pass@host:5432/db` (or `postgresql://`) |
//! | `mysql` | MySQL 8, MariaDB 10.5 or later | `mysql://user:pass@host:3306/db` (or `mariadb://`) |
//!
//! Connect with [`DbStore::connect`] (a URL) or [`DbStore::connect_with`] (a serde-friendly
//! [`DbConfig`]: URL, table, timeouts, pool size); with no URL the store opens
//! [`DEFAULT_SQLITE_URL`], a file in the working directory. Or wrap a sea-orm connection you
//! already have with [`DbStore::new`]. The table name is configurable
//! ([`DbStore::with_table`], [`DbConfig::table`]; default `auth_sessions`) and validated
//! ([`TableName`]), since it is written into SQL.
//!
//! ## Statements per operation
//!
//! Each entry is what one call sends; `BEGIN`/`COMMIT` count as statements. The
//! `statement_counts` test counts them on every database, so adding one fails the build.
//!
//! | operation | SQLite | PostgreSQL | MySQL / MariaDB |
//! |---|---|---|---|
//! | `find` | 1 `SELECT` | 1 | 1 |
//! | `create`, no cap | 1 `INSERT` | 1 (`INSERT … SELECT` that takes the user's advisory lock in shared mode: it waits for a capped login of the user in flight, and a capped login waits for it) | 1 |
//! | `create`, cap, evict oldest | 4: `BEGIN IMMEDIATE`, `UPDATE … RETURNING` (evict), `INSERT`, `COMMIT` | 1: `SELECT … FROM <table>_login(…)`, the login function: the user's advisory lock, then one `WITH` statement that locks the user's live sessions and revokes those past the newest `max - 1`, then the `INSERT` (3 where the server's default isolation is stricter than READ COMMITTED: `BEGIN ISOLATION LEVEL READ COMMITTED`, the call, `COMMIT`) | 5: `BEGIN`, lock row, `SELECT` of the sessions over the cap, `INSERT`, `COMMIT`; 6 when evicting (one more `UPDATE` per 500 evicted, and a `SELECT` of the ones it revoked if a concurrent logout revoked some first) |
//! | `create`, cap, reject mode | 1: `INSERT … SELECT … WHERE count < cap` | 1: the login function, which counts the live sessions it locks and inserts only below the cap (3 as above) | 5; 4 when rejected (`ROLLBACK` instead of `INSERT`, `COMMIT`) |
//! | `touch` | 1 `UPDATE` | 1 | 1 |
//! | `rotate`, won (with or without a device to record) | 1 `UPDATE … RETURNING` | 1 | 2: `SELECT`, `UPDATE` (compare-and-swap on hash and generation) |
//! | `rotate`, rejected | 2: the `UPDATE`, then `SELECT` | 2 | 1 `SELECT`; 3 if another call changed the record between the two |
//! | `revoke` | 1 `UPDATE` | 1 | 1 |
//! | `revoke_all` | 1 `UPDATE` (under the database write lock) | 1: `SELECT <table>_revoke_all(…)`, the revoke-all function: the user's advisory lock (the capped login's), then the `UPDATE` (3 as above) | 4: `BEGIN`, `SELECT … FOR UPDATE` of the user's lock row (creating none), `UPDATE`, `COMMIT` |
//! | `list` | 1 `SELECT` | 1 | 1 |
//! | `purge_expired` | 1 `DELETE` of at most `batch` rows | 1 (the purge lock is taken inside it) | 6: `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`, `BEGIN`, `SELECT` of at most `batch` expired sessions, their `DELETE`, the `DELETE` of their users' lock rows where no session is left, `COMMIT` (4 when nothing expired; one more `DELETE` of each kind per 500 rows or users) |
//! | `shared_secret` | 2: `INSERT … ON CONFLICT DO NOTHING`, `SELECT` | 2 | 2: `INSERT IGNORE`, `SELECT` |
//!
//! A rejected rotation costs more only on a rare race: when the record read after the refused
//! compare-and-swap would accept the rotation (a concurrent call changed it in between, e.g.
//! re-installed the presented hash or extended its expiry), that record is no answer for a
//! refusal, so the swap is tried again: 2 more statements per round (SQLite, PostgreSQL: the
//! `UPDATE` and the `SELECT`; MySQL: the `UPDATE` and the next `SELECT`), at most 8 swaps, then
//! [`Error::Unavailable`](session_core::Error::Unavailable).
//!
//! MySQL and MariaDB cost one more statement on a won rotation because neither has
//! `UPDATE … RETURNING`; the store reads the record, then swaps on `(token_hash, generation)`
//! and builds the returned record from the read and the values it wrote (nothing else can have
//! changed in between: the swap checks the generation). A rotation that carries a device
//! (`Rotation::device`) sets `user_agent`, `ip` and `device_name` in the same `UPDATE`.
//!
//! ## Guarantees
//!
//! | guarantee | how |
//! |---|---|
//! | one winner among concurrent rotations of a token | `UPDATE … WHERE id = ? AND token_hash = ? AND revoked_at IS NULL AND expires_at > now` (MySQL: and `generation = ?`); only the row's new version can match once |
//! | a refused rotation answers a record that refuses it | `RotateOutcome::Rejected(record)` carries a record read within the call that is revoked, expired at the rotation's `now`, or holds another token; a record read that would accept the rotation makes the store swap again (above) |
//! | a generation that cannot grow is refused, nothing written | the swap also requires `generation < 2^63 - 1` (SQLite would otherwise store an overflowing `generation + 1` as a floating-point value; MySQL computes it in the store); such a rotation fails with [`Error::Backend`](session_core::Error::Backend) saying the generation is exhausted, and the record is unchanged |
//! | a revoke-all sees a concurrent capped login whole | it waits for the login's per-user lock before its `UPDATE` (SQLite: the database write lock; PostgreSQL: the same advisory lock, taken by the revoke-all function before its `UPDATE`, a statement of its own whose READ COMMITTED snapshot is therefore taken after the login committed its evictions and its insert; MySQL: a locking read of the user's lock row), so it counts what one serial order of the two gives |
//! | a capped login counts the sessions as they are when it commits | SQLite: the write lock from `BEGIN IMMEDIATE`; PostgreSQL: the login function takes the user's advisory lock (which an uncapped login's `INSERT` takes in shared mode) and only then runs its counting statement, which, as every statement of a `VOLATILE` function at READ COMMITTED, takes a fresh snapshot showing every login that held the lock before; the function refuses to run at a stricter isolation level (where the snapshot would predate the lock wait: SQLSTATE `SDB01`), and the store then calls it in a transaction it begins at READ COMMITTED. The statement locks the user's live sessions (`FOR UPDATE`) before it counts them, so a concurrent revocation, touch or rotation of one is counted as it is at the commit; MySQL: the `SELECT` of the sessions over the cap is a locking read (`FOR UPDATE`: the latest rows, locked with the gaps between them until the commit, so a concurrent touch, rotation, revocation or uncapped login of the user waits; its gap locks can deadlock with other users' logins, and the loser runs again) |
//! | the per-user cap holds under concurrent logins, none fails spuriously | SQLite: the database write lock (`BEGIN IMMEDIATE`); PostgreSQL: `pg_advisory_xact_lock` keyed on the table and the user (32-bit keys from SHA-256), so even a user's first logins queue; MySQL: an `INSERT … ON DUPLICATE KEY UPDATE` on a per-user row of `<table>_user_locks`, held to the commit |
//! | a lost deadlock is not an error | a login transaction or single statement that the database aborted as a deadlock victim (or serialization failure; nothing of it was applied) runs again, at most 8 tries in all, after jittered pauses, then [`Error::Unavailable`](session_core::Error::Unavailable). On MySQL a revoke-all and concurrent capped logins of the same user can deadlock on InnoDB's gap locks; the retry resolves it |
//! | nothing half-written | a failed capped login rolls back its evictions with its insert |
//! | records read back equal to what was written | instants in UTC with microseconds (`timestamptz`, `DATETIME(6)`, SQLite integer microseconds), app data as text, byte for byte. MySQL: instants are bound as `DATETIME` values holding the UTC wall-clock time (MariaDB turns a `TIMESTAMP` parameter past 2038-01-19 into `NULL`), so any instant from year 1000 to 9999 round-trips to the microsecond |
//! | user ids compare exactly | MySQL stores them as `VARBINARY`, so no collation folds case or trailing spaces |
//! | a shared secret is stored once | `INSERT … ON CONFLICT (name) DO NOTHING` (MySQL: `INSERT IGNORE`) on the primary key of `<table>_secrets`, then a read in its own statement, so concurrent first calls from any number of processes all read the one row that won |
//! | MySQL's lock rows hold no user id longer than the user's sessions | the purge deletes, in the transaction that deletes expired sessions, the lock rows of their users who have no session row left; a login that holds the row makes that delete wait, and a login after it recreates the row, so logins still queue on it |
//! | app data too large for the server is refused up front, not sent | MySQL closes the connection on a packet over `max_allowed_packet` (`ER_NET_PACKET_TOO_LARGE`, which the client would see as a dropped connection): the store reads the limit at connect (or before the first record with more than 1 MiB of app data) and refuses larger app data with [`Error::Backend`](session_core::Error::Backend), never retryable, without sending it; the server's own too-large errors (1153, 1162, 1301) are `Backend` too. [`StoreCapabilities::max_app_data_bytes`](session_core::StoreCapabilities::max_app_data_bytes) declares the limit minus 64 KiB (and each dialect's column bound), so `SessionManager::new` refuses a configuration above it |
//! | tokens never at rest in plaintext | only the 32-byte SHA-256 of the secret is stored (`BYTEA`, `BINARY(32)`, `BLOB`) |
//! | an outage is `Unavailable`, in bounded time | connection, pool and I/O errors, server shutdown codes, lock timeouts and SQLite busy become [`Error::Unavailable`](session_core::Error::Unavailable) (with the driver error as source): a refused connection at once, a pool that cannot connect within [`DbConfig::acquire_timeout`], any operation (a server that stopped answering included) within [`DbConfig::operation_timeout`] (10 s by default) |
//! | the store heals itself | the pool drops dead connections and opens new ones; connections idle longer than [`DbConfig::test_idle_after`] are pinged before use |
//! | a store never reads the wall clock | every instant comes from the caller |
//!
//! Errors are classified by kind and code, never by message: sqlx I/O, TLS, pool time-out and
//! closed pool, PostgreSQL SQLSTATE class `08`, `57P01`–`57P03`, `53300`, `55P03`, MySQL errors
//! 1040, 1053, 1205, 1927, 4031 and SQLSTATE `08…`, SQLite `BUSY`/`LOCKED`/`CANTOPEN` are
//! `Unavailable`; everything else the database answers (a duplicate id, a missing table) and rows
//! that do not decode are [`Error::Backend`](session_core::Error::Backend). A malformed URL or
//! table name is a [`ConfigError`](session_core::ConfigError) from `connect`, before any I/O.
//!
//! The first connection ([`DbStore::connect_with`], unless lazy) says what went wrong, told by
//! the step that failed or the driver's error kind and server code, never by message text:
//!
//! | cause | error | message | measured on loopback |
//! |---|---|---|---|
//! | nothing listens on the port | `Unavailable` | `connection refused by <host:port>: …` | under 1 ms |
//! | the host name does not resolve (resolved first, as its own step) | `Unavailable` | ``unknown host `<host>`: …`` | 1 to 4 ms |
//! | the database does not exist (PostgreSQL `3D000`, MySQL 1049) | `Backend` | ``database `<db>` does not exist on <host:port> …`` | 2 ms (MariaDB), 90 ms (PostgreSQL) |
//! | user or password refused (PostgreSQL `28P01`/`28000`, MySQL 1045/1044/1698) | `Backend` | ``access denied for user `<user>` on <host:port>: …`` | under 1 ms (MariaDB), 90 ms (PostgreSQL) |
//! | no answer within `connect_timeout` | `Unavailable` | `no answer from <host:port> within …` | the timeout |
//!
//! The driver's error stays the error's source.
//!
//! ## Schema and migrations
//!
//! The sessions table, `auth_sessions` unless configured, with two indexes:
//!
//! | column | SQLite | PostgreSQL | MySQL / MariaDB |
//! |---|---|---|---|
//! | `id` (primary key) | `TEXT` | `VARCHAR(36) COLLATE "C"` | `CHAR(36)` |
//! | `user_id` | `TEXT` | `VARCHAR(255)` | `VARBINARY(255)` |
//! | `created_at`, `last_active_at`, `idle_expires_at`, `absolute_expires_at`, `expires_at`, and the nullable `rotated_at`, `revoked_at` | `INTEGER` (µs since the epoch) | `TIMESTAMPTZ` | `DATETIME(6)` (UTC) |
//! | `token_hash`, nullable `previous_token_hash` | `BLOB` | `BYTEA` | `BINARY(32)` |
//! | `generation` | `BIGINT` | `BIGINT` | `BIGINT` |
//! | `revoke_reason` | `TEXT` | `VARCHAR(32)` | `VARCHAR(32)` |
//! | `user_agent`, `ip`, `device_name` | `TEXT` | `VARCHAR(512)`, `VARCHAR(45)`, `VARCHAR(255)` | same as PostgreSQL |
//! | `data` (app data, JSON text) | `TEXT` (up to 10^9 bytes) | `TEXT` (up to 1 GB) | `LONGTEXT` (up to 4 GiB; in practice `max_allowed_packet` minus 64 KiB) |
//!
//! `expires_at` is the earlier of the two expiries, kept by every write; liveness is
//! `revoked_at IS NULL AND expires_at > now`. Indexes: `<table>_user_created_idx` on
//! `(user_id, created_at)` for listing, capping and revoking a user's sessions, and
//! `<table>_expires_idx` on `expires_at` for cleanup. MySQL also gets `<table>_user_locks`, one
//! row per user with sessions who logged in under a cap (the row a login locks); the purge
//! deletes a user's row with the user's last session.
//!
//! The second migration adds `<table>_secrets` for
//! [`SessionStore::shared_secret`](session_core::SessionStore::shared_secret) (the manager's
//! rotation key when none is configured): `name` (`VARCHAR(64)`, primary key), `value` (`BLOB`,
//! `BYTEA`, `VARBINARY(1024)`) and `created_at` (set by the database's clock; informational).
//! Secrets are never replaced, listed or purged. On MySQL it also deletes the lock rows of users
//! who have no session left, which earlier versions kept.
//!
//! The third migration installs, on PostgreSQL only, the functions `<table>_login` (a capped
//! login) and `<table>_revoke_all`, so that each is one statement. Existing schemas upgrade
//! with the next [`DbStore::migrate`]; [`schema_sql`] lists every migration's statements.
//!
//! Three ways to migrate:
//!
//! 1. [`DbStore::migrate`] at start-up: applies pending migrations and records them in
//!    `<table>_migrations`; safe to call on every start.
//! 2. Your own `sea-orm-migration` migrator: add [`migrations`]`(&table)` to its list.
//! 3. Your own tooling: [`schema_sql`] returns the DDL for a dialect and table; print it and
//!    apply it like any other migration.
//!
//! ## Cleanup
//!
//! `purge_expired(now, batch)` deletes at most `batch` rows whose expiry has passed, revoked or
//! not, in one statement; [`session_core::spawn_cleanup`] (or
//! [`SessionManager::spawn_cleanup`](session_core::SessionManager::spawn_cleanup)) runs it
//! periodically, backs off on errors and never stops. On PostgreSQL the statement first takes
//! `pg_try_advisory_xact_lock` on the table's purge key ([`DbStore::purge_lock_key`]): with
//! several application instances, one cleans and the others' passes return 0. Rows are picked
//! with `FOR UPDATE SKIP LOCKED`, so a purge never waits on a login.
//!
//! Purging 1 000 000 expired rows beside 1 000 live sessions, measured with
//! `cargo run --release -p session-db --features postgres,mysql --example purge_bench -- 1000000 1000 sqlite postgres mysql`
//! on the project's 2-core machine (shared with other builds while it ran, so treat the figures
//! as orders of magnitude):
//!
//! | database | rows per statement | statements | time | rate | live sessions afterwards |
//! |---|---|---|---|---|---|
//! | SQLite (file, WAL) | 1 000 | 1 001 | 24.6 s | 40 700 rows/s | all 1 000 intact |
//! | PostgreSQL 15 | 1 000 | 1 001 | 12.1 s | 82 800 rows/s | all 1 000 intact |
//! | MariaDB 10.11 | 1 000 | 1 001 | 76.9 s | 13 000 rows/s | all 1 000 intact |
//! | SQLite (file, WAL) | 10 000 | 101 | 34.6 s | 28 900 rows/s | all 1 000 intact |
//! | PostgreSQL 15 | 10 000 | 101 | 24.5 s | 40 700 rows/s | all 1 000 intact |
//!
//! Larger batches did not help; the default cleanup batch (1 000) keeps each statement's locks
//! short.
//!
//! The MariaDB figure predates the lock-row clean-up, which makes MySQL's pass a transaction of
//! six statements instead of one `DELETE`. Measured side by side on 100 000 rows (batch 1 000,
//! debug build, the 2-core machine busy with other builds, two runs each): 4.2 and 5.1 s now,
//! against 1.8 and 4.3 s for the former single statement, so up to about twice the time per row.
//!
//! ## Change notifications (PostgreSQL)
//!
//! [`DbStore::install_change_notifications`] (opt in) adds a trigger that sends
//! `NOTIFY <table>_changed, '<session id>'` for every session row updated or deleted, and
//! [`DbStore::change_listener`] follows them, so a near cache (the `session-cache` crate) evicts
//! its entries within milliseconds of a write by any instance. See [`notify`].
//!
//! ## Testing
//!
//! The tests run the [`session-conformance`](https://docs.rs/session-conformance) suite on each
//! database against real servers, each store on a fresh table. `SESSION_TEST_POSTGRES_URL` and
//! `SESSION_TEST_MYSQL_URL` override the local defaults (`postgres://postgres@127.0.0.1:5432/test`,
//! `mysql://root@127.0.0.1:3306/test`); an unreachable server fails the tests with the command
//! that starts it, unless `SESSION_TEST_SKIP=postgres,mysql` opts it out (said on stderr).

mod config;
mod connect;
mod dialect;
mod error;
pub mod migration;
#[cfg(feature = "postgres")]
pub mod notify;
mod row;
mod stats;
mod store;

pub use config::{DEFAULT_SQLITE_URL, DEFAULT_TABLE, DbConfig, TableName};
pub use dialect::Dialect;
pub use error::ConnectError;
pub use migration::{Migrator, migrations, schema_sql};
#[cfg(feature = "postgres")]
pub use notify::{ChangeEvent, ChangeListener, change_channel, change_notifications_sql};
pub use store::DbStore;

/// Re-exported so applications use the exact sea-orm this crate was built with.
pub use sea_orm;
/// Re-exported for [`Migrator`] and [`migrations`].
pub use sea_orm_migration;
