//! # session-redis
//!
//! A [`SessionStore`](session_core::SessionStore) on Redis: standalone, Sentinel or Cluster,
//! optionally over TLS, with one atomic round trip per operation and expiry done by the server.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use session_core::{LoginRequest, SessionConfig, SessionManager, UserId};
//! use session_redis::{RedisConfig, RedisStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: RedisConfig = toml::from_str(r#"
//!     host = "127.0.0.1"
//!     port = 6379
//!     key_prefix = "auth:"
//!     response_timeout = "500ms"
//! "#)?;
//! let store = RedisStore::connect(config).await?;
//! let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
//! let login = manager
//!     .login(&UserId::new("alice")?, LoginRequest::new())
//!     .await?;
//! let refreshed = manager.refresh(login.token.expose_secret()).await?;
//! # let _ = refreshed;
//! # Ok(())
//! # }
//! ```
//!
//! ## Topologies
//!
//! [`RedisConfig::topology`] picks one; the store has a single code path over
//! [`redis::aio::ConnectionLike`] for all three.
//!
//! | topology | connection | after a failure |
//! |---|---|---|
//! | standalone (`host`/`port` or `url`) | one multiplexed connection | an I/O error or a timeout drops it; the next call opens a new one (one attempt within `connect_timeout`) |
//! | Sentinel (`master_name`, sentinel `nodes`) | a multiplexed connection to the master the sentinels name | an I/O error, a timeout or `READONLY` drops it; the next call asks the sentinels again, so the store follows a failover |
//! | Cluster (seed `nodes`) | [`redis::cluster_async::ClusterConnection`] | follows slot moves and node changes by itself |
//!
//! ## Key layout
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `<prefix>{<tag>}:s:<session-id>` | string | the record (a binary layout, see below) | the record's expiry − `now`, at least 1 s |
//! | `<prefix>{<tag>}:u:<user-digest>` | sorted set | the user's session ids, scored by `created_at` in µs | at least the longest absolute expiry of its members |
//! | `<prefix>secret:<name>` | string | one [shared secret](session_core::SessionStore::shared_secret), e.g. the manager's rotation key | none: never expires |
//!
//! `<tag>` is the [`RoutingTag`](session_core::RoutingTag) every
//! [`SessionId`](session_core::SessionId) carries, so a refresh token alone names the hash slot,
//! and all of a user's keys live in one slot: on a Cluster every operation runs on one node. The
//! prefix is printable ASCII without spaces or braces ([`RedisConfig::validate`]), so the store's
//! `{` is always the first one of a key.
//!
//! Key names are printable ASCII, whatever a user id holds (newlines, escape sequences, spaces,
//! 255 bytes): a user id never appears in a key name, only `<user-digest>`, the unpadded
//! base64url of the SHA-256 of its UTF-8 bytes (43 characters). Session ids and secret names
//! are printable by construction. A secret's key has no hash tag: it is one key, on its own
//! slot.
//!
//! A record is one binary string: a 123-byte header of fixed layout (format version; idle expiry,
//! last active, token hash, rotation flags, previous token hash, rotation instant, generation,
//! absolute expiry, revocation reason and instant, creation instant; integers little-endian,
//! instants in µs since the epoch), then the user id, device info and app data, each
//! length-prefixed. `find` is one `GET` whose reply is one bulk string, decoded without parsing
//! any text; the Lua reads a record with one `GET` and writes it back with its TTL in one
//! `SET … PX` (a touch changes 16 bytes of the header, a rotation 97), or changes 9 bytes in
//! place with one `SETRANGE` (a revocation, which keeps the TTL). Revoked records stay (revoked) until their TTL, so a later use is reported as
//! revoked, with its reason. A record of another format version is refused as damaged (see
//! Failures): the version byte lets a later layout be read beside this one.

//! An index entry is dropped when its record can never be live again: revoked, or its key gone
//! (dropped at its TTL). An entry whose record is merely expired at one caller's `now` stays:
//! calls may arrive out of order, and a touch or a rotation whose `now` is a little earlier may
//! still extend that session, which must then stay reachable by `revoke_all`, `list` and the
//! cap. Such a record's key expires soon (its TTL follows its expiry), and the next walk of the
//! index drops the entry.
//!
//! ## One round trip per operation
//!
//! Each operation is one call of the store's Lua on the server or one command. The Lua runs
//! atomically, so there is no read-then-write race between callers on any topology.
//!
//! | operation | round trips | what runs on the server | work on the server |
//! |---|---|---|---|
//! | `create` without a cap | 1 | `create`: write the record with its TTL (`SET NX PX`, which also refuses a stored id), inspect the 64 oldest index entries (one `MGET`, dropping revoked and gone ones), index it | at most 64 entries read, whatever the index holds |
//! | `create` with a cap | 1 | `create`: read the whole index (one `MGET` per 100 entries, dropping revoked and gone entries), count live sessions exactly, evict the oldest or refuse at the cap (a refusing cap checks the id with `EXISTS` first and writes nothing), write the record with its TTL, index it | every entry of the user's index |
//! | `find` | 1 | `GET` | one key |
//! | `touch` | 1 | `touch`: if live, the value with its new idle expiry and last-active instant and its TTL in one `SET … PX` | one key |
//! | `rotate` | 1 | `rotate`: compare-and-swap of the token hash; the value (with a device, its device fields spliced in, app data kept) and its TTL in one `SET … PX`; returns the record | one key |
//! | `revoke` | 1 | `revoke`: one `GET`, one `SETRANGE` of the reason and instant | one key |
//! | `revoke_all` | 1 | `revoke_all` over the user's index (dropping revoked and gone entries) | every entry |
//! | `list` | 1 | `list` over the user's index (dropping revoked and gone entries) | every entry |
//! | `purge_expired` | 0 | nothing: the server drops keys at their TTL; always `Ok(0)` | none |
//! | `shared_secret` | 1 | `SET <key> <candidate> NX GET` (Redis 7.0 or later) | one key |
//!
//! ### Functions library, scripts, reload
//!
//! On Redis 7 or later the operations are one [Functions](https://redis.io/docs/latest/develop/programmability/functions-intro/)
//! library, `auth_sessions_<tag>`, called with `FCALL`; its functions are
//! `auth_sessions_<tag>_create`, `..._touch`, and so on. `<tag>` is the first 12 hex digits of
//! the SHA-256 of the library's Lua, so two versions of this crate on one server (a rolling
//! deploy) never call each other's functions; each version's library stays until a
//! `FUNCTION DELETE` or `FUNCTION FLUSH`. [`RedisStore::connect`] loads it with
//! `FUNCTION LOAD REPLACE` (a library of the same name holds the same code, so loading it again
//! succeeds); on a Cluster the driver sends that to every primary. The library is replicated
//! and persisted like data, so a replica promoted by a failover has it. When an `FCALL` answers
//! that the function does not exist (`FUNCTION FLUSH`, a server that lost it, a new Cluster
//! primary), that call loads the library again and retries once: three round trips
//! (`FCALL`, `FUNCTION LOAD`, `FCALL`), then one again. Nothing ran on the server before the
//! retry.
//!
//! When the server answers `FUNCTION LOAD` with an error (no such command before Redis 7, or
//! an ACL that forbids it), the store sends the same Lua as scripts instead: per operation,
//! `common.lua` and the operation, by hash (`EVALSHA`); [`RedisStore::connect`] loads them, and
//! if the script cache was emptied since (restart, failover, `SCRIPT FLUSH`), the next call of
//! each script takes three round trips (`EVALSHA` → `NOSCRIPT`, `SCRIPT LOAD`, `EVALSHA`).
//! [`RedisConfig::use_functions`] `= false` asks for scripts on any server (the tests run the
//! conformance suite both ways). [`RedisStore::function_library`] says which is in use. The
//! library saves the server the definition of the shared helpers on every call: measured with
//! `INFO commandstats`, about 0.8 µs of a script's 4 to 8 µs.
//!
//! The operations that read a whole index do work proportional to the user's indexed sessions:
//! the live ones, plus the revoked, gone or expired ones no walk has dropped yet. A login
//! without a cap reads at most 64 entries, the oldest, where entries of gone records tend to
//! gather; the entries it cannot reach are dropped by the next `list` or `revoke_all`, or expire
//! with the index. The test `tests/round_trips.rs` counts the commands with `MONITOR`, those the
//! Lua runs included.
//!
//! ## Time and expiry
//!
//! The store never reads a clock: the Lua compares the instants stored in the record with the
//! `now` the caller passes (the conformance suite drives a manual clock far from the server's).
//! Key TTLs are set from `expiry − now` on every write that moves the expiry, rounded up to the
//! millisecond, with a floor of one second, so Redis drops abandoned records and indexes without
//! any job. That formula has one home, `ttl_ms` in the Lua: a touch or a rotation caps the new
//! expiry at the absolute expiry stored in the record, which only the server reads, so `create`
//! passes instants too. Instants
//! are kept in microseconds and compared as Lua numbers, exact within about the years 1685 to
//! 2255; an instant outside is refused with [`Error::Backend`](session_core::Error::Backend).
//!
//! ## Memory
//!
//! Measured on Redis 7.0 (jemalloc) with default settings, for sessions with 200 bytes of app
//! data and 10 sessions per user (`cargo test -p session-redis --test memory -- --nocapture`):
//!
//! | | bytes per session |
//! |---|---|
//! | session key (`MEMORY USAGE`), no device info | 520 |
//! | session key with a 100-byte user agent and an IP address | 648 |
//! | index entry (the index's `MEMORY USAGE` / its members) | 63 |
//! | **session key + index share** | **583** (711 with device info) |
//! | `used_memory` growth per session, all keyspace overheads included | 916 |
//!
//! ## Failures
//!
//! Every operation is bounded by [`RedisConfig::response_timeout`] (1 s by default), opening a
//! connection included: while Redis cannot be reached it fails with
//! [`Error::Unavailable`](session_core::Error::Unavailable), never with "not found", and never
//! hangs. The store recovers without a restart when Redis is back: on a standalone server or a
//! Sentinel master, the next call after a failure opens a new connection; a Cluster connection
//! reconnects in the background with [`RedisConfig::retry`]'s back-off. A write that timed out
//! may or may not have been applied. Errors are classified by the driver's error kind, never
//! by message text.
//!
//! Opening a connection (in [`RedisStore::connect`], and on the call after a connection was
//! lost) is one attempt, so its failure is reported at once and says what happened:
//!
//! | cause | error | example message (measured on this machine) |
//! |---|---|---|
//! | wrong password or user | [`Error::Backend`](session_core::Error::Backend) (not retryable) | `cannot connect to 127.0.0.1:6379: Password authentication failed` (2 ms; 1 ms on an operation after the server restarted with another password) |
//! | no such database (`db = 999` on a 16-db server) | [`Error::Backend`](session_core::Error::Backend) | `cannot connect to 127.0.0.1:6379: Redis server refused to switch database` (2 ms) |
//! | nothing listens on the port | [`Error::Unavailable`](session_core::Error::Unavailable) | `cannot connect to 127.0.0.1:6400: Connection refused` (1 ms) |
//! | unknown host | [`Error::Unavailable`](session_core::Error::Unavailable) | `cannot connect to nonexistent.invalid:6379: failed to lookup address information` (2 ms) |
//!
//! The same holds on Sentinel (the message names the master and its sentinels) and Cluster.
//! The cluster client reports any failure to reach its seed nodes as an I/O error, so when it
//! fails the store connects to the seeds one by one as plain servers to get the cause with its
//! own kind: a wrong password on a Cluster is a refusal too, naming the node.
//! (`tests/errors.rs` checks each, with `--nocapture` it prints the times; before this version
//! a standalone store waited out `connect_timeout + response_timeout` and said "no answer".)
//!
//! A value at a session's key that is not a whole record of this store's format (another type,
//! cut short, another format version) is
//! [`Error::Backend`](session_core::Error::Backend) from `find`, `touch`, `rotate`, `revoke` and
//! from `list` when the index leads to it, never "not found" or "not live"; `create` and
//! `revoke_all` leave such a record (and its index entry) alone, since no operation can use it.
//! `create` refuses a record whose id does not carry its user's
//! [`RoutingTag`](session_core::RoutingTag) with
//! [`InputError::InvalidSessionId`](session_core::InputError::InvalidSessionId), before sending
//! anything.
//!
//! ## Invalidation tracking
//!
//! [`RedisTracking`] reports every write to the store's session records, by any client, over
//! dedicated RESP3 connections with `CLIENT TRACKING ON BCAST`: a near cache (the
//! `session-cache` crate) evicts its entries from it. Every topology: the standalone server,
//! the master the sentinels name (a failover they announce ends a round of tracking at once),
//! or every master of a Cluster (a changed layout ends it at the next heartbeat); see the
//! [`RedisTracking`] docs for the events and what they guarantee.
//!
//! ## Notes
//!
//! - The Lua compares token hashes with Lua string equality, which is not constant-time. What
//!   is compared are SHA-256 digests of 256-bit secrets, so timing reveals nothing usable about
//!   a secret.
//! - The operations that walk an index read the records of its members, keys that are not
//!   declared in the call's `KEYS` but share its hash slot; Redis Cluster runs such calls on the
//!   slot's node.
//! - With Sentinel, reads may reach a demoted master until a write there fails with `READONLY`,
//!   which makes the store look the master up again.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tls` | on | TLS with rustls (`rediss://`, [`RedisConfig::with_tls`], [`RedisConfig::with_tls_ca_file`] for a private CA); certificates are always verified; installs rustls' `ring` provider unless the process installed one |
//!
//! ## Testing
//!
//! The integration tests talk to real servers: the standalone Redis on `127.0.0.1:6379`, and the
//! Sentinel and Cluster topologies of `scripts/redis-topology.sh start sentinel|cluster`. A
//! topology that is down fails its tests with the command that starts it;
//! `SESSION_TEST_SKIP=redis,redis-sentinel,redis-cluster` (any subset) opts out, loudly. The
//! fault, round-trip, memory and TLS tests start their own `redis-server` on spare ports (6394
//! to 6400; the TLS test makes its certificates with `openssl`), and the failover test its own
//! Sentinel topology (ports 6392, 6393, 26393 to 26395).

mod codec;
mod config;
mod connection;
mod error;
mod keys;
mod library;
mod ops;
mod store;
mod tracking;

pub use config::{
    ClusterConfig, MAX_KEY_PREFIX_LEN, RedisConfig, RetryConfig, SentinelConfig, Topology,
};
pub use error::ConnectError;
pub use store::RedisStore;
pub use tracking::{DEFAULT_HEARTBEAT, RedisTracking, TrackingEvent};

/// Re-exported so apps use the exact `redis` version this crate was built with.
pub use redis;
