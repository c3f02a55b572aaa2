//! Key names. Every key of one user carries the user's routing tag as its Redis hash tag, so a
//! user's session records and index share one hash slot and every script runs on one node.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>{<tag>}:s:<session-id>` | string | one session record (see the codec) |
//! | `<prefix>{<tag>}:u:<user-digest>` | sorted set | the user's session ids, scored by `created_at` |
//! | `<prefix>secret:<name>` | string | one shared secret (no TTL) |
//!
//! Every key name is printable ASCII without spaces: the prefix is checked by the configuration
//! (printable, no braces), the tag is four hex digits, a session id is printable by
//! construction, a secret name is letters, digits, `-` and `_`, and a user id never appears
//! raw: the index key holds `<user-digest>`, the unpadded base64url of SHA-256 of the user id's
//! UTF-8 bytes (43 characters whatever the id's length or content). The first `{` of a key is
//! the store's, so the hash tag is always the [`RoutingTag`], which a session id carries: a
//! refresh token alone names its record's slot.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::{RoutingTag, SessionId, UserId};
use sha2::{Digest as _, Sha256};

/// Builds the store's key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The printable stand-in for a user id in key names: unpadded base64url of its SHA-256.
pub(crate) fn user_digest(user: &UserId) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(user.as_str().as_bytes()))
}

impl Keys {
    /// Keys under `prefix` (already validated: bounded, printable, without braces).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The key prefix every key of the store starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix of every session key in the slot of `tag`: append a session id to get a key.
    pub(crate) fn session_prefix(&self, tag: RoutingTag) -> String {
        format!("{}{{{tag}}}:s:", self.prefix)
    }

    /// The key of one session record.
    pub(crate) fn session(&self, id: &SessionId) -> String {
        format!("{}{{{}}}:s:{id}", self.prefix, id.tag())
    }

    /// The key of a user's index: the user id appears only as its digest.
    pub(crate) fn user_index(&self, user: &UserId) -> String {
        format!(
            "{}{{{}}}:u:{}",
            self.prefix,
            RoutingTag::for_user(user),
            user_digest(user)
        )
    }

    /// The key of the shared secret `name` (already checked: ASCII letters, digits, `-`, `_`).
    pub(crate) fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str) -> String {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        key[open + 1..close].to_owned()
    }

    #[test]
    fn user_keys_share_the_session_tag() {
        let keys = Keys::new("auth:");
        let user = UserId::new("we{ird}:user").unwrap();
        let id = SessionId::generate(&user);
        let session = keys.session(&id);
        let index = keys.user_index(&user);
        assert_eq!(tag(&session), tag(&index));
        assert_eq!(tag(&session), id.tag().to_string());
        assert_eq!(session, format!("auth:{{{}}}:s:{id}", id.tag()));
        assert_eq!(
            index,
            format!("auth:{{{}}}:u:{}", id.tag(), user_digest(&user))
        );
        assert!(!index.contains("we{ird}"));
    }

    #[test]
    fn user_ids_never_appear_raw() {
        let keys = Keys::new("auth:");
        let long = "é".repeat(127);
        let mut seen = Vec::new();
        for raw in ["a\nb", "\u{1b}[31mred", "with space", "x", long.as_str()] {
            let user = UserId::new(raw).unwrap();
            let index = keys.user_index(&user);
            let digest = user_digest(&user);
            assert_eq!(digest.len(), 43, "{raw:?}");
            assert!(
                index.bytes().all(|b| b.is_ascii_graphic()),
                "{raw:?} gave {index:?}"
            );
            assert_eq!(tag(&index), RoutingTag::for_user(&user).to_string());
            seen.push(digest);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 5, "distinct users get distinct digests");
        // A known digest: SHA-256("x") in unpadded base64url.
        assert_eq!(
            user_digest(&UserId::new("x").unwrap()),
            "LXEWQrcmsEQBYnyp-6wy9chTD7GQPMTbAiWHF5IaSIE"
        );
        assert_eq!(keys.secret("rotation-key"), "auth:secret:rotation-key");
    }
}
