//! Screen sources: what the agent shares.
//!
//! A source is pulled: the session asks for a capture only when the viewer has room for another
//! update, so frames are never captured faster than the viewer acknowledges them. A capture call
//! may block until the screen (may have) changed.
//!
//! A source that has several monitors lists them and switches between them
//! ([`ScreenSource::monitors`], [`ScreenSource::show`]); it says where what it shows lies on the
//! desktop ([`ScreenSource::area`]), which is where the technician's pointer lands, and may
//! watch the user's own pointer there ([`ScreenSource::pointer`], see [`crate::cursor`]).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::monitor::{MonitorChoice, Monitors};
use protocol::scrnseq::{self, ScrnSeqError};

use crate::cursor::PointerWatch;

/// A captured frame: BGRX pixels, rows top to bottom. `id` numbers frames of the source (a
/// corpus file's frame index), so that tests can tell which frame a viewer holds.
pub struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
    /// The rectangles that changed since the source's previous frame, where the source knows
    /// (outside them the pixels are those of the previous frame); `None`: anything may have.
    pub changed: Option<&'a [protocol::codec::tile::Rect]>,
    pub id: u64,
}

/// What a capture produced.
pub enum Capture<'a> {
    Frame(Frame<'a>),
    /// Nothing changed within the source's waiting time; ask again.
    Unchanged,
    /// The source has nothing more to show (a file played to its end).
    Finished,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Corpus { path: PathBuf, source: ScrnSeqError },
    #[error("{0}")]
    X11(String),
    #[error("this screen has no monitor {0} to show")]
    NoMonitors(MonitorChoice),
}

/// Where what a source shows lies on the desktop, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Area {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Area {
    /// The desktop position of pixel (`x`, `y`) of what is shown, kept inside it.
    pub fn to_desktop(&self, x: u32, y: u32) -> (u32, u32) {
        let x = i64::from(x.min(self.width.saturating_sub(1))) + i64::from(self.x);
        let y = i64::from(y.min(self.height.saturating_sub(1))) + i64::from(self.y);
        (x.max(0) as u32, y.max(0) as u32)
    }

    /// The position of desktop point (`x`, `y`) in what is shown, and whether it lies inside.
    pub fn from_desktop(&self, x: i32, y: i32) -> (i32, i32, bool) {
        let (rx, ry) = (x - self.x, y - self.y);
        let inside = rx >= 0 && ry >= 0 && (rx as u32) < self.width && (ry as u32) < self.height;
        (rx, ry, inside)
    }
}

/// Something that can be shared. A source lives on the capture thread that made it (X11
/// capturers cannot move between threads), so sessions receive a [`SourceFactory`], which makes
/// one for each technician's capture thread.
pub trait ScreenSource {
    /// Screen size in pixels, before the first capture.
    fn size(&self) -> (u32, u32);
    /// A short description for people ("corpus file typing.scrn, 1920x1080").
    fn describe(&self) -> String;
    /// Waits until there may be something new, then captures it.
    fn capture(&mut self) -> Result<Capture<'_>, SourceError>;
    /// The monitors it can show and which it shows; `None` where there is no choice.
    fn monitors(&self) -> Option<Monitors> {
        None
    }
    /// Shows another monitor, or all of them as one desktop; the next capture has its size.
    fn show(&mut self, choice: MonitorChoice) -> Result<(), SourceError> {
        Err(SourceError::NoMonitors(choice))
    }
    /// Where what it shows lies on the desktop.
    fn area(&self) -> Area {
        let (width, height) = self.size();
        Area {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
    /// A watch on the user's own pointer over this screen, where it has one.
    fn pointer(&self) -> Option<Box<dyn PointerWatch>> {
        None
    }
}

/// Makes a source on a capture thread: one for each technician of a session (each has its own
/// capture and encoder).
pub type SourceFactory =
    std::sync::Arc<dyn Fn() -> Result<Box<dyn ScreenSource>, SourceError> + Send + Sync>;

/// Plays a `SCRNSEQ1` file. Paced: frames are shown at their recorded times (scaled by
/// `speed`), and when the viewer is behind the frames in between are skipped, as a live screen
/// would move on. Unpaced (`speed` 0): every frame, as fast as the viewer takes them.
pub struct CorpusSource {
    path: PathBuf,
    reader: scrnseq::Reader<BufReader<File>>,
    speed: f64,
    start: Option<Instant>,
    /// The reader holds a frame not yet handed out.
    unreturned: bool,
}

impl CorpusSource {
    pub fn open(path: &Path, speed: f64) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let reader =
            scrnseq::Reader::new(BufReader::with_capacity(1 << 20, file)).map_err(|source| {
                SourceError::Corpus {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            speed,
            start: None,
            unreturned: false,
        })
    }

    fn err(&self, source: ScrnSeqError) -> SourceError {
        SourceError::Corpus {
            path: self.path.clone(),
            source,
        }
    }

    fn frame(&self) -> Capture<'_> {
        let h = self.reader.header();
        Capture::Frame(Frame {
            width: h.width,
            height: h.height,
            pixels: self.reader.current(),
            changed: None,
            id: u64::from(self.reader.next_index()) - 1,
        })
    }
}

impl ScreenSource for CorpusSource {
    fn size(&self) -> (u32, u32) {
        let h = self.reader.header();
        (h.width, h.height)
    }

    fn describe(&self) -> String {
        let h = self.reader.header();
        format!(
            "corpus file {} ({}x{}, {} frames)",
            self.path.display(),
            h.width,
            h.height,
            h.frame_count
        )
    }

    fn capture(&mut self) -> Result<Capture<'_>, SourceError> {
        if self.speed <= 0.0 {
            let got = self.reader.next_frame().map(|f| f.is_some());
            return match got {
                Ok(true) => Ok(self.frame()),
                Ok(false) => Ok(Capture::Finished),
                Err(e) => Err(self.err(e)),
            };
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        loop {
            let next = self.reader.peek_time().map_err(|e| self.err(e))?;
            let Some(t_ms) = next else {
                if std::mem::take(&mut self.unreturned) {
                    return Ok(self.frame());
                }
                return Ok(Capture::Finished);
            };
            let due = start + Duration::from_secs_f64(f64::from(t_ms) / 1000.0 / self.speed);
            let now = Instant::now();
            if due > now {
                if std::mem::take(&mut self.unreturned) {
                    return Ok(self.frame());
                }
                std::thread::sleep(due - now);
            }
            let got = self.reader.next_frame().map(|_| ());
            got.map_err(|e| self.err(e))?;
            self.unreturned = true;
            if due > now {
                self.unreturned = false;
                return Ok(self.frame());
            }
        }
    }
}
