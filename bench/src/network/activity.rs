//! What else moves on the user's screen while the technician types: a panel of text that a
//! program redraws whole a few times a second (a `top`, a busy log, a page of search results),
//! beside the window the typing echoes in. It keeps the link busy, so that a slow link has more
//! to carry than it can and the agent must merge; the echo is measured through that.
//!
//! The text is made of 64 invented glyphs (8x16 cells, two colours, like a terminal's), laid
//! out at random on every redraw from a fixed seed: every run draws the same pages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass,
};

use crate::e2e::probe::Rect;

const GLYPH_W: usize = 8;
const GLYPH_H: usize = 16;
const GLYPHS: usize = 64;
/// Background and ink, BGRX.
const PAPER: [u8; 4] = [0x20, 0x1c, 0x1a, 0];
const INK: [u8; 4] = [0xd0, 0xd8, 0xdc, 0];
/// Rows sent in one PutImage, to stay well inside the X server's request size.
const STRIP_ROWS: usize = 32;

/// A panel repainted on a thread until dropped.
pub struct Activity {
    stop: Arc<AtomicBool>,
    pages: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<u64>>>,
}

/// A small xorshift generator: the same pages on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 64 glyphs of `GLYPH_W` x `GLYPH_H`, each a set of strokes in the middle of its cell.
fn glyphs(rng: &mut Rng) -> Vec<[bool; GLYPH_W * GLYPH_H]> {
    (0..GLYPHS)
        .map(|_| {
            let mut g = [false; GLYPH_W * GLYPH_H];
            for _ in 0..4 {
                // A vertical or horizontal stroke inside x 1..7, y 3..13.
                let r = rng.next();
                let (x, y) = (1 + (r % 6) as usize, 3 + ((r >> 8) % 10) as usize);
                let len = 2 + ((r >> 16) % 5) as usize;
                for k in 0..len {
                    let (px, py) = if r >> 24 & 1 == 0 {
                        (x, (y + k).min(12))
                    } else {
                        ((x + k).min(6), y)
                    };
                    g[py * GLYPH_W + px] = true;
                }
            }
            g
        })
        .collect()
}

/// Draws a new page of text into `page` (BGRX, `width` pixels a row).
fn draw_page(page: &mut [u8], width: usize, glyphs: &[[bool; GLYPH_W * GLYPH_H]], rng: &mut Rng) {
    let height = page.len() / 4 / width;
    for row in 0..height / GLYPH_H {
        // Lines of different lengths, as text has.
        let line_len = (rng.next() % (width / GLYPH_W) as u64) as usize;
        for col in 0..width / GLYPH_W {
            let r = rng.next();
            let glyph = (col < line_len && !r.is_multiple_of(7))
                .then(|| &glyphs[(r >> 8) as usize % GLYPHS]);
            for gy in 0..GLYPH_H {
                for gx in 0..GLYPH_W {
                    let on = glyph.is_some_and(|g| g[gy * GLYPH_W + gx]);
                    let at = ((row * GLYPH_H + gy) * width + col * GLYPH_W + gx) * 4;
                    page[at..at + 4].copy_from_slice(if on { &INK } else { &PAPER });
                }
            }
        }
    }
}

impl Activity {
    /// Opens a panel at `rect` on `display` and redraws it `hz` times a second.
    pub fn start(display: &str, rect: Rect, hz: u32) -> anyhow::Result<Activity> {
        let (conn, screen_num) = x11rb::connect(Some(display))
            .with_context(|| format!("cannot connect to the X server {display}"))?;
        let x = |e: &dyn std::fmt::Display| anyhow::anyhow!("X11 (activity panel): {e}");
        let screen = &conn.setup().roots[screen_num];
        let (root, depth) = (screen.root, screen.root_depth);
        let window = conn.generate_id().map_err(|e| x(&e))?;
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
                .background_pixel(0x1a1c20)
                .override_redirect(1),
        )
        .map_err(|e| x(&e))?;
        let gc = conn.generate_id().map_err(|e| x(&e))?;
        conn.create_gc(gc, window, &CreateGCAux::new())
            .map_err(|e| x(&e))?;
        conn.map_window(window).map_err(|e| x(&e))?;
        conn.get_input_focus()
            .map_err(|e| x(&e))?
            .reply()
            .map_err(|e| x(&e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let pages = Arc::new(AtomicU64::new(0));
        let drawn = pages.clone();
        let thread = std::thread::Builder::new()
            .name("activity".into())
            .spawn(move || -> anyhow::Result<u64> {
                let (w, h) = (rect.width as usize, rect.height as usize);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
                let glyphs = glyphs(&mut rng);
                let mut page = vec![0u8; w * h * 4];
                let period = Duration::from_secs(1) / hz.max(1);
                let start = Instant::now();
                let mut n = 0u64;
                while !stopping.load(Ordering::Relaxed) {
                    draw_page(&mut page, w, &glyphs, &mut rng);
                    for (i, strip) in page.chunks(w * 4 * STRIP_ROWS).enumerate() {
                        let rows = strip.len() / (w * 4);
                        conn.put_image(
                            ImageFormat::Z_PIXMAP,
                            window,
                            gc,
                            w as u16,
                            rows as u16,
                            0,
                            (i * STRIP_ROWS) as i16,
                            0,
                            depth,
                            strip,
                        )
                        .map_err(|e| x(&e))?;
                    }
                    conn.get_input_focus()
                        .map_err(|e| x(&e))?
                        .reply()
                        .map_err(|e| x(&e))?;
                    n += 1;
                    drawn.store(n, Ordering::Relaxed);
                    let next = start + period * n as u32;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                let _ = conn.destroy_window(window);
                let _ = conn.flush();
                Ok(n)
            })
            .context("cannot start the activity thread")?;
        Ok(Activity {
            stop,
            pages,
            thread: Some(thread),
        })
    }

    /// Pages drawn so far.
    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// Stops the redraws; returns how many pages were drawn.
    pub fn stop(mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the activity thread panicked"),
            None => Ok(0),
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_two_coloured_text_and_differ() {
        let mut rng = Rng(1);
        let glyphs = glyphs(&mut rng);
        let (w, h) = (160, 64);
        let mut a = vec![0u8; w * h * 4];
        draw_page(&mut a, w, &glyphs, &mut rng);
        let mut b = a.clone();
        draw_page(&mut b, w, &glyphs, &mut rng);
        assert_ne!(a, b);
        assert!(a.chunks(4).all(|p| p == PAPER || p == INK));
        let ink = a.chunks(4).filter(|p| *p == INK).count();
        assert!(ink > 0 && ink < w * h / 3, "{ink}");
    }
}
