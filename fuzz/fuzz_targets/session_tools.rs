//! What an end does with the in-session tools' bytes: sealed datagrams (the user's pointer)
//! opened from arbitrary bytes, and the pointer position inside decoded; chat, clipboards,
//! monitor lists and pointer shapes decoded as peer messages and checked against their limits,
//! a checked pointer shape drawn over an image and a checked monitor list described. Nothing
//! may panic; what passes a check must keep within its stated limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::clipboard::ClipContent;
use protocol::cursor::{PeerDatagram, MAX_CURSOR_SIDE, MAX_DATAGRAM};
use protocol::e2e::{DatagramOpener, DatagramSealer};
use protocol::peer::PeerMessage;
use protocol::wire;

const SECRET: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    // Forged datagrams: never open, and a genuine one still opens after them.
    let mut opener = DatagramOpener::new(&SECRET);
    let mut forged = data.to_vec();
    assert!(!matches!(opener.open_in_place(&mut forged), Ok(Some(_))));
    let _ = wire::decode::<PeerDatagram, MAX_DATAGRAM>(data);
    let mut genuine = Vec::new();
    DatagramSealer::new(&SECRET)
        .seal_message(&PeerDatagram::Cursor(protocol::cursor::CursorPosition {
            x: 1,
            y: 2,
            shape: 3,
            visible: true,
        }), &mut genuine)
        .expect("sealed");
    let opened = opener.open_in_place(&mut genuine);
    assert!(matches!(opened, Ok(Some(_))), "{opened:?}");

    let Ok(msg) = wire::decode_peer::<PeerMessage>(data) else {
        return;
    };
    match msg {
        PeerMessage::Chat(c) => {
            if c.check().is_ok() {
                assert!(c.text.len() <= protocol::chat::MAX_CHAT_BYTES);
            }
        }
        PeerMessage::Clipboard(d) => {
            if d.check().is_ok() {
                assert!(d.content.len() <= d.content.kind().limit());
                if let ClipContent::Png(p) = &d.content {
                    assert!(p.starts_with(&protocol::clipboard::PNG_SIGNATURE));
                }
            }
        }
        PeerMessage::Monitors(m) => {
            if let Ok(m) = m.checked() {
                let _ = m.describe_shown();
                let _ = m.desktop_size();
            }
        }
        PeerMessage::CursorShape(s) => {
            if s.check().is_ok() {
                assert!(s.width <= MAX_CURSOR_SIDE && s.height <= MAX_CURSOR_SIDE);
                let mut image = vec![0u8; 16 * 16 * 4];
                let (x, y) = (i32::from(s.hot_x) - 4, i32::from(s.hot_y) + 3);
                s.draw(&mut image, 16 * 4, 16, 16, x, y);
            }
        }
        _ => {}
    }
});
