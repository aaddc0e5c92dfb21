//! What the viewer side of a measurement holds: [`ScreenProbe`] watches one rectangle of a
//! viewer's framebuffer and records the moment it last became one solid colour; the measuring
//! thread waits on it for the colour it painted. Both viewers (the in-process technician and the
//! RFB client) call [`ScreenProbe::observe`] right after applying an update, so "the technician
//! holds it" means the same thing for every system.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// A rectangle of the screen, in pixels.
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug)]
struct Seen {
    /// The colour (0xRRGGBB) the rectangle is filled with, if it is uniform.
    colour: Option<u32>,
    /// When the rectangle last changed what it holds.
    since: Instant,
}

/// Watches `rect` of a BGRX framebuffer.
pub struct ScreenProbe {
    rect: Rect,
    seen: Mutex<Seen>,
    changed: Condvar,
}

/// The colour filling `rect` of `pixels` (BGRX rows of `width` pixels), if it is uniform.
pub fn uniform_colour(pixels: &[u8], width: u32, rect: Rect) -> Option<u32> {
    let stride = width as usize * 4;
    let row_bytes = rect.width as usize * 4;
    let first_at = rect.y as usize * stride + rect.x as usize * 4;
    let first = pixels.get(first_at..first_at + 4)?;
    let first = u32::from_le_bytes([first[0], first[1], first[2], 0]);
    for row in 0..rect.height as usize {
        let at = (rect.y as usize + row) * stride + rect.x as usize * 4;
        let line = pixels.get(at..at + row_bytes)?;
        if line
            .chunks_exact(4)
            .any(|p| u32::from_le_bytes([p[0], p[1], p[2], 0]) != first)
        {
            return None;
        }
    }
    Some(first)
}

impl ScreenProbe {
    pub fn new(rect: Rect) -> Self {
        Self {
            rect,
            seen: Mutex::new(Seen {
                colour: None,
                since: Instant::now(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Called by a viewer right after it applied an update to `pixels` (`width` pixels a row).
    pub fn observe(&self, pixels: &[u8], width: u32) {
        let now = Instant::now();
        let colour = uniform_colour(pixels, width, self.rect);
        let mut seen = self.seen.lock().expect("probe lock");
        if seen.colour != colour {
            seen.colour = colour;
            seen.since = now;
            self.changed.notify_all();
        }
    }

    /// Waits until the rectangle holds `colour`; returns when it started to, or `None` if it
    /// does not by `deadline`.
    pub fn wait_for(&self, colour: u32, deadline: Instant) -> Option<Instant> {
        let mut seen = self.seen.lock().expect("probe lock");
        loop {
            if seen.colour == Some(colour) {
                return Some(seen.since);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            seen = self.changed.wait_timeout(seen, left).expect("probe lock").0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_only_when_every_pixel_matches() {
        let (w, h) = (8u32, 6u32);
        let mut px = vec![0u8; (w * h * 4) as usize];
        let rect = Rect {
            x: 2,
            y: 1,
            width: 3,
            height: 4,
        };
        for y in 1..5 {
            for x in 2..5 {
                let i = ((y * w + x) * 4) as usize;
                px[i..i + 4].copy_from_slice(&[0x33, 0x22, 0x11, 0xff]);
            }
        }
        assert_eq!(uniform_colour(&px, w, rect), Some(0x112233));
        px[((4 * w + 4) * 4) as usize] = 0;
        assert_eq!(uniform_colour(&px, w, rect), None);
        let outside = Rect {
            x: 6,
            y: 5,
            width: 4,
            height: 4,
        };
        assert_eq!(uniform_colour(&px, w, outside), None);
    }
}
