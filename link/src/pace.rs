//! Background streams (files) give way to the screen on the path itself, not only in QUIC's
//! send buffer.
//!
//! QUIC's stream priority sends a screen update before any file byte still waiting in this
//! end's buffer, but the file bytes already handed to the network wait in the queues on the
//! way (socket buffers, the relay, a router) and every update queues behind them: a congestion
//! controller that backs off only on loss fills those queues. A [`Yield`] keeps them short: a
//! file goes on only while the connection's round trip stays within a few milliseconds of the
//! lowest seen lately, as LEDBAT (RFC 6817) does for background transfers with its own target.
//! A queue building up anywhere on the path lengthens the round trip, and the file waits until
//! it drains; the screen's own updates lengthen it too, so a file also waits for them.
//!
//! Bytes written to a QUIC stream wait in its send buffer until the congestion window lets
//! them out, so a file written ahead would leave on the wire whatever the round trip does then:
//! [`Yield`] also keeps what it let through at most [`AHEAD`] bytes ahead of what the connection
//! has put on the wire.
//!
//! The decision ([`Pacer`]) is pure; [`Yield`] asks the connection for its round trip and
//! the bytes it sent.

use std::time::{Duration, Instant};

use quinn::Connection;

/// Queueing delay a background stream may add at least: the round trip above the lowest seen.
pub const TARGET_MIN: Duration = Duration::from_millis(2);
/// How long a lowest round trip counts: older ones give way to the lowest of the last two
/// periods, so that a path that became slower for good is not waited on forever.
pub const BASE_PERIOD: Duration = Duration::from_secs(10);
/// How long a background stream waits at most before it sends a little anyway, so that a path
/// with a round trip that keeps rising (another transfer, a slow link) still moves it.
pub const MAX_WAIT: Duration = Duration::from_millis(50);
/// Bytes a background stream may have written beyond what the connection has sent.
pub const AHEAD: u64 = 1024 * 1024;
/// Pause between two looks at the round trip while waiting.
const LOOK: Duration = Duration::from_millis(1);

/// Whether to send now, from the round trips seen.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// The lowest round trip of the current period, and of the one before.
    current: Option<Duration>,
    previous: Option<Duration>,
    period_start: Instant,
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Self {
            current: None,
            previous: None,
            period_start: now,
        }
    }

    /// The round trip of an empty path, as far as seen.
    pub fn base(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the round trip `rtt` seen at `now`; whether a background stream may send.
    pub fn may_send(&mut self, rtt: Duration, now: Instant) -> bool {
        if now.duration_since(self.period_start) >= BASE_PERIOD {
            self.previous = self.current.take();
            self.period_start = now;
        }
        self.current = Some(self.current.map_or(rtt, |c| c.min(rtt)));
        let base = self.base().unwrap_or(rtt);
        rtt <= base + base.max(TARGET_MIN)
    }
}

/// A [`Pacer`] on a connection's round trip, and the bytes a background stream wrote on it.
pub struct Yield {
    conn: Connection,
    pacer: Pacer,
    /// What the connection had sent when this started, in UDP payload bytes.
    sent_at_start: u64,
    /// What the background stream has written since.
    written: u64,
}

impl Yield {
    pub fn new(conn: Connection) -> Self {
        let sent_at_start = conn.stats().udp_tx.bytes;
        Self {
            conn,
            pacer: Pacer::new(Instant::now()),
            sent_at_start,
            written: 0,
        }
    }

    /// Waits before `bytes` more are written: until the connection has sent nearly all that
    /// was written before (its UDP bytes count everything it sent, so this never waits for
    /// bytes it has no way to send), and while the path is queueing (at most [`MAX_WAIT`]);
    /// not at all once the connection has ended.
    pub async fn wait(&mut self, bytes: u64) {
        let start = Instant::now();
        loop {
            if self.conn.close_reason().is_some() {
                return;
            }
            let now = Instant::now();
            let sent = self.conn.stats().udp_tx.bytes - self.sent_at_start;
            let caught_up = self.written <= sent + AHEAD;
            if caught_up
                && (self.pacer.may_send(self.conn.rtt(), now)
                    || now.duration_since(start) >= MAX_WAIT)
            {
                self.written += bytes;
                return;
            }
            tokio::time::sleep(LOOK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_round_trip_near_the_lowest_sends_and_a_queued_one_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert!(p.may_send(MS, t0), "the first look sends");
        assert!(p.may_send(2 * MS, t0), "within the 2 ms target");
        assert!(p.may_send(3 * MS, t0), "1 ms above the lowest, within 2 ms");
        assert!(!p.may_send(4 * MS, t0), "3 ms of queue");
        assert_eq!(p.base(), Some(MS));
        // On a path of 20 ms the target is its own round trip.
        let mut far = Pacer::new(t0);
        assert!(far.may_send(20 * MS, t0));
        assert!(far.may_send(39 * MS, t0));
        assert!(!far.may_send(41 * MS, t0));
    }

    #[test]
    fn a_path_slower_for_good_is_followed_after_two_periods() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert!(p.may_send(MS, t0));
        let later = t0 + BASE_PERIOD;
        assert!(!p.may_send(10 * MS, later), "the old lowest still counts");
        let much_later = later + BASE_PERIOD;
        assert!(
            p.may_send(10 * MS, much_later),
            "the lowest of the last periods is 10 ms"
        );
        assert_eq!(p.base(), Some(10 * MS));
    }
}
