//! Two application instances on one backend, each behind its own near cache: a revocation
//! through one is refused by the other within milliseconds, and a cache whose invalidation
//! channel is killed stops serving from memory until the channel is back.
//!
//! Needs the standalone Redis server, the shared Redis Sentinel and Cluster topologies and
//! PostgreSQL (see `support`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests fail by panicking and print what they measured"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_cache::CachedStore;
use session_core::{Error, LoginRequest, SessionConfig, SessionManager, UserId};
use session_db::sea_orm::ConnectionTrait as _;

/// Generous for a busy CI machine; the measured figures are in the benches README.
const VISIBLE_WITHIN: Duration = Duration::from_secs(1);

fn manager(store: &CachedStore) -> SessionManager {
    SessionManager::new(Arc::new(store.clone()), SessionConfig::default()).unwrap()
}

/// Validates `id` through `on_b` (a manager on `b`) until `b` answers from memory. The
/// invalidation of the write that created the session may reach `b` after its first read began
/// (Redis sends it in the same event-loop turn as the writer's reply), and such a read is not
/// served again; a later one is, once that invalidation is in. Fails after 5 s.
async fn served_from_memory(on_b: &SessionManager, b: &CachedStore, id: &session_core::SessionId) {
    let started = Instant::now();
    loop {
        let hits = b.stats().hits;
        on_b.validate(id).await.unwrap();
        if b.stats().hits > hits {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b never answered from memory: {:?}",
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Logs in through `a`, validates through `b` until it is cached, revokes through `a`, and
/// returns how long `b` kept accepting the session.
async fn revoke_on_a_refused_on_b(a: &CachedStore, b: &CachedStore) -> Duration {
    let (on_a, on_b) = (manager(a), manager(b));
    let user = UserId::new(format!("two-{:x}", support::random())).unwrap();
    let login = on_a.login(&user, LoginRequest::new()).await.unwrap();
    let id = login.session.id;
    served_from_memory(&on_b, b, &id).await;

    let revoked = Instant::now();
    on_a.logout(&id).await.unwrap();
    let mut accepted = 0_u32;
    loop {
        match on_b.validate(&id).await {
            Ok(_) => {
                accepted += 1;
                assert!(
                    revoked.elapsed() < VISIBLE_WITHIN,
                    "b still accepts the session {:?} after the revocation",
                    revoked.elapsed()
                );
                tokio::task::yield_now().await;
            }
            Err(Error::Revoked { .. }) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    let took = revoked.elapsed();
    eprintln!("refused on the other instance after {took:?} ({accepted} accepted validations)");
    // Refused through a, and from now on through b, whoever asks.
    assert!(matches!(
        on_a.validate(&id).await,
        Err(Error::Revoked { .. })
    ));
    assert!(matches!(
        on_b.validate(&id).await,
        Err(Error::Revoked { .. })
    ));
    took
}

/// Two instances on the Redis deployment `config` names, each tracking it.
async fn redis_two_instances(config: session_redis::RedisConfig) {
    let a = support::redis_cached(support::redis_store(config.clone()).await, &config, "a").await;
    let b = support::redis_cached(support::redis_store(config.clone()).await, &config, "b").await;
    revoke_on_a_refused_on_b(&a, &b).await;
    // And the other way round.
    revoke_on_a_refused_on_b(&b, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revocation_on_one_instance_is_refused_on_the_other() {
    if support::skip("redis") {
        return;
    }
    redis_two_instances(support::redis_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_revocation_on_one_instance_is_refused_on_the_other() {
    if support::skip("redis-sentinel") {
        return;
    }
    redis_two_instances(support::redis_sentinel_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_revocation_on_one_instance_is_refused_on_the_other() {
    if support::skip("redis-cluster") {
        return;
    }
    redis_two_instances(support::redis_cluster_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_on_one_instance_is_refused_on_the_other() {
    if support::skip("postgres") {
        return;
    }
    let first = support::postgres_store(None).await;
    let table = first.table().as_str().to_owned();
    let second = support::postgres_store(Some(&table)).await;
    let a = support::postgres_cached(first).await;
    let b = support::postgres_cached(second).await;
    revoke_on_a_refused_on_b(&a, &b).await;
    revoke_on_a_refused_on_b(&b, &a).await;
}

/// With `b`'s channel killed by `kill`: `b` stops serving from memory, reads the revocation
/// made through `a` from the store, and serves from memory again once the channel is back.
async fn lost_channel_is_bypassed(
    a: &CachedStore,
    b: &CachedStore,
    kill: impl std::future::Future<Output = ()>,
) {
    let (on_a, on_b) = (manager(a), manager(b));
    let user = UserId::new(format!("lost-{:x}", support::random())).unwrap();
    let login = on_a.login(&user, LoginRequest::new()).await.unwrap();
    let id = login.session.id;
    served_from_memory(&on_b, b, &id).await;
    let before = b.stats();

    let killed = Instant::now();
    kill.await;
    assert!(
        !b.wait_serving_stopped(Duration::from_secs(3)).await,
        "the cache kept serving after its channel was killed"
    );
    eprintln!("channel loss noticed after {:?}", killed.elapsed());
    // The revocation's invalidation cannot reach b now; b must read it from the store.
    a.inner()
        .revoke(
            &id,
            session_core::SystemClock.now_utc(),
            session_core::RevokeReason::Logout,
        )
        .await
        .unwrap();
    let refused = on_b.validate(&id).await.unwrap_err();
    assert!(matches!(refused, Error::Revoked { .. }), "{refused:?}");
    let during = b.stats();
    assert!(during.bypassed > before.bypassed, "read through while down");
    assert_eq!(
        during.hits, before.hits,
        "nothing served from memory while down"
    );
    assert!(during.channel_losses > before.channel_losses);

    // The channel comes back by itself; the cache serves again, and still refuses.
    assert!(
        b.wait_serving(support::UP).await,
        "the channel never came back"
    );
    eprintln!("channel back after {:?}", killed.elapsed());
    assert!(matches!(
        on_b.validate(&id).await,
        Err(Error::Revoked { .. })
    ));
    let fresh = on_a.login(&user, LoginRequest::new()).await.unwrap();
    served_from_memory(&on_b, b, &fresh.session.id).await;
}

trait Stopped {
    /// Waits until the cache stops serving, at most `timeout`; returns whether it still serves.
    async fn wait_serving_stopped(&self, timeout: Duration) -> bool;
}

impl Stopped for CachedStore {
    async fn wait_serving_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_serving() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.is_serving()
    }
}

trait NowUtc {
    fn now_utc(&self) -> session_core::time::OffsetDateTime;
}

impl NowUtc for session_core::SystemClock {
    fn now_utc(&self) -> session_core::time::OffsetDateTime {
        use session_core::Clock as _;
        self.now()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_tracking_connection_flushes_and_bypasses() {
    if support::skip("redis") {
        return;
    }
    let config = support::redis_config();
    let name = format!("kill-me-{:x}", support::random());
    let a = support::redis_cached(support::redis_store(config.clone()).await, &config, "a").await;
    let b = support::redis_cached(support::redis_store(config.clone()).await, &config, &name).await;
    let kill = async {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap();
        let id = list
            .lines()
            .find(|line| line.split(' ').any(|field| field == format!("name={name}")))
            .and_then(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
            .expect("the tracking connection is listed")
            .to_owned();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(killed, 1);
    };
    lost_channel_is_bypassed(&a, &b, kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_terminated_listener_flushes_and_bypasses() {
    if support::skip("postgres") {
        return;
    }
    let first = support::postgres_store(None).await;
    let table = first.table().as_str().to_owned();
    let second = support::postgres_store(Some(&table)).await;
    let admin = support::postgres_store(Some(&table)).await;
    let a = support::postgres_cached(first).await;
    let b = support::postgres_cached(second).await;
    // a listens too: terminate b's listener only.
    let kill = async {
        let b_pids = b_listener_pids(&admin, &table).await;
        assert!(
            !b_pids.is_empty(),
            "b's listener is not in pg_stat_activity"
        );
        for pid in b_pids {
            admin
                .connection()
                .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
                .await
                .unwrap();
        }
    };
    lost_channel_is_bypassed(&a, &b, kill).await;
}

/// The backend pids of the listeners on `table`'s channel but the oldest: both caches listen,
/// and `a`'s listener was started first (its cache was built, and waited for, first).
async fn b_listener_pids(admin: &session_db::DbStore, table: &str) -> Vec<i32> {
    let rows = admin
        .connection()
        .query_all_raw(session_db::sea_orm::Statement::from_string(
            session_db::sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN \"{table}_changed\"' \
                 ORDER BY backend_start"
            ),
        ))
        .await
        .unwrap();
    rows.iter()
        .skip(1)
        .map(|row| row.try_get::<i32>("", "pid").unwrap())
        .collect()
}
