//! The web settings: how tokens travel, how long access tokens live, whom to trust.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use session_core::{ConfigError, RotationKey};

/// A configured access-token secret: standard base64 of at least 32 bytes, redacted in `Debug`,
/// zeroized on drop (the same type as the manager's rotation key).
pub type AccessSecret = RotationKey;

/// How the tokens travel between the client and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Transport {
    /// Browsers: both tokens in `HttpOnly` cookies the page's scripts cannot read; the refresh
    /// cookie is sent only to the auth routes. State-changing requests authenticated by a cookie
    /// must pass the CSRF check (see [`crate::csrf`]).
    #[default]
    Cookie,
    /// API and mobile clients: tokens in JSON bodies, the access token in
    /// `Authorization: Bearer`. No cookie is set or read.
    Bearer,
}

/// What an authenticated request checks besides the access token's signature and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccessCheck {
    /// Also read the session in the store (one lookup; sliding expiry applies): a revoked
    /// session is refused at its next request.
    #[default]
    Store,
    /// Trust the signature until the access token expires: no store read, but a revocation
    /// takes effect only when the access token expires (at most
    /// [`WebConfig::access_ttl`]).
    Signature,
}

/// Cookie attributes (browser mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CookieConfig {
    /// The `Secure` attribute, and with it the `__Host-` / `__Secure-` name prefixes. Default
    /// `true`. Browsers accept secure cookies from `http://localhost`; turn it off only for a
    /// plain-HTTP development host that is not `localhost`.
    pub secure: bool,
    /// `Domain` of the cookies; `None` (the default) binds them to the exact host, and is
    /// required for the `__Host-` prefix.
    pub domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            secure: true,
            domain: None,
        }
    }
}

/// The web integration's settings. Durations read as a person writes them (`"10m"`).
///
/// | field | default | allowed |
/// |---|---|---|
/// | `transport` | `cookie` | `cookie`, `bearer` |
/// | `access_key` | none: derived from `session.rotation_key`, else one per process | base64 of at least 32 bytes |
/// | `access_ttl` | 10 minutes | 10 s to 1 day |
/// | `access_check` | `store` | `store`, `signature` |
/// | `issuer` | `auth-sessions` | 1 to 255 bytes |
/// | `prefix` | `/auth` | a path starting with `/`, not ending with `/` |
/// | `allowed_origins` | empty: the request's own host | origins such as `https://app.example` |
/// | `trusted_proxies` | none | IP networks such as `10.0.0.0/8` |
/// | `cookie.secure` | `true` | |
/// | `cookie.domain` | none | |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WebConfig {
    /// How tokens travel.
    pub transport: Transport,
    /// The HS256 secret access tokens are signed with, the same on every instance (see
    /// [`SessionAuth::new`](crate::SessionAuth::new) for what happens without one). Never kept
    /// in the session store: a dump of the store must not let anyone mint access tokens.
    pub access_key: Option<AccessSecret>,
    /// How long an access token is accepted. Short, because with
    /// [`AccessCheck::Signature`] a revocation waits for it.
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// What each authenticated request checks.
    pub access_check: AccessCheck,
    /// The `iss` of access tokens, checked on the way back.
    pub issuer: String,
    /// Where [`SessionAuth::routes`](crate::SessionAuth::routes) are mounted by
    /// [`SessionAuth::wire`](crate::SessionAuth::wire); the refresh cookie is scoped to it.
    pub prefix: String,
    /// Origins allowed to make cookie-authenticated state changes. Empty: an origin whose host
    /// (and port) equals the request's `Host`.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed. A request from any
    /// other peer is taken at its socket address, whatever it claims.
    pub trusted_proxies: Vec<IpNet>,
    /// Cookie attributes (browser mode).
    pub cookie: CookieConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            transport: Transport::Cookie,
            access_key: None,
            access_ttl: Duration::from_secs(600),
            access_check: AccessCheck::Store,
            issuer: "auth-sessions".to_owned(),
            prefix: "/auth".to_owned(),
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            cookie: CookieConfig::default(),
        }
    }
}

impl WebConfig {
    /// Sets [`WebConfig::transport`].
    #[must_use]
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets [`WebConfig::access_key`].
    #[must_use]
    pub fn with_access_key(mut self, key: Option<AccessSecret>) -> Self {
        self.access_key = key;
        self
    }

    /// Sets [`WebConfig::access_ttl`].
    #[must_use]
    pub fn with_access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Sets [`WebConfig::access_check`].
    #[must_use]
    pub fn with_access_check(mut self, check: AccessCheck) -> Self {
        self.access_check = check;
        self
    }

    /// Sets [`WebConfig::prefix`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`WebConfig::allowed_origins`].
    #[must_use]
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Sets [`WebConfig::trusted_proxies`].
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Sets [`WebConfig::cookie`].
    #[must_use]
    pub fn with_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = cookie;
        self
    }

    /// Checks every bound in the table above.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let out = |field: &'static str, value: String, allowed: &'static str| {
            Err(ConfigError::OutOfRange {
                field,
                value,
                allowed,
            })
        };
        if self.access_ttl < Duration::from_secs(10)
            || self.access_ttl > Duration::from_secs(86_400)
        {
            return out("access_ttl", format!("{:?}", self.access_ttl), "10s to 1d");
        }
        if self.issuer.is_empty() || self.issuer.len() > 255 {
            return out(
                "issuer",
                format!("{} bytes", self.issuer.len()),
                "1 to 255 bytes",
            );
        }
        let prefix_ok = self.prefix.starts_with('/')
            && !self.prefix.ends_with('/')
            && self.prefix.len() > 1
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !prefix_ok {
            return out(
                "prefix",
                self.prefix.chars().take(64).collect(),
                "a path such as /auth: starts with /, no trailing /, letters, digits, - _ .",
            );
        }
        if let Some(bad) = self
            .allowed_origins
            .iter()
            .find(|origin| crate::csrf::origin_authority(origin).is_none())
        {
            return out(
                "allowed_origins",
                bad.chars().take(64).collect(),
                "origins such as https://app.example or http://localhost:3000",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_read_from_toml() {
        WebConfig::default().validate().unwrap();
        let config: WebConfig = toml::from_str(
            r#"
            transport = "bearer"
            access_ttl = "5m"
            access_check = "signature"
            trusted_proxies = ["10.0.0.0/8", "::1/128"]
            access_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            allowed_origins = ["https://app.example"]
            [cookie]
            secure = false
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.transport, Transport::Bearer);
        assert_eq!(config.access_ttl, Duration::from_secs(300));
        assert_eq!(config.trusted_proxies.len(), 2);
        assert!(!config.cookie.secure);
        assert!(config.access_key.is_some());
        assert!(
            !format!("{config:?}").contains("AAECAwQF"),
            "the secret is redacted"
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let base = WebConfig::default();
        for bad in [
            base.clone().with_access_ttl(Duration::from_secs(1)),
            base.clone()
                .with_access_ttl(Duration::from_secs(2 * 86_400)),
            base.clone().with_prefix("auth"),
            base.clone().with_prefix("/auth/"),
            base.clone().with_prefix("/a b"),
            base.with_allowed_origins(vec!["not an origin".to_owned()]),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(toml::from_str::<WebConfig>("acces_ttl = \"1m\"").is_err());
    }
}
