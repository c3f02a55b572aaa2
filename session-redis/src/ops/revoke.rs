//! `revoke`: one live session marked revoked, in one call of `revoke.lua`.

use redis::Value;
use session_core::{RevokeReason, SessionId};
use time::OffsetDateTime;

use super::{Operation, Request, decode_flag};
use crate::codec::{self, micros};
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Revokes the live session `id` at `now` for `reason`.
#[derive(Debug)]
pub(crate) struct Revoke<'a> {
    /// The session.
    pub(crate) id: &'a SessionId,
    /// The caller's clock.
    pub(crate) now: OffsetDateTime,
    /// Why.
    pub(crate) reason: RevokeReason,
}

impl Operation for Revoke<'_> {
    /// `true` if revoked, `false` if missing, revoked or expired at `now`.
    type Output = bool;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut call = Call::default();
        call.key(keys.session(self.id))
            .arg(micros(self.now)?)
            .arg(&codec::revocation_stamp(self.reason, self.now)?[..]);
        Ok(Request::Lua(LuaOp::Revoke, call))
    }

    fn parse(&self, reply: Value) -> Result<bool, StoreError> {
        decode_flag(reply, self.id, LuaOp::Revoke)
    }
}
