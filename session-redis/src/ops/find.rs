//! `find`: one `GET` of the record.

use redis::Value;
use session_core::{SessionId, SessionRecord};

use super::{Operation, Request, decode_value};
use crate::codec;
use crate::error::StoreError;
use crate::keys::Keys;

/// Reads the record of `id`.
#[derive(Debug)]
pub(crate) struct Find<'a> {
    /// The session.
    pub(crate) id: &'a SessionId,
}

impl Operation for Find<'_> {
    type Output = Option<SessionRecord>;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(keys.session(self.id));
        Ok(Request::Command(cmd))
    }

    fn parse(&self, reply: Value) -> Result<Option<SessionRecord>, StoreError> {
        let value: Option<Vec<u8>> = decode_value(reply)?;
        value
            .map(|bytes| codec::decode(*self.id, &bytes))
            .transpose()
    }
}
