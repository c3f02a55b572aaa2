//! The form a record takes inside the store: instants as microseconds, rarely used fields behind
//! one pointer, so a session costs little memory.

use session_core::time::OffsetDateTime;
use session_core::{
    AppData, DeviceInfo, Error, Revocation, RevokeReason, SessionId, SessionRecord, TokenHash,
    UserId,
};

/// Microseconds since the Unix epoch (the precision every store keeps).
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn instant(micros: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
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

/// A stored record. Everything but the id (the map's key) in about 150 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compact {
    pub(crate) user_id: UserId,
    pub(crate) token_hash: TokenHash,
    previous_token_hash: Option<TokenHash>,
    pub(crate) created_at: i64,
    last_active_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    /// [`NONE`] when never rotated.
    rotated_at: i64,
    /// Meaningful only with `revoke_reason`.
    revoked_at: i64,
    revoke_reason: Option<RevokeReason>,
    generation: u64,
    extras: Option<Box<Extras>>,
}

impl Compact {
    /// Packs a record (instants to whole microseconds).
    pub(crate) fn pack(record: SessionRecord) -> Self {
        let has_extras = record.device != DeviceInfo::default() || record.data.is_some();
        Self {
            created_at: micros(record.created_at),
            last_active_at: micros(record.last_active_at),
            idle_expires_at: micros(record.idle_expires_at),
            absolute_expires_at: micros(record.absolute_expires_at),
            rotated_at: record.rotated_at.map_or(NONE, micros),
            revoked_at: record.revoked.map_or(NONE, |r| micros(r.at)),
            revoke_reason: record.revoked.map(|r| r.reason),
            generation: record.generation,
            token_hash: record.token_hash,
            previous_token_hash: record.previous_token_hash,
            extras: has_extras.then(|| {
                Box::new(Extras {
                    device: record.device,
                    data: record.data,
                })
            }),
            user_id: record.user_id,
        }
    }

    /// Unpacks the record stored under `id`.
    pub(crate) fn unpack(&self, id: SessionId) -> Result<SessionRecord, Error> {
        let (device, data) = match &self.extras {
            Some(extras) => (extras.device.clone(), extras.data.clone()),
            None => (DeviceInfo::default(), None),
        };
        Ok(SessionRecord {
            id,
            user_id: self.user_id.clone(),
            created_at: instant(self.created_at)?,
            last_active_at: instant(self.last_active_at)?,
            idle_expires_at: instant(self.idle_expires_at)?,
            absolute_expires_at: instant(self.absolute_expires_at)?,
            token_hash: self.token_hash,
            generation: self.generation,
            previous_token_hash: self.previous_token_hash,
            rotated_at: (self.rotated_at != NONE)
                .then(|| instant(self.rotated_at))
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

    /// The rotation write (after the caller checked the hash).
    pub(crate) fn rotate(&mut self, next: TokenHash, now: i64, idle_expires_at: i64) {
        self.previous_token_hash = Some(self.token_hash);
        self.token_hash = next;
        self.generation += 1;
        self.rotated_at = now;
        self.touch(now, idle_expires_at);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use session_core::RefreshToken;
    use session_core::time::macros::datetime;

    use super::*;

    #[test]
    fn pack_unpack_is_exact_for_microsecond_instants() {
        let user = UserId::new("u").unwrap();
        let id = SessionId::generate(&user);
        let at = datetime!(2030-01-01 0:00:00.123456 UTC);
        let record = SessionRecord {
            id,
            user_id: user,
            created_at: at,
            last_active_at: at,
            idle_expires_at: at + session_core::time::Duration::hours(1),
            absolute_expires_at: at + session_core::time::Duration::days(1),
            token_hash: RefreshToken::generate(id).unwrap().hash(),
            generation: 3,
            previous_token_hash: Some(RefreshToken::generate(id).unwrap().hash()),
            rotated_at: Some(at),
            revoked: Some(Revocation {
                at,
                reason: RevokeReason::PasswordChanged,
            }),
            device: DeviceInfo::new().with_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            data: Some(AppData::from_json("[1]").unwrap()),
        };
        assert_eq!(Compact::pack(record.clone()).unpack(id).unwrap(), record);
        let mut bare = record;
        bare.device = DeviceInfo::new();
        bare.data = None;
        let packed = Compact::pack(bare.clone());
        assert!(packed.extras.is_none());
        assert_eq!(packed.unpack(id).unwrap(), bare);
    }

    #[test]
    fn stays_small() {
        assert!(
            std::mem::size_of::<Compact>() <= 152,
            "{}",
            std::mem::size_of::<Compact>()
        );
    }
}
