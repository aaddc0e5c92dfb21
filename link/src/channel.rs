//! Typed message channels over QUIC streams: each message is one length-prefixed bincode frame
//! (see `protocol::wire`), and every read is bounded by the plane's frame limit. The control
//! plane uses them as they are; the peer plane's are sealed (see [`crate::sealed`]).

use std::marker::PhantomData;

use protocol::framing::{FrameError, FrameReader};
use protocol::wire::{self, DecodeError};
use quinn::{RecvStream, SendStream};
use serde::{de::DeserializeOwned, Serialize};

/// Why a message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
}

impl ChannelError {
    /// True when the other end sent bytes that break the protocol (as opposed to the stream or
    /// connection going away).
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            ChannelError::Decode(_) | ChannelError::Frame(FrameError::TooLarge { .. })
        )
    }
}

/// Sends messages of type `T` on a stream.
pub struct FramedSend<T> {
    stream: SendStream,
    buf: Vec<u8>,
    _msg: PhantomData<fn(&T)>,
}

impl<T: Serialize> FramedSend<T> {
    pub fn new(stream: SendStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            _msg: PhantomData,
        }
    }

    pub async fn send(&mut self, msg: &T) -> Result<(), ChannelError> {
        self.buf.clear();
        wire::encode_frame_into(msg, &mut self.buf);
        self.stream.write_all(&self.buf).await?;
        Ok(())
    }

    /// Ends the stream cleanly after what was sent.
    pub fn finish(&mut self) -> Result<(), ChannelError> {
        Ok(self.stream.finish()?)
    }

    pub fn stream_mut(&mut self) -> &mut SendStream {
        &mut self.stream
    }
}

/// Receives messages of type `T` from a stream.
pub struct FramedRecv<T> {
    reader: FrameReader<RecvStream>,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
}

impl<T: DeserializeOwned> FramedRecv<T> {
    /// A control-plane channel (small frames).
    pub fn control(stream: RecvStream) -> Self {
        Self {
            reader: FrameReader::new(stream, wire::CONTROL_MAX_FRAME),
            decode: wire::decode_control::<T>,
        }
    }

    /// The next message, or `None` when the stream ended cleanly.
    pub async fn recv(&mut self) -> Result<Option<T>, ChannelError> {
        let decode = self.decode;
        match self.reader.next_frame().await? {
            None => Ok(None),
            Some(payload) => Ok(Some(decode(payload)?)),
        }
    }

    /// The next frame undecoded, for a caller that wants to look at bytes it cannot decode
    /// (the relay reads the version out of an unsupported hello).
    pub async fn recv_frame(&mut self) -> Result<Option<&[u8]>, ChannelError> {
        Ok(self.reader.next_frame().await?)
    }

    /// Decodes a frame from [`FramedRecv::recv_frame`].
    pub fn decode(&self, payload: &[u8]) -> Result<T, ChannelError> {
        Ok((self.decode)(payload)?)
    }

    pub fn stream_mut(&mut self) -> &mut RecvStream {
        self.reader.get_mut()
    }
}
