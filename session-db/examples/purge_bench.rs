//! Measures how long purging a large number of expired sessions takes, and checks that live
//! sessions survive it.
//!
//! ```text
//! cargo run --release -p session-db --features postgres --example purge_bench -- [ROWS] [BATCH] [BACKEND...]
//! ```
//!
//! `ROWS` expired rows (default 1 000 000) are bulk-inserted with one SQL statement next to
//! 1 000 live sessions created through the store, then [`purge_all_expired`] deletes the expired
//! ones `BATCH` (default 1 000) at a time, as the cleanup task does. Backends: `sqlite` (a file
//! in the system temp directory), `postgres` and `mysql` (the test servers, or
//! `SESSION_TEST_POSTGRES_URL` / `SESSION_TEST_MYSQL_URL`); default `sqlite postgres`. Each run
//! uses a fresh table and drops it afterwards.

#![allow(
    clippy::print_stdout,
    reason = "a command-line benchmark: printing the figures is its job"
)]

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    DeviceInfo, SessionId, SessionLimit, SessionRecord, SessionStore, TokenHash, UserId,
    purge_all_expired,
};
use session_db::sea_orm::{ConnectionTrait, Statement};
use session_db::{DbConfig, DbStore, Dialect};

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);
const LIVE: usize = 1_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut numbers = args.iter().filter_map(|a| a.parse::<u32>().ok());
    let rows = numbers.next().unwrap_or(1_000_000);
    let batch = NonZeroU32::new(numbers.next().unwrap_or(1_000)).ok_or("BATCH must be > 0")?;
    let mut backends: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.parse::<u32>().is_err())
        .collect();
    if backends.is_empty() {
        backends = vec!["sqlite", "postgres"];
    }
    println!("purging {rows} expired rows, batch {batch}, beside {LIVE} live sessions");
    for backend in backends {
        let url = match backend {
            "sqlite" => {
                let path = std::env::temp_dir().join(format!(
                    "session-db-purge-bench-{}.sqlite3",
                    std::process::id()
                ));
                format!("sqlite://{}?mode=rwc", path.display())
            }
            "postgres" => std::env::var("SESSION_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
            "mysql" => std::env::var("SESSION_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
            other => return Err(format!("unknown backend `{other}`").into()),
        };
        run(backend, &url, rows, batch).await?;
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
        {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
    Ok(())
}

async fn run(backend: &str, url: &str, rows: u32, batch: NonZeroU32) -> Result<(), BoxError> {
    let table = format!("purge_bench_{}", std::process::id());
    let store = DbStore::connect_with(
        DbConfig::new()
            .with_url(url)
            .with_table(table.as_str())
            .with_acquire_timeout(Duration::from_secs(30)),
    )
    .await?;
    store.migrate().await?;

    let started = Instant::now();
    fill_expired(&store, rows).await?;
    let live = create_live(&store).await?;
    let filled = started.elapsed();

    let started = Instant::now();
    let purged = purge_all_expired(&store, NOW, batch).await?;
    let took = started.elapsed();

    let user = UserId::new("live")?;
    let listed = store
        .list(&user, NOW, NonZeroUsize::new(LIVE + 1).ok_or("zero")?)
        .await?;
    let mut intact = listed.len() == LIVE;
    for id in &live {
        intact &= store.find(id).await?.is_some_and(|r| r.is_live(NOW));
    }
    let left = count(&store).await?;
    println!(
        "{backend:>8}: filled in {:.1} s; purged {purged} rows in {:.2} s ({:.0} rows/s, {} passes); \
         {left} rows left, live sessions intact: {intact}",
        filled.as_secs_f64(),
        took.as_secs_f64(),
        f64::from(u32::try_from(purged).unwrap_or(u32::MAX)) / took.as_secs_f64(),
        purged / u64::from(batch.get()) + 1,
    );
    drop_tables(&store).await?;
    if purged != u64::from(rows) || !intact || left != u64::try_from(LIVE)? {
        return Err(format!("{backend}: purge deleted the wrong rows").into());
    }
    Ok(())
}

/// Inserts `rows` expired sessions with one statement.
async fn fill_expired(store: &DbStore, rows: u32) -> Result<(), BoxError> {
    let t = store.table().as_str();
    let columns = "id, user_id, created_at, last_active_at, idle_expires_at, \
        absolute_expires_at, expires_at, token_hash, generation";
    let sql = match store.dialect() {
        Dialect::Sqlite => {
            // Instants are microseconds since the epoch; 2029-12-31 is expired at NOW.
            let at = 1_893_369_600_000_000_i64;
            format!(
                "INSERT INTO \"{t}\" ({columns}) \
                 WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows}) \
                 SELECT printf('%036x', g), 'user-' || (g % 10000), {at}, {at}, {at} + g, \
                 {at} + 86400000000, {at} + g, zeroblob(32), 0 FROM s"
            )
        }
        Dialect::Postgres => format!(
            "INSERT INTO \"{t}\" ({columns}) \
             SELECT lpad(to_hex(g), 36, '0'), 'user-' || (g % 10000), ts, ts, \
             ts + g * interval '1 microsecond', ts + interval '1 day', \
             ts + g * interval '1 microsecond', decode(repeat('00', 32), 'hex'), 0 \
             FROM generate_series(1, {rows}) AS g, \
             (SELECT timestamptz '2029-12-31 00:00:00+00' AS ts) AS base"
        ),
        // No recursion limit to raise: six cross-joined digit tables count to 999 999.
        Dialect::MySql => format!(
            "INSERT INTO `{t}` ({columns}) \
             SELECT LPAD(LOWER(HEX(g)), 36, '0'), CAST(CONCAT('user-', g % 10000) AS BINARY), \
             TIMESTAMP('2029-12-31'), TIMESTAMP('2029-12-31'), \
             TIMESTAMP('2029-12-31') + INTERVAL g MICROSECOND, TIMESTAMP('2030-01-01'), \
             TIMESTAMP('2029-12-31') + INTERVAL g MICROSECOND, UNHEX(REPEAT('00', 32)), 0 \
             FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * h.d + 1 AS g \
             FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f, {digits} h) AS s \
             WHERE g <= {rows}",
            digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                      UNION ALL SELECT 8 UNION ALL SELECT 9)"
        ),
        _ => return Err("unknown dialect".into()),
    };
    if store.dialect() == Dialect::MySql && rows > 1_000_000 {
        return Err("the MySQL fill makes at most 1 000 000 rows".into());
    }
    let db = store.connection();
    db.execute_unprepared(&sql).await?;
    if store.dialect() == Dialect::Postgres {
        db.execute_unprepared(&format!("ANALYZE \"{t}\"")).await?;
    }
    Ok(())
}

/// Creates [`LIVE`] sessions through the store, live well past `NOW`.
async fn create_live(store: &DbStore) -> Result<Vec<SessionId>, BoxError> {
    let user = UserId::new("live")?;
    let mut ids = Vec::with_capacity(LIVE);
    for i in 0..LIVE {
        let at = NOW - time::Duration::minutes(i64::try_from(i)?);
        let record = SessionRecord {
            id: SessionId::generate(&user),
            user_id: user.clone(),
            created_at: at,
            last_active_at: at,
            idle_expires_at: NOW + time::Duration::hours(1),
            absolute_expires_at: NOW + time::Duration::days(1),
            token_hash: TokenHash::from_bytes([1; 32]),
            generation: 0,
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
        };
        ids.push(record.id);
        store.create(record, SessionLimit::UNLIMITED).await?;
    }
    Ok(ids)
}

async fn count(store: &DbStore) -> Result<u64, BoxError> {
    let db = store.connection();
    let quoted = match store.dialect() {
        Dialect::MySql => format!("`{}`", store.table()),
        _ => format!("\"{}\"", store.table()),
    };
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {quoted}"),
        ))
        .await?
        .ok_or("no row")?;
    Ok(u64::try_from(row.try_get_by_index::<i64>(0)?)?)
}

async fn drop_tables(store: &DbStore) -> Result<(), BoxError> {
    let t = store.table().as_str();
    let db = store.connection();
    let names = [
        t.to_owned(),
        format!("{t}_migrations"),
        format!("{t}_user_locks"),
        format!("{t}_secrets"),
    ];
    for name in names {
        let quoted = match store.dialect() {
            Dialect::MySql => format!("`{name}`"),
            _ => format!("\"{name}\""),
        };
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {quoted}"))
            .await?;
    }
    Ok(())
}
