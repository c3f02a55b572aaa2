//! Redis memory per session, measured on a dedicated server. Prints the figures quoted in the
//! crate docs:
//!
//! `cargo test -p session-redis --test memory -- --nocapture`

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    reason = "a measuring test"
)]

mod support;

use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{AppData, DeviceInfo, SessionLimit, SessionStore, UserId};
use session_redis::RedisStore;

const USERS: usize = 100;
const PER_USER: usize = 10;

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn usage(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_per_session() {
    let server = support::Server::start(6395).await;
    let config = server.config();
    let prefix = config.key_prefix.clone();
    let store = RedisStore::connect(config).await.unwrap();
    let mut admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // 200 bytes of app data (JSON text).
    let data = AppData::from_json(format!(r#"{{"blob":"{}"}}"#, "x".repeat(189))).unwrap();
    assert_eq!(data.len(), 200);
    let device = DeviceInfo::new()
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
        .with_ip("203.0.113.7".parse().unwrap());

    let now = datetime!(2030-01-01 0:00 UTC);
    let day = Duration::from_secs(86_400);
    let before = used_memory(&mut admin).await;
    let mut session_keys = Vec::new();
    let mut index_keys = Vec::new();
    for u in 0..USERS {
        let user = UserId::new(format!("user-{u:04}@example.com")).unwrap();
        index_keys.push(support::index_key(&prefix, &user));
        for n in 0..PER_USER {
            let mut record = support::record(
                &user,
                now + Duration::from_secs(n as u64),
                30 * day,
                90 * day,
            );
            record.data = Some(data.clone());
            if u % 2 == 1 {
                record.device = device.clone();
            }
            session_keys.push((u % 2 == 1, support::session_key(&prefix, &record.id)));
            store.create(record, SessionLimit::UNLIMITED).await.unwrap();
        }
    }
    let after = used_memory(&mut admin).await;

    let (mut plain, mut with_device) = (Vec::new(), Vec::new());
    for (has_device, key) in &session_keys {
        let bytes = usage(&mut admin, key).await;
        if *has_device {
            with_device.push(bytes);
        } else {
            plain.push(bytes);
        }
    }
    let mut index_total = 0;
    for key in &index_keys {
        index_total += usage(&mut admin, key).await;
    }
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len() as f64;
    let index_share = index_total as f64 / session_keys.len() as f64;
    let per_session_total = (after - before) as f64 / session_keys.len() as f64;
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(&session_keys[0].1)
        .query_async(&mut admin)
        .await
        .unwrap();
    eprintln!(
        "session key, 200 B app data, no device info: {:.0} B (MEMORY USAGE, encoding {encoding})",
        mean(&plain)
    );
    eprintln!(
        "session key, 200 B app data, user agent + IP:  {:.0} B",
        mean(&with_device)
    );
    eprintln!("index share per session ({PER_USER} sessions per user): {index_share:.0} B");
    eprintln!(
        "per session, session key + index share: {:.0} B (no device), {:.0} B (with device)",
        mean(&plain) + index_share,
        mean(&with_device) + index_share
    );
    eprintln!("used_memory delta per session (all overheads): {per_session_total:.0} B");

    assert_eq!(encoding, "raw", "a record is one string");
    assert!(
        mean(&plain) + index_share < 768.0,
        "a session grew past 768 B"
    );
    assert!(per_session_total < 1200.0, "{per_session_total}");
}
