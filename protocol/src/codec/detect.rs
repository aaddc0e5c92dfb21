//! Change detection: which tiles of a frame differ from the image the viewer holds.
//!
//! Rows are compared whole first (one `memcmp` of a 1920-pixel row is close to memory speed),
//! and only a row that differs is compared tile by tile, so an unchanged 1080p frame costs one
//! pass over two images and nothing more.

use super::{BPP, TILE};

/// The tile grid of a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub width: usize,
    pub height: usize,
    pub cols: usize,
    pub rows: usize,
}

impl Grid {
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        Self {
            width,
            height,
            cols: width.div_ceil(TILE),
            rows: height.div_ceil(TILE),
        }
    }

    pub fn tiles(&self) -> usize {
        self.cols * self.rows
    }

    pub fn stride(&self) -> usize {
        self.width * BPP
    }

    /// Pixel rectangle `(x, y, w, h)` of tile `i`.
    pub fn rect(&self, i: usize) -> (usize, usize, usize, usize) {
        let (tx, ty) = (i % self.cols, i / self.cols);
        let (x, y) = (tx * TILE, ty * TILE);
        (x, y, TILE.min(self.width - x), TILE.min(self.height - y))
    }
}

/// Sets `dirty[i]` for every tile where `frame` and `reference` differ (leaving tiles already
/// marked as they are) and returns how many tiles are marked.
pub fn mark_changed(grid: &Grid, frame: &[u8], reference: &[u8], dirty: &mut [bool]) -> usize {
    let stride = grid.stride();
    for y in 0..grid.height {
        let o = y * stride;
        if frame[o..o + stride] == reference[o..o + stride] {
            continue;
        }
        let band = (y / TILE) * grid.cols;
        for tx in 0..grid.cols {
            if dirty[band + tx] {
                continue;
            }
            let a = o + tx * TILE * BPP;
            let b = o + ((tx + 1) * TILE).min(grid.width) * BPP;
            if frame[a..b] != reference[a..b] {
                dirty[band + tx] = true;
            }
        }
    }
    dirty.iter().filter(|d| **d).count()
}

/// Whether tile `i` holds the same pixels in both images.
pub fn tile_equal(grid: &Grid, a: &[u8], b: &[u8], i: usize) -> bool {
    let (x, y, w, h) = grid.rect(i);
    let stride = grid.stride();
    (y..y + h).all(|row| {
        let o = row * stride + x * BPP;
        a[o..o + w * BPP] == b[o..o + w * BPP]
    })
}
