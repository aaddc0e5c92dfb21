//! What the agent shows a person of the strings a peer supplied: the technician's software and
//! description, the account name and organisation, end reasons and error messages. The
//! technician's program writes some of them, and a carriage return or an ANSI escape in them
//! could overwrite, in the terminal, the name the relay vouches for; megabytes of them could push
//! it off the screen or out of the window. So every such string is clipped and made printable
//! with `protocol::text` where the agent prints or draws it: in the terminal
//! ([`introduce`], [`name`], [`reason`]) and in the window ([`fit`], shorter still, so that the
//! layout holds).

use std::borrow::Cow;

use protocol::control::PeerInfo;
use protocol::peer::EndReason;
use protocol::text::{clip, printable, MAX_PEER_STRING, MAX_REASON};

/// A peer-supplied name, software or description as the terminal shows it.
pub fn name(text: &str) -> Cow<'_, str> {
    shown(text, MAX_PEER_STRING)
}

/// A peer-supplied end reason or error message as the terminal shows it.
pub fn reason(text: &str) -> Cow<'_, str> {
    shown(text, MAX_REASON)
}

/// `text` clipped to `max` characters, then made printable.
fn shown(text: &str, max: usize) -> Cow<'_, str> {
    match clip(text, max) {
        Cow::Borrowed(b) => printable(b),
        Cow::Owned(o) => Cow::Owned(printable(&o).into_owned()),
    }
}

/// At most `max` characters of `text` as a window shows it: made printable, then clipped (an
/// escape takes several characters, and the label's length is what the layout must hold).
pub fn fit(text: &str, max: usize) -> String {
    let safe = shown(text, MAX_REASON.max(max));
    clip(&safe, max).into_owned()
}

/// How the terminal names the peer: as [`PeerInfo::introduce`] (`alice (tier 2) of Example
/// Support (technician at 10.0.0.7:51234, technician 0.1.0)`), each part shown with [`name`].
pub fn introduce(peer: &PeerInfo) -> String {
    let (description, software) = (name(&peer.description), name(&peer.software));
    match &peer.account {
        Some(a) => format!(
            "{} (tier {}) of {} ({description}, {software})",
            name(&a.name),
            a.tier,
            name(&a.organisation)
        ),
        None => format!("{description} ({software})"),
    }
}

/// Words for why a session ended, the technician's own words shown with [`reason`].
pub fn end_reason(r: &EndReason) -> String {
    match r {
        EndReason::Error(e) => EndReason::Error(reason(e).into_owned()).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::{Role, TechnicianAccount};

    fn peer(software: &str) -> PeerInfo {
        PeerInfo {
            role: Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: software.into(),
            account: Some(TechnicianAccount {
                name: "alice".into(),
                tier: 2,
                organisation: "Example Support".into(),
            }),
        }
    }

    #[test]
    fn an_honest_peer_is_introduced_as_the_protocol_introduces_it() {
        let p = peer("technician 0.1.0");
        assert_eq!(introduce(&p), p.introduce());
        let mut anonymous = p.clone();
        anonymous.account = None;
        assert_eq!(introduce(&anonymous), anonymous.introduce());
        assert_eq!(
            end_reason(&EndReason::UserEnded),
            EndReason::UserEnded.to_string()
        );
    }

    #[test]
    fn hostile_strings_are_escaped_and_bounded() {
        let hostile = format!(
            "x\r\x1b[2KExample Support (tier 3) of Bank{}",
            "\x1b".repeat(64 * 1024)
        );
        let said = introduce(&peer(&hostile));
        assert!(!said.contains(['\r', '\x1b']), "{said}");
        assert!(said.contains("x\\u{d}\\u{1b}[2KExample Support"), "{said}");
        assert!(said.len() < MAX_PEER_STRING * 10 + 200, "{}", said.len());
        let why = end_reason(&EndReason::Error(format!(
            "bye\r\x1b[1A{}",
            "y".repeat(10_000)
        )));
        assert!(!why.contains(['\r', '\x1b']), "{why}");
        assert!(why.chars().count() <= MAX_REASON + 30, "{}", why.len());
        let fitted = fit(&hostile, 40);
        assert_eq!(fitted.chars().count(), 40);
        assert!(fitted.starts_with("x\\u{d}\\u{1b}[2KExample"), "{fitted}");
        assert!(fitted.ends_with('…'), "{fitted}");
    }
}
