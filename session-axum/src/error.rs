//! Every failure as an HTTP response with a stable, machine-readable code.

use axum::Json;
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use session_core::Error;

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// Past its expiry.
    #[error("the access token has expired")]
    Expired,
    /// Malformed, signed by an unknown key or algorithm, or for another issuer.
    #[error("the access token is invalid")]
    Invalid,
    /// Its user is not the user of the session it names.
    #[error("the access token does not match its session")]
    Mismatch,
}

/// A request that failed, as the client sees it.
///
/// | error | status | `code` |
/// |---|---|---|
/// | no access or refresh token | 401 | `missing_credentials` |
/// | access token expired / invalid / not its session's | 401 | `access_token_expired` / `access_token_invalid` |
/// | refresh token unusable or not recognised | 401 | `invalid_token` |
/// | session expired / revoked / unknown | 401 | `session_expired` / `session_revoked` / `session_not_found` |
/// | a former refresh token presented again | 401 | `token_reused` |
/// | cross-site request | 403 | `csrf_rejected` |
/// | login refused at the per-user cap | 403 | `session_limit_reached` |
/// | someone else's or an unknown session | 404 | `not_found` |
/// | bad input | 400 | `invalid_input` |
/// | a refresh that raced a key change | 409 + `Retry-After: 1` | `refresh_raced` |
/// | the store is unavailable | 503 + `Retry-After: 2` | `store_unavailable` |
/// | the store failed otherwise | 500 | `internal_error` |
///
/// An outage is never a 401: a client keeps its tokens and retries. The body is
/// `{"error": {"code": "...", "message": "..."}}`; the message never carries a token, a hash or a
/// store's own error text (hosts, driver details: those are logged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A session operation failed.
    #[error(transparent)]
    Session(#[from] Error),
    /// The request carries no token where one is needed.
    #[error("no credentials: {0}")]
    MissingCredentials(&'static str),
    /// The access token was refused.
    #[error(transparent)]
    AccessToken(#[from] AccessTokenError),
    /// A cookie-authenticated state change from an origin that is not allowed.
    #[error("cross-site request refused: {0}")]
    Csrf(&'static str),
    /// The session named is unknown or belongs to someone else (the two are not told apart).
    #[error("no such session")]
    NotFound,
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// An extractor found no [`SessionAuth`](crate::SessionAuth) in the request: the app was not
    /// wired with [`SessionAuth::wire`](crate::SessionAuth::wire) or
    /// [`SessionAuth::layer`](crate::SessionAuth::layer). A bug in the app, answered with 500.
    #[error("the session layer is missing: wire the router with SessionAuth::wire or layer")]
    NotWired,
}

impl From<session_core::InputError> for ApiError {
    fn from(error: session_core::InputError) -> Self {
        Self::Session(error.into())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials(_) | Self::AccessToken(_) => StatusCode::UNAUTHORIZED,
            Self::Csrf(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotWired => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Session(error) => match error {
                Error::NotFound
                | Error::Expired
                | Error::Revoked { .. }
                | Error::InvalidToken(_)
                | Error::ReuseDetected => StatusCode::UNAUTHORIZED,
                Error::LimitReached { .. } => StatusCode::FORBIDDEN,
                Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
                Error::RefreshRaced => StatusCode::CONFLICT,
                Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code in the body (see the table above).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials(_) => "missing_credentials",
            Self::AccessToken(AccessTokenError::Expired) => "access_token_expired",
            Self::AccessToken(_) => "access_token_invalid",
            Self::Csrf(_) => "csrf_rejected",
            Self::NotFound => "not_found",
            Self::BadRequest(_) => "invalid_input",
            Self::NotWired => "internal_error",
            Self::Session(error) => match error {
                Error::NotFound => "session_not_found",
                Error::Expired => "session_expired",
                Error::Revoked { .. } => "session_revoked",
                Error::InvalidToken(_) => "invalid_token",
                Error::ReuseDetected => "token_reused",
                Error::LimitReached { .. } => "session_limit_reached",
                Error::InvalidInput(_) => "invalid_input",
                Error::RefreshRaced => "refresh_raced",
                Error::Unavailable { .. } => "store_unavailable",
                _ => "internal_error",
            },
        }
    }

    /// `true` when the client must sign in again (its tokens are no good): every 401.
    #[must_use]
    pub fn requires_login(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A store's own error names hosts, ports and driver details: log it, never send it.
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %self, "session store failed");
                "internal error".to_owned()
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %self, "session store unavailable");
                "the session store is unavailable; retry later".to_owned()
            }
            _ => self.to_string(),
        };
        let code = self.code();
        let mut response = (
            status,
            Json(Body {
                error: Detail { code, message },
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
            }
            StatusCode::CONFLICT => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use session_core::{RevokeReason, TokenError};

    use super::*;

    #[test]
    fn an_outage_is_never_a_401() {
        let outage = ApiError::from(Error::unavailable("redis", std::io::Error::other("down")));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!outage.requires_login());
        let response = outage.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn every_session_error_has_its_status_and_code() {
        let cases = [
            (Error::NotFound, 401, "session_not_found"),
            (Error::Expired, 401, "session_expired"),
            (
                Error::Revoked {
                    reason: RevokeReason::Logout,
                },
                401,
                "session_revoked",
            ),
            (
                Error::InvalidToken(TokenError::UnknownSecret),
                401,
                "invalid_token",
            ),
            (Error::ReuseDetected, 401, "token_reused"),
            (Error::RefreshRaced, 409, "refresh_raced"),
            (Error::LimitReached { max: 3 }, 403, "session_limit_reached"),
            (
                Error::InvalidInput(session_core::InputError::EmptyUserId),
                400,
                "invalid_input",
            ),
            (Error::backend("pg", "boom"), 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            let error = ApiError::from(error);
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code(), code);
        }
    }
}
