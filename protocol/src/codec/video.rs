//! The lossy path: H.264 (OpenH264, built from its bundled source) for regions that change on
//! most frames, such as a video or an animation.
//!
//! The encoder side ([`VideoEncoder`]) turns a rectangle of a BGRX frame into one H.264 access
//! unit; the viewer side ([`VideoDecoders`]) keeps one decoder per stream and writes each decoded
//! picture into its rectangle, but for the tiles the op's mask keeps. Colour conversion is ours
//! on both sides (BT.601 full range), so the two ends agree whatever a decoder would assume; how
//! much of the region's detail a picture holds (every pixel's colour, 4:2:0, or half the size)
//! follows its size, so that no picture costs more than [`PICTURE_SAMPLES`] ([`Layout`]).
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

/// Most samples (luma and chroma) one picture may hold: about what one core codes in 4 ms
/// here (`bench -- codec`), the time an update should take. The encoder keeps each picture
/// within it by its [`Layout`], so a video's cost per frame is bounded whatever the region's
/// size: a region of up to a third of a 1080p screen keeps every pixel's colour, up to two
/// thirds goes 4:2:0, a larger one at half size.
pub const PICTURE_SAMPLES: usize = 1 << 20;

/// How a region's pixels become the H.264 picture: the richest layout whose samples fit
/// [`PICTURE_SAMPLES`], the next one otherwise. The viewer tells them apart by the decoded
/// picture's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The region's three full-resolution planes (Y, Cb, Cr) stacked top to bottom as one grey
    /// picture three times as tall, its own chroma planes flat: every pixel's colour is kept,
    /// where H.264's 4:2:0 chroma smears the sharp colour edges of screen content (coloured
    /// text, icons, saturated widgets) to about 32 dB; flat planes cost next to nothing.
    Planes,
    /// H.264's own 4:2:0: half the samples of [`Layout::Planes`], colour averaged over 2x2
    /// pixels, as any video is.
    Yuv420,
    /// 4:2:0 at half the size each way (2x2 pixels averaged), scaled back up by the viewer: a
    /// quarter of the samples again, for large regions. Sharpness comes back with refinement
    /// once the region stops.
    Half,
}

/// Half of an edge, rounded up to an even number (H.264 pictures have even sizes).
fn half(n: usize) -> usize {
    n.div_ceil(4) * 2
}

impl Layout {
    /// The layout for a `width` x `height` region (see [`PICTURE_SAMPLES`]).
    pub fn for_region(width: usize, height: usize) -> Self {
        let n = width * height;
        if 3 * n <= PICTURE_SAMPLES {
            Layout::Planes
        } else if 3 * n / 2 <= PICTURE_SAMPLES {
            Layout::Yuv420
        } else {
            Layout::Half
        }
    }

    /// The picture's size for a `width` x `height` region.
    pub fn picture(self, width: usize, height: usize) -> (usize, usize) {
        match self {
            Layout::Planes => (width, 3 * height),
            Layout::Yuv420 => (width, height),
            Layout::Half => (half(width), half(height)),
        }
    }

    /// The layout of a decoded picture of `size` for a `width` x `height` region, if any.
    fn of_picture(size: (usize, usize), width: usize, height: usize) -> Option<Self> {
        [Layout::Planes, Layout::Yuv420, Layout::Half]
            .into_iter()
            .find(|l| l.picture(width, height) == size)
    }
}

/// BT.601 full range, 16-bit fixed point: (Y, Cb, Cr) of a BGRX pixel.
#[inline]
fn to_ycc(p: &[u8]) -> (u8, u8, u8) {
    let (b, g, r) = (p[0] as i32, p[1] as i32, p[2] as i32);
    let y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
    let cb = (-11059 * r - 21709 * g + 32768 * b + 32768) >> 16;
    let cr = (32768 * r - 27439 * g - 5329 * b + 32768) >> 16;
    (
        y as u8,
        (cb + 128).clamp(0, 255) as u8,
        (cr + 128).clamp(0, 255) as u8,
    )
}

/// The BGRX pixel of (Y, Cb, Cr), the inverse of [`to_ycc`].
#[inline]
fn to_bgrx(y: u8, cb: u8, cr: u8, px: &mut [u8]) {
    let l = (y as i32) << 16;
    let cb = cb as i32 - 128;
    let cr = cr as i32 - 128;
    let red = (l + 91881 * cr + 32768) >> 16;
    let green = (l - 22554 * cb - 46802 * cr + 32768) >> 16;
    let blue = (l + 116130 * cb + 32768) >> 16;
    px[0] = blue.clamp(0, 255) as u8;
    px[1] = green.clamp(0, 255) as u8;
    px[2] = red.clamp(0, 255) as u8;
    px[3] = 0;
}

/// The picture handed to H.264, in its [`Layout`].
struct Picture {
    layout: Layout,
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// The region at half size, BGRX ([`Layout::Half`] only).
    small: Vec<u8>,
}

impl YUVSource for Picture {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

impl Picture {
    fn new(layout: Layout, width: usize, height: usize) -> Self {
        let (w, h) = layout.picture(width, height);
        Self {
            layout,
            width: w,
            height: h,
            y: vec![0; w * h],
            u: vec![128; (w / 2) * (h / 2)],
            v: vec![128; (w / 2) * (h / 2)],
            small: Vec::new(),
        }
    }

    /// Converts the rectangle `r` (even width and height, the size the picture was made for)
    /// of a BGRX image.
    fn read(&mut self, pixels: &[u8], stride: usize, r: Rect) {
        match self.layout {
            Layout::Planes => {
                let n = r.w * r.h;
                let (ys, rest) = self.y.split_at_mut(n);
                let (us, vs) = rest.split_at_mut(n);
                for row in 0..r.h {
                    let src = (r.y + row) * stride + r.x * BPP;
                    let src = &pixels[src..src + r.w * BPP];
                    let o = row * r.w;
                    for (col, p) in src.chunks_exact(BPP).enumerate() {
                        (ys[o + col], us[o + col], vs[o + col]) = to_ycc(p);
                    }
                }
            }
            Layout::Yuv420 => self.read_420(pixels, stride, r),
            Layout::Half => {
                let (w, h) = (self.width, self.height);
                let mut small = std::mem::take(&mut self.small);
                small.resize(w * h * BPP, 0);
                // Each pixel the mean of 2x2, the region's last row and column repeated.
                for row in 0..h {
                    let y0 = (2 * row).min(r.h - 1);
                    let y1 = (2 * row + 1).min(r.h - 1);
                    let a = (r.y + y0) * stride + r.x * BPP;
                    let b = (r.y + y1) * stride + r.x * BPP;
                    for col in 0..w {
                        let x0 = (2 * col).min(r.w - 1) * BPP;
                        let x1 = (2 * col + 1).min(r.w - 1) * BPP;
                        let o = (row * w + col) * BPP;
                        for c in 0..3 {
                            let sum = pixels[a + x0 + c] as u16
                                + pixels[a + x1 + c] as u16
                                + pixels[b + x0 + c] as u16
                                + pixels[b + x1 + c] as u16;
                            small[o + c] = ((sum + 2) / 4) as u8;
                        }
                    }
                }
                let whole = Rect { x: 0, y: 0, w, h };
                self.read_420(&small, w * BPP, whole);
                self.small = small;
            }
        }
    }

    /// 4:2:0 of the rectangle `r` (the picture's size): luma per pixel, chroma per 2x2.
    fn read_420(&mut self, pixels: &[u8], stride: usize, r: Rect) {
        let cw = r.w / 2;
        for row in (0..r.h).step_by(2) {
            let a = (r.y + row) * stride + r.x * BPP;
            let b = a + stride;
            for cx in 0..cw {
                let (mut cb, mut cr) = (0u16, 0u16);
                for (o, yo) in [
                    (a + 2 * cx * BPP, row * r.w + 2 * cx),
                    (a + (2 * cx + 1) * BPP, row * r.w + 2 * cx + 1),
                    (b + 2 * cx * BPP, (row + 1) * r.w + 2 * cx),
                    (b + (2 * cx + 1) * BPP, (row + 1) * r.w + 2 * cx + 1),
                ] {
                    let (y, u, v) = to_ycc(&pixels[o..o + BPP]);
                    self.y[yo] = y;
                    cb += u as u16;
                    cr += v as u16;
                }
                self.u[(row / 2) * cw + cx] = ((cb + 2) / 4) as u8;
                self.v[(row / 2) * cw + cx] = ((cr + 2) / 4) as u8;
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

/// A decoded picture's planes and their strides.
struct Decoded<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    strides: (usize, usize, usize),
}

/// Writes a decoded picture in `layout` into the rectangle `r` of a BGRX image, leaving alone
/// the tiles `keep` marks. `small` is scratch space for [`Layout::Half`].
fn write_bgrx(
    picture: &Decoded,
    layout: Layout,
    small: &mut Vec<u8>,
    pixels: &mut [u8],
    stride: usize,
    r: Rect,
    keep: &[u8],
) {
    if layout == Layout::Half {
        // The picture as BGRX first, then each tile scaled up from it.
        let (w, h) = layout.picture(r.w, r.h);
        small.resize(w * h * BPP, 0);
        let whole = Rect { x: 0, y: 0, w, h };
        write_part(picture, Layout::Yuv420, small, w * BPP, whole, whole);
    }
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
            match layout {
                Layout::Half => scale_up(small, r, part, pixels, stride),
                _ => write_part(picture, layout, pixels, stride, r, part),
            }
        }
    }
}

/// Writes the part `part` (in the picture's coordinates) of a decoded picture in `layout`
/// ([`Layout::Planes`] or [`Layout::Yuv420`]) placed at `r`.
fn write_part(
    picture: &Decoded,
    layout: Layout,
    pixels: &mut [u8],
    stride: usize,
    r: Rect,
    part: Rect,
) {
    let (ys, us, vs) = picture.strides;
    for row in part.y..part.y + part.h {
        let out = (r.y + row) * stride + (r.x + part.x) * BPP;
        let out = &mut pixels[out..out + part.w * BPP];
        match layout {
            Layout::Planes => {
                let span = |plane: usize| {
                    let o = (plane * r.h + row) * ys + part.x;
                    &picture.y[o..o + part.w]
                };
                let (yrow, urow, vrow) = (span(0), span(1), span(2));
                for (col, px) in out.chunks_exact_mut(BPP).enumerate() {
                    to_bgrx(yrow[col], urow[col], vrow[col], px);
                }
            }
            _ => {
                let yrow = &picture.y[row * ys..];
                let urow = &picture.u[(row / 2) * us..];
                let vrow = &picture.v[(row / 2) * vs..];
                for (col, px) in out.chunks_exact_mut(BPP).enumerate() {
                    let x = part.x + col;
                    to_bgrx(yrow[x], urow[x / 2], vrow[x / 2], px);
                }
            }
        }
    }
}

/// Writes the part `part` of the region `r` from its half-size image `small` (BGRX), scaled up
/// twice each way (bilinear, each small pixel centred on its 2x2).
fn scale_up(small: &[u8], r: Rect, part: Rect, pixels: &mut [u8], stride: usize) {
    let (w, h) = Layout::Half.picture(r.w, r.h);
    // Output index n: the small pixel at n / 2 weighs 3, its neighbour on n's side 1.
    let near = |n: usize, len: usize| {
        let k = n / 2;
        let other = if n.is_multiple_of(2) {
            k.saturating_sub(1)
        } else {
            (k + 1).min(len - 1)
        };
        (k, other)
    };
    for row in part.y..part.y + part.h {
        let (ky, oy) = near(row, h);
        let a = &small[ky * w * BPP..(ky + 1) * w * BPP];
        let b = &small[oy * w * BPP..(oy + 1) * w * BPP];
        let out = (r.y + row) * stride + (r.x + part.x) * BPP;
        let out = &mut pixels[out..out + part.w * BPP];
        for (col, px) in out.chunks_exact_mut(BPP).enumerate() {
            let (kx, ox) = near(part.x + col, w);
            let (kx, ox) = (kx * BPP, ox * BPP);
            for c in 0..3 {
                let v = 9 * a[kx + c] as u16
                    + 3 * a[ox + c] as u16
                    + 3 * b[kx + c] as u16
                    + b[ox + c] as u16;
                px[c] = ((v + 8) >> 4) as u8;
            }
            px[3] = 0;
        }
    }
}

/// One H.264 stream of the sending side, for a rectangle of fixed size.
pub struct VideoEncoder {
    encoder: openh264::encoder::Encoder,
    picture: Picture,
    width: usize,
    height: usize,
}

impl VideoEncoder {
    /// An encoder for a `width` x `height` region (both even), in the layout its size allows
    /// ([`Layout::for_region`]).
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
            picture: Picture::new(Layout::for_region(width, height), width, height),
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
        self.picture.read(pixels, stride, r);
        let stream = self
            .encoder
            .encode(&self.picture)
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
    /// A half-size picture as BGRX, before it is scaled up.
    small: Vec<u8>,
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
        if r.w == 0 || r.h == 0 {
            return Err(CodecError::BadVideo("an empty region".into()));
        }
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
        let layout = Layout::of_picture((w, h), r.w, r.h).ok_or_else(|| {
            CodecError::BadVideo(format!(
                "picture is {w}x{h}, which no layout of a {}x{} region has",
                r.w, r.h
            ))
        })?;
        let decoded = Decoded {
            y: picture.y(),
            u: picture.u(),
            v: picture.v(),
            strides: picture.strides(),
        };
        let (ys, us, vs) = decoded.strides;
        let (cw, ch) = (w / 2, h / 2);
        if ys < w
            || us < cw
            || vs < cw
            || decoded.y.len() < (h - 1) * ys + w
            || decoded.u.len() < (ch - 1) * us + cw
            || decoded.v.len() < (ch - 1) * vs + cw
        {
            return Err(CodecError::BadVideo("decoded picture too short".into()));
        }
        write_bgrx(&decoded, layout, &mut self.small, pixels, stride, r, keep);
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
    fn large_regions_take_fewer_samples_and_still_round_trip() {
        // Just over the budget in full chroma, then just over it in 4:2:0.
        for ((w, h), layout, least) in [
            ((640, 576), Layout::Yuv420, 36.0),
            ((1024, 704), Layout::Half, 33.0),
        ] {
            assert_eq!(Layout::for_region(w, h), layout);
            let (pw, ph) = layout.picture(w, h);
            assert!(pw * ph * 3 / 2 <= PICTURE_SAMPLES, "{layout:?}");
            let r = Rect { x: 0, y: 0, w, h };
            let mut enc = VideoEncoder::new(w, h).unwrap();
            let mut dec = VideoDecoders::default();
            let mut out = vec![0u8; w * h * 4];
            for t in 0..3 {
                let src = picture(w, h, t);
                let mut au = Vec::new();
                enc.encode(&src, w * 4, r, &mut au).unwrap();
                dec.decode(5, t == 0, &au, &[], &mut out, w * 4, r).unwrap();
                let q = psnr(&src, &out);
                assert!(q > least, "{layout:?}, frame {t}: {q:.1} dB");
            }
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
