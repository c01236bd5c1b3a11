//! Time as the layer and the mock facilitator see it: wall-clock time for invoice timestamps and
//! expiry, and a monotonic clock for rate limits and re-check intervals. Tests inject a
//! [`ManualClock`] and move it forward instead of sleeping.
//!
//! ```
//! use std::time::Duration;
//! use x402_lightning::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix(Duration::from_secs(1_700_000_000));
//! let later = clock.clone();
//! later.advance(Duration::from_secs(61));
//! assert_eq!(clock.unix_now(), Duration::from_secs(1_700_000_061));
//! assert_eq!(clock.monotonic(), Duration::from_secs(61));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Wall-clock time since the Unix epoch (invoice timestamps and expiry).
    fn unix_now(&self) -> Duration;

    /// Monotonic time since an origin of the clock's choosing (rate limits, re-check
    /// intervals); it never goes backwards.
    fn monotonic(&self) -> Duration;
}

/// The system's clocks: [`SystemTime`] and [`Instant`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemClock;

/// The origin of [`SystemClock::monotonic`]: the first time it was asked.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Clock for SystemClock {
    fn unix_now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }

    fn monotonic(&self) -> Duration {
        ORIGIN.elapsed()
    }
}

/// A clock that only moves when told to; clones share one time. For tests.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    /// Nanoseconds moved forward since creation.
    elapsed: Arc<AtomicU64>,
    start: Duration,
}

impl ManualClock {
    /// A clock reading `unix` as wall-clock time, and zero as monotonic time.
    pub fn at_unix(unix: Duration) -> Self {
        Self {
            elapsed: Arc::default(),
            start: unix,
        }
    }

    /// A clock starting at the system's current time.
    pub fn starting_now() -> Self {
        Self::at_unix(SystemClock.unix_now())
    }

    /// Moves both times forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // `fetch_update` with a saturating add: the closure never fails.
        let _ = self
            .elapsed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |elapsed| {
                Some(elapsed.saturating_add(nanos))
            });
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn unix_now(&self) -> Duration {
        self.start.saturating_add(self.elapsed())
    }

    fn monotonic(&self) -> Duration {
        self.elapsed()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn unix_now(&self) -> Duration {
        (**self).unix_now()
    }

    fn monotonic(&self) -> Duration {
        (**self).monotonic()
    }
}

/// A shared clock, as the layer and the mock keep it.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// The default clock, shared.
pub(crate) fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_past_2020_and_monotonic_time_grows() {
        assert!(SystemClock.unix_now() > Duration::from_secs(1_577_836_800));
        let first = SystemClock.monotonic();
        assert!(SystemClock.monotonic() >= first);
    }

    #[test]
    fn a_manual_clock_saturates_instead_of_overflowing() {
        let clock = ManualClock::at_unix(Duration::from_secs(5));
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.monotonic(), Duration::from_nanos(u64::MAX));
    }
}
