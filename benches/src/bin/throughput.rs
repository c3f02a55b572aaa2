//! The throughput harness: every store, its raw limit and its tower-sessions peer, side by
//! side, with N concurrent tasks for a fixed time per operation; a markdown report on stdout.
//!
//! ```text
//! cargo run --release -p session-benches --bin throughput -- \
//!     [--stores memory,sqlite,postgres,mysql,redis] [--tasks 1,16] [--seconds-per-row 2] \
//!     [--flat-large N] [--flat-large-db N] [--cache-only | --no-cache] [--revocations N] [--smoke]
//! ```
//!
//! With Redis or PostgreSQL among the stores, the run also measures the near cache
//! (`session-cache`): validate through it at the highest task count against the raw round trip,
//! its hit rate, and the revocation visibility between two instances (`--cache-only` measures
//! only that).
//!
//! Exits non-zero on any store error.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line report: printing is its purpose"
)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_benches::{
    BenchError, Budget, Lane, Op, Ours, RawMemory, RawRedis, RawSql, RedisTopology, RowStats,
    Servers, StoreKind, Target, Visibility, bench_config, connect_cached, connect_cached_redis,
    connect_ours, resident_bytes, revocation_visibility, run_row, scrub_redis, sql_table_names,
    tower_memory, tower_postgres, tower_redis,
};
use session_core::{Clock, LoginRequest, SessionManager, SystemClock, UserId};
use session_memory::MemoryStore;

/// Sessions the memory footprint is measured over.
const FOOTPRINT_SESSIONS: usize = 1_000_000;
/// Sessions the Redis footprint is measured over.
const REDIS_FOOTPRINT_SESSIONS: usize = 1_000;
/// Bytes of a database row body in the raw SQL limit (our row with 0 bytes of app data is
/// about this size: ids, user id, four instants, two token hashes, counters).
const SQL_BODY_BYTES: usize = 200;

#[derive(Debug, Clone)]
struct Args {
    stores: Vec<StoreKind>,
    tasks: Vec<usize>,
    row: Duration,
    smoke: bool,
    flat_small: usize,
    flat_large: Option<usize>,
    flat_large_db: usize,
    footprint: usize,
    cache: CacheRows,
    revocations: usize,
    /// Redis deployments whose revocation visibility is measured too.
    redis_topologies: Vec<RedisTopology>,
}

/// Whether the near-cache rows are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheRows {
    /// Beside everything else (the default).
    Also,
    /// Alone.
    Only,
    /// Not at all.
    Skip,
}

fn parse_args() -> Result<Args, BenchError> {
    let mut args = Args {
        stores: StoreKind::ALL.to_vec(),
        tasks: vec![1, 16],
        row: Duration::from_secs(2),
        smoke: false,
        flat_small: 1_000,
        flat_large: None,
        flat_large_db: 100_000,
        footprint: FOOTPRINT_SESSIONS,
        cache: CacheRows::Also,
        revocations: 200,
        redis_topologies: Vec::new(),
    };
    let mut row_given = false;
    let mut it = std::env::args().skip(1);
    let bad = |flag: &str, e: &dyn std::fmt::Display| BenchError::new(flag.to_owned(), e);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| BenchError::new(flag.clone(), "needs a value"))
        };
        match flag.as_str() {
            "--stores" => {
                args.stores = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--tasks" => {
                args.tasks = value()?
                    .split(',')
                    .map(|n| n.parse::<usize>().map_err(|e| bad("--tasks", &e)))
                    .collect::<Result<_, _>>()?;
                if args.tasks.contains(&0) {
                    return Err(BenchError::new("--tasks", "at least 1 task"));
                }
            }
            "--seconds-per-row" => {
                let secs: f64 = value()?.parse().map_err(|e| bad("--seconds-per-row", &e))?;
                args.row =
                    Duration::try_from_secs_f64(secs).map_err(|e| bad("--seconds-per-row", &e))?;
                row_given = true;
            }
            "--flat-large" => {
                args.flat_large = Some(value()?.parse().map_err(|e| bad("--flat-large", &e))?);
            }
            "--flat-large-db" => {
                args.flat_large_db = value()?.parse().map_err(|e| bad("--flat-large-db", &e))?;
            }
            "--smoke" => args.smoke = true,
            "--cache-only" => args.cache = CacheRows::Only,
            "--no-cache" => args.cache = CacheRows::Skip,
            "--revocations" => {
                args.revocations = value()?.parse().map_err(|e| bad("--revocations", &e))?;
                if args.revocations == 0 {
                    return Err(BenchError::new("--revocations", "at least 1"));
                }
            }
            "--redis-topologies" => {
                args.redis_topologies = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--help" | "-h" => {
                println!(
                    "throughput [--stores memory,sqlite,postgres,mysql,redis] [--tasks 1,16] \
                     [--seconds-per-row 2] [--flat-large N] [--flat-large-db N] \
                     [--cache-only | --no-cache] [--revocations 200] \
                     [--redis-topologies sentinel,cluster] [--smoke]\n\n\
                     --cache-only: only the near-cache rows (Redis and PostgreSQL among --stores)\n\
                     --no-cache: no near-cache rows\n\
                     --revocations: revocations timed for the revocation-visibility row\n\
                     --redis-topologies: revocation visibility on these Redis deployments too \
                     (BENCH_REDIS_SENTINELS, BENCH_REDIS_CLUSTER; by default the topologies of \
                     scripts/redis-topology.sh)"
                );
                std::process::exit(0);
            }
            other => {
                return Err(BenchError::new(
                    "arguments",
                    format!("unknown flag `{other}`"),
                ));
            }
        }
    }
    if args.smoke {
        if !row_given {
            args.row = Duration::from_millis(150);
        }
        args.flat_small = 100;
        args.flat_large.get_or_insert(2_000);
        args.footprint = 20_000;
        args.revocations = args.revocations.min(20);
    }
    Ok(args)
}

/// One line of the table.
struct Row {
    store: StoreKind,
    op: Op,
    tasks: usize,
    ours: Option<RowStats>,
    limit: Option<RowStats>,
    peer: Option<RowStats>,
}

/// How validate's cost changes with the number of live sessions.
struct Flatness {
    store: String,
    small: usize,
    large: usize,
    tasks: usize,
    at_small: RowStats,
    at_large: RowStats,
}

/// Validate through the near cache against the raw round trip, on one store.
struct CacheRow {
    store: StoreKind,
    tasks: usize,
    cached: RowStats,
    uncached: RowStats,
    limit: RowStats,
    hit_rate: f64,
}

/// Everything a run measured.
#[derive(Default)]
struct Report {
    cache_rows: Vec<CacheRow>,
    /// Per backend: its name in tables (`redis`, `postgres`, `redis (sentinel)`, …) and what
    /// was measured.
    visibility: Vec<(String, Visibility)>,
    rows: Vec<Row>,
    memory_bytes_per_session: Option<(usize, f64)>,
    raw_memory_bytes_per_entry: Option<f64>,
    redis_bytes_per_session: Option<(usize, f64, usize)>,
    flatness: Vec<Flatness>,
    /// Failures while filling stores for the flatness figures.
    fill_errors: Vec<String>,
}

impl Report {
    fn failures(&self) -> u64 {
        let rows: u64 = self
            .rows
            .iter()
            .flat_map(|r| [&r.ours, &r.limit, &r.peer])
            .flatten()
            .map(|s| s.errors)
            .sum();
        let flat: u64 = self
            .flatness
            .iter()
            .map(|f| f.at_small.errors + f.at_large.errors)
            .sum();
        let cache: u64 = self
            .cache_rows
            .iter()
            .map(|c| c.cached.errors + c.uncached.errors + c.limit.errors)
            .sum();
        rows + flat + cache + u64::try_from(self.fill_errors.len()).unwrap_or(u64::MAX)
    }
}

/// Per-task login budget: at most `total` sessions per lane (so fast in-memory targets do not
/// fill gigabytes), and at least one.
fn budget(total: usize, tasks: usize) -> Budget {
    Budget::new((total / tasks).max(1))
}

/// The size of one of our Redis session records (the length of its string).
async fn redis_record_bytes(
    url: &str,
    manager: &SessionManager,
    run: &str,
) -> Result<usize, BenchError> {
    let ctx = "redis record size";
    let user = UserId::new(format!("{run}-probe")).map_err(|e| BenchError::new(ctx, e))?;
    let login = manager
        .login(&user, LoginRequest::new())
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    let client = redis::Client::open(url).map_err(|e| BenchError::new(ctx, e))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    let pattern = format!("{}*{}", sql_table_names::REDIS_OURS, login.session.id);
    let keys = scan(&mut conn, &pattern).await?;
    let key = keys
        .first()
        .ok_or_else(|| BenchError::new(ctx, "the probe session's key was not found"))?;
    let bytes: usize = redis::cmd("STRLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    manager
        .logout(&login.session.id)
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    Ok(bytes)
}

async fn scan(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Result<Vec<String>, BenchError> {
    let mut cursor = 0_u64;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .map_err(|e| BenchError::new("redis scan", e))?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

/// Runs every operation on every lane at one concurrency, interleaving the lanes per
/// operation so that ours, the limit and the peer see the same machine state.
async fn run_lanes(
    store: StoreKind,
    tasks: usize,
    row: Duration,
    mut ours: Lane,
    mut limit: Lane,
    mut peer: Option<Lane>,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    for op in Op::ALL {
        eprintln!("  {store} / {op} / {tasks} tasks");
        let ours_stats = ours.run(op, row).await?;
        let limit_stats = limit.run(op, row).await?;
        let peer_stats = match peer.as_mut() {
            Some(lane) => lane.run(op, row).await?,
            None => None,
        };
        rows.push(Row {
            store,
            op,
            tasks,
            ours: ours_stats,
            limit: limit_stats,
            peer: peer_stats,
        });
    }
    Ok(())
}

async fn measure_store(
    kind: StoreKind,
    args: &Args,
    servers: &Servers,
    run: &str,
    report: &mut Report,
) -> Result<(), BenchError> {
    let total = if args.smoke { 2_000 } else { 1_000_000 };
    let mut redis_value: Option<usize> = None;
    for (round, &tasks) in args.tasks.iter().enumerate() {
        // The round too: `--tasks 16,16` must not log the same users in twice on a store
        // that keeps its data between rounds.
        let run = format!("{run}-{kind}-{round}x{tasks}");
        let ours_budget = budget(total, tasks);
        let opened = connect_ours(kind, servers).await?;
        let pool = opened.db.clone();
        let target = Ours::new(opened.store, bench_config(), &run, ours_budget)?;
        if kind == StoreKind::Redis && redis_value.is_none() {
            redis_value = Some(redis_record_bytes(&servers.redis, target.manager(), &run).await?);
        }
        let ours = Lane::new(target, tasks);
        let (limit, peer) = match kind {
            StoreKind::Memory => (
                Lane::new(RawMemory::new(&run, budget(total, tasks)), tasks),
                Some(Lane::new(tower_memory(&run, budget(total, tasks)), tasks)),
            ),
            StoreKind::Redis => {
                scrub_redis(&servers.redis, sql_table_names::REDIS_RAW).await?;
                let value = redis_value.ok_or_else(|| {
                    BenchError::new("redis record size", "not measured before the limit")
                })?;
                let raw = RawRedis::connect(
                    &servers.redis,
                    sql_table_names::REDIS_RAW,
                    value,
                    &run,
                    budget(total, tasks),
                )
                .await?;
                let peer = tower_redis(&servers.redis, &run, budget(total, tasks)).await?;
                (Lane::new(raw, tasks), Some(Lane::new(peer, tasks)))
            }
            StoreKind::Sqlite | StoreKind::Postgres | StoreKind::MySql => {
                let db = pool.ok_or_else(|| BenchError::new(kind.name(), "no pool"))?;
                let raw = RawSql::new(
                    db,
                    sql_table_names::RAW,
                    SQL_BODY_BYTES,
                    &run,
                    budget(total, tasks),
                )
                .await?;
                let peer = if kind == StoreKind::Postgres {
                    let tower = tower_postgres(
                        &servers.postgres,
                        sql_table_names::TOWER,
                        &run,
                        budget(total, tasks),
                    )
                    .await?;
                    Some(Lane::new(tower, tasks))
                } else {
                    None
                };
                (Lane::new(raw, tasks), peer)
            }
        };
        run_lanes(kind, tasks, args.row, ours, limit, peer, &mut report.rows).await?;
    }
    if kind == StoreKind::Redis {
        scrub_redis(&servers.redis, sql_table_names::REDIS_PREFIX).await?;
    }
    Ok(())
}

/// Login (untimed for the figures) then validate on a fresh lane of `target`.
async fn validate_row<T: Target>(
    target: T,
    tasks: usize,
    row: Duration,
) -> Result<RowStats, BenchError> {
    let mut lane = Lane::new(target, tasks);
    lane.run(Op::Login, row).await?;
    lane.run(Op::Validate, row)
        .await?
        .ok_or_else(|| BenchError::new("validate", "no validate row"))
}

/// The near cache on `kind`: validate through it, through the bare store and as the raw round
/// trip, at the highest task count, then the revocation visibility between two instances.
async fn measure_cache(
    kind: StoreKind,
    args: &Args,
    servers: &Servers,
    run: &str,
    report: &mut Report,
) -> Result<(), BenchError> {
    let tasks = args.tasks.iter().copied().max().unwrap_or(16);
    let sessions = if args.smoke { 200 } else { 1_000 };
    let run = format!("{run}-cache-{kind}");
    eprintln!("  {kind} / near cache / validate at {tasks} tasks");
    let a = connect_cached(kind, servers, true).await?;
    let b = connect_cached(kind, servers, false).await?;
    let before = a.cached.stats();
    let cached = validate_row(
        Ours::new(
            Arc::new(a.cached.clone()),
            bench_config(),
            &format!("{run}-c"),
            budget(sessions, tasks),
        )?,
        tasks,
        args.row,
    )
    .await?;
    let after = a.cached.stats();
    let served = |s: session_cache::CacheStats| (s.hits, s.misses + s.bypassed);
    let (hits, misses) = (
        served(after).0 - served(before).0,
        served(after).1 - served(before).1,
    );
    let hit_rate = if hits + misses == 0 {
        0.0
    } else {
        session_benches_f64(hits) / session_benches_f64(hits + misses)
    };
    let uncached = validate_row(
        Ours::new(
            Arc::clone(&a.raw),
            bench_config(),
            &format!("{run}-u"),
            budget(sessions, tasks),
        )?,
        tasks,
        args.row,
    )
    .await?;
    let limit = match kind {
        StoreKind::Redis => {
            scrub_redis(&servers.redis, sql_table_names::REDIS_RAW).await?;
            let raw = RawRedis::connect(
                &servers.redis,
                sql_table_names::REDIS_RAW,
                SQL_BODY_BYTES,
                &run,
                budget(sessions, tasks),
            )
            .await?;
            validate_row(raw, tasks, args.row).await?
        }
        _ => {
            let db =
                a.db.clone()
                    .ok_or_else(|| BenchError::new(kind.name(), "no pool"))?;
            let raw = RawSql::new(
                db,
                sql_table_names::RAW,
                SQL_BODY_BYTES,
                &run,
                budget(sessions, tasks),
            )
            .await?;
            validate_row(raw, tasks, args.row).await?
        }
    };
    report.cache_rows.push(CacheRow {
        store: kind,
        tasks,
        cached,
        uncached,
        limit,
        hit_rate,
    });
    eprintln!(
        "  {kind} / near cache / revocation visibility over {} revocations",
        args.revocations
    );
    let visibility = revocation_visibility(&a, &b, args.revocations, &run).await?;
    report.visibility.push((kind.name().to_owned(), visibility));
    if kind == StoreKind::Redis {
        scrub_redis(&servers.redis, sql_table_names::REDIS_PREFIX).await?;
    }
    Ok(())
}

/// The revocation visibility between two instances on a Redis Sentinel or Cluster deployment.
async fn measure_topology_visibility(
    topology: RedisTopology,
    args: &Args,
    servers: &Servers,
    run: &str,
    report: &mut Report,
) -> Result<(), BenchError> {
    let name = topology.name();
    eprintln!(
        "redis {name} (near cache): revocation visibility over {} revocations",
        args.revocations
    );
    let prefix = format!("{}{run}:", sql_table_names::REDIS_CACHED);
    let a = connect_cached_redis(topology, servers, &prefix).await?;
    let b = connect_cached_redis(topology, servers, &prefix).await?;
    let visibility =
        revocation_visibility(&a, &b, args.revocations, &format!("{run}-{name}")).await?;
    report
        .visibility
        .push((format!("redis ({name})"), visibility));
    Ok(())
}

/// Validate's cost at `small` live sessions, then at `large`, on one target.
/// The sizes and row length of one flatness measurement.
#[derive(Clone, Copy)]
struct FlatPlan {
    tasks: usize,
    small: usize,
    large: usize,
    row: Duration,
}

/// Validate on `target` with `plan.small` then `plan.large` live sessions, reported under
/// `store`.
async fn flatness<T: Target>(
    store: &str,
    target: T,
    budget: &Budget,
    plan: FlatPlan,
    report: &mut Report,
) -> Result<(), BenchError> {
    let FlatPlan {
        tasks,
        small,
        large,
        row,
    } = plan;
    let fill_errors = &mut report.fill_errors;
    let target = Arc::new(target);
    let mut states: Vec<T::Task> = (0..tasks).map(|i| target.task(i)).collect();
    let fill = Duration::from_secs(3_600);
    let mut note = |stats: &RowStats, size: usize| {
        if stats.errors > 0 {
            fill_errors.push(format!(
                "filling to {size} sessions: {} logins failed (first: {})",
                stats.errors,
                stats.first_error.as_deref().unwrap_or("?")
            ));
        }
    };
    budget.set(small.div_ceil(tasks));
    note(
        &run_row(&target, Op::Login, &mut states, fill).await?,
        small,
    );
    let at_small = run_row(&target, Op::Validate, &mut states, row).await?;
    budget.set(large.div_ceil(tasks));
    note(
        &run_row(&target, Op::Login, &mut states, fill).await?,
        large,
    );
    let at_large = run_row(&target, Op::Validate, &mut states, row).await?;
    report.flatness.push(Flatness {
        store: store.to_owned(),
        small,
        large,
        tasks,
        at_small,
        at_large,
    });
    Ok(())
}

async fn measure_flatness(
    kind: StoreKind,
    args: &Args,
    servers: &Servers,
    run: &str,
    report: &mut Report,
) -> Result<(), BenchError> {
    let tasks = args.tasks.iter().copied().max().unwrap_or(1);
    let large = args.flat_large.unwrap_or(match kind {
        StoreKind::Memory => 1_000_000,
        StoreKind::Redis => 100_000,
        StoreKind::Sqlite | StoreKind::Postgres | StoreKind::MySql => args.flat_large_db,
    });
    let plan = FlatPlan {
        tasks,
        small: args.flat_small,
        large,
        row: args.row,
    };
    let run = format!("{run}-flat-{kind}");
    eprintln!(
        "  {kind} / validate at {} then {large} live sessions",
        plan.small
    );
    {
        let store = connect_ours(kind, servers).await?.store;
        let budget = Budget::new(0);
        let target = Ours::new(store, bench_config(), &run, budget.clone())?;
        flatness(kind.name(), target, &budget, plan, report).await?;
    }
    if kind == StoreKind::Memory {
        let budget = Budget::new(0);
        let target = RawMemory::new(&run, budget.clone());
        flatness("memory limit (bare DashMap)", target, &budget, plan, report).await?;
    }
    if kind == StoreKind::Redis {
        scrub_redis(&servers.redis, sql_table_names::REDIS_PREFIX).await?;
    }
    Ok(())
}

/// Resident memory growth per session over `count` sessions of distinct users, measured in a
/// child process so that earlier rows leave nothing behind in the heap.
fn footprint_in_child(count: usize, raw: bool) -> Result<f64, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::new("footprint", e))?;
    let flag = if raw {
        "--footprint-raw"
    } else {
        "--footprint"
    };
    let output = std::process::Command::new(exe)
        .arg(flag)
        .arg(count.to_string())
        .output()
        .map_err(|e| BenchError::new("footprint", e))?;
    if !output.status.success() {
        return Err(BenchError::new(
            "footprint",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| BenchError::new("footprint output", e))
}

/// The child side of [`footprint_in_child`]: prints bytes per session.
fn footprint_child(count: usize, raw: bool) -> Result<(), BenchError> {
    // The manager bounds every call with a Tokio timer, so the runtime needs its time driver.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| BenchError::new("runtime", e))?;
    runtime.block_on(async {
        let before = resident_bytes()?;
        let growth = if raw {
            let map = RawMemory::new("fp", Budget::new(0));
            for n in 0..count {
                map.insert(n)?;
            }
            let after = resident_bytes()?;
            drop(map);
            after.saturating_sub(before)
        } else {
            let store = Arc::new(MemoryStore::new());
            let manager = SessionManager::new(store, bench_config())
                .map_err(|e| BenchError::new("config", e))?;
            for n in 0..count {
                let user =
                    UserId::new(format!("user-{n}")).map_err(|e| BenchError::new("user", e))?;
                manager
                    .login(&user, LoginRequest::new())
                    .await
                    .map_err(|e| BenchError::new("memory store, login", e))?;
            }
            let after = resident_bytes()?;
            drop(manager);
            after.saturating_sub(before)
        };
        println!(
            "{}",
            session_benches_f64(growth) / session_benches_f64_usize(count)
        );
        Ok(())
    })
}

fn session_benches_f64(value: u64) -> f64 {
    // Exact for any realistic memory size (below 2^53 bytes).
    f64::from(u32::try_from(value >> 20).unwrap_or(u32::MAX)) * 1_048_576.0
        + f64::from(u32::try_from(value & 0xF_FFFF).unwrap_or(0))
}

fn session_benches_f64_usize(value: usize) -> f64 {
    session_benches_f64(u64::try_from(value).unwrap_or(u64::MAX))
}

/// Bytes Redis uses per session of our store (its record and its user's index, one session per
/// user), summed with `MEMORY USAGE` over `count` sessions.
async fn redis_footprint(url: &str, run: &str, count: usize) -> Result<(f64, usize), BenchError> {
    let ctx = "redis footprint";
    let servers = Servers::from_env();
    let store = connect_ours(StoreKind::Redis, &servers).await?.store;
    let manager =
        SessionManager::new(store, bench_config()).map_err(|e| BenchError::new(ctx, e))?;
    for n in 0..count {
        let user = UserId::new(format!("{run}-fp-{n}")).map_err(|e| BenchError::new(ctx, e))?;
        manager
            .login(&user, LoginRequest::new())
            .await
            .map_err(|e| BenchError::new(ctx, e))?;
    }
    let client = redis::Client::open(url).map_err(|e| BenchError::new(ctx, e))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| BenchError::new(ctx, e))?;
    let keys = scan(&mut conn, &format!("{}*", sql_table_names::REDIS_OURS)).await?;
    let mut total = 0_u64;
    for key in &keys {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .map_err(|e| BenchError::new(ctx, e))?;
        total += bytes.unwrap_or(0);
    }
    scrub_redis(url, sql_table_names::REDIS_OURS).await?;
    Ok((
        session_benches_f64(total) / session_benches_f64_usize(count),
        keys.len(),
    ))
}

fn fmt_rate(value: f64) -> String {
    let whole = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_us(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// The figures of a lane only when every one of its operations succeeded.
fn clean(stats: Option<&RowStats>) -> Option<&RowStats> {
    stats.filter(|s| s.is_clean())
}

/// `ours` over `other` in ops/s; `None` when either is missing or had failures.
fn ratio(ours: Option<&RowStats>, other: Option<&RowStats>) -> Option<f64> {
    let (ours, other) = (clean(ours)?, clean(other)?);
    let base = other.ops_per_sec();
    (base > 0.0).then(|| ours.ops_per_sec() / base)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let ram = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown RAM".to_owned(),
            |kb| format!("{} GiB RAM", kb / 1_048_576),
        );
    format!("{cores} cores, {cpu}, {ram}")
}

fn render(report: &Report, args: &Args, took: Duration) -> String {
    let mut out = String::new();
    let command: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(out, "## Throughput\n");
    let _ = writeln!(
        out,
        "Machine: {}. Command: `cargo run --release -p session-benches --bin throughput -- {}` \
         ({} s per row, {:.0} s in all).\n",
        machine(),
        command.join(" "),
        args.row.as_secs_f64(),
        took.as_secs_f64()
    );
    if !report.rows.is_empty() || args.cache != CacheRows::Only {
        render_main(&mut out, report);
    }
    render_cache(&mut out, report);

    let _ = writeln!(out, "\n### Targets\n");
    for line in targets(report, args) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

fn render_main(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| store | operation | tasks | ops/s | p50 µs | p99 µs | limit ops/s | % of limit | tower-sessions ops/s | × vs tower-sessions |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &report.rows {
        let (rate, p50, p99) = match clean(row.ours.as_ref()) {
            Some(s) => (
                fmt_rate(s.ops_per_sec()),
                fmt_us(s.latency_us(0.5)),
                fmt_us(s.latency_us(0.99)),
            ),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let limit =
            clean(row.limit.as_ref()).map_or("—".to_owned(), |s| fmt_rate(s.ops_per_sec()));
        let pct = ratio(row.ours.as_ref(), row.limit.as_ref())
            .map_or("—".to_owned(), |r| format!("{:.0} %", r * 100.0));
        let peer = clean(row.peer.as_ref()).map_or("—".to_owned(), |s| fmt_rate(s.ops_per_sec()));
        let times = ratio(row.ours.as_ref(), row.peer.as_ref())
            .map_or("—".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {rate} | {p50} | {p99} | {limit} | {pct} | {peer} | {times} |",
            row.store, row.op, row.tasks
        );
    }
    let _ = writeln!(
        out,
        "\nLimits: memory = bare `DashMap` insert/get/get_mut of a {}-byte value (a `SessionRecord`); \
         Redis = bare `SET`/`GET`/`SET XX` of a value the size of our record over a \
         `MultiplexedConnection`; SQL = one-row `INSERT`, primary-key `SELECT`, primary-key `UPDATE` \
         of a {SQL_BODY_BYTES}-byte row over a sea-orm pool of 10. Peers: tower-sessions 0.14 \
         `MemoryStore`, `tower-sessions-redis-store` 0.16 (fred pool of 6), \
         `tower-sessions-sqlx-store` 0.15 `PostgresStore` (pool of 10): create for login, load \
         for validate, save for refresh, delete for revoke; no equivalent for list. Logins use a \
         fresh user each; validate runs right after login (no sliding-expiry write). A figure \
         whose lane had any failed operation is shown as — (and so are the ratios built on it): \
         failed operations never count as throughput, and a row with failures has no meaningful \
         rate; the failures are listed under Errors.",
        RawMemory::value_size()
    );

    let failed: Vec<String> = report
        .rows
        .iter()
        .flat_map(|row| {
            [
                ("ours", &row.ours),
                ("limit", &row.limit),
                ("peer", &row.peer),
            ]
            .into_iter()
            .filter_map(move |(lane, stats)| {
                let stats = stats.as_ref()?;
                (stats.errors > 0).then(|| {
                    format!(
                        "{} {} at {} tasks ({lane}): {} failed of {} (first: {})",
                        row.store,
                        row.op,
                        row.tasks,
                        stats.errors,
                        stats.errors + stats.ops,
                        stats.first_error.as_deref().unwrap_or("?")
                    )
                })
            })
        })
        .chain(report.flatness.iter().flat_map(|f| {
            [&f.at_small, &f.at_large]
                .into_iter()
                .filter(|stats| stats.errors > 0)
                .map(move |stats| {
                    format!(
                        "{} validate (flatness): {} failed (first: {})",
                        f.store,
                        stats.errors,
                        stats.first_error.as_deref().unwrap_or("?")
                    )
                })
        }))
        .chain(report.fill_errors.iter().cloned())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\n### Errors (the run exits non-zero)\n");
        for line in &failed {
            let _ = writeln!(out, "- {line}");
        }
    }

    let _ = writeln!(out, "\n### Memory per session\n");
    if let Some((count, bytes)) = report.memory_bytes_per_session {
        let _ = writeln!(
            out,
            "- memory store: **{bytes:.0} bytes** per session (RSS growth over {count} sessions of \
             distinct users, 0 bytes of app data, through `SessionManager::login`; includes the \
             user index and the user id text)"
        );
    }
    if let Some(bytes) = report.raw_memory_bytes_per_entry {
        let _ = writeln!(
            out,
            "- for scale, a bare `DashMap<SessionId, [u8; {}]>`: {bytes:.0} bytes per entry",
            RawMemory::value_size()
        );
    }
    if let Some((count, bytes, keys)) = report.redis_bytes_per_session {
        let _ = writeln!(
            out,
            "- redis store: **{bytes:.0} bytes** per session (`MEMORY USAGE` summed over the {keys} \
             keys of {count} sessions of distinct users: the session record and its user index)"
        );
    }

    if !report.flatness.is_empty() {
        let _ = writeln!(out, "\n### Validate vs live sessions\n");
        let _ = writeln!(
            out,
            "| store | tasks | live sessions | ops/s | p50 µs | p99 µs | live sessions | ops/s | p50 µs | p99 µs | ops/s ratio |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let figures = |stats: &RowStats| {
            if stats.is_clean() {
                [
                    fmt_rate(stats.ops_per_sec()),
                    fmt_us(stats.latency_us(0.5)),
                    fmt_us(stats.latency_us(0.99)),
                ]
                .join(" | ")
            } else {
                "— | — | —".to_owned()
            }
        };
        for f in &report.flatness {
            let r = ratio(Some(&f.at_large), Some(&f.at_small))
                .map_or("—".to_owned(), |r| format!("{r:.2}"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {r} |",
                f.store,
                f.tasks,
                fmt_rate(session_benches_f64_usize(f.small)),
                figures(&f.at_small),
                fmt_rate(session_benches_f64_usize(f.large)),
                figures(&f.at_large),
            );
        }
    }
}

fn render_cache(out: &mut String, report: &Report) {
    if !report.cache_rows.is_empty() {
        let _ = writeln!(out, "\n### Near cache: validate\n");
        let _ = writeln!(
            out,
            "| store | tasks | cached ops/s | p50 µs | p99 µs | hit rate | raw round trip ops/s | × raw | uncached ops/s | × uncached |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &report.cache_rows {
            let figures = clean(Some(&row.cached)).map_or_else(
                || "— | — | —".to_owned(),
                |s| {
                    format!(
                        "{} | {} | {}",
                        fmt_rate(s.ops_per_sec()),
                        fmt_us(s.latency_us(0.5)),
                        fmt_us(s.latency_us(0.99))
                    )
                },
            );
            let rate = |s: &RowStats| {
                clean(Some(s)).map_or("—".to_owned(), |s| fmt_rate(s.ops_per_sec()))
            };
            let times = |other: &RowStats| {
                ratio(Some(&row.cached), Some(other))
                    .map_or("—".to_owned(), |r| format!("{r:.1}×"))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {figures} | {:.2} % | {} | {} | {} | {} |",
                row.store,
                row.tasks,
                row.hit_rate * 100.0,
                rate(&row.limit),
                times(&row.limit),
                rate(&row.uncached),
                times(&row.uncached),
            );
        }
        let _ = writeln!(
            out,
            "\nCached: our store behind `session-cache` (Redis: `CLIENT TRACKING` invalidation; \
             PostgreSQL: `LISTEN/NOTIFY` from the change trigger), through `SessionManager::validate`, \
             1 000 sessions validated round robin. Raw round trip: a bare `GET` of a \
             {SQL_BODY_BYTES}-byte value (Redis) or a primary-key `SELECT` of a {SQL_BODY_BYTES}-byte \
             row (PostgreSQL). Uncached: the same store without the cache. Hit rate: `find` calls \
             answered from memory during the cached row (the misses are each session's first \
             validation)."
        );
    }
    if !report.visibility.is_empty() {
        let _ = writeln!(out, "\n### Near cache: revocation visibility\n");
        let _ = writeln!(
            out,
            "| store | revocations | p50 µs | p99 µs | max µs | the revoke's own round trip: p50 µs | p99 µs | validations accepted after the revoke was sent |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (store, v) in &report.visibility {
            let q = |q: f64| fmt_us(session_benches_f64(v.micros.value_at_quantile(q)));
            let r = |q: f64| fmt_us(session_benches_f64(v.revoke_micros.value_at_quantile(q)));
            let _ = writeln!(
                out,
                "| {store} | {} | {} | {} | {} | {} | {} | {} |",
                v.micros.len(),
                q(0.5),
                q(0.99),
                fmt_us(session_benches_f64(v.micros.max())),
                r(0.5),
                r(0.99),
                v.accepted_after
            );
        }
        let _ = writeln!(
            out,
            "\nTwo instances on one backend, each with its own store connections and near cache. \
             Per revocation: a login through A; B validates until it answers from memory; a task \
             validates through B in a loop (a thread of its own, one validation every 100 µs: the \
             measurement's resolution) while A logs the session out; the time runs from the \
             moment A sends the revocation (its round trip included) to B's first refusal. The \
             revoke's own round trip is the part spent before the write committed (on PostgreSQL \
             a commit waits for the WAL flush)."
        );
    }
}

fn cache_targets(report: &Report, args: &Args, lines: &mut Vec<String>) {
    if args.cache == CacheRows::Skip {
        return;
    }
    for (store, floor, limit) in [
        (StoreKind::Redis, 5.0, "a bare Redis `GET`"),
        (StoreKind::Postgres, 10.0, "a PostgreSQL primary-key select"),
    ] {
        if !args.stores.contains(&store) {
            continue;
        }
        let name = format!("cached validate at 16 tasks is at least {floor:.0}× {limit}");
        let row = report.cache_rows.iter().find(|r| r.store == store);
        match row.and_then(|r| ratio(Some(&r.cached), Some(&r.limit))) {
            Some(r) => lines.push(format!(
                "{name}: {} ({r:.1}×, at {} tasks)",
                verdict(r >= floor),
                row.map_or(0, |r| r.tasks)
            )),
            None => lines.push(format!("{name}: not measured")),
        }
    }
    for store in [StoreKind::Redis, StoreKind::Postgres] {
        if !args.stores.contains(&store) {
            continue;
        }
        visibility_target(report, store.name(), lines);
    }
    for topology in &args.redis_topologies {
        visibility_target(report, &format!("redis ({})", topology.name()), lines);
    }
}

/// The revocation-visibility target (p99 ≤ 5 ms) on the backend named `store` in the tables.
fn visibility_target(report: &Report, store: &str, lines: &mut Vec<String>) {
    let name = format!("revocation visible on the other instance within 5 ms at p99 on {store}");
    match report.visibility.iter().find(|(s, _)| s == store) {
        Some((_, v)) => {
            let p99 = v.micros.value_at_quantile(0.99);
            lines.push(format!("{name}: {} ({} µs)", verdict(p99 <= 5_000), p99));
        }
        None => lines.push(format!("{name}: not measured")),
    }
}

fn find(report: &Report, store: StoreKind, op: Op, tasks: usize) -> Option<&Row> {
    report
        .rows
        .iter()
        .find(|r| r.store == store && r.op == op && r.tasks == tasks)
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

fn targets(report: &Report, args: &Args) -> Vec<String> {
    let mut lines = Vec::new();
    if args.cache == CacheRows::Only {
        cache_targets(report, args, &mut lines);
        return lines;
    }
    let tasks = 16;
    let measured = args.tasks.contains(&tasks);
    for (store, floor) in [
        (StoreKind::Redis, 0.80),
        (StoreKind::Postgres, 0.80),
        (StoreKind::Memory, 0.50),
    ] {
        let name = format!(
            "validate at {tasks} tasks reaches {:.0} % of the raw limit on {store}",
            floor * 100.0
        );
        let row = find(report, store, Op::Validate, tasks);
        match row.and_then(|r| ratio(r.ours.as_ref(), r.limit.as_ref())) {
            Some(r) => lines.push(format!(
                "{name}: {} ({:.0} %)",
                verdict(r >= floor),
                r * 100.0
            )),
            None if !measured || !args.stores.contains(&store) => {
                lines.push(format!("{name}: not measured in this run"));
            }
            None if row.is_some() => {
                lines.push(format!(
                    "{name}: not measured (operations failed, see Errors)"
                ));
            }
            None => lines.push(format!("{name}: not measured")),
        }
    }
    let mut compared = Vec::new();
    let mut worst: Option<(f64, String)> = None;
    let mut failed = Vec::new();
    for row in report.rows.iter().filter(|r| r.tasks == tasks) {
        if row.ours.is_some()
            && row.peer.is_some()
            && ratio(row.ours.as_ref(), row.peer.as_ref()).is_none()
        {
            failed.push(format!("{} {}", row.store, row.op));
        }
        if let Some(r) = ratio(row.ours.as_ref(), row.peer.as_ref()) {
            compared.push(format!("{} {} {r:.2}×", row.store, row.op));
            if worst.as_ref().is_none_or(|(w, _)| r < *w) {
                worst = Some((r, format!("{} {}", row.store, row.op)));
            }
        }
    }
    let name = format!(
        "every store beats or matches (≥ 0.95×) its tower-sessions peer on every compared operation at {tasks} tasks"
    );
    let not_compared = if failed.is_empty() {
        String::new()
    } else {
        format!("; not compared, operations failed: {}", failed.join(", "))
    };
    match worst {
        Some((w, at)) => lines.push(format!(
            "{name}: {} (lowest: {at} {w:.2}×; {}{not_compared})",
            verdict(w >= 0.95 && failed.is_empty()),
            compared.join(", ")
        )),
        None if failed.is_empty() => lines.push(format!("{name}: not measured in this run")),
        None => lines.push(format!("{name}: not measured{not_compared}")),
    }
    cache_targets(report, args, &mut lines);
    let name = "memory store at most 300 bytes per session beyond the app data";
    match report.memory_bytes_per_session {
        Some((_, bytes)) => lines.push(format!(
            "{name}: {} ({bytes:.0} bytes)",
            verdict(bytes <= 300.0)
        )),
        None => lines.push(format!("{name}: not measured in this run")),
    }
    lines
}

async fn run(args: &Args) -> Result<Report, BenchError> {
    let servers = Servers::from_env();
    let nonce = SystemClock.now().unix_timestamp_nanos() % 1_000_000_000;
    let run = format!("b{}x{nonce}", std::process::id());
    let mut report = Report::default();
    if args.cache != CacheRows::Skip {
        for &kind in &args.stores {
            if matches!(kind, StoreKind::Redis | StoreKind::Postgres) {
                eprintln!("{kind} (near cache):");
                measure_cache(kind, args, &servers, &run, &mut report).await?;
            }
        }
    }
    if args.cache != CacheRows::Skip {
        for &topology in &args.redis_topologies {
            measure_topology_visibility(topology, args, &servers, &run, &mut report).await?;
        }
    }
    if args.cache == CacheRows::Only {
        return Ok(report);
    }
    for &kind in &args.stores {
        eprintln!("{kind}:");
        measure_store(kind, args, &servers, &run, &mut report).await?;
    }
    for &kind in &args.stores {
        measure_flatness(kind, args, &servers, &run, &mut report).await?;
    }
    if args.stores.contains(&StoreKind::Memory) {
        eprintln!("memory footprint over {} sessions", args.footprint);
        report.memory_bytes_per_session =
            Some((args.footprint, footprint_in_child(args.footprint, false)?));
        report.raw_memory_bytes_per_entry = Some(footprint_in_child(args.footprint, true)?);
    }
    if args.stores.contains(&StoreKind::Redis) {
        let count = if args.smoke {
            100
        } else {
            REDIS_FOOTPRINT_SESSIONS
        };
        let (bytes, keys) = redis_footprint(&servers.redis, &run, count).await?;
        report.redis_bytes_per_session = Some((count, bytes, keys));
    }
    let _ = std::fs::remove_file(&servers.sqlite_path);
    for suffix in ["-wal", "-shm"] {
        let mut path = servers.sqlite_path.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    Ok(report)
}

fn main() -> ExitCode {
    let mut raw = std::env::args().skip(1);
    if let Some(flag @ ("--footprint" | "--footprint-raw")) = raw.next().as_deref() {
        let is_raw = flag == "--footprint-raw";
        let count = raw
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(FOOTPRINT_SESSIONS);
        return match footprint_child(count, is_raw) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            println!("{}", render(&report, &args, started.elapsed()));
            let failures = report.failures();
            if failures == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: {failures} store operations failed (see the Errors section)");
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
