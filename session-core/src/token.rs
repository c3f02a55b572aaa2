//! Refresh tokens: generation, parsing and hashing.
//!
//! A token reads `v1.<session-id>.<secret>`: the format version, the 36-character
//! [`SessionId`], and 32 random bytes from the operating system's RNG in unpadded URL-safe
//! base64 (43 characters), 83 characters in all. Stores keep only [`TokenHash`], the SHA-256 of the
//! secret bytes, so a leaked table or dump signs nobody in.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::id::SessionId;

/// The version prefix of tokens this crate issues.
pub const TOKEN_VERSION: &str = "v1";
/// Bytes of randomness in a token's secret.
pub const SECRET_LEN: usize = 32;
/// Length of the secret in its text form.
const SECRET_TEXT_LEN: usize = 43;
/// Length of a whole v1 token.
pub const TOKEN_LEN: usize = TOKEN_VERSION.len() + 1 + SessionId::TEXT_LEN + 1 + SECRET_TEXT_LEN;

/// Why a presented string is not a usable refresh token. It never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The string is empty.
    #[error("token is empty")]
    Empty,
    /// The string does not have the length of a token this crate issues.
    #[error("token is {len} bytes long; a token is {expected}")]
    WrongLength {
        /// Its length.
        len: usize,
        /// The expected length.
        expected: usize,
    },
    /// The string does not have the `version.id.secret` shape.
    #[error("token is not of the form `version.session-id.secret`")]
    Malformed,
    /// The version prefix is not one this crate reads.
    #[error("unsupported token version")]
    UnsupportedVersion,
    /// The session id part is malformed.
    #[error("token carries a malformed session id")]
    InvalidSessionId,
    /// The secret part is not unpadded URL-safe base64 of 32 bytes.
    #[error("token secret is not 32 bytes of URL-safe base64")]
    InvalidSecret,
    /// The token is well formed but is not recognised: no stored session has it as its
    /// current token or as a former one (a made-up secret, a token older than
    /// [`reuse_detection_depth`](crate::SessionConfig::reuse_detection_depth) rotations, or a
    /// session that no longer exists). Whatever the session's state, this is the only answer
    /// such a token gets, and nothing is changed: a session id is not a secret, so such a token
    /// proves nothing and reveals nothing.
    #[error("refresh token not recognised")]
    UnknownSecret,
    /// A rotation key is not base64 of at least 32 bytes.
    #[error("a rotation key must be base64 of at least 32 bytes")]
    WeakKey,
}

/// SHA-256 of a refresh token's secret: all a store ever keeps of a token.
///
/// Equality is constant-time. Not `Serialize`, so no response or log can carry it by accident;
/// stores write [`TokenHash::as_bytes`].
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps 32 bytes read back from storage.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice read back from storage.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidSecret`] if the slice is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TokenError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| TokenError::InvalidSecret)
    }

    /// The raw bytes, for storage.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn of_secret(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "TokenHash({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

/// A refresh token as handed to a client: secret-bearing.
///
/// Its `Debug` and `Display` show only the session id; the text is zeroized on drop. Read it with
/// [`RefreshToken::expose_secret`] only to send it to the client.
///
/// # Examples
///
/// ```
/// use session_core::{RefreshToken, SessionId, UserId};
///
/// let id = SessionId::generate(&UserId::new("alice")?);
/// let token = RefreshToken::generate(id)?;
/// let text = token.expose_secret().to_owned();
/// assert!(!format!("{token:?}").contains(&text[40..]));
///
/// let parsed = RefreshToken::parse(&text)?;
/// assert_eq!(parsed.session_id(), id);
/// assert_eq!(parsed.hash(), token.hash());
/// assert!(RefreshToken::parse("v1.garbage").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RefreshToken {
    text: Zeroizing<String>,
    secret: Zeroizing<[u8; SECRET_LEN]>,
    session_id: SessionId,
    hash: TokenHash,
}

impl RefreshToken {
    /// A new token for `session_id` with a fresh 256-bit secret from the OS RNG.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if the operating system's RNG fails.
    pub fn generate(session_id: SessionId) -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0_u8; SECRET_LEN]);
        getrandom::fill(secret.as_mut()).map_err(|e| Error::backend("os-rng", e.to_string()))?;
        Ok(Self::from_secret(session_id, secret))
    }

    /// The successor of `self` under `key`: HMAC-SHA-256 of the session id and this token's
    /// secret. The same token and key always give the same successor, so a server that holds the
    /// key can hand a client that lost the race (or the reply) the very token the winner got,
    /// without storing any token. Without the key, a successor cannot be computed from a token.
    #[must_use]
    pub fn successor(&self, key: &RotationKey) -> Self {
        let chain = Chain::new(key, self.session_id);
        Self::from_secret(self.session_id, chain.next(&self.secret))
    }

    /// How many rotations under `key` lead from `self` to the token whose hash is `target`:
    /// `Some(n)` when the `n`-th successor of `self` (1 ≤ `n` ≤ `max`) hashes to `target`, so
    /// `self` is a former token of that session, `n` rotations back. `None` when none of the
    /// first `max` successors does (a made-up secret, an older token, or another key).
    ///
    /// # Cost
    ///
    /// At most `max` HMAC-SHA-256 and SHA-256 computations, no allocation.
    #[must_use]
    pub fn rotations_to(&self, key: &RotationKey, target: &TokenHash, max: u64) -> Option<u64> {
        let chain = Chain::new(key, self.session_id);
        let mut secret = Zeroizing::new(*self.secret);
        for distance in 1..=max {
            secret = chain.next(&secret);
            if TokenHash::of_secret(secret.as_ref()) == *target {
                return Some(distance);
            }
        }
        None
    }

    fn from_secret(session_id: SessionId, secret: Zeroizing<[u8; SECRET_LEN]>) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        text.push_str(TOKEN_VERSION);
        text.push('.');
        text.push_str(session_id.encode_text(&mut [0; SessionId::TEXT_LEN]));
        text.push('.');
        URL_SAFE_NO_PAD.encode_string(secret.as_ref(), &mut text);
        Self {
            text,
            hash: TokenHash::of_secret(secret.as_ref()),
            secret,
            session_id,
        }
    }

    /// Parses a token presented by a client. Never panics, whatever the input.
    ///
    /// # Errors
    ///
    /// A [`TokenError`] saying which part is wrong.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        if text.len() != TOKEN_LEN {
            return Err(TokenError::WrongLength {
                len: text.len(),
                expected: TOKEN_LEN,
            });
        }
        let mut parts = text.split('.');
        let (Some(version), Some(id), Some(secret_text), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if version != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion);
        }
        let session_id: SessionId = id.parse().map_err(|_| TokenError::InvalidSessionId)?;
        let mut secret = Zeroizing::new([0_u8; SECRET_LEN]);
        match URL_SAFE_NO_PAD.decode_slice(secret_text, secret.as_mut()) {
            Ok(SECRET_LEN) => {}
            _ => return Err(TokenError::InvalidSecret),
        }
        // The text is the one this crate issues for these parts: the version and the id were
        // compared in their canonical form, and the decoder refuses non-canonical base64 (stray
        // low bits in the last character), so the text is kept as given, not encoded again.
        Ok(Self {
            text: Zeroizing::new(text.to_owned()),
            hash: TokenHash::of_secret(secret.as_ref()),
            secret,
            session_id,
        })
    }

    /// The session this token refreshes.
    #[must_use]
    pub const fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// SHA-256 of the secret: what stores compare against.
    #[must_use]
    pub const fn hash(&self) -> TokenHash {
        self.hash
    }

    /// The whole token text, to hand to the client. Do not log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.text
    }
}

/// The keyed step from one secret of a session to the next.
struct Chain {
    mac: Hmac<Sha256>,
}

impl Chain {
    /// The label every rotation MAC starts with.
    const LABEL: &'static [u8] = b"auth-sessions rotation v1\0";

    /// The MAC keyed by `key` with [`Chain::LABEL`] absorbed: computed once per key.
    fn keyed(key: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(Self::LABEL);
        mac
    }

    fn new(key: &RotationKey, session_id: SessionId) -> Self {
        let mut mac = key.rotation.clone();
        mac.update(
            session_id
                .encode_text(&mut [0; SessionId::TEXT_LEN])
                .as_bytes(),
        );
        Self { mac }
    }

    fn next(&self, secret: &[u8; SECRET_LEN]) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut mac = self.mac.clone();
        mac.update(secret);
        Zeroizing::new(<[u8; SECRET_LEN]>::from(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("session_id", &self.session_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_VERSION}.{}.<redacted>", self.session_id)
    }
}

/// The server-side key that makes rotation deterministic (see [`RefreshToken::successor`]).
///
/// At least 32 bytes. In configuration it is written in standard base64; its `Debug` never shows
/// it. Give every instance of an app the same key.
#[derive(Clone)]
pub struct RotationKey {
    bytes: Zeroizing<Vec<u8>>,
    /// The rotation MAC's keyed state (see `Chain`), computed once: a refresh then pays for
    /// the MAC of its own input only, not for the key's two padding blocks.
    rotation: Hmac<Sha256>,
}

impl RotationKey {
    /// The shortest accepted key, in bytes.
    pub const MIN_LEN: usize = 32;

    /// Wraps key bytes.
    ///
    /// # Errors
    ///
    /// [`TokenError::WeakKey`] if shorter than [`RotationKey::MIN_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < Self::MIN_LEN {
            return Err(TokenError::WeakKey);
        }
        let rotation = Chain::keyed(&bytes);
        Ok(Self { bytes, rotation })
    }

    /// Reads a key written in standard base64.
    ///
    /// # Errors
    ///
    /// [`TokenError::WeakKey`] if it is not base64 of at least [`RotationKey::MIN_LEN`] bytes.
    pub fn from_base64(text: &str) -> Result<Self, TokenError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| TokenError::WeakKey)?;
        Self::new(bytes)
    }

    /// A 32-byte key for another use, derived from this one (HMAC-SHA-256 of `purpose`): every
    /// instance holding this key derives the same, and neither key reveals the other. The web
    /// integration signs access tokens with one when no access key is configured.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.bytes.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"auth-sessions derived key v1\0");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

impl PartialEq for RotationKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice()).into()
    }
}

impl Eq for RotationKey {}

impl fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotationKey(<redacted>)")
    }
}

impl Serialize for RotationKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(self.bytes.as_slice()))
    }
}

impl<'de> Deserialize<'de> for RotationKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::user::UserId;

    fn token() -> RefreshToken {
        RefreshToken::generate(SessionId::generate(&UserId::new("u").unwrap())).unwrap()
    }

    #[test]
    fn generated_tokens_roundtrip_and_differ() {
        let a = token();
        let b = token();
        assert_eq!(a.expose_secret().len(), TOKEN_LEN);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.hash(), b.hash());
        let parsed = RefreshToken::parse(a.expose_secret()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_eq!(parsed.session_id(), a.session_id());
    }

    #[test]
    fn formatting_never_shows_the_secret() {
        let t = token();
        let text = t.expose_secret().to_owned();
        let secret = text.rsplit('.').next().unwrap();
        assert!(!format!("{t:?}").contains(secret));
        assert!(!format!("{t}").contains(secret));
    }

    #[test]
    fn specific_errors() {
        let t = token();
        let text = t.expose_secret();
        assert_eq!(RefreshToken::parse("").unwrap_err(), TokenError::Empty);
        assert!(matches!(
            RefreshToken::parse(&"a".repeat(10_000)).unwrap_err(),
            TokenError::WrongLength { len: 10_000, .. }
        ));
        let v2 = format!("v2{}", &text[2..]);
        assert_eq!(
            RefreshToken::parse(&v2).unwrap_err(),
            TokenError::UnsupportedVersion
        );
        let dots = text.replace('.', "_");
        assert_eq!(
            RefreshToken::parse(&dots).unwrap_err(),
            TokenError::Malformed
        );
        let bad_id = format!("v1.{}{}", "Z", &text[4..]);
        assert_eq!(
            RefreshToken::parse(&bad_id).unwrap_err(),
            TokenError::InvalidSessionId
        );
        let bad_secret = format!("{}*", &text[..text.len() - 1]);
        assert_eq!(
            RefreshToken::parse(&bad_secret).unwrap_err(),
            TokenError::InvalidSecret
        );
    }

    /// The successor's secret is HMAC-SHA-256(key, label, session id text, secret), whatever
    /// state the key caches: tokens issued before stay refreshable.
    #[test]
    fn successors_are_the_documented_mac() {
        let key = RotationKey::new([7_u8; 40]).unwrap();
        let t = token();
        let mut mac = Hmac::<Sha256>::new_from_slice(&[7_u8; 40]).unwrap();
        mac.update(b"auth-sessions rotation v1\0");
        mac.update(t.session_id().to_string().as_bytes());
        mac.update(t.secret.as_ref());
        let expected: [u8; SECRET_LEN] = mac.finalize().into_bytes().into();
        assert_eq!(*t.successor(&key).secret, expected);
        assert_eq!(*key.rotation.finalize().into_bytes(), {
            let mut fresh = Hmac::<Sha256>::new_from_slice(&[7_u8; 40]).unwrap();
            fresh.update(b"auth-sessions rotation v1\0");
            <[u8; 32]>::from(fresh.finalize().into_bytes())
        });
    }

    #[test]
    fn successors_are_deterministic_and_keyed() {
        let key = RotationKey::new([7_u8; 32]).unwrap();
        let other = RotationKey::new([8_u8; 32]).unwrap();
        let t = token();
        let a = t.successor(&key);
        let b = RefreshToken::parse(t.expose_secret())
            .unwrap()
            .successor(&key);
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.session_id(), t.session_id());
        assert_ne!(a.expose_secret(), t.expose_secret());
        assert_ne!(a.expose_secret(), t.successor(&other).expose_secret());
        assert_eq!(
            RefreshToken::parse(a.expose_secret()).unwrap().hash(),
            a.hash()
        );
    }

    #[test]
    fn rotations_to_finds_former_tokens_within_the_bound() {
        let key = RotationKey::new([7_u8; 32]).unwrap();
        let other = RotationKey::new([8_u8; 32]).unwrap();
        let t0 = token();
        let mut chain = vec![t0.successor(&key)];
        for _ in 0..9 {
            let next = chain.last().unwrap().successor(&key);
            chain.push(next);
        }
        for (i, later) in chain.iter().enumerate() {
            let distance = u64::try_from(i).unwrap() + 1;
            assert_eq!(t0.rotations_to(&key, &later.hash(), 10), Some(distance));
            assert_eq!(
                t0.rotations_to(&key, &later.hash(), distance),
                Some(distance)
            );
            assert_eq!(t0.rotations_to(&key, &later.hash(), distance - 1), None);
            assert_eq!(t0.rotations_to(&other, &later.hash(), 10), None);
        }
        assert_eq!(
            t0.rotations_to(&key, &t0.hash(), 10),
            None,
            "not its own successor"
        );
        let stranger = token();
        let target = chain.last().unwrap().hash();
        assert_eq!(stranger.rotations_to(&key, &target, 100), None);
    }

    #[test]
    fn derived_keys_are_stable_and_separate() {
        let key = RotationKey::new([7_u8; 32]).unwrap();
        let same = RotationKey::new([7_u8; 32]).unwrap();
        let other = RotationKey::new([8_u8; 32]).unwrap();
        assert_eq!(*key.derive("access"), *same.derive("access"));
        assert_ne!(*key.derive("access"), *key.derive("other"));
        assert_ne!(*key.derive("access"), *other.derive("access"));
        assert_ne!(key.derive("access").as_slice(), [7_u8; 32].as_slice());
    }

    #[test]
    fn rotation_keys_are_bounded_and_redacted() {
        assert_eq!(
            RotationKey::new([1_u8; 31]).unwrap_err(),
            TokenError::WeakKey
        );
        assert!(RotationKey::from_base64("not base64!").is_err());
        let key = RotationKey::from_base64(&STANDARD.encode([9_u8; 32])).unwrap();
        assert!(!format!("{key:?}").contains("CQkJ"));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<RotationKey>(&json).unwrap(), key);
    }

    #[test]
    fn non_canonical_secrets_are_rejected() {
        let t = token();
        let text = t.expose_secret();
        let last = text.chars().last().unwrap();
        // Flip the low bits the last base64 character carries beyond the 256 bits.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.find(last).unwrap();
        let twin = alphabet.chars().nth(pos ^ 1).unwrap();
        let forged = format!("{}{twin}", &text[..text.len() - 1]);
        assert!(RefreshToken::parse(&forged).is_err());
    }

    #[test]
    fn hash_from_slice_checks_length() {
        assert!(TokenHash::from_slice(&[0; 31]).is_err());
        assert!(TokenHash::from_slice(&[0; 32]).is_ok());
    }

    proptest! {
        #[test]
        fn parse_arbitrary_strings_never_panics(s in any::<String>()) {
            let _ = RefreshToken::parse(&s);
        }

        #[test]
        fn parse_token_shaped_strings_never_panics(s in "v1\\.[0-9a-f]{36}\\.[A-Za-z0-9_=+/-]{40,46}") {
            let _ = RefreshToken::parse(&s);
        }

        /// A text that parses is exactly the text this crate issues for its parts.
        #[test]
        fn parsed_texts_are_canonical(s in "v1\\.[0-9a-f]{36}\\.[A-Za-z0-9_-]{43}") {
            if let Ok(token) = RefreshToken::parse(&s) {
                let issued = RefreshToken::from_secret(token.session_id, token.secret.clone());
                prop_assert_eq!(issued.expose_secret(), s.as_str());
                prop_assert_eq!(issued.hash(), token.hash());
            }
        }

        #[test]
        fn parse_right_length_noise_never_panics(s in proptest::collection::vec(any::<u8>(), TOKEN_LEN)) {
            if let Ok(s) = String::from_utf8(s) {
                let _ = RefreshToken::parse(&s);
            }
        }
    }
}
