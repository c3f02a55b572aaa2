//! The user id: an opaque, bounded string.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InputError;

/// An opaque user identifier, 1 to [`UserId::MAX_LEN`] bytes of UTF-8 without NUL.
///
/// Cloning is cheap (a reference count), so stores may keep it in several indexes.
///
/// # Examples
///
/// ```
/// use session_core::UserId;
///
/// let user = UserId::new("user-42")?;
/// assert_eq!(user.as_str(), "user-42");
/// assert!(UserId::new("").is_err());
/// assert!(UserId::new("x".repeat(256)).is_err());
/// # Ok::<(), session_core::InputError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// The longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Validates and wraps a user id.
    ///
    /// # Errors
    ///
    /// [`InputError::EmptyUserId`], [`InputError::TooLong`] over [`UserId::MAX_LEN`] bytes, or
    /// [`InputError::ContainsNul`].
    pub fn new(id: impl AsRef<str>) -> Result<Self, InputError> {
        let id = id.as_ref();
        if id.is_empty() {
            return Err(InputError::EmptyUserId);
        }
        check_text("user id", id, Self::MAX_LEN)?;
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a bounded text field: at most `max` bytes and no NUL.
pub(crate) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), InputError> {
    if text.len() > max {
        return Err(InputError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    if text.contains('\0') {
        return Err(InputError::ContainsNul { field });
    }
    Ok(())
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for UserId {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for UserId {
    type Error = InputError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for UserId {
    type Error = InputError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(UserId::new(""), Err(InputError::EmptyUserId));
        assert!(UserId::new("a".repeat(255)).is_ok());
        assert_eq!(
            UserId::new("a".repeat(256)),
            Err(InputError::TooLong {
                field: "user id",
                len: 256,
                max: 255
            })
        );
        assert_eq!(
            UserId::new("a\0b"),
            Err(InputError::ContainsNul { field: "user id" })
        );
    }

    #[test]
    fn serde_validates() {
        let user: UserId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(user.as_str(), "alice");
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&user).unwrap(), "\"alice\"");
    }
}
