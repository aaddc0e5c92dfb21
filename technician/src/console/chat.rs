//! The session view's chat, as plain data: what was said (by the user, this technician, and the
//! session's other technicians), what is being typed, whether the panel is open, and how many
//! messages came while it was closed, which the toolbar shows. A new message never opens the
//! panel or takes the keyboard: it only counts, so the technician is told without being
//! interrupted (the remote screen keeps the keyboard).

use std::collections::VecDeque;

use protocol::chat::MAX_CHAT_BYTES;
use protocol::sessionlog::{ChatAuthor, ChatRecord};

/// Messages kept for the panel; older ones are in the session log.
pub const KEPT: usize = 500;

/// One message as the panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub from: ChatAuthor,
    pub text: String,
    /// When it arrived (or was sent), Unix milliseconds.
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatView {
    pub lines: VecDeque<ChatLine>,
    /// What is typed and not sent yet.
    pub draft: String,
    pub open: bool,
    /// Messages from others since the panel was last open.
    pub unread: u32,
}

impl ChatView {
    /// A message from someone else arrived.
    pub fn received(&mut self, chat: ChatRecord, at_unix_ms: u64) {
        if !self.open {
            self.unread += 1;
        }
        self.keep(ChatLine {
            from: chat.from,
            text: chat.text,
            at_unix_ms,
        });
    }

    /// The draft, made ready to send: taken out, and shown as this technician's message.
    /// `None` when there is nothing to send.
    pub fn send(&mut self, at_unix_ms: u64) -> Option<String> {
        let text = protocol::chat::outgoing(&std::mem::take(&mut self.draft))?;
        self.keep(ChatLine {
            from: ChatAuthor::Recorder,
            text: text.clone(),
            at_unix_ms,
        });
        Some(text)
    }

    /// What is typed now, cut to what a message may hold.
    pub fn edit(&mut self, mut text: String) {
        if text.len() > MAX_CHAT_BYTES {
            let mut end = MAX_CHAT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        self.draft = text;
    }

    pub fn toggle(&mut self) {
        self.open = !self.open;
        if self.open {
            self.unread = 0;
        }
    }

    fn keep(&mut self, line: ChatLine) {
        if self.lines.len() == KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_user(text: &str) -> ChatRecord {
        ChatRecord {
            from: ChatAuthor::User,
            text: text.into(),
        }
    }

    #[test]
    fn messages_count_while_the_panel_is_closed_and_opening_it_reads_them() {
        let mut c = ChatView::default();
        c.received(from_user("hello?"), 1);
        c.received(from_user("who is this?"), 2);
        assert_eq!(c.unread, 2);
        assert!(!c.open, "a message never opens the panel");
        c.toggle();
        assert_eq!(c.unread, 0);
        c.received(from_user("thanks"), 3);
        assert_eq!(c.unread, 0, "an open panel shows it at once");
        c.edit("  it is Alice from the desk  ".into());
        assert_eq!(c.send(4), Some("it is Alice from the desk".into()));
        assert_eq!(c.draft, "");
        assert_eq!(c.lines.back().unwrap().from, ChatAuthor::Recorder);
        assert_eq!(c.send(5), None, "nothing typed, nothing sent");
        c.edit("é".repeat(MAX_CHAT_BYTES));
        assert!(c.draft.len() <= MAX_CHAT_BYTES);
    }

    #[test]
    fn only_the_latest_messages_are_kept() {
        let mut c = ChatView::default();
        for i in 0..(KEPT + 3) {
            c.received(from_user(&i.to_string()), i as u64);
        }
        assert_eq!(c.lines.len(), KEPT);
        assert_eq!(c.lines.front().unwrap().text, "3");
    }
}
