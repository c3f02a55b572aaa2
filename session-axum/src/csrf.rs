//! Cross-site request forgery protection for cookie-authenticated state changes.
//!
//! Cookies are sent by the browser whoever builds the request, so a request that changes state
//! (any method but `GET`, `HEAD`, `OPTIONS`) and is authenticated by a cookie must prove it
//! comes from the app's own pages. Following the OWASP cheat sheet, two layers:
//!
//! 1. `SameSite`: the refresh cookie is `Strict`, the access cookie `Lax`, so other sites'
//!    pages do not send them on cross-site subrequests and form posts.
//! 2. An origin check on every such request: its `Origin` header (or, when a browser leaves it
//!    out, the origin of its `Referer`) must be an [allowed origin](crate::WebConfig), by
//!    default the request's own `Host`. A request with neither header must carry the custom
//!    header [`CSRF_HEADER`], which another site's page cannot add without a CORS preflight.
//!
//! Requests authenticated by `Authorization: Bearer` are not checked: a browser never adds
//! that header by itself.

use axum::http::header::{HOST, ORIGIN, REFERER};
use axum::http::{HeaderMap, Method};

use crate::config::WebConfig;
use crate::error::ApiError;

/// The custom header that vouches for a request without `Origin` or `Referer` (any value).
pub const CSRF_HEADER: &str = "x-requested-with";

/// The `host[:port]` of an origin such as `https://app.example:8443`, or `None` if `origin` is
/// not an `http` or `https` origin.
pub(crate) fn origin_authority(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    let bad = rest.is_empty()
        || rest
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace());
    (!bad).then_some(rest)
}

/// The origin (`scheme://host[:port]`) of a URL such as a `Referer`.
fn url_origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let rest = url.get(scheme_end..)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    url.get(..scheme_end + end)
}

/// `true` for methods that do not change state.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a cookie-authenticated request (see the [module docs](self)).
///
/// # Errors
///
/// [`ApiError::Csrf`] when the request is not shown to come from an allowed origin.
pub fn check(config: &WebConfig, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_safe(method) {
        return Ok(());
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text(ORIGIN)
        .filter(|origin| *origin != "null")
        .or_else(|| text(REFERER).and_then(url_origin));
    let Some(origin) = origin else {
        return if headers.contains_key(CSRF_HEADER) {
            Ok(())
        } else {
            Err(ApiError::Csrf(
                "no Origin, Referer or X-Requested-With header",
            ))
        };
    };
    let allowed = if config.allowed_origins.is_empty() {
        let host = text(HOST);
        origin_authority(origin)
            .is_some_and(|authority| host.is_some_and(|host| authority.eq_ignore_ascii_case(host)))
    } else {
        config
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Csrf("the request's origin is not allowed"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn same_host_origins_pass_and_others_fail() {
        let config = WebConfig::default();
        let post = Method::POST;
        let ok = headers(&[
            ("host", "app.test:3000"),
            ("origin", "http://app.test:3000"),
        ]);
        assert!(check(&config, &post, &ok).is_ok());
        let evil = headers(&[("host", "app.test:3000"), ("origin", "https://evil.test")]);
        assert!(check(&config, &post, &evil).is_err());
        let null = headers(&[("host", "app.test"), ("origin", "null")]);
        assert!(
            check(&config, &post, &null).is_err(),
            "an opaque origin is not ours"
        );
        let referer = headers(&[
            ("host", "app.test"),
            ("referer", "https://app.test/devices?x=1"),
        ]);
        assert!(check(&config, &post, &referer).is_ok());
        let bad_referer = headers(&[("host", "app.test"), ("referer", "https://app.test.evil/")]);
        assert!(check(&config, &post, &bad_referer).is_err());
        assert!(check(&config, &post, &headers(&[("host", "app.test")])).is_err());
        let custom = headers(&[("host", "app.test"), ("x-requested-with", "fetch")]);
        assert!(check(&config, &post, &custom).is_ok());
        assert!(
            check(&config, &Method::GET, &evil).is_ok(),
            "safe methods pass"
        );
    }

    #[test]
    fn configured_origins_replace_the_host_rule() {
        let config =
            WebConfig::default().with_allowed_origins(vec!["https://app.example".to_owned()]);
        let post = Method::POST;
        let ok = headers(&[("host", "api.internal"), ("origin", "https://app.example")]);
        assert!(check(&config, &post, &ok).is_ok());
        let same_host = headers(&[("host", "api.internal"), ("origin", "https://api.internal")]);
        assert!(check(&config, &post, &same_host).is_err());
    }

    #[test]
    fn origin_parsing() {
        assert_eq!(origin_authority("https://a.test:1"), Some("a.test:1"));
        assert_eq!(origin_authority("https://a.test/x"), None);
        assert_eq!(origin_authority("ftp://a.test"), None);
        assert_eq!(origin_authority("https://u@a.test"), None);
        assert_eq!(url_origin("https://a.test/p?q"), Some("https://a.test"));
        assert_eq!(url_origin("https://a.test"), Some("https://a.test"));
        assert_eq!(url_origin("nonsense"), None);
    }
}
