//! Where a request comes from: its user agent and client IP, believing forwarding headers only
//! from trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use ipnet::IpNet;
use session_core::DeviceInfo;

use crate::auth::SessionAuth;
use crate::error::ApiError;

/// The device information of a request, for [`SessionAuth::login`] and the refresh route.
///
/// - The user agent is the `User-Agent` header, cut to [`DeviceInfo::MAX_USER_AGENT`] bytes.
/// - The IP is the socket peer's. Only when that peer is one of
///   [`WebConfig::trusted_proxies`](crate::WebConfig::trusted_proxies) are `Forwarded` (RFC 7239)
///   or else `X-Forwarded-For` read, right to left, skipping trusted hops: the first untrusted
///   address is the client. Headers from any other peer are ignored, so a client cannot choose
///   the IP it is recorded with.
///
/// The peer address comes from axum's [`ConnectInfo`]: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or no IP is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo(pub DeviceInfo);

impl ClientInfo {
    /// Reads a request's device information (see the type's docs).
    #[must_use]
    pub fn from_parts(parts: &Parts, trusted: &[IpNet]) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let mut device = DeviceInfo::new();
        if let Some(agent) = parts.headers.get(USER_AGENT) {
            let agent = String::from_utf8_lossy(agent.as_bytes()).replace('\0', "");
            device = device.with_user_agent(agent).bounded();
        }
        if let Some(ip) = client_ip(peer, &parts.headers, trusted) {
            device = device.with_ip(ip);
        }
        Self(device)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let trusted = parts
            .extensions
            .get::<SessionAuth>()
            .map(|auth| auth.config().trusted_proxies.clone())
            .unwrap_or_default();
        Ok(Self::from_parts(parts, &trusted))
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy (see [`ClientInfo`]).
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop else {
            // An entry we cannot read (obfuscated, "unknown", garbage): nothing beyond it can be
            // believed, and the last trusted hop is the best we know.
            break;
        };
        client = *ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The forwarding chain, client first: `Forwarded`'s `for=` values if that header is present,
/// else `X-Forwarded-For`'s entries. `None` marks an entry that is not an IP address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(name, _)| name.eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_node(value.trim_matches('"')))
            })
            .collect();
    }
    values("x-forwarded-for")
        .into_iter()
        .map(parse_node)
        .collect()
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_address() {
        let spoof = headers(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), &spoof, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client_ip(None, &spoof, &trusted), None);
    }

    #[test]
    fn trusted_proxies_are_skipped_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &chain, &trusted),
            Some(ip("198.51.100.7")),
            "a client-supplied first entry is not believed past an untrusted hop"
        );
        let split = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &split, &trusted),
            Some(ip("198.51.100.7"))
        );
        let rfc = headers(&[(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.2"#,
        )]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &rfc, &trusted),
            Some(ip("2001:db8::1"))
        );
        let garbage = headers(&[("x-forwarded-for", "nonsense, 10.0.0.2")]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &garbage, &trusted),
            Some(ip("10.0.0.2")),
            "an unreadable hop stops the walk at the last trusted one"
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn nodes_parse_in_every_form() {
        assert_eq!(parse_node("1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_node("::1"), Some(ip("::1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
    }
}
