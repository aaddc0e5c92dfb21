//! The tile codec on structured input, two ways at once:
//!
//! - updates built from arbitrary tiles (right and wrong sizes, good and garbage zstd) are applied
//!   to a framebuffer and to a naive model: an update the model says is malformed must be refused
//!   with that error and leave the framebuffer untouched; one that applies must give the model's
//!   pixels;
//! - frames built from arbitrary edits are fed to a `TileEncoder` (not every frame: skipped ones
//!   merge into the next update; sizes change) and its updates applied to a second framebuffer,
//!   which must then hold the encoded frame bit for bit.
//!
//! Dimensions stay below 256 so that every run is cheap; huge screens are `peer_message`'s job.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use protocol::peer::{ScreenUpdate, Tile, TileEncoding};
use protocol::tiles::{ApplyError, Framebuffer, TileEncoder, BPP, MAX_EDGE};

#[derive(Arbitrary, Debug)]
struct Input {
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// An update of arbitrary tiles for the model-checked framebuffer.
    Update {
        width: u8,
        height: u8,
        tiles: Vec<ArbTile>,
    },
    /// The screen the encoder sees next: resized to `width` x `height` (plus one) if that
    /// differs, then edited; encoded only if `encode`.
    Frame {
        width: u8,
        height: u8,
        edits: Vec<Edit>,
        encode: bool,
        request_full: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct ArbTile {
    x: u8,
    y: u8,
    width: u8,
    height: u8,
    data: TileData,
}

#[derive(Arbitrary, Debug)]
enum TileData {
    /// Raw with exactly the right number of pseudo-random bytes.
    Raw(u64),
    /// Raw with whatever bytes came.
    RawBytes(Vec<u8>),
    Solid([u8; 4]),
    SolidBytes(Vec<u8>),
    /// zstd of the right number of pseudo-random bytes, give or take `delta` bytes.
    Zstd {
        seed: u64,
        delta: i8,
        solid: bool,
    },
    /// Bytes claimed to be zstd.
    ZstdBytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Fill {
        x: u8,
        y: u8,
        w: u8,
        h: u8,
        px: [u8; 4],
    },
    Noise {
        x: u8,
        y: u8,
        w: u8,
        h: u8,
        seed: u64,
    },
    Pixel {
        x: u8,
        y: u8,
        px: [u8; 4],
    },
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            // splitmix64
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn build_tile(t: &ArbTile) -> Tile {
    let raw_len = t.width as usize * t.height as usize * BPP;
    let (encoding, data) = match &t.data {
        TileData::Raw(seed) => (TileEncoding::Raw, noise(*seed, raw_len)),
        TileData::RawBytes(b) => (TileEncoding::Raw, b.clone()),
        TileData::Solid(px) => (TileEncoding::Solid, px.to_vec()),
        TileData::SolidBytes(b) => (TileEncoding::Solid, b.clone()),
        TileData::Zstd { seed, delta, solid } => {
            let len = raw_len.saturating_add_signed(*delta as isize);
            let raw = if *solid {
                vec![*seed as u8; len]
            } else {
                noise(*seed, len)
            };
            (TileEncoding::Zstd, zstd::bulk::compress(&raw, 1).unwrap())
        }
        TileData::ZstdBytes(b) => (TileEncoding::Zstd, b.clone()),
    };
    Tile {
        x: t.x as u32,
        y: t.y as u32,
        width: t.width as u32,
        height: t.height as u32,
        encoding,
        data,
    }
}

/// The checks `Framebuffer::apply` promises to make before writing anything, in its order.
fn precheck(u: &ScreenUpdate) -> Result<(), ApplyError> {
    let (width, height) = (u.width, u.height);
    if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
        return Err(ApplyError::BadScreenSize { width, height });
    }
    for (index, t) in u.tiles.iter().enumerate() {
        let inside = t.width > 0
            && t.height > 0
            && t.x as u64 + t.width as u64 <= width as u64
            && t.y as u64 + t.height as u64 <= height as u64;
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
        let expected = match t.encoding {
            TileEncoding::Raw => t.width as usize * t.height as usize * BPP,
            TileEncoding::Solid => BPP,
            TileEncoding::Zstd => continue,
        };
        if t.data.len() != expected {
            return Err(ApplyError::BadTileLength {
                index,
                got: t.data.len(),
                expected,
            });
        }
    }
    Ok(())
}

/// The pixels a tile stands for, the naive way; `None` if its zstd is not exactly one tile.
fn tile_pixels(t: &Tile) -> Option<Vec<u8>> {
    let raw_len = t.width as usize * t.height as usize * BPP;
    match t.encoding {
        TileEncoding::Raw => Some(t.data.clone()),
        TileEncoding::Solid => Some(t.data.repeat(t.width as usize * t.height as usize)),
        TileEncoding::Zstd => zstd::bulk::decompress(&t.data, raw_len)
            .ok()
            .filter(|p| p.len() == raw_len),
    }
}

#[derive(Default)]
struct Model {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn check_update(fb: &mut Framebuffer, model: &mut Model, u: &ScreenUpdate) {
    let before = (fb.width(), fb.height(), fb.pixels().to_vec());
    let expected = precheck(u);
    let got = fb.apply(u);
    match (expected, got) {
        (Err(e), got) => {
            assert_eq!(got, Err(e));
            let after = (fb.width(), fb.height(), fb.pixels().to_vec());
            assert!(before == after, "a refused update changed the framebuffer");
        }
        (Ok(()), Ok(())) => {
            if (model.width, model.height) != (u.width, u.height) {
                model.width = u.width;
                model.height = u.height;
                model.pixels = vec![0; u.width as usize * u.height as usize * BPP];
            }
            let stride = u.width as usize * BPP;
            for t in &u.tiles {
                let px = tile_pixels(t).expect("an applied tile decodes to one tile");
                let row = t.width as usize * BPP;
                for (r, chunk) in px.chunks_exact(row).enumerate() {
                    let o = (t.y as usize + r) * stride + t.x as usize * BPP;
                    model.pixels[o..o + row].copy_from_slice(chunk);
                }
            }
            assert_eq!(fb.width(), model.width);
            assert_eq!(fb.height(), model.height);
            assert!(
                fb.pixels() == model.pixels,
                "framebuffer differs from the model"
            );
        }
        (Ok(()), Err(ApplyError::BadCompression { index, .. }))
        | (Ok(()), Err(ApplyError::BadTileLength { index, .. })) => {
            let t = &u.tiles[index];
            assert_eq!(
                t.encoding,
                TileEncoding::Zstd,
                "late error on a checked tile"
            );
            assert!(
                tile_pixels(t).is_none(),
                "tile {index} was refused but decodes"
            );
            // Part of the update may have been written: start both sides over.
            *fb = Framebuffer::new();
            *model = Model::default();
        }
        (Ok(()), Err(e)) => panic!("update passed the checks but failed with {e:?}"),
    }
}

fn rect(x: u8, y: u8, w: u8, h: u8, width: usize, height: usize) -> (usize, usize, usize, usize) {
    let x = x as usize % width;
    let y = y as usize % height;
    let w = (w as usize).min(width - x);
    let h = (h as usize).min(height - y);
    (x, y, w, h)
}

fn edit(frame: &mut [u8], width: usize, height: usize, e: &Edit) {
    let (x, y, w, h, src) = match e {
        Edit::Fill { x, y, w, h, px } => {
            let r = rect(*x, *y, *w, *h, width, height);
            (r.0, r.1, r.2, r.3, px.repeat(r.2 * r.3))
        }
        Edit::Noise { x, y, w, h, seed } => {
            let r = rect(*x, *y, *w, *h, width, height);
            (r.0, r.1, r.2, r.3, noise(*seed, r.2 * r.3 * BPP))
        }
        Edit::Pixel { x, y, px } => {
            let r = rect(*x, *y, 1, 1, width, height);
            (r.0, r.1, r.2, r.3, px.to_vec())
        }
    };
    if w == 0 {
        return;
    }
    for (row, chunk) in (y..y + h).zip(src.chunks_exact(w * BPP)) {
        let o = (row * width + x) * BPP;
        frame[o..o + w * BPP].copy_from_slice(chunk);
    }
}

fuzz_target!(|input: Input| {
    let mut fb = Framebuffer::new();
    let mut model = Model::default();

    let mut enc: Option<TileEncoder> = None;
    let mut viewer = Framebuffer::new();
    let (mut width, mut height) = (0usize, 0usize);
    let mut frame: Vec<u8> = Vec::new();
    let mut seq = 0u64;

    for step in &input.steps {
        match step {
            Step::Update {
                width,
                height,
                tiles,
            } => {
                let u = ScreenUpdate {
                    seq: 0,
                    width: *width as u32,
                    height: *height as u32,
                    tiles: tiles.iter().map(build_tile).collect(),
                };
                check_update(&mut fb, &mut model, &u);
            }
            Step::Frame {
                width: w,
                height: h,
                edits,
                encode,
                request_full,
            } => {
                let (w, h) = (*w as usize + 1, *h as usize + 1);
                if (w, h) != (width, height) {
                    (width, height) = (w, h);
                    frame = vec![0; w * h * BPP];
                }
                for e in edits {
                    edit(&mut frame, width, height, e);
                }
                if !*encode {
                    continue;
                }
                let enc = enc.get_or_insert_with(|| TileEncoder::new(w as u32, h as u32));
                if *request_full {
                    enc.request_full();
                }
                seq += 1;
                match enc.encode(&frame, w as u32, h as u32, seq) {
                    Some(u) => {
                        assert_eq!(u.seq, seq);
                        assert_eq!((u.width, u.height), (w as u32, h as u32));
                        assert!(!*request_full || u.tiles.len() == w.div_ceil(64) * h.div_ceil(64));
                        viewer.apply(&u).expect("an encoder's update applies");
                    }
                    None => assert!(!*request_full, "a requested full update was not sent"),
                }
                assert_eq!((viewer.width(), viewer.height()), (w as u32, h as u32));
                assert!(
                    viewer.pixels() == frame,
                    "viewer differs from the encoded frame"
                );
            }
        }
    }
});
