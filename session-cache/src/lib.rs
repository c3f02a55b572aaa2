//! # session-cache
//!
//! A near cache for any [`SessionStore`](session_core::SessionStore): validation (the store's
//! `find`, run on every authenticated request) is answered from process memory, while a
//! revocation made on any instance is still refused everywhere within milliseconds.
//!
//! [`CachedStore`] wraps an `Arc<dyn SessionStore>` and is a store itself (it passes the whole
//! `session-conformance` suite on memory, SQLite, PostgreSQL and Redis). It is bounded by count
//! and by bytes ([moka](https://docs.rs/moka), `TinyLFU` admission, LRU eviction).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use session_cache::CachedStore;
//! use session_core::{LoginRequest, SessionConfig, SessionManager, UserId};
//! use session_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cached = CachedStore::builder(Arc::new(MemoryStore::new()))
//!     .bounded_staleness(Duration::from_millis(500))
//!     .build()?;
//! let manager = SessionManager::new(Arc::new(cached.clone()), SessionConfig::default())?;
//! let login = manager.login(&UserId::new("alice")?, LoginRequest::new()).await?;
//! manager.validate(&login.session.id).await?; // read from the store, then cached
//! manager.validate(&login.session.id).await?; // from memory
//! assert_eq!(cached.stats().hits, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## What is cached, what is not
//!
//! | operation | through the cache |
//! |---|---|
//! | `find` (validate, get) | answered from memory when a valid entry is held; otherwise read from the store and, if found, cached |
//! | `touch`, `rotate`, `revoke` | sent to the store, then the session's entry is dropped |
//! | `revoke_all` | sent to the store, then every entry of the user is dropped |
//! | `create` | sent to the store, then the entries of the sessions it evicted are dropped (all of the user's if it failed) |
//! | `purge_expired` | sent to the store, then everything is dropped unless it deleted nothing |
//! | `list`, `shared_secret` | sent to the store |
//!
//! Sliding expiry keeps working: the manager decides when to touch (its throttle reads the
//! cached `last_active_at`, which is the stored one), the touch goes to the store, and the
//! entry is dropped so the next validation reads the extended record. A session therefore costs
//! one store read per touch interval and per instance, plus one per change made anywhere.
//! Records that are not found are not cached.
//!
//! ## Invalidation across instances
//!
//! | backend | channel | what a change elsewhere costs | set-up |
//! |---|---|---|---|
//! | Redis (standalone, Sentinel, Cluster) | `CLIENT TRACKING ON BCAST` on a dedicated RESP3 connection to each server that holds records: the standalone server, the master the sentinels name, every Cluster master ([`session_redis::RedisTracking`], feature `redis`): Redis pushes the key of every record written, deleted or expired | the entry is dropped when the push arrives | `.invalidated_by(RedisTracking::new(&redis_config)?)` |
//! | PostgreSQL | `LISTEN` to a trigger's `NOTIFY` on every update or delete of a session row ([`session_db::ChangeListener`], feature `postgres`) | the entry is dropped when the notification arrives (at the writer's commit) | `store.install_change_notifications().await?` once (an opt-in migration), then `.invalidated_by(store.change_listener()?)` |
//! | SQLite, MySQL/MariaDB, memory, custom stores | none: **bounded staleness** | a change made through another instance may be served here for up to the `staleness` the user sets (each entry lives that long at most); changes made through this instance are seen at once | `.bounded_staleness(Duration::from_millis(500))` |
//!
//! A cache with a channel serves entries only while the channel is up. When it is lost (the
//! connection closes, or a heartbeat sent every 500 ms goes unanswered) the cache forgets every
//! entry and reads through to the store ("bypassed" in [`CacheStats`]) until the channel is
//! back; a read that began before the loss is not cached. So an entry is never served once the
//! cache knows an invalidation may have been missed. What it cannot know is a connection that
//! died silently: the heartbeat bounds that window to about one second (Redis: 500 ms plus the
//! store's `response_timeout`; PostgreSQL: two heartbeat intervals).
//!
//! On Redis Sentinel and Cluster a change of the servers that hold the records is a lost
//! channel too, and tracking starts again on the new ones: a Sentinel failover as soon as a
//! sentinel announces the new master (`+switch-master`, pushed to the tracking, which is also
//! when clients that ask the sentinels can first write there); a Cluster failover, node change
//! or slot reassignment at the next heartbeat (500 ms), or as soon as the connection to a master
//! that died fails. Keys moved between Cluster masters by a resharding stay tracked, since every
//! master is.
//!
//! Every entry is also read again after `max_age` (10 minutes by default), whatever the
//! channel says.
//!
//! ## Revocation semantics
//!
//! A revocation (logout, logout-all, password change, reuse detection, eviction) made through
//! instance A is refused by A as soon as the write returns (A drops its own entry then) and by
//! any instance B as soon as B receives the invalidation, which the server sends once the write
//! is applied (Redis: while executing the command; PostgreSQL: at the writer's commit). The time
//! from A sending the revocation to B's first refusal, measured on loopback with B validating
//! every 100 µs (`cargo run --release -p session-benches --bin throughput -- --stores
//! redis,postgres --cache-only --tasks 16 --revocations 500 --redis-topologies
//! sentinel,cluster`, on a 2-core machine whose servers share the cores with the bench):
//!
//! | backend | run | p50 | p99 | max | of which A's own revoke round trip (p50 / p99) |
//! |---|---|---|---|---|---|
//! | Redis 7 standalone, `CLIENT TRACKING` | `096be06`, load 2.6–3 | 0.24 ms | 0.47 ms | 4.1 ms | 0.11 / 0.24 ms |
//! | Redis 7 Sentinel (master and replica), `CLIENT TRACKING` | `096be06`, load 2.6–3 | 0.29 ms | 0.73 ms | 4.3 ms | 0.17 / 0.37 ms |
//! | Redis 7 Cluster (three masters), `CLIENT TRACKING` on each | `096be06`, load 2.6–3 | 0.39 ms | 0.67 ms | 4.1 ms | 0.20 / 0.36 ms |
//! | PostgreSQL 15, `LISTEN/NOTIFY` | `096be06`, load 2.6–3 | 0.93 ms | 2.0 ms | 84 ms | 0.61 / 1.2 ms |
//! | Redis 7, `CLIENT TRACKING` | `bdcd2fe`, load 1.6 | 0.29 ms | 1.0 ms | 1.2 ms | 0.17 / 0.63 ms |
//! | PostgreSQL 15, `LISTEN/NOTIFY` | `bdcd2fe`, load 1.6 | 0.82 ms | 2.4 ms | 2.6 ms | 0.55 / 1.9 ms |
//! | Redis 7, `CLIENT TRACKING` | `588b6cf`, load 4–6 | 0.50 ms | 3.3 ms | 7.1 ms | 0.25 / 1.8 ms |
//! | PostgreSQL 15, `LISTEN/NOTIFY` | `588b6cf`, load 4–6 | 1.2 ms | 5.2 ms | 36 ms | 0.79 / 3.1 ms |
//!
//! Two more runs of that command right after gave p99 0.67 / 0.64 ms (standalone), 0.55 / 0.94
//! ms (Sentinel), 0.73 / 0.68 ms (Cluster) and 1.7 / 1.5 ms (PostgreSQL). Earlier runs of the
//! same command under heavier load gave p99 between 0.9 and 5.6 ms on Redis
//! and between 5 and 36 ms on PostgreSQL, where the tail follows the commit's WAL flush. So: a
//! revocation is refused everywhere within a few milliseconds of its commit, plus whatever the
//! machine's scheduling adds; an instance that missed the invalidation because its channel died
//! silently accepts it at most until the heartbeat notices (Redis: 500 ms plus the store's
//! `response_timeout`; PostgreSQL: two heartbeat intervals, 1 s). With a bounded staleness, the maximum is
//! the configured `staleness`.
//!
//! ## Memory
//!
//! Each entry weighs its estimated size (the record, its strings and app data, and about 100
//! bytes of bookkeeping), and at least `max_bytes / max_entries`, against a total of
//! `max_bytes`: so neither bound is exceeded (by more than moka's lazy eviction lets through
//! for a moment).

mod config;
mod source;
mod store;

pub use config::{CacheBuilder, CacheConfig};
pub use source::{InvalidationSink, InvalidationSource};
pub use store::{CacheStats, CachedStore};
