//! Server time per call of each Redis store operation, beside a bare `SET` of a record-sized
//! value, from `INFO commandstats` (`usec_per_call`, reset with `CONFIG RESETSTAT` before each
//! operation). It measures what the server spends, not the round trip.
//!
//! ```text
//! cargo run --release -p session-benches --bin commandstats -- \
//!     [--calls N] [--url redis://127.0.0.1:6379/] [--modes functions,scripts] [--rate-seconds 2]
//! ```
//!
//! Without `--url` it starts its own `redis-server` (no persistence) on a spare loopback port
//! and stops it at the end; with one, it writes keys under `bench:commandstats:` there and
//! resets that server's statistics. `--modes` picks how the store runs its Lua: `functions`
//! (`FCALL` of the library) and/or `scripts` (`EVALSHA`), both by default.
//!
//! The operations, N calls each, one at a time: login (a new user, the default cap of 20 and
//! the index), login at the cap (a user holding 20 live sessions: one is evicted), validate
//! (`GET`), touch, refresh (rotate), revoke; then N `SET`s of a value as long as a stored
//! record; then, with the functions mode, N `FCALL`s each of functions that only run the
//! commands of a new user's login (`SET NX PX` + `ZRANGE` + `ZADD` + `PEXPIRE`), of `revoke`
//! (`GET` + `SETRANGE`), of `touch` and `rotate` (`GET` + `SET PX`, and `GET` + `SETRANGE` +
//! `PEXPIRE` beside it), or nothing: the floor under the store's operations, without any of
//! their logic. Two more floors add the least logic an operation of its kind needs: a
//! compare-and-swap of 32 bytes that rebuilds the value, writes it and replies it (a rotation
//! without the contract's checks), and a `SETRANGE` of 9 bytes behind a one-byte check (a
//! revoke without the liveness check).
//!
//! Then, with the functions mode, throughput at 16 tasks over one multiplexed connection, rows
//! back to back in two rounds of `--rate-seconds` each (0 leaves them out): a bare `SET` of a
//! record-sized value (the peer's refresh), the bare compare-and-swap, the bare check-and-mark,
//! a login's commands alone, `RedisStore::rotate` and `RedisStore::create` (our refresh's and
//! login's store calls): what a busy server allows each kind of operation against a blind write.
//!
//! Exits non-zero on any error.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line report: printing is its purpose"
)]

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use session_benches::{BenchError, new_record, ops_per_second};
use session_core::time::OffsetDateTime;
use session_core::{
    Clock, DeviceInfo, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionLimit,
    SessionRecord, SessionStore, SystemClock, TokenHash, UserId,
};
use session_redis::{RedisConfig, RedisStore};

/// The default cap of `SessionConfig`.
const CAP: u32 = 20;
/// The key prefix of everything this binary writes.
const PREFIX: &str = "bench:commandstats:";

struct Args {
    calls: usize,
    url: Option<String>,
    modes: Vec<bool>,
    rate_seconds: Duration,
}

fn parse_args() -> Result<Args, BenchError> {
    let mut args = Args {
        calls: 10_000,
        url: None,
        modes: vec![true, false],
        rate_seconds: Duration::from_secs(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| BenchError::new("arguments", format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--calls" => {
                args.calls = value()?.parse().map_err(BenchError::with("--calls"))?;
            }
            "--url" => args.url = Some(value()?),
            "--rate-seconds" => {
                let seconds: f64 = value()?
                    .parse()
                    .map_err(BenchError::with("--rate-seconds"))?;
                args.rate_seconds = Duration::try_from_secs_f64(seconds)
                    .map_err(BenchError::with("--rate-seconds"))?;
            }
            "--modes" => {
                args.modes = value()?
                    .split(',')
                    .map(|mode| match mode.trim() {
                        "functions" => Ok(true),
                        "scripts" => Ok(false),
                        other => Err(BenchError::new(
                            "--modes",
                            format!("unknown mode `{other}` (functions, scripts)"),
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => {
                return Err(BenchError::new(
                    "arguments",
                    format!("unknown argument `{other}`"),
                ));
            }
        }
    }
    if args.calls == 0 {
        return Err(BenchError::new("--calls", "must be at least 1"));
    }
    Ok(args)
}

/// A `redis-server` of this binary's own, stopped when dropped.
struct OwnServer {
    child: Child,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server() -> Result<(OwnServer, String), BenchError> {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map_err(BenchError::with("spare port"))?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(BenchError::with("redis-server (is it installed?)"))?;
    let server = OwnServer { child };
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str()).map_err(BenchError::with("client"))?;
    for _ in 0..100 {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        {
            return Ok((server, url));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::new("redis-server", "did not answer PING"))
}

/// `usec_per_call` and `calls` of `command` since the last reset.
async fn stat(conn: &mut MultiplexedConnection, command: &str) -> Result<(f64, u64), BenchError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .map_err(BenchError::with("INFO commandstats"))?;
    let head = format!("cmdstat_{command}:");
    let line = info
        .lines()
        .find_map(|line| line.strip_prefix(&head))
        .ok_or_else(|| BenchError::new("INFO commandstats", format!("no {command} calls")))?;
    let field = |name: &str| {
        line.split(',')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| BenchError::new("INFO commandstats", format!("no {name} in {line}")))
    };
    let per_call = field("usec_per_call")?
        .parse()
        .map_err(BenchError::with("usec_per_call"))?;
    let calls = field("calls")?.parse().map_err(BenchError::with("calls"))?;
    Ok((per_call, calls))
}

async fn reset(conn: &mut MultiplexedConnection) -> Result<(), BenchError> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(conn)
        .await
        .map_err(BenchError::with("CONFIG RESETSTAT"))
}

/// A record of `user` created at `now`, one hour idle, with a browser's device fields.
fn record(user: &UserId, now: OffsetDateTime) -> Result<SessionRecord, BenchError> {
    new_record(
        user,
        now,
        Duration::from_secs(3600),
        DeviceInfo::new()
            .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) commandstats/1")
            .with_ip(std::net::IpAddr::from([192, 0, 2, 7])),
    )
}

fn user(run: &str, n: usize) -> Result<UserId, BenchError> {
    UserId::new(format!("{run}-{n}")).map_err(BenchError::with("user id"))
}

/// One row: an operation's server time per call.
struct Row {
    name: &'static str,
    command: &'static str,
    usec: f64,
    calls: u64,
}

/// Runs every store operation `calls` times on a store of `mode` and returns a row each, and
/// the length of a stored record.
#[expect(
    clippy::too_many_lines,
    reason = "one straight sequence of measured phases"
)]
async fn measure_store(
    url: &str,
    admin: &mut MultiplexedConnection,
    functions: bool,
    calls: usize,
) -> Result<(Vec<Row>, usize), BenchError> {
    let mode = if functions { "functions" } else { "scripts" };
    let config = RedisConfig::from_url(url)
        .with_key_prefix(format!("{PREFIX}{mode}:"))
        .with_use_functions(functions);
    let store = RedisStore::connect(config)
        .await
        .map_err(BenchError::with("connect"))?;
    if store.function_library().is_some() != functions {
        return Err(BenchError::new(
            mode,
            "the server does not run the store in this mode",
        ));
    }
    let command = if functions { "fcall" } else { "evalsha" };
    let fail = |what: &'static str| BenchError::with(what);
    let cap = SessionLimit::new(
        NonZeroU32::new(CAP).ok_or_else(|| BenchError::new("cap", "zero"))?,
        LimitMode::EvictOldest,
    );
    let now = SystemClock.now();
    let run = format!("{mode}-{}", now.unix_timestamp_nanos());
    let mut rows = Vec::new();

    let mut records = Vec::with_capacity(calls);
    for n in 0..calls {
        records.push(record(&user(&run, n)?, now)?);
    }
    reset(admin).await?;
    for record in &records {
        store
            .create(record.clone(), cap)
            .await
            .map_err(fail("login"))?;
    }
    let (usec, n) = stat(admin, command).await?;
    rows.push(Row {
        name: "login (new user, cap 20, index)",
        command,
        usec,
        calls: n,
    });

    // A user at the cap: every login evicts the oldest of 20 live sessions.
    let full = user(&run, usize::MAX)?;
    for _ in 0..CAP {
        store
            .create(record(&full, now)?, cap)
            .await
            .map_err(fail("login"))?;
    }
    let at_cap: Vec<SessionRecord> = (0..calls)
        .map(|_| record(&full, now))
        .collect::<Result<_, _>>()?;
    reset(admin).await?;
    for record in at_cap {
        store.create(record, cap).await.map_err(fail("login"))?;
    }
    let (usec, n) = stat(admin, command).await?;
    rows.push(Row {
        name: "login at the cap (20 live, evicts 1)",
        command,
        usec,
        calls: n,
    });

    reset(admin).await?;
    for record in &records {
        store.find(&record.id).await.map_err(fail("validate"))?;
    }
    let (usec, n) = stat(admin, "get").await?;
    rows.push(Row {
        name: "validate (find)",
        command: "get",
        usec,
        calls: n,
    });

    let later = now + Duration::from_secs(1);
    reset(admin).await?;
    for record in &records {
        store
            .touch(&record.id, later, later + Duration::from_secs(3600))
            .await
            .map_err(fail("touch"))?;
    }
    let (usec, n) = stat(admin, command).await?;
    rows.push(Row {
        name: "touch",
        command,
        usec,
        calls: n,
    });

    reset(admin).await?;
    for (n, record) in records.iter().enumerate() {
        let mut next = [0_u8; 32];
        next[..8].copy_from_slice(&(n as u64).to_le_bytes());
        store
            .rotate(Rotation {
                id: record.id,
                presented: record.token_hash,
                next: TokenHash::from_bytes(next),
                now: later,
                idle_expires_at: later + Duration::from_secs(3600),
                device: None,
            })
            .await
            .map_err(fail("refresh"))?;
    }
    let (usec, n) = stat(admin, command).await?;
    rows.push(Row {
        name: "refresh (rotate)",
        command,
        usec,
        calls: n,
    });

    reset(admin).await?;
    for record in &records {
        store
            .revoke(&record.id, later, RevokeReason::Logout)
            .await
            .map_err(fail("revoke"))?;
    }
    let (usec, n) = stat(admin, command).await?;
    rows.push(Row {
        name: "revoke",
        command,
        usec,
        calls: n,
    });

    let first = records
        .first()
        .ok_or_else(|| BenchError::new("records", "none"))?;
    let key = format!("{PREFIX}{mode}:{{{}}}:s:{}", first.id.tag(), first.id);
    let len: usize = redis::cmd("STRLEN")
        .arg(&key)
        .query_async(admin)
        .await
        .map_err(BenchError::with("STRLEN"))?;
    if len == 0 {
        return Err(BenchError::new(
            "record length",
            format!("no record at {key}"),
        ));
    }
    Ok((rows, len))
}

async fn measure_set(
    admin: &mut MultiplexedConnection,
    calls: usize,
    len: usize,
) -> Result<Row, BenchError> {
    let value = vec![b'x'; len];
    reset(admin).await?;
    for n in 0..calls {
        redis::cmd("SET")
            .arg(format!("{PREFIX}set:{n}"))
            .arg(&value)
            .query_async::<()>(admin)
            .await
            .map_err(BenchError::with("SET"))?;
    }
    let (usec, n) = stat(admin, "set").await?;
    Ok(Row {
        name: "bare SET of a record-sized value",
        command: "set",
        usec,
        calls: n,
    })
}

/// A library of Lua functions that run an operation's commands without its logic: what an
/// `FCALL` costs the server before any of the store's Lua runs.
const FLOOR_LIBRARY: &str = "#!lua name=commandstats_floor
redis.register_function('commandstats_noop', function(keys, args) return 0 end)
redis.register_function('commandstats_get_setrange', function(keys, args)
  redis.call('GET', keys[1])
  redis.call('SETRANGE', keys[1], 0, args[1])
  return 1
end)
redis.register_function('commandstats_get_setrange_pexpire', function(keys, args)
  redis.call('GET', keys[1])
  redis.call('SETRANGE', keys[1], 0, args[1])
  redis.call('PEXPIRE', keys[1], 3600000)
  return 1
end)
redis.register_function('commandstats_login', function(keys, args)
  redis.call('SET', keys[1], args[1], 'NX', 'PX', 3600000)
  redis.call('ZRANGE', keys[2], 0, -1)
  redis.call('ZADD', keys[2], 1, 'member')
  redis.call('PEXPIRE', keys[2], 3600000)
  return 1
end)
redis.register_function('commandstats_get_set', function(keys, args)
  local v = redis.call('GET', keys[1])
  redis.call('SET', keys[1], v, 'PX', 3600000)
  return 1
end)
redis.register_function('commandstats_cas', function(keys, args)
  local v = redis.call('GET', keys[1])
  if string.find(v, args[1], 18, true) ~= 18 then
    return redis.error_reply('commandstats_cas: the compare failed, the floor would not write')
  end
  v = string.sub(v, 1, 17) .. args[2] .. string.sub(v, 50)
  redis.call('SET', keys[1], v, 'PX', 3600000)
  return {'rotated', v}
end)
redis.register_function('commandstats_mark', function(keys, args)
  local v = redis.call('GET', keys[1])
  if string.byte(v, 107) ~= string.byte(args[1], 1) then
    return redis.error_reply('commandstats_mark: the check failed, the floor would not write')
  end
  redis.call('SETRANGE', keys[1], 106, args[1])
  return 1
end)
";

/// Loads the floor library (`load`), or deletes it.
async fn floor_library(admin: &mut MultiplexedConnection, load: bool) -> Result<(), BenchError> {
    let mut call = redis::cmd("FUNCTION");
    if load {
        call.arg("LOAD").arg("REPLACE").arg(FLOOR_LIBRARY);
    } else {
        call.arg("DELETE").arg("commandstats_floor");
    }
    call.query_async::<redis::Value>(admin)
        .await
        .map(drop)
        .map_err(BenchError::with("FUNCTION"))
}

/// The floor rows: `FCALL`s of functions that only run the commands of a new user's login (on
/// new keys), of `revoke`, of `touch`/`rotate` (and the `SETRANGE` + `PEXPIRE` they could use
/// instead of `SET PX`), or nothing, on the record-sized keys of the `SET` rows.
async fn measure_floor(
    admin: &mut MultiplexedConnection,
    calls: usize,
    len: usize,
) -> Result<Vec<Row>, BenchError> {
    floor_library(admin, true).await?;
    let mut rows = Vec::new();
    let record = vec![b'x'; len];
    reset(admin).await?;
    for n in 0..calls {
        redis::cmd("FCALL")
            .arg("commandstats_login")
            .arg(2)
            .arg(format!("{PREFIX}floor:{{{n}}}:s"))
            .arg(format!("{PREFIX}floor:{{{n}}}:u"))
            .arg(&record)
            .query_async::<redis::Value>(admin)
            .await
            .map_err(BenchError::with("FCALL"))?;
    }
    let (usec, n) = stat(admin, "fcall").await?;
    rows.push(Row {
        name: "floor: FCALL of SET NX PX + ZRANGE + ZADD + PEXPIRE on new keys, no logic (a new user's login)",
        command: "fcall",
        usec,
        calls: n,
    });
    // The record-sized values are all `x`: the compare-and-swap finds its 32 bytes at the
    // token's place, and the mark finds its byte and writes the same 9 bytes back, so every call
    // takes the writing path.
    let filler = |n: usize| vec![b'x'; n];
    let floors: [(&'static str, &str, Vec<Vec<u8>>); 6] = [
        (
            "floor: FCALL of an empty function",
            "commandstats_noop",
            vec![vec![1]],
        ),
        (
            "floor: FCALL of GET + SETRANGE, no logic (revoke's commands)",
            "commandstats_get_setrange",
            vec![vec![1]],
        ),
        (
            "floor: FCALL of GET + SETRANGE + PEXPIRE, no logic",
            "commandstats_get_setrange_pexpire",
            vec![vec![1]],
        ),
        (
            "floor: FCALL of GET + SET PX, no logic (touch's and rotate's commands)",
            "commandstats_get_set",
            vec![vec![1]],
        ),
        (
            "floor: FCALL of GET, a 32-byte compare, the value rebuilt, SET PX, the value replied (a compare-and-swap without the contract's checks)",
            "commandstats_cas",
            vec![filler(32), filler(32)],
        ),
        (
            "floor: FCALL of GET, a one-byte check, SETRANGE of 9 bytes (a revoke without the liveness check)",
            "commandstats_mark",
            vec![filler(9)],
        ),
    ];
    for (name, function, args) in floors {
        reset(admin).await?;
        for n in 0..calls {
            redis::cmd("FCALL")
                .arg(function)
                .arg(1)
                .arg(format!("{PREFIX}set:{n}"))
                .arg(&args)
                .query_async::<redis::Value>(admin)
                .await
                .map_err(BenchError::with("FCALL"))?;
        }
        let (usec, n) = stat(admin, "fcall").await?;
        rows.push(Row {
            name,
            command: "fcall",
            usec,
            calls: n,
        });
    }
    floor_library(admin, false).await?;
    Ok(rows)
}

/// One operation of a throughput row: `op(task, n)`.
type RateOp = Arc<
    dyn Fn(usize, u64) -> Pin<Box<dyn Future<Output = Result<(), BenchError>> + Send>>
        + Send
        + Sync,
>;

/// Sessions (and record-sized keys) the throughput rows cycle through.
const RATE_KEYS: usize = 1_000;
/// Tasks of the throughput rows, as the harness's 16-task rows.
const RATE_TASKS: usize = 16;

/// Throughput at [`RATE_TASKS`] tasks, rows back to back, over one multiplexed connection (as
/// the harness's limit): a bare `SET` of a record-sized value (what the peer's refresh sends),
/// `FCALL`s of the bare compare-and-swap, of the bare check-and-mark and of a login's commands
/// alone, then `RedisStore::rotate` (our refresh's one store call, presenting the stored hash as
/// the next one too, so every call writes) and `RedisStore::create` with the default cap (a
/// login's). `rounds` rounds of `seconds` per row; ops/s per row and round.
async fn measure_rates(
    url: &str,
    admin: &mut MultiplexedConnection,
    len: usize,
    seconds: Duration,
    rounds: usize,
) -> Result<Vec<(&'static str, Vec<f64>)>, BenchError> {
    floor_library(admin, true).await?;
    let client = redis::Client::open(url).map_err(BenchError::with("client"))?;
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(BenchError::with("connect"))?;
    let value = Arc::new(vec![b'x'; len]);
    let keys: Arc<Vec<String>> = Arc::new(
        (0..RATE_KEYS)
            .map(|n| format!("{PREFIX}rate:{n}"))
            .collect(),
    );
    for key in keys.iter() {
        redis::cmd("SET")
            .arg(key)
            .arg(value.as_slice())
            .query_async::<()>(admin)
            .await
            .map_err(BenchError::with("SET"))?;
    }
    let store = Arc::new(
        RedisStore::connect(RedisConfig::from_url(url).with_key_prefix(format!("{PREFIX}rate:")))
            .await
            .map_err(BenchError::with("connect"))?,
    );
    let now = SystemClock.now();
    let mut held = Vec::with_capacity(RATE_KEYS);
    for n in 0..RATE_KEYS {
        let user = UserId::new(format!("rate-{n}")).map_err(BenchError::with("user"))?;
        let record = record(&user, now)?;
        store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .map_err(BenchError::with("create"))?;
        held.push((record.id, record.token_hash));
    }
    let held = Arc::new(held);
    let pick =
        |task: usize, n: u64| (usize::try_from(n).unwrap_or(0) * RATE_TASKS + task) % RATE_KEYS;
    let token = Arc::new(vec![b'x'; 32]);
    let stamp = Arc::new(vec![b'x'; 9]);
    let fresh = Arc::new(AtomicU64::new(0));
    let cap = SessionLimit::new(
        NonZeroU32::new(CAP).ok_or_else(|| BenchError::new("cap", "zero"))?,
        LimitMode::EvictOldest,
    );
    let mut rows: Vec<(&'static str, RateOp)> = Vec::new();
    let (c, k, v) = (conn.clone(), Arc::clone(&keys), Arc::clone(&value));
    rows.push((
        "SET of a record-sized value (the peer's refresh, or its login's write)",
        Arc::new(move |t, n| {
            let (mut c, key, v) = (c.clone(), k.get(pick(t, n)).cloned(), Arc::clone(&v));
            Box::pin(async move {
                let key = key.ok_or_else(|| BenchError::new("pick", "no such key"))?;
                redis::cmd("SET")
                    .arg(key)
                    .arg(v.as_slice())
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(BenchError::with("SET"))
            })
        }),
    ));
    for (name, function, args) in [
        (
            "FCALL of the bare compare-and-swap (a rotation's floor above)",
            "commandstats_cas",
            vec![Arc::clone(&token), Arc::clone(&token)],
        ),
        (
            "FCALL of the bare check-and-mark (a revoke's floor above)",
            "commandstats_mark",
            vec![Arc::clone(&stamp)],
        ),
    ] {
        let (c, k, args) = (conn.clone(), Arc::clone(&keys), Arc::new(args));
        rows.push((
            name,
            Arc::new(move |t, n| {
                let (mut c, key, args) = (c.clone(), k.get(pick(t, n)).cloned(), Arc::clone(&args));
                Box::pin(async move {
                    let key = key.ok_or_else(|| BenchError::new("pick", "no such key"))?;
                    let mut call = redis::cmd("FCALL");
                    call.arg(function).arg(1).arg(key);
                    for arg in args.iter() {
                        call.arg(arg.as_slice());
                    }
                    call.query_async::<redis::Value>(&mut c)
                        .await
                        .map(drop)
                        .map_err(BenchError::with("FCALL"))
                })
            }),
        ));
    }
    let (c, f, v) = (conn.clone(), Arc::clone(&fresh), Arc::clone(&value));
    rows.push((
        "FCALL of a login's commands alone on new keys (its floor above)",
        Arc::new(move |_, _| {
            let (mut c, n, v) = (c.clone(), f.fetch_add(1, Ordering::Relaxed), Arc::clone(&v));
            Box::pin(async move {
                redis::cmd("FCALL")
                    .arg("commandstats_login")
                    .arg(2)
                    .arg(format!("{PREFIX}rate:login:{{{n}}}:s"))
                    .arg(format!("{PREFIX}rate:login:{{{n}}}:u"))
                    .arg(v.as_slice())
                    .query_async::<redis::Value>(&mut c)
                    .await
                    .map(drop)
                    .map_err(BenchError::with("FCALL"))
            })
        }),
    ));
    let (st, h) = (Arc::clone(&store), Arc::clone(&held));
    rows.push((
        "RedisStore::rotate (our refresh's store call)",
        Arc::new(move |t, n| {
            let (s, session) = (Arc::clone(&st), h.get(pick(t, n)).copied());
            Box::pin(async move {
                let (id, hash) =
                    session.ok_or_else(|| BenchError::new("pick", "no such session"))?;
                let now = SystemClock.now();
                match s
                    .rotate(Rotation {
                        id,
                        presented: hash,
                        next: hash,
                        now,
                        idle_expires_at: now + Duration::from_secs(3600),
                        device: None,
                    })
                    .await
                    .map_err(BenchError::with("rotate"))?
                {
                    RotateOutcome::Rotated(_) => Ok(()),
                    other => Err(BenchError::new("rotate", format!("{other:?}"))),
                }
            })
        }),
    ));
    let (st, f) = (Arc::clone(&store), Arc::clone(&fresh));
    rows.push((
        "RedisStore::create, cap 20, a new user (our login's store call)",
        Arc::new(move |_, _| {
            let (s, n) = (Arc::clone(&st), f.fetch_add(1, Ordering::Relaxed));
            Box::pin(async move {
                let user =
                    UserId::new(format!("rate-login-{n}")).map_err(BenchError::with("user"))?;
                s.create(record(&user, SystemClock.now())?, cap)
                    .await
                    .map(drop)
                    .map_err(BenchError::with("create"))
            })
        }),
    ));
    let mut rates: Vec<(&'static str, Vec<f64>)> =
        rows.iter().map(|(name, _)| (*name, Vec::new())).collect();
    for _ in 0..rounds {
        for ((_, op), (_, rate)) in rows.iter().zip(rates.iter_mut()) {
            let op = Arc::clone(op);
            rate.push(ops_per_second(RATE_TASKS, seconds, move |t, n| op(t, n)).await?);
        }
    }
    floor_library(admin, false).await?;
    Ok(rates)
}

async fn scrub(admin: &mut MultiplexedConnection) -> Result<(), BenchError> {
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await
            .map_err(BenchError::with("SCAN"))?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<u64>(admin)
                .await
                .map_err(BenchError::with("UNLINK"))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

async fn run(args: Args) -> Result<(), BenchError> {
    let (_server, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (server, url) = start_server().await?;
            (Some(server), url)
        }
    };
    let client = redis::Client::open(url.as_str()).map_err(BenchError::with("client"))?;
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .map_err(BenchError::with("connect"))?;
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query_async::<String>(&mut admin)
        .await
        .map_err(BenchError::with("INFO server"))?
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .to_owned();
    scrub(&mut admin).await?;
    let mut sections = Vec::new();
    let mut len = 0;
    for &functions in &args.modes {
        let (rows, record_len) = measure_store(&url, &mut admin, functions, args.calls).await?;
        len = record_len;
        sections.push((functions, rows));
    }
    let set = measure_set(&mut admin, args.calls, len).await?;
    let floor = if args.modes.contains(&true) {
        measure_floor(&mut admin, args.calls, len).await?
    } else {
        Vec::new()
    };
    let rates = if args.modes.contains(&true) && !args.rate_seconds.is_zero() {
        measure_rates(&url, &mut admin, len, args.rate_seconds, 2).await?
    } else {
        Vec::new()
    };
    scrub(&mut admin).await?;

    println!(
        "Redis {version}, {} calls per operation, one at a time; server time from INFO commandstats (usec_per_call of the command named)\n",
        args.calls
    );
    println!("| mode | operation | command | calls | µs per call | × SET |");
    println!("|---|---|---|---:|---:|---:|");
    for (functions, rows) in &sections {
        let mode = if *functions { "functions" } else { "scripts" };
        for row in rows {
            println!(
                "| {mode} | {} | {} | {} | {:.2} | {:.2} |",
                row.name,
                row.command,
                row.calls,
                row.usec,
                row.usec / set.usec
            );
        }
    }
    println!(
        "| | {} ({len} bytes) | {} | {} | {:.2} | 1.00 |",
        set.name, set.command, set.calls, set.usec
    );
    for row in &floor {
        println!(
            "| | {} | {} | {} | {:.2} | {:.2} |",
            row.name,
            row.command,
            row.calls,
            row.usec,
            row.usec / set.usec
        );
    }
    if let Some(set) = rates.first().map(|(_, r)| r.clone()) {
        println!(
            "\nThroughput at {RATE_TASKS} tasks ({} s per row, rows back to back, two rounds; × SET of the same round)\n",
            args.rate_seconds.as_secs_f64()
        );
        println!("| row | round 1 ops/s | × SET | round 2 ops/s | × SET |");
        println!("|---|---:|---:|---:|---:|");
        for (name, rate) in &rates {
            let cells: Vec<String> = rate
                .iter()
                .zip(&set)
                .map(|(r, s)| format!("{r:.0} | {:.2}", r / s))
                .collect();
            println!("| {name} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
