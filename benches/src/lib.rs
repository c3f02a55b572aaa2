//! # session-benches
//!
//! Benches and a throughput harness for the session stores of this workspace, each measured
//! beside two references taken in the same run:
//!
//! - **the limit**: the same work done raw on the same substrate with the same client (a bare
//!   `DashMap` get/insert, a bare Redis `GET`/`SET` over a [`redis::aio::MultiplexedConnection`], a
//!   bare primary-key `SELECT`/`UPDATE` over a sea-orm pool), which no store on that substrate
//!   can beat;
//! - **the peer**: the equivalent operation of a `tower-sessions` store (its memory store, its
//!   Redis store on fred, its sqlx PostgreSQL store).
//!
//! Every workload implements [`Target`]; [`run_row`] drives one operation of one target with N
//! concurrent tokio tasks for a fixed time and returns throughput and a latency histogram.
//! The `throughput` binary prints the table; `benches/stores.rs` holds the criterion benches.

mod backend;
mod cache;
mod error;
mod limit;
mod ours;
mod peer;
mod rate;
mod record;
mod rss;
mod runner;
mod target;

pub use backend::{
    OurStore, Servers, StoreKind, bench_config, connect_ours, scrub_redis, sql_table_names,
};
pub use cache::{
    CachedInstance, RedisTopology, Visibility, connect_cached, connect_cached_redis,
    revocation_visibility,
};
pub use error::BenchError;
pub use limit::{RawMemory, RawRedis, RawSql};
pub use ours::Ours;
pub use peer::{Tower, tower_memory, tower_postgres, tower_redis};
pub use rate::ops_per_second;
pub use record::new_record;
pub use rss::resident_bytes;
pub use runner::{Lane, RowStats, run_row};
pub use target::{Budget, Op, Target};
