//! Live screen capture on X11: a [`ScreenSource`] that grabs only what changed, driven by the X
//! DAMAGE extension, through memory shared with the X server ([`crate::shm_image`]).
//!
//! An X connection (x11rb) subscribes to damage on the root window. `capture` waits until the
//! server reports a change (or, where DAMAGE is missing, until the fallback period passes),
//! takes the damaged area as rectangles (`DamageSubtract` into an XFIXES region, which repairs
//! it, so a change during the grab raises a new event; then `FetchRegion`), and has the server
//! write just those rectangles into the shared memory; they are copied into the frame, which
//! lives in the same memory, and handed on with it ([`Frame::changed`]) so that the encoder
//! compares only them. Many rectangles, or most of the monitor, are grabbed as the whole monitor
//! in one request, straight into the frame. Every [`FULL_CHECK`] the whole monitor is grabbed
//! anyway (and the encoder compares all of it), so a change the server failed to report is sent
//! within that time. Captures are at most `max_fps` a second. A change of the root window's
//! size (xrandr) maps new memory: the next frame has the new size, and the encoder sends it
//! whole. So does a switch to another monitor, or to all of them as one desktop
//! ([`ScreenSource::show`]), which a technician may ask for during a session.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use protocol::codec::tile::Rect;
use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ChangeWindowAttributesAux, ConnectionExt as _, EventMask};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use protocol::monitor::{Monitor, MonitorChoice, Monitors};

use crate::cursor::{PointerWatch, X11Pointer};
use crate::shm_image::ShmImage;
use crate::source::{Area, Capture, Frame, ScreenSource, SourceError};

/// How long `capture` waits for a change before returning [`Capture::Unchanged`], so that its
/// caller can check whether the session is still on.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// How often the whole monitor is grabbed and compared, whatever DAMAGE says.
pub const FULL_CHECK: Duration = Duration::from_secs(1);
/// More damaged rectangles than this are grabbed as the whole monitor.
const MAX_RECTS: usize = 64;

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

/// The monitors of the X screen (RandR's order), or the whole screen where RandR lists none.
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

/// The size of the whole X screen (all its monitors), in pixels.
pub fn screen_size() -> Result<(u32, u32), SourceError> {
    let (conn, screen_num) = connect()?;
    let screen = &conn.setup().roots[screen_num];
    Ok((
        u32::from(screen.width_in_pixels),
        u32::from(screen.height_in_pixels),
    ))
}

/// What `choice` shows (`None`: the primary monitor) among `list`, on a screen of `root` size.
fn resolve(
    list: &[MonitorInfo],
    choice: Option<MonitorChoice>,
    root: (u16, u16),
) -> Result<MonitorInfo, SourceError> {
    match choice {
        None => Ok(list[primary_index(list)].clone()),
        Some(MonitorChoice::One(index)) => list.get(index as usize).cloned().ok_or_else(|| {
            SourceError::X11(format!(
                "display {index} does not exist; there are {} (see `agent --list-displays`)",
                list.len()
            ))
        }),
        Some(MonitorChoice::All) => Ok(MonitorInfo {
            index: list.len(),
            name: "all monitors".into(),
            x: 0,
            y: 0,
            width: u32::from(root.0),
            height: u32::from(root.1),
            primary: false,
        }),
    }
}

/// Captures one monitor of the local X server, or all of them.
pub struct X11Source {
    /// What it shows: `None` for the primary monitor.
    choice: Option<MonitorChoice>,
    /// The monitors as last listed.
    list: Vec<MonitorInfo>,
    monitor: MonitorInfo,
    conn: RustConnection,
    screen_num: usize,
    root: xproto::Window,
    root_size: (u16, u16),
    /// The damage object on the root window, and the region its damage is moved into.
    damage: Option<(damage::Damage, xfixes::Region)>,
    /// The monitor's frame (its first `width * height * 4` bytes), then as much room for
    /// grabs of damaged rectangles.
    shm: ShmImage,
    /// What changed in the last frame, in the monitor's coordinates.
    changed: Vec<Rect>,
    min_interval: Duration,
    last_capture: Option<Instant>,
    /// When the whole monitor was last grabbed; `None`: the next capture grabs it.
    last_full: Option<Instant>,
    pending_change: bool,
    frame_id: u64,
}

impl X11Source {
    /// Opens display `display` (an index of [`list_monitors`]), or the primary one.
    pub fn open(display: Option<usize>, max_fps: f64) -> Result<Self, SourceError> {
        let (conn, screen_num) = connect()?;
        let list = monitors(&conn, screen_num)?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let root_size = (screen.width_in_pixels, screen.height_in_pixels);
        let choice = display.map(|d| MonitorChoice::One(d as u32));
        let monitor = resolve(&list, choice, root_size)?;
        let shm = Self::shared_memory(&conn, &monitor)?;
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
            choice,
            list,
            monitor,
            conn,
            screen_num,
            root,
            root_size,
            damage,
            shm,
            changed: Vec::new(),
            min_interval: Duration::from_secs_f64(1.0 / max_fps.max(1.0)),
            last_capture: None,
            last_full: None,
            pending_change: true,
            frame_id: 0,
        })
    }

    /// Shared memory for a frame of `monitor` and as much again for grabs of parts of it.
    fn shared_memory(
        conn: &RustConnection,
        monitor: &MonitorInfo,
    ) -> Result<ShmImage, SourceError> {
        let frame = monitor.width as usize * monitor.height as usize * 4;
        ShmImage::new(conn, 2 * frame)
    }

    fn subscribe_damage(
        conn: &RustConnection,
        root: xproto::Window,
    ) -> Option<(damage::Damage, xfixes::Region)> {
        // DAMAGE needs XFIXES' version negotiated first.
        conn.xfixes_query_version(5, 0).ok()?.reply().ok()?;
        conn.damage_query_version(1, 1).ok()?.reply().ok()?;
        let id = conn.generate_id().ok()?;
        conn.damage_create(id, root, damage::ReportLevel::NON_EMPTY)
            .ok()?;
        let region = conn.generate_id().ok()?;
        conn.xfixes_create_region(region, &[]).ok()?;
        Some((id, region))
    }

    /// Moves the damage reported so far into `changed` (the monitor's coordinates, clipped to
    /// it), repairing it. Returns false when grabbing the whole monitor is better (no DAMAGE,
    /// many rectangles, most of the monitor).
    fn take_damage(&mut self) -> Result<bool, SourceError> {
        self.changed.clear();
        let Some((d, region)) = self.damage else {
            return Ok(false);
        };
        self.conn
            .damage_subtract(d, x11rb::NONE, region)
            .map_err(|e| x11_err("X connection lost", e))?;
        let rects = self
            .conn
            .xfixes_fetch_region(region)
            .map_err(|e| x11_err("X connection lost", e))?
            .reply()
            .map_err(|e| x11_err("cannot read the damaged region", e))?
            .rectangles;
        if rects.len() > MAX_RECTS {
            return Ok(false);
        }
        let m = &self.monitor;
        let (mx1, my1) = (m.x + m.width as i32, m.y + m.height as i32);
        let mut area = 0usize;
        for r in rects {
            let x0 = i32::from(r.x).max(m.x);
            let y0 = i32::from(r.y).max(m.y);
            let x1 = (i32::from(r.x) + i32::from(r.width)).min(mx1);
            let y1 = (i32::from(r.y) + i32::from(r.height)).min(my1);
            if x1 > x0 && y1 > y0 {
                let rect = Rect {
                    x: (x0 - m.x) as usize,
                    y: (y0 - m.y) as usize,
                    w: (x1 - x0) as usize,
                    h: (y1 - y0) as usize,
                };
                area += rect.w * rect.h;
                self.changed.push(rect);
            }
        }
        // Most of the monitor: one grab of all of it costs less than many.
        Ok(area * 2 < m.width as usize * m.height as usize)
    }

    /// Grabs the rectangles in `changed` into the frame.
    fn grab_changed(&mut self) -> Result<(), SourceError> {
        let (mx, my) = (self.monitor.x, self.monitor.y);
        let stride = self.monitor.width as usize * 4;
        let scratch = stride * self.monitor.height as usize;
        for r in &self.changed {
            let area = (
                (mx + r.x as i32) as i16,
                (my + r.y as i32) as i16,
                r.w as u16,
                r.h as u16,
            );
            self.shm.grab(&self.conn, self.root, area, scratch)?;
            let (frame, grabbed) = self.shm.bytes_mut().split_at_mut(scratch);
            for row in 0..r.h {
                let from = row * r.w * 4;
                let to = (r.y + row) * stride + r.x * 4;
                frame[to..to + r.w * 4].copy_from_slice(&grabbed[from..from + r.w * 4]);
            }
        }
        Ok(())
    }

    /// Grabs the whole monitor into the frame.
    fn grab_whole(&mut self) -> Result<(), SourceError> {
        let m = &self.monitor;
        let area = (m.x as i16, m.y as i16, m.width as u16, m.height as u16);
        self.shm.grab(&self.conn, self.root, area, 0)?;
        self.last_full = Some(Instant::now());
        Ok(())
    }

    fn full_due(&self) -> bool {
        self.last_full.is_none_or(|t| t.elapsed() >= FULL_CHECK)
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

    /// The screen changed size, or another monitor is to be shown: look the monitors up again
    /// and map new memory.
    fn rebuild(&mut self) -> Result<(), SourceError> {
        self.list = monitors(&self.conn, self.screen_num)?;
        self.monitor = resolve(&self.list, self.choice, self.root_size)?;
        self.shm.detach(&self.conn);
        self.shm = Self::shared_memory(&self.conn, &self.monitor)?;
        self.last_full = None;
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
        (self.monitor.width, self.monitor.height)
    }

    fn monitors(&self) -> Option<Monitors> {
        let list = self
            .list
            .iter()
            .map(|m| Monitor {
                name: m.name.clone(),
                x: m.x,
                y: m.y,
                width: m.width,
                height: m.height,
                primary: m.primary,
            })
            .collect();
        let shown = self
            .choice
            .unwrap_or(MonitorChoice::One(primary_index(&self.list) as u32));
        Some(Monitors { list, shown })
    }

    fn show(&mut self, choice: MonitorChoice) -> Result<(), SourceError> {
        let was = self.choice;
        self.choice = Some(choice);
        if let Err(e) = self.rebuild() {
            self.choice = was;
            self.rebuild()?;
            return Err(e);
        }
        self.pending_change = true;
        Ok(())
    }

    fn area(&self) -> Area {
        let m = &self.monitor;
        Area {
            x: m.x,
            y: m.y,
            width: m.width,
            height: m.height,
        }
    }

    fn pointer(&self) -> Option<Box<dyn PointerWatch>> {
        match X11Pointer::open() {
            Ok(p) => Some(Box::new(p)),
            Err(e) => {
                tracing::warn!(error = %e, "the user's pointer cannot be followed");
                None
            }
        }
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
        // Wait for a change: a damage event, the full check, or the timer where there is no
        // DAMAGE.
        if self.drain_events()? {
            self.pending_change = true;
        }
        if self.damage.is_some() && !self.pending_change && !self.full_due() {
            self.wait_readable(WAIT_SLICE);
            if !self.drain_events()? && !self.full_due() {
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
        let partial = self.take_damage()? && !self.full_due();
        if partial {
            self.grab_changed()?;
        } else {
            self.grab_whole()?;
        }
        self.last_capture = Some(Instant::now());
        self.frame_id += 1;
        let (w, h) = (self.monitor.width, self.monitor.height);
        Ok(Capture::Frame(Frame {
            width: w,
            height: h,
            pixels: &self.shm.bytes()[..w as usize * h as usize * 4],
            changed: partial.then_some(&self.changed[..]),
            id: self.frame_id,
        }))
    }
}

impl Drop for X11Source {
    fn drop(&mut self) {
        self.shm.detach(&self.conn);
        let _ = self.conn.flush();
    }
}
