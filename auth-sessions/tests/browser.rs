//! The devices example in a real headless Chromium, driven over WebDriver: two sign-ins, the page
//! lists two sessions, revoking one makes that browser's next request fail.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them when missing). `SESSION_TEST_SKIP=browser` opts out, loudly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "../examples/devices/app.rs"]
mod app;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use auth_sessions::web::{SessionAuth, WebConfig};
use auth_sessions::{Sessions, SessionsConfig};
use fantoccini::{Client, ClientBuilder, Locator};

fn skipped() -> bool {
    let skip = std::env::var("SESSION_TEST_SKIP")
        .is_ok_and(|list| list.split(',').any(|name| name.trim() == "browser"));
    if skip {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: browser test, because SESSION_TEST_SKIP contains `browser`"
        );
    }
    skip
}

fn find_binary(names: &[&str]) -> String {
    for name in names {
        if let Ok(output) = std::process::Command::new("which").arg(name).output()
            && output.status.success()
        {
            return String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
    }
    panic!(
        "none of {names:?} is installed: run `apt-get install chromium chromium-driver` \
         (or set SESSION_TEST_SKIP=browser to opt out)"
    );
}

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn driver() -> Driver {
    let binary = find_binary(&["chromedriver"]);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A fresh headless browser profile (its own cookie jar).
async fn browser(driver: &Driver) -> Client {
    let chromium = find_binary(&["chromium", "chromium-browser", "google-chrome"]);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

async fn sign_in(client: &Client, base: &str, user: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("#user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("demo")
        .await
        .unwrap();
    client
        .find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(client, "/devices").await;
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

/// Waits until the browser shows `expected` (a click returns before the navigation it starts
/// ends), and fails after 10 s.
async fn wait_for(client: &Client, expected: &str) {
    let started = Instant::now();
    loop {
        let now = path(client).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the browser stays on {now}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn rows(client: &Client) -> usize {
    client
        .find_all(Locator::Css("tr.session"))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_page_lists_and_revokes_sessions_in_a_real_browser() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("devices.db").display()
    );
    let config: SessionsConfig = toml::from_str(&format!(
        "[storage]\ntype = \"database\"\nurl = \"{url}\"\n"
    ))
    .unwrap();
    let sessions = Sessions::start(config).await.unwrap();
    let auth = SessionAuth::new(sessions.manager().clone(), WebConfig::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = app::app(&auth).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    // `localhost` is a secure context for browsers: `Secure` and `__Host-` cookies work over HTTP.
    let base = format!("http://localhost:{port}");

    let driver = driver().await;
    let laptop = browser(&driver).await;
    let phone = browser(&driver).await;

    sign_in(&laptop, &base, "alice").await;
    assert_eq!(rows(&laptop).await, 1);
    sign_in(&phone, &base, "alice").await;
    assert_eq!(rows(&phone).await, 2);
    laptop.refresh().await.unwrap();
    assert_eq!(
        rows(&laptop).await,
        2,
        "the laptop sees the phone's session"
    );

    // The laptop revokes the phone's session: the only row with a button.
    laptop
        .find(Locator::Css("tr.session form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&laptop, "/devices").await;
    let started = Instant::now();
    while rows(&laptop).await != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revoked session stays listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Ok(shot) = laptop.screenshot().await {
        let _ = std::fs::write(std::env::temp_dir().join("devices-page.png"), shot);
    }

    // The phone's next request fails: it is sent to sign in again.
    phone.refresh().await.unwrap();
    assert_eq!(
        path(&phone).await,
        "/login",
        "the revoked session is refused"
    );
    assert_eq!(rows(&laptop).await, 1);

    // Logging out sends the laptop to the sign-in page, and the devices page stays closed.
    laptop
        .find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&laptop, "/login").await;
    laptop.goto(&format!("{base}/devices")).await.unwrap();
    wait_for(&laptop, "/login").await;

    laptop.close().await.unwrap();
    phone.close().await.unwrap();
    server.abort();
    sessions.shutdown().await;
}
