//! `shared_secret` on every database: concurrent first calls from several tasks and two pools
//! (two processes, as far as the database can tell) all get one value; later calls, whatever
//! their candidate, get it too; the purge never removes it; bad arguments are refused.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};

use session_core::time::macros::datetime;
use session_core::{Error, ROTATION_KEY_SECRET, SessionStore, UserId};
use support::Backend;

async fn first_calls_agree(backend: Backend) {
    if support::skip(backend) {
        return;
    }
    let config = support::config(backend);
    let a = support::connect(backend, config.clone()).await;
    // A second pool on the same table, except in memory (one connection is the database).
    let b = if backend == Backend::SqliteMemory {
        a.clone()
    } else {
        support::connect(backend, config).await
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0_u8..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let candidate = vec![i + 1; 32];
            let got = store
                .shared_secret(ROTATION_KEY_SECRET, &candidate)
                .await
                .unwrap();
            (candidate, got)
        });
    }
    let mut values = Vec::new();
    let mut candidates = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (candidate, got) = joined.unwrap();
        candidates.push(candidate);
        values.push(got);
    }
    let stored = values[0].clone();
    assert!(values.iter().all(|v| *v == stored), "{values:?}");
    assert!(candidates.contains(&stored), "one of the candidates won");

    // Later calls, with any candidate, from either pool: the stored value.
    assert_eq!(
        b.shared_secret(ROTATION_KEY_SECRET, &[0xee; 64])
            .await
            .unwrap(),
        stored
    );
    // Another name is another secret; the largest candidate fits.
    let big = vec![0xab; 1024];
    assert_eq!(a.shared_secret("other_name-2", &big).await.unwrap(), big);

    // The purge, however far in the future, leaves secrets alone; no listing shows them.
    let far = datetime!(9000-01-01 0:00 UTC);
    a.purge_expired(far, NonZeroU32::new(1000).unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.shared_secret(ROTATION_KEY_SECRET, &[1; 32])
            .await
            .unwrap(),
        stored
    );
    let listed = a
        .list(
            &UserId::new(ROTATION_KEY_SECRET).unwrap(),
            far,
            NonZeroUsize::new(10).unwrap(),
        )
        .await
        .unwrap();
    assert!(listed.is_empty());

    for (name, candidate) in [
        ("", &[1_u8; 32][..]),
        ("has space", &[1; 32][..]),
        (&"n".repeat(65), &[1; 32][..]),
        ("ok", &[][..]),
        ("ok", &[1; 1025][..]),
    ] {
        let error = a.shared_secret(name, candidate).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput(_)),
            "{name:?} / {} bytes: {error:?}",
            candidate.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_first_calls_agree() {
    first_calls_agree(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_memory_first_calls_agree() {
    first_calls_agree(Backend::SqliteMemory).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_first_calls_agree() {
    first_calls_agree(Backend::Postgres).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_first_calls_agree() {
    first_calls_agree(Backend::MySql).await;
}
