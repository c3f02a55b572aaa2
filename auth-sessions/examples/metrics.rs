//! The session metrics in Prometheus format.
//!
//! ```sh
//! cargo run -p auth-sessions --no-default-features --features memory --example metrics
//! cargo run -p auth-sessions --no-default-features --features memory --example metrics -- --serve 127.0.0.1:9184
//! curl http://127.0.0.1:9184/metrics
//! ```
//!
//! It installs the `metrics-exporter-prometheus` recorder, runs a few logins, refreshes, a
//! token reuse and a logout through [`Sessions`], then prints the exposition (or, with
//! `--serve ADDR`, serves it at `/metrics` and keeps a small load going).

#![allow(clippy::print_stdout, reason = "an example prints what it exposes")]

use std::time::Duration;

use auth_sessions::{LoginRequest, Sessions, SessionsConfig, StorageConfig, UserId};
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// One user's session life: login, refresh, a grace-window retry, a reuse, a logout.
async fn life(sessions: &Sessions, user: &UserId) -> Result<(), Box<dyn std::error::Error>> {
    let manager = sessions.manager();
    let login = manager.login(user, LoginRequest::new()).await?;
    let refreshed = manager.refresh(login.token.expose_secret()).await?;
    manager.refresh(login.token.expose_secret()).await?;
    manager.refresh(refreshed.token.expose_secret()).await?;
    // The login token, two rotations back: reuse, the session is revoked.
    let _ = manager.refresh(login.token.expose_secret()).await;
    let again = manager.login(user, LoginRequest::new()).await?;
    manager.logout(&again.session.id).await?;
    Ok(())
}

fn install() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                auth_sessions::telemetry::STORE_LATENCY.to_owned(),
            ),
            &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0],
        )?
        .install_recorder()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = install()?;
    let storage: StorageConfig = toml::from_str(r#"type = "memory""#)?;
    let sessions = Sessions::builder(SessionsConfig::new().with_storage(storage))
        .metrics(true)
        .start()
        .await?;
    for n in 0..5 {
        life(&sessions, &UserId::new(format!("user-{n}"))?).await?;
    }

    let mut args = std::env::args().skip(1);
    let serve = match (args.next().as_deref(), args.next()) {
        (Some("--serve"), Some(addr)) => Some(addr),
        _ => None,
    };
    let Some(addr) = serve else {
        println!("{}", handle.render());
        sessions.shutdown().await;
        return Ok(());
    };
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    let load = tokio::spawn(async move {
        let mut n = 0_u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n += 1;
            if let Ok(user) = UserId::new(format!("load-{}", n % 10)) {
                let _ = life(&sessions, &user).await;
            }
        }
    });
    axum::serve(listener, app).await?;
    load.abort();
    Ok(())
}
