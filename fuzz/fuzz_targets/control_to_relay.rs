//! What a relay does with the first bytes of a connection: peek at the hello's version, then
//! decode a whole `ToRelay`. Neither may panic; what decodes must re-encode and decode the same,
//! and the peeked version must agree with a hello that decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::control::{peek_hello_version, ToRelay};
use protocol::wire;

fuzz_target!(|data: &[u8]| {
    let peeked = peek_hello_version(data);
    if let Ok(msg) = wire::decode_control::<ToRelay>(data) {
        if let ToRelay::Hello { version, .. } = &msg {
            assert_eq!(
                peeked,
                Some(*version),
                "peek disagrees with the decoded hello"
            );
        } else {
            assert_eq!(peeked, None, "peek found a hello in {msg:?}");
        }
        let frame = wire::encode_frame(&msg);
        let back: ToRelay = wire::decode_control(&frame[4..]).expect("re-encoded message decodes");
        assert_eq!(back, msg);
    }
});
