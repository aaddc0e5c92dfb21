//! What the end-to-end tests (`tests/`) and the benchmarks (`bench/`) both start, so that a
//! figure in a bench and an assertion in a test come from the same set-up.
//!
//! - [`netns`]: one network namespace, and the ways to run programs and threads inside it;
//! - [`network`]: three namespaces (relay, agent, technician) joined by two shaped links,
//!   loss from nftables, rate from `tc tbf`, an outage on demand;
//! - [`forward`]: the delay, a UDP forwarder in user space (the kernel has no netem);
//! - [`process`]: a child process, its output collected and waited on with time limits, that
//!   dies with its starter;
//! - [`relay`]: the relay binary started on a data directory, and what it prints on start-up;
//! - [`postgres`]: a throw-away PostgreSQL server with a fresh database for each test;
//! - [`xvfb`]: a private X server;
//! - [`s3`]: a real S3 server (SeaweedFS) with a bucket;
//! - [`programs`]: where the workspace's binaries and the machine's tools are;
//! - [`bigfile`]: large files of varied bytes, for file transfers.
//!
//! The networks need root, `ip` and `tc` (iproute2) and `nft` (nftables), and say which is
//! missing when they cannot start.

pub mod bigfile;
pub mod forward;
pub mod netns;
pub mod network;
pub mod postgres;
pub mod process;
pub mod programs;
pub mod relay;
pub mod s3;
pub mod xvfb;

pub use network::{Host, Network, Shape, Side};
