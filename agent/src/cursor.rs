//! The user's own pointer, for one technician: its shape and where it is, followed on the
//! screen the technician sees and sent apart from the screen, so that the technician sees it
//! move and change at once, drawn by its window over the remote screen.
//!
//! A [`PointerWatch`] says when the pointer moved or changed shape; the X11 one
//! ([`X11Pointer`]) listens to XInput 2's raw motion (any device moving the pointer) and to
//! XFIXES' cursor changes, and asks where the pointer is (`QueryPointer`) and what it looks like
//! (`GetCursorImage`). A pointer moved without a device (a program warping it) is seen within
//! [`POLL`].
//!
//! [`follow`] runs on a thread of its own beside the viewer's capture thread: each new shape
//! goes to the viewer (for the session stream, once per shape: [`Shapes`]); each new position
//! goes straight out as a sealed datagram, in the coordinates of what the technician sees
//! ([`crate::source::Area`], which the capture thread updates when the technician switches
//! monitors). The last position is sent once more [`REPEAT_AFTER`] after the pointer stops,
//! so a lost datagram does not leave it wrong.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use link::sealed::DatagramSender;
use protocol::cursor::{CursorPosition, CursorShape, PeerDatagram, MAX_CURSOR_SIDE};
use tokio::sync::mpsc;
use tracing::debug;
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use crate::source::{Area, SourceError};

/// How often the pointer's position is asked even when no device moved it.
pub const POLL: Duration = Duration::from_millis(50);

/// How long after the pointer stopped its last position is sent again.
pub const REPEAT_AFTER: Duration = Duration::from_millis(150);

/// How many times in a row a shape the display will not give is asked for (one [`POLL`]
/// apart) before the pointer is followed without it: the server refuses for good the image of
/// a cursor whose owner has gone.
const SHAPE_TRIES: u32 = 5;

/// Shape numbers a viewer remembers having sent (each shape travels once).
const SENT_SHAPES: usize = 64;

/// What the pointer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moved {
    /// It may have moved.
    pub position: bool,
    /// Its shape changed.
    pub shape: bool,
}

/// Follows the user's pointer on the desktop.
pub trait PointerWatch: Send {
    /// Waits up to `limit` for the pointer to move or change shape.
    fn wait(&mut self, limit: Duration) -> Result<Moved, SourceError>;
    /// Where it is on the desktop, and the number of its shape.
    fn position(&mut self) -> Result<(i32, i32, u32), SourceError>;
    /// What it looks like now; `None` when the display cannot say at this moment (the shape
    /// is asked again soon).
    fn shape(&mut self) -> Result<Option<CursorShape>, SourceError>;
}

fn x11_err(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::X11(format!("{what}: {e}"))
}

/// The pointer of the X display, through XInput 2 and XFIXES.
pub struct X11Pointer {
    conn: RustConnection,
    root: xproto::Window,
    /// XInput 2 tells of device motion; without it, the position is polled.
    raw_motion: bool,
    /// The shape's number, as XFIXES last said.
    serial: u32,
}

impl X11Pointer {
    pub fn open() -> Result<Self, SourceError> {
        let (conn, screen) = x11rb::connect(None)
            .map_err(|e| x11_err("cannot connect to the X server for the pointer", e))?;
        let root = conn.setup().roots[screen].root;
        conn.xfixes_query_version(5, 0)
            .map_err(|e| x11_err("XFIXES", e))?
            .reply()
            .map_err(|e| x11_err("the X server has no XFIXES", e))?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(|e| x11_err("XFIXES", e))?;
        let raw_motion = conn
            .xinput_xi_query_version(2, 0)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some_and(|v| v.major_version >= 2)
            && conn
                .xinput_xi_select_events(
                    root,
                    &[xinput::EventMask {
                        // XIAllMasterDevices.
                        deviceid: 1,
                        mask: vec![xinput::XIEventMask::RAW_MOTION],
                    }],
                )
                .is_ok();
        conn.flush().map_err(|e| x11_err("X connection", e))?;
        let mut p = Self {
            conn,
            root,
            raw_motion,
            serial: 0,
        };
        p.serial = p.position()?.2;
        Ok(p)
    }

    fn drain(&mut self) -> Result<Moved, SourceError> {
        let mut moved = Moved::default();
        while let Some(ev) = self
            .conn
            .poll_for_event()
            .map_err(|e| x11_err("X connection lost", e))?
        {
            match ev {
                x11rb::protocol::Event::XfixesCursorNotify(n) => {
                    moved.shape |= n.cursor_serial != self.serial;
                    self.serial = n.cursor_serial;
                }
                x11rb::protocol::Event::XinputRawMotion(_) => moved.position = true,
                _ => {}
            }
        }
        Ok(moved)
    }
}

impl PointerWatch for X11Pointer {
    fn wait(&mut self, limit: Duration) -> Result<Moved, SourceError> {
        let moved = self.drain()?;
        if moved != Moved::default() {
            return Ok(moved);
        }
        let limit = if self.raw_motion {
            limit.min(POLL)
        } else {
            POLL
        };
        let mut fds = [libc::pollfd {
            fd: self.conn.stream().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(fds.as_mut_ptr(), 1, ms);
        }
        let mut moved = self.drain()?;
        // Without an event the position is asked anyway: a warped pointer sends none.
        moved.position = true;
        Ok(moved)
    }

    fn position(&mut self) -> Result<(i32, i32, u32), SourceError> {
        let p = self
            .conn
            .query_pointer(self.root)
            .map_err(|e| x11_err("X connection lost", e))?
            .reply()
            .map_err(|e| x11_err("cannot ask where the pointer is", e))?;
        Ok((i32::from(p.root_x), i32::from(p.root_y), self.serial))
    }

    fn shape(&mut self) -> Result<Option<CursorShape>, SourceError> {
        let img = match self
            .conn
            .xfixes_get_cursor_image()
            .map_err(|e| x11_err("X connection lost", e))?
            .reply()
        {
            Ok(img) => img,
            // The server refuses (BadAccess) the image of a cursor whose owner has
            // disconnected, though a window still shows it.
            Err(x11rb::errors::ReplyError::X11Error(e)) => {
                debug!(error = ?e, "the pointer's image could not be read; it is asked again");
                return Ok(None);
            }
            Err(e) => return Err(x11_err("cannot read the pointer's image", e)),
        };
        self.serial = img.cursor_serial;
        Ok(Some(shape_from_argb(
            img.cursor_serial,
            (img.width, img.height),
            (img.xhot, img.yhot),
            &img.cursor_image,
        )))
    }
}

/// A cursor image as XFIXES gives it (premultiplied ARGB, one `u32` a pixel) as a
/// [`CursorShape`], cut to [`MAX_CURSOR_SIDE`] a side.
pub fn shape_from_argb(id: u32, size: (u16, u16), hot: (u16, u16), argb: &[u32]) -> CursorShape {
    let (w, h) = (size.0.min(MAX_CURSOR_SIDE), size.1.min(MAX_CURSOR_SIDE));
    let mut pixels = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for row in 0..usize::from(h) {
        for col in 0..usize::from(w) {
            let p = argb
                .get(row * usize::from(size.0) + col)
                .copied()
                .unwrap_or(0);
            pixels.extend_from_slice(&p.to_le_bytes());
        }
    }
    CursorShape {
        id,
        width: w,
        height: h,
        hot_x: hot.0.min(w.saturating_sub(1)),
        hot_y: hot.1.min(h.saturating_sub(1)),
        pixels,
    }
}

/// Shape numbers already sent to a viewer, the latest [`SENT_SHAPES`].
#[derive(Debug, Default)]
pub struct Shapes {
    sent: std::collections::VecDeque<u32>,
}

impl Shapes {
    /// Whether shape `id` still has to be sent; remembers it as sent.
    pub fn first_time(&mut self, id: u32) -> bool {
        if self.sent.contains(&id) {
            return false;
        }
        if self.sent.len() == SENT_SHAPES {
            self.sent.pop_front();
        }
        self.sent.push_back(id);
        true
    }
}

/// Where the pointer was last sent, and whether it still needs its repeat.
#[derive(Debug, Default)]
pub struct Positions {
    last: Option<CursorPosition>,
    /// When the last position is sent once more, unless it changes first.
    repeat_at: Option<Instant>,
}

impl Positions {
    /// The position to send now, if any: a changed one, or the repeat of the last once it has
    /// been still for [`REPEAT_AFTER`].
    pub fn due(&mut self, now_at: CursorPosition, now: Instant) -> Option<CursorPosition> {
        if self.last != Some(now_at) {
            self.last = Some(now_at);
            self.repeat_at = Some(now + REPEAT_AFTER);
            return Some(now_at);
        }
        match self.repeat_at {
            Some(t) if now >= t => {
                self.repeat_at = None;
                Some(now_at)
            }
            _ => None,
        }
    }
}

/// Follows the pointer for one viewer until `stop`: new shapes to `shapes` (the viewer sends
/// them on the session stream), positions as datagrams, relative to `area` (what the viewer
/// sees now); `datagrams` is swapped for the new link's when a lost link is resumed.
pub fn follow(
    mut watch: Box<dyn PointerWatch>,
    area: Arc<Mutex<Area>>,
    datagrams: Arc<Mutex<DatagramSender>>,
    shapes: mpsc::Sender<CursorShape>,
    stop: Arc<AtomicBool>,
) {
    let mut sent = Shapes::default();
    let mut positions = Positions::default();
    let mut shape_due = true;
    // Reads of the current shape the display refused, in a row.
    let mut refused = 0;
    while !stop.load(Ordering::Relaxed) {
        let result = (|| -> Result<(), SourceError> {
            // A shape the display could not give is asked for again at the next turn, a few
            // times; the technician meanwhile keeps the shape it had.
            let mut shape_missing = false;
            if shape_due {
                match watch.shape()? {
                    Some(shape) => {
                        refused = 0;
                        if sent.first_time(shape.id) && shapes.blocking_send(shape).is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    None => {
                        refused += 1;
                        shape_missing = refused < SHAPE_TRIES;
                    }
                }
            }
            let (x, y, serial) = watch.position()?;
            let a = *area.lock().expect("area lock");
            let (x, y, visible) = a.from_desktop(x, y);
            let at = CursorPosition {
                x,
                y,
                shape: serial,
                visible,
            };
            if let Some(p) = positions.due(at, Instant::now()) {
                // A link that broke may be resumed (with another sender): the position is lost
                // as a lost datagram would be, and the next goes on the new link.
                let sent = datagrams
                    .lock()
                    .expect("datagrams lock")
                    .send(&PeerDatagram::Cursor(p));
                if let Err(e) = sent {
                    debug!(error = %e, "a pointer position was not sent");
                }
            }
            let moved = watch.wait(if shape_missing { POLL } else { REPEAT_AFTER })?;
            if moved.shape {
                refused = 0;
            }
            shape_due = moved.shape || shape_missing;
            Ok(())
        })();
        if let Err(e) = result {
            debug!(error = %e, "the pointer is no longer followed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_go_when_they_change_and_once_more_after_a_pause() {
        let t0 = Instant::now();
        let mut p = Positions::default();
        let at = |x| CursorPosition {
            x,
            y: 5,
            shape: 1,
            visible: true,
        };
        assert_eq!(p.due(at(1), t0), Some(at(1)));
        assert_eq!(p.due(at(1), t0 + Duration::from_millis(10)), None);
        assert_eq!(p.due(at(2), t0 + Duration::from_millis(20)), Some(at(2)));
        let later = t0 + Duration::from_millis(20) + REPEAT_AFTER;
        assert_eq!(p.due(at(2), later), Some(at(2)));
        assert_eq!(p.due(at(2), later + REPEAT_AFTER), None);
    }

    #[test]
    fn shapes_go_once_and_xfixes_pixels_become_bgra() {
        let mut s = Shapes::default();
        assert!(s.first_time(7));
        assert!(!s.first_time(7));
        // Opaque red, premultiplied ARGB 0xffff0000: B, G, R, A in memory.
        let shape = shape_from_argb(7, (2, 1), (5, 0), &[0xffff_0000, 0]);
        assert_eq!(shape.pixels, vec![0, 0, 255, 255, 0, 0, 0, 0]);
        assert_eq!((shape.hot_x, shape.hot_y), (1, 0));
        assert_eq!(shape.check(), Ok(()));
    }
}
