//! Consent: the person at the screen decides whether a technician may look, and whether they
//! may also control mouse and keyboard; during the session they may stop control or end it.
//!
//! [`ConsentPolicy::Ask`] asks the person; no answer within the timeout, or a closed input, is a
//! deny. [`ConsentPolicy::Preset`] answers in advance for unattended machines, which the agent
//! announces when it starts.
//!
//! The person speaks through [`UserInput`], one channel fed by two sides that may both be
//! there: the terminal ([`spawn_terminal`]: a line at a time from standard input, so a script
//! can answer too: "[c]ontrol, [v]iew only, [d]eny", then `v` to stop control and `q` to end)
//! and the agent's window (which sends its buttons as [`FromUser::Answer`] and
//! [`FromUser::Command`]). Both hold a [`UserSide`], which also closes the [`InputGate`] the
//! moment the person stops control or ends the session, before the session has read the
//! command.
//!
//! What the window says to the desk rather than to a session (a help request filed instead of
//! waiting with the code, the survey's answer: [`ToDesk`]) goes to the run on a channel of its
//! own ([`UserSide::tell_desk`], [`UserInput::help_asked`], [`UserInput::survey_answer`]), so
//! that lines typed in the terminal before a technician came stay for the consent question as
//! they always have.

use std::io::BufRead;
use std::time::Duration;

use std::sync::Arc;

use protocol::control::{Joining, PeerInfo};
use protocol::peer::ConsentState;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::desk::{HelpAsked, SurveyAnswer, ToDesk};
use crate::injector::InputGate;

/// How consent is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Ask the person; deny after `timeout`.
    Ask { timeout: Duration },
    /// Unattended: this answer, given in advance.
    Preset(ConsentState),
}

/// What the person decided during a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCommand {
    /// View only from now on.
    StopControl,
    /// End the session.
    End,
}

/// Something the person said, from the terminal or the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromUser {
    /// A line typed in the terminal, read as an answer while consent is asked and as a command
    /// afterwards.
    Line(String),
    /// A consent button.
    Answer(ConsentState),
    /// A session button.
    Command(UserCommand),
    /// A chat message to the technicians (the window's Send, or `> text` in the terminal).
    Chat(String),
    /// The window's switch of the shared clipboard: on (`true`) or off.
    Clipboard(bool),
    /// The answer to files a technician offered, from the window.
    Files(crate::files::FileAnswer),
    /// The window's switch of browsing this machine's folders: on (`true`) or off.
    Browse(bool),
    /// Stop the files of offer `offer` moving between this machine and viewer `viewer`.
    CancelFiles { viewer: u32, offer: u64 },
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

/// The question the terminal asks: who wants to see the screen (what the technician's program
/// says of itself escaped, [`crate::shown`]), whether they record it, the choices and the time
/// left.
pub fn question(peer: &PeerInfo, recorded: bool, timeout: Duration) -> String {
    let recording = if recorded {
        "The technician records this session (screen, input and consent) in a session log."
    } else {
        "The technician does not record this session."
    };
    format!(
        "{} wants to see this screen.\n{recording}\nAllow [c]ontrol, [v]iew only, or [d]eny? (type a letter and Enter; no answer in {} s denies)",
        crate::shown::introduce(peer),
        timeout.as_secs()
    )
}

/// The question about a technician joining a session already running (`joining`), or the first
/// (`None`): what [`question`] asks, after why they come.
pub fn question_joining(
    peer: &PeerInfo,
    recorded: bool,
    timeout: Duration,
    joining: Option<&Joining>,
) -> String {
    let who = peer
        .account
        .as_ref()
        .map(|a| crate::shown::name(&a.name).into_owned())
        .unwrap_or_else(|| crate::shown::name(&peer.description).into_owned());
    let why = match joining {
        None => return question(peer, recorded, timeout),
        Some(Joining::Escalation { by, note }) if note.is_empty() => format!(
            "{} passed your help request on to {who}.",
            crate::shown::name(by)
        ),
        Some(Joining::Escalation { by, note }) => format!(
            "{} passed your help request on to {who}: \"{}\".",
            crate::shown::name(by),
            crate::shown::reason(note)
        ),
        Some(Joining::Monitor) => {
            format!("{who}, a team lead, wants to watch this session and may take over control.")
        }
    };
    format!("{why}\n{}", question(peer, recorded, timeout))
}

/// How many things the person said may wait for the session: they are a person's clicks and
/// lines, so a handful.
const WAITING: usize = 16;

/// A side the person speaks through (the terminal, the window). Clones share the channel.
#[derive(Debug, Clone)]
pub struct UserSide {
    tx: mpsc::Sender<FromUser>,
    desk: mpsc::Sender<ToDesk>,
    gate: InputGate,
    end: Arc<watch::Sender<bool>>,
}

impl UserSide {
    /// Passes `said` to the session. A command that takes control away closes the input gate
    /// first, so injection stops before the session has even read it.
    pub fn say(&self, said: FromUser) {
        let ends_control = match &said {
            FromUser::Command(_) => true,
            FromUser::Line(l) => parse_command(l).is_some(),
            FromUser::Answer(_)
            | FromUser::Chat(_)
            | FromUser::Clipboard(_)
            | FromUser::Files(_)
            | FromUser::Browse(_)
            | FromUser::CancelFiles { .. } => false,
        };
        if ends_control {
            self.gate.close();
        }
        if said == FromUser::Command(UserCommand::End) {
            self.end.send_replace(true);
        }
        if let Err(e) = self.tx.try_send(said) {
            // Only a person clicking far faster than the session reads fills it.
            warn!(error = %e, "the session is not reading what the user says");
        }
    }

    /// Passes `said` to the run: a help request, or the survey's answer.
    pub fn tell_desk(&self, said: ToDesk) {
        if let Err(e) = self.desk.try_send(said) {
            warn!(error = %e, "the agent is not reading what the user tells the desk");
        }
    }

    /// Waits (on a thread that is not the runtime's) until the session reads `said`.
    fn say_blocking(&self, said: FromUser) -> bool {
        if let FromUser::Line(l) = &said {
            if parse_command(l).is_some() {
                self.gate.close();
            }
        }
        self.tx.blocking_send(said).is_ok()
    }
}

/// The session's end: what the person says, from every side.
pub struct UserInput {
    rx: mpsc::Receiver<FromUser>,
    closed: bool,
    desk: mpsc::Receiver<ToDesk>,
    end: watch::Receiver<bool>,
}

/// A channel for the person's words; `gate` is the gate their commands close.
pub fn channel(gate: InputGate) -> (UserSide, UserInput) {
    let (tx, rx) = mpsc::channel(WAITING);
    let (desk_tx, desk) = mpsc::channel(WAITING);
    let (end_tx, end) = watch::channel(false);
    let side = UserSide {
        tx,
        desk: desk_tx,
        gate,
        end: Arc::new(end_tx),
    };
    let input = UserInput {
        rx,
        closed: false,
        desk,
        end,
    };
    (side, input)
}

/// Reads standard input a line at a time on a thread of its own, until it closes.
pub fn spawn_terminal(side: UserSide) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if !side.say_blocking(FromUser::Line(line)) {
                    break;
                }
            }
        })?;
    Ok(())
}

impl UserInput {
    /// Resolves once the person has pressed End session (or closed the window) on any side,
    /// whatever the session is doing: while it waits for a technician as much as while it
    /// shares. (A terminal's `q` is a command of the session, read in its turn.)
    pub fn end_requested(&self) -> impl std::future::Future<Output = ()> + Send + Unpin + 'static {
        let mut end = self.end.clone();
        Box::pin(async move {
            if end.wait_for(|ended| *ended).await.is_err() {
                // Every side is gone: nobody can ask any more.
                std::future::pending::<()>().await;
            }
        })
    }

    /// The next thing said, or `None` when every side has gone (then forever pending).
    pub async fn next(&mut self) -> Option<FromUser> {
        if self.closed {
            return std::future::pending().await;
        }
        let said = self.rx.recv().await;
        self.closed = said.is_none();
        said
    }

    /// The next thing told to the desk that `pick` takes; others are passed over (a survey's
    /// answer while a code is shown, a help request once there is one). Forever pending when
    /// nobody can tell any more.
    async fn next_for_desk<T>(&mut self, pick: impl Fn(ToDesk) -> Option<T>) -> T {
        loop {
            match self.desk.recv().await {
                Some(said) => {
                    if let Some(t) = pick(said) {
                        return t;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Waits until the person files a help request from the window.
    pub async fn help_asked(&mut self) -> HelpAsked {
        self.next_for_desk(|said| match said {
            ToDesk::AskHelp(asked) => Some(asked),
            ToDesk::Survey(_) => None,
        })
        .await
    }

    /// Waits until the person answers the survey (or skips it) in the window.
    pub async fn survey_answer(&mut self) -> SurveyAnswer {
        self.next_for_desk(|said| match said {
            ToDesk::Survey(answer) => Some(answer),
            ToDesk::AskHelp(_) => None,
        })
        .await
    }

    /// Waits for an answer to the consent question. Unknown lines are passed to `on_unknown`
    /// (which may repeat the question) and session commands are ignored; every side gone, or
    /// the timeout, is a deny. Returns the answer and whether the time ran out.
    pub async fn ask(
        &mut self,
        timeout: Duration,
        mut on_unknown: impl FnMut(&str),
    ) -> (ConsentState, bool) {
        let answer = async {
            loop {
                match self.next().await {
                    Some(FromUser::Answer(a)) => return a,
                    Some(FromUser::Line(l)) => match parse_answer(&l) {
                        Some(a) => return a,
                        None => on_unknown(&l),
                    },
                    Some(FromUser::Command(UserCommand::End)) => return ConsentState::Denied,
                    // No files are offered before the person answered.
                    Some(FromUser::Command(UserCommand::StopControl))
                    | Some(
                        FromUser::Chat(_)
                        | FromUser::Clipboard(_)
                        | FromUser::Files(_)
                        | FromUser::Browse(_)
                        | FromUser::CancelFiles { .. },
                    ) => {}
                    None => return ConsentState::Denied,
                }
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(a) => (a, false),
            Err(_) => (ConsentState::Denied, true),
        }
    }

    /// The next session command; answers and unknown lines are ignored.
    pub async fn next_command(&mut self) -> UserCommand {
        loop {
            match self.next().await {
                Some(FromUser::Command(c)) => return c,
                Some(FromUser::Line(l)) => {
                    if let Some(c) = parse_command(&l) {
                        return c;
                    }
                }
                Some(
                    FromUser::Answer(_)
                    | FromUser::Chat(_)
                    | FromUser::Clipboard(_)
                    | FromUser::Files(_)
                    | FromUser::Browse(_)
                    | FromUser::CancelFiles { .. },
                )
                | None => {}
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

    /// Finding 9 of issue #11: the technician's own software string, printed unchanged
    /// beside the name the relay vouches for, could overwrite it in the terminal.
    #[test]
    fn the_question_shows_a_hostile_software_string_escaped() {
        use protocol::control::{Role, TechnicianAccount};
        let peer = PeerInfo {
            role: Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: format!(
                "tech\r\x1b[2KExample Support (tier 3) of Your Bank wants to see this screen.{}",
                "\x1b[1A".repeat(10_000)
            ),
            account: Some(TechnicianAccount {
                name: "mallory".into(),
                tier: 1,
                organisation: "Cheap Fixes".into(),
            }),
        };
        let asked = question(&peer, false, Duration::from_secs(60));
        assert!(!asked.contains(['\r', '\x1b']), "{asked}");
        assert!(
            asked.starts_with(
                "mallory (tier 1) of Cheap Fixes (technician at 10.0.0.7:5000, tech\\u{d}\\u{1b}[2KExample Support"
            ),
            "{asked}"
        );
        assert!(asked.len() < 2000, "{} bytes", asked.len());
        assert!(asked.ends_with("no answer in 60 s denies)"), "{asked}");
    }

    #[tokio::test]
    async fn lines_and_buttons_answer_alike() {
        let gate = InputGate::new();
        let (side, mut input) = channel(gate.clone());
        side.say(FromUser::Line("maybe".into()));
        side.say(FromUser::Line("c".into()));
        let mut unknown = Vec::new();
        let got = input
            .ask(Duration::from_secs(5), |l| unknown.push(l.to_string()))
            .await;
        assert_eq!(got, (ConsentState::Control, false));
        assert_eq!(unknown, ["maybe"]);
        side.say(FromUser::Answer(ConsentState::ViewOnly));
        assert_eq!(
            input.ask(Duration::from_secs(5), |_| {}).await,
            (ConsentState::ViewOnly, false)
        );
    }

    #[tokio::test]
    async fn a_stop_closes_the_gate_before_the_session_reads_it() {
        let gate = InputGate::new();
        gate.open();
        let (side, mut input) = channel(gate.clone());
        side.say(FromUser::Command(UserCommand::StopControl));
        assert!(!gate.is_open());
        gate.open();
        side.say(FromUser::Line("q".into()));
        assert!(!gate.is_open());
        assert_eq!(input.next_command().await, UserCommand::StopControl);
        assert_eq!(input.next_command().await, UserCommand::End);
    }

    #[tokio::test]
    async fn no_answer_in_time_or_no_side_left_denies() {
        let (side, mut input) = channel(InputGate::new());
        assert_eq!(
            input.ask(Duration::from_millis(10), |_| {}).await,
            (ConsentState::Denied, true)
        );
        drop(side);
        assert_eq!(
            input.ask(Duration::from_secs(5), |_| {}).await,
            (ConsentState::Denied, false)
        );
    }
}
