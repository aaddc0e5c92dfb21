//! Chat in the agent: the person at the screen writes to the technicians of the session (from
//! the window, or a line typed in the terminal after `>`), and each technician's messages reach
//! the person and every other technician. The agent is the hub: the relay cannot read the peer
//! plane, so a technician's message to the others goes through here, named with the account the
//! relay vouched for (never a name the technician's program claims).
//!
//! What a technician sends is checked against the limits of [`protocol::chat`] by its viewer;
//! a message beyond them ends that technician's part of the session with a reason.

use std::time::{Instant, SystemTime};

use link::report::Reporter;
use protocol::chat::{Chat, ChatMeter};
use protocol::peer::EndReason;
use serde_json::json;

use crate::shown;

/// What a person wrote, for the window: who (`None`: the person at this screen), when, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub from: Option<String>,
    pub at: SystemTime,
    pub text: String,
}

/// A technician's message as its viewer received it: the text, or the reason that technician's
/// session ends (over the limits). `since` is when the viewer started (the meter's clock).
pub fn received(chat: Chat, meter: &mut ChatMeter, since: Instant) -> Result<String, EndReason> {
    let now_ms = since.elapsed().as_millis() as u64;
    chat.check()
        .and_then(|()| meter.arrived(now_ms))
        .map_err(|e| EndReason::Error(format!("the technician sent {e}")))?;
    Ok(chat.text)
}

/// A line typed in the terminal that is a chat message (`> text`): its text.
pub fn parse_line(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('>')?;
    protocol::chat::outgoing(rest)
}

/// Says a chat message on the terminal (or as the JSON event `chat`): `from` is the technician's
/// account name, `None` for the person at this screen.
pub fn report(report: Reporter, from: Option<&str>, text: &str) {
    let shown_text = shown::reason(text);
    match from {
        Some(name) => report.event(
            "chat",
            json!({ "from": "technician", "technician": name, "text": text }),
            format!("{} says: {shown_text}", shown::name(name)),
        ),
        None => report.event(
            "chat",
            json!({ "from": "user", "text": text }),
            format!("You say: {shown_text}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_lines_after_a_chevron_are_chat() {
        assert_eq!(
            parse_line("> who is calling?"),
            Some("who is calling?".into())
        );
        assert_eq!(parse_line("  >hola"), Some("hola".into()));
        assert_eq!(parse_line(">   "), None);
        assert_eq!(parse_line("v"), None);
    }

    #[test]
    fn a_flood_or_a_long_message_ends_that_technician() {
        let since = Instant::now();
        let mut meter = ChatMeter::default();
        let chat = |t: &str| Chat {
            from: None,
            text: t.into(),
        };
        assert_eq!(received(chat("hi"), &mut meter, since), Ok("hi".into()));
        let long = "x".repeat(protocol::chat::MAX_CHAT_BYTES + 1);
        assert!(matches!(
            received(chat(&long), &mut meter, since),
            Err(EndReason::Error(e)) if e.contains("4096")
        ));
        for _ in 0..protocol::chat::MAX_CHAT_PER_SEC {
            let _ = received(chat("again"), &mut meter, since);
        }
        assert!(received(chat("more"), &mut meter, since).is_err());
    }
}
