//! The viewer's side: applies [`Update`]s to a framebuffer.
//!
//! Every op's rectangle and every tile's declared payload length is checked before any pixel is
//! written, and so is the update's work: at most [`MAX_OPS`] ops, whose areas add up to at
//! most [`WORK_FACTOR`] times the screen. The tile data is decompressed into a buffer no larger
//! than the sum of the declared lengths, reserved only when the compressed bytes present could
//! become that much ([`MAX_ZSTD_EXPANSION`]), so a malformed update is refused with a
//! [`CodecError`] and can neither panic nor write outside the image nor make the decoder
//! allocate or work more than the update could describe.
//! A payload whose contents turn out wrong (a palette index out of range, say) is found while
//! its tile is written: the update stops there with an error, the image partly updated.

use super::tile::{self, Rect};
use super::video::{mask_len, VideoDecoders};
use super::{check_screen_size, CodecError, Update, BPP, MAX_OPS, WORK_FACTOR};
use crate::peer::CodecOp;

/// Most bytes one byte of zstd data can become: a block of one repeated byte (RLE) is a 3-byte
/// header and the byte, and stands for up to 128 KiB.
pub const MAX_ZSTD_EXPANSION: usize = 128 * 1024 / 4;

/// Most payload bytes one tile of `n` pixels may declare.
pub(crate) fn max_tile_len(n: usize) -> usize {
    n * BPP + 1 + 128 * BPP
}

/// The viewer's image of the remote screen, and the state needed to apply updates to it.
pub struct Decoder {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    decompressor: zstd::bulk::Decompressor<'static>,
    data: Vec<u8>,
    video: VideoDecoders,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

fn inside(x: u32, y: u32, w: u32, h: u32, width: u32, height: u32) -> bool {
    w > 0
        && h > 0
        && x.checked_add(w).is_some_and(|r| r <= width)
        && y.checked_add(h).is_some_and(|b| b <= height)
}

impl Decoder {
    /// An empty (0x0) image; the first update sizes it.
    pub fn new() -> Self {
        Self {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            decompressor: zstd::bulk::Decompressor::new().expect("zstd context"),
            data: Vec::new(),
            video: VideoDecoders::default(),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// BGRX pixels, rows top to bottom without padding.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Applies one update; see the module documentation for what is checked when.
    pub fn apply(&mut self, update: &Update) -> Result<(), CodecError> {
        let (width, height) = (update.width, update.height);
        check_screen_size(width, height)?;
        if update.ops.len() > MAX_OPS {
            return Err(CodecError::TooManyOps {
                ops: update.ops.len(),
            });
        }
        let budget = WORK_FACTOR * u64::from(width) * u64::from(height);
        let mut work = 0u64;
        let mut total = 0usize;
        for (index, op) in update.ops.iter().enumerate() {
            let (ok, w, h) = match op {
                CodecOp::Copy {
                    src_x,
                    src_y,
                    x,
                    y,
                    width: w,
                    height: h,
                } => (
                    inside(*src_x, *src_y, *w, *h, width, height)
                        && inside(*x, *y, *w, *h, width, height),
                    *w,
                    *h,
                ),
                CodecOp::Tile(t) => (
                    inside(t.x, t.y, t.width, t.height, width, height),
                    t.width,
                    t.height,
                ),
                CodecOp::Video {
                    x,
                    y,
                    width: w,
                    height: h,
                    ..
                } => (
                    inside(*x, *y, *w, *h, width, height)
                        && w.is_multiple_of(2)
                        && h.is_multiple_of(2),
                    *w,
                    *h,
                ),
            };
            if !ok {
                return Err(CodecError::BadOp {
                    index,
                    reason: "rectangle outside the screen",
                });
            }
            if let CodecOp::Video { keep, .. } = op {
                if !keep.is_empty() && keep.len() != mask_len(w as usize, h as usize) {
                    return Err(CodecError::BadOp {
                        index,
                        reason: "video mask not one bit per tile",
                    });
                }
            }
            // Inside the screen: each area is at most the screen's, so this cannot overflow.
            work += u64::from(w) * u64::from(h);
            if work > budget {
                return Err(CodecError::TooMuchWork { work, budget });
            }
            if let CodecOp::Tile(t) = op {
                if t.len as usize > max_tile_len(w as usize * h as usize) {
                    return Err(CodecError::BadOp {
                        index,
                        reason: "tile payload longer than any coding needs",
                    });
                }
                total += t.len as usize;
            }
        }
        self.data.clear();
        if total > 0 {
            // What the tiles declare is reserved only if the bytes present can become that
            // much: a few kilobytes claiming gigabytes are refused here, before any allocation.
            let most = update.tile_data.len().saturating_mul(MAX_ZSTD_EXPANSION);
            if total > most {
                return Err(CodecError::BadCompression(format!(
                    "{} bytes of tile data cannot hold the {total} bytes the tiles declare",
                    update.tile_data.len()
                )));
            }
            self.data.reserve(total);
            self.decompressor
                .decompress_to_buffer(&update.tile_data, &mut self.data)
                .map_err(|e| CodecError::BadCompression(e.to_string()))?;
            if self.data.len() != total {
                return Err(CodecError::BadCompression(format!(
                    "{} bytes of tile data, {total} declared",
                    self.data.len()
                )));
            }
        } else if !update.tile_data.is_empty() {
            return Err(CodecError::BadCompression("tile data without tiles".into()));
        }
        if (width, height) != (self.width, self.height) {
            self.width = width;
            self.height = height;
            self.pixels.clear();
            self.pixels
                .resize(width as usize * height as usize * BPP, 0);
            self.video.clear();
        }
        let stride = width as usize * BPP;
        let mut at = 0usize;
        for (index, op) in update.ops.iter().enumerate() {
            match op {
                CodecOp::Copy {
                    src_x,
                    src_y,
                    x,
                    y,
                    width: w,
                    height: h,
                } => copy_rect(
                    &mut self.pixels,
                    stride,
                    (*src_x as usize, *src_y as usize),
                    (*x as usize, *y as usize),
                    (*w as usize, *h as usize),
                ),
                CodecOp::Tile(t) => {
                    let payload = &self.data[at..at + t.len as usize];
                    at += t.len as usize;
                    let r = Rect {
                        x: t.x as usize,
                        y: t.y as usize,
                        w: t.width as usize,
                        h: t.height as usize,
                    };
                    tile::decode(t.coding, payload, &mut self.pixels, stride, r)
                        .map_err(|e| e.at(index))?;
                }
                CodecOp::Video {
                    stream,
                    restart,
                    x,
                    y,
                    width: w,
                    height: h,
                    keep,
                    data,
                } => {
                    let r = Rect {
                        x: *x as usize,
                        y: *y as usize,
                        w: *w as usize,
                        h: *h as usize,
                    };
                    self.video
                        .decode(*stream, *restart, data, keep, &mut self.pixels, stride, r)
                        .map_err(|e| e.at(index))?;
                }
            }
        }
        Ok(())
    }
}

/// Copies a rectangle within an image as if through a temporary buffer: rows are visited in the
/// order that never reads a row already overwritten, and each row moves with `copy_within`.
pub(crate) fn copy_rect(
    pixels: &mut [u8],
    stride: usize,
    (sx, sy): (usize, usize),
    (dx, dy): (usize, usize),
    (w, h): (usize, usize),
) {
    let row = |k: usize| {
        let s = (sy + k) * stride + sx * BPP;
        let d = (dy + k) * stride + dx * BPP;
        (s, d)
    };
    if dy > sy {
        for k in (0..h).rev() {
            let (s, d) = row(k);
            pixels.copy_within(s..s + w * BPP, d);
        }
    } else {
        for k in 0..h {
            let (s, d) = row(k);
            pixels.copy_within(s..s + w * BPP, d);
        }
    }
}
