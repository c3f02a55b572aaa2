//! The stored session record and the data it carries.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::InputError;
use crate::id::SessionId;
use crate::token::TokenHash;
use crate::user::{UserId, check_text};

/// One session as a store keeps it.
///
/// Every instant is UTC with whole microseconds (the manager truncates its clock), so a record
/// read back from any database equals the record written. The refresh token is present only as
/// [`TokenHash`].
///
/// It is deliberately not `Serialize`: a record carries token hashes, which no response should
/// ever show. Serialize a view of the fields a page needs instead (the web integration ships
/// one).
///
/// ```compile_fail
/// fn leak(record: &session_core::SessionRecord) -> String {
///     serde_json::to_string(record).unwrap_or_default() // does not compile: not Serialize
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's id.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the session was created (login).
    pub created_at: OffsetDateTime,
    /// When the session was last used (login, refresh, or a throttled validate).
    pub last_active_at: OffsetDateTime,
    /// When the session expires unless used again (sliding).
    pub idle_expires_at: OffsetDateTime,
    /// When the session expires whatever happens (the absolute lifetime cap).
    pub absolute_expires_at: OffsetDateTime,
    /// SHA-256 of the current refresh token's secret.
    pub token_hash: TokenHash,
    /// How many times the token was rotated (0 after login).
    pub generation: u64,
    /// SHA-256 of the immediately previous token's secret (for the grace window).
    pub previous_token_hash: Option<TokenHash>,
    /// When the token was last rotated.
    pub rotated_at: Option<OffsetDateTime>,
    /// Set once the session is revoked; a revoked record is kept until it expires so a later use
    /// can be told apart from an unknown session.
    pub revoked: Option<Revocation>,
    /// Where the session was created from.
    pub device: DeviceInfo,
    /// Application data, as JSON.
    pub data: Option<AppData>,
}

impl SessionRecord {
    /// The instant the session stops being live: the earlier of the idle and absolute expiries.
    #[must_use]
    pub fn expires_at(&self) -> OffsetDateTime {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// `true` when `now` is at or after [`SessionRecord::expires_at`].
    #[must_use]
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at()
    }

    /// `true` when the session is neither revoked nor expired at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked.is_none() && !self.is_expired(now)
    }
}

/// When and why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When.
    pub at: OffsetDateTime,
    /// Why.
    pub reason: RevokeReason,
}

/// Why a session was revoked. Stored as its [`RevokeReason::as_str`] code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevokeReason {
    /// The user logged out of this session.
    Logout,
    /// The user logged out of all devices.
    LogoutAll,
    /// The user logged out of all other devices.
    LogoutOthers,
    /// The user's password was changed or reset.
    PasswordChanged,
    /// A newer login pushed the session over the per-user cap.
    Evicted,
    /// A rotated refresh token was presented again.
    ReuseDetected,
}

impl RevokeReason {
    /// Every reason, for stores that map codes.
    pub const ALL: [Self; 6] = [
        Self::Logout,
        Self::LogoutAll,
        Self::LogoutOthers,
        Self::PasswordChanged,
        Self::Evicted,
        Self::ReuseDetected,
    ];

    /// The stable storage code (`"logout"`, `"evicted"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::LogoutOthers => "logout_others",
            Self::PasswordChanged => "password_changed",
            Self::Evicted => "evicted",
            Self::ReuseDetected => "reuse_detected",
        }
    }
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevokeReason {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InputError::UnknownRevokeReason(s.chars().take(64).collect()))
    }
}

/// Where a session was created from. Every field is optional and bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The client's `User-Agent`, at most [`DeviceInfo::MAX_USER_AGENT`] bytes.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// A name the user gave the device, at most [`DeviceInfo::MAX_DEVICE_NAME`] bytes.
    pub device_name: Option<String>,
}

impl DeviceInfo {
    /// Bound on [`DeviceInfo::user_agent`].
    pub const MAX_USER_AGENT: usize = 512;
    /// Bound on [`DeviceInfo::device_name`].
    pub const MAX_DEVICE_NAME: usize = 255;

    /// No device information.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user agent.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sets the IP address.
    #[must_use]
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Sets the device name.
    #[must_use]
    pub fn with_device_name(mut self, name: impl Into<String>) -> Self {
        self.device_name = Some(name.into());
        self
    }

    /// The same information with the user agent cut to at most [`DeviceInfo::MAX_USER_AGENT`]
    /// bytes, at a character boundary: an over-long browser header is not worth a failed login.
    #[must_use]
    pub fn bounded(mut self) -> Self {
        if let Some(ua) = &mut self.user_agent
            && ua.len() > Self::MAX_USER_AGENT
        {
            let mut end = Self::MAX_USER_AGENT;
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.truncate(end);
        }
        self
    }

    /// Checks the bounds.
    ///
    /// # Errors
    ///
    /// [`InputError::TooLong`] or [`InputError::ContainsNul`] naming the field.
    pub fn validate(&self) -> Result<(), InputError> {
        if let Some(ua) = &self.user_agent {
            check_text("user agent", ua, Self::MAX_USER_AGENT)?;
        }
        if let Some(name) = &self.device_name {
            check_text("device name", name, Self::MAX_DEVICE_NAME)?;
        }
        Ok(())
    }
}

/// Application data attached to a session: a JSON document, kept as its text so every store
/// returns it byte for byte. Cloning is cheap (a reference count).
///
/// # Examples
///
/// ```
/// use session_core::AppData;
///
/// let data = AppData::from_value(&serde_json::json!({"role": "admin"}))?;
/// assert_eq!(data.as_json(), r#"{"role":"admin"}"#);
/// assert!(AppData::from_json("{not json").is_err());
/// # Ok::<(), session_core::InputError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppData(Arc<str>);

impl AppData {
    /// Serializes any value.
    ///
    /// # Errors
    ///
    /// [`InputError::InvalidJson`] if the value cannot be serialized.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, InputError> {
        serde_json::to_string(value)
            .map(|text| Self(Arc::from(text)))
            .map_err(|e| InputError::InvalidJson(e.to_string()))
    }

    /// Wraps JSON text after checking that it parses.
    ///
    /// # Errors
    ///
    /// [`InputError::InvalidJson`] if it does not.
    pub fn from_json(text: impl Into<String>) -> Result<Self, InputError> {
        let text = text.into();
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| InputError::InvalidJson(e.to_string()))?;
        Ok(Self(Arc::from(text)))
    }

    /// The JSON text.
    #[must_use]
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Size of the JSON text in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` for zero bytes (never the case for valid JSON).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Deserializes the data.
    ///
    /// # Errors
    ///
    /// The `serde_json` error if it does not fit `T`.
    pub fn to_value<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl fmt::Debug for AppData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppData({} bytes)", self.0.len())
    }
}

impl TryFrom<String> for AppData {
    type Error = InputError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::from_json(text)
    }
}

impl From<AppData> for String {
    fn from(data: AppData) -> Self {
        data.0.as_ref().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_reason_codes_roundtrip() {
        for reason in RevokeReason::ALL {
            assert_eq!(reason.as_str().parse::<RevokeReason>().unwrap(), reason);
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        assert!("nope".parse::<RevokeReason>().is_err());
    }

    #[test]
    fn device_bounds() {
        assert!(
            DeviceInfo::new()
                .with_user_agent("a".repeat(512))
                .validate()
                .is_ok()
        );
        assert!(
            DeviceInfo::new()
                .with_user_agent("a".repeat(513))
                .validate()
                .is_err()
        );
        assert!(
            DeviceInfo::new()
                .with_device_name("a\0")
                .validate()
                .is_err()
        );
    }

    #[test]
    fn bounded_cuts_user_agents_at_a_character_boundary() {
        let long = format!("{}é{}", "a".repeat(511), "b".repeat(100));
        let device = DeviceInfo::new().with_user_agent(long).bounded();
        let ua = device.user_agent.as_deref().unwrap();
        assert_eq!(
            ua.len(),
            511,
            "the two-byte character straddling 512 is dropped whole"
        );
        assert!(device.validate().is_ok());
        let short = DeviceInfo::new().with_user_agent("curl/8").bounded();
        assert_eq!(short.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(DeviceInfo::new().bounded(), DeviceInfo::new());
    }

    #[test]
    fn app_data_keeps_text_exactly() {
        let data = AppData::from_json(r#"{ "b": 1,  "a": [true] }"#).unwrap();
        let json = serde_json::to_string(&data).unwrap();
        let back: AppData = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_json(), r#"{ "b": 1,  "a": [true] }"#);
        assert!(serde_json::from_str::<AppData>("\"{oops\"").is_err());
    }
}
