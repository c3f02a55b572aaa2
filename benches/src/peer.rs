//! The peers: `tower-sessions` stores doing the equivalent operation.
//!
//! | our operation | tower-sessions |
//! |---|---|
//! | login | `SessionStore::create` |
//! | validate | `SessionStore::load` |
//! | refresh | `SessionStore::save` (a changed expiry) |
//! | revoke | `SessionStore::delete` |
//! | list of a user | no equivalent |
//!
//! Each record holds one entry, the user id, as an app using tower-sessions for login would
//! keep; otherwise 0 bytes of app data, like our sessions in the harness.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use session_core::{Clock, SystemClock};
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;

use crate::error::BenchError;
use crate::ours::{needs_one, next};
use crate::target::{Budget, Op, Target};

/// Lifetime of the peer's records: long enough for a run, short enough that leftovers expire
/// (the tower-sessions Redis store keys carry no prefix to clean up by).
const LIFETIME: time::Duration = time::Duration::minutes(20);

/// A tower-sessions store as a target.
#[derive(Debug)]
pub struct Tower<S> {
    store: S,
    name: &'static str,
    run: String,
    login_budget: Budget,
}

/// Per-task state of [`Tower`]: the records it created.
#[derive(Debug)]
pub struct TowerTask {
    index: usize,
    records: Vec<Record>,
    cursor: usize,
    consumed: usize,
}

fn now() -> OffsetDateTime {
    SystemClock.now()
}

impl<S: SessionStore> Tower<S> {
    fn new(store: S, name: &'static str, run: &str, login_budget: Budget) -> Self {
        Self {
            store,
            name,
            run: run.to_owned(),
            login_budget,
        }
    }
}

impl<S: SessionStore> Tower<S> {
    /// Creates a record for a fresh user of `task` and keeps it, whatever the budget.
    async fn login(&self, op: Op, task: &mut TowerTask) -> Result<(), BenchError> {
        let user = format!("{}-{}-{}", self.run, task.index, task.records.len());
        let mut record = Record {
            id: Id::default(),
            data: HashMap::from([("user_id".to_owned(), serde_json::Value::from(user))]),
            expiry_date: now() + LIFETIME,
        };
        self.store
            .create(&mut record)
            .await
            .map_err(|e| BenchError::new(format!("{}, {op}", self.name), e))?;
        task.records.push(record);
        Ok(())
    }
}

/// tower-sessions' `MemoryStore` (one `tokio::sync::Mutex` around a `HashMap`).
#[must_use]
pub fn tower_memory(run: &str, login_budget: Budget) -> Tower<tower_sessions::MemoryStore> {
    Tower::new(
        tower_sessions::MemoryStore::default(),
        "tower-sessions memory",
        run,
        login_budget,
    )
}

/// tower-sessions' Redis store over a fred pool of 6 connections, as its documentation sets it
/// up.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn tower_redis(
    url: &str,
    run: &str,
    login_budget: Budget,
) -> Result<Tower<RedisStore<Pool>>, BenchError> {
    let ctx = "tower-sessions redis (is it up? scripts/services.sh up)";
    let config = Config::from_url(url).map_err(|e| BenchError::new(ctx, e))?;
    let pool = Pool::new(config, None, None, None, 6).map_err(|e| BenchError::new(ctx, e))?;
    let connect = async {
        let handle = pool.init().await?;
        drop(handle);
        Ok::<_, tower_sessions_redis_store::fred::error::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|e| BenchError::new(ctx, e))?
        .map_err(|e| BenchError::new(ctx, e))?;
    Ok(Tower::new(
        RedisStore::new(pool),
        "tower-sessions redis",
        run,
        login_budget,
    ))
}

/// tower-sessions' sqlx PostgreSQL store on a pool of 10 connections (our database store's
/// default), in `table` of the `public` schema, emptied first.
///
/// # Errors
///
/// When PostgreSQL cannot be reached or the migration fails.
pub async fn tower_postgres(
    url: &str,
    table: &str,
    run: &str,
    login_budget: Budget,
) -> Result<Tower<PostgresStore>, BenchError> {
    let ctx = "tower-sessions postgres (is it up? scripts/services.sh up)";
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    let store = PostgresStore::new(pool.clone())
        .with_schema_name("public")
        .map_err(|e| BenchError::new(ctx, e))?
        .with_table_name(table)
        .map_err(|e| BenchError::new(ctx, e))?;
    store.migrate().await.map_err(|e| BenchError::new(ctx, e))?;
    tower_sessions_sqlx_store::sqlx::query(&format!("TRUNCATE TABLE public.{table}"))
        .execute(&pool)
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    Ok(Tower::new(
        store,
        "tower-sessions postgres",
        run,
        login_budget,
    ))
}

impl<S: SessionStore> Target for Tower<S> {
    type Task = TowerTask;

    fn supports(&self, op: Op) -> bool {
        op != Op::List10
    }

    fn task(&self, index: usize) -> TowerTask {
        TowerTask {
            index,
            records: Vec::new(),
            cursor: 0,
            consumed: 0,
        }
    }

    async fn prepare(&self, op: Op, task: &mut TowerTask) -> Result<(), BenchError> {
        if needs_one(op) && task.records.is_empty() {
            self.login(op, task).await?;
        }
        Ok(())
    }

    async fn step(&self, op: Op, task: &mut TowerTask) -> Result<bool, BenchError> {
        let fail = |e: tower_sessions::session_store::Error| {
            BenchError::new(format!("{}, {op}", self.name), e)
        };
        match op {
            Op::Login => {
                if task.records.len() >= self.login_budget.get() {
                    return Ok(false);
                }
                self.login(op, task).await?;
            }
            Op::Validate => {
                let record = next(&task.records, &mut task.cursor, op)?;
                let loaded = self.store.load(&record.id).await.map_err(fail)?;
                black_box(loaded.ok_or_else(|| {
                    BenchError::new(format!("{}, {op}", self.name), "session not found")
                })?);
            }
            Op::Refresh => {
                let len = task.records.len();
                let slot = task.cursor % len.max(1);
                task.cursor = task.cursor.wrapping_add(1);
                let record = task
                    .records
                    .get_mut(slot)
                    .ok_or_else(|| BenchError::new(op.name(), "no session to refresh"))?;
                record.expiry_date = now() + LIFETIME;
                self.store.save(record).await.map_err(fail)?;
            }
            Op::Revoke => {
                let Some(record) = task.records.get(task.consumed) else {
                    return Ok(false);
                };
                task.consumed += 1;
                self.store.delete(&record.id).await.map_err(fail)?;
            }
            Op::List10 => return Ok(false),
        }
        Ok(true)
    }
}
