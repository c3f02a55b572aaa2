//! Where PostgreSQL validate, login and refresh spend their time, layer by layer, at 16 tasks
//! in one run. Validate: the tower-sessions peer's `load`, its statement alone through its sqlx
//! (0.8) pool and through ours (sqlx 0.9), our `find` statement alone (no decoding),
//! `DbStore::find` (decoding) and `SessionManager::validate`. Login: the peer's `create`,
//! `DbStore::create` without and with the default cap, and `SessionManager::login`. Refresh:
//! the peer's `save` (its upsert), the upsert alone on either sqlx, our rotation's
//! `UPDATE … RETURNING` alone on either sqlx (no decoding), `DbStore::rotate` and
//! `SessionManager::refresh`. The bare rotations present the stored hash as the next one too, so
//! every call takes the writing path and the row stays rotatable; each task refreshes sessions
//! of its own.
//!
//! ```text
//! cargo run --release -p session-benches --bin pg_validate [-- --seconds 2 --tasks 16]
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool that prints its table"
)]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sqlx as sqlx9;
use session_benches::{BenchError, Servers, bench_config, new_record, ops_per_second as rate};
use session_core::{
    Clock as _, DeviceInfo, LimitMode, LoginRequest, Rotation, SessionId, SessionLimit,
    SessionManager, SessionStore, SystemClock, TokenHash, UserId,
};
use session_db::{DbConfig, DbStore};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore as _;
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx as sqlx8;

const TABLE: &str = "bench_pgsplit";
const PEER_TABLE: &str = "bench_pgsplit_peer";
const SESSIONS: usize = 1_000;

/// A bare select by id on one of the two sqlx versions: the pool, the text, and whether it
/// binds the current instant as `$2`.
enum Statement<'a> {
    V8(&'a sqlx8::PgPool, &'a str, bool),
    V9(&'a sqlx9::PgPool, &'a str, bool),
}

/// One [`Statement`] lane on one sqlx: `$query` makes the statement from its text, `$what`
/// names the driver in errors. (The two sqlx versions share no types, hence a macro.)
macro_rules! read_lane {
    ($pool:expr, $sql:expr, $with_now:expr, $query:path, $what:literal, $tasks:expr, $seconds:expr, $keys:expr) => {{
        let (pool, sql, with_now, keys) =
            ($pool.clone(), Arc::new($sql.to_owned()), $with_now, $keys);
        rate($tasks, $seconds, move |t, n| {
            let (pool, sql, id) = (pool.clone(), Arc::clone(&sql), pick(&keys, t, n));
            async move {
                let query = $query(sql.as_str()).bind(id);
                let query = if with_now {
                    query.bind(SystemClock.now())
                } else {
                    query
                };
                query
                    .fetch_optional(&pool)
                    .await
                    .map(drop)
                    .map_err(|e| BenchError::new($what, e.to_string()))
            }
        })
        .await
    }};
}

impl Statement<'_> {
    /// Runs the statement for the ids of `keys`, round robin, on `tasks` tasks.
    async fn rate(
        &self,
        tasks: usize,
        seconds: Duration,
        keys: &Arc<Vec<String>>,
    ) -> Result<f64, BenchError> {
        let keys = Arc::clone(keys);
        match *self {
            Self::V8(pool, sql, with_now) => {
                read_lane!(
                    pool, sql, with_now, query8, "sqlx 0.8", tasks, seconds, keys
                )
            }
            Self::V9(pool, sql, with_now) => {
                read_lane!(
                    pool, sql, with_now, query9, "sqlx 0.9", tasks, seconds, keys
                )
            }
        }
    }
}

/// The ids as the text a statement binds.
fn keys<T: ToString>(ids: &[T]) -> Arc<Vec<String>> {
    Arc::new(ids.iter().map(ToString::to_string).collect())
}

fn pick<T: Clone>(items: &[T], task: usize, n: u64) -> T {
    let at = usize::try_from(n)
        .unwrap_or(0)
        .wrapping_mul(16)
        .wrapping_add(task)
        % items.len();
    items.get(at).cloned().unwrap_or_else(|| unreachable!())
}

/// The `n`th session task `task` of `tasks` refreshes: each task cycles through sessions of its
/// own (`task`, `task + tasks`, ...), so no two tasks ever rotate one session.
fn owned<T: Clone>(items: &[T], tasks: usize, task: usize, n: u64) -> T {
    let per_task = (items.len() / tasks.max(1)).max(1);
    let at = task + tasks * (usize::try_from(n).unwrap_or(0) % per_task);
    items
        .get(at % items.len())
        .cloned()
        .unwrap_or_else(|| unreachable!())
}

/// Sessions by id, each with the bytes a bare write binds for it.
type Rows = Arc<Vec<(String, Vec<u8>)>>;

/// One bare statement of a refresh, on either sqlx: the peer's upsert (`id`, data, expiry) or
/// our rotation (the hash as presented and next, `now`, the idle expiry, `id`), run for the
/// sessions of `keys`: each id with its stored data (the peer's) or token hash (ours), each task
/// on sessions of its own.
enum Write<'a> {
    PeerV8(&'a sqlx8::PgPool, &'a str),
    PeerV9(&'a sqlx9::PgPool, &'a str),
    OursV8(&'a sqlx8::PgPool, &'a str),
    OursV9(&'a sqlx9::PgPool, &'a str),
}

/// One [`Write`] lane on one sqlx: `$query` makes the statement from its text, `$what` names the
/// driver in errors. (The two sqlx versions share no types, hence a macro.)
macro_rules! write_lane {
    ($pool:expr, $sql:expr, $ours:expr, $query:path, $what:literal, $tasks:expr, $seconds:expr, $keys:expr) => {{
        let (pool, sql, ours, keys, tasks) = (
            $pool.clone(),
            Arc::new($sql.to_owned()),
            $ours,
            $keys,
            $tasks,
        );
        rate(tasks, $seconds, move |t, n| {
            let (pool, sql) = (pool.clone(), Arc::clone(&sql));
            let (id, bytes) = owned(&keys, tasks, t, n);
            async move {
                let now = SystemClock.now();
                let query = $query(sql.as_str());
                let query = if ours {
                    query
                        .bind(bytes.clone())
                        .bind(now)
                        .bind(now + time::Duration::days(1))
                        .bind(id)
                        .bind(bytes)
                } else {
                    query
                        .bind(id)
                        .bind(bytes)
                        .bind(now + time::Duration::hours(1))
                };
                let row = query
                    .fetch_optional(&pool)
                    .await
                    .map_err(|e| BenchError::new($what, e.to_string()))?;
                if ours && row.is_none() {
                    return Err(BenchError::new("rotate", "the swap matched no row"));
                }
                Ok(())
            }
        })
        .await
    }};
}

/// A statement on sqlx 0.8 from its text.
fn query8(sql: &str) -> sqlx8::query::Query<'_, sqlx8::Postgres, sqlx8::postgres::PgArguments> {
    sqlx8::query(sql)
}

/// A statement on sqlx 0.9 from its text.
fn query9(
    sql: &str,
) -> sqlx9::query::Query<'static, sqlx9::Postgres, sqlx9::postgres::PgArguments> {
    sqlx9::query(sqlx9::AssertSqlSafe(sql.to_owned()))
}

impl Write<'_> {
    async fn rate(&self, tasks: usize, seconds: Duration, keys: &Rows) -> Result<f64, BenchError> {
        let keys = Arc::clone(keys);
        match *self {
            Self::PeerV8(pool, sql) | Self::OursV8(pool, sql) => {
                let ours = matches!(self, Self::OursV8(..));
                write_lane!(
                    pool,
                    sql,
                    ours,
                    query8,
                    "sqlx 0.8 write",
                    tasks,
                    seconds,
                    keys
                )
            }
            Self::PeerV9(pool, sql) | Self::OursV9(pool, sql) => {
                let ours = matches!(self, Self::OursV9(..));
                write_lane!(
                    pool,
                    sql,
                    ours,
                    query9,
                    "sqlx 0.9 write",
                    tasks,
                    seconds,
                    keys
                )
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BenchError> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut tasks) = (Duration::from_secs(2), 16_usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => {
                let parsed: f64 = value.parse().map_err(|e| BenchError::new("--seconds", e))?;
                seconds = Duration::try_from_secs_f64(parsed)
                    .map_err(|e| BenchError::new("--seconds", e))?;
            }
            "--tasks" => tasks = value.parse().map_err(|e| BenchError::new("--tasks", e))?,
            other => return Err(BenchError::new(other.to_owned(), "unknown flag")),
        }
    }
    let servers = Servers::from_env();
    let ctx =
        |what: &'static str| move |e: &dyn std::fmt::Display| BenchError::new(what, e.to_string());

    // Ours.
    let store = DbStore::connect_with(
        DbConfig::new()
            .with_url(servers.postgres.clone())
            .with_table(TABLE),
    )
    .await
    .map_err(|e| ctx("our store")(&e))?;
    store.migrate().await.map_err(|e| ctx("migrate")(&e))?;
    let ours9 = store.connection().get_postgres_connection_pool().clone();
    sqlx9::query(sqlx9::AssertSqlSafe(format!("DELETE FROM {TABLE}")))
        .execute(&ours9)
        .await
        .map_err(|e| ctx("clean")(&e))?;
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let manager = Arc::new(
        SessionManager::new(Arc::clone(&store), bench_config()).map_err(|e| ctx("manager")(&e))?,
    );
    let mut ids: Vec<SessionId> = Vec::with_capacity(SESSIONS);
    let mut tokens = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS {
        let user = UserId::new(format!("split-{n}")).map_err(|e| ctx("user")(&e))?;
        let login = manager
            .login(&user, LoginRequest::new())
            .await
            .map_err(|e| ctx("login")(&e))?;
        ids.push(login.session.id);
        tokens.push(Arc::new(Mutex::new(login.token.expose_secret().to_owned())));
    }
    let ids = Arc::new(ids);
    let tokens = Arc::new(tokens);

    // The peer.
    let pool8 = sqlx8::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&servers.postgres)
        .await
        .map_err(|e| ctx("peer pool")(&e))?;
    let peer = PostgresStore::new(pool8.clone())
        .with_table_name(PEER_TABLE)
        .map_err(|e| ctx("peer")(&e))?;
    peer.migrate().await.map_err(|e| ctx("peer migrate")(&e))?;
    let mut peer_ids = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut record = Record {
            id: Id::default(),
            data: std::collections::HashMap::from([(
                "user".to_owned(),
                serde_json::Value::String("split".to_owned()),
            )]),
            expiry_date: SystemClock.now() + time::Duration::hours(1),
        };
        peer.create(&mut record)
            .await
            .map_err(|e| ctx("peer create")(&e))?;
        peer_ids.push(record.id);
    }
    let peer_ids = Arc::new(peer_ids);
    let peer = Arc::new(peer);
    let peer_sql = format!(
        "select data from \"tower_sessions\".\"{PEER_TABLE}\" where id = $1 and expiry_date > $2"
    );
    let ours_sql = format!(
        "SELECT id, user_id, created_at, last_active_at, idle_expires_at, absolute_expires_at, \
         token_hash, generation, previous_token_hash, rotated_at, revoked_at, revoke_reason, \
         user_agent, ip, device_name, data FROM \"{TABLE}\" WHERE id = $1"
    );

    let upsert_sql = format!(
        "insert into \"tower_sessions\".\"{PEER_TABLE}\" (id, data, expiry_date) values ($1, $2, $3) \
         on conflict(id) do update set data = excluded.data, expiry_date = excluded.expiry_date"
    );
    let rotate_sql = format!(
        "UPDATE \"{TABLE}\" SET previous_token_hash = token_hash, token_hash = $1, \
         generation = generation + 1, rotated_at = $2, last_active_at = $2, \
         idle_expires_at = LEAST($3, absolute_expires_at), \
         expires_at = LEAST($3, absolute_expires_at) \
         WHERE id = $4 AND token_hash = $5 AND revoked_at IS NULL AND expires_at > $2 \
         AND generation < 9223372036854775807 RETURNING id, user_id, created_at, last_active_at, \
         idle_expires_at, absolute_expires_at, token_hash, generation, previous_token_hash, \
         rotated_at, revoked_at, revoke_reason, user_agent, ip, device_name, data"
    );

    let mut rows: Vec<(&str, f64)> = Vec::new();
    for round in 0..2 {
        let p = Arc::clone(&peer);
        let pid = Arc::clone(&peer_ids);
        rows.push((
            "peer load (sqlx 0.8, decode)",
            rate(tasks, seconds, move |t, n| {
                let (p, id) = (Arc::clone(&p), pick(&pid, t, n));
                async move {
                    p.load(&id)
                        .await
                        .map(drop)
                        .map_err(|e| BenchError::new("peer load", e))
                }
            })
            .await?,
        ));
        let (peer_keys, our_keys) = (keys(&peer_ids), keys(&ids));
        let bare: [(&str, Statement<'_>, &Arc<Vec<String>>); 4] = [
            (
                "peer statement on sqlx 0.8",
                Statement::V8(&pool8, &peer_sql, true),
                &peer_keys,
            ),
            (
                "peer statement on sqlx 0.9",
                Statement::V9(&ours9, &peer_sql, true),
                &peer_keys,
            ),
            (
                "our find statement on sqlx 0.9, no decode",
                Statement::V9(&ours9, &ours_sql, false),
                &our_keys,
            ),
            (
                "our find statement on sqlx 0.8, no decode",
                Statement::V8(&pool8, &ours_sql, false),
                &our_keys,
            ),
        ];
        for (name, statement, keys) in bare {
            rows.push((name, statement.rate(tasks, seconds, keys).await?));
        }
        let (s, oid) = (Arc::clone(&store), Arc::clone(&ids));
        rows.push((
            "DbStore::find",
            rate(tasks, seconds, move |t, n| {
                let (s, id) = (Arc::clone(&s), pick(&oid, t, n));
                async move {
                    s.find(&id)
                        .await
                        .map(drop)
                        .map_err(|e| BenchError::new("find", e))
                }
            })
            .await?,
        ));
        let (m, oid) = (Arc::clone(&manager), Arc::clone(&ids));
        rows.push((
            "SessionManager::validate",
            rate(tasks, seconds, move |t, n| {
                let (m, id) = (Arc::clone(&m), pick(&oid, t, n));
                async move {
                    m.validate(&id)
                        .await
                        .map(drop)
                        .map_err(|e| BenchError::new("validate", e))
                }
            })
            .await?,
        ));
        let fresh = Arc::new(AtomicU64::new(0));
        let (p, f, r) = (Arc::clone(&peer), Arc::clone(&fresh), round);
        rows.push((
            "peer create (BEGIN, SELECT, upsert, COMMIT)",
            rate(tasks, seconds, move |_, _| {
                let (p, n) = (Arc::clone(&p), f.fetch_add(1, Ordering::Relaxed));
                async move {
                    let mut record = Record {
                        id: Id::default(),
                        data: std::collections::HashMap::from([(
                            "user_id".to_owned(),
                            serde_json::Value::String(format!("c{r}-{n}")),
                        )]),
                        expiry_date: SystemClock.now() + time::Duration::hours(1),
                    };
                    p.create(&mut record)
                        .await
                        .map_err(|e| BenchError::new("peer create", e))
                }
            })
            .await?,
        ));
        for (name, limit) in [
            ("DbStore::create, no cap", SessionLimit::UNLIMITED),
            (
                "DbStore::create, cap 20 (the default)",
                SessionLimit::new(
                    NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
                    LimitMode::EvictOldest,
                ),
            ),
        ] {
            let (s, f) = (Arc::clone(&store), Arc::clone(&fresh));
            rows.push((
                name,
                rate(tasks, seconds, move |_, _| {
                    let (s, n) = (Arc::clone(&s), f.fetch_add(1, Ordering::Relaxed));
                    async move {
                        let user = UserId::new(format!("c{r}-{n}"))
                            .map_err(|e| BenchError::new("user", e))?;
                        let record = new_record(
                            &user,
                            SystemClock.now(),
                            Duration::from_secs(86_400),
                            DeviceInfo::new(),
                        )?;
                        s.create(record, limit)
                            .await
                            .map(drop)
                            .map_err(|e| BenchError::new("create", e))
                    }
                })
                .await?,
            ));
        }
        let (m, f) = (Arc::clone(&manager), Arc::clone(&fresh));
        rows.push((
            "SessionManager::login (cap 20)",
            rate(tasks, seconds, move |_, _| {
                let (m, n) = (Arc::clone(&m), f.fetch_add(1, Ordering::Relaxed));
                async move {
                    let user =
                        UserId::new(format!("l{r}-{n}")).map_err(|e| BenchError::new("user", e))?;
                    m.login(&user, LoginRequest::new())
                        .await
                        .map(drop)
                        .map_err(|e| BenchError::new("login", e))
                }
            })
            .await?,
        ));
        // Refresh. The stored hashes as they stand now (the previous round's refreshes moved
        // them), the peer's ids with its data.
        let mut hashes = Vec::with_capacity(SESSIONS);
        for id in ids.iter() {
            let record = store
                .find(id)
                .await
                .map_err(|e| ctx("find")(&e))?
                .ok_or_else(|| BenchError::new("find", "a session is gone"))?;
            hashes.push((id.to_string(), record.token_hash.as_bytes().to_vec()));
        }
        let ours_keys = Arc::new(hashes);
        // The peer's rows as its `save` wrote them (its encoding of the whole record), so the
        // bare upserts store what `load` reads back.
        let mut peer_rows = Vec::with_capacity(SESSIONS);
        for id in peer_ids.iter() {
            let data: Vec<u8> = sqlx8::query_scalar(&format!(
                "select data from \"tower_sessions\".\"{PEER_TABLE}\" where id = $1"
            ))
            .bind(id.to_string())
            .fetch_one(&pool8)
            .await
            .map_err(|e| ctx("peer row")(&e))?;
            peer_rows.push((id.to_string(), data));
        }
        let peer_keys = Arc::new(peer_rows);
        let (p, pid) = (Arc::clone(&peer), Arc::clone(&peer_ids));
        rows.push((
            "peer save (sqlx 0.8, encode, upsert)",
            rate(tasks, seconds, move |t, n| {
                let (p, id) = (Arc::clone(&p), owned(&pid, tasks, t, n));
                async move {
                    let record = Record {
                        id,
                        data: std::collections::HashMap::from([(
                            "user".to_owned(),
                            serde_json::Value::String("split".to_owned()),
                        )]),
                        expiry_date: SystemClock.now() + time::Duration::hours(1),
                    };
                    p.save(&record)
                        .await
                        .map_err(|e| BenchError::new("peer save", e))
                }
            })
            .await?,
        ));
        let writes: [(&str, Write<'_>, &Rows); 4] = [
            (
                "peer upsert on sqlx 0.8",
                Write::PeerV8(&pool8, &upsert_sql),
                &peer_keys,
            ),
            (
                "peer upsert on sqlx 0.9",
                Write::PeerV9(&ours9, &upsert_sql),
                &peer_keys,
            ),
            (
                "our rotation statement on sqlx 0.9, no decode",
                Write::OursV9(&ours9, &rotate_sql),
                &ours_keys,
            ),
            (
                "our rotation statement on sqlx 0.8, no decode",
                Write::OursV8(&pool8, &rotate_sql),
                &ours_keys,
            ),
        ];
        for (name, write, keys) in writes {
            rows.push((name, write.rate(tasks, seconds, keys).await?));
        }
        let (s, oid, keys) = (Arc::clone(&store), Arc::clone(&ids), Arc::clone(&ours_keys));
        rows.push((
            "DbStore::rotate (decoding)",
            rate(tasks, seconds, move |t, n| {
                let s = Arc::clone(&s);
                let id = owned(&oid, tasks, t, n);
                let (_, hash) = owned(&keys, tasks, t, n);
                async move {
                    let hash: [u8; 32] = hash
                        .try_into()
                        .map_err(|_| BenchError::new("rotate", "a stored hash is not 32 bytes"))?;
                    let now = SystemClock.now();
                    let outcome = s
                        .rotate(Rotation {
                            id,
                            presented: TokenHash::from_bytes(hash),
                            next: TokenHash::from_bytes(hash),
                            now,
                            idle_expires_at: now + time::Duration::days(1),
                            device: None,
                        })
                        .await
                        .map_err(|e| BenchError::new("rotate", e))?;
                    match outcome {
                        session_core::RotateOutcome::Rotated(_) => Ok(()),
                        other => Err(BenchError::new("rotate", format!("{other:?}"))),
                    }
                }
            })
            .await?,
        ));
        let (m, tok) = (Arc::clone(&manager), Arc::clone(&tokens));
        rows.push((
            "SessionManager::refresh",
            rate(tasks, seconds, move |t, n| {
                let (m, token) = (Arc::clone(&m), owned(&tok, tasks, t, n));
                async move {
                    let presented = token
                        .lock()
                        .map_err(|_| BenchError::new("refresh", "a token lock is poisoned"))?
                        .clone();
                    let refreshed = m
                        .refresh(&presented)
                        .await
                        .map_err(|e| BenchError::new("refresh", e))?;
                    *token
                        .lock()
                        .map_err(|_| BenchError::new("refresh", "a token lock is poisoned"))? =
                        refreshed.token.expose_secret().to_owned();
                    Ok(())
                }
            })
            .await?,
        ));
        println!("round {round} at {tasks} tasks:");
        for (name, r) in &rows {
            println!("| {name} | {r:.0}/s |");
        }
        rows.clear();
    }
    for table in [
        TABLE.to_owned(),
        format!("{TABLE}_migrations"),
        format!("{TABLE}_secrets"),
    ] {
        sqlx9::query(sqlx9::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS \"{table}\""
        )))
        .execute(&ours9)
        .await
        .map_err(|e| ctx("drop")(&e))?;
    }
    sqlx8::query(&format!(
        "DROP TABLE IF EXISTS \"tower_sessions\".\"{PEER_TABLE}\""
    ))
    .execute(&pool8)
    .await
    .map_err(|e| ctx("drop")(&e))?;
    Ok(())
}
