//! Session ids and the routing tag they carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::InputError;
use crate::user::UserId;

/// A 16-bit tag derived from the user id and carried inside every session id.
///
/// A store that shards by user (the Redis Cluster store puts all of a user's keys in one hash slot)
/// reads the tag from a session id — and so from a refresh token — without knowing the user.
/// Other stores may ignore it. It is the first two bytes of SHA-256 of the user id.
///
/// # Examples
///
/// ```
/// use session_core::{RoutingTag, UserId};
///
/// let user = UserId::new("alice")?;
/// assert_eq!(RoutingTag::for_user(&user), RoutingTag::for_user(&user));
/// assert_eq!(RoutingTag::for_user(&user).to_string().len(), 4);
/// # Ok::<(), session_core::InputError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutingTag(u16);

impl RoutingTag {
    /// The tag of a user's sessions.
    #[must_use]
    pub fn for_user(user: &UserId) -> Self {
        let digest: [u8; 32] = Sha256::digest(user.as_str().as_bytes()).into();
        let [high, low, ..] = digest;
        Self(u16::from_be_bytes([high, low]))
    }

    /// Wraps a raw tag value.
    #[must_use]
    pub const fn from_u16(value: u16) -> Self {
        Self(value)
    }

    /// The raw tag value.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for RoutingTag {
    /// Four lowercase hexadecimal digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl fmt::Debug for RoutingTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoutingTag({self})")
    }
}

/// A session id: a [`RoutingTag`] and a random 122-bit UUID (v4, from a userspace CSPRNG seeded
/// by the OS: an id is not the credential, the refresh token's secret is, and that comes from
/// the OS RNG directly).
///
/// Its text form is 36 lowercase hexadecimal characters: the tag's 4, then the UUID's 32. The text
/// order equals the [`Ord`] order. An id is not a secret credential by itself (the refresh token's
/// secret is), but it is not guessable either.
///
/// # Examples
///
/// ```
/// use session_core::{SessionId, UserId};
///
/// let id = SessionId::generate(&UserId::new("alice")?);
/// let text = id.to_string();
/// assert_eq!(text.len(), SessionId::TEXT_LEN);
/// assert_eq!(text.parse::<SessionId>()?, id);
/// assert!("not-an-id".parse::<SessionId>().is_err());
/// # Ok::<(), session_core::InputError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    tag: RoutingTag,
    uuid: Uuid,
}

impl SessionId {
    /// Length of the text form.
    pub const TEXT_LEN: usize = 36;

    /// A fresh random id for a session of `user`.
    #[must_use]
    pub fn generate(user: &UserId) -> Self {
        Self::from_parts(RoutingTag::for_user(user), Uuid::new_v4())
    }

    /// Builds an id from its parts (for stores that keep them apart).
    #[must_use]
    pub const fn from_parts(tag: RoutingTag, uuid: Uuid) -> Self {
        Self { tag, uuid }
    }

    /// The routing tag.
    #[must_use]
    pub const fn tag(&self) -> RoutingTag {
        self.tag
    }

    /// The random part.
    #[must_use]
    pub const fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl SessionId {
    /// Writes the text form into `buf` without allocating and returns it: the tag's four
    /// lowercase hexadecimal digits, then the uuid's 32.
    pub(crate) fn encode_text(self, buf: &mut [u8; Self::TEXT_LEN]) -> &str {
        let (tag, uuid) = buf.split_at_mut(4);
        for (digit, shift) in tag.iter_mut().zip([12, 8, 4, 0]) {
            let nibble = u32::from((self.tag.0 >> shift) & 0xf);
            *digit = char::from_digit(nibble, 16)
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(b'0');
        }
        self.uuid.simple().encode_lower(uuid);
        // Only ASCII hex digits were written.
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode_text(&mut [0; Self::TEXT_LEN]))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = InputError;

    /// Parses the canonical text form; anything else is [`InputError::InvalidSessionId`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical =
            s.len() == Self::TEXT_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !canonical {
            return Err(InputError::InvalidSessionId);
        }
        let (tag, uuid) = s.split_at(4);
        let tag = u16::from_str_radix(tag, 16).map_err(|_| InputError::InvalidSessionId)?;
        let uuid = Uuid::try_parse(uuid).map_err(|_| InputError::InvalidSessionId)?;
        Ok(Self::from_parts(RoutingTag(tag), uuid))
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tag_comes_from_user() {
        let alice = UserId::new("alice").unwrap();
        let id = SessionId::generate(&alice);
        assert_eq!(id.tag(), RoutingTag::for_user(&alice));
        assert_ne!(SessionId::generate(&alice), id);
    }

    #[test]
    fn text_order_matches_ord() {
        let user = UserId::new("u").unwrap();
        let mut ids: Vec<SessionId> = (0..64).map(|_| SessionId::generate(&user)).collect();
        let mut texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        ids.sort();
        texts.sort();
        let sorted: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, texts);
    }

    #[test]
    fn text_is_the_tag_then_the_uuid_in_lowercase_hex() {
        for tag in [0_u16, 1, 0x00ff, 0xabcd, u16::MAX] {
            let id = SessionId::from_parts(RoutingTag(tag), Uuid::new_v4());
            let text = id.to_string();
            assert_eq!(text, format!("{tag:04x}{}", id.uuid().simple()));
            assert_eq!(text.len(), SessionId::TEXT_LEN);
            assert_eq!(text.parse::<SessionId>().unwrap(), id);
        }
    }

    #[test]
    fn rejects_non_canonical() {
        let id = SessionId::generate(&UserId::new("u").unwrap()).to_string();
        assert!(id.to_uppercase().parse::<SessionId>().is_err());
        assert!(id[1..].parse::<SessionId>().is_err());
        assert!(format!("{id}0").parse::<SessionId>().is_err());
        assert!("".parse::<SessionId>().is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<SessionId>();
        }

        #[test]
        fn roundtrip(tag in any::<u16>(), bytes in any::<[u8; 16]>()) {
            let id = SessionId::from_parts(RoutingTag::from_u16(tag), Uuid::from_bytes(bytes));
            prop_assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        }
    }
}
