//! The sessions table's row: the column lists every dialect's statements (and the migrations)
//! name, a record checked to fit them ([`NewRow`]) with its insert values, and a row that a
//! SQLite or MySQL statement answers read back into a record. (PostgreSQL binds and reads its
//! rows through sqlx, in `store::postgres::statements`.)

use std::net::IpAddr;

use sea_orm::{QueryResult, Value};
use session_core::{AppData, DeviceInfo, Revocation, SessionId, SessionRecord, TokenHash, UserId};
use time::OffsetDateTime;

use crate::dialect::{DecodeError, Dialect};

/// The columns of a record, written once for both lists below.
macro_rules! record_columns {
    () => {
        "id, user_id, created_at, last_active_at, idle_expires_at, absolute_expires_at, \
         token_hash, generation, previous_token_hash, rotated_at, revoked_at, revoke_reason, \
         user_agent, ip, device_name, data"
    };
}

/// Columns read back into a record, in the order [`decode`] reads them.
pub(crate) const SELECT_COLUMNS: &str = record_columns!();

/// Columns an insert writes: [`SELECT_COLUMNS`] and the derived `expires_at`.
pub(crate) const INSERT_COLUMNS: &str = concat!(record_columns!(), ", expires_at");

/// How many values an insert binds: one per column of [`INSERT_COLUMNS`].
pub(crate) const INSERT_ARITY: usize = 17;

/// A record to insert, its generation checked to fit the signed 64-bit column.
#[derive(Clone, Copy)]
pub(crate) struct NewRow<'a> {
    record: &'a SessionRecord,
    generation: i64,
}

impl<'a> NewRow<'a> {
    /// Checks that `record` can be stored.
    pub(crate) fn new(record: &'a SessionRecord) -> Result<Self, DecodeError> {
        let generation = i64::try_from(record.generation)
            .map_err(|_| DecodeError::new("generation does not fit a signed 64-bit column"))?;
        Ok(Self { record, generation })
    }

    /// The record.
    pub(crate) fn record(self) -> &'a SessionRecord {
        self.record
    }

    /// The record's generation, as the column holds it (PostgreSQL binds it).
    #[cfg(feature = "postgres")]
    pub(crate) fn generation(self) -> i64 {
        self.generation
    }

    /// The values of a SQLite or MySQL insert, one per column of [`INSERT_COLUMNS`], in its
    /// order.
    pub(crate) fn values(self, dialect: Dialect) -> [Value; INSERT_ARITY] {
        let record = self.record;
        [
            Value::from(record.id.to_string()),
            dialect.user(&record.user_id),
            dialect.time(record.created_at),
            dialect.time(record.last_active_at),
            dialect.time(record.idle_expires_at),
            dialect.time(record.absolute_expires_at),
            hash_value(Some(&record.token_hash)),
            Value::from(self.generation),
            hash_value(record.previous_token_hash.as_ref()),
            dialect.opt_time(record.rotated_at),
            dialect.opt_time(record.revoked.map(|r| r.at)),
            Value::from(record.revoked.map(|r| r.reason.as_str().to_owned())),
            Value::from(record.device.user_agent.clone()),
            Value::from(record.device.ip.map(|ip| ip.to_string())),
            Value::from(record.device.device_name.clone()),
            Value::from(record.data.as_ref().map(|d| d.as_json().to_owned())),
            dialect.time(record.expires_at()),
        ]
    }
}

/// A token hash as stored (32 bytes), or a typed `NULL`.
pub(crate) fn hash_value(hash: Option<&TokenHash>) -> Value {
    Value::Bytes(hash.map(|h| h.as_bytes().to_vec()))
}

/// A row's columns as a driver read them, before the checks that make them a record: what
/// every dialect's decoder fills, so that the checks are written once.
pub(crate) struct StoredRecord<'a> {
    pub(crate) id: &'a str,
    pub(crate) user_id: UserId,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_active_at: OffsetDateTime,
    pub(crate) idle_expires_at: OffsetDateTime,
    pub(crate) absolute_expires_at: OffsetDateTime,
    pub(crate) token_hash: Option<&'a [u8]>,
    pub(crate) generation: i64,
    pub(crate) previous_token_hash: Option<&'a [u8]>,
    pub(crate) rotated_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
    pub(crate) revoke_reason: Option<&'a str>,
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<&'a str>,
    pub(crate) device_name: Option<String>,
    pub(crate) data: Option<String>,
}

impl StoredRecord<'_> {
    /// The record, or what is wrong with the row: an unparsable id, IP address, revocation
    /// reason or app data, a token hash that is not 32 bytes (or a `NULL` current one), a
    /// negative generation, or a revocation instant without its reason (or the reverse).
    pub(crate) fn into_record(self) -> Result<SessionRecord, DecodeError> {
        let parse_error = |e: session_core::InputError| DecodeError::new(e.to_string());
        let hash = |bytes: Option<&[u8]>| {
            bytes
                .map(TokenHash::from_slice)
                .transpose()
                .map_err(|e| DecodeError::new(format!("stored token hash: {e}")))
        };
        let revoked = match (self.revoked_at, self.revoke_reason) {
            (Some(at), Some(reason)) => Some(Revocation {
                at,
                reason: reason.parse().map_err(parse_error)?,
            }),
            (None, None) => None,
            _ => {
                return Err(DecodeError::new(
                    "revoked_at and revoke_reason must be both set or both NULL",
                ));
            }
        };
        let mut device = DeviceInfo::new();
        device.user_agent = self.user_agent;
        device.ip = self
            .ip
            .map(str::parse::<IpAddr>)
            .transpose()
            .map_err(|e| DecodeError::new(format!("stored ip: {e}")))?;
        device.device_name = self.device_name;
        Ok(SessionRecord {
            id: self.id.parse().map_err(parse_error)?,
            user_id: self.user_id,
            created_at: self.created_at,
            last_active_at: self.last_active_at,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            token_hash: hash(self.token_hash)?
                .ok_or_else(|| DecodeError::new("token_hash is NULL"))?,
            generation: u64::try_from(self.generation)
                .map_err(|_| DecodeError::new("negative generation"))?,
            previous_token_hash: hash(self.previous_token_hash)?,
            rotated_at: self.rotated_at,
            revoked,
            device,
            data: self
                .data
                .map(AppData::from_json)
                .transpose()
                .map_err(|e| DecodeError::new(e.to_string()))?,
        })
    }
}

/// Reads a record from a row whose columns are [`SELECT_COLUMNS`].
pub(crate) fn decode(dialect: Dialect, row: &QueryResult) -> Result<SessionRecord, DecodeError> {
    let required = |index: usize| -> Result<OffsetDateTime, DecodeError> {
        dialect
            .read_time(row, index)?
            .ok_or_else(|| DecodeError::new(format!("column {index} is NULL")))
    };
    let id: String = row.try_get_by_index(0)?;
    let token_hash: Option<Vec<u8>> = row.try_get_by_index(6)?;
    let previous_token_hash: Option<Vec<u8>> = row.try_get_by_index(8)?;
    let revoke_reason: Option<String> = row.try_get_by_index(11)?;
    let ip: Option<String> = row.try_get_by_index(13)?;
    StoredRecord {
        id: &id,
        user_id: dialect.read_user(row, 1)?,
        created_at: required(2)?,
        last_active_at: required(3)?,
        idle_expires_at: required(4)?,
        absolute_expires_at: required(5)?,
        token_hash: token_hash.as_deref(),
        generation: row.try_get_by_index(7)?,
        previous_token_hash: previous_token_hash.as_deref(),
        rotated_at: dialect.read_time(row, 9)?,
        revoked_at: dialect.read_time(row, 10)?,
        revoke_reason: revoke_reason.as_deref(),
        user_agent: row.try_get_by_index(12)?,
        ip: ip.as_deref(),
        device_name: row.try_get_by_index(14)?,
        data: row.try_get_by_index(15)?,
    }
    .into_record()
}

/// Reads a session id column.
pub(crate) fn read_id(row: &QueryResult, index: usize) -> Result<SessionId, DecodeError> {
    let text: String = row.try_get_by_index(index)?;
    text.parse()
        .map_err(|e: session_core::InputError| DecodeError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_arity() {
        assert_eq!(INSERT_COLUMNS.split(',').count(), INSERT_ARITY);
        assert_eq!(SELECT_COLUMNS.split(',').count(), INSERT_ARITY - 1);
    }
}
