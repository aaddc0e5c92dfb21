//! Replaying a corpus file: open a `SCRNSEQ1` reader over the bytes and read every frame.
//! Errors are expected; panics are not. Every frame returned has the header's size.
//!
//! Note: the header alone can claim an 8192x8192 screen, for which the reader allocates a
//! 268 MB frame up front. That is deliberately not capped here, so libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb see what the reader really does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::scrnseq::Reader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    let bytes = reader.header().frame_bytes();
    let mut last_index = reader.next_index();
    while let Ok(Some((_t_ms, frame))) = reader.next_frame() {
        assert_eq!(frame.len(), bytes);
        assert_eq!(reader.next_index(), last_index + 1);
        last_index = reader.next_index();
    }
});
