//! Short-lived signed access tokens: JWTs carrying the user, the session and its generation.
//!
//! Signing and verification are `jsonwebtoken`'s, with the algorithm pinned per key (no `none`,
//! no algorithm taken from the token), a key id (`kid`) in every header so keys can be rotated,
//! and the issuer checked. Expiry is checked against the manager's clock, so tests can drive it.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use session_core::time::OffsetDateTime;
use session_core::{ConfigError, SessionId, SessionRecord, UserId};

use crate::error::AccessTokenError;

/// What an access token says. Never a refresh token, a hash or app data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: SessionId,
    /// The session's generation (rotations) when the token was issued.
    pub r#gen: u64,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expires at, in Unix seconds.
    pub exp: i64,
    /// The issuer ([`WebConfig::issuer`](crate::WebConfig::issuer)).
    pub iss: String,
}

/// One signing or verification key, with its key id.
///
/// HS256 keys are at least 32 bytes; Ed25519 keys come as PEM. Its `Debug` shows only the key
/// id and the algorithm.
#[derive(Clone)]
pub struct AccessKey {
    kid: String,
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("signs", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

fn key_error(field: &'static str, allowed: &'static str) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: "<redacted>".to_owned(),
        allowed,
    }
}

impl AccessKey {
    /// An HMAC-SHA-256 key that signs and verifies (every instance needs the same secret).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the secret is shorter than 32 bytes or the key id is empty.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < 32 {
            return Err(key_error(
                "access key",
                "an HS256 secret of at least 32 bytes",
            ));
        }
        let encoding = EncodingKey::from_secret(secret)
            .map_err(|_| key_error("access key", "an HS256 secret of at least 32 bytes"))?;
        let decoding = DecodingKey::from_secret(secret)
            .map_err(|_| key_error("access key", "an HS256 secret of at least 32 bytes"))?;
        Self::checked(kid.into(), Algorithm::HS256, Some(encoding), decoding)
    }

    /// An Ed25519 key pair (EdDSA), from PKCS#8 PEM: signs with the private key, verifies with
    /// the public one.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if either PEM does not hold an Ed25519 key.
    pub fn ed25519(
        kid: impl Into<String>,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        let encoding = EncodingKey::from_ed_pem(private_pem)
            .map_err(|_| key_error("access key", "an Ed25519 private key in PKCS#8 PEM"))?;
        let mut key = Self::ed25519_verifier(kid, public_pem)?;
        key.encoding = Some(encoding);
        Ok(key)
    }

    /// An Ed25519 public key that only verifies: a retired key during rotation, or a service
    /// that checks tokens another one issues.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the PEM does not hold an Ed25519 public key.
    pub fn ed25519_verifier(
        kid: impl Into<String>,
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        let decoding = DecodingKey::from_ed_pem(public_pem)
            .map_err(|_| key_error("access key", "an Ed25519 public key in PEM"))?;
        Self::checked(kid.into(), Algorithm::EdDSA, None, decoding)
    }

    /// The same key, no longer used to sign (a retired key that still verifies).
    #[must_use]
    pub fn verify_only(mut self) -> Self {
        self.encoding = None;
        self
    }

    fn checked(
        kid: String,
        algorithm: Algorithm,
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
    ) -> Result<Self, ConfigError> {
        if kid.is_empty() || kid.len() > 64 {
            return Err(ConfigError::OutOfRange {
                field: "access key id",
                value: format!("{} bytes", kid.len()),
                allowed: "1 to 64 bytes",
            });
        }
        Ok(Self {
            kid,
            algorithm,
            encoding,
            decoding,
        })
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// An access token just issued.
#[derive(Clone)]
pub struct IssuedAccess {
    /// The token text. Do not log it.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for IssuedAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedAccess")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issues and verifies access tokens with one signing key and any number of verification keys.
#[derive(Debug, Clone)]
pub struct AccessTokens {
    signing: AccessKey,
    verifying: HashMap<String, AccessKey>,
    issuer: String,
    ttl: Duration,
}

impl AccessTokens {
    /// Signs with `signing` (which must be able to sign); verifies tokens of `signing` and of
    /// every key in `retired`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `signing` is verification-only or two keys share a key id.
    pub fn new(
        signing: AccessKey,
        retired: Vec<AccessKey>,
        issuer: String,
        ttl: Duration,
    ) -> Result<Self, ConfigError> {
        if signing.encoding.is_none() {
            return Err(key_error("access key", "a key that can sign"));
        }
        let mut verifying = HashMap::new();
        for key in std::iter::once(signing.clone()).chain(retired) {
            let kid = key.kid.clone();
            if verifying.insert(kid, key).is_some() {
                return Err(key_error("access key id", "distinct key ids"));
            }
        }
        Ok(Self {
            signing,
            verifying,
            issuer,
            ttl,
        })
    }

    /// A token for `session` valid from `now` for the configured lifetime.
    ///
    /// # Errors
    ///
    /// [`AccessTokenError::Invalid`] if signing fails (a key that cannot sign).
    pub fn issue(
        &self,
        session: &SessionRecord,
        now: OffsetDateTime,
    ) -> Result<IssuedAccess, AccessTokenError> {
        let ttl = time::Duration::try_from(self.ttl).unwrap_or(time::Duration::MINUTE);
        let expires_at = now + ttl;
        let claims = AccessClaims {
            sub: session.user_id.as_str().to_owned(),
            sid: session.id,
            r#gen: session.generation,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            iss: self.issuer.clone(),
        };
        let mut header = Header::new(self.signing.algorithm);
        header.kid = Some(self.signing.kid.clone());
        let key = self
            .signing
            .encoding
            .as_ref()
            .ok_or(AccessTokenError::Invalid)?;
        let token =
            jsonwebtoken::encode(&header, &claims, key).map_err(|_| AccessTokenError::Invalid)?;
        Ok(IssuedAccess { token, expires_at })
    }

    /// Verifies a token's signature, algorithm, issuer and expiry at `now`.
    ///
    /// # Errors
    ///
    /// [`AccessTokenError::Expired`] past its expiry, [`AccessTokenError::Invalid`] for anything
    /// else wrong (never says which: no help to a forger).
    pub fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, AccessTokenError> {
        if token.len() > 4096 {
            return Err(AccessTokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessTokenError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(AccessTokenError::Invalid)?;
        if header.alg != key.algorithm {
            return Err(AccessTokenError::Invalid);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is checked below against the manager's clock, not the system's.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|_| AccessTokenError::Invalid)?
            .claims;
        if now.unix_timestamp() >= claims.exp {
            return Err(AccessTokenError::Expired);
        }
        Ok(claims)
    }
}

impl AccessClaims {
    /// The user id the token names.
    ///
    /// # Errors
    ///
    /// [`AccessTokenError::Invalid`] if it is not a valid user id.
    pub fn user(&self) -> Result<UserId, AccessTokenError> {
        UserId::new(&self.sub).map_err(|_| AccessTokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use session_core::time::macros::datetime;
    use session_core::{DeviceInfo, RefreshToken};

    use super::*;

    const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    fn session() -> SessionRecord {
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user);
        SessionRecord {
            id,
            user_id: user,
            created_at: NOW,
            last_active_at: NOW,
            idle_expires_at: NOW + time::Duration::DAY,
            absolute_expires_at: NOW + time::Duration::DAY,
            token_hash: RefreshToken::generate(id).unwrap().hash(),
            generation: 3,
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
        }
    }

    fn tokens(key: AccessKey, retired: Vec<AccessKey>) -> AccessTokens {
        AccessTokens::new(key, retired, "test".to_owned(), Duration::from_secs(600)).unwrap()
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let tokens = tokens(AccessKey::hs256("k1", &[1; 32]).unwrap(), Vec::new());
        let session = session();
        let issued = tokens.issue(&session, NOW).unwrap();
        let claims = tokens.verify(&issued.token, NOW).unwrap();
        assert_eq!(claims.sid, session.id);
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.r#gen, 3);
        assert_eq!(claims.user().unwrap(), session.user_id);
        let later = NOW + time::Duration::seconds(599);
        assert!(tokens.verify(&issued.token, later).is_ok());
        let expired = NOW + time::Duration::seconds(600);
        assert_eq!(
            tokens.verify(&issued.token, expired),
            Err(AccessTokenError::Expired)
        );
        assert!(!format!("{issued:?}").contains(&issued.token));
    }

    #[test]
    fn forged_and_foreign_tokens_are_invalid() {
        let ours = tokens(AccessKey::hs256("k1", &[1; 32]).unwrap(), Vec::new());
        let theirs = tokens(AccessKey::hs256("k1", &[2; 32]).unwrap(), Vec::new());
        let session = session();
        let forged = theirs.issue(&session, NOW).unwrap().token;
        assert_eq!(ours.verify(&forged, NOW), Err(AccessTokenError::Invalid));
        for junk in ["", "a.b.c", "not a jwt", &"x".repeat(10_000)] {
            assert_eq!(ours.verify(junk, NOW), Err(AccessTokenError::Invalid));
        }
        // An unsigned token ("alg": "none") is never accepted.
        let good = ours.issue(&session, NOW).unwrap().token;
        let mut parts = good.split('.');
        let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
        use base64::Engine as _;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        assert_eq!(
            ours.verify(&format!("{none}.{payload}."), NOW),
            Err(AccessTokenError::Invalid)
        );
    }

    /// A key pair made for this test only (`openssl genpkey -algorithm ed25519`).
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJClwSToJz4CJvGbn6Jei1RBsbbFdYfKIK786k/vXxC7
-----END PRIVATE KEY-----
";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAFYuy4ZoFGx5nWHLhfhMIKtl1xlo/QHPBPyjnsDYvYd8=
-----END PUBLIC KEY-----
";

    #[test]
    fn ed25519_tokens_verify_with_the_public_key_alone() {
        let pair = AccessKey::ed25519("ed1", ED_PRIVATE.as_bytes(), ED_PUBLIC.as_bytes()).unwrap();
        let signer = tokens(pair, Vec::new());
        let issued = signer.issue(&session(), NOW).unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some("ed1"));
        let verifier = AccessKey::ed25519_verifier("ed1", ED_PUBLIC.as_bytes()).unwrap();
        assert!(
            AccessTokens::new(
                verifier.clone(),
                Vec::new(),
                "test".to_owned(),
                Duration::from_secs(600)
            )
            .is_err(),
            "a public key cannot sign"
        );
        // A service holding only the public key accepts the token.
        let checker = tokens(AccessKey::hs256("other", &[3; 32]).unwrap(), vec![verifier]);
        assert!(checker.verify(&issued.token, NOW).is_ok());
        // An HS256 token claiming the Ed25519 key id is refused (no algorithm confusion).
        let confused = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("ed1".to_owned());
            let claims = signer.verify(&issued.token, NOW).unwrap();
            let key = EncodingKey::from_secret(ED_PUBLIC.as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        assert_eq!(
            checker.verify(&confused, NOW),
            Err(AccessTokenError::Invalid)
        );
        assert!(AccessKey::ed25519("bad", b"not pem", ED_PUBLIC.as_bytes()).is_err());
    }

    #[test]
    fn retired_keys_verify_but_do_not_sign() {
        let old = AccessKey::hs256("old", &[1; 32]).unwrap();
        let before = tokens(old.clone(), Vec::new());
        let issued = before.issue(&session(), NOW).unwrap();
        let after = tokens(
            AccessKey::hs256("new", &[2; 32]).unwrap(),
            vec![old.verify_only()],
        );
        assert!(after.verify(&issued.token, NOW).is_ok());
        let fresh = after.issue(&session(), NOW).unwrap();
        assert!(after.verify(&fresh.token, NOW).is_ok());
        assert_eq!(
            before.verify(&fresh.token, NOW),
            Err(AccessTokenError::Invalid),
            "the old deployment does not know the new key"
        );
        assert!(AccessKey::hs256("short", &[1; 31]).is_err());
        assert!(
            AccessTokens::new(
                AccessKey::hs256("k", &[1; 32]).unwrap().verify_only(),
                Vec::new(),
                "t".to_owned(),
                Duration::from_secs(60)
            )
            .is_err()
        );
    }
}
