//! The screen codec's decoder on hostile input: arbitrary bytes decoded as a `CodecUpdate`
//! (as they arrive on the wire) and applied to a `Decoder`, and structured updates with
//! arbitrary copies, tiles of every coding with arbitrary payloads, and video ops. Applying may
//! fail with an error; it must never panic, and the image keeps the size of the last update
//! that applied.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use protocol::codec::{Decoder, Update};
use protocol::peer::{CodecOp, CodecTile, TileCoding};

#[derive(Arbitrary, Debug)]
enum Input {
    Wire(Vec<Vec<u8>>),
    Structured(Vec<ArbUpdate>),
}

#[derive(Arbitrary, Debug)]
struct ArbUpdate {
    width: u8,
    height: u8,
    ops: Vec<ArbOp>,
    /// Compress the concatenated payloads (else `tile_data` is taken as is).
    compress: bool,
    tile_data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum ArbOp {
    Copy([u8; 6]),
    Tile {
        rect: [u8; 4],
        coding: u8,
        payload: Vec<u8>,
        len_delta: i8,
    },
    Video {
        stream: u8,
        restart: bool,
        rect: [u8; 4],
        keep: Vec<u8>,
        data: Vec<u8>,
    },
}

fn coding(c: u8) -> TileCoding {
    match c % 6 {
        0 => TileCoding::Solid,
        1 => TileCoding::Palette,
        2 => TileCoding::PaletteDelta,
        3 => TileCoding::Predicted,
        4 => TileCoding::NearLossless,
        _ => TileCoding::Temporal,
    }
}

fn build(u: &ArbUpdate) -> Update {
    let mut payload = Vec::new();
    let ops = u
        .ops
        .iter()
        .map(|op| match op {
            ArbOp::Copy(v) => CodecOp::Copy {
                src_x: v[0] as u32,
                src_y: v[1] as u32,
                x: v[2] as u32,
                y: v[3] as u32,
                width: v[4] as u32,
                height: v[5] as u32,
            },
            ArbOp::Tile {
                rect,
                coding: c,
                payload: p,
                len_delta,
            } => {
                payload.extend_from_slice(p);
                CodecOp::Tile(CodecTile {
                    x: rect[0] as u32,
                    y: rect[1] as u32,
                    width: rect[2] as u32,
                    height: rect[3] as u32,
                    coding: coding(*c),
                    len: (p.len() as u32).saturating_add_signed(*len_delta as i32),
                })
            }
            ArbOp::Video {
                stream,
                restart,
                rect,
                keep,
                data,
            } => CodecOp::Video {
                stream: *stream as u32,
                restart: *restart,
                x: rect[0] as u32,
                y: rect[1] as u32,
                width: rect[2] as u32,
                height: rect[3] as u32,
                keep: keep.clone(),
                data: data.clone(),
            },
        })
        .collect();
    let tile_data = if u.compress {
        zstd::bulk::compress(&payload, 1).unwrap()
    } else {
        u.tile_data.clone()
    };
    Update {
        seq: 0,
        width: u.width as u32,
        height: u.height as u32,
        ops,
        tile_data,
    }
}

fn check(dec: &mut Decoder, u: &Update) {
    let before = (dec.width(), dec.height());
    match dec.apply(u) {
        Ok(()) => assert_eq!((dec.width(), dec.height()), (u.width, u.height)),
        Err(_) => {
            let after = (dec.width(), dec.height());
            assert!(after == before || after == (u.width, u.height));
        }
    }
    assert_eq!(
        dec.pixels().len(),
        dec.width() as usize * dec.height() as usize * 4
    );
}

fuzz_target!(|input: Input| {
    let mut dec = Decoder::new();
    match input {
        Input::Wire(messages) => {
            for m in messages {
                if let Ok(u) = protocol::wire::decode_peer::<Update>(&m) {
                    if u.width <= 512 && u.height <= 512 {
                        check(&mut dec, &u);
                    }
                }
            }
        }
        Input::Structured(updates) => {
            for u in &updates {
                check(&mut dec, &build(u));
            }
        }
    }
});
