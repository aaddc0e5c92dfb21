//! What the end-to-end tests (`tests/`) and the benchmarks (`bench/`) both start, so that a
//! figure in a bench and an assertion in a test come from the same set-up.
//!
//! - [`netns`]: one network namespace, and the ways to run programs and threads inside it;
//! - [`network`]: three namespaces (relay, agent, technician) joined by two shaped links,
//!   loss from nftables, rate from `tc tbf`, an outage on demand;
//! - [`forward`]: the delay, a UDP forwarder in user space (the kernel has no netem).
//!
//! Everything here needs root, `ip` and `tc` (iproute2) and `nft` (nftables), and says which is
//! missing when it cannot start.

pub mod forward;
pub mod netns;
pub mod network;

pub use network::{Host, Network, Shape, Side};
