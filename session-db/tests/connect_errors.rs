//! The first connection's errors say what went wrong, and come fast when the server (or the
//! resolver) answers at once: a refused port, an unknown host, a database that does not exist,
//! a user or password the server refuses. Each case prints how long it took (`--nocapture`).

#![cfg(any(feature = "postgres", feature = "mysql"))]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test helpers: a failed unwrap is a failed test; the timings are printed"
)]

mod support;

use std::time::{Duration, Instant};

use session_core::Error;
use session_db::{ConnectError, DbStore};
use support::Backend;

/// Generous: every case answers in milliseconds on loopback, the connect timeout is 5 s.
const FAST: Duration = Duration::from_secs(3);

/// `url` with its authority (`user:pass@host:port`) replaced.
fn with_authority(url: &str, authority: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    format!("{scheme}://{authority}{path}")
}

/// `url` with its database (path) replaced.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{database}")
}

/// Connects to `url` and returns the error, its class (`true` when retryable) and the time.
async fn failure(backend: Backend, case: &str, url: String) -> (String, bool) {
    let started = Instant::now();
    let result = DbStore::connect_with(
        support::config(backend)
            .with_url(url)
            .with_connect_timeout(Duration::from_secs(5)),
    )
    .await;
    let took = started.elapsed();
    let Err(ConnectError::Store(error)) = result else {
        panic!("{backend:?} {case}: expected a store error, got {result:?}");
    };
    println!("{backend:?} {case}: {took:?}: {error}");
    assert!(took < FAST, "{backend:?} {case} took {took:?}");
    assert!(
        std::error::Error::source(&error).is_some(),
        "the cause is kept as the source"
    );
    let retryable = matches!(error, Error::Unavailable { .. });
    (error.to_string(), retryable)
}

async fn connect_errors_say_what_happened(backend: Backend, wrong_login: &str) {
    if support::skip(backend) {
        return;
    }
    let url = backend.url();
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let (message, retryable) = failure(
        backend,
        "refused port",
        with_authority(&url, &format!("root@127.0.0.1:{port}")),
    )
    .await;
    assert!(message.contains("connection refused"), "{message}");
    assert!(retryable);
    // An IPv6 literal is an address, not a name to resolve.
    let (message, retryable) = failure(
        backend,
        "refused port (IPv6 literal)",
        with_authority(&url, &format!("root@[::1]:{port}")),
    )
    .await;
    assert!(message.contains("connection refused"), "{message}");
    assert!(retryable);

    let (message, retryable) = failure(
        backend,
        "unknown host",
        with_authority(&url, "root@nonexistent.invalid:5432"),
    )
    .await;
    assert!(
        message.contains("unknown host `nonexistent.invalid`"),
        "{message}"
    );
    assert!(retryable, "a name may resolve later");

    let (message, retryable) = failure(
        backend,
        "missing database",
        with_database(&url, "sdbt_no_such_database"),
    )
    .await;
    assert!(
        message.contains("database `sdbt_no_such_database` does not exist"),
        "{message}"
    );
    assert!(!retryable);

    let authority = url.split_once("://").unwrap().1.split('/').next().unwrap();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (message, retryable) = failure(
        backend,
        "wrong user or password",
        with_authority(&url, &format!("{wrong_login}@{hostport}")),
    )
    .await;
    assert!(message.contains("access denied for user"), "{message}");
    assert!(!retryable);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_connect_errors() {
    // The test server trusts loopback connections, so a wrong password passes; an unknown role
    // is refused.
    connect_errors_say_what_happened(Backend::Postgres, "sdbt_no_such_role:pw").await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_connect_errors() {
    connect_errors_say_what_happened(Backend::MySql, "root:certainly-wrong").await;
}
