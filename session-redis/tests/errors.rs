//! Errors that say what happened, at once: a wrong password and a database the server does not
//! have are refusals (`Backend`, not retryable), a refused port and an unknown host are
//! `Unavailable` with a message that names them, on a standalone server, Sentinel and Cluster.
//! Each is timed; run with `--nocapture` to see the times.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "test helpers fail by panicking and report times"
)]

mod support;

use std::time::{Duration, Instant};

use session_core::time::macros::datetime;
use session_core::{Error, SessionLimit, SessionStore, UserId};
use session_redis::{ClusterConfig, ConnectError, RedisConfig, RedisStore, SentinelConfig};

/// The bound for an error the server (or the OS) answers at once.
const ANSWERED: Duration = Duration::from_millis(1500);

/// A configuration whose timeouts are long enough that a wait for them would show.
fn patient(config: RedisConfig) -> RedisConfig {
    config
        .with_connect_timeout(Duration::from_secs(2))
        .with_response_timeout(Duration::from_secs(2))
}

async fn timed_connect(
    what: &str,
    config: RedisConfig,
) -> (Result<RedisStore, ConnectError>, Duration) {
    let started = Instant::now();
    let result = RedisStore::connect(config).await;
    let took = started.elapsed();
    println!(
        "{what}: {took:?} -> {:?}",
        result.as_ref().err().map(ToString::to_string)
    );
    (result, took)
}

fn message(error: &ConnectError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(" / ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn password_args(password: &str) -> Vec<String> {
    vec!["--requirepass".to_owned(), password.to_owned()]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_an_authentication_error_at_once() {
    let port = support::free_port();
    let mut server = support::Server::start_with(port, password_args("right-password")).await;
    let config = |password: &str| {
        patient(
            RedisConfig::new()
                .with_address("127.0.0.1", port)
                .with_key_prefix(support::fresh_prefix())
                .with_auth(None, Some(password.to_owned())),
        )
    };

    let (result, took) = timed_connect("wrong password at connect", config("wrong")).await;
    let error = result.expect_err("a wrong password must not connect");
    assert!(
        matches!(&error, ConnectError::Store(Error::Backend { .. })),
        "{error:?}"
    );
    assert!(!matches!(&error, ConnectError::Store(e) if e.is_retryable()));
    assert!(took < ANSWERED, "took {took:?}");
    let text = message(&error).to_lowercase();
    assert!(
        text.contains("auth") || text.contains("password"),
        "the error names the authentication: {text}"
    );

    // The right password connects; then the server restarts with another password: operations
    // report the refusal, not a wait for an answer.
    let (store, _) = timed_connect("right password at connect", config("right-password")).await;
    let store = store.unwrap();
    let user = UserId::new("auth").unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let record = support::record(&user, now, hour, hour);
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    server.set_args(password_args("changed-password"));
    server.restart().await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let error = loop {
        let attempt = Instant::now();
        match store.find(&record.id).await {
            Err(Error::Backend { source, .. }) => {
                let took = attempt.elapsed();
                println!(
                    "operation after a password change: {took:?} (first refusal {:?} after the restart) -> {source}",
                    started.elapsed()
                );
                assert!(took < ANSWERED, "took {took:?}");
                break source;
            }
            Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after the password change: {other:?}"),
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = error.to_string().to_lowercase();
    assert!(text.contains("auth") || text.contains("password"), "{text}");
    server.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_the_server_lacks_is_a_refusal_at_once() {
    if support::skip(support::Topo::Standalone) {
        return;
    }
    let config = patient(
        RedisConfig::new()
            .with_address("127.0.0.1", 6379)
            .with_key_prefix(support::fresh_prefix())
            .with_db(999),
    );
    let (result, took) = timed_connect("db 999 on a 16-db server", config).await;
    let error = result.expect_err("db 999 must not connect");
    assert!(
        matches!(&error, ConnectError::Store(Error::Backend { .. })),
        "{error:?}"
    );
    assert!(took < ANSWERED, "took {took:?}");
    let text = message(&error).to_lowercase();
    assert!(text.contains("db") || text.contains("database"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_port_is_unavailable_and_says_so() {
    let port = support::free_port();
    let config = patient(RedisConfig::new().with_address("127.0.0.1", port));
    let (result, took) = timed_connect("refused port", config).await;
    let error = result.expect_err("nothing listens there");
    assert!(
        matches!(&error, ConnectError::Store(Error::Unavailable { .. })),
        "{error:?}"
    );
    assert!(took < ANSWERED, "took {took:?}");
    let text = message(&error).to_lowercase();
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_host_is_unavailable_and_says_so() {
    let config = patient(RedisConfig::new().with_address("nonexistent.invalid", 6379));
    let (result, took) = timed_connect("unknown host", config).await;
    let error = result.expect_err("no such host");
    assert!(
        matches!(&error, ConnectError::Store(Error::Unavailable { .. })),
        "{error:?}"
    );
    assert!(took < ANSWERED, "took {took:?}");
    let text = message(&error);
    assert!(text.contains("nonexistent.invalid"), "{text}");
}

/// Sentinel and Cluster: a wrong password is a refusal, a refused node is `Unavailable` naming
/// it, both at once. (The cluster client reports any seed failure as I/O; the store asks the
/// seeds one by one to tell a refusal from an outage.)
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_and_cluster_failures_say_what_happened() {
    let wrong = |config: RedisConfig| patient(config.with_auth(None, Some("wrong".to_owned())));
    let mut cases = Vec::new();
    if !support::skip(support::Topo::Sentinel) {
        cases.push((
            "Sentinel, wrong password",
            wrong(support::config(support::Topo::Sentinel)),
            true,
            "sessionmaster",
        ));
    }
    if !support::skip(support::Topo::Cluster) {
        cases.push((
            "Cluster, wrong password",
            wrong(support::config(support::Topo::Cluster)),
            true,
            "127.0.0.1:701",
        ));
    }
    let refused = support::free_port();
    cases.push((
        "Sentinel, refused sentinel",
        patient(RedisConfig::new().with_sentinel(SentinelConfig::new(
            "sessionmaster",
            [format!("127.0.0.1:{refused}")],
        ))),
        false,
        "refused",
    ));
    cases.push((
        "Cluster, refused seed",
        patient(
            RedisConfig::new().with_cluster(ClusterConfig::new([format!("127.0.0.1:{refused}")])),
        ),
        false,
        "refused",
    ));
    cases.push((
        "Cluster, unknown host",
        patient(RedisConfig::new().with_cluster(ClusterConfig::new(["nonexistent.invalid:7010"]))),
        false,
        "nonexistent.invalid",
    ));
    for (what, config, refusal, named) in cases {
        let (result, took) = timed_connect(what, config).await;
        let error = result.expect_err(what);
        if refusal {
            assert!(
                matches!(&error, ConnectError::Store(Error::Backend { .. })),
                "{what}: {error:?}"
            );
        } else {
            assert!(
                matches!(&error, ConnectError::Store(Error::Unavailable { .. })),
                "{what}: {error:?}"
            );
        }
        assert!(took < ANSWERED, "{what}: took {took:?}");
        let text = message(&error);
        assert!(text.contains(named), "{what}: {text}");
    }
}
