//! `create`: the per-user cap, the record and its index entry, in one call of `create.lua`.

use std::num::NonZeroU32;

use redis::Value;
use session_core::{CreateOutcome, LimitMode, RevokeReason, SessionLimit, SessionRecord};

use super::{Operation, Request, decode_value, parse_id};
use crate::codec::{self, micros};
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Stores `record` under the user's cap `limit`.
#[derive(Debug)]
pub(crate) struct Create<'a> {
    /// The new record (its id carries its user's routing tag: checked by the caller).
    pub(crate) record: &'a SessionRecord,
    /// The cap and what to do at it.
    pub(crate) limit: SessionLimit,
}

impl Operation for Create<'_> {
    type Output = CreateOutcome;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let record = self.record;
        let mode = match self.limit.mode {
            LimitMode::Reject => "reject",
            _ => "evict",
        };
        let mut call = Call::default();
        call.key(keys.session(&record.id))
            .key(keys.user_index(&record.user_id))
            .arg(micros(record.created_at)?)
            .arg(self.limit.max.map_or(0, NonZeroU32::get))
            .arg(mode)
            .arg(keys.session_prefix(record.id.tag()))
            .arg(record.id.to_string())
            .arg(micros(record.expires_at())?)
            .arg(micros(record.absolute_expires_at)?)
            .arg(&codec::revocation_stamp(RevokeReason::Evicted, record.created_at)?[..])
            .arg(codec::encode(record)?);
        Ok(Request::Lua(LuaOp::Create, call))
    }

    fn parse(&self, reply: Value) -> Result<CreateOutcome, StoreError> {
        let reply: Vec<Vec<u8>> = decode_value(reply)?;
        let mut items = reply.into_iter();
        match items.next().as_deref() {
            Some(b"created") => Ok(CreateOutcome::Created {
                evicted: items.map(|id| parse_id(&id)).collect::<Result<_, _>>()?,
            }),
            Some(b"limit") => Ok(CreateOutcome::LimitReached),
            Some(b"exists") => Err(StoreError::Duplicate(self.record.id.to_string())),
            _ => Err(StoreError::Decode("unexpected reply to create".to_owned())),
        }
    }
}
