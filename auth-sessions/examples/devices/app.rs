//! The app itself: a login form, a "Your devices" page, and the ready routes under `/auth`.

use auth_sessions::UserId;
use auth_sessions::web::{ApiError, AuthSession, ClientInfo, SessionAuth, SessionView};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

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
            .route("/login", get(login_page).post(login))
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

/// Lists the user's sessions, each with a button that revokes it.
async fn devices(auth: SessionAuth, me: Option<AuthSession>) -> Result<Response, ApiError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let sessions = auth.manager().list(&me.user_id).await?;
    let rows: String = sessions
        .iter()
        .map(|session| row(&SessionView::new(session, Some(&me.session_id))))
        .collect();
    let page = format!(
        include_str!("devices.html"),
        user = text(me.user_id.as_str()),
        rows = rows
    );
    Ok(Html(page).into_response())
}

fn row(view: &SessionView) -> String {
    let action = if view.current {
        "<td class=\"current\">this device</td>".to_owned()
    } else {
        format!(
            "<td><form method=\"post\" action=\"/auth/sessions/{}/revoke?redirect=/devices\">\
             <button>Revoke</button></form></td>",
            attr(&view.id.to_string())
        )
    };
    format!(
        "<tr class=\"session\" data-id=\"{id}\"><td>{agent}</td><td>{ip}</td><td>{seen}</td>{action}</tr>",
        id = attr(&view.id.to_string()),
        agent = text(view.user_agent.as_deref().unwrap_or("unknown device")),
        ip = view.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        seen = view.last_active_at.date(),
    )
}

async fn login_page() -> Html<&'static str> {
    Html(include_str!("login.html"))
}
