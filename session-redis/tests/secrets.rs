//! `shared_secret`: concurrent first calls agree on one value, on every topology; the key is in
//! the store's prefix, has no TTL, and no listing shows it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{Error, InputError, SessionLimit, SessionStore, UserId};
use session_redis::RedisStore;
use support::Topo;

const NAME: &str = "rotation-key";

async fn concurrent_first_calls_agree(topo: Topo) {
    if support::skip(topo) {
        return;
    }
    let config = support::config(topo);
    let prefix = config.key_prefix.clone();
    // Two stores on the same prefix stand for two processes sharing the backend.
    let stores = [
        support::connect(topo, config.clone()).await,
        support::connect(topo, config).await,
    ];
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for n in 0..8_u8 {
        let store: RedisStore = stores[usize::from(n % 2)].clone();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            let candidate = vec![n; 32];
            start.wait().await;
            (
                candidate.clone(),
                store.shared_secret(NAME, &candidate).await.unwrap(),
            )
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let agreed = answers[0].1.clone();
    assert!(
        answers.iter().all(|(_, answer)| *answer == agreed),
        "{topo:?}: {answers:?}"
    );
    assert!(
        answers.iter().any(|(candidate, _)| *candidate == agreed),
        "{topo:?}: the value is one of the candidates"
    );
    // Later calls, with any candidate, get the stored value.
    assert_eq!(
        stores[0].shared_secret(NAME, b"later").await.unwrap(),
        agreed
    );
    // Another name is another secret.
    assert_eq!(
        stores[1].shared_secret("other", b"second").await.unwrap(),
        b"second"
    );

    // A session beside it: the listing shows the session only.
    let user = UserId::new("secret-neighbour").unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let record = support::record(&user, now, hour, hour);
    stores[0]
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let listed = stores[0]
        .list(&user, now, NonZeroUsize::new(100).unwrap())
        .await
        .unwrap();
    assert_eq!(listed, vec![record.clone()]);
    stores[0]
        .revoke_all(&user, None, now, session_core::RevokeReason::LogoutAll)
        .await
        .unwrap();
    assert_eq!(stores[1].shared_secret(NAME, b"x").await.unwrap(), agreed);

    // The key: in the prefix, no TTL, the stored bytes.
    let keys = support::all_keys_with_ttl(topo, &prefix).await;
    let secret_key = format!("{prefix}secret:{NAME}");
    let (_, ttl) = keys
        .iter()
        .find(|(key, _)| *key == secret_key)
        .unwrap_or_else(|| panic!("{topo:?}: no key {secret_key} among {keys:?}"));
    assert_eq!(*ttl, -1, "{topo:?}: the secret has no TTL");
    assert!(
        keys.iter()
            .filter(|(key, _)| key.contains(":u:"))
            .all(|(key, _)| !key.contains("secret")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_agree_standalone() {
    concurrent_first_calls_agree(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_agree_sentinel() {
    concurrent_first_calls_agree(Topo::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_agree_cluster() {
    concurrent_first_calls_agree(Topo::Cluster).await;
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_sent() {
    let Some(store) = support::store(Topo::Standalone).await else {
        return;
    };
    for (name, candidate) in [
        ("", &b"x"[..]),
        ("has space", b"x"),
        ("new\nline", b"x"),
        ("brace{", b"x"),
        ("ok", b""),
    ] {
        let result = store.shared_secret(name, candidate).await;
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "{name:?}: {result:?}"
        );
    }
    let long = vec![1; 1025];
    assert!(matches!(
        store.shared_secret("ok", &long).await,
        Err(Error::InvalidInput(InputError::TooLong { .. }))
    ));
}
