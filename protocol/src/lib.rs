//! Everything the agent, the relay and the technician must agree on.
//!
//! - [`wire`]: how a message becomes bytes (bincode 2 with explicit size limits);
//! - [`framing`]: length-prefixed frames on a QUIC stream, checked before allocation;
//! - [`control`]: the control plane, spoken between a peer and the relay;
//! - [`peer`]: the peer plane, spoken between agent and technician through the relay;
//! - [`input`]: the input events a technician sends and how keys are named;
//! - [`codec`]: the screen codec (lossless tiles, scroll and move detection, lossy video
//!   regions refined to lossless) and the framebuffer it fills;
//! - [`e2e`]: the end-to-end channel: code-keyed SPAKE2 or X25519 handshake, sealed records;
//! - [`scrnseq`]: the `SCRNSEQ1` screen-capture sequence format of the shared corpus;
//! - [`sessionlog`]: the hash-chained session-log file: records, writer, reader, verify, replay;
//! - [`text`]: bounding and escaping the strings a peer supplies before a person sees them;
//! - the in-session tools, their messages and limits: [`chat`], [`clipboard`], [`monitor`]
//!   (which monitor a technician sees), [`cursor`] (the user's own pointer);
//! - [`transfer`]: file transfer between the user and a technician: offers, acceptance, resume
//!   points, each file's stream and its SHA-256 check; [`browse`]: a folder of the user's
//!   machine as a technician sees it.
//!
//! Nothing here opens a socket: the crate is pure logic plus generic async framing helpers.

pub mod browse;
pub mod chat;
pub mod clipboard;
pub mod codec;
pub mod control;
pub mod cursor;
pub mod e2e;
pub mod framing;
pub mod input;
pub mod monitor;
pub mod peer;
pub mod scrnseq;
pub mod sessionlog;
pub mod text;
pub mod transfer;
pub mod wire;

/// The protocol version this build speaks. A peer with another version is refused with an error
/// naming both. Version 2 adds technician logins and session-log uploads to the control plane
/// and seals the peer plane end to end (see [`e2e`]).
/// Version 3 names each paired session (its row in the relay's ledger), asks for a second
/// factor where an account has one, and tells a peer when its partner falls silent.
/// Version 4 adds the support desk (help requests, queues, escalation) and sessions with several
/// technicians (invites, attach, monitor, participants and control hand-over).
/// Version 5 adds the in-session tools: chat, the clipboard, monitors and the user's pointer
/// (sealed datagrams), file transfer (offers, answers and a sealed stream per file), and tells a
/// technician whether clipboard content goes into its log.
pub const PROTOCOL_VERSION: u16 = 5;

/// Version of this software, reported in hello and session-start messages.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// ALPN protocol name used on every QUIC connection of the system.
pub const ALPN: &[u8] = b"tandem/1";
