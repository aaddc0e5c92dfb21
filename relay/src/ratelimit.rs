//! Limits on attempts by one source (an address, an account name).
//!
//! - [`RateLimiter`]: token buckets, for join attempts and code registrations. Each source may
//!   make `attempts` attempts in a burst; tokens come back at `attempts` per `window`. A refused
//!   attempt learns how long until the next one would pass. Buckets that have refilled
//!   completely carry no information and are purged, so the table holds only sources active
//!   within the last window. The purge takes them in the order they refill and stops at the
//!   first that has not: its work is what it forgets, not the size of the table.
//! - [`Backoff`]: growing delays after failures, for logins. A few failures are free; after
//!   that each failure locks the key for a delay that doubles, up to a maximum. A success clears
//!   the key; failures are forgotten after a quiet spell.
//!
//! Pure: the time is an argument.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// When the bucket is full again if nothing more is taken from it.
    full_at: Instant,
}

pub struct RateLimiter<K> {
    buckets: HashMap<K, Bucket>,
    /// Every bucket, by its `full_at`: the order [`RateLimiter::purge`] forgets them in.
    refills: BTreeSet<(Instant, K)>,
    capacity: f64,
    per_token: Duration,
}

impl<K: Hash + Eq + Ord + Clone> RateLimiter<K> {
    /// `attempts` per `window`, all of them usable at once.
    pub fn new(attempts: u32, window: Duration) -> Self {
        let attempts = attempts.max(1);
        Self {
            buckets: HashMap::new(),
            refills: BTreeSet::new(),
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
        let known = self.buckets.get(key).copied();
        let mut b = known.unwrap_or(Bucket {
            tokens: self.capacity,
            updated: now,
            full_at: now,
        });
        self.refill(&mut b, now);
        if b.tokens < 1.0 {
            // Nothing taken: the bucket is full again when it would have been.
            self.buckets.insert(key.clone(), b);
            return Err(self.per_token.mul_f64(1.0 - b.tokens));
        }
        b.tokens -= 1.0;
        if let Some(old) = known {
            self.refills.remove(&(old.full_at, key.clone()));
        }
        b.full_at = now + self.per_token.mul_f64(self.capacity - b.tokens);
        self.refills.insert((b.full_at, key.clone()));
        self.buckets.insert(key.clone(), b);
        Ok(())
    }

    /// Drops buckets that are full again; returns how many. Looks at no other bucket.
    pub fn purge(&mut self, now: Instant) -> usize {
        let mut forgotten = 0;
        while self
            .refills
            .first()
            .is_some_and(|(full_at, _)| *full_at <= now)
        {
            let (_, key) = self.refills.pop_first().expect("a first entry");
            self.buckets.remove(&key);
            forgotten += 1;
        }
        forgotten
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// How [`Backoff`] grows.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    /// Failures allowed before the first delay.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures are forgotten this long after the last one.
    pub forget_after: Duration,
}

impl BackoffPolicy {
    /// The delay after the `failures`-th failure in a row, if any.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free_failures)?.checked_sub(1)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Instant,
}

/// Failures per key with a delay that doubles past the free ones.
pub struct Backoff<K> {
    entries: HashMap<K, Failures>,
    policy: BackoffPolicy,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            entries: HashMap::new(),
            policy,
        }
    }

    /// `Err(wait)` while `key` is locked after failures.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.entries.get(key) {
            Some(f) if f.locked_until > now => Err(f.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure by `key`; returns the delay it now has to wait, if any.
    pub fn fail(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let forget = self.policy.forget_after;
        let f = self.entries.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: now,
        });
        if now.saturating_duration_since(f.last) > forget {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let delay = self.policy.delay_after(f.count);
        f.locked_until = now + delay.unwrap_or_default();
        delay
    }

    /// Takes back one failure counted ahead of an attempt that then succeeded (see
    /// [`crate::login`]), lifting the lock if what is left would not have set one.
    pub fn refund(&mut self, key: &K) {
        if let Some(f) = self.entries.get_mut(key) {
            f.count = f.count.saturating_sub(1);
            if self.policy.delay_after(f.count).is_none() {
                f.locked_until = f.last;
            }
            if f.count == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// A success: `key` starts again with its free failures.
    pub fn succeed(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops keys whose failures are forgotten.
    pub fn purge(&mut self, now: Instant) {
        let forget = self.policy.forget_after;
        self.entries
            .retain(|_, f| f.locked_until > now || now.saturating_duration_since(f.last) <= forget);
    }

    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_past_the_free_failures_and_is_forgotten() {
        let policy = BackoffPolicy {
            free_failures: 2,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            forget_after: Duration::from_secs(60),
        };
        let mut b = Backoff::new(policy);
        let mut now = Instant::now();
        assert_eq!(b.fail(&"a", now), None);
        assert_eq!(b.fail(&"a", now), None);
        assert!(b.check(&"a", now).is_ok());
        let mut delays = Vec::new();
        for _ in 0..5 {
            let d = b.fail(&"a", now).unwrap();
            assert_eq!(b.check(&"a", now), Err(d));
            assert!(b.check(&"b", now).is_ok(), "other keys are not affected");
            delays.push(d.as_secs());
            now += d;
            assert!(b.check(&"a", now).is_ok());
        }
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        // A quiet spell forgets the failures.
        now += Duration::from_secs(61);
        assert_eq!(b.fail(&"a", now), None);
        b.purge(now + Duration::from_secs(61));
        assert_eq!(b.tracked(), 0);
        // A success clears them.
        b.fail(&"c", now);
        b.fail(&"c", now);
        b.succeed(&"c");
        assert_eq!(b.fail(&"c", now), None);
    }

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
        assert_eq!(l.purge(t0 + Duration::from_millis(500)), 0);
        assert_eq!(l.tracked(), 2);
        assert_eq!(l.purge(t0 + Duration::from_secs(2)), 2);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn purge_takes_only_the_refilled_and_a_bucket_used_again_waits_for_its_new_time() {
        // One token a second, two at most.
        let mut l = RateLimiter::new(2, Duration::from_secs(2));
        let t0 = Instant::now();
        l.attempt(&0, t0).unwrap();
        let later = t0 + Duration::from_secs(1);
        for key in 1..=10_000 {
            l.attempt(&key, later).unwrap();
        }
        // Key 0 is full at t0 + 1 s, the others a second later: one bucket forgotten, one
        // looked at past it, the rest untouched.
        assert_eq!(l.purge(t0 + Duration::from_millis(1500)), 1);
        assert_eq!(l.tracked(), 10_000);
        assert_eq!(l.refills.len(), 10_000, "one refill entry per bucket");

        // A bucket taken from again is full later, and stays until then.
        l.attempt(&0, t0 + Duration::from_millis(1500)).unwrap();
        // Full at 2.5 s; taken from at 2 s with 1.5 tokens: full at 3.5 s instead.
        l.attempt(&0, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(l.purge(t0 + Duration::from_millis(2600)), 10_000);
        assert_eq!(l.tracked(), 1);
        assert_eq!(l.purge(t0 + Duration::from_secs(4)), 1);
        assert_eq!((l.tracked(), l.refills.len()), (0, 0));
    }
}
