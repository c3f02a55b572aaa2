//! Key names. Every key of one user carries the user's routing tag as its Redis hash tag, so a
//! user's session records and index share one hash slot and every script runs on one node.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>{<tag>}:s:<session-id>` | string | one session record (see the codec) |
//! | `<prefix>{<tag>}:u:<user-id>` | sorted set | the user's session ids, scored by `created_at` |
//!
//! The prefix holds no braces (the configuration rejects them), so the first `{` of a key is the
//! store's, and the hash tag is always the four hex digits of the [`RoutingTag`]. A user id may
//! hold any text after that: braces in it no longer matter.

use session_core::{RoutingTag, SessionId, UserId};

/// Builds the store's key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (already validated: bounded, without braces).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix of every session key in the slot of `tag`: append a session id to get a key.
    pub(crate) fn session_prefix(&self, tag: RoutingTag) -> String {
        format!("{}{{{tag}}}:s:", self.prefix)
    }

    /// The key of one session record.
    pub(crate) fn session(&self, id: &SessionId) -> String {
        format!("{}{{{}}}:s:{id}", self.prefix, id.tag())
    }

    /// The key of a user's index.
    pub(crate) fn user_index(&self, user: &UserId) -> String {
        format!(
            "{}{{{}}}:u:{}",
            self.prefix,
            RoutingTag::for_user(user),
            user.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_share_the_session_tag() {
        let keys = Keys::new("auth:");
        let user = UserId::new("we{ird}:user").unwrap();
        let id = SessionId::generate(&user);
        let session = keys.session(&id);
        let index = keys.user_index(&user);
        let tag = |key: &str| {
            let open = key.find('{').unwrap();
            let close = open + key[open..].find('}').unwrap();
            key[open + 1..close].to_owned()
        };
        assert_eq!(tag(&session), tag(&index));
        assert_eq!(tag(&session), id.tag().to_string());
        assert_eq!(session, format!("auth:{{{}}}:s:{id}", id.tag()));
        assert!(index.ends_with(":u:we{ird}:user"));
    }
}
