//! # session-axum
//!
//! Sessions with rotating refresh tokens in an axum app, in a few lines: signed access tokens,
//! an extractor, refresh cookies with CSRF protection (or bearer tokens for API clients), ready
//! routes for refresh, logout and a devices page, and an HTTP answer for every error.
//!
//! ```no_run
//! use axum::{Form, Router, routing::{get, post}};
//! use session_axum::{ApiError, AuthSession, ClientInfo, Issued, SessionAuth, WebConfig};
//! use session_core::UserId;
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials { user: String, password: String }
//!
//! async fn login(
//!     auth: SessionAuth,
//!     client: ClientInfo,
//!     Form(form): Form<Credentials>,
//! ) -> Result<Issued, ApiError> {
//!     // Your credential check goes here.
//!     let user = UserId::new(&form.user)?;
//!     auth.login(&user, client).await
//! }
//!
//! async fn me(me: AuthSession) -> String {
//!     me.user_id.to_string()
//! }
//!
//! # async fn serve(manager: session_core::SessionManager) -> Result<(), Box<dyn std::error::Error>> {
//! let auth = SessionAuth::new(manager, WebConfig::default()).await?;
//! let app: Router = auth.wire(
//!     Router::new().route("/login", post(login)).route("/me", get(me)),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `wire` mounts the [ready routes](routes) under `/auth` and adds the layer the extractors
//! read. An `ApiError` converts from [`session_core::Error`], so `?` works in handlers.
//!
//! ## Security decisions
//!
//! | decision | choice | why |
//! |---|---|---|
//! | access token | JWT, HS256 by default (a 256-bit key derived from the configured access key or rotation key, never kept in the session store) or EdDSA; `kid` in every header; algorithm pinned per key; issuer checked | a well-kept implementation (`jsonwebtoken`), no `alg: none`, key rotation without downtime; a dump of the store cannot mint access tokens |
//! | access token lifetime | 10 minutes | with the default store check it bounds nothing but replay after theft; with signature-only checks it bounds how long a revoked session keeps working |
//! | per-request check | the store (default) or the signature alone | revocation takes effect at the next request by default |
//! | refresh token transport (browsers) | `HttpOnly; Secure; SameSite=Strict` cookie, `Path` = the auth routes | no script can read it (XSS), no other site can send it, ordinary pages never carry it |
//! | access token transport (browsers) | `__Host-` cookie, `HttpOnly; Secure; SameSite=Lax; Path=/` | host-bound, script-proof; `Lax` keeps top-level navigations signed in |
//! | CSRF | `SameSite` plus an `Origin` (or `Referer`) check, or the `X-Requested-With` header, on every cookie-authenticated state change | OWASP's recommended defence in depth; bearer requests need none |
//! | API and mobile clients | tokens in JSON bodies and `Authorization: Bearer`, no cookies | nothing for a browser to attach by itself |
//! | statuses | 401 for every token or session problem; 503 + `Retry-After` for an outage, never 401; 409 + `Retry-After` for a raced refresh | a client signs in again only when it must |
//! | ownership | revoking a session checks it is the caller's; another user's session answers 404, like an unknown one | no one revokes or probes others' sessions |
//! | client IP | the socket peer, unless it is a configured trusted proxy; then `Forwarded`/`X-Forwarded-For`, right to left | a client cannot choose the IP it is recorded with |
//! | responses carrying tokens | `Cache-Control: no-store` | no cache keeps a token |
//! | session views | [`SessionView`]: id, instants (RFC 3339), device, IP, current; `SessionRecord` is not even `Serialize` | no token hash in any response |

pub mod access;
mod auth;
mod client;
pub mod config;
pub mod cookies;
pub mod csrf;
mod error;
mod extract;
mod issued;
pub mod routes;
mod view;

pub use access::{AccessClaims, AccessKey, AccessTokens, IssuedAccess};
pub use auth::SessionAuth;
pub use client::ClientInfo;
pub use config::{AccessCheck, AccessSecret, CookieConfig, Transport, WebConfig};
pub use error::{AccessTokenError, ApiError};
pub use extract::AuthSession;
pub use issued::Issued;
pub use view::SessionView;
