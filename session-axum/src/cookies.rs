//! The two cookies of browser mode, built in one place with their attributes.
//!
//! | cookie | name (`secure` on) | `Path` | `SameSite` | lifetime |
//! |---|---|---|---|---|
//! | access token | `__Host-access` (`__Secure-access` with a `Domain`) | `/` | `Lax` | the access token's |
//! | refresh token | `__Secure-refresh` | the routes' prefix | `Strict` | until the session's expiry |
//!
//! Both are `HttpOnly` (no script reads them) and `Secure`. The `__Host-` prefix makes the
//! browser refuse the access cookie unless it is `Secure`, host-only and for `/`; the refresh
//! cookie reaches only the auth routes, so ordinary pages never carry the long-lived token.
//! `Lax` lets a top-level navigation from another site show the user's pages signed in, while
//! cross-site form posts and subrequests go without it; the refresh cookie, used only by the
//! app's own pages, is `Strict`.

use axum::http::{HeaderMap, HeaderValue, header::SET_COOKIE};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use session_core::time::OffsetDateTime;

use crate::config::WebConfig;

/// The access cookie's name under `config`.
pub(crate) fn access_name(config: &WebConfig) -> &'static str {
    match (config.cookie.secure, config.cookie.domain.is_some()) {
        (true, false) => "__Host-access",
        (true, true) => "__Secure-access",
        (false, _) => "access",
    }
}

/// The refresh cookie's name under `config`.
pub(crate) fn refresh_name(config: &WebConfig) -> &'static str {
    if config.cookie.secure {
        "__Secure-refresh"
    } else {
        "refresh"
    }
}

fn build<'a>(
    config: &WebConfig,
    name: &'static str,
    value: String,
    path: String,
    same_site: SameSite,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Cookie<'a> {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .secure(config.cookie.secure)
        .same_site(same_site)
        .path(path);
    if let Some(domain) = &config.cookie.domain {
        cookie = cookie.domain(domain.clone());
    }
    let max_age = expires_at.map_or(time::Duration::ZERO, |at| {
        (at - now).max(time::Duration::ZERO)
    });
    cookie.max_age(max_age).build()
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(SET_COOKIE, value);
    }
}

/// Adds `Set-Cookie` headers for both tokens.
pub(crate) fn set_tokens(
    headers: &mut HeaderMap,
    config: &WebConfig,
    access: (&str, OffsetDateTime),
    refresh: (&str, OffsetDateTime),
    now: OffsetDateTime,
) {
    let access = build(
        config,
        access_name(config),
        access.0.to_owned(),
        "/".to_owned(),
        SameSite::Lax,
        Some(access.1),
        now,
    );
    let refresh = build(
        config,
        refresh_name(config),
        refresh.0.to_owned(),
        config.prefix.clone(),
        SameSite::Strict,
        Some(refresh.1),
        now,
    );
    append(headers, &access);
    append(headers, &refresh);
}

/// Adds `Set-Cookie` headers that delete both cookies.
pub(crate) fn clear(headers: &mut HeaderMap, config: &WebConfig, now: OffsetDateTime) {
    let access = build(
        config,
        access_name(config),
        String::new(),
        "/".to_owned(),
        SameSite::Lax,
        None,
        now,
    );
    let refresh = build(
        config,
        refresh_name(config),
        String::new(),
        config.prefix.clone(),
        SameSite::Strict,
        None,
        now,
    );
    append(headers, &access);
    append(headers, &refresh);
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(name)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}
