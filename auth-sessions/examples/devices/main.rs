//! A small web app with a "Your devices" page: sign in, see your sessions, revoke one, log out
//! the others.
//!
//! ```sh
//! cargo run -p auth-sessions --example devices --features axum
//! ```
//!
//! Then open <http://localhost:3000/login> (any user name, password `demo`). Sessions live in an
//! embedded SQLite file by default. For Redis or PostgreSQL, point `DEVICES_CONFIG` at a TOML
//! file in the [`SessionsConfig`] format and build with that store's feature:
//!
//! ```toml
//! [storage]
//! type = "redis"                  # or: type = "database", url = "postgres://user@host/db"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! `DEVICES_ADDR` sets the listening address (default `127.0.0.1:3000`).

mod app;

use std::net::SocketAddr;

use auth_sessions::web::{SessionAuth, WebConfig};
use auth_sessions::{Sessions, SessionsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config: SessionsConfig = match std::env::var("DEVICES_CONFIG") {
        Ok(path) => toml::from_str(&std::fs::read_to_string(path)?)?,
        Err(_) => SessionsConfig::default(),
    };
    let sessions = Sessions::start(config).await?;
    let auth = SessionAuth::new(sessions.manager().clone(), WebConfig::default()).await?;
    let addr = std::env::var("DEVICES_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    #[expect(
        clippy::print_stdout,
        reason = "an example tells where to point the browser"
    )]
    {
        println!("Your devices: http://{}/login", listener.local_addr()?);
    }
    let app = app::app(&auth).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    sessions.shutdown().await;
    Ok(())
}
