//! Batched purge on every backend, and PostgreSQL's single cleaner: a pass that finds the purge
//! lock held elsewhere deletes nothing and returns 0.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    DeviceInfo, SessionId, SessionLimit, SessionRecord, SessionStore, TokenHash, UserId,
};
use session_db::DbStore;
use support::Backend;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn record(user: &UserId, expires: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(user),
        user_id: user.clone(),
        created_at: NOW - time::Duration::days(2),
        last_active_at: NOW - time::Duration::days(2),
        idle_expires_at: expires,
        absolute_expires_at: NOW + time::Duration::days(30),
        token_hash: TokenHash::from_bytes([1; 32]),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device: DeviceInfo::new(),
        data: None,
    }
}

/// Stores `expired` records expired at [`NOW`] and `live` ones live past it.
async fn fill(store: &DbStore, expired: usize, live: usize) -> Vec<SessionId> {
    let user = UserId::new("purged").unwrap();
    for i in 0..expired {
        let at = NOW - time::Duration::seconds(i64::try_from(i).unwrap());
        store
            .create(record(&user, at), SessionLimit::UNLIMITED)
            .await
            .unwrap();
    }
    let keeper = UserId::new("kept").unwrap();
    let mut ids = Vec::new();
    for _ in 0..live {
        let r = record(&keeper, NOW + time::Duration::microseconds(1));
        ids.push(r.id);
        store.create(r, SessionLimit::UNLIMITED).await.unwrap();
    }
    ids
}

async fn purge_is_batched_and_spares_live_sessions(backend: Backend) {
    let Some(store) = support::store(backend).await else {
        return;
    };
    let live = fill(&store, 25, 3).await;
    let batch = NonZeroU32::new(10).unwrap();
    assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 10);
    assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 10);
    assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 5);
    assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 0);
    for id in &live {
        assert!(store.find(id).await.unwrap().is_some());
    }
    let listed = store
        .list(
            &UserId::new("kept").unwrap(),
            NOW,
            NonZeroUsize::new(10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_purge_is_batched() {
    purge_is_batched_and_spares_live_sessions(Backend::SqliteFile).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_purge_is_batched() {
    purge_is_batched_and_spares_live_sessions(Backend::SqliteMemory).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn postgres_purge_is_batched() {
    purge_is_batched_and_spares_live_sessions(Backend::Postgres).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn mysql_purge_is_batched() {
    purge_is_batched_and_spares_live_sessions(Backend::MySql).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use session_core::purge_all_expired;
    use session_db::sea_orm::{ConnectionTrait, Statement, TransactionTrait, Value};

    use super::*;

    /// While another session holds the purge lock, a pass deletes nothing and returns 0; once
    /// it is released, the next pass purges.
    #[tokio::test(flavor = "multi_thread")]
    async fn purge_skips_while_another_cleaner_holds_the_lock() {
        let Some(store) = support::store(Backend::Postgres).await else {
            return;
        };
        fill(&store, 20, 2).await;
        let other = support::connect(
            Backend::Postgres,
            support::config(Backend::Postgres).with_table(store.table().as_str()),
        )
        .await;
        let db = other.connection();
        let tx = db.begin().await.unwrap();
        tx.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [Value::from(store.purge_lock_key())],
        ))
        .await
        .unwrap();
        let batch = NonZeroU32::new(100).unwrap();
        assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 0);
        tx.commit().await.unwrap();
        assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 20);
    }

    /// Two cleaners on one table (two processes' pools): together they delete every expired
    /// row exactly once, never fail, and leave live sessions alone.
    #[tokio::test(flavor = "multi_thread")]
    async fn two_concurrent_cleaners() {
        let Some(a) = support::store(Backend::Postgres).await else {
            return;
        };
        let live = fill(&a, 1000, 5).await;
        let b = support::connect(
            Backend::Postgres,
            support::config(Backend::Postgres).with_table(a.table().as_str()),
        )
        .await;
        let batch = NonZeroU32::new(50).unwrap();
        let mut total = 0;
        let mut passes = 0;
        // Several rounds: a round where one cleaner was skipped is followed by another.
        while passes < 20 {
            passes += 1;
            let (x, y) = tokio::join!(
                purge_all_expired(&a, NOW, batch),
                purge_all_expired(&b, NOW, batch)
            );
            let round = x.unwrap() + y.unwrap();
            total += round;
            if round == 0 {
                break;
            }
        }
        assert_eq!(total, 1000);
        for id in &live {
            assert!(a.find(id).await.unwrap().is_some());
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use session_core::{LimitMode, SessionLimit};
    use session_db::sea_orm::{ConnectionTrait, Statement, Value};

    use super::*;

    /// How many lock rows `user` has.
    async fn lock_rows(store: &DbStore, user: &UserId) -> i64 {
        let db = store.connection();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "SELECT COUNT(*) FROM `{}_user_locks` WHERE user_id = ?",
                    store.table()
                ),
                [Value::Bytes(Some(user.as_str().as_bytes().to_vec()))],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// A capped login leaves a lock row holding the user id; it goes with the purge of the
    /// user's last session (not before: a batch that leaves one of the user's sessions keeps
    /// it), and a user with a live session keeps theirs.
    #[tokio::test(flavor = "multi_thread")]
    async fn lock_rows_go_with_the_last_session() {
        let Some(store) = support::store(Backend::MySql).await else {
            return;
        };
        let cap = SessionLimit::new(NonZeroU32::new(5).unwrap(), LimitMode::EvictOldest);
        let leaver = UserId::new("leaver").unwrap();
        let stayer = UserId::new("stayer").unwrap();
        for i in 0..3 {
            let expires = NOW - time::Duration::seconds(3 - i);
            store.create(record(&leaver, expires), cap).await.unwrap();
        }
        store
            .create(record(&stayer, NOW - time::Duration::seconds(10)), cap)
            .await
            .unwrap();
        store
            .create(record(&stayer, NOW + time::Duration::hours(1)), cap)
            .await
            .unwrap();
        assert_eq!(lock_rows(&store, &leaver).await, 1);
        assert_eq!(lock_rows(&store, &stayer).await, 1);

        // The stayer's expired session and two of the leaver's three.
        let batch = NonZeroU32::new(3).unwrap();
        assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 3);
        assert_eq!(lock_rows(&store, &leaver).await, 1, "one session is left");
        assert_eq!(lock_rows(&store, &stayer).await, 1);

        assert_eq!(store.purge_expired(NOW, batch).await.unwrap(), 1);
        assert_eq!(lock_rows(&store, &leaver).await, 0, "the user id is gone");
        assert_eq!(
            lock_rows(&store, &stayer).await,
            1,
            "a live session keeps it"
        );

        // The cap still works for both after the clean-up.
        let cap_one = SessionLimit::new(NonZeroU32::new(1).unwrap(), LimitMode::EvictOldest);
        store
            .create(record(&leaver, NOW + time::Duration::hours(1)), cap_one)
            .await
            .unwrap();
        assert_eq!(lock_rows(&store, &leaver).await, 1);
        let listed = store
            .list(&stayer, NOW, NonZeroUsize::new(10).unwrap())
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }

    /// Purges running while the same users log in under a cap: every login succeeds, the cap
    /// holds, and once all sessions are gone no lock row is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn purge_races_capped_logins() {
        let Some(store) = support::store(Backend::MySql).await else {
            return;
        };
        let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
        let users: Vec<UserId> = (0..4)
            .map(|i| UserId::new(format!("racer{i}")).unwrap())
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for user in &users {
            for i in 0..6 {
                let store = store.clone();
                let user = user.clone();
                tasks.spawn(async move {
                    // Half already expired (purge fodder), half live.
                    let expires = if i % 2 == 0 {
                        NOW - time::Duration::seconds(1)
                    } else {
                        NOW + time::Duration::hours(1)
                    };
                    let mut r = record(&user, expires);
                    r.created_at = NOW - time::Duration::days(2) + time::Duration::seconds(i);
                    store.create(r, cap).await.unwrap();
                });
            }
        }
        for _ in 0..6 {
            let store = store.clone();
            tasks.spawn(async move {
                store
                    .purge_expired(NOW, NonZeroU32::new(3).unwrap())
                    .await
                    .unwrap();
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        for user in &users {
            let live = store
                .list(user, NOW, NonZeroUsize::new(10).unwrap())
                .await
                .unwrap();
            assert!(live.len() <= 2, "{user}: {} live", live.len());
        }
        let far = NOW + time::Duration::days(365);
        while store
            .purge_expired(far, NonZeroU32::new(100).unwrap())
            .await
            .unwrap()
            > 0
        {}
        for user in &users {
            assert_eq!(lock_rows(&store, user).await, 0, "{user}");
        }
    }
}
