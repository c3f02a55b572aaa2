//! [`StoreStats`]: what a store holds at one instant, counted for operators.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::record::SessionRecord;
use crate::user::UserId;

/// Counts of the sessions a store holds at one instant `now`, as the admin CLI's `stats` prints
/// them.
///
/// Every stored record is in exactly one of `live`, `revoked` or `expired`, so
/// `total == live + revoked + expired` (plus `unreadable` on stores that can hold a value they
/// cannot decode):
///
/// - `live`: not revoked, and `now` is before its expiry;
/// - `revoked`: revoked, and not yet expired (kept so a later use says "revoked", with its reason);
/// - `expired`: `now` is at or after its expiry, revoked or not (awaiting the purge, or the key's
///   TTL on Redis, which drops most of them before anyone counts them).
///
/// A count taken while other instances write is not a snapshot of one instant on every store:
/// see each store's `stats` method.
///
/// # Examples
///
/// ```
/// use session_core::StatsCounter;
/// # use session_core::{RevokeReason, Revocation, SessionId, TokenHash, UserId, DeviceInfo};
/// # use time::{Duration, OffsetDateTime};
/// # fn record(user: &str, now: OffsetDateTime) -> session_core::SessionRecord {
/// #     use session_core::SessionRecord;
/// #     let user = UserId::new(user).unwrap();
/// #     SessionRecord {
/// #         id: SessionId::generate(&user), user_id: user, created_at: now, last_active_at: now,
/// #         idle_expires_at: now + Duration::hours(1), absolute_expires_at: now + Duration::days(1),
/// #         token_hash: TokenHash::from_bytes([1; 32]), generation: 0, previous_token_hash: None,
/// #         rotated_at: None, revoked: None, device: DeviceInfo::new(), data: None,
/// #     }
/// # }
/// let now = OffsetDateTime::now_utc();
/// let mut stats = StatsCounter::new(now);
/// stats.count(&record("alice", now));
/// stats.count(&record("alice", now));
/// let mut gone = record("bob", now);
/// gone.revoked = Some(Revocation { at: now, reason: RevokeReason::Logout });
/// stats.count(&gone);
/// let stats = stats.finish();
/// assert_eq!((stats.total, stats.live, stats.revoked), (3, 2, 1));
/// assert_eq!(stats.users_with_live_sessions, 1);
/// assert_eq!(stats.revoked_by_reason["logout"], 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Every stored record.
    pub total: u64,
    /// Records of live sessions.
    pub live: u64,
    /// Records of revoked sessions that have not expired yet.
    pub revoked: u64,
    /// Records of expired sessions, revoked or not, not yet removed.
    pub expired: u64,
    /// Stored values that are not records of the store's format (counted in `total`, in no
    /// other count). Always 0 on the SQL store, whose rows are typed.
    pub unreadable: u64,
    /// Distinct users holding at least one live session.
    pub users_with_live_sessions: u64,
    /// The `revoked` count by [`RevokeReason`](crate::RevokeReason) code (`"logout"`,
    /// `"evicted"`, ...). A store that finds a code it does not know counts it under that code.
    pub revoked_by_reason: BTreeMap<String, u64>,
}

/// Builds a [`StoreStats`] from records one at a time, for stores that count by reading their
/// records (memory, Redis). Memory: one entry per distinct user with a live session.
#[derive(Debug)]
pub struct StatsCounter {
    now: OffsetDateTime,
    stats: StoreStats,
    live_users: HashSet<UserId>,
}

impl StatsCounter {
    /// A counter for the records as they stand at `now`.
    #[must_use]
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            now,
            stats: StoreStats::default(),
            live_users: HashSet::new(),
        }
    }

    /// Counts one record, in `total` and in the one state it is in at this counter's `now`.
    pub fn count(&mut self, record: &SessionRecord) {
        self.stats.total += 1;
        if record.is_expired(self.now) {
            self.stats.expired += 1;
        } else if let Some(revocation) = &record.revoked {
            self.stats.revoked += 1;
            *self
                .stats
                .revoked_by_reason
                .entry(revocation.reason.as_str().to_owned())
                .or_insert(0) += 1;
        } else {
            self.stats.live += 1;
            if !self.live_users.contains(&record.user_id) {
                self.live_users.insert(record.user_id.clone());
            }
        }
    }

    /// Counts one stored value that is not a readable record (in `total` and `unreadable`).
    pub fn count_unreadable(&mut self) {
        self.stats.total += 1;
        self.stats.unreadable += 1;
    }

    /// The counts.
    #[must_use]
    pub fn finish(mut self) -> StoreStats {
        self.stats.users_with_live_sessions =
            u64::try_from(self.live_users.len()).unwrap_or(u64::MAX);
        self.stats
    }
}
