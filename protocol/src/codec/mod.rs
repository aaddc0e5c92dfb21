//! The screen codec: frames in, [`Update`]s out, and back.
//!
//! Built for what technicians look at (text, dialogs, terminals): text arrives exactly.
//!
//! - [`detect`]: which 64x64 tiles changed against the image the viewer holds;
//! - [`tile`]: lossless coding of one tile (solid, palette with runs, palette against the
//!   viewer's pixels, predicted, temporal), whichever fits the content;
//! - [`motion`]: scroll and move detection, so moved content travels as copies;
//! - [`decoder`]: applies updates to a framebuffer, refusing malformed ones with an error.
//! - [`encoder`]: the per-viewer state that turns frames into updates;
//! - [`order`]: updates back in sequence after travelling on separate streams;
//! - [`video`]: the lossy path for regions that change on most frames.
//!
//! # Wiring
//!
//! Agent, one [`Encoder`] per viewer, called whenever the viewer may take another update (its
//! unacknowledged count is below the limit); frames skipped meanwhile merge into the next update:
//!
//! ```text
//! let mut enc = protocol::codec::Encoder::new(width, height);
//! // on a new viewer or a refresh request: enc.request_full();
//! if let Some(update) = enc.encode(&frame, width, height, t_ms, seq) {
//!     send(PeerMessage::ScreenUpdate(update)); // a `protocol::peer::ScreenUpdate`
//! }
//! ```
//!
//! Technician:
//!
//! ```text
//! let mut dec = protocol::codec::Decoder::new();
//! dec.apply(&update)?; // CodecError: close the stream with its text as the reason
//! show(dec.pixels(), dec.width(), dec.height());
//! ```
//!
//! Pixels are 4 bytes, B, G, R, X, rows top to bottom without padding, as X11 delivers them.

pub mod decoder;
pub mod detect;
pub mod encoder;
pub mod motion;
pub mod order;
pub mod tile;
pub mod video;

pub use decoder::Decoder;
pub use encoder::Encoder;

/// One update on the wire.
pub type Update = crate::peer::ScreenUpdate;

/// Tile edge in pixels.
pub const TILE: usize = 64;
/// Bytes per pixel.
pub const BPP: usize = 4;
/// Largest screen edge accepted from the network.
pub const MAX_EDGE: u32 = 8192;

/// Why an update could not be applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("screen size {width}x{height} is not allowed (1 to {MAX_EDGE} pixels a side)")]
    BadScreenSize { width: u32, height: u32 },
    #[error("op {index}: {reason}")]
    BadOp { index: usize, reason: &'static str },
    #[error("tile data does not decompress: {0}")]
    BadCompression(String),
    #[error("malformed tile: {0}")]
    BadTile(&'static str),
    #[error("malformed video: {0}")]
    BadVideo(String),
    #[error("op {index}: {source}")]
    At {
        index: usize,
        source: Box<CodecError>,
    },
}

impl CodecError {
    /// This error, said of op `index`.
    pub(crate) fn at(self, index: usize) -> Self {
        CodecError::At {
            index,
            source: Box::new(self),
        }
    }
}
