//! The app itself: a login form, a "Your devices" page, and the ready routes under `/auth`
//! (refresh, logout, logout of the other devices, revoke one session).

use auth_sessions::UserId;
use auth_sessions::web::{ApiError, AuthSession, ClientInfo, SessionAuth, SessionView};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use html_escape::encode_text as text;

/// What the login form posts.
#[derive(serde::Deserialize)]
pub(crate) struct Credentials {
    user: String,
    password: String,
}

/// The whole app: every route, wired to the sessions in one call.
pub(crate) fn app(auth: &SessionAuth) -> Router {
    auth.wire(
        Router::new()
            .route("/", get(|| async { Redirect::to("/devices") }))
            .route(
                "/login",
                get(|| async { Html(include_str!("login.html")) }).post(login),
            )
            .route("/devices", get(devices)),
    )
}

/// Signs a user in once the credential check passes (here: password `demo`, any user name).
async fn login(
    auth: SessionAuth,
    client: ClientInfo,
    Form(form): Form<Credentials>,
) -> Result<Response, ApiError> {
    if form.password != "demo" {
        return Ok(Redirect::to("/login").into_response());
    }
    let user = UserId::new(&form.user)?;
    Ok(auth.login(&user, client).await?.redirect("/devices"))
}

/// Lists the user's sessions, each other one with a button that revokes it.
async fn devices(auth: SessionAuth, me: Option<AuthSession>) -> Result<Response, ApiError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let rows: String = auth.sessions(&me).await?.iter().map(row).collect();
    let user = text(me.user_id.as_str());
    Ok(Html(format!(
        include_str!("devices.html"),
        user = user,
        rows = rows
    ))
    .into_response())
}

fn row(session: &SessionView) -> String {
    let action = if session.current {
        "this device".to_owned()
    } else {
        let revoke = format!("/auth/sessions/{}/revoke?redirect=/devices", session.id);
        format!(r#"<form method="post" action="{revoke}"><button>Revoke</button></form>"#)
    };
    let agent = text(session.user_agent.as_deref().unwrap_or("unknown device"));
    let ip = session.ip.map(|ip| ip.to_string()).unwrap_or_default();
    let seen = session.last_active_at.date();
    format!(
        r#"<tr class="session"><td>{agent}</td><td>{ip}</td><td>{seen}</td><td>{action}</td></tr>"#
    )
}
