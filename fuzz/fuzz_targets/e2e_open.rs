//! What an end does with peer-plane bytes the relay (or anyone on the path) may have forged or
//! altered: decode them as a handshake message and feed it to every handshake state that waits
//! for one, and open them as sealed records on the session stream and as screen update streams.
//! Forged input must come back as an error, never a panic; a genuine record stream with bytes
//! flipped by the fuzzer must fail exactly at the first changed record and open unchanged before
//! it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::e2e::{
    CodeSecret, Context, Handshake, HandshakeMessage, Opener, Sealer, StreamId, UpdateReceiver,
};
use protocol::framing::split_frame;
use protocol::wire::PEER_MAX_FRAME;

const SECRET: [u8; 32] = [0x5a; 32];

fn handshakes(data: &[u8]) {
    let Ok(msg) = HandshakeMessage::decode(data) else {
        return;
    };
    let ctx = Context::new(protocol::PROTOCOL_VERSION, "123456789");
    let secret = CodeSecret::from_digits("4821").expect("four digits");
    let mut ends = [
        Handshake::agent_with_code(&ctx, &secret),
        Handshake::technician_with_code(&ctx, &secret),
        Handshake::agent_with_exchange(&ctx, None),
        Handshake::technician_with_exchange(&ctx),
    ];
    for hs in &mut ends {
        while hs.poll_transmit().is_some() {}
        // Forged bytes cannot carry a valid confirmation, so no end may complete on them.
        let _ = hs.handle(msg.clone());
        while hs.poll_transmit().is_some() {}
        assert!(!hs.is_complete(), "a forged message completed a handshake");
        let _ = hs.take_keys();
    }
}

fn forged_records(data: &[u8]) {
    let mut session = Opener::new(&SECRET, StreamId::SESSION);
    let mut updates = UpdateReceiver::new(&SECRET);
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(Some((record, used))) = split_frame(rest, PEER_MAX_FRAME) {
        let _ = session.open(record, &mut out);
        let mut first = record.to_vec();
        if let Ok((opener, _)) = updates.open_first(&mut first) {
            let _ = opener.finish();
        }
        rest = &rest[used..];
    }
    let _ = session.finish();
}

/// Seals three genuine records, XORs the fuzzer's bytes over them, and checks that opening
/// succeeds exactly up to the first record that changed.
fn altered_records(data: &[u8]) {
    let msgs: [&[u8]; 3] = [b"consent", b"", b"end of session"];
    let mut sealer = Sealer::new(&SECRET, StreamId::SESSION);
    let mut records: Vec<Vec<u8>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut f = Vec::new();
            sealer.seal_frame(m, i == 2, &mut f).expect("fresh sealer");
            f.split_off(4)
        })
        .collect();
    let mut first_changed = None;
    let mut bytes = data.iter();
    for (i, r) in records.iter_mut().enumerate() {
        for b in r.iter_mut() {
            let x = bytes.next().copied().unwrap_or(0);
            *b ^= x;
            if x != 0 {
                first_changed.get_or_insert(i);
            }
        }
    }
    let mut opener = Opener::new(&SECRET, StreamId::SESSION);
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let result = opener.open(r, &mut out);
        match first_changed {
            Some(c) if i == c => {
                assert!(result.is_err(), "altered record {i} opened");
                return;
            }
            _ => {
                result.expect("an unchanged record opens");
                assert_eq!(out, msgs[i]);
            }
        }
    }
    opener.finish().expect("all three records opened");
}

fuzz_target!(|data: &[u8]| {
    handshakes(data);
    forged_records(data);
    altered_records(data);
});
