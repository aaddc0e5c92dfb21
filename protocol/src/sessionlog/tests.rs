//! Tests of the session-log format: round trip, flush policy, and every way of damaging a file
//! (each byte flipped, each record deleted, neighbours swapped, every truncation, zero tails).

use std::io::{self, Write};

use super::record::*;
use super::*;
use crate::control::Role;
use crate::input::{InputEvent, Key, Modifiers, MouseButton};
use crate::peer::{ConsentState, EndReason, ScreenUpdate};

fn opened(typed_text: TypedText) -> SessionOpened {
    SessionOpened {
        started_unix_ms: 1_700_000_000_000,
        relay_address: "relay.example:4433".into(),
        relay_fingerprint: "ab".repeat(32),
        relay_software: "relay 0.1.0".into(),
        technician: Participant {
            role: Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: "technician 0.1.0".into(),
        },
        agent: Participant {
            role: Role::Agent,
            description: "agent at 10.0.0.9:6000".into(),
            software: "agent 0.1.0".into(),
        },
        protocol_version: crate::PROTOCOL_VERSION,
        code_sha256: code_sha256("123456789"),
        typed_text,
    }
}

/// A whole-screen update of 16x8 pixels of one colour, as the codec makes it.
fn solid(seq: u64, color: u8) -> ScreenUpdate {
    let frame = [color, color, 0, 0].repeat(16 * 8);
    let mut enc = crate::codec::Encoder::new(16, 8);
    enc.request_full();
    enc.encode(&frame, 16, 8, 0, seq).expect("a full update")
}

fn key(c: char) -> InputEvent {
    InputEvent::Key {
        down: true,
        key: Key::Char(c),
        text: Some(c.to_string()),
        modifiers: Modifiers::NONE,
    }
}

/// A small sealed log of every kind of record.
fn sample(typed_text: TypedText) -> Vec<u8> {
    let mut w = LogWriter::create(Vec::new(), &opened(typed_text)).unwrap();
    w.consent(5, ConsentState::Control).unwrap();
    w.screen_update(10, &solid(1, 10)).unwrap();
    w.input(20, &InputEvent::PointerMove { x: 3, y: 4 })
        .unwrap();
    w.input(
        21,
        &InputEvent::Button {
            button: MouseButton::Left,
            down: true,
        },
    )
    .unwrap();
    w.input(30, &key('s')).unwrap();
    w.screen_update(40, &solid(2, 20)).unwrap();
    w.error(50, "something odd").unwrap();
    w.screen_update(60, &solid(3, 30)).unwrap();
    w.finish(70, &CloseReason::ByAgent(EndReason::UserEnded))
        .unwrap()
}

/// (offset, end) of every record of an intact log.
fn spans(log: &[u8]) -> Vec<(usize, usize)> {
    let mut r = LogReader::new(log).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        let start = rec.offset as usize;
        out.push((start, start + RECORD_HEADER_LEN + rec.body.len() + HASH_LEN));
    }
    assert!(matches!(r.verdict(), Some(Verdict::Intact { .. })));
    out
}

#[test]
fn a_sealed_log_reads_back_as_written() {
    let log = sample(TypedText::Full);
    let records: Vec<Record> = LogReader::new(&log[..])
        .unwrap()
        .map(|r| r.unwrap().decode().unwrap())
        .collect();
    assert_eq!(records.len(), 11);
    assert_eq!(records[0], Record::SessionOpened(opened(TypedText::Full)));
    assert_eq!(records[1], Record::Consent(ConsentState::Control));
    assert_eq!(records[2], Record::ScreenUpdate(solid(1, 10)));
    assert_eq!(records[5], Record::Input(RecordedInput::Event(key('s'))));
    assert_eq!(
        records[9],
        Record::SessionClosed(SessionClosed {
            reason: CloseReason::ByAgent(EndReason::UserEnded)
        })
    );
    assert_eq!(records[10], Record::Seal);
    let v = verify(&log[..]).unwrap();
    let Verdict::Intact {
        records,
        duration_ms,
        ..
    } = v
    else {
        panic!("{v}")
    };
    assert_eq!((records, duration_ms), (11, 70));
    assert_eq!(v.exit_code(), 0);
}

#[test]
fn count_only_logs_hold_no_typed_characters() {
    let log = sample(TypedText::CountOnly);
    let inputs: Vec<Record> = LogReader::new(&log[..])
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == KIND_INPUT)
        .map(|r| r.decode().unwrap())
        .collect();
    assert_eq!(
        inputs[2],
        Record::Input(RecordedInput::Typed {
            down: true,
            chars: 1,
            modifiers: Modifiers::NONE
        })
    );
    // The typed 's' is nowhere in any input record's body.
    for rec in LogReader::new(&log[..]).unwrap().map(|r| r.unwrap()) {
        if rec.kind == KIND_INPUT {
            assert!(!rec.body.contains(&b's'), "{rec:?}");
        }
    }
}

#[test]
fn every_flipped_byte_is_tampering_at_its_record() {
    let log = sample(TypedText::Full);
    let spans = spans(&log);
    for i in 0..log.len() {
        for mask in [0x01u8, 0xff] {
            let mut bad = log.clone();
            bad[i] ^= mask;
            let got = verify(&bad[..]);
            if i < 8 {
                assert!(matches!(got, Err(OpenError::NotALog)), "byte {i}: {got:?}");
            } else if i < 10 {
                assert!(
                    matches!(got, Err(OpenError::UnsupportedVersion { .. })),
                    "byte {i}: {got:?}"
                );
            } else {
                // The reserved header bytes are covered by record 0's previous hash.
                let want = spans
                    .iter()
                    .position(|(s, e)| (*s..*e).contains(&i))
                    .unwrap_or(0) as u64;
                match got {
                    Ok(Verdict::Tampered { at_record, .. }) if at_record == want => {}
                    other => panic!("byte {i} ^ {mask:#x}: want tampered at {want}, got {other:?}"),
                }
            }
        }
    }
}

#[test]
fn every_truncation_ends_early_after_the_last_whole_record() {
    let log = sample(TypedText::Full);
    let spans = spans(&log);
    for cut in 0..log.len() {
        let got = verify(&log[..cut]).unwrap();
        let whole = spans.iter().take_while(|(_, e)| *e <= cut).count();
        let Verdict::EndedEarly {
            after_record,
            at_ms,
            torn_bytes,
        } = got
        else {
            panic!("cut at {cut}: {got:?}")
        };
        assert_eq!(
            after_record,
            whole.checked_sub(1).map(|n| n as u64),
            "cut {cut}"
        );
        assert_eq!(at_ms.is_some(), whole > 0);
        let boundary = spans
            .get(whole)
            .map_or(FILE_HEADER_LEN.min(cut), |s| s.0.min(cut));
        let boundary = if whole == 0 && cut < FILE_HEADER_LEN {
            0
        } else {
            boundary
        };
        assert_eq!(torn_bytes, (cut - boundary) as u64, "cut {cut}");
    }
}

fn without(log: &[u8], spans: &[(usize, usize)], i: usize) -> Vec<u8> {
    let mut out = log[..spans[i].0].to_vec();
    out.extend_from_slice(&log[spans[i].1..]);
    out
}

#[test]
fn a_deleted_record_is_found_where_it_was() {
    let log = sample(TypedText::Full);
    let spans = spans(&log);
    let last = spans.len() - 1;
    for i in 0..spans.len() {
        let got = verify(&without(&log, &spans, i)[..]).unwrap();
        if i == last {
            // Dropping the seal is a truncation: only the seal (and the relay's checkpoint)
            // tells it from a crash.
            assert!(
                matches!(got, Verdict::EndedEarly { after_record: Some(n), .. } if n == last as u64 - 1),
                "{got:?}"
            );
        } else {
            assert!(
                matches!(got, Verdict::Tampered { at_record, .. } if at_record == i as u64),
                "deleting {i}: {got:?}"
            );
        }
    }
}

#[test]
fn two_swapped_records_are_found_at_the_first() {
    let log = sample(TypedText::Full);
    let spans = spans(&log);
    for i in 0..spans.len() - 1 {
        let (a, b) = (spans[i], spans[i + 1]);
        let mut bad = log[..a.0].to_vec();
        bad.extend_from_slice(&log[b.0..b.1]);
        bad.extend_from_slice(&log[a.0..a.1]);
        bad.extend_from_slice(&log[b.1..]);
        let got = verify(&bad[..]).unwrap();
        assert!(
            matches!(got, Verdict::Tampered { at_record, .. } if at_record == i as u64),
            "swapping {i} and {}: {got:?}",
            i + 1
        );
    }
}

#[test]
fn bytes_after_the_seal_are_tampering() {
    let mut log = sample(TypedText::Full);
    log.push(0);
    let got = verify(&log[..]).unwrap();
    assert!(
        matches!(got, Verdict::Tampered { at_record: 11, .. }),
        "{got:?}"
    );
    assert_eq!(got.exit_code(), 1);
}

#[test]
fn a_power_cut_zero_tail_ends_early() {
    let log = sample(TypedText::Full);
    let spans = spans(&log);
    // Zeros from a record's start.
    let mut z = log[..spans[4].0].to_vec();
    z.resize(z.len() + 300, 0);
    assert!(
        matches!(
            verify(&z[..]).unwrap(),
            Verdict::EndedEarly {
                after_record: Some(3),
                ..
            }
        ),
        "{:?}",
        verify(&z[..])
    );
    // Zeros from a 4 KiB boundary inside a record: a large record cut by zeros.
    let mut w = LogWriter::create(Vec::new(), &opened(TypedText::Full)).unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
    w.append_raw(1, 300, &big).unwrap();
    let log = w.seal(2).unwrap();
    let mut z = log[..8192].to_vec();
    z.resize(log.len() - 40, 0);
    let got = verify(&z[..]).unwrap();
    assert!(
        matches!(
            got,
            Verdict::EndedEarly {
                after_record: Some(0),
                ..
            }
        ),
        "{got:?}"
    );
    // Zeros that do not run to the end of the file are not a power cut.
    let mut z = log[..8000].to_vec();
    z.resize(9000, 0);
    z.extend_from_slice(&log[9000..]);
    let got = verify(&z[..]).unwrap();
    assert!(
        matches!(got, Verdict::Tampered { at_record: 1, .. }),
        "{got:?}"
    );
}

#[test]
fn unknown_kinds_verify_and_are_passed_on() {
    let mut w = LogWriter::create(Vec::new(), &opened(TypedText::Full)).unwrap();
    w.append_raw(3, 300, b"a future record").unwrap();
    let log = w.seal(4).unwrap();
    let recs: Vec<RawRecord> = LogReader::new(&log[..])
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(recs[1].decode().unwrap(), Record::Unknown { kind: 300 });
    assert_eq!(recs[1].body, b"a future record");
    assert!(matches!(verify(&log[..]).unwrap(), Verdict::Intact { .. }));
}

#[test]
fn not_a_log_and_newer_versions_are_refused() {
    assert!(matches!(
        LogReader::new(&b"\x89PNG\r\n\x1a\n...."[..]),
        Err(OpenError::NotALog)
    ));
    let mut log = sample(TypedText::Full);
    log[8] = 2;
    assert!(matches!(
        verify(&log[..]),
        Err(OpenError::UnsupportedVersion { found: 2 })
    ));
}

/// Records what reached it, write by write.
#[derive(Default)]
struct Probe {
    data: Vec<u8>,
    flushes: usize,
    fail: bool,
}

impl Write for Probe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.fail {
            return Err(io::Error::other("disk full"));
        }
        self.data.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn events_are_flushed_at_once_and_screen_updates_within_a_second() {
    let mut w = LogWriter::create(Probe::default(), &opened(TypedText::Full)).unwrap();
    let after_open = w.bytes_written();
    assert!(after_open > 0, "the opening is written at once");
    w.screen_update(100, &solid(1, 1)).unwrap();
    w.screen_update(600, &solid(2, 2)).unwrap();
    assert_eq!(w.bytes_written(), after_open, "screen updates wait");
    w.tick(1000).unwrap();
    assert_eq!(w.bytes_written(), after_open, "not a second old yet");
    w.tick(1100).unwrap();
    assert!(w.bytes_written() > after_open, "a second old: written");
    let before = w.bytes_written();
    w.screen_update(1200, &solid(3, 3)).unwrap();
    w.consent(1201, ConsentState::ViewOnly).unwrap();
    assert!(
        w.bytes_written() > before,
        "an event writes the waiting update too"
    );
    let before = w.bytes_written();
    w.screen_update(1300, &solid(4, 4)).unwrap();
    w.screen_update(2300, &solid(5, 5)).unwrap();
    assert!(
        w.bytes_written() > before,
        "the next update after a second writes"
    );
    // A process killed now leaves a log that ends early after the last written record.
    let probe = w.seal(2400).unwrap();
    assert!(matches!(
        verify(&probe.data[..]).unwrap(),
        Verdict::Intact { records: 8, .. }
    ));
}

#[test]
fn a_failed_write_stops_the_writer() {
    let mut w = LogWriter::create(Probe::default(), &opened(TypedText::Full)).unwrap();
    w.out_mut_for_tests().fail = true;
    assert!(matches!(
        w.consent(1, ConsentState::Control),
        Err(WriteError::Io(_))
    ));
    w.out_mut_for_tests().fail = false;
    assert!(matches!(
        w.consent(2, ConsentState::Control),
        Err(WriteError::Failed)
    ));
}

#[test]
fn a_dropped_writer_keeps_its_whole_records() {
    let mut probe = Probe::default();
    {
        let mut w = LogWriter::create(&mut probe, &opened(TypedText::Full)).unwrap();
        w.screen_update(10, &solid(1, 1)).unwrap();
    }
    let got = verify(&probe.data[..]).unwrap();
    assert!(
        matches!(
            got,
            Verdict::EndedEarly {
                after_record: Some(1),
                torn_bytes: 0,
                ..
            }
        ),
        "{got:?}"
    );
}

#[test]
fn replay_applies_updates_in_sequence_at_their_time() {
    let mut w = LogWriter::create(Vec::new(), &opened(TypedText::Full)).unwrap();
    w.screen_update(10, &solid(1, 10)).unwrap();
    // Update 3 arrives before 2, as separate streams allow.
    w.screen_update(20, &solid(3, 30)).unwrap();
    w.screen_update(30, &solid(2, 20)).unwrap();
    let log = w.seal(40).unwrap();
    let mut p = Player::new(LogReader::new(&log[..]).unwrap());
    p.advance_to(5).unwrap();
    assert_eq!(p.framebuffer().width(), 0);
    p.advance_to(25).unwrap();
    assert_eq!(p.framebuffer().pixels()[0], 10, "3 waits for 2");
    p.advance_to(30).unwrap();
    assert_eq!(p.framebuffer().pixels()[0], 30);
    assert_eq!(p.opened().unwrap().relay_software, "relay 0.1.0");
    p.run_to_end().unwrap();
    assert!(p.finished());
    assert!(matches!(p.verdict(), Some(Verdict::Intact { .. })));
}

/// Checkpoints of the records at `indexes` of an intact log.
fn checkpoints_at(log: &[u8], indexes: &[u64]) -> Vec<checkpoint::Checkpoint> {
    let mut r = LogReader::new(log).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        if indexes.contains(&rec.index) {
            out.push(checkpoint::Checkpoint {
                index: rec.index,
                time_ms: rec.time_ms,
                chain_hash: rec.hash,
            });
        }
    }
    out
}

#[test]
fn checkpoints_tell_a_log_cut_short_afterwards_from_one_that_ended_early() {
    let log = sample(TypedText::Full);
    let n = spans(&log).len() as u64;
    let cps = checkpoints_at(&log, &[2, 5, n - 1]);
    // The whole log agrees with every checkpoint.
    let (v, f) = checkpoint::check(&mut LogReader::new(&log[..]).unwrap(), &cps).unwrap();
    assert_eq!(v.exit_code(), 0);
    assert_eq!(f, Finding::Consistent { checked: 3 });
    // Cut after record 4: alone it only "ended early"; the checkpoint of record 5 says it was
    // cut afterwards.
    let (_, end4) = spans(&log)[4];
    let (v, f) = checkpoint::check(&mut LogReader::new(&log[..end4]).unwrap(), &cps).unwrap();
    assert!(matches!(v, Verdict::EndedEarly { .. }), "{v}");
    match f {
        Finding::Missing {
            checkpoint,
            log_ends_after,
        } => {
            assert_eq!(checkpoint.index, 5);
            assert_eq!(log_ends_after, Some(4));
        }
        other => panic!("{other}"),
    }
    // A log rewritten from scratch (same length, other contents) differs at the first
    // checkpoint.
    let other = {
        let mut w = LogWriter::create(Vec::new(), &opened(TypedText::Full)).unwrap();
        for k in 0..8 {
            w.error(k, "rewritten").unwrap();
        }
        w.finish(90, &CloseReason::ByAgent(EndReason::UserEnded))
            .unwrap()
    };
    let (v, f) = checkpoint::check(&mut LogReader::new(&other[..]).unwrap(), &cps).unwrap();
    assert_eq!(v.exit_code(), 0, "the rewritten log verifies on its own");
    assert!(
        matches!(f, Finding::Differs { checkpoint } if checkpoint.index == 2),
        "{f}"
    );
    // No checkpoints: nothing to contradict.
    let (_, f) = checkpoint::check(&mut LogReader::new(&log[..]).unwrap(), &[]).unwrap();
    assert!(f.is_consistent());
}

#[test]
fn utc_dates() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
}
