//! Where the manager's `now` comes from. Stores never read the wall clock: they get `now`
//! passed in, so a [`ManualClock`] drives expiry on every backend alike.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// Truncates an instant to whole microseconds in UTC, the precision every store keeps.
#[must_use]
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let micros = at.microsecond();
    at.replace_microsecond(micros).unwrap_or(at)
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place that reads the wall clock"
    )]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to; clones share the same instant.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session_core::{Clock, ManualClock};
/// use time::macros::datetime;
///
/// let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), datetime!(2030-01-01 0:01:30 UTC));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(time::Duration::try_from(by).unwrap_or(time::Duration::MAX));
    }

    /// Sets the clock to an instant (which may be in the past).
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn truncation_drops_nanoseconds_and_normalises_offset() {
        let at = datetime!(2030-01-01 1:00:00.123456789 +1);
        let t = truncate_to_micros(at);
        assert_eq!(t, datetime!(2030-01-01 0:00:00.123456 UTC));
        assert_eq!(t.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn manual_clock_is_shared() {
        let a = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
        let b = a.clone();
        b.advance(Duration::from_secs(1));
        assert_eq!(a.now(), datetime!(2030-01-01 0:00:01 UTC));
        a.set(datetime!(2029-01-01 0:00 UTC));
        assert_eq!(b.now(), datetime!(2029-01-01 0:00 UTC));
    }
}
