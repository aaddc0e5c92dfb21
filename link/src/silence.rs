//! Whether a QUIC connection has gone silent: nothing received on it for a while.
//!
//! Peers send keep-alives every [`crate::transport::CLIENT_KEEP_ALIVE`], and the relay
//! acknowledges them, so on a healthy link each end hears from the other several times a second.
//! A second of silence means the other end or the network between is gone for now; the
//! connection itself lasts until its idle timeout, so an outage shorter than that is ridden out.
//! The relay tells a peer when its partner falls silent; each peer watches its own link to the
//! relay the same way.

use std::time::Duration;

use quinn::Connection;
use tokio::time::Instant;

/// Silence after which a connection counts as quiet.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);
/// How often [`Silence::check`] is meant to be called.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A change worth telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing heard for this long.
    Quiet(Duration),
    /// Heard again after a [`Change::Quiet`].
    Back,
}

/// Follows one connection's received datagrams. See the module's words.
pub struct Silence {
    datagrams: u64,
    heard_at: Instant,
    told: bool,
}

impl Silence {
    pub fn new(conn: &Connection) -> Self {
        Self {
            datagrams: conn.stats().udp_rx.datagrams,
            heard_at: Instant::now(),
            told: false,
        }
    }

    /// What changed since the last call, if anything is worth telling: the first check after
    /// [`QUIET_AFTER`] without a datagram, then the first that finds one again.
    pub fn check(&mut self, conn: &Connection) -> Option<Change> {
        let now = Instant::now();
        let datagrams = conn.stats().udp_rx.datagrams;
        if datagrams != self.datagrams {
            self.datagrams = datagrams;
            self.heard_at = now;
            return std::mem::take(&mut self.told).then_some(Change::Back);
        }
        let silent = now - self.heard_at;
        if self.told || silent < QUIET_AFTER {
            return None;
        }
        self.told = true;
        Some(Change::Quiet(silent))
    }
}

impl Silence {
    /// How long nothing has been heard, as of the last [`Silence::check`].
    pub fn silent_for(&self) -> Duration {
        if self.told {
            Instant::now() - self.heard_at
        } else {
            Duration::ZERO
        }
    }
}

/// A ticker for [`Silence::check`] that does not catch up after a stall.
pub fn ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval(CHECK_EVERY);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}
