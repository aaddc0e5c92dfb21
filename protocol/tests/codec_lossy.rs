//! The codec's lossy path: what goes to video, what stays exact, and how soon a region that
//! stopped moving is exact again.

use protocol::codec::{Decoder, Encoder, BPP};
use protocol::peer::CodecOp;

const W: usize = 640;
const H: usize = 384;
/// The moving picture's place: not on tile boundaries, as a real window would be.
const PX: usize = 200;
const PY: usize = 90;
const PW: usize = 300;
const PH: usize = 180;

/// A desktop of text-like content: a few colours in glyph-sized blocks.
fn desktop() -> Vec<u8> {
    let mut f = vec![0u8; W * H * BPP];
    for y in 0..H {
        for x in 0..W {
            let o = (y * W + x) * BPP;
            let ink = (x / 7 + y / 13 * 3) % 5 == 0 && y % 13 < 9;
            let v = if ink { 30 } else { 240 };
            f[o..o + 3].copy_from_slice(&[v, v, v]);
        }
    }
    f
}

/// Paints frame `t` of a moving picture: smooth gradients in every channel that drift, plus
/// fine texture, so it has far more colours than a palette tile holds.
fn paint_picture(f: &mut [u8], t: usize) {
    for y in 0..PH {
        for x in 0..PW {
            let o = ((PY + y) * W + PX + x) * BPP;
            let tex = ((x * 7 + y * 13 + t * 5) % 6) as u8;
            f[o] = ((x + 3 * t) % 256) as u8 ^ tex;
            f[o + 1] = ((y * 2 + 5 * t) % 256) as u8;
            f[o + 2] = (((x + y) / 2 + 7 * t) % 256) as u8;
        }
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let (mut se, mut n) = (0f64, 0f64);
    for (p, q) in a.chunks_exact(BPP).zip(b.chunks_exact(BPP)) {
        for c in 0..3 {
            let d = p[c] as f64 - q[c] as f64;
            se += d * d;
            n += 1.0;
        }
    }
    if se == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255f64 * 255.0 / (se / n)).log10()
    }
}

/// The picture's pixels of an image.
fn picture_of(img: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for y in PY..PY + PH {
        out.extend_from_slice(&img[(y * W + PX) * BPP..(y * W + PX + PW) * BPP]);
    }
    out
}

/// Everything outside the moving picture's tiles must match exactly.
fn outside_exact(a: &[u8], b: &[u8], lossy: &[(usize, usize, usize, usize)]) -> bool {
    (0..H).all(|y| {
        (0..W).all(|x| {
            let inside = lossy
                .iter()
                .any(|&(lx, ly, lw, lh)| (lx..lx + lw).contains(&x) && (ly..ly + lh).contains(&y));
            let o = (y * W + x) * BPP;
            inside || a[o..o + 3] == b[o..o + 3]
        })
    })
}

fn apply(dec: &mut Decoder, u: &protocol::codec::Update) -> usize {
    let wire = protocol::wire::encode_frame(u);
    let back: protocol::codec::Update = protocol::wire::decode_peer(&wire[4..]).unwrap();
    dec.apply(&back).unwrap();
    back.ops
        .iter()
        .filter(|o| matches!(o, CodecOp::Video { .. }))
        .count()
}

/// The bounding box `(x, y, w, h)` of rectangles.
fn bounds(rects: &[(usize, usize, usize, usize)]) -> (usize, usize, usize, usize) {
    assert!(!rects.is_empty(), "nothing lossy");
    let x = rects.iter().map(|r| r.0).min().unwrap();
    let y = rects.iter().map(|r| r.1).min().unwrap();
    let x1 = rects.iter().map(|r| r.0 + r.2).max().unwrap();
    let y1 = rects.iter().map(|r| r.1 + r.3).max().unwrap();
    (x, y, x1 - x, y1 - y)
}

/// Plays the picture for `frames` frames 50 ms apart; returns the frame and the last time.
fn play(enc: &mut Encoder, dec: &mut Decoder, frames: usize, seq: &mut u64) -> (Vec<u8>, u64) {
    let mut frame = desktop();
    let mut video_ops = 0;
    let mut lossy_frames = 0;
    let mut t = 0;
    for k in 0..frames {
        paint_picture(&mut frame, k);
        t = k as u64 * 50;
        *seq += 1;
        if let Some(u) = enc.encode(&frame, W as u32, H as u32, t, *seq) {
            video_ops += apply(dec, &u);
        }
        let lossy = enc.lossy_rects();
        assert!(
            outside_exact(dec.pixels(), &frame, &lossy),
            "frame {k}: pixels outside the video region are not exact"
        );
        if !lossy.is_empty() {
            lossy_frames += 1;
            let q = psnr(&picture_of(dec.pixels()), &picture_of(&frame));
            assert!(q >= 35.0, "frame {k}: the moving picture at {q:.1} dB");
        }
    }
    assert!(
        video_ops >= frames / 2,
        "a picture changing every frame went to video on {video_ops} of {frames} frames"
    );
    assert!(lossy_frames >= frames / 2);
    // The region covers the picture and not much more (whole tiles around it).
    let (x, y, w, h) = bounds(&enc.lossy_rects());
    assert!(
        x <= PX && y <= PY && x + w >= PX + PW && y + h >= PY + PH,
        "{:?}",
        enc.lossy_rects()
    );
    assert!(w <= PW + 128 && h <= PH + 128, "{:?}", enc.lossy_rects());
    (frame, t)
}

#[test]
fn a_moving_picture_goes_to_video_and_is_exact_within_a_second_of_stopping() {
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let mut seq = 0;
    let (frame, stopped) = play(&mut enc, &mut dec, 40, &mut seq);
    // The picture stops; the screen keeps being captured (the same frame) every 50 ms.
    let mut exact_at = None;
    for k in 1..=30u64 {
        let t = stopped + 50 * k;
        seq += 1;
        if let Some(u) = enc.encode(&frame, W as u32, H as u32, t, seq) {
            apply(&mut dec, &u);
        }
        if dec.pixels() == &frame[..] && exact_at.is_none() {
            exact_at = Some(t - stopped);
            assert!(enc.lossy_rects().is_empty());
        }
    }
    let after = exact_at.expect("the picture never became exact after it stopped");
    assert!(after <= 1000, "exact {after} ms after the picture stopped");
}

#[test]
fn a_still_screen_is_refined_without_new_frames() {
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let mut seq = 0;
    let (frame, stopped) = play(&mut enc, &mut dec, 30, &mut seq);
    assert!(enc.refine_pending());
    // The agent's capture reports "unchanged" every 250 ms; each time it asks for refinement.
    let mut exact_at = None;
    for k in 1..=6u64 {
        let t = stopped + 250 * k;
        if let Some(u) = enc.refine(t, seq + 1) {
            seq += 1;
            assert_eq!(apply(&mut dec, &u), 0, "a refinement carries no video");
        }
        if dec.pixels() == &frame[..] {
            exact_at.get_or_insert(t - stopped);
        }
    }
    let after = exact_at.expect("never refined");
    assert!(after <= 1000, "exact {after} ms after the picture stopped");
    assert!(!enc.refine_pending());
    assert!(enc.refine(stopped + 5000, seq + 1).is_none());
}

#[test]
fn a_full_refresh_during_video_is_exact_then_video_resumes() {
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let mut seq = 0;
    let (mut frame, t) = play(&mut enc, &mut dec, 20, &mut seq);
    // A new viewer joins: it gets a self-contained, exact image.
    enc.request_full();
    paint_picture(&mut frame, 20);
    let u = enc
        .encode(&frame, W as u32, H as u32, t + 50, seq + 1)
        .unwrap();
    let mut fresh = Decoder::new();
    assert_eq!(apply(&mut fresh, &u), 0);
    assert!(fresh.pixels() == &frame[..]);
    // ... and the picture, still moving, goes back to video at once for it.
    paint_picture(&mut frame, 21);
    let u = enc
        .encode(&frame, W as u32, H as u32, t + 100, seq + 2)
        .unwrap();
    assert_eq!(apply(&mut fresh, &u), 1);
}

#[test]
fn the_lossless_encoder_never_sends_video() {
    let mut enc = Encoder::lossless(W as u32, H as u32);
    let mut dec = Decoder::new();
    let mut frame = desktop();
    for k in 0..30 {
        paint_picture(&mut frame, k);
        if let Some(u) = enc.encode(&frame, W as u32, H as u32, k as u64 * 50, k as u64 + 1) {
            assert_eq!(apply(&mut dec, &u), 0);
        }
        assert!(dec.pixels() == &frame[..], "frame {k}");
        assert!(enc.lossy_rects().is_empty());
    }
}

#[test]
fn a_photograph_scrolling_in_is_near_lossless_then_exact_and_text_stays_exact() {
    // A page scrolls up 24 pixels a frame for 30 frames, then stops: a photograph (grain on a
    // gradient, more colours than a palette) on the left, text on the right.
    let page_h = H * 4;
    let split = 384;
    let mut page = vec![0u8; W * page_h * BPP];
    for y in 0..page_h {
        for x in 0..W {
            let o = (y * W + x) * BPP;
            let px = if x < split {
                let grain = (((x * 7919 + y * 104_729) * 2_654_435_761) >> 13) as u8 % 16;
                [
                    (x / 2) as u8 ^ grain,
                    ((y / 3) as u8).wrapping_add(grain),
                    ((x + y) / 4) as u8,
                    0,
                ]
            } else if (x / 7 + y / 13) % 3 == 0 && y % 13 < 9 {
                [20, 20, 20, 0]
            } else {
                [250, 250, 250, 0]
            };
            page[o..o + BPP].copy_from_slice(&px);
        }
    }
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let (mut lossy_frames, mut t, mut top) = (0, 0u64, 0);
    for k in 0..60u64 {
        if k < 30 {
            top = k as usize * 24;
        }
        t = k * 50;
        let frame = &page[top * W * BPP..(top + H) * W * BPP];
        if let Some(u) = enc.encode(frame, W as u32, H as u32, t, k + 1) {
            assert_eq!(apply(&mut dec, &u), 0, "frame {k} went to video");
        }
        let shown = dec.pixels();
        let mut worst = 0;
        for (i, (a, b)) in shown.chunks(BPP).zip(frame.chunks(BPP)).enumerate() {
            let x = i % W;
            if x >= split {
                assert_eq!(a[..3], b[..3], "frame {k}: text at x {x} is not exact");
            } else {
                worst = worst.max((0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap_or(0));
            }
        }
        assert!(worst <= 3, "frame {k}: the photograph is off by {worst}");
        lossy_frames += usize::from(worst > 0);
        // Stopped at frame 29: exact within a second.
        if k >= 29 + 20 {
            assert!(
                shown == frame,
                "frame {k}: not exact a second after stopping"
            );
        }
    }
    assert!(lossy_frames > 10, "the moving photograph was sent exactly");
    assert!(!enc.refine_pending(), "still lossy at {t} ms");
}

#[test]
fn text_changing_every_frame_stays_exact() {
    // A burst of text redrawn every frame (a fast typist, a busy log): few colours, so exact.
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let mut frame = desktop();
    for k in 0..40 {
        for y in 100..260 {
            for x in 64..600 {
                let o = (y * W + x) * BPP;
                let ink = (x / 7 + y / 13 + k) % 3 == 0 && y % 13 < 9;
                let v = if ink { 20 + (k % 4) as u8 * 10 } else { 250 };
                frame[o..o + 3].copy_from_slice(&[v, v / 2, 255 - v]);
            }
        }
        if let Some(u) = enc.encode(&frame, W as u32, H as u32, k as u64 * 50, k as u64 + 1) {
            assert_eq!(apply(&mut dec, &u), 0, "frame {k} went to video");
        }
        assert!(dec.pixels() == &frame[..], "frame {k} is not exact");
    }
}

/// A window of text over a large playing video: it appears, rests, is dragged, and rests again.
#[test]
fn a_window_over_playing_video_is_exact_at_rest_and_moves_by_copies() {
    let (vx, vy, vw, vh) = (16, 16, 608, 352);
    let (ww, wh) = (288, 192);
    let window_at = |k: usize| match k {
        0..=29 => (70, 60),
        30..=49 => (70 + 6 * (k - 29), 60 + 2 * (k - 29)),
        _ => (190, 100),
    };
    let paint = |k: usize| {
        let mut f = desktop();
        for y in vy..vy + vh {
            for x in vx..vx + vw {
                let o = (y * W + x) * BPP;
                let tex = ((x * 7 + y * 13 + k * 5) % 6) as u8;
                f[o] = ((x + 3 * k) % 256) as u8 ^ tex;
                f[o + 1] = ((y * 2 + 5 * k) % 256) as u8;
                f[o + 2] = (((x + y) / 2 + 7 * k) % 256) as u8;
            }
        }
        if k >= 10 {
            let (wx, wy) = window_at(k);
            for y in 0..wh {
                for x in 0..ww {
                    let o = ((wy + y) * W + wx + x) * BPP;
                    // Glyphs: a different shape in each 7x13 cell, as text has.
                    let cell = (((x / 7) * 7919 + (y / 13) * 104_729) * 2_654_435_761) >> 7;
                    let ink = y % 13 < 9 && (cell >> ((x % 7) + 7 * (y % 13 % 3))) & 1 == 1;
                    let edge = x < 2 || y < 2 || x >= ww - 2 || y >= wh - 2;
                    let v = if ink || edge {
                        [40, 30, 20]
                    } else {
                        [235, 240, 250]
                    };
                    f[o..o + 3].copy_from_slice(&v);
                }
            }
        }
        f
    };
    // The tiles lying wholly inside the window.
    let inside = |k: usize| {
        let (wx, wy) = window_at(k);
        let mut tiles = Vec::new();
        for ty in wy.div_ceil(64)..(wy + wh) / 64 {
            for tx in wx.div_ceil(64)..(wx + ww) / 64 {
                tiles.push((tx * 64, ty * 64));
            }
        }
        tiles
    };
    let exact_at = |a: &[u8], b: &[u8], (x, y): (usize, usize)| {
        (y..y + 64).all(|r| {
            let o = (r * W + x) * BPP;
            a[o..o + 64 * BPP] == b[o..o + 64 * BPP]
        })
    };
    let mut enc = Encoder::new(W as u32, H as u32);
    let mut dec = Decoder::new();
    let (mut restarts, mut copies_while_dragged, mut video_at_rest) = (Vec::new(), 0, 0);
    for k in 0..90usize {
        let frame = paint(k);
        let u = enc
            .encode(&frame, W as u32, H as u32, k as u64 * 50, k as u64 + 1)
            .expect("the video changes every frame");
        apply(&mut dec, &u);
        for op in &u.ops {
            match op {
                CodecOp::Video { restart: true, .. } => restarts.push(k),
                CodecOp::Video { keep, .. } if k >= 70 => {
                    assert!(!keep.is_empty(), "frame {k}: the picture covers the window");
                    video_at_rest += 1;
                }
                CodecOp::Copy { .. } if (30..50).contains(&k) => copies_while_dragged += 1,
                _ => {}
            }
        }
        // Half a second and more after the window came to rest, all of it that fills whole
        // tiles is exact, while the video around it plays on.
        if (22..30).contains(&k) || k >= 62 {
            for t in inside(k) {
                assert!(
                    exact_at(dec.pixels(), &frame, t),
                    "frame {k}: tile at {t:?} not exact"
                );
            }
        }
    }
    // The video keeps one stream throughout: started once, never restarted by the window.
    assert!(
        restarts.len() == 1 && restarts[0] < 10,
        "restarts at frames {restarts:?}"
    );
    assert_eq!(video_at_rest, 20, "pictures while the window rested");
    assert!(
        copies_while_dragged >= 10,
        "{copies_while_dragged} copies while the window moved"
    );
}
