//! The sending side: one [`Encoder`] per viewer turns frames into [`Update`]s.
//!
//! The encoder keeps the image the viewer holds after every update it produced (the
//! reference). Each call compares the current frame with that reference, so whatever changed
//! while the viewer was behind merges into one update, and an unchanged frame costs one
//! comparison pass. Changed tiles are coded losslessly against what the viewer holds
//! ([`super::tile`]).
//!
//! # The lossy path
//!
//! A tile goes lossy only when two things hold: it changes quickly (its last [`HOT_CHANGES`]
//! changes fell within [`HOT_WINDOW_MS`], at least 10 a second, not counting changes where
//! content moved in the same update, which is scrolling or dragging) and it is expensive to send exactly (most of
//! those changes had more colours than a palette tile holds: natural images, not text or flat
//! widgets). When at least [`MIN_VIDEO_TILES`] tiles are hot and fill at least
//! half of their bounding box, that box becomes a video region: one H.264 stream
//! ([`super::video`]) carries it while it changes, and the tiles inside it are never a copy
//! source. Tiles of the region that stay unchanged for [`REFINE_AFTER_MS`] leave it (the stream
//! restarts on the smaller box, or ends) and are sent again losslessly in the same update, so a
//! region is exact again within a second of stopping. [`Encoder::refine`] does that on a screen
//! that stopped changing altogether.
//!
//! # Windows over video
//!
//! The region's tiles are either carried by its pictures or kept: a tile the viewer holds
//! exactly (refined after [`REFINE_AFTER_MS`] still, or moved there by a copy) is left alone by
//! every picture (the op's mask) until it changes again, so a window resting over a video is
//! exact while the video around it plays on in the same stream. Copies reach into the region:
//! a window dragged over the video travels as copies of what the viewer holds, its tiles kept,
//! and only what no copy explains goes into the pictures. A copy whose source the pictures
//! carried brings the viewer approximate pixels, which are tracked as lossy and refined like
//! near-lossless tiles.
//!
//! # Natural images that move
//!
//! A photograph scrolling in, a panned map, a slideshow: content that is new where it appears
//! rather than changing in place, so it never turns hot. A tile that changes next to moved
//! content in the same update, or that changed shortly before ([`REFINE_AFTER_MS`]), and that
//! only the predicted coding would carry exactly, is sent near-lossless
//! ([`super::tile::TileCoding::NearLossless`], no channel off by more than [`LOSSY_STEP`] / 2)
//! instead. The viewer's lossy tiles are tracked, and copies carry them along (a scrolled photo
//! is still a copy of what the viewer holds); once a tile has been still for
//! [`REFINE_AFTER_MS`] it is sent exactly, at most [`MAX_REFINE_TILES`] an update, so a
//! screenful of photographs is exact within a second of stopping. Text and widgets (palette
//! tiles) stay exact throughout.

use super::decoder::copy_rect;
use super::detect::{self, Grid};
use super::motion::{MotionDetector, TileMove};
use super::tile::{Rect, TileEncoder};
use super::video::VideoEncoder;
use super::{Update, BPP, TILE};
use crate::peer::{CodecOp, CodecTile, TileCoding};

/// zstd level for the tile data of an update: fast, since every frame pays it.
const ZSTD_LEVEL: i32 = 1;

/// How many recent changes of a tile must fall within [`HOT_WINDOW_MS`] for it to count as
/// changing on most frames.
pub const HOT_CHANGES: usize = 5;
/// See [`HOT_CHANGES`]: five changes in half a second is ten a second or more.
pub const HOT_WINDOW_MS: u64 = 500;
/// Fewest hot tiles that start a video region: smaller churn is cheap enough exactly.
pub const MIN_VIDEO_TILES: usize = 4;
/// A video region's tile, or a near-lossless tile, unchanged this long is refined to lossless.
pub const REFINE_AFTER_MS: u64 = 500;
/// The step of near-lossless tiles: no channel is off by more than 3 (about 42 dB).
pub const LOSSY_STEP: u8 = 7;
/// Most tiles one update refines, so that refining a screenful of photographs is spread over a
/// few updates instead of making one slow.
pub const MAX_REFINE_TILES: usize = 96;

/// A video region: a box of whole tiles (`tx0..tx1`, `ty0..ty1`) carried by one H.264 stream.
struct Region {
    tx0: usize,
    ty0: usize,
    tx1: usize,
    ty1: usize,
    stream: u32,
    /// The next access unit starts the stream (the viewer makes a new decoder).
    restart: bool,
    video: VideoEncoder,
    /// Per tile of the box, row by row: the viewer holds it exactly (refined, or moved there by
    /// a copy), and pictures leave it alone until it changes again.
    kept: Vec<bool>,
}

impl Region {
    fn contains(&self, grid: &Grid, i: usize) -> bool {
        let (tx, ty) = (i % grid.cols, i / grid.cols);
        (self.tx0..self.tx1).contains(&tx) && (self.ty0..self.ty1).contains(&ty)
    }

    /// Index of screen tile `i` (inside the box) among the box's tiles.
    fn local(&self, grid: &Grid, i: usize) -> usize {
        let (tx, ty) = (i % grid.cols, i / grid.cols);
        (ty - self.ty0) * (self.tx1 - self.tx0) + (tx - self.tx0)
    }

    /// Whether screen tile `i` is carried by the pictures: inside the box and not kept.
    fn carries(&self, grid: &Grid, i: usize) -> bool {
        self.contains(grid, i) && !self.kept[self.local(grid, i)]
    }

    /// The kept tiles as the op's mask (empty when none is).
    fn keep_mask(&self) -> Vec<u8> {
        if !self.kept.contains(&true) {
            return Vec::new();
        }
        let mut mask = vec![0u8; self.kept.len().div_ceil(8)];
        for (k, _) in self.kept.iter().enumerate().filter(|(_, kept)| **kept) {
            mask[k / 8] |= 1 << (k % 8);
        }
        mask
    }

    fn rect(&self, grid: &Grid) -> Rect {
        region_rect(grid, (self.tx0, self.ty0, self.tx1, self.ty1))
    }

    fn tiles(&self, grid: &Grid) -> impl Iterator<Item = usize> + '_ {
        let cols = grid.cols;
        (self.ty0..self.ty1).flat_map(move |ty| (self.tx0..self.tx1).map(move |tx| ty * cols + tx))
    }
}

/// Pixel rectangle of a box of tiles.
fn region_rect(grid: &Grid, (tx0, ty0, tx1, ty1): (usize, usize, usize, usize)) -> Rect {
    let (x, y, _, _) = grid.rect(ty0 * grid.cols + tx0);
    let (x1, y1, w1, h1) = grid.rect((ty1 - 1) * grid.cols + tx1 - 1);
    Rect {
        x,
        y,
        w: x1 + w1 - x,
        h: y1 + h1 - y,
    }
}

/// Shrinks a box of tiles until its pixel size is even both ways (H.264 pictures are; only an
/// edge tile of an odd-sized screen can be odd), or `None` when nothing is left.
fn even_box(
    grid: &Grid,
    (tx0, ty0, mut tx1, mut ty1): (usize, usize, usize, usize),
) -> Option<(usize, usize, usize, usize)> {
    if region_rect(grid, (tx0, ty0, tx1, ty1)).w % 2 == 1 {
        tx1 -= 1;
    }
    if tx1 > tx0 && region_rect(grid, (tx0, ty0, tx1, ty1)).h % 2 == 1 {
        ty1 -= 1;
    }
    (tx1 > tx0 && ty1 > ty0).then_some((tx0, ty0, tx1, ty1))
}

/// Bounding box `(tx0, ty0, tx1, ty1)` of the tiles for which `pick` holds, and their count.
fn bounding_box(
    grid: &Grid,
    pick: impl Fn(usize) -> bool,
) -> Option<((usize, usize, usize, usize), usize)> {
    let mut b = (usize::MAX, usize::MAX, 0, 0);
    let mut n = 0;
    for i in (0..grid.tiles()).filter(|&i| pick(i)) {
        let (tx, ty) = (i % grid.cols, i / grid.cols);
        b = (b.0.min(tx), b.1.min(ty), b.2.max(tx + 1), b.3.max(ty + 1));
        n += 1;
    }
    (n > 0).then_some((b, n))
}

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
    /// The changed tiles searched for moved content.
    searched: Vec<bool>,
    compressor: zstd::bulk::Compressor<'static>,
    /// Per tile: when its last [`HOT_CHANGES`] counted changes happened, oldest first
    /// (`u64::MAX`: not yet).
    changes: Vec<[u64; HOT_CHANGES]>,
    /// Per tile: one bit per recent lossless coding, set when it was expensive.
    costly: Vec<u8>,
    /// Per tile: when it last changed at all.
    last_change: Vec<u64>,
    /// Tiles next to a copy destination in the current update.
    near_copy: Vec<bool>,
    /// Per tile: the viewer holds it near-lossless, or a copy brought it video pixels (copies
    /// carry this along with the pixels); refined once still.
    lossy: Vec<bool>,
    /// Per tile: refined to lossless in the current update.
    refining: Vec<bool>,
    region: Option<Region>,
    next_stream: u32,
    /// The video encoder failed once: everything stays exact.
    video_off: bool,
    /// Made by [`Encoder::lossless`].
    lossless: bool,
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
            searched: Vec::new(),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .expect("zstd accepts its own fast level"),
            changes: vec![[u64::MAX; HOT_CHANGES]; grid.tiles()],
            costly: vec![0; grid.tiles()],
            last_change: vec![0; grid.tiles()],
            near_copy: vec![false; grid.tiles()],
            lossy: vec![false; grid.tiles()],
            refining: vec![false; grid.tiles()],
            region: None,
            next_stream: 0,
            video_off: false,
            lossless: false,
        }
    }

    /// An encoder that never sends anything lossy: every update brings the viewer's image to
    /// the frame exactly, at the cost of bandwidth on moving pictures.
    pub fn lossless(width: u32, height: u32) -> Self {
        Self {
            lossless: true,
            ..Self::new(width, height)
        }
    }

    /// Finds moved tiles, emits them as copies (runs of neighbouring tiles with the same
    /// displacement merged), applies the copies to the reference and leaves dirty only the tiles
    /// the copies did not make right.
    ///
    /// Inside the video region, only the tiles next to exact content (a kept tile, or one
    /// outside the region) are searched: a window moving over the video moves from there, and
    /// the rest of the video, new every frame, would cost a search for nothing.
    fn copies(&mut self, frame: &[u8], ops: &mut Vec<CodecOp>) {
        let grid = self.grid;
        self.moves.clear();
        self.searched.clear();
        self.searched.extend_from_slice(&self.dirty);
        if let Some(region) = &self.region {
            let (cols, rows) = (grid.cols as i64, grid.rows as i64);
            for i in region.tiles(&grid).filter(|&i| self.dirty[i]) {
                let (tx, ty) = ((i % grid.cols) as i64, (i / grid.cols) as i64);
                let exact_near = (ty - 1..=ty + 1).any(|y| {
                    (tx - 1..=tx + 1).any(|x| {
                        (0..cols).contains(&x)
                            && (0..rows).contains(&y)
                            && !region.carries(&grid, (y * cols + x) as usize)
                    })
                });
                self.searched[i] = exact_near;
            }
        }
        self.motion.detect(
            &grid,
            frame,
            &self.reference,
            &self.searched,
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
            self.move_lossy((sx, sy), (x, y), (w, h));
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
            // Moved into the video region: exact, so its pictures leave the tile alone.
            if let Some(region) = self.region.as_mut().filter(|r| r.contains(&grid, m.tile)) {
                let k = region.local(&grid, m.tile);
                region.kept[k] = !self.dirty[m.tile];
            }
        }
    }

    /// Whether tile `i` is carried by the video region's pictures (the viewer holds it lossy).
    fn carried(&self, i: usize) -> bool {
        self.region
            .as_ref()
            .is_some_and(|r| r.carries(&self.grid, i))
    }

    /// A copy of the `size` rectangle at `src` to the tiles at `dst` (whole tiles) carries the
    /// viewer's approximate pixels along: a destination tile is lossy when any tile its source
    /// overlaps was near-lossless or carried by the video pictures.
    fn move_lossy(
        &mut self,
        (sx, sy): (usize, usize),
        (dx, dy): (usize, usize),
        (w, h): (usize, usize),
    ) {
        let grid = self.grid;
        let cols = grid.cols;
        let (tx0, ty0) = (dx / TILE, dy / TILE);
        let (tx1, ty1) = ((dx + w).div_ceil(TILE), (dy + h).div_ceil(TILE));
        let mut moved = Vec::with_capacity((tx1 - tx0) * (ty1 - ty0));
        for ty in ty0..ty1 {
            for tx in tx0..tx1 {
                // The destination tile's pixels within the copy, and where they come from.
                let (x, y, tw, th) = grid.rect(ty * cols + tx);
                let (x0, y0) = (x.max(dx), y.max(dy));
                let (x1, y1) = ((x + tw).min(dx + w), (y + th).min(dy + h));
                let (ax, ay) = (x0 - dx + sx, y0 - dy + sy);
                let (bx, by) = (x1 - dx + sx - 1, y1 - dy + sy - 1);
                let lossy = (ay / TILE..=by / TILE).any(|uy| {
                    (ax / TILE..=bx / TILE).any(|ux| {
                        let u = uy * cols + ux;
                        self.lossy[u] || self.carried(u)
                    })
                });
                moved.push(lossy);
            }
        }
        let mut k = 0;
        for ty in ty0..ty1 {
            for tx in tx0..tx1 {
                self.lossy[ty * cols + tx] = moved[k];
                k += 1;
            }
        }
    }

    /// Whether tile `i`, changing at `t_ms`, may go near-lossless: content that moved in this
    /// update (scrolled or dragged in, or uncovered) or changed shortly before (a slideshow, a
    /// panned picture), and only when exact coding would need the predicted coding.
    fn may_go_lossy(&self, i: usize, t_ms: u64) -> bool {
        let before = self.changes[i][HOT_CHANGES - 2];
        !self.lossless
            && (self.near_copy[i]
                || (before != u64::MAX && t_ms.saturating_sub(before) <= REFINE_AFTER_MS))
    }

    /// Whether tile `i` changes quickly and is expensive to send exactly.
    fn hot(&self, i: usize, t_ms: u64) -> bool {
        let first = self.changes[i][0];
        first != u64::MAX
            && t_ms.saturating_sub(first) <= HOT_WINDOW_MS
            && (self.costly[i] & 0x1f).count_ones() >= 3
    }

    /// Decides the video region for this update (see the module documentation): tiles leaving
    /// it are added to `refine`, tiles joining it stop being dirty. Returns whether the region
    /// (re)started, so the update must carry a picture.
    fn plan_region(&mut self, t_ms: u64, refine: &mut Vec<usize>) -> bool {
        if self.video_off || self.lossless {
            return false;
        }
        let grid = self.grid;
        let in_region = |i: usize| self.region.as_ref().is_some_and(|r| r.contains(&grid, i));
        let active =
            |i: usize| in_region(i) && t_ms.saturating_sub(self.last_change[i]) <= REFINE_AFTER_MS;
        let fresh = |i: usize| !in_region(i) && self.dirty[i] && self.hot(i, t_ms);
        let area = |b: (usize, usize, usize, usize)| (b.2 - b.0) * (b.3 - b.1);
        let dense = |(b, n): ((usize, usize, usize, usize), usize)| n * 2 >= area(b);
        let grown = bounding_box(&grid, |i| active(i) || fresh(i));
        let current = self.region.as_ref().map(|r| (r.tx0, r.ty0, r.tx1, r.ty1));
        let chosen = match grown {
            Some((b, n)) if dense((b, n)) && (current.is_some() || n >= MIN_VIDEO_TILES) => Some(b),
            _ if current.is_some() => bounding_box(&grid, active).map(|(b, _)| b),
            _ => None,
        }
        .and_then(|b| even_box(&grid, b));
        if chosen == current {
            return false;
        }
        let old = self.region.take();
        let mut started = false;
        if let Some(b) = chosen {
            let r = region_rect(&grid, b);
            match VideoEncoder::new(r.w, r.h) {
                Ok(video) => {
                    let mut region = Region {
                        tx0: b.0,
                        ty0: b.1,
                        tx1: b.2,
                        ty1: b.3,
                        stream: self.next_stream,
                        restart: true,
                        video,
                        kept: Vec::new(),
                    };
                    self.next_stream = self.next_stream.wrapping_add(1);
                    // Kept: what the viewer holds exactly and did not change, or what the old
                    // region kept; the rest goes into the pictures.
                    let tiles: Vec<usize> = region.tiles(&grid).collect();
                    region.kept = tiles
                        .iter()
                        .map(|&i| match &old {
                            Some(o) if o.contains(&grid, i) => !o.carries(&grid, i),
                            _ => !self.dirty[i] && !self.lossy[i],
                        })
                        .collect();
                    for i in tiles {
                        self.dirty[i] = false;
                    }
                    self.region = Some(region);
                    started = true;
                }
                Err(_) => self.video_off = true,
            }
        }
        if let Some(old) = old {
            let now = self.region.as_ref();
            refine.extend(
                old.tiles(&grid).filter(|&i| {
                    old.carries(&grid, i) && !now.is_some_and(|r| r.contains(&grid, i))
                }),
            );
        }
        started
    }

    /// The rectangles `(x, y, w, h)` the viewer holds lossy now (for measuring).
    pub fn lossy_rects(&self) -> Vec<(usize, usize, usize, usize)> {
        (0..self.grid.tiles())
            .filter(|&i| self.lossy[i] || self.carried(i))
            .map(|i| self.grid.rect(i))
            .collect()
    }

    /// The next update will carry the whole screen, coded without reference to what the viewer
    /// held (a new viewer, or one that lost its image).
    pub fn request_full(&mut self) {
        self.full_pending = true;
    }

    /// The whole screen again, as of the last frame given to [`Encoder::encode`], coded without
    /// reference to what the viewer held: for a viewer that may have lost updates (its link was
    /// resumed) while the screen stands still. `None` only for an empty screen.
    pub fn resend(&mut self, t_ms: u64, seq: u64) -> Option<Update> {
        self.full_pending = true;
        let frame = self.reference.clone();
        let (width, height) = (self.grid.width as u32, self.grid.height as u32);
        self.encode(&frame, width, height, t_ms, seq)
    }

    /// Whether part of the viewer's image is lossy and waits for [`Encoder::refine`].
    pub fn refine_pending(&self) -> bool {
        self.region.is_some() || self.lossy.contains(&true)
    }

    /// On a screen that has not changed since the last frame given to [`Encoder::encode`]:
    /// the update that refines to lossless what has stayed still for [`REFINE_AFTER_MS`] by
    /// `t_ms`, or `None` when nothing is due.
    pub fn refine(&mut self, t_ms: u64, seq: u64) -> Option<Update> {
        // Nothing still long enough yet: no need to go through the frame.
        let grid = self.grid;
        let due = |i: usize| t_ms.saturating_sub(self.last_change[i]) > REFINE_AFTER_MS;
        let region_due = self
            .region
            .as_ref()
            .is_some_and(|r| r.tiles(&grid).any(due));
        let stills_due = (0..grid.tiles()).any(|i| self.lossy[i] && due(i));
        if !region_due && !stills_due {
            return None;
        }
        let frame = self.reference.clone();
        let (width, height) = (self.grid.width as u32, self.grid.height as u32);
        self.encode(&frame, width, height, t_ms, seq)
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
        self.encode_changed(frame, width, height, None, t_ms, seq)
    }

    /// As [`Encoder::encode`], where the source knows what changed: `changed`, when given, are
    /// the rectangles outside which `frame` equals the frame of the previous call, and only the
    /// tiles they touch are compared with what the viewer holds.
    pub fn encode_changed(
        &mut self,
        frame: &[u8],
        width: u32,
        height: u32,
        changed: Option<&[Rect]>,
        t_ms: u64,
        seq: u64,
    ) -> Option<Update> {
        assert_eq!(
            frame.len(),
            width as usize * height as usize * BPP,
            "frame size"
        );
        if Grid::new(width, height) != self.grid {
            *self = Self {
                lossless: self.lossless,
                ..Self::new(width, height)
            };
        }
        self.encode_inner(frame, changed, t_ms)
            .map(|(ops, tile_data)| Update {
                seq,
                width,
                height,
                ops,
                tile_data,
            })
    }

    fn encode_inner(
        &mut self,
        frame: &[u8],
        changed: Option<&[Rect]>,
        t_ms: u64,
    ) -> Option<(Vec<CodecOp>, Vec<u8>)> {
        let full = std::mem::take(&mut self.full_pending);
        let grid = self.grid;
        if full {
            self.region = None;
            self.lossy.fill(false);
            self.dirty.fill(true);
        } else {
            self.dirty.fill(false);
            let marked = match changed {
                // The video region's tiles are compared whatever the rectangles say: what the
                // viewer holds there may lag the previous frame (a skipped picture).
                Some(rects) => detect::mark_changed_in(
                    &grid,
                    frame,
                    &self.reference,
                    rects,
                    self.region.iter().flat_map(|r| r.tiles(&grid)),
                    &mut self.dirty,
                ),
                None => detect::mark_changed(&grid, frame, &self.reference, &mut self.dirty),
            };
            if marked == 0 && !self.refine_pending() {
                return None;
            }
        }
        for i in 0..grid.tiles() {
            // Changed in place or moved: either way the tile's content is not still.
            if self.dirty[i] {
                self.last_change[i] = t_ms;
            }
        }
        let mut ops = Vec::new();
        self.near_copy.fill(false);
        if !full {
            self.copies(frame, &mut ops);
            // Moved content, where it came from, and one tile around: what a scroll or a drag
            // brought in or uncovered there is new content, not content changing in place.
            let mut b = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
            for m in &self.moves {
                let (tx, ty) = ((m.tile % grid.cols) as i64, (m.tile / grid.cols) as i64);
                let (sx0, sx1) = (
                    tx - (m.dx as i64).div_euclid(TILE as i64) - 1,
                    tx - (m.dx as i64).div_euclid(TILE as i64),
                );
                let (sy0, sy1) = (
                    ty - (m.dy as i64).div_euclid(TILE as i64) - 1,
                    ty - (m.dy as i64).div_euclid(TILE as i64),
                );
                b = (
                    b.0.min(tx).min(sx0),
                    b.1.min(ty).min(sy0),
                    b.2.max(tx).max(sx1),
                    b.3.max(ty).max(sy1),
                );
            }
            if !self.moves.is_empty() {
                let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
                for ty in clamp(b.1 - 1, grid.rows)..=clamp(b.3 + 1, grid.rows) {
                    for tx in clamp(b.0 - 1, grid.cols)..=clamp(b.2 + 1, grid.cols) {
                        self.near_copy[ty * grid.cols + tx] = true;
                    }
                }
            }
        }
        // What changed inside the video region and no copy made right goes to the video stream.
        let mut video_changed = false;
        if let Some(region) = &mut self.region {
            for ty in region.ty0..region.ty1 {
                for tx in region.tx0..region.tx1 {
                    let i = ty * grid.cols + tx;
                    if std::mem::take(&mut self.dirty[i]) {
                        video_changed = true;
                        let k = region.local(&grid, i);
                        region.kept[k] = false;
                        push_change(&mut self.changes[i], t_ms);
                    }
                }
            }
        }
        for i in 0..grid.tiles() {
            if self.dirty[i] && !self.near_copy[i] {
                push_change(&mut self.changes[i], t_ms);
            }
        }
        // The video region: start or grow it over hot tiles, shrink or end it over still ones.
        let mut refine = Vec::new();
        if !full {
            video_changed |= self.plan_region(t_ms, &mut refine);
        }
        // Near-lossless tiles still long enough are refined, a bounded number per update.
        self.refining.fill(false);
        for &i in &refine {
            self.refining[i] = true;
        }
        let mut budget = MAX_REFINE_TILES;
        for i in 0..grid.tiles() {
            if budget == 0 {
                break;
            }
            if (self.lossy[i] || self.carried(i))
                && !self.dirty[i]
                && !self.refining[i]
                && t_ms.saturating_sub(self.last_change[i]) > REFINE_AFTER_MS
            {
                self.refining[i] = true;
                budget -= 1;
            }
        }
        self.payload.clear();
        let stride = grid.stride();
        for i in 0..grid.tiles() {
            let refining = self.refining[i];
            if !self.dirty[i] && !refining {
                continue;
            }
            let (x, y, w, h) = grid.rect(i);
            let r = Rect { x, y, w, h };
            // What the viewer holds of a lossy tile is not known exactly: code it on its own.
            let reference = (!full && !refining && !self.lossy[i]).then_some(&self.reference[..]);
            let step = (!full && !refining && self.may_go_lossy(i, t_ms)).then_some(LOSSY_STEP);
            let start = self.payload.len();
            let coding = self
                .tiles
                .encode(frame, reference, stride, r, step, &mut self.payload);
            let len = self.payload.len() - start;
            self.lossy[i] = coding == TileCoding::NearLossless;
            if let Some(region) = self.region.as_mut().filter(|r| r.contains(&grid, i)) {
                let k = region.local(&grid, i);
                region.kept[k] = true;
            }
            // Many colours (more than a palette holds) is what natural images have and text,
            // widgets and flat content do not.
            let many_colours = matches!(
                coding,
                TileCoding::Predicted | TileCoding::Temporal | TileCoding::NearLossless
            );
            self.costly[i] = (self.costly[i] << 1) | u8::from(many_colours);
            ops.push(CodecOp::Tile(CodecTile {
                x: x as u32,
                y: y as u32,
                width: w as u32,
                height: h as u32,
                coding,
                len: len as u32,
            }));
            for row in y..y + h {
                let o = row * stride + x * BPP;
                self.reference[o..o + w * BPP].copy_from_slice(&frame[o..o + w * BPP]);
            }
        }
        if let Some(region) = &mut self.region {
            if video_changed || region.restart {
                let r = region.rect(&grid);
                let mut data = Vec::new();
                match region.video.encode(frame, stride, r, &mut data) {
                    // No picture this time (the encoder skipped the frame): the change stays
                    // pending, since the reference is left as it was.
                    Ok(()) if data.is_empty() => {}
                    Ok(()) => {
                        ops.push(CodecOp::Video {
                            stream: region.stream,
                            restart: std::mem::take(&mut region.restart),
                            x: r.x as u32,
                            y: r.y as u32,
                            width: r.w as u32,
                            height: r.h as u32,
                            keep: region.keep_mask(),
                            data,
                        });
                        // The kept tiles already match the frame (they did not change).
                        for i in region.tiles(&grid).filter(|&i| region.carries(&grid, i)) {
                            let (x, y, w, h) = grid.rect(i);
                            for row in y..y + h {
                                let o = row * stride + x * BPP;
                                self.reference[o..o + w * BPP]
                                    .copy_from_slice(&frame[o..o + w * BPP]);
                            }
                        }
                    }
                    Err(_) => {
                        // The video encoder failed: this viewer gets exact pixels only, from a
                        // full update on.
                        self.video_off = true;
                        self.region = None;
                        self.full_pending = true;
                    }
                }
            }
        }
        if ops.is_empty() {
            return None;
        }
        let tile_data = if self.payload.is_empty() {
            Vec::new()
        } else {
            self.compressor
                .compress(&self.payload)
                .expect("zstd compresses into a growing buffer")
        };
        Some((ops, tile_data))
    }
}

/// Records a change at `t_ms` in a tile's recent changes (oldest first).
fn push_change(changes: &mut [u64; HOT_CHANGES], t_ms: u64) {
    changes.rotate_left(1);
    changes[HOT_CHANGES - 1] = t_ms;
}
