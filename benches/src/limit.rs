//! The limits: the same work as a store operation, done raw on the same substrate with the same
//! client. No store on that substrate can be faster.
//!
//! | substrate | login | validate | refresh, revoke |
//! |---|---|---|---|
//! | memory | `DashMap::insert` | `DashMap::get` + copy out | `DashMap::get_mut` + write |
//! | Redis | `SET key value PX ttl` | `GET key` | `SET key value XX PX ttl` |
//! | SQL | `INSERT` of one row | primary-key `SELECT` | primary-key `UPDATE` |
//!
//! Values have the size of what the store keeps per session, with 0 bytes of app data.
//! None of them has an equivalent of listing a user's sessions.

use std::hint::black_box;
use std::mem::size_of;
use std::sync::Arc;

use dashmap::DashMap;
use redis::aio::MultiplexedConnection;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use session_core::{SessionId, SessionRecord, UserId};

use crate::error::BenchError;
use crate::ours::{needs_one, next};
use crate::target::{Budget, Op, Target};

/// Keys a task created at login, and where it is in them.
#[derive(Debug)]
pub struct KeyTask<K, C> {
    index: usize,
    keys: Vec<K>,
    cursor: usize,
    consumed: usize,
    client: C,
}

impl<K, C> KeyTask<K, C> {
    fn new(index: usize, client: C) -> Self {
        Self {
            index,
            keys: Vec::new(),
            cursor: 0,
            consumed: 0,
            client,
        }
    }

    /// The next key to revoke, each key once.
    fn consume(&mut self) -> Option<&K> {
        let key = self.keys.get(self.consumed)?;
        self.consumed += 1;
        Some(key)
    }
}

/// A fresh session id for the `n`-th login of task `index`, made the way the manager makes
/// one (so every target pays the same id cost).
fn fresh_id(run: &str, index: usize, n: usize) -> Result<SessionId, BenchError> {
    let user = UserId::new(format!("{run}-{index}-{n}")).map_err(BenchError::with("user id"))?;
    Ok(SessionId::generate(&user))
}

const RECORD_SIZE: usize = size_of::<SessionRecord>();

/// The memory limit: a bare [`DashMap`] keyed by session id, holding values of the size of a
/// [`SessionRecord`].
#[derive(Debug)]
pub struct RawMemory {
    map: Arc<DashMap<SessionId, [u8; RECORD_SIZE]>>,
    run: String,
    login_budget: Budget,
}

impl RawMemory {
    /// An empty map.
    #[must_use]
    pub fn new(run: &str, login_budget: Budget) -> Self {
        Self {
            map: Arc::new(DashMap::new()),
            run: run.to_owned(),
            login_budget,
        }
    }

    /// The bytes of one value.
    #[must_use]
    pub const fn value_size() -> usize {
        RECORD_SIZE
    }

    /// Inserts a value under a fresh key and returns the key (for flatness measurements).
    ///
    /// # Errors
    ///
    /// Never in practice (a user id built from `run` is always valid).
    pub fn insert(&self, n: usize) -> Result<SessionId, BenchError> {
        let id = fresh_id(&self.run, usize::MAX, n)?;
        self.map.insert(id, [0; RECORD_SIZE]);
        Ok(id)
    }

    fn login(&self, task: &mut KeyTask<SessionId, ()>) -> Result<(), BenchError> {
        let id = fresh_id(&self.run, task.index, task.keys.len())?;
        self.map.insert(id, [0; RECORD_SIZE]);
        task.keys.push(id);
        Ok(())
    }

    /// Reads a value (copying it out), as a validate would.
    #[must_use]
    pub fn get(&self, id: &SessionId) -> Option<[u8; RECORD_SIZE]> {
        self.map.get(id).map(|value| *value)
    }
}

impl Target for RawMemory {
    type Task = KeyTask<SessionId, ()>;

    fn supports(&self, op: Op) -> bool {
        op != Op::List10
    }

    fn task(&self, index: usize) -> Self::Task {
        KeyTask::new(index, ())
    }

    async fn prepare(&self, op: Op, task: &mut Self::Task) -> Result<(), BenchError> {
        if needs_one(op) && task.keys.is_empty() {
            self.login(task)?;
        }
        Ok(())
    }

    async fn step(&self, op: Op, task: &mut Self::Task) -> Result<bool, BenchError> {
        let missing = || BenchError::new(format!("raw memory, {op}"), "key not found");
        match op {
            Op::Login => {
                if task.keys.len() >= self.login_budget.get() {
                    return Ok(false);
                }
                self.login(task)?;
            }
            Op::Validate => {
                let id = next(&task.keys, &mut task.cursor, op)?;
                black_box(self.get(id).ok_or_else(missing)?);
            }
            Op::Refresh => {
                let id = next(&task.keys, &mut task.cursor, op)?;
                let mut value = self.map.get_mut(id).ok_or_else(missing)?;
                value.iter_mut().take(40).for_each(|b| *b = 1);
            }
            Op::Revoke => {
                let Some(id) = task.consume() else {
                    return Ok(false);
                };
                let mut value = self.map.get_mut(id).ok_or_else(missing)?;
                value.iter_mut().take(16).for_each(|b| *b = 2);
            }
            Op::List10 => return Ok(false),
        }
        Ok(true)
    }
}

/// The Redis limit: bare `GET`/`SET` of a value of the store's record size, over the connection
/// type the store uses for a standalone server ([`MultiplexedConnection`]).
pub struct RawRedis {
    conn: MultiplexedConnection,
    prefix: String,
    value: Vec<u8>,
    ttl_ms: u64,
    run: String,
    login_budget: Budget,
}

impl std::fmt::Debug for RawRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRedis")
            .field("prefix", &self.prefix)
            .field("value", &self.value.len())
            .finish_non_exhaustive()
    }
}

impl RawRedis {
    /// Connects to `url`; keys start with `prefix`, values are `value_len` bytes.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached.
    pub async fn connect(
        url: &str,
        prefix: &str,
        value_len: usize,
        run: &str,
        login_budget: Budget,
    ) -> Result<Self, BenchError> {
        let client = redis::Client::open(url).map_err(BenchError::with("raw redis"))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(BenchError::with(
                "raw redis (is it up? scripts/services.sh up)",
            ))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            value: vec![7; value_len],
            ttl_ms: 3_600_000,
            run: run.to_owned(),
            login_budget,
        })
    }
}

impl RawRedis {
    async fn login(
        &self,
        op: Op,
        task: &mut KeyTask<String, MultiplexedConnection>,
    ) -> Result<(), BenchError> {
        let id = fresh_id(&self.run, task.index, task.keys.len())?;
        let key = format!("{}{id}", self.prefix);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(&self.value)
            .arg("PX")
            .arg(self.ttl_ms)
            .query_async(&mut task.client)
            .await
            .map_err(|e| BenchError::new(format!("raw redis, {op}"), e))?;
        task.keys.push(key);
        Ok(())
    }
}

impl Target for RawRedis {
    type Task = KeyTask<String, MultiplexedConnection>;

    fn supports(&self, op: Op) -> bool {
        op != Op::List10
    }

    fn task(&self, index: usize) -> Self::Task {
        KeyTask::new(index, self.conn.clone())
    }

    async fn prepare(&self, op: Op, task: &mut Self::Task) -> Result<(), BenchError> {
        if needs_one(op) && task.keys.is_empty() {
            self.login(op, task).await?;
        }
        Ok(())
    }

    async fn step(&self, op: Op, task: &mut Self::Task) -> Result<bool, BenchError> {
        let fail = |e: redis::RedisError| BenchError::new(format!("raw redis, {op}"), e);
        let missing = || BenchError::new(format!("raw redis, {op}"), "key not found");
        match op {
            Op::Login => {
                if task.keys.len() >= self.login_budget.get() {
                    return Ok(false);
                }
                self.login(op, task).await?;
            }
            Op::Validate => {
                let key = next(&task.keys, &mut task.cursor, op)?;
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut task.client)
                    .await
                    .map_err(fail)?;
                black_box(value.ok_or_else(missing)?);
            }
            Op::Refresh | Op::Revoke => {
                let key = if op == Op::Refresh {
                    next(&task.keys, &mut task.cursor, op)?
                } else {
                    let Some(key) = task.keys.get(task.consumed) else {
                        return Ok(false);
                    };
                    task.consumed += 1;
                    key
                };
                let set: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(&self.value)
                    .arg("XX")
                    .arg("PX")
                    .arg(self.ttl_ms)
                    .query_async(&mut task.client)
                    .await
                    .map_err(fail)?;
                set.ok_or_else(missing)?;
            }
            Op::List10 => return Ok(false),
        }
        Ok(true)
    }
}

/// The SQL limit: one-row `INSERT`, primary-key `SELECT` and `UPDATE` on a table of our own
/// (`id`, a body of the store's row size, an expiry), over the store's own pool: on PostgreSQL
/// the sqlx pool under the sea-orm connection, with prepared statements, as the store runs
/// them; elsewhere through sea-orm, as the store does.
#[derive(Debug)]
pub struct RawSql {
    db: DatabaseConnection,
    pg: Option<RawPg>,
    table: String,
    body: Vec<u8>,
    run: String,
    login_budget: Budget,
}

/// PostgreSQL: the three statements on the sqlx pool.
#[derive(Debug)]
struct RawPg {
    pool: sea_orm::sqlx::PgPool,
    insert: Arc<str>,
    select: Arc<str>,
    update: Arc<str>,
}

impl RawPg {
    fn new(db: &DatabaseConnection, table: &str) -> Option<Self> {
        if db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        Some(Self {
            pool: db.get_postgres_connection_pool().clone(),
            insert: format!("INSERT INTO {table} (id, body, expires_at) VALUES ($1, $2, $3)")
                .into(),
            select: format!("SELECT id, body, expires_at FROM {table} WHERE id = $1").into(),
            update: format!("UPDATE {table} SET body = $1, expires_at = $2 WHERE id = $3").into(),
        })
    }

    fn query(sql: &Arc<str>) -> PgQuery {
        sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(Arc::clone(sql)))
    }

    async fn step(
        &self,
        op: Op,
        id: String,
        body: &[u8],
        expires: i64,
    ) -> Result<(), sea_orm::sqlx::Error> {
        use sea_orm::sqlx::Row as _;
        match op {
            Op::Login => {
                Self::query(&self.insert)
                    .bind(id)
                    .bind(body.to_vec())
                    .bind(expires)
                    .execute(&self.pool)
                    .await?;
            }
            Op::Validate => {
                let row = Self::query(&self.select)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                let id: String = row.try_get(0)?;
                let body: Vec<u8> = row.try_get(1)?;
                let expires: i64 = row.try_get(2)?;
                black_box((id, body, expires));
            }
            Op::Refresh | Op::Revoke => {
                let done = Self::query(&self.update)
                    .bind(body.to_vec())
                    .bind(expires)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() != 1 {
                    return Err(sea_orm::sqlx::Error::RowNotFound);
                }
            }
            Op::List10 => {}
        }
        Ok(())
    }
}

type PgQuery = sea_orm::sqlx::query::Query<
    'static,
    sea_orm::sqlx::Postgres,
    sea_orm::sqlx::postgres::PgArguments,
>;

impl RawSql {
    /// Uses `db`, (re)creating `table` empty; row bodies are `body_len` bytes.
    ///
    /// # Errors
    ///
    /// When the statements fail.
    pub async fn new(
        db: DatabaseConnection,
        table: &str,
        body_len: usize,
        run: &str,
        login_budget: Budget,
    ) -> Result<Self, BenchError> {
        let blob = match db.get_database_backend() {
            DbBackend::Postgres => "BYTEA",
            DbBackend::MySql => "VARBINARY(2048)",
            _ => "BLOB",
        };
        let fail = BenchError::with("raw sql setup");
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .map_err(&fail)?;
        db.execute_unprepared(&format!(
            "CREATE TABLE {table} (id VARCHAR(64) NOT NULL PRIMARY KEY, body {blob} NOT NULL, \
             expires_at BIGINT NOT NULL)"
        ))
        .await
        .map_err(&fail)?;
        Ok(Self {
            pg: RawPg::new(&db, table),
            db,
            table: table.to_owned(),
            body: vec![7; body_len],
            run: run.to_owned(),
            login_budget,
        })
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push('$');
                    numbered.push_str(&n.to_string());
                } else {
                    numbered.push(c);
                }
            }
            numbered
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(backend, sql, values)
    }
}

impl RawSql {
    async fn login(&self, op: Op, task: &mut KeyTask<String, ()>) -> Result<(), BenchError> {
        let id = fresh_id(&self.run, task.index, task.keys.len())?.to_string();
        if let Some(pg) = &self.pg {
            pg.step(op, id.clone(), &self.body, 0)
                .await
                .map_err(|e| BenchError::new(format!("raw Postgres, {op}"), e))?;
            task.keys.push(id);
            return Ok(());
        }
        let stmt = self.statement(
            &format!(
                "INSERT INTO {} (id, body, expires_at) VALUES (?, ?, ?)",
                self.table
            ),
            vec![id.clone().into(), self.body.clone().into(), 0_i64.into()],
        );
        self.db.execute_raw(stmt).await.map_err(|e| {
            BenchError::new(format!("raw {:?}, {op}", self.db.get_database_backend()), e)
        })?;
        task.keys.push(id);
        Ok(())
    }
}

impl Target for RawSql {
    type Task = KeyTask<String, ()>;

    fn supports(&self, op: Op) -> bool {
        op != Op::List10
    }

    fn task(&self, index: usize) -> Self::Task {
        KeyTask::new(index, ())
    }

    async fn prepare(&self, op: Op, task: &mut Self::Task) -> Result<(), BenchError> {
        if needs_one(op) && task.keys.is_empty() {
            self.login(op, task).await?;
        }
        Ok(())
    }

    async fn step(&self, op: Op, task: &mut Self::Task) -> Result<bool, BenchError> {
        let context = || format!("raw {:?}, {op}", self.db.get_database_backend());
        let fail = |e: sea_orm::DbErr| BenchError::new(context(), e);
        // Every write stores a different expiry, so MySQL counts the row as changed.
        let expires = match op {
            Op::Refresh => 1_000_000 + i64::try_from(task.cursor).unwrap_or(0),
            Op::Revoke => -1 - i64::try_from(task.consumed).unwrap_or(0),
            _ => 0,
        };
        if let Some(pg) = &self.pg
            && op != Op::Login
        {
            let id = match op {
                Op::Refresh | Op::Validate => next(&task.keys, &mut task.cursor, op)?.clone(),
                Op::Revoke => {
                    let Some(id) = task.consume() else {
                        return Ok(false);
                    };
                    id.clone()
                }
                Op::Login | Op::List10 => return Ok(false),
            };
            pg.step(op, id, &self.body, expires)
                .await
                .map_err(|e| BenchError::new(context(), e))?;
            return Ok(true);
        }
        match op {
            Op::Login => {
                if task.keys.len() >= self.login_budget.get() {
                    return Ok(false);
                }
                self.login(op, task).await?;
            }
            Op::Validate => {
                let id = next(&task.keys, &mut task.cursor, op)?;
                let stmt = self.statement(
                    &format!(
                        "SELECT id, body, expires_at FROM {} WHERE id = ?",
                        self.table
                    ),
                    vec![id.clone().into()],
                );
                let row = self
                    .db
                    .query_one_raw(stmt)
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| BenchError::new(context(), "row not found"))?;
                let id: String = row.try_get("", "id").map_err(fail)?;
                let body: Vec<u8> = row.try_get("", "body").map_err(fail)?;
                let expires: i64 = row.try_get("", "expires_at").map_err(fail)?;
                black_box((id, body, expires));
            }
            Op::Refresh | Op::Revoke => {
                let id = if op == Op::Refresh {
                    next(&task.keys, &mut task.cursor, op)?.clone()
                } else {
                    let Some(id) = task.consume() else {
                        return Ok(false);
                    };
                    id.clone()
                };
                let stmt = self.statement(
                    &format!(
                        "UPDATE {} SET body = ?, expires_at = ? WHERE id = ?",
                        self.table
                    ),
                    vec![self.body.clone().into(), expires.into(), id.into()],
                );
                let done = self.db.execute_raw(stmt).await.map_err(fail)?;
                if done.rows_affected() != 1 {
                    return Err(BenchError::new(context(), "row not found"));
                }
            }
            Op::List10 => return Ok(false),
        }
        Ok(true)
    }
}
