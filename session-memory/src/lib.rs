//! # session-memory
//!
//! [`MemoryStore`]: an in-process [`SessionStore`](session_core::SessionStore) on sharded
//! [`hashbrown`] tables, for **tests and local development only**. Sessions live in the process's
//! memory: they are lost on restart and not shared between instances, so a deploy or a crash
//! logs every user out and a second instance knows none of them. Use the database or Redis
//! store in production.
//!
//! It honours the whole store contract (it runs the conformance suite) and frees expired
//! records when its [`purge_expired`](session_core::SessionStore::purge_expired) runs: start the
//! sweep with [`SessionManager::spawn_cleanup`](session_core::SessionManager::spawn_cleanup).
//!
//! ```
//! use std::sync::Arc;
//! use session_core::{CleanupConfig, LoginRequest, SessionConfig, SessionManager, UserId};
//! use session_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
//! let _sweeper = manager.spawn_cleanup(CleanupConfig::default())?;
//!
//! let login = manager.login(&UserId::new("alice")?, LoginRequest::new()).await?;
//! let refreshed = manager.refresh(login.token.expose_secret()).await?;
//! assert_eq!(refreshed.session.generation, 1);
//! # Ok(())
//! # }
//! ```

mod compact;
mod store;
mod table;
mod users;

pub use store::MemoryStore;
