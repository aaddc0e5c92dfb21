//! The shared machine's own mouse pointer: its shape and where it is, so that a technician
//! sees the person's pointer move and change (arrow, I-beam, hand, resize) at once, drawn over
//! the remote screen by the technician's window rather than painted into the screen tiles.
//!
//! A shape travels once on the session stream ([`CursorShape`], reliable: a lost shape would
//! stay wrong), numbered; the position travels in sealed datagrams ([`CursorPosition`]: only the
//! latest matters, so a lost one is replaced by the next, and none waits behind a screen
//! update), naming the shape it has. A position may arrive before its shape: the window keeps
//! the last shape it has until the new one is there.
//!
//! Limits, checked by the receiver: shapes of at most [`MAX_CURSOR_SIDE`] pixels a side whose
//! pixels are exactly `width * height * 4` bytes, a hotspot inside the shape, and at most
//! [`MAX_CURSOR_SHAPES`] shapes kept ([`ShapeCache`]).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Largest side of a cursor shape, in pixels.
pub const MAX_CURSOR_SIDE: u16 = 256;

/// Shapes a receiver keeps; the oldest goes first.
pub const MAX_CURSOR_SHAPES: usize = 64;

/// Largest datagram payload a receiver decodes.
pub const MAX_DATAGRAM: usize = 256;

/// A cursor image.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorShape {
    /// The agent's number for it; positions name it.
    pub id: u32,
    pub width: u16,
    pub height: u16,
    /// The pixel that points, from the top left.
    pub hot_x: u16,
    pub hot_y: u16,
    /// Premultiplied BGRA, rows top to bottom, `width * height * 4` bytes.
    #[serde(with = "serde_bytes")]
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for CursorShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CursorShape {{ id: {}, {}x{}, hotspot {},{} }}",
            self.id, self.width, self.height, self.hot_x, self.hot_y
        )
    }
}

/// Where the pointer is, in the pixels of the screen the technician sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPosition {
    pub x: i32,
    pub y: i32,
    /// The [`CursorShape::id`] it shows.
    pub shape: u32,
    /// False while the pointer is off the monitor the technician sees.
    pub visible: bool,
}

/// What a datagram of the peer plane carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerDatagram {
    Cursor(CursorPosition),
}

/// Why a received cursor shape is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("a cursor of {width}x{height} pixels; at most {MAX_CURSOR_SIDE} a side")]
    TooLarge { width: u16, height: u16 },
    #[error("a cursor of {width}x{height} pixels came with {len} bytes of pixels")]
    WrongLength { width: u16, height: u16, len: usize },
    #[error("a cursor whose hotspot {x},{y} lies outside it")]
    HotspotOutside { x: u16, y: u16 },
}

impl CursorShape {
    /// Checks a received shape against the limits.
    pub fn check(&self) -> Result<(), CursorError> {
        let (width, height) = (self.width, self.height);
        if width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
            return Err(CursorError::TooLarge { width, height });
        }
        if self.pixels.len() != usize::from(width) * usize::from(height) * 4 {
            return Err(CursorError::WrongLength {
                width,
                height,
                len: self.pixels.len(),
            });
        }
        if (width > 0 && self.hot_x >= width) || (height > 0 && self.hot_y >= height) {
            return Err(CursorError::HotspotOutside {
                x: self.hot_x,
                y: self.hot_y,
            });
        }
        Ok(())
    }

    /// The rectangle the shape covers with its hotspot at (`x`, `y`): left, top, width, height.
    pub fn area_at(&self, x: i32, y: i32) -> (i32, i32, u32, u32) {
        (
            x - i32::from(self.hot_x),
            y - i32::from(self.hot_y),
            u32::from(self.width),
            u32::from(self.height),
        )
    }

    /// Draws the shape over a BGRX image (`stride` bytes a row, `width` x `height` pixels) with
    /// its hotspot at (`x`, `y`), blending by its alpha; what falls outside the image is left
    /// out.
    pub fn draw(&self, image: &mut [u8], stride: usize, width: u32, height: u32, x: i32, y: i32) {
        let (left, top, w, h) = self.area_at(x, y);
        for row in 0..h as i32 {
            let iy = top + row;
            if iy < 0 || iy >= height as i32 {
                continue;
            }
            for col in 0..w as i32 {
                let ix = left + col;
                if ix < 0 || ix >= width as i32 {
                    continue;
                }
                let s = (row as usize * w as usize + col as usize) * 4;
                let src = &self.pixels[s..s + 4];
                let a = u32::from(src[3]);
                if a == 0 {
                    continue;
                }
                let d = iy as usize * stride + ix as usize * 4;
                let Some(dst) = image.get_mut(d..d + 3) else {
                    continue;
                };
                for c in 0..3 {
                    let under = u32::from(dst[c]) * (255 - a) / 255;
                    dst[c] = (u32::from(src[c]) + under).min(255) as u8;
                }
            }
        }
    }
}

/// The shapes a technician has been sent, by number, at most [`MAX_CURSOR_SHAPES`].
#[derive(Debug, Default, Clone)]
pub struct ShapeCache {
    shapes: VecDeque<CursorShape>,
}

impl ShapeCache {
    /// Keeps a checked shape (replacing one of the same number).
    pub fn insert(&mut self, shape: CursorShape) {
        self.shapes.retain(|s| s.id != shape.id);
        if self.shapes.len() == MAX_CURSOR_SHAPES {
            self.shapes.pop_front();
        }
        self.shapes.push_back(shape);
    }

    pub fn get(&self, id: u32) -> Option<&CursorShape> {
        self.shapes.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: u32, side: u16, bgra: [u8; 4]) -> CursorShape {
        CursorShape {
            id,
            width: side,
            height: side,
            hot_x: 1,
            hot_y: 1,
            pixels: bgra.repeat(usize::from(side) * usize::from(side)),
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(block(1, 4, [0, 0, 0, 255]).check(), Ok(()));
        let mut short = block(1, 4, [0; 4]);
        short.pixels.pop();
        assert!(matches!(
            short.check(),
            Err(CursorError::WrongLength { .. })
        ));
        let mut off = block(1, 4, [0; 4]);
        off.hot_x = 4;
        assert!(matches!(
            off.check(),
            Err(CursorError::HotspotOutside { .. })
        ));
        let big = CursorShape {
            width: MAX_CURSOR_SIDE + 1,
            ..block(1, 1, [0; 4])
        };
        assert!(matches!(big.check(), Err(CursorError::TooLarge { .. })));
    }

    #[test]
    fn drawing_blends_by_alpha_and_clips_at_the_edges() {
        // A 4x4 white image; an opaque red 2x2 cursor with its hotspot at (1, 1), at (0, 0):
        // only its bottom-right pixel lands inside.
        let mut image = vec![255u8; 4 * 4 * 4];
        let red = CursorShape {
            id: 1,
            width: 2,
            height: 2,
            hot_x: 1,
            hot_y: 1,
            pixels: [0, 0, 255, 255].repeat(4),
        };
        red.draw(&mut image, 16, 4, 4, 0, 0);
        assert_eq!(&image[0..3], &[0, 0, 255]);
        assert_eq!(&image[4..7], &[255, 255, 255]);
        // Half-transparent black (premultiplied: all zero, alpha 128) darkens to about half.
        let shade = CursorShape {
            pixels: [0, 0, 0, 128].repeat(4),
            ..red.clone()
        };
        shade.draw(&mut image, 16, 4, 4, 3, 3);
        assert_eq!(image[(2 * 4 + 2) * 4], 127);
        // Entirely outside: nothing changes, nothing panics.
        let before = image.clone();
        red.draw(&mut image, 16, 4, 4, -10, 50);
        assert_eq!(image, before);
    }

    #[test]
    fn the_cache_keeps_the_latest_shapes() {
        let mut cache = ShapeCache::default();
        for id in 0..(MAX_CURSOR_SHAPES as u32 + 1) {
            cache.insert(block(id, 1, [0; 4]));
        }
        assert!(cache.get(0).is_none());
        assert!(cache.get(MAX_CURSOR_SHAPES as u32).is_some());
        cache.insert(block(5, 2, [0; 4]));
        assert_eq!(cache.get(5).unwrap().width, 2);
    }
}
