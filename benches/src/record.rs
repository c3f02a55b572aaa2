//! [`new_record`]: a session record as a login makes it, for benches that call a store directly.

use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::{DeviceInfo, RefreshToken, SessionId, SessionRecord, UserId};

use crate::BenchError;

/// A new session of `user` created at `now`: a fresh id and token (its hash stored), generation
/// 0, idle expiry `idle` after `now`, absolute expiry 30 days after, `device`, no app data.
///
/// # Errors
///
/// The OS RNG failing to give the token's bytes.
pub fn new_record(
    user: &UserId,
    now: OffsetDateTime,
    idle: Duration,
    device: DeviceInfo,
) -> Result<SessionRecord, BenchError> {
    let id = SessionId::generate(user);
    let token = RefreshToken::generate(id).map_err(BenchError::with("token"))?;
    Ok(SessionRecord {
        id,
        user_id: user.clone(),
        created_at: now,
        last_active_at: now,
        idle_expires_at: now + idle,
        absolute_expires_at: now + Duration::from_secs(30 * 86_400),
        token_hash: token.hash(),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device,
        data: None,
    })
}
