//! The `SCRNSEQ1` screen-capture sequence format of the shared corpus.
//!
//! Header: magic `SCRNSEQ1`, then little-endian `u32` width, height, frame count and capture
//! interval in ms. Each frame: `u32` time since the first frame in ms, `u32` payload length, and
//! the payload: zstd of the frame XOR the previous frame (the first frame XORs with zeros).
//! Pixels are BGRX. [`Reader`] replays a file frame by frame; [`Writer`] makes one (tests make
//! synthetic sequences with it).

use std::io::{Read, Write};

use crate::codec::{BPP, MAX_EDGE};

pub const MAGIC: &[u8; 8] = b"SCRNSEQ1";

#[derive(Debug, thiserror::Error)]
pub enum ScrnSeqError {
    #[error("not a SCRNSEQ1 file (the first 8 bytes are not the magic)")]
    BadMagic,
    #[error("screen size {0}x{1} is not allowed")]
    BadSize(u32, u32),
    #[error("frame {index}: payload of {len} bytes is larger than allowed")]
    PayloadTooLarge { index: u32, len: u32 },
    #[error("frame {index}: payload does not decompress to one frame: {reason}")]
    BadPayload { index: u32, reason: String },
    #[error("file ends early: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub frame_count: u32,
    pub interval_ms: u32,
}

impl Header {
    pub fn frame_bytes(&self) -> usize {
        self.width as usize * self.height as usize * BPP
    }
}

/// Replays a sequence frame by frame.
pub struct Reader<R> {
    inner: R,
    header: Header,
    frame: Vec<u8>,
    delta: Vec<u8>,
    payload: Vec<u8>,
    next_index: u32,
    /// Time and payload length of the next frame, when already read by [`Reader::peek_time`].
    pending: Option<(u32, u32)>,
    decompressor: zstd::bulk::Decompressor<'static>,
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl<R: Read> Reader<R> {
    pub fn new(mut inner: R) -> Result<Self, ScrnSeqError> {
        let mut magic = [0u8; 8];
        inner.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(ScrnSeqError::BadMagic);
        }
        let header = Header {
            width: read_u32(&mut inner)?,
            height: read_u32(&mut inner)?,
            frame_count: read_u32(&mut inner)?,
            interval_ms: read_u32(&mut inner)?,
        };
        let (w, h) = (header.width, header.height);
        if w == 0 || h == 0 || w > MAX_EDGE || h > MAX_EDGE {
            return Err(ScrnSeqError::BadSize(w, h));
        }
        Ok(Self {
            inner,
            header,
            frame: vec![0; header.frame_bytes()],
            delta: Vec::with_capacity(header.frame_bytes()),
            payload: Vec::new(),
            next_index: 0,
            pending: None,
            decompressor: zstd::bulk::Decompressor::new()?,
        })
    }

    pub fn header(&self) -> Header {
        self.header
    }

    /// Index of the frame the next call to [`Reader::next_frame`] returns.
    pub fn next_index(&self) -> u32 {
        self.next_index
    }

    /// The time of the next frame, without decoding it; `None` after the last.
    pub fn peek_time(&mut self) -> Result<Option<u32>, ScrnSeqError> {
        if self.next_index >= self.header.frame_count {
            return Ok(None);
        }
        if self.pending.is_none() {
            let t_ms = read_u32(&mut self.inner)?;
            let len = read_u32(&mut self.inner)?;
            self.pending = Some((t_ms, len));
        }
        Ok(self.pending.map(|(t, _)| t))
    }

    /// The frame last returned by [`Reader::next_frame`] (all zero before the first).
    pub fn current(&self) -> &[u8] {
        &self.frame
    }

    /// The next frame and its time in ms, or `None` after the last.
    pub fn next_frame(&mut self) -> Result<Option<(u32, &[u8])>, ScrnSeqError> {
        if self.peek_time()?.is_none() {
            return Ok(None);
        }
        let index = self.next_index;
        let (t_ms, len) = self.pending.take().expect("peek_time filled it");
        // zstd never expands incompressible input by more than a small fraction.
        let max = self.header.frame_bytes() + self.header.frame_bytes() / 64 + 1024;
        if len as usize > max {
            return Err(ScrnSeqError::PayloadTooLarge { index, len });
        }
        // Read what is there rather than allocate what the length claims: a short file
        // costs only its own size.
        self.payload.clear();
        let got = (&mut self.inner)
            .take(u64::from(len))
            .read_to_end(&mut self.payload)?;
        if got != len as usize {
            return Err(ScrnSeqError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.delta.clear();
        self.decompressor
            .decompress_to_buffer(&self.payload, &mut self.delta)
            .map_err(|e| ScrnSeqError::BadPayload {
                index,
                reason: e.to_string(),
            })?;
        if self.delta.len() != self.frame.len() {
            return Err(ScrnSeqError::BadPayload {
                index,
                reason: format!("{} bytes, {} expected", self.delta.len(), self.frame.len()),
            });
        }
        for (f, d) in self.frame.iter_mut().zip(&self.delta) {
            *f ^= d;
        }
        self.next_index += 1;
        Ok(Some((t_ms, &self.frame)))
    }
}

/// Writes a sequence.
pub struct Writer<W> {
    inner: W,
    previous: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut inner: W, header: Header) -> std::io::Result<Self> {
        inner.write_all(MAGIC)?;
        for v in [
            header.width,
            header.height,
            header.frame_count,
            header.interval_ms,
        ] {
            inner.write_all(&v.to_le_bytes())?;
        }
        Ok(Self {
            inner,
            previous: vec![0; header.frame_bytes()],
        })
    }

    pub fn push(&mut self, t_ms: u32, frame: &[u8]) -> std::io::Result<()> {
        assert_eq!(frame.len(), self.previous.len(), "frame size");
        let delta: Vec<u8> = frame
            .iter()
            .zip(&self.previous)
            .map(|(a, b)| a ^ b)
            .collect();
        let z = zstd::bulk::compress(&delta, 3)?;
        self.inner.write_all(&t_ms.to_le_bytes())?;
        self.inner.write_all(&(z.len() as u32).to_le_bytes())?;
        self.inner.write_all(&z)?;
        self.previous.copy_from_slice(frame);
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let header = Header {
            width: 3,
            height: 2,
            frame_count: 2,
            interval_ms: 50,
        };
        let f1: Vec<u8> = (0..24).collect();
        let f2: Vec<u8> = (0..24).map(|b| b * 3).collect();
        let mut w = Writer::new(Vec::new(), header).unwrap();
        w.push(0, &f1).unwrap();
        w.push(50, &f2).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header(), header);
        assert_eq!(r.next_frame().unwrap().unwrap(), (0, &f1[..]));
        assert_eq!(r.next_frame().unwrap().unwrap(), (50, &f2[..]));
        assert!(r.next_frame().unwrap().is_none());
        assert!(matches!(
            Reader::new(&b"SCRNSEQ2xxxxxxxxxxxxxxxx"[..]),
            Err(ScrnSeqError::BadMagic)
        ));
    }
}
