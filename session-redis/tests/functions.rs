//! The Functions library: loaded on every data node, shared by stores of one version, and the
//! fallback to scripts on a server that refuses `FUNCTION`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{SessionLimit, SessionRecord, SessionStore, UserId};
use session_redis::RedisStore;
use support::Topo;

/// The libraries named `name` on the server behind `conn`.
async fn libraries(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> usize {
    let listed: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg(name)
        .query_async(conn)
        .await
        .unwrap();
    listed.len()
}

/// A one-minute session of the new user `user`, created in `store` at `now`.
async fn stored(store: &RedisStore, user: &str, now: OffsetDateTime) -> SessionRecord {
    let user = UserId::new(user).unwrap();
    let record = support::record(&user, now, Duration::from_secs(60), Duration::from_secs(60));
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    record
}

/// A store on `topo` uses the library, and every node holding data (each Cluster primary)
/// has it, so an `FCALL` routed to any slot finds its function.
async fn loaded_everywhere(topo: Topo) {
    let Some(store) = support::store(topo).await else {
        return;
    };
    let name = store
        .function_library()
        .expect("Redis 7 has Functions")
        .to_owned();
    assert!(name.starts_with("auth_sessions_"), "{name}");
    for mut conn in support::data_nodes(topo).await {
        assert_eq!(libraries(&mut conn, &name).await, 1, "{topo:?}: {name}");
    }
    // Users spread over slots (and so over the Cluster's primaries) all work.
    let now = datetime!(2030-01-01 0:00 UTC);
    for n in 0..24 {
        let record = stored(&store, &format!("spread-{n}"), now).await;
        assert!(
            store
                .touch(&record.id, now, now + Duration::from_secs(30))
                .await
                .unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_is_loaded_on_the_standalone_server() {
    loaded_everywhere(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_is_loaded_on_the_sentinel_master() {
    loaded_everywhere(Topo::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_is_loaded_on_every_cluster_primary() {
    loaded_everywhere(Topo::Cluster).await;
}

/// A second store of the same version loads the library again: that succeeds, and both use it.
#[tokio::test(flavor = "multi_thread")]
async fn stores_of_one_version_share_the_library() {
    let server = support::Server::start(support::free_port()).await;
    let config = server.config();
    let first = RedisStore::connect(config.clone()).await.unwrap();
    let second = RedisStore::connect(config).await.unwrap();
    assert_eq!(first.function_library(), second.function_library());
    let name = first.function_library().unwrap();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(libraries(&mut conn, name).await, 1);
    let listed: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "one library for both stores: {listed:?}");

    let now = datetime!(2030-01-01 0:00 UTC);
    let record = stored(&first, "shared", now).await;
    assert!(
        second
            .touch(&record.id, now, now + Duration::from_secs(30))
            .await
            .unwrap()
    );
}

/// A server without a usable `FUNCTION` command (here renamed away, as on a server before
/// Redis 7) gets scripts, and every operation works.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_functions_gets_scripts() {
    let server = support::Server::start_with(
        support::free_port(),
        vec!["--rename-command".into(), "FUNCTION".into(), String::new()],
    )
    .await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    assert_eq!(store.function_library(), None);
    let now = datetime!(2030-01-01 0:00 UTC);
    let record = stored(&store, "scripts", now).await;
    assert!(
        store
            .touch(&record.id, now, now + Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .find(&record.id)
            .await
            .unwrap()
            .unwrap()
            .idle_expires_at,
        now + Duration::from_secs(30)
    );
}

/// The revocation stamp a revoke writes is built by the store; a call of the library with a
/// stamp of the wrong length (a caller of another version, say) is refused before anything is
/// written, so no record is half-marked.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_revocation_stamp_writes_nothing() {
    let server = support::Server::start(support::free_port()).await;
    let prefix = support::fresh_prefix();
    let store = RedisStore::connect(server.config().with_key_prefix(prefix.clone()))
        .await
        .unwrap();
    let library = store.function_library().unwrap().to_owned();
    let now = datetime!(2030-01-01 0:00 UTC);
    let record = stored(&store, "stamped", now).await;
    let user = record.user_id.clone();
    let key = support::session_key(&prefix, &record.id);
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let before: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let micros = (now.unix_timestamp_nanos() / 1000).to_string();
    let tag = session_core::RoutingTag::for_user(&user);
    for stamp in [&[1_u8][..], &[1_u8; 10][..]] {
        let mut revoke = redis::cmd("FCALL");
        revoke
            .arg(format!("{library}_revoke"))
            .arg(1)
            .arg(&key)
            .arg(&micros)
            .arg(stamp);
        let mut revoke_all = redis::cmd("FCALL");
        revoke_all
            .arg(format!("{library}_revoke_all"))
            .arg(1)
            .arg(support::index_key(&prefix, &user))
            .arg(&micros)
            .arg("")
            .arg(stamp)
            .arg(format!("{prefix}{{{tag}}}:s:"));
        for call in [revoke, revoke_all] {
            let refused = call
                .query_async::<redis::Value>(&mut conn)
                .await
                .unwrap_err();
            assert!(
                refused.to_string().contains("revocation stamp"),
                "{refused}"
            );
        }
    }
    let after: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(before, after, "the record is untouched");
    let found = store.find(&record.id).await.unwrap().unwrap();
    assert!(found.revoked.is_none());
    // The store's own revoke still works on the record.
    assert!(
        store
            .revoke(&record.id, now, session_core::RevokeReason::Logout)
            .await
            .unwrap()
    );
}
