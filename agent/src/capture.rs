//! Live screen capture on X11: a [`ScreenSource`] over `scrap`, driven by the X DAMAGE
//! extension.
//!
//! A second X connection (x11rb) subscribes to damage on the root window. `capture` waits until
//! the server reports a change (or, where DAMAGE is missing, until the fallback period passes),
//! repairs the damage, and grabs the screen with scrap's shared-memory capturer, so a change is
//! captured as soon as it happens and an idle screen costs nothing. Captures are at most
//! `max_fps` a second. scrap pipelines its requests (each frame it returns was requested at the
//! end of the previous call); a change-driven capture therefore asks twice and keeps the fresh
//! second image. A change of the root window's size (xrandr) rebuilds the capturer: the next
//! frame has the new size, and the encoder sends it whole.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{self, ChangeWindowAttributesAux, ConnectionExt as _, EventMask};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::source::{Capture, Frame, ScreenSource, SourceError};

/// How long `capture` waits for a change before returning [`Capture::Unchanged`], so that its
/// caller can check whether the session is still on.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// One monitor of the X screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorInfo {
    pub index: usize,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub primary: bool,
}

fn x11_err(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::X11(format!("{what}: {e}"))
}

fn connect() -> Result<(RustConnection, usize), SourceError> {
    x11rb::connect(None).map_err(|e| {
        SourceError::X11(format!(
            "cannot connect to the X server (DISPLAY={}): {e}",
            std::env::var("DISPLAY").unwrap_or_else(|_| "unset".into())
        ))
    })
}

/// The monitors of the X screen, in the order scrap lists them.
pub fn list_monitors() -> Result<Vec<MonitorInfo>, SourceError> {
    let (conn, screen_num) = connect()?;
    monitors(&conn, screen_num)
}

fn monitors(conn: &RustConnection, screen_num: usize) -> Result<Vec<MonitorInfo>, SourceError> {
    let screen = &conn.setup().roots[screen_num];
    let reply = conn
        .randr_get_monitors(screen.root, true)
        .map_err(|e| x11_err("RandR", e))?
        .reply();
    let mut out = Vec::new();
    if let Ok(reply) = reply {
        for (index, m) in reply.monitors.iter().enumerate() {
            let name = conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                .unwrap_or_else(|| format!("monitor {index}"));
            out.push(MonitorInfo {
                index,
                name,
                x: i32::from(m.x),
                y: i32::from(m.y),
                width: u32::from(m.width),
                height: u32::from(m.height),
                primary: m.primary,
            });
        }
    }
    if out.is_empty() {
        out.push(MonitorInfo {
            index: 0,
            name: "screen".into(),
            x: 0,
            y: 0,
            width: u32::from(screen.width_in_pixels),
            height: u32::from(screen.height_in_pixels),
            primary: true,
        });
    }
    Ok(out)
}

/// Index of the primary monitor (the first if none is marked).
pub fn primary_index(monitors: &[MonitorInfo]) -> usize {
    monitors.iter().position(|m| m.primary).unwrap_or(0)
}

/// Captures one monitor of the local X server.
pub struct X11Source {
    display: Option<usize>,
    monitor: MonitorInfo,
    capturer: scrap::Capturer,
    conn: RustConnection,
    screen_num: usize,
    root: xproto::Window,
    root_size: (u16, u16),
    damage: Option<damage::Damage>,
    min_interval: Duration,
    last_capture: Option<Instant>,
    pending_change: bool,
    frame_id: u64,
}

fn open_capturer(index: usize) -> Result<scrap::Capturer, SourceError> {
    let mut all =
        scrap::Display::all().map_err(|e| x11_err("cannot list displays for capture", e))?;
    if index >= all.len() {
        return Err(SourceError::X11(format!(
            "display {index} does not exist; `agent --list-displays` lists them"
        )));
    }
    scrap::Capturer::new(all.swap_remove(index))
        .map_err(|e| x11_err("cannot start capturing (MIT-SHM)", e))
}

impl X11Source {
    /// Opens display `display` (an index of [`list_monitors`]), or the primary one.
    pub fn open(display: Option<usize>, max_fps: f64) -> Result<Self, SourceError> {
        let (conn, screen_num) = connect()?;
        let list = monitors(&conn, screen_num)?;
        let index = display.unwrap_or_else(|| primary_index(&list));
        let monitor = list.get(index).cloned().ok_or_else(|| {
            SourceError::X11(format!(
                "display {index} does not exist; there are {} (see `agent --list-displays`)",
                list.len()
            ))
        })?;
        let capturer = open_capturer(index)?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let root_size = (screen.width_in_pixels, screen.height_in_pixels);
        // Follow size changes of the root window.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(|e| x11_err("cannot watch the root window", e))?;
        let damage = Self::subscribe_damage(&conn, root);
        if damage.is_none() {
            tracing::warn!("the X server has no DAMAGE extension; capturing on a timer");
        }
        conn.flush().map_err(|e| x11_err("X connection", e))?;
        Ok(Self {
            display,
            monitor,
            capturer,
            conn,
            screen_num,
            root,
            root_size,
            damage,
            min_interval: Duration::from_secs_f64(1.0 / max_fps.max(1.0)),
            last_capture: None,
            pending_change: true,
            frame_id: 0,
        })
    }

    fn subscribe_damage(conn: &RustConnection, root: xproto::Window) -> Option<damage::Damage> {
        // DAMAGE needs XFIXES' version negotiated first.
        conn.xfixes_query_version(5, 0).ok()?.reply().ok()?;
        conn.damage_query_version(1, 1).ok()?.reply().ok()?;
        let id = conn.generate_id().ok()?;
        conn.damage_create(id, root, damage::ReportLevel::NON_EMPTY)
            .ok()?;
        Some(id)
    }

    /// Handles queued X events; returns true when one of them says the screen changed.
    fn drain_events(&mut self) -> Result<bool, SourceError> {
        let mut changed = false;
        while let Some(ev) = self
            .conn
            .poll_for_event()
            .map_err(|e| x11_err("X connection lost", e))?
        {
            match ev {
                Event::DamageNotify(_) => changed = true,
                Event::ConfigureNotify(c)
                    if c.window == self.root && (c.width, c.height) != self.root_size =>
                {
                    self.root_size = (c.width, c.height);
                    self.rebuild()?;
                    changed = true;
                }
                _ => {}
            }
        }
        Ok(changed)
    }

    /// The screen changed size: look the monitor up again and start a new capturer.
    fn rebuild(&mut self) -> Result<(), SourceError> {
        let list = monitors(&self.conn, self.screen_num)?;
        let index = self.display.unwrap_or_else(|| primary_index(&list));
        self.monitor = list
            .get(index)
            .cloned()
            .ok_or_else(|| SourceError::X11(format!("display {index} went away")))?;
        self.capturer = open_capturer(index)?;
        tracing::info!(
            width = self.monitor.width,
            height = self.monitor.height,
            "screen size changed"
        );
        Ok(())
    }

    /// Waits up to `limit` for the X connection to have something to read.
    fn wait_readable(&self, limit: Duration) {
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
    }
}

impl ScreenSource for X11Source {
    fn size(&self) -> (u32, u32) {
        (self.capturer.width() as u32, self.capturer.height() as u32)
    }

    fn describe(&self) -> String {
        format!(
            "display {} ({}, {}x{}){}",
            self.monitor.index,
            self.monitor.name,
            self.monitor.width,
            self.monitor.height,
            if self.damage.is_some() {
                ""
            } else {
                " without DAMAGE, on a timer"
            }
        )
    }

    fn capture(&mut self) -> Result<Capture<'_>, SourceError> {
        // Wait for a change: a damage event, or the timer where there is no DAMAGE.
        if self.drain_events()? {
            self.pending_change = true;
        }
        if self.damage.is_some() && !self.pending_change {
            self.wait_readable(WAIT_SLICE);
            if !self.drain_events()? {
                return Ok(Capture::Unchanged);
            }
        }
        // No faster than max_fps.
        if let Some(last) = self.last_capture {
            let since = last.elapsed();
            if since < self.min_interval {
                std::thread::sleep(self.min_interval - since);
            }
        }
        self.pending_change = false;
        if let Some(d) = self.damage {
            // Repair before grabbing, so a change during the grab raises a new event.
            self.conn
                .damage_subtract(d, x11rb::NONE, x11rb::NONE)
                .and_then(|_| self.conn.flush())
                .map_err(|e| x11_err("X connection lost", e))?;
        }
        // scrap returns the image it requested at the end of its previous call; the second call
        // returns one requested now.
        let _stale = self
            .capturer
            .frame()
            .map_err(|e| x11_err("capture failed", e))?;
        self.last_capture = Some(Instant::now());
        self.frame_id += 1;
        let (w, h) = (self.capturer.width() as u32, self.capturer.height() as u32);
        let frame = self
            .capturer
            .frame()
            .map_err(|e| x11_err("capture failed", e))?;
        let bytes: &[u8] = &frame;
        // SAFETY: scrap's frame is a view of the capturer's shared-memory buffer, which lives as
        // long as the capturer and is written again only by the next `frame()` call; both
        // need `&mut self`, which the returned borrow holds.
        let pixels: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        Ok(Capture::Frame(Frame {
            width: w,
            height: h,
            pixels: &pixels[..w as usize * h as usize * 4],
            id: self.frame_id,
        }))
    }
}
