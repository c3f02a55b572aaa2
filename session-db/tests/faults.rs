//! Faults: an unreachable server is `Unavailable` within bounded time and the store works again
//! once the server is back; connections killed by the server are replaced; a locked SQLite file
//! is `Unavailable` after the busy timeout, never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test helpers: a failed unwrap is a failed test; the revocation counts are printed"
)]

mod support;

use session_conformance::scenarios::record_at;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    Error, LimitMode, LoginRequest, ROTATION_KEY_SECRET, RefreshToken, RotationKey, SessionConfig,
    SessionId, SessionLimit, SessionManager, SessionRecord, SessionStore, UserId,
};
use session_db::DbStore;
use session_db::sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
use support::Backend;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn record(user: &str) -> SessionRecord {
    record_at(&UserId::new(user).unwrap(), NOW)
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(error @ Error::Unavailable { .. }) => {
            assert!(std::error::Error::source(&error).is_some(), "{error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// The manager's deadline in the lost-reply scenarios, and how long the reply is held.
const DEADLINE: Duration = Duration::from_millis(300);
const HELD: Duration = Duration::from_secs(1);

/// A manager over `store` with the default configuration but for `reuse_grace` (the default or
/// zero, the old default) and the deadline.
fn manager(store: &DbStore, grace: Option<Duration>) -> SessionManager {
    let mut config = SessionConfig::default().with_operation_deadline(DEADLINE);
    if let Some(grace) = grace {
        config = config.with_reuse_grace(grace);
    }
    SessionManager::new(Arc::new(store.clone()), config).unwrap()
}

/// The successor a refresh of `token` yields: the token under the key the store keeps.
async fn successor_of(store: &DbStore, token: &str) -> RefreshToken {
    let key = store
        .shared_secret(ROTATION_KEY_SECRET, &[0; 32])
        .await
        .unwrap();
    RefreshToken::parse(token)
        .unwrap()
        .successor(&RotationKey::new(key).unwrap())
}

/// Waits (up to 3 s) until the session's stored token is `next`: the rotation landed.
async fn until_rotated(store: &DbStore, id: &SessionId, next: &RefreshToken) {
    let started = Instant::now();
    loop {
        let record = store.find(id).await.unwrap().unwrap();
        if record.token_hash == next.hash() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the rotation whose reply was lost never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a refresh that answered `Unavailable` although its rotation landed: the client's retry
/// with the same token. With the grace window it gets the successor (the very token a
/// successful refresh would have given) and the next refresh works; without one it is reuse.
/// Returns whether the session ended up revoked.
async fn retry_after_lost_reply(
    manager: &SessionManager,
    check: &DbStore,
    token: &str,
    id: &SessionId,
    next: &RefreshToken,
    grace: Option<Duration>,
) -> bool {
    let retry = manager.refresh(token).await;
    if grace.is_none() {
        let retry = retry.unwrap();
        assert_eq!(retry.token.expose_secret(), next.expose_secret());
        let after = manager.refresh(retry.token.expose_secret()).await.unwrap();
        assert_eq!(after.session.generation, retry.session.generation + 1);
    } else {
        assert!(
            matches!(retry, Err(Error::ReuseDetected)),
            "without a grace window the retry is reuse: {retry:?}"
        );
    }
    check.find(id).await.unwrap().unwrap().revoked.is_some()
}

/// Eight refreshes of one token at once (a multi-threaded runtime). With the default
/// configuration all succeed with one and the same token and the session stays live. Returns
/// how many succeeded and whether the session was revoked.
async fn parallel_refreshes(store: &DbStore, grace: Option<Duration>) -> (usize, bool) {
    let mut config = SessionConfig::default();
    if let Some(grace) = grace {
        config = config.with_reuse_grace(grace);
    }
    let manager = SessionManager::new(Arc::new(store.clone()), config).unwrap();
    manager.load_rotation_key().await.unwrap();
    let login = manager
        .login(&UserId::new("tabs").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let token = login.token.expose_secret().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let manager = manager.clone();
        let token = token.clone();
        tasks.spawn(async move { manager.refresh(&token).await });
    }
    let mut tokens = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(refreshed) = joined.unwrap() {
            tokens.push(refreshed.token.expose_secret().to_owned());
        }
    }
    let revoked = store
        .find(&login.session.id)
        .await
        .unwrap()
        .unwrap()
        .revoked
        .is_some();
    if grace.is_none() {
        assert_eq!(tokens.len(), 8, "every refresh succeeds");
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
        assert!(!revoked);
        manager.validate(&login.session.id).await.unwrap();
        manager.refresh(&tokens[0]).await.unwrap();
    }
    (tokens.len(), revoked)
}

/// Runs the double-refresh scenario `rounds` times without and with the grace window and prints
/// the sessions revoked.
async fn report_parallel_refreshes(backend: Backend, store: &DbStore) {
    let rounds = 3;
    let mut before = (0, 0);
    let mut after = (0, 0);
    for _ in 0..rounds {
        let (ok, revoked) = parallel_refreshes(store, Some(Duration::ZERO)).await;
        before.0 += ok;
        before.1 += usize::from(revoked);
        let (ok, revoked) = parallel_refreshes(store, None).await;
        after.0 += ok;
        after.1 += usize::from(revoked);
    }
    println!(
        "{backend:?} 8 parallel refreshes x {rounds}: reuse_grace=0: {}/{} refreshes ok, {}/{rounds} \
         sessions revoked; default (30 s): {}/{} ok, {}/{rounds} revoked",
        before.0,
        8 * rounds,
        before.1,
        after.0,
        8 * rounds,
        after.1
    );
    assert_eq!(after, (8 * rounds, 0));
}

/// Helpers and scenarios that need a server.
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod servers {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use session_db::ConnectError;
    use session_db::sea_orm::{ConnectionTrait, Statement};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A loopback port nobody listens on (bound, then released).
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// `url` with its `host:port` replaced by `127.0.0.1:<port>`; also returns the original
    /// `host:port`.
    fn via_port(url: &str, port: u16) -> (String, String) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (format!("{userinfo}@"), hostport),
            None => (String::new(), authority),
        };
        (
            format!("{scheme}://{userinfo}127.0.0.1:{port}{path}"),
            hostport.to_owned(),
        )
    }

    /// Copies `from` to `to` chunk by chunk, awaiting `gate` before writing each chunk.
    async fn relay<G, F>(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        gate: G,
    ) where
        G: Fn() -> F,
        F: std::future::Future<Output = ()>,
    {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            gate().await;
            let Some(bytes) = buf.get(..n) else {
                return;
            };
            if to.write_all(bytes).await.is_err() {
                return;
            }
        }
    }

    /// Forwards connections to `port` on to `target`; `up` gates each chunk of the client's
    /// requests, `down` each chunk of the server's replies.
    async fn forward_gated<U, UF, D, DF>(
        port: u16,
        target: String,
        up: U,
        down: D,
    ) -> tokio::task::JoinHandle<()>
    where
        U: Fn() -> UF + Clone + Send + Sync + 'static,
        UF: std::future::Future<Output = ()> + Send + 'static,
        D: Fn() -> DF + Clone + Send + Sync + 'static,
        DF: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(relay(in_read, out_write, up.clone()));
                tokio::spawn(relay(out_read, in_write, down.clone()));
            }
        })
    }

    /// Forwards connections to `port` on to `target`; while `frozen` is set the server seems
    /// to stop answering (connections stay open, nothing comes back).
    async fn forward_freezable(
        port: u16,
        target: String,
        frozen: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let gate = move || {
            let frozen = Arc::clone(&frozen);
            async move {
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        forward_gated(port, target, gate.clone(), gate).await
    }

    /// A server that accepted the connection and then stops answering: every operation fails
    /// with `Unavailable` within the operation timeout; once it answers again, so does the
    /// store.
    pub(crate) async fn stalled_server_is_bounded(backend: Backend) {
        if support::skip(backend) {
            return;
        }
        let port = closed_port().await;
        let (url, target) = via_port(&backend.url(), port);
        let frozen = Arc::new(AtomicBool::new(false));
        let proxy = forward_freezable(port, target, Arc::clone(&frozen)).await;
        let store = support::connect(
            backend,
            support::config(backend)
                .with_url(url.as_str())
                .with_operation_timeout(Some(Duration::from_millis(800))),
        )
        .await;
        let r = record("stalled");
        store
            .create(r.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();

        frozen.store(true, Ordering::SeqCst);
        let started = Instant::now();
        assert_unavailable(store.find(&r.id).await);
        let cap = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::EvictOldest);
        assert_unavailable(store.create(record("stalled"), cap).await);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );

        frozen.store(false, Ordering::SeqCst);
        // Calls cut off mid-way may have left their connections unusable; the pool replaces
        // them, so within a few calls the store answers again.
        let mut found = None;
        for _ in 0..10 {
            if let Ok(record) = store.find(&r.id).await {
                found = record;
                break;
            }
        }
        assert_eq!(found, Some(r));
        proxy.abort();
    }

    /// What the delaying proxy holds back. Once armed, the client's next `pass` requests are
    /// answered at once (a MySQL rotation's read and the ping that follows it); from the request after them on, the server's
    /// replies are held `delay_ms` milliseconds each.
    #[derive(Default)]
    struct Hold {
        armed: AtomicBool,
        pass: AtomicU64,
        holding: AtomicBool,
        delay_ms: AtomicU64,
    }

    /// Forwards connections to `port` on to `target`; the server's replies are held as `hold`
    /// says (the statements themselves go through at once, counted for `hold`).
    async fn forward_delaying(
        port: u16,
        target: String,
        hold: Arc<Hold>,
    ) -> tokio::task::JoinHandle<()> {
        let requests = {
            let hold = Arc::clone(&hold);
            move || {
                if hold.armed.load(Ordering::SeqCst)
                    && hold
                        .pass
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_err()
                {
                    hold.holding.store(true, Ordering::SeqCst);
                }
                std::future::ready(())
            }
        };
        let replies = move || {
            let hold = Arc::clone(&hold);
            async move {
                if hold.holding.load(Ordering::SeqCst) {
                    let delay = hold.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
        };
        forward_gated(port, target, requests, replies).await
    }

    /// The store applies a rotation but its reply comes after the manager's deadline: the call
    /// answers `Unavailable`, and the retry with the same token gets the successor. Returns
    /// whether the session ended up revoked.
    ///
    /// The store has one connection, on which a first refresh prepares the statements: a
    /// statement not yet prepared waits for the server's answer to `PREPARE` before it is sent,
    /// and would be held back with it.
    pub(crate) async fn lost_reply(backend: Backend, grace: Option<Duration>) -> bool {
        let port = closed_port().await;
        let (url, target) = via_port(&backend.url(), port);
        let hold = Arc::new(Hold::default());
        let proxy = forward_delaying(port, target, Arc::clone(&hold)).await;
        let store = support::connect(
            backend,
            support::config(backend)
                .with_url(url.as_str())
                .with_max_connections(1),
        )
        .await;
        let check = support::connect(
            backend,
            support::config(backend).with_table(store.table().as_str()),
        )
        .await;
        let manager = manager(&store, grace);
        manager.load_rotation_key().await.unwrap();
        let login = manager
            .login(&UserId::new("unlucky").unwrap(), LoginRequest::new())
            .await
            .unwrap();
        let warm = manager.refresh(login.token.expose_secret()).await.unwrap();
        let token = warm.token.expose_secret();
        let next = successor_of(&check, token).await;

        // MySQL's rotation reads the record first, and the pool pings the connection when the
        // read gives it back (sqlx does on every release): those replies go through, the
        // swap's is held.
        let pass = if backend == Backend::MySql { 2 } else { 0 };
        hold.pass.store(pass, Ordering::SeqCst);
        hold.delay_ms
            .store(u64::try_from(HELD.as_millis()).unwrap(), Ordering::SeqCst);
        hold.armed.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let lost = manager.refresh(token).await;
        assert!(
            matches!(lost, Err(Error::Unavailable { .. })),
            "the reply came too late: {lost:?}"
        );
        assert!(started.elapsed() < HELD, "{:?}", started.elapsed());
        until_rotated(&check, &login.session.id, &next).await;
        hold.armed.store(false, Ordering::SeqCst);
        hold.holding.store(false, Ordering::SeqCst);
        // The held reply reaches the abandoned connection, which the pool can use again.
        tokio::time::sleep(HELD).await;

        let revoked =
            retry_after_lost_reply(&manager, &check, token, &login.session.id, &next, grace).await;
        proxy.abort();
        revoked
    }

    /// Lost reply and parallel refreshes on a server, before (grace 0) and after (default);
    /// prints the sessions revoked.
    pub(crate) async fn lost_replies_and_parallel_refreshes(backend: Backend) {
        let Some(store) = support::store(backend).await else {
            return;
        };
        let before = lost_reply(backend, Some(Duration::ZERO)).await;
        let after = lost_reply(backend, None).await;
        println!(
            "{backend:?} lost reply then retry: reuse_grace=0: {}/1 sessions revoked; \
             default (30 s): {}/1 revoked",
            usize::from(before),
            usize::from(after)
        );
        assert!(!after);
        report_parallel_refreshes(backend, &store).await;
    }

    /// Forwards every connection to `port` on to `target` until aborted.
    async fn forward(port: u16, target: String) -> tokio::task::JoinHandle<()> {
        let open = || std::future::ready(());
        forward_gated(port, target, open, open).await
    }

    pub(crate) async fn unreachable_then_back(backend: Backend) {
        if support::skip(backend) {
            return;
        }
        let port = closed_port().await;
        let (url, target) = via_port(&backend.url(), port);

        // Eager connect: a distinct, retryable error within the connect timeout.
        let started = Instant::now();
        let error = DbStore::connect_with(
            support::config(backend)
                .with_url(url.as_str())
                .with_connect_timeout(Duration::from_secs(1))
                .with_acquire_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, ConnectError::Store(Error::Unavailable { .. })),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // Lazy connect: operations fail the same way, in bounded time.
        let store = DbStore::connect_with(
            support::config(backend)
                .with_url(url.as_str())
                .with_acquire_timeout(Duration::from_secs(1))
                .with_lazy(true),
        )
        .await
        .unwrap();
        let r = record("faulty");
        let started = Instant::now();
        assert_unavailable(store.find(&r.id).await);
        assert_unavailable(store.create(r.clone(), SessionLimit::UNLIMITED).await);
        assert!(started.elapsed() < Duration::from_secs(5));

        // The server comes back on that port: the same store works, with nothing else done.
        let proxy = forward(port, target).await;
        store.migrate().await.unwrap();
        let cap = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::EvictOldest);
        store.create(r.clone(), cap).await.unwrap();
        assert_eq!(store.find(&r.id).await.unwrap(), Some(r));
        proxy.abort();
    }

    /// Kills the store's only connection from the server side. With `test_idle_after` of zero
    /// the pool pings it before the next call and replaces it, so that call succeeds; with the
    /// default (the connection was idle briefly) the next call may fail with `Unavailable`,
    /// never anything else, and the one after succeeds on a new connection.
    pub(crate) async fn killed_connection_is_replaced(
        backend: Backend,
        whoami: &str,
        kill: &str,
        test_idle_after: Option<Duration>,
    ) {
        let Some(store) = support::store(backend).await else {
            return;
        };
        let store = store.clone();
        let single = support::connect(
            backend,
            support::config(backend)
                .with_table(store.table().as_str())
                .with_max_connections(1)
                .with_test_idle_after(test_idle_after),
        )
        .await;
        let r = record("killed");
        single
            .create(r.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
        let id = connection_id(&single, whoami).await;
        let killer = store.connection();
        killer
            .execute_unprepared(&kill.replace("{id}", &id.to_string()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        match single.find(&r.id).await {
            Ok(found) => assert_eq!(found, Some(r.clone())),
            Err(error) => {
                assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
                assert!(
                    test_idle_after != Some(Duration::ZERO),
                    "the pinged connection was handed out dead: {error}"
                );
            }
        }
        assert_eq!(single.find(&r.id).await.unwrap(), Some(r));
        assert_ne!(
            connection_id(&single, whoami).await,
            id,
            "the killed connection was not replaced"
        );
    }

    /// The server's id of the connection `store`'s one-connection pool hands out.
    async fn connection_id(store: &DbStore, whoami: &str) -> i64 {
        let db = store.connection();
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), whoami))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0)
            .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
            .or_else(|_| {
                row.try_get_by_index::<u64>(0)
                    .map(|v| i64::try_from(v).unwrap())
            })
            .unwrap()
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::servers::{
        killed_connection_is_replaced, stalled_server_is_bounded, unreachable_then_back,
    };
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn unreachable_server_then_back() {
        unreachable_then_back(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stalled_server_then_back() {
        stalled_server_is_bounded(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lost_reply_and_parallel_refreshes_keep_the_session() {
        super::servers::lost_replies_and_parallel_refreshes(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn terminated_backend_is_replaced() {
        for test_idle_after in [Some(Duration::ZERO), None] {
            killed_connection_is_replaced(
                Backend::Postgres,
                "SELECT pg_backend_pid()",
                "SELECT pg_terminate_backend({id})",
                test_idle_after,
            )
            .await;
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::servers::{stalled_server_is_bounded, unreachable_then_back};
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn unreachable_server_then_back() {
        unreachable_then_back(Backend::MySql).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stalled_server_then_back() {
        stalled_server_is_bounded(Backend::MySql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lost_reply_and_parallel_refreshes_keep_the_session() {
        super::servers::lost_replies_and_parallel_refreshes(Backend::MySql).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn killed_connection_is_replaced() {
        for test_idle_after in [Some(Duration::ZERO), None] {
            super::servers::killed_connection_is_replaced(
                Backend::MySql,
                "SELECT CONNECTION_ID()",
                "KILL {id}",
                test_idle_after,
            )
            .await;
        }
    }
}

/// Another process holds the SQLite write lock: writes wait for the busy timeout, then fail
/// with `Unavailable`; reads still work (WAL); once the lock is released, writes work again.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_busy_file_is_unavailable_then_recovers() {
    let config =
        support::config(Backend::SqliteFile).with_sqlite_busy_timeout(Duration::from_millis(200));
    let url = config.url.clone().unwrap();
    let store = support::connect(Backend::SqliteFile, config).await;
    let existing = record("reader");
    store
        .create(existing.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();

    let other = DbStore::connect(&url).await.unwrap();
    let db = other.connection();
    let tx = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
        .unwrap();

    let cap = SessionLimit::new(NonZeroU32::new(5).unwrap(), LimitMode::EvictOldest);
    let started = Instant::now();
    assert_unavailable(store.create(record("writer"), cap).await);
    assert_unavailable(
        store
            .create(record("writer"), SessionLimit::UNLIMITED)
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        store.find(&existing.id).await.unwrap(),
        Some(existing.clone())
    );

    tx.rollback().await.unwrap();
    let r = record("writer");
    store.create(r.clone(), cap).await.unwrap();
    assert_eq!(store.find(&r.id).await.unwrap(), Some(r));
}

/// SQLite: another connection holds the write lock past the manager's deadline, so the refresh
/// answers `Unavailable`; then it lets go and the rotation, still waiting inside the driver,
/// lands. The retry with the same token gets the successor. Returns whether the session ended
/// up revoked.
async fn sqlite_lost_reply(grace: Option<Duration>) -> bool {
    let config =
        support::config(Backend::SqliteFile).with_sqlite_busy_timeout(Duration::from_secs(5));
    let url = config.url.clone().unwrap();
    let store = support::connect(Backend::SqliteFile, config).await;
    let manager = manager(&store, grace);
    manager.load_rotation_key().await.unwrap();
    let login = manager
        .login(&UserId::new("unlucky").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let token = login.token.expose_secret();
    let next = successor_of(&store, token).await;

    let other = DbStore::connect(&url).await.unwrap();
    let db = other.connection();
    let tx = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let lost = manager.refresh(token).await;
    assert!(
        matches!(lost, Err(Error::Unavailable { .. })),
        "the write lock should have outlasted the deadline: {lost:?}"
    );
    assert!(started.elapsed() < HELD, "{:?}", started.elapsed());
    tx.rollback().await.unwrap();
    until_rotated(&store, &login.session.id, &next).await;

    retry_after_lost_reply(&manager, &store, token, &login.session.id, &next, grace).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_lost_reply_and_parallel_refreshes_keep_the_session() {
    let before = sqlite_lost_reply(Some(Duration::ZERO)).await;
    let after = sqlite_lost_reply(None).await;
    println!(
        "SqliteFile lost reply then retry: reuse_grace=0: {}/1 sessions revoked; default \
         (30 s): {}/1 revoked",
        usize::from(before),
        usize::from(after)
    );
    assert!(!after);
    for backend in [Backend::SqliteFile, Backend::SqliteMemory] {
        let store = support::store(backend).await.unwrap();
        report_parallel_refreshes(backend, &store).await;
    }
}
