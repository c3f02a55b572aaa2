//! The PostgreSQL store operations, on sea-orm's underlying sqlx pool: every operation is one
//! prepared statement (cached per connection), capped logins and revoke-alls included (through
//! the functions the third migration installs), each in its own implicit transaction.

mod statements;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, PgPool, Postgres, Transaction};
use sea_orm::{DbErr, RuntimeErr};
use session_core::{
    CreateOutcome, Error, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, UserId,
};
use time::OffsetDateTime;

use self::statements::{
    Bound, Find, InsertSharedLock, List, Login, PgStatements, Purge, Revoke, RevokeAll, Rotate,
    SecretInsert, SecretSelect, Touch,
};
use super::{ATTEMPTS, ROTATE_ATTEMPTS, refusal, retry_pause, rotation_contended};
use crate::config::TableName;
use crate::dialect::{DecodeError, Dialect};
use crate::error::{Kind, sqlx_kind, to_error};
use crate::migration::NOT_READ_COMMITTED;
use crate::row::NewRow;

const DIALECT: Dialect = Dialect::Postgres;

/// The PostgreSQL side of a [`DbStore`](crate::DbStore): the sqlx pool under its sea-orm
/// connection and the statements of its table.
#[derive(Clone, Debug)]
pub(crate) struct Pg {
    pool: PgPool,
    sql: Arc<PgStatements>,
    /// Set once a function refused to run outside READ COMMITTED (the server or role defaults
    /// to a stricter level): from then on they run in a transaction begun at READ COMMITTED.
    in_transaction: Arc<AtomicBool>,
}

/// A driver error as sea-orm reports it, for the shared classification.
fn db_err(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
}

fn fail(error: sqlx::Error) -> Error {
    to_error(DIALECT, db_err(error))
}

fn undecodable(error: DecodeError) -> Error {
    Error::backend(DIALECT.name(), error)
}

/// `true` for a deadlock or serialization failure.
fn retryable(error: &sqlx::Error) -> bool {
    sqlx_kind(DIALECT, error) == Kind::Retry
}

/// `true` when the function refused to run because the transaction is not at READ COMMITTED.
fn not_read_committed(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(NOT_READ_COMMITTED))
}

impl Pg {
    /// The PostgreSQL side of a store on `pool` and `table`.
    pub(crate) fn new(pool: PgPool, table: &TableName) -> Self {
        Self {
            pool,
            sql: Arc::new(PgStatements::new(table)),
            in_transaction: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same pool on `table`.
    pub(crate) fn with_table(&self, table: &TableName) -> Self {
        Self::new(self.pool.clone(), table)
    }

    /// Runs `attempt` again after a short pause while the database aborts it as a deadlock
    /// victim or serialization failure (nothing of it was applied), at most [`ATTEMPTS`] times;
    /// the last error otherwise.
    async fn retried<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut tries = 1;
        loop {
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(error) if tries < ATTEMPTS && retryable(&error) => {
                    tracing::debug!(attempt = tries, %error, "statement lost a deadlock; running it again");
                    tokio::time::sleep(retry_pause(tries)).await;
                    tries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Runs an autocommitted write; the rows it changed.
    async fn write(&self, bind: impl Fn() -> Bound) -> Result<u64, Error> {
        Self::retried(|| async { Ok(bind().execute(&self.pool).await?.rows_affected()) })
            .await
            .map_err(fail)
    }

    /// Runs a function statement that must take the user's lock at READ COMMITTED: on its own
    /// (one round trip), or, once the server has shown a stricter default, inside
    /// `BEGIN ISOLATION LEVEL READ COMMITTED` … `COMMIT` (three).
    async fn locked_call(&self, bind: impl Fn() -> Bound) -> Result<PgRow, Error> {
        if !self.in_transaction.load(Ordering::Relaxed) {
            match Self::retried(|| bind().fetch_one(&self.pool)).await {
                Ok(row) => return Ok(row),
                Err(error) if not_read_committed(&error) => {
                    self.in_transaction.store(true, Ordering::Relaxed);
                }
                Err(error) => return Err(fail(error)),
            }
        }
        Self::retried(|| async {
            let mut tx: Transaction<'static, Postgres> = self
                .pool
                .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                .await?;
            let row = bind().fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(row)
        })
        .await
        .map_err(fail)
    }

    pub(crate) async fn create(
        &self,
        record: &SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let row = NewRow::new(record).map_err(undecodable)?;
        let lock = self.sql.user_lock_keys(&record.user_id);
        let Some(max) = limit.max else {
            self.write(|| InsertSharedLock { row, lock }.bind(&self.sql))
                .await?;
            return Ok(CreateOutcome::Created {
                evicted: Vec::new(),
            });
        };
        let login = || {
            Login {
                row,
                max: i64::from(max.get()),
                reject: limit.mode == LimitMode::Reject,
                lock,
            }
            .bind(&self.sql)
        };
        let reply = Login::parse(&self.locked_call(login).await?).map_err(undecodable)?;
        if !reply.inserted {
            return Ok(CreateOutcome::LimitReached);
        }
        Ok(CreateOutcome::Created {
            evicted: reply.evicted,
        })
    }

    pub(crate) async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let row = Find { id }
            .bind(&self.sql)
            .fetch_optional(&self.pool)
            .await
            .map_err(fail)?;
        Find::parse(row.as_ref()).map_err(undecodable)
    }

    pub(crate) async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let touch = || {
            Touch {
                id,
                now,
                idle_expires_at,
            }
            .bind(&self.sql)
        };
        Ok(self.write(touch).await? == 1)
    }

    pub(crate) async fn rotate(&self, rotation: &Rotation) -> Result<RotateOutcome, Error> {
        let swap = || {
            Rotate {
                id: &rotation.id,
                presented: &rotation.presented,
                next: &rotation.next,
                now: rotation.now,
                idle_expires_at: rotation.idle_expires_at,
                device: rotation.device.as_ref(),
            }
            .bind(&self.sql)
        };
        for _ in 0..ROTATE_ATTEMPTS {
            let row = Self::retried(|| swap().fetch_optional(&self.pool))
                .await
                .map_err(fail)?;
            if let Some(rotated) = Rotate::parse(row.as_ref()).map_err(undecodable)? {
                return Ok(RotateOutcome::Rotated(rotated));
            }
            // Refused: the record read now is the answer if it refuses the rotation too. If it
            // would accept it, a concurrent call changed it after the swap (or its generation
            // is exhausted): a record that accepts is no answer for a refusal.
            let Some(record) = self.find(&rotation.id).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            if let Some(refused) = refusal(DIALECT, record, rotation)? {
                return Ok(refused);
            }
        }
        Err(rotation_contended(DIALECT))
    }

    pub(crate) async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        let revoke = || Revoke { id, now, reason }.bind(&self.sql);
        Ok(self.write(revoke).await? == 1)
    }

    pub(crate) async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let lock = self.sql.user_lock_keys(user);
        let revoke_all = || {
            RevokeAll {
                user,
                keep,
                now,
                reason,
                lock,
            }
            .bind(&self.sql)
        };
        let row = self.locked_call(revoke_all).await?;
        RevokeAll::parse(&row).map_err(undecodable)
    }

    pub(crate) async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
        let rows = List { user, now, limit }
            .bind(&self.sql)
            .fetch_all(&self.pool)
            .await
            .map_err(fail)?;
        List::parse(&rows).map_err(undecodable)
    }

    pub(crate) async fn purge_expired(
        &self,
        now: OffsetDateTime,
        batch: NonZeroU32,
    ) -> Result<u64, Error> {
        let batch = i64::from(batch.get());
        self.write(|| Purge { now, batch }.bind(&self.sql)).await
    }

    pub(crate) async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.write(|| {
            SecretInsert {
                name,
                value: candidate,
            }
            .bind(&self.sql)
        })
        .await?;
        let row = SecretSelect { name }
            .bind(&self.sql)
            .fetch_optional(&self.pool)
            .await
            .map_err(fail)?;
        SecretSelect::parse(row.as_ref())
            .map_err(undecodable)?
            .ok_or_else(|| {
                Error::backend(
                    DIALECT.name(),
                    "the shared secret is missing right after it was stored",
                )
            })
    }
}
