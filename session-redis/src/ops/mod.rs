//! One typed wrapper per Redis operation of the store.
//!
//! Each wrapper owns what its operation sends and what it gets back: the function (or script)
//! it runs or the command it sends, its `KEYS`/`ARGV` in the order its Lua file documents, and
//! the parsing of the reply into a typed outcome. The store builds a wrapper, hands it to
//! [`RedisStore::run`](crate::RedisStore), and never touches an argument list itself.
//!
//! Time goes to the server as instants (µs since the epoch), never as TTLs: the one formula
//! from an expiry to a key TTL is `ttl_ms` in `scripts/common.lua` (see there for why).

mod create;
mod find;
mod list;
mod revoke;
mod revoke_all;
mod rotate;
mod secret;
mod touch;

use redis::{Cmd, FromRedisValue, Value};
use session_core::SessionId;

pub(crate) use create::Create;
pub(crate) use find::Find;
pub(crate) use list::List;
pub(crate) use revoke::Revoke;
pub(crate) use revoke_all::RevokeAll;
pub(crate) use rotate::Rotate;
pub(crate) use secret::SharedSecret;
pub(crate) use touch::Touch;

use crate::codec;
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// What one operation sends: a call of its Lua function, or one plain command.
#[derive(Debug)]
pub(crate) enum Request {
    /// A call of the library's function (or script) for this operation.
    Lua(LuaOp, Call),
    /// One command.
    Command(Cmd),
}

/// One Redis operation of the store: what it sends and how its reply reads.
pub(crate) trait Operation {
    /// The typed outcome.
    type Output;

    /// The request, with its keys named under `keys`' prefix.
    ///
    /// # Errors
    ///
    /// [`StoreError::InstantOutOfRange`] or [`StoreError::Decode`] when an input cannot be
    /// encoded (an instant outside the exact range, an unknown reason).
    fn request(&self, keys: &Keys) -> Result<Request, StoreError>;

    /// Reads the server's reply.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] for a reply of the wrong shape or a damaged record,
    /// [`StoreError::Duplicate`] for a `create` of a stored id.
    fn parse(&self, reply: Value) -> Result<Self::Output, StoreError>;
}

/// Converts a reply with the driver's conversions.
pub(crate) fn decode_value<T: FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(|e| StoreError::Decode(e.to_string()))
}

/// The error for a value at a session's key that is not a record of this store's format (the
/// Lua found it of another type, too short, or of another format version).
fn damaged(id: impl std::fmt::Display) -> StoreError {
    StoreError::Decode(format!(
        "the record of session {id} is damaged: not a record of format version {}",
        codec::VERSION
    ))
}

/// The reply of `touch` and `revoke`: 1 done, 0 not live (or missing), -1 damaged.
fn decode_flag(value: Value, id: &SessionId, op: LuaOp) -> Result<bool, StoreError> {
    match decode_value::<i64>(value)? {
        1 => Ok(true),
        0 => Ok(false),
        -1 => Err(damaged(id)),
        other => Err(StoreError::Decode(format!(
            "unexpected reply {other} to {}",
            op.lua_name()
        ))),
    }
}

/// A session id from an index member.
fn parse_id(bytes: &[u8]) -> Result<SessionId, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Decode("an index member is not a session id".to_owned()))
}
