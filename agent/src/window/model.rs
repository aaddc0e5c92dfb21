//! What the agent's window shows, as plain data: which screen, what it says, and what each
//! button does. No egui here: [`WindowModel::apply`] takes the agent's [`Status`], and
//! [`WindowModel::act`] turns the person's clicks ([`Action`]) into [`Effect`]s (words for the
//! session, text for the clipboard, closing the window), so the whole flow is tested without a
//! display.
//!
//! Beside the code, Request help opens a form (what is wrong, the desk's ticket number) whose
//! Send request tells the desk ([`Effect::Desk`]); the run then withdraws the code and the
//! window shows the queue. Once the desk closes a help request the window asks its survey
//! (a score 1 to 5 and a comment) with Send answer and Skip. What the person types is kept
//! here, within the relay's bounds ([`crate::desk`]), and drawn by the ui from here.
//!
//! The chat ([`ChatBox`]) lives beside the screens: the person can write to the technicians
//! from the consent question on (to ask who is calling) and while the screen is shared, where
//! the bar grows to show it. A message from a technician while the chat is closed is counted on
//! its button and asks the window manager for attention once, never for the keyboard. While
//! the screen is shared and the person allows control, the bar has the clipboard's switch.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use protocol::control::{Joining, PeerInfo};
use protocol::peer::ConsentState;

use crate::chat::ChatLine;
use crate::consent::{FromUser, UserCommand};
use crate::desk::{
    HelpAsked, SurveyAnswer, ToDesk, COMMENT_CHARS, DESCRIPTION_CHARS, TICKET_CHARS,
};
use crate::files::{FileAnswer, FileStatus, OfferShown, TransferShown, TransferState};
use crate::status::{EndedWhy, Heard, Status};

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
        /// The form to ask the desk for help instead is open over it.
        asking_help: bool,
    },
    /// The help request is on its way to the desk.
    Filing,
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
        /// What is heard of the session's connections.
        heard: Heard,
    },
    /// The desk closed the help request: how well was the person helped?
    Survey {
        request: u64,
        /// 1 (very badly) to 5 (very well), once chosen.
        score: Option<u8>,
        comment: String,
    },
    /// The survey's answer is on its way.
    SendingAnswer,
    /// It is over.
    Ended { why: EndedWhy },
}

/// What the person has written in the help form so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpForm {
    /// What is wrong.
    pub description: String,
    /// The desk's ticket number, if they have one.
    pub ticket: String,
}

impl HelpForm {
    /// The request to file, once the person has said what is wrong.
    pub fn asked(&self) -> Option<HelpAsked> {
        let description = self.description.trim();
        let ticket = self.ticket.trim();
        (!description.is_empty()).then(|| HelpAsked {
            description: description.to_string(),
            ticket: (!ticket.is_empty()).then(|| ticket.to_string()),
        })
    }
}

/// `text` cut to its first `max` characters.
fn at_most(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
    }
    text
}

/// How big the window is and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A normal window.
    Full,
    /// A small bar above other windows, while the screen is shared.
    Bar,
    /// The bar with the chat open under it.
    BarWithChat,
}

/// Chat messages the window keeps.
pub const CHAT_KEPT: usize = 200;

/// The chat, as the window keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatBox {
    pub lines: VecDeque<ChatLine>,
    pub draft: String,
    pub open: bool,
    /// Messages from technicians since the chat was last open.
    pub unread: u32,
    /// A message came while the chat was closed: ask the window manager for attention once.
    pub attention: bool,
}

/// Something the person did in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CopyCode,
    /// Cancel while waiting for a technician.
    Cancel,
    /// Request help, beside the code: opens the form.
    RequestHelp,
    /// The form's words, as now typed.
    EditForm(HelpForm),
    /// Send request, in the form.
    SendRequest,
    /// Back from the form to the code.
    Back,
    /// A consent button: Allow control, View only, Deny.
    Answer(ConsentState),
    StopControl,
    EndSession,
    /// Chat, beside the consent question or in the bar: open or close it.
    ToggleChat,
    /// What is typed in the chat now.
    ChatDraft(String),
    /// Send, in the chat.
    SendChat,
    /// The clipboard's switch: share it (`true`) or not.
    ShareClipboard(bool),
    /// The switch of browsing this machine's folders: allow it (`true`) or not.
    AllowBrowse(bool),
    /// Stop the file of this row (whose viewer, which file) and the rest of its offer.
    CancelTransfer((u32, u64)),
    /// A score of the survey, 1 to 5.
    Score(u8),
    /// The survey's comment, as now typed.
    Comment(String),
    /// Send answer, in the survey.
    SendAnswer,
    /// Skip, in the survey.
    SkipSurvey,
    /// Close, once it is over.
    Close,
    /// Save the files offered now in this folder (the folder shown, or one the person chose).
    SaveFiles(std::path::PathBuf),
    /// Decline the files offered now.
    DeclineFiles,
    /// The folder to save offered files in, as now typed.
    EditFolder(String),
}

/// What an action asks of the world around the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Tell the session.
    Say(FromUser),
    /// Tell the desk (through the run).
    Desk(ToDesk),
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
    /// The help form's words, kept when the person goes back to the code.
    draft: HelpForm,
    chat: ChatBox,
    /// The clipboard's switch, where the clipboard can be shared at all.
    clipboard: Option<bool>,
    /// Files offered to the person now, and the files moving or moved.
    files: FilesShown,
    /// Whether technicians may look through this machine's folders (the switch).
    browse: bool,
}

/// Files as the window shows them, whatever the screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesShown {
    /// The offer put to the person now.
    pub question: Option<OfferShown>,
    /// Each file moving or moved in this session, in the order they started.
    pub transfers: Vec<TransferShown>,
    /// The folder to save the offer in, as typed (the default folder when it is asked).
    pub folder: String,
    /// The last folder of this machine a technician looked into: who, and which.
    pub browsed: Option<(String, String)>,
    /// The last file stopped on its way (by either end, or a lost connection): the bar says
    /// so once the window is a bar again. The later of this and `browsed` is kept.
    pub stopped: Option<TransferShown>,
}

/// Most characters of the folder typed to save files in.
pub const FOLDER_CHARS: usize = 4096;

/// Rows of files the window keeps: the oldest finished ones go first.
pub const TRANSFER_ROWS: usize = 8;

impl FilesShown {
    /// Whether an offer is asked or a file is moving.
    pub fn busy(&self) -> bool {
        self.question.is_some()
            || self
                .transfers
                .iter()
                .any(|t| t.state == TransferState::Going)
    }

    fn apply(&mut self, status: FileStatus) {
        match status {
            FileStatus::Question(q) => {
                if let Some(q) = &q {
                    self.folder = q.default_dir.display().to_string();
                }
                self.question = q;
            }
            FileStatus::Transfer(t) => {
                match self.transfers.iter_mut().find(|r| r.key == t.key) {
                    Some(row) => *row = t,
                    None => self.transfers.push(t),
                }
                self.trim();
            }
            FileStatus::Browsed { who, path } => {
                self.browsed = Some((who, path));
                self.stopped = None;
            }
            FileStatus::Gone { viewer } => {
                self.stop(|r| r.key.0 == viewer, TransferState::Interrupted)
            }
            FileStatus::Cancelled {
                viewer,
                offer,
                by_person,
            } => self.stop(
                |r| r.key.0 == viewer && r.offer == offer,
                TransferState::Cancelled { by_person },
            ),
        }
    }

    /// Rows still going that `which` picks stop, as `state` says.
    fn stop(&mut self, which: impl Fn(&TransferShown) -> bool, state: TransferState) {
        for row in self.transfers.iter_mut() {
            if row.state == TransferState::Going && which(row) {
                row.state = state.clone();
                self.stopped = Some(row.clone());
                self.browsed = None;
            }
        }
    }

    /// The oldest finished rows go while there are too many.
    fn trim(&mut self) {
        while self.transfers.len() > TRANSFER_ROWS {
            match self
                .transfers
                .iter()
                .position(|r| r.state != TransferState::Going)
            {
                Some(i) => self.transfers.remove(i),
                None => break,
            };
        }
    }
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
            draft: HelpForm::default(),
            chat: ChatBox::default(),
            clipboard: None,
            files: FilesShown::default(),
            browse: false,
        }
    }

    /// Whether technicians may look through this machine's folders now.
    pub fn browse(&self) -> bool {
        self.browse
    }

    pub fn chat(&self) -> &ChatBox {
        &self.chat
    }

    /// The clipboard's switch: `None` where the clipboard cannot be shared.
    pub fn clipboard(&self) -> Option<bool> {
        self.clipboard
    }

    /// Whether a message came that the window manager should draw attention to (once).
    pub fn take_attention(&mut self) -> bool {
        std::mem::take(&mut self.chat.attention)
    }

    /// Files offered now, and files moving or moved.
    pub fn files(&self) -> &FilesShown {
        &self.files
    }

    /// What the help form holds.
    pub fn draft(&self) -> &HelpForm {
        &self.draft
    }

    /// Whether the window should close on its own (the agent was interrupted).
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    pub fn screen(&self) -> &Screen {
        &self.screen
    }

    /// The bar while shared, unless files are offered or moving: then the window, to show them.
    pub fn layout(&self) -> Layout {
        match self.screen {
            Screen::Sharing { .. } if self.files.busy() => Layout::Full,
            Screen::Sharing { .. } if self.chat.open => Layout::BarWithChat,
            Screen::Sharing { .. } => Layout::Bar,
            _ => Layout::Full,
        }
    }

    /// Whether the chat can be used on the screen shown: while a technician asks, and while
    /// the screen is shared.
    pub fn chat_offered(&self) -> bool {
        matches!(
            self.screen,
            Screen::Consent { .. } | Screen::Starting | Screen::Sharing { .. }
        )
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
        if let Status::Chat(line) = status {
            // Beside the consent question the chat is always in view.
            let in_view = self.chat.open || matches!(self.screen, Screen::Consent { .. });
            if line.from.is_some() && !in_view {
                self.chat.unread += 1;
                self.chat.attention = true;
            }
            if self.chat.lines.len() == CHAT_KEPT {
                self.chat.lines.pop_front();
            }
            self.chat.lines.push_back(line);
            return;
        }
        if let Status::ClipboardShared(shared) = status {
            self.clipboard = shared.then_some(self.clipboard.unwrap_or(true));
            return;
        }
        if let Status::BrowseAllowed(on) = status {
            self.browse = on;
            return;
        }
        if let Status::Files(files) = status {
            self.files.apply(files);
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
                asking_help: false,
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
                let (ending, heard) = match &self.screen {
                    Screen::Sharing { ending, heard, .. } => (*ending, *heard),
                    _ => (false, Heard::Fine),
                };
                Screen::Sharing {
                    peer,
                    control,
                    others,
                    ending,
                    heard,
                }
            }
            Status::ControlStopped => {
                if let Screen::Sharing { control, .. } = &mut self.screen {
                    *control = false;
                }
                return;
            }
            Status::Heard(now) => {
                if let Screen::Sharing { heard, .. } = &mut self.screen {
                    // Heard again after this machine's own connection was lost: say it came back.
                    *heard = match (*heard, now) {
                        (Heard::Reconnecting | Heard::Reconnected, Heard::Fine) => {
                            Heard::Reconnected
                        }
                        _ => now,
                    };
                }
                return;
            }
            Status::Survey { request } => Screen::Survey {
                request,
                score: None,
                comment: String::new(),
            },
            Status::Ended(why) => Screen::Ended { why },
            Status::Interrupted
            | Status::Chat(_)
            | Status::ClipboardShared(_)
            | Status::BrowseAllowed(_)
            | Status::Files(_) => return,
        };
    }

    /// Takes in what the person did; a button that does not belong to the screen shown does
    /// nothing.
    pub fn act(&mut self, action: Action, now: Instant) -> Vec<Effect> {
        let say = |f: FromUser| vec![Effect::Say(f)];
        let chat_offered = self.chat_offered();
        match action {
            Action::EditFolder(text) => {
                self.files.folder = at_most(text, FOLDER_CHARS);
                return Vec::new();
            }
            Action::SaveFiles(_) | Action::DeclineFiles => {
                let Some(q) = self.files.question.take() else {
                    return Vec::new();
                };
                let save_in = match action {
                    Action::SaveFiles(dir) => Some(dir),
                    _ => None,
                };
                return say(FromUser::Files(FileAnswer {
                    viewer: q.viewer,
                    offer: q.offer,
                    save_in,
                }));
            }
            _ => {}
        }
        match (action, &mut self.screen) {
            (
                Action::CopyCode,
                Screen::Code {
                    copied,
                    asking_help: false,
                    ..
                },
            ) => {
                self.copied_at = Some(now);
                vec![Effect::Copy(copied.clone())]
            }
            (Action::RequestHelp, Screen::Code { asking_help, .. }) => {
                *asking_help = true;
                Vec::new()
            }
            (Action::Back, Screen::Code { asking_help, .. }) => {
                *asking_help = false;
                Vec::new()
            }
            (
                Action::EditForm(form),
                Screen::Code {
                    asking_help: true, ..
                },
            ) => {
                self.draft = HelpForm {
                    description: at_most(form.description, DESCRIPTION_CHARS),
                    ticket: at_most(form.ticket, TICKET_CHARS),
                };
                Vec::new()
            }
            (
                Action::SendRequest,
                Screen::Code {
                    asking_help: true, ..
                },
            ) => match self.draft.asked() {
                Some(asked) => {
                    self.screen = Screen::Filing;
                    vec![Effect::Desk(ToDesk::AskHelp(asked))]
                }
                None => Vec::new(),
            },
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
            (Action::Score(n), Screen::Survey { score, .. }) if (1..=5).contains(&n) => {
                *score = Some(n);
                Vec::new()
            }
            (Action::Comment(text), Screen::Survey { comment, .. }) => {
                *comment = at_most(text, COMMENT_CHARS);
                Vec::new()
            }
            (
                Action::SendAnswer,
                Screen::Survey {
                    score: Some(score),
                    comment,
                    ..
                },
            ) => {
                let answer = SurveyAnswer::Score {
                    score: *score,
                    comment: comment.trim().to_string(),
                };
                self.screen = Screen::SendingAnswer;
                vec![Effect::Desk(ToDesk::Survey(answer))]
            }
            (Action::SkipSurvey, Screen::Survey { .. }) => {
                self.screen = Screen::Ended {
                    why: EndedWhy::RequestClosed { thanked: false },
                };
                vec![Effect::Desk(ToDesk::Survey(SurveyAnswer::Skipped))]
            }
            (Action::Close, Screen::Ended { .. }) => vec![Effect::CloseWindow],
            (Action::ToggleChat, _) if chat_offered => {
                self.chat.open = !self.chat.open;
                if self.chat.open {
                    self.chat.unread = 0;
                }
                Vec::new()
            }
            (Action::ChatDraft(text), _) => {
                self.chat.draft = at_most(text, protocol::chat::MAX_CHAT_BYTES / 4);
                Vec::new()
            }
            (Action::SendChat, _) if chat_offered => {
                match protocol::chat::outgoing(&std::mem::take(&mut self.chat.draft)) {
                    // The session says it back as a line of the chat, wherever it was typed.
                    Some(text) => say(FromUser::Chat(text)),
                    None => Vec::new(),
                }
            }
            (Action::ShareClipboard(on), Screen::Sharing { .. }) if self.clipboard.is_some() => {
                self.clipboard = Some(on);
                say(FromUser::Clipboard(on))
            }
            (Action::AllowBrowse(on), Screen::Sharing { .. }) => {
                self.browse = on;
                say(FromUser::Browse(on))
            }
            (Action::CancelTransfer(key), Screen::Sharing { .. }) => {
                match self
                    .files
                    .transfers
                    .iter()
                    .find(|r| r.key == key && r.state == TransferState::Going)
                {
                    Some(row) => say(FromUser::CancelFiles {
                        viewer: key.0,
                        offer: row.offer,
                    }),
                    None => Vec::new(),
                }
            }
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

    /// The person let alice in with control, and the screen is shared.
    fn alice_controls(now: Instant) -> WindowModel {
        let mut m = asking(now);
        m.act(Action::Answer(ConsentState::Control), now);
        m.apply(Status::Sharing {
            others: vec![],
            peer: alice(),
            control: true,
        });
        m
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
    fn a_lost_connection_is_said_until_it_is_back_and_then_that_it_came_back() {
        let mut m = WindowModel::new();
        m.apply(Status::Sharing {
            others: vec![],
            peer: alice(),
            control: true,
        });
        let heard = |m: &WindowModel| match m.screen() {
            Screen::Sharing { heard, .. } => *heard,
            other => panic!("not sharing: {other:?}"),
        };
        assert_eq!(heard(&m), Heard::Fine);
        m.apply(Status::Heard(Heard::TechnicianQuiet));
        m.apply(Status::Heard(Heard::Fine));
        assert_eq!(
            heard(&m),
            Heard::Fine,
            "a technician heard again is no reconnection"
        );
        m.apply(Status::Heard(Heard::Reconnecting));
        // Control changing hands meanwhile keeps what is heard.
        m.apply(Status::Sharing {
            others: vec![],
            peer: alice(),
            control: false,
        });
        assert_eq!(heard(&m), Heard::Reconnecting);
        m.apply(Status::Heard(Heard::Fine));
        assert_eq!(heard(&m), Heard::Reconnected);
        m.apply(Status::Heard(Heard::TechnicianQuiet));
        assert_eq!(heard(&m), Heard::TechnicianQuiet);
    }

    #[test]
    fn ctrl_c_in_the_terminal_closes_the_window_without_changing_its_screen() {
        let mut m = asking(Instant::now());
        assert!(!m.interrupted());
        m.apply(Status::Interrupted);
        assert!(m.interrupted());
        assert!(matches!(m.screen(), Screen::Consent { .. }));
    }

    fn code(now: Instant) -> WindowModel {
        let mut m = WindowModel::new();
        m.apply(Status::Code {
            shown: "469 544 742 - 4821".into(),
            copied: "469544742-4821".into(),
            expires_at: now + Duration::from_secs(300),
        });
        m
    }

    fn form(description: &str, ticket: &str) -> HelpForm {
        HelpForm {
            description: description.into(),
            ticket: ticket.into(),
        }
    }

    fn asking_help(m: &WindowModel) -> bool {
        matches!(
            m.screen(),
            Screen::Code {
                asking_help: true,
                ..
            }
        )
    }

    #[test]
    fn request_help_sends_what_the_person_wrote_once_they_said_what_is_wrong() {
        let now = Instant::now();
        let mut m = code(now);
        assert!(m.act(Action::RequestHelp, now).is_empty());
        assert!(asking_help(&m));
        // Nothing said yet: Send request does nothing.
        m.act(Action::EditForm(form("   ", "")), now);
        assert!(m.act(Action::SendRequest, now).is_empty());
        assert!(asking_help(&m));
        m.act(
            Action::EditForm(form("  the printer stops after each page\n", " T-7 ")),
            now,
        );
        // Back to the code, which copies as before; the words stay for the next time.
        assert!(m.act(Action::Back, now).is_empty());
        assert!(!asking_help(&m));
        assert_eq!(
            m.act(Action::CopyCode, now),
            vec![Effect::Copy("469544742-4821".into())]
        );
        m.act(Action::RequestHelp, now);
        assert_eq!(m.draft().ticket, " T-7 ");
        assert_eq!(
            m.act(Action::SendRequest, now),
            vec![Effect::Desk(ToDesk::AskHelp(HelpAsked {
                description: "the printer stops after each page".into(),
                ticket: Some("T-7".into()),
            }))]
        );
        assert_eq!(m.screen(), &Screen::Filing);
        // Sent once: a second click finds another screen.
        assert!(m.act(Action::SendRequest, now).is_empty());
        m.apply(Status::Queued {
            request: 12,
            position: 3,
            expected_wait_secs: None,
        });
        assert!(matches!(m.screen(), Screen::Queued { request: 12, .. }));
    }

    #[test]
    fn the_help_form_keeps_no_more_than_the_relay_does_and_no_ticket_is_none() {
        let now = Instant::now();
        let mut m = code(now);
        // Typing in a form that is not open does nothing.
        m.act(Action::EditForm(form("early", "")), now);
        assert_eq!(m.draft(), &HelpForm::default());
        m.act(Action::RequestHelp, now);
        let long = form(
            &"é".repeat(DESCRIPTION_CHARS + 10),
            &"7".repeat(TICKET_CHARS + 1),
        );
        m.act(Action::EditForm(long), now);
        assert_eq!(m.draft().description.chars().count(), DESCRIPTION_CHARS);
        assert_eq!(m.draft().ticket.chars().count(), TICKET_CHARS);
        m.act(Action::EditForm(form("the printer", "")), now);
        let sent = m.act(Action::SendRequest, now);
        assert!(
            matches!(
                &sent[..],
                [Effect::Desk(ToDesk::AskHelp(HelpAsked {
                    ticket: None,
                    ..
                }))]
            ),
            "{sent:?}"
        );
    }

    #[test]
    fn the_survey_sends_a_chosen_score_with_its_comment() {
        let now = Instant::now();
        let mut m = WindowModel::new();
        m.apply(Status::Survey { request: 12 });
        // No score yet: nothing to send; scores are 1 to 5.
        assert!(m.act(Action::SendAnswer, now).is_empty());
        m.act(Action::Score(0), now);
        m.act(Action::Score(6), now);
        assert!(m.act(Action::SendAnswer, now).is_empty());
        m.act(Action::Score(2), now);
        m.act(Action::Score(4), now);
        m.act(Action::Comment(" quick and kind \n".into()), now);
        m.act(Action::Comment("x".repeat(COMMENT_CHARS + 5)), now);
        m.act(Action::Comment(" quick and kind \n".into()), now);
        assert_eq!(
            m.act(Action::SendAnswer, now),
            vec![Effect::Desk(ToDesk::Survey(SurveyAnswer::Score {
                score: 4,
                comment: "quick and kind".into(),
            }))]
        );
        assert_eq!(m.screen(), &Screen::SendingAnswer);
        assert!(m.act(Action::SendAnswer, now).is_empty());
        m.apply(Status::Ended(EndedWhy::RequestClosed { thanked: true }));
        assert_eq!(m.act(Action::Close, now), vec![Effect::CloseWindow]);
    }

    #[test]
    fn skipping_the_survey_says_so_and_ends() {
        let now = Instant::now();
        let mut m = WindowModel::new();
        m.apply(Status::Survey { request: 12 });
        m.act(Action::Score(5), now);
        assert_eq!(
            m.act(Action::SkipSurvey, now),
            vec![Effect::Desk(ToDesk::Survey(SurveyAnswer::Skipped))]
        );
        assert_eq!(
            m.screen(),
            &Screen::Ended {
                why: EndedWhy::RequestClosed { thanked: false }
            }
        );
        assert_eq!(m.layout(), Layout::Full);
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

    #[test]
    fn offered_files_open_the_window_and_are_saved_where_the_person_says_or_declined() {
        use crate::files::{FileAnswer, FileStatus, OfferShown, TransferShown, TransferState};
        let now = Instant::now();
        let mut m = alice_controls(now);
        assert_eq!(m.layout(), Layout::Bar);
        let offer = OfferShown {
            viewer: 2,
            offer: 7,
            who: "alice".into(),
            summary: "report.pdf".into(),
            count: 1,
            total: 5,
            default_dir: "/home/u/Downloads".into(),
        };
        m.apply(Status::Files(FileStatus::Question(Some(offer.clone()))));
        assert_eq!(m.layout(), Layout::Full, "the question needs the window");
        assert_eq!(m.files().folder, "/home/u/Downloads");
        m.act(Action::EditFolder("/tmp/elsewhere".into()), now);
        assert_eq!(
            m.act(Action::SaveFiles(m.files().folder.clone().into()), now),
            vec![Effect::Say(FromUser::Files(FileAnswer {
                viewer: 2,
                offer: 7,
                save_in: Some("/tmp/elsewhere".into()),
            }))]
        );
        assert!(m.act(Action::DeclineFiles, now).is_empty(), "answered once");
        // While a file moves the window stays open; once it arrived, the bar comes back.
        let mut row = TransferShown {
            key: (2, 1),
            offer: 7,
            name: "report.pdf".into(),
            incoming: true,
            who: "alice".into(),
            done: 0,
            size: 5,
            rate: 0,
            eta_secs: None,
            state: TransferState::Going,
        };
        m.apply(Status::Files(FileStatus::Question(None)));
        m.apply(Status::Files(FileStatus::Transfer(row.clone())));
        assert_eq!(m.layout(), Layout::Full);
        row.state = TransferState::Done("/tmp/elsewhere/report.pdf".into());
        m.apply(Status::Files(FileStatus::Transfer(row)));
        assert_eq!(m.files().transfers.len(), 1, "the same row, updated");
        assert_eq!(m.layout(), Layout::Bar);
        // A second offer, declined.
        m.apply(Status::Files(FileStatus::Question(Some(OfferShown {
            offer: 8,
            ..offer
        }))));
        assert_eq!(
            m.act(Action::DeclineFiles, now),
            vec![Effect::Say(FromUser::Files(FileAnswer {
                viewer: 2,
                offer: 8,
                save_in: None,
            }))]
        );
    }

    #[test]
    fn a_file_is_stopped_from_its_row_and_a_lost_connection_is_said_on_its_rows() {
        use crate::files::{FileStatus, TransferShown, TransferState};
        let now = Instant::now();
        let mut m = alice_controls(now);
        let row = |viewer, file| TransferShown {
            key: (viewer, file),
            offer: 3,
            name: "big.iso".into(),
            incoming: true,
            who: "alice".into(),
            done: 10,
            size: 100,
            rate: 5,
            eta_secs: Some(18),
            state: TransferState::Going,
        };
        m.apply(Status::Files(FileStatus::Transfer(row(2, 1))));
        m.apply(Status::Files(FileStatus::Transfer(row(4, 9))));
        assert_eq!(
            m.act(Action::CancelTransfer((2, 1)), now),
            vec![Effect::Say(FromUser::CancelFiles {
                viewer: 2,
                offer: 3
            })]
        );
        m.apply(Status::Files(FileStatus::Cancelled {
            viewer: 2,
            offer: 3,
            by_person: true,
        }));
        m.apply(Status::Files(FileStatus::Gone { viewer: 4 }));
        let states: Vec<&TransferState> = m.files().transfers.iter().map(|r| &r.state).collect();
        assert_eq!(
            states,
            [
                &TransferState::Cancelled { by_person: true },
                &TransferState::Interrupted
            ]
        );
        assert!(
            m.act(Action::CancelTransfer((2, 1)), now).is_empty(),
            "a stopped row has nothing to stop"
        );
        assert_eq!(m.layout(), Layout::Bar);
        assert_eq!(
            m.files().stopped.as_ref().map(|r| &r.state),
            Some(&TransferState::Interrupted),
            "the bar says the last file stopped"
        );
        // The switch of browsing, and who looked where.
        assert!(!m.browse());
        assert_eq!(
            m.act(Action::AllowBrowse(true), now),
            vec![Effect::Say(FromUser::Browse(true))]
        );
        m.apply(Status::Files(FileStatus::Browsed {
            who: "alice".into(),
            path: "/home/u/Documents".into(),
        }));
        assert_eq!(
            m.files().browsed,
            Some(("alice".into(), "/home/u/Documents".into()))
        );
        assert_eq!(m.files().stopped, None, "the later is kept");
    }
}
