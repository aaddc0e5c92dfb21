//! Chat between the person at the shared screen and the technicians of the session.
//!
//! A technician sends [`Chat`] to the agent with no author: the agent knows who sent it (the
//! account the relay vouched for) and names the author itself when it passes the message on to
//! the other technicians of the session ([`Chat::from`] `Some(name)`); the person's own
//! messages reach every technician with no author (`None`: the user). Chat is allowed before the
//! person answers the consent question, so that they can ask who is calling.
//!
//! Limits, checked by whoever receives a message: [`MAX_CHAT_BYTES`] of text, and at most
//! [`MAX_CHAT_PER_SEC`] messages a second from one end ([`ChatMeter`]). A message beyond
//! either is no person typing: the receiver ends the session with a reason.

use serde::{Deserialize, Serialize};

/// Longest chat message, in bytes of UTF-8.
pub const MAX_CHAT_BYTES: usize = 4096;

/// Most chat messages one end may send in a second.
pub const MAX_CHAT_PER_SEC: u32 = 20;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// Who wrote it, as the agent says: `None` for the person at the shared screen, or the
    /// account name of another technician of the session. A technician sends `None`.
    pub from: Option<String>,
    pub text: String,
}

/// Why a received chat message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("a chat message of {0} bytes; the limit is {MAX_CHAT_BYTES}")]
    TooLong(usize),
    #[error(
        "more than {MAX_CHAT_PER_SEC} chat messages in a second; a person does not type so fast"
    )]
    TooMany,
    #[error("an empty chat message")]
    Empty,
}

impl Chat {
    /// Checks a received message against the limits.
    pub fn check(&self) -> Result<(), ChatError> {
        if self.text.len() > MAX_CHAT_BYTES {
            return Err(ChatError::TooLong(self.text.len()));
        }
        if self.text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        Ok(())
    }
}

/// What a person typed, made ready to send: trimmed, and cut to [`MAX_CHAT_BYTES`] on a
/// character boundary. `None` when nothing is left to send.
pub fn outgoing(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(MAX_CHAT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_string())
}

/// Counts the chat messages of one end against [`MAX_CHAT_PER_SEC`]; it is told the time
/// (ms of any monotonic clock), so it is tested without one.
#[derive(Debug, Default, Clone)]
pub struct ChatMeter {
    second_started_ms: u64,
    count: u32,
}

impl ChatMeter {
    /// One more message at `now_ms`; an error once there were too many in this second.
    pub fn arrived(&mut self, now_ms: u64) -> Result<(), ChatError> {
        if now_ms.saturating_sub(self.second_started_ms) >= 1000 {
            self.second_started_ms = now_ms;
            self.count = 0;
        }
        self.count += 1;
        if self.count > MAX_CHAT_PER_SEC {
            return Err(ChatError::TooMany);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_long_empty_and_floods() {
        let ok = Chat {
            from: None,
            text: "who is calling?".into(),
        };
        assert_eq!(ok.check(), Ok(()));
        let long = Chat {
            from: None,
            text: "x".repeat(MAX_CHAT_BYTES + 1),
        };
        assert_eq!(long.check(), Err(ChatError::TooLong(MAX_CHAT_BYTES + 1)));
        let blank = Chat {
            from: None,
            text: " \n".into(),
        };
        assert_eq!(blank.check(), Err(ChatError::Empty));
        let mut meter = ChatMeter::default();
        for _ in 0..MAX_CHAT_PER_SEC {
            meter.arrived(5).unwrap();
        }
        assert_eq!(meter.arrived(900), Err(ChatError::TooMany));
        // A new second starts over.
        assert_eq!(meter.arrived(1005), Ok(()));
    }

    #[test]
    fn outgoing_text_is_trimmed_and_cut_on_a_character() {
        assert_eq!(outgoing("  hola \n"), Some("hola".into()));
        assert_eq!(outgoing(" \t"), None);
        let long = "é".repeat(MAX_CHAT_BYTES);
        let cut = outgoing(&long).unwrap();
        assert!(cut.len() <= MAX_CHAT_BYTES && cut.len() >= MAX_CHAT_BYTES - 1);
        assert!(Chat {
            from: None,
            text: cut
        }
        .check()
        .is_ok());
    }
}
