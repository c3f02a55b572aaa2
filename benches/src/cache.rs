//! The near cache (`session-cache`) in front of our Redis and PostgreSQL stores: two instances
//! on one backend, each with its own store connection and its own invalidation channel, and the
//! revocation-visibility measurement between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use session_cache::CachedStore;
use session_core::{Error, LoginRequest, SessionManager, SessionStore, UserId};
use session_db::{DbConfig, DbStore};
use session_redis::{ClusterConfig, RedisConfig, RedisStore, RedisTracking, SentinelConfig};

use crate::backend::{Servers, StoreKind, bench_config, scrub_redis, sql_table_names};
use crate::error::BenchError;

/// One application instance: its own store connection(s) behind its own near cache.
pub struct CachedInstance {
    /// The cache (a store).
    pub cached: CachedStore,
    /// The same store without the cache (its own connections).
    pub raw: Arc<dyn SessionStore>,
    /// For PostgreSQL, the store's pool (the raw SQL limit runs over it).
    pub db: Option<DatabaseConnection>,
}

impl std::fmt::Debug for CachedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedInstance")
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// The interval between two validations of the revocation-visibility loop: the resolution of
/// that measurement.
pub(crate) const PACE: Duration = Duration::from_micros(100);

/// How long an instance waits for its invalidation channel.
const CHANNEL_UP: Duration = Duration::from_secs(10);

/// Opens one instance of `kind` (Redis or PostgreSQL) on the benches' cached namespace
/// ([`sql_table_names::REDIS_CACHED`], [`sql_table_names::CACHED`]). `fresh` empties it
/// first (the first instance of a run); PostgreSQL gets its change-notification trigger.
///
/// # Errors
///
/// When the server cannot be reached, `kind` has no invalidation channel, or the channel does
/// not come up within 10 s.
pub async fn connect_cached(
    kind: StoreKind,
    servers: &Servers,
    fresh: bool,
) -> Result<CachedInstance, BenchError> {
    let context = format!("cached {kind} store (is it up? scripts/services.sh up)");
    let fail = |e: &dyn std::fmt::Display| BenchError::new(context.clone(), e);
    let instance = match kind {
        StoreKind::Redis => {
            if fresh {
                scrub_redis(&servers.redis, sql_table_names::REDIS_CACHED).await?;
            }
            let config = RedisConfig::from_url(&servers.redis)
                .with_key_prefix(sql_table_names::REDIS_CACHED);
            redis_instance(config, &fail).await?
        }
        StoreKind::Postgres => {
            let config = DbConfig::new()
                .with_url(servers.postgres.clone())
                .with_table(sql_table_names::CACHED);
            let store = DbStore::connect_with(config).await.map_err(|e| fail(&e))?;
            if fresh {
                store.migrate().await.map_err(|e| fail(&e))?;
                store
                    .install_change_notifications()
                    .await
                    .map_err(|e| fail(&e))?;
                store
                    .connection()
                    .execute_unprepared(&format!("DELETE FROM {}", sql_table_names::CACHED))
                    .await
                    .map_err(|e| fail(&e))?;
            }
            let listener = store.change_listener().map_err(|e| fail(&e))?;
            let db = Some(store.connection().clone());
            let raw: Arc<dyn SessionStore> = Arc::new(store);
            let cached = CachedStore::builder(Arc::clone(&raw))
                .invalidated_by(listener)
                .build()
                .map_err(|e| fail(&e))?;
            CachedInstance { cached, raw, db }
        }
        other => {
            return Err(BenchError::new(
                "near cache",
                format!("{other} has no invalidation channel in the benches"),
            ));
        }
    };
    serving(instance, &context).await
}

/// Which Redis deployment [`connect_cached_redis`] opens an instance on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// The master the sentinels of [`Servers::redis_sentinels`] name `sessionmaster`.
    Sentinel,
    /// The Cluster of [`Servers::redis_cluster`].
    Cluster,
}

impl RedisTopology {
    /// The name used on the command line and in tables.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sentinel => "sentinel",
            Self::Cluster => "cluster",
        }
    }
}

impl std::str::FromStr for RedisTopology {
    type Err = BenchError;

    fn from_str(text: &str) -> Result<Self, BenchError> {
        match text {
            "sentinel" => Ok(Self::Sentinel),
            "cluster" => Ok(Self::Cluster),
            other => Err(BenchError::new(
                "--redis-topologies",
                format!("`{other}` is not `sentinel` or `cluster`"),
            )),
        }
    }
}

/// Opens one instance on the Redis `topology` of `servers`, under the key prefix `prefix`
/// (the records of a run stay in the throwaway topology until they expire), invalidated by
/// `CLIENT TRACKING` on every server that holds records.
///
/// # Errors
///
/// When the deployment cannot be reached, or tracking does not come up within 10 s.
pub async fn connect_cached_redis(
    topology: RedisTopology,
    servers: &Servers,
    prefix: &str,
) -> Result<CachedInstance, BenchError> {
    let context = format!(
        "cached Redis {} store (is it up? scripts/redis-topology.sh start {})",
        topology.name(),
        topology.name()
    );
    let fail = |e: &dyn std::fmt::Display| BenchError::new(context.clone(), e);
    let config = RedisConfig::new().with_key_prefix(prefix);
    let config = match topology {
        RedisTopology::Sentinel => config.with_sentinel(SentinelConfig::new(
            "sessionmaster",
            servers.redis_sentinels.clone(),
        )),
        RedisTopology::Cluster => {
            config.with_cluster(ClusterConfig::new(servers.redis_cluster.clone()))
        }
    };
    let instance = redis_instance(config, &fail).await?;
    serving(instance, &context).await
}

/// A Redis store of `config` behind a cache invalidated by its tracking.
async fn redis_instance(
    config: RedisConfig,
    fail: &impl Fn(&dyn std::fmt::Display) -> BenchError,
) -> Result<CachedInstance, BenchError> {
    let config = config.with_response_timeout(Duration::from_secs(5));
    let store = RedisStore::connect(config.clone())
        .await
        .map_err(|e| fail(&e))?;
    let tracking = RedisTracking::new(&config).map_err(|e| fail(&e))?;
    let raw: Arc<dyn SessionStore> = Arc::new(store);
    let cached = CachedStore::builder(Arc::clone(&raw))
        .invalidated_by(tracking)
        .build()
        .map_err(|e| fail(&e))?;
    Ok(CachedInstance {
        cached,
        raw,
        db: None,
    })
}

/// `instance` once its invalidation channel is up.
async fn serving(instance: CachedInstance, context: &str) -> Result<CachedInstance, BenchError> {
    if !instance.cached.wait_serving(CHANNEL_UP).await {
        return Err(BenchError::new(
            context,
            "the invalidation channel did not come up within 10 s",
        ));
    }
    Ok(instance)
}

/// What [`revocation_visibility`] measured.
#[derive(Debug)]
pub struct Visibility {
    /// Microseconds from the moment instance A sent the revocation to the first validation
    /// instance B refused, one sample per revocation.
    pub micros: Histogram<u64>,
    /// Microseconds of A's revocation itself (`SessionManager::logout`, sent to answered), one
    /// sample per revocation: the part of the visibility spent before the write committed.
    pub revoke_micros: Histogram<u64>,
    /// Validations B accepted after A had sent its revocation, over all revocations.
    pub accepted_after: u64,
}

/// `rounds` times: a login through `a`, validations through `b` until `b` answers from memory,
/// then `a` revokes while a task validates through `b` in a loop; records the time from the
/// revocation's start until `b` refuses.
///
/// # Errors
///
/// Any store error, or `b` accepting a revoked session for more than 5 s.
pub async fn revocation_visibility(
    a: &CachedInstance,
    b: &CachedInstance,
    rounds: usize,
    run: &str,
) -> Result<Visibility, BenchError> {
    let ctx = "revocation visibility";
    let on_a = SessionManager::new(Arc::new(a.cached.clone()), bench_config())
        .map_err(|e| BenchError::new(ctx, e))?;
    let on_b = Arc::new(
        SessionManager::new(Arc::new(b.cached.clone()), bench_config())
            .map_err(|e| BenchError::new(ctx, e))?,
    );
    let mut micros =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError::new(ctx, e))?;
    let mut revoke_micros = micros.clone();
    let mut accepted_after = 0;
    for round in 0..rounds {
        let user =
            UserId::new(format!("{run}-vis-{round}")).map_err(|e| BenchError::new(ctx, e))?;
        let login = on_a
            .login(&user, LoginRequest::new())
            .await
            .map_err(|e| BenchError::new(ctx, e))?;
        let id = login.session.id;
        let hits = b.cached.stats().hits;
        while b.cached.stats().hits == hits {
            on_b.validate(&id)
                .await
                .map_err(|e| BenchError::new(ctx, e))?;
        }
        let started = Arc::new(std::sync::OnceLock::<Instant>::new());
        // The validating loop runs on a thread of its own, one validation every `PACE`, so that
        // it does not take a core from the servers and the invalidation path on this 2-core
        // machine (a tokio task spinning on cached validations did).
        let validator = {
            let on_b = Arc::clone(&on_b);
            let started = Arc::clone(&started);
            let handle = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                let mut accepted = 0_u64;
                loop {
                    match handle.block_on(on_b.validate(&id)) {
                        Ok(_) => {
                            if let Some(at) = started.get() {
                                accepted += 1;
                                if at.elapsed() > Duration::from_secs(5) {
                                    return Err(BenchError::new(
                                        "revocation visibility",
                                        "the other instance accepted a revoked session for 5 s",
                                    ));
                                }
                            }
                        }
                        Err(Error::Revoked { .. }) => return Ok((Instant::now(), accepted)),
                        Err(other) => return Err(BenchError::new("revocation visibility", other)),
                    }
                    std::thread::sleep(PACE);
                }
            })
        };
        // Let the validating loop start answering from memory.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let at = Instant::now();
        let _ = started.set(at);
        on_a.logout(&id)
            .await
            .map_err(|e| BenchError::new(ctx, e))?;
        revoke_micros.saturating_record(
            u64::try_from(at.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        let (refused, accepted) = tokio::task::spawn_blocking(move || validator.join())
            .await
            .map_err(|e| BenchError::new(ctx, e))?
            .map_err(|_| BenchError::new(ctx, "the validating thread panicked"))??;
        accepted_after += accepted;
        let took = u64::try_from(refused.saturating_duration_since(at).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        micros.saturating_record(took);
    }
    Ok(Visibility {
        micros,
        revoke_micros,
        accepted_after,
    })
}
