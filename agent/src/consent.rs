//! Consent: the person at the screen decides whether a technician may look, and whether they
//! may also control mouse and keyboard.
//!
//! [`ConsentPolicy::Ask`] asks in the terminal ("[c]ontrol, [v]iew only, [d]eny"); no answer
//! within the timeout, or a closed input, is a deny. [`ConsentPolicy::Preset`] answers in advance
//! for unattended machines, which the agent announces when it starts. During a session the same
//! terminal takes commands: `v` stops control (view only from then on), `q` ends the session.
//!
//! Answers and commands are read a line at a time from standard input by a thread of their own
//! ([`Console`]), so a script can answer too.

use std::io::BufRead;
use std::time::Duration;

use protocol::peer::ConsentState;
use tokio::sync::mpsc;

/// How consent is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Ask the person at the terminal; deny after `timeout`.
    Ask { timeout: Duration },
    /// Unattended: this answer, given in advance.
    Preset(ConsentState),
}

/// What the person typed during a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCommand {
    /// View only from now on.
    StopControl,
    /// End the session.
    End,
}

/// Parses an answer to the consent question.
pub fn parse_answer(line: &str) -> Option<ConsentState> {
    match line.trim().to_ascii_lowercase().as_str() {
        "c" | "control" => Some(ConsentState::Control),
        "v" | "view" | "view only" => Some(ConsentState::ViewOnly),
        "d" | "deny" | "n" | "no" => Some(ConsentState::Denied),
        _ => None,
    }
}

/// Parses a command typed during a session.
pub fn parse_command(line: &str) -> Option<UserCommand> {
    match line.trim().to_ascii_lowercase().as_str() {
        "v" | "view" => Some(UserCommand::StopControl),
        "q" | "quit" | "e" | "end" => Some(UserCommand::End),
        _ => None,
    }
}

/// Lines from standard input, read by a thread; `None` once the input is closed.
pub struct Console {
    lines: mpsc::Receiver<String>,
    closed: bool,
}

impl Console {
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel(16);
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                for line in stdin.lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            })
            .expect("a thread for the console");
        Self {
            lines: rx,
            closed: false,
        }
    }

    /// The next line, or `None` when the input is closed (then forever pending).
    pub async fn next_line(&mut self) -> Option<String> {
        if self.closed {
            return std::future::pending().await;
        }
        let line = self.lines.recv().await;
        self.closed = line.is_none();
        line
    }

    /// Waits for an answer to the consent question. Unknown lines are ignored (the caller may
    /// repeat the question via `on_unknown`); a closed input or the timeout is a deny.
    pub async fn ask(
        &mut self,
        timeout: Duration,
        mut on_unknown: impl FnMut(&str),
    ) -> (ConsentState, bool) {
        let answer = async {
            loop {
                match self.next_line().await {
                    Some(l) => match parse_answer(&l) {
                        Some(a) => return a,
                        None => on_unknown(&l),
                    },
                    None => return ConsentState::Denied,
                }
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(a) => (a, false),
            Err(_) => (ConsentState::Denied, true),
        }
    }

    /// The next session command.
    pub async fn next_command(&mut self) -> UserCommand {
        loop {
            if let Some(l) = self.next_line().await {
                if let Some(c) = parse_command(&l) {
                    return c;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_commands_parse() {
        assert_eq!(parse_answer(" C \n"), Some(ConsentState::Control));
        assert_eq!(parse_answer("view only"), Some(ConsentState::ViewOnly));
        assert_eq!(parse_answer("d"), Some(ConsentState::Denied));
        assert_eq!(parse_answer("yes please"), None);
        assert_eq!(parse_command("v"), Some(UserCommand::StopControl));
        assert_eq!(parse_command("q"), Some(UserCommand::End));
        assert_eq!(parse_command("x"), None);
    }
}
