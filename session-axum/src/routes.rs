//! The ready routes, mounted by [`SessionAuth::wire`] under [`WebConfig::prefix`]:
//!
//! | route | does | answers |
//! |---|---|---|
//! | `POST /refresh` | rotates the refresh token (cookie, or `{"refresh_token"}` in bearer mode), issues a new access token, records the device | [`Issued`] |
//! | `POST /logout` | revokes the current session, clears the cookies; idempotent | `{"revoked": bool}` |
//! | `POST /logout-all` | revokes every session of the user, clears the cookies | `{"revoked": n}` |
//! | `POST /logout-others` | revokes every other session of the user | `{"revoked": n}` |
//! | `GET /sessions` | the user's live sessions, newest first, the current one marked | `[SessionView]` |
//! | `DELETE /sessions/{id}`, `POST /sessions/{id}/revoke` | revokes one of the user's sessions | `{"revoked": bool}`, or 404 for a session that is not the user's |
//!
//! Every `POST` and `DELETE` authenticated by a cookie passes the [CSRF check](crate::csrf).
//! A `?redirect=/path` query (a path of this site) answers `303 See Other` there instead of
//! JSON, for plain HTML forms.
//!
//! [`SessionAuth::wire`]: crate::SessionAuth::wire
//! [`WebConfig::prefix`]: crate::WebConfig::prefix

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use session_core::SessionId;

use crate::auth::SessionAuth;
use crate::client::ClientInfo;
use crate::config::Transport;
use crate::error::ApiError;
use crate::extract::AuthSession;
use crate::issued::{Issued, see_other};
use crate::{cookies, csrf};

/// Where a form post goes back to.
#[derive(Debug, Default, Deserialize)]
struct RedirectTo {
    redirect: Option<String>,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

impl SessionAuth {
    /// The ready routes (see the [module docs](crate::routes)), to nest under
    /// [`WebConfig::prefix`](crate::WebConfig::prefix); [`SessionAuth::wire`] does that.
    pub fn routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/refresh", post(refresh))
            .route("/logout", post(logout))
            .route("/logout-all", post(logout_all))
            .route("/logout-others", post(logout_others))
            .route("/sessions", get(list))
            .route("/sessions/{id}", delete(revoke_one))
            .route("/sessions/{id}/revoke", post(revoke_one))
    }
}

/// A JSON answer, or a redirect for a form; `clear` deletes the cookies (cookie mode).
fn answer(auth: &SessionAuth, to: RedirectTo, body: serde_json::Value, clear: bool) -> Response {
    let mut response = match to.redirect {
        Some(path) => see_other(&path),
        None => Json(body).into_response(),
    };
    if clear && auth.config().transport == Transport::Cookie {
        cookies::clear(response.headers_mut(), auth.config(), auth.manager().now());
    }
    response
}

/// An error; one that means "sign in again" also deletes the cookies, an outage never does.
fn failure(auth: &SessionAuth, error: ApiError) -> Response {
    let clear = error.requires_login() && auth.config().transport == Transport::Cookie;
    let mut response = error.into_response();
    if clear {
        cookies::clear(response.headers_mut(), auth.config(), auth.manager().now());
    }
    response
}

async fn refresh_token(
    auth: &SessionAuth,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    client: ClientInfo,
) -> Result<Issued, ApiError> {
    let token = match auth.config().transport {
        Transport::Cookie => {
            csrf::check(auth.config(), method, headers)?;
            cookies::read(headers, cookies::refresh_name(auth.config()))
                .ok_or(ApiError::MissingCredentials("no refresh cookie"))?
        }
        Transport::Bearer => {
            serde_json::from_slice::<RefreshBody>(body)
                .map_err(|_| {
                    ApiError::BadRequest("expected a JSON body {\"refresh_token\": \"…\"}".into())
                })?
                .refresh_token
        }
    };
    auth.refresh(&token, client).await
}

async fn refresh(
    auth: SessionAuth,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Query(to): Query<RedirectTo>,
    body: Bytes,
) -> Response {
    match refresh_token(&auth, &method, &headers, &body, client).await {
        Ok(issued) => match to.redirect {
            Some(path) => issued.redirect(&path),
            None => issued.into_response(),
        },
        Err(error) => failure(&auth, error),
    }
}

async fn logout(
    auth: SessionAuth,
    me: Result<AuthSession, ApiError>,
    Query(to): Query<RedirectTo>,
) -> Response {
    match me {
        Ok(me) => match auth.manager().logout(&me.session_id).await {
            Ok(revoked) => answer(&auth, to, serde_json::json!({ "revoked": revoked }), true),
            Err(error) => failure(&auth, error.into()),
        },
        // Already signed out (or never signed in): logging out again is not an error.
        Err(error) if error.requires_login() => {
            answer(&auth, to, serde_json::json!({ "revoked": false }), true)
        }
        Err(error) => failure(&auth, error),
    }
}

async fn logout_all(
    auth: SessionAuth,
    me: AuthSession,
    Query(to): Query<RedirectTo>,
) -> Result<Response, ApiError> {
    let revoked = auth.manager().logout_all(&me.user_id).await?;
    Ok(answer(
        &auth,
        to,
        serde_json::json!({ "revoked": revoked }),
        true,
    ))
}

async fn logout_others(
    auth: SessionAuth,
    me: AuthSession,
    Query(to): Query<RedirectTo>,
) -> Result<Response, ApiError> {
    let revoked = auth
        .manager()
        .logout_others(&me.user_id, &me.session_id)
        .await?;
    Ok(answer(
        &auth,
        to,
        serde_json::json!({ "revoked": revoked }),
        false,
    ))
}

async fn list(auth: SessionAuth, me: AuthSession) -> Result<Response, ApiError> {
    let mut response = Json(auth.sessions(&me).await?).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn revoke_one(
    auth: SessionAuth,
    me: AuthSession,
    Path(id): Path<String>,
    Query(to): Query<RedirectTo>,
) -> Result<Response, ApiError> {
    // A malformed id, an unknown one and someone else's all answer 404: nothing to learn here.
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    let owned = auth
        .manager()
        .get(&id)
        .await?
        .is_some_and(|record| record.user_id == me.user_id);
    if !owned {
        return Err(ApiError::NotFound);
    }
    let revoked = auth.manager().logout(&id).await?;
    let current = id == me.session_id;
    Ok(answer(
        &auth,
        to,
        serde_json::json!({ "revoked": revoked }),
        current,
    ))
}
