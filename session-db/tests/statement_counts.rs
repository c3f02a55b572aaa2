//! Counts the statements each store operation sends, per database, so that a change adding a
//! round trip fails here. Statements are read from sqlx's statement log (`sqlx::query` events)
//! and transaction control from sea-orm's `sea_orm.begin`/`commit`/`rollback` spans (sqlx logs
//! `BEGIN` on some drivers only), captured by a tracing layer.
//!
//! The numbers asserted are the crate docs' statement-count table.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Mutex, OnceLock};

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    CreateOutcome, DeviceInfo, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, TokenHash, UserId,
};
use support::Backend;
use tracing::field::{Field, Visit};
use tracing::span::Attributes;
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Statements seen since the last [`take`].
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// One backend at a time: the log is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Recorder;

struct Summary(Option<String>);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut summary = Summary(None);
            event.record(&mut summary);
            let summary = summary.0.unwrap_or_else(|| "?".to_owned());
            // sqlx logs transaction control on some drivers and not others; it is counted once,
            // from sea-orm's spans, below.
            if !matches!(summary.as_str(), "BEGIN" | "COMMIT" | "ROLLBACK") {
                SEEN.lock().unwrap().push(summary);
            }
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if let Some(control) = name.strip_prefix("sea_orm.")
            && matches!(control, "begin" | "commit" | "rollback")
        {
            SEEN.lock().unwrap().push(control.to_uppercase());
        }
    }
}

fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .unwrap();
    });
}

fn take() -> Vec<String> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
}

fn record(user: &UserId, n: u8, at: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(user),
        user_id: user.clone(),
        created_at: at,
        last_active_at: at,
        idle_expires_at: at + time::Duration::hours(1),
        absolute_expires_at: at + time::Duration::days(1),
        token_hash: hash(n),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device: DeviceInfo::new().with_user_agent("counter"),
        data: None,
    }
}

/// Expected statements per operation on one database.
struct Expected {
    create_uncapped: usize,
    create_capped: usize,
    create_capped_evicting: usize,
    create_rejected: usize,
    rotate_won: usize,
    rotate_lost: usize,
    revoke_all: usize,
    purge: usize,
}

macro_rules! expect_count {
    ($label:expr, $want:expr, $op:expr) => {{
        take();
        let out = $op;
        let seen = take();
        assert_eq!(
            seen.len(),
            $want,
            "{}: expected {} statements, saw {:?}",
            $label,
            $want,
            seen
        );
        out
    }};
}

async fn count(backend: Backend, expected: Expected) {
    let _serial = SERIAL.lock().await;
    install();
    if support::skip(backend) {
        return;
    }
    // One pooled connection, warmed up, so no connection set-up lands inside a measurement.
    let store = support::connect(backend, support::config(backend).with_max_connections(1)).await;
    store
        .find(&SessionId::generate(&UserId::new("warm").unwrap()))
        .await
        .unwrap();

    let user = UserId::new("counted").unwrap();
    let first = record(&user, 1, NOW);
    let outcome = expect_count!(
        "create (no cap)",
        expected.create_uncapped,
        store
            .create(first.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap()
    );
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });

    let found = expect_count!("find", 1, store.find(&first.id).await.unwrap());
    assert_eq!(found.as_ref(), Some(&first));

    let later = NOW + time::Duration::minutes(1);
    let touched = expect_count!(
        "touch",
        1,
        store
            .touch(&first.id, later, later + time::Duration::hours(1))
            .await
            .unwrap()
    );
    assert!(touched);

    let rotation = Rotation {
        id: first.id,
        presented: hash(1),
        next: hash(2),
        now: later,
        idle_expires_at: later + time::Duration::hours(1),
        device: None,
    };
    let won = expect_count!(
        "rotate (won)",
        expected.rotate_won,
        store.rotate(rotation.clone()).await.unwrap()
    );
    assert!(matches!(won, RotateOutcome::Rotated(ref r) if r.generation == 1));
    let lost = expect_count!(
        "rotate (lost)",
        expected.rotate_lost,
        store.rotate(rotation.clone()).await.unwrap()
    );
    assert!(matches!(lost, RotateOutcome::Rejected(ref r) if r.generation == 1));
    let moved = DeviceInfo::new().with_user_agent("moved");
    let with_device = Rotation {
        presented: hash(2),
        next: hash(9),
        device: Some(moved.clone()),
        ..rotation
    };
    let won = expect_count!(
        "rotate (won, recording the device)",
        expected.rotate_won,
        store.rotate(with_device).await.unwrap()
    );
    assert!(matches!(won, RotateOutcome::Rotated(ref r) if r.generation == 2 && r.device == moved));

    let listed = expect_count!(
        "list",
        1,
        store
            .list(&user, later, NonZeroUsize::new(10).unwrap())
            .await
            .unwrap()
    );
    assert_eq!(listed.len(), 1);

    let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
    let second = record(&user, 3, later);
    let outcome = expect_count!(
        "create (cap, room left)",
        expected.create_capped,
        store.create(second.clone(), cap).await.unwrap()
    );
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
    let third = record(&user, 4, later + time::Duration::seconds(1));
    let outcome = expect_count!(
        "create (cap, evicting)",
        expected.create_capped_evicting,
        store.create(third.clone(), cap).await.unwrap()
    );
    assert_eq!(
        outcome,
        CreateOutcome::Created {
            evicted: vec![first.id]
        }
    );
    let reject = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::Reject);
    let outcome = expect_count!(
        "create (reject mode, at cap)",
        expected.create_rejected,
        store
            .create(record(&user, 5, later + time::Duration::seconds(2)), reject)
            .await
            .unwrap()
    );
    assert_eq!(outcome, CreateOutcome::LimitReached);

    let revoked = expect_count!(
        "revoke",
        1,
        store
            .revoke(&second.id, later, RevokeReason::Logout)
            .await
            .unwrap()
    );
    assert!(revoked);
    let revoked = expect_count!(
        "revoke_all",
        expected.revoke_all,
        store
            .revoke_all(&user, None, later, RevokeReason::LogoutAll)
            .await
            .unwrap()
    );
    assert_eq!(revoked, 1);

    let secret = expect_count!(
        "shared_secret",
        2,
        store.shared_secret("counted", &[7; 32]).await.unwrap()
    );
    assert_eq!(secret, vec![7; 32]);

    let purged = expect_count!(
        "purge_expired",
        expected.purge,
        store
            .purge_expired(NOW + time::Duration::days(2), NonZeroU32::new(100).unwrap())
            .await
            .unwrap()
    );
    assert_eq!(purged, 3);
}

#[tokio::test]
async fn sqlite_statement_counts() {
    count(
        Backend::SqliteFile,
        Expected {
            create_uncapped: 1,
            create_capped: 4,
            create_capped_evicting: 4,
            create_rejected: 1,
            rotate_won: 1,
            rotate_lost: 2,
            revoke_all: 1,
            purge: 1,
        },
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_statement_counts() {
    count(
        Backend::Postgres,
        Expected {
            create_uncapped: 1,
            // One call of the login function (the user's advisory lock, the eviction or the
            // count, the insert), in the statement's own transaction.
            create_capped: 1,
            create_capped_evicting: 1,
            create_rejected: 1,
            rotate_won: 1,
            rotate_lost: 2,
            // One call of the revoke-all function (the user's advisory lock, the UPDATE).
            revoke_all: 1,
            purge: 1,
        },
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_statement_counts() {
    count(
        Backend::MySql,
        Expected {
            create_uncapped: 1,
            create_capped: 5,
            create_capped_evicting: 6,
            create_rejected: 4,
            rotate_won: 2,
            rotate_lost: 1,
            // BEGIN, the locking read of the user's lock row, UPDATE, COMMIT.
            revoke_all: 4,
            // SET TRANSACTION ISOLATION LEVEL READ COMMITTED, BEGIN, SELECT of the expired
            // sessions, DELETE of them, DELETE of their users' orphaned lock rows, COMMIT.
            purge: 6,
        },
    )
    .await;
}
