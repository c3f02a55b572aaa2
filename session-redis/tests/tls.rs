//! TLS with rustls against a `redis-server` listening only on a TLS port, with a throwaway CA
//! and server certificate made by `openssl`.

#![cfg(feature = "tls")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{SessionLimit, SessionStore, UserId};
use session_redis::{RedisConfig, RedisStore};

const PORT: u16 = 6394;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl (install the `openssl` package)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 / localhost, in a fresh directory.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "session-redis-tls-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=session-redis test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
    let dir = certificates();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let _server = support::Server::start_with(
        PORT,
        vec![
            "--tls-port".into(),
            PORT.to_string(),
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
    )
    .await;
    let base = || {
        RedisConfig::new()
            .with_address("127.0.0.1", PORT)
            .with_key_prefix(support::fresh_prefix())
            .with_connect_timeout(Duration::from_secs(2))
    };

    // Verified against the private CA.
    let store = RedisStore::connect(base().with_tls_ca_file(dir.join("ca.pem")))
        .await
        .unwrap();
    let user = UserId::new("tls").unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let record = support::record(&user, now, Duration::from_secs(60), Duration::from_secs(60));
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(store.find(&record.id).await.unwrap(), Some(record));

    // A URL that would turn certificate checks off is refused before anything is contacted.
    let insecure = RedisStore::connect(RedisConfig::from_url(format!(
        "rediss://127.0.0.1:{PORT}/#insecure"
    )))
    .await;
    assert!(
        matches!(insecure, Err(session_redis::ConnectError::Config(_))),
        "{insecure:?}"
    );

    // The system roots do not trust the private CA, and plain TCP is not spoken.
    assert!(RedisStore::connect(base().with_tls()).await.is_err());
    assert!(RedisStore::connect(base()).await.is_err());

    let _ = std::fs::remove_dir_all(&dir);
}
