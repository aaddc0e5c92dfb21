//! Property tests of the screen codec: any sequence of frames decodes bit-exact in lossless mode,
//! whichever frames the encoder skips (changes merge while a viewer is behind) and whenever a
//! full refresh is asked for, and whether or not the encoder is told which rectangles changed;
//! and updates survive the wire.

use proptest::prelude::*;
use protocol::codec::tile::Rect;
use protocol::codec::{Decoder, Encoder, BPP};

#[derive(Debug, Clone)]
enum Edit {
    Fill {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        px: [u8; 4],
    },
    Noise {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        seed: u64,
    },
    /// Moves a rectangle by (dx, dy): a scroll or a dragged window.
    Move {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        dx: i16,
        dy: i16,
    },
    Text {
        x: u16,
        y: u16,
        seed: u64,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let r = (0u16..300, 0u16..200, 1u16..200, 1u16..150);
    prop_oneof![
        (r.clone(), any::<[u8; 4]>()).prop_map(|((x, y, w, h), px)| Edit::Fill { x, y, w, h, px }),
        (r.clone(), any::<u64>()).prop_map(|((x, y, w, h), seed)| Edit::Noise { x, y, w, h, seed }),
        (r, -80i16..80, -80i16..80).prop_map(|((x, y, w, h), dx, dy)| Edit::Move {
            x,
            y,
            w,
            h,
            dx,
            dy
        }),
        (0u16..300, 0u16..200, any::<u64>()).prop_map(|(x, y, seed)| Edit::Text { x, y, seed }),
    ]
}

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn clip(
    x: u16,
    y: u16,
    w: u16,
    h: u16,
    width: usize,
    height: usize,
) -> (usize, usize, usize, usize) {
    let x = x as usize % width;
    let y = y as usize % height;
    (
        x,
        y,
        (w as usize).min(width - x),
        (h as usize).min(height - y),
    )
}

/// Applies `e` and returns the rectangle it changed.
fn apply(frame: &mut [u8], width: usize, height: usize, e: &Edit) -> Rect {
    let stride = width * BPP;
    let (x, y, w, h) = match *e {
        Edit::Fill { x, y, w, h, px } => {
            let (x, y, w, h) = clip(x, y, w, h, width, height);
            for row in y..y + h {
                for col in x..x + w {
                    frame[row * stride + col * BPP..][..BPP].copy_from_slice(&px);
                }
            }
            (x, y, w, h)
        }
        Edit::Noise {
            x,
            y,
            w,
            h,
            mut seed,
        } => {
            let (x, y, w, h) = clip(x, y, w, h, width, height);
            for row in y..y + h {
                for col in x..x + w {
                    let v = splitmix(&mut seed).to_le_bytes();
                    frame[row * stride + col * BPP..][..BPP].copy_from_slice(&v[..4]);
                }
            }
            (x, y, w, h)
        }
        Edit::Move { x, y, w, h, dx, dy } => {
            let (x, y, w, h) = clip(x, y, w, h, width, height);
            let tx = (x as i64 + dx as i64).clamp(0, (width - w) as i64) as usize;
            let ty = (y as i64 + dy as i64).clamp(0, (height - h) as i64) as usize;
            let src: Vec<u8> = (y..y + h)
                .flat_map(|row| frame[row * stride + x * BPP..][..w * BPP].to_vec())
                .collect();
            for (k, row) in (ty..ty + h).enumerate() {
                frame[row * stride + tx * BPP..][..w * BPP]
                    .copy_from_slice(&src[k * w * BPP..][..w * BPP]);
            }
            (tx, ty, w, h)
        }
        Edit::Text { x, y, mut seed } => {
            // A line of two-colour "glyphs": palette content.
            let (x, y, w, h) = clip(x, y, 120, 12, width, height);
            for row in y..y + h {
                let bits = splitmix(&mut seed);
                for col in x..x + w {
                    let on = bits >> (col % 64) & 1 == 1;
                    let px = if on {
                        [230, 230, 230, 0]
                    } else {
                        [30, 20, 10, 0]
                    };
                    frame[row * stride + col * BPP..][..BPP].copy_from_slice(&px);
                }
            }
            (x, y, w, h)
        }
    };
    Rect { x, y, w, h }
}

#[derive(Debug, Clone)]
struct Step {
    edits: Vec<Edit>,
    encode: bool,
    full: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec(edit(), 0..4),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(edits, encode, full)| Step {
            edits,
            encode,
            full,
        })
}

/// Plays `steps` through a lossless encoder and a decoder, checking after each encoded step
/// that the viewer holds the frame; `told`: the encoder is told which rectangles changed, as
/// the agent's capture tells it.
fn play(width: usize, height: usize, steps: &[Step], told: bool) -> Result<(), TestCaseError> {
    let mut frame = vec![0u8; width * height * BPP];
    let mut enc = Encoder::lossless(width as u32, height as u32);
    let mut dec = Decoder::new();
    let mut changed = Vec::new();
    let mut seq = 0;
    let mut sent = false;
    for (i, s) in steps.iter().enumerate() {
        for e in &s.edits {
            changed.push(apply(&mut frame, width, height, e));
        }
        if !s.encode {
            continue;
        }
        if s.full {
            enc.request_full();
        }
        seq += 1;
        let hint = (told && seq > 1).then_some(&changed[..]);
        let update = enc.encode_changed(
            &frame,
            width as u32,
            height as u32,
            hint,
            i as u64 * 50,
            seq,
        );
        changed.clear();
        match update {
            Some(u) => {
                let wire = protocol::wire::encode_frame(&u);
                let back: protocol::codec::Update =
                    protocol::wire::decode_peer(&wire[4..]).unwrap();
                prop_assert_eq!(&back, &u);
                dec.apply(&back).unwrap();
                sent = true;
            }
            None => prop_assert!(sent && !s.full, "nothing sent when something was due"),
        }
        prop_assert!(
            dec.pixels() == &frame[..],
            "decoded image differs after step {}",
            i
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lossless_sequences_decode_bit_exact(
        width in 1usize..330,
        height in 1usize..230,
        steps in prop::collection::vec(step(), 1..12),
    ) {
        play(width, height, &steps, false)?;
    }

    /// The agent's capture says which rectangles changed since the frame before (X DAMAGE);
    /// the encoder then compares only those, and the viewer still gets every pixel.
    #[test]
    fn sequences_told_what_changed_decode_bit_exact(
        width in 1usize..330,
        height in 1usize..230,
        steps in prop::collection::vec(step(), 1..12),
    ) {
        play(width, height, &steps, true)?;
    }
}

/// A viewer that lost updates (its link was resumed) is sent the whole screen again while it
/// stands still: a decoder that saw none of the updates before holds the screen after it, and
/// one that saw them all holds it too.
#[test]
fn a_resent_screen_restores_a_viewer_that_lost_updates() {
    let (width, height) = (200usize, 120usize);
    let mut frame = vec![0u8; width * height * BPP];
    let mut seed = 7;
    for px in frame.chunks_mut(BPP) {
        px[..3].copy_from_slice(&splitmix(&mut seed).to_le_bytes()[..3]);
    }
    let mut enc = Encoder::lossless(width as u32, height as u32);
    let mut stayed = Decoder::new();
    let first = enc
        .encode(&frame, width as u32, height as u32, 0, 1)
        .unwrap();
    stayed.apply(&first).unwrap();
    // A change the resumed viewer never receives.
    frame[..BPP * 40].fill(9);
    let lost = enc
        .encode(&frame, width as u32, height as u32, 50, 2)
        .unwrap();
    stayed.apply(&lost).unwrap();

    let again = enc.resend(100, 1).expect("a whole screen");
    let mut resumed = Decoder::new();
    resumed.apply(&again).unwrap();
    assert!(
        resumed.pixels() == &frame[..],
        "the resumed viewer holds the screen"
    );
    stayed.apply(&again).unwrap();
    assert!(stayed.pixels() == &frame[..]);
    // Nothing changed since: nothing more is due.
    assert!(enc
        .encode(&frame, width as u32, height as u32, 150, 2)
        .is_none());
}
