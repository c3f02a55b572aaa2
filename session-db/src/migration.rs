//! The schema and its migrations, on `sea-orm-migration`.
//!
//! [`DbStore::migrate`](crate::DbStore::migrate) applies them from code. To run them yourself,
//! either add [`migrations`] to your own `sea-orm-migration` migrator, or apply the SQL that
//! [`schema_sql`] prints for your database and table (and record nothing: the history table is
//! only read by this crate's own migrator).
//!
//! The history of a sessions table `<t>` lives in `<t>_migrations`, so several sessions tables
//! (tenants, tests) migrate independently of each other and of an application's own
//! `seaql_migrations`.

use sea_orm::sea_query::{Alias, ColumnDef, Index, IntoIden, Table};
use sea_orm::{ConnectionTrait, DbErr, DynIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTraitSelf, SchemaManager};

use crate::config::TableName;
use crate::dialect::Dialect;

/// The migrator of one sessions table: [`MigratorTraitSelf`] with the history in
/// `<table>_migrations`.
///
/// # Examples
///
/// ```
/// use sea_orm_migration::MigratorTraitSelf;
/// use session_db::{Migrator, TableName};
///
/// # async fn run(db: &session_db::sea_orm::DatabaseConnection) -> Result<(), session_db::sea_orm::DbErr> {
/// let migrator = Migrator::new(TableName::new("sessions").unwrap());
/// migrator.up(db, None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Migrator {
    table: TableName,
}

impl Migrator {
    /// The migrator of `table`.
    #[must_use]
    pub fn new(table: TableName) -> Self {
        Self { table }
    }
}

#[async_trait::async_trait]
impl MigratorTraitSelf for Migrator {
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        migrations(&self.table)
    }

    fn migration_table_name(&self) -> DynIden {
        Alias::new(format!("{}_migrations", self.table)).into_iden()
    }
}

/// Every migration of a sessions table, oldest first: add them to your own migrator's list to
/// manage this table with the rest of your schema.
#[must_use]
pub fn migrations(table: &TableName) -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateSessions {
            table: table.clone(),
        }),
        Box::new(CreateSecrets {
            table: table.clone(),
        }),
    ]
}

/// The statements that create the schema of `table` on `dialect`, as the migrations run them,
/// oldest first: for people who apply migrations with their own tools.
///
/// # Examples
///
/// ```
/// use session_db::{Dialect, TableName, schema_sql};
///
/// for statement in schema_sql(Dialect::Postgres, &TableName::default()) {
///     println!("{statement};");
/// }
/// ```
#[must_use]
pub fn schema_sql(dialect: Dialect, table: &TableName) -> Vec<String> {
    let mut statements = sessions_sql(dialect, table);
    statements.extend(secrets_sql(dialect, table));
    statements
}

/// The first migration's statements: the sessions table, its indexes and (MySQL) the per-user
/// lock table.
fn sessions_sql(dialect: Dialect, table: &TableName) -> Vec<String> {
    let backend = dialect.backend();
    let t = table.as_str();
    let types = Types::of(dialect);
    let col = |name: &str, ty: &str, null: bool| {
        let mut def = ColumnDef::new(Alias::new(name));
        def.custom(Alias::new(ty));
        if null {
            def.null();
        } else {
            def.not_null();
        }
        def
    };
    let mut id = col("id", types.id, false);
    id.primary_key();
    let mut create = Table::create();
    create
        .table(Alias::new(t))
        .if_not_exists()
        .col(id)
        .col(col("user_id", types.user, false))
        .col(col("created_at", types.time, false))
        .col(col("last_active_at", types.time, false))
        .col(col("idle_expires_at", types.time, false))
        .col(col("absolute_expires_at", types.time, false))
        .col(col("expires_at", types.time, false))
        .col(col("token_hash", types.hash, false))
        .col(col("generation", "BIGINT", false))
        .col(col("previous_token_hash", types.hash, true))
        .col(col("rotated_at", types.time, true))
        .col(col("revoked_at", types.time, true))
        .col(col("revoke_reason", types.reason, true))
        .col(col("user_agent", types.user_agent, true))
        .col(col("ip", types.ip, true))
        .col(col("device_name", types.device_name, true))
        .col(col("data", types.data, true));
    if dialect == Dialect::MySql {
        create
            .engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    let mut statements = vec![backend.build(&create).to_string()];

    let mut by_user = Index::create();
    by_user
        .name(format!("{t}_user_created_idx"))
        .table(Alias::new(t))
        .col(Alias::new("user_id"))
        .col(Alias::new("created_at"));
    let mut by_expiry = Index::create();
    by_expiry
        .name(format!("{t}_expires_idx"))
        .table(Alias::new(t))
        .col(Alias::new("expires_at"));
    if dialect != Dialect::MySql {
        by_user.if_not_exists();
        by_expiry.if_not_exists();
    }
    statements.push(backend.build(&by_user).to_string());
    statements.push(backend.build(&by_expiry).to_string());

    if dialect == Dialect::MySql {
        let mut locks = Table::create();
        locks
            .table(Alias::new(format!("{t}_user_locks")))
            .if_not_exists()
            .col(
                ColumnDef::new(Alias::new("user_id"))
                    .custom(Alias::new("VARBINARY(255)"))
                    .not_null()
                    .primary_key(),
            )
            .engine("InnoDB");
        statements.push(backend.build(&locks).to_string());
    }
    statements
}

/// The second migration's statements: `<table>_secrets`, the values of
/// [`SessionStore::shared_secret`](session_core::SessionStore::shared_secret) (a name, the
/// bytes, and when the database stored them, by its own clock; informational). On MySQL it also
/// drops the per-user lock rows of users who have no session left, which earlier versions never
/// removed (the purge now removes them as their users' last sessions go).
fn secrets_sql(dialect: Dialect, table: &TableName) -> Vec<String> {
    let backend = dialect.backend();
    let t = table.as_str();
    let (value, created_at, default_now) = match dialect {
        Dialect::Sqlite => (
            "BLOB",
            "INTEGER",
            // Whole microseconds since the Unix epoch, as every instant on SQLite.
            "(CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))",
        ),
        Dialect::Postgres => ("BYTEA", "TIMESTAMPTZ", "CURRENT_TIMESTAMP"),
        Dialect::MySql => ("VARBINARY(1024)", "DATETIME(6)", "CURRENT_TIMESTAMP(6)"),
    };
    let mut secrets = Table::create();
    secrets
        .table(Alias::new(format!("{t}_secrets")))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("name"))
                .custom(Alias::new("VARCHAR(64)"))
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(Alias::new("value"))
                .custom(Alias::new(value))
                .not_null(),
        )
        .col(
            ColumnDef::new(Alias::new("created_at"))
                .custom(Alias::new(created_at))
                .not_null()
                .default(sea_orm::sea_query::Expr::cust(default_now)),
        );
    if dialect == Dialect::MySql {
        secrets
            .engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    let mut statements = vec![backend.build(&secrets).to_string()];
    if dialect == Dialect::MySql {
        let locks = dialect.quote(&format!("{t}_user_locks"));
        let sessions = dialect.quote(t);
        statements.push(format!(
            "DELETE FROM {locks} WHERE NOT EXISTS \
             (SELECT 1 FROM {sessions} s WHERE s.user_id = {locks}.user_id)"
        ));
    }
    statements
}

/// Column types per dialect.
struct Types {
    id: &'static str,
    user: &'static str,
    time: &'static str,
    hash: &'static str,
    reason: &'static str,
    user_agent: &'static str,
    ip: &'static str,
    device_name: &'static str,
    data: &'static str,
}

impl Types {
    fn of(dialect: Dialect) -> Self {
        match dialect {
            // Instants are whole microseconds since the Unix epoch (UTC).
            Dialect::Sqlite => Self {
                id: "TEXT",
                user: "TEXT",
                time: "INTEGER",
                hash: "BLOB",
                reason: "TEXT",
                user_agent: "TEXT",
                ip: "TEXT",
                device_name: "TEXT",
                data: "TEXT",
            },
            // `COLLATE "C"` orders ids bytewise, as `SessionId`'s `Ord` does.
            Dialect::Postgres => Self {
                id: "VARCHAR(36) COLLATE \"C\"",
                user: "VARCHAR(255)",
                time: "TIMESTAMPTZ",
                hash: "BYTEA",
                reason: "VARCHAR(32)",
                user_agent: "VARCHAR(512)",
                ip: "VARCHAR(45)",
                device_name: "VARCHAR(255)",
                data: "TEXT",
            },
            // `DATETIME(6)` holds UTC; the user id is binary so that comparisons are exact.
            Dialect::MySql => Self {
                id: "CHAR(36)",
                user: "VARBINARY(255)",
                time: "DATETIME(6)",
                hash: "BINARY(32)",
                reason: "VARCHAR(32)",
                user_agent: "VARCHAR(512)",
                ip: "VARCHAR(45)",
                device_name: "VARCHAR(255)",
                data: "LONGTEXT",
            },
        }
    }
}

/// Runs, one by one, the statements `build` writes for the connection's dialect.
async fn run_statements(
    manager: &SchemaManager<'_>,
    table: &TableName,
    build: fn(Dialect, &TableName) -> Vec<String>,
) -> Result<(), DbErr> {
    let dialect = Dialect::from_backend(manager.get_database_backend())
        .map_err(|e| DbErr::Migration(e.to_string()))?;
    for statement in build(dialect, table) {
        manager
            .get_connection()
            .execute_unprepared(&statement)
            .await?;
    }
    Ok(())
}

/// The first migration: the sessions table, its indexes and (MySQL) the per-user lock table.
struct CreateSessions {
    table: TableName,
}

impl MigrationName for CreateSessions {
    fn name(&self) -> &str {
        "m20261128_000001_create_sessions"
    }
}

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "the signatures must match the trait's, which elides the manager's lifetime"
)]
impl MigrationTrait for CreateSessions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, &self.table, sessions_sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = self.table.as_str();
        if manager.get_database_backend() == sea_orm::DbBackend::MySql {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(format!("{t}_user_locks")))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
            .await
    }
}

/// The second migration: the shared-secrets table (see [`secrets_sql`]).
struct CreateSecrets {
    table: TableName,
}

impl MigrationName for CreateSecrets {
    fn name(&self) -> &str {
        "m20261130_000002_create_secrets"
    }
}

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "the signatures must match the trait's, which elides the manager's lifetime"
)]
impl MigrationTrait for CreateSecrets {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, &self.table, secrets_sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new(format!("{}_secrets", self.table)))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_every_column() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let sql = schema_sql(dialect, &TableName::default());
            let create = &sql[0];
            for column in crate::sql::INSERT_COLUMNS.split(',') {
                // The quoted name, so that `expires_at` is not found inside `idle_expires_at`.
                let quoted = dialect.quote(column.trim());
                assert!(create.contains(&quoted), "{dialect:?}: {quoted}");
            }
            assert!(sql[1].contains("auth_sessions_user_created_idx"));
            assert!(sql[2].contains("auth_sessions_expires_idx"));
            // Sessions, two indexes, (MySQL) the lock table; then the secrets table and (MySQL)
            // the clean-up of orphaned lock rows.
            assert_eq!(sql.len(), if dialect == Dialect::MySql { 6 } else { 4 });
            let secrets = &sql[if dialect == Dialect::MySql { 4 } else { 3 }];
            assert!(secrets.contains("auth_sessions_secrets"), "{secrets}");
            for column in ["name", "value", "created_at"] {
                assert!(secrets.contains(&dialect.quote(column)), "{secrets}");
            }
        }
    }
}
