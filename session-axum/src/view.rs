//! What a "your devices" page shows of a session: never a token or a hash.

use std::net::IpAddr;

use serde::Serialize;
use session_core::time::OffsetDateTime;
use session_core::{SessionId, SessionRecord};

/// The public view of a session, serialized with RFC 3339 instants.
///
/// ```
/// # use session_core::{SessionRecord};
/// # fn show(record: &SessionRecord) -> serde_json::Value {
/// let view = session_axum::SessionView::new(record, Some(&record.id));
/// serde_json::to_value(&view).unwrap()
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionView {
    /// The session id (what the revoke route takes).
    pub id: SessionId,
    /// When the user signed in.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session was last used (sign-in, refresh, or a throttled validation).
    #[serde(with = "time::serde::rfc3339")]
    pub last_active_at: OffsetDateTime,
    /// When it expires unless used again.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The browser or app, as its `User-Agent` said at the last sign-in or refresh.
    pub user_agent: Option<String>,
    /// The client IP at the last sign-in or refresh.
    pub ip: Option<IpAddr>,
    /// A name the user gave the device.
    pub device_name: Option<String>,
    /// `true` for the session making the request.
    pub current: bool,
}

impl SessionView {
    /// The view of `record`; `current` is the session making the request.
    #[must_use]
    pub fn new(record: &SessionRecord, current: Option<&SessionId>) -> Self {
        Self {
            id: record.id,
            created_at: record.created_at,
            last_active_at: record.last_active_at,
            expires_at: record.expires_at(),
            user_agent: record.device.user_agent.clone(),
            ip: record.device.ip,
            device_name: record.device.device_name.clone(),
            current: current == Some(&record.id),
        }
    }
}
