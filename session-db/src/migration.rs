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
        Box::new(CreateFunctions {
            table: table.clone(),
        }),
        Box::new(LoginEvictsById {
            table: table.clone(),
        }),
    ]
}

/// The statements that create the schema of `table` on `dialect`, as the migrations run them,
/// oldest first: for people who apply migrations with their own tools. (The fourth migration
/// only installs the current login function again, for tables the third migration gave an
/// earlier one; the third already installs the current one, so it has no statement here.)
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
    statements.extend(functions_sql(dialect, table));
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

/// The session function the migration installs for capped logins (see [`functions_sql`]).
pub(crate) fn login_function(table: &TableName) -> String {
    format!("\"{table}_login\"")
}

/// The function the migration installs for revoke-all.
pub(crate) fn revoke_all_function(table: &TableName) -> String {
    format!("\"{table}_revoke_all\"")
}

/// The SQLSTATE the functions raise when the transaction is not at READ COMMITTED (their
/// statement after the lock would then read a snapshot older than the lock).
pub(crate) const NOT_READ_COMMITTED: &str = "SDB01";

/// The third migration's statements, PostgreSQL only (none elsewhere): the functions of a
/// capped login and a revoke-all, a capped login and a revoke-all, each one statement
/// for the store (one round trip, in the statement's own implicit transaction).
///
/// Both take the user's advisory lock first, then run their statements: in a `VOLATILE`
/// PL/pgSQL function at READ COMMITTED each statement takes a fresh snapshot, so the
/// statements after the lock see every login and revoke-all that held it before (they commit
/// before they release it) and every uncapped login that held it shared. At another isolation
/// level the snapshot is the transaction's, taken before the lock wait: the functions refuse
/// to run there (SQLSTATE [`NOT_READ_COMMITTED`]) and the store calls them inside a transaction
/// it begins at READ COMMITTED instead.
fn functions_sql(dialect: Dialect, table: &TableName) -> Vec<String> {
    if dialect != Dialect::Postgres {
        return Vec::new();
    }
    vec![login_function_sql(table), revoke_all_function_sql(table)]
}

/// The guard each function starts with: it refuses to run at another isolation level than
/// READ COMMITTED (see [`functions_sql`]).
fn read_committed_check() -> String {
    format!(
        "IF current_setting('transaction_isolation') <> 'read committed' THEN \
         RAISE EXCEPTION USING ERRCODE = '{NOT_READ_COMMITTED}', \
         MESSAGE = 'session-db: this function must run at READ COMMITTED'; \
         END IF;"
    )
}

/// PostgreSQL: the capped login's function. Under the user's advisory lock it reads the ids of
/// the user's live sessions through the `(user_id, created_at)` index (locking those rows),
/// refuses or evicts by id (the primary key) when they reach the cap, then inserts: no
/// statement of it can scan the whole table, whatever the planner knows of it.
fn login_function_sql(table: &TableName) -> String {
    let t = Dialect::Postgres.quote(table.as_str());
    let check = read_committed_check();
    format!(
        "CREATE OR REPLACE FUNCTION {login}(\
         p_max BIGINT, p_reject BOOLEAN, p_reason VARCHAR, p_table_key INTEGER, \
         p_user_key INTEGER, p_id VARCHAR, p_user_id VARCHAR, p_created_at TIMESTAMPTZ, \
         p_last_active_at TIMESTAMPTZ, p_idle_expires_at TIMESTAMPTZ, \
         p_absolute_expires_at TIMESTAMPTZ, p_token_hash BYTEA, p_generation BIGINT, \
         p_previous_token_hash BYTEA, p_rotated_at TIMESTAMPTZ, p_revoked_at TIMESTAMPTZ, \
         p_revoke_reason VARCHAR, p_user_agent VARCHAR, p_ip VARCHAR, p_device_name VARCHAR, \
         p_data TEXT, p_expires_at TIMESTAMPTZ, \
         OUT inserted BOOLEAN, OUT evicted_ids VARCHAR[]) \
         LANGUAGE plpgsql VOLATILE AS $fn$ \
         DECLARE live_ids VARCHAR[]; \
         BEGIN \
         {check} \
         PERFORM pg_advisory_xact_lock(p_table_key, p_user_key); \
         evicted_ids := '{{}}'; \
         SELECT COALESCE(array_agg(live.id ORDER BY live.created_at DESC, live.id DESC), \
           '{{}}') INTO live_ids FROM (SELECT id, created_at FROM {t} \
           WHERE user_id = p_user_id AND revoked_at IS NULL AND expires_at > p_created_at \
           FOR UPDATE) AS live; \
         IF cardinality(live_ids) >= p_max THEN \
           IF p_reject THEN \
             inserted := FALSE; RETURN; \
           END IF; \
           WITH evicted AS (UPDATE {t} SET revoked_at = p_created_at, \
             revoke_reason = p_reason WHERE id = ANY(live_ids[p_max:]) \
             AND user_id = p_user_id AND revoked_at IS NULL RETURNING id, created_at) \
           SELECT COALESCE(array_agg(e.id ORDER BY e.created_at, e.id), '{{}}') \
             INTO evicted_ids FROM evicted AS e; \
         END IF; \
         INSERT INTO {t} ({columns}) VALUES (p_id, p_user_id, p_created_at, \
           p_last_active_at, p_idle_expires_at, p_absolute_expires_at, p_token_hash, \
           p_generation, p_previous_token_hash, p_rotated_at, p_revoked_at, p_revoke_reason, \
           p_user_agent, p_ip, p_device_name, p_data, p_expires_at); \
         inserted := TRUE; \
         END $fn$",
        login = login_function(table),
        columns = crate::row::INSERT_COLUMNS,
    )
}

/// PostgreSQL: revoke-all's function (one `UPDATE` through the user index, under the user's
/// advisory lock); the number of sessions revoked.
fn revoke_all_function_sql(table: &TableName) -> String {
    let t = Dialect::Postgres.quote(table.as_str());
    let check = read_committed_check();
    format!(
        "CREATE OR REPLACE FUNCTION {revoke_all}(\
         p_table_key INTEGER, p_user_key INTEGER, p_user_id VARCHAR, p_now TIMESTAMPTZ, \
         p_reason VARCHAR, p_keep VARCHAR) RETURNS BIGINT \
         LANGUAGE plpgsql VOLATILE AS $fn$ \
         DECLARE revoked BIGINT; \
         BEGIN \
         {check} \
         PERFORM pg_advisory_xact_lock(p_table_key, p_user_key); \
         UPDATE {t} SET revoked_at = p_now, revoke_reason = p_reason \
           WHERE user_id = p_user_id AND revoked_at IS NULL AND expires_at > p_now \
           AND (p_keep IS NULL OR id <> p_keep); \
         GET DIAGNOSTICS revoked = ROW_COUNT; \
         RETURN revoked; \
         END $fn$",
        revoke_all = revoke_all_function(table),
    )
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

/// The third migration: PostgreSQL's login and revoke-all functions (see [`functions_sql`]);
/// nothing on the other databases.
struct CreateFunctions {
    table: TableName,
}

impl MigrationName for CreateFunctions {
    fn name(&self) -> &str {
        "m20261201_000003_create_functions"
    }
}

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "the signatures must match the trait's, which elides the manager's lifetime"
)]
impl MigrationTrait for CreateFunctions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, &self.table, functions_sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        for function in [
            format!(
                "{}(BIGINT, BOOLEAN, VARCHAR, INTEGER, INTEGER, VARCHAR, VARCHAR, TIMESTAMPTZ, \
                 TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, BYTEA, BIGINT, BYTEA, TIMESTAMPTZ, \
                 TIMESTAMPTZ, VARCHAR, VARCHAR, VARCHAR, VARCHAR, TEXT, TIMESTAMPTZ)",
                login_function(&self.table)
            ),
            format!(
                "{}(INTEGER, INTEGER, VARCHAR, TIMESTAMPTZ, VARCHAR, VARCHAR)",
                revoke_all_function(&self.table)
            ),
        ] {
            manager
                .get_connection()
                .execute_unprepared(&format!("DROP FUNCTION IF EXISTS {function}"))
                .await?;
        }
        Ok(())
    }
}

/// The fourth migration (PostgreSQL only): installs the capped login's current function again,
/// for tables whose third migration installed the earlier one, which evicted through a
/// statement a plan made for a small table ran as a scan of the whole table.
struct LoginEvictsById {
    table: TableName,
}

impl MigrationName for LoginEvictsById {
    fn name(&self) -> &str {
        "m20261201_000004_login_evicts_by_id"
    }
}

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "the signatures must match the trait's, which elides the manager's lifetime"
)]
impl MigrationTrait for LoginEvictsById {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&login_function_sql(&self.table))
            .await
            .map(drop)
    }

    /// Nothing to undo: the function stays (the third migration's `down` drops it).
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
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
            for column in crate::row::INSERT_COLUMNS.split(',') {
                // The quoted name, so that `expires_at` is not found inside `idle_expires_at`.
                let quoted = dialect.quote(column.trim());
                assert!(create.contains(&quoted), "{dialect:?}: {quoted}");
            }
            assert!(sql[1].contains("auth_sessions_user_created_idx"));
            assert!(sql[2].contains("auth_sessions_expires_idx"));
            // Sessions, two indexes, the secrets table; MySQL: the lock table and the clean-up
            // of orphaned lock rows; PostgreSQL: the login and revoke-all functions.
            let extra = if dialect == Dialect::Sqlite { 0 } else { 2 };
            assert_eq!(sql.len(), 4 + extra);
            if dialect == Dialect::Postgres {
                assert!(
                    sql[4].contains("FUNCTION \"auth_sessions_login\"("),
                    "{}",
                    sql[4]
                );
                assert!(
                    sql[5].contains("FUNCTION \"auth_sessions_revoke_all\"("),
                    "{}",
                    sql[5]
                );
            }
            let secrets = &sql[if dialect == Dialect::MySql { 4 } else { 3 }];
            assert!(secrets.contains("auth_sessions_secrets"), "{secrets}");
            for column in ["name", "value", "created_at"] {
                assert!(secrets.contains(&dialect.quote(column)), "{secrets}");
            }
        }
    }
}
