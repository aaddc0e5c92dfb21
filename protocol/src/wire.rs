//! Message encoding: serde types as bincode 2 with a size limit on every decode.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of bincode. The length is
//! checked against the plane's maximum before anything is allocated (see [`crate::framing`]), and
//! the bincode decoder is given the same limit so that a length field inside a message (a vector,
//! a string) cannot claim more memory than the frame itself could hold.

use serde::{de::DeserializeOwned, Serialize};

/// Largest control-plane frame (peer <-> relay). Control messages are small.
pub const CONTROL_MAX_FRAME: usize = 64 * 1024;

/// Largest peer-plane frame (agent <-> technician). A screen update of a 4K screen sent raw is
/// 33,177,600 bytes of pixels; this leaves room for that plus tile headers.
pub const PEER_MAX_FRAME: usize = 40 * 1024 * 1024;

/// Why bytes could not be turned into a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes `msg` as a whole frame: the 4-byte length prefix followed by the payload.
pub fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame_into(msg, &mut out);
    out
}

/// Appends one frame (length prefix and payload) for `msg` to `out`.
pub fn encode_frame_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    // Encoding into memory cannot fail for our types: no limit applies on the way out.
    bincode::serde::encode_into_std_write(msg, out, bincode::config::standard())
        .expect("encoding a message into memory cannot fail");
    let len = u32::try_from(out.len() - start - 4).expect("a message fits in 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes a whole payload (without its length prefix) as a message of type `T`, with at most
/// `LIMIT` bytes of claimed content. Trailing bytes are an error.
pub fn decode<T: DeserializeOwned, const LIMIT: usize>(payload: &[u8]) -> Result<T, DecodeError> {
    if payload.len() > LIMIT {
        return Err(DecodeError::TooLarge {
            len: payload.len(),
            max: LIMIT,
        });
    }
    let (msg, used) = bincode::serde::decode_from_slice(payload, config::<LIMIT>())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(DecodeError::Trailing(payload.len() - used));
    }
    Ok(msg)
}

/// Decodes a control-plane payload.
pub fn decode_control<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    decode::<T, CONTROL_MAX_FRAME>(payload)
}

/// Decodes a peer-plane payload.
pub fn decode_peer<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    decode::<T, PEER_MAX_FRAME>(payload)
}
