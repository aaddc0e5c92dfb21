//! What a session-log record says: the kinds, their bodies, and how a body becomes bytes.
//!
//! The frame around a record (index, time, kind, hashes) is the same for every kind and is
//! handled by the writer and the reader; this module only knows bodies. A body is bincode 2 of
//! the kind's type. Kinds are numbered once and never reused: a reader that meets a number it
//! does not know still checks the record's hashes and hands it on as [`Record::Unknown`], so
//! logs written by newer versions verify with older tools. Changing a body's layout means a new
//! kind number (as [`KIND_SCREEN_UPDATE`] will get a sibling when the screen codec changes).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clipboard::{ClipContent, ClipKind, Selection};
use crate::control::Role;
use crate::cursor::{CursorPosition, CursorShape};
use crate::input::{InputEvent, Key, Modifiers};
use crate::monitor::Monitors;
use crate::peer::{ConsentState, EndReason, ScreenUpdate};
use crate::wire::{self, DecodeError};

/// [`SessionOpened`]: always record 0.
pub const KIND_SESSION_OPENED: u16 = 1;
/// [`ParticipantJoined`].
pub const KIND_PARTICIPANT_JOINED: u16 = 2;
/// [`ParticipantLeft`].
pub const KIND_PARTICIPANT_LEFT: u16 = 3;
/// [`ConsentState`] as the agent sent it.
pub const KIND_CONSENT: u16 = 4;
/// [`RecordedInput`]: one input event the technician sent.
pub const KIND_INPUT: u16 = 5;
/// [`ChatRecord`]: a chat message, sent or received.
pub const KIND_CHAT: u16 = 6;
/// [`DeskStep`]: what was done with the session's help request (taken, escalated, held,
/// closed), with its note.
pub const KIND_DESK_STEP: u16 = 7;
/// A [`ScreenUpdate`] of the screen codec, exactly as received.
pub const KIND_SCREEN_UPDATE: u16 = 8;
/// [`ErrorNote`].
pub const KIND_ERROR: u16 = 9;
/// [`SessionClosed`].
pub const KIND_SESSION_CLOSED: u16 = 10;
/// [`ControlChange`]: who holds control, in a session with several technicians.
pub const KIND_CONTROL: u16 = 11;
/// [`FileTransfer`]: a file sent to the user or fetched from them, and how it went.
pub const KIND_FILE_TRANSFER: u16 = 12;
/// [`ClipboardRecord`]: a clipboard passed between the user and this technician.
pub const KIND_CLIPBOARD: u16 = 20;
/// [`Monitors`]: the agent's monitors and which this technician sees, as the agent sent them.
pub const KIND_MONITORS: u16 = 21;
/// A [`CursorShape`] of the user's pointer, as the agent sent it.
pub const KIND_CURSOR_SHAPE: u16 = 22;
/// [`CursorPosition`]: where the user's pointer was (at most a few a second are kept).
pub const KIND_CURSOR: u16 = 23;
/// [`LinkChange`]: the link through the relay was lost, or the session resumed.
pub const KIND_LINK: u16 = 24;
/// [`FolderLook`]: the technician asked to list a folder of the user's machine, and what came
/// of it.
pub const KIND_FOLDER: u16 = 25;
/// The seal: empty body, always the last record of a finished log.
pub const KIND_SEAL: u16 = 0xffff;

/// Largest body of a screen update: a whole peer-plane frame.
pub const MAX_SCREEN_BODY: usize = wire::PEER_MAX_FRAME;
/// Largest body of any other kind.
pub const MAX_EVENT_BODY: usize = 64 * 1024;

/// How typed text is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TypedText {
    /// Every key event as sent, with the text it produced.
    #[default]
    Full,
    /// Keys that produce characters are recorded as a count of characters only; named keys
    /// (Return, arrows, F5, modifiers) are kept without their text.
    CountOnly,
}

/// One side of the session as the relay or the peer described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub role: Role,
    /// Who it is, in words ("technician at 10.0.0.7:51234"; an account name once there are
    /// accounts).
    pub description: String,
    /// Its software and version.
    pub software: String,
}

/// Record 0: what the session was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOpened {
    /// Wall-clock start, ms since the Unix epoch. Every record's time counts from here.
    pub started_unix_ms: u64,
    /// Relay address as dialled (`HOST:PORT`).
    pub relay_address: String,
    /// SHA-256 fingerprint of the relay's certificate, hex.
    pub relay_fingerprint: String,
    /// The relay's software and version, as it said in its welcome.
    pub relay_software: String,
    pub technician: Participant,
    pub agent: Participant,
    /// Peer-plane protocol version spoken.
    pub protocol_version: u16,
    /// SHA-256 of the session code's digits, never the code itself. A code is short, so this
    /// links the log to the relay's records of the session; it does not hide the code from
    /// someone who tries every code.
    pub code_sha256: [u8; 32],
    /// How typed text is recorded in this log.
    pub typed_text: TypedText,
}

/// SHA-256 of a session code's digits, for [`SessionOpened::code_sha256`].
pub fn code_sha256(digits: &str) -> [u8; 32] {
    Sha256::digest(digits.as_bytes()).into()
}

/// Someone joined (a second technician, a supervisor, once those exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJoined {
    pub participant: Participant,
}

/// Someone left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLeft {
    pub participant: Participant,
    /// Why, in words.
    pub reason: String,
}

/// An input event the technician sent, possibly with its text reduced to a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordedInput {
    /// The event as sent.
    Event(InputEvent),
    /// A key that produced characters, recorded under [`TypedText::CountOnly`].
    Typed {
        down: bool,
        /// Number of characters the key produced (1 for most keys).
        chars: u32,
        modifiers: Modifiers,
    },
}

impl RecordedInput {
    /// The event as the policy allows it to be kept.
    pub fn from_event(event: &InputEvent, policy: TypedText) -> Self {
        match (policy, event) {
            (
                TypedText::CountOnly,
                InputEvent::Key {
                    down,
                    key,
                    text,
                    modifiers,
                },
            ) => match key {
                Key::Char(_) => RecordedInput::Typed {
                    down: *down,
                    chars: text
                        .as_ref()
                        .map_or(1, |t| u32::try_from(t.chars().count()).unwrap_or(u32::MAX)),
                    modifiers: *modifiers,
                },
                Key::Named(_) => RecordedInput::Event(InputEvent::Key {
                    down: *down,
                    key: *key,
                    text: None,
                    modifiers: *modifiers,
                }),
            },
            _ => RecordedInput::Event(event.clone()),
        }
    }
}

/// The session's link through the relay: lost (the relay connection died, the session waits
/// for it), or resumed (through the relay named, the same two ends proved to each other that
/// they are). Records between the two were written while no peer could send anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkChange {
    Lost { why: String },
    Resumed { relay: String },
}

impl std::fmt::Display for LinkChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkChange::Lost { why } => write!(f, "link lost: {why}"),
            LinkChange::Resumed { relay } => write!(f, "link resumed through {relay}"),
        }
    }
}

/// A folder of the user's machine the technician asked to see, and what came of it. Only
/// the counts are kept, not the names listed: the log says that a technician looked into a
/// folder and how much was there, as it says a file was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderLook {
    /// The folder as the agent resolved it (listed), or as asked (refused); cut to
    /// [`MAX_FOLDER_PATH`] characters.
    pub path: String,
    pub outcome: FolderOutcome,
}

/// Longest folder path a [`FolderLook`] keeps, in characters.
pub const MAX_FOLDER_PATH: usize = 4096;

/// What came of asking to list a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FolderOutcome {
    /// Listed: how many folders and files were sent, and how many more the folder had.
    Listed {
        folders: u32,
        files: u32,
        omitted: u64,
    },
    /// The agent refused, and why (browsing not allowed, not in control, no such folder).
    Refused { reason: String },
}

impl FolderLook {
    /// The record of a listing the technician received.
    pub fn listed(listing: &crate::browse::Listing) -> Self {
        let folders = listing.entries.iter().filter(|e| e.folder).count() as u32;
        Self {
            path: crate::text::clip(&listing.path, MAX_FOLDER_PATH).into_owned(),
            outcome: FolderOutcome::Listed {
                folders,
                files: listing.entries.len() as u32 - folders,
                omitted: listing.omitted,
            },
        }
    }

    /// The record of a listing the agent refused.
    pub fn refused(path: &str, reason: &str) -> Self {
        Self {
            path: crate::text::clip(path, MAX_FOLDER_PATH).into_owned(),
            outcome: FolderOutcome::Refused {
                reason: crate::text::clip(reason, MAX_FOLDER_PATH).into_owned(),
            },
        }
    }
}

impl std::fmt::Display for FolderLook {
    /// `folder listed: /home/ana/Documents (3 folders, 12 files)`, or `folder listing refused:
    /// /etc (browsing is off)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = crate::text::printable(&self.path);
        match &self.outcome {
            FolderOutcome::Listed {
                folders,
                files,
                omitted,
            } => {
                write!(f, "folder listed: {path} ({folders} folders, {files} files")?;
                if *omitted > 0 {
                    write!(f, ", {omitted} more not listed")?;
                }
                f.write_str(")")
            }
            FolderOutcome::Refused { reason } => write!(
                f,
                "folder listing refused: {path} ({})",
                crate::text::printable(reason)
            ),
        }
    }
}

/// Something went wrong during the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNote {
    /// Words for a person.
    pub message: String,
}

/// A step of the session's help request on the desk, as the technician's client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskStep {
    /// The request's number on the relay.
    pub request: u64,
    /// What was done: `taken` (with the hand-off note that came with it, if any),
    /// `escalated`, `held`, `resolved`, `unresolved`.
    pub action: String,
    /// To whom, for an escalation: `tier 2`, or a technician's name.
    pub to: Option<String>,
    /// The technician's note.
    pub note: String,
    /// The relay's words for what it did ("escalated to tier 2").
    pub words: String,
}

impl std::fmt::Display for DeskStep {
    /// `help request 4: escalated to tier 2 ("the printer driver needs an admin")`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "help request {}: {}", self.request, self.words)?;
        if !self.note.is_empty() {
            write!(f, " ({:?})", self.note)?;
        }
        Ok(())
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The agent ended it with this reason.
    ByAgent(EndReason),
    /// The technician ended it.
    ByTechnician,
    /// It broke: the agent vanished or broke the protocol, the network went away.
    Failed(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ByAgent(r) => write!(f, "{r}"),
            CloseReason::ByTechnician => f.write_str("the technician ended the session"),
            CloseReason::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Who holds control of mouse and keyboard now, in a session with several technicians, as the
/// agent told this technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlChange {
    /// The account name of the one holding control; `None`: nobody.
    pub holder: Option<String>,
    /// The holder is the technician who recorded this log.
    pub recorder_holds: bool,
}

impl std::fmt::Display for ControlChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.holder, self.recorder_holds) {
            (Some(_), true) => f.write_str("control passed to this technician"),
            (Some(name), false) => write!(f, "control passed to {name}"),
            (None, _) => f.write_str("nobody holds control"),
        }
    }
}

/// Who wrote a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatAuthor {
    /// The person at the shared screen.
    User,
    /// The technician who recorded this log.
    Recorder,
    /// Another technician of the session, by account name.
    Technician(String),
}

impl std::fmt::Display for ChatAuthor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatAuthor::User => f.write_str("the user"),
            ChatAuthor::Recorder => f.write_str("this technician"),
            ChatAuthor::Technician(name) => f.write_str(name),
        }
    }
}

/// A chat message of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    pub from: ChatAuthor,
    pub text: String,
}

/// Which way a clipboard went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClipDirection {
    /// From this technician to the user's machine.
    ToUser,
    /// From the user's machine to this technician.
    FromUser,
}

impl ClipDirection {
    pub fn name(self) -> &'static str {
        match self {
            ClipDirection::ToUser => "to_user",
            ClipDirection::FromUser => "from_user",
        }
    }
}

/// A clipboard passed between the user and this technician: which way, which selection, its
/// kind and size, and its content only where the relay's policy asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardRecord {
    pub direction: ClipDirection,
    pub selection: Selection,
    pub kind: ClipKind,
    pub bytes: u64,
    pub content: Option<ClipContent>,
}

impl std::fmt::Display for ClipboardRecord {
    /// `clipboard text of 12 bytes to the user`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} of {} {} the user",
            self.selection.name(),
            self.kind.name(),
            crate::clipboard::size_words(self.bytes as usize),
            match self.direction {
                ClipDirection::ToUser => "to",
                ClipDirection::FromUser => "from",
            }
        )
    }
}

/// Which way a file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileDirection {
    /// The technician sent it to the user.
    ToUser,
    /// The technician fetched it from the user's machine.
    FromUser,
}

/// How a file transfer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileOutcome {
    /// It arrived whole and its SHA-256 matched; stored under this name (its last part may
    /// differ from the offered one, where that was taken), after `resumed_from` bytes that had
    /// arrived in an earlier attempt.
    Delivered {
        stored_as: String,
        resumed_from: u64,
    },
    /// The receiving side declined it (the user, or the agent's rules), and why.
    Declined { reason: String },
    /// It did not arrive, and why.
    Failed { reason: String },
}

/// A file the technician sent to the user or fetched from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTransfer {
    pub direction: FileDirection,
    /// Its path under what was offered, `/` between the parts, as offered.
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Who accepted it on the receiving side (`None`: nobody did).
    pub accepted_by: Option<crate::transfer::AcceptedBy>,
    pub outcome: FileOutcome,
}

impl std::fmt::Display for FileTransfer {
    /// `file to the user: report.pdf (1.2 MB, SHA-256 3f0a…), accepted by the user, stored as
    /// report (1).pdf`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let way = match self.direction {
            FileDirection::ToUser => "file to the user",
            FileDirection::FromUser => "file from the user",
        };
        let sha = crate::transfer::sha256_hex(&self.sha256);
        write!(
            f,
            "{way}: {} ({}, SHA-256 {})",
            crate::text::printable(&self.name),
            crate::transfer::bytes_words(self.size),
            &sha[..16]
        )?;
        match self.accepted_by {
            Some(crate::transfer::AcceptedBy::Person) => f.write_str(", accepted by the user")?,
            Some(crate::transfer::AcceptedBy::Unattended) => {
                f.write_str(", accepted unattended (agent --accept-files)")?
            }
            Some(crate::transfer::AcceptedBy::Requester) => {
                f.write_str(", fetched by the technician (agent --allow-files)")?
            }
            None => {}
        }
        match &self.outcome {
            FileOutcome::Delivered {
                stored_as,
                resumed_from,
            } => {
                write!(f, ", stored as {}", crate::text::printable(stored_as))?;
                if *resumed_from > 0 {
                    write!(
                        f,
                        " (resumed after {})",
                        crate::transfer::bytes_words(*resumed_from)
                    )?;
                }
                Ok(())
            }
            FileOutcome::Declined { reason } => {
                write!(f, ", declined: {}", crate::text::printable(reason))
            }
            FileOutcome::Failed { reason } => {
                write!(f, ", failed: {}", crate::text::printable(reason))
            }
        }
    }
}

/// The session is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClosed {
    pub reason: CloseReason,
}

/// A record's body, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    SessionOpened(SessionOpened),
    ParticipantJoined(ParticipantJoined),
    ParticipantLeft(ParticipantLeft),
    Consent(ConsentState),
    Input(RecordedInput),
    ScreenUpdate(ScreenUpdate),
    Error(ErrorNote),
    DeskStep(DeskStep),
    SessionClosed(SessionClosed),
    Control(ControlChange),
    Chat(ChatRecord),
    Clipboard(ClipboardRecord),
    Monitors(Monitors),
    CursorShape(CursorShape),
    Cursor(CursorPosition),
    FileTransfer(FileTransfer),
    Link(LinkChange),
    Folder(FolderLook),
    Seal,
    /// A kind this version does not know (written by a newer one); its hashes were checked.
    Unknown {
        kind: u16,
    },
}

/// Why a body could not be read even though its hashes were right (a writer bug, or a kind
/// whose layout this version does not know).
#[derive(Debug, thiserror::Error)]
#[error("record of kind {kind} ({name}) has an unreadable body: {source}")]
pub struct BodyError {
    pub kind: u16,
    pub name: &'static str,
    #[source]
    pub source: DecodeError,
}

/// A short name for a kind, for people and JSON.
pub fn kind_name(kind: u16) -> &'static str {
    match kind {
        KIND_SESSION_OPENED => "session_opened",
        KIND_PARTICIPANT_JOINED => "participant_joined",
        KIND_PARTICIPANT_LEFT => "participant_left",
        KIND_CONSENT => "consent",
        KIND_INPUT => "input",
        KIND_CHAT => "chat",
        KIND_DESK_STEP => "desk_step",
        KIND_SCREEN_UPDATE => "screen_update",
        KIND_ERROR => "error",
        KIND_SESSION_CLOSED => "session_closed",
        KIND_CONTROL => "control",
        KIND_CLIPBOARD => "clipboard",
        KIND_MONITORS => "monitors",
        KIND_CURSOR_SHAPE => "cursor_shape",
        KIND_CURSOR => "cursor",
        KIND_FILE_TRANSFER => "file_transfer",
        KIND_LINK => "link",
        KIND_FOLDER => "folder",
        KIND_SEAL => "seal",
        _ => "unknown",
    }
}

/// Largest body a kind may have.
pub fn max_body(kind: u16) -> usize {
    if kind == KIND_SCREEN_UPDATE {
        MAX_SCREEN_BODY
    } else {
        // Unknown kinds may be large too (a future codec); the frame limit still applies.
        match kind {
            KIND_SESSION_OPENED
            | KIND_PARTICIPANT_JOINED
            | KIND_PARTICIPANT_LEFT
            | KIND_CONSENT
            | KIND_INPUT
            | KIND_ERROR
            | KIND_DESK_STEP
            | KIND_SESSION_CLOSED
            | KIND_CONTROL
            | KIND_CHAT
            | KIND_MONITORS
            | KIND_CURSOR
            | KIND_FILE_TRANSFER
            | KIND_LINK
            | KIND_FOLDER
            | KIND_SEAL => MAX_EVENT_BODY,
            // A clipboard's content and a cursor's pixels may be larger.
            _ => MAX_SCREEN_BODY,
        }
    }
}

impl Record {
    /// The kind number this record is written under.
    pub fn kind(&self) -> u16 {
        match self {
            Record::SessionOpened(_) => KIND_SESSION_OPENED,
            Record::ParticipantJoined(_) => KIND_PARTICIPANT_JOINED,
            Record::ParticipantLeft(_) => KIND_PARTICIPANT_LEFT,
            Record::Consent(_) => KIND_CONSENT,
            Record::Input(_) => KIND_INPUT,
            Record::ScreenUpdate(_) => KIND_SCREEN_UPDATE,
            Record::Error(_) => KIND_ERROR,
            Record::DeskStep(_) => KIND_DESK_STEP,
            Record::SessionClosed(_) => KIND_SESSION_CLOSED,
            Record::Control(_) => KIND_CONTROL,
            Record::Chat(_) => KIND_CHAT,
            Record::Clipboard(_) => KIND_CLIPBOARD,
            Record::Monitors(_) => KIND_MONITORS,
            Record::CursorShape(_) => KIND_CURSOR_SHAPE,
            Record::Cursor(_) => KIND_CURSOR,
            Record::FileTransfer(_) => KIND_FILE_TRANSFER,
            Record::Link(_) => KIND_LINK,
            Record::Folder(_) => KIND_FOLDER,
            Record::Seal => KIND_SEAL,
            Record::Unknown { kind } => *kind,
        }
    }

    /// Decodes a body of `kind`. Unknown kinds decode to [`Record::Unknown`].
    pub fn decode(kind: u16, body: &[u8]) -> Result<Record, BodyError> {
        fn d<T: serde::de::DeserializeOwned>(kind: u16, body: &[u8]) -> Result<T, BodyError> {
            let r = if max_body(kind) == MAX_SCREEN_BODY {
                wire::decode::<T, MAX_SCREEN_BODY>(body)
            } else {
                wire::decode::<T, MAX_EVENT_BODY>(body)
            };
            r.map_err(|source| BodyError {
                kind,
                name: kind_name(kind),
                source,
            })
        }
        Ok(match kind {
            KIND_SESSION_OPENED => Record::SessionOpened(d(kind, body)?),
            KIND_PARTICIPANT_JOINED => Record::ParticipantJoined(d(kind, body)?),
            KIND_PARTICIPANT_LEFT => Record::ParticipantLeft(d(kind, body)?),
            KIND_CONSENT => Record::Consent(d(kind, body)?),
            KIND_INPUT => Record::Input(d(kind, body)?),
            KIND_SCREEN_UPDATE => Record::ScreenUpdate(d(kind, body)?),
            KIND_ERROR => Record::Error(d(kind, body)?),
            KIND_DESK_STEP => Record::DeskStep(d(kind, body)?),
            KIND_SESSION_CLOSED => Record::SessionClosed(d(kind, body)?),
            KIND_CONTROL => Record::Control(d(kind, body)?),
            KIND_CHAT => Record::Chat(d(kind, body)?),
            KIND_CLIPBOARD => Record::Clipboard(d(kind, body)?),
            KIND_MONITORS => Record::Monitors(d(kind, body)?),
            KIND_CURSOR_SHAPE => Record::CursorShape(d(kind, body)?),
            KIND_CURSOR => Record::Cursor(d(kind, body)?),
            KIND_FILE_TRANSFER => Record::FileTransfer(d(kind, body)?),
            KIND_LINK => Record::Link(d(kind, body)?),
            KIND_FOLDER => Record::Folder(d(kind, body)?),
            KIND_SEAL => {
                if !body.is_empty() {
                    return Err(BodyError {
                        kind,
                        name: "seal",
                        source: DecodeError::Trailing(body.len()),
                    });
                }
                Record::Seal
            }
            other => Record::Unknown { kind: other },
        })
    }
}

/// Appends the bincode body of a known record to `out`.
pub(crate) fn encode_body(record: BodyRef<'_>, out: &mut Vec<u8>) {
    fn e<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
        // Encoding into memory cannot fail for these types.
        bincode::serde::encode_into_std_write(v, out, bincode::config::standard())
            .expect("encoding a record into memory cannot fail");
    }
    match record {
        BodyRef::SessionOpened(v) => e(v, out),
        BodyRef::ParticipantJoined(v) => e(v, out),
        BodyRef::ParticipantLeft(v) => e(v, out),
        BodyRef::Consent(v) => e(&v, out),
        BodyRef::Input(v) => e(v, out),
        BodyRef::ScreenUpdate(v) => e(v, out),
        BodyRef::Error(v) => e(v, out),
        BodyRef::DeskStep(v) => e(v, out),
        BodyRef::SessionClosed(v) => e(v, out),
        BodyRef::Control(v) => e(v, out),
        BodyRef::Chat(v) => e(v, out),
        BodyRef::Clipboard(v) => e(v, out),
        BodyRef::Monitors(v) => e(v, out),
        BodyRef::CursorShape(v) => e(v, out),
        BodyRef::Cursor(v) => e(&v, out),
        BodyRef::FileTransfer(v) => e(v, out),
        BodyRef::Link(v) => e(v, out),
        BodyRef::Folder(v) => e(v, out),
        BodyRef::Seal => {}
    }
}

/// A borrowed record body, so that writing a screen update does not copy it first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyRef<'a> {
    SessionOpened(&'a SessionOpened),
    ParticipantJoined(&'a ParticipantJoined),
    ParticipantLeft(&'a ParticipantLeft),
    Consent(ConsentState),
    Input(&'a RecordedInput),
    ScreenUpdate(&'a ScreenUpdate),
    Error(&'a ErrorNote),
    DeskStep(&'a DeskStep),
    SessionClosed(&'a SessionClosed),
    Control(&'a ControlChange),
    Chat(&'a ChatRecord),
    Clipboard(&'a ClipboardRecord),
    Monitors(&'a Monitors),
    CursorShape(&'a CursorShape),
    Cursor(CursorPosition),
    FileTransfer(&'a FileTransfer),
    Link(&'a LinkChange),
    Folder(&'a FolderLook),
    Seal,
}

impl BodyRef<'_> {
    pub(crate) fn kind(&self) -> u16 {
        match self {
            BodyRef::SessionOpened(_) => KIND_SESSION_OPENED,
            BodyRef::ParticipantJoined(_) => KIND_PARTICIPANT_JOINED,
            BodyRef::ParticipantLeft(_) => KIND_PARTICIPANT_LEFT,
            BodyRef::Consent(_) => KIND_CONSENT,
            BodyRef::Input(_) => KIND_INPUT,
            BodyRef::ScreenUpdate(_) => KIND_SCREEN_UPDATE,
            BodyRef::Error(_) => KIND_ERROR,
            BodyRef::DeskStep(_) => KIND_DESK_STEP,
            BodyRef::SessionClosed(_) => KIND_SESSION_CLOSED,
            BodyRef::Control(_) => KIND_CONTROL,
            BodyRef::Chat(_) => KIND_CHAT,
            BodyRef::Clipboard(_) => KIND_CLIPBOARD,
            BodyRef::Monitors(_) => KIND_MONITORS,
            BodyRef::CursorShape(_) => KIND_CURSOR_SHAPE,
            BodyRef::Cursor(_) => KIND_CURSOR,
            BodyRef::FileTransfer(_) => KIND_FILE_TRANSFER,
            BodyRef::Link(_) => KIND_LINK,
            BodyRef::Folder(_) => KIND_FOLDER,
            BodyRef::Seal => KIND_SEAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::NamedKey;

    #[test]
    fn count_only_keeps_no_characters() {
        let typed = InputEvent::Key {
            down: true,
            key: Key::Char('p'),
            text: Some("p".into()),
            modifiers: Modifiers::NONE,
        };
        assert_eq!(
            RecordedInput::from_event(&typed, TypedText::CountOnly),
            RecordedInput::Typed {
                down: true,
                chars: 1,
                modifiers: Modifiers::NONE
            }
        );
        assert_eq!(
            RecordedInput::from_event(&typed, TypedText::Full),
            RecordedInput::Event(typed.clone())
        );
        let ret = InputEvent::Key {
            down: false,
            key: Key::Named(NamedKey::Return),
            text: Some("\r".into()),
            modifiers: Modifiers::NONE,
        };
        let RecordedInput::Event(InputEvent::Key { text, .. }) =
            RecordedInput::from_event(&ret, TypedText::CountOnly)
        else {
            panic!("a named key stays a key event");
        };
        assert_eq!(text, None);
    }

    #[test]
    fn unknown_kinds_decode_as_unknown() {
        assert_eq!(
            Record::decode(400, b"anything").unwrap(),
            Record::Unknown { kind: 400 }
        );
        assert!(Record::decode(KIND_SEAL, b"x").is_err());
        assert!(Record::decode(KIND_CONSENT, &[9, 9]).is_err());
    }

    #[test]
    fn a_folder_look_counts_what_was_listed_and_reads_back() {
        let entry = |name: &str, folder| crate::browse::Entry {
            name: name.into(),
            folder,
            size: if folder { 0 } else { 7 },
        };
        let mut listing = crate::browse::Listing::new(
            "/home/ana".into(),
            vec![
                entry("a.txt", false),
                entry("Documents", true),
                entry("b", false),
            ],
        );
        listing.omitted = 4;
        let look = FolderLook::listed(&listing);
        assert_eq!(
            look.outcome,
            FolderOutcome::Listed {
                folders: 1,
                files: 2,
                omitted: 4
            }
        );
        assert_eq!(
            look.to_string(),
            "folder listed: /home/ana (1 folders, 2 files, 4 more not listed)"
        );
        let mut body = Vec::new();
        encode_body(BodyRef::Folder(&look), &mut body);
        assert_eq!(
            Record::decode(KIND_FOLDER, &body).unwrap(),
            Record::Folder(look)
        );

        let long = "/x".repeat(MAX_FOLDER_PATH);
        let refused = FolderLook::refused(&long, "browsing is off");
        assert!(
            refused.path.len() <= MAX_FOLDER_PATH + 4,
            "{}",
            refused.path.len()
        );
        assert!(refused.to_string().ends_with("(browsing is off)"));
    }
}
