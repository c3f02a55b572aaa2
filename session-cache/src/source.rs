//! Where invalidations come from: the [`InvalidationSource`] trait, the [`InvalidationSink`] a
//! source reports to, and the sources of the built-in backends.

use std::sync::Arc;

use session_core::{SessionId, async_trait};

use crate::store::Shared;

/// A channel that tells the cache which sessions other instances (or anyone) changed.
///
/// The cache spawns [`InvalidationSource::run`] on the Tokio runtime it is built on and aborts
/// it when the last handle of the cache is dropped.
///
/// # Contract
///
/// `run` runs for ever (reconnecting by itself) and reports to `sink`:
///
/// - [`InvalidationSink::connected`] once the channel is in force, that is, once every change
///   committed from then on is going to be reported;
/// - [`InvalidationSink::invalidate`] for each session whose record changed (written, revoked,
///   touched, rotated, deleted or expired), **after** the change is applied in the store, so
///   that a read that started before the report may have seen the old record but a read that
///   starts after it sees the new one;
/// - [`InvalidationSink::invalidate_all`] when it cannot tell which sessions changed;
/// - [`InvalidationSink::lost`] as soon as it knows that changes may have gone unreported (the
///   connection closed, a heartbeat went unanswered), and before reporting anything else.
///
/// The cache serves entries only between `connected` and `lost`; at `lost` it forgets
/// everything and reads through to the store until the next `connected`.
#[async_trait]
pub trait InvalidationSource: Send + Sync + 'static {
    /// Follows the channel for ever, reporting to `sink`. See the [trait docs](Self).
    async fn run(&self, sink: InvalidationSink);
}

/// The cache's side of an invalidation channel: what an [`InvalidationSource`] reports to.
/// Cloning is cheap; every method is a few atomic operations and never blocks.
#[derive(Clone)]
pub struct InvalidationSink {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for InvalidationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationSink").finish_non_exhaustive()
    }
}

impl InvalidationSink {
    /// The channel is in force: the cache forgets what it held and serves entries again.
    pub fn connected(&self) {
        self.shared.channel_up();
    }

    /// The record of `id` changed: the cache's entry for it, if any, is never served again.
    pub fn invalidate(&self, id: &SessionId) {
        self.shared.invalidated(id);
    }

    /// Something changed, it is not known what: the cache forgets everything.
    pub fn invalidate_all(&self) {
        self.shared.flush();
    }

    /// Changes may have gone unreported: the cache forgets everything and reads through to the
    /// store until [`InvalidationSink::connected`].
    pub fn lost(&self, why: &str) {
        self.shared.channel_down(why);
    }
}

/// Redis: [`session_redis::RedisTracking`] (`CLIENT TRACKING ON BCAST` on a dedicated RESP3
/// connection).
#[cfg(feature = "redis")]
#[async_trait]
impl InvalidationSource for session_redis::RedisTracking {
    async fn run(&self, sink: InvalidationSink) {
        use session_redis::TrackingEvent;
        session_redis::RedisTracking::run(self, move |event| match event {
            TrackingEvent::Tracking => sink.connected(),
            TrackingEvent::Invalidated(id) => sink.invalidate(&id),
            TrackingEvent::Lost(why) => sink.lost(&why),
            // `FlushAll` and any later kind of event: forget everything, which is always safe.
            _ => sink.invalidate_all(),
        })
        .await;
    }
}

/// PostgreSQL: [`session_db::ChangeListener`] (`LISTEN` to the trigger that
/// [`session_db::DbStore::install_change_notifications`] installs).
#[cfg(feature = "postgres")]
#[async_trait]
impl InvalidationSource for session_db::ChangeListener {
    async fn run(&self, sink: InvalidationSink) {
        use session_db::ChangeEvent;
        session_db::ChangeListener::run(self, move |event| match event {
            ChangeEvent::Listening => sink.connected(),
            ChangeEvent::Invalidated(id) => sink.invalidate(&id),
            ChangeEvent::Lost(why) => sink.lost(&why),
            _ => sink.invalidate_all(),
        })
        .await;
    }
}
