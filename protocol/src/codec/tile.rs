//! Lossless coding of one rectangle (normally a 64x64 tile) of BGRX pixels.
//!
//! The coder picks, per tile, the cheapest of:
//!
//! - [`TileCoding::Solid`]: 4 bytes, the pixel that fills the tile;
//! - [`TileCoding::Palette`]: `n - 1` (1 byte), `n` pixels of 4 bytes, then the indices in row
//!   order as runs: a byte `i < 0x80` is one pixel of colour `i`; a byte `0x80 | i` is followed
//!   by a LEB128 varint `k` and stands for `k + 2` pixels of colour `i`;
//! - [`TileCoding::PaletteDelta`]: the same, with index 0 meaning "keep the pixel the
//!   framebuffer holds" (a few changed characters in a line of text cost a few bytes);
//! - [`TileCoding::Predicted`]: four planes of `w * h` bytes (B-G, G, R-G, X), each the residual
//!   of the median-edge (LOCO-I) predictor within the tile; for many-coloured content;
//! - [`TileCoding::Temporal`]: four planes of the byte-wise difference from the pixel the
//!   framebuffer holds; for many-coloured content of which only part changed;
//! - [`TileCoding::NearLossless`] (lossy, only when the encoder asks for it): a byte `step`
//!   (odd), then three planes (B, G, R) of `w * h` bytes: each channel's residual from the
//!   median-edge predictor over the pixels as decoded, divided by `step` with rounding and
//!   zigzag-coded (0, -1, 1, -2, …), so that no channel is off by more than `step / 2`; the
//!   fourth byte of each pixel is 0. For natural images while they move: a photograph
//!   scrolling in costs a fraction of its exact bytes, and is sent exactly once it stops.
//!
//! Payloads are not compressed here: the encoder compresses all the payloads of an update as one
//! zstd frame, so repeated glyphs in different tiles share their cost. The choice between
//! codings is by counting (colours, unchanged pixels), not by trying each: its cost is bounded by
//! two passes over the tile.

use super::{CodecError, BPP};
use crate::peer::TileCoding;

/// Most colours of a palette tile (indices use 7 bits).
pub const MAX_PALETTE: usize = 127;

/// The geometry of a tile inside a BGRX image.
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    fn offset(&self, stride: usize, row: usize) -> usize {
        (self.y + row) * stride + self.x * BPP
    }
}

#[inline]
fn px(buf: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(buf[o..o + 4].try_into().expect("4 bytes"))
}

/// A small colour-to-index table reset per tile in O(1) by a generation counter.
struct ColorTable {
    keys: [u32; 512],
    vals: [u8; 512],
    gens: [u32; 512],
    gen: u32,
    colors: Vec<u32>,
}

impl ColorTable {
    fn new() -> Self {
        Self {
            keys: [0; 512],
            vals: [0; 512],
            gens: [0; 512],
            gen: 1,
            colors: Vec::with_capacity(MAX_PALETTE + 1),
        }
    }

    fn reset(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.gens = [0; 512];
            self.gen = 1;
        }
        self.colors.clear();
    }

    /// The index of `c`, adding it if new; `None` once more than `max` colours were seen.
    fn index(&mut self, c: u32, max: usize) -> Option<u8> {
        let mut slot = (c.wrapping_mul(0x9E37_79B1) >> 23) as usize;
        loop {
            if self.gens[slot] != self.gen {
                if self.colors.len() >= max {
                    return None;
                }
                self.gens[slot] = self.gen;
                self.keys[slot] = c;
                let i = self.colors.len() as u8;
                self.vals[slot] = i;
                self.colors.push(c);
                return Some(i);
            }
            if self.keys[slot] == c {
                return Some(self.vals[slot]);
            }
            slot = (slot + 1) & 511;
        }
    }
}

/// Codes tiles; holds scratch space so that coding allocates nothing once warm.
pub struct TileEncoder {
    table: ColorTable,
    indices: Vec<u8>,
    /// A near-lossless tile's channels as the viewer decodes them (predictions use those).
    decoded: Vec<u8>,
}

impl Default for TileEncoder {
    fn default() -> Self {
        Self::new()
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn push_runs(out: &mut Vec<u8>, indices: &[u8]) {
    let mut i = 0;
    while i < indices.len() {
        let v = indices[i];
        let mut j = i + 1;
        while j < indices.len() && indices[j] == v {
            j += 1;
        }
        let run = j - i;
        if run == 1 {
            out.push(v);
        } else {
            out.push(v | 0x80);
            push_varint(out, run - 2);
        }
        i = j;
    }
}

#[inline]
fn med(a: u8, b: u8, c: u8) -> u8 {
    // a: left, b: up, c: up-left.
    let (mx, mn) = if a > b { (a, b) } else { (b, a) };
    if c >= mx {
        mn
    } else if c <= mn {
        mx
    } else {
        a.wrapping_add(b).wrapping_sub(c)
    }
}

/// The median-edge prediction of sample `(row, col)` of a plane `w` wide from the samples
/// before it (left, up, up-left; an edge repeats its neighbour, the first sample is 128).
#[inline]
fn predict(plane: &[u8], w: usize, row: usize, col: usize) -> i32 {
    let i = row * w + col;
    match (row, col) {
        (0, 0) => 128,
        (0, _) => i32::from(plane[i - 1]),
        (_, 0) => i32::from(plane[i - w]),
        _ => i32::from(med(plane[i - 1], plane[i - w], plane[i - w - 1])),
    }
}

/// 0, -1, 1, -2, 2… as 0, 1, 2, 3, 4… (a quantised residual fits: at most 255 / 3 either way).
#[inline]
fn zigzag(q: i32) -> u8 {
    ((q << 1) ^ (q >> 31)) as u8
}

#[inline]
fn unzigzag(z: u8) -> i32 {
    i32::from(z >> 1) ^ -i32::from(z & 1)
}

/// Byte `ch` of a pixel after colour decorrelation: B-G, G, R-G, X.
#[inline]
fn decorrelate(p: u32, ch: usize) -> u8 {
    let b = p as u8;
    let g = (p >> 8) as u8;
    let r = (p >> 16) as u8;
    match ch {
        0 => b.wrapping_sub(g),
        1 => g,
        2 => r.wrapping_sub(g),
        _ => (p >> 24) as u8,
    }
}

impl TileEncoder {
    pub fn new() -> Self {
        Self {
            table: ColorTable::new(),
            indices: Vec::with_capacity(64 * 64),
            decoded: Vec::with_capacity(3 * 64 * 64),
        }
    }

    /// Appends the payload of `frame`'s pixels in `r` to `out` and returns its coding.
    /// `reference` is the image the viewer holds (same stride), when its pixels in `r` are known
    /// exactly; it enables the delta codings. `lossy_step`: a tile that only the predicted coding
    /// would carry exactly, and that looks like a natural image (fewer than a quarter of its
    /// pixels equal to their left neighbour: not text, however anti-aliased), is coded
    /// [`TileCoding::NearLossless`] with this step instead.
    pub fn encode(
        &mut self,
        frame: &[u8],
        reference: Option<&[u8]>,
        stride: usize,
        r: Rect,
        lossy_step: Option<u8>,
        out: &mut Vec<u8>,
    ) -> TileCoding {
        let n = r.w * r.h;
        // Pass 1: colours (absolute, and of changed pixels only) and unchanged pixels.
        self.table.reset();
        self.indices.clear();
        let mut palette_ok = true;
        let mut unchanged = 0usize;
        let mut last = px(frame, r.offset(stride, 0)) ^ 1;
        let mut last_i = 0u8;
        // Pixels equal to their left neighbour: most of a tile of text or widgets (the
        // background between strokes, however many shades anti-aliasing adds), few of a
        // photograph's.
        let mut repeats = 0usize;
        for row in 0..r.h {
            let o = r.offset(stride, row);
            let mut left = px(frame, o) ^ 1;
            for col in 0..r.w {
                let p = px(frame, o + col * BPP);
                repeats += usize::from(p == left);
                left = p;
                if let Some(reference) = reference {
                    if px(reference, o + col * BPP) == p {
                        unchanged += 1;
                    }
                }
                if palette_ok {
                    if p != last {
                        match self.table.index(p, MAX_PALETTE) {
                            Some(i) => {
                                last = p;
                                last_i = i;
                            }
                            None => palette_ok = false,
                        }
                    }
                    self.indices.push(last_i);
                }
            }
        }
        if palette_ok && self.table.colors.len() == 1 {
            out.extend_from_slice(&self.table.colors[0].to_le_bytes());
            return TileCoding::Solid;
        }
        let reference_useful = reference.is_some() && unchanged * 8 >= n;
        if let (true, Some(reference)) = (reference_useful, reference) {
            // Palette of the changed pixels, index 0 for unchanged ones.
            if let Some(coding) = self.palette_delta(frame, reference, stride, r, out) {
                return coding;
            }
            self.planes(frame, Some(reference), stride, r, out);
            return TileCoding::Temporal;
        }
        if palette_ok {
            out.push((self.table.colors.len() - 1) as u8);
            for c in &self.table.colors {
                out.extend_from_slice(&c.to_le_bytes());
            }
            push_runs(out, &self.indices);
            return TileCoding::Palette;
        }
        if let Some(step) = lossy_step.filter(|_| repeats * 4 < n) {
            self.near_lossless(frame, stride, r, step, out);
            return TileCoding::NearLossless;
        }
        self.planes(frame, None, stride, r, out);
        TileCoding::Predicted
    }

    /// The [`TileCoding::NearLossless`] payload of `frame`'s pixels in `r`.
    fn near_lossless(&mut self, frame: &[u8], stride: usize, r: Rect, step: u8, out: &mut Vec<u8>) {
        let step = step | 1;
        let (w, n) = (r.w, r.w * r.h);
        self.decoded.clear();
        self.decoded.resize(3 * n, 0);
        out.push(step);
        let start = out.len();
        out.resize(start + 3 * n, 0);
        let planes = &mut out[start..];
        let half = i32::from(step / 2);
        let step = i32::from(step);
        for ch in 0..3 {
            let decoded = &mut self.decoded[ch * n..(ch + 1) * n];
            let plane = &mut planes[ch * n..(ch + 1) * n];
            for row in 0..r.h {
                let o = r.offset(stride, row);
                for col in 0..w {
                    let i = row * w + col;
                    let pred = predict(decoded, w, row, col);
                    let x = i32::from(frame[o + col * BPP + ch]);
                    let e = x - pred;
                    let q = if e >= 0 {
                        (e + half) / step
                    } else {
                        -((half - e) / step)
                    };
                    decoded[i] = (pred + q * step).clamp(0, 255) as u8;
                    plane[i] = zigzag(q);
                }
            }
        }
    }

    fn palette_delta(
        &mut self,
        frame: &[u8],
        reference: &[u8],
        stride: usize,
        r: Rect,
        out: &mut Vec<u8>,
    ) -> Option<TileCoding> {
        self.table.reset();
        self.indices.clear();
        // Index 0 is "keep": a placeholder colour the hash table never returns.
        self.table.colors.push(0);
        for row in 0..r.h {
            let o = r.offset(stride, row);
            for col in 0..r.w {
                let p = px(frame, o + col * BPP);
                if px(reference, o + col * BPP) == p {
                    self.indices.push(0);
                } else {
                    let i = self.table.index(p, MAX_PALETTE)?;
                    self.indices.push(i);
                }
            }
        }
        out.push((self.table.colors.len() - 1) as u8);
        for c in &self.table.colors {
            out.extend_from_slice(&c.to_le_bytes());
        }
        push_runs(out, &self.indices);
        Some(TileCoding::PaletteDelta)
    }

    /// Predicted (no reference) or temporal (with reference) planes.
    fn planes(
        &mut self,
        frame: &[u8],
        reference: Option<&[u8]>,
        stride: usize,
        r: Rect,
        out: &mut Vec<u8>,
    ) {
        let n = r.w * r.h;
        let start = out.len();
        out.resize(start + n * BPP, 0);
        let (_, planes) = out.split_at_mut(start);
        let mut i = 0;
        for row in 0..r.h {
            let o = r.offset(stride, row);
            for col in 0..r.w {
                let p = px(frame, o + col * BPP);
                match reference {
                    Some(reference) => {
                        let q = px(reference, o + col * BPP);
                        for ch in 0..BPP {
                            planes[ch * n + i] =
                                decorrelate(p, ch).wrapping_sub(decorrelate(q, ch));
                        }
                    }
                    None => {
                        let left = (col > 0).then(|| px(frame, o + (col - 1) * BPP));
                        let up = (row > 0).then(|| px(frame, o - stride + col * BPP));
                        let up_left =
                            (row > 0 && col > 0).then(|| px(frame, o - stride + (col - 1) * BPP));
                        for ch in 0..BPP {
                            let a = left.map_or(0, |v| decorrelate(v, ch));
                            let b = up.map_or(a, |v| decorrelate(v, ch));
                            let a = if col == 0 { b } else { a };
                            let c = up_left.map_or(b, |v| decorrelate(v, ch));
                            planes[ch * n + i] = decorrelate(p, ch).wrapping_sub(med(a, b, c));
                        }
                    }
                }
                i += 1;
            }
        }
    }
}

fn read_varint(data: &[u8], pos: &mut usize) -> Result<usize, CodecError> {
    let mut v = 0usize;
    for shift in (0..28).step_by(7) {
        let b = *data
            .get(*pos)
            .ok_or(CodecError::BadTile("run past the payload"))?;
        *pos += 1;
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError::BadTile("run length too long"))
}

/// The pixel from decorrelated bytes.
#[inline]
fn correlate(d: [u8; 4]) -> [u8; 4] {
    let g = d[1];
    [d[0].wrapping_add(g), g, d[2].wrapping_add(g), d[3]]
}

/// Writes the tile coded as `coding` in `payload` into `fb` (a BGRX image of `stride` bytes a
/// row) at `r`, which the caller has checked lies inside it. A payload that does not describe
/// exactly `r.w * r.h` pixels is an error; pixels before the fault may have been written.
pub fn decode(
    coding: TileCoding,
    payload: &[u8],
    fb: &mut [u8],
    stride: usize,
    r: Rect,
) -> Result<(), CodecError> {
    let n = r.w * r.h;
    match coding {
        TileCoding::Solid => {
            let p: [u8; 4] = payload
                .try_into()
                .map_err(|_| CodecError::BadTile("solid tile is not 4 bytes"))?;
            for row in 0..r.h {
                let o = r.offset(stride, row);
                for d in fb[o..o + r.w * BPP].chunks_exact_mut(BPP) {
                    d.copy_from_slice(&p);
                }
            }
            Ok(())
        }
        TileCoding::Palette | TileCoding::PaletteDelta => {
            let delta = coding == TileCoding::PaletteDelta;
            let count = *payload
                .first()
                .ok_or(CodecError::BadTile("empty palette tile"))? as usize
                + 1;
            if count > MAX_PALETTE {
                return Err(CodecError::BadTile("palette too large"));
            }
            let colors_end = 1 + count * BPP;
            let colors = payload
                .get(1..colors_end)
                .ok_or(CodecError::BadTile("palette past the payload"))?;
            let mut pos = colors_end;
            let mut i = 0usize;
            while i < n {
                let b = *payload
                    .get(pos)
                    .ok_or(CodecError::BadTile("indices end early"))?;
                pos += 1;
                let index = (b & 0x7f) as usize;
                let run = if b & 0x80 != 0 {
                    read_varint(payload, &mut pos)?
                        .checked_add(2)
                        .ok_or(CodecError::BadTile("run too long"))?
                } else {
                    1
                };
                if index >= count {
                    return Err(CodecError::BadTile("palette index out of range"));
                }
                if run > n - i {
                    return Err(CodecError::BadTile("run past the tile"));
                }
                let keep = delta && index == 0;
                let c = &colors[index * BPP..index * BPP + BPP];
                let mut left = run;
                while left > 0 {
                    let (row, col) = (i / r.w, i % r.w);
                    let span = left.min(r.w - col);
                    if !keep {
                        let o = r.offset(stride, row) + col * BPP;
                        for d in fb[o..o + span * BPP].chunks_exact_mut(BPP) {
                            d.copy_from_slice(c);
                        }
                    }
                    i += span;
                    left -= span;
                }
            }
            if pos != payload.len() {
                return Err(CodecError::BadTile("bytes after the indices"));
            }
            Ok(())
        }
        TileCoding::NearLossless => {
            let (&step, planes) = payload
                .split_first()
                .ok_or(CodecError::BadTile("empty near-lossless tile"))?;
            if step % 2 == 0 || step < 3 {
                return Err(CodecError::BadTile(
                    "near-lossless step not an odd number from 3",
                ));
            }
            if planes.len() != 3 * n {
                return Err(CodecError::BadTile(
                    "near-lossless tile of the wrong length",
                ));
            }
            let step = i32::from(step);
            // Each channel is predicted from its own decoded samples, read back from the
            // framebuffer as they are written.
            for ch in 0..3 {
                let plane = &planes[ch * n..(ch + 1) * n];
                for row in 0..r.h {
                    let o = r.offset(stride, row);
                    for col in 0..r.w {
                        let at = o + col * BPP + ch;
                        let pred = match (row, col) {
                            (0, 0) => 128,
                            (0, _) => i32::from(fb[at - BPP]),
                            (_, 0) => i32::from(fb[at - stride]),
                            _ => {
                                i32::from(med(fb[at - BPP], fb[at - stride], fb[at - stride - BPP]))
                            }
                        };
                        let q = unzigzag(plane[row * r.w + col]);
                        fb[at] = (pred + q * step).clamp(0, 255) as u8;
                    }
                }
            }
            for row in 0..r.h {
                let o = r.offset(stride, row);
                for col in 0..r.w {
                    fb[o + col * BPP + 3] = 0;
                }
            }
            Ok(())
        }
        TileCoding::Predicted | TileCoding::Temporal => {
            if payload.len() != n * BPP {
                return Err(CodecError::BadTile("plane tile of the wrong length"));
            }
            let mut i = 0;
            for row in 0..r.h {
                let o = r.offset(stride, row);
                for col in 0..r.w {
                    let at = o + col * BPP;
                    let mut d = [0u8; 4];
                    if coding == TileCoding::Temporal {
                        let q = px(fb, at);
                        for (ch, v) in d.iter_mut().enumerate() {
                            *v = decorrelate(q, ch).wrapping_add(payload[ch * n + i]);
                        }
                    } else {
                        let left = (col > 0).then(|| px(fb, at - BPP));
                        let up = (row > 0).then(|| px(fb, at - stride));
                        let up_left = (row > 0 && col > 0).then(|| px(fb, at - stride - BPP));
                        for (ch, v) in d.iter_mut().enumerate() {
                            let a = left.map_or(0, |p| decorrelate(p, ch));
                            let b = up.map_or(a, |p| decorrelate(p, ch));
                            let a = if col == 0 { b } else { a };
                            let c = up_left.map_or(b, |p| decorrelate(p, ch));
                            *v = med(a, b, c).wrapping_add(payload[ch * n + i]);
                        }
                    }
                    fb[at..at + BPP].copy_from_slice(&correlate(d));
                    i += 1;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 4]) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * BPP);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&f(x, y));
            }
        }
        v
    }

    fn round_trip(frame: &[u8], reference: Option<&[u8]>, w: usize, h: usize) -> TileCoding {
        let r = Rect {
            x: 3,
            y: 2,
            w: w - 5,
            h: h - 4,
        };
        let mut enc = TileEncoder::new();
        let mut out = Vec::new();
        let coding = enc.encode(frame, reference, w * BPP, r, None, &mut out);
        let mut fb = reference.map_or_else(|| vec![7; frame.len()], <[u8]>::to_vec);
        decode(coding, &out, &mut fb, w * BPP, r).unwrap();
        for y in r.y..r.y + r.h {
            let o = y * w * BPP + r.x * BPP;
            assert_eq!(fb[o..o + r.w * BPP], frame[o..o + r.w * BPP], "{coding:?}");
        }
        coding
    }

    #[test]
    fn every_coding_round_trips() {
        let (w, h) = (40, 30);
        let solid = image(w, h, |_, _| [1, 2, 3, 0]);
        let text = image(
            w,
            h,
            |x, y| if (x * y) % 7 == 0 { [0; 4] } else { [255; 4] },
        );
        let photo = image(w, h, |x, y| {
            [(x * 7) as u8, (y * 5) as u8, (x * y) as u8, 9]
        });
        let mut typed = text.clone();
        typed[(10 * w + 10) * BPP] = 42;
        let mut touched = photo.clone();
        for b in touched.iter_mut().step_by(2 * BPP) {
            *b ^= 1;
        }
        assert_eq!(round_trip(&solid, None, w, h), TileCoding::Solid);
        assert_eq!(round_trip(&text, None, w, h), TileCoding::Palette);
        assert_eq!(round_trip(&photo, None, w, h), TileCoding::Predicted);
        assert_eq!(
            round_trip(&typed, Some(&text), w, h),
            TileCoding::PaletteDelta
        );
        assert_eq!(
            round_trip(&photo, Some(&touched), w, h),
            TileCoding::Temporal
        );
    }

    #[test]
    fn near_lossless_tiles_stay_within_half_a_step() {
        let (w, h) = (64, 48);
        // Grain that differs from pixel to pixel, from a hash of the position.
        let noise =
            |x: usize, y: usize| (((x * 7919 + y * 104_729) * 2_654_435_761) >> 13) as u8 % 9;
        let photo = image(w, h, |x, y| {
            let n = noise(x, y);
            [
                (x * 3 + n as usize) as u8,
                (y * 4 + 250) as u8,
                ((x + y) * 2) as u8 ^ n,
                0,
            ]
        });
        let r = Rect { x: 0, y: 0, w, h };
        let mut enc = TileEncoder::new();
        let (mut exact, mut lossy) = (Vec::new(), Vec::new());
        assert_eq!(
            enc.encode(&photo, None, w * BPP, r, None, &mut exact),
            TileCoding::Predicted
        );
        assert_eq!(
            enc.encode(&photo, None, w * BPP, r, Some(7), &mut lossy),
            TileCoding::NearLossless
        );
        let mut fb = vec![99; photo.len()];
        decode(TileCoding::NearLossless, &lossy, &mut fb, w * BPP, r).unwrap();
        let worst = fb
            .chunks_exact(BPP)
            .zip(photo.chunks_exact(BPP))
            .flat_map(|(a, b)| (0..3).map(move |c| a[c].abs_diff(b[c])))
            .max();
        assert_eq!(worst, Some(3));
        let packed = |p: &[u8]| zstd::bulk::compress(p, 1).unwrap().len();
        let (lossy, exact) = (packed(&lossy), packed(&exact));
        assert!(lossy < exact, "{lossy} bytes near-lossless, {exact} exact");
        // Anti-aliased text has more shades than a palette holds, but mostly background: it
        // stays exact even where near-lossless is allowed.
        let text = image(w, h, |x, y| {
            if y % 12 < 8 && x % 5 == 0 {
                let shade = ((x * 31 + y * 17) % 200) as u8;
                [shade, shade / 2, 255 - shade, 0]
            } else {
                [250, 250, 250, 0]
            }
        });
        let mut out = Vec::new();
        assert_eq!(
            enc.encode(&text, None, w * BPP, r, Some(7), &mut out),
            TileCoding::Predicted
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut fb = vec![0u8; 16 * 16 * BPP];
        let r = Rect {
            x: 0,
            y: 0,
            w: 4,
            h: 4,
        };
        let bad = |c, p: &[u8], fb: &mut Vec<u8>| decode(c, p, fb, 16 * BPP, r).is_err();
        assert!(bad(TileCoding::Solid, &[1, 2, 3], &mut fb));
        assert!(bad(TileCoding::Palette, &[], &mut fb));
        assert!(bad(
            TileCoding::Palette,
            &[0, 1, 2, 3, 4, 0x80, 0xff, 0xff],
            &mut fb
        ));
        assert!(bad(TileCoding::Palette, &[0, 1, 2, 3, 4, 1], &mut fb));
        assert!(bad(
            TileCoding::Palette,
            &[0, 1, 2, 3, 4, 0x80, 14, 0],
            &mut fb
        ));
        assert!(!bad(
            TileCoding::Palette,
            &[0, 1, 2, 3, 4, 0x80, 14],
            &mut fb
        ));
        assert!(bad(TileCoding::Predicted, &[0; 63], &mut fb));
        assert!(bad(TileCoding::NearLossless, &[], &mut fb));
        assert!(bad(TileCoding::NearLossless, &[4; 49], &mut fb));
        assert!(bad(TileCoding::NearLossless, &[7; 48], &mut fb));
        assert!(!bad(TileCoding::NearLossless, &[7; 49], &mut fb));
    }
}
