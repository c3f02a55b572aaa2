//! Lost replies and parallel refreshes never log anyone out.
//!
//! - A rotation lands on the server but its reply reaches the manager after the manager's
//!   `operation_deadline` (a TCP proxy forwards the request at once and holds the server's
//!   reply): the refresh answers `Unavailable`; the client's retry with the same token gets the
//!   successor the lost rotation stored, and the session stays live.
//! - Eight parallel refreshes of one token all succeed with one token.
//!
//! Both run with the default grace window and, for comparison, with `reuse_grace = 0` (the old
//! default), counting the sessions revoked; `--nocapture` prints the counts.
//! `SESSION_TEST_ROUNDS` (default 1 for the lost reply, 5 for the parallel refreshes) repeats
//! them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking and report counts"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use session_core::{
    DeadlineExceeded, Error, LoginRequest, SessionConfig, SessionManager, SessionStore, UserId,
};
use session_redis::RedisStore;
use support::Topo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_millis(300);
const HOLD: Duration = Duration::from_secs(1);

/// A TCP proxy to a Redis server that, once armed, holds back the reply to the next `FCALL` or
/// `EVALSHA` (and whatever the server sends with it) for [`HOLD`]; requests always pass at once.
struct ReplyHolder {
    port: u16,
    armed: Arc<AtomicBool>,
}

impl ReplyHolder {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&armed);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
                let armed = Arc::clone(&shared);
                tokio::spawn(relay(client, server, armed));
            }
        });
        Self { port, armed }
    }

    /// Holds the reply to the next `FCALL` or `EVALSHA` sent through the proxy.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

async fn relay(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let hold_next = Arc::new(AtomicBool::new(false));
    let hold_set = Arc::clone(&hold_next);
    let requests = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if (chunk.windows(7).any(|w| w.eq_ignore_ascii_case(b"EVALSHA"))
                || chunk.windows(5).any(|w| w.eq_ignore_ascii_case(b"FCALL")))
                && armed.swap(false, Ordering::SeqCst)
            {
                hold_set.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    let mut held_until: Option<tokio::time::Instant> = None;
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hold_next.swap(false, Ordering::SeqCst) {
            held_until = Some(tokio::time::Instant::now() + HOLD);
        }
        if let Some(until) = held_until {
            tokio::time::sleep_until(until).await;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
}

fn rounds(default: u32) -> u32 {
    std::env::var("SESSION_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn is_deadline(error: &Error) -> bool {
    matches!(error, Error::Unavailable { source, .. } if source.downcast_ref::<DeadlineExceeded>().is_some())
}

/// Runs the lost-reply scenario `rounds` times with `config`; returns how many sessions ended
/// revoked.
async fn lost_reply(
    proxy: &ReplyHolder,
    store: &RedisStore,
    config: SessionConfig,
    rounds: u32,
) -> u32 {
    let manager = SessionManager::new(Arc::new(store.clone()), config).unwrap();
    manager.load_rotation_key().await.unwrap();
    let user = UserId::new("lost-reply").unwrap();
    let mut revoked = 0;
    for _ in 0..rounds {
        let login = manager.login(&user, LoginRequest::new()).await.unwrap();
        let id = login.session.id;
        proxy.arm();
        let lost = manager.refresh(login.token.expose_secret()).await;
        let error = lost.expect_err("the reply was held past the deadline");
        assert!(is_deadline(&error), "{error:?}");
        // The rotation landed although its reply was lost.
        let landed = store.find(&id).await.unwrap().unwrap();
        assert_eq!(landed.generation, 1, "the rotation was applied");
        // Wait until the held reply has passed, then retry with the same token.
        tokio::time::sleep(HOLD + Duration::from_millis(100)).await;
        match manager.refresh(login.token.expose_secret()).await {
            Ok(retried) => {
                let stored = store.find(&id).await.unwrap().unwrap();
                assert_eq!(stored.generation, 1, "the retry did not rotate again");
                assert_eq!(
                    stored.token_hash,
                    retried.token.hash(),
                    "the retry got the successor the lost rotation stored"
                );
                assert!(stored.revoked.is_none());
                // The successor works.
                manager
                    .refresh(retried.token.expose_secret())
                    .await
                    .unwrap();
            }
            Err(Error::ReuseDetected) => {}
            Err(other) => panic!("the retry: {other:?}"),
        }
        if store.find(&id).await.unwrap().unwrap().revoked.is_some() {
            revoked += 1;
        }
    }
    revoked
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_rotation_reply_logs_nobody_out() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let proxy = ReplyHolder::start(6379).await;
    let config = support::config(Topo::Standalone).with_address("127.0.0.1", proxy.port);
    let store = support::connect(Topo::Standalone, config).await;
    let rounds = rounds(1);

    let after = lost_reply(
        &proxy,
        &store,
        SessionConfig::default().with_operation_deadline(DEADLINE),
        rounds,
    )
    .await;
    let before = lost_reply(
        &proxy,
        &store,
        SessionConfig::default()
            .with_operation_deadline(DEADLINE)
            .with_reuse_grace(Duration::ZERO),
        rounds,
    )
    .await;
    println!(
        "lost reply, {rounds} round(s): sessions revoked with reuse_grace = 0: {before}; with the default grace: {after}"
    );
    assert_eq!(after, 0, "no session is revoked by a lost reply");
}

/// Eight parallel refreshes of one token; returns (successes, distinct tokens, revoked).
async fn parallel(manager: &SessionManager, store: &RedisStore) -> (usize, usize, bool) {
    let user = UserId::new("parallel").unwrap();
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let manager = manager.clone();
        let token = login.token.expose_secret().to_owned();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            manager.refresh(&token).await
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(refreshed) => tokens.push(refreshed.token.expose_secret().to_owned()),
            Err(Error::ReuseDetected | Error::Revoked { .. }) => {}
            Err(other) => panic!("a parallel refresh: {other:?}"),
        }
    }
    let successes = tokens.len();
    tokens.sort_unstable();
    tokens.dedup();
    let record = store.find(&login.session.id).await.unwrap().unwrap();
    (successes, tokens.len(), record.revoked.is_some())
}

async fn parallel_refreshes(topo: Topo) {
    if support::skip(topo) {
        return;
    }
    let store = support::connect(topo, support::config(topo)).await;
    let rounds = rounds(5);
    let after = SessionManager::new(Arc::new(store.clone()), SessionConfig::default()).unwrap();
    let before = SessionManager::new(
        Arc::new(store.clone()),
        SessionConfig::default().with_reuse_grace(Duration::ZERO),
    )
    .unwrap();
    let (mut revoked_before, mut revoked_after) = (0, 0);
    for _ in 0..rounds {
        let (successes, distinct, revoked) = parallel(&after, &store).await;
        assert_eq!(successes, 8, "{topo:?}: every parallel refresh succeeds");
        assert_eq!(distinct, 1, "{topo:?}: with one token");
        assert!(!revoked, "{topo:?}: the session stays live");
        revoked_after += u32::from(revoked);
        let (_, _, revoked) = parallel(&before, &store).await;
        revoked_before += u32::from(revoked);
    }
    println!(
        "{topo:?}: 8 parallel refreshes, {rounds} round(s): sessions revoked with reuse_grace = 0: {revoked_before}; with the default grace: {revoked_after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_of_one_token_agree_standalone() {
    parallel_refreshes(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_of_one_token_agree_cluster() {
    parallel_refreshes(Topo::Cluster).await;
}
