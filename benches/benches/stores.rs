//! Criterion benches: each operation of the session manager, one caller at a time, on every
//! store of the workspace.
//!
//! ```text
//! cargo bench -p session-benches --bench stores                          # every store
//! BENCH_STORES=memory,redis cargo bench -p session-benches --bench stores  # some of them
//! ```
//!
//! The server stores use the local servers (`scripts/services.sh up` starts them) or the
//! `BENCH_*_URL` variables; a store whose server is down aborts the run with a message that
//! says so. Tables and keys are the benches' own (`bench_sessions`, `bench:`).
#![expect(
    clippy::expect_used,
    reason = "a bench aborts, loudly, on a broken setup or a failed operation"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use session_benches::{
    Servers, StoreKind, bench_config, connect_ours, scrub_redis, sql_table_names,
};
use session_core::{LoginRequest, SessionManager, UserId};

/// Sessions validated in turn (so the lookups do not all hit one cache line).
const VALIDATE_POOL: usize = 1_000;

fn stores() -> Vec<StoreKind> {
    match std::env::var("BENCH_STORES") {
        Ok(list) => list
            .split(',')
            .map(|name| {
                name.trim()
                    .parse()
                    .expect("BENCH_STORES lists known stores")
            })
            .collect(),
        Err(_) => StoreKind::ALL.to_vec(),
    }
}

fn user(prefix: &str, n: u64) -> UserId {
    UserId::new(format!("{prefix}-{n}")).expect("a short user id is valid")
}

fn bench_store(c: &mut Criterion, runtime: &tokio::runtime::Runtime, kind: StoreKind) {
    let servers = Servers::from_env();
    let opened = runtime
        .block_on(connect_ours(kind, &servers))
        .expect("the store opens (servers down? run scripts/services.sh up)");
    let manager = SessionManager::new(opened.store, bench_config()).expect("valid config");
    let mut group = c.benchmark_group(kind.name());
    group.measurement_time(Duration::from_secs(4));

    let logins = AtomicU64::new(0);
    group.bench_function("login", |b| {
        b.to_async(runtime).iter(|| {
            let n = logins.fetch_add(1, Ordering::Relaxed);
            let manager = manager.clone();
            async move {
                black_box(
                    manager
                        .login(&user("crit-login", n), LoginRequest::new())
                        .await
                        .expect("login"),
                );
            }
        });
    });

    let ids: Vec<_> = runtime.block_on(async {
        let mut ids = Vec::with_capacity(VALIDATE_POOL);
        for n in 0..VALIDATE_POOL {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            let login = manager
                .login(&user("crit-validate", n), LoginRequest::new())
                .await
                .expect("login");
            ids.push(login.session.id);
        }
        ids
    });
    let turn = AtomicU64::new(0);
    group.bench_function("validate", |b| {
        b.to_async(runtime).iter(|| {
            let n = turn.fetch_add(1, Ordering::Relaxed);
            let slot = usize::try_from(n).unwrap_or(0) % ids.len();
            let id = ids.get(slot).copied().expect("in range");
            let manager = manager.clone();
            async move {
                black_box(manager.validate(&id).await.expect("validate"));
            }
        });
    });

    group.bench_function("refresh", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let manager = manager.clone();
            async move {
                let login = manager
                    .login(&user("crit-refresh", iters), LoginRequest::new())
                    .await
                    .expect("login");
                let mut token = login.token;
                let start = Instant::now();
                for _ in 0..iters {
                    token = manager
                        .refresh(token.expose_secret())
                        .await
                        .expect("refresh")
                        .token;
                }
                start.elapsed()
            }
        });
    });

    let revokes = AtomicU64::new(0);
    group.bench_function("revoke", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let manager = manager.clone();
            let batch = revokes.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut ids = Vec::new();
                for n in 0..iters {
                    let login = manager
                        .login(
                            &user(&format!("crit-revoke-{batch}"), n),
                            LoginRequest::new(),
                        )
                        .await
                        .expect("login");
                    ids.push(login.session.id);
                }
                let start = Instant::now();
                for id in &ids {
                    assert!(manager.logout(id).await.expect("logout"), "was live");
                }
                start.elapsed()
            }
        });
    });

    let listed = user("crit-list", 0);
    runtime.block_on(async {
        for _ in 0..10 {
            manager
                .login(&listed, LoginRequest::new())
                .await
                .expect("login");
        }
    });
    group.bench_function("list of a user with 10 sessions", |b| {
        b.to_async(runtime).iter(|| {
            let manager = manager.clone();
            let listed = listed.clone();
            async move {
                let sessions = manager.list(&listed).await.expect("list");
                assert_eq!(sessions.len(), 10, "the user has 10 live sessions");
                black_box(sessions);
            }
        });
    });
    group.finish();

    if kind == StoreKind::Redis {
        runtime
            .block_on(scrub_redis(&servers.redis, sql_table_names::REDIS_PREFIX))
            .expect("redis cleanup");
    }
    if kind == StoreKind::Sqlite {
        let _ = std::fs::remove_file(&servers.sqlite_path);
    }
}

fn stores_bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for kind in stores() {
        bench_store(c, &runtime, kind);
    }
}

criterion_group!(benches, stores_bench);
criterion_main!(benches);
