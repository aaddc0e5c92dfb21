//! What the agent's window shows, as plain data: which screen, what it says, and what each
//! button does. No egui here: [`WindowModel::apply`] takes the agent's [`Status`], and
//! [`WindowModel::act`] turns the person's clicks ([`Action`]) into [`Effect`]s (words for the
//! session, text for the clipboard, closing the window), so the whole flow is tested without a
//! display.

use std::time::{Duration, Instant};

use protocol::control::{Joining, PeerInfo};
use protocol::peer::ConsentState;

use crate::consent::{FromUser, UserCommand};
use crate::status::{EndedWhy, Status};

/// The screen the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Before the relay answered.
    Connecting { relay: String },
    /// The code, and how long it stays valid.
    Code {
        shown: String,
        copied: String,
        expires_at: Instant,
    },
    /// A help request waits in the queue.
    Queued {
        request: u64,
        position: u32,
        expected_wait_secs: Option<u32>,
    },
    /// A technician asks.
    Consent {
        peer: PeerInfo,
        recorded: bool,
        verification: Option<String>,
        /// Why they join a session already running (`None`: the first technician).
        joining: Option<Joining>,
        deadline: Instant,
    },
    /// Answered; the session is starting.
    Starting,
    /// The screen is shared: the small bar. `peer` holds control (or leads, view only); the
    /// `others` watch too.
    Sharing {
        peer: PeerInfo,
        control: bool,
        others: Vec<String>,
        /// End session was pressed; the session is saying goodbye.
        ending: bool,
        /// Nothing is heard from the technician's connection for now.
        quiet: bool,
    },
    /// It is over.
    Ended { why: EndedWhy },
}

/// How big the window is and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A normal window.
    Full,
    /// A small bar above other windows, while the screen is shared.
    Bar,
}

/// Something the person did in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CopyCode,
    /// Cancel while waiting for a technician.
    Cancel,
    /// A consent button: Allow control, View only, Deny.
    Answer(ConsentState),
    StopControl,
    EndSession,
    /// Close, once it is over.
    Close,
}

/// What an action asks of the world around the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Tell the session.
    Say(FromUser),
    /// Put this text on the clipboard.
    Copy(String),
    /// Close the window.
    CloseWindow,
}

/// How long "Copied" shows after the copy button.
const COPIED_FOR: Duration = Duration::from_secs(3);

/// The window's state.
#[derive(Debug, Clone)]
pub struct WindowModel {
    screen: Screen,
    copied_at: Option<Instant>,
    /// The agent was interrupted from its terminal: the window goes.
    interrupted: bool,
}

impl Default for WindowModel {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole seconds left until `deadline` (rounded up: "1 s" until it is over).
pub fn seconds_left(deadline: Instant, now: Instant) -> u64 {
    let left = deadline.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// `m:ss` for a number of seconds.
pub fn minutes_seconds(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

impl WindowModel {
    pub fn new() -> Self {
        Self {
            screen: Screen::Connecting {
                relay: String::new(),
            },
            copied_at: None,
            interrupted: false,
        }
    }

    /// Whether the window should close on its own (the agent was interrupted).
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    pub fn screen(&self) -> &Screen {
        &self.screen
    }

    pub fn layout(&self) -> Layout {
        match self.screen {
            Screen::Sharing { .. } => Layout::Bar,
            _ => Layout::Full,
        }
    }

    /// Whether "Copied" is showing.
    pub fn copied(&self, now: Instant) -> bool {
        self.copied_at
            .is_some_and(|t| now.saturating_duration_since(t) < COPIED_FOR)
    }

    /// When the window must be drawn again although nothing happened (a countdown ticks, or
    /// "Copied" goes away); `None` when nothing on it changes with time.
    pub fn next_tick(&self, now: Instant) -> Option<Duration> {
        let deadline = match &self.screen {
            Screen::Code { expires_at, .. } => Some(*expires_at),
            Screen::Consent { deadline, .. } => Some(*deadline),
            _ => None,
        }
        .filter(|d| *d > now);
        let copied = self.copied_at.map(|t| t + COPIED_FOR).filter(|t| *t > now);
        let until = |t: Instant| {
            // The next whole-second step of the countdown.
            let left = t.saturating_duration_since(now);
            Duration::from_nanos(u64::from(left.subsec_nanos())).max(Duration::from_millis(20))
        };
        match (deadline.map(until), copied.map(|t| t - now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes in what the agent says.
    pub fn apply(&mut self, status: Status) {
        if status == Status::Interrupted {
            self.interrupted = true;
            return;
        }
        self.screen = match status {
            Status::Connecting { relay } => Screen::Connecting { relay },
            Status::Code {
                shown,
                copied,
                expires_at,
            } => Screen::Code {
                shown,
                copied,
                expires_at,
            },
            Status::Queued {
                request,
                position,
                expected_wait_secs,
            } => Screen::Queued {
                request,
                position,
                expected_wait_secs,
            },
            Status::Asking {
                peer,
                recorded,
                verification,
                joining,
                deadline,
                ..
            } => Screen::Consent {
                peer,
                recorded,
                verification,
                joining,
                deadline,
            },
            Status::Answered => Screen::Starting,
            Status::Sharing {
                peer,
                control,
                others,
            } => {
                // Who controls may change while shared: what the person did stays.
                let (ending, quiet) = match &self.screen {
                    Screen::Sharing { ending, quiet, .. } => (*ending, *quiet),
                    _ => (false, false),
                };
                Screen::Sharing {
                    peer,
                    control,
                    others,
                    ending,
                    quiet,
                }
            }
            Status::ControlStopped => {
                if let Screen::Sharing { control, .. } = &mut self.screen {
                    *control = false;
                }
                return;
            }
            Status::PeerQuiet(now) => {
                if let Screen::Sharing { quiet, .. } = &mut self.screen {
                    *quiet = now;
                }
                return;
            }
            Status::Ended(why) => Screen::Ended { why },
            Status::Interrupted => return,
        };
    }

    /// Takes in what the person did; a button that does not belong to the screen shown does
    /// nothing.
    pub fn act(&mut self, action: Action, now: Instant) -> Vec<Effect> {
        let say = |f: FromUser| vec![Effect::Say(f)];
        match (action, &mut self.screen) {
            (Action::CopyCode, Screen::Code { copied, .. }) => {
                self.copied_at = Some(now);
                vec![Effect::Copy(copied.clone())]
            }
            (
                Action::Cancel,
                Screen::Code { .. } | Screen::Connecting { .. } | Screen::Queued { .. },
            ) => say(FromUser::Command(UserCommand::End)),
            (Action::Answer(state), Screen::Consent { .. }) => {
                self.screen = if state == ConsentState::Denied {
                    Screen::Ended {
                        why: EndedWhy::Denied,
                    }
                } else {
                    Screen::Starting
                };
                say(FromUser::Answer(state))
            }
            (Action::StopControl, Screen::Sharing { control, .. }) if *control => {
                *control = false;
                say(FromUser::Command(UserCommand::StopControl))
            }
            (Action::EndSession, Screen::Sharing { ending, .. }) => {
                *ending = true;
                say(FromUser::Command(UserCommand::End))
            }
            (Action::Close, Screen::Ended { .. }) => vec![Effect::CloseWindow],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::{Role, TechnicianAccount};

    pub(crate) fn alice() -> PeerInfo {
        PeerInfo {
            role: Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: "technician 0.1.0".into(),
            account: Some(TechnicianAccount {
                name: "alice".into(),
                tier: 2,
                organisation: "Example Support".into(),
            }),
        }
    }

    fn asking(now: Instant) -> WindowModel {
        let mut m = WindowModel::new();
        m.apply(Status::Asking {
            joining: None,
            verification: None,
            peer: alice(),
            recorded: true,
            timeout: Duration::from_secs(60),
            deadline: now + Duration::from_secs(60),
        });
        m
    }

    #[test]
    fn each_answer_says_exactly_its_scope_once() {
        let now = Instant::now();
        for state in [
            ConsentState::Control,
            ConsentState::ViewOnly,
            ConsentState::Denied,
        ] {
            let mut m = asking(now);
            assert_eq!(
                m.act(Action::Answer(state), now),
                vec![Effect::Say(FromUser::Answer(state))]
            );
            // A second click finds another screen.
            assert!(m.act(Action::Answer(ConsentState::Control), now).is_empty());
        }
    }

    #[test]
    fn stop_control_then_end_while_shared() {
        let now = Instant::now();
        let mut m = WindowModel::new();
        m.apply(Status::Sharing {
            others: vec![],
            peer: alice(),
            control: true,
        });
        assert_eq!(m.layout(), Layout::Bar);
        assert_eq!(
            m.act(Action::StopControl, now),
            vec![Effect::Say(FromUser::Command(UserCommand::StopControl))]
        );
        assert!(m.act(Action::StopControl, now).is_empty(), "only once");
        assert!(matches!(m.screen(), Screen::Sharing { control: false, .. }));
        assert_eq!(
            m.act(Action::EndSession, now),
            vec![Effect::Say(FromUser::Command(UserCommand::End))]
        );
        m.apply(Status::Ended(EndedWhy::UserEnded));
        assert_eq!(m.layout(), Layout::Full);
        assert_eq!(m.act(Action::Close, now), vec![Effect::CloseWindow]);
    }

    #[test]
    fn ctrl_c_in_the_terminal_closes_the_window_without_changing_its_screen() {
        let mut m = asking(Instant::now());
        assert!(!m.interrupted());
        m.apply(Status::Interrupted);
        assert!(m.interrupted());
        assert!(matches!(m.screen(), Screen::Consent { .. }));
    }

    #[test]
    fn the_code_copies_whole_and_counts_down() {
        let now = Instant::now();
        let mut m = WindowModel::new();
        m.apply(Status::Code {
            shown: "469 544 742 - 4821".into(),
            copied: "469544742-4821".into(),
            expires_at: now + Duration::from_millis(299_500),
        });
        assert_eq!(
            m.act(Action::CopyCode, now),
            vec![Effect::Copy("469544742-4821".into())]
        );
        assert!(m.copied(now));
        assert!(!m.copied(now + COPIED_FOR));
        let Screen::Code { expires_at, .. } = m.screen() else {
            panic!("not the code screen")
        };
        assert_eq!(minutes_seconds(seconds_left(*expires_at, now)), "5:00");
        assert_eq!(seconds_left(*expires_at, now + Duration::from_secs(400)), 0);
        assert!(m.next_tick(now).unwrap() <= Duration::from_secs(1));
        assert_eq!(m.next_tick(now + Duration::from_secs(400)), None);
    }
}
