//! The answer to a login or a refresh: the tokens, delivered as the transport says.

use std::fmt;

use axum::Json;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use session_core::time::OffsetDateTime;
use session_core::{RefreshToken, SessionRecord};

use crate::access::IssuedAccess;
use crate::auth::SessionAuth;
use crate::config::Transport;
use crate::cookies;
use crate::view::SessionView;

/// A session just signed in or refreshed, with its new tokens.
///
/// As a response (`IntoResponse`), `200 OK` with `Cache-Control: no-store` and:
///
/// - in [`Transport::Cookie`] mode, both tokens as cookies (see [`crate::cookies`]) and the body
///   `{"session": <view>, "access_expires_at": "<RFC 3339>"}`: no token in the body, where a
///   script could read it;
/// - in [`Transport::Bearer`] mode, no cookie and the body
///   `{"access_token", "token_type": "Bearer", "expires_in", "refresh_token", "session"}`.
///
/// [`Issued::redirect`] answers a form post with `303 See Other` instead.
pub struct Issued {
    session: SessionRecord,
    refresh: RefreshToken,
    access: IssuedAccess,
    auth: SessionAuth,
    now: OffsetDateTime,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("session", &self.session.id)
            .field("refresh", &self.refresh)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct CookieBody {
    session: SessionView,
    #[serde(with = "time::serde::rfc3339")]
    access_expires_at: OffsetDateTime,
}

#[derive(Serialize)]
struct BearerBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: &'a str,
    session: SessionView,
}

impl Issued {
    pub(crate) fn new(
        session: SessionRecord,
        refresh: RefreshToken,
        access: IssuedAccess,
        auth: SessionAuth,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            session,
            refresh,
            access,
            auth,
            now,
        }
    }

    /// The session as stored.
    #[must_use]
    pub fn session(&self) -> &SessionRecord {
        &self.session
    }

    /// The public view of the session.
    #[must_use]
    pub fn view(&self) -> SessionView {
        SessionView::new(&self.session, Some(&self.session.id))
    }

    /// The access token.
    #[must_use]
    pub fn access(&self) -> &IssuedAccess {
        &self.access
    }

    /// The refresh token.
    #[must_use]
    pub fn refresh_token(&self) -> &RefreshToken {
        &self.refresh
    }

    /// `303 See Other` to `to` with the cookies set (browser form posts). `to` must be a path of
    /// this site (`/devices`); anything else (`https://…`, `//host`) redirects to `/`, so a
    /// crafted link cannot send a user elsewhere. In bearer mode the tokens are not delivered:
    /// use the JSON response there.
    #[must_use]
    pub fn redirect(self, to: &str) -> Response {
        let mut response = see_other(to);
        self.set_cookies(&mut response);
        response
    }

    fn set_cookies(&self, response: &mut Response) {
        let config = self.auth.config();
        if config.transport == Transport::Cookie {
            cookies::set_tokens(
                response.headers_mut(),
                config,
                (&self.access.token, self.access.expires_at),
                (self.refresh.expose_secret(), self.session.expires_at()),
                self.now,
            );
        }
    }
}

/// `303 See Other` to a local path (anything else goes to `/`).
pub(crate) fn see_other(to: &str) -> Response {
    let local = to.starts_with('/')
        && !to.starts_with("//")
        && !to.contains('\\')
        && !to.chars().any(char::is_control);
    let location = if local { to } else { "/" };
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        let view = self.view();
        let mut response = match self.auth.config().transport {
            Transport::Cookie => Json(CookieBody {
                session: view,
                access_expires_at: self.access.expires_at,
            })
            .into_response(),
            Transport::Bearer => Json(BearerBody {
                access_token: &self.access.token,
                token_type: "Bearer",
                expires_in: (self.access.expires_at - self.now).whole_seconds(),
                refresh_token: self.refresh.expose_secret(),
                session: view,
            })
            .into_response(),
        };
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.set_cookies(&mut response);
        response
    }
}
