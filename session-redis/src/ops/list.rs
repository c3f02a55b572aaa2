//! `list`: a user's live sessions, newest first, in one call of `list.lua`.

use std::num::NonZeroUsize;

use redis::Value;
use session_core::{RoutingTag, SessionRecord, UserId};
use time::OffsetDateTime;

use super::{Operation, Request, damaged, decode_value, parse_id};
use crate::codec::{self, micros};
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Lists at most `limit` live sessions of `user` at `now`.
#[derive(Debug)]
pub(crate) struct List<'a> {
    /// The user.
    pub(crate) user: &'a UserId,
    /// The caller's clock.
    pub(crate) now: OffsetDateTime,
    /// The most records returned.
    pub(crate) limit: NonZeroUsize,
}

impl Operation for List<'_> {
    type Output = Vec<SessionRecord>;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut call = Call::default();
        call.key(keys.user_index(self.user))
            .arg(micros(self.now)?)
            .arg(u64::try_from(self.limit.get()).unwrap_or(u64::MAX))
            .arg(keys.session_prefix(RoutingTag::for_user(self.user)));
        Ok(Request::Lua(LuaOp::List, call))
    }

    fn parse(&self, reply: Value) -> Result<Vec<SessionRecord>, StoreError> {
        let reply: Vec<Vec<u8>> = decode_value(reply)?;
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
