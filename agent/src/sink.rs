//! Input sinks: where the technician's input events go.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use protocol::input::InputEvent;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write input record {path}: {source}")]
    Record {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input injection failed: {0}")]
    Inject(String),
}

/// Something that takes input events. Sinks live on the injection worker's thread
/// ([`crate::injector`]), hence `Send`.
pub trait InputSink: Send {
    fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError>;
    /// Injects `event`, asking `allowed` between the parts of a long one (the characters of
    /// typed text) and leaving the rest out once it says no. By default the event is one part.
    fn inject_while(
        &mut self,
        event: &InputEvent,
        allowed: &dyn Fn() -> bool,
    ) -> Result<(), SinkError> {
        if allowed() {
            self.inject(event)
        } else {
            Ok(())
        }
    }
    /// Releases every key and button still held down, so that nothing stays stuck when the
    /// session ends or control is withdrawn.
    fn release_all(&mut self) -> Result<(), SinkError>;
}

/// Appends every event as a JSON line to a file, flushed at once, for tests and audits of the
/// agent itself. `release_all` is recorded as a line `"ReleaseAll"`.
pub struct RecordingSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl RecordingSink {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let file = File::create(path).map_err(|source| SinkError::Record {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    fn line(&mut self, value: &impl serde::Serialize) -> Result<(), SinkError> {
        let r = serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"))
            .and_then(|_| self.out.flush());
        r.map_err(|source| SinkError::Record {
            path: self.path.clone(),
            source,
        })
    }
}

impl InputSink for RecordingSink {
    fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError> {
        self.line(event)
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        self.line(&"ReleaseAll")
    }
}

/// Drops every event (a view-only agent).
pub struct DropSink;

impl InputSink for DropSink {
    fn inject(&mut self, _event: &InputEvent) -> Result<(), SinkError> {
        Ok(())
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
