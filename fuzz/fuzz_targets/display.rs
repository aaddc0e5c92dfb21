//! Formatting what came off the network, as logs and error messages do: every `Display` of a
//! decoded control or peer message (session codes, reasons, keys) and of decode errors. A
//! `Display` impl that returns `fmt::Error` makes `to_string()`/`format!`/`println!` panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::control::{FromRelay, ToRelay};
use protocol::input::InputEvent;
use protocol::peer::PeerMessage;
use protocol::wire;

fuzz_target!(|data: &[u8]| {
    match wire::decode_control::<ToRelay>(data) {
        Ok(ToRelay::Join { code }) => {
            let _ = code.to_string();
            let _ = code.is_well_formed();
        }
        Ok(ToRelay::Hello { role, .. }) => {
            let _ = role.to_string();
        }
        Ok(msg @ (ToRelay::Register | ToRelay::Login { .. })) => {
            let _ = msg.to_string();
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match wire::decode_control::<FromRelay>(data) {
        Ok(FromRelay::Registered { code, .. }) => {
            let _ = code.to_string();
        }
        Ok(FromRelay::Paired { peer, .. }) => {
            let _ = peer.role.to_string();
            let _ = peer.introduce();
        }
        Ok(FromRelay::LoggedIn { account, .. }) => {
            let _ = account.to_string();
        }
        Ok(FromRelay::PeerLeft { reason }) => {
            let _ = reason.to_string();
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match wire::decode_peer::<PeerMessage>(data) {
        Ok(PeerMessage::EndSession { reason }) => {
            let _ = reason.to_string();
        }
        Ok(PeerMessage::Input(InputEvent::Key { key, .. })) => {
            let _ = key.to_string();
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
