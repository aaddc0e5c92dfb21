//! The screen codec on hand-made cases: a scroll and a dragged window travel as copies and
//! decode bit-exact; hostile bytes are refused with an error, never a panic.

use proptest::prelude::*;
use protocol::codec::{Decoder, Encoder, Update, BPP};
use protocol::peer::CodecOp;

fn noise(w: usize, h: usize, mut s: u64) -> Vec<u8> {
    (0..w * h * BPP)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

fn round_trip(frames: &[Vec<u8>], w: usize, h: usize) -> Vec<Update> {
    let mut enc = Encoder::lossless(w as u32, h as u32);
    let mut dec = Decoder::new();
    let mut updates = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if let Some(u) = enc.encode(f, w as u32, h as u32, i as u64 * 50, i as u64) {
            dec.apply(&u).unwrap();
            updates.push(u);
        }
        assert!(dec.pixels() == &f[..], "frame {i} differs");
    }
    updates
}

#[test]
fn a_scroll_under_a_fixed_sidebar_is_a_copy() {
    let (w, h) = (400, 300);
    let a = noise(w, h, 1);
    let mut b = a.clone();
    let stride = w * BPP;
    // Rows of the page (x >= 100) move up by 17; the sidebar (x < 100) stays.
    for y in 0..h - 17 {
        let (src, dst) = ((y + 17) * stride + 100 * BPP, y * stride + 100 * BPP);
        let row = a[src..src + 300 * BPP].to_vec();
        b[dst..dst + 300 * BPP].copy_from_slice(&row);
    }
    let updates = round_trip(&[a, b], w, h);
    assert!(updates[1]
        .ops
        .iter()
        .any(|op| matches!(op, CodecOp::Copy { src_y, y, .. } if *src_y == *y + 17)));
}

#[test]
fn a_dragged_window_is_a_copy() {
    let (w, h) = (500, 400);
    let bg = vec![40u8; w * h * BPP];
    let win = noise(200, 150, 7);
    let place = |x: usize, y: usize| {
        let mut f = bg.clone();
        for r in 0..150 {
            let o = (y + r) * w * BPP + x * BPP;
            f[o..o + 200 * BPP].copy_from_slice(&win[r * 200 * BPP..(r + 1) * 200 * BPP]);
        }
        f
    };
    let updates = round_trip(&[place(30, 40), place(123, 91)], w, h);
    assert!(updates[1]
        .ops
        .iter()
        .any(|op| matches!(op, CodecOp::Copy { src_x, x, .. } if *x == *src_x + 93)));
}

proptest! {
    #[test]
    fn hostile_bytes_are_refused_not_panicked_on(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut dec = Decoder::new();
        if let Ok(u) = protocol::wire::decode_peer::<Update>(&bytes) {
            if u.width <= 512 && u.height <= 512 {
                let _ = dec.apply(&u);
            }
        }
    }
}
