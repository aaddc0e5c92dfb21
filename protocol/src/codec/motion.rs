//! Scroll and move detection: finds content of the viewer's image that reappears elsewhere in
//! the new frame, so it travels as "copy this rectangle from there" instead of pixels.
//!
//! Candidates come from two cheap votes over the changed tiles only, then every changed tile is
//! checked pixel for pixel against the viewer's image displaced by each candidate:
//!
//! - vertical scrolls: each row of each 64-pixel column strip is reduced to a hash of 8 sampled
//!   pixels, in the viewer's image and (every other row) in the new frame; equal hashes in the
//!   same strip vote for the vertical distance between their rows. Strips vote on their own, so a page scrolling
//!   under a fixed toolbar and sidebar is found as well as a whole screen;
//! - moves in any direction (a dragged window): content-defined anchors, the positions where a
//!   pixel differs from its left neighbour and a hash of the 8 pixels from there has its low
//!   bits zero, are picked the same way in both images wherever the content sits; matching
//!   anchors vote for their displacement. Only run when scrolls left changed tiles unexplained.
//!
//! Only whole tiles that match exactly become copies, so a copy never needs a correction.

use std::collections::HashMap;

use super::detect::Grid;
use super::{BPP, TILE};

/// Votes a displacement needs before its tiles are checked.
const MIN_ROW_VOTES: u32 = 12;
const MIN_ANCHOR_VOTES: u32 = 6;
/// Candidates checked per kind.
const MAX_CANDIDATES: usize = 3;

/// A tile whose content is the viewer's image displaced by `(dx, dy)`.
#[derive(Debug, Clone, Copy)]
pub struct TileMove {
    pub tile: usize,
    pub dx: i32,
    pub dy: i32,
}

/// Scratch state reused from frame to frame.
#[derive(Default)]
pub struct MotionDetector {
    row_votes: Vec<u32>,
    index: HashMap<u64, u32>,
    anchors: HashMap<u64, (u32, u32)>,
    anchor_votes: HashMap<(i32, i32), u32>,
}

#[inline]
fn px(buf: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(buf[o..o + 4].try_into().expect("4 bytes"))
}

#[inline]
fn mix(h: u64, v: u32) -> u64 {
    (h.rotate_left(5) ^ v as u64).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// Hash of 8 pixels sampled across a strip row, or `None` if the samples are all equal (a flat
/// row votes for every displacement).
fn strip_row_hash(img: &[u8], o: usize, w: usize) -> Option<u64> {
    let first = px(img, o);
    let mut h = 0u64;
    let mut flat = true;
    let step = (w / 8).max(1);
    let mut x = 0;
    while x < w {
        let p = px(img, o + x * BPP);
        flat &= p == first;
        h = mix(h, p);
        x += step;
    }
    (!flat).then_some(h)
}

/// Whether tile `i` of `frame` equals `reference` displaced by `(dx, dy)` (source inside).
fn tile_matches(grid: &Grid, frame: &[u8], reference: &[u8], i: usize, dx: i32, dy: i32) -> bool {
    let (x, y, w, h) = grid.rect(i);
    let (sx, sy) = (x as i64 - dx as i64, y as i64 - dy as i64);
    if sx < 0 || sy < 0 || sx as usize + w > grid.width || sy as usize + h > grid.height {
        return false;
    }
    let (sx, sy) = (sx as usize, sy as usize);
    let stride = grid.stride();
    (0..h).all(|row| {
        let a = (y + row) * stride + x * BPP;
        let b = (sy + row) * stride + sx * BPP;
        frame[a..a + w * BPP] == reference[b..b + w * BPP]
    })
}

impl MotionDetector {
    /// Finds changed tiles (`dirty`) of `frame` that are `reference` (what the viewer holds)
    /// displaced, and appends them to `moves`.
    pub fn detect(
        &mut self,
        grid: &Grid,
        frame: &[u8],
        reference: &[u8],
        dirty: &[bool],
        moves: &mut Vec<TileMove>,
    ) {
        let mut explained = vec![false; grid.tiles()];
        let candidates = self.scroll_candidates(grid, frame, reference, dirty);
        self.check(
            grid,
            frame,
            reference,
            dirty,
            &candidates,
            &mut explained,
            moves,
        );
        let left = (0..grid.tiles())
            .filter(|&i| dirty[i] && !explained[i])
            .count();
        if left >= 2 {
            let candidates = self.move_candidates(grid, frame, reference, dirty, &explained);
            self.check(
                grid,
                frame,
                reference,
                dirty,
                &candidates,
                &mut explained,
                moves,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        grid: &Grid,
        frame: &[u8],
        reference: &[u8],
        dirty: &[bool],
        candidates: &[(i32, i32)],
        explained: &mut [bool],
        moves: &mut Vec<TileMove>,
    ) {
        for i in 0..grid.tiles() {
            if !dirty[i] || explained[i] {
                continue;
            }
            for &(dx, dy) in candidates {
                if tile_matches(grid, frame, reference, i, dx, dy) {
                    explained[i] = true;
                    moves.push(TileMove { tile: i, dx, dy });
                    break;
                }
            }
        }
    }

    fn scroll_candidates(
        &mut self,
        grid: &Grid,
        frame: &[u8],
        reference: &[u8],
        dirty: &[bool],
    ) -> Vec<(i32, i32)> {
        let stride = grid.stride();
        self.row_votes.clear();
        self.row_votes.resize(2 * grid.height + 1, 0);
        for tx in 0..grid.cols {
            if !(0..grid.rows).any(|ty| dirty[ty * grid.cols + tx]) {
                continue;
            }
            let x = tx * TILE;
            let w = TILE.min(grid.width - x);
            self.index.clear();
            for ty in 0..grid.rows {
                if !dirty[ty * grid.cols + tx] {
                    continue;
                }
                let (_, y0, _, h) = grid.rect(ty * grid.cols + tx);
                for y in y0..y0 + h {
                    if let Some(hash) = strip_row_hash(reference, y * stride + x * BPP, w) {
                        self.index.insert(hash, y as u32);
                    }
                }
            }
            for ty in 0..grid.rows {
                if !dirty[ty * grid.cols + tx] {
                    continue;
                }
                let (_, y0, _, h) = grid.rect(ty * grid.cols + tx);
                // Every other row of the new frame is enough to vote.
                for y in (y0..y0 + h).step_by(2) {
                    if let Some(hash) = strip_row_hash(frame, y * stride + x * BPP, w) {
                        if let Some(&ry) = self.index.get(&hash) {
                            let dy = y as i64 - ry as i64;
                            if dy != 0 {
                                self.row_votes[(dy + grid.height as i64) as usize] += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut best: Vec<(u32, i32)> = self
            .row_votes
            .iter()
            .enumerate()
            .filter(|(_, v)| **v >= MIN_ROW_VOTES)
            .map(|(i, v)| (*v, i as i32 - grid.height as i32))
            .collect();
        best.sort_unstable_by(|a, b| b.cmp(a));
        best.iter()
            .take(MAX_CANDIDATES)
            .map(|&(_, dy)| (0, dy))
            .collect()
    }

    /// Calls `f(key, x, y)` for every anchor inside the tiles selected by `take`.
    fn anchors(
        grid: &Grid,
        img: &[u8],
        take: impl Fn(usize) -> bool,
        mut f: impl FnMut(u64, u32, u32),
    ) {
        let stride = grid.stride();
        for i in 0..grid.tiles() {
            if !take(i) {
                continue;
            }
            let (x0, y0, w, h) = grid.rect(i);
            for y in y0..y0 + h {
                let row = y * stride;
                let end = (x0 + w).min(grid.width.saturating_sub(8));
                let mut prev = if x0 > 0 {
                    px(img, row + (x0 - 1) * BPP)
                } else {
                    !px(img, row)
                };
                for x in x0..end {
                    let p = px(img, row + x * BPP);
                    if p != prev {
                        let mut hash = 0u64;
                        for k in 0..8 {
                            hash = mix(hash, px(img, row + (x + k) * BPP));
                        }
                        if hash >> 59 == 0 {
                            f(hash, x as u32, y as u32);
                        }
                    }
                    prev = p;
                }
            }
        }
    }

    fn move_candidates(
        &mut self,
        grid: &Grid,
        frame: &[u8],
        reference: &[u8],
        dirty: &[bool],
        explained: &[bool],
    ) -> Vec<(i32, i32)> {
        self.anchors.clear();
        self.anchor_votes.clear();
        let anchors = &mut self.anchors;
        Self::anchors(
            grid,
            reference,
            |i| dirty[i],
            |k, x, y| {
                anchors.insert(k, (x, y));
            },
        );
        let (anchors, votes) = (&self.anchors, &mut self.anchor_votes);
        Self::anchors(
            grid,
            frame,
            |i| dirty[i] && !explained[i],
            |k, x, y| {
                if let Some(&(rx, ry)) = anchors.get(&k) {
                    let v = (x as i32 - rx as i32, y as i32 - ry as i32);
                    if v != (0, 0) {
                        *votes.entry(v).or_insert(0) += 1;
                    }
                }
            },
        );
        let mut best: Vec<(u32, (i32, i32))> = self
            .anchor_votes
            .iter()
            .filter(|(_, n)| **n >= MIN_ANCHOR_VOTES)
            .map(|(v, n)| (*n, *v))
            .collect();
        best.sort_unstable_by(|a, b| b.cmp(a));
        best.iter().take(MAX_CANDIDATES).map(|&(_, v)| v).collect()
    }
}
