//! Length-prefixed framing: `split_frame` walks consecutive frames of arbitrary bytes with a
//! small maximum, and `FrameReader` reads the same bytes from a stream that delivers them in
//! small pieces. Both must agree, frame for frame and on how the bytes end.
//!
//! Input: byte 0 picks the maximum (0..=1020), byte 1 the read chunk size (1..=8), the rest is
//! the stream.
#![no_main]

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use protocol::framing::{split_frame, FrameError, FrameReader};
use tokio::io::{AsyncRead, ReadBuf};

/// Delivers its bytes at most `chunk` at a time, so the reader's header loop is exercised.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that never waits (its reader is always ready).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a reader over memory is never pending"),
    }
}

#[derive(Debug, PartialEq)]
enum End {
    /// The bytes ended exactly after a frame.
    Clean,
    /// The bytes ended in the middle of a header or payload.
    Truncated,
    /// A prefix announced this many bytes, more than the maximum.
    TooLarge(usize),
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = data[0] as usize * 4;
    let chunk = 1 + (data[1] as usize % 8);
    let stream = &data[2..];

    let mut split_frames = Vec::new();
    let mut buf = stream;
    let split_end = loop {
        match split_frame(buf, max) {
            Ok(Some((payload, used))) => {
                assert_eq!(used, 4 + payload.len());
                assert!(used <= buf.len());
                assert!(payload.len() <= max);
                let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                assert_eq!(len, payload.len());
                assert_eq!(payload, &buf[4..used]);
                split_frames.push(payload);
                buf = &buf[used..];
            }
            Ok(None) if buf.is_empty() => break End::Clean,
            Ok(None) => {
                assert!(
                    buf.len() < 4 || {
                        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                        len <= max && buf.len() - 4 < len
                    }
                );
                break End::Truncated;
            }
            Err(FrameError::TooLarge { len, max: m }) => {
                assert_eq!(m, max);
                assert!(len > max);
                break End::TooLarge(len);
            }
            Err(e) => panic!("split_frame returned {e:?}"),
        }
    };

    let mut reader = FrameReader::new(
        Chunked {
            rest: stream,
            chunk,
        },
        max,
    );
    let mut read_frames = 0;
    let read_end = loop {
        match now(reader.next_frame()) {
            Ok(Some(payload)) => {
                assert!(
                    read_frames < split_frames.len(),
                    "reader found more frames than split_frame"
                );
                assert_eq!(payload, split_frames[read_frames]);
                read_frames += 1;
            }
            Ok(None) => break End::Clean,
            Err(FrameError::Truncated) => break End::Truncated,
            Err(FrameError::TooLarge { len, .. }) => break End::TooLarge(len),
            Err(e) => panic!("FrameReader returned {e:?}"),
        }
    };
    assert_eq!(read_frames, split_frames.len());
    assert_eq!(read_end, split_end);
});
