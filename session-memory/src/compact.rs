//! The form a record takes inside the store: instants as microseconds, the id inside the
//! record, and what a fresh login leaves unset behind one optional pointer.
//!
//! # Layout
//!
//! A session is one `Box<Compact>` of 120 bytes (a 128-byte block under glibc's malloc, which
//! adds an 8-byte header and rounds to 16), and the session table holds only that pointer:
//!
//! | field | bytes |
//! |---|---:|
//! | `id` (routing tag 2 + UUID 16) | 18 |
//! | `user_id` (an `Arc<str>` handle, sharing the caller's text) | 16 |
//! | `token_hash` | 32 |
//! | `created_at`, `last_active_at`, `idle_expires_at`, `absolute_expires_at` (`i64` µs) | 32 |
//! | `revoked_at` (`i64` µs, meaningful with a reason) | 8 |
//! | `revoke_reason` | 1 |
//! | `cold` (null until needed) | 8 |
//! | padding | 5 |
//!
//! Revoking writes only the hot part. [`Cold`] (64 bytes, an 80-byte block) holds the generation,
//! the previous token hash and the rotation instant, allocated by the first rotation (or at
//! creation for a record that has any of them, device information or app data); device
//! information and app data hang off it in [`Extras`], allocated only when a session has any.
//!
//! # Bytes per session
//!
//! A fresh session of a user with no other session, at 1,000,000 such sessions (user ids like
//! `user-123456`):
//!
//! | part | bytes |
//! |---|---:|
//! | the record's block | 128 |
//! | the user id text, an `Arc<str>` (16 bytes of counts + 11 of text, a 48-byte block) | 48 |
//! | its session table slot: an 8-byte pointer + 1 control byte, × 2.10 slots per session | 19 |
//! | its user index slot: a 24-byte entry (see the `users` module) + 1 control byte, × 2.10 | 52 |
//! | total | 247 |
//!
//! Both tables have 64 shards of power-of-two `hashbrown` tables that grow at 7/8 full, so each
//! holds between 1.14 and 2.29 slots per element depending on the count (2.10 at 1,000,000):
//! from about 215 to 254 bytes per session at any count past a few thousand.

use session_core::time::OffsetDateTime;
use session_core::{
    AppData, DeviceInfo, Error, Revocation, RevokeReason, SessionId, SessionRecord, TokenHash,
    UserId,
};

/// Microseconds since the Unix epoch (the precision every store keeps).
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    // Seconds and the microsecond part rather than 128-bit nanoseconds (see `instant`).
    at.unix_timestamp()
        .checked_mul(1_000_000)
        .and_then(|whole| whole.checked_add(i64::from(at.microsecond())))
        .unwrap_or(i64::MAX)
}

fn instant(micros: i64) -> Result<OffsetDateTime, Error> {
    // Seconds and a microsecond part rather than 128-bit nanoseconds: the same instant, without
    // a 128-bit division on every read.
    let fraction = u32::try_from(micros.rem_euclid(1_000_000)).unwrap_or_default();
    OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .and_then(|at| at.replace_microsecond(fraction))
        .map_err(|e| Error::backend("memory", e))
}

/// Stands for "no instant" in the optional instant fields (an `Option` would cost 8 bytes more).
const NONE: i64 = i64::MIN;

/// Device information and app data, allocated only when a session has any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Extras {
    device: DeviceInfo,
    data: Option<AppData>,
}

/// The fields a fresh login leaves at their defaults; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cold {
    generation: u64,
    previous_token_hash: Option<TokenHash>,
    /// [`NONE`] when never rotated.
    rotated_at: i64,
    extras: Option<Box<Extras>>,
}

/// A stored record; see the [module docs](self) for its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compact {
    pub(crate) id: SessionId,
    pub(crate) user_id: UserId,
    pub(crate) token_hash: TokenHash,
    pub(crate) created_at: i64,
    last_active_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    /// Meaningful only with `revoke_reason`.
    revoked_at: i64,
    revoke_reason: Option<RevokeReason>,
    cold: Option<Box<Cold>>,
}

impl Compact {
    /// Packs a record (instants to whole microseconds).
    pub(crate) fn pack(record: SessionRecord) -> Self {
        let has_extras = record.device != DeviceInfo::default() || record.data.is_some();
        let extras = has_extras.then(|| {
            Box::new(Extras {
                device: record.device,
                data: record.data,
            })
        });
        let has_cold = extras.is_some()
            || record.generation != 0
            || record.previous_token_hash.is_some()
            || record.rotated_at.is_some();
        Self {
            id: record.id,
            created_at: micros(record.created_at),
            last_active_at: micros(record.last_active_at),
            idle_expires_at: micros(record.idle_expires_at),
            absolute_expires_at: micros(record.absolute_expires_at),
            revoked_at: record.revoked.map_or(NONE, |r| micros(r.at)),
            revoke_reason: record.revoked.map(|r| r.reason),
            token_hash: record.token_hash,
            cold: has_cold.then(|| {
                Box::new(Cold {
                    generation: record.generation,
                    previous_token_hash: record.previous_token_hash,
                    rotated_at: record.rotated_at.map_or(NONE, micros),
                    extras,
                })
            }),
            user_id: record.user_id,
        }
    }

    /// Unpacks the record.
    pub(crate) fn unpack(&self) -> Result<SessionRecord, Error> {
        let (generation, previous_token_hash, rotated_at, extras) = match &self.cold {
            Some(cold) => (
                cold.generation,
                cold.previous_token_hash,
                cold.rotated_at,
                cold.extras.as_deref(),
            ),
            None => (0, None, NONE, None),
        };
        let (device, data) = match extras {
            Some(extras) => (extras.device.clone(), extras.data.clone()),
            None => (DeviceInfo::default(), None),
        };
        Ok(SessionRecord {
            id: self.id,
            user_id: self.user_id.clone(),
            created_at: instant(self.created_at)?,
            last_active_at: instant(self.last_active_at)?,
            idle_expires_at: instant(self.idle_expires_at)?,
            absolute_expires_at: instant(self.absolute_expires_at)?,
            token_hash: self.token_hash,
            generation,
            previous_token_hash,
            rotated_at: (rotated_at != NONE)
                .then(|| instant(rotated_at))
                .transpose()?,
            revoked: self
                .revoke_reason
                .map(|reason| instant(self.revoked_at).map(|at| Revocation { at, reason }))
                .transpose()?,
            device,
            data,
        })
    }

    /// `true` once revoked.
    pub(crate) fn is_revoked(&self) -> bool {
        self.revoke_reason.is_some()
    }

    /// `true` at or after the earlier of the two expiries.
    pub(crate) fn is_expired(&self, now: i64) -> bool {
        now >= self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Neither revoked nor expired at `now`.
    pub(crate) fn is_live(&self, now: i64) -> bool {
        !self.is_revoked() && !self.is_expired(now)
    }

    /// Marks the record revoked.
    pub(crate) fn revoke(&mut self, now: i64, reason: RevokeReason) {
        self.revoked_at = now;
        self.revoke_reason = Some(reason);
    }

    /// The sliding-expiry write.
    pub(crate) fn touch(&mut self, now: i64, idle_expires_at: i64) {
        self.last_active_at = now;
        self.idle_expires_at = idle_expires_at.min(self.absolute_expires_at);
    }

    /// The rotation write (after the caller checked the hash); the first one allocates the
    /// cold part. Returns `false`, having written nothing, if the generation cannot grow.
    #[must_use]
    pub(crate) fn rotate(&mut self, next: TokenHash, now: i64, idle_expires_at: i64) -> bool {
        let Some(generation) = self
            .cold
            .as_ref()
            .map_or(0, |cold| cold.generation)
            .checked_add(1)
        else {
            return false;
        };
        let cold = self.cold.get_or_insert_with(|| {
            Box::new(Cold {
                generation: 0,
                previous_token_hash: None,
                rotated_at: NONE,
                extras: None,
            })
        });
        cold.previous_token_hash = Some(self.token_hash);
        cold.generation = generation;
        cold.rotated_at = now;
        self.token_hash = next;
        self.touch(now, idle_expires_at);
        true
    }

    /// Replaces the device information (a refresh's "last seen"). Called after
    /// [`Compact::rotate`], so the cold block exists.
    pub(crate) fn set_device(&mut self, device: DeviceInfo) {
        let Some(cold) = self.cold.as_mut() else {
            return;
        };
        match cold.extras.as_mut() {
            Some(extras) => extras.device = device,
            None if device != DeviceInfo::default() => {
                cold.extras = Some(Box::new(Extras { device, data: None }));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use session_core::RefreshToken;
    use session_core::time::Duration;
    use session_core::time::macros::datetime;

    use super::*;

    #[test]
    fn instants_round_trip_through_microseconds() {
        for at in [
            datetime!(2030-01-01 0:00:00.123456 UTC),
            datetime!(1970-01-01 0:00 UTC),
            datetime!(1969-12-31 23:59:59.999999 UTC),
            datetime!(1900-06-15 12:30:45.000001 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ] {
            let us = micros(at);
            assert_eq!(i128::from(us), at.unix_timestamp_nanos() / 1000, "{at}");
            assert_eq!(instant(us).unwrap(), at, "{at}");
        }
        assert!(instant(i64::MIN).is_err());
    }

    fn record() -> SessionRecord {
        let user = UserId::new("u").unwrap();
        let id = SessionId::generate(&user);
        let at = datetime!(2030-01-01 0:00:00.123456 UTC);
        SessionRecord {
            id,
            user_id: user,
            created_at: at,
            last_active_at: at,
            idle_expires_at: at + Duration::hours(1),
            absolute_expires_at: at + Duration::days(1),
            token_hash: RefreshToken::generate(id).unwrap().hash(),
            generation: 0,
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
        }
    }

    #[test]
    fn pack_unpack_is_exact_for_microsecond_instants() {
        let fresh = record();
        let packed = Compact::pack(fresh.clone());
        assert!(packed.cold.is_none(), "a fresh login needs no cold part");
        assert_eq!(packed.unpack().unwrap(), fresh);

        let at = fresh.created_at;
        let full = SessionRecord {
            generation: 3,
            previous_token_hash: Some(RefreshToken::generate(fresh.id).unwrap().hash()),
            rotated_at: Some(at),
            revoked: Some(Revocation {
                at,
                reason: RevokeReason::PasswordChanged,
            }),
            device: DeviceInfo::new().with_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            data: Some(AppData::from_json("[1]").unwrap()),
            ..fresh.clone()
        };
        assert_eq!(Compact::pack(full.clone()).unpack().unwrap(), full);

        for one in [
            SessionRecord {
                generation: 1,
                ..fresh.clone()
            },
            SessionRecord {
                rotated_at: Some(at),
                ..fresh.clone()
            },
            SessionRecord {
                previous_token_hash: full.previous_token_hash,
                ..fresh.clone()
            },
            SessionRecord {
                data: full.data.clone(),
                ..fresh.clone()
            },
            SessionRecord {
                revoked: full.revoked,
                ..fresh
            },
        ] {
            assert_eq!(Compact::pack(one.clone()).unpack().unwrap(), one);
        }
    }

    #[test]
    fn rotate_and_revoke_write_what_the_record_says() {
        let fresh = record();
        let at = micros(fresh.created_at);
        let mut packed = Compact::pack(fresh.clone());
        let next = RefreshToken::generate(fresh.id).unwrap().hash();
        assert!(packed.rotate(next, at + 1, at + 2));
        assert!(packed.rotate(next, at + 3, at + 4));
        packed.revoke(at + 5, RevokeReason::Logout);
        let record = packed.unpack().unwrap();
        assert_eq!(record.generation, 2);
        assert_eq!(record.previous_token_hash, Some(next));
        assert_eq!(record.token_hash, next);
        assert_eq!(record.rotated_at, Some(instant(at + 3).unwrap()));
        assert_eq!(record.last_active_at, instant(at + 3).unwrap());
        assert_eq!(record.idle_expires_at, instant(at + 4).unwrap());
        assert_eq!(
            record.revoked,
            Some(Revocation {
                at: instant(at + 5).unwrap(),
                reason: RevokeReason::Logout
            })
        );
    }

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Compact>(), 120);
        assert_eq!(std::mem::size_of::<Cold>(), 64);
    }
}
