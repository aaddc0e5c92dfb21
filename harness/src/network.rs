//! A bad network for one session: the relay, the agent and the technician each in a network
//! namespace of their own, the agent's and the technician's joined to the relay's by a veth
//! pair (a "link"), each link shaped on its own ([`Shape`]):
//!
//! ```text
//!  agent ns                relay ns                                technician ns
//!  relay0 10.77.1.2 ─veth─ agent0 10.77.1.1:4433 ─forwarder─┐
//!                                                          relay 127.0.0.1:4433
//!  relay0 10.77.2.2 ─veth─ tech0  10.77.2.1:4433 ─forwarder─┘
//! ```
//!
//! - **loss**: nftables in the receiving namespace of each direction drops `numgen random mod
//!   100 < N` of what comes in on the link, so each direction loses N % on its own;
//! - **rate**: `tc tbf` on both ends of the veth, so each direction is limited (a queue of
//!   [`QUEUE_LATENCY`] at that rate, then tail drop);
//! - **delay**: a [`Forwarder`] in the relay's namespace between the link's address and the
//!   relay, holding each datagram half the round trip each way;
//! - **outage**: [`Network::cut`] drops everything on a link both ways until
//!   [`Network::restore`].
//!
//! The veth ends send no GSO batches (`gso_max_segs 1`): QUIC sends bursts of datagrams as one
//! buffer, which the kernel would otherwise carry (and the loss rule drop) as one packet.
//!
//! Peers reach the relay at [`Network::relay_addr`] of their side; the relay listens on
//! [`RELAY_LISTEN`] in its namespace and sees every peer as a loopback address of the
//! forwarder. Fixed addresses are safe: every network has namespaces of its own.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use crate::forward::{Counts, Forwarder};
use crate::netns::Netns;

/// Where the relay listens, inside its namespace.
pub const RELAY_LISTEN: &str = "127.0.0.1:4433";
/// How long a rate-limited link's queue is, in time at its rate (tbf's `latency`).
pub const QUEUE_LATENCY: Duration = Duration::from_millis(100);

/// How one link misbehaves, the same in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    /// Round-trip time added (half each way).
    pub rtt: Duration,
    /// Percent of the datagrams lost in each direction.
    pub loss_pct: u8,
    /// Rate in each direction, kbit/s; `None` for as fast as the machine goes.
    pub rate_kbit: Option<u32>,
}

impl Shape {
    /// A link that does nothing to what it carries.
    pub const CLEAN: Shape = Shape {
        rtt: Duration::ZERO,
        loss_pct: 0,
        rate_kbit: None,
    };

    pub fn rtt(ms: u64) -> Shape {
        Shape {
            rtt: Duration::from_millis(ms),
            ..Shape::CLEAN
        }
    }

    pub fn loss(pct: u8) -> Shape {
        Shape {
            loss_pct: pct,
            ..Shape::CLEAN
        }
    }

    pub fn rate(kbit: u32) -> Shape {
        Shape {
            rate_kbit: Some(kbit),
            ..Shape::CLEAN
        }
    }
}

/// One of the two links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Agent,
    Technician,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Agent => 0,
            Side::Technician => 1,
        }
    }

    /// The link's interface in the relay's namespace.
    fn relay_end(self) -> &'static str {
        match self {
            Side::Agent => "agent0",
            Side::Technician => "tech0",
        }
    }

    /// `10.77.N.x`: the link's subnet.
    fn subnet(self) -> u8 {
        self.index() as u8 + 1
    }
}

/// The link's interface in the peer's namespace.
const PEER_END: &str = "relay0";

/// Which namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Relay,
    Agent,
    Technician,
}

#[derive(Debug, Clone, Copy)]
struct LinkState {
    shape: Shape,
    cut: bool,
}

/// The three namespaces and two links. Dropping it stops the forwarders and deletes the
/// namespaces (with the links); processes still inside keep running in a namespace nobody can
/// reach, so stop them first.
pub struct Network {
    /// Declared first: they stop before the namespaces go.
    forwarders: [Forwarder; 2],
    links: Mutex<[LinkState; 2]>,
    relay: Netns,
    agent: Netns,
    technician: Netns,
}

impl Network {
    /// Creates the namespaces and links, shaped as given. Needs root, `ip` and `tc`
    /// (iproute2) and `nft` (nftables); says which is missing.
    pub fn start(agent: Shape, technician: Shape) -> anyhow::Result<Network> {
        let relay_ns = Netns::create("relay")?;
        let agent_ns = Netns::create("agent")?;
        let technician_ns = Netns::create("tech")?;
        let upstream: SocketAddr = RELAY_LISTEN.parse().expect("literal");
        let mut forwarders = Vec::new();
        for (side, peer, shape) in [
            (Side::Agent, &agent_ns, agent),
            (Side::Technician, &technician_ns, technician),
        ] {
            link(&relay_ns, peer, side)
                .with_context(|| format!("cannot join the {side:?} namespace to the relay's"))?;
            forwarders.push(Forwarder::start(
                &relay_ns,
                Self::relay_addr(side),
                upstream,
                shape.rtt / 2,
            )?);
        }
        let forwarders: [Forwarder; 2] = forwarders.try_into().ok().expect("two links");
        let net = Network {
            forwarders,
            links: Mutex::new([
                LinkState {
                    shape: agent,
                    cut: false,
                },
                LinkState {
                    shape: technician,
                    cut: false,
                },
            ]),
            relay: relay_ns,
            agent: agent_ns,
            technician: technician_ns,
        };
        for side in [Side::Agent, Side::Technician] {
            net.apply_rate(side, net.state(side).shape.rate_kbit)?;
        }
        net.apply_filters()?;
        Ok(net)
    }

    /// Where a peer on `side` reaches the relay.
    pub fn relay_addr(side: Side) -> SocketAddr {
        SocketAddr::from(([10, 77, side.subnet(), 1], 4433))
    }

    pub fn netns(&self, host: Host) -> &Netns {
        match host {
            Host::Relay => &self.relay,
            Host::Agent => &self.agent,
            Host::Technician => &self.technician,
        }
    }

    fn peer_ns(&self, side: Side) -> &Netns {
        match side {
            Side::Agent => &self.agent,
            Side::Technician => &self.technician,
        }
    }

    fn state(&self, side: Side) -> LinkState {
        self.links.lock().expect("links lock")[side.index()]
    }

    /// How the link of `side` is shaped now.
    pub fn shape(&self, side: Side) -> Shape {
        self.state(side).shape
    }

    /// Shapes the link of `side` anew (what is on its way keeps its old delay).
    pub fn reshape(&self, side: Side, shape: Shape) -> anyhow::Result<()> {
        let old = {
            let mut links = self.links.lock().expect("links lock");
            std::mem::replace(&mut links[side.index()].shape, shape)
        };
        self.forwarders[side.index()].set_delay(shape.rtt / 2);
        if old.rate_kbit != shape.rate_kbit {
            self.apply_rate(side, shape.rate_kbit)?;
        }
        self.apply_filters()
    }

    /// Drops everything on the link of `side`, both ways, until [`Network::restore`].
    pub fn cut(&self, side: Side) -> anyhow::Result<()> {
        self.links.lock().expect("links lock")[side.index()].cut = true;
        self.apply_filters()
    }

    /// Ends a [`Network::cut`].
    pub fn restore(&self, side: Side) -> anyhow::Result<()> {
        self.links.lock().expect("links lock")[side.index()].cut = false;
        self.apply_filters()
    }

    /// What went through the link of `side` (as the forwarder saw it: after the loss on the
    /// way up, before the loss on the way down).
    pub fn counts(&self, side: Side) -> Counts {
        self.forwarders[side.index()].counts()
    }

    /// Writes every namespace's nftables rules from the links' states, each namespace in one
    /// transaction.
    fn apply_filters(&self) -> anyhow::Result<()> {
        let links = *self.links.lock().expect("links lock");
        let mut relay_rules = String::new();
        for side in [Side::Agent, Side::Technician] {
            let state = links[side.index()];
            let rule = drop_rule(state);
            if let Some(rule) = &rule {
                relay_rules += &format!("    iifname \"{}\" {rule}\n", side.relay_end());
            }
            let peer_rules = rule
                .map(|r| format!("    iifname \"{PEER_END}\" {r}\n"))
                .unwrap_or_default();
            nft(self.peer_ns(side), &peer_rules)?;
        }
        nft(&self.relay, &relay_rules)
    }

    /// Sets (or, with `None`, removes) the rate limit on both ends of the link of `side`.
    fn apply_rate(&self, side: Side, rate_kbit: Option<u32>) -> anyhow::Result<()> {
        for (ns, dev) in [
            (&self.relay, side.relay_end()),
            (self.peer_ns(side), PEER_END),
        ] {
            match rate_kbit {
                Some(kbit) => {
                    let rate = format!("{kbit}kbit");
                    // Enough for the timer's tick (250 Hz) and a few datagrams.
                    let burst = (u64::from(kbit) * 1000 / 8 / 250).max(4 * 1500).to_string();
                    let latency = format!("{}ms", QUEUE_LATENCY.as_millis());
                    ns.run(
                        "tc",
                        &[
                            "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                            &burst, "latency", &latency,
                        ],
                        None,
                    )?;
                }
                None => {
                    // No qdisc to delete is fine: there was no limit.
                    let _ = ns.run("tc", &["qdisc", "del", "dev", dev, "root"], None);
                }
            }
        }
        Ok(())
    }
}

/// The nftables statement that makes a link lose what it should, if anything.
fn drop_rule(state: LinkState) -> Option<String> {
    if state.cut || state.shape.loss_pct >= 100 {
        Some("drop".into())
    } else if state.shape.loss_pct > 0 {
        Some(format!(
            "numgen random mod 100 < {} drop",
            state.shape.loss_pct
        ))
    } else {
        None
    }
}

/// Replaces the namespace's `inet tandem` table by one whose input chain holds `rules`.
fn nft(ns: &Netns, rules: &str) -> anyhow::Result<()> {
    // Adding the table first makes the delete succeed when there is none yet; nft applies the
    // whole script as one transaction.
    let script = format!(
        "table inet tandem\ndelete table inet tandem\ntable inet tandem {{\n  chain input {{\n    \
         type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
    );
    ns.run("nft", &["-f", "-"], Some(&script))
}

/// Joins `peer` to `relay` with a veth pair for `side`, addressed and up.
fn link(relay: &Netns, peer: &Netns, side: Side) -> anyhow::Result<()> {
    let dev = side.relay_end();
    relay.ip(&[
        "link",
        "add",
        dev,
        "type",
        "veth",
        "peer",
        "name",
        PEER_END,
        "netns",
        peer.name(),
    ])?;
    let net = side.subnet();
    for (ns, dev, host) in [(relay, dev, 1), (peer, PEER_END, 2)] {
        ns.ip(&["addr", "add", &format!("10.77.{net}.{host}/24"), "dev", dev])?;
        ns.ip(&["link", "set", dev, "gso_max_segs", "1", "up"])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_becomes_one_rule_and_a_cut_drops_all() {
        let clean = LinkState {
            shape: Shape::CLEAN,
            cut: false,
        };
        assert_eq!(drop_rule(clean), None);
        let lossy = LinkState {
            shape: Shape::loss(10),
            cut: false,
        };
        assert_eq!(
            drop_rule(lossy).as_deref(),
            Some("numgen random mod 100 < 10 drop")
        );
        let cut = LinkState { cut: true, ..lossy };
        assert_eq!(drop_rule(cut).as_deref(), Some("drop"));
    }
}
