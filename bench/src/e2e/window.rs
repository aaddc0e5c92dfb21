//! The bench's own X window: a solid square it repaints in a colour of its choosing, and the
//! pointer motion and key presses it receives.
//!
//! Two X connections: one paints (a fill, then a `GetInputFocus` round trip, after which the
//! server has executed the fill: that is T0 of a screen sample), the other only reads events on
//! a thread and timestamps each pointer motion the window receives (T1 of an input sample) and
//! each key press (what the network bench echoes, as a terminal echoes a typed glyph).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, CreateWindowAux,
    EventMask, InputFocus, Rectangle, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::probe::Rect;

/// The last pointer position the window was told about, and when; and the key presses.
#[derive(Default)]
struct Motion {
    last: Option<((i16, i16), Instant)>,
    /// Key presses received so far, and when the last one was.
    keys: u64,
    last_key: Option<Instant>,
}

pub struct TestWindow {
    conn: RustConnection,
    root: u32,
    window: u32,
    gc: u32,
    pub rect: Rect,
    motion: Arc<(Mutex<Motion>, Condvar)>,
    events: Arc<RustConnection>,
}

fn x(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("X11: {e}")
}

impl TestWindow {
    /// Opens a `rect`-sized, override-redirect window on `display` and fills it with `colour`.
    pub fn open(display: &str, rect: Rect, colour: u32) -> anyhow::Result<Self> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .with_context(|| format!("cannot connect to the X server {display}"))?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let window = conn.generate_id().map_err(x)?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            rect.x as i16,
            rect.y as i16,
            rect.width as u16,
            rect.height as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(colour)
                .override_redirect(1),
        )
        .map_err(x)?;
        let gc = conn.generate_id().map_err(x)?;
        conn.create_gc(gc, window, &CreateGCAux::new().foreground(colour))
            .map_err(x)?;
        conn.map_window(window).map_err(x)?;
        conn.get_input_focus().map_err(x)?.reply().map_err(x)?;

        // The second connection selects pointer motion on the window and reads it on a thread.
        let (events, _) = x11rb::connect(Some(display))
            .with_context(|| format!("cannot connect to the X server {display}"))?;
        events
            .change_window_attributes(
                window,
                &ChangeWindowAttributesAux::new()
                    .event_mask(EventMask::POINTER_MOTION | EventMask::KEY_PRESS),
            )
            .map_err(x)?;
        events.get_input_focus().map_err(x)?.reply().map_err(x)?;
        let motion = Arc::new((Mutex::new(Motion::default()), Condvar::new()));
        let events = Arc::new(events);
        let (reader, shared) = (events.clone(), motion.clone());
        std::thread::Builder::new()
            .name("x-events".into())
            .spawn(move || read_motion(reader, shared))
            .context("cannot start the X event thread")?;
        let this = Self {
            conn,
            root,
            window,
            gc,
            rect,
            motion,
            events,
        };
        this.fill(colour)?;
        Ok(this)
    }

    /// Fills the window with `colour` (0xRRGGBB) and returns once the X server has done it.
    pub fn fill(&self, colour: u32) -> anyhow::Result<Instant> {
        let c = &self.conn;
        c.change_gc(self.gc, &ChangeGCAux::new().foreground(colour))
            .map_err(x)?;
        let r = Rectangle {
            x: 0,
            y: 0,
            width: self.rect.width as u16,
            height: self.rect.height as u16,
        };
        c.poly_fill_rectangle(self.window, self.gc, &[r])
            .map_err(x)?;
        c.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(Instant::now())
    }

    /// Paints the window as a checkerboard of `cell`-pixel squares, `a` where the first square
    /// is and `b` beside it, and returns once the X server has done it: with `a` and `b`
    /// swapped on every call, every pixel changes while nothing is one solid fill.
    pub fn fill_checker(&self, a: u32, b: u32, cell: u16) -> anyhow::Result<Instant> {
        let c = &self.conn;
        let (w, h) = (self.rect.width as u16, self.rect.height as u16);
        c.change_gc(self.gc, &ChangeGCAux::new().foreground(a))
            .map_err(x)?;
        let whole = Rectangle {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
        c.poly_fill_rectangle(self.window, self.gc, &[whole])
            .map_err(x)?;
        let mut cells = Vec::new();
        for row in 0..h.div_ceil(cell) {
            for col in 0..w.div_ceil(cell) {
                if (row + col) % 2 == 1 {
                    cells.push(Rectangle {
                        x: (col * cell) as i16,
                        y: (row * cell) as i16,
                        width: cell,
                        height: cell,
                    });
                }
            }
        }
        c.change_gc(self.gc, &ChangeGCAux::new().foreground(b))
            .map_err(x)?;
        c.poly_fill_rectangle(self.window, self.gc, &cells)
            .map_err(x)?;
        c.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(Instant::now())
    }

    /// Moves the pointer to (`px`, `py`) on the screen (away from the window, so that a
    /// software cursor does not sit in the square being watched).
    pub fn warp_pointer(&self, px: i16, py: i16) -> anyhow::Result<()> {
        self.conn
            .warp_pointer(x11rb::NONE, self.root, 0, 0, 0, 0, px, py)
            .map_err(x)?;
        self.conn.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(())
    }

    /// Moves the pointer to (`px`, `py`) as a mouse would (an XTest motion, which the X server
    /// reports as a device's raw motion, unlike a warp), and returns once the server has done it.
    pub fn move_pointer(&self, px: i16, py: i16) -> anyhow::Result<Instant> {
        use x11rb::protocol::xproto::MOTION_NOTIFY_EVENT;
        use x11rb::protocol::xtest::ConnectionExt as _;
        self.conn
            .xtest_fake_input(
                MOTION_NOTIFY_EVENT,
                0,
                x11rb::CURRENT_TIME,
                self.root,
                px,
                py,
                0,
            )
            .map_err(x)?;
        self.conn.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(Instant::now())
    }

    /// Gives the window the keyboard focus, so that typed keys reach it wherever the pointer is.
    pub fn focus(&self) -> anyhow::Result<()> {
        self.conn
            .set_input_focus(InputFocus::PARENT, self.window, x11rb::CURRENT_TIME)
            .map_err(x)?;
        self.conn.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(())
    }

    /// Key presses the window has received so far.
    pub fn key_presses(&self) -> u64 {
        self.motion.0.lock().expect("motion lock").keys
    }

    /// Waits until the window has received more than `seen` key presses; returns when the last
    /// one was read, or `None` at `deadline`.
    pub fn wait_key(&self, seen: u64, deadline: Instant) -> Option<Instant> {
        let (lock, cv) = &*self.motion;
        let mut m = lock.lock().expect("motion lock");
        loop {
            if m.keys > seen {
                return m.last_key;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            m = cv.wait_timeout(m, left).expect("motion lock").0;
        }
    }

    /// Waits until the window is told the pointer is at (`wx`, `wy`) (window coordinates);
    /// returns when the event was read, or `None` at `deadline`.
    pub fn wait_motion(&self, wx: i16, wy: i16, deadline: Instant) -> Option<Instant> {
        let (lock, cv) = &*self.motion;
        let mut m = lock.lock().expect("motion lock");
        loop {
            if let Some((pos, at)) = m.last {
                if pos == (wx, wy) {
                    return Some(at);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            m = cv.wait_timeout(m, left).expect("motion lock").0;
        }
    }
}

fn read_motion(events: Arc<RustConnection>, shared: Arc<(Mutex<Motion>, Condvar)>) {
    // Ends when the connection is shut down (the window dropped) or lost.
    while let Ok(ev) = events.wait_for_event() {
        let at = Instant::now();
        let (lock, cv) = &*shared;
        match ev {
            Event::MotionNotify(m) => {
                lock.lock().expect("motion lock").last = Some(((m.event_x, m.event_y), at));
                cv.notify_all();
            }
            Event::KeyPress(_) => {
                let mut m = lock.lock().expect("motion lock");
                m.keys += 1;
                m.last_key = Some(at);
                cv.notify_all();
            }
            _ => {}
        }
    }
}

impl Drop for TestWindow {
    fn drop(&mut self) {
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
        // Wakes the event thread out of its read, so it ends.
        // SAFETY: shutdown(2) on a socket this connection owns and keeps open.
        unsafe {
            libc::shutdown(self.events.stream().as_raw_fd(), libc::SHUT_RDWR);
        }
    }
}
