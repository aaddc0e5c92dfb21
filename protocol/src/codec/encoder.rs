//! The sending side: one [`Encoder`] per viewer turns frames into [`Update`]s.
//!
//! The encoder keeps the image the viewer holds after every update it produced (the
//! reference). Each call compares the current frame with that reference, so whatever changed
//! while the viewer was behind merges into one update, and an unchanged frame costs one
//! comparison pass. Changed tiles are coded losslessly against what the viewer holds
//! ([`super::tile`]).

use super::decoder::copy_rect;
use super::detect::{self, Grid};
use super::motion::{MotionDetector, TileMove};
use super::tile::{Rect, TileEncoder};
use super::{Update, BPP};
use crate::peer::{CodecOp, CodecTile};

/// zstd level for the tile data of an update: fast, since every frame pays it.
const ZSTD_LEVEL: i32 = 1;

/// Produces screen updates for one viewer.
pub struct Encoder {
    grid: Grid,
    /// The image the viewer holds (see the module documentation).
    reference: Vec<u8>,
    /// The next update is self-contained: the viewer's image is not known.
    full_pending: bool,
    dirty: Vec<bool>,
    tiles: TileEncoder,
    payload: Vec<u8>,
    motion: MotionDetector,
    moves: Vec<TileMove>,
    usable: Vec<bool>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl Encoder {
    pub fn new(width: u32, height: u32) -> Self {
        let grid = Grid::new(width, height);
        Self {
            grid,
            reference: vec![0; grid.width * grid.height * BPP],
            full_pending: true,
            dirty: vec![false; grid.tiles()],
            tiles: TileEncoder::new(),
            payload: Vec::new(),
            motion: MotionDetector::default(),
            moves: Vec::new(),
            usable: vec![true; grid.tiles()],
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .expect("zstd accepts its own fast level"),
        }
    }

    /// Finds moved tiles, emits them as copies (runs of neighbouring tiles with the same
    /// displacement merged), applies the copies to the reference and leaves dirty only the tiles
    /// the copies did not make right.
    fn copies(&mut self, frame: &[u8], ops: &mut Vec<CodecOp>) {
        let grid = self.grid;
        self.moves.clear();
        self.motion.detect(
            &grid,
            frame,
            &self.reference,
            &self.dirty,
            &self.usable,
            &mut self.moves,
        );
        if self.moves.is_empty() {
            return;
        }
        // Order: by displacement, then so that a copy reads its source before another copy of
        // the same displacement overwrites it.
        self.moves.sort_unstable_by_key(|m| {
            let (tx, ty) = ((m.tile % grid.cols) as i64, (m.tile / grid.cols) as i64);
            let ky = if m.dy > 0 { -ty } else { ty };
            let kx = if m.dx > 0 { -tx } else { tx };
            (m.dx, m.dy, ky, kx)
        });
        let stride = grid.stride();
        let mut k = 0;
        while k < self.moves.len() {
            let m = self.moves[k];
            let mut end = k + 1;
            // Merge the run of tiles in the same tile row, adjacent, same displacement.
            while end < self.moves.len() {
                let n = self.moves[end];
                let step = if m.dx > 0 { -1 } else { 1 };
                let prev = self.moves[end - 1].tile as i64;
                if (n.dx, n.dy) != (m.dx, m.dy)
                    || n.tile / grid.cols != m.tile / grid.cols
                    || n.tile as i64 != prev + step
                {
                    break;
                }
                end += 1;
            }
            let (a, b) = (
                m.tile.min(self.moves[end - 1].tile),
                m.tile.max(self.moves[end - 1].tile),
            );
            let (x, y, _, h) = grid.rect(a);
            let (bx, _, bw, _) = grid.rect(b);
            let w = bx + bw - x;
            let (sx, sy) = (
                (x as i64 - m.dx as i64) as usize,
                (y as i64 - m.dy as i64) as usize,
            );
            copy_rect(&mut self.reference, stride, (sx, sy), (x, y), (w, h));
            ops.push(CodecOp::Copy {
                src_x: sx as u32,
                src_y: sy as u32,
                x: x as u32,
                y: y as u32,
                width: w as u32,
                height: h as u32,
            });
            k = end;
        }
        for m in &self.moves {
            self.dirty[m.tile] = !detect::tile_equal(&grid, frame, &self.reference, m.tile);
        }
    }

    /// The rectangles `(x, y, w, h)` the viewer holds lossy now (for measuring).
    pub fn lossy_rects(&self) -> Vec<(usize, usize, usize, usize)> {
        Vec::new()
    }

    /// The next update will carry the whole screen, coded without reference to what the viewer
    /// held (a new viewer, or one that lost its image).
    pub fn request_full(&mut self) {
        self.full_pending = true;
    }

    /// Builds the update that brings the viewer from what it holds to `frame` (BGRX, `width` x
    /// `height`, captured at `t_ms`), or `None` when there is nothing to send. A frame of
    /// another size than before starts over with a full update.
    ///
    /// # Panics
    /// If `frame` is not `width * height * 4` bytes.
    pub fn encode(
        &mut self,
        frame: &[u8],
        width: u32,
        height: u32,
        t_ms: u64,
        seq: u64,
    ) -> Option<Update> {
        let _ = t_ms;
        assert_eq!(
            frame.len(),
            width as usize * height as usize * BPP,
            "frame size"
        );
        if Grid::new(width, height) != self.grid {
            *self = Self::new(width, height);
        }
        let full = std::mem::take(&mut self.full_pending);
        let grid = self.grid;
        if full {
            self.dirty.fill(true);
        } else {
            self.dirty.fill(false);
            if detect::mark_changed(&grid, frame, &self.reference, &mut self.dirty) == 0 {
                return None;
            }
        }
        let mut ops = Vec::new();
        if !full {
            self.copies(frame, &mut ops);
        }
        self.payload.clear();
        let stride = grid.stride();
        for i in 0..grid.tiles() {
            if !self.dirty[i] {
                continue;
            }
            let (x, y, w, h) = grid.rect(i);
            let r = Rect { x, y, w, h };
            let reference = (!full).then_some(&self.reference[..]);
            let start = self.payload.len();
            let coding = self
                .tiles
                .encode(frame, reference, stride, r, &mut self.payload);
            ops.push(CodecOp::Tile(CodecTile {
                x: x as u32,
                y: y as u32,
                width: w as u32,
                height: h as u32,
                coding,
                len: (self.payload.len() - start) as u32,
            }));
            for row in y..y + h {
                let o = row * stride + x * BPP;
                self.reference[o..o + w * BPP].copy_from_slice(&frame[o..o + w * BPP]);
            }
        }
        let tile_data = if self.payload.is_empty() {
            Vec::new()
        } else {
            self.compressor
                .compress(&self.payload)
                .expect("zstd compresses into a growing buffer")
        };
        Some(Update {
            seq,
            width,
            height,
            ops,
            tile_data,
        })
    }
}
