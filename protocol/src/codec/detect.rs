//! Change detection: which tiles of a frame differ from the image the viewer holds.
//!
//! Rows are compared whole first (one `memcmp` of a 1920-pixel row is close to memory speed),
//! and only a row that differs is compared tile by tile, so an unchanged 1080p frame costs one
//! pass over two images and nothing more. Where the source says which rectangles changed
//! (X DAMAGE), only the tiles they touch are compared ([`mark_changed_in`]).

use super::tile::Rect;
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

/// As [`mark_changed`], where `frame` may differ from `reference` only inside `rects` (and in
/// the tiles `also` selects): only the tiles those touch are compared.
pub fn mark_changed_in(
    grid: &Grid,
    frame: &[u8],
    reference: &[u8],
    rects: &[Rect],
    also: impl Iterator<Item = usize>,
    dirty: &mut [bool],
) -> usize {
    let check = |i: usize, dirty: &mut [bool]| {
        if !dirty[i] && !tile_equal(grid, frame, reference, i) {
            dirty[i] = true;
        }
    };
    for r in rects {
        if r.w == 0 || r.h == 0 || r.x >= grid.width || r.y >= grid.height {
            continue;
        }
        let (x1, y1) = ((r.x + r.w).min(grid.width), (r.y + r.h).min(grid.height));
        for ty in r.y / TILE..y1.div_ceil(TILE) {
            for tx in r.x / TILE..x1.div_ceil(TILE) {
                check(ty * grid.cols + tx, dirty);
            }
        }
    }
    for i in also {
        check(i, dirty);
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
