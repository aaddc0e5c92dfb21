//! Limits on what one source may hold of the relay before it has proved anything.
//!
//! - [`source_of`]: the key every per-source limit counts under: an IPv4 address, or the /64
//!   network of an IPv6 one (one subscriber usually holds a whole /64, so counting single IPv6
//!   addresses would give one attacker 2^64 fresh keys). IPv4-mapped IPv6 addresses count as
//!   the IPv4 address they carry.
//! - [`Connections`]: how many connections are open, in all and per source, with a [`Slot`]
//!   that gives its place back when the connection's task ends, however it ends.
//! - [`Windows`]: the QUIC flow-control windows of a connection by what it has proved. An
//!   unpaired, unauthenticated connection may have a few kilobytes in flight to the relay and no
//!   unidirectional stream at all; a logged-in technician gets enough for uploads; a paired peer
//!   the full windows that a screen update needs.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use quinn::{Connection, VarInt};

/// Where a connection comes from, as limits count it (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    V4([u8; 4]),
    /// The first 64 bits of the address.
    V6Net(u64),
}

pub fn source_of(ip: IpAddr) -> Source {
    match ip {
        IpAddr::V4(v4) => Source::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Source::V4(v4.octets()),
            None => Source::V6Net((u128::from(v6) >> 64) as u64),
        },
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            Source::V6Net(net) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*net) << 64)),
        }
    }
}

/// Why a connection was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Full {
    Total { max: usize },
    Source { source: Source, max: usize },
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::Total { max } => write!(f, "the relay holds its limit of {max} connections"),
            Full::Source { source, max } => {
                write!(
                    f,
                    "{source} holds its limit of {max} connections to this relay"
                )
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// Open connections, counted in all and per source.
#[derive(Clone)]
pub struct Connections {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_source: usize,
}

/// A connection's place in [`Connections`]; dropping it frees the place.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    source: Source,
}

impl Connections {
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            counts: Arc::default(),
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
        }
    }

    /// A place for one more connection from `ip`, unless that would pass a limit.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Full> {
        let source = source_of(ip);
        let mut c = self.counts.lock().expect("connection counts lock");
        if c.total >= self.max_total {
            return Err(Full::Total {
                max: self.max_total,
            });
        }
        let n = c.by_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Full::Source {
                source,
                max: self.max_per_source,
            });
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            source,
        })
    }

    /// Connections open now, in all.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("connection counts lock").total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

/// Flow-control windows of a relay connection by what its peer has proved.
pub struct Windows;

impl Windows {
    /// Bytes an unpaired, not logged-in peer may have in flight toward the relay, over all its
    /// streams: a control message or two (hello, login, join are each well under 1 KiB).
    pub const UNPAIRED: u32 = 16 * 1024;
    /// What a logged-in technician may have in flight: a few upload chunks (64 KiB each), so an
    /// upload over a long path is not held to a trickle.
    pub const LOGGED_IN: u32 = 1024 * 1024;

    /// After login: room for uploads, still no streams beyond the control stream.
    pub fn logged_in(conn: &Connection) {
        conn.set_receive_window(VarInt::from_u32(Self::LOGGED_IN));
    }

    /// Once paired: the full windows and stream counts of [`link::transport`].
    pub fn paired(conn: &Connection) {
        use link::transport::{CONNECTION_WINDOW, MAX_BIDI_STREAMS, MAX_UNI_STREAMS};
        conn.set_receive_window(VarInt::from_u32(CONNECTION_WINDOW));
        conn.set_send_window(u64::from(CONNECTION_WINDOW));
        conn.set_max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
        conn.set_max_concurrent_bi_streams(VarInt::from_u32(MAX_BIDI_STREAMS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        assert_eq!(source_of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let plain: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(source_of(mapped), source_of(plain));
        assert_eq!(source_of(plain).to_string(), "10.0.0.7");
    }

    #[test]
    fn limits_hold_per_source_and_in_all_and_free_on_drop() {
        let conns = Connections::new(5, 3);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<Slot> = (0..3).map(|_| conns.admit(one).unwrap()).collect();
        assert!(matches!(conns.admit(one), Err(Full::Source { max: 3, .. })));
        let v6: Vec<Slot> = (1..=2)
            .map(|i| {
                conns
                    .admit(format!("2001:db8::{i}").parse().unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(conns.open(), 5);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(conns.admit(other).err(), Some(Full::Total { max: 5 }));
        drop(slots);
        assert_eq!(conns.open(), 2);
        assert!(conns.admit(one).is_ok());
        drop(v6);
        assert_eq!(conns.open(), 0);
    }
}
