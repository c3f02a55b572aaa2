//! A real HTTP server on loopback around a store, and a client that keeps cookies by hand so
//! tests can read every attribute.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test support: each test file uses a part; a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Form;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::Cookie;
use session_axum::{AccessKey, ApiError, AuthSession, ClientInfo, Issued, SessionAuth, WebConfig};
use session_core::time::macros::datetime;
use session_core::{ManualClock, SessionConfig, SessionManager, SessionStore, UserId};

/// A running app: its base URL, clock and handle.
pub struct App {
    pub base: String,
    pub clock: ManualClock,
    pub auth: SessionAuth,
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
}

async fn login(
    auth: SessionAuth,
    client: ClientInfo,
    Form(form): Form<LoginForm>,
) -> Result<Issued, ApiError> {
    let user = UserId::new(&form.user)?;
    auth.login(&user, client).await
}

async fn me(me: AuthSession) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "user": me.user_id.as_str(),
        "session": me.session_id.to_string(),
        "generation": me.generation,
    }))
}

/// The app every HTTP test talks to: `POST /login` (form field `user`, no password check) and
/// `GET /me`, plus the ready routes under `/auth`.
pub async fn start(store: Arc<dyn SessionStore>, session: SessionConfig, web: WebConfig) -> App {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let manager = SessionManager::new(store, session)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let auth = SessionAuth::with_keys(
        manager,
        web,
        AccessKey::hs256("test", &[42; 32]).unwrap(),
        Vec::new(),
    )
    .unwrap();
    let app = auth.wire(
        Router::new()
            .route("/login", post(login))
            .route("/me", get(me)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    App {
        base: format!("http://{addr}"),
        clock,
        auth,
        server,
    }
}

/// A browser-like client: one cookie jar (name → value, as a browser keeps them, paths aside),
/// the `Origin` of the app on every request unless told otherwise.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub jar: Arc<Mutex<HashMap<String, String>>>,
}

impl Browser {
    pub fn new(app: &App) -> Self {
        Self {
            http: client(),
            base: app.base.clone(),
            jar: Arc::default(),
        }
    }

    /// The cookie header for `path`: the refresh cookie only under `/auth`, like a browser.
    fn cookie_header(&self, path: &str) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.ends_with("refresh") || path.starts_with("/auth"))
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends a request with the jar's cookies and stores the cookies it sets.
    pub async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> reqwest::Response {
        let request = request.header("cookie", self.cookie_header(path));
        let response = request.send().await.unwrap();
        self.keep(&response);
        response
    }

    pub fn keep(&self, response: &reqwest::Response) {
        let mut jar = self.jar.lock().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let cookie = Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            if cookie.max_age() == Some(time::Duration::ZERO) {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A same-origin `POST`.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        let request = self.http.post(self.url(path)).header("origin", &self.base);
        self.send(request, path).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.http.get(self.url(path)), path).await
    }

    pub async fn login(&self, user: &str) -> reqwest::Response {
        let request = self
            .http
            .post(self.url("/login"))
            .header("origin", &self.base)
            .header("user-agent", "TestBrowser/1.0")
            .form(&[("user", user)]);
        self.send(request, "/login").await
    }

    /// The id of the session this browser is signed in with (from `GET /me`).
    pub async fn session_id(&self) -> String {
        let me: serde_json::Value = self.get("/me").await.json().await.unwrap();
        me["session"].as_str().unwrap().to_owned()
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }
}

/// An HTTP client that does not follow redirects (tests read them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `error.code` of a JSON error body.
pub async fn code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// Every `Set-Cookie` of a response, parsed.
pub fn set_cookies(response: &reqwest::Response) -> Vec<Cookie<'static>> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| Cookie::parse(value.to_str().unwrap().to_owned()).unwrap())
        .collect()
}
