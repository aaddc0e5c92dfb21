//! Per-address limits on attempts (joins), as token buckets.
//!
//! Each address may make `attempts` attempts in a burst; tokens come back at `attempts` per
//! `window`. A refused attempt learns how long until the next one would pass. Buckets that have
//! refilled completely carry no information and are purged, so the table holds only addresses
//! active within the last window.
//!
//! Pure: the time is an argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter<K> {
    buckets: HashMap<K, Bucket>,
    capacity: f64,
    per_token: Duration,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `attempts` per `window`, all of them usable at once.
    pub fn new(attempts: u32, window: Duration) -> Self {
        let attempts = attempts.max(1);
        Self {
            buckets: HashMap::new(),
            capacity: f64::from(attempts),
            per_token: window / attempts,
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.updated);
        b.tokens =
            (b.tokens + elapsed.as_secs_f64() / self.per_token.as_secs_f64()).min(self.capacity);
        b.updated = now;
    }

    /// Counts one attempt by `key`. `Err(wait)` when it is over the limit: the next attempt
    /// will pass after `wait`.
    pub fn attempt(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.get(key).copied().unwrap_or(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.per_token.mul_f64(1.0 - b.tokens))
        };
        self.buckets.insert(key.clone(), b);
        result
    }

    /// Drops buckets that are full again.
    pub fn purge(&mut self, now: Instant) {
        let (capacity, per_token) = (self.capacity, self.per_token);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.updated);
            b.tokens + elapsed.as_secs_f64() / per_token.as_secs_f64() < capacity
        });
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_triggers_and_lifts() {
        let mut l = RateLimiter::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.attempt(&"a", t0).is_ok());
        }
        let wait = l.attempt(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(
            l.attempt(&"b", t0).is_ok(),
            "other addresses are not affected"
        );
        assert!(l.attempt(&"a", t0 + Duration::from_secs(5)).is_err());
        assert!(l.attempt(&"a", t0 + Duration::from_secs(6)).is_ok());
        assert!(l.attempt(&"a", t0 + Duration::from_secs(6)).is_err());
    }

    #[test]
    fn purge_forgets_refilled_addresses() {
        let mut l = RateLimiter::new(2, Duration::from_secs(2));
        let t0 = Instant::now();
        l.attempt(&1, t0).unwrap();
        l.attempt(&2, t0).unwrap();
        l.purge(t0 + Duration::from_millis(500));
        assert_eq!(l.tracked(), 2);
        l.purge(t0 + Duration::from_secs(2));
        assert_eq!(l.tracked(), 0);
    }
}
