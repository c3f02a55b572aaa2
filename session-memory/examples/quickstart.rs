//! The whole session life cycle on the in-memory store: login, validate, refresh, reuse
//! detection, listing, logout of all devices. Run with
//! `cargo run -p session-memory --example quickstart`.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use session_core::{DeviceInfo, Error, LoginRequest, SessionConfig, SessionManager, UserId};
use session_memory::MemoryStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::new(store, SessionConfig::default())?;
    let user = UserId::new("alice@example.com")?;

    let laptop = manager
        .login(
            &user,
            LoginRequest::new().with_device(DeviceInfo::new().with_device_name("laptop")),
        )
        .await?;
    println!(
        "login: session {} (token {})",
        laptop.session.id, laptop.token
    );
    let phone = manager.login(&user, LoginRequest::new()).await?;
    println!("login: session {} from a second device", phone.session.id);

    let session = manager.validate(&laptop.session.id).await?;
    println!("validate: live until {}", session.expires_at());

    let refreshed = manager.refresh(laptop.token.expose_secret()).await?;
    println!(
        "refresh: rotated to generation {}",
        refreshed.session.generation
    );

    match manager.refresh(laptop.token.expose_secret()).await {
        Err(Error::ReuseDetected) => {
            println!("refresh with the old token: reuse detected, session revoked");
        }
        other => println!("refresh with the old token: unexpected {other:?}"),
    }
    match manager.refresh(refreshed.token.expose_secret()).await {
        Err(e) => println!("refresh with the newest token: {e}"),
        Ok(_) => println!("refresh with the newest token: unexpectedly accepted"),
    }

    let live = manager.list(&user).await?;
    println!(
        "list: {} live session(s): {:?}",
        live.len(),
        live.iter().map(|s| s.id).collect::<Vec<_>>()
    );

    let revoked = manager.logout_all(&user).await?;
    println!("logout of all devices: {revoked} session(s) revoked");
    println!("list: {} live session(s)", manager.list(&user).await?.len());
    Ok(())
}
