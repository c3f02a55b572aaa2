//! Spans and log events at TRACE over a whole session life: what they record, and that no
//! secret is in them. (Alone in its test binary, so no thread without a subscriber shares
//! the callsites' interest cache with the capturing one.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_sessions::{
    Error, LoginRequest, RotationKey, Sessions, SessionsConfig, StorageConfig, Telemetry,
    TokenHash, UserId,
};
use base64::Engine as _;

const KEY_B64: &str = "c2VjcmV0LXJvdGF0aW9uLWtleS1vZi10aGlydHktdHdvLWJ5dGVz";

fn memory_config() -> SessionsConfig {
    let mut config = SessionsConfig::new()
        .with_storage(toml::from_str::<StorageConfig>(r#"type = "memory""#).unwrap());
    config.session = config
        .session
        .with_rotation_key(Some(RotationKey::from_base64(KEY_B64).unwrap()))
        .with_reuse_grace(Duration::from_secs(10))
        .with_max_sessions_per_user(Some(2));
    config.cleanup.enabled = false;
    config
}

/// Everything a leak could look like: the token text, its secret part, and its hash as hex
/// (whole, and the 8-digit prefix `TokenHash`'s `Debug` shows) or base64.
fn secret_forms(token: &str, hash: &TokenHash) -> Vec<String> {
    let secret = token.rsplit('.').next().unwrap().to_owned();
    let bytes = hash.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let engines = [
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ];
    let mut forms = vec![token.to_owned(), secret, hex.clone(), hex[..8].to_owned()];
    forms.extend(engines);
    forms
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Login (twice, the second evicting nothing), refresh, a grace-window retry, a second
/// refresh, reuse of the first token (revokes), a new login, logout; returns the secret forms
/// of every token handed out and the user.
async fn life_cycle(telemetry: Telemetry, user: &UserId) -> Vec<String> {
    let sessions = Sessions::builder(memory_config())
        .telemetry(telemetry)
        .start()
        .await
        .unwrap();
    let manager = sessions.manager();
    let mut secrets = Vec::new();
    let login = manager.login(user, LoginRequest::new()).await.unwrap();
    secrets.extend(secret_forms(
        login.token.expose_secret(),
        &login.token.hash(),
    ));
    let first = manager.refresh(login.token.expose_secret()).await.unwrap();
    secrets.extend(secret_forms(
        first.token.expose_secret(),
        &first.token.hash(),
    ));
    // A second tab within the grace window gets the same successor.
    let again = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(again.token.expose_secret(), first.token.expose_secret());
    let second = manager.refresh(first.token.expose_secret()).await.unwrap();
    secrets.extend(secret_forms(
        second.token.expose_secret(),
        &second.token.hash(),
    ));
    // The login token is two rotations back: reuse, the session is revoked.
    let reuse = manager.refresh(login.token.expose_secret()).await;
    assert!(matches!(reuse, Err(Error::ReuseDetected)), "{reuse:?}");
    // A made-up secret for the same session is refused, whatever the session's state.
    let text = second.token.expose_secret();
    let (prefix, secret) = text.rsplit_once('.').unwrap();
    let first_char = if secret.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{prefix}.{first_char}{}", &secret[1..]);
    let refused = manager.refresh(&forged).await;
    assert!(
        matches!(
            refused,
            Err(Error::InvalidToken(
                auth_sessions::TokenError::UnknownSecret
            ))
        ),
        "{refused:?}"
    );
    let other = manager.login(user, LoginRequest::new()).await.unwrap();
    secrets.extend(secret_forms(
        other.token.expose_secret(),
        &other.token.hash(),
    ));
    assert!(manager.logout(&other.session.id).await.unwrap());
    assert_eq!(manager.logout_all(user).await.unwrap(), 0);
    secrets.push(KEY_B64.to_owned());
    sessions.shutdown().await;
    secrets
}

fn capture(telemetry: Telemetry, user: &UserId) -> (String, Vec<String>) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(life_cycle(telemetry, user))
    });
    (captured.text(), secrets)
}

/// One test for both captures, run one after the other: scoped subscribers on concurrent
/// test threads race in `tracing-core`'s interest cache and can miss each other's spans.
#[test]
fn trace_output_has_spans_and_no_secret_and_user_ids_can_be_redacted() {
    recorded_in_full();
    redacted();
}

fn recorded_in_full() {
    let user = UserId::new("alice-telemetry@example.com").unwrap();
    let (text, secrets) = capture(Telemetry::new(), &user);
    // The capture works and holds what an operator needs.
    for needle in [
        "operation=\"login\"",
        "operation=\"refresh\"",
        "outcome=\"grace\"",
        "outcome=\"reuse_detected\"",
        "outcome=\"invalid_token\"",
        "operation=\"logout\"",
        "operation=\"rotate\"",
        "store=\"memory\"",
        "session.id=",
        "elapsed_us=",
        "refresh token reuse detected",
        user.as_str(),
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret form `{secret}` appears in the trace output"
        );
    }
}

fn redacted() {
    let user = UserId::new("bob-redacted@example.com").unwrap();
    let (text, secrets) = capture(Telemetry::new().with_redact_user_ids(true), &user);
    assert!(text.contains("user.id=\"redacted\""), "{text}");
    assert!(!text.contains(user.as_str()), "user id in:\n{text}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "`{secret}` in:\n{text}");
    }
}
