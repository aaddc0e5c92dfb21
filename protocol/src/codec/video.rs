//! The lossy path: H.264 streams for regions that change on most frames.
//!
//! Not built yet: a video op is refused.

use super::tile::Rect;
use super::CodecError;

/// The viewer's H.264 decoders, one per video stream.
#[derive(Default)]
pub struct VideoDecoders {}

impl VideoDecoders {
    pub fn clear(&mut self) {}

    pub fn decode(
        &mut self,
        _stream: u32,
        _restart: bool,
        _data: &[u8],
        _pixels: &mut [u8],
        _stride: usize,
        _r: Rect,
    ) -> Result<(), CodecError> {
        Err(CodecError::BadVideo(
            "video regions are not supported".into(),
        ))
    }
}
