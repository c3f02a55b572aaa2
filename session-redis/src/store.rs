//! [`RedisStore`]: the [`SessionStore`] on Redis, one script or command per operation.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use session_core::{
    CreateOutcome, Error, InputError, RevokeReason, RotateOutcome, Rotation, RoutingTag, SessionId,
    SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};
use time::OffsetDateTime;

use crate::config::RedisConfig;
use crate::connection::{Backend, OpenError};
use crate::error::{BACKEND, ConnectError, StoreError, is_unavailable, needs_new_master};
use crate::keys::Keys;
use crate::library::{Library, Mode};
use crate::ops::{self, Operation, Request};

mod stats;

/// A session store on Redis: standalone, Sentinel or Cluster, chosen by [`RedisConfig`].
///
/// Every [`SessionStore`] method is one round trip: one `FCALL` of the store's Redis Functions
/// library (loaded when the store connects, loaded again by the call that finds it gone), one
/// `EVALSHA` of a Lua script on a server without Functions, or one command. The Lua runs
/// atomically on the server, so no read-then-write race exists between concurrent callers, on
/// any topology: all keys of a user share one hash slot.
///
/// Every operation is bounded by [`RedisConfig::response_timeout`]: past it, or when Redis
/// cannot be reached, it fails with [`Error::Unavailable`] and the store keeps reconnecting in
/// the background. A write that timed out may or may not have been applied.
///
/// Cloning is cheap and clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    keys: Keys,
    timeout: Duration,
    library: Library,
    mode: Mode,
    topology: &'static str,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.inner.topology)
            .field("keys", &self.inner.keys)
            .field("timeout", &self.inner.timeout)
            .field("functions", &self.function_library())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the deployment `config` describes and loads the store's Lua, within
    /// `connect_timeout + response_timeout`: the Functions library when
    /// [`RedisConfig::use_functions`] is on and the server accepts `FUNCTION LOAD` (Redis 7 or
    /// later; on a Cluster, every primary), else the scripts.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] if `config` does not validate (nothing is contacted), and
    /// [`ConnectError::Store`] with [`Error::Unavailable`] if the servers cannot be reached in
    /// time, or [`Error::Backend`] if they refuse (wrong password, no such master name, ...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use session_redis::{RedisConfig, RedisStore};
    ///
    /// # async fn demo() -> Result<(), session_redis::ConnectError> {
    /// let store = RedisStore::connect(RedisConfig::new().with_key_prefix("auth:")).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: RedisConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let bound = config.connect_timeout + config.response_timeout;
        let topology = match &config.topology {
            crate::Topology::Standalone => "standalone",
            crate::Topology::Sentinel(_) => "sentinel",
            crate::Topology::Cluster(_) => "cluster",
        };
        let backend = match tokio::time::timeout(bound, Backend::open(&config)).await {
            Ok(Ok(backend)) => backend,
            Ok(Err(OpenError::Config(error))) => return Err(ConnectError::Config(error)),
            Ok(Err(OpenError::Redis(error))) => {
                return Err(ConnectError::Store(StoreError::Redis(error).into()));
            }
            Ok(Err(OpenError::Connect(failure))) => {
                return Err(ConnectError::Store(StoreError::Connect(failure).into()));
            }
            Err(_) => {
                return Err(ConnectError::Store(StoreError::TimedOut(bound).into()));
            }
        };
        let library = Library::new();
        let mode = match tokio::time::timeout(bound, load(&backend, &library, config.use_functions))
            .await
        {
            Ok(Ok(mode)) => mode,
            Ok(Err(error)) => return Err(ConnectError::Store(error.into())),
            Err(_) => return Err(ConnectError::Store(StoreError::TimedOut(bound).into())),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                keys: Keys::new(&config.key_prefix),
                timeout: config.response_timeout,
                library,
                mode,
                topology,
            }),
        })
    }

    /// The topology this store talks to: `"standalone"`, `"sentinel"` or `"cluster"`.
    #[must_use]
    pub fn topology(&self) -> &'static str {
        self.inner.topology
    }

    /// The name of the Redis Functions library this store calls (`auth_sessions_<tag>`, the
    /// tag derived from the library's code), or `None` when it sends scripts instead (a server
    /// without Functions, or [`RedisConfig::use_functions`] off). Decided once, in
    /// [`RedisStore::connect`].
    #[must_use]
    pub fn function_library(&self) -> Option<&str> {
        match self.inner.mode {
            Mode::Functions => Some(self.inner.library.name()),
            Mode::Scripts => None,
        }
    }

    /// Runs one operation: its request, bounded by the response timeout, then its reply's
    /// parsing. A failure that says a Sentinel master is gone makes the next call look the
    /// master up again.
    async fn run<O: Operation>(&self, op: &O) -> Result<O::Output, StoreError> {
        let request = op.request(&self.inner.keys)?;
        op.parse(self.call(&request).await?)
    }

    /// Sends one request, bounded by the response timeout.
    async fn call(&self, request: &Request) -> Result<Value, StoreError> {
        let mut generation = None;
        let attempt = async {
            let mut lease = self.inner.backend.lease().await?;
            generation = Some(lease.generation());
            let reply = match request {
                Request::Lua(op, call) => {
                    self.inner
                        .library
                        .invoke(self.inner.mode, &mut lease.conn, *op, call)
                        .await
                }
                Request::Command(cmd) => cmd.query_async(&mut lease.conn).await,
            };
            reply.map_err(StoreError::from)
        };
        let result = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::TimedOut(self.inner.timeout)),
        };
        if let (Err(error), Some(generation)) = (&result, generation)
            && needs_new_master(error)
        {
            self.inner.backend.master_lost(generation);
        }
        result
    }
}

/// Loads the library (or, without Functions, the scripts) so that even the first call of each
/// operation is one round trip, and says which is used. A server error reply to
/// `FUNCTION LOAD` (no such command before Redis 7, not permitted to this user) means scripts;
/// an unreachable server fails the connect.
async fn load(backend: &Backend, library: &Library, functions: bool) -> Result<Mode, StoreError> {
    let mut lease = backend.lease().await?;
    if functions {
        match library.load_functions(&mut lease.conn).await {
            Ok(()) => return Ok(Mode::Functions),
            Err(error) if is_unavailable(&error) || error.is_io_error() => {
                return Err(error.into());
            }
            Err(error) => tracing::warn!(
                library = %library.name(),
                %error,
                "the server refused the Functions library; using scripts"
            ),
        }
    }
    library.load_scripts(&mut lease.conn).await?;
    Ok(Mode::Scripts)
}

#[async_trait]
impl SessionStore for RedisStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::new(BACKEND).with_native_expiry()
    }

    /// One call of `create`: with a cap, counts the user's live sessions and evicts or
    /// refuses at the cap; writes the record with its TTL and indexes it.
    ///
    /// A record whose id does not carry its user's [`RoutingTag`] is refused with
    /// [`InputError::InvalidSessionId`] before anything is sent: its key would not share the
    /// user's hash slot, so no script could reach both.
    #[tracing::instrument(level = "debug", skip_all, fields(session = %record.id))]
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        if record.id.tag() != RoutingTag::for_user(&record.user_id) {
            return Err(InputError::InvalidSessionId.into());
        }
        Ok(self
            .run(&ops::Create {
                record: &record,
                limit,
            })
            .await?)
    }

    /// One `GET`. A value at the id's key that is not a whole record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        Ok(self.run(&ops::Find { id }).await?)
    }

    /// One call of `touch`: rewrites the record with its new idle expiry and last-active instant
    /// and the key's new TTL (one `SET … PX`). A value that is not a record of this store's
    /// format is [`Error::Backend`], not "not live".
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(self
            .run(&ops::Touch {
                id,
                now,
                idle_expires_at,
            })
            .await?)
    }

    /// One call of `rotate`, a compare-and-swap of the token hash that returns the
    /// record as it stands after the call. With [`Rotation::device`] `Some`, the same script
    /// replaces the record's device fields; either way the value and its TTL are written with
    /// one `SET … PX`. [`RotateOutcome::NotFound`] only when no key exists:
    /// a damaged record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %rotation.id))]
    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        Ok(self
            .run(&ops::Rotate {
                rotation: &rotation,
            })
            .await?)
    }

    /// One call of `revoke` (a read and one `SETRANGE`). The record stays (revoked) until its TTL. A damaged
    /// record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        Ok(self.run(&ops::Revoke { id, now, reason }).await?)
    }

    /// One call of `revoke_all` over the user's index (dropping entries whose record
    /// is revoked or gone). Damaged records are left alone.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        Ok(self
            .run(&ops::RevokeAll {
                user,
                keep,
                now,
                reason,
            })
            .await?)
    }

    /// One call of `list` over the user's index (dropping entries whose record is
    /// revoked or gone). A damaged record in the index is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.run(&ops::List { user, now, limit }).await?)
    }

    /// One `SET <prefix>secret:<name> <candidate> NX GET` (Redis 7.0 or later): stores the
    /// candidate unless a value is there, and answers the value that was there, atomically, so
    /// concurrent first calls from any number of processes agree. The key has no TTL, no hash
    /// tag (it is one key, on the slot of its name in a Cluster) and is in no user's index.
    #[tracing::instrument(level = "debug", skip_all, fields(name = %name))]
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        session_core::check_shared_secret_args(name, candidate)?;
        Ok(self.run(&ops::SharedSecret { name, candidate }).await?)
    }

    /// No round trip: Redis drops every key at its TTL (derived from the record's expiry), and
    /// the Lua operations prune the indexes, so there is nothing to purge. Always returns `Ok(0)`.
    async fn purge_expired(&self, _now: OffsetDateTime, _batch: NonZeroU32) -> Result<u64, Error> {
        Ok(0)
    }
}
