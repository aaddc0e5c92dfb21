//! Recording a session into its log, as it happens.
//!
//! [`Recorder`] wraps the session-log writer (`protocol::sessionlog`) with the session's clock:
//! every record's time is milliseconds since the session opened. Screen updates are recorded
//! exactly as received, before they are reordered; consent changes and every input event the
//! technician sends are recorded too, and the log is sealed with the reason the session ended.
//! A failed write does not end the session: the recorder says so once and stops, leaving a log
//! that verifies up to its last whole record.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use protocol::input::InputEvent;
use protocol::peer::{ConsentState, ScreenUpdate};
use protocol::sessionlog::{
    Checkpoint, CloseReason, LogWriter, SessionOpened, Verdict, WriteError,
};
use tracing::warn;

/// The per-user directory logs go to unless `--log-dir` says otherwise:
/// `$XDG_DATA_HOME/tandem/technician/logs` (usually `~/.local/share/…`).
pub fn default_log_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tandem")
        .map(|d| d.data_dir().join("technician").join("logs"))
        .unwrap_or_else(|| PathBuf::from("tandem-logs"))
}

pub struct Recorder {
    writer: Option<LogWriter<BufWriter<File>>>,
    path: PathBuf,
    start: Instant,
    started_unix_ms: u64,
    failure: Option<String>,
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
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
        let path = dir.join(format!("session-{}.tlog", opened.started_unix_ms));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
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
        })
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

    pub fn update(&mut self, update: &ScreenUpdate) {
        self.with(|w, t| w.screen_update(t, update));
    }

    pub fn consent(&mut self, state: ConsentState) {
        self.with(|w, t| w.consent(t, state));
    }

    pub fn input(&mut self, event: &InputEvent) {
        self.with(|w, t| w.input(t, event));
    }

    /// Lets buffered screen updates reach the file (at least once a second).
    pub fn tick(&mut self) {
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
