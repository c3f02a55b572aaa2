//! The stored form of a record: one Redis string, a fixed binary header the scripts read and
//! patch in place, then a tail only Rust reads.
//!
//! One string makes a read one `GET` whose reply is one bulk string, decoded without parsing
//! text; the scripts read the header with `GETRANGE` and change it with one `SETRANGE`, so a
//! touch or a rotation never rewrites the app data. All integers are little-endian; instants are
//! signed microseconds since the Unix epoch, which the scripts handle as Lua numbers, exact below
//! 2^53 µs (years 1685 to 2255: [`micros`] refuses instants beyond).
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 1 | format version ([`VERSION`]) |
//! | 1 | 8 | idle expiry (µs) |
//! | 9 | 8 | last active (µs) |
//! | 17 | 32 | current token hash |
//! | 49 | 1 | flags: bit 0 a previous token hash is present, bit 1 a rotation instant is |
//! | 50 | 32 | previous token hash (zeros when absent) |
//! | 82 | 8 | rotated at (µs; 0 when absent) |
//! | 90 | 8 | generation (unsigned) |
//! | 98 | 8 | absolute expiry (µs) |
//! | 106 | 1 | revocation reason code (0: not revoked; see [`reason_code`]) |
//! | 107 | 8 | revoked at (µs; 0 when not revoked) |
//! | 115 | 8 | created at (µs) |
//! | 123 | 2 + n | user id: length, then its UTF-8 bytes |
//! | | 1 | tail flags: bit 0 user agent, 1 IP address, 2 device name, 3 app data |
//! | | 4 + n | user agent, when present: length, then UTF-8 |
//! | | 1 + 4/16 | IP address, when present: 4 or 6, then its octets |
//! | | 4 + n | device name, when present: length, then UTF-8 |
//! | | 4 + n | app data, when present: length, then its JSON text |
//!
//! The fields a touch writes (idle expiry, last active) and those a rotation writes (those two up
//! to the generation) are contiguous, so each is one `SETRANGE`; a revocation writes bytes 106 to
//! 114. A rotation that records a device (`Rotation::device` is `Some`) splices
//! [`encode_device`]'s bytes in place of the stored tail flags' device bits and device fields,
//! keeping the app-data bit and the app data, and writes the whole value with one `SET`.
//! `scripts/common.lua` holds the same offsets and tail flag bits (a test compares them).

use std::net::IpAddr;

use session_core::{
    AppData, DeviceInfo, Revocation, RevokeReason, SessionId, SessionRecord, TokenHash, UserId,
};
use time::OffsetDateTime;

use crate::error::StoreError;

/// The format version in byte 0; a record of another version is refused as damaged.
pub(crate) const VERSION: u8 = 1;

/// The first byte after the fixed header.
pub(crate) const HEADER_END: usize = 123;

/// Offsets of the header fields (the encoder writes them in order; tests check where they land,
/// and that the scripts agree).
#[cfg(test)]
mod offset {
    /// Idle expiry.
    pub(crate) const IDLE: usize = 1;
    /// Last active.
    pub(crate) const LAST_ACTIVE: usize = 9;
    /// Current token hash.
    pub(crate) const TOKEN: usize = 17;
    /// Flags of the optional rotation fields.
    pub(crate) const FLAGS: usize = 49;
    /// Previous token hash.
    pub(crate) const PREVIOUS: usize = 50;
    /// Rotated at.
    pub(crate) const ROTATED: usize = 82;
    /// Generation.
    pub(crate) const GENERATION: usize = 90;
    /// Absolute expiry.
    pub(crate) const ABSOLUTE: usize = 98;
    /// Revocation reason code.
    pub(crate) const REASON: usize = 106;
    /// Revoked at.
    pub(crate) const REVOKED: usize = 107;
    /// Created at.
    pub(crate) const CREATED: usize = 115;
    pub(crate) use super::HEADER_END;
}

/// The largest magnitude of an integer a Lua number (a double) holds exactly.
const MAX_EXACT: i64 = 1 << 53;

const HAS_PREVIOUS: u8 = 1;
const HAS_ROTATED: u8 = 2;

const HAS_USER_AGENT: u8 = 1;
const HAS_IP: u8 = 2;
const HAS_DEVICE_NAME: u8 = 4;
const HAS_DATA: u8 = 8;

/// An instant as microseconds since the epoch, if the scripts can compare it exactly.
pub(crate) fn micros(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos() / 1000)
        .ok()
        .filter(|us| (-MAX_EXACT..=MAX_EXACT).contains(us))
        .ok_or(StoreError::InstantOutOfRange(at))
}

/// The stored code of a revocation reason (never 0, which means "not revoked").
///
/// # Errors
///
/// A reason this version of the store has no code for.
pub(crate) fn reason_code(reason: RevokeReason) -> Result<u8, StoreError> {
    Ok(match reason {
        RevokeReason::Logout => 1,
        RevokeReason::LogoutAll => 2,
        RevokeReason::LogoutOthers => 3,
        RevokeReason::PasswordChanged => 4,
        RevokeReason::Evicted => 5,
        RevokeReason::ReuseDetected => 6,
        other => {
            return Err(StoreError::Decode(format!(
                "revocation reason `{}` has no storage code",
                other.as_str()
            )));
        }
    })
}

/// The revocation stamp of a record revoked at `at` for `reason`: the reason's code, then the
/// instant as a little-endian `i64` of microseconds. These 9 bytes lie at
/// [`offset::REASON`]; the scripts write them there with one `SETRANGE` (`mark_revoked`).
///
/// # Errors
///
/// A reason without a code, or an instant outside [`micros`]' range.
pub(crate) fn revocation_stamp(
    reason: RevokeReason,
    at: OffsetDateTime,
) -> Result<[u8; STAMP_LEN], StoreError> {
    let mut stamp = [0; STAMP_LEN];
    stamp[0] = reason_code(reason)?;
    stamp[1..].copy_from_slice(&micros(at)?.to_le_bytes());
    Ok(stamp)
}

/// The length of a [`revocation_stamp`]: the reason's code and the revocation instant.
pub(crate) const STAMP_LEN: usize = 9;

fn reason_from_code(code: u8) -> Result<RevokeReason, StoreError> {
    RevokeReason::ALL
        .into_iter()
        .find(|reason| reason_code(*reason).is_ok_and(|c| c == code))
        .ok_or_else(|| StoreError::Decode(format!("unknown revocation reason code {code}")))
}

fn put_len(out: &mut Vec<u8>, what: &str, len: usize) -> Result<(), StoreError> {
    let len = u32::try_from(len)
        .map_err(|_| StoreError::Decode(format!("{what} is longer than 4 GiB")))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The stored value of `record` (its id is in the key, not in the value).
///
/// # Errors
///
/// An instant outside [`micros`]' range, a generation of 2^53 or more, or a reason without a code.
pub(crate) fn encode(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    let user = record.user_id.as_str().as_bytes();
    let data_len = record.data.as_ref().map_or(0, AppData::len);
    let mut out = Vec::with_capacity(HEADER_END + 3 + user.len() + data_len + 16);
    out.push(VERSION);
    out.extend_from_slice(&micros(record.idle_expires_at)?.to_le_bytes());
    out.extend_from_slice(&micros(record.last_active_at)?.to_le_bytes());
    out.extend_from_slice(record.token_hash.as_bytes());
    let mut flags = 0;
    if record.previous_token_hash.is_some() {
        flags |= HAS_PREVIOUS;
    }
    if record.rotated_at.is_some() {
        flags |= HAS_ROTATED;
    }
    out.push(flags);
    let previous = record.previous_token_hash.as_ref();
    out.extend_from_slice(previous.map_or(&[0; 32], |hash| hash.as_bytes()));
    let rotated = record.rotated_at.map(micros).transpose()?.unwrap_or(0);
    out.extend_from_slice(&rotated.to_le_bytes());
    if record.generation >= MAX_EXACT.unsigned_abs() {
        return Err(StoreError::Decode(format!(
            "generation {} is beyond what the scripts count exactly",
            record.generation
        )));
    }
    out.extend_from_slice(&record.generation.to_le_bytes());
    out.extend_from_slice(&micros(record.absolute_expires_at)?.to_le_bytes());
    match record.revoked {
        Some(revocation) => {
            out.extend_from_slice(&revocation_stamp(revocation.reason, revocation.at)?);
        }
        None => out.extend_from_slice(&[0; STAMP_LEN]),
    }
    out.extend_from_slice(&micros(record.created_at)?.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_END);
    let user_len = u16::try_from(user.len())
        .map_err(|_| StoreError::Decode("the user id is longer than 64 KiB".to_owned()))?;
    out.extend_from_slice(&user_len.to_le_bytes());
    out.extend_from_slice(user);
    let device = encode_device(&record.device)?;
    let (device_flags, device_fields) = device.split_first().unwrap_or((&0, &[]));
    out.push(device_flags | if record.data.is_some() { HAS_DATA } else { 0 });
    out.extend_from_slice(device_fields);
    if let Some(data) = &record.data {
        put_len(&mut out, "the app data", data.len())?;
        out.extend_from_slice(data.as_json().as_bytes());
    }
    Ok(out)
}

/// The device part of a record's tail: the tail flags byte with only the device bits set
/// (user agent, IP address, device name), then those fields as [`encode`] lays them out.
/// `rotate.lua` splices it in place of the stored device fields, keeping the app-data bit.
///
/// # Errors
///
/// A field longer than 4 GiB.
pub(crate) fn encode_device(device: &DeviceInfo) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let mut flags = 0;
    for (present, bit) in [
        (device.user_agent.is_some(), HAS_USER_AGENT),
        (device.ip.is_some(), HAS_IP),
        (device.device_name.is_some(), HAS_DEVICE_NAME),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.push(flags);
    if let Some(ua) = &device.user_agent {
        put_len(&mut out, "the user agent", ua.len())?;
        out.extend_from_slice(ua.as_bytes());
    }
    match device.ip {
        Some(IpAddr::V4(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
        None => {}
    }
    if let Some(name) = &device.device_name {
        put_len(&mut out, "the device name", name.len())?;
        out.extend_from_slice(name.as_bytes());
    }
    Ok(out)
}

/// A cursor over a stored value; every read past its end is a decode error.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StoreError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let slice = end
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| StoreError::Decode(format!("the record ends inside its {what}")))?;
        self.at += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StoreError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, StoreError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u64(&mut self, what: &str) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn instant(&mut self, what: &str) -> Result<OffsetDateTime, StoreError> {
        let us = i64::from_le_bytes(self.array(what)?);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
            .map_err(|_| StoreError::Decode(format!("the {what} is out of range")))
    }

    fn hash(&mut self, what: &str) -> Result<TokenHash, StoreError> {
        Ok(TokenHash::from_bytes(self.array(what)?))
    }

    fn text(&mut self, len: usize, what: &str) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.take(len, what)?)
            .map_err(|_| StoreError::Decode(format!("the {what} is not UTF-8")))
    }

    fn long_text(&mut self, what: &str) -> Result<&'a str, StoreError> {
        let len = u32::from_le_bytes(self.array(what)?);
        let len = usize::try_from(len)
            .map_err(|_| StoreError::Decode(format!("the {what} is too long")))?;
        self.text(len, what)
    }
}

/// Rebuilds the record with id `id` from its stored value.
///
/// # Errors
///
/// A value of another format version, cut short, with trailing bytes, or holding a field that
/// is not what it should be (text that is not UTF-8, an unknown reason code, ...).
pub(crate) fn decode(id: SessionId, bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8("format version")?;
    if version != VERSION {
        return Err(StoreError::Decode(format!(
            "the record has format version {version}, this store reads {VERSION}"
        )));
    }
    let idle_expires_at = r.instant("idle expiry")?;
    let last_active_at = r.instant("last active instant")?;
    let token_hash = r.hash("token hash")?;
    let flags = r.u8("rotation flags")?;
    let previous = r.hash("previous token hash")?;
    let rotated = r.instant("rotation instant")?;
    let generation = r.u64("generation")?;
    let absolute_expires_at = r.instant("absolute expiry")?;
    let reason = r.u8("revocation reason")?;
    let revoked_at = r.instant("revocation instant")?;
    let created_at = r.instant("creation instant")?;
    let user_len = u16::from_le_bytes(r.array("user id")?);
    let user_id = UserId::new(r.text(usize::from(user_len), "user id")?)
        .map_err(|e| StoreError::Decode(format!("the user id: {e}")))?;
    let tail = r.u8("tail flags")?;
    let mut device = DeviceInfo::new();
    if tail & HAS_USER_AGENT != 0 {
        device = device.with_user_agent(r.long_text("user agent")?);
    }
    if tail & HAS_IP != 0 {
        let ip = match r.u8("IP address")? {
            4 => IpAddr::from(r.array::<4>("IP address")?),
            6 => IpAddr::from(r.array::<16>("IP address")?),
            other => {
                return Err(StoreError::Decode(format!(
                    "unknown IP address family {other}"
                )));
            }
        };
        device = device.with_ip(ip);
    }
    if tail & HAS_DEVICE_NAME != 0 {
        device = device.with_device_name(r.long_text("device name")?);
    }
    let data = if tail & HAS_DATA != 0 {
        Some(
            AppData::from_json(r.long_text("app data")?)
                .map_err(|e| StoreError::Decode(format!("the app data: {e}")))?,
        )
    } else {
        None
    };
    if r.at != bytes.len() {
        return Err(StoreError::Decode(format!(
            "{} unexpected bytes after the record",
            bytes.len() - r.at
        )));
    }
    Ok(SessionRecord {
        id,
        user_id,
        created_at,
        last_active_at,
        idle_expires_at,
        absolute_expires_at,
        token_hash,
        generation,
        previous_token_hash: (flags & HAS_PREVIOUS != 0).then_some(previous),
        rotated_at: (flags & HAS_ROTATED != 0).then_some(rotated),
        revoked: match reason {
            0 => None,
            code => Some(Revocation {
                at: revoked_at,
                reason: reason_from_code(code)?,
            }),
        },
        device,
        data,
    })
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
        decode(record.id, &encode(record).unwrap()).unwrap()
    }

    #[test]
    fn full_and_minimal_records_roundtrip() {
        let full = sample();
        assert_eq!(roundtrip(&full), full);
        let v4 = SessionRecord {
            device: DeviceInfo::new().with_ip("192.0.2.7".parse().unwrap()),
            ..sample()
        };
        assert_eq!(roundtrip(&v4), v4);
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
        assert_eq!(
            encode(&minimal).unwrap().len(),
            offset::HEADER_END + 2 + 5 + 1
        );
    }

    #[test]
    fn header_fields_sit_at_their_offsets() {
        let record = sample();
        let bytes = encode(&record).unwrap();
        let at = |offset: usize, len: usize| bytes.get(offset..offset + len).unwrap().to_vec();
        let us = |instant| micros(instant).unwrap().to_le_bytes().to_vec();
        assert_eq!(at(0, 1), vec![VERSION]);
        assert_eq!(at(offset::IDLE, 8), us(record.idle_expires_at));
        assert_eq!(at(offset::LAST_ACTIVE, 8), us(record.last_active_at));
        assert_eq!(at(offset::TOKEN, 32), vec![7; 32]);
        assert_eq!(at(offset::FLAGS, 1), vec![3]);
        assert_eq!(at(offset::PREVIOUS, 32), vec![6; 32]);
        assert_eq!(at(offset::ROTATED, 8), us(record.rotated_at.unwrap()));
        assert_eq!(at(offset::GENERATION, 8), 3_u64.to_le_bytes().to_vec());
        assert_eq!(at(offset::ABSOLUTE, 8), us(record.absolute_expires_at));
        assert_eq!(at(offset::REASON, 1), vec![4]);
        assert_eq!(at(offset::REVOKED, 8), us(record.revoked.unwrap().at));
        let revocation = record.revoked.unwrap();
        assert_eq!(
            at(offset::REASON, STAMP_LEN),
            revocation_stamp(revocation.reason, revocation.at)
                .unwrap()
                .to_vec(),
            "the stamp the scripts write is what encode stores"
        );
        assert_eq!(at(offset::CREATED, 8), us(record.created_at));
        assert_eq!(at(offset::HEADER_END, 2), 5_u16.to_le_bytes().to_vec());
    }

    /// The scripts' copy of the layout (1-based Lua string positions) matches this one.
    #[test]
    fn the_scripts_use_the_same_offsets() {
        let lua = include_str!("scripts/common.lua");
        for (name, value) in [
            ("VERSION", usize::from(VERSION)),
            ("AT_IDLE", offset::IDLE + 1),
            ("AT_TOKEN", offset::TOKEN + 1),
            ("AT_ABSOLUTE", offset::ABSOLUTE + 1),
            ("AT_REASON", offset::REASON + 1),
            ("AT_GENERATION", offset::GENERATION + 1),
            ("HEADER_LEN", offset::HEADER_END),
            ("STAMP_LEN", STAMP_LEN),
            (
                "MAX_EXACT",
                usize::try_from(MAX_EXACT).unwrap_or(usize::MAX),
            ),
            ("TAIL_USER_AGENT", usize::from(HAS_USER_AGENT)),
            ("TAIL_IP", usize::from(HAS_IP)),
            ("TAIL_DEVICE_NAME", usize::from(HAS_DEVICE_NAME)),
            ("TAIL_DATA", usize::from(HAS_DATA)),
        ] {
            let line = format!("local {name} = {value}\n");
            assert!(lua.contains(&line), "common.lua lacks `{}`", line.trim());
        }
        let flags = format!("local ROTATED_FLAGS = '\\{}'\n", HAS_PREVIOUS | HAS_ROTATED);
        assert!(lua.contains(&flags), "common.lua lacks `{}`", flags.trim());
    }

    /// `encode_device` is exactly the device part of what `encode` lays out after the user id:
    /// the tail flags without the app-data bit, then the device fields; the app data follows.
    #[test]
    fn device_bytes_are_the_records_device_part() {
        let full = sample();
        for record in [
            full.clone(),
            SessionRecord {
                device: DeviceInfo::new(),
                ..full.clone()
            },
            SessionRecord {
                data: None,
                ..full.clone()
            },
            SessionRecord {
                device: DeviceInfo::new().with_ip("192.0.2.7".parse().unwrap()),
                data: None,
                ..full
            },
        ] {
            let bytes = encode(&record).unwrap();
            let device = encode_device(&record.device).unwrap();
            let tail = offset::HEADER_END + 2 + record.user_id.as_str().len();
            let flags = bytes[tail];
            assert_eq!(flags & !HAS_DATA, device[0]);
            assert_eq!(flags & HAS_DATA != 0, record.data.is_some());
            let fields = &bytes[tail + 1..tail + device.len()];
            assert_eq!(fields, &device[1..]);
            let rest = &bytes[tail + device.len()..];
            match &record.data {
                Some(data) => assert_eq!(rest.len(), 4 + data.len()),
                None => assert!(rest.is_empty()),
            }
        }
    }

    #[test]
    fn large_app_data_roundtrips() {
        let json = format!("\"{}\"", "ü".repeat(1_000_000));
        let record = SessionRecord {
            data: Some(AppData::from_json(json).unwrap()),
            ..sample()
        };
        assert_eq!(roundtrip(&record), record);
    }

    #[test]
    fn every_reason_has_a_distinct_code() {
        let mut codes: Vec<u8> = RevokeReason::ALL
            .into_iter()
            .map(|r| reason_code(r).unwrap())
            .collect();
        for (reason, code) in RevokeReason::ALL.into_iter().zip(&codes) {
            assert_eq!(reason_from_code(*code).unwrap(), reason);
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RevokeReason::ALL.len());
        assert!(!codes.contains(&0));
        assert!(reason_from_code(0).is_err());
        assert!(reason_from_code(200).is_err());
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
        let counted = SessionRecord {
            generation: (1 << 53) - 1,
            ..sample()
        };
        assert!(encode(&counted).is_ok());
        let beyond = SessionRecord {
            generation: 1 << 53,
            ..sample()
        };
        assert!(encode(&beyond).is_err());
    }

    #[test]
    fn damaged_values_are_decode_errors() {
        let record = sample();
        let good = encode(&record).unwrap();
        // Every truncation, a trailing byte, another version, a bad reason, bad UTF-8.
        for len in 0..good.len() {
            assert!(decode(record.id, &good[..len]).is_err(), "cut at {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(record.id, &longer).is_err());
        let mut version = good.clone();
        version[0] = 2;
        assert!(decode(record.id, &version).is_err());
        let mut reason = good.clone();
        reason[offset::REASON] = 99;
        assert!(decode(record.id, &reason).is_err());
        let mut user = good;
        user[offset::HEADER_END + 2] = 0xff;
        assert!(decode(record.id, &user).is_err());
        assert!(decode(record.id, b"garbage").is_err());
    }
}
