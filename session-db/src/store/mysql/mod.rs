//! The MySQL/MariaDB parts of the store: the `max_allowed_packet` guard, the capped login
//! under a per-user lock row, the read-then-swap rotation (no `UPDATE … RETURNING`), the
//! revoke-all that waits for the user's lock row, and the purge that also drops lock rows.

pub(crate) mod statements;

use std::num::NonZeroU32;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, IsolationLevel, Statement, TransactionTrait,
};
use session_core::{
    CreateOutcome, Error, LimitMode, RotateOutcome, Rotation, SessionRecord, UserId,
    truncate_to_micros,
};
use time::OffsetDateTime;

use self::statements::{
    DropUserLocks, EVICT_CHUNK, EvictIds, EvictedAmong, LockUser, MaxAllowedPacket, OverCap,
    PurgeCandidates, PurgeIds, Rotate, WaitUserLock,
};
use super::statements::Insert;
use super::{DbStore, ROTATE_ATTEMPTS, TxError, generation_exhausted, refusal, rotation_contended};
use crate::dialect::Dialect;
use crate::row::NewRow;

/// What a MySQL statement carrying app data needs besides the data itself, at most: the other
/// columns (user agent, device name, user id, hashes, instants: under 2 KiB) and the packet's
/// framing, with room to spare. App data above `max_allowed_packet` minus this is refused before
/// it is sent.
pub(crate) const PACKET_MARGIN: u64 = 64 * 1024;

/// App data up to this size is sent without knowing the server's `max_allowed_packet` (every
/// MySQL and MariaDB default is at least 4 MiB); above it, a store that did not read the limit
/// at connect reads it first.
const UNCHECKED_APP_DATA: usize = 1024 * 1024;

/// App data too large for the MySQL server's `max_allowed_packet`.
#[derive(Debug, thiserror::Error)]
#[error(
    "app data of {data} bytes does not fit the server's max_allowed_packet of \
     {max_allowed_packet} bytes (with 64 KiB for the rest of the statement): the server would \
     refuse it (ER_NET_PACKET_TOO_LARGE) and close the connection; nothing was sent. Raise \
     max_allowed_packet or lower SessionConfig::max_app_data_bytes"
)]
struct PacketTooLarge {
    data: u64,
    max_allowed_packet: u64,
}

impl DbStore {
    /// MySQL: refuses, before sending anything, app data that the server's `max_allowed_packet`
    /// would refuse (by closing the connection: the client would see a dropped connection, not
    /// a statement error). Reads the limit first if it is not known and the data is large.
    pub(super) async fn check_packet(&self, record: &SessionRecord) -> Result<(), Error> {
        let Some(data) = &record.data else {
            return Ok(());
        };
        if self.dialect != Dialect::MySql {
            return Ok(());
        }
        let packet = match self.max_packet.get() {
            Some(packet) => *packet,
            None if data.len() <= UNCHECKED_APP_DATA => return Ok(()),
            None => {
                let row = self
                    .db
                    .query_one_raw(MaxAllowedPacket::statement(&self.sql))
                    .await
                    .map_err(|e| self.error(e))?;
                let packet = MaxAllowedPacket::parse(row.as_ref())
                    .map_err(|e| self.error(e))?
                    .ok_or_else(|| {
                        Error::backend(self.dialect.name(), "no value for @@max_allowed_packet")
                    })?;
                *self.max_packet.get_or_init(|| packet)
            }
        };
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if len > packet.saturating_sub(PACKET_MARGIN) {
            return Err(Error::backend(
                self.dialect.name(),
                PacketTooLarge {
                    data: len,
                    max_allowed_packet: packet,
                },
            ));
        }
        Ok(())
    }

    /// MySQL/MariaDB: no `UPDATE … RETURNING`, so the sessions over the cap are selected first
    /// (under the user's lock row, so no other capped login of the user runs meanwhile, by a
    /// locking read that sees the latest rows and holds them until the commit), then revoked by
    /// id.
    pub(super) async fn create_capped_mysql(
        &self,
        row: NewRow<'_>,
        keep_newest: i64,
        mode: LimitMode,
    ) -> Result<CreateOutcome, TxError> {
        let record = row.record();
        let now = record.created_at;
        let tx = self.db.begin().await?;
        self.lock_user(&tx, &record.user_id).await?;
        let over_cap = OverCap {
            user: &record.user_id,
            now,
            keep_newest,
        };
        let rows = tx.query_all_raw(over_cap.statement(&self.sql)).await?;
        let mut over_cap =
            OverCap::parse(&rows).map_err(|e| TxError::Store(self.undecodable(e)))?;
        if !over_cap.is_empty() && mode == LimitMode::Reject {
            tx.rollback().await?;
            return Ok(CreateOutcome::LimitReached);
        }
        // Selected newest first; reported oldest first.
        over_cap.reverse();
        let mut evicted = Vec::with_capacity(over_cap.len());
        for ids in over_cap.chunks(EVICT_CHUNK) {
            let changed = tx
                .execute_raw(EvictIds { ids, now }.statement(&self.sql))
                .await?
                .rows_affected();
            if usize::try_from(changed).is_ok_and(|changed| changed == ids.len()) {
                evicted.extend_from_slice(ids);
                continue;
            }
            // A guard (the locking read above holds the rows, so no other caller can revoke
            // them in between): report only those this eviction revoked. The read sees this transaction's
            // own writes, and those of others as of its snapshot, where they were still live.
            let rows = tx
                .query_all_raw(EvictedAmong { ids, now }.statement(&self.sql))
                .await?;
            let ours =
                EvictedAmong::parse(&rows).map_err(|e| TxError::Store(self.undecodable(e)))?;
            evicted.extend(ids.iter().filter(|id| ours.contains(id)));
        }
        tx.execute_raw(Insert { row }.statement(&self.sql)).await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created { evicted })
    }

    /// MySQL: takes the user's lock row for the rest of the transaction.
    async fn lock_user(&self, tx: &DatabaseTransaction, user: &UserId) -> Result<(), DbErr> {
        tx.execute_raw(LockUser { user }.statement(&self.sql))
            .await
            .map(drop)
    }

    /// MySQL/MariaDB rotation: read, then a compare-and-swap on `(token_hash, generation)`.
    /// A read record that refuses the rotation is the answer (it was read within the call); a
    /// lost swap reads again, at most [`ROTATE_ATTEMPTS`] times in all.
    pub(super) async fn rotate_mysql(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        for _ in 0..ROTATE_ATTEMPTS {
            let Some(current) = self.find_on(&self.db, &rotation.id).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            if let Some(refused) = refusal(self.dialect, current.clone(), &rotation)? {
                return Ok(refused);
            }
            let next_generation = current.generation.saturating_add(1);
            let generation = i64::try_from(next_generation)
                .map_err(|_| generation_exhausted(self.dialect, current.generation))?;
            let expected = i64::try_from(current.generation)
                .map_err(|_| generation_exhausted(self.dialect, current.generation))?;
            let swap = Rotate {
                rotation: &rotation,
                expected,
                generation,
            };
            if self.write(&swap.statement(&self.sql)).await? == 1 {
                let now = truncate_to_micros(rotation.now);
                let mut rotated = current;
                rotated.previous_token_hash = Some(rotated.token_hash);
                rotated.token_hash = rotation.next;
                rotated.generation = next_generation;
                rotated.rotated_at = Some(now);
                rotated.last_active_at = now;
                rotated.idle_expires_at =
                    truncate_to_micros(rotation.idle_expires_at).min(rotated.absolute_expires_at);
                if let Some(device) = rotation.device {
                    rotated.device = device;
                }
                return Ok(RotateOutcome::Rotated(rotated));
            }
            // Another call changed the record between the read and the swap: read it again.
        }
        Err(rotation_contended(self.dialect))
    }

    /// MySQL: the revoke-all `UPDATE` in a short transaction that first waits for the user's
    /// capped login in flight, if any (a locking read of the user's lock row). The `UPDATE`
    /// then sees that login whole: its evictions and its new session, never the one without
    /// the other.
    pub(super) async fn revoke_all_locked(
        &self,
        user: &UserId,
        revoke_all: &Statement,
    ) -> Result<u64, DbErr> {
        let tx = self.db.begin().await?;
        tx.query_all_raw(WaitUserLock { user }.statement(&self.sql))
            .await?;
        let revoked = tx.execute_raw(revoke_all.clone()).await?.rows_affected();
        tx.commit().await?;
        Ok(revoked)
    }

    /// MySQL: one purge pass as a READ COMMITTED transaction: read the expired sessions (at
    /// most `batch`), delete them, then delete the lock rows of their users who have no session
    /// row left, so that `<table>_user_locks` holds no user id longer than that user's sessions.
    /// The lock rows are deleted by primary key; a login holding one makes the purge wait for
    /// its commit (and a login that recreates the row later serializes as before).
    pub(super) async fn purge_mysql(
        &self,
        now: OffsetDateTime,
        batch: NonZeroU32,
    ) -> Result<u64, TxError> {
        let tx = self
            .db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        let rows = tx
            .query_all_raw(PurgeCandidates { now, batch }.statement(&self.sql))
            .await?;
        let candidates = PurgeCandidates::parse(&rows)?;
        let mut purged = 0;
        for ids in candidates.ids.chunks(EVICT_CHUNK) {
            purged += tx
                .execute_raw(PurgeIds { ids, now }.statement(&self.sql))
                .await?
                .rows_affected();
        }
        for users in candidates.users.chunks(EVICT_CHUNK) {
            tx.execute_raw(DropUserLocks { users }.statement(&self.sql))
                .await?;
        }
        tx.commit().await?;
        Ok(purged)
    }
}
