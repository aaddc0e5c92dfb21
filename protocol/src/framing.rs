//! Length-prefixed frames on a byte stream.
//!
//! A frame is `len: u32 LE` then `len` bytes. [`FrameReader`] checks `len` against a maximum
//! before it allocates, so an oversized or hostile prefix costs nothing but an error. The pure
//! [`split_frame`] does the same on a buffer and is what the fuzz target drives.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes announced, the limit is {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Looks for a whole frame at the start of `buf`. Returns the payload and the number of bytes the
/// frame occupies, `Ok(None)` if more bytes are needed, or an error if the announced length
/// exceeds `max`.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if buf.len() - 4 < len {
        return Ok(None);
    }
    Ok(Some((&buf[4..4 + len], 4 + len)))
}

/// Reads frames from an async byte stream into a reused buffer.
///
/// [`FrameReader::next_frame`] is cancel-safe: progress through a frame is kept in the reader,
/// so it can sit in a `select!` loop and be polled again after another branch won.
pub struct FrameReader<R> {
    inner: R,
    max: usize,
    header: [u8; 4],
    header_got: usize,
    body_got: usize,
    in_body: bool,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            header: [0; 4],
            header_got: 0,
            body_got: 0,
            in_body: false,
            buf: Vec::new(),
        }
    }

    /// Reads the next frame. `Ok(None)` means the stream ended cleanly between frames.
    pub async fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        Ok(self.next_frame_mut().await?.map(|f| &*f))
    }

    /// As [`FrameReader::next_frame`], with the frame writable in place (a sealed record is
    /// opened where it lies, without a copy).
    pub async fn next_frame_mut(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        if !self.in_body {
            while self.header_got < 4 {
                let n = self.inner.read(&mut self.header[self.header_got..]).await?;
                if n == 0 {
                    return if self.header_got == 0 {
                        Ok(None)
                    } else {
                        Err(FrameError::Truncated)
                    };
                }
                self.header_got += n;
            }
            let len = u32::from_le_bytes(self.header) as usize;
            if len > self.max {
                return Err(FrameError::TooLarge { len, max: self.max });
            }
            self.buf.clear();
            self.buf.resize(len, 0);
            self.body_got = 0;
            self.in_body = true;
        }
        while self.body_got < self.buf.len() {
            let n = self.inner.read(&mut self.buf[self.body_got..]).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
            self.body_got += n;
        }
        self.in_body = false;
        self.header_got = 0;
        Ok(Some(&mut self.buf))
    }

    /// The frame the last [`FrameReader::next_frame_mut`] returned, again (empty before the
    /// first): a frame looked at to decide who reads the stream is handed on with the reader.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        if self.in_body {
            &mut []
        } else {
            &mut self.buf
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Changes the largest frame taken from now on (a handshake reads with a small limit, the
    /// session after it with a larger one).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_frame_past_the_current_limit_is_refused_before_its_body_is_read() {
        // A handshake-sized limit: the length alone refuses the frame, though its body never
        // comes (a reader that waited for the body would hang here).
        let mut announced = (60u32 * 1024).to_le_bytes().to_vec();
        announced.extend_from_slice(&[0u8; 16]);
        let mut r = FrameReader::new(&announced[..], 1024);
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::TooLarge {
                len: 61440,
                max: 1024
            })
        ));
        // Raised afterwards, the same length passes the check (and then the body is short).
        let mut r = FrameReader::new(&announced[..], 1024);
        r.set_max(64 * 1024);
        assert!(matches!(r.next_frame().await, Err(FrameError::Truncated)));
    }

    use super::*;

    #[test]
    fn split_needs_whole_frame_and_checks_limit() {
        assert!(split_frame(&[1, 0], 10).unwrap().is_none());
        assert!(split_frame(&[3, 0, 0, 0, 9, 9], 10).unwrap().is_none());
        let (p, used) = split_frame(&[2, 0, 0, 0, 7, 8, 1], 10).unwrap().unwrap();
        assert_eq!(p, &[7, 8]);
        assert_eq!(used, 6);
        assert!(matches!(
            split_frame(&[0xff, 0xff, 0xff, 0xff], 10),
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 10
            })
        ));
    }

    #[tokio::test]
    async fn reader_rejects_oversized_prefix_before_reading_body() {
        let bytes: &[u8] = &[0, 0, 0, 0x7f];
        let mut r = FrameReader::new(bytes, 1024);
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn reader_reports_truncation_and_clean_end() {
        let bytes: &[u8] = &[2, 0, 0, 0, 1, 2, 5, 0];
        let mut r = FrameReader::new(bytes, 1024);
        assert_eq!(r.next_frame().await.unwrap().unwrap(), &[1, 2]);
        assert!(matches!(r.next_frame().await, Err(FrameError::Truncated)));
        let empty: &[u8] = &[];
        let mut r = FrameReader::new(empty, 1024);
        assert!(r.next_frame().await.unwrap().is_none());
    }
}
