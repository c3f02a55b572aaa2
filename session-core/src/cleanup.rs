//! Periodic, batched removal of expired records, for stores without native expiry.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, truncate_to_micros};
use crate::config::ConfigError;
use crate::error::Error;
use crate::store::SessionStore;

/// Settings of the cleanup task.
///
/// | field | default | allowed |
/// |---|---|---|
/// | `interval` | 5 minutes | 1 s to 1 day |
/// | `batch_size` | 1000 | 1 to 100 000 |
/// | `max_backoff` | 5 minutes | 1 s to 1 day |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CleanupConfig {
    /// Time between two passes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// Longest wait after consecutive failures (the wait doubles from one second).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            batch_size: 1000,
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl CleanupConfig {
    /// Sets the interval.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the longest back-off.
    #[must_use]
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// Checks the bounds in the table above.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let in_range =
            |d: Duration| d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400);
        if !in_range(self.interval) {
            return Err(out_of_range("interval", &self.interval, "1s to 1d"));
        }
        if !in_range(self.max_backoff) {
            return Err(out_of_range("max_backoff", &self.max_backoff, "1s to 1d"));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(out_of_range("batch_size", &self.batch_size, "1 to 100000"));
        }
        Ok(())
    }
}

fn out_of_range(
    field: &'static str,
    value: &dyn std::fmt::Debug,
    allowed: &'static str,
) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: format!("{value:?}"),
        allowed,
    }
}

/// Deletes every record expired at `now`, `batch` at a time, and returns how many it deleted.
///
/// # Errors
///
/// The first store error; batches deleted before it stay deleted.
pub async fn purge_all_expired(
    store: &dyn SessionStore,
    now: OffsetDateTime,
    batch: NonZeroU32,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let deleted = store.purge_expired(now, batch).await?;
        total += deleted;
        if deleted < u64::from(batch.get()) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Counters of a running cleanup task.
#[derive(Debug, Default)]
pub struct CleanupStats {
    passes: AtomicU64,
    purged: AtomicU64,
    failures: AtomicU64,
}

impl CleanupStats {
    /// Completed passes.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Records deleted so far.
    pub fn purged(&self) -> u64 {
        self.purged.load(Ordering::Relaxed)
    }

    /// Passes that ended in an error.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A running cleanup task. Dropping the handle stops the task.
#[derive(Debug)]
pub struct CleanupHandle {
    task: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    stats: Arc<CleanupStats>,
}

impl CleanupHandle {
    /// The task's counters.
    #[must_use]
    pub fn stats(&self) -> &CleanupStats {
        &self.stats
    }

    /// Stops the task and waits for it: at once when it is waiting for its next pass, otherwise
    /// when the pass under way (all its batches) has finished.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for CleanupHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a task on the current tokio runtime that purges expired records every
/// `config.interval`. A failed pass is logged (`tracing::warn`) and retried after a back-off that
/// doubles from one second up to `config.max_backoff`; the task never stops on an error.
///
/// # Errors
///
/// [`ConfigError`] if `config` is out of range.
///
/// # Panics
///
/// If called outside a tokio runtime.
pub fn spawn_cleanup(
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    config: CleanupConfig,
) -> Result<CleanupHandle, ConfigError> {
    config.validate()?;
    let batch = NonZeroU32::new(config.batch_size).unwrap_or(NonZeroU32::MIN);
    let stats = Arc::new(CleanupStats::default());
    let (stop, mut stopped) = watch::channel(false);
    let task_stats = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let now = truncate_to_micros(clock.now());
            let wait = match purge_all_expired(store.as_ref(), now, batch).await {
                Ok(purged) => {
                    task_stats.purged.fetch_add(purged, Ordering::Relaxed);
                    task_stats.passes.fetch_add(1, Ordering::Relaxed);
                    if purged > 0 {
                        tracing::debug!(purged, "purged expired sessions");
                    }
                    backoff = Duration::from_secs(1);
                    config.interval
                }
                Err(error) => {
                    task_stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in = ?backoff, "session cleanup failed; will retry");
                    let wait = backoff;
                    backoff = (backoff * 2).min(config.max_backoff);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    Ok(CleanupHandle {
        task: Some(task),
        stop,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::sync::atomic::AtomicU32;

    use async_trait::async_trait;
    use time::macros::datetime;

    use super::*;
    use crate::clock::ManualClock;
    use crate::id::SessionId;
    use crate::record::{RevokeReason, SessionRecord};
    use crate::store::{CreateOutcome, RotateOutcome, Rotation, SessionLimit, StoreCapabilities};
    use crate::user::UserId;

    /// Purges fail for the first `failures` calls, then delete `per_call` rows until `stock` is
    /// exhausted. Nothing else is used by the cleanup task.
    struct FlakyPurge {
        failures: AtomicU32,
        stock: AtomicU64,
        calls: AtomicU32,
    }

    #[async_trait]
    impl SessionStore for FlakyPurge {
        fn capabilities(&self) -> StoreCapabilities {
            StoreCapabilities::new("flaky")
        }
        async fn create(&self, _: SessionRecord, _: SessionLimit) -> Result<CreateOutcome, Error> {
            Err(Error::backend("flaky", "not used"))
        }
        async fn find(&self, _: &SessionId) -> Result<Option<SessionRecord>, Error> {
            Ok(None)
        }
        async fn touch(
            &self,
            _: &SessionId,
            _: OffsetDateTime,
            _: OffsetDateTime,
        ) -> Result<bool, Error> {
            Ok(false)
        }
        async fn rotate(&self, _: Rotation) -> Result<RotateOutcome, Error> {
            Ok(RotateOutcome::NotFound)
        }
        async fn revoke(
            &self,
            _: &SessionId,
            _: OffsetDateTime,
            _: RevokeReason,
        ) -> Result<bool, Error> {
            Ok(false)
        }
        async fn revoke_all(
            &self,
            _: &UserId,
            _: Option<&SessionId>,
            _: OffsetDateTime,
            _: RevokeReason,
        ) -> Result<u64, Error> {
            Ok(0)
        }
        async fn list(
            &self,
            _: &UserId,
            _: OffsetDateTime,
            _: NonZeroUsize,
        ) -> Result<Vec<SessionRecord>, Error> {
            Ok(Vec::new())
        }
        async fn purge_expired(&self, _: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Error::unavailable(
                    "flaky",
                    std::io::Error::other("connection refused"),
                ));
            }
            let take = self
                .stock
                .load(Ordering::SeqCst)
                .min(u64::from(batch.get()));
            self.stock.fetch_sub(take, Ordering::SeqCst);
            Ok(take)
        }
        async fn shared_secret(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
            Err(Error::backend("flaky", "not used"))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_going_after_errors_and_purges_in_batches() {
        let store = Arc::new(FlakyPurge {
            failures: AtomicU32::new(3),
            stock: AtomicU64::new(2500),
            calls: AtomicU32::new(0),
        });
        let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
        let config = CleanupConfig::default()
            .with_interval(Duration::from_secs(60))
            .with_batch_size(1000)
            .with_max_backoff(Duration::from_secs(4));
        let handle = spawn_cleanup(store.clone(), clock, config).unwrap();
        // Back-offs of 1 s, 2 s and 4 s, then a pass of three batches (1000, 1000, 500).
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(handle.stats().failures(), 3);
        assert_eq!(handle.stats().passes(), 1);
        assert_eq!(handle.stats().purged(), 2500);
        assert_eq!(store.calls.load(Ordering::SeqCst), 3 + 3);
        // The next pass comes an interval later and finds nothing.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(handle.stats().passes(), 2);
        assert_eq!(handle.stats().purged(), 2500);
        handle.shutdown().await;
    }

    #[test]
    fn config_bounds() {
        CleanupConfig::default().validate().unwrap();
        assert!(
            CleanupConfig::default()
                .with_batch_size(0)
                .validate()
                .is_err()
        );
        assert!(
            CleanupConfig::default()
                .with_interval(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            CleanupConfig::default()
                .with_max_backoff(Duration::from_secs(86_401))
                .validate()
                .is_err()
        );
    }
}
