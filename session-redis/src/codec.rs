//! The stored form of a record: a Redis hash with one short field per value.
//!
//! A hash lets the scripts read and change single fields (a touch writes two of them) instead of
//! rewriting the record. Instants are microseconds since the Unix epoch in decimal text: the
//! scripts compare them as Lua numbers, exact below 2^53 µs (years 1685 to 2255), and never
//! format them back, so no precision is lost. Token hashes are their 32 raw bytes.
//!
//! | field | value | present |
//! |---|---|---|
//! | `u` | user id | always |
//! | `c`, `l`, `i`, `a` | created, last active, idle expiry, absolute expiry (µs) | always |
//! | `t` | current token hash | always |
//! | `g` | generation | always |
//! | `p`, `r` | previous token hash, rotated at (µs) | after a rotation |
//! | `v`, `w` | revoked at (µs), reason code | once revoked |
//! | `ua`, `ip`, `dn` | user agent, IP address, device name | when given |
//! | `d` | app data (JSON text) | when given |
//!
//! Values longer than 64 bytes (app data, user agent, device name) are split into chunks under
//! numbered fields (`d`, `d1`, `d2`, ...). A value of at most 6 KiB is split into 64-byte
//! chunks: with Redis' default `hash-max-listpack-value 64` and `hash-max-listpack-entries 128`,
//! the hash then keeps the compact listpack encoding (at most 96 chunks plus 24 other fields),
//! about half the memory of the hashtable encoding one long value would force. A longer value
//! would overflow the listpack anyway, so it is split into 64 KiB chunks: few fields (256 for
//! the manager's 16 MiB bound) instead of hundreds of thousands. The reader joins the chunks
//! whatever their size.

use std::collections::BTreeMap;
use std::net::IpAddr;

use session_core::{
    AppData, DeviceInfo, Revocation, RevokeReason, SessionId, SessionRecord, TokenHash, UserId,
};
use time::OffsetDateTime;

use crate::error::StoreError;

/// The largest magnitude of microseconds a Lua number (a double) holds exactly.
const MAX_EXACT_MICROS: i64 = 1 << 53;

/// Values of at most [`LISTPACK_VALUE_MAX`] bytes are split into chunks of at most this many
/// bytes (Redis' default `hash-max-listpack-value`).
pub(crate) const CHUNK: usize = 64;

/// The longest value split into [`CHUNK`]-byte chunks: 96 chunks, which with the record's other
/// fields (at most 24: 12 single ones, 8 chunks of user agent, 4 of device name) stay within
/// Redis' default `hash-max-listpack-entries 128`.
pub(crate) const LISTPACK_VALUE_MAX: usize = 96 * CHUNK;

/// Longer values are split into chunks of this many bytes: the hash is in the hashtable encoding
/// anyway, where a few large fields cost less than many small ones.
pub(crate) const LARGE_CHUNK: usize = 64 * 1024;

/// No value has more chunks than this (the manager's 16 MiB bound on app data is 256).
const MAX_CHUNKS: u32 = 1 << 20;

/// One hash field: its name and value.
pub(crate) type Field = (String, Vec<u8>);

fn push_chunked(fields: &mut Vec<Field>, name: &str, bytes: &[u8]) {
    let size = if bytes.len() <= LISTPACK_VALUE_MAX {
        CHUNK
    } else {
        LARGE_CHUNK
    };
    for (n, chunk) in bytes.chunks(size).enumerate() {
        let field = if n == 0 {
            name.to_owned()
        } else {
            format!("{name}{n}")
        };
        fields.push((field, chunk.to_vec()));
    }
}

/// Splits a field name into its base and chunk number (`d7` is chunk 7 of `d`; `d` is chunk 0).
fn split_chunk(name: &[u8]) -> Option<(&[u8], u32)> {
    let digits = name.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (base, number) = name.split_at(name.len() - digits);
    if number.is_empty() {
        return Some((base, 0));
    }
    let number: u32 = std::str::from_utf8(number).ok()?.parse().ok()?;
    (number > 0 && number < MAX_CHUNKS).then_some((base, number))
}

/// Joins chunks `0..n` of one value.
fn join_chunks(field: &str, chunks: BTreeMap<u32, Vec<u8>>) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for (expected, (number, chunk)) in (0_u32..).zip(chunks) {
        if number != expected {
            return Err(StoreError::Decode(format!(
                "field `{field}` lacks chunk {expected}"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An instant as microseconds since the epoch, if the scripts can compare it exactly.
pub(crate) fn micros(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos() / 1000)
        .ok()
        .filter(|us| (-MAX_EXACT_MICROS..=MAX_EXACT_MICROS).contains(us))
        .ok_or(StoreError::InstantOutOfRange(at))
}

/// An instant as the decimal text the scripts and the hash keep.
pub(crate) fn micros_text(at: OffsetDateTime) -> Result<String, StoreError> {
    micros(at).map(|us| us.to_string())
}

fn instant(field: &str, bytes: &[u8]) -> Result<OffsetDateTime, StoreError> {
    let us: i64 = text(field, bytes)?
        .parse()
        .map_err(|_| StoreError::Decode(format!("field `{field}` is not an integer")))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| StoreError::Decode(format!("field `{field}` is out of range")))
}

fn text<'a>(field: &str, bytes: &'a [u8]) -> Result<&'a str, StoreError> {
    std::str::from_utf8(bytes)
        .map_err(|_| StoreError::Decode(format!("field `{field}` is not UTF-8")))
}

fn hash(field: &str, bytes: &[u8]) -> Result<TokenHash, StoreError> {
    TokenHash::from_slice(bytes)
        .map_err(|_| StoreError::Decode(format!("field `{field}` is not a 32-byte hash")))
}

/// The hash fields of `record` (its id is in the key, not in the hash).
pub(crate) fn encode(record: &SessionRecord) -> Result<Vec<Field>, StoreError> {
    let mut fields: Vec<Field> = vec![
        ("u".to_owned(), record.user_id.as_str().as_bytes().to_vec()),
        ("c".to_owned(), micros_text(record.created_at)?.into_bytes()),
        (
            "l".to_owned(),
            micros_text(record.last_active_at)?.into_bytes(),
        ),
        (
            "i".to_owned(),
            micros_text(record.idle_expires_at)?.into_bytes(),
        ),
        (
            "a".to_owned(),
            micros_text(record.absolute_expires_at)?.into_bytes(),
        ),
        ("t".to_owned(), record.token_hash.as_bytes().to_vec()),
        ("g".to_owned(), record.generation.to_string().into_bytes()),
    ];
    if let Some(previous) = &record.previous_token_hash {
        fields.push(("p".to_owned(), previous.as_bytes().to_vec()));
    }
    if let Some(rotated) = record.rotated_at {
        fields.push(("r".to_owned(), micros_text(rotated)?.into_bytes()));
    }
    if let Some(revocation) = record.revoked {
        fields.push(("v".to_owned(), micros_text(revocation.at)?.into_bytes()));
        fields.push((
            "w".to_owned(),
            revocation.reason.as_str().as_bytes().to_vec(),
        ));
    }
    if let Some(ua) = &record.device.user_agent {
        push_chunked(&mut fields, "ua", ua.as_bytes());
    }
    if let Some(ip) = record.device.ip {
        fields.push(("ip".to_owned(), ip.to_string().into_bytes()));
    }
    if let Some(name) = &record.device.device_name {
        push_chunked(&mut fields, "dn", name.as_bytes());
    }
    if let Some(data) = &record.data {
        push_chunked(&mut fields, "d", data.as_json().as_bytes());
    }
    Ok(fields)
}

#[derive(Default)]
struct Fields {
    user: Option<Vec<u8>>,
    created: Option<Vec<u8>>,
    last_active: Option<Vec<u8>>,
    idle: Option<Vec<u8>>,
    absolute: Option<Vec<u8>>,
    token: Option<Vec<u8>>,
    generation: Option<Vec<u8>>,
    previous: Option<Vec<u8>>,
    rotated: Option<Vec<u8>>,
    revoked_at: Option<Vec<u8>>,
    reason: Option<Vec<u8>>,
    user_agent: BTreeMap<u32, Vec<u8>>,
    ip: Option<Vec<u8>>,
    device_name: BTreeMap<u32, Vec<u8>>,
    data: BTreeMap<u32, Vec<u8>>,
}

fn chunked_text(field: &str, chunks: BTreeMap<u32, Vec<u8>>) -> Result<Option<String>, StoreError> {
    if chunks.is_empty() {
        return Ok(None);
    }
    let bytes = join_chunks(field, chunks)?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| StoreError::Decode(format!("field `{field}` is not UTF-8")))
}

fn required(field: &'static str, value: Option<Vec<u8>>) -> Result<Vec<u8>, StoreError> {
    value.ok_or_else(|| StoreError::Decode(format!("field `{field}` is missing")))
}

/// Rebuilds the record with id `id` from its hash fields (unknown fields are ignored, so a newer
/// writer may add some).
pub(crate) fn decode(
    id: SessionId,
    pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<SessionRecord, StoreError> {
    let mut f = Fields::default();
    for (name, value) in pairs {
        let chunks = match split_chunk(&name) {
            Some((b"ua", n)) => Some((&mut f.user_agent, n)),
            Some((b"dn", n)) => Some((&mut f.device_name, n)),
            Some((b"d", n)) => Some((&mut f.data, n)),
            _ => None,
        };
        if let Some((chunks, n)) = chunks {
            chunks.insert(n, value);
            continue;
        }
        let slot = match name.as_slice() {
            b"u" => &mut f.user,
            b"c" => &mut f.created,
            b"l" => &mut f.last_active,
            b"i" => &mut f.idle,
            b"a" => &mut f.absolute,
            b"t" => &mut f.token,
            b"g" => &mut f.generation,
            b"p" => &mut f.previous,
            b"r" => &mut f.rotated,
            b"v" => &mut f.revoked_at,
            b"w" => &mut f.reason,
            b"ip" => &mut f.ip,
            _ => continue,
        };
        *slot = Some(value);
    }
    let user = required("u", f.user)?;
    let user_id = UserId::new(text("u", &user)?)
        .map_err(|e| StoreError::Decode(format!("field `u`: {e}")))?;
    let generation = required("g", f.generation)?;
    let generation: u64 = text("g", &generation)?
        .parse()
        .map_err(|_| StoreError::Decode("field `g` is not a count".to_owned()))?;
    let revoked = match (f.revoked_at, f.reason) {
        (Some(at), Some(reason)) => Some(Revocation {
            at: instant("v", &at)?,
            reason: text("w", &reason)?
                .parse::<RevokeReason>()
                .map_err(|e| StoreError::Decode(format!("field `w`: {e}")))?,
        }),
        (None, None) => None,
        _ => {
            return Err(StoreError::Decode(
                "fields `v` and `w` must come together".to_owned(),
            ));
        }
    };
    let mut device = DeviceInfo::new();
    if let Some(ua) = chunked_text("ua", f.user_agent)? {
        device = device.with_user_agent(ua);
    }
    if let Some(ip) = f.ip {
        let ip: IpAddr = text("ip", &ip)?
            .parse()
            .map_err(|_| StoreError::Decode("field `ip` is not an IP address".to_owned()))?;
        device = device.with_ip(ip);
    }
    if let Some(name) = chunked_text("dn", f.device_name)? {
        device = device.with_device_name(name);
    }
    let data = match chunked_text("d", f.data)? {
        Some(json) => Some(
            AppData::from_json(json).map_err(|e| StoreError::Decode(format!("field `d`: {e}")))?,
        ),
        None => None,
    };
    Ok(SessionRecord {
        id,
        user_id,
        created_at: instant("c", &required("c", f.created)?)?,
        last_active_at: instant("l", &required("l", f.last_active)?)?,
        idle_expires_at: instant("i", &required("i", f.idle)?)?,
        absolute_expires_at: instant("a", &required("a", f.absolute)?)?,
        token_hash: hash("t", &required("t", f.token)?)?,
        generation,
        previous_token_hash: f.previous.map(|p| hash("p", &p)).transpose()?,
        rotated_at: f.rotated.map(|r| instant("r", &r)).transpose()?,
        revoked,
        device,
        data,
    })
}

/// Field/value pairs of a hash.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Pairs up a flat `[field, value, field, value, ...]` reply.
pub(crate) fn pairs(flat: Vec<Vec<u8>>) -> Result<Pairs, StoreError> {
    if !flat.len().is_multiple_of(2) {
        return Err(StoreError::Decode(
            "a hash reply has an odd number of elements".to_owned(),
        ));
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample() -> SessionRecord {
        let user = UserId::new("alice").unwrap();
        SessionRecord {
            id: SessionId::generate(&user),
            user_id: user,
            created_at: datetime!(2030-01-01 0:00:00.123456 UTC),
            last_active_at: datetime!(2030-01-01 0:00:01 UTC),
            idle_expires_at: datetime!(2030-01-31 0:00 UTC),
            absolute_expires_at: datetime!(2030-04-01 0:00 UTC),
            token_hash: TokenHash::from_bytes([7; 32]),
            generation: 3,
            previous_token_hash: Some(TokenHash::from_bytes([6; 32])),
            rotated_at: Some(datetime!(2030-01-01 0:00:01 UTC)),
            revoked: Some(Revocation {
                at: datetime!(2030-01-02 0:00 UTC),
                reason: RevokeReason::PasswordChanged,
            }),
            device: DeviceInfo::new()
                .with_user_agent("curl/8")
                .with_ip("::1".parse().unwrap())
                .with_device_name("laptop"),
            data: Some(AppData::from_json(r#"{ "role": "admin" }"#).unwrap()),
        }
    }

    fn roundtrip(record: &SessionRecord) -> SessionRecord {
        let fields = encode(record)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v));
        decode(record.id, fields).unwrap()
    }

    #[test]
    fn full_and_minimal_records_roundtrip() {
        let full = sample();
        assert_eq!(roundtrip(&full), full);
        let minimal = SessionRecord {
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
            created_at: datetime!(1969-12-31 23:59:59.999999 UTC),
            ..full
        };
        assert_eq!(roundtrip(&minimal), minimal);
    }

    #[test]
    fn long_values_are_chunked_and_rejoined() {
        let long = SessionRecord {
            device: DeviceInfo::new()
                .with_user_agent("é".repeat(200))
                .with_device_name("n".repeat(255)),
            data: Some(AppData::from_json(format!("\"{}\"", "ü".repeat(1000))).unwrap()),
            ..sample()
        };
        let fields = encode(&long).unwrap();
        assert!(fields.iter().all(|(_, v)| v.len() <= CHUNK));
        assert!(fields.iter().any(|(k, _)| k == "d31"));
        assert_eq!(roundtrip(&long), long);
        // A missing middle chunk is an error, not a silently shorter value.
        let damaged = fields
            .into_iter()
            .filter(|(k, _)| k != "d3")
            .map(|(k, v)| (k.into_bytes(), v));
        assert!(decode(long.id, damaged).is_err());
        assert_eq!(split_chunk(b"dn12"), Some((&b"dn"[..], 12)));
        assert_eq!(split_chunk(b"d"), Some((&b"d"[..], 0)));
        assert_eq!(split_chunk(b"d0"), None);
    }

    #[test]
    fn long_values_use_few_large_chunks() {
        let json = |len: usize| AppData::from_json(format!("\"{}\"", "x".repeat(len - 2))).unwrap();
        let data_fields = |record: &SessionRecord| {
            encode(record)
                .unwrap()
                .into_iter()
                .filter(|(k, _)| split_chunk(k.as_bytes()).is_some_and(|(base, _)| base == b"d"))
                .map(|(_, v)| v.len())
                .collect::<Vec<_>>()
        };
        let fits = SessionRecord {
            data: Some(json(LISTPACK_VALUE_MAX)),
            ..sample()
        };
        assert_eq!(data_fields(&fits), vec![CHUNK; 96]);
        assert_eq!(roundtrip(&fits), fits);
        let len = 16 * 1024 * 1024 - 100;
        let large = SessionRecord {
            data: Some(json(len)),
            ..sample()
        };
        let sizes = data_fields(&large);
        assert_eq!(sizes.len(), len.div_ceil(LARGE_CHUNK));
        assert!(sizes.iter().all(|&size| size <= LARGE_CHUNK));
        assert_eq!(roundtrip(&large), large);
    }

    #[test]
    fn instants_beyond_exact_range_are_refused() {
        assert!(micros(datetime!(2250-01-01 0:00 UTC)).is_ok());
        assert!(micros(datetime!(2300-01-01 0:00 UTC)).is_err());
        let far = SessionRecord {
            absolute_expires_at: datetime!(9999-01-01 0:00 UTC),
            ..sample()
        };
        assert!(encode(&far).is_err());
    }

    #[test]
    fn damaged_hashes_are_decode_errors() {
        let record = sample();
        let good: Pairs = encode(&record)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        for drop in ["u", "c", "t", "g", "w"] {
            let damaged = good.iter().filter(|(k, _)| k != drop.as_bytes()).cloned();
            assert!(decode(record.id, damaged).is_err(), "without {drop}");
        }
        let mut bad_time = good.clone();
        bad_time.push((b"i".to_vec(), b"soon".to_vec()));
        assert!(decode(record.id, bad_time).is_err());
        let mut bad_hash = good;
        bad_hash.push((b"t".to_vec(), vec![1, 2, 3]));
        assert!(decode(record.id, bad_hash).is_err());
        assert!(pairs(vec![b"u".to_vec()]).is_err());
    }
}
