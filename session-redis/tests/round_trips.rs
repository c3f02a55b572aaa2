//! Every store operation is one round trip: counted with `MONITOR` on a dedicated server.
//!
//! `MONITOR` shows each command a client sends, and each command a script runs (tagged
//! `[0 lua]`). Two `ECHO` markers from another connection bracket each operation; the lines
//! between them that are not from a script are the operation's round trips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use session_core::time::macros::datetime;
use session_core::{
    DeviceInfo, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionLimit, SessionStore,
    TokenHash, UserId,
};
use session_redis::RedisStore;

struct Counter {
    lines: BoxStream<'static, String>,
    marker: redis::aio::MultiplexedConnection,
    n: u32,
}

impl Counter {
    async fn new(server: &support::Server) -> Self {
        let client = server.client();
        let monitor = client.get_async_monitor().await.unwrap();
        let marker = client.get_multiplexed_async_connection().await.unwrap();
        Self {
            lines: monitor.into_on_message::<String>().boxed(),
            marker,
            n: 0,
        }
    }

    async fn echo(&mut self, text: &str) {
        let _: String = redis::cmd("ECHO")
            .arg(text)
            .query_async(&mut self.marker)
            .await
            .unwrap();
    }

    /// Runs `op` between two markers and returns the commands it sent (script-internal
    /// commands excluded).
    async fn count<T>(&mut self, op: impl Future<Output = T>) -> (T, Vec<String>) {
        let (out, sent, _) = self.count_with_scripts(op).await;
        (out, sent)
    }

    /// Like [`Counter::count`], and also returns the commands its scripts ran.
    async fn count_with_scripts<T>(
        &mut self,
        op: impl Future<Output = T>,
    ) -> (T, Vec<String>, Vec<String>) {
        self.n += 1;
        let begin = format!("begin-{}", self.n);
        let end = format!("end-{}", self.n);
        self.echo(&begin).await;
        let out = op.await;
        self.echo(&end).await;
        let mut inside = false;
        let mut sent = Vec::new();
        let mut scripts = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next())
                .await
                .expect("MONITOR went quiet")
                .expect("MONITOR stream ended");
            if line.contains(&format!("\"{begin}\"")) {
                inside = true;
            } else if line.contains(&format!("\"{end}\"")) {
                return (out, sent, scripts);
            } else if inside && line.contains(" lua]") {
                scripts.push(line);
            } else if inside {
                sent.push(line);
            }
        }
    }
}

fn command(line: &str) -> String {
    line.split("] \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_uppercase()
}

fn assert_one(what: &str, sent: &[String], expected: &str) {
    assert_eq!(
        sent.len(),
        1,
        "{what} must be one round trip, it sent: {sent:#?}"
    );
    assert_eq!(command(&sent[0]), expected, "{what}: {sent:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_is_one_round_trip() {
    let server = support::Server::start(6398).await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    let mut counter = Counter::new(&server).await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let user = UserId::new("round-trips").unwrap();
    let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);

    let first = support::record(&user, now, hour, 2 * hour);
    let (created, sent) = counter
        .count(store.create(first.clone(), SessionLimit::UNLIMITED))
        .await;
    created.unwrap();
    assert_one("create", &sent, "FCALL");

    let second = support::record(&user, now + Duration::from_secs(1), hour, 2 * hour);
    store.create(second.clone(), cap).await.unwrap();
    let third = support::record(&user, now + Duration::from_secs(2), hour, 2 * hour);
    let (evicting, sent) = counter.count(store.create(third.clone(), cap)).await;
    assert!(
        matches!(evicting.unwrap(), session_core::CreateOutcome::Created { evicted } if evicted == vec![first.id])
    );
    assert_one("create with eviction", &sent, "FCALL");

    let (found, sent) = counter.count(store.find(&second.id)).await;
    assert_eq!(found.unwrap().unwrap(), second);
    assert_one("find", &sent, "GET");

    let later = now + Duration::from_secs(60);
    let (touched, sent) = counter
        .count(store.touch(&second.id, later, later + hour))
        .await;
    assert!(touched.unwrap());
    assert_one("touch", &sent, "FCALL");

    let rotation = Rotation {
        id: second.id,
        presented: second.token_hash,
        next: TokenHash::from_bytes([9; 32]),
        now: later,
        idle_expires_at: later + hour,
        device: None,
    };
    let (rotated, sent) = counter.count(store.rotate(rotation)).await;
    let Ok(RotateOutcome::Rotated(rotated)) = rotated else {
        panic!("rotate: {rotated:?}");
    };
    assert_one("rotate", &sent, "FCALL");

    let with_device = Rotation {
        id: second.id,
        presented: rotated.token_hash,
        next: TokenHash::from_bytes([10; 32]),
        now: later,
        idle_expires_at: later + hour,
        device: Some(DeviceInfo::new().with_user_agent("round-trips/1")),
    };
    let (rotated, sent) = counter.count(store.rotate(with_device)).await;
    assert!(matches!(rotated.unwrap(), RotateOutcome::Rotated(_)));
    assert_one("rotate with a device", &sent, "FCALL");

    let (secret, sent) = counter
        .count(store.shared_secret("round-trips", b"candidate"))
        .await;
    assert_eq!(secret.unwrap(), b"candidate");
    assert_one("shared_secret", &sent, "SET");
    let (secret, sent) = counter
        .count(store.shared_secret("round-trips", b"another"))
        .await;
    assert_eq!(secret.unwrap(), b"candidate");
    assert_one("shared_secret when stored", &sent, "SET");

    let (listed, sent) = counter
        .count(store.list(&user, later, NonZeroUsize::new(10).unwrap()))
        .await;
    assert_eq!(listed.unwrap().len(), 2);
    assert_one("list", &sent, "FCALL");

    let (revoked, sent) = counter
        .count(store.revoke(&second.id, later, RevokeReason::Logout))
        .await;
    assert!(revoked.unwrap());
    assert_one("revoke", &sent, "FCALL");

    let (count, sent) = counter
        .count(store.revoke_all(&user, None, later, RevokeReason::LogoutAll))
        .await;
    assert_eq!(count.unwrap(), 1);
    assert_one("revoke_all", &sent, "FCALL");

    let (purged, sent) = counter
        .count(store.purge_expired(later, NonZeroU32::new(100).unwrap()))
        .await;
    assert_eq!(purged.unwrap(), 0);
    assert!(sent.is_empty(), "purge_expired sends nothing: {sent:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_reloads_after_it_is_flushed() {
    let server = support::Server::start(support::free_port()).await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    let library = store.function_library().unwrap().to_owned();
    let mut counter = Counter::new(&server).await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let user = UserId::new("flushed-functions").unwrap();
    let mut admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let listed: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    let record = support::record(&user, now, Duration::from_secs(60), Duration::from_secs(60));
    let (created, sent) = counter
        .count(store.create(record.clone(), SessionLimit::UNLIMITED))
        .await;
    assert!(matches!(
        created.unwrap(),
        session_core::CreateOutcome::Created { evicted } if evicted.is_empty()
    ));
    let commands: Vec<String> = sent.iter().map(|line| command(line)).collect();
    assert_eq!(commands, ["FCALL", "FUNCTION", "FCALL"], "{sent:#?}");
    let listed: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg(&library)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");

    let (touched, sent) = counter
        .count(store.touch(&record.id, now, now + Duration::from_secs(30)))
        .await;
    assert!(touched.unwrap());
    assert_one("touch after the reload", &sent, "FCALL");
    let (found, sent) = counter.count(store.find(&record.id)).await;
    assert_eq!(
        found.unwrap().unwrap().idle_expires_at,
        now + Duration::from_secs(30)
    );
    assert_one("find", &sent, "GET");
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_reload_after_the_cache_is_flushed() {
    let server = support::Server::start(6397).await;
    let store = RedisStore::connect(server.config().with_use_functions(false))
        .await
        .unwrap();
    assert_eq!(store.function_library(), None);
    let mut counter = Counter::new(&server).await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let user = UserId::new("flushed").unwrap();
    let mut admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();

    let record = support::record(&user, now, Duration::from_secs(60), Duration::from_secs(60));
    let (created, sent) = counter
        .count(store.create(record.clone(), SessionLimit::UNLIMITED))
        .await;
    created.unwrap();
    let commands: Vec<String> = sent.iter().map(|line| command(line)).collect();
    assert_eq!(commands, ["EVALSHA", "SCRIPT", "EVALSHA"], "{sent:#?}");

    let (found, sent) = counter.count(store.find(&record.id)).await;
    assert_eq!(found.unwrap().unwrap(), record);
    assert_one("find", &sent, "GET");
}

/// Without a cap, a login reads a bounded part of the user's index, however many sessions the
/// user holds; with one, it reads every entry to count exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_without_a_cap_reads_a_bounded_part_of_the_index() {
    let server = support::Server::start(6400).await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let user = UserId::new("many-sessions").unwrap();
    for n in 0..200 {
        let record = support::record(&user, now + Duration::from_millis(n), hour, hour);
        store.create(record, SessionLimit::UNLIMITED).await.unwrap();
    }
    let mut counter = Counter::new(&server).await;
    // Records are read with MGET, many keys per command: count the keys.
    let reads = |scripts: &[String]| {
        scripts
            .iter()
            .filter(|line| command(line) == "MGET")
            .map(|line| line.matches(":s:").count())
            .sum::<usize>()
    };

    let record = support::record(&user, now + Duration::from_secs(1), hour, hour);
    let (created, sent, scripts) = counter
        .count_with_scripts(store.create(record, SessionLimit::UNLIMITED))
        .await;
    created.unwrap();
    assert_one("create without a cap", &sent, "FCALL");
    assert_eq!(reads(&scripts), 64, "{} commands", scripts.len());
    assert!(scripts.len() <= 8, "{scripts:#?}");

    let cap = SessionLimit::new(NonZeroU32::new(1000).unwrap(), LimitMode::Reject);
    let record = support::record(&user, now + Duration::from_secs(2), hour, hour);
    let (created, sent, scripts) = counter.count_with_scripts(store.create(record, cap)).await;
    created.unwrap();
    assert_one("create with a cap", &sent, "FCALL");
    assert_eq!(reads(&scripts), 201, "the cap counts every entry");
    assert!(scripts.len() <= 10, "{scripts:#?}");
}

/// The commands each operation's Lua runs on the server, in order, on the paths a login,
/// a refresh, a touch and a logout take.
#[tokio::test(flavor = "multi_thread")]
async fn each_operation_runs_few_commands_on_the_server() {
    let server = support::Server::start(support::free_port()).await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    let mut counter = Counter::new(&server).await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let user = UserId::new("few-commands").unwrap();
    let cap = SessionLimit::new(NonZeroU32::new(20).unwrap(), LimitMode::EvictOldest);
    let ran = |scripts: &[String]| scripts.iter().map(|line| command(line)).collect::<Vec<_>>();

    let first = support::record(&user, now, hour, 2 * hour);
    let (created, _, scripts) = counter
        .count_with_scripts(store.create(first.clone(), cap))
        .await;
    created.unwrap();
    assert_eq!(
        ran(&scripts),
        ["SET", "ZRANGE", "ZADD", "PEXPIRE"],
        "login of a new user"
    );

    let second = support::record(&user, now + Duration::from_secs(1), hour, 3 * hour);
    let (created, _, scripts) = counter
        .count_with_scripts(store.create(second.clone(), cap))
        .await;
    created.unwrap();
    assert_eq!(
        ran(&scripts),
        ["SET", "ZRANGE", "MGET", "ZADD", "PTTL", "PEXPIRE"],
        "login beside one session (the longer absolute expiry extends the index)"
    );

    let rejecting = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::Reject);
    let third = support::record(&user, now + Duration::from_secs(2), hour, hour);
    let (created, _, scripts) = counter
        .count_with_scripts(store.create(third, rejecting))
        .await;
    assert!(matches!(
        created.unwrap(),
        session_core::CreateOutcome::LimitReached
    ));
    assert_eq!(
        ran(&scripts),
        ["EXISTS", "ZRANGE", "MGET"],
        "a refused login"
    );

    let later = now + Duration::from_secs(60);
    let (touched, _, scripts) = counter
        .count_with_scripts(store.touch(&second.id, later, later + hour))
        .await;
    assert!(touched.unwrap());
    assert_eq!(ran(&scripts), ["GET", "SET"], "touch");

    let rotation = Rotation {
        id: second.id,
        presented: second.token_hash,
        next: TokenHash::from_bytes([9; 32]),
        now: later,
        idle_expires_at: later + hour,
        device: None,
    };
    let (rotated, _, scripts) = counter.count_with_scripts(store.rotate(rotation)).await;
    assert!(matches!(rotated.unwrap(), RotateOutcome::Rotated(_)));
    assert_eq!(ran(&scripts), ["GET", "SET"], "rotate");

    let (revoked, _, scripts) = counter
        .count_with_scripts(store.revoke(&second.id, later, RevokeReason::Logout))
        .await;
    assert!(revoked.unwrap());
    assert_eq!(ran(&scripts), ["GET", "SETRANGE"], "revoke");

    let (revoked, _, scripts) = counter
        .count_with_scripts(store.revoke(&second.id, later, RevokeReason::Logout))
        .await;
    assert!(!revoked.unwrap());
    assert_eq!(ran(&scripts), ["GET"], "revoke of a revoked session");

    let (count, _, scripts) = counter
        .count_with_scripts(store.revoke_all(&user, None, later, RevokeReason::LogoutAll))
        .await;
    assert_eq!(count.unwrap(), 1);
    assert_eq!(
        ran(&scripts),
        ["ZRANGE", "MGET", "ZREM", "SETRANGE", "ZREM"],
        "revoke_all: one ZREM of the revoked entry, one of the newly revoked"
    );
}
