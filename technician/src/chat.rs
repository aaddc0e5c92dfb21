//! Chat in the technician's session: messages from the user (and, relayed by the agent, from
//! the other technicians of the session) and this technician's own, from the key exchange on,
//! while the user is still being asked too. Each is recorded in the session log (kind 6), said
//! on the command line (JSON event `chat`) and passed to a window.
//!
//! What the agent sends is checked against the limits of [`protocol::chat`]: a message beyond
//! them ends the session with a reason.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use link::report::Reporter;
use protocol::chat::{Chat, ChatMeter};
use protocol::sessionlog::{ChatAuthor, ChatRecord};
use protocol::text::{tame, MAX_PEER_STRING};
use serde_json::json;

use crate::record::Recorder;

/// The chat messages coming from the agent, checked against the limits.
pub struct ChatIn {
    meter: ChatMeter,
    started: Instant,
}

impl Default for ChatIn {
    fn default() -> Self {
        Self {
            meter: ChatMeter::default(),
            started: Instant::now(),
        }
    }
}

impl ChatIn {
    /// A message from the agent: who wrote it and what, or why the session ends.
    pub fn received(&mut self, chat: Chat) -> Result<ChatRecord, String> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        chat.check()
            .and_then(|()| self.meter.arrived(now_ms))
            .map_err(|e| format!("the agent sent {e}"))?;
        let from = match chat.from {
            None => ChatAuthor::User,
            Some(name) => ChatAuthor::Technician(tame(&name, MAX_PEER_STRING)),
        };
        Ok(ChatRecord {
            from,
            text: chat.text,
        })
    }
}

/// Records a chat message and says it (JSON event `chat`: `from` is `user`, `me` or
/// `technician` with the `technician`'s name).
pub fn note(recorder: &Option<Arc<Mutex<Recorder>>>, report: Reporter, chat: &ChatRecord) {
    if let Some(r) = recorder {
        r.lock().expect("recorder lock").chat(chat);
    }
    let shown = protocol::text::printable(&chat.text);
    let (from, technician, words) = match &chat.from {
        ChatAuthor::User => ("user", None, format!("The user says: {shown}")),
        ChatAuthor::Recorder => ("me", None, format!("You say: {shown}")),
        ChatAuthor::Technician(name) => (
            "technician",
            Some(name.as_str()),
            format!("{name} says: {shown}"),
        ),
    };
    report.event(
        "chat",
        json!({ "from": from, "technician": technician, "text": chat.text }),
        words,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_are_named_as_the_agent_says_and_floods_end_the_session() {
        let mut chat = ChatIn::default();
        let from_user = chat
            .received(Chat {
                from: None,
                text: "who is this?".into(),
            })
            .unwrap();
        assert_eq!(from_user.from, ChatAuthor::User);
        let relayed = chat
            .received(Chat {
                from: Some("ana\x1b[2J".into()),
                text: "I am here too".into(),
            })
            .unwrap();
        assert!(matches!(relayed.from, ChatAuthor::Technician(n) if !n.contains('\x1b')));
        for _ in 0..protocol::chat::MAX_CHAT_PER_SEC {
            let _ = chat.received(Chat {
                from: None,
                text: "x".into(),
            });
        }
        let flood = chat.received(Chat {
            from: None,
            text: "x".into(),
        });
        assert!(flood
            .unwrap_err()
            .contains("a person does not type so fast"));
    }
}
