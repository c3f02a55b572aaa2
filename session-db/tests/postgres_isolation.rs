//! The per-user cap holds on PostgreSQL whatever the server's default isolation level: the
//! capped login runs at READ COMMITTED, so its count sees every login that held the user's lock
//! before it (under REPEATABLE READ the snapshot would predate the lock wait).

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use support::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cap_holds_when_the_server_defaults_to_repeatable_read() {
    if support::skip(Backend::Postgres) {
        return;
    }
    let base = Backend::Postgres.url();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{base}{separator}options=-c%20default_transaction_isolation%3Drepeatable%5C%20read"
    );
    let store = support::connect(
        Backend::Postgres,
        support::config(Backend::Postgres).with_url(url),
    )
    .await;
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SHOW default_transaction_isolation",
        ))
        .await
        .unwrap()
        .unwrap();
    let level: String = row.try_get_by_index(0).unwrap();
    assert_eq!(
        level, "repeatable read",
        "the connection option took effect"
    );
    let store = session_conformance::shared(store);
    session_conformance::scenarios::race_logins_reject_mode(store.clone()).await;
    session_conformance::scenarios::race_logins_respect_cap(store.clone()).await;
    session_conformance::scenarios::race_store_create_cap_one(store).await;
}
