//! The technician's side of a paired session.
//!
//! First the end-to-end key exchange on the session stream the agent opens, keyed by the secret
//! part of the code the user read out (`link::sealed`); everything after it is sealed, and a
//! record that does not open ends the session with words that say what was done to it.
//!
//! Tasks: one writer owns the send half of the session stream (acks and input go through it in
//! order); one acceptor reads each screen-update stream ([`MAX_READING`] at a time) and hands
//! the update over, and hands each file stream to the session's file transfers
//! ([`crate::files`]); the script runner (if any) plays actions. The main loop records each update
//! as it arrives and hands it to the decode thread, which applies updates in sequence (and lets
//! a window present them) off the async threads, so that a large update never stalls the
//! connection's tasks. The loop acknowledges what was applied and watches the session stream
//! and the control stream for the end.
//!
//! The in-session tools ride the same loop: chat both ways from the key exchange on (before the
//! user's answer too: [`crate::chat`]), the clipboard while this technician holds control
//! ([`crate::clipboard`]), the agent's monitors and switches between them, and the user's
//! pointer, whose positions a task of their own reads from the datagrams ([`crate::cursor`]).
//!
//! Nothing the agent sends piles up: at most [`MAX_READING`] + [`UPDATE_QUEUE`] +
//! [`DECODE_QUEUE`] updates are in memory at once besides those the viewer holds back
//! ([`viewer::MAX_EARLY_BYTES`]), the agent's consent changes are capped at
//! [`MAX_CONSENT_CHANGES`] a second, and the recording at [`crate::record::MAX_LOG_BYTES`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use link::report::Reporter;
use link::sealed::DatagramReceiver;
use link::sealed::{self, last_word, SealedSession};
use link::silence::{Change, Silence};
use link::{LinkError, RelayConnection};
use protocol::chat::Chat;
use protocol::clipboard::{ClipContent, ClipKind, ClipboardData, Selection};
use protocol::control::{FromRelay, PeerLeftReason};
use protocol::cursor::CursorPosition;
use protocol::e2e::{StreamKind, UpdateReceiver};
use protocol::framing::FrameReader;
use protocol::monitor::{MonitorChoice, Monitors};
use protocol::peer::{ConsentState, EndReason, Participant, PeerMessage, ScreenUpdate};
use protocol::sessionlog::{ChatAuthor, ChatRecord, ClipDirection, LinkChange};
use protocol::text::{tame, MAX_PEER_STRING};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;

use crate::chat::ChatIn;
use crate::clipboard::LocalClipboard;
use crate::cursor::{CursorHook, CursorUpdate};
use crate::desk::DeskAction;
use crate::record::Recorder;
use crate::script::{self, Action, Holder, Step};
use crate::viewer::{self, Damage, Viewer};
use protocol::input::InputEvent;

/// How long the agent has to open the session after pairing.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long later updates may wait for a missing one, with no update stream still being read,
/// before the missing one counts as dropped on the way. (A slow update still arriving is being
/// read, so it never counts.)
const MISSING_LIMIT: Duration = Duration::from_secs(2);

/// Update streams read at once. A reader holds its update (up to `PEER_MAX_FRAME`, 40 MB)
/// until the session loop takes it; the agent keeps two unacknowledged by default, so honest
/// updates never wait for a reader, and a flood of streams waits in QUIC's flow control rather
/// than in memory.
pub const MAX_READING: usize = 4;

/// Updates read and waiting for the session loop to take them.
pub const UPDATE_QUEUE: usize = 2;

/// Updates handed to the decode thread and not yet applied: one being decoded, one waiting.
/// While the thread is behind, the loop takes no more (they wait in [`UPDATE_QUEUE`], then in
/// QUIC), and goes on serving input, consent and the end of the session.
pub const DECODE_QUEUE: usize = 2;

/// Most consent changes the agent may send in one second. Consent is a person's click; more
/// than this is a broken or hostile agent, and every change is a record in the session log and
/// an event for the window. The session ends with a reason.
pub const MAX_CONSENT_CHANGES: u32 = 20;

/// Called with the framebuffer and the rectangles that the applied updates changed, after they
/// are applied and before they are acknowledged (so a window's presentation counts in the flow
/// control, as a person sees it). It runs on the session's decode thread, between updates: it
/// must be quick.
pub type FrameHook = Box<dyn FnMut(&protocol::codec::Decoder, &[Damage]) + Send>;

/// What a window following the session is told, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// What the user allows now.
    Consent(ConsentState),
    /// The remote screen arrived: its size.
    Started { width: u32, height: u32 },
    /// Once a second: round trip to the relay, screen updates applied and their bytes in the
    /// last second.
    Quality {
        rtt: Duration,
        updates_per_sec: u32,
        bits_per_sec: u64,
    },
    /// The relay hears nothing from the agent for now (`true`), or hears it again (`false`).
    PeerQuiet(bool),
    /// Nothing is heard from the relay for now (`true`), or it is heard again (`false`).
    RelayQuiet(bool),
    /// The six digits to compare with the user (`042 917`), for a session from the queue.
    Verification(String),
    /// The relay did the step asked of the session's help request (its words); the session
    /// ends.
    RequestPassed(String),
    /// The relay refused the step asked of the session's help request (why); the session goes
    /// on.
    RequestRefused(String),
    /// The technicians of the session and who holds control, once there is more than one.
    Participants(Vec<Participant>),
    /// A chat message, this technician's own too.
    Chat(ChatRecord),
    /// The agent's monitors, and which this technician sees.
    Monitors(Monitors),
    /// The agent refused a monitor switch, and why.
    MonitorRefused(String),
    /// A clipboard passed between the user and this technician.
    Clipboard {
        direction: ClipDirection,
        kind: ClipKind,
        bytes: u64,
    },
    /// The user shares the clipboard with this technician now (`true`), or no longer.
    ClipboardShared(bool),
    /// What happened to files sent or fetched.
    Files(link::files::FileNews),
}

/// What a window asks of the session besides input and the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolAction {
    /// Send this chat message.
    Chat(String),
    /// See another of the user's monitors, or all of them.
    ShowMonitor(MonitorChoice),
    /// Send files or fetch them (the window does not wait: it follows their news).
    Files(crate::files::FileStep),
}

#[derive(Default)]
pub struct SessionOptions {
    pub script: Option<Vec<Step>>,
    /// Write the screen here when the session ends.
    pub snapshot: Option<PathBuf>,
    /// Report every update applied (JSON event `update`).
    pub report_updates: bool,
    /// With `report_updates`, include the SHA-256 of the whole framebuffer after each update.
    pub hash_frames: bool,
    /// Where the session is recorded, if it is.
    pub recorder: Option<Arc<Mutex<Recorder>>>,
    /// The log's identifier on the relay, when the relay keeps logs: checkpoints of the log go
    /// to the relay under it every [`CHECKPOINT_SECS`] seconds.
    pub log_id: Option<String>,
    /// Input from a window, passed on to the agent as it comes (besides the script's).
    pub input: Option<mpsc::Receiver<InputEvent>>,
    /// Steps of the session's help request from a window (escalate, hold, close).
    pub desk: Option<mpsc::Receiver<DeskAction>>,
    /// Files a window sends or fetches.
    pub files: Option<mpsc::Receiver<crate::files::FileStep>>,
    /// Hand-overs and take-overs of control from a window, in a session with several
    /// technicians.
    pub control: Option<mpsc::Receiver<ControlStep>>,
    /// The framebuffer to hold the remote screen in (a window shares it); a new one otherwise.
    pub viewer: Option<Arc<Mutex<Viewer>>>,
    /// Called for every applied update (a window presenting the screen).
    pub on_frame: Option<FrameHook>,
    /// Events for a window following the session. Not bounded in number, but few: the start,
    /// one quality figure a second, and the agent's consent changes, at most
    /// [`MAX_CONSENT_CHANGES`] a second, chat at most [`protocol::chat::MAX_CHAT_PER_SEC`].
    pub events: Option<mpsc::UnboundedSender<SessionEvent>>,
    /// Chat and monitor switches from a window.
    pub tools: Option<mpsc::Receiver<ToolAction>>,
    /// Share the clipboard through this display's X selections while holding control.
    pub clipboard: bool,
    /// Keep what passes through the clipboard in the log (the relay's policy), not only that
    /// it passed.
    pub record_clipboard_content: bool,
    /// Called with every shape and position of the user's pointer (a window drawing it).
    pub cursor: Option<CursorHook>,
    /// The login token to rejoin with when the relay connection dies mid-session.
    pub token: Option<String>,
    /// How long a session whose relay connection died waits for it to come back
    /// (`link::resume::RESUME_LIMIT` when not set).
    pub resume_limit: Option<Duration>,
    /// Relays of the organisation to resume through besides the session's own.
    pub other_relays: Vec<link::resume::OtherRelay>,
}

impl SessionOptions {
    fn tell(&self, event: SessionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

/// Seconds between checkpoints of the session log sent to the relay: from pairing on, while
/// the user is asked too, since a relay that requires recording ends a session that sends none
/// for two intervals.
pub const CHECKPOINT_SECS: u64 = protocol::control::CHECKPOINT_INTERVAL_SECS;

/// The checkpoint of the session log to send the relay now, if it keeps logs.
fn checkpoint_due(opts: &SessionOptions) -> Option<(String, protocol::sessionlog::Checkpoint)> {
    let (rec, id) = (opts.recorder.as_ref()?, opts.log_id.as_ref()?);
    let cp = rec.lock().expect("recorder lock").checkpoint()?;
    Some((id.clone(), cp))
}

/// Sends the relay the checkpoint [`checkpoint_due`] gave, if any.
async fn send_checkpoint(
    conn: &mut RelayConnection,
    due: Option<(String, protocol::sessionlog::Checkpoint)>,
) {
    if let Some((id, cp)) = due {
        // A broken control stream shows in `conn.next()`; nothing to do here.
        if let Err(e) = conn.checkpoint(&id, cp).await {
            debug!(error = %e, "checkpoint not sent");
        }
    }
}

/// How the session ended.
#[derive(Debug)]
pub enum Ended {
    /// The agent ended it, with this reason.
    ByAgent(EndReason),
    /// This technician ended it (script `end`, Ctrl+C).
    ByTechnician,
    /// The agent vanished or broke the protocol.
    Failed(String),
}

/// Counters for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub updates: u64,
    pub tile_bytes: u64,
}

enum Incoming {
    Update(ScreenUpdate),
    Bad(String),
}

/// Reads each update stream the agent opens: one sealed update each, every number once, at
/// most [`MAX_READING`] at a time. `reading` counts the streams being read. A file's stream
/// goes to `files` once its first record says it is one.
async fn accept_updates(
    conn: quinn::Connection,
    receiver: UpdateReceiver,
    out: mpsc::Sender<Incoming>,
    files: mpsc::Sender<FrameReader<quinn::RecvStream>>,
    reading: Arc<AtomicUsize>,
) {
    let receiver = Arc::new(Mutex::new(receiver));
    let readers = Arc::new(tokio::sync::Semaphore::new(MAX_READING));
    loop {
        // A stream is taken only when a reader is free; until then it waits in QUIC.
        let Ok(reader) = readers.clone().acquire_owned().await else {
            return;
        };
        let Ok(stream) = conn.accept_uni().await else {
            return;
        };
        let out = out.clone();
        let files = files.clone();
        let receiver = receiver.clone();
        let reading = reading.clone();
        reading.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _reader = reader;
            let read = match sealed::first_record(stream).await {
                Ok((stream, id)) if id.kind == StreamKind::File => {
                    let _ = files.send(stream).await;
                    reading.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                Ok((stream, _)) => sealed::read_update_from(stream, &receiver).await,
                Err(e) => Err(e),
            };
            let item = match read {
                Ok(u) => Some(Incoming::Update(u)),
                Err(e) if e.is_violation() => Some(Incoming::Bad(e.to_string())),
                Err(e) => {
                    debug!(error = %e, "update stream broke");
                    None
                }
            };
            if let Some(item) = item {
                let _ = out.send(item).await;
            }
            reading.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// What the decode thread made of one update.
struct Decoded {
    /// The sequence numbers applied (none while the update waits for an earlier one), or why
    /// the update cannot be.
    applied: Result<Vec<u64>, String>,
    /// The update later ones wait for, if any.
    missing: Option<u64>,
    /// The update's ops and tile bytes, and the screen's size after it.
    ops: usize,
    bytes: usize,
    size: (u32, u32),
    /// SHA-256 of the screen after it, with `hash_frames`, when something was applied.
    sha256: Option<String>,
}

/// The thread that applies a session's screen updates to the viewer, in the order the loop
/// hands them over ([`DECODE_QUEUE`] at most), and runs the window's [`FrameHook`]: a decode
/// takes up to a few passes over the screen (the codec's work budget), too long for an async
/// thread that also drives the connection.
struct DecodeThread {
    updates: mpsc::Sender<ScreenUpdate>,
    decoded: mpsc::Receiver<Decoded>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl DecodeThread {
    fn start(
        viewer: Arc<Mutex<Viewer>>,
        mut on_frame: Option<FrameHook>,
        hash_frames: bool,
    ) -> std::io::Result<Self> {
        let (updates, mut incoming) = mpsc::channel::<ScreenUpdate>(DECODE_QUEUE);
        let (done, decoded) = mpsc::channel::<Decoded>(DECODE_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("technician-decode".into())
            .spawn(move || {
                let mut damage = Vec::new();
                while let Some(u) = incoming.blocking_recv() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let (ops, bytes) = (u.ops.len(), u.tile_data.len());
                    let result = {
                        let mut v = viewer.lock().expect("viewer lock");
                        damage.clear();
                        let applied = v
                            .offer_with_damage(u, &mut damage)
                            .map_err(|e| e.to_string());
                        let changed = applied.as_ref().is_ok_and(|seqs| !seqs.is_empty());
                        if let (true, Some(hook)) = (changed, on_frame.as_mut()) {
                            hook(v.framebuffer(), &damage);
                        }
                        Decoded {
                            missing: v.missing(),
                            ops,
                            bytes,
                            size: (v.framebuffer().width(), v.framebuffer().height()),
                            sha256: (hash_frames && changed).then(|| v.pixels_sha256()),
                            applied,
                        }
                    };
                    if done.blocking_send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            updates,
            decoded,
            stop,
            thread,
        })
    }

    /// Stops the thread after the update it is on and waits for it: the viewer is final then.
    async fn stop(self) {
        let Self {
            updates,
            decoded,
            stop,
            thread,
        } = self;
        stop.store(true, Ordering::SeqCst);
        drop((updates, decoded));
        let joined = tokio::task::spawn_blocking(move || thread.join());
        let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
    }
}

/// Why the session ends, once its log is full.
fn recording_full(recorder: &Option<Arc<Mutex<Recorder>>>) -> Option<String> {
    let r = recorder.as_ref()?.lock().expect("recorder lock");
    r.is_full().then(|| {
        format!(
            "the session log {} reached its limit of {} MB; the session ended so that all of \
             it stays recorded",
            r.path().display(),
            r.limit() >> 20
        )
    })
}

/// Counts the agent's consent changes against [`MAX_CONSENT_CHANGES`] a second.
struct ConsentMeter {
    since: Instant,
    count: u32,
}

impl ConsentMeter {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            count: 0,
        }
    }

    /// One more change; the reason the session ends when there were too many this second.
    fn change(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if now.duration_since(self.since) >= Duration::from_secs(1) {
            self.since = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count > MAX_CONSENT_CHANGES {
            return Err(format!(
                "the agent changed consent more than {MAX_CONSENT_CHANGES} times in a second; a \
                 person does not"
            ));
        }
        Ok(())
    }
}

/// Records and says what this technician sends that the log keeps besides input: its chat,
/// and clipboards it passes to the user.
fn sent(
    msg: &PeerMessage,
    recorder: &Option<Arc<Mutex<Recorder>>>,
    report: Reporter,
    content: bool,
) {
    match msg {
        PeerMessage::Input(ev) => record(recorder, |r| r.input(ev)),
        PeerMessage::Chat(c) => crate::chat::note(
            recorder,
            report,
            &ChatRecord {
                from: ChatAuthor::Recorder,
                text: c.text.clone(),
            },
        ),
        PeerMessage::Clipboard(d) => {
            crate::clipboard::note(recorder, report, ClipDirection::ToUser, d, content)
        }
        _ => {}
    }
}

/// Tells the agent why this technician leaves before the screen started, and waits (briefly)
/// until it has the words.
async fn leave_early(
    out_tx: mpsc::Sender<PeerMessage>,
    writer: tokio::task::JoinHandle<()>,
    conn: &mut RelayConnection,
    why: &str,
) {
    let reason = EndReason::Error(why.to_string());
    let _ = out_tx.send(PeerMessage::EndSession { reason }).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    conn.await_departure(Duration::from_secs(2)).await;
}

/// What a window asks of control in a session with several technicians (the agent decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlStep {
    /// Give control to the technician of this account name.
    HandOver(String),
    /// Take control, as a lead monitoring the session.
    TakeOver,
}

impl ControlStep {
    fn message(self) -> PeerMessage {
        match self {
            ControlStep::HandOver(to) => PeerMessage::HandOver { to },
            ControlStep::TakeOver => PeerMessage::TakeOver,
        }
    }
}

/// Most technicians an agent may list in one session (it keeps fewer).
pub const MAX_PARTICIPANTS: usize = 16;

/// Who holds control of the remote screen now, as the agent last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlNow {
    /// The one holding it, by account name, in a session with several technicians.
    pub holder: Option<String>,
    /// This technician holds it.
    pub me: bool,
    /// The user shares the clipboard with this technician now (the agent says so).
    pub clipboard: bool,
}

/// The technicians of the session as the agent last listed them: who joined and left, and who
/// holds control, go into the session log, the report and the window.
#[derive(Default)]
struct Company {
    list: Vec<Participant>,
    /// A list came: from then on it alone says who holds control (a consent change and the
    /// list that goes with it arrive one after the other).
    listed: bool,
}

impl Company {
    /// The agent's consent for this technician: whether it holds control, while the session has
    /// no list of participants.
    fn consent(&self, state: ConsentState, control: &watch::Sender<ControlNow>) {
        if !self.listed {
            control.send_modify(|c| c.me = state == ConsentState::Control);
        }
    }

    /// Takes in the agent's new list (`Err`: one no agent sends).
    fn update(
        &mut self,
        list: Vec<Participant>,
        opts: &SessionOptions,
        report: Reporter,
        control: &watch::Sender<ControlNow>,
    ) -> Result<(), String> {
        if list.len() > MAX_PARTICIPANTS {
            return Err(format!(
                "the agent listed {} technicians in the session; there are at most {MAX_PARTICIPANTS}",
                list.len()
            ));
        }
        if list.iter().filter(|p| p.controls).count() > 1
            || list.iter().filter(|p| p.you).count() != 1
        {
            return Err("the agent's list of participants does not add up (two in control, or not this technician once)".into());
        }
        let list: Vec<Participant> = list
            .into_iter()
            .map(|p| Participant {
                name: tame(&p.name, MAX_PEER_STRING),
                ..p
            })
            .collect();
        let who = |p: &Participant| protocol::sessionlog::Participant {
            role: protocol::control::Role::Technician,
            description: format!("{} (tier {})", p.name, p.tier),
            software: String::new(),
        };
        let has = |l: &[Participant], p: &Participant| {
            l.iter().any(|q| q.name == p.name && q.you == p.you)
        };
        for p in list.iter().filter(|p| !p.you && !has(&self.list, p)) {
            record(&opts.recorder, |r| r.participant(&who(p), None));
            report.event(
                "participant_joined",
                json!({ "technician": p.name, "tier": p.tier, "monitoring": p.monitoring, "may_control": p.may_control }),
                format!("{} (tier {}) joined the session{}.", p.name, p.tier, if p.monitoring { " to monitor it" } else { "" }),
            );
        }
        for p in self.list.iter().filter(|p| !p.you && !has(&list, p)) {
            record(&opts.recorder, |r| {
                r.participant(&who(p), Some("left the session"))
            });
            report.event(
                "participant_left",
                json!({ "technician": p.name }),
                format!("{} left the session.", p.name),
            );
        }
        let holder = list.iter().find(|p| p.controls);
        let was = self.list.iter().find(|p| p.controls);
        if holder.map(|p| (&p.name, p.you)) != was.map(|p| (&p.name, p.you)) {
            let change = protocol::sessionlog::ControlChange {
                holder: holder.map(|p| p.name.clone()),
                recorder_holds: holder.is_some_and(|p| p.you),
            };
            record(&opts.recorder, |r| r.control(&change));
            report.event(
                "control",
                json!({ "technician": change.holder, "me": change.recorder_holds }),
                match (&change.holder, change.recorder_holds) {
                    (Some(_), true) => "You hold control of the remote screen now.".to_string(),
                    (Some(n), false) => {
                        format!("{n} holds control now; you observe (your input is not passed on).")
                    }
                    (None, _) => "Nobody holds control now.".to_string(),
                },
            );
        }
        control.send_modify(|c| {
            c.holder = holder.map(|p| p.name.clone());
            c.me = holder.is_some_and(|p| p.you);
        });
        opts.tell(SessionEvent::Participants(list.clone()));
        self.list = list;
        self.listed = true;
        Ok(())
    }
}

/// The next thing a window asks of the session's tools (never, without a window). Once the
/// window closed its side, the session goes on without it.
async fn next_tool(tools: &mut Option<mpsc::Receiver<ToolAction>>) -> Option<ToolAction> {
    let next = next_from(tools).await;
    if next.is_none() {
        *tools = None;
    }
    next
}

/// The next message of a window's channel, if there is one (else pending for ever); `None` once
/// the window closed its side.
async fn next_from<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The agent says whether the clipboard is shared with this technician now: remembered (the
/// script and the local clipboard send only then), said, and told to a window.
fn clipboard_shared(
    shared: bool,
    opts: &SessionOptions,
    report: Reporter,
    control: &watch::Sender<ControlNow>,
) {
    let was = control.borrow().clipboard;
    control.send_modify(|c| c.clipboard = shared);
    if was != shared {
        report.event(
            "clipboard_shared",
            json!({ "shared": shared }),
            if shared {
                "The user shares the clipboard with you: what either of you copies, the other can paste."
            } else {
                "The clipboard is not shared with you now."
            },
        );
        opts.tell(SessionEvent::ClipboardShared(shared));
    }
}

/// Says the agent's monitors (JSON event `monitors`: each with its place and size, and which
/// this technician sees).
fn report_monitors(report: Reporter, monitors: &Monitors) {
    report.event(
        "monitors",
        json!({
            "monitors": monitors.list.iter().map(|m| json!({
                "name": m.name, "x": m.x, "y": m.y, "width": m.width, "height": m.height, "primary": m.primary,
            })).collect::<Vec<_>>(),
            "shown": monitors.shown.to_string(),
        }),
        format!(
            "The user has {} monitor(s); you see {}.",
            monitors.list.len(),
            monitors.describe_shown()
        ),
    );
}

/// What a script watches while it plays.
struct Watching {
    /// Counts the screen's changes.
    changes: watch::Receiver<u64>,
    control: watch::Receiver<ControlNow>,
    monitors: watch::Receiver<Option<Monitors>>,
    /// The agent's last refusal of a monitor switch, and why.
    monitor_refused: watch::Receiver<String>,
}

/// How long a script's `monitor` waits for the agent to show the monitor asked for.
const MONITOR_WAIT: Duration = Duration::from_secs(5);

/// Runs `f` on the recorder, if the session is recorded.
fn record(recorder: &Option<Arc<Mutex<Recorder>>>, f: impl FnOnce(&mut Recorder)) {
    if let Some(r) = recorder {
        f(&mut r.lock().expect("recorder lock"));
    }
}

fn report_consent(report: Reporter, state: ConsentState) {
    let (name, words) = match state {
        ConsentState::Asking => ("asking", "Waiting for the user to accept the session…"),
        ConsentState::Control => ("control", "The user allows control of mouse and keyboard."),
        ConsentState::ViewOnly => (
            "view_only",
            "The user allows viewing only; input is not passed on.",
        ),
        ConsentState::Denied => ("denied", "The user denied the session."),
    };
    report.event("consent", json!({ "state": name }), words);
}

/// A step of the help request asked for, and who waits for the relay's answer (a script).
type DeskAsk = (DeskAction, Option<oneshot::Sender<Result<(), String>>>);

/// Tells the window, the report and the script (if it asked) that `step` was not done: `code`
/// is the relay's refusal, `None` when the session did not send it.
fn refuse(
    opts: &SessionOptions,
    report: Reporter,
    (step, answer): DeskAsk,
    why: String,
    code: Option<protocol::control::ErrorCode>,
) {
    opts.tell(SessionEvent::RequestRefused(why.clone()));
    let verb = step.verb();
    let (said, answered) = match code {
        Some(_) => (
            format!("The relay did not {verb} the help request: {why}. The session goes on."),
            format!("the relay refused: {why}"),
        ),
        None => (format!("Cannot {verb} now: {why}."), why.clone()),
    };
    report.event(
        "request_refused",
        json!({ "action": step.name(), "code": code.map(|c| format!("{c:?}")), "message": why }),
        said,
    );
    if let Some(a) = answer {
        let _ = a.send(Err(answered));
    }
}

/// Plays the script. Returns `Ok(true)` when it ended the session with `end`.
/// Where a script's steps that wait for an answer go: the help request's, and the files'.
#[derive(Clone)]
struct Asks {
    desk: mpsc::Sender<DeskAsk>,
    files: mpsc::Sender<crate::files::FileAsk>,
}

async fn play(
    steps: Vec<Step>,
    input: mpsc::Sender<PeerMessage>,
    asks: Asks,
    viewer: Arc<Mutex<Viewer>>,
    watching: Watching,
    report: Reporter,
) -> Result<bool, String> {
    let Watching {
        mut changes,
        mut control,
        mut monitors,
        mut monitor_refused,
    } = watching;
    for step in steps {
        // Line 0: a step of the command line (`technician send`), not of a script file.
        let at = |e: String| match step.line {
            0 => e,
            line => format!("script line {line}: {e}"),
        };
        for ev in script::events(&step.action) {
            input
                .send(PeerMessage::Input(ev))
                .await
                .map_err(|_| at("the session ended".into()))?;
        }
        match &step.action {
            Action::Wait { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Action::WaitChange { ms } => {
                changes.borrow_and_update();
                let _ = tokio::time::timeout(Duration::from_millis(*ms), changes.changed()).await;
            }
            Action::Snapshot(path) => {
                let fb = viewer.lock().expect("viewer lock");
                viewer::write_png(fb.framebuffer(), path).map_err(at)?;
                report.event(
                    "snapshot",
                    json!({ "path": path.display().to_string(), "line": step.line }),
                    format!("Snapshot written to {}.", path.display()),
                );
            }
            Action::End => return Ok(true),
            Action::Desk(step) => {
                let (tx, rx) = oneshot::channel();
                asks.desk
                    .send((step.clone(), Some(tx)))
                    .await
                    .map_err(|_| at("the session ended".into()))?;
                match rx.await {
                    // An escalation goes on until whoever takes it has joined.
                    Ok(Ok(())) if matches!(step, DeskAction::Escalate { .. }) => {}
                    // The session ends now; nothing after this line runs.
                    Ok(Ok(())) => std::future::pending::<()>().await,
                    Ok(Err(why)) => return Err(at(why)),
                    Err(_) => return Err(at("the session ended".into())),
                }
            }
            Action::HandOver(to) => input
                .send(PeerMessage::HandOver { to: to.clone() })
                .await
                .map_err(|_| at("the session ended".into()))?,
            Action::TakeOver => input
                .send(PeerMessage::TakeOver)
                .await
                .map_err(|_| at("the session ended".into()))?,
            Action::Send(paths) => {
                let step = crate::files::FileStep::Send(paths.clone());
                file_step(&asks, step).await.map_err(at)?;
            }
            Action::Fetch { path, dir } => {
                let step = crate::files::FileStep::Fetch {
                    path: path.clone(),
                    dir: dir.clone(),
                };
                file_step(&asks, step).await.map_err(at)?;
            }
            Action::List(path) => {
                let step = crate::files::FileStep::List { path: path.clone() };
                file_step(&asks, step).await.map_err(at)?;
            }
            Action::WaitControl { who, ms } => {
                let holds = |c: &ControlNow| match who {
                    Holder::Me => c.me,
                    Holder::Other => c.holder.is_some() && !c.me,
                    Holder::Named(n) => c.holder.as_deref() == Some(n.as_str()),
                };
                let limit = Duration::from_millis(*ms);
                let waited = tokio::time::timeout(limit, control.wait_for(holds)).await;
                if !matches!(waited, Ok(Ok(_))) {
                    let who = match who {
                        Holder::Me => "you",
                        Holder::Other => "another technician",
                        Holder::Named(n) => n,
                    };
                    return Err(at(format!("{who} did not hold control within {ms} ms")));
                }
            }
            Action::Chat(text) => input
                .send(PeerMessage::Chat(Chat {
                    from: None,
                    text: text.clone(),
                }))
                .await
                .map_err(|_| at("the session ended".into()))?,
            Action::Clipboard(text) => {
                let data = ClipboardData {
                    selection: Selection::Clipboard,
                    content: ClipContent::Text(text.clone()),
                };
                if control.borrow().clipboard {
                    input
                        .send(PeerMessage::Clipboard(data))
                        .await
                        .map_err(|_| at("the session ended".into()))?;
                } else {
                    crate::clipboard::refused(report, &data, crate::clipboard::NOT_SHARED);
                }
            }
            Action::Monitor(choice) => {
                monitor_refused.mark_unchanged();
                input
                    .send(PeerMessage::ShowMonitor(*choice))
                    .await
                    .map_err(|_| at("the session ended".into()))?;
                let shown = |m: &Option<Monitors>| m.as_ref().is_some_and(|m| m.shown == *choice);
                let waited = tokio::select! {
                    w = tokio::time::timeout(MONITOR_WAIT, monitors.wait_for(shown)) => w.is_ok_and(|r| r.is_ok()),
                    Ok(()) = monitor_refused.changed() => {
                        let why = monitor_refused.borrow().clone();
                        return Err(at(format!("the agent refused to switch monitors: {why}")));
                    }
                };
                if !waited {
                    return Err(at(format!(
                        "the agent did not show monitor {choice} within {} s",
                        MONITOR_WAIT.as_secs()
                    )));
                }
            }
            _ => {}
        }
    }
    report.event("script_done", json!({}), "The input script has finished.");
    Ok(false)
}

/// Runs a file step and waits until it is done: every file arrived and checked, or why not.
async fn file_step(asks: &Asks, step: crate::files::FileStep) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    asks.files
        .send((step, Some(tx)))
        .await
        .map_err(|_| "the session ended".to_string())?;
    rx.await
        .unwrap_or_else(|_| Err("the session ended before the files arrived".into()))
}

/// Runs the session on a paired connection until it ends. `code` is the code the user read out;
/// its secret part keys the exchange with the agent. Another code than the agent's ends it with
/// [`protocol::e2e::HandshakeError::CodeMismatch`] ("the code did not match"), as an `Err`.
pub async fn run(
    conn: &mut RelayConnection,
    meeting: &sealed::Meeting,
    mut opts: SessionOptions,
    report: Reporter,
    mut user_end: impl std::future::Future<Output = ()> + Unpin,
) -> Result<(Ended, Stats, Arc<Mutex<Viewer>>), LinkError> {
    let connection = conn.connection.clone();
    // Checkpoints from the start (the first at once), through the handshake and the user's
    // consent, until the session loop takes over.
    let mut beat = tokio::time::interval(Duration::from_secs(CHECKPOINT_SECS));
    let handshake = sealed::technician_session_met(&connection, meeting, START_TIMEOUT);
    tokio::pin!(handshake);
    let exchanged = loop {
        tokio::select! {
            s = &mut handshake => break s,
            _ = beat.tick() => send_checkpoint(conn, checkpoint_due(&opts)).await,
            _ = &mut user_end => return Ok((Ended::ByTechnician, Stats::default(), Arc::new(Mutex::new(Viewer::new())))),
        }
    };
    let SealedSession {
        send: mut tx,
        recv: mut rx,
        keys,
    } = match exchanged {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(LinkError::Protocol(
                "the agent did not start the session in time".into(),
            ))
        }
        Err(e) if !e.is_violation() => {
            let why = conn.explain_departure(e.to_string()).await?;
            return Ok((
                Ended::Failed(format!("the agent left: {why}")),
                Stats::default(),
                Arc::new(Mutex::new(Viewer::new())),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // Paired from the queue: the two people compare six digits that a relay in the middle
    // could not have made equal.
    if let Some(v) = keys.verification_code() {
        opts.tell(SessionEvent::Verification(v.to_string()));
        report.event(
            "verification",
            json!({ "code": v.digits() }),
            format!("Verification code: {v}. Ask the user to read out the six digits their screen shows; if they differ, end the session."),
        );
    }
    // Writer: everything this end sends on the session stream, in order (acks, input, chat),
    // recorded as it goes out.
    let (out_tx, mut out_rx) = mpsc::channel::<PeerMessage>(256);
    // A resumed leg's session stream replaces the dead one; what is sent while the link is
    // down is lost (input typed meanwhile must not arrive in a burst later).
    let (legs_tx, mut legs) = mpsc::channel::<sealed::SealedSend>(1);
    let writer_recorder = opts.recorder.clone();
    let clipboard_content = opts.record_clipboard_content;
    let writer = tokio::spawn(async move {
        let mut broken = false;
        loop {
            tokio::select! {
                m = out_rx.recv() => match m {
                    Some(m) => {
                        if broken {
                            continue;
                        }
                        sent(&m, &writer_recorder, report, clipboard_content);
                        broken = tx.send(&m).await.is_err();
                    }
                    None => break,
                },
                Some(next) = legs.recv() => {
                    tx = next;
                    broken = false;
                }
            }
        }
        let _ = tx.finish().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), tx.stream_mut().stopped()).await;
    });
    if opts.recorder.is_some() {
        // The user is told before being asked to consent.
        let _ = out_tx.send(PeerMessage::Recorded).await;
    }
    // The chat lines a script begins with go now, while the user is being asked.
    let mut script = opts.script.take();
    if let Some(steps) = script.as_mut() {
        let head = steps
            .iter()
            .take_while(|s| matches!(s.action, Action::Chat(_)))
            .count();
        for step in steps.drain(..head) {
            if let Action::Chat(text) = step.action {
                let _ = out_tx
                    .send(PeerMessage::Chat(Chat { from: None, text }))
                    .await;
            }
        }
    }
    let mut tools = opts.tools.take();
    let mut chat_in = ChatIn::default();
    // Before the screen: the user's consent. The agent may be asking them (up to a minute).
    let mut consents = ConsentMeter::new();
    let mut company = Company::default();
    let (control_tx, control_rx) = watch::channel(ControlNow::default());
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Ok(m) => m,
                Err(e) if e.is_violation() => {
                    let why = e.to_string();
                    leave_early(out_tx, writer, conn, &why).await;
                    return Ok((Ended::Failed(why), Stats::default(), Arc::new(Mutex::new(Viewer::new()))));
                }
                Err(e) => return Err(e.into()),
            },
            Some(tool) = next_tool(&mut tools) => {
                // Only chat before the screen: there is no monitor to switch yet, and files
                // wait for the person's answer (a window offers them once the screen shows).
                if let ToolAction::Chat(text) = tool {
                    let _ = out_tx.send(PeerMessage::Chat(Chat { from: None, text })).await;
                }
                continue;
            }
            ctl = conn.next_skipping_silences() => return match ctl {
                Err(LinkError::PeerLeft(reason)) => {
                    let ended = match last_word(&mut rx).await {
                        Some(r) => Ended::ByAgent(r),
                        None => Ended::Failed(format!("the agent left: {reason}")),
                    };
                    Ok((ended, Stats::default(), Arc::new(Mutex::new(Viewer::new()))))
                }
                Err(e) => Err(e),
                Ok(other) => Err(LinkError::Protocol(format!("unexpected control message: {other:?}"))),
            },
            _ = beat.tick() => {
                send_checkpoint(conn, checkpoint_due(&opts)).await;
                continue;
            }
            _ = &mut user_end => return Ok((Ended::ByTechnician, Stats::default(), Arc::new(Mutex::new(Viewer::new())))),
        };
        match msg {
            Some(PeerMessage::Consent(state)) => {
                if let Err(why) = consents.change() {
                    leave_early(out_tx, writer, conn, &why).await;
                    let viewer = Arc::new(Mutex::new(Viewer::new()));
                    return Ok((Ended::Failed(why), Stats::default(), viewer));
                }
                record(&opts.recorder, |r| r.consent(state));
                opts.tell(SessionEvent::Consent(state));
                company.consent(state, &control_tx);
                report_consent(report, state)
            }
            Some(PeerMessage::Participants(list)) => {
                let changed = consents
                    .change()
                    .and_then(|()| company.update(list, &opts, report, &control_tx));
                if let Err(why) = changed {
                    leave_early(out_tx, writer, conn, &why).await;
                    let viewer = Arc::new(Mutex::new(Viewer::new()));
                    return Ok((Ended::Failed(why), Stats::default(), viewer));
                }
            }
            Some(PeerMessage::Chat(chat)) => match chat_in.received(chat) {
                Ok(chat) => {
                    crate::chat::note(&opts.recorder, report, &chat);
                    opts.tell(SessionEvent::Chat(chat));
                }
                Err(why) => {
                    leave_early(out_tx, writer, conn, &why).await;
                    let viewer = Arc::new(Mutex::new(Viewer::new()));
                    return Ok((Ended::Failed(why), Stats::default(), viewer));
                }
            },
            Some(PeerMessage::ClipboardShared(shared)) => {
                clipboard_shared(shared, &opts, report, &control_tx)
            }
            Some(PeerMessage::EndSession { reason }) => {
                return Ok((
                    Ended::ByAgent(reason),
                    Stats::default(),
                    Arc::new(Mutex::new(Viewer::new())),
                ))
            }
            Some(PeerMessage::SessionStart {
                width,
                height,
                agent_version,
            }) => {
                let agent_version = tame(&agent_version, MAX_PEER_STRING);
                report.event(
                    "session_start",
                    json!({ "width": width, "height": height, "agent_version": agent_version }),
                    format!("Remote screen {width}x{height} (agent {agent_version})."),
                );
                opts.tell(SessionEvent::Started { width, height });
                break;
            }
            other => {
                return Err(LinkError::Protocol(format!(
                    "the agent began the session with {other:?} instead of a session start"
                )))
            }
        }
    }

    let (upd_tx, mut upd_rx) = mpsc::channel(UPDATE_QUEUE);
    let (file_streams_tx, mut file_streams) = mpsc::channel(MAX_READING);
    let reading = Arc::new(AtomicUsize::new(0));
    let mut acceptor = tokio::spawn(accept_updates(
        connection.clone(),
        keys.update_receiver(),
        upd_tx.clone(),
        file_streams_tx.clone(),
        reading.clone(),
    ));
    // The user's pointer: its positions in datagrams, read by a task of their own.
    let (cursor_tx, mut cursor_rx) = mpsc::channel::<CursorPosition>(1);
    let mut datagrams = tokio::spawn(crate::cursor::read_datagrams(
        DatagramReceiver::new(connection.clone(), &keys),
        opts.cursor.clone(),
        cursor_tx.clone(),
    ));
    let mut files = crate::files::TechFiles::start(connection.clone(), keys.file_keys());
    // The update later ones wait for, and since when.
    let mut missing: Option<(u64, Instant)> = None;
    // To resume with, should the link die; the keys themselves are not kept.
    let mut resume_secret = keys.resume_secret();
    drop(keys);
    let mut connection = connection.clone();
    // Why the link died, once it has: the loop resumes it before anything else.
    let mut lost: Option<String> = None;
    // This display's clipboard, shared while this technician holds control.
    let mut local_clipboard = LocalClipboard::open(opts.clipboard, report);
    // The agent's monitors as last listed (a script's `monitor` waits for its switch).
    let (monitors_tx, monitors_rx) = watch::channel::<Option<Monitors>>(None);
    let (monitor_refused_tx, monitor_refused_rx) = watch::channel(String::new());
    let viewer = opts
        .viewer
        .clone()
        .unwrap_or_else(|| Arc::new(Mutex::new(Viewer::new())));
    let mut live_input = opts.input.take();
    let mut control_steps = opts.control.take();
    // Steps from the script and from a window, one way in.
    let (desk_tx, mut desk_rx) = mpsc::channel::<DeskAsk>(1);
    let (files_tx, mut files_rx) = mpsc::channel::<crate::files::FileAsk>(4);
    let window_files = opts.files.take().map(|mut steps| {
        let tx = files_tx.clone();
        tokio::spawn(async move {
            while let Some(step) = steps.recv().await {
                if tx.send((step, None)).await.is_err() {
                    break;
                }
            }
        })
    });
    let asks = Asks {
        desk: desk_tx.clone(),
        files: files_tx,
    };
    let window_desk = opts.desk.take().map(|mut steps| {
        let tx = desk_tx.clone();
        tokio::spawn(async move {
            while let Some(step) = steps.recv().await {
                if tx.send((step, None)).await.is_err() {
                    break;
                }
            }
        })
    });
    // The step sent to the relay and not yet answered.
    let mut pending: Option<DeskAsk> = None;
    let request = conn.request.as_ref().map(|r| r.id);
    let mut decoder =
        match DecodeThread::start(viewer.clone(), opts.on_frame.take(), opts.hash_frames) {
            Ok(d) => d,
            Err(e) => {
                acceptor.abort();
                let why = format!("cannot start the screen decoder: {e}");
                let reason = EndReason::Error(why.clone());
                let _ = out_tx.send(PeerMessage::EndSession { reason }).await;
                drop(out_tx);
                let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
                return Ok((Ended::Failed(why), Stats::default(), viewer));
            }
        };
    // Updates handed to the decoder and not yet back.
    let mut decoding = 0usize;
    let (mut second_updates, mut second_bytes) = (0u32, 0u64);
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let mut script_task: Option<tokio::task::JoinHandle<Result<bool, String>>> = None;
    let mut stats = Stats::default();

    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let mut relay_silence = Silence::new(&conn.connection);
    let mut silence_tick = link::silence::ticker();
    send_checkpoint(conn, checkpoint_due(&opts)).await;
    let ended = loop {
        if let Some(why) = lost.take() {
            acceptor.abort();
            datagrams.abort();
            opts.tell(SessionEvent::RelayQuiet(true));
            record(&opts.recorder, |r| {
                r.link(&LinkChange::Lost { why: why.clone() })
            });
            report.event(
                "link_lost",
                json!({ "why": why }),
                "Connection lost, reconnecting…",
            );
            let resume = link::resume::Resume {
                role: protocol::control::Role::Technician,
                relays: link::resume::relays(conn.redial(), &opts.other_relays),
                secret: resume_secret,
                session: conn.session.clone().unwrap_or_default(),
                token: opts.token.clone(),
                limit: opts.resume_limit.unwrap_or(link::resume::RESUME_LIMIT),
            };
            let resumed = tokio::select! {
                r = resume.run(tokio::time::Instant::now()) => r,
                _ = &mut user_end => break Ended::ByTechnician,
            };
            let resumed = match resumed {
                Ok(r) => r,
                Err(e) => {
                    report.event(
                        "link_gone",
                        json!({ "why": e.to_string() }),
                        format!("The session ended: {e}."),
                    );
                    break Ended::Failed(e.to_string());
                }
            };
            // The old leg's updates still on their way to the screen are let through; the
            // new leg numbers its own from the start, from a whole screen.
            while decoding > 0 {
                if decoder.decoded.recv().await.is_none() {
                    break;
                }
                decoding -= 1;
            }
            while upd_rx.try_recv().is_ok() {}
            viewer.lock().expect("viewer lock").restart_numbering();
            missing = None;
            *conn = resumed.conn;
            connection = conn.connection.clone();
            let sealed::SealedSession { send, recv, keys } = resumed.session;
            rx = recv;
            let _ = legs_tx.send(send).await;
            acceptor = tokio::spawn(accept_updates(
                connection.clone(),
                keys.update_receiver(),
                upd_tx.clone(),
                file_streams_tx.clone(),
                reading.clone(),
            ));
            datagrams = tokio::spawn(crate::cursor::read_datagrams(
                DatagramReceiver::new(connection.clone(), &keys),
                opts.cursor.clone(),
                cursor_tx.clone(),
            ));
            let carried = files.resumed(connection.clone(), keys.file_keys()).await;
            resume_secret = keys.resume_secret();
            drop(keys);
            relay_silence = Silence::new(&connection);
            let relay = conn.relay_addr.to_string();
            record(&opts.recorder, |r| {
                r.link(&LinkChange::Resumed {
                    relay: relay.clone(),
                })
            });
            opts.tell(SessionEvent::RelayQuiet(false));
            report.event("link_resumed", json!({ "relay": relay }), "Reconnected");
            if carried > 0 {
                report.event(
                    "files_resumed",
                    json!({ "steps": carried }),
                    format!("Files on their way go on from where they were ({carried} offers)"),
                );
            }
            send_checkpoint(conn, checkpoint_due(&opts)).await;
        }
        let script_done = async {
            match script_task.as_mut() {
                Some(t) => t.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = upd_rx.recv(), if decoding < DECODE_QUEUE => match item {
                Some(Incoming::Update(u)) => {
                    // As received, before reordering: the replay reorders the same way.
                    record(&opts.recorder, |r| r.update(&u));
                    if let Some(why) = recording_full(&opts.recorder) {
                        break Ended::Failed(why);
                    }
                    // Room for it: `decoding` is below the channel's capacity.
                    if decoder.updates.try_send(u).is_err() {
                        break Ended::Failed("the screen decoder stopped".into());
                    }
                    decoding += 1;
                }
                Some(Incoming::Bad(why)) => break Ended::Failed(why),
                None => break Ended::Failed(format!("the agent left: {}", conn.explain_departure("the connection closed".into()).await?)),
            },
            done = decoder.decoded.recv() => {
                let Some(done) = done else {
                    break Ended::Failed("the screen decoder stopped".into());
                };
                decoding -= 1;
                let applied = match done.applied {
                    Ok(a) => a,
                    Err(e) => break Ended::Failed(e),
                };
                missing = match (done.missing, missing) {
                    (Some(seq), Some((was, since))) if seq == was => Some((seq, since)),
                    (Some(seq), _) => Some((seq, Instant::now())),
                    (None, _) => None,
                };
                stats.tile_bytes += done.bytes as u64;
                second_bytes += done.bytes as u64;
                for seq in applied {
                    stats.updates += 1;
                    second_updates += 1;
                    if out_tx.send(PeerMessage::UpdateAck { seq }).await.is_err() {
                        break;
                    }
                    if opts.report_updates {
                        let mut fields = json!({
                            "seq": seq, "ops": done.ops, "bytes": done.bytes,
                            "width": done.size.0, "height": done.size.1,
                        });
                        if let Some(sha) = &done.sha256 {
                            fields["sha256"] = json!(sha);
                        }
                        report.event("update", fields, "");
                    }
                }
                changed_tx.send_modify(|n| *n += 1);
                if let Some(steps) = script.take() {
                    let watching = Watching { changes: changed_rx.clone(), control: control_rx.clone(), monitors: monitors_rx.clone(), monitor_refused: monitor_refused_rx.clone() };
                    script_task = Some(tokio::spawn(play(steps, out_tx.clone(), asks.clone(), viewer.clone(), watching, report)));
                }
            }
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::Consent(state))) => {
                    if let Err(why) = consents.change() {
                        break Ended::Failed(why);
                    }
                    record(&opts.recorder, |r| r.consent(state));
                    opts.tell(SessionEvent::Consent(state));
                    company.consent(state, &control_tx);
                    report_consent(report, state)
                }
                Ok(Some(PeerMessage::Participants(list))) => {
                    if let Err(why) = consents.change().and_then(|()| company.update(list, &opts, report, &control_tx)) {
                        break Ended::Failed(why);
                    }
                }
                Ok(Some(PeerMessage::File(m))) => files.peer(m).await,
                Ok(Some(PeerMessage::EndSession { reason })) => break Ended::ByAgent(reason),
                Ok(Some(PeerMessage::Chat(chat))) => match chat_in.received(chat) {
                    Ok(chat) => {
                        crate::chat::note(&opts.recorder, report, &chat);
                        opts.tell(SessionEvent::Chat(chat));
                    }
                    Err(why) => break Ended::Failed(why),
                },
                Ok(Some(PeerMessage::Monitors(list))) => match list.checked() {
                    Ok(list) => {
                        record(&opts.recorder, |r| r.monitors(&list));
                        report_monitors(report, &list);
                        opts.tell(SessionEvent::Monitors(list.clone()));
                        monitors_tx.send_replace(Some(list));
                    }
                    Err(e) => break Ended::Failed(e.to_string()),
                },
                Ok(Some(PeerMessage::MonitorRefused { reason })) => {
                    let reason = protocol::text::tame(&reason, protocol::text::MAX_REASON);
                    report.event("monitor_refused", serde_json::json!({ "message": reason }), format!("The agent refused to switch monitors: {reason}."));
                    opts.tell(SessionEvent::MonitorRefused(reason.clone()));
                    monitor_refused_tx.send_replace(reason);
                }
                Ok(Some(PeerMessage::CursorShape(shape))) => match shape.check() {
                    Ok(()) => {
                        record(&opts.recorder, |r| r.cursor_shape(&shape));
                        crate::cursor::report_shape(report, &shape);
                        if let Some(hook) = &opts.cursor {
                            hook(CursorUpdate::Shape(shape));
                        }
                    }
                    Err(e) => break Ended::Failed(format!("the agent sent {e}")),
                },
                Ok(Some(PeerMessage::ClipboardShared(shared))) => {
                    clipboard_shared(shared, &opts, report, &control_tx)
                }
                Ok(Some(PeerMessage::Clipboard(data))) => match data.check() {
                    Ok(()) => {
                        crate::clipboard::note(&opts.recorder, report, ClipDirection::FromUser, &data, opts.record_clipboard_content);
                        opts.tell(SessionEvent::Clipboard { direction: ClipDirection::FromUser, kind: data.content.kind(), bytes: data.content.len() as u64 });
                        local_clipboard.paste(data);
                    }
                    Err(e) => break Ended::Failed(format!("the agent sent {e}")),
                },
                // A resumed leg starts its screen again.
                Ok(Some(PeerMessage::SessionStart { width, height, .. })) => opts.tell(SessionEvent::Started { width, height }),
                Ok(Some(other)) => break Ended::Failed(format!("the agent sent {} on the session stream", other.kind())),
                Ok(None) => match conn.explain_departure("it closed the session stream without saying why".into()).await {
                    Ok(words) => break Ended::Failed(format!("the agent left: {words}")),
                    Err(e) if e.is_link_lost() => lost = Some(e.to_string()),
                    Err(e) => return Err(e),
                },
                Err(e) if e.is_violation() => break Ended::Failed(e.to_string()),
                Err(e) if link::resume::resumable(&connection) => lost = Some(e.to_string()),
                Err(e) => match conn.explain_departure(format!("the session stream broke: {e}")).await {
                    Ok(words) => break Ended::Failed(format!("the agent left: {words}")),
                    Err(e) if e.is_link_lost() => lost = Some(e.to_string()),
                    Err(e) => return Err(e),
                },
            },
            _ = silence_tick.tick() => match relay_silence.check(&conn.connection) {
                _ if relay_silence.silent_for() >= link::resume::LOST_AFTER => {
                    lost = Some(link::resume::give_up(&connection, relay_silence.silent_for()));
                }
                Some(Change::Quiet(silent)) => {
                    opts.tell(SessionEvent::RelayQuiet(true));
                    report.event("relay_quiet", json!({ "silent_ms": silent.as_millis() as u64 }), format!(
                        "Nothing heard from the relay for {:.1} s; the session waits for the connection.",
                        silent.as_secs_f64()
                    ));
                }
                Some(Change::Back) => {
                    opts.tell(SessionEvent::RelayQuiet(false));
                    report.event("relay_back", json!({}), "The relay is heard again.");
                }
                None => {}
            },
            ctl = conn.next() => match ctl {
                Err(LinkError::PeerLeft(reason)) => match last_word(&mut rx).await {
                    Some(r) => break Ended::ByAgent(r),
                    // The agent's link died without a word: it may be resuming, so this end
                    // rejoins too and the relay pairs the two again.
                    None if reason == PeerLeftReason::ConnectionLost => lost = Some(LinkError::PeerLinkLost.to_string()),
                    None => break Ended::Failed(format!("the agent left: {reason}")),
                },
                Ok(FromRelay::PeerQuiet { silent_ms }) => {
                    opts.tell(SessionEvent::PeerQuiet(true));
                    report.event("peer_quiet", json!({ "silent_ms": silent_ms }), format!(
                        "Nothing heard from the agent for {:.1} s; the session waits for its connection.",
                        f64::from(silent_ms) / 1000.0
                    ));
                }
                Ok(FromRelay::PeerBack) => {
                    opts.tell(SessionEvent::PeerQuiet(false));
                    report.event("peer_back", json!({}), "The agent's connection is back.");
                }
                Ok(FromRelay::RequestPassed { words }) if pending.is_some() => {
                    let (step, answer) = pending.take().expect("checked");
                    let words = tame(&words, MAX_PEER_STRING);
                    let id = request.unwrap_or_default();
                    record(&opts.recorder, |r| r.desk_step(&step.step(id, &words)));
                    opts.tell(SessionEvent::RequestPassed(words.clone()));
                    // An escalation goes on with this technician until whoever takes it joins
                    // (they may then stay and observe, or leave); the other steps end it.
                    let goes_on = matches!(step, DeskAction::Escalate { .. });
                    report.event(
                        "request_passed",
                        json!({ "request": id, "action": step.name(), "to": step.to(), "note": step.note(), "words": words }),
                        if goes_on {
                            format!("Help request {id}: {words}. The session goes on until the next technician joins; end it when you leave.")
                        } else {
                            format!("Help request {id}: {words}. The session ends.")
                        },
                    );
                    if let Some(a) = answer {
                        let _ = a.send(Ok(()));
                    }
                    if !goes_on {
                        break Ended::ByTechnician;
                    }
                }
                Err(LinkError::Refused { code, message }) if pending.is_some() => {
                    let ask = pending.take().expect("checked");
                    refuse(&opts, report, ask, tame(&message, MAX_PEER_STRING), Some(code));
                }
                Err(e @ LinkError::RelayShuttingDown) => lost = Some(e.to_string()),
                Err(e) if link::resume::resumable(&connection) => lost = Some(e.to_string()),
                Err(e) => { acceptor.abort(); return Err(e) }
                Ok(other) => { acceptor.abort(); return Err(LinkError::Protocol(format!("unexpected control message during a session: {other:?}"))) }
            },
            done = script_done => {
                script_task = None;
                match done {
                    Ok(Ok(true)) => break Ended::ByTechnician,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => break Ended::Failed(e),
                    Err(e) => break Ended::Failed(format!("the script stopped: {e}")),
                }
            }
            ev = next_from(&mut live_input) => match ev {
                Some(ev) => {
                    if out_tx.send(PeerMessage::Input(ev)).await.is_err() {
                        break Ended::Failed("the session stream closed".into());
                    }
                }
                // The window closed its side: no more live input, the session goes on.
                None => live_input = None,
            },
            step = next_from(&mut control_steps) => match step {
                Some(step) => {
                    if out_tx.send(step.message()).await.is_err() {
                        break Ended::Failed("the session stream closed".into());
                    }
                }
                None => control_steps = None,
            },
            _ = flush.tick() => {
                opts.tell(SessionEvent::Quality {
                    rtt: connection.rtt(),
                    updates_per_sec: std::mem::take(&mut second_updates),
                    bits_per_sec: std::mem::take(&mut second_bytes) * 8,
                });
                record(&opts.recorder, |r| r.tick());
                ticks += 1;
                if ticks.is_multiple_of(CHECKPOINT_SECS) {
                    send_checkpoint(conn, checkpoint_due(&opts)).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)), if missing.is_some() => {
                if let Some((seq, since)) = missing {
                    if since.elapsed() >= MISSING_LIMIT && reading.load(Ordering::SeqCst) == 0 {
                        break Ended::Failed(format!(
                            "a screen update is missing: the relay or network dropped update {seq}, \
                             later ones arrived"
                        ));
                    }
                }
            }
            Some(stream) = file_streams.recv() => files.stream(stream).await,
            // `asks` holds a sender as long as this loop: never `None`.
            Some(ask) = files_rx.recv() => files.ask(ask).await,
            out = files.next() => {
                let sinks = crate::files::Sinks { recorder: &opts.recorder, report, events: opts.events.as_ref() };
                let sent = match files.handle(out, &sinks).await {
                    Some(Ok(msg)) => out_tx.send(PeerMessage::File(msg)).await.is_ok(),
                    Some(Err(why)) => break Ended::Failed(why),
                    None => true,
                };
                if !sent {
                    break Ended::Failed("the session stream closed".into());
                }
            }
            // The script's sender lives as long as this loop: never `None`.
            Some(ask) = desk_rx.recv() => {
                let refused = if pending.is_some() {
                    Some("another step of this request is on its way to the relay".to_string())
                } else if request.is_none() {
                    Some("this session is not from a help request: there is nothing to escalate, hold or close".to_string())
                } else {
                    None
                };
                match refused {
                    Some(why) => refuse(&opts, report, ask, why, None),
                    None => {
                        if let Err(e) = conn.pass_on(ask.0.message()).await {
                            acceptor.abort();
                            return Err(e);
                        }
                        pending = Some(ask);
                    }
                }
            },
            Some(tool) = next_tool(&mut tools) => {
                let msg = match tool {
                    ToolAction::Chat(text) => PeerMessage::Chat(Chat { from: None, text }),
                    ToolAction::ShowMonitor(choice) => PeerMessage::ShowMonitor(choice),
                    ToolAction::Files(step) => {
                        files.ask((step, None)).await;
                        continue;
                    }
                };
                if out_tx.send(msg).await.is_err() {
                    break Ended::Failed("the session stream closed".into());
                }
            }
            copied = local_clipboard.next() => {
                if let Some(data) = copied {
                    let shared = control_rx.borrow().clipboard;
                    if shared {
                        opts.tell(SessionEvent::Clipboard { direction: ClipDirection::ToUser, kind: data.content.kind(), bytes: data.content.len() as u64 });
                        if out_tx.send(PeerMessage::Clipboard(data)).await.is_err() {
                            break Ended::Failed("the session stream closed".into());
                        }
                    } else {
                        crate::clipboard::refused(report, &data, crate::clipboard::NOT_SHARED);
                    }
                }
            }
            Some(at) = cursor_rx.recv() => {
                record(&opts.recorder, |r| r.cursor(at));
                if opts.report_updates {
                    crate::cursor::report_position(report, &at);
                }
            }
            read = &mut datagrams => match read {
                Ok(Err(why)) => break Ended::Failed(why),
                // The connection is going; the session stream says why.
                _ => datagrams = tokio::spawn(std::future::pending()),
            },
            _ = &mut user_end => break Ended::ByTechnician,
        }
    };
    datagrams.abort();
    if let Some(t) = script_task {
        t.abort();
    }
    if let Some(t) = window_desk {
        t.abort();
    }
    if let Some(t) = window_files {
        t.abort();
    }
    acceptor.abort();
    decoder.stop().await;
    // Tell the agent why, unless it ended the session itself.
    let goodbye = match &ended {
        Ended::ByTechnician => Some(EndReason::TechnicianEnded),
        Ended::Failed(why) => Some(EndReason::Error(why.clone())),
        Ended::ByAgent(_) => None,
    };
    if let Some(reason) = &goodbye {
        let _ = out_tx
            .send(PeerMessage::EndSession {
                reason: reason.clone(),
            })
            .await;
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    if goodbye.is_some() {
        // The agent leaves once it has read the goodbye; closing before would abandon input
        // still on its way.
        conn.await_departure(Duration::from_secs(2)).await;
    }
    Ok((ended, stats, viewer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole-screen update of 2x1 pixels of one colour, as the codec makes it.
    fn solid(seq: u64, color: u8) -> ScreenUpdate {
        let mut enc = protocol::codec::Encoder::new(2, 1);
        enc.request_full();
        enc.encode(&[color, color, color, 0].repeat(2), 2, 1, 0, seq)
            .expect("a full update")
    }

    #[tokio::test]
    async fn updates_are_applied_and_presented_off_the_async_threads() {
        let viewer = Arc::new(Mutex::new(Viewer::new()));
        let presented = Arc::new(Mutex::new(Vec::new()));
        let seen = presented.clone();
        let hook: FrameHook = Box::new(move |fb, damage| {
            let thread = std::thread::current().name().map(str::to_owned);
            seen.lock()
                .unwrap()
                .push((thread, fb.pixels()[0], damage.len()));
        });
        let mut decoder = DecodeThread::start(viewer.clone(), Some(hook), true).unwrap();
        decoder.updates.try_send(solid(2, 9)).unwrap();
        decoder.updates.try_send(solid(1, 5)).unwrap();
        let early = decoder.decoded.recv().await.unwrap();
        assert_eq!(early.applied, Ok(vec![]));
        assert_eq!(early.missing, Some(1));
        let both = decoder.decoded.recv().await.unwrap();
        assert_eq!(both.applied, Ok(vec![1, 2]));
        assert_eq!(both.size, (2, 1));
        assert_eq!(both.sha256, Some(viewer.lock().unwrap().pixels_sha256()));
        assert_eq!(
            *presented.lock().unwrap(),
            vec![(Some("technician-decode".to_string()), 9, 2)]
        );
        // A malformed update comes back as the reason, and the thread stops when asked.
        let mut bad = solid(3, 1);
        bad.width = 0;
        decoder.updates.try_send(bad).unwrap();
        let refused = decoder.decoded.recv().await.unwrap();
        assert!(refused.applied.unwrap_err().contains("update 3"));
        decoder.stop().await;
    }

    #[test]
    fn a_flood_of_consent_changes_is_refused() {
        let mut meter = ConsentMeter::new();
        for _ in 0..MAX_CONSENT_CHANGES {
            meter.change().unwrap();
        }
        assert!(meter.change().unwrap_err().contains("a person does not"));
    }
}
