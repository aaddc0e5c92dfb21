//! The session log: an append-only, hash-chained file of what happened in a session.
//!
//! A log opens with a 12-byte file header (magic `TANDEMLG`, format version, reserved) and
//! holds records: the session opening, participants, consent as the agent sent it, every input
//! event the technician sent (typed text optionally as a count only), screen updates exactly as
//! received, errors, the end of the session, and a final seal. Every record carries its index,
//! its time, its kind, the hash of the record before it, and its own SHA-256 hash, so that a
//! changed, deleted or reordered record is found, and a file cut short by a crash is told apart
//! from one that was tampered with. The byte layout is in `docs/session-log.md`.
//!
//! - [`record`]: the record kinds and their bodies;
//! - [`writer`]: [`LogWriter`], which appends records to any `Write` (no clock, no file);
//! - [`reader`]: [`LogReader`], which checks and hands out records and ends with a [`Verdict`];
//! - [`verify()`]: the whole check in one call;
//! - [`replay`]: the screen at any moment of a log;
//! - [`checkpoint`]: a log checked against the chain hashes the relay was sent during the session.

pub mod checkpoint;
pub mod reader;
pub mod record;
pub mod replay;
pub mod writer;

#[cfg(test)]
mod tests;

use std::io::Read;

pub use checkpoint::{Checkpoint, CheckpointFile, Finding};
pub use reader::{format_ms, format_utc, parse_utc, LogReader, OpenError, RawRecord, Verdict};
pub use record::{
    code_sha256, ChatAuthor, ChatRecord, ClipDirection, ClipboardRecord, CloseReason,
    ControlChange, DeskStep, FileDirection, FileOutcome, FileTransfer, FolderLook, FolderOutcome,
    LinkChange, Participant, Record, RecordedInput, SessionOpened, TypedText,
};
pub use replay::{Player, ReplayError, Replayer};
pub use writer::{LogWriter, WriteError};

/// First 8 bytes of every session log.
pub const MAGIC: &[u8; 8] = b"TANDEMLG";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Magic, `u16` version, `u16` reserved (zero).
pub const FILE_HEADER_LEN: usize = 12;
/// Bytes before a record's body: length, length check, index, time, kind, previous hash.
pub const RECORD_HEADER_LEN: usize = 4 + 4 + 8 + 8 + 2 + HASH_LEN;
/// SHA-256.
pub const HASH_LEN: usize = 32;

/// The file header this build writes.
pub(crate) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Reads a whole log and says whether it is intact, ended early or was tampered with.
pub fn verify<R: Read>(input: R) -> Result<Verdict, OpenError> {
    let mut reader = LogReader::new(input)?;
    while reader.next_record()?.is_some() {}
    Ok(reader
        .verdict()
        .cloned()
        .expect("a reader that returned None has a verdict"))
}
