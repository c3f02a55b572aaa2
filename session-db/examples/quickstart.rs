//! The whole session life cycle on the embedded SQLite store, with nothing to set up: login,
//! validate, refresh, reuse detection, the per-user cap, listing, logout of all devices.
//!
//! ```text
//! cargo run -p session-db --example quickstart
//! ```
//!
//! The database is a file in the system's temp directory, made fresh on every run. Point
//! `DATABASE_URL` at `postgres://…` or `mysql://…` to run the same steps there (with the
//! `postgres` or `mysql` feature on).

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use session_core::{DeviceInfo, Error, LoginRequest, SessionConfig, SessionManager, UserId};
use session_db::{DbConfig, DbStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let path = std::env::temp_dir().join("session-db-quickstart.sqlite3");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    let store = DbStore::connect_with(DbConfig::new().with_url(url.as_str())).await?;
    store.migrate().await?;
    println!(
        "store: {:?} database, table `{}` migrated",
        store.dialect(),
        store.table()
    );

    let config = SessionConfig::default().with_max_sessions_per_user(Some(3));
    let manager = SessionManager::new(Arc::new(store), config)?;
    let user = UserId::new("alice@example.com")?;

    let laptop = manager
        .login(
            &user,
            LoginRequest::new().with_device(DeviceInfo::new().with_device_name("laptop")),
        )
        .await?;
    println!(
        "login (laptop): session {}, refresh token {}",
        laptop.session.id, laptop.token
    );

    let session = manager.validate(&laptop.session.id).await?;
    println!("validate: live until {}", session.expires_at());

    let refreshed = manager.refresh(laptop.token.expose_secret()).await?;
    println!(
        "refresh: token rotated, generation {}",
        refreshed.session.generation
    );

    // A second tab, or a retry after a lost reply, within the grace window (30 s by default):
    // the same successor, and the session stays.
    let again = manager.refresh(laptop.token.expose_secret()).await?;
    println!(
        "refresh with the previous token at once: the same new token ({}), nothing revoked",
        if again.token.expose_secret() == refreshed.token.expose_secret() {
            "identical"
        } else {
            "DIFFERENT"
        }
    );

    let newest = manager.refresh(refreshed.token.expose_secret()).await?;
    println!(
        "refresh: token rotated, generation {}",
        newest.session.generation
    );
    match manager.refresh(laptop.token.expose_secret()).await {
        Err(Error::ReuseDetected) => {
            println!(
                "refresh with a token two rotations old: reuse detected, the session is revoked"
            );
        }
        other => println!("refresh with a token two rotations old: unexpected {other:?}"),
    }
    match manager.refresh(newest.token.expose_secret()).await {
        Err(error) => println!("refresh with the newest token afterwards: {error}"),
        Ok(_) => println!("refresh with the newest token afterwards: unexpectedly accepted"),
    }

    for device in ["phone", "tablet", "desktop", "tv"] {
        let login = manager
            .login(
                &user,
                LoginRequest::new().with_device(DeviceInfo::new().with_device_name(device)),
            )
            .await?;
        println!(
            "login ({device}): session {}{}",
            login.session.id,
            if login.evicted.is_empty() {
                String::new()
            } else {
                format!(", evicted the oldest to stay within 3: {:?}", login.evicted)
            }
        );
    }

    let live = manager.list(&user).await?;
    println!("list: {} live session(s), newest first:", live.len());
    for s in &live {
        println!(
            "  {} {:<8} created {}",
            s.id,
            s.device.device_name.as_deref().unwrap_or("-"),
            s.created_at
        );
    }

    let revoked = manager.logout_all(&user).await?;
    println!("logout of all devices: {revoked} session(s) revoked");
    println!("list: {} live session(s)", manager.list(&user).await?.len());
    Ok(())
}
