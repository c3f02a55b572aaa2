//! The authenticated session of a request, as an extractor.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use session_core::{SessionId, SessionRecord, UserId};

use crate::auth::SessionAuth;
use crate::config::{AccessCheck, Transport};
use crate::error::{AccessTokenError, ApiError};
use crate::{cookies, csrf};

/// The signed-in user and session of a request.
///
/// Taken from `Authorization: Bearer <access token>`, or in [cookie mode](crate::Transport) from
/// the access cookie (then a state-changing request must also pass the [CSRF check](crate::csrf)).
/// The token's signature, issuer and expiry are verified; with [`AccessCheck::Store`] (the
/// default) the session is also read from the store, so a revoked session is refused at once.
///
/// Rejections are [`ApiError`]s: 401 without or with a bad token or an ended session, 403 for a
/// cross-site request, 503 when the store is unavailable. `Option<AuthSession>` is `None`
/// instead of a 401, and still fails on 403, 503 and 500.
///
/// ```
/// use session_axum::AuthSession;
///
/// async fn me(me: AuthSession) -> String {
///     format!("{} on session {}", me.user_id, me.session_id)
/// }
///
/// async fn home(me: Option<AuthSession>) -> &'static str {
///     if me.is_some() { "welcome back" } else { "please sign in" }
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthSession {
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The session's generation when the access token was issued.
    pub generation: u64,
    /// The session as stored, with [`AccessCheck::Store`]; `None` with
    /// [`AccessCheck::Signature`].
    pub session: Option<SessionRecord>,
}

/// The access token of a request and whether it came from the cookie.
fn access_token(auth: &SessionAuth, parts: &Parts) -> Option<(String, bool)> {
    if let Some(bearer) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
    {
        return Some((bearer.trim().to_owned(), false));
    }
    if auth.config().transport == Transport::Cookie {
        return cookies::read(&parts.headers, cookies::access_name(auth.config()))
            .map(|token| (token, true));
    }
    None
}

impl AuthSession {
    /// Authenticates a request (see the type's docs).
    ///
    /// # Errors
    ///
    /// The rejections listed above.
    pub async fn from_parts(auth: &SessionAuth, parts: &Parts) -> Result<Self, ApiError> {
        let (token, from_cookie) =
            access_token(auth, parts).ok_or(ApiError::MissingCredentials("no access token"))?;
        if from_cookie {
            csrf::check(auth.config(), &parts.method, &parts.headers)?;
        }
        let manager = auth.manager();
        let claims = auth.access_tokens().verify(&token, manager.now())?;
        let user_id = claims.user()?;
        let session = match auth.config().access_check {
            AccessCheck::Store => {
                let record = manager.validate(&claims.sid).await?;
                if record.user_id != user_id {
                    return Err(AccessTokenError::Mismatch.into());
                }
                Some(record)
            }
            AccessCheck::Signature => None,
        };
        Ok(Self {
            user_id,
            session_id: claims.sid,
            generation: claims.r#gen,
            session,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = SessionAuth::from_request_parts(parts, state).await?;
        Self::from_parts(&auth, parts).await
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Self as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(session) => Ok(Some(session)),
            Err(error) if error.requires_login() => Ok(None),
            Err(error) => Err(error),
        }
    }
}
