//! Every route and every rejection, over real HTTP on loopback, against the memory store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum_extra::extract::cookie::SameSite;
use session_axum::{AccessCheck, Transport, WebConfig};
use session_core::{LimitMode, SessionConfig, SessionStore};
use session_memory::MemoryStore;
use support::{App, Browser, code, set_cookies, start};

fn store() -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new())
}

async fn browser_app() -> App {
    start(store(), SessionConfig::default(), WebConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_two_locked_down_cookies_and_no_token_in_the_body() {
    let app = browser_app().await;
    let browser = Browser::new(&app);
    let response = browser.login("alice").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&response);
    let access = cookies
        .iter()
        .find(|c| c.name() == "__Host-access")
        .unwrap();
    assert_eq!(access.http_only(), Some(true));
    assert_eq!(access.secure(), Some(true));
    assert_eq!(access.same_site(), Some(SameSite::Lax));
    assert_eq!(access.path(), Some("/"));
    assert_eq!(access.domain(), None);
    assert_eq!(access.max_age(), Some(time::Duration::minutes(10)));
    let refresh = cookies
        .iter()
        .find(|c| c.name() == "__Secure-refresh")
        .unwrap();
    assert_eq!(refresh.http_only(), Some(true));
    assert_eq!(refresh.secure(), Some(true));
    assert_eq!(refresh.same_site(), Some(SameSite::Strict));
    assert_eq!(refresh.path(), Some("/auth"));
    assert!(refresh.value().starts_with("v1."));
    let body: serde_json::Value = response.json().await.unwrap();
    let text = body.to_string();
    assert!(!text.contains(refresh.value()) && !text.contains(access.value()));
    assert!(!text.contains("hash"), "{text}");
    assert_eq!(body["session"]["user_agent"], "TestBrowser/1.0");
    assert_eq!(body["session"]["ip"], "127.0.0.1");
    assert_eq!(body["session"]["current"], true);
    assert!(body["access_expires_at"].as_str().unwrap().ends_with('Z'));

    let me: serde_json::Value = browser.get("/me").await.json().await.unwrap();
    assert_eq!(me["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_or_with_bad_access_tokens_are_401() {
    let app = browser_app().await;
    let browser = Browser::new(&app);
    let response = browser.get("/me").await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(code(response).await, (401, "missing_credentials".into()));
    let forged = browser
        .http
        .get(browser.url("/me"))
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(code(forged).await, (401, "access_token_invalid".into()));
    browser.login("amy").await;
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(
        code(browser.get("/me").await).await,
        (401, "access_token_expired".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_the_cookie_and_a_replayed_token_is_reuse() {
    let app = browser_app().await;
    let browser = Browser::new(&app);
    browser.login("bob").await;
    let first = browser.cookie("__Secure-refresh").unwrap();
    let response = browser.post("/auth/refresh").await;
    assert_eq!(response.status(), 200);
    let second = browser.cookie("__Secure-refresh").unwrap();
    assert_ne!(first, second);
    assert_eq!(browser.get("/me").await.status(), 200);

    // A thief replays the first token after the grace window: the session is revoked.
    app.clock.advance(Duration::from_secs(31));
    let thief = Browser::new(&app);
    thief
        .jar
        .lock()
        .unwrap()
        .insert("__Secure-refresh".into(), first);
    let replay = thief.post("/auth/refresh").await;
    let cleared = set_cookies(&replay);
    assert!(
        cleared
            .iter()
            .all(|c| c.max_age() == Some(time::Duration::ZERO))
            && cleared.len() == 2,
        "a refusal that needs a new sign-in clears the cookies"
    );
    assert_eq!(code(replay).await, (401, "token_reused".into()));
    assert_eq!(
        code(browser.post("/auth/refresh").await).await,
        (401, "session_revoked".into())
    );
    assert_eq!(code(browser.get("/me").await).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_state_changes_need_the_apps_origin() {
    let app = browser_app().await;
    let browser = Browser::new(&app);
    browser.login("carol").await;
    let post = |origin: Option<&str>, referer: Option<&str>, custom: bool| {
        let mut request = browser.http.post(browser.url("/auth/refresh"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(referer) = referer {
            request = request.header("referer", referer);
        }
        if custom {
            request = request.header("x-requested-with", "fetch");
        }
        browser.send(request, "/auth/refresh")
    };
    assert_eq!(
        code(post(None, None, false).await).await,
        (403, "csrf_rejected".into())
    );
    assert_eq!(
        code(post(Some("https://evil.example"), None, false).await).await,
        (403, "csrf_rejected".into())
    );
    assert_eq!(
        code(post(None, Some("https://evil.example/x"), false).await).await,
        (403, "csrf_rejected".into())
    );
    let logout = browser
        .send(
            browser
                .http
                .post(browser.url("/auth/logout-all"))
                .header("origin", "https://evil.example"),
            "/auth/logout-all",
        )
        .await;
    assert_eq!(code(logout).await, (403, "csrf_rejected".into()));
    assert_eq!(
        browser.get("/me").await.status(),
        200,
        "nothing was revoked"
    );
    let referer = format!("{}/devices", browser.base);
    assert_eq!(post(None, Some(&referer), false).await.status(), 200);
    assert_eq!(post(None, None, true).await.status(), 200);
    assert_eq!(
        post(Some(&browser.base.clone()), None, false)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_cookies_and_is_idempotent() {
    let app = browser_app().await;
    let browser = Browser::new(&app);
    browser.login("dan").await;
    let access = browser.cookie("__Host-access").unwrap();
    let response = browser.post("/auth/logout").await;
    assert_eq!(set_cookies(&response).len(), 2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["revoked"], true);
    assert!(browser.cookie("__Host-access").is_none());
    // The old access token now names a revoked session.
    let stale = browser
        .http
        .get(browser.url("/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(code(stale).await, (401, "session_revoked".into()));
    let again: serde_json::Value = browser.post("/auth/logout").await.json().await.unwrap();
    assert_eq!(again["revoked"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_marks_the_current_session_and_logs_out_others() {
    let app = browser_app().await;
    let laptop = Browser::new(&app);
    let phone = Browser::new(&app);
    laptop.login("erin").await;
    app.clock.advance(Duration::from_secs(1));
    phone.login("erin").await;
    let response = laptop.get("/auth/sessions").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let list: Vec<serde_json::Value> = response.json().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], false, "newest first: the phone");
    assert_eq!(list[1]["current"], true);
    assert_eq!(list[1]["created_at"], "2030-01-01T00:00:00Z");
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains("hash") && !text.contains("v1."), "{text}");

    let others: serde_json::Value = laptop
        .post("/auth/logout-others")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(others["revoked"], 1);
    assert_eq!(laptop.get("/me").await.status(), 200);
    assert_eq!(
        code(phone.get("/me").await).await,
        (401, "session_revoked".into())
    );

    phone.login("erin").await;
    let all = laptop.post("/auth/logout-all").await;
    assert_eq!(set_cookies(&all).len(), 2, "the caller is signed out too");
    let all: serde_json::Value = all.json().await.unwrap();
    assert_eq!(all["revoked"], 2);
    assert_eq!(phone.get("/me").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_revokes_only_their_own_sessions() {
    let app = browser_app().await;
    let frank = Browser::new(&app);
    let grace = Browser::new(&app);
    frank.login("frank").await;
    grace.login("grace").await;
    let grace_id = grace.session_id().await;
    let stolen = frank
        .send(
            frank
                .http
                .delete(frank.url(&format!("/auth/sessions/{grace_id}")))
                .header("origin", &frank.base),
            "/auth/sessions",
        )
        .await;
    assert_eq!(code(stolen).await, (404, "not_found".into()));
    let unknown = frank.post("/auth/sessions/not-an-id/revoke").await;
    assert_eq!(code(unknown).await, (404, "not_found".into()));
    assert_eq!(
        grace.get("/me").await.status(),
        200,
        "grace is still signed in"
    );

    // Grace revokes her own second session from a form, and is sent back to the page.
    let tablet = Browser::new(&app);
    tablet.login("grace").await;
    let tablet_id = tablet.session_id().await;
    let form = grace
        .post(&format!(
            "/auth/sessions/{tablet_id}/revoke?redirect=/devices"
        ))
        .await;
    assert_eq!(form.status(), 303);
    assert_eq!(form.headers()["location"], "/devices");
    assert_eq!(
        code(tablet.get("/me").await).await,
        (401, "session_revoked".into())
    );
    assert_eq!(grace.get("/me").await.status(), 200);
    let offsite = grace
        .post("/auth/logout-others?redirect=//evil.example")
        .await;
    assert_eq!(offsite.headers()["location"], "/", "no open redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_from_one_cookie_jar_keep_the_user_signed_in() {
    let app = browser_app().await;
    for round in 0..20 {
        let browser = Browser::new(&app);
        browser.login(&format!("tabs-{round}")).await;
        let tabs: Vec<_> = (0..2)
            .map(|_| {
                let browser = browser.clone();
                tokio::spawn(async move { browser.post("/auth/refresh").await.status() })
            })
            .collect();
        for tab in tabs {
            assert_eq!(
                tab.await.unwrap(),
                200,
                "round {round}: no tab is logged out"
            );
        }
        assert_eq!(browser.get("/me").await.status(), 200);
        assert_eq!(browser.post("/auth/refresh").await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_mode_uses_json_bodies_and_no_cookies() {
    let app = start(
        store(),
        SessionConfig::default(),
        WebConfig::default().with_transport(Transport::Bearer),
    )
    .await;
    let http = support::client();
    let login = http
        .post(format!("{}/login", app.base))
        .form(&[("user", "hal")])
        .send()
        .await
        .unwrap();
    assert!(login.headers().get("set-cookie").is_none());
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let me = http
        .get(format!("{}/me", app.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // No Origin needed: a browser never adds a bearer token by itself.
    let refreshed: serde_json::Value = http
        .post(format!("{}/auth/refresh", app.base))
        .json(&serde_json::json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(refreshed["refresh_token"], body["refresh_token"]);
    assert_eq!(refreshed["session"]["current"], true);
    let bad = http
        .post(format!("{}/auth/refresh", app.base))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(code(bad).await, (400, "invalid_input".into()));
    let garbage = http
        .post(format!("{}/auth/refresh", app.base))
        .json(&serde_json::json!({ "refresh_token": "v1.garbage" }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(garbage).await, (401, "invalid_token".into()));
    let cookie_only = http
        .post(format!("{}/auth/refresh", app.base))
        .header("cookie", format!("__Secure-refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(cookie_only).await.0,
        400,
        "bearer mode reads no cookie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_only_checks_trust_the_token_until_it_expires() {
    let app = start(
        store(),
        SessionConfig::default(),
        WebConfig::default().with_access_check(AccessCheck::Signature),
    )
    .await;
    let browser = Browser::new(&app);
    browser.login("ivy").await;
    let access = browser.cookie("__Host-access").unwrap();
    browser.post("/auth/logout").await;
    let stale = browser
        .http
        .get(browser.url("/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "no store read: valid until it expires");
    app.clock.advance(Duration::from_secs(600));
    let expired = browser
        .http
        .get(browser.url("/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(code(expired).await, (401, "access_token_expired".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refused_at_the_cap_and_bad_input_have_their_codes() {
    let app = start(
        store(),
        SessionConfig::default()
            .with_max_sessions_per_user(Some(1))
            .with_limit_mode(LimitMode::Reject),
        WebConfig::default(),
    )
    .await;
    let browser = Browser::new(&app);
    assert_eq!(browser.login("jo").await.status(), 200);
    assert_eq!(
        code(Browser::new(&app).login("jo").await).await,
        (403, "session_limit_reached".into())
    );
    assert_eq!(
        code(browser.login("").await).await,
        (400, "invalid_input".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let spoofed = |app: &App| {
        let browser = Browser::new(app);
        async move {
            let response = browser
                .send(
                    browser
                        .http
                        .post(browser.url("/login"))
                        .header("x-forwarded-for", "203.0.113.5")
                        .header("user-agent", "x".repeat(2000))
                        .form(&[("user", "kim")]),
                    "/login",
                )
                .await;
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let untrusted = browser_app().await;
    let body = spoofed(&untrusted).await;
    assert_eq!(body["session"]["ip"], "127.0.0.1");
    assert_eq!(
        body["session"]["user_agent"].as_str().unwrap().len(),
        512,
        "an over-long user agent is cut, not refused"
    );
    let behind_proxy = start(
        store(),
        SessionConfig::default(),
        WebConfig::default().with_trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()]),
    )
    .await;
    assert_eq!(spoofed(&behind_proxy).await["session"]["ip"], "203.0.113.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_configured_key_accept_each_others_access_tokens() {
    use session_axum::{ClientInfo, SessionAuth};
    use session_core::{RotationKey, SessionManager, UserId};

    let store = store();
    let instance = |session: SessionConfig, web: WebConfig| {
        let store = Arc::clone(&store);
        async move {
            SessionAuth::new(SessionManager::new(store, session).unwrap(), web)
                .await
                .unwrap()
        }
    };
    let user = UserId::new("lee").unwrap();
    let now = session_core::Clock::now(&session_core::SystemClock);
    let keyed =
        SessionConfig::default().with_rotation_key(Some(RotationKey::new([5; 32]).unwrap()));
    let a = instance(keyed.clone(), WebConfig::default()).await;
    let b = instance(keyed, WebConfig::default()).await;
    let token = a.login(&user, ClientInfo::default()).await.unwrap();
    assert!(b.access_tokens().verify(&token.access().token, now).is_ok());

    let secret = RotationKey::new([6; 32]).unwrap();
    let web = WebConfig::default().with_access_key(Some(secret));
    let c = instance(SessionConfig::default(), web.clone()).await;
    let d = instance(SessionConfig::default(), web).await;
    let token = c.login(&user, ClientInfo::default()).await.unwrap();
    assert!(d.access_tokens().verify(&token.access().token, now).is_ok());
    assert!(
        a.access_tokens()
            .verify(&token.access().token, now)
            .is_err()
    );

    // Without a configured key each process signs with its own: nothing is read from the store.
    let e = instance(SessionConfig::default(), WebConfig::default()).await;
    let f = instance(SessionConfig::default(), WebConfig::default()).await;
    let token = e.login(&user, ClientInfo::default()).await.unwrap();
    assert!(e.access_tokens().verify(&token.access().token, now).is_ok());
    assert!(
        f.access_tokens()
            .verify(&token.access().token, now)
            .is_err()
    );
}
