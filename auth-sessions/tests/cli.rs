//! The `auth-sessions` binary against real stores: every subcommand on SQLite (and on
//! PostgreSQL, MariaDB and Redis when those features are on), bad arguments, a store that is down, and
//! configuration errors. Each run is a child process with its own environment.
//!
//! PostgreSQL, MariaDB and Redis must be running on 127.0.0.1 (`scripts/services.sh up`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use auth_sessions::{
    DeviceInfo, LoginRequest, ManualClock, RefreshToken, Sessions, SessionsConfig, UserId,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_auth-sessions");

fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{prefix}_{:08x}", n & 0xffff_ffff)
}

/// Runs the binary with exactly `env` (nothing inherited but PATH) and no standard input.
fn cli(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.env_clear().stdin(Stdio::null()).args(args);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited with a code")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs and expects success with JSON on stdout.
fn json(env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = cli(env, &all);
    assert_eq!(
        code(&output),
        0,
        "{args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&output)))
}

/// The hash of a token as lowercase hex, to check that no output carries it.
fn hash_hex(token: &RefreshToken) -> String {
    token
        .hash()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_no_secret(text: &str, tokens: &[&RefreshToken]) {
    for token in tokens {
        let secret = token.expose_secret().rsplit('.').next().unwrap();
        assert!(!text.contains(secret), "a token secret in: {text}");
        assert!(!text.contains(&hash_hex(token)), "a token hash in: {text}");
        assert!(
            !text.contains(&hash_hex(token)[..8]),
            "a hash prefix in: {text}"
        );
    }
    assert!(!text.contains("hash"), "a hash field in: {text}");
}

/// Sessions for the flow: alice has three live ones, bob one, carol one that expired long ago.
struct Seeded {
    alice: Vec<RefreshToken>,
    bob: RefreshToken,
    carol: RefreshToken,
}

async fn seed(config: SessionsConfig, server_hint: &str) -> Seeded {
    let mut config = config;
    config.cleanup.enabled = false;
    config.migrate.0 = false;
    let sessions = Sessions::start(config.clone()).await.unwrap_or_else(|e| {
        panic!("cannot reach the store ({e}); {server_hint}");
    });
    let manager = sessions.manager();
    let alice = UserId::new("alice").unwrap();
    let mut tokens = Vec::new();
    for n in 0..3 {
        let device = DeviceInfo::new()
            .with_user_agent(format!("Firefox/{n}"))
            .with_ip("192.0.2.7".parse().unwrap());
        let login = manager
            .login(&alice, LoginRequest::new().with_device(device))
            .await
            .unwrap();
        tokens.push(login.token);
        // Distinct creation instants, so "newest first" has one answer.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let bob = manager
        .login(&UserId::new("bob").unwrap(), LoginRequest::new())
        .await
        .unwrap()
        .token;
    // Refresh bob once: his token rotates, so there is a previous hash stored too.
    let bob = manager.refresh(bob.expose_secret()).await.unwrap().token;
    sessions.shutdown().await;
    // Carol logged in 400 days ago: past the 90-day absolute lifetime.
    let past =
        auth_sessions::Clock::now(&auth_sessions::SystemClock) - Duration::from_secs(400 * 86_400);
    let old = Sessions::builder(config)
        .clock(Arc::new(ManualClock::new(past)))
        .start()
        .await
        .unwrap();
    let carol = old
        .manager()
        .login(&UserId::new("carol").unwrap(), LoginRequest::new())
        .await
        .unwrap()
        .token;
    old.shutdown().await;
    Seeded {
        alice: tokens,
        bob,
        carol,
    }
}

/// Every subcommand against the database that `env` configures.
async fn database_flow(env: &[(&str, &str)], seed_config: SessionsConfig, hint: &str) {
    let migrated = json(env, &["migrate"]);
    assert_eq!(migrated["store"], "database");
    assert_eq!(migrated["migrated"], true);
    // Twice is fine.
    assert_eq!(code(&cli(env, &["migrate"])), 0);

    let seeded = seed(seed_config, hint).await;
    let all_tokens: Vec<&RefreshToken> = seeded
        .alice
        .iter()
        .chain([&seeded.bob, &seeded.carol])
        .collect();

    // list
    let listed = json(env, &["list", "--user", "alice"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = seeded
        .alice
        .iter()
        .rev()
        .map(|t| t.session_id().to_string())
        .collect();
    assert_eq!(ids, expected, "newest first");
    assert!(listed.iter().all(|s| s["state"] == "live"));
    assert_eq!(listed[0]["user_agent"], "Firefox/2");
    assert_eq!(listed[0]["ip"], "192.0.2.7");
    let human = cli(env, &["list", "--user", "alice"]);
    assert_eq!(code(&human), 0);
    assert_eq!(stdout(&human).lines().count(), 3);
    assert_no_secret(&(stdout(&human) + &listed.len().to_string()), &all_tokens);
    let nobody = json(env, &["list", "--user", "nobody"]);
    assert_eq!(nobody.as_array().unwrap().len(), 0);

    // show
    let bob_id = seeded.bob.session_id().to_string();
    let shown = json(env, &["show", &bob_id]);
    assert_eq!(shown["id"], bob_id.as_str());
    assert_eq!(shown["user_id"], "bob");
    assert_eq!(shown["state"], "live");
    assert_eq!(shown["generation"], 1);
    assert!(shown["rotated_at"].is_string());
    assert_no_secret(&shown.to_string(), &all_tokens);
    let human = cli(env, &["show", &bob_id]);
    assert_eq!(code(&human), 0);
    assert!(stdout(&human).contains("generation:          1"));
    assert_no_secret(&stdout(&human), &all_tokens);
    let carol_shown = json(env, &["show", &seeded.carol.session_id().to_string()]);
    assert_eq!(carol_shown["state"], "expired");
    let missing = cli(env, &["show", "0000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert_eq!(code(&missing), 1, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("not found"));

    // stats
    let stats = json(env, &["stats"]);
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["live"], 4);
    assert_eq!(stats["revoked"], 0);
    assert_eq!(stats["expired"], 1);
    assert_eq!(stats["users_with_live_sessions"], 2);

    // revoke one session, with a reason
    let revoked = json(
        env,
        &[
            "revoke",
            "--session",
            &bob_id,
            "--reason",
            "password_changed",
        ],
    );
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(revoked["reason"], "password_changed");
    let shown = json(env, &["show", &bob_id]);
    assert_eq!(shown["state"], "revoked");
    assert_eq!(shown["revoke_reason"], "password_changed");
    let again = cli(env, &["revoke", "--session", &bob_id]);
    assert_eq!(code(&again), 1, "revoking twice: {}", stderr(&again));

    // revoke a user's sessions: refused without a terminal or --yes, then confirmed
    let refused = cli(env, &["revoke", "--user", "alice"]);
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("3 live sessions"));
    assert_eq!(
        json(env, &["list", "--user", "alice"])
            .as_array()
            .unwrap()
            .len(),
        3,
        "nothing revoked without confirmation"
    );
    let revoked = json(env, &["revoke", "--user", "alice", "--yes"]);
    assert_eq!(revoked["revoked"], 3);
    assert_eq!(revoked["reason"], "logout_all");
    assert_eq!(
        json(env, &["list", "--user", "alice"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let none_left = cli(env, &["revoke", "--user", "alice", "--yes"]);
    assert_eq!(code(&none_left), 1);

    // purge: carol's expired record goes; revoked but unexpired records stay
    let purged = json(env, &["purge"]);
    assert_eq!(purged["purged"], 1);
    let stats = json(env, &["stats"]);
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["live"], 0);
    assert_eq!(stats["revoked"], 4);
    assert_eq!(stats["expired"], 0);
    assert_eq!(stats["revoked_by_reason"]["logout_all"], 3);
    assert_eq!(stats["revoked_by_reason"]["password_changed"], 1);
    let human = cli(env, &["stats"]);
    assert!(stdout(&human).contains("live:"), "{}", stdout(&human));
}

fn sqlite_setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sessions.db").display()
    );
    (dir, url)
}

fn database_config(url: &str, table: &str) -> SessionsConfig {
    toml::from_str(&format!(
        "[storage]\ntype = \"database\"\nurl = \"{url}\"\ntable = \"{table}\"\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn every_subcommand_on_sqlite() {
    let (_dir, url) = sqlite_setup();
    let env = [("DATABASE_URL", url.as_str())];
    database_flow(&env, database_config(&url, "auth_sessions"), "").await;
}

/// The whole database flow on a server, in a table of its own, dropped afterwards with every
/// table its migrations made (`quote` is the dialect's identifier quote).
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn flow_on_server(url: &str, quote: char, hint: &str) {
    use auth_sessions::db::sea_orm::ConnectionTrait;
    let table = unique("cli");
    let env = [
        ("DATABASE_URL", url),
        ("AUTH_SESSIONS_STORAGE__TABLE", table.as_str()),
    ];
    database_flow(&env, database_config(url, &table), hint).await;
    let store = auth_sessions::db::DbStore::connect(url).await.unwrap();
    for suffix in ["", "_migrations", "_secrets", "_user_locks"] {
        store
            .connection()
            .execute_unprepared(&format!(
                "DROP TABLE IF EXISTS {quote}{table}{suffix}{quote}"
            ))
            .await
            .unwrap();
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn every_subcommand_on_postgres() {
    flow_on_server(
        "postgres://postgres@127.0.0.1/test",
        '"',
        "start PostgreSQL with scripts/services.sh up",
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn every_subcommand_on_mariadb() {
    flow_on_server(
        "mysql://root@127.0.0.1:3306/test",
        '`',
        "start MariaDB with scripts/services.sh up",
    )
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn show_list_revoke_on_redis() {
    let prefix = format!("{}:", unique("cli"));
    let env = [
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("AUTH_SESSIONS_STORAGE__KEY_PREFIX", prefix.as_str()),
    ];
    let config: SessionsConfig = toml::from_str(&format!(
        "[storage]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n"
    ))
    .unwrap();
    let migrated = json(&env, &["migrate"]);
    assert_eq!(migrated["migrated"], false);
    let seeded = seed(config, "start Redis with scripts/services.sh up").await;
    let bob_id = seeded.bob.session_id().to_string();
    let shown = json(&env, &["show", &bob_id]);
    assert_eq!(shown["user_id"], "bob");
    assert_eq!(shown["generation"], 1);
    assert_eq!(shown["state"], "live");
    let tokens: Vec<&RefreshToken> = seeded.alice.iter().chain([&seeded.bob]).collect();
    assert_no_secret(&shown.to_string(), &tokens);
    assert_eq!(
        json(&env, &["list", "--user", "alice"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(json(&env, &["revoke", "--session", &bob_id])["revoked"], 1);
    assert_eq!(json(&env, &["show", &bob_id])["state"], "revoked");
    assert_eq!(
        json(&env, &["revoke", "--user", "alice", "--yes"])["revoked"],
        3
    );
    let stats = json(&env, &["stats"]);
    assert_eq!(stats["store"], "redis");
    assert_eq!(stats["live"], 0, "{stats}");
    assert_eq!(stats["revoked"], 4, "{stats}");
    assert_eq!(stats["revoked_by_reason"]["logout"], 1, "{stats}");
    assert_eq!(stats["revoked_by_reason"]["logout_all"], 3, "{stats}");
    assert_eq!(stats["users_with_live_sessions"], 0, "{stats}");
    // Carol's record expired at login: its key lives a second at most, so it may be gone.
    let total = stats["total"].as_u64().unwrap();
    let expired = stats["expired"].as_u64().unwrap();
    assert!(expired <= 1 && total == 4 + expired, "{stats}");
    let human = cli(&env, &["stats"]);
    assert_eq!(code(&human), 0, "{}", stderr(&human));
    assert!(
        stdout(&human).contains("revoked, logout_all: 3"),
        "{}",
        stdout(&human)
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), typing `typed`.
fn on_terminal(env: &[(&str, &str)], args: &str, typed: &str) -> Output {
    use std::io::Write as _;
    let mut command = Command::new("script");
    command
        .env_clear()
        .args(["-qec", &format!("{BIN} {args}"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("`script` (util-linux) is needed for this test: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn revoking_a_users_sessions_asks_on_a_terminal() {
    let (_dir, url) = sqlite_setup();
    let env = [("DATABASE_URL", url.as_str())];
    assert_eq!(code(&cli(&env, &["migrate"])), 0);
    let seeded = seed(database_config(&url, "auth_sessions"), "").await;
    assert_eq!(seeded.alice.len(), 3);
    let declined = on_terminal(&env, "revoke --user alice", "n\n");
    assert_eq!(code(&declined), 3, "{}", stdout(&declined));
    assert!(stdout(&declined).contains("[y/N]"), "{}", stdout(&declined));
    assert_eq!(
        json(&env, &["list", "--user", "alice"])
            .as_array()
            .unwrap()
            .len(),
        3,
        "declined: nothing revoked"
    );
    let accepted = on_terminal(&env, "revoke --user alice", "y\n");
    assert_eq!(code(&accepted), 0, "{}", stdout(&accepted));
    assert!(stdout(&accepted).contains("revoked 3 session(s) (logout_all)"));
    assert_eq!(
        json(&env, &["list", "--user", "alice"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // One session needs no confirmation.
    let bob = on_terminal(&env, "revoke --user bob", "");
    assert_eq!(code(&bob), 0, "{}", stdout(&bob));
    assert!(!stdout(&bob).contains("[y/N]"));
}

#[test]
fn schema_prints_each_dialect() {
    for (dialect, marker) in [
        ("sqlite", "INTEGER"),
        ("postgres", "TIMESTAMPTZ"),
        ("mysql", "DATETIME(6)"),
    ] {
        let schema = json(&[], &["schema", "--dialect", dialect]);
        assert_eq!(schema["dialect"], dialect);
        assert_eq!(schema["table"], "auth_sessions");
        let statements = schema["statements"].as_array().unwrap();
        assert!(statements.len() >= 2, "{schema}");
        let first = statements[0].as_str().unwrap();
        assert!(first.starts_with("CREATE TABLE"), "{first}");
        assert!(first.contains(marker), "{dialect}: {first}");
        let text = cli(&[], &["schema", "--dialect", dialect]);
        assert_eq!(code(&text), 0);
        assert!(stdout(&text).lines().all(|line| line.ends_with(';')));
    }
    // The table comes from --table, else from the configuration.
    let custom = json(
        &[],
        &["schema", "--dialect", "postgres", "--table", "my_sessions"],
    );
    assert!(
        custom["statements"][0]
            .as_str()
            .unwrap()
            .contains("\"my_sessions\"")
    );
    let configured = json(
        &[("AUTH_SESSIONS_STORAGE__TABLE", "tenant_sessions")],
        &["schema", "--dialect", "mysql"],
    );
    assert_eq!(configured["table"], "tenant_sessions");
}

#[test]
fn the_printed_sqlite_schema_creates_a_table_the_store_uses() {
    let (_dir, url) = sqlite_setup();
    let schema = json(&[], &["schema", "--dialect", "sqlite"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use auth_sessions::db::sea_orm::ConnectionTrait;
        let store = auth_sessions::db::DbStore::connect(&url).await.unwrap();
        for statement in schema["statements"].as_array().unwrap() {
            store
                .connection()
                .execute_unprepared(statement.as_str().unwrap())
                .await
                .unwrap();
        }
    });
    // The CLI can use the table created by hand (no migrate run).
    let env = [("DATABASE_URL", url.as_str())];
    let stats = json(&env, &["stats"]);
    assert_eq!(stats["total"], 0);
}

#[test]
fn bad_arguments_exit_with_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["show", "not-a-session-id"],
        &["revoke"],
        &[
            "revoke",
            "--session",
            "0000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "--user",
            "alice",
        ],
        &["revoke", "--user", "alice", "--reason", "because"],
        &["schema"],
        &["schema", "--dialect", "oracle"],
        &["schema", "--dialect", "sqlite", "--table", "Bad Name"],
        &["list"],
        &["list", "--user", ""],
    ];
    for args in cases {
        let output = cli(&[("AUTH_SESSIONS_STORAGE__TYPE", "memory")], args);
        assert_eq!(code(&output), 2, "{args:?}: {}", stderr(&output));
        assert!(!stderr(&output).is_empty(), "{args:?} says why");
    }
    let reason = cli(&[], &["revoke", "--user", "a", "--reason", "because"]);
    assert!(
        stderr(&reason).contains("logout_all"),
        "{}",
        stderr(&reason)
    );
}

#[test]
fn configuration_errors_exit_with_78_and_name_the_variable() {
    let output = cli(
        &[("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "0s")],
        &["list", "--user", "alice"],
    );
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    assert!(stderr(&output).contains("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT"));
    let output = cli(&[], &["--config", "/nonexistent/sessions.toml", "stats"]);
    assert_eq!(code(&output), 78);
    assert!(stderr(&output).contains("/nonexistent/sessions.toml"));
    let output = cli(&[("DATABASE_URL", "oracle://db/app")], &["--json", "stats"]);
    assert_eq!(code(&output), 78);
    assert!(
        stderr(&output).contains("DATABASE_URL"),
        "{}",
        stderr(&output)
    );
    let error: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(error["error"]["kind"], "config");
    assert_eq!(error["error"]["code"], 78);
}

#[test]
fn a_store_that_is_down_exits_with_69() {
    let (_dir, url) = sqlite_setup();
    // SQLite in a directory that does not exist cannot open its file.
    let missing = url.replace("sessions.db", "absent/dir/sessions.db");
    let downs: Vec<Vec<(&str, &str)>> = vec![
        #[cfg(feature = "postgres")]
        vec![
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/test"),
            ("AUTH_SESSIONS_STORAGE__CONNECT_TIMEOUT", "1s"),
        ],
        #[cfg(feature = "redis")]
        vec![
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("AUTH_SESSIONS_STORAGE__CONNECT_TIMEOUT", "200ms"),
            ("AUTH_SESSIONS_STORAGE__RESPONSE_TIMEOUT", "500ms"),
        ],
        vec![("DATABASE_URL", missing.as_str())],
    ];
    for env in &downs {
        for args in [&["list", "--user", "alice"][..], &["purge"], &["migrate"]] {
            let started = std::time::Instant::now();
            let output = cli(env, args);
            let message = stderr(&output);
            assert_eq!(code(&output), 69, "{env:?} {args:?}: {message}");
            assert!(message.contains("unavailable"), "{message}");
            assert!(message.starts_with("error: "), "{message}");
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "bounded: {:?}",
                started.elapsed()
            );
        }
    }
}
