//! No operation of the PostgreSQL store reads the whole sessions table, whatever the planner
//! knows of it: here plans are made while the table is small and never analyzed, then the
//! table grows behind the planner's back (the state of every table between its creation and
//! autovacuum's first `ANALYZE`; a capped login's plan made for an empty table used to scan
//! every row per login).
//!
//! Counted with the table's `seq_tup_read` statistic (rows read by sequential scans), flushed
//! by the server's backends within a second of going idle.

#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use session_conformance::scenarios::record_at;
use session_core::time::macros::datetime;
use session_core::{CreateOutcome, LimitMode, RevokeReason, SessionLimit, SessionStore, UserId};
use session_db::DbStore;
use support::Backend;

/// Rows read by sequential scans of the store's sessions table so far, as the server's
/// statistics say.
async fn rows_scanned(store: &DbStore) -> i64 {
    let row = store
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT COALESCE(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = $1",
            [store.table().as_str().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// Waits until the backends have flushed their statistics (they do within a second of going
/// idle), then reads the count.
async fn settled_rows_scanned(store: &DbStore) -> i64 {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    rows_scanned(store).await
}

/// Rows of other users added behind the planner's back (no `ANALYZE`).
const BULK: i64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_operation_scans_the_table() {
    let Some(store) = support::store(Backend::Postgres).await else {
        return;
    };
    let table = format!("\"{}\"", store.table().as_str());
    let run = |sql: String| {
        let db = store.connection().clone();
        async move { db.execute_unprepared(&sql).await.unwrap() }
    };
    // The planner must not learn the table's size from autovacuum during the test.
    run(format!(
        "ALTER TABLE {table} SET (autovacuum_enabled = false)"
    ))
    .await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let cap = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::EvictOldest);
    let reject = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::Reject);
    let busy = UserId::new("plan-busy").unwrap();
    let logins = |round: u64| {
        let store = store.clone();
        let busy = busy.clone();
        async move {
            // New users (the common login), then one user past the cap (evictions), then
            // refusals: every statement of the function, on every pooled connection.
            for n in 0..30 {
                let user = UserId::new(format!("plan-{round}-{n}")).unwrap();
                let outcome = store.create(record_at(&user, now), cap).await.unwrap();
                assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
            }
            let mut evictions = 0;
            for n in 0..12_u64 {
                let at = now + Duration::from_secs(round * 1000 + n);
                match store.create(record_at(&busy, at), cap).await.unwrap() {
                    CreateOutcome::Created { evicted } => evictions += evicted.len(),
                    other => panic!("{other:?}"),
                }
            }
            assert!(evictions >= 9, "logins past the cap evicted the oldest");
            for n in 0..6_u64 {
                let at = now + Duration::from_secs(round * 1000 + 100 + n);
                assert_eq!(
                    store.create(record_at(&busy, at), reject).await.unwrap(),
                    CreateOutcome::LimitReached
                );
            }
            // The other operations that select rows by something else than the primary key.
            let later = now + Duration::from_secs(round * 1000 + 200);
            for n in 0..10 {
                let user = UserId::new(format!("plan-{round}-{n}")).unwrap();
                let listed = store
                    .list(&user, later, NonZeroUsize::new(10).unwrap())
                    .await
                    .unwrap();
                assert_eq!(listed.len(), 1);
                let revoked = store
                    .revoke_all(&user, None, later, RevokeReason::Logout)
                    .await
                    .unwrap();
                assert_eq!(revoked, 1);
            }
            for _ in 0..10 {
                store
                    .purge_expired(later, NonZeroU32::new(100).unwrap())
                    .await
                    .unwrap();
            }
        }
    };
    // Plans made while the table is small...
    logins(0).await;
    // ...then the table grows.
    run(format!(
        "INSERT INTO {table} (id, user_id, created_at, last_active_at, idle_expires_at, \
         absolute_expires_at, token_hash, generation, expires_at) \
         SELECT 'bulk-' || g, 'bulk-user-' || g, now(), now(), now() + interval '1 day', \
         now() + interval '30 days', sha256(g::text::bytea), 0, \
         TIMESTAMPTZ '2040-01-01 00:00:00+00' \
         FROM generate_series(1, {BULK}) AS g"
    ))
    .await;
    let before = settled_rows_scanned(&store).await;
    logins(1).await;
    let read = settled_rows_scanned(&store).await - before;
    assert!(
        read < BULK,
        "48 capped logins, 10 lists, 10 revoke-alls and 10 purges read {read} rows by \
         sequential scans of a {BULK}-row table"
    );
}
