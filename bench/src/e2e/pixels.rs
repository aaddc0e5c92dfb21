//! What a viewer window really shows: [`PixelProbe`] reads the pixels of the viewer's X server
//! (`GetImage` on the root window of the second Xvfb, so whatever the viewer drew and the server
//! holds, however it drew it) and waits until a rectangle there holds one colour.
//!
//! A look reads a few rows across the rectangle (five 1-pixel rows, pipelined in one round
//! trip), not the whole of it: every 64-pixel tile column of the square is crossed, and a look
//! costs the X server tens of microseconds rather than a 160 KB copy. Looks are `period` apart.
//! The moment a colour "arrived" is the middle of the first look that saw it; the look's own
//! round trip (its cost, and the uncertainty of that moment) is kept so that the report can
//! say it.

use std::time::{Duration, Instant};

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
use x11rb::rust_connection::RustConnection;

use super::probe::Rect;

/// Rows read across the rectangle, as fractions (in tenths) of its height.
const ROWS_TENTHS: [u32; 5] = [1, 3, 5, 7, 9];
/// Pixels left out at each end of a row, so a row never touches the rectangle's border.
const INSET: u32 = 2;
/// How far (per channel) a pixel may be from the colour and still count as it: a viewer that
/// goes through a GL texture may round by one.
const TOLERANCE: u8 = 2;

/// Reads the pixels of one X server.
pub struct PixelProbe {
    conn: RustConnection,
    root: u32,
    /// Round trips of the looks made so far.
    look_costs: Vec<Duration>,
}

fn x(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("X11 (viewer display): {e}")
}

/// Whether `a` and `b` (0xRRGGBB) are within [`TOLERANCE`] in every channel.
pub fn close(a: u32, b: u32) -> bool {
    (0..3).all(|i| {
        let (ca, cb) = ((a >> (8 * i)) as u8, (b >> (8 * i)) as u8);
        ca.abs_diff(cb) <= TOLERANCE
    })
}

/// Whether every pixel of a ZPixmap row (32 bits a pixel, least significant byte first: B, G,
/// R, X) is close to `colour`.
fn row_holds(data: &[u8], colour: u32) -> bool {
    !data.is_empty()
        && data
            .chunks_exact(4)
            .all(|p| close(u32::from_le_bytes([p[0], p[1], p[2], 0]), colour))
}

impl PixelProbe {
    pub fn open(display: &str) -> anyhow::Result<Self> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .with_context(|| format!("cannot connect to the viewer's X server {display}"))?;
        let screen = &conn.setup().roots[screen_num];
        anyhow::ensure!(
            screen.root_depth == 24,
            "the viewer's X server has depth {}, not 24",
            screen.root_depth
        );
        let root = screen.root;
        Ok(Self {
            conn,
            root,
            look_costs: Vec::new(),
        })
    }

    /// Looks once: whether every probed pixel of `rect` (root coordinates) holds `colour`, and
    /// when the look was sent and answered.
    fn look(&mut self, rect: Rect, colour: u32) -> anyhow::Result<(bool, Instant, Instant)> {
        let width = rect.width.saturating_sub(2 * INSET).max(1) as u16;
        let sent = Instant::now();
        let mut cookies = Vec::with_capacity(ROWS_TENTHS.len());
        for tenths in ROWS_TENTHS {
            let y = rect.y + rect.height * tenths / 10;
            cookies.push(
                self.conn
                    .get_image(
                        ImageFormat::Z_PIXMAP,
                        self.root,
                        (rect.x + INSET) as i16,
                        y as i16,
                        width,
                        1,
                        !0,
                    )
                    .map_err(x)?,
            );
        }
        let mut holds = true;
        for cookie in cookies {
            let reply = cookie.reply().map_err(x)?;
            holds &= row_holds(&reply.data, colour);
        }
        let answered = Instant::now();
        self.look_costs.push(answered - sent);
        Ok((holds, sent, answered))
    }

    /// Looks every `period` until `rect` (root coordinates) holds `colour`; `None` if it does
    /// not by `deadline`.
    pub fn wait_for(
        &mut self,
        rect: Rect,
        colour: u32,
        period: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Option<Instant>> {
        self.wait_until(rect, colour, true, period, deadline)
    }

    /// Looks every `period` until something other than `colour` shows in `rect` (a pointer
    /// drawn over a square of one colour); `None` if nothing does by `deadline`.
    pub fn wait_for_mark(
        &mut self,
        rect: Rect,
        colour: u32,
        period: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Option<Instant>> {
        self.wait_until(rect, colour, false, period, deadline)
    }

    /// Looks every `period` until whether `rect` holds `colour` is `wanted`.
    fn wait_until(
        &mut self,
        rect: Rect,
        colour: u32,
        wanted: bool,
        period: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Option<Instant>> {
        loop {
            let (holds, sent, answered) = self.look(rect, colour)?;
            if holds == wanted {
                return Ok(Some(sent + (answered - sent) / 2));
            }
            if answered >= deadline {
                return Ok(None);
            }
            let next = sent + period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }

    /// The round trips of every look so far, sorted, and forgets them.
    pub fn take_look_costs(&mut self) -> Vec<Duration> {
        let mut v = std::mem::take(&mut self.look_costs);
        v.sort();
        v
    }

    /// Whether the X server still answers (a cheap round trip).
    pub fn sync(&self) -> anyhow::Result<()> {
        self.conn.get_input_focus().map_err(x)?.reply().map_err(x)?;
        Ok(())
    }

    /// Moves the viewer display's pointer to root (`px`, `py`), as a person moving the mouse
    /// would (the viewer under it receives the motion), and returns once the server has done it.
    pub fn warp_pointer(&self, px: i16, py: i16) -> anyhow::Result<Instant> {
        self.conn
            .warp_pointer(x11rb::NONE, self.root, 0, 0, 0, 0, px, py)
            .map_err(x)?;
        self.sync()?;
        Ok(Instant::now())
    }

    /// Clicks button 1 at root (`px`, `py`) through XTest, as a person would to give the window
    /// there the pointer (TigerVNC's viewer forwards pointer moves only after one).
    pub fn click(&self, px: i16, py: i16) -> anyhow::Result<()> {
        use x11rb::protocol::xproto::{BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT};
        use x11rb::protocol::xtest::ConnectionExt as _;
        self.warp_pointer(px, py)?;
        for kind in [BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT] {
            self.conn
                .xtest_fake_input(kind, 1, x11rb::CURRENT_TIME, self.root, 0, 0, 0)
                .map_err(x)?;
        }
        self.sync()
    }

    /// The root window's size.
    pub fn screen_size(&self) -> (u32, u32) {
        let s = &self.conn.setup().roots[0];
        (u32::from(s.width_in_pixels), u32::from(s.height_in_pixels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_holds_a_colour_within_the_tolerance() {
        let row: Vec<u8> = [[0x33, 0x22, 0x11, 0], [0x34, 0x21, 0x12, 0xff]]
            .concat()
            .to_vec();
        assert!(row_holds(&row, 0x112233));
        assert!(!row_holds(&row, 0x112236));
        assert!(!row_holds(&[], 0x112233));
    }

    #[test]
    fn closeness_is_per_channel() {
        assert!(close(0x102030, 0x112131));
        assert!(!close(0x102030, 0x102033));
        assert!(!close(0xff0000, 0x000000));
    }
}
