//! # session-db
//!
//! A [`SessionStore`](session_core::SessionStore) on SQL databases through sea-orm: SQLite (the
//! embedded default), PostgreSQL and MySQL/MariaDB, chosen by the connection URL.
//!
//! (Full guide below, once the backends are complete.)

mod config;
mod connect;
mod dialect;
mod error;
pub mod migration;
mod row;
mod sql;
mod store;

pub use config::{DEFAULT_SQLITE_URL, DEFAULT_TABLE, DbConfig, TableName};
pub use dialect::Dialect;
pub use error::ConnectError;
pub use migration::{Migrator, migrations, schema_sql};
pub use store::DbStore;

/// Re-exported so applications use the exact sea-orm this crate was built with.
pub use sea_orm;
/// Re-exported for [`Migrator`] and [`migrations`].
pub use sea_orm_migration;
