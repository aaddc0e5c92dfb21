//! The remote screen as the technician holds it.
//!
//! Updates travel on separate streams and may arrive out of order; [`Viewer`] applies them
//! strictly in sequence, holding early ones back. The agent keeps only a few unacknowledged, so
//! a viewer holding more than [`MAX_EARLY`] updates, or [`MAX_EARLY_BYTES`] of them, is facing a
//! broken or hostile agent and says so.

use std::io::BufWriter;
use std::path::Path;

use protocol::codec::order::{InOrder, OrderError};
use protocol::codec::{CodecError, Decoder};
use protocol::peer::{CodecOp, ScreenUpdate};
use sha2::{Digest, Sha256};

/// A rectangle of the screen that an update changed, in framebuffer pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Damage {
    /// The rectangles an update's steps write to (copies, tiles, video), clipped to the screen;
    /// the whole screen when the update changes the screen's size.
    pub fn of(update: &ScreenUpdate, before: (u32, u32), out: &mut Vec<Damage>) {
        let (w, h) = (update.width, update.height);
        if before != (w, h) {
            out.push(Damage {
                x: 0,
                y: 0,
                width: w,
                height: h,
            });
            return;
        }
        for op in &update.ops {
            let (x, y, width, height) = match op {
                CodecOp::Copy {
                    x,
                    y,
                    width,
                    height,
                    ..
                } => (*x, *y, *width, *height),
                CodecOp::Tile(t) => (t.x, t.y, t.width, t.height),
                CodecOp::Video {
                    x,
                    y,
                    width,
                    height,
                    ..
                } => (*x, *y, *width, *height),
            };
            if x >= w || y >= h {
                continue;
            }
            out.push(Damage {
                x,
                y,
                width: width.min(w - x),
                height: height.min(h - y),
            });
        }
    }
}

/// Updates that may wait for an earlier one.
pub const MAX_EARLY: usize = 32;

/// Bytes of updates that may wait for an earlier one (`protocol::codec::order::held_bytes`):
/// two of the largest updates the peer plane carries (`PEER_MAX_FRAME`, 40 MB each). The agent
/// keeps two unacknowledged by default, so an honest agent holds at most one back; without this
/// cap, 32 held updates could be 1.3 GB.
pub const MAX_EARLY_BYTES: usize = 2 * protocol::wire::PEER_MAX_FRAME;

#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("{0}; the agent ignores flow control")]
    Order(#[from] OrderError),
    #[error("update {seq} is malformed: {source}")]
    Apply { seq: u64, source: CodecError },
}

pub struct Viewer {
    fb: Decoder,
    order: InOrder,
}

impl Default for Viewer {
    fn default() -> Self {
        Self::new()
    }
}

impl Viewer {
    pub fn new() -> Self {
        Self {
            fb: Decoder::new(),
            order: InOrder::with_byte_limit(MAX_EARLY, MAX_EARLY_BYTES),
        }
    }

    pub fn framebuffer(&self) -> &Decoder {
        &self.fb
    }

    /// Takes an update; applies it and any held-back ones it unblocks. Returns the sequence
    /// numbers applied, in order.
    pub fn offer(&mut self, update: ScreenUpdate) -> Result<Vec<u64>, ViewerError> {
        self.offer_with_damage(update, &mut Vec::new())
    }

    /// As [`Viewer::offer`], and adds the rectangles the applied updates changed to `damage`.
    pub fn offer_with_damage(
        &mut self,
        update: ScreenUpdate,
        damage: &mut Vec<Damage>,
    ) -> Result<Vec<u64>, ViewerError> {
        self.order.push(update)?;
        let mut applied = Vec::new();
        while let Some(u) = self.order.pop() {
            let before = (self.fb.width(), self.fb.height());
            self.fb
                .apply(&u)
                .map_err(|source| ViewerError::Apply { seq: u.seq, source })?;
            Damage::of(&u, before, damage);
            applied.push(u.seq);
        }
        Ok(applied)
    }

    /// A resumed leg numbers its updates from the start again (and begins with a whole
    /// screen): what was held back for the old leg's numbers is dropped, the screen kept.
    pub fn restart_numbering(&mut self) {
        self.order = InOrder::with_byte_limit(MAX_EARLY, MAX_EARLY_BYTES);
    }

    /// The update that later ones held back wait for, if any.
    pub fn missing(&self) -> Option<u64> {
        self.order.missing()
    }

    /// SHA-256 of the framebuffer's pixels (BGRX), hex.
    pub fn pixels_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.fb.pixels()))
    }
}

/// Writes a framebuffer as an RGB PNG.
pub fn write_png(fb: &Decoder, path: &Path) -> Result<(), String> {
    if fb.width() == 0 {
        return Err("no screen has been received yet".into());
    }
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), fb.width(), fb.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let rgb: Vec<u8> = fb
        .pixels()
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole-screen update of 2x1 pixels of one colour, as the codec makes it.
    fn solid(seq: u64, color: u8) -> ScreenUpdate {
        let mut enc = protocol::codec::Encoder::new(2, 1);
        enc.request_full();
        enc.encode(&[color, color, color, 0].repeat(2), 2, 1, 0, seq)
            .expect("a full update")
    }

    #[test]
    fn out_of_order_updates_apply_in_sequence() {
        let mut v = Viewer::new();
        assert_eq!(v.offer(solid(2, 9)).unwrap(), Vec::<u64>::new());
        assert_eq!(v.offer(solid(1, 5)).unwrap(), vec![1, 2]);
        assert_eq!(v.framebuffer().pixels(), &[9, 9, 9, 0, 9, 9, 9, 0]);
        assert!(matches!(
            v.offer(solid(2, 1)),
            Err(ViewerError::Order(OrderError::Stale { .. }))
        ));
        assert!(matches!(
            v.offer(solid(100, 1)),
            Err(ViewerError::Order(OrderError::TooFarAhead { .. }))
        ));
    }

    #[test]
    fn updates_held_back_are_capped_in_bytes_not_only_in_number() {
        // An agent that never sends update 1 and sends large ones after it: each is 10 MB of
        // tile data (their content never matters: they wait, undecoded).
        let big = |seq: u64| ScreenUpdate {
            seq,
            width: 8,
            height: 8,
            ops: Vec::new(),
            tile_data: vec![0; 10 << 20],
        };
        let mut v = Viewer::new();
        let mut held = 0usize;
        let refused = (2..2 + MAX_EARLY as u64).find_map(|seq| match v.offer(big(seq)) {
            Ok(applied) => {
                assert!(applied.is_empty());
                held += 10 << 20;
                None
            }
            Err(e) => Some(e),
        });
        let e = refused.expect("a viewer holding back hundreds of megabytes refuses more");
        assert!(held <= MAX_EARLY_BYTES, "held {held} bytes");
        assert!(
            matches!(e, ViewerError::Order(OrderError::TooMuchHeld { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("flow control"), "{e}");
        // The update they wait for is still taken, however large.
        let mut v = Viewer::new();
        v.offer(big(2)).unwrap();
        assert!(matches!(
            v.offer(big(1)),
            Err(ViewerError::Apply { seq: 1, .. })
        ));
    }

    #[test]
    fn png_has_the_pixels() {
        let mut v = Viewer::new();
        v.offer(solid(1, 200)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.png");
        write_png(v.framebuffer(), &p).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(&buf[..6], &[200, 200, 200, 200, 200, 200]);
    }
}
