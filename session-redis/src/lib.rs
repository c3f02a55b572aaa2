//! # session-redis
//!
//! A [`SessionStore`](session_core::SessionStore) on Redis (placeholder docs, completed below).

mod codec;
mod config;
mod connection;
mod error;
mod keys;
mod store;

pub use config::{
    ClusterConfig, MAX_KEY_PREFIX_LEN, RedisConfig, RetryConfig, SentinelConfig, Topology,
};
pub use error::ConnectError;
pub use store::RedisStore;

/// Re-exported so apps use the exact `redis` version this crate was built with.
pub use redis;
