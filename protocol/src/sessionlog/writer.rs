//! [`LogWriter`]: appends records to any [`Write`], hashing each onto the chain.
//!
//! The writer keeps no clock: every call takes the time in ms since the session opened, and
//! [`LogWriter::tick`] lets the caller's timer flush screen updates that have waited long
//! enough. Event records (everything but screen updates) reach the `Write` and its `flush` at
//! once; screen updates wait in memory until [`FLUSH_BYTES`] have gathered, the oldest is
//! [`FLUSH_INTERVAL_MS`] old, or an event record follows. A record is always handed to the
//! `Write` whole, in one `write_all`, so a process killed at any moment leaves a file whose
//! last record is whole or cut short, never mixed. After a failed write the writer refuses
//! further records: appending after a half-written record would look like tampering.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::record::{
    encode_body, max_body, BodyRef, ChatRecord, ClipboardRecord, CloseReason, ControlChange,
    DeskStep, ErrorNote, FileTransfer, FolderLook, LinkChange, Participant, ParticipantJoined,
    ParticipantLeft, RecordedInput, SessionClosed, SessionOpened, TypedText, KIND_SCREEN_UPDATE,
    KIND_SEAL,
};
use super::{file_header, HASH_LEN, RECORD_HEADER_LEN};
use crate::cursor::{CursorPosition, CursorShape};
use crate::input::InputEvent;
use crate::monitor::Monitors;
use crate::peer::{ConsentState, ScreenUpdate};

/// Screen updates are written out once this many bytes wait in memory.
pub const FLUSH_BYTES: usize = 1 << 20;
/// Screen updates are written out once the oldest waiting one is this old.
pub const FLUSH_INTERVAL_MS: u64 = 1000;

/// Why a record could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write the session log: {0}")]
    Io(#[from] std::io::Error),
    #[error("an earlier write to the session log failed; nothing more is appended")]
    Failed,
    #[error("a {kind} record of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
}

/// Appends records to a session log. Create with [`LogWriter::create`], end with
/// [`LogWriter::finish`] or [`LogWriter::seal`].
pub struct LogWriter<W: Write> {
    /// `None` only after sealing.
    out: Option<W>,
    buf: Vec<u8>,
    /// Time of the oldest record in `buf`.
    buffered_since: Option<u64>,
    next_index: u64,
    last_time_ms: u64,
    prev: [u8; HASH_LEN],
    typed_text: TypedText,
    failed: bool,
    bytes_written: u64,
}

impl<W: Write> LogWriter<W> {
    /// Writes the file header and record 0 ([`SessionOpened`], time 0) and flushes them.
    pub fn create(out: W, opened: &SessionOpened) -> Result<Self, WriteError> {
        let header = file_header();
        let mut w = Self {
            out: Some(out),
            buf: Vec::with_capacity(FLUSH_BYTES + 64 * 1024),
            buffered_since: None,
            next_index: 0,
            last_time_ms: 0,
            prev: Sha256::digest(header).into(),
            typed_text: opened.typed_text,
            failed: false,
            bytes_written: 0,
        };
        w.buf.extend_from_slice(&header);
        w.append(0, BodyRef::SessionOpened(opened))?;
        Ok(w)
    }

    /// Index the next record will get (= records written so far).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Bytes handed to the `Write` so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes of the log so far: handed to the `Write`, or waiting to be (the size the file will
    /// have once they are written out).
    pub fn appended_bytes(&self) -> u64 {
        self.bytes_written + self.buf.len() as u64
    }

    /// Hash of the last record appended (written out or still buffered).
    pub fn chain_hash(&self) -> [u8; HASH_LEN] {
        self.prev
    }

    /// Writes out every waiting record and says how far the log has got: a checkpoint to hand
    /// to someone else (see [`super::checkpoint`]). Sync the `Write` first (through
    /// [`LogWriter::get_ref`]) if the checkpoint must survive a power cut.
    pub fn checkpoint(&mut self) -> Result<super::Checkpoint, WriteError> {
        self.write_out()?;
        Ok(super::Checkpoint {
            index: self.next_index - 1,
            time_ms: self.last_time_ms,
            chain_hash: self.prev,
        })
    }

    /// The `Write` records go to (`None` once sealed).
    pub fn get_ref(&self) -> Option<&W> {
        self.out.as_ref()
    }

    /// A screen update exactly as received. Buffered (see the module docs).
    pub fn screen_update(&mut self, time_ms: u64, update: &ScreenUpdate) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::ScreenUpdate(update))
    }

    /// An input event the technician sent, reduced as the log's [`TypedText`] policy says.
    pub fn input(&mut self, time_ms: u64, event: &InputEvent) -> Result<(), WriteError> {
        let recorded = RecordedInput::from_event(event, self.typed_text);
        self.append(time_ms, BodyRef::Input(&recorded))
    }

    /// Consent as the agent sent it.
    pub fn consent(&mut self, time_ms: u64, state: ConsentState) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Consent(state))
    }

    pub fn participant_joined(
        &mut self,
        time_ms: u64,
        participant: &Participant,
    ) -> Result<(), WriteError> {
        let body = ParticipantJoined {
            participant: participant.clone(),
        };
        self.append(time_ms, BodyRef::ParticipantJoined(&body))
    }

    pub fn participant_left(
        &mut self,
        time_ms: u64,
        participant: &Participant,
        reason: &str,
    ) -> Result<(), WriteError> {
        let body = ParticipantLeft {
            participant: participant.clone(),
            reason: reason.to_owned(),
        };
        self.append(time_ms, BodyRef::ParticipantLeft(&body))
    }

    /// An error during the session, in words. Very long messages are shortened.
    pub fn error(&mut self, time_ms: u64, message: &str) -> Result<(), WriteError> {
        let mut end = message.len().min(16 * 1024);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let body = ErrorNote {
            message: message[..end].to_owned(),
        };
        self.append(time_ms, BodyRef::Error(&body))
    }

    /// Who holds control now, in a session with several technicians.
    pub fn control(&mut self, time_ms: u64, change: &ControlChange) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Control(change))
    }

    /// A file sent to the user or fetched from them, and how it went.
    pub fn file_transfer(&mut self, time_ms: u64, file: &FileTransfer) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::FileTransfer(file))
    }

    /// A step of the session's help request (taken, escalated, held, closed).
    pub fn desk_step(&mut self, time_ms: u64, step: &DeskStep) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::DeskStep(step))
    }

    /// A chat message, sent or received.
    pub fn chat(&mut self, time_ms: u64, chat: &ChatRecord) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Chat(chat))
    }

    /// A clipboard passed between the user and this technician.
    pub fn clipboard(&mut self, time_ms: u64, clip: &ClipboardRecord) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Clipboard(clip))
    }

    /// The agent's monitors and which one this technician sees.
    pub fn monitors(&mut self, time_ms: u64, monitors: &Monitors) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Monitors(monitors))
    }

    /// A shape of the user's pointer.
    pub fn cursor_shape(&mut self, time_ms: u64, shape: &CursorShape) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::CursorShape(shape))
    }

    /// Where the user's pointer is.
    pub fn cursor(&mut self, time_ms: u64, at: CursorPosition) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Cursor(at))
    }

    /// The link through the relay was lost, or resumed.
    pub fn link(&mut self, time_ms: u64, change: &LinkChange) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Link(change))
    }

    /// The technician asked to list a folder of the user's machine.
    pub fn folder(&mut self, time_ms: u64, look: &FolderLook) -> Result<(), WriteError> {
        self.append(time_ms, BodyRef::Folder(look))
    }

    /// The session is over (does not seal: more records may follow, e.g. a late error).
    pub fn closed(&mut self, time_ms: u64, reason: &CloseReason) -> Result<(), WriteError> {
        let body = SessionClosed {
            reason: reason.clone(),
        };
        self.append(time_ms, BodyRef::SessionClosed(&body))
    }

    /// A record of a kind this version has no method for (a newer kind, tests). Screen-update
    /// kinds are buffered, others flushed.
    pub fn append_raw(&mut self, time_ms: u64, kind: u16, body: &[u8]) -> Result<(), WriteError> {
        if kind == KIND_SEAL {
            return Err(WriteError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seal with LogWriter::seal",
            )));
        }
        self.append_with(time_ms, kind, |out| out.extend_from_slice(body))
    }

    /// Writes out waiting screen updates if the oldest has waited [`FLUSH_INTERVAL_MS`]. Call it
    /// from a timer about once a second so that a quiet session still reaches the disk.
    pub fn tick(&mut self, now_ms: u64) -> Result<(), WriteError> {
        match self.buffered_since {
            Some(t) if now_ms.saturating_sub(t) >= FLUSH_INTERVAL_MS => self.write_out(),
            _ => Ok(()),
        }
    }

    /// Writes out everything waiting and flushes the `Write`.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.write_out()
    }

    /// Records the end of the session and seals the log; returns the `Write` (to sync a file).
    pub fn finish(mut self, time_ms: u64, reason: &CloseReason) -> Result<W, WriteError> {
        self.closed(time_ms, reason)?;
        self.seal(time_ms)
    }

    /// Appends the seal record, flushes, and returns the `Write`. Nothing can follow a seal.
    pub fn seal(mut self, time_ms: u64) -> Result<W, WriteError> {
        self.append(time_ms, BodyRef::Seal)?;
        Ok(self.out.take().expect("the writer is not sealed yet"))
    }

    fn append(&mut self, time_ms: u64, body: BodyRef<'_>) -> Result<(), WriteError> {
        self.append_with(time_ms, body.kind(), |out| encode_body(body, out))
    }

    fn append_with(
        &mut self,
        time_ms: u64,
        kind: u16,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        let time_ms = time_ms.max(self.last_time_ms);
        let start = self.buf.len();
        self.buf.resize(start + RECORD_HEADER_LEN, 0);
        encode(&mut self.buf);
        let len = self.buf.len() - start - RECORD_HEADER_LEN;
        let max = max_body(kind);
        if len > max {
            self.buf.truncate(start);
            return Err(WriteError::TooLarge {
                kind: super::record::kind_name(kind),
                len,
                max,
            });
        }
        let len32 = len as u32; // max_body is far below 4 GiB
        let h = &mut self.buf[start..start + RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&len32.to_le_bytes());
        h[4..8].copy_from_slice(&(!len32).to_le_bytes());
        h[8..16].copy_from_slice(&self.next_index.to_le_bytes());
        h[16..24].copy_from_slice(&time_ms.to_le_bytes());
        h[24..26].copy_from_slice(&kind.to_le_bytes());
        h[26..58].copy_from_slice(&self.prev);
        let hash: [u8; HASH_LEN] = Sha256::digest(&self.buf[start..]).into();
        self.buf.extend_from_slice(&hash);
        self.prev = hash;
        self.next_index += 1;
        self.last_time_ms = time_ms;
        let since = *self.buffered_since.get_or_insert(time_ms);
        if kind != KIND_SCREEN_UPDATE
            || self.buf.len() >= FLUSH_BYTES
            || time_ms.saturating_sub(since) >= FLUSH_INTERVAL_MS
        {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let r = out.write_all(&self.buf).and_then(|()| out.flush());
        if let Err(e) = r {
            self.failed = true;
            return Err(e.into());
        }
        self.bytes_written += self.buf.len() as u64;
        self.buf.clear();
        self.buffered_since = None;
        Ok(())
    }
}

impl<W: Write> Drop for LogWriter<W> {
    /// Writes out whole records still waiting, so that a session that stops without sealing
    /// (an error path, a panic) keeps them; the log then verifies as ended early.
    fn drop(&mut self) {
        if !self.buf.is_empty() && !self.failed {
            let _ = self.write_out();
        }
    }
}

#[cfg(test)]
impl<W: Write> LogWriter<W> {
    pub(super) fn out_mut_for_tests(&mut self) -> &mut W {
        self.out.as_mut().expect("not sealed")
    }
}
