//! [`RedisStore`]: the [`SessionStore`] on Redis, one script or command per operation.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, Script, ScriptInvocation, Value};
use session_core::{
    CreateOutcome, Error, InputError, LimitMode, RevokeReason, RotateOutcome, Rotation, RoutingTag,
    SessionId, SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};
use time::OffsetDateTime;

use crate::codec::{self, micros};
use crate::config::RedisConfig;
use crate::connection::{Backend, OpenError};
use crate::error::{BACKEND, ConnectError, StoreError, needs_new_master};
use crate::keys::Keys;

mod stats;

/// Key TTLs never go below this, so a record written already expired under the caller's clock
/// can still be read back once (the same floor is in the scripts).
pub(crate) const TTL_FLOOR_MS: i64 = 1000;

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("scripts/common.lua"),
            include_str!(concat!("scripts/", $name, ".lua"))
        ))
    };
}

struct Scripts {
    create: Script,
    touch: Script,
    rotate: Script,
    revoke: Script,
    revoke_all: Script,
    list: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: script!("create"),
            touch: script!("touch"),
            rotate: script!("rotate"),
            revoke: script!("revoke"),
            revoke_all: script!("revoke_all"),
            list: script!("list"),
        }
    }

    fn all(&self) -> [&Script; 6] {
        [
            &self.create,
            &self.touch,
            &self.rotate,
            &self.revoke,
            &self.revoke_all,
            &self.list,
        ]
    }
}

/// A session store on Redis: standalone, Sentinel or Cluster, chosen by [`RedisConfig`].
///
/// Every [`SessionStore`] method is one round trip: one Lua script sent by hash (`EVALSHA`;
/// redis reloads it by itself after a server restart or failover wiped the script cache) or one
/// command. Scripts run atomically on the server, so no read-then-write race exists between
/// concurrent callers, on any topology: all keys of a user share one hash slot.
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
    scripts: Scripts,
    topology: &'static str,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.inner.topology)
            .field("keys", &self.inner.keys)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

enum Request<'a> {
    Script(ScriptInvocation<'a>),
    Command(Cmd),
}

fn decode_value<T: FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(|e| StoreError::Decode(e.to_string()))
}

fn ttl_ms(expiry: OffsetDateTime, now: OffsetDateTime) -> Result<i64, StoreError> {
    let ms = (micros(expiry)? - micros(now)?).div_euclid(1000) + 1;
    Ok(ms.max(TTL_FLOOR_MS))
}

/// The error for a value at a session's key that is not a record of this store's format (a
/// script found it of another type, too short, or of another format version).
fn damaged(id: impl std::fmt::Display) -> StoreError {
    StoreError::Decode(format!(
        "the record of session {id} is damaged: not a record of format version {}",
        codec::VERSION
    ))
}

/// The reply of `touch.lua` and `revoke.lua`: 1 done, 0 not live (or missing), -1 damaged.
fn decode_flag(value: Value, id: &SessionId, script: &str) -> Result<bool, StoreError> {
    match decode_value::<i64>(value)? {
        1 => Ok(true),
        0 => Ok(false),
        -1 => Err(damaged(id)),
        other => Err(StoreError::Decode(format!(
            "unexpected reply {other} to {script}"
        ))),
    }
}

fn parse_id(bytes: &[u8]) -> Result<SessionId, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Decode("an index member is not a session id".to_owned()))
}

impl RedisStore {
    /// Connects to the deployment `config` describes and loads the scripts, within
    /// `connect_timeout + response_timeout`.
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
        let store = Self {
            inner: Arc::new(Inner {
                backend,
                keys: Keys::new(&config.key_prefix),
                timeout: config.response_timeout,
                scripts: Scripts::new(),
                topology,
            }),
        };
        store.load_scripts(bound).await?;
        Ok(store)
    }

    /// Loads every script into the server's cache so that even the first call of each
    /// operation is a single `EVALSHA`.
    async fn load_scripts(&self, bound: Duration) -> Result<(), ConnectError> {
        let load = async {
            let mut lease = self.inner.backend.lease().await?;
            for script in self.inner.scripts.all() {
                script.load_async(&mut lease.conn).await?;
            }
            Ok::<(), StoreError>(())
        };
        match tokio::time::timeout(bound, load).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ConnectError::Store(error.into())),
            Err(_) => Err(ConnectError::Store(StoreError::TimedOut(bound).into())),
        }
    }

    /// The topology this store talks to: `"standalone"`, `"sentinel"` or `"cluster"`.
    #[must_use]
    pub fn topology(&self) -> &'static str {
        self.inner.topology
    }

    /// Sends one request, bounded by the response timeout. A failure that says a Sentinel
    /// master is gone makes the next call look the master up again.
    async fn call(&self, request: &Request<'_>) -> Result<Value, StoreError> {
        let mut generation = None;
        let attempt = async {
            let mut lease = self.inner.backend.lease().await?;
            generation = Some(lease.generation());
            let reply = match request {
                Request::Script(invocation) => invocation.invoke_async(&mut lease.conn).await,
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

    async fn create_inner(
        &self,
        record: &SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, StoreError> {
        let keys = &self.inner.keys;
        let now = record.created_at;
        let session_ttl = ttl_ms(record.expires_at(), now)?;
        let index_ttl = ttl_ms(record.absolute_expires_at, now)?;
        let mode = match limit.mode {
            LimitMode::Reject => "reject",
            _ => "evict",
        };
        let mut invocation = self.inner.scripts.create.prepare_invoke();
        invocation
            .key(keys.session(&record.id))
            .key(keys.user_index(&record.user_id))
            .arg(micros(now)?)
            .arg(limit.max.map_or(0, NonZeroU32::get))
            .arg(mode)
            .arg(keys.session_prefix(record.id.tag()))
            .arg(record.id.to_string())
            .arg(session_ttl)
            .arg(index_ttl)
            .arg(&[codec::reason_code(RevokeReason::Evicted)?][..])
            .arg(codec::encode(record)?);
        let reply: Vec<Vec<u8>> = decode_value(self.call(&Request::Script(invocation)).await?)?;
        let mut items = reply.into_iter();
        match items.next().as_deref() {
            Some(b"created") => Ok(CreateOutcome::Created {
                evicted: items.map(|id| parse_id(&id)).collect::<Result<_, _>>()?,
            }),
            Some(b"limit") => Ok(CreateOutcome::LimitReached),
            Some(b"exists") => Err(StoreError::Duplicate(record.id.to_string())),
            _ => Err(StoreError::Decode("unexpected reply to create".to_owned())),
        }
    }

    async fn find_inner(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.inner.keys.session(id));
        let value: Option<Vec<u8>> = decode_value(self.call(&Request::Command(cmd)).await?)?;
        value.map(|bytes| codec::decode(*id, &bytes)).transpose()
    }

    async fn touch_inner(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.inner.scripts.touch.prepare_invoke();
        invocation
            .key(self.inner.keys.session(id))
            .arg(micros(now)?)
            .arg(micros(idle_expires_at)?);
        decode_flag(self.call(&Request::Script(invocation)).await?, id, "touch")
    }

    async fn rotate_inner(&self, rotation: &Rotation) -> Result<RotateOutcome, StoreError> {
        let mut invocation = self.inner.scripts.rotate.prepare_invoke();
        invocation
            .key(self.inner.keys.session(&rotation.id))
            .arg(micros(rotation.now)?)
            .arg(rotation.presented.as_bytes().as_slice())
            .arg(rotation.next.as_bytes().as_slice())
            .arg(micros(rotation.idle_expires_at)?)
            .arg(
                rotation
                    .device
                    .as_ref()
                    .map(codec::encode_device)
                    .transpose()?
                    .unwrap_or_default(),
            );
        let reply: Vec<Vec<u8>> = decode_value(self.call(&Request::Script(invocation)).await?)?;
        match reply.as_slice() {
            [status] if status == b"missing" => Ok(RotateOutcome::NotFound),
            [status] if status == b"damaged" => Err(damaged(rotation.id)),
            [status, record] if status == b"rotated" => {
                Ok(RotateOutcome::Rotated(codec::decode(rotation.id, record)?))
            }
            [status, record] if status == b"rejected" => {
                Ok(RotateOutcome::Rejected(codec::decode(rotation.id, record)?))
            }
            _ => Err(StoreError::Decode("unexpected reply to rotate".to_owned())),
        }
    }

    async fn shared_secret_inner(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.inner.keys.secret(name))
            .arg(candidate)
            .arg("NX")
            .arg("GET");
        let stored: Option<Vec<u8>> = decode_value(self.call(&Request::Command(cmd)).await?)?;
        Ok(stored.unwrap_or_else(|| candidate.to_vec()))
    }

    async fn revoke_inner(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.inner.scripts.revoke.prepare_invoke();
        invocation
            .key(self.inner.keys.session(id))
            .arg(micros(now)?)
            .arg(&[codec::reason_code(reason)?][..]);
        decode_flag(self.call(&Request::Script(invocation)).await?, id, "revoke")
    }

    async fn revoke_all_inner(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, StoreError> {
        let keys = &self.inner.keys;
        let mut invocation = self.inner.scripts.revoke_all.prepare_invoke();
        invocation
            .key(keys.user_index(user))
            .arg(micros(now)?)
            .arg(keep.map(ToString::to_string).unwrap_or_default())
            .arg(&[codec::reason_code(reason)?][..])
            .arg(keys.session_prefix(RoutingTag::for_user(user)));
        let count: u64 = decode_value(self.call(&Request::Script(invocation)).await?)?;
        Ok(count)
    }

    async fn list_inner(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let keys = &self.inner.keys;
        let mut invocation = self.inner.scripts.list.prepare_invoke();
        invocation
            .key(keys.user_index(user))
            .arg(micros(now)?)
            .arg(u64::try_from(limit.get()).unwrap_or(u64::MAX))
            .arg(keys.session_prefix(RoutingTag::for_user(user)));
        let reply: Vec<Vec<u8>> = decode_value(self.call(&Request::Script(invocation)).await?)?;
        match reply.split_first() {
            Some((status, rows)) if status == b"ok" && rows.len().is_multiple_of(2) => rows
                .iter()
                .step_by(2)
                .zip(rows.iter().skip(1).step_by(2))
                .map(|(id, record)| codec::decode(parse_id(id)?, record))
                .collect(),
            Some((status, [id])) if status == b"damaged" => {
                Err(damaged(String::from_utf8_lossy(id)))
            }
            _ => Err(StoreError::Decode("unexpected reply to list".to_owned())),
        }
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::new(BACKEND).with_native_expiry()
    }

    /// One `EVALSHA` of `create.lua`: with a cap, counts the user's live sessions and evicts or
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
        Ok(self.create_inner(&record, limit).await?)
    }

    /// One `GET`. A value at the id's key that is not a whole record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        Ok(self.find_inner(id).await?)
    }

    /// One `EVALSHA` of `touch.lua`: writes the idle expiry and last-active instant in place
    /// (one `SETRANGE`) and the key's new TTL. A value that is not a record of this store's
    /// format is [`Error::Backend`], not "not live".
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(self.touch_inner(id, now, idle_expires_at).await?)
    }

    /// One `EVALSHA` of `rotate.lua`, a compare-and-swap of the token hash that returns the
    /// record as it stands after the call. With [`Rotation::device`] `Some`, the same script
    /// replaces the record's device fields (the value is rewritten with one `SET`); with `None`
    /// it patches the header in place. [`RotateOutcome::NotFound`] only when no key exists:
    /// a damaged record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %rotation.id))]
    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        Ok(self.rotate_inner(&rotation).await?)
    }

    /// One `EVALSHA` of `revoke.lua`. The record stays (revoked) until its TTL. A damaged
    /// record is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all, fields(session = %id))]
    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        Ok(self.revoke_inner(id, now, reason).await?)
    }

    /// One `EVALSHA` of `revoke_all.lua` over the user's index (dropping entries whose record
    /// is revoked or gone). Damaged records are left alone.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        Ok(self.revoke_all_inner(user, keep, now, reason).await?)
    }

    /// One `EVALSHA` of `list.lua` over the user's index (dropping entries whose record is
    /// revoked or gone). A damaged record in the index is [`Error::Backend`].
    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.list_inner(user, now, limit).await?)
    }

    /// One `SET <prefix>secret:<name> <candidate> NX GET` (Redis 7.0 or later): stores the
    /// candidate unless a value is there, and answers the value that was there, atomically, so
    /// concurrent first calls from any number of processes agree. The key has no TTL, no hash
    /// tag (it is one key, on the slot of its name in a Cluster) and is in no user's index.
    #[tracing::instrument(level = "debug", skip_all, fields(name = %name))]
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        session_core::check_shared_secret_args(name, candidate)?;
        Ok(self.shared_secret_inner(name, candidate).await?)
    }

    /// No round trip: Redis drops every key at its TTL (derived from the record's expiry), and
    /// the scripts prune the indexes, so there is nothing to purge. Always returns `Ok(0)`.
    async fn purge_expired(&self, _now: OffsetDateTime, _batch: NonZeroU32) -> Result<u64, Error> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ttls_round_up_and_have_a_floor() {
        let now = datetime!(2030-01-01 0:00 UTC);
        assert_eq!(
            ttl_ms(now + time::Duration::seconds(30), now).unwrap(),
            30_001
        );
        assert_eq!(ttl_ms(now, now).unwrap(), TTL_FLOOR_MS);
        assert_eq!(
            ttl_ms(now - time::Duration::days(1), now).unwrap(),
            TTL_FLOOR_MS
        );
    }

    #[test]
    fn scripts_are_distinct() {
        let scripts = Scripts::new();
        let mut hashes: Vec<&str> = scripts.all().iter().map(|s| s.get_hash()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 6);
    }
}
