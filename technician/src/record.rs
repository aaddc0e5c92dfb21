//! Recording a session into its log, as it happens.
//!
//! [`Recorder`] wraps the session-log writer (`protocol::sessionlog`) with the session's clock:
//! every record's time is milliseconds since the session opened. Screen updates are recorded
//! exactly as received, before they are reordered; consent changes and every input event the
//! technician sends are recorded too, as are chat, clipboards passed, the agent's monitors and
//! the user's pointer (its positions at most [`CURSOR_EVERY_MS`] apart: the latest is kept in
//! between), and the log is sealed with the reason the session ended.
//! A failed write does not end the session: the recorder says so once and stops, leaving a log
//! that verifies up to its last whole record. A log that reaches [`MAX_LOG_BYTES`] takes no
//! more screen updates and says it is full; the session then ends and seals it whole.

use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use protocol::cursor::{CursorPosition, CursorShape};
use protocol::input::InputEvent;
use protocol::monitor::Monitors;
use protocol::peer::{ConsentState, ScreenUpdate};
use protocol::sessionlog::{
    ChatRecord, Checkpoint, ClipboardRecord, CloseReason, LogWriter, SessionOpened, Verdict,
    WriteError,
};
use tracing::warn;

/// The per-user directory logs go to unless `--log-dir` says otherwise:
/// `$XDG_DATA_HOME/tandem/technician/logs` (usually `~/.local/share/…`).
pub fn default_log_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tandem")
        .map(|d| d.data_dir().join("technician").join("logs"))
        .unwrap_or_else(|| PathBuf::from("tandem-logs"))
}

/// Largest session log recorded: 4 GiB. A session whose log reaches it ends (the log sealed
/// whole, see [`Recorder::is_full`]) rather than fill the disk with what the agent sends, or
/// make a log the relay refuses: the relay stores at most 8 GiB a log by default (its
/// `max_log_mb`), and the encrypted copy in the upload spool is a little larger than the log.
/// A working desktop costs a few hundred kB a second, so this is hours of session; the session
/// ends rather than go on unrecorded, since the user was told it is recorded.
pub const MAX_LOG_BYTES: u64 = 4 << 30;

/// Least time between two recorded positions of the user's pointer; the latest in between is
/// kept and recorded once that time has passed (or at the next tick).
pub const CURSOR_EVERY_MS: u64 = 100;

pub struct Recorder {
    writer: Option<LogWriter<BufWriter<File>>>,
    path: PathBuf,
    start: Instant,
    started_unix_ms: u64,
    failure: Option<String>,
    /// [`MAX_LOG_BYTES`], or less in tests.
    limit: u64,
    full: bool,
    /// When a pointer position was last recorded, and the latest one not yet recorded.
    cursor_at: Option<u64>,
    cursor_pending: Option<CursorPosition>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("recording", &self.writer.is_some())
            .field("failure", &self.failure)
            .finish()
    }
}

impl Recorder {
    /// Creates `dir` if needed and a new log in it, named for the session's start.
    pub fn create(dir: &Path, opened: &SessionOpened) -> Result<Self, String> {
        Self::create_with_limit(dir, opened, MAX_LOG_BYTES)
    }

    /// As [`Recorder::create`], full at `limit` bytes instead of [`MAX_LOG_BYTES`].
    pub fn create_with_limit(
        dir: &Path,
        opened: &SessionOpened,
        limit: u64,
    ) -> Result<Self, String> {
        // The log holds the screen and what was typed, in the clear: owner-only, like the
        // directory that holds it.
        link::userfile::private_dir(dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
        let path = dir.join(format!("session-{}.tlog", opened.started_unix_ms));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create the session log {}: {e}", path.display()))?;
        let writer = LogWriter::create(BufWriter::new(file), opened)
            .map_err(|e| format!("cannot write the session log {}: {e}", path.display()))?;
        Ok(Self {
            writer: Some(writer),
            path,
            start: Instant::now(),
            started_unix_ms: opened.started_unix_ms,
            failure: None,
            limit,
            full: false,
            cursor_at: None,
            cursor_pending: None,
        })
    }

    /// The log has reached its limit ([`MAX_LOG_BYTES`]): it takes no more screen updates, and
    /// the session should end so that it is sealed. It holds at most one update past the
    /// limit, and the records of the end.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When the session opened, as its first record says (ms since the Unix epoch).
    pub fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn with(
        &mut self,
        f: impl FnOnce(&mut LogWriter<BufWriter<File>>, u64) -> Result<(), WriteError>,
    ) {
        let t = self.now();
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = f(w, t) {
                warn!(error = %e, path = %self.path.display(), "recording stopped");
                self.failure = Some(e.to_string());
                self.writer = None;
            }
        }
    }

    /// Records a screen update, unless the log is full; says when it has become full.
    pub fn update(&mut self, update: &ScreenUpdate) {
        if self.full {
            return;
        }
        self.with(|w, t| w.screen_update(t, update));
        if let Some(w) = &self.writer {
            if w.appended_bytes() >= self.limit {
                warn!(path = %self.path.display(), limit = self.limit, "the session log is full");
                self.full = true;
            }
        }
    }

    pub fn consent(&mut self, state: ConsentState) {
        self.with(|w, t| w.consent(t, state));
    }

    /// A step of the session's help request (taken with a hand-off, escalated, held, closed).
    pub fn desk_step(&mut self, step: &protocol::sessionlog::DeskStep) {
        self.with(|w, t| w.desk_step(t, step));
    }

    /// Another technician joined the session, or left it (`left`: why), as the agent's list
    /// of participants showed it.
    pub fn participant(&mut self, who: &protocol::sessionlog::Participant, left: Option<&str>) {
        self.with(|w, t| match left {
            None => w.participant_joined(t, who),
            Some(why) => w.participant_left(t, who, why),
        });
    }

    /// A file sent to the user or fetched from them, and how it went.
    pub fn file_transfer(&mut self, file: &protocol::sessionlog::FileTransfer) {
        self.with(|w, t| w.file_transfer(t, file));
    }

    /// Who holds control now, in a session with several technicians.
    pub fn control(&mut self, change: &protocol::sessionlog::ControlChange) {
        self.with(|w, t| w.control(t, change));
    }

    pub fn input(&mut self, event: &InputEvent) {
        self.with(|w, t| w.input(t, event));
    }

    /// A chat message, sent or received.
    pub fn chat(&mut self, chat: &ChatRecord) {
        self.with(|w, t| w.chat(t, chat));
    }

    /// A clipboard passed between the user and this technician.
    pub fn clipboard(&mut self, clip: &ClipboardRecord) {
        self.with(|w, t| w.clipboard(t, clip));
    }

    /// The agent's monitors, and which this technician sees.
    pub fn monitors(&mut self, monitors: &Monitors) {
        self.with(|w, t| w.monitors(t, monitors));
    }

    /// The link through the relay was lost, or resumed.
    pub fn link(&mut self, change: &protocol::sessionlog::LinkChange) {
        self.with(|w, t| w.link(t, change));
    }

    /// The technician asked to list a folder of the user's machine.
    pub fn folder(&mut self, look: &protocol::sessionlog::FolderLook) {
        self.with(|w, t| w.folder(t, look));
    }

    /// A shape of the user's pointer.
    pub fn cursor_shape(&mut self, shape: &CursorShape) {
        self.with(|w, t| w.cursor_shape(t, shape));
    }

    /// Where the user's pointer is: recorded if the last was [`CURSOR_EVERY_MS`] ago, else kept
    /// for later.
    pub fn cursor(&mut self, at: CursorPosition) {
        let now = self.now();
        if self
            .cursor_at
            .is_some_and(|t| now.saturating_sub(t) < CURSOR_EVERY_MS)
        {
            self.cursor_pending = Some(at);
            return;
        }
        self.cursor_pending = None;
        self.cursor_at = Some(now);
        self.with(|w, t| w.cursor(t, at));
    }

    /// Lets buffered screen updates reach the file (at least once a second), with the pointer's
    /// last position if it was held back.
    pub fn tick(&mut self) {
        if let Some(at) = self.cursor_pending.take() {
            self.cursor_at = Some(self.now());
            self.with(|w, t| w.cursor(t, at));
        }
        self.with(|w, t| w.tick(t));
    }

    /// How far the log has got, on disk: every record so far written out and synced. `None`
    /// when recording stopped. A checkpoint is only ever of records a crash cannot take back,
    /// so that a log checked against it is never blamed for what a power cut lost.
    pub fn checkpoint(&mut self) -> Option<Checkpoint> {
        let w = self.writer.as_mut()?;
        let cp = w.checkpoint().ok()?;
        w.get_ref()?.get_ref().sync_data().ok()?;
        Some(cp)
    }

    /// Seals the log with the reason the session ended, syncs it to disk and reads it back:
    /// the verdict of the sealed file (records, duration, final chain hash).
    pub fn finish(&mut self, reason: &CloseReason) -> Result<Verdict, String> {
        let t = self.now();
        let Some(w) = self.writer.take() else {
            return Err(self
                .failure
                .clone()
                .unwrap_or_else(|| "already finished".into()));
        };
        let out = w.finish(t, reason).map_err(|e| e.to_string())?;
        let file = out.into_inner().map_err(|e| e.error().to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        let back = File::open(&self.path).map_err(|e| e.to_string())?;
        protocol::sessionlog::verify(std::io::BufReader::new(back)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::Role;
    use protocol::peer::EndReason;
    use protocol::sessionlog::{code_sha256, Participant, TypedText};

    fn opened() -> SessionOpened {
        let who = |role, d: &str| Participant {
            role,
            description: d.into(),
            software: "test".into(),
        };
        SessionOpened {
            started_unix_ms: 1_714_572_192_000,
            relay_address: "127.0.0.1:4433".into(),
            relay_fingerprint: "00".repeat(32),
            relay_software: "relay test".into(),
            technician: who(Role::Technician, "technician"),
            agent: who(Role::Agent, "agent"),
            protocol_version: protocol::PROTOCOL_VERSION,
            code_sha256: code_sha256("123456789"),
            typed_text: TypedText::Full,
        }
    }

    #[test]
    fn the_plaintext_log_and_its_directory_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        // A directory made before, readable by all, is made private too.
        std::fs::create_dir(&logs).unwrap();
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rec = Recorder::create(&logs, &opened()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(rec.path()), 0o600);
        assert_eq!(mode(&logs), 0o700);
    }

    #[test]
    fn recording_stops_at_its_cap_and_the_log_is_sealed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1 << 20;
        let mut rec = Recorder::create_with_limit(dir.path(), &opened(), limit).unwrap();
        let update = |seq| ScreenUpdate {
            seq,
            width: 64,
            height: 64,
            ops: Vec::new(),
            tile_data: vec![seq as u8; 100_000],
        };
        let mut seq = 1;
        while !rec.is_full() {
            assert!(seq < 100, "the cap of {limit} bytes never took effect");
            rec.update(&update(seq));
            seq += 1;
        }
        // Past the cap nothing more of the screen is written; the end still is.
        rec.update(&update(seq));
        rec.consent(ConsentState::ViewOnly);
        let verdict = rec
            .finish(&CloseReason::ByAgent(EndReason::UserEnded))
            .unwrap();
        assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict}");
        let size = std::fs::metadata(rec.path()).unwrap().len();
        assert!(
            size <= limit + 100_000 + 4096,
            "{size} bytes: at most one record past the cap"
        );
        assert!(rec.is_full());
    }
}
