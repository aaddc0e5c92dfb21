//! The QUIC link between a peer (agent, technician) and the relay.
//!
//! - [`tls`]: the relay's certificate, its SHA-256 fingerprint, and the client-side check that
//!   pins it;
//! - [`transport`]: QUIC settings every endpoint of the system shares (keep-alive, idle timeout,
//!   windows sized for a full-screen update);
//! - [`channel`]: typed, framed message channels over QUIC streams;
//! - [`known`]: trust on first use: the relays this user has connected to and their
//!   fingerprints;
//! - [`client`]: a peer's connection to the relay and the control-plane handshake (hello,
//!   register, log in, join, wait for pairing);
//! - [`sealed`]: the peer plane sealed end to end: the key exchange on the session stream,
//!   sealed message channels and sealed screen update streams;
//! - [`files`]: file transfers over the peer plane, the async shell around
//!   `protocol::transfer` that both ends run: offers, each file on a sealed stream of its own,
//!   partial files to resume from, SHA-256 checks;
//! - [`userfile`]: where per-user files live and how they are written (owner only).

pub mod channel;
pub mod client;
pub mod files;
pub mod known;
pub mod pace;
pub mod report;
pub mod resume;
pub mod sealed;
pub mod silence;
pub mod tls;
pub mod transport;
pub mod userfile;

pub use client::{LinkError, RelayConnection};
pub use tls::Fingerprint;
