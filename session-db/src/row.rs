//! Records to SQL values and rows back to records.

use std::net::IpAddr;

use sea_orm::{QueryResult, Value};
use session_core::{AppData, DeviceInfo, Revocation, SessionId, SessionRecord, TokenHash};
use time::OffsetDateTime;

use crate::dialect::{DecodeError, Dialect};

/// The values of an insert, in [`crate::sql::INSERT_COLUMNS`] order.
pub(crate) fn insert_values(
    dialect: Dialect,
    record: &SessionRecord,
) -> Result<Vec<Value>, DecodeError> {
    let generation = i64::try_from(record.generation)
        .map_err(|_| DecodeError::new("generation does not fit a signed 64-bit column"))?;
    Ok(vec![
        Value::from(record.id.to_string()),
        dialect.user(&record.user_id),
        dialect.time(record.created_at),
        dialect.time(record.last_active_at),
        dialect.time(record.idle_expires_at),
        dialect.time(record.absolute_expires_at),
        hash_value(Some(&record.token_hash)),
        Value::from(generation),
        hash_value(record.previous_token_hash.as_ref()),
        dialect.opt_time(record.rotated_at),
        dialect.opt_time(record.revoked.map(|r| r.at)),
        Value::from(record.revoked.map(|r| r.reason.as_str().to_owned())),
        Value::from(record.device.user_agent.clone()),
        Value::from(record.device.ip.map(|ip| ip.to_string())),
        Value::from(record.device.device_name.clone()),
        Value::from(record.data.as_ref().map(|d| d.as_json().to_owned())),
        dialect.time(record.expires_at()),
    ])
}

/// The values of the device columns `user_agent, ip, device_name`.
pub(crate) fn device_values(device: &DeviceInfo) -> Vec<Value> {
    vec![
        Value::from(device.user_agent.clone()),
        Value::from(device.ip.map(|ip| ip.to_string())),
        Value::from(device.device_name.clone()),
    ]
}

/// A token hash as stored (32 bytes), or a typed `NULL`.
pub(crate) fn hash_value(hash: Option<&TokenHash>) -> Value {
    Value::Bytes(hash.map(|h| h.as_bytes().to_vec()))
}

/// Reads a record from a row whose columns are [`crate::sql::SELECT_COLUMNS`].
pub(crate) fn decode(dialect: Dialect, row: &QueryResult) -> Result<SessionRecord, DecodeError> {
    let id = read_id(row, 0)?;
    let user_id = dialect.read_user(row, 1)?;
    let required = |index: usize| -> Result<OffsetDateTime, DecodeError> {
        dialect
            .read_time(row, index)?
            .ok_or_else(|| DecodeError::new(format!("column {index} is NULL")))
    };
    let created_at = required(2)?;
    let last_active_at = required(3)?;
    let idle_expires_at = required(4)?;
    let absolute_expires_at = required(5)?;
    let token_hash = read_hash(row, 6)?.ok_or_else(|| DecodeError::new("token_hash is NULL"))?;
    let generation: i64 = row.try_get_by_index(7)?;
    let generation =
        u64::try_from(generation).map_err(|_| DecodeError::new("negative generation"))?;
    let previous_token_hash = read_hash(row, 8)?;
    let rotated_at = dialect.read_time(row, 9)?;
    let revoked_at = dialect.read_time(row, 10)?;
    let reason: Option<String> = row.try_get_by_index(11)?;
    let revoked = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some(Revocation {
            at,
            reason: reason
                .parse()
                .map_err(|e: session_core::InputError| DecodeError::new(e.to_string()))?,
        }),
        (None, None) => None,
        _ => {
            return Err(DecodeError::new(
                "revoked_at and revoke_reason must be both set or both NULL",
            ));
        }
    };
    let user_agent: Option<String> = row.try_get_by_index(12)?;
    let ip: Option<String> = row.try_get_by_index(13)?;
    let ip = ip
        .map(|ip| ip.parse::<IpAddr>())
        .transpose()
        .map_err(|e| DecodeError::new(format!("stored ip: {e}")))?;
    let device_name: Option<String> = row.try_get_by_index(14)?;
    let data: Option<String> = row.try_get_by_index(15)?;
    let data = data
        .map(AppData::from_json)
        .transpose()
        .map_err(|e| DecodeError::new(e.to_string()))?;
    let mut device = DeviceInfo::new();
    device.user_agent = user_agent;
    device.ip = ip;
    device.device_name = device_name;
    Ok(SessionRecord {
        id,
        user_id,
        created_at,
        last_active_at,
        idle_expires_at,
        absolute_expires_at,
        token_hash,
        generation,
        previous_token_hash,
        rotated_at,
        revoked,
        device,
        data,
    })
}

/// Reads a session id column.
pub(crate) fn read_id(row: &QueryResult, index: usize) -> Result<SessionId, DecodeError> {
    let text: String = row.try_get_by_index(index)?;
    text.parse()
        .map_err(|e: session_core::InputError| DecodeError::new(e.to_string()))
}

fn read_hash(row: &QueryResult, index: usize) -> Result<Option<TokenHash>, DecodeError> {
    let bytes: Option<Vec<u8>> = row.try_get_by_index(index)?;
    bytes
        .map(|b| TokenHash::from_slice(&b))
        .transpose()
        .map_err(|e| DecodeError::new(format!("stored token hash: {e}")))
}
