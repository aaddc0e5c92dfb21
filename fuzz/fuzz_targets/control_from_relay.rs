//! What a peer does with a control frame from the relay: decode a `FromRelay`. No panic; what
//! decodes must re-encode and decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::control::FromRelay;
use protocol::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = wire::decode_control::<FromRelay>(data) {
        let frame = wire::encode_frame(&msg);
        let back: FromRelay =
            wire::decode_control(&frame[4..]).expect("re-encoded message decodes");
        assert_eq!(back, msg);
    }
});
