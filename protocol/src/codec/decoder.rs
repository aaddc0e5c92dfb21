//! The viewer's side: applies [`Update`]s to a framebuffer.
//!
//! Every op's rectangle and every tile's declared payload length is checked before any pixel is
//! written, and the tile data is decompressed into a buffer no larger than the sum of those
//! lengths, so a malformed update is refused with a [`CodecError`] and can neither panic nor
//! write outside the image nor make the decoder allocate more than the update could describe.
//! A payload whose contents turn out wrong (a palette index out of range, say) is found while
//! its tile is written: the update stops there with an error, the image partly updated.

use super::tile::{self, Rect};
use super::video::VideoDecoders;
use super::{CodecError, Update, BPP, MAX_EDGE};
use crate::peer::CodecOp;

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
        if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
            return Err(CodecError::BadScreenSize { width, height });
        }
        let mut total = 0usize;
        for (index, op) in update.ops.iter().enumerate() {
            let ok = match op {
                CodecOp::Copy {
                    src_x,
                    src_y,
                    x,
                    y,
                    width: w,
                    height: h,
                } => {
                    inside(*src_x, *src_y, *w, *h, width, height)
                        && inside(*x, *y, *w, *h, width, height)
                }
                CodecOp::Tile(t) => {
                    let n = t.width as usize * t.height as usize;
                    if inside(t.x, t.y, t.width, t.height, width, height)
                        && t.len as usize > max_tile_len(n)
                    {
                        return Err(CodecError::BadOp {
                            index,
                            reason: "tile payload longer than any coding needs",
                        });
                    }
                    total += t.len as usize;
                    inside(t.x, t.y, t.width, t.height, width, height)
                }
                CodecOp::Video {
                    x,
                    y,
                    width: w,
                    height: h,
                    ..
                } => {
                    inside(*x, *y, *w, *h, width, height)
                        && w.is_multiple_of(2)
                        && h.is_multiple_of(2)
                }
            };
            if !ok {
                return Err(CodecError::BadOp {
                    index,
                    reason: "rectangle outside the screen",
                });
            }
        }
        self.data.clear();
        if total > 0 {
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
                    data,
                } => {
                    let r = Rect {
                        x: *x as usize,
                        y: *y as usize,
                        w: *w as usize,
                        h: *h as usize,
                    };
                    self.video
                        .decode(*stream, *restart, data, &mut self.pixels, stride, r)
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
