//! The one token bucket: how much a connection may send us per second (bytes for replication,
//! requests for the notary protocol), how many new wallets a notary takes on per hour, and how
//! much it keeps for strangers' wallets. Pure: the time comes in as an argument.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilled at `rate` per second, holding at most one period's worth (a second,
/// unless made with [`TokenBucket::per`]).
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens held.
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `per_sec` (at least 1) at `now`.
    pub fn new(per_sec: u64, now: Instant) -> TokenBucket {
        TokenBucket::per(per_sec, Duration::from_secs(1), now)
    }

    /// A full bucket of `amount` (at least 1) tokens, refilled at `amount` per `period` (at
    /// least a millisecond), at `now`.
    pub fn per(amount: u64, period: Duration, now: Instant) -> TokenBucket {
        let capacity = amount.max(1) as f64;
        let period = period.max(Duration::from_millis(1)).as_secs_f64();
        TokenBucket {
            rate: capacity / period,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// True if the bucket holds `amount` now (nothing taken).
    pub fn holds(&mut self, now: Instant, amount: u64) -> bool {
        self.refill(now);
        self.tokens >= amount as f64
    }

    /// Takes `amount` even if the bucket goes into debt, and returns how long to wait before
    /// reading on (zero without debt): the reader paces a sender that is too fast.
    pub fn take(&mut self, now: Instant, amount: u64) -> Duration {
        self.refill(now);
        self.tokens -= amount as f64;
        if self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            Duration::ZERO
        }
    }

    /// Takes `amount` if the bucket holds it now; otherwise takes nothing and says so.
    pub fn try_take(&mut self, now: Instant, amount: u64) -> bool {
        self.refill(now);
        if self.tokens < amount as f64 {
            return false;
        }
        self.tokens -= amount as f64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_hour_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::per(60, Duration::from_secs(3600), t0);
        for _ in 0..60 {
            assert!(bucket.holds(t0, 1));
            let _ = bucket.take(t0, 1);
        }
        assert!(!bucket.holds(t0, 1), "empty");
        assert!(!bucket.holds(t0 + Duration::from_secs(59), 1));
        assert!(
            bucket.holds(t0 + Duration::from_secs(60), 1),
            "one a minute"
        );
        assert!(!bucket.holds(t0 + Duration::from_secs(60), 2));
        // Never more than its capacity, however long it waits.
        let later = t0 + Duration::from_secs(100 * 3600);
        assert!(bucket.holds(later, 60));
        assert!(!bucket.holds(later, 61));
    }

    #[test]
    fn a_full_second_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        for _ in 0..10 {
            assert!(bucket.try_take(t0, 1));
        }
        assert!(!bucket.try_take(t0, 1), "empty");
        assert!(!bucket.try_take(t0 + Duration::from_millis(50), 1));
        assert!(
            bucket.try_take(t0 + Duration::from_millis(100), 1),
            "one refilled"
        );
        // Never more than one second's worth, however long it rested.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(bucket.try_take(later, 1));
        }
        assert!(!bucket.try_take(later, 1));
    }

    #[test]
    fn debt_is_paid_by_waiting() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, t0);
        assert_eq!(bucket.take(t0, 1000), Duration::ZERO);
        let wait = bucket.take(t0, 500);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Refused requests cost nothing; a debt is paid off over time.
        assert!(!bucket.try_take(t0, 1));
        assert!(bucket.try_take(t0 + Duration::from_millis(501), 1));
        // A clock that goes backwards (it cannot with Instant, but a caller might pass an
        // older one) adds nothing.
        assert!(!bucket.try_take(t0, 1));
    }
}
