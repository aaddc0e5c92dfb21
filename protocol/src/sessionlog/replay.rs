//! The screen as it was at any moment of a log.
//!
//! [`Replayer`] applies recorded screen updates to a [`Decoder`] exactly as the technician's
//! viewer does: in sequence order, holding back one that arrived before its predecessor. The
//! only place that knows how a stored update becomes pixels is [`apply_stored_update`]; when
//! the screen codec changes, a new record kind gets a branch there. [`Player`] walks a log in
//! time and stops at the moment asked for.

use std::io::Read;

use super::reader::{LogReader, RawRecord, Verdict};
use super::record::{BodyError, LinkChange, Record, SessionOpened, KIND_LINK, KIND_SCREEN_UPDATE};
use crate::codec::order::InOrder;
use crate::codec::Decoder;
use crate::peer::ScreenUpdate;
use crate::wire;

/// Updates that may wait for an earlier one (the live viewer allows 32).
pub const MAX_EARLY: usize = 64;

/// Bytes of updates that may wait for an earlier one ([`crate::codec::order::held_bytes`]):
/// twice what the live viewer allows (`technician::viewer::MAX_EARLY_BYTES`, two of the largest
/// updates), so a log the viewer took replays, and a hostile log cannot make a replay hold
/// 64 updates of 40 MB.
pub const MAX_EARLY_BYTES: usize = 4 * wire::PEER_MAX_FRAME;

/// Why a log cannot be replayed further.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the session log: {0}")]
    Io(#[from] std::io::Error),
    #[error("record {index}: {source}")]
    Body {
        index: u64,
        #[source]
        source: BodyError,
    },
    #[error("record {index}: screen update {seq} cannot be applied: {reason}")]
    Screen {
        index: u64,
        seq: u64,
        reason: String,
    },
}

/// Decodes a stored screen update of `kind`, or `None` if the kind is not a screen update.
/// The one place to change when the screen codec changes.
pub fn decode_stored_update(
    kind: u16,
    body: &[u8],
) -> Option<Result<ScreenUpdate, wire::DecodeError>> {
    (kind == KIND_SCREEN_UPDATE)
        .then(|| wire::decode::<ScreenUpdate, { wire::PEER_MAX_FRAME }>(body))
}

/// Applies one decoded update to `fb`.
pub fn apply_stored_update(fb: &mut Decoder, update: &ScreenUpdate) -> Result<(), String> {
    fb.apply(update).map_err(|e| e.to_string())
}

/// Screen updates in, the technician's framebuffer out.
pub struct Replayer {
    fb: Decoder,
    order: InOrder,
    applied: u64,
}

impl Default for Replayer {
    fn default() -> Self {
        Self::new()
    }
}

impl Replayer {
    pub fn new() -> Self {
        Self {
            fb: Decoder::new(),
            order: InOrder::with_byte_limit(MAX_EARLY, MAX_EARLY_BYTES),
            applied: 0,
        }
    }

    pub fn framebuffer(&self) -> &Decoder {
        &self.fb
    }

    /// Screen updates applied so far.
    pub fn updates_applied(&self) -> u64 {
        self.applied
    }

    /// Applies `rec` if it is a screen update (others are ignored). Returns whether the screen
    /// changed.
    pub fn apply(&mut self, rec: &RawRecord) -> Result<bool, ReplayError> {
        if rec.kind == KIND_LINK {
            // A resumed leg numbers its updates from the start again, from a whole screen.
            if let Ok(Record::Link(LinkChange::Resumed { .. })) = rec.decode() {
                self.order = InOrder::with_byte_limit(MAX_EARLY, MAX_EARLY_BYTES);
            }
            return Ok(false);
        }
        let Some(decoded) = decode_stored_update(rec.kind, &rec.body) else {
            return Ok(false);
        };
        let update = decoded.map_err(|source| ReplayError::Body {
            index: rec.index,
            source: BodyError {
                kind: rec.kind,
                name: rec.kind_name(),
                source,
            },
        })?;
        let seq = update.seq;
        self.order.push(update).map_err(|e| ReplayError::Screen {
            index: rec.index,
            seq,
            reason: e.to_string(),
        })?;
        let mut changed = false;
        while let Some(u) = self.order.pop() {
            apply_stored_update(&mut self.fb, &u).map_err(|reason| ReplayError::Screen {
                index: rec.index,
                seq: u.seq,
                reason,
            })?;
            self.applied += 1;
            changed = true;
        }
        Ok(changed)
    }
}

/// Walks a log in time: [`Player::advance_to`] applies every record up to a moment.
pub struct Player<R> {
    reader: LogReader<R>,
    replayer: Replayer,
    pending: Option<RawRecord>,
    opened: Option<SessionOpened>,
    last_time_ms: u64,
    done: bool,
}

impl<R: Read> Player<R> {
    pub fn new(reader: LogReader<R>) -> Self {
        Self {
            reader,
            replayer: Replayer::new(),
            pending: None,
            opened: None,
            last_time_ms: 0,
            done: false,
        }
    }

    /// Applies every record whose time is at most `t_ms` (ms since the session opened).
    pub fn advance_to(&mut self, t_ms: u64) -> Result<(), ReplayError> {
        loop {
            if self.pending.is_none() && !self.done {
                self.pending = self.reader.next_record()?;
                self.done = self.pending.is_none();
            }
            let Some(rec) = self.pending.take_if(|r| r.time_ms <= t_ms) else {
                return Ok(());
            };
            self.last_time_ms = rec.time_ms;
            if rec.index == 0 {
                if let Ok(Record::SessionOpened(o)) = rec.decode() {
                    self.opened = Some(o);
                }
            }
            self.replayer.apply(&rec)?;
        }
    }

    /// Reads to the end of the log, applying everything.
    pub fn run_to_end(&mut self) -> Result<(), ReplayError> {
        self.advance_to(u64::MAX)
    }

    pub fn framebuffer(&self) -> &Decoder {
        self.replayer.framebuffer()
    }

    pub fn replayer(&self) -> &Replayer {
        &self.replayer
    }

    /// Record 0, once read.
    pub fn opened(&self) -> Option<&SessionOpened> {
        self.opened.as_ref()
    }

    /// Time of the last record applied.
    pub fn last_time_ms(&self) -> u64 {
        self.last_time_ms
    }

    /// True once every record has been read.
    pub fn finished(&self) -> bool {
        self.done && self.pending.is_none()
    }

    /// How the log ended, once finished.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.reader.verdict()
    }
}
