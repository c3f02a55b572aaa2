//! `touch`: a new idle expiry and last-active instant, in one call of `touch.lua`.

use redis::Value;
use session_core::SessionId;
use time::OffsetDateTime;

use super::{Operation, Request, decode_flag};
use crate::codec::micros;
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Extends the live session `id` to `idle_expires_at` (capped at its absolute expiry).
#[derive(Debug)]
pub(crate) struct Touch<'a> {
    /// The session.
    pub(crate) id: &'a SessionId,
    /// The caller's clock.
    pub(crate) now: OffsetDateTime,
    /// The new idle expiry.
    pub(crate) idle_expires_at: OffsetDateTime,
}

impl Operation for Touch<'_> {
    /// `true` if touched, `false` if missing, revoked or expired at `now`.
    type Output = bool;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut call = Call::default();
        call.key(keys.session(self.id))
            .arg(micros(self.now)?)
            .arg(micros(self.idle_expires_at)?);
        Ok(Request::Lua(LuaOp::Touch, call))
    }

    fn parse(&self, reply: Value) -> Result<bool, StoreError> {
        decode_flag(reply, self.id, LuaOp::Touch)
    }
}
