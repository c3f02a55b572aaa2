//! `rotate`: the compare-and-swap of the token hash, in one call of `rotate.lua`.

use redis::Value;
use session_core::{RotateOutcome, Rotation};

use super::{Operation, Request, damaged, decode_value};
use crate::codec::{self, micros};
use crate::error::StoreError;
use crate::keys::Keys;
use crate::library::{Call, LuaOp};

/// Rotates the token of `rotation.id` if the presented hash is the current one.
#[derive(Debug)]
pub(crate) struct Rotate<'a> {
    /// What to swap, and the new idle expiry and device, if any.
    pub(crate) rotation: &'a Rotation,
}

impl Operation for Rotate<'_> {
    type Output = RotateOutcome;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let rotation = self.rotation;
        let device = rotation
            .device
            .as_ref()
            .map(codec::encode_device)
            .transpose()?
            .unwrap_or_default();
        let mut call = Call::default();
        call.key(keys.session(&rotation.id))
            .arg(micros(rotation.now)?)
            .arg(rotation.presented.as_bytes().as_slice())
            .arg(rotation.next.as_bytes().as_slice())
            .arg(micros(rotation.idle_expires_at)?)
            .arg(device);
        Ok(Request::Lua(LuaOp::Rotate, call))
    }

    fn parse(&self, reply: Value) -> Result<RotateOutcome, StoreError> {
        let id = self.rotation.id;
        let reply: Vec<Vec<u8>> = decode_value(reply)?;
        match reply.as_slice() {
            [status] if status == b"missing" => Ok(RotateOutcome::NotFound),
            [status] if status == b"damaged" => Err(damaged(id)),
            [status, record] if status == b"rotated" => {
                Ok(RotateOutcome::Rotated(codec::decode(id, record)?))
            }
            [status, record] if status == b"rejected" => {
                Ok(RotateOutcome::Rejected(codec::decode(id, record)?))
            }
            _ => Err(StoreError::Decode("unexpected reply to rotate".to_owned())),
        }
    }
}
