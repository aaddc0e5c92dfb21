//! The screen codec's decoder on large screens: structured updates for screens of any size up
//! to 65535 pixels a side (so beyond `codec::MAX_EDGE` too), whose ops have 32-bit rectangles
//! and declared payload lengths, repeated many times, over a few bytes of tile data. This is
//! where a tile declaring the largest length for its size, repeated a thousand times, made the
//! decoder reserve hundreds of gigabytes; the work budget (`codec::WORK_FACTOR`, `MAX_OPS`)
//! and the bound on reservations must keep every input to a few passes over the screen and to
//! allocations the bytes present can describe (libFuzzer's `-malloc_limit_mb` sees any other).
//! Applying may fail with an error; it must never panic or abort.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use protocol::codec::{Decoder, Update, BPP, MAX_EDGE, MAX_OPS};
use protocol::peer::{CodecOp, CodecTile, TileCoding};

#[derive(Arbitrary, Debug)]
struct Input {
    updates: Vec<LargeUpdate>,
}

#[derive(Arbitrary, Debug)]
struct LargeUpdate {
    /// Screen size: mostly within `MAX_EDGE` (`clamp`), sometimes as given.
    width: u16,
    height: u16,
    clamp: bool,
    ops: Vec<LargeOp>,
    /// Compress these bytes (repeated `repeat` times) as the tile data, else take them raw.
    compress: bool,
    repeat: u8,
    tile_data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct LargeOp {
    op: Op,
    /// The same op this many times over (up to 4096).
    times: u16,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Copy([u32; 6]),
    /// A tile: its rectangle (`whole` makes it the whole screen), coding, and declared length
    /// (`largest` makes it the most a tile of its size may declare).
    Tile {
        rect: [u32; 4],
        whole: bool,
        coding: u8,
        len: u32,
        largest: bool,
    },
    Video {
        stream: u8,
        restart: bool,
        rect: [u32; 4],
        keep: Vec<u8>,
        data: Vec<u8>,
    },
}

fn coding(c: u8) -> TileCoding {
    match c % 5 {
        0 => TileCoding::Solid,
        1 => TileCoding::Palette,
        2 => TileCoding::PaletteDelta,
        3 => TileCoding::Predicted,
        _ => TileCoding::Temporal,
    }
}

fn build(u: &LargeUpdate) -> Update {
    let edge = |v: u16| {
        if u.clamp {
            (u32::from(v) % MAX_EDGE) + 1
        } else {
            u32::from(v)
        }
    };
    let (width, height) = (edge(u.width), edge(u.height));
    let mut ops = Vec::new();
    for op in &u.ops {
        let one = match &op.op {
            Op::Copy(v) => CodecOp::Copy {
                src_x: v[0],
                src_y: v[1],
                x: v[2],
                y: v[3],
                width: v[4],
                height: v[5],
            },
            Op::Tile {
                rect,
                whole,
                coding: c,
                len,
                largest,
            } => {
                let r = if *whole { [0, 0, width, height] } else { *rect };
                let n = r[2] as u64 * r[3] as u64;
                let len = if *largest {
                    u32::try_from(n * BPP as u64 + 1 + 128 * BPP as u64).unwrap_or(u32::MAX)
                } else {
                    *len
                };
                CodecOp::Tile(CodecTile {
                    x: r[0],
                    y: r[1],
                    width: r[2],
                    height: r[3],
                    coding: coding(*c),
                    len,
                })
            }
            Op::Video {
                stream,
                restart,
                rect,
                keep,
                data,
            } => CodecOp::Video {
                stream: u32::from(*stream),
                restart: *restart,
                x: rect[0],
                y: rect[1],
                width: rect[2],
                height: rect[3],
                keep: keep.clone(),
                data: data.clone(),
            },
        };
        // Enough repeats to go past the op cap now and then, and no further.
        for _ in 0..=(op.times as usize % 4096) * 9 {
            if ops.len() > MAX_OPS {
                break;
            }
            ops.push(one.clone());
        }
    }
    let tile_data = if u.compress {
        zstd::bulk::compress(&u.tile_data.repeat(usize::from(u.repeat) + 1), 1).unwrap()
    } else {
        u.tile_data.clone()
    };
    Update {
        seq: 0,
        width,
        height,
        ops,
        tile_data,
    }
}

fuzz_target!(|input: Input| {
    let mut dec = Decoder::new();
    for u in input.updates.iter().take(4) {
        let update = build(u);
        let before = (dec.width(), dec.height());
        match dec.apply(&update) {
            Ok(()) => assert_eq!((dec.width(), dec.height()), (update.width, update.height)),
            Err(_) => {
                let after = (dec.width(), dec.height());
                assert!(after == before || after == (update.width, update.height));
            }
        }
        assert_eq!(
            dec.pixels().len(),
            dec.width() as usize * dec.height() as usize * BPP
        );
    }
});
