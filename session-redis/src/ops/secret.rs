//! `shared_secret`: one `SET <key> <candidate> NX GET`.

use redis::Value;

use super::{Operation, Request, decode_value};
use crate::error::StoreError;
use crate::keys::Keys;

/// Stores `candidate` under `name` unless a value is there; answers the value that stays.
#[derive(Debug)]
pub(crate) struct SharedSecret<'a> {
    /// The secret's name (checked by the caller).
    pub(crate) name: &'a str,
    /// The value to store if none is.
    pub(crate) candidate: &'a [u8],
}

impl Operation for SharedSecret<'_> {
    type Output = Vec<u8>;

    fn request(&self, keys: &Keys) -> Result<Request, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(keys.secret(self.name))
            .arg(self.candidate)
            .arg("NX")
            .arg("GET");
        Ok(Request::Command(cmd))
    }

    fn parse(&self, reply: Value) -> Result<Vec<u8>, StoreError> {
        let stored: Option<Vec<u8>> = decode_value(reply)?;
        Ok(stored.unwrap_or_else(|| self.candidate.to_vec()))
    }
}
