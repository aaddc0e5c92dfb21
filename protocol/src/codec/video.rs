//! The lossy path: H.264 (OpenH264, built from its bundled source) for regions that change on
//! most frames, such as a video or an animation.
//!
//! The encoder side ([`VideoEncoder`]) turns a rectangle of a BGRX frame into one H.264 access
//! unit; the viewer side ([`VideoDecoders`]) keeps one decoder per stream and writes each decoded
//! picture into its rectangle. Colour conversion is ours on both sides (BT.601 full range, every
//! pixel's chroma kept: see [`Planes`]), so the two ends agree whatever a decoder would assume.
//!
//! Which regions go lossy, and when they are refined to lossless, is the encoder's business
//! ([`super::encoder`]).

use std::collections::HashMap;

use openh264::encoder::{
    BitRate, Complexity, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::tile::Rect;
use super::{CodecError, BPP, TILE};

/// Quantiser of every video picture (0 best, 51 worst). A fixed quantiser rather than a bit
/// rate: the picture stays at about 40 dB whatever the region's size, and the bytes follow the
/// content (on the corpus's video: 42.7 dB at 24, 39.9 dB at 28, `bench -- codec`).
pub const VIDEO_QP: u8 = 26;

/// Most video streams a viewer keeps at once; a stream restarted under a new number replaces
/// an old one, so an encoder needs one or two.
pub const MAX_STREAMS: usize = 4;

/// The picture handed to H.264: the region's three full-resolution planes (Y, Cb, Cr) stacked
/// top to bottom as one grey picture three times as tall, its own chroma planes flat.
///
/// Why not H.264's 4:2:0 chroma: screen content has sharp colour edges (coloured text, icons,
/// saturated widgets) that averaging chroma over 2x2 pixels smears to about 32 dB; planes coded
/// as luma keep every pixel's colour, and flat planes cost next to nothing.
#[derive(Default)]
struct Planes {
    width: usize,
    height: usize,
    y: Vec<u8>,
    flat: Vec<u8>,
}

impl YUVSource for Planes {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, 3 * self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.flat
    }

    fn v(&self) -> &[u8] {
        &self.flat
    }
}

impl Planes {
    /// Converts the rectangle `r` (even width and height) of a BGRX image: BT.601 full range,
    /// 16-bit fixed point.
    fn read(&mut self, pixels: &[u8], stride: usize, r: Rect) {
        let (w, h) = (r.w, r.h);
        self.width = w;
        self.height = h;
        self.y.resize(3 * w * h, 0);
        self.flat.clear();
        self.flat.resize((w / 2) * (3 * h / 2), 128);
        let (ys, rest) = self.y.split_at_mut(w * h);
        let (us, vs) = rest.split_at_mut(w * h);
        for row in 0..h {
            let src = (r.y + row) * stride + r.x * BPP;
            let src = &pixels[src..src + w * BPP];
            let o = row * w;
            for (col, p) in src.chunks_exact(BPP).enumerate() {
                let (b, g, r) = (p[0] as i32, p[1] as i32, p[2] as i32);
                ys[o + col] = ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16) as u8;
                let cb = (-11059 * r - 21709 * g + 32768 * b + 32768) >> 16;
                let cr = (32768 * r - 27439 * g - 5329 * b + 32768) >> 16;
                us[o + col] = (cb + 128).clamp(0, 255) as u8;
                vs[o + col] = (cr + 128).clamp(0, 255) as u8;
            }
        }
    }
}

/// Whether tile `k` of a rectangle is kept, by a mask as [`crate::peer::CodecOp::Video`]
/// carries it (empty: none is).
pub fn kept(keep: &[u8], k: usize) -> bool {
    keep.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0)
}

/// Bytes of a mask for a `width` x `height` rectangle: one bit per tile.
pub fn mask_len(width: usize, height: usize) -> usize {
    (width.div_ceil(TILE) * height.div_ceil(TILE)).div_ceil(8)
}

/// Writes a decoded picture (the stacked planes, `ys` bytes a row) into the rectangle `r` of a
/// BGRX image, leaving alone the tiles `keep` marks.
fn write_bgrx(y: &[u8], ys: usize, pixels: &mut [u8], stride: usize, r: Rect, keep: &[u8]) {
    let cols = r.w.div_ceil(TILE);
    for ty in 0..r.h.div_ceil(TILE) {
        for tx in 0..cols {
            if kept(keep, ty * cols + tx) {
                continue;
            }
            let (x0, y0) = (tx * TILE, ty * TILE);
            let part = Rect {
                x: x0,
                y: y0,
                w: TILE.min(r.w - x0),
                h: TILE.min(r.h - y0),
            };
            write_part(y, ys, pixels, stride, r, part);
        }
    }
}

/// Writes the part `part` (in the picture's coordinates) of a decoded picture placed at `r`.
fn write_part(y: &[u8], ys: usize, pixels: &mut [u8], stride: usize, r: Rect, part: Rect) {
    for row in part.y..part.y + part.h {
        let out = (r.y + row) * stride + (r.x + part.x) * BPP;
        let out = &mut pixels[out..out + part.w * BPP];
        let span = |plane: usize| {
            let o = (plane * r.h + row) * ys + part.x;
            &y[o..o + part.w]
        };
        let (yrow, urow, vrow) = (span(0), span(1), span(2));
        for (col, px) in out.chunks_exact_mut(BPP).enumerate() {
            let l = (yrow[col] as i32) << 16;
            let cb = urow[col] as i32 - 128;
            let cr = vrow[col] as i32 - 128;
            let red = (l + 91881 * cr + 32768) >> 16;
            let green = (l - 22554 * cb - 46802 * cr + 32768) >> 16;
            let blue = (l + 116130 * cb + 32768) >> 16;
            px[0] = blue.clamp(0, 255) as u8;
            px[1] = green.clamp(0, 255) as u8;
            px[2] = red.clamp(0, 255) as u8;
            px[3] = 0;
        }
    }
}

/// One H.264 stream of the sending side, for a rectangle of fixed size.
pub struct VideoEncoder {
    encoder: openh264::encoder::Encoder,
    planes: Planes,
    width: usize,
    height: usize,
}

impl VideoEncoder {
    /// An encoder for `width` x `height` pictures (both even).
    pub fn new(width: usize, height: usize) -> Result<Self, CodecError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Quality)
            .bitrate(BitRate::from_bps(50_000_000))
            .qp(QpRange::new(VIDEO_QP, VIDEO_QP))
            // Frame skipping must be allowed for the quantiser to hold (OpenH264 warns
            // otherwise); at this bit rate it never happens, and a skipped frame would only
            // delay the picture (see the encoder).
            .skip_frames(true)
            .complexity(Complexity::Low)
            .num_threads(1)
            .max_frame_rate(FrameRate::from_hz(30.0))
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .scene_change_detect(false)
            .background_detection(false)
            .adaptive_quantization(false);
        let encoder =
            openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), config)
                .map_err(|e| {
                    CodecError::BadVideo(format!("cannot start the video encoder: {e}"))
                })?;
        Ok(Self {
            encoder,
            planes: Planes::default(),
            width,
            height,
        })
    }

    /// Appends to `out` one access unit for the rectangle `r` of `pixels` (BGRX, `stride` bytes a
    /// row), or nothing when the encoder skipped the picture; the first one of a stream is an
    /// IDR picture with its parameter sets.
    pub fn encode(
        &mut self,
        pixels: &[u8],
        stride: usize,
        r: Rect,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        debug_assert_eq!((r.w, r.h), (self.width, self.height));
        self.planes.read(pixels, stride, r);
        let stream = self
            .encoder
            .encode(&self.planes)
            .map_err(|e| CodecError::BadVideo(format!("video encoder failed: {e}")))?;
        stream.write_vec(out);
        Ok(())
    }
}

/// One stream of the viewer.
struct Stream {
    decoder: openh264::decoder::Decoder,
    width: usize,
    height: usize,
}

/// The viewer's H.264 decoders, one per video stream.
#[derive(Default)]
pub struct VideoDecoders {
    streams: HashMap<u32, Stream>,
    /// Stream numbers in the order they started, oldest first.
    order: Vec<u32>,
}

impl VideoDecoders {
    pub fn clear(&mut self) {
        self.streams.clear();
        self.order.clear();
    }

    /// Decodes one access unit of `stream` into the rectangle `r` of `pixels`, but for the tiles
    /// `keep` marks ([`kept`]). `restart` starts the stream over with a new decoder (and at most
    /// [`MAX_STREAMS`] are kept).
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &mut self,
        stream: u32,
        restart: bool,
        data: &[u8],
        keep: &[u8],
        pixels: &mut [u8],
        stride: usize,
        r: Rect,
    ) -> Result<(), CodecError> {
        if !keep.is_empty() && keep.len() != mask_len(r.w, r.h) {
            return Err(CodecError::BadVideo(format!(
                "a mask of {} bytes for {} tiles",
                keep.len(),
                r.w.div_ceil(TILE) * r.h.div_ceil(TILE)
            )));
        }
        if restart {
            let decoder = openh264::decoder::Decoder::new()
                .map_err(|e| CodecError::BadVideo(format!("cannot start a video decoder: {e}")))?;
            self.order.retain(|s| *s != stream);
            self.order.push(stream);
            if self.order.len() > MAX_STREAMS {
                let old = self.order.remove(0);
                self.streams.remove(&old);
            }
            self.streams.insert(
                stream,
                Stream {
                    decoder,
                    width: r.w,
                    height: r.h,
                },
            );
        }
        let s = self.streams.get_mut(&stream).ok_or_else(|| {
            CodecError::BadVideo(format!("stream {stream} continues but never started"))
        })?;
        if (s.width, s.height) != (r.w, r.h) {
            return Err(CodecError::BadVideo(format!(
                "stream {stream} is {}x{}, the op says {}x{}",
                s.width, s.height, r.w, r.h
            )));
        }
        if data.is_empty() {
            return Err(CodecError::BadVideo("empty access unit".into()));
        }
        let picture = s
            .decoder
            .decode(data)
            .map_err(|e| CodecError::BadVideo(format!("undecodable access unit: {e}")))?
            .ok_or_else(|| CodecError::BadVideo("access unit without a picture".into()))?;
        let (w, h) = picture.dimensions();
        if (w, h) != (r.w, 3 * r.h) {
            return Err(CodecError::BadVideo(format!(
                "picture is {w}x{h}, the op's region needs {}x{}",
                r.w,
                3 * r.h
            )));
        }
        let (ys, _, _) = picture.strides();
        let y = picture.y();
        if ys < w || y.len() < (h - 1) * ys + w {
            return Err(CodecError::BadVideo("decoded picture too short".into()));
        }
        write_bgrx(y, ys, pixels, stride, r, keep);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mut se = 0f64;
        let mut n = 0f64;
        for (p, q) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
            for c in 0..3 {
                let d = p[c] as f64 - q[c] as f64;
                se += d * d;
                n += 1.0;
            }
        }
        10.0 * (255.0f64 * 255.0 / (se / n)).log10()
    }

    /// A smooth moving picture: what video looks like, and what H.264 is for.
    fn picture(w: usize, h: usize, t: usize) -> Vec<u8> {
        let mut p = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let o = (y * w + x) * 4;
                p[o] = ((x + 2 * t) * 255 / (w + 40)) as u8;
                p[o + 1] = ((y + t) * 255 / (h + 20)) as u8;
                p[o + 2] = (((x + y) / 2 + 3 * t) % 256) as u8;
            }
        }
        p
    }

    #[test]
    fn a_stream_round_trips_close_to_the_source() {
        let (w, h) = (128, 96);
        let r = Rect { x: 0, y: 0, w, h };
        let mut enc = VideoEncoder::new(w, h).unwrap();
        let mut dec = VideoDecoders::default();
        let mut out = vec![0u8; w * h * 4];
        for t in 0..5 {
            let src = picture(w, h, t);
            let mut au = Vec::new();
            enc.encode(&src, w * 4, r, &mut au).unwrap();
            dec.decode(7, t == 0, &au, &[], &mut out, w * 4, r).unwrap();
            let q = psnr(&src, &out);
            assert!(q > 36.0, "frame {t}: {q:.1} dB");
        }
    }

    #[test]
    fn kept_tiles_keep_the_viewers_pixels() {
        let (w, h) = (192, 64);
        let r = Rect { x: 0, y: 0, w, h };
        let mut enc = VideoEncoder::new(w, h).unwrap();
        let mut au = Vec::new();
        let src = picture(w, h, 0);
        enc.encode(&src, w * 4, r, &mut au).unwrap();
        let mut dec = VideoDecoders::default();
        let mut out = vec![9u8; w * h * 4];
        // The middle tile is kept.
        dec.decode(1, true, &au, &[0b010], &mut out, w * 4, r)
            .unwrap();
        for row in 0..h {
            let line = &out[row * w * 4..(row + 1) * w * 4];
            assert!(line[64 * 4..128 * 4].iter().all(|&b| b == 9), "row {row}");
            assert!(line[..64 * 4].iter().any(|&b| b != 9), "row {row}");
            assert!(line[128 * 4..].iter().any(|&b| b != 9), "row {row}");
        }
        // A mask must have one bit per tile: a byte for three tiles, not two.
        let mut au = Vec::new();
        enc.encode(&src, w * 4, r, &mut au).unwrap();
        assert!(dec
            .decode(1, false, &au, &[0, 0], &mut out, w * 4, r)
            .is_err());
    }

    #[test]
    fn bad_streams_are_refused() {
        let (w, h) = (64, 64);
        let r = Rect { x: 0, y: 0, w, h };
        let mut px = vec![0u8; w * h * 4];
        let mut dec = VideoDecoders::default();
        assert!(dec
            .decode(1, false, &[0, 0, 1, 0x65], &[], &mut px, w * 4, r)
            .is_err());
        assert!(dec.decode(1, true, &[], &[], &mut px, w * 4, r).is_err());
        assert!(dec
            .decode(
                2,
                true,
                &[0, 0, 0, 1, 0x67, 0xff, 0xff],
                &[],
                &mut px,
                w * 4,
                r
            )
            .is_err());
        // A stream of one size cannot continue at another.
        let mut enc = VideoEncoder::new(w, h).unwrap();
        let mut au = Vec::new();
        enc.encode(&picture(w, h, 0), w * 4, r, &mut au).unwrap();
        dec.decode(3, true, &au, &[], &mut px, w * 4, r).unwrap();
        let small = Rect {
            x: 0,
            y: 0,
            w: 32,
            h: 32,
        };
        assert!(dec
            .decode(3, false, &au, &[], &mut px, w * 4, small)
            .is_err());
    }

    #[test]
    fn damaged_access_units_are_refused_or_decoded_never_crash() {
        let (w, h) = (96, 64);
        let r = Rect { x: 0, y: 0, w, h };
        let mut enc = VideoEncoder::new(w, h).unwrap();
        let stream: Vec<Vec<u8>> = (0..4)
            .map(|t| {
                let mut au = Vec::new();
                enc.encode(&picture(w, h, t), w * 4, r, &mut au).unwrap();
                au
            })
            .collect();
        let mut px = vec![0u8; w * h * 4];
        let mut state = 0x2545_f491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        let mut refused = 0;
        let mut dec = VideoDecoders::default();
        for round in 0..200 {
            for (k, au) in stream.iter().enumerate() {
                let mut bad = au.clone();
                for _ in 0..1 + next() % 4 {
                    let i = next() % bad.len();
                    bad[i] ^= 1 << (next() % 8);
                }
                if round % 7 == 0 {
                    bad.truncate(next() % bad.len());
                }
                // A refusal or a damaged picture: both are fine, a crash is not.
                refused +=
                    usize::from(dec.decode(1, k == 0, &bad, &[], &mut px, w * 4, r).is_err());
            }
        }
        assert!(refused > 0, "no damaged access unit was refused");
        // The same decoders take an intact stream afterwards.
        let mut out = vec![0u8; w * h * 4];
        for (k, au) in stream.iter().enumerate() {
            dec.decode(1, k == 0, au, &[], &mut out, w * 4, r).unwrap();
        }
        assert!(psnr(&picture(w, h, 3), &out) > 36.0);
    }
}
