//! The user index: each user's session ids, in an entry that holds no user id.
//!
//! An entry carries a 32-bit hash of its user's id instead of the id itself; the id is in
//! every record the entry lists. Two users may share a hash, so a lookup by user compares the
//! hash first and then the user id of the entry's first record (see
//! `MemoryStore::owns`). This holds because an entry is never empty and its ids always name
//! existing records: a record leaves the session table only under its user's index lock,
//! together with its id.

use session_core::SessionId;

/// One user's session ids, in order of login. 24 bytes: the hash and one id inline, or the hash
/// and a boxed slice of exactly the user's ids when there are more (a login of such a user
/// copies them to a slice one longer, as cheap as the look-up of each that it makes anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserEntry {
    /// A user with one session (no allocation).
    One(u32, SessionId),
    /// A user with two sessions or more.
    Many(u32, Box<[SessionId]>),
}

impl UserEntry {
    /// The entry of a user whose first indexed session is `id`.
    pub(crate) fn new(user_hash: u32, id: SessionId) -> Self {
        Self::One(user_hash, id)
    }

    /// The 32-bit hash of the user id.
    pub(crate) fn user_hash(&self) -> u32 {
        match self {
            Self::One(hash, _) | Self::Many(hash, _) => *hash,
        }
    }

    /// The hash the table files the entry under, spread from the 32-bit user hash (so that an
    /// entry can be moved when the table grows without looking at its records).
    pub(crate) fn table_hash(&self) -> u64 {
        spread(self.user_hash())
    }

    /// The session ids, never empty.
    pub(crate) fn ids(&self) -> &[SessionId] {
        match self {
            Self::One(_, id) => std::slice::from_ref(id),
            Self::Many(_, ids) => ids,
        }
    }

    /// Appends an id.
    pub(crate) fn push(&mut self, id: SessionId) {
        match self {
            Self::One(hash, first) => *self = Self::Many(*hash, Box::new([*first, id])),
            Self::Many(_, ids) => *ids = ids.iter().copied().chain([id]).collect(),
        }
    }

    /// The entry with only the ids `keep` accepts (in order), or `None` if none is left.
    pub(crate) fn retain(self, mut keep: impl FnMut(&SessionId) -> bool) -> Option<Self> {
        match self {
            Self::One(_, id) if !keep(&id) => None,
            Self::One(..) => Some(self),
            Self::Many(hash, ids) => {
                let mut ids = ids.into_vec();
                ids.retain(|id| keep(id));
                match ids.as_slice() {
                    [] => None,
                    [id] => Some(Self::One(hash, *id)),
                    _ => Some(Self::Many(hash, ids.into_boxed_slice())),
                }
            }
        }
    }
}

/// The table hash of a 32-bit user hash: a multiplication by an odd constant, a bijection that
/// carries every input bit into the high bits (the shard and the control byte) and keeps the
/// low bits (the slot) as distinct as the input's.
pub(crate) fn spread(user_hash: u32) -> u64 {
    u64::from(user_hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use session_core::UserId;

    use super::*;

    #[test]
    fn one_id_stays_inline_and_the_entry_is_small() {
        assert_eq!(std::mem::size_of::<UserEntry>(), 24);
        let user = UserId::new("u").unwrap();
        let [a, b, c] = [(); 3].map(|()| SessionId::generate(&user));
        let mut entry = UserEntry::new(7, a);
        assert_eq!(entry.ids(), [a]);
        entry.push(b);
        entry.push(c);
        assert_eq!(entry.ids(), [a, b, c]);
        assert_eq!(entry.user_hash(), 7);
        let entry = entry.retain(|id| *id != b).unwrap();
        assert_eq!(entry.ids(), [a, c]);
        let entry = entry.retain(|id| *id == c).unwrap();
        assert_eq!(entry, UserEntry::One(7, c));
        assert_eq!(entry.table_hash(), spread(7));
        assert!(entry.retain(|_| false).is_none());
    }
}
