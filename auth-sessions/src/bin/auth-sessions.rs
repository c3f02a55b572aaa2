//! `auth-sessions`: the admin CLI. It reads the same configuration as the library
//! (`--config FILE` or `AUTH_SESSIONS_CONFIG`, then `DATABASE_URL` / `REDIS_URL`, then the
//! `AUTH_SESSIONS_*` variables) and acts on the configured store.
//!
//! Exit codes: 0 success; 1 the session or sessions asked for do not exist or are not live;
//! 2 bad arguments; 3 a destructive command was not confirmed; 4 the command is not supported
//! by the configured store; 69 the store is unavailable; 70 the store failed; 78 the
//! configuration is invalid.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results and errors"
)]

use std::io::{BufRead, IsTerminal, Write};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use auth_sessions::time::OffsetDateTime;
use auth_sessions::time::format_description::well_known::Rfc3339;
use auth_sessions::{
    ConfigError, ConnectError, Error, InstrumentedStore, LoadError, RevokeReason, SessionId,
    SessionManager, SessionRecord, SessionStore, SessionsConfig, StorageConfig, UserId,
};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Administer auth sessions: migrations, schema, listing, inspection, revocation, purge.
#[derive(Debug, Parser)]
#[command(
    name = "auth-sessions",
    version,
    about = "Administer auth sessions: migrations, schema, listing, inspection, revocation, purge, statistics",
    long_about = None,
    after_help = "Configuration: --config FILE or AUTH_SESSIONS_CONFIG, then DATABASE_URL / REDIS_URL, then AUTH_SESSIONS_<SECTION>__<KEY> variables.\nExit codes: 0 ok, 1 not found or not live, 2 bad arguments, 3 not confirmed, 4 unsupported by the store, 69 store unavailable, 70 store failed, 78 invalid configuration."
)]
struct Cli {
    /// A TOML configuration file (default: the file named by AUTH_SESSIONS_CONFIG, if any).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print results as JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// Log what is done on standard error (repeat for more detail); RUST_LOG also works.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the database schema (nothing to do for Redis or memory).
    Migrate,
    /// Print the SQL that creates the schema, for sqlx, diesel, flyway and the like.
    Schema {
        /// The database.
        #[arg(long, value_enum)]
        dialect: DialectArg,
        /// The sessions table (default: the configured one, or `auth_sessions`).
        #[arg(long)]
        table: Option<String>,
    },
    /// List a user's live sessions, newest first.
    List {
        /// The user id.
        #[arg(long)]
        user: String,
    },
    /// Show one session as stored, whatever its state (never a token or a hash).
    Show {
        /// The session id (36 hexadecimal characters).
        session: SessionId,
    },
    /// Revoke one session, or all of a user's live sessions.
    Revoke {
        /// The session to revoke.
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        session: Option<SessionId>,
        /// The user whose sessions to revoke.
        #[arg(long)]
        user: Option<String>,
        /// The reason recorded (default: `logout` for one session, `logout_all` for a user).
        #[arg(long, value_parser = parse_reason)]
        reason: Option<RevokeReason>,
        /// Do not ask before revoking more than one session.
        #[arg(long, short)]
        yes: bool,
    },
    /// Delete expired records now (batched as `cleanup.batch_size` says).
    Purge,
    /// Print how many sessions the store holds, by state and revocation reason (database and
    /// Redis stores; a full scan: for an occasional look).
    Stats,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DialectArg {
    Sqlite,
    Postgres,
    Mysql,
}

fn parse_reason(text: &str) -> Result<RevokeReason, String> {
    text.parse().map_err(|_| {
        let all: Vec<&str> = RevokeReason::ALL.iter().map(|r| r.as_str()).collect();
        format!("expected one of: {}", all.join(", "))
    })
}

/// A failure, with the exit code scripts can test.
#[derive(Debug)]
struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
}

const NOT_FOUND: u8 = 1;
const NOT_CONFIRMED: u8 = 3;
const UNSUPPORTED: u8 = 4;
const UNAVAILABLE: u8 = 69;
const STORE_FAILED: u8 = 70;
const CONFIG: u8 = 78;

impl Failure {
    fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            kind,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Unavailable { .. } => UNAVAILABLE,
            Error::InvalidInput(_) => 2,
            _ => STORE_FAILED,
        };
        Self::new(code, auth_sessions::error_kind(&error), error_chain(&error))
    }
}

impl From<ConnectError> for Failure {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Config(error) => error.into(),
            ConnectError::Store(error) => error.into(),
            other => Self::new(STORE_FAILED, "connect", error_chain(&other)),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Self::new(CONFIG, "config", error.to_string())
    }
}

impl From<LoadError> for Failure {
    fn from(error: LoadError) -> Self {
        Self::new(CONFIG, "config", error_chain(&error))
    }
}

/// An error and its sources, joined with `: ` (a driver's reason is often in a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What `show` and `list` print of a session: no token, no hash.
#[derive(Debug, Serialize)]
struct SessionInfo {
    id: String,
    user_id: String,
    state: &'static str,
    created_at: String,
    last_active_at: String,
    idle_expires_at: String,
    absolute_expires_at: String,
    expires_at: String,
    generation: u64,
    rotated_at: Option<String>,
    revoked_at: Option<String>,
    revoke_reason: Option<&'static str>,
    user_agent: Option<String>,
    ip: Option<String>,
    device_name: Option<String>,
    data: Option<serde_json::Value>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

impl SessionInfo {
    fn new(record: &SessionRecord, now: OffsetDateTime) -> Self {
        let state = if record.revoked.is_some() {
            "revoked"
        } else if record.is_expired(now) {
            "expired"
        } else {
            "live"
        };
        Self {
            id: record.id.to_string(),
            user_id: record.user_id.as_str().to_owned(),
            state,
            created_at: rfc3339(record.created_at),
            last_active_at: rfc3339(record.last_active_at),
            idle_expires_at: rfc3339(record.idle_expires_at),
            absolute_expires_at: rfc3339(record.absolute_expires_at),
            expires_at: rfc3339(record.expires_at()),
            generation: record.generation,
            rotated_at: record.rotated_at.map(rfc3339),
            revoked_at: record.revoked.map(|r| rfc3339(r.at)),
            revoke_reason: record.revoked.map(|r| r.reason.as_str()),
            user_agent: record.device.user_agent.clone(),
            ip: record.device.ip.map(|ip| ip.to_string()),
            device_name: record.device.device_name.clone(),
            data: record
                .data
                .as_ref()
                .and_then(|data| serde_json::from_str(data.as_json()).ok()),
        }
    }

    fn print_long(&self) {
        let opt = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        println!("id:                  {}", self.id);
        println!("user:                {}", self.user_id);
        println!("state:               {}", self.state);
        println!("created at:          {}", self.created_at);
        println!("last active at:      {}", self.last_active_at);
        println!("idle expires at:     {}", self.idle_expires_at);
        println!("absolute expires at: {}", self.absolute_expires_at);
        println!("generation:          {}", self.generation);
        println!("rotated at:          {}", opt(&self.rotated_at));
        println!("revoked at:          {}", opt(&self.revoked_at));
        println!("revoke reason:       {}", self.revoke_reason.unwrap_or("-"));
        println!("user agent:          {}", opt(&self.user_agent));
        println!("ip:                  {}", opt(&self.ip));
        println!("device name:         {}", opt(&self.device_name));
        println!(
            "data:                {}",
            self.data
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        );
    }
}

/// Prints `value` as JSON, or runs `human` to print it for people.
fn output<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<(), Failure> {
    if json {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::new(STORE_FAILED, "output", e.to_string()))?;
        println!("{text}");
    } else {
        human(value);
    }
    Ok(())
}

fn user(text: &str) -> Result<UserId, Failure> {
    UserId::new(text).map_err(|e| Failure::new(2, "invalid_input", format!("--user: {e}")))
}

struct Context {
    config: SessionsConfig,
    json: bool,
}

impl Context {
    async fn store(&self, migrate: bool) -> Result<Arc<dyn SessionStore>, Failure> {
        let store = auth_sessions::connect(&self.config.storage, migrate).await?;
        Ok(Arc::new(InstrumentedStore::new(store).with_metrics(false)))
    }

    async fn manager(&self) -> Result<SessionManager, Failure> {
        let store = self.store(false).await?;
        Ok(SessionManager::new(store, self.config.session.clone())?
            .with_telemetry(self.config.telemetry))
    }
}

#[derive(Serialize)]
struct Migrated {
    store: &'static str,
    migrated: bool,
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#[derive(Serialize)]
struct Schema {
    dialect: &'static str,
    table: String,
    statements: Vec<String>,
}

#[derive(Serialize)]
struct Revoked {
    revoked: u64,
    reason: &'static str,
}

#[derive(Serialize)]
struct Purged {
    purged: u64,
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = SessionsConfig::load(cli.config.as_deref())?;
    let cx = Context {
        config,
        json: cli.json,
    };
    match cli.command {
        Command::Migrate => migrate(&cx).await,
        Command::Schema { dialect, table } => schema(&cx, dialect, table),
        Command::List { user: name } => {
            let manager = cx.manager().await?;
            let now = manager.now();
            let sessions: Vec<SessionInfo> = manager
                .list(&user(&name)?)
                .await?
                .iter()
                .map(|record| SessionInfo::new(record, now))
                .collect();
            output(cx.json, &sessions, |sessions| {
                if sessions.is_empty() {
                    println!("no live sessions for user {name}");
                }
                for s in sessions {
                    println!(
                        "{}  created {}  last active {}  expires {}  {}{}",
                        s.id,
                        s.created_at,
                        s.last_active_at,
                        s.expires_at,
                        s.ip.as_deref().unwrap_or("-"),
                        s.user_agent
                            .as_deref()
                            .map(|ua| format!("  {ua}"))
                            .unwrap_or_default()
                    );
                }
            })
        }
        Command::Show { session } => {
            let manager = cx.manager().await?;
            let now = manager.now();
            let record = manager.get(&session).await?.ok_or_else(|| {
                Failure::new(
                    NOT_FOUND,
                    "not_found",
                    format!("session {session} not found"),
                )
            })?;
            output(
                cx.json,
                &SessionInfo::new(&record, now),
                SessionInfo::print_long,
            )
        }
        Command::Revoke {
            session,
            user: name,
            reason,
            yes,
        } => revoke(&cx, session, name, reason, yes).await,
        Command::Purge => {
            let manager = cx.manager().await?;
            let batch =
                NonZeroU32::new(cx.config.cleanup.config.batch_size).unwrap_or(NonZeroU32::MIN);
            let purged =
                auth_sessions::purge_all_expired(manager.store().as_ref(), manager.now(), batch)
                    .await?;
            output(cx.json, &Purged { purged }, |p| {
                println!("purged {} expired sessions", p.purged);
            })
        }
        Command::Stats => stats(&cx).await,
    }
}

async fn migrate(cx: &Context) -> Result<(), Failure> {
    let migrated = matches!(cx.config.storage, StorageConfig::Database(_));
    cx.store(true).await?;
    let result = Migrated {
        store: cx.config.storage.kind(),
        migrated,
    };
    output(cx.json, &result, |r| {
        if r.migrated {
            println!("schema is up to date");
        } else {
            println!("nothing to migrate for the {} store", r.store);
        }
    })
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn schema(cx: &Context, dialect: DialectArg, table: Option<String>) -> Result<(), Failure> {
    use auth_sessions::db::{Dialect, TableName, schema_sql};
    let table = match (table, &cx.config.storage) {
        (Some(table), _) => table,
        (None, StorageConfig::Database(settings)) => settings.table.clone(),
        (None, _) => auth_sessions::db::DEFAULT_TABLE.to_owned(),
    };
    let table = TableName::new(table)
        .map_err(|e| Failure::new(2, "invalid_input", format!("--table: {e}")))?;
    let (dialect, name) = match dialect {
        DialectArg::Sqlite => (Dialect::Sqlite, "sqlite"),
        DialectArg::Postgres => (Dialect::Postgres, "postgres"),
        DialectArg::Mysql => (Dialect::MySql, "mysql"),
    };
    let result = Schema {
        dialect: name,
        table: table.as_str().to_owned(),
        statements: schema_sql(dialect, &table),
    };
    output(cx.json, &result, |r| {
        for statement in &r.statements {
            println!("{statement};");
        }
    })
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn schema(_: &Context, _: DialectArg, _: Option<String>) -> Result<(), Failure> {
    Err(Failure::new(
        UNSUPPORTED,
        "unsupported",
        "this build has no database store: rebuild with the `sqlite`, `postgres` or `mysql` \
         feature",
    ))
}

/// The most sessions of one user counted before asking for confirmation.
const COUNT_LIMIT: usize = 10_000;

async fn revoke(
    cx: &Context,
    session: Option<SessionId>,
    name: Option<String>,
    reason: Option<RevokeReason>,
    yes: bool,
) -> Result<(), Failure> {
    let manager = cx.manager().await?;
    let store = manager.store();
    let now = manager.now();
    let (revoked, reason) = match (session, name) {
        (Some(id), _) => {
            let reason = reason.unwrap_or(RevokeReason::Logout);
            if !store.revoke(&id, now, reason).await? {
                return Err(Failure::new(
                    NOT_FOUND,
                    "not_live",
                    format!("session {id} is not live (unknown, expired or already revoked)"),
                ));
            }
            (1, reason)
        }
        (None, Some(name)) => {
            let user = user(&name)?;
            let reason = reason.unwrap_or(RevokeReason::LogoutAll);
            let limit = NonZeroUsize::new(COUNT_LIMIT).unwrap_or(NonZeroUsize::MIN);
            let live = store.list(&user, now, limit).await?.len();
            if live == 0 {
                return Err(Failure::new(
                    NOT_FOUND,
                    "not_live",
                    format!("user {name} has no live sessions"),
                ));
            }
            if live > 1 && !yes {
                confirm(&format!("revoke {live} live sessions of user {name}?"))?;
            }
            (store.revoke_all(&user, None, now, reason).await?, reason)
        }
        (None, None) => {
            return Err(Failure::new(2, "usage", "give --session or --user"));
        }
    };
    output(
        cx.json,
        &Revoked {
            revoked,
            reason: reason.as_str(),
        },
        |r| println!("revoked {} session(s) ({})", r.revoked, r.reason),
    )
}

/// Asks on the terminal; without one, refuses (scripts pass `--yes`).
fn confirm(question: &str) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            NOT_CONFIRMED,
            "not_confirmed",
            format!("{question} Not confirmed: pass --yes to run without a terminal"),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(NOT_CONFIRMED, "not_confirmed", e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::new(
            NOT_CONFIRMED,
            "not_confirmed",
            "not confirmed",
        ))
    }
}

#[derive(Serialize)]
struct Stats {
    store: &'static str,
    #[serde(flatten)]
    counts: auth_sessions::StoreStats,
}

/// The counts of the configured store, and the store's name.
async fn store_stats(
    storage: &StorageConfig,
) -> Result<(&'static str, auth_sessions::StoreStats), Failure> {
    #[cfg_attr(
        not(any(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "redis"
        )),
        expect(unused_variables, reason = "no shared store is compiled in")
    )]
    let now = auth_sessions::Clock::now(&auth_sessions::SystemClock);
    match storage {
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        StorageConfig::Database(settings) => {
            let db = auth_sessions::db::DbStore::connect_with(settings.clone()).await?;
            Ok((db.dialect().name(), db.stats(now).await?))
        }
        #[cfg(feature = "redis")]
        StorageConfig::Redis(settings) => {
            let redis = auth_sessions::redis::RedisStore::connect(settings.clone()).await?;
            Ok(("redis", redis.stats(now).await?))
        }
        StorageConfig::Memory(_) => Err(Failure::new(
            UNSUPPORTED,
            "unsupported",
            "stats need a shared store: the memory store lives inside one process, and this \
             command's own would be empty",
        )),
        #[allow(unreachable_patterns, reason = "reached when a store's feature is off")]
        other => {
            // Connecting says which feature the store needs.
            auth_sessions::connect(other, false).await?;
            Err(Failure::new(
                UNSUPPORTED,
                "unsupported",
                format!("stats are not available for the {} store", other.kind()),
            ))
        }
    }
}

async fn stats(cx: &Context) -> Result<(), Failure> {
    let (store, counts) = store_stats(&cx.config.storage).await?;
    let stats = Stats { store, counts };
    output(cx.json, &stats, |s| {
        let c = &s.counts;
        println!("store:                      {}", s.store);
        println!("sessions stored:            {}", c.total);
        println!("live:                       {}", c.live);
        println!("revoked (not yet expired):  {}", c.revoked);
        println!("expired (awaiting purge):   {}", c.expired);
        if c.unreadable > 0 {
            println!("unreadable values:          {}", c.unreadable);
        }
        println!("users with live sessions:   {}", c.users_with_live_sessions);
        for (reason, n) in &c.revoked_by_reason {
            println!("  revoked, {reason}: {n}");
        }
    })
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(STORE_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                let error = serde_json::json!({
                    "error": { "kind": failure.kind, "code": failure.code, "message": failure.message }
                });
                println!("{error}");
            }
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
