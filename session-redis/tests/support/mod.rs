//! Shared by the integration tests: where the test servers are, a fresh key prefix per store,
//! and the loud opt-out.
//!
//! A topology that cannot be reached makes the test **fail** with the command that starts it.
//! `SESSION_TEST_SKIP=redis,redis-sentinel,redis-cluster` (any subset) opts topologies out, and
//! says so on stderr.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of this module"
)]
#![allow(
    clippy::panic,
    clippy::print_stderr,
    reason = "test support: failing and announcing skips is its job"
)]

use std::time::Duration;

use session_redis::{ClusterConfig, RedisConfig, RedisStore, SentinelConfig};

/// The topologies the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topo {
    /// The shared standalone server on 127.0.0.1:6379.
    Standalone,
    /// `scripts/redis-topology.sh start sentinel`.
    Sentinel,
    /// `scripts/redis-topology.sh start cluster`.
    Cluster,
}

impl Topo {
    /// The name used in `SESSION_TEST_SKIP`.
    pub fn skip_name(self) -> &'static str {
        match self {
            Self::Standalone => "redis",
            Self::Sentinel => "redis-sentinel",
            Self::Cluster => "redis-cluster",
        }
    }

    /// How to start it.
    pub fn how_to_start(self) -> &'static str {
        match self {
            Self::Standalone => {
                "start it with `scripts/services.sh up` (or `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`)"
            }
            Self::Sentinel => "start it with `scripts/redis-topology.sh start sentinel`",
            Self::Cluster => "start it with `scripts/redis-topology.sh start cluster`",
        }
    }

    /// `true` when the run opted this topology out.
    pub fn skipped(self) -> bool {
        std::env::var("SESSION_TEST_SKIP")
            .is_ok_and(|list| list.split(',').any(|name| name.trim() == self.skip_name()))
    }
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("t:{}:", uuid::Uuid::new_v4().simple())
}

/// The configuration of a fresh, isolated store on `topo`.
pub fn config(topo: Topo) -> RedisConfig {
    let base = RedisConfig::new()
        .with_key_prefix(fresh_prefix())
        .with_response_timeout(Duration::from_secs(2));
    match topo {
        Topo::Standalone => base.with_address("127.0.0.1", 6379),
        Topo::Sentinel => base.with_sentinel(SentinelConfig::new(
            "sessionmaster",
            ["127.0.0.1:26390", "127.0.0.1:26391", "127.0.0.1:26392"],
        )),
        Topo::Cluster => base.with_cluster(ClusterConfig::new([
            "127.0.0.1:7010",
            "127.0.0.1:7011",
            "127.0.0.1:7012",
        ])),
    }
}

/// Connects with `config`, failing the test with instructions when `topo` is unreachable.
pub async fn connect(topo: Topo, config: RedisConfig) -> RedisStore {
    match RedisStore::connect(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "the Redis {} topology is unreachable ({error}); {} or opt out with SESSION_TEST_SKIP={}",
            match topo {
                Topo::Standalone => "standalone",
                Topo::Sentinel => "Sentinel",
                Topo::Cluster => "Cluster",
            },
            topo.how_to_start(),
            topo.skip_name()
        ),
    }
}

/// A fresh store on `topo` for a test of this crate, or `None` (announced on stderr) when the
/// run opted the topology out.
pub async fn store(topo: Topo) -> Option<RedisStore> {
    if topo.skipped() {
        eprintln!(
            "SKIPPED: Redis {} tests, because SESSION_TEST_SKIP contains `{}`",
            topo.skip_name(),
            topo.skip_name()
        );
        return None;
    }
    Some(connect(topo, config(topo)).await)
}

/// A fresh store on `topo` for the conformance suite. The suite's macro needs a store, so an
/// opted-out topology ends the whole test binary here, with exit status 0 and a loud notice.
pub async fn conformance_store(topo: Topo) -> RedisStore {
    if topo.skipped() {
        eprintln!(
            "SKIPPED: every conformance test of this binary (Redis {}), because SESSION_TEST_SKIP contains `{}`",
            topo.skip_name(),
            topo.skip_name()
        );
        std::process::exit(0);
    }
    connect(topo, config(topo)).await
}
