//! [`DbStore`]: the [`SessionStore`] on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! This module holds what the dialects share (the store's handle, its bounds and retries, and
//! the operations that run the same on SQLite and MySQL, through the shared statements of
//! [`statements`]); each dialect's own logic lives in its module, with its own statements:
//! [`sqlite`], [`postgres`] (every operation on the sqlx pool, one prepared statement each)
//! and [`mysql`].

mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod sqlite;
#[cfg(test)]
mod statement_tests;
mod statements;

pub(crate) use self::mysql::PACKET_MARGIN;

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement};
use sea_orm_migration::MigratorTraitSelf;
use session_core::{
    ConfigError, CreateOutcome, Error, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, check_shared_secret_args,
};
use time::OffsetDateTime;

use self::statements::{
    Find, Insert, List, Revoke, RevokeAll, SecretInsert, SecretSelect, Statements, Touch,
};
use crate::config::{DbConfig, TableName};
use crate::dialect::{DecodeError, Dialect};
use crate::error::{ConnectError, Kind, decode_error, kind, to_error};
use crate::migration::Migrator;
use crate::row::NewRow;

/// The largest app data each dialect's `data` column keeps: SQLite's default `SQLITE_MAX_LENGTH`
/// (10^9 bytes), PostgreSQL's 1 GB bound on a field, MySQL's `LONGTEXT` (2^32 - 1 bytes).
const fn column_bound(dialect: Dialect) -> u64 {
    match dialect {
        Dialect::Sqlite => 1_000_000_000,
        Dialect::Postgres => (1 << 30) - 1,
        Dialect::MySql => (1 << 32) - 1,
    }
}

/// The default bound on one store operation.
pub(crate) const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times in all a statement or login transaction that the database aborted as a
/// deadlock victim (or serialization failure) is run before [`Error::Unavailable`] is returned.
pub(crate) const ATTEMPTS: u32 = 8;

/// How many compare-and-swaps a rotation tries in all before [`Error::Unavailable`], when each
/// lost one is followed by a read showing a record that would accept it (a concurrent call
/// changed the record in between, each time).
pub(crate) const ROTATE_ATTEMPTS: u32 = 8;

/// The pause before attempt `attempt + 1`: grows with the attempt, with up to 5 ms of jitter so
/// two transactions that deadlocked do not collide again in step.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 5_000;
    Duration::from_millis(5 * u64::from(attempt)) + Duration::from_micros(jitter)
}

/// A session store on a SQL database through sea-orm: SQLite (the embedded default), PostgreSQL,
/// or MySQL/MariaDB, chosen by the connection.
///
/// Cloning is cheap (the pool is shared). See the [crate docs](crate) for the statements each
/// operation sends and the guarantees.
///
/// # Examples
///
/// ```
/// use session_db::{DbStore, TableName};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = DbStore::connect("sqlite::memory:")
///     .await?
///     .with_table(TableName::new("sessions")?);
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DbStore {
    db: DatabaseConnection,
    dialect: Dialect,
    table: TableName,
    /// SQLite and MySQL: the statement texts of the store's table.
    sql: Arc<Statements>,
    /// PostgreSQL: the sqlx pool under `db` and the typed statements every operation runs.
    #[cfg(feature = "postgres")]
    pg: Option<postgres::Pg>,
    operation_timeout: Option<Duration>,
    /// MySQL: the server's `max_allowed_packet`, once read (at connect, or before the first
    /// statement whose app data is above 1 MiB).
    max_packet: Arc<std::sync::OnceLock<u64>>,
}

impl fmt::Debug for DbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbStore")
            .field("dialect", &self.dialect)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DbStore {
    /// A store on an existing sea-orm connection, using the table `auth_sessions`.
    ///
    /// The pool's settings are the caller's; with SQLite in memory keep exactly one connection
    /// that never expires, since the database lives only as long as it.
    ///
    /// On MySQL the server's `max_allowed_packet` is not known yet: it is read before the first
    /// record with more than 1 MiB of app data, and until then
    /// [`capabilities`](SessionStore::capabilities) declares only the column's bound.
    /// [`DbStore::connect_with`] reads it at connect.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] if the connection's backend is not one this crate knows, or is
    /// PostgreSQL without a sqlx pool under it (a mock connection, or a build without the
    /// `postgres` feature).
    pub fn new(db: DatabaseConnection) -> Result<Self, ConfigError> {
        let dialect = Dialect::from_backend(db.get_database_backend())?;
        let table = TableName::default();
        #[cfg(feature = "postgres")]
        let pg = match (&db.inner, dialect) {
            (sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_), _) => Some(
                postgres::Pg::new(db.get_postgres_connection_pool().clone(), &table),
            ),
            (_, Dialect::Postgres) => return Err(no_pg_pool()),
            _ => None,
        };
        #[cfg(not(feature = "postgres"))]
        if dialect == Dialect::Postgres {
            return Err(no_pg_pool());
        }
        Ok(Self {
            sql: Arc::new(Statements::new(dialect, &table)),
            #[cfg(feature = "postgres")]
            pg,
            db,
            dialect,
            table,
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            max_packet: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Uses `table` instead of `auth_sessions`.
    #[must_use]
    pub fn with_table(mut self, table: TableName) -> Self {
        self.sql = Arc::new(Statements::new(self.dialect, &table));
        #[cfg(feature = "postgres")]
        if let Some(pg) = &mut self.pg {
            *pg = pg.with_table(&table);
        }
        self.table = table;
        self
    }

    /// Bounds every store operation: past `timeout` (which includes waiting for a connection,
    /// lock waits and deadlock retries) it fails with [`Error::Unavailable`]. `None` leaves
    /// operations unbounded (only the pool's acquire timeout applies). Default: 10 s.
    ///
    /// A write cut off this way may still have been applied by the database, as with any
    /// timeout: the caller sees a retryable error either way.
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Connects to `url` with the other settings at their defaults (see [`DbConfig`]).
    ///
    /// # Errors
    ///
    /// See [`DbStore::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(DbConfig::new().with_url(url)).await
    }

    /// Validates `config`, opens a pool and, unless [`DbConfig::lazy`], one connection within
    /// [`DbConfig::connect_timeout`]. Does not migrate: call [`DbStore::migrate`].
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for an invalid configuration (a malformed URL included);
    /// [`ConnectError::Store`] with [`Error::Unavailable`] when the database cannot be reached in
    /// time, or [`Error::Backend`] when it refuses the connection.
    pub async fn connect_with(config: DbConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let table = TableName::new(config.table.as_str())?;
        let connected = crate::connect::connect(&config).await?;
        let store = Self::new(connected.db)?
            .with_table(table)
            .with_operation_timeout(config.operation_timeout);
        if let Some(packet) = connected.max_allowed_packet {
            let _ = store.max_packet.set(packet);
        }
        Ok(store)
    }

    /// MySQL: the server's `max_allowed_packet` in bytes, as read at connect (not lazily) or
    /// later before a statement with large app data; `None` before that, and on the other
    /// databases. [`SessionStore::capabilities`] declares app data up to this minus 64 KiB.
    #[must_use]
    pub fn max_allowed_packet(&self) -> Option<u64> {
        self.max_packet.get().copied()
    }

    /// The largest app data this store accepts, in bytes: the `data` column's bound and, on
    /// MySQL once known, `max_allowed_packet` minus a 64 KiB margin for the rest of the
    /// statement.
    fn app_data_bound(&self) -> u64 {
        let column = column_bound(self.dialect);
        match self.max_packet.get() {
            Some(packet) if self.dialect == Dialect::MySql => {
                column.min(packet.saturating_sub(PACKET_MARGIN))
            }
            _ => column,
        }
    }

    /// Creates or upgrades the schema (see [`crate::migration`]). Safe to call on every start:
    /// applied migrations are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] or [`Error::Backend`] from the database.
    pub async fn migrate(&self) -> Result<(), Error> {
        Migrator::new(self.table.clone())
            .up(&self.db, None)
            .await
            .map_err(|e| self.error(e))
    }

    /// The sea-orm connection, to share the pool or run your own statements.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The database dialect.
    #[must_use]
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The sessions table.
    #[must_use]
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The text whose hash keys the PostgreSQL advisory lock that
    /// [`purge_expired`](SessionStore::purge_expired) holds while it deletes:
    /// `pg_try_advisory_xact_lock(hashtextextended(<key>, 0))`. Another process that holds it
    /// makes a purge pass return 0.
    #[must_use]
    pub fn purge_lock_key(&self) -> String {
        format!("session-db:purge:{}", self.table)
    }

    /// Closes the pool; later operations fail with [`Error::Unavailable`].
    ///
    /// # Errors
    ///
    /// The driver's error, if closing failed.
    pub async fn close(&self) -> Result<(), Error> {
        self.db.close_by_ref().await.map_err(|e| self.error(e))
    }

    /// Runs one store operation within [`DbStore::with_operation_timeout`].
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(timeout) = self.operation_timeout else {
            return operation.await;
        };
        match tokio::time::timeout(timeout, operation).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Error::unavailable(
                self.dialect.name(),
                OperationTimedOut(timeout),
            )),
        }
    }

    fn error(&self, error: DbErr) -> Error {
        to_error(self.dialect, error)
    }

    /// The error of a row that does not decode.
    fn undecodable(&self, error: DecodeError) -> Error {
        decode_error(self.dialect, error)
    }

    /// Runs one autocommitted write, again if the database aborted it as a deadlock victim
    /// (nothing of it was applied then), at most [`ATTEMPTS`] times in all.
    async fn write(&self, statement: &Statement) -> Result<u64, Error> {
        let mut attempt = 1;
        loop {
            match self.db.execute_raw(statement.clone()).await {
                Ok(done) => return Ok(done.rows_affected()),
                Err(error) => self.retry_or_fail(error, &mut attempt).await?,
            }
        }
    }

    /// [`DbStore::write`] for an `UPDATE … RETURNING` of at most one row.
    async fn write_returning(&self, statement: &Statement) -> Result<Option<QueryResult>, Error> {
        let mut attempt = 1;
        loop {
            match self.db.query_one_raw(statement.clone()).await {
                Ok(row) => return Ok(row),
                Err(error) => self.retry_or_fail(error, &mut attempt).await?,
            }
        }
    }

    /// `Ok` (after a short pause) when `error` is a deadlock or serialization failure and
    /// attempts are left; the classified error otherwise.
    async fn retry_or_fail(&self, error: DbErr, attempt: &mut u32) -> Result<(), Error> {
        if *attempt < ATTEMPTS && kind(self.dialect, &error) == Kind::Retry {
            tracing::debug!(attempt = *attempt, %error, "statement lost a deadlock; running it again");
            tokio::time::sleep(retry_pause(*attempt)).await;
            *attempt += 1;
            return Ok(());
        }
        Err(self.error(error))
    }

    /// Reads a record by id on `conn` (the pool, or a transaction).
    async fn find_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &SessionId,
    ) -> Result<Option<SessionRecord>, Error> {
        let row = conn
            .query_one_raw(Find { id }.statement(&self.sql))
            .await
            .map_err(|e| self.error(e))?;
        Find::parse(self.dialect, row.as_ref()).map_err(|e| self.undecodable(e))
    }
}

/// What a rotation refused by the compare-and-swap answers, given the record read after it:
/// `Rejected(record)` when the record indeed refuses the rotation (not live at `rotation.now`,
/// or another current token), [`Error::Backend`] when it would accept it but its generation
/// cannot grow, and `None` when it would accept it (it changed between the swap and the read,
/// so the swap is tried again).
pub(crate) fn refusal(
    dialect: Dialect,
    record: SessionRecord,
    rotation: &Rotation,
) -> Result<Option<RotateOutcome>, Error> {
    if !record.is_live(rotation.now) || record.token_hash != rotation.presented {
        return Ok(Some(RotateOutcome::Rejected(record)));
    }
    if i64::try_from(record.generation).map_or(true, |generation| generation == i64::MAX) {
        return Err(generation_exhausted(dialect, record.generation));
    }
    Ok(None)
}

/// The error of a rotation whose record's generation cannot grow.
pub(crate) fn generation_exhausted(dialect: Dialect, generation: u64) -> Error {
    Error::backend(dialect.name(), GenerationExhausted(generation))
}

/// The error of a rotation that lost every compare-and-swap to concurrent changes.
pub(crate) fn rotation_contended(dialect: Dialect) -> Error {
    Error::unavailable(dialect.name(), RotationContended(ROTATE_ATTEMPTS))
}

/// The store on PostgreSQL: `DbStore::new` made its sqlx side, or refused the connection.
fn no_pg_pool() -> ConfigError {
    ConfigError::Store(
        "a PostgreSQL store needs a sqlx PostgreSQL pool (session-db's `postgres` feature)"
            .to_owned(),
    )
}

/// Returns from the calling operation with `$call` when the store is on PostgreSQL (whose
/// operations all live in [`postgres`]).
macro_rules! on_postgres {
    ($self:ident, |$pg:ident| $call:expr) => {
        #[cfg(feature = "postgres")]
        if let Some($pg) = &$self.pg {
            return $call.await;
        }
    };
}

/// A rotation of a record whose generation cannot grow in the signed 64-bit column.
#[derive(Debug, thiserror::Error)]
#[error(
    "the session's generation is exhausted: {0} cannot grow in the signed 64-bit column; \
     nothing was written"
)]
struct GenerationExhausted(u64);

/// Every compare-and-swap of a rotation lost to a concurrent change that left the record
/// accepting the presented token again.
#[derive(Debug, thiserror::Error)]
#[error(
    "the rotation lost {0} compare-and-swaps in a row to concurrent changes of the session; \
     nothing was written"
)]
struct RotationContended(u32);

/// The operation did not finish within the store's operation timeout.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the database within {0:?}")]
struct OperationTimedOut(Duration);

/// A reject-mode login's outcome from the rows its insert wrote.
pub(crate) fn created_or_rejected(inserted: u64) -> CreateOutcome {
    if inserted == 1 {
        CreateOutcome::Created {
            evicted: Vec::new(),
        }
    } else {
        CreateOutcome::LimitReached
    }
}

/// An error inside a transaction (a capped login, a MySQL purge pass): a driver error
/// (classified later, maybe retried) or one already turned into the workspace error.
pub(crate) enum TxError {
    Db(DbErr),
    Store(Error),
}

impl From<DbErr> for TxError {
    fn from(error: DbErr) -> Self {
        Self::Db(error)
    }
}

/// The store steps, each bounded by [`DbStore::bounded`] in the [`SessionStore`] impl below.
impl DbStore {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name(), session = %record.id))]
    async fn op_create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        on_postgres!(self, |pg| pg.create(&record, limit));
        self.check_packet(&record).await?;
        let row = NewRow::new(&record).map_err(|e| self.undecodable(e))?;
        let Some(max) = limit.max else {
            self.write(&Insert { row }.statement(&self.sql)).await?;
            return Ok(CreateOutcome::Created {
                evicted: Vec::new(),
            });
        };
        let keep_newest = i64::from(max.get() - 1);
        let mut attempt = 1;
        loop {
            let outcome = if self.dialect == Dialect::MySql {
                self.create_capped_mysql(row, keep_newest, limit.mode).await
            } else {
                self.create_capped_sqlite(row, max, limit.mode).await
            };
            match outcome {
                Ok(outcome) => return Ok(outcome),
                Err(TxError::Store(error)) => return Err(error),
                Err(TxError::Db(error)) => self.retry_or_fail(error, &mut attempt).await?,
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name(), session = %id))]
    async fn op_find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        on_postgres!(self, |pg| pg.find(id));
        self.find_on(&self.db, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name(), session = %id))]
    async fn op_touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        on_postgres!(self, |pg| pg.touch(id, now, idle_expires_at));
        let touch = Touch {
            id,
            now,
            idle_expires_at,
        };
        let touched = self.write(&touch.statement(&self.sql)).await?;
        Ok(touched == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name(), session = %rotation.id))]
    async fn op_rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        on_postgres!(self, |pg| pg.rotate(&rotation));
        if self.dialect == Dialect::MySql {
            return self.rotate_mysql(rotation).await;
        }
        self.rotate_sqlite(&rotation).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name(), session = %id))]
    async fn op_revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        on_postgres!(self, |pg| pg.revoke(id, now, reason));
        let revoked = self
            .write(&Revoke { id, now, reason }.statement(&self.sql))
            .await?;
        Ok(revoked == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name()))]
    async fn op_revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        on_postgres!(self, |pg| pg.revoke_all(user, keep, now, reason));
        let revoke_all = RevokeAll {
            user,
            keep,
            now,
            reason,
        }
        .statement(&self.sql);
        if self.dialect == Dialect::Sqlite {
            // The statement runs under the database write lock, after any capped login's
            // `BEGIN IMMEDIATE` transaction.
            return self.write(&revoke_all).await;
        }
        let mut attempt = 1;
        loop {
            match self.revoke_all_locked(user, &revoke_all).await {
                Ok(revoked) => return Ok(revoked),
                Err(error) => self.retry_or_fail(error, &mut attempt).await?,
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name()))]
    async fn op_list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        on_postgres!(self, |pg| pg.list(user, now, limit));
        let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
        let rows = self
            .db
            .query_all_raw(List { user, now, limit }.statement(&self.sql))
            .await
            .map_err(|e| self.error(e))?;
        List::parse(self.dialect, &rows).map_err(|e| self.undecodable(e))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name()))]
    async fn op_purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        on_postgres!(self, |pg| pg.purge_expired(now, batch));
        if self.dialect == Dialect::MySql {
            let mut attempt = 1;
            loop {
                match self.purge_mysql(now, batch).await {
                    Ok(purged) => return Ok(purged),
                    Err(TxError::Store(error)) => return Err(error),
                    Err(TxError::Db(error)) => self.retry_or_fail(error, &mut attempt).await?,
                }
            }
        }
        self.purge_sqlite(now, batch).await
    }
}

impl DbStore {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = self.dialect.name()))]
    async fn op_shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        on_postgres!(self, |pg| pg.shared_secret(name, candidate));
        let insert = SecretInsert {
            name,
            value: candidate,
        };
        self.write(&insert.statement(&self.sql)).await?;
        let row = self
            .db
            .query_one_raw(SecretSelect { name }.statement(&self.sql))
            .await
            .map_err(|e| self.error(e))?;
        SecretSelect::parse(row.as_ref())
            .map_err(|e| self.error(e))?
            .ok_or_else(|| {
                Error::backend(
                    self.dialect.name(),
                    "the shared secret is missing right after it was stored",
                )
            })
    }
}

#[async_trait::async_trait]
impl SessionStore for DbStore {
    /// The backend's name, and the largest app data it keeps (see
    /// [`DbStore::max_allowed_packet`]): on MySQL, once the server's `max_allowed_packet` is
    /// known, that minus 64 KiB; otherwise the `data` column's own bound.
    fn capabilities(&self) -> StoreCapabilities {
        let bound = usize::try_from(self.app_data_bound()).unwrap_or(usize::MAX);
        StoreCapabilities::new(self.dialect.name()).with_max_app_data_bytes(bound)
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        self.bounded(self.op_create(record, limit)).await
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.bounded(self.op_find(id)).await
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        self.bounded(self.op_touch(id, now, idle_expires_at)).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        self.bounded(self.op_rotate(rotation)).await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.bounded(self.op_revoke(id, now, reason)).await
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        self.bounded(self.op_revoke_all(user, keep, now, reason))
            .await
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.bounded(self.op_list(user, now, limit)).await
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        self.bounded(self.op_purge_expired(now, batch)).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        check_shared_secret_args(name, candidate)?;
        self.bounded(self.op_shared_secret(name, candidate)).await
    }
}
