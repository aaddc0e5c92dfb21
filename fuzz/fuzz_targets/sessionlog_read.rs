//! Reading a session log: open a `LogReader` over the bytes, read and decode every record,
//! decode stored screen updates, and check the verdict. Errors and any verdict are expected;
//! panics are not. Records come out with consecutive indices and non-decreasing times; a log
//! that verifies intact ends with its seal, and cutting it short always gives "ended early",
//! never "tampered" (a crash must never look like tampering).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::sessionlog::record::KIND_SEAL;
use protocol::sessionlog::replay::decode_stored_update;
use protocol::sessionlog::{verify, LogReader, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = LogReader::new(data) else {
        return;
    };
    let mut expected_index = 0;
    let mut last_time = 0;
    let mut last_kind = None;
    while let Ok(Some(rec)) = reader.next_record() {
        assert_eq!(rec.index, expected_index);
        assert!(rec.time_ms >= last_time);
        expected_index += 1;
        last_time = rec.time_ms;
        last_kind = Some(rec.kind);
        let _ = rec.decode();
        let _ = decode_stored_update(rec.kind, &rec.body);
    }
    let verdict = reader.verdict().cloned().expect("a finished reader has a verdict");
    assert_eq!(verify(data).ok(), Some(verdict.clone()));
    if let Verdict::Intact { records, .. } = verdict {
        assert_eq!(records, expected_index);
        assert_eq!(last_kind, Some(KIND_SEAL));
        for cut in [data.len() - 1, data.len() / 2] {
            match verify(&data[..cut]) {
                Ok(Verdict::EndedEarly { .. }) => {}
                other => panic!("a log cut at {cut} of {} reads as {other:?}", data.len()),
            }
        }
    }
});
