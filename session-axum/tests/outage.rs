//! A store that stalls or stops answers 503 with `Retry-After`, keeps the user's cookies, and
//! works again when it comes back: an outage never signs anyone out. Against a real
//! `redis-server` of the test's own on a spare loopback port, frozen with `SIGSTOP`, thawed with
//! `SIGCONT`, then killed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_axum::WebConfig;
use session_core::{SessionConfig, SessionStore};
use session_redis::{RedisConfig, RedisStore};
use support::{Browser, code, set_cookies, start};

/// A `redis-server` without persistence on a spare port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server (apt-get install redis-server): {e}")
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_outage(status_and_code: (u16, String)) {
    assert_eq!(status_and_code, (503, "store_unavailable".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_503_and_signs_no_one_out() {
    let mut server = Server::start();
    let store = RedisStore::connect(
        RedisConfig::from_url(format!("redis://127.0.0.1:{}", server.port))
            .with_key_prefix("outage:")
            .with_response_timeout(Duration::from_millis(300))
            .with_connect_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let app = start(
        store,
        SessionConfig::default().with_operation_deadline(Duration::from_millis(800)),
        WebConfig::default(),
    )
    .await;
    let browser = Browser::new(&app);
    assert_eq!(browser.login("olga").await.status(), 200);
    let refresh_cookie = browser.cookie("__Secure-refresh").unwrap();

    // Frozen: every request answers 503 within the deadline, and no cookie is touched.
    assert!(server.signal("-STOP"), "cannot freeze redis-server");
    let started = Instant::now();
    let me = browser.get("/me").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the deadline"
    );
    assert_eq!(me.headers()["retry-after"], "2");
    assert!(set_cookies(&me).is_empty());
    assert_outage(code(me).await);
    let refresh = browser.post("/auth/refresh").await;
    assert!(
        set_cookies(&refresh).is_empty(),
        "an outage clears no cookie"
    );
    assert_outage(code(refresh).await);
    assert_outage(code(browser.get("/auth/sessions").await).await);
    assert_eq!(browser.cookie("__Secure-refresh").unwrap(), refresh_cookie);

    // Thawed: the same browser carries on, signed in. A rotation that landed while its reply
    // was lost is recovered by the grace window.
    assert!(server.signal("-CONT"), "cannot thaw redis-server");
    let started = Instant::now();
    loop {
        let response = browser.get("/me").await;
        if response.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.post("/auth/refresh").await.status(), 200);
    assert_eq!(browser.get("/me").await.status(), 200);

    // Stopped for good: still a 503, never a 401.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_outage(code(browser.get("/me").await).await);
    let refresh = browser.post("/auth/refresh").await;
    assert!(set_cookies(&refresh).is_empty());
    assert_outage(code(refresh).await);
}
