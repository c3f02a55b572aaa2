//! A hash table split into shards, each behind its own lock.
//!
//! The tables hold no keys of their own: callers hash a key, pick the shard from the hash, and
//! find an element with their own equality (the session table compares the id inside each
//! record, the user table the hash inside each entry). Every shard is a
//! [`hashbrown::HashTable`], so a slot costs the element's size plus one control byte.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

/// Shards per table: enough that two threads seldom meet on a lock and that a shard's growth
/// (a rehash under its write lock) moves 1/64 of the table at a time.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// A hash table of `T` in [`SHARDS`] independently locked shards.
#[derive(Debug)]
pub(crate) struct Sharded<T> {
    shards: Box<[CachePadded<RwLock<HashTable<T>>>]>,
}

impl<T> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(RwLock::new(HashTable::new())))
                .collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// The shard of `hash`: the bits just below the top 7, which `hashbrown` keeps in its
    /// control bytes, so the shard and the slot within it use different bits.
    fn shard(&self, hash: u64) -> &RwLock<HashTable<T>> {
        let index = usize::try_from((hash << 7) >> (64 - SHARD_BITS)).unwrap_or_default();
        #[expect(
            clippy::indexing_slicing,
            reason = "the index has SHARD_BITS bits and there are 2^SHARD_BITS shards"
        )]
        &self.shards[index]
    }

    /// Locks the shard of `hash` for reading.
    pub(crate) fn read(&self, hash: u64) -> RwLockReadGuard<'_, HashTable<T>> {
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the shard of `hash` for writing.
    pub(crate) fn write(&self, hash: u64) -> RwLockWriteGuard<'_, HashTable<T>> {
        self.shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard in turn, each locked for reading while the caller holds it.
    pub(crate) fn each_shard(&self) -> impl Iterator<Item = RwLockReadGuard<'_, HashTable<T>>> {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many elements the shards hold (each shard read in turn, so not a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.each_shard().map(|shard| shard.len()).sum()
    }
}
