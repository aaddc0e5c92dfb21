//! What a technician does with a peer frame: decode a `PeerMessage` and, for a screen update,
//! apply it to a fresh framebuffer. A malformed update must come back as an error, never a panic
//! or an out-of-bounds write; one that applies must leave the framebuffer at its size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::peer::PeerMessage;
use protocol::codec::{Decoder as Framebuffer, BPP};
use protocol::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = wire::decode_peer::<PeerMessage>(data) else {
        return;
    };
    let frame = wire::encode_frame(&msg);
    let back: PeerMessage = wire::decode_peer(&frame[4..]).expect("re-encoded message decodes");
    assert_eq!(back, msg);
    if let PeerMessage::ScreenUpdate(update) = &msg {
        let mut fb = Framebuffer::new();
        if fb.apply(update).is_ok() {
            assert_eq!((fb.width(), fb.height()), (update.width, update.height));
            assert_eq!(
                fb.pixels().len(),
                update.width as usize * update.height as usize * BPP
            );
        }
    }
});
