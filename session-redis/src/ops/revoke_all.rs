//! `revoke_all`: every live session of a user but one, in one call of `revoke_all.lua`.

use redis::Value;
use session_core::{RevokeReason, RoutingTag, SessionId, UserId};
use time::OffsetDateTime;

use super::{Operation, Request, decode_value};
use crate::codec::{self, micros};
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Revokes the live sessions of `user` except `keep`.
#[derive(Debug)]
pub(crate) struct RevokeAll<'a> {
    /// The user.
    pub(crate) user: &'a UserId,
    /// The session to leave alone, if any.
    pub(crate) keep: Option<&'a SessionId>,
    /// The caller's clock.
    pub(crate) now: OffsetDateTime,
    /// Why.
    pub(crate) reason: RevokeReason,
}

impl Operation for RevokeAll<'_> {
    /// How many sessions were revoked.
    type Output = u64;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut call = Call::default();
        call.key(keys.user_index(self.user))
            .arg(micros(self.now)?)
            .arg(self.keep.map(ToString::to_string).unwrap_or_default())
            .arg(&codec::revocation_stamp(self.reason, self.now)?[..])
            .arg(keys.session_prefix(RoutingTag::for_user(self.user)));
        Ok(Request::Lua(LuaOp::RevokeAll, call))
    }

    fn parse(&self, reply: Value) -> Result<u64, StoreError> {
        decode_value(reply)
    }
}
