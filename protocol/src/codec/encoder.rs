//! The sending side: one [`Encoder`] per viewer turns frames into [`Update`]s.
//!
//! The encoder keeps the image the viewer holds after every update it produced (the
//! reference). Each call compares the current frame with that reference, so whatever changed
//! while the viewer was behind merges into one update, and an unchanged frame costs one
//! comparison pass. Changed tiles are coded losslessly against what the viewer holds
//! ([`super::tile`]).

use super::detect::{self, Grid};
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
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .expect("zstd accepts its own fast level"),
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
