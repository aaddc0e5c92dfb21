//! The console's state as plain data, and how events change it.
//!
//! Everything the console shows is here: the login form, home (code entry, recent sessions,
//! the help-request queue, an offer from routing, presence, the leads' dashboard), the session
//! view (who, consent, recording, quality, how the screen is fitted, the help request's steps,
//! the chat ([`super::chat`]), the user's monitors, the last clipboard passed) and the player. The desk's parts are in [`super::desk`]. [`Model::update`] takes an [`Event`] (from the person, through the egui code, or from
//! the network worker) and returns the [`Command`]s for the network worker. Nothing here draws,
//! touches the network or reads a clock, so it is tested directly.

use protocol::control::QueueEntry;
use std::path::PathBuf;
use std::time::Duration;

pub use super::chat::ChatView;
pub use super::desk::{Answer, Dashboard, DeskKind, Offer, SessionRequest};
use crate::desk::DeskAction;
use crate::files::FileStep;
use crate::session::ControlStep;
use crate::session::ToolAction;
use protocol::clipboard::ClipKind;
use protocol::monitor::{MonitorChoice, Monitors};
use protocol::sessionlog::{ChatRecord, ClipDirection};

use protocol::e2e::UserCode;
use protocol::peer::{ConsentState, Participant};

/// Declined offers remembered, so that a queue sent before the relay had the decline does not
/// bring the offer back.
const MAX_DECLINED_KEPT: usize = 16;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Login,
    Home,
    Session,
    Player,
}

/// How the remote screen is fitted into the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewScale {
    /// Scaled to the window, aspect kept.
    #[default]
    Fit,
    /// One remote pixel a screen pixel, with scroll bars.
    OneToOne,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginForm {
    pub relay: String,
    pub user: String,
    pub password: String,
    /// The authenticator's one-time code, for an account with a second factor (may stay
    /// empty otherwise).
    pub one_time: String,
    /// Waiting for the relay.
    pub busy: bool,
    /// The last refusal, in words for a person.
    pub error: Option<String>,
    /// A relay met for the first time: its fingerprint, to accept or refuse.
    pub first_contact: Option<String>,
}

/// The technician as the relay knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub relay: String,
    pub user: String,
    /// `alice (tier 2) of Example Support`, when the relay said so.
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSession {
    pub code: String,
    pub peer: String,
    /// How it ended, in words.
    pub outcome: String,
    pub log: Option<PathBuf>,
    /// The help request of the session, and what the relay did with it ("escalated to tier
    /// 2"), when the technician passed it on or closed it.
    pub passed: Option<(u64, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Home {
    /// The code as typed (shown as typed; spaces and dashes do not matter).
    pub code: String,
    pub error: Option<String>,
    pub recent: Vec<RecentSession>,
    /// The help requests this technician may take, oldest first, and how many more wait
    /// (`None`: not heard from the relay yet).
    pub queue: Option<(Vec<QueueEntry>, u32)>,
    /// The request routing offers this technician now.
    pub offer: Option<Offer>,
    /// The offers this technician declined lately (newest last), which the queue may still show
    /// as theirs for a moment.
    pub declined: Vec<u64>,
    /// This technician told the desk they are away (routing offers them nothing).
    pub away: bool,
    /// The desk's queues and technicians, for leads (`None`: the relay sends none).
    pub dashboard: Option<Dashboard>,
}

/// Connection quality as the toolbar shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub rtt: Duration,
    pub updates_per_sec: u32,
    pub mbit_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// The code, as `469 544 742 - 4821`.
    pub code: String,
    pub account: Option<String>,
    pub peer: Option<String>,
    pub consent: ConsentState,
    /// A change of consent worth saying ("the user stopped control").
    pub notice: Option<Notice>,
    /// The remote screen's size, once it arrived.
    pub screen: Option<(u32, u32)>,
    /// Recorded into this log (`Some(None)`: the relay allows it unrecorded and it is not).
    pub recording: Option<Option<PathBuf>>,
    pub quality: Option<Quality>,
    /// The relay hears nothing from the agent for now; the session waits for it.
    pub quiet: bool,
    /// Nothing is heard from the relay for now.
    pub relay_quiet: bool,
    /// The relay asked sent the session to the relay at this address, which holds the user's
    /// agent.
    pub redirected: Option<String>,
    /// The six digits to compare with the user, for a session from the queue.
    pub verification: Option<String>,
    /// The help request the session came from, and the steps taken with it.
    pub request: Option<SessionRequest>,
    /// The session's technicians and who holds control, once there is more than one (the
    /// entry with `you` is this technician).
    pub participants: Vec<Participant>,
    pub scale: ViewScale,
    pub fullscreen: bool,
    /// Keys go to the remote machine, the local desktop's shortcuts included.
    pub grabbed: bool,
    /// Ended, and why.
    pub ended: Option<String>,
    /// The last snapshot written, or why it failed.
    pub snapshot: Option<Result<PathBuf, String>>,
    /// The session's chat.
    pub chat: ChatView,
    /// The user's monitors and which one this technician sees, once the agent listed them.
    pub monitors: Option<Monitors>,
    /// The last clipboard that passed between the user and this technician.
    pub clipboard: Option<ClipboardNote>,
    /// The user shares the clipboard with this technician now.
    pub clipboard_shared: bool,
    /// Files sent or fetched in this session, the latest [`FILE_ROWS`].
    pub files: Vec<FileRow>,
    /// What the technician is typing to send or fetch.
    pub files_form: FilesForm,
    /// The last offer or fetch that went nowhere, and why.
    pub files_note: Option<FilesNote>,
    /// The folder of the user's machine shown in the Files panel, where they allow browsing.
    pub browsing: Option<protocol::browse::Listing>,
    /// Why the agent refused the last monitor switch, until the monitors change.
    pub monitor_refused: Option<String>,
    /// The Files panel is open.
    pub files_open: bool,
}

/// The Files panel's fields: a path here to send, a path on the user's machine to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesForm {
    pub send: String,
    pub fetch: String,
}

/// Why files asked for did not move: none of them became a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesNote {
    /// The files could not be offered (not found, unreadable): why.
    NotOffered(String),
    /// The user (or their machine) declined the offer: why.
    Declined(String),
    /// The user's machine did not give what was asked for.
    FetchRefused { path: String, why: String },
}

/// A clipboard that passed, as the session view says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipboardNote {
    pub direction: ClipDirection,
    pub kind: ClipKind,
    pub bytes: u64,
}

/// Rows of files the session view keeps.
pub const FILE_ROWS: usize = 4;

/// A file sent to the user or fetched from them, as the session view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    /// The offer and the file: the same row as it goes.
    pub key: (u64, u64),
    pub name: String,
    /// Fetched from the user (`true`) or sent to them.
    pub incoming: bool,
    pub done: u64,
    pub size: u64,
    /// Bytes a second.
    pub rate: u64,
    pub eta_secs: Option<u64>,
    /// `None` while it moves; then whether it arrived checked, or why not.
    pub ended: Option<Result<(), String>>,
    /// Stopped before it arrived (by either end): what arrived is kept for a resume.
    pub stopped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    ControlGranted,
    ControlStopped,
}

impl SessionView {
    /// This technician holds control now (with others in the session; alone, consent says).
    pub fn holds_control(&self) -> bool {
        match self.participants.iter().find(|p| p.you) {
            Some(me) => me.controls,
            None => self.consent == ConsentState::Control,
        }
    }

    /// This technician may switch the user's monitors: it holds control, or nobody does.
    pub fn may_switch_monitor(&self) -> bool {
        self.holds_control() || !self.participants.iter().any(|p| p.controls)
    }

    /// This technician monitors the session as a lead, may control it, and does not yet.
    pub fn may_take_over(&self) -> bool {
        self.participants
            .iter()
            .find(|p| p.you)
            .is_some_and(|me| me.monitoring && me.may_control && !me.controls)
    }

    fn new(code: String, scale: ViewScale, fullscreen: bool) -> Self {
        Self {
            code,
            account: None,
            peer: None,
            consent: ConsentState::Asking,
            notice: None,
            screen: None,
            recording: None,
            quality: None,
            quiet: false,
            relay_quiet: false,
            redirected: None,
            verification: None,
            request: None,
            participants: Vec::new(),
            scale,
            fullscreen,
            grabbed: false,
            ended: None,
            snapshot: None,
            chat: ChatView::default(),
            monitors: None,
            clipboard: None,
            clipboard_shared: false,
            files: Vec::new(),
            files_form: FilesForm::default(),
            files_note: None,
            browsing: None,
            monitor_refused: None,
            files_open: false,
        }
    }

    /// Files may be sent or fetched: the screen is shown and the session goes on (the user is
    /// asked about each offer, or their agent answers for them).
    pub fn may_move_files(&self) -> bool {
        self.screen.is_some() && self.ended.is_none()
    }

    /// Input goes to the remote machine only while the user allows control.
    pub fn may_control(&self) -> bool {
        self.consent == ConsentState::Control && self.ended.is_none()
    }
}

/// Keys the local desktop would take, sent from the "Send keys" menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKeys {
    CtrlAltDel,
    AltTab,
    AltF4,
    Super,
    PrintScreen,
}

impl SpecialKeys {
    pub const ALL: [SpecialKeys; 5] = [
        SpecialKeys::CtrlAltDel,
        SpecialKeys::AltTab,
        SpecialKeys::AltF4,
        SpecialKeys::Super,
        SpecialKeys::PrintScreen,
    ];
}

/// What happens to the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    // From the person.
    LoginSubmitted,
    AcceptRelay,
    RefuseRelay,
    JoinSubmitted,
    /// Take this help request (`None`: the oldest whose user is connected).
    TakeSubmitted(Option<u64>),
    /// Take the request routing offers.
    AcceptOffer,
    /// Say no to the request routing offers; it goes to the next technician.
    DeclineOffer,
    /// Tell the desk this technician is away (`true`) or available.
    SetAway(bool),
    /// Open the form of a step of the session's help request.
    OpenDeskForm(DeskKind),
    CancelDeskForm,
    /// Send the open form's step to the relay.
    SubmitDeskForm,
    /// Give control to the technician of this account name (in a session with several).
    HandOver(String),
    /// Take control, as a lead monitoring the session.
    TakeOver,
    /// Watch this live session as a lead (its identifier, from the dashboard).
    MonitorSubmitted(String),
    EndSession,
    SetScale(ViewScale),
    ToggleFullscreen,
    SetGrab(bool),
    Snapshot(PathBuf),
    SendKeys(SpecialKeys),
    OpenLog(PathBuf),
    BackHome,
    LogOut,
    // From the network worker.
    FirstContact {
        fingerprint: String,
    },
    LoggedIn {
        account: String,
    },
    LoginFailed(String),
    JoinFailed(String),
    /// The queue as the relay sends it.
    Queue {
        requests: Vec<QueueEntry>,
        more: u32,
    },
    /// Routing offers this technician a request, open for `expires_in_secs` from
    /// `now_unix_ms` (when it arrived).
    Offer {
        request: QueueEntry,
        expires_in_secs: u32,
        now_unix_ms: u64,
    },
    /// The leads' dashboard, with each change.
    Dashboard(Dashboard),
    /// The session is with the user of this help request (as taken).
    RequestTaken(QueueEntry),
    /// The relay did the step asked of the session's help request: its words.
    RequestPassed(String),
    /// How a file sent or fetched stands.
    File(FileRow),
    /// Files asked for went nowhere.
    FilesNote(FilesNote),
    /// The path to send, as typed.
    FileSendPath(String),
    /// The path on the user's machine to fetch, as typed.
    FileFetchPath(String),
    /// Send what the field names to the user.
    SendFiles,
    /// Fetch what the field names into `into`.
    FetchFiles {
        into: PathBuf,
    },
    /// Fetch this path of the user's machine (picked in a folder shown) into `into`.
    FetchPicked {
        path: String,
        into: PathBuf,
    },
    /// Show what the folder at this path of the user's machine holds.
    ListFolder(String),
    /// The user's machine showed a folder.
    Listed(protocol::browse::Listing),
    /// Stop the files of this offer.
    StopFiles(u64),
    /// The files of this offer were stopped (by either end), and why.
    FilesStopped {
        offer: u64,
        why: String,
    },
    /// The relay (or the session) refused the step: why.
    RequestRefused(String),
    /// The time now, for what counts down (the offer).
    Tick {
        now_unix_ms: u64,
    },
    Paired {
        account: String,
        peer: String,
    },
    Recording(Option<PathBuf>),
    /// The relay asked sent the session to the relay at this address, which holds the user's
    /// agent.
    Redirected(String),
    Consent(ConsentState),
    ScreenStarted {
        width: u32,
        height: u32,
    },
    Quality(Quality),
    /// The agent fell silent (`true`) or is heard again (`false`).
    PeerQuiet(bool),
    /// The relay fell silent (`true`) or is heard again (`false`).
    RelayQuiet(bool),
    /// The verification code of a session from the queue.
    Verification(String),
    /// The session's technicians, once there is more than one, and who holds control.
    Participants(Vec<Participant>),
    SessionEnded {
        message: String,
        log: Option<PathBuf>,
    },
    SnapshotDone(Result<PathBuf, String>),
    /// A chat message from the user or another technician, arrived at this Unix time (ms).
    ChatReceived {
        chat: ChatRecord,
        at_unix_ms: u64,
    },
    /// What is typed in the chat panel now.
    ChatDraft(String),
    /// Send, in the chat panel (at this Unix time, ms).
    SendChat {
        at_unix_ms: u64,
    },
    /// Open or close the chat panel.
    ToggleChat,
    /// The Files button: open or close the Files panel.
    ToggleFiles,
    /// The agent's monitors, and which this technician sees.
    Monitors(Monitors),
    /// See another of the user's monitors, or all of them.
    ShowMonitor(MonitorChoice),
    /// A clipboard passed between the user and this technician.
    Clipboard(ClipboardNote),
    /// The user shares the clipboard with this technician now (`true`), or no longer.
    ClipboardShared(bool),
    /// The agent refused a monitor switch: why.
    MonitorRefused(String),
    PlayerFailed(String),
    /// The console is asked to close (SIGINT, SIGTERM); the window does it.
    Quit,
}

/// What the network worker (or the window) is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect {
        relay: String,
        user: String,
        password: String,
        one_time: Option<String>,
    },
    Trust {
        relay: String,
        fingerprint: String,
    },
    Refuse,
    Join {
        code: String,
    },
    /// Take a help request (`None`: the oldest) and run its session.
    Take {
        request: Option<u64>,
    },
    /// Watch a live session as a lead, and run it like a join.
    Monitor {
        session: String,
    },
    /// Hand control over, or take it over, in the running session.
    Control(ControlStep),
    /// Follow the queue of the logged-in account.
    WatchQueue,
    Decline {
        request: u64,
    },
    SetPresence {
        away: bool,
    },
    /// A step of the session's help request, for the relay.
    Desk(DeskAction),
    /// Chat or a monitor switch, for the session.
    Tool(ToolAction),
    End,
    Snapshot(PathBuf),
    SendKeys(SpecialKeys),
    OpenLog(PathBuf),
    LogOut {
        relay: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub screen: Screen,
    pub login: LoginForm,
    pub me: Option<LoggedIn>,
    pub home: Home,
    pub session: Option<SessionView>,
    /// How a new session's viewer starts.
    pub default_scale: ViewScale,
    pub start_fullscreen: bool,
    /// Why the player could not open a log.
    pub player_error: Option<String>,
}

/// The code as typed, checked: `Ok` with the whole code shown as `469 544 742 - 4821`.
pub fn check_code(typed: &str) -> Result<String, String> {
    let digits: String = typed.chars().filter(|c| c.is_ascii_digit()).collect();
    if typed
        .chars()
        .any(|c| !(c.is_ascii_digit() || c.is_whitespace() || c == '-'))
    {
        return Err("A session code has only digits (spaces and dashes do not matter).".into());
    }
    match digits.len() {
        0 => Err("Enter the code the user reads out.".into()),
        n if n < 13 => Err(format!(
            "{n} of the 13 digits: the code is nine digits, a dash and four more."
        )),
        13 => UserCode::parse(&digits)
            .map(|c| c.to_string())
            .map_err(|e| e.to_string()),
        n => Err(format!("{n} digits: a session code has 13.")),
    }
}

impl Model {
    /// The console at start: logged in already (`me`) goes home, otherwise the login form
    /// filled with what is known.
    pub fn new(relay: String, user: String, me: Option<LoggedIn>) -> Self {
        Self {
            screen: if me.is_some() {
                Screen::Home
            } else {
                Screen::Login
            },
            login: LoginForm {
                relay,
                user,
                ..LoginForm::default()
            },
            me,
            home: Home::default(),
            session: None,
            default_scale: ViewScale::Fit,
            start_fullscreen: false,
            player_error: None,
        }
    }

    pub fn update(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::LoginSubmitted => {
                let f = &mut self.login;
                if f.busy {
                    return vec![];
                }
                let relay = f.relay.trim().to_string();
                let user = f.user.trim().to_string();
                if relay.is_empty() || user.is_empty() || f.password.is_empty() {
                    f.error =
                        Some("Enter the relay's address, your name and your password.".into());
                    return vec![];
                }
                f.busy = true;
                f.error = None;
                let code = std::mem::take(&mut f.one_time);
                let code = code.trim();
                vec![Command::Connect {
                    relay,
                    user,
                    password: std::mem::take(&mut f.password),
                    one_time: (!code.is_empty()).then(|| code.to_string()),
                }]
            }
            Event::FirstContact { fingerprint } => {
                self.login.first_contact = Some(fingerprint);
                vec![]
            }
            Event::AcceptRelay => match self.login.first_contact.take() {
                Some(fingerprint) => vec![Command::Trust {
                    relay: self.login.relay.trim().to_string(),
                    fingerprint,
                }],
                None => vec![],
            },
            Event::RefuseRelay => {
                self.login.first_contact = None;
                self.login.busy = false;
                self.login.error = Some(
                    "Not connected: the relay's fingerprint was refused. Check it with the relay's administrator."
                        .into(),
                );
                vec![Command::Refuse]
            }
            Event::LoggedIn { account } => {
                self.login.busy = false;
                self.login.error = None;
                self.login.first_contact = None;
                self.me = Some(LoggedIn {
                    relay: self.login.relay.trim().to_string(),
                    user: self.login.user.trim().to_string(),
                    account: Some(account),
                });
                if self.screen == Screen::Login {
                    self.screen = Screen::Home;
                }
                vec![Command::WatchQueue]
            }
            Event::Queue { requests, more } => {
                let me = self
                    .me
                    .as_ref()
                    .map(|m| m.user.as_str())
                    .unwrap_or_default();
                if let Some(o) = &self.home.offer {
                    if !o.stands_in(&requests, more, me) {
                        self.home.offer = None;
                    }
                }
                if self.home.offer.is_none() {
                    self.home.offer = Offer::in_queue(&requests, me, &self.home.declined);
                }
                self.home.queue = Some((requests, more));
                vec![]
            }
            Event::Offer {
                request,
                expires_in_secs,
                now_unix_ms,
            } => {
                self.home.offer = Some(Offer::new(request, expires_in_secs, now_unix_ms));
                vec![]
            }
            Event::Tick { now_unix_ms } => {
                if let Some(o) = &self.home.offer {
                    if o.secs_left(now_unix_ms) == Some(0) {
                        self.home.offer = None;
                    }
                }
                vec![]
            }
            Event::AcceptOffer => match &self.home.offer {
                Some(o) if !self.in_session() => {
                    let id = o.request.id;
                    self.update(Event::TakeSubmitted(Some(id)))
                }
                _ => vec![],
            },
            Event::DeclineOffer => match self.home.offer.take() {
                Some(o) => {
                    let declined = &mut self.home.declined;
                    declined.push(o.request.id);
                    if declined.len() > MAX_DECLINED_KEPT {
                        declined.remove(0);
                    }
                    vec![Command::Decline {
                        request: o.request.id,
                    }]
                }
                None => vec![],
            },
            Event::SetAway(away) => {
                if self.home.away == away {
                    return vec![];
                }
                self.home.away = away;
                vec![Command::SetPresence { away }]
            }
            Event::Dashboard(d) => {
                self.home.dashboard = Some(d);
                vec![]
            }
            Event::RequestTaken(entry) => {
                if let Some(s) = &mut self.session {
                    s.code = format!("request {}", entry.id);
                    s.request = Some(SessionRequest::new(entry));
                }
                vec![]
            }
            Event::OpenDeskForm(kind) => {
                if let Some(r) = self.live_request() {
                    r.open(kind);
                }
                vec![]
            }
            Event::CancelDeskForm => {
                if let Some(r) = self.live_request() {
                    r.cancel();
                }
                vec![]
            }
            Event::SubmitDeskForm => match self.live_request().and_then(|r| r.submit()) {
                Some(action) => vec![Command::Desk(action)],
                None => vec![],
            },
            Event::RequestPassed(words) => {
                if let Some(r) = self.session.as_mut().and_then(|s| s.request.as_mut()) {
                    r.answered(Answer::Passed(words));
                }
                vec![]
            }
            Event::RequestRefused(why) => {
                if let Some(r) = self.session.as_mut().and_then(|s| s.request.as_mut()) {
                    r.answered(Answer::Refused(why));
                }
                vec![]
            }
            Event::HandOver(to) => match &self.session {
                Some(s) if s.holds_control() && s.ended.is_none() => {
                    vec![Command::Control(ControlStep::HandOver(to))]
                }
                _ => vec![],
            },
            Event::TakeOver => match &self.session {
                Some(s) if s.may_take_over() && s.ended.is_none() => {
                    vec![Command::Control(ControlStep::TakeOver)]
                }
                _ => vec![],
            },
            Event::Participants(list) => {
                if let Some(s) = &mut self.session {
                    s.participants = list;
                }
                vec![]
            }
            Event::MonitorSubmitted(session) => {
                if self.in_session() {
                    return vec![];
                }
                self.home.error = None;
                self.session = Some(SessionView::new(
                    format!("session {session}"),
                    self.default_scale,
                    self.start_fullscreen,
                ));
                self.screen = Screen::Session;
                vec![Command::Monitor { session }]
            }
            Event::TakeSubmitted(request) => {
                if self.in_session() {
                    return vec![];
                }
                if request.is_some() && self.home.offer.as_ref().map(|o| o.request.id) == request {
                    self.home.offer = None;
                }
                let label = match request {
                    Some(id) => format!("request {id}"),
                    None => "the next request".to_string(),
                };
                self.home.error = None;
                self.session = Some(SessionView::new(
                    label,
                    self.default_scale,
                    self.start_fullscreen,
                ));
                self.screen = Screen::Session;
                vec![Command::Take { request }]
            }
            Event::LoginFailed(why) => {
                self.login.busy = false;
                self.login.first_contact = None;
                self.login.error = Some(why);
                self.screen = Screen::Login;
                vec![]
            }
            Event::JoinSubmitted => {
                if self.in_session() {
                    return vec![];
                }
                match check_code(&self.home.code) {
                    Ok(code) => {
                        self.home.error = None;
                        self.session = Some(SessionView::new(
                            code.clone(),
                            self.default_scale,
                            self.start_fullscreen,
                        ));
                        self.screen = Screen::Session;
                        vec![Command::Join { code }]
                    }
                    Err(e) => {
                        self.home.error = Some(e);
                        vec![]
                    }
                }
            }
            Event::JoinFailed(why) => {
                self.session = None;
                self.screen = Screen::Home;
                self.home.error = Some(why);
                vec![]
            }
            Event::Paired { account, peer } => {
                if let Some(s) = &mut self.session {
                    s.account = Some(account.clone());
                    s.peer = Some(peer);
                }
                if let Some(me) = &mut self.me {
                    me.account = Some(account);
                }
                vec![]
            }
            Event::Recording(path) => {
                if let Some(s) = &mut self.session {
                    s.recording = Some(path);
                }
                vec![]
            }
            Event::Redirected(relay) => {
                if let Some(s) = &mut self.session {
                    s.redirected = Some(relay);
                }
                vec![]
            }
            Event::Consent(state) => {
                if let Some(s) = &mut self.session {
                    s.notice = match (s.consent, state) {
                        (ConsentState::Control, ConsentState::ViewOnly) => {
                            Some(Notice::ControlStopped)
                        }
                        (ConsentState::ViewOnly, ConsentState::Control) => {
                            Some(Notice::ControlGranted)
                        }
                        _ => s.notice,
                    };
                    s.consent = state;
                    if state != ConsentState::Control {
                        s.grabbed = false;
                    }
                }
                vec![]
            }
            Event::ScreenStarted { width, height } => {
                if let Some(s) = &mut self.session {
                    s.screen = Some((width, height));
                }
                vec![]
            }
            Event::FilesNote(note) => {
                if let Some(s) = &mut self.session {
                    s.files_note = Some(note);
                }
                vec![]
            }
            Event::FileSendPath(path) => {
                if let Some(s) = &mut self.session {
                    s.files_form.send = path;
                }
                vec![]
            }
            Event::FileFetchPath(path) => {
                if let Some(s) = &mut self.session {
                    s.files_form.fetch = path;
                }
                vec![]
            }
            Event::SendFiles => match &mut self.session {
                Some(s) if s.may_move_files() && !s.files_form.send.trim().is_empty() => {
                    let path = PathBuf::from(std::mem::take(&mut s.files_form.send).trim());
                    s.files_note = None;
                    s.files_open = false;
                    vec![Command::Tool(ToolAction::Files(FileStep::Send(vec![path])))]
                }
                _ => vec![],
            },
            Event::FetchFiles { into } => match &mut self.session {
                Some(s) if s.may_move_files() && !s.files_form.fetch.trim().is_empty() => {
                    let path = std::mem::take(&mut s.files_form.fetch).trim().to_string();
                    s.files_note = None;
                    s.files_open = false;
                    vec![Command::Tool(ToolAction::Files(FileStep::Fetch {
                        path,
                        dir: into,
                    }))]
                }
                _ => vec![],
            },
            Event::FetchPicked { path, into } => match &mut self.session {
                Some(s) if s.may_move_files() => {
                    s.files_note = None;
                    vec![Command::Tool(ToolAction::Files(FileStep::Fetch {
                        path,
                        dir: into,
                    }))]
                }
                _ => vec![],
            },
            Event::ListFolder(path) => match &mut self.session {
                Some(s) if s.may_move_files() => {
                    s.files_note = None;
                    let path = match path.trim() {
                        "" => "~".to_string(),
                        p => p.to_string(),
                    };
                    vec![Command::Tool(ToolAction::Files(FileStep::List { path }))]
                }
                _ => vec![],
            },
            Event::Listed(listing) => {
                if let Some(s) = &mut self.session {
                    s.browsing = Some(listing);
                }
                vec![]
            }
            Event::StopFiles(offer) => match &self.session {
                Some(s)
                    if s.files
                        .iter()
                        .any(|r| r.key.0 == offer && r.ended.is_none()) =>
                {
                    vec![Command::Tool(ToolAction::Files(FileStep::Cancel { offer }))]
                }
                _ => vec![],
            },
            Event::FilesStopped { offer, why } => {
                if let Some(s) = &mut self.session {
                    for r in s.files.iter_mut().filter(|r| r.key.0 == offer) {
                        if r.ended.is_none() {
                            r.ended = Some(Err(why.clone()));
                            r.stopped = true;
                        }
                    }
                }
                vec![]
            }
            Event::File(row) => {
                if let Some(s) = &mut self.session {
                    match s.files.iter_mut().find(|r| r.key == row.key) {
                        Some(r) => *r = row,
                        None => s.files.push(row),
                    }
                    if s.files.len() > FILE_ROWS {
                        s.files.remove(0);
                    }
                }
                vec![]
            }
            Event::Quality(q) => {
                if let Some(s) = &mut self.session {
                    s.quality = Some(q);
                }
                vec![]
            }
            Event::PeerQuiet(quiet) => {
                if let Some(s) = &mut self.session {
                    s.quiet = quiet;
                }
                vec![]
            }
            Event::RelayQuiet(quiet) => {
                if let Some(s) = &mut self.session {
                    s.relay_quiet = quiet;
                }
                vec![]
            }
            Event::Verification(code) => {
                if let Some(s) = &mut self.session {
                    s.verification = Some(code);
                }
                vec![]
            }
            Event::SessionEnded { message, log } => {
                if let Some(s) = &mut self.session {
                    s.ended = Some(message.clone());
                    s.grabbed = false;
                    s.fullscreen = false;
                    self.home.recent.insert(
                        0,
                        RecentSession {
                            code: s.code.clone(),
                            peer: s.peer.clone().unwrap_or_default(),
                            outcome: message,
                            log,
                            passed: s.request.as_ref().and_then(|r| {
                                r.passed().map(|words| (r.entry.id, words.to_string()))
                            }),
                        },
                    );
                    self.home.recent.truncate(20);
                }
                vec![]
            }
            Event::EndSession => match &self.session {
                Some(s) if s.ended.is_none() => vec![Command::End],
                _ => vec![],
            },
            Event::SetScale(scale) => {
                if let Some(s) = &mut self.session {
                    s.scale = scale;
                }
                self.default_scale = scale;
                vec![]
            }
            Event::ToggleFullscreen => {
                if let Some(s) = &mut self.session {
                    s.fullscreen = !s.fullscreen;
                }
                vec![]
            }
            Event::SetGrab(on) => {
                if let Some(s) = &mut self.session {
                    s.grabbed = on && s.may_control();
                }
                vec![]
            }
            Event::Snapshot(path) => match &self.session {
                Some(s) if s.screen.is_some() => vec![Command::Snapshot(path)],
                _ => vec![],
            },
            Event::SnapshotDone(result) => {
                if let Some(s) = &mut self.session {
                    s.snapshot = Some(result);
                }
                vec![]
            }
            Event::ChatReceived { chat, at_unix_ms } => {
                if let Some(s) = &mut self.session {
                    s.chat.received(chat, at_unix_ms);
                }
                vec![]
            }
            Event::ChatDraft(text) => {
                if let Some(s) = &mut self.session {
                    s.chat.edit(text);
                }
                vec![]
            }
            Event::SendChat { at_unix_ms } => match &mut self.session {
                Some(s) if s.ended.is_none() => s
                    .chat
                    .send(at_unix_ms)
                    .map(|text| Command::Tool(ToolAction::Chat(text)))
                    .into_iter()
                    .collect(),
                _ => vec![],
            },
            Event::ToggleFiles => {
                if let Some(s) = &mut self.session {
                    s.files_open = !s.files_open;
                }
                vec![]
            }
            Event::ToggleChat => {
                if let Some(s) = &mut self.session {
                    s.chat.toggle();
                }
                vec![]
            }
            Event::Monitors(list) => {
                if let Some(s) = &mut self.session {
                    s.monitors = Some(list);
                    s.monitor_refused = None;
                }
                vec![]
            }
            Event::MonitorRefused(why) => {
                if let Some(s) = &mut self.session {
                    s.monitor_refused = Some(why);
                }
                vec![]
            }
            Event::ShowMonitor(choice) => match &self.session {
                Some(s)
                    if s.ended.is_none()
                        && s.may_switch_monitor()
                        && s.monitors.as_ref().is_some_and(|m| m.shown != choice) =>
                {
                    vec![Command::Tool(ToolAction::ShowMonitor(choice))]
                }
                _ => vec![],
            },
            Event::Clipboard(note) => {
                if let Some(s) = &mut self.session {
                    s.clipboard = Some(note);
                }
                vec![]
            }
            Event::ClipboardShared(shared) => {
                if let Some(s) = &mut self.session {
                    s.clipboard_shared = shared;
                }
                vec![]
            }
            Event::SendKeys(keys) => match &self.session {
                Some(s) if s.may_control() => vec![Command::SendKeys(keys)],
                _ => vec![],
            },
            Event::OpenLog(path) => {
                self.player_error = None;
                vec![Command::OpenLog(path)]
            }
            Event::Quit => vec![],
            Event::PlayerFailed(why) => {
                self.player_error = Some(why);
                vec![]
            }
            Event::BackHome => {
                if self.session.as_ref().is_some_and(|s| s.ended.is_none())
                    && self.screen == Screen::Session
                {
                    return vec![];
                }
                if self.session.as_ref().is_some_and(|s| s.ended.is_some()) {
                    self.session = None;
                }
                self.screen = if self.me.is_some() {
                    Screen::Home
                } else {
                    Screen::Login
                };
                vec![]
            }
            Event::LogOut => match self.me.take() {
                Some(me) => {
                    self.screen = Screen::Login;
                    self.home.queue = None;
                    self.home.offer = None;
                    self.home.dashboard = None;
                    self.home.away = false;
                    vec![Command::LogOut { relay: me.relay }]
                }
                None => vec![],
            },
        }
    }

    /// A session is running (not ended).
    fn in_session(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.ended.is_none())
    }

    /// The help request of the running session, while it may take steps.
    fn live_request(&mut self) -> Option<&mut SessionRequest> {
        self.session
            .as_mut()
            .filter(|s| s.ended.is_none())
            .and_then(|s| s.request.as_mut())
    }

    /// Shows the player (the log opened).
    pub fn show_player(&mut self) {
        self.player_error = None;
        self.screen = Screen::Player;
    }
}

#[cfg(test)]
mod tests {
    use super::super::desk::waiting;
    use super::*;
    use protocol::control::{EscalationTarget, Presence, TechnicianPresence, TierLoad};

    fn home() -> Model {
        Model::new(
            "relay:4433".into(),
            "alice".into(),
            Some(LoggedIn {
                relay: "relay:4433".into(),
                user: "alice".into(),
                account: None,
            }),
        )
    }

    #[test]
    fn codes_are_taken_with_or_without_spaces_and_dashes() {
        for typed in [
            "469 544 742 - 4821",
            "469544742-4821",
            "4695447424821",
            " 469-544-742 4821 ",
        ] {
            assert_eq!(check_code(typed).unwrap(), "469 544 742 - 4821", "{typed}");
        }
        assert!(check_code("469 544 742")
            .unwrap_err()
            .contains("9 of the 13"));
        assert!(check_code("469 544 742 - 48211")
            .unwrap_err()
            .contains("14 digits"));
        assert!(check_code("469 544 742 - 48x1")
            .unwrap_err()
            .contains("only digits"));
        assert!(check_code("").is_err());
    }

    #[test]
    fn joining_sends_the_whole_code_and_opens_the_session() {
        let mut m = home();
        m.home.code = "469544742 4821".into();
        let cmds = m.update(Event::JoinSubmitted);
        assert_eq!(
            cmds,
            vec![Command::Join {
                code: "469 544 742 - 4821".into()
            }]
        );
        assert_eq!(m.screen, Screen::Session);
        // A second join while it runs does nothing.
        assert!(m.update(Event::JoinSubmitted).is_empty());
    }

    #[test]
    fn a_session_sent_to_another_relay_says_which() {
        let mut m = home();
        m.home.code = "469544742 4821".into();
        m.update(Event::JoinSubmitted);
        assert_eq!(m.session.as_ref().unwrap().redirected, None);
        m.update(Event::Redirected("relay-a.example.org:4433".into()));
        assert_eq!(
            m.session.as_ref().unwrap().redirected.as_deref(),
            Some("relay-a.example.org:4433")
        );
    }

    #[test]
    fn the_queue_is_followed_after_login_and_a_request_taken_from_it() {
        let mut m = Model::new("relay:4433".into(), "alice".into(), None);
        let cmds = m.update(Event::LoggedIn {
            account: "alice (tier 1)".into(),
        });
        assert_eq!(cmds, vec![Command::WatchQueue]);
        assert!(m.home.queue.is_none());
        let entry = waiting(12, None);
        m.update(Event::Queue {
            requests: vec![entry.clone()],
            more: 0,
        });
        assert_eq!(m.home.queue, Some((vec![entry], 0)));
        assert_eq!(
            m.update(Event::TakeSubmitted(Some(12))),
            vec![Command::Take { request: Some(12) }]
        );
        assert_eq!(m.screen, Screen::Session);
        // One session at a time.
        assert!(m.update(Event::TakeSubmitted(None)).is_empty());
        m.update(Event::JoinFailed("taken by bob".into()));
        assert_eq!(m.screen, Screen::Home);
        assert_eq!(
            m.update(Event::TakeSubmitted(None)),
            vec![Command::Take { request: None }]
        );
    }

    #[test]
    fn a_wrong_code_stays_home_with_words() {
        let mut m = home();
        m.home.code = "12345".into();
        assert!(m.update(Event::JoinSubmitted).is_empty());
        assert_eq!(m.screen, Screen::Home);
        assert!(m.home.error.as_deref().unwrap().contains("5 of the 13"));
    }

    #[test]
    fn view_only_follows_the_agent_and_says_when_control_stops() {
        let mut m = home();
        m.home.code = "4695447424821".into();
        m.update(Event::JoinSubmitted);
        m.update(Event::Consent(ConsentState::Control));
        m.update(Event::SetGrab(true));
        let s = m.session.as_ref().unwrap();
        assert!(s.may_control() && s.grabbed);
        assert_eq!(
            m.update(Event::SendKeys(SpecialKeys::AltTab)),
            vec![Command::SendKeys(SpecialKeys::AltTab)]
        );
        m.update(Event::Consent(ConsentState::ViewOnly));
        let s = m.session.as_ref().unwrap();
        assert!(!s.may_control());
        assert!(!s.grabbed, "the grab ends with control");
        assert_eq!(s.notice, Some(Notice::ControlStopped));
        assert!(m.update(Event::SendKeys(SpecialKeys::AltTab)).is_empty());
        assert!(m.update(Event::SetGrab(true)).is_empty());
        assert!(!m.session.as_ref().unwrap().grabbed);
    }

    #[test]
    fn each_file_keeps_one_row_and_only_the_latest_rows_stay() {
        let mut m = home();
        m.home.code = "4695447424821".into();
        m.update(Event::JoinSubmitted);
        let row = |file: u64, done: u64| FileRow {
            key: (0, file),
            name: format!("f{file}"),
            incoming: false,
            done,
            size: 10,
            rate: 0,
            eta_secs: None,
            ended: None,
            stopped: false,
        };
        m.update(Event::File(row(0, 0)));
        m.update(Event::File(row(0, 5)));
        let files = &m.session.as_ref().unwrap().files;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].done, 5);
        for f in 1..=FILE_ROWS as u64 {
            m.update(Event::File(row(f, 0)));
        }
        let files = &m.session.as_ref().unwrap().files;
        assert_eq!(files.len(), FILE_ROWS);
        assert_eq!(files[0].key, (0, 1), "the oldest went");
    }

    #[test]
    fn a_folder_of_the_user_is_browsed_a_file_picked_and_a_transfer_stopped() {
        use protocol::browse::{Entry, Listing};
        let mut m = home();
        m.home.code = "4695447424821".into();
        m.update(Event::JoinSubmitted);
        m.update(Event::ScreenStarted {
            width: 8,
            height: 8,
        });
        let files = |step| vec![Command::Tool(ToolAction::Files(step))];
        // An empty field shows the user's home folder.
        assert_eq!(
            m.update(Event::ListFolder(" ".into())),
            files(FileStep::List { path: "~".into() })
        );
        let listing = Listing::new(
            "/home/u".into(),
            vec![Entry {
                name: "a.txt".into(),
                folder: false,
                size: 3,
            }],
        );
        m.update(Event::Listed(listing.clone()));
        assert_eq!(m.session.as_ref().unwrap().browsing, Some(listing.clone()));
        assert_eq!(
            m.update(Event::FetchPicked {
                path: listing.child("a.txt"),
                into: "/dl".into()
            }),
            files(FileStep::Fetch {
                path: "/home/u/a.txt".into(),
                dir: "/dl".into()
            })
        );
        m.update(Event::File(FileRow {
            key: (7, 1),
            name: "a.txt".into(),
            incoming: true,
            done: 1,
            size: 3,
            rate: 1,
            eta_secs: Some(2),
            ended: None,
            stopped: false,
        }));
        assert_eq!(
            m.update(Event::StopFiles(7)),
            files(FileStep::Cancel { offer: 7 })
        );
        m.update(Event::FilesStopped {
            offer: 7,
            why: "the technician stopped them".into(),
        });
        let row = &m.session.as_ref().unwrap().files[0];
        assert!(row.stopped && row.ended.is_some());
        assert!(
            m.update(Event::StopFiles(7)).is_empty(),
            "nothing left to stop"
        );
    }

    #[test]
    fn login_takes_the_password_once_and_shows_refusals() {
        let mut m = Model::new("relay:4433".into(), "alice".into(), None);
        assert_eq!(m.screen, Screen::Login);
        assert!(m.update(Event::LoginSubmitted).is_empty());
        assert!(m.login.error.is_some());
        m.login.password = "secret".into();
        let cmds = m.update(Event::LoginSubmitted);
        assert_eq!(
            cmds,
            vec![Command::Connect {
                relay: "relay:4433".into(),
                user: "alice".into(),
                password: "secret".into(),
                one_time: None,
            }]
        );
        assert!(m.login.password.is_empty(), "the form forgets the password");
        m.update(Event::FirstContact {
            fingerprint: "ab12".into(),
        });
        assert_eq!(
            m.update(Event::AcceptRelay),
            vec![Command::Trust {
                relay: "relay:4433".into(),
                fingerprint: "ab12".into()
            }]
        );
        m.update(Event::LoginFailed("wrong password".into()));
        assert_eq!(m.login.error.as_deref(), Some("wrong password"));
        assert!(!m.login.busy);
        m.login.password = "right".into();
        m.update(Event::LoginSubmitted);
        m.update(Event::LoggedIn {
            account: "alice (tier 2) of Example Support".into(),
        });
        assert_eq!(m.screen, Screen::Home);
    }

    #[test]
    fn an_ended_session_goes_to_recent_sessions() {
        let mut m = home();
        m.home.code = "4695447424821".into();
        m.update(Event::JoinSubmitted);
        assert!(m.update(Event::BackHome).is_empty());
        assert_eq!(m.screen, Screen::Session, "no leaving a running session");
        assert_eq!(m.update(Event::EndSession), vec![Command::End]);
        m.update(Event::SessionEnded {
            message: "you ended the session".into(),
            log: None,
        });
        assert!(m.update(Event::EndSession).is_empty());
        m.update(Event::BackHome);
        assert_eq!(m.screen, Screen::Home);
        assert_eq!(m.home.recent[0].outcome, "you ended the session");
    }

    /// Alice at home, following the queue, which holds request 12 offered to her for 30 s
    /// from t = 1000 s.
    fn offered() -> Model {
        let mut m = home();
        m.update(Event::Offer {
            request: waiting(12, Some("alice")),
            expires_in_secs: 30,
            now_unix_ms: 1_000_000,
        });
        m.update(Event::Queue {
            requests: vec![waiting(12, Some("alice")), waiting(13, None)],
            more: 0,
        });
        m
    }

    #[test]
    fn an_offer_is_accepted_by_taking_it() {
        let mut m = offered();
        assert!(
            m.home.offer.is_some(),
            "the queue shows it offered to alice"
        );
        assert_eq!(
            m.update(Event::AcceptOffer),
            vec![Command::Take { request: Some(12) }]
        );
        assert!(m.home.offer.is_none());
        assert_eq!(m.screen, Screen::Session);
        assert!(
            m.update(Event::AcceptOffer).is_empty(),
            "no offer left to accept"
        );
    }

    #[test]
    fn an_offer_is_declined_and_goes_when_it_expires_or_is_taken() {
        let mut m = offered();
        assert_eq!(
            m.update(Event::DeclineOffer),
            vec![Command::Decline { request: 12 }]
        );
        assert!(m.home.offer.is_none());
        assert!(m.update(Event::DeclineOffer).is_empty());
        m.update(Event::Queue {
            requests: vec![waiting(12, Some("alice"))],
            more: 0,
        });
        assert!(
            m.home.offer.is_none(),
            "a queue sent before the relay had the decline"
        );

        // An offer the console missed (made while it was not following) is found in the queue.
        let mut m = home();
        m.update(Event::Queue {
            requests: vec![waiting(12, None), waiting(13, Some("alice"))],
            more: 0,
        });
        assert_eq!(m.home.offer.as_ref().unwrap().request.id, 13);

        let mut m = offered();
        m.update(Event::Tick {
            now_unix_ms: 1_029_500,
        });
        assert!(m.home.offer.is_some(), "half a second left");
        m.update(Event::Tick {
            now_unix_ms: 1_030_000,
        });
        assert!(m.home.offer.is_none(), "expired");

        let mut m = offered();
        m.update(Event::Queue {
            requests: vec![waiting(13, None)],
            more: 0,
        });
        assert!(m.home.offer.is_none(), "someone else took it");

        // Busy in a session: the offer waits, unaccepted, until it expires.
        let mut m = offered();
        m.home.code = "4695447424821".into();
        m.update(Event::JoinSubmitted);
        assert!(m.update(Event::AcceptOffer).is_empty());
        assert!(m.home.offer.is_some());
    }

    #[test]
    fn presence_is_sent_when_it_changes_and_forgotten_at_logout() {
        let mut m = home();
        assert!(
            m.update(Event::SetAway(false)).is_empty(),
            "available already"
        );
        assert_eq!(
            m.update(Event::SetAway(true)),
            vec![Command::SetPresence { away: true }]
        );
        assert!(m.home.away);
        m.update(Event::Dashboard(Dashboard {
            sessions: vec![],
            tiers: vec![TierLoad {
                tier: 1,
                waiting: 2,
                oldest_queued_unix_ms: Some(5),
                overdue: 1,
            }],
            technicians: vec![TechnicianPresence {
                name: "alice".into(),
                tier: 2,
                presence: Presence::Away,
                sessions: 0,
            }],
        }));
        assert_eq!(m.home.dashboard.as_ref().unwrap().tiers[0].waiting, 2);
        m.update(Event::LogOut);
        assert!(!m.home.away && m.home.dashboard.is_none() && m.home.queue.is_none());
    }

    #[test]
    fn a_session_from_a_request_escalates_it_and_goes_on_until_it_ends() {
        let mut m = home();
        m.update(Event::TakeSubmitted(None));
        assert!(
            m.update(Event::OpenDeskForm(DeskKind::Hold)).is_empty()
                && m.session.as_ref().unwrap().request.is_none(),
            "no steps before the relay said which request"
        );
        m.update(Event::RequestTaken(waiting(12, None)));
        assert_eq!(m.session.as_ref().unwrap().code, "request 12");
        m.update(Event::OpenDeskForm(DeskKind::Escalate));
        assert!(m.update(Event::SubmitDeskForm).is_empty(), "no note yet");
        let r = m.session.as_mut().unwrap().request.as_mut().unwrap();
        r.form.as_mut().unwrap().note = "needs an administrator".into();
        assert_eq!(
            m.update(Event::SubmitDeskForm),
            vec![Command::Desk(DeskAction::Escalate {
                to: EscalationTarget::Tier(2),
                note: "needs an administrator".into()
            })]
        );
        assert!(m.update(Event::SubmitDeskForm).is_empty(), "sent once");
        m.update(Event::RequestPassed("escalated to tier 2".into()));
        let s = m.session.as_ref().unwrap();
        assert!(
            s.ended.is_none(),
            "the session ends when it ends, not at the answer"
        );
        assert_eq!(
            s.request.as_ref().unwrap().passed(),
            Some("escalated to tier 2")
        );
        m.update(Event::SessionEnded {
            message: "you ended the session".into(),
            log: None,
        });
        assert_eq!(
            m.home.recent[0].passed,
            Some((12, "escalated to tier 2".into()))
        );
        assert!(m.update(Event::OpenDeskForm(DeskKind::Hold)).is_empty());
        assert!(m
            .session
            .as_ref()
            .unwrap()
            .request
            .as_ref()
            .unwrap()
            .form
            .is_none());
    }

    #[test]
    fn a_refused_step_is_shown_and_may_be_sent_again() {
        let mut m = home();
        m.update(Event::TakeSubmitted(Some(12)));
        m.update(Event::RequestTaken(waiting(12, None)));
        m.update(Event::OpenDeskForm(DeskKind::Resolved));
        assert_eq!(
            m.update(Event::SubmitDeskForm),
            vec![Command::Desk(DeskAction::Close {
                resolved: true,
                note: String::new()
            })]
        );
        m.update(Event::RequestRefused("the request is closed".into()));
        let r = m.session.as_ref().unwrap().request.as_ref().unwrap();
        assert_eq!(
            r.answer,
            Some(Answer::Refused("the request is closed".into()))
        );
        assert!(r.may_ask());
        assert_eq!(m.update(Event::SubmitDeskForm).len(), 1);
    }
}
