//! The interim screen codec: changed 64x64 tiles, each sent solid, zstd-compressed or raw.
//!
//! [`TileEncoder`] keeps the image the viewer holds after every update it produced (the
//! reference). Asked for an update, it compares the current frame with that reference tile by
//! tile, so changes that happened while the viewer was behind merge into one update, and an
//! unchanged frame costs only the comparison. [`Framebuffer`] applies updates on the viewing side
//! and rejects malformed ones with an error, never a panic or a write out of bounds.
//!
//! Pixels are 4 bytes, B, G, R, X, rows top to bottom without padding, as X11 delivers them.

use crate::peer::{ScreenUpdate, Tile, TileEncoding};

/// Tile edge in pixels.
pub const TILE: u32 = 64;
/// Bytes per pixel.
pub const BPP: usize = 4;
/// Largest screen edge accepted from the network.
pub const MAX_EDGE: u32 = 8192;

/// zstd level for tiles: fast, since every frame pays it.
const ZSTD_LEVEL: i32 = 1;

/// Produces screen updates for one viewer.
pub struct TileEncoder {
    width: u32,
    height: u32,
    reference: Vec<u8>,
    reference_valid: bool,
    compressor: zstd::bulk::Compressor<'static>,
    tile_buf: Vec<u8>,
}

impl TileEncoder {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            reference: vec![0; width as usize * height as usize * BPP],
            reference_valid: false,
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .expect("zstd accepts its own fast level"),
            tile_buf: Vec::with_capacity((TILE * TILE) as usize * BPP),
        }
    }

    /// The next update will carry the whole screen.
    pub fn request_full(&mut self) {
        self.reference_valid = false;
    }

    /// Builds the update that brings the viewer from what it holds to `frame`, or `None` when
    /// nothing changed. A frame of another size than before starts over with a full update.
    ///
    /// # Panics
    /// If `frame` is not `width * height * 4` bytes.
    pub fn encode(
        &mut self,
        frame: &[u8],
        width: u32,
        height: u32,
        seq: u64,
    ) -> Option<ScreenUpdate> {
        assert_eq!(
            frame.len(),
            width as usize * height as usize * BPP,
            "frame size"
        );
        if (width, height) != (self.width, self.height) {
            self.width = width;
            self.height = height;
            self.reference.clear();
            self.reference.resize(frame.len(), 0);
            self.reference_valid = false;
        }
        let full = !self.reference_valid;
        let stride = width as usize * BPP;
        let mut tiles = Vec::new();
        for ty in (0..height).step_by(TILE as usize) {
            let th = TILE.min(height - ty);
            for tx in (0..width).step_by(TILE as usize) {
                let tw = TILE.min(width - tx);
                let row_bytes = tw as usize * BPP;
                let rows = (ty..ty + th).map(|y| y as usize * stride + tx as usize * BPP);
                let changed = full
                    || rows
                        .clone()
                        .any(|o| frame[o..o + row_bytes] != self.reference[o..o + row_bytes]);
                if !changed {
                    continue;
                }
                self.tile_buf.clear();
                for o in rows {
                    self.tile_buf.extend_from_slice(&frame[o..o + row_bytes]);
                    self.reference[o..o + row_bytes].copy_from_slice(&frame[o..o + row_bytes]);
                }
                tiles.push(self.code_tile(tx, ty, tw, th));
            }
        }
        self.reference_valid = true;
        if tiles.is_empty() && !full {
            return None;
        }
        Some(ScreenUpdate {
            seq,
            width,
            height,
            tiles,
        })
    }

    fn code_tile(&mut self, x: u32, y: u32, width: u32, height: u32) -> Tile {
        let px = &self.tile_buf;
        let first = &px[..BPP];
        let (encoding, data) = if px.chunks_exact(BPP).all(|p| p == first) {
            (TileEncoding::Solid, first.to_vec())
        } else {
            match self.compressor.compress(px) {
                Ok(z) if z.len() < px.len() => (TileEncoding::Zstd, z),
                _ => (TileEncoding::Raw, px.clone()),
            }
        };
        Tile {
            x,
            y,
            width,
            height,
            encoding,
            data,
        }
    }
}

/// Why an update could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("screen size {width}x{height} is not allowed (1 to {MAX_EDGE} pixels a side)")]
    BadScreenSize { width: u32, height: u32 },
    #[error("tile {index} ({x},{y} {w}x{h}) is not a cell of the {width}x{height} screen's 64-pixel grid")]
    TileOutOfBounds {
        index: usize,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        width: u32,
        height: u32,
    },
    #[error("{count} tiles in one update; the screen has {cells} tile cells")]
    TooManyTiles { count: usize, cells: usize },
    #[error("tile {index} carries {got} bytes, {expected} expected")]
    BadTileLength {
        index: usize,
        got: usize,
        expected: usize,
    },
    #[error("tile {index} does not decompress: {reason}")]
    BadCompression { index: usize, reason: String },
}

/// The viewer's image of the remote screen.
pub struct Framebuffer {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    decompressor: zstd::bulk::Decompressor<'static>,
    scratch: Vec<u8>,
}

impl Default for Framebuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framebuffer {
    /// An empty (0x0) framebuffer; the first update sizes it.
    pub fn new() -> Self {
        Self {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            decompressor: zstd::bulk::Decompressor::new().expect("zstd context"),
            scratch: Vec::new(),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// BGRX pixels, rows top to bottom.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Resizes to `width` x `height`, clearing to black when the size changes.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), ApplyError> {
        if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
            return Err(ApplyError::BadScreenSize { width, height });
        }
        if (width, height) != (self.width, self.height) {
            self.width = width;
            self.height = height;
            self.pixels.clear();
            self.pixels
                .resize(width as usize * height as usize * BPP, 0);
        }
        Ok(())
    }

    /// Applies one update. The geometry of every tile is checked before any pixel is written;
    /// a tile whose compressed data turns out bad stops the update with an error.
    pub fn apply(&mut self, update: &ScreenUpdate) -> Result<(), ApplyError> {
        let (width, height) = (update.width, update.height);
        if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
            return Err(ApplyError::BadScreenSize { width, height });
        }
        // The encoder cuts the screen into a grid of TILE x TILE cells and sends each at most
        // once: anything else would let a few bytes demand unbounded work.
        let cells = (width.div_ceil(TILE) * height.div_ceil(TILE)) as usize;
        if update.tiles.len() > cells {
            return Err(ApplyError::TooManyTiles {
                count: update.tiles.len(),
                cells,
            });
        }
        for (index, t) in update.tiles.iter().enumerate() {
            let on_grid = t.x % TILE == 0 && t.y % TILE == 0 && t.width <= TILE && t.height <= TILE;
            let inside = on_grid
                && t.width > 0
                && t.height > 0
                && t.x.checked_add(t.width).is_some_and(|r| r <= width)
                && t.y.checked_add(t.height).is_some_and(|b| b <= height);
            if !inside {
                return Err(ApplyError::TileOutOfBounds {
                    index,
                    x: t.x,
                    y: t.y,
                    w: t.width,
                    h: t.height,
                    width,
                    height,
                });
            }
            let raw_len = t.width as usize * t.height as usize * BPP;
            let expected = match t.encoding {
                TileEncoding::Raw => Some(raw_len),
                TileEncoding::Solid => Some(BPP),
                TileEncoding::Zstd => None,
            };
            if let Some(expected) = expected.filter(|e| *e != t.data.len()) {
                return Err(ApplyError::BadTileLength {
                    index,
                    got: t.data.len(),
                    expected,
                });
            }
        }
        self.resize(width, height)?;
        let stride = width as usize * BPP;
        for (index, t) in update.tiles.iter().enumerate() {
            let row_bytes = t.width as usize * BPP;
            let raw_len = row_bytes * t.height as usize;
            let src: &[u8] = match t.encoding {
                TileEncoding::Raw => &t.data,
                TileEncoding::Solid => {
                    self.scratch.clear();
                    for _ in 0..t.width as usize * t.height as usize {
                        self.scratch.extend_from_slice(&t.data);
                    }
                    &self.scratch
                }
                TileEncoding::Zstd => {
                    self.scratch.clear();
                    self.scratch.reserve(raw_len);
                    self.decompressor
                        .decompress_to_buffer(&t.data, &mut self.scratch)
                        .map_err(|e| ApplyError::BadCompression {
                            index,
                            reason: e.to_string(),
                        })?;
                    if self.scratch.len() != raw_len {
                        return Err(ApplyError::BadTileLength {
                            index,
                            got: self.scratch.len(),
                            expected: raw_len,
                        });
                    }
                    &self.scratch
                }
            };
            for (row, chunk) in src.chunks_exact(row_bytes).enumerate() {
                let o = (t.y as usize + row) * stride + t.x as usize * BPP;
                self.pixels[o..o + row_bytes].copy_from_slice(chunk);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&f(x, y));
            }
        }
        v
    }

    #[test]
    fn unchanged_frame_yields_nothing_and_changes_round_trip() {
        let (w, h) = (200, 130);
        let a = frame(w, h, |x, y| [x as u8, y as u8, (x ^ y) as u8, 0]);
        let mut b = a.clone();
        b[(70 * w as usize + 100) * 4] ^= 0xff;
        let mut enc = TileEncoder::new(w, h);
        let mut fb = Framebuffer::new();
        fb.apply(&enc.encode(&a, w, h, 1).unwrap()).unwrap();
        assert_eq!(fb.pixels(), &a[..]);
        assert!(enc.encode(&a, w, h, 2).is_none());
        let u = enc.encode(&b, w, h, 2).unwrap();
        assert_eq!(u.tiles.len(), 1);
        fb.apply(&u).unwrap();
        assert_eq!(fb.pixels(), &b[..]);
        enc.request_full();
        assert_eq!(enc.encode(&b, w, h, 3).unwrap().tiles.len(), 4 * 3);
    }

    #[test]
    fn malformed_tiles_are_rejected() {
        let mut fb = Framebuffer::new();
        let bad = |t: Tile| ScreenUpdate {
            seq: 1,
            width: 100,
            height: 100,
            tiles: vec![t],
        };
        let t = |x, y, w, h, encoding, data: Vec<u8>| Tile {
            x,
            y,
            width: w,
            height: h,
            encoding,
            data,
        };
        assert!(matches!(
            fb.apply(&bad(t(90, 0, 20, 1, TileEncoding::Solid, vec![0; 4]))),
            Err(ApplyError::TileOutOfBounds { .. })
        ));
        assert!(matches!(
            fb.apply(&bad(t(u32::MAX, 0, 2, 1, TileEncoding::Solid, vec![0; 4]))),
            Err(ApplyError::TileOutOfBounds { .. })
        ));
        assert!(matches!(
            fb.apply(&bad(t(0, 0, 2, 2, TileEncoding::Raw, vec![0; 15]))),
            Err(ApplyError::BadTileLength { .. })
        ));
        assert!(matches!(
            fb.apply(&bad(t(0, 0, 2, 2, TileEncoding::Zstd, vec![1, 2, 3]))),
            Err(ApplyError::BadCompression { .. })
        ));
        let big = zstd::bulk::compress(&[0u8; 64], 1).unwrap();
        assert!(fb
            .apply(&bad(t(0, 0, 2, 2, TileEncoding::Zstd, big)))
            .is_err());
        assert!(matches!(
            fb.apply(&ScreenUpdate {
                seq: 1,
                width: 0,
                height: 5,
                tiles: vec![]
            }),
            Err(ApplyError::BadScreenSize { .. })
        ));
    }
}
