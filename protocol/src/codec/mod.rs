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

/// Most pixel work one update may ask for, as a multiple of its screen's area: the sum of the
/// areas of its copies, tiles and video pictures. The encoder moves each tile at most once,
/// codes it at most once and covers it with at most one video picture, so its updates stay
/// within 3 times the screen; an update asking for more (a million whole-screen copies in a few
/// kilobytes) is refused before any pixel is touched, so no update costs more than a few
/// passes over the screen.
pub const WORK_FACTOR: u64 = 4;

/// Most ops one update may hold: a copy and a tile for every 64x64 tile of the largest screen,
/// and room for video pictures. Beyond the pixel work, each op costs a check and a damage
/// rectangle for the viewer, so their number has its own cap.
pub const MAX_OPS: usize = 2 * (MAX_EDGE as usize / TILE) * (MAX_EDGE as usize / TILE) + 16;

/// Whether a screen of `width` x `height` may come from the network (1 to [`MAX_EDGE`] pixels
/// a side): every size an update, a log or an export uses is checked here first.
pub fn check_screen_size(width: u32, height: u32) -> Result<(), CodecError> {
    if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
        return Err(CodecError::BadScreenSize { width, height });
    }
    Ok(())
}

/// Why an update could not be applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("screen size {width}x{height} is not allowed (1 to {MAX_EDGE} pixels a side)")]
    BadScreenSize { width: u32, height: u32 },
    #[error("op {index}: {reason}")]
    BadOp { index: usize, reason: &'static str },
    #[error(
        "the update's ops cover {work} pixels, more than {WORK_FACTOR} times its screen \
         ({budget} pixels)"
    )]
    TooMuchWork { work: u64, budget: u64 },
    #[error("the update has {ops} ops; at most {MAX_OPS} are allowed")]
    TooManyOps { ops: usize },
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
