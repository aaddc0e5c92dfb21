//! The relay server.
//!
//! - [`accounts`]: technician accounts (Argon2id), login back-off, session tokens;
//! - [`cluster`]: several relays of one organisation on a shared database: which holds the
//!   agent of a code or a help request, and where a technician is sent;
//! - [`config`]: settings from flags and an optional TOML file;
//! - [`desk`]: the support desk's queue of help requests, a pure state machine of stored
//!   events;
//! - [`identity`]: the relay's TLS certificate, generated on first start and reused;
//! - [`logstore`]: the archive of encrypted session logs: resumable uploads, checkpoints,
//!   retention;
//! - [`objects`]: where the logs' bytes live: a directory, or an S3 bucket;
//! - [`metrics`]: the relay's counters and gauges, in Prometheus text format;
//! - [`admin`]: the administrator's HTTP listener: `/metrics` and `/health`;
//! - [`rendezvous`]: session codes: issue, expire, hand the waiting agent to a technician;
//! - [`login`]: technician logins (password or token), logouts and the check before a join,
//!   with per-address and per-account back-off;
//! - [`ratelimit`]: token buckets for join attempts, growing back-off for failed logins;
//! - [`forward`]: splicing the peer plane of two paired connections;
//! - [`server`]: the QUIC endpoint, the control plane of each connection, shutdown;
//! - [`storage`]: the relay's state in SQLite or PostgreSQL, one interface for both, with
//!   versioned schema migrations.
//!
//! The rendezvous table and the rate limiter are pure state machines that take the time as an
//! argument; the server is the async shell around them.

pub mod accounts;
pub mod admin;
pub mod cluster;
pub mod config;
pub mod desk;
pub mod forward;
pub mod identity;
pub mod ledger;
pub mod limits;
pub mod login;
pub mod logstore;
pub mod metrics;
pub mod objects;
pub mod ratelimit;
pub mod rendezvous;
pub mod server;
pub mod storage;
pub mod totp;
