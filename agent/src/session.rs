//! The agent's side of a paired session, with one technician or several.
//!
//! Each technician is a viewer ([`crate::viewer`]): its own relay connection, end-to-end session,
//! capture thread, encoder and credit, so that a slow viewer slows only itself. The first is the
//! one paired under the code (or from the queue); others join while the session runs, when the
//! relay invites them on any viewer's connection ([`protocol::control::FromRelay::Invite`]: an
//! escalation taken by the next technician, a lead monitoring): the agent attaches another
//! connection, and the newcomer is a viewer like the first.
//!
//! This module is the session around them. It asks the person about each technician in turn
//! (or applies the answer given in advance), and decides who holds control: the first allowed
//! control holds it; an escalation's next technician takes it once the person allows them
//! control; the one holding it may hand it to another participant the person allowed control;
//! a lead who joined to monitor may take it over where the person allowed it. When the one
//! holding it leaves, it passes to the participant who has been in the session longest among
//! those allowed control, and the person is told. Everyone else observes: their input is
//! dropped (by their viewer, and checked again here) and reported. Every participant is told who
//! is there and who holds control ([`protocol::peer::PeerMessage::Participants`]) once there is
//! more than one.
//!
//! Input is injected only from the one holding control, while the person allows control. It is
//! injected by a worker thread ([`crate::injector`]), never in this loop, so the person's
//! commands are taken at once however much the technician sends; text per event is capped.
//! Whenever control ends or moves (the person stops it, the session ends, the holder leaves,
//! falls silent, or hands it on) every key and button still held is released: the injector is
//! a guard that does it when dropped, on every way out.
//!
//! Chat and the shared clipboard pass through here: the session relays chat between the person
//! and every technician ([`crate::chat`]), and passes clipboards between the person and the
//! one holding control only, while the person allows control and has not switched the
//! clipboard off ([`crate::clipboard`]).
//!
//! The session ends when the last technician has left, or the person ends it (End session,
//! Ctrl+C, `q`).
//!
//! The person is a [`Person`]: what they say (terminal or window), the gate their commands close,
//! and the window's status, kept up to date here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use link::report::Reporter;
use link::sealed::Meeting;
use link::{LinkError, RelayConnection};
use protocol::chat::Chat;
use protocol::clipboard::ClipboardData;
use protocol::control::{Joining, PeerInfo, Role};
use protocol::peer::{ConsentState, EndReason, Participant};
use serde_json::json;
use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::clipboard::{Direction, SharedClipboard};
use crate::consent::{
    parse_answer, parse_command, ConsentPolicy, FromUser, UserCommand, UserInput,
};
use crate::injector::{cap_text, Injector, InputGate, MAX_TEXT_CHARS};
use crate::shown;
use crate::sink::InputSink;
use crate::source::SourceFactory;
use crate::status::{Heard, Status, StatusTx};
use crate::viewer::{self, FromViewer, ToViewer, ViewerId, ViewerSetup};

/// How long the end of a session waits for the input worker to let go of everything.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// How long the end of a session waits for its viewers to say goodbye.
const GOODBYE_WAIT: Duration = Duration::from_secs(5);

/// News from the viewers waiting for the session to read them.
const NEWS_WAITING: usize = 64;

/// Technicians in one session at once (each is a connection, a capture thread and an encoder):
/// invites beyond this are not attached, and the technician invited is refused by the relay
/// when the invite times out.
pub const MAX_VIEWERS: usize = 8;

/// The person at the shared screen, as a session sees them.
pub struct Person {
    /// What they say, from the terminal and the window.
    pub input: UserInput,
    /// Open while they allow control; their commands close it.
    pub gate: InputGate,
    /// Where the window learns what happens.
    pub status: StatusTx,
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Updates the viewer may have unacknowledged.
    pub max_in_flight: usize,
    /// Report every update sent (JSON event `update_sent`).
    pub report_updates: bool,
    pub consent: ConsentPolicy,
    /// Never send a region lossy (video), whatever moves on the screen.
    pub lossless: bool,
    /// Share this display's clipboard (X selections) with the technician holding control,
    /// while the person allows control.
    pub clipboard: bool,
    /// What the person allows of files.
    pub files: crate::files::FileOptions,
    /// How long a session whose relay connection died waits for it to come back.
    pub resume_limit: Duration,
    /// Relays of the organisation to resume through besides the session's own.
    pub other_relays: Vec<link::resume::OtherRelay>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 2,
            report_updates: false,
            consent: ConsentPolicy::Ask {
                timeout: Duration::from_secs(60),
            },
            lossless: false,
            clipboard: false,
            files: crate::files::FileOptions::default(),
            resume_limit: link::resume::RESUME_LIMIT,
            other_relays: Vec::new(),
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Ended {
    /// Normally, for this reason.
    Reason(EndReason),
    /// The person did not answer in time (the technician is told
    /// [`EndReason::ConsentDenied`]).
    Unanswered,
    /// The technician's side went away.
    PeerLeft(String),
}

/// The words of how a session (or one technician's part of it) ended: the short reason for
/// scripts, and the sentence for a person.
pub fn ended_words(ended: &Ended) -> (String, String) {
    match ended {
        Ended::Reason(r) => (
            protocol::text::clip(&format!("{r:?}"), protocol::text::MAX_REASON).into_owned(),
            shown::end_reason(r),
        ),
        Ended::Unanswered => (
            format!("{:?}", EndReason::ConsentDenied),
            "nobody answered in time, so the session was denied".to_string(),
        ),
        Ended::PeerLeft(why) => (
            "PeerLeft".to_string(),
            format!("the technician left: {}", shown::reason(why)),
        ),
    }
}

/// One technician of the session, as the session keeps them.
struct Member {
    info: PeerInfo,
    /// The account name (or the relay's description of a peer without one).
    name: String,
    tier: u8,
    /// Why they joined a session already running (`None`: the first).
    joining: Option<Joining>,
    /// The person let them in.
    admitted: bool,
    /// The person allowed them control.
    may_control: bool,
    /// The consent they were last told.
    told: Option<ConsentState>,
    /// They were sent a list of participants (lists go out once there is more than one
    /// participant, and after that always).
    listed: bool,
    /// Whether the clipboard is shared with them, as they were last told.
    told_clipboard: Option<bool>,
    /// Whether they may switch monitors (they hold control, or nobody does), as they were last
    /// told.
    told_leads: Option<bool>,
    /// The relay hears nothing of them, or nothing of the relay on their connection, for now.
    quiet: bool,
    relay_quiet: bool,
    /// The person did not answer about them in time.
    unanswered: bool,
    orders: tmpsc::UnboundedSender<ToViewer>,
}

impl Member {
    /// A technician who has just connected, not yet let in.
    fn new(
        info: PeerInfo,
        joining: Option<Joining>,
        orders: tmpsc::UnboundedSender<ToViewer>,
    ) -> Self {
        let (name, tier) = match &info.account {
            Some(a) => (a.name.clone(), a.tier),
            None => (info.description.clone(), 0),
        };
        Member {
            info,
            name,
            tier,
            joining,
            admitted: false,
            may_control: false,
            told: None,
            listed: false,
            told_clipboard: None,
            told_leads: None,
            quiet: false,
            relay_quiet: false,
            unanswered: false,
            orders,
        }
    }

    fn tell(&self, order: ToViewer) {
        // A viewer that is over reads no more; its end is on its way.
        let _ = self.orders.send(order);
    }
}

/// A technician waiting for the person's answer.
struct Ask {
    id: ViewerId,
    recorded: bool,
    verification: Option<String>,
}

/// The question the person is being asked now, about viewer `id`.
struct Question {
    id: ViewerId,
    deadline: tokio::time::Instant,
}

/// Who is in the session and who holds control.
struct Room {
    members: BTreeMap<ViewerId, Member>,
    owner: Option<ViewerId>,
    /// The person allows control (until they stop it).
    control_allowed: bool,
    report: Reporter,
    status: StatusTx,
    gate: InputGate,
    /// Input that reached the session from a viewer not holding control (a race with a change
    /// of control), dropped.
    dropped: u64,
    /// The screen is shared with someone: the window shows the sharing bar from then on.
    sharing: bool,
    /// This display's clipboard is watched and the person's switch is on: the one holding
    /// control shares it while the person allows control.
    clipboard: bool,
}

impl Room {
    fn name(&self, id: ViewerId) -> String {
        self.members
            .get(&id)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    /// Holds control now: the owner, while the person allows control.
    fn controls(&self, id: ViewerId) -> bool {
        self.owner == Some(id) && self.control_allowed
    }

    fn participants_for(&self, id: ViewerId) -> Vec<Participant> {
        self.members
            .iter()
            .filter(|(_, m)| m.admitted)
            .map(|(other, m)| Participant {
                name: m.name.clone(),
                tier: m.tier,
                you: *other == id,
                controls: self.controls(*other),
                may_control: m.may_control,
                monitoring: matches!(m.joining, Some(Joining::Monitor)),
            })
            .collect()
    }

    /// Tells every technician let in what changed: whether they hold control, and who is there.
    fn tell_all(&mut self) {
        let admitted = self.members.values().filter(|m| m.admitted).count();
        let ids: Vec<ViewerId> = self.members.keys().copied().collect();
        for id in ids {
            let state = if self.controls(id) {
                ConsentState::Control
            } else {
                ConsentState::ViewOnly
            };
            let list = self.participants_for(id);
            let m = self.members.get_mut(&id).expect("listed above");
            if !m.admitted {
                continue;
            }
            if m.told != Some(state) {
                m.told = Some(state);
                m.tell(ToViewer::Consent(state));
            }
            if admitted > 1 || m.listed {
                m.listed = true;
                m.tell(ToViewer::Participants(list));
            }
            let shared = self.clipboard && state == ConsentState::Control;
            let m = self.members.get_mut(&id).expect("listed above");
            if m.told_clipboard != Some(shared) {
                m.told_clipboard = Some(shared);
                m.tell(ToViewer::ClipboardShared(shared));
            }
            // Nobody holds control (a view-only session): each sees what it chooses.
            let leads = self.owner.is_none_or(|owner| owner == id);
            if m.told_leads != Some(leads) {
                m.told_leads = Some(leads);
                m.tell(ToViewer::Leads(leads));
            }
        }
        self.show();
    }

    /// What the window shows while the screen is shared.
    fn show(&self) {
        if !self.sharing {
            return;
        }
        let shown = self.owner.or_else(|| {
            self.members
                .iter()
                .find(|(_, m)| m.admitted)
                .map(|(id, _)| *id)
        });
        let Some(shown) = shown else { return };
        let others = self
            .members
            .iter()
            .filter(|(id, m)| m.admitted && **id != shown)
            .map(|(_, m)| m.name.clone())
            .collect();
        self.status.send(Status::Sharing {
            peer: self.members[&shown].info.clone(),
            control: self.controls(shown),
            others,
        });
    }

    /// Gives control to `to` (or nobody), telling the person why. Returns whether it moved.
    fn set_owner(&mut self, to: Option<ViewerId>, why: &str) -> bool {
        if self.owner == to {
            return false;
        }
        let from = self.owner.map(|id| self.name(id));
        self.owner = to;
        let to_name = to.map(|id| self.name(id));
        let words = match &to_name {
            Some(n) if self.control_allowed => {
                format!("{} now controls your screen ({why}).", shown::name(n))
            }
            Some(n) => format!(
                "{} now leads the session, view only ({why}).",
                shown::name(n)
            ),
            None => format!("Nobody controls your screen now ({why})."),
        };
        self.report.event(
            "control",
            json!({ "technician": to_name, "from": from, "why": why }),
            words,
        );
        true
    }

    /// A chat message for every technician whose keys are agreed, but `except` (its author).
    fn tell_chat(&self, except: Option<ViewerId>, chat: Chat) {
        for (id, m) in &self.members {
            if Some(*id) != except {
                m.tell(ToViewer::Chat(chat.clone()));
            }
        }
    }

    /// Says a chat message to the person (terminal and window): `from` is the technician's
    /// name, `None` for the person's own.
    fn show_chat(&self, from: Option<String>, text: String) {
        crate::chat::report(self.report, from.as_deref(), &text);
        self.status.send(Status::Chat(crate::chat::ChatLine {
            from,
            at: std::time::SystemTime::now(),
            text,
        }));
    }

    /// Whether `id` holds control for the clipboard (`None`: nobody holds it).
    fn holds_for_clipboard(&self, id: Option<ViewerId>) -> Option<bool> {
        self.owner?;
        Some(id.is_some_and(|id| self.owner == Some(id)))
    }

    /// After the holder of control left: the participant in the session longest among those
    /// allowed control takes it, else nobody.
    fn pass_on_control(&mut self, left: &str) -> bool {
        let next = self
            .members
            .iter()
            .find(|(_, m)| m.admitted && m.may_control)
            .map(|(id, _)| *id);
        self.set_owner(next, &format!("{} left", left))
    }
}

/// Runs the session from its first technician, paired on `first`, until the last technician has
/// left or the person ends it. `meeting` is how the first met the agent (the code the user was
/// shown, or the queue); `sources` makes each viewer's screen source. A technician who entered
/// another code ends it with [`protocol::e2e::HandshakeError::CodeMismatch`] ("the code did not
/// match"), as an `Err`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    first: RelayConnection,
    meeting: Meeting,
    peer: PeerInfo,
    sources: SourceFactory,
    sink: Box<dyn InputSink>,
    person: &mut Person,
    opts: SessionOptions,
    report: Reporter,
    mut user_end: impl std::future::Future<Output = ()> + Unpin,
) -> Result<Ended, LinkError> {
    let redial = first.redial();
    let (news_tx, mut news) = tmpsc::channel::<(ViewerId, FromViewer)>(NEWS_WAITING);
    let mut viewers = JoinSet::new();
    let gate = person.gate.clone();
    let mut room = Room {
        members: BTreeMap::new(),
        owner: None,
        control_allowed: true,
        report,
        status: person.status.clone(),
        gate: gate.clone(),
        dropped: 0,
        sharing: false,
        clipboard: false,
    };
    let mut next_id: ViewerId = 0;
    let mut join = |room: &mut Room,
                    viewers: &mut JoinSet<()>,
                    conn: RelayConnection,
                    meeting: Meeting,
                    info: PeerInfo,
                    joining: Option<Joining>| {
        let id = next_id;
        next_id += 1;
        let (orders, orders_rx) = tmpsc::unbounded_channel();
        let member = Member::new(info, joining, orders);
        let setup = ViewerSetup {
            id,
            conn,
            meeting,
            factory: sources.clone(),
            opts: opts.clone(),
            report,
            name: member.name.clone(),
        };
        viewers.spawn(viewer::run(setup, orders_rx, news_tx.clone()));
        room.members.insert(id, member);
    };
    join(&mut room, &mut viewers, first, meeting, peer, None);

    // Started once someone is first given control. However the session ends (also by an error on the
    // way out, `?`), dropping the injector releases every key and button the technician held
    // (see `crate::injector`).
    let mut sink = Some(sink);
    let mut injector: Option<Injector> = None;
    let mut inject_failure: Option<crate::injector::InjectFailure> = None;
    let mut pending: Option<protocol::input::InputEvent> = None;
    let mut truncated = Truncated::default();
    let mut attaching: JoinSet<Result<(RelayConnection, PeerInfo, Joining), LinkError>> =
        JoinSet::new();
    let mut asks: VecDeque<Ask> = VecDeque::new();
    let mut question: Option<Question> = None;
    // Once the session is ending: every viewer was told, and is given this long to go.
    let mut ending: Option<tokio::time::Instant> = None;
    let mut last: Option<Result<Ended, LinkError>> = None;
    let mut sharing_reported = false;
    let mut user_ended = false;
    let mut clipboard = SharedClipboard::open(opts.clipboard, room.report);
    room.clipboard = clipboard.is_shared();
    person
        .status
        .send(Status::ClipboardShared(clipboard.is_shared()));
    person
        .status
        .send(Status::BrowseAllowed(opts.files.browsing()));
    let policy = opts.consent;
    // Files offered to the person, asked one at a time.
    let mut questions = crate::files::Questions::new(opts.files.default_dir.clone());
    let end_all =
        |room: &mut Room, reason: EndReason, ending: &mut Option<tokio::time::Instant>| {
            if ending.is_none() {
                *ending = Some(tokio::time::Instant::now() + GOODBYE_WAIT);
                for m in room.members.values() {
                    m.tell(ToViewer::End(reason.clone()));
                }
            }
        };
    loop {
        if room.members.is_empty() {
            break;
        }
        // The input worker starts once someone is first given control.
        if room.owner.is_some() {
            if let Some(sink) = sink.take() {
                let (i, f) = Injector::start(sink, gate.clone()).map_err(|e| {
                    LinkError::Protocol(format!("cannot start the input thread: {e}"))
                })?;
                injector = Some(i);
                inject_failure = Some(f);
            }
        }

        // The next question, when none is open.
        if question.is_none() && ending.is_none() {
            if let Some(ask) = asks.pop_front() {
                if let Some(m) = room.members.get(&ask.id) {
                    match policy {
                        ConsentPolicy::Preset(state) => {
                            room.report.event(
                                "consent",
                                json!({ "state": consent_name(state), "preset": true, "technician": m.name }),
                                format!(
                                    "Unattended mode: accepting {} with {} as set by --consent.",
                                    shown::introduce(&m.info),
                                    if state == ConsentState::Control { "control" } else { "view only" }
                                ),
                            );
                            if answer(&mut room, ask.id, state, false) {
                                release_held(&injector);
                            }
                        }
                        ConsentPolicy::Ask { timeout } => {
                            let deadline = Instant::now() + timeout;
                            person.status.send(Status::Asking {
                                peer: m.info.clone(),
                                recorded: ask.recorded,
                                verification: ask.verification.clone(),
                                joining: m.joining.clone(),
                                timeout,
                                deadline,
                            });
                            let account = m.info.account.as_ref();
                            room.report.event(
                                "consent_request",
                                json!({
                                    "peer": m.info.description, "timeout_secs": timeout.as_secs(), "recorded": ask.recorded,
                                    "technician": account.map(|a| &a.name), "tier": account.map(|a| a.tier),
                                    "organisation": account.map(|a| &a.organisation),
                                    "joining": m.joining.as_ref().map(joining_name),
                                }),
                                crate::consent::question_joining(&m.info, ask.recorded, timeout, m.joining.as_ref()),
                            );
                            question = Some(Question {
                                id: ask.id,
                                deadline: deadline.into(),
                            });
                        }
                    }
                }
                continue;
            }
        }
        let goodbye_deadline = async {
            match ending {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let question_deadline = async {
            match &question {
                Some(q) => tokio::time::sleep_until(q.deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = news.recv(), if pending.is_none() => {
                let Some((id, n)) = n else { break };
                match n {
                    FromViewer::Ask { recorded, verification } => asks.push_back(Ask { id, recorded, verification }),
                    FromViewer::Sharing { describe, width, height } => {
                        let control = room.controls(id);
                        let name = room.name(id);
                        if !sharing_reported {
                            sharing_reported = true;
                            room.report.event(
                                "sharing",
                                json!({ "source": describe, "width": width, "height": height, "control": control, "technician": name }),
                                format!(
                                    "Your screen ({describe}) is shared with {}{}.\nType v and Enter to stop control (view only), s and Enter to stop files on their way, q and Enter or Ctrl+C to end the session.",
                                    shown::name(&room.members[&id].info.description),
                                    if control { ", who may use mouse and keyboard" } else { ", view only" }
                                ),
                            );
                        } else {
                            room.report.event(
                                "sharing",
                                json!({ "source": describe, "width": width, "height": height, "control": control, "technician": name }),
                                format!("Your screen is shared with {} too.", shown::name(&name)),
                            );
                        }
                        room.sharing = true;
                        room.show();
                    }
                    FromViewer::Input(mut event) => {
                        if room.controls(id) && gate.is_open() {
                            truncated.add(cap_text(&mut event), room.report);
                            pending = injector.as_ref().and_then(|i| i.offer(event).err());
                        } else {
                            room.dropped += 1;
                            debug!(viewer = id, "input from a technician not holding control dropped");
                        }
                    }
                    FromViewer::HandOver(to) => {
                        let from = room.name(id);
                        let target = room
                            .members
                            .iter()
                            .find(|(other, m)| **other != id && m.admitted && m.name == to)
                            .map(|(other, m)| (*other, m.may_control));
                        let refusal = match target {
                            _ if room.owner != Some(id) => Some(format!("{} does not hold control", shown::name(&from))),
                            None => Some(format!("nobody called {} is in the session", shown::name(&to))),
                            Some((_, false)) => Some(format!("you did not allow {} control", shown::name(&to))),
                            Some((other, true)) => {
                                if room.set_owner(Some(other), &format!("{} handed it over", from)) {
                                    release_held(&injector);
                                }
                                None
                            }
                        };
                        if let Some(why) = refusal {
                            room.report.event("handover_refused", json!({ "technician": from, "to": to, "message": why }),
                                format!("A hand-over of control to {} was refused: {why}.", shown::name(&to)));
                        }
                        room.tell_all();
                    }
                    FromViewer::Chat(text) => {
                        let name = room.name(id);
                        room.tell_chat(Some(id), Chat { from: Some(name.clone()), text: text.clone() });
                        room.show_chat(Some(name), text);
                    }
                    FromViewer::Clipboard(data) => {
                        let allowed = clipboard.policy.check(
                            room.control_allowed && gate.is_open(),
                            room.holds_for_clipboard(Some(id)),
                        );
                        let name = room.name(id);
                        crate::clipboard::report(room.report, Direction::FromTechnician, Some(&name),
                            data.selection, &data.content, allowed.err());
                        if allowed.is_ok() {
                            clipboard.paste(data);
                        }
                    }
                    FromViewer::TakeOver => {
                        let m = &room.members[&id];
                        let may = m.admitted && m.may_control && matches!(m.joining, Some(Joining::Monitor));
                        let name = m.name.clone();
                        if may {
                            if room.set_owner(Some(id), &format!("{} took over as a lead", name)) {
                                release_held(&injector);
                            }
                        } else {
                            room.report.event("takeover_refused", json!({ "technician": name }),
                                format!("{} asked to take control, but only a lead you allowed control may take it over.", shown::name(&name)));
                        }
                        room.tell_all();
                    }
                    FromViewer::Invite { ticket, joining } => {
                        if ending.is_some() {
                            continue;
                        }
                        if room.members.len() + attaching.len() >= MAX_VIEWERS {
                            room.report.event("invite_refused", json!({ "limit": MAX_VIEWERS }),
                                format!("Another technician wanted to join, but {MAX_VIEWERS} are in the session already."));
                            continue;
                        }
                        let redial = redial.clone();
                        attaching.spawn(async move {
                            let mut conn = redial.connect(Role::Agent).await?;
                            let peer = conn.attach(ticket).await?;
                            Ok((conn, peer, joining))
                        });
                    }
                    FromViewer::Files(news) => {
                        crate::files::tell(room.report, &person.status, id, &room.name(id), &news);
                    }
                    FromViewer::FileQuestion(offer) => {
                        let who = room.name(id);
                        if questions.ask(crate::files::Question { viewer: id, who, offer }) {
                            crate::files::put(room.report, &person.status, questions.open(), questions.default_dir());
                        }
                    }
                    FromViewer::PeerQuiet(q) | FromViewer::RelayQuiet(q) => {
                        if let Some(m) = room.members.get_mut(&id) {
                            match n {
                                FromViewer::PeerQuiet(_) => m.quiet = q,
                                _ => m.relay_quiet = q,
                            }
                        }
                        // Whatever the one in control held down must not stay pressed while
                        // nothing is heard of them.
                        if q && room.owner == Some(id) {
                            release_held(&injector);
                        }
                        let admitted = || room.members.values().filter(|m| m.admitted);
                        let heard = if admitted().any(|m| m.relay_quiet) {
                            Heard::Reconnecting
                        } else if admitted().any(|m| m.quiet) {
                            Heard::TechnicianQuiet
                        } else {
                            Heard::Fine
                        };
                        person.status.send(Status::Heard(heard));
                    }
                    FromViewer::Ended(result) => {
                        let Some(m) = room.members.remove(&id) else { continue };
                        asks.retain(|a| a.id != id);
                        if questions.viewer_left(id) {
                            crate::files::put(room.report, &person.status, questions.open(), questions.default_dir());
                        }
                        person.status.send(Status::Files(crate::files::FileStatus::Gone { viewer: id }));
                        if question.as_ref().is_some_and(|q| q.id == id) {
                            question = None;
                        }
                        let result = match result {
                            Ok(Ended::Reason(EndReason::ConsentDenied)) if m.unanswered => Ok(Ended::Unanswered),
                            other => other,
                        };
                        if !room.members.is_empty() && ending.is_none() {
                            let words = match &result {
                                Ok(e) => ended_words(e).1,
                                Err(e) => e.to_string(),
                            };
                            room.report.event("technician_left", json!({ "technician": m.name, "message": words }),
                                format!("{} left the session: {}.", shown::name(&m.name), words));
                            if room.owner == Some(id) {
                                room.owner = None;
                                room.pass_on_control(&m.name);
                                release_held(&injector);
                            }
                            room.tell_all();
                        }
                        last = Some(result);
                    }
                }
            }
            _ = room_for_input(&injector), if pending.is_some() => {
                if let Some(event) = pending.take() {
                    if gate.is_open() {
                        pending = injector.as_ref().and_then(|i| i.offer(event).err());
                    }
                }
            }
            e = input_failure(&mut inject_failure) => {
                end_all(&mut room, EndReason::Error(e.to_string()), &mut ending);
            }
            copied = clipboard.next() => match copied {
                selection::Copied::Content { selection, content } => {
                    let holder = room.owner;
                    let allowed = clipboard.policy.check(
                        room.control_allowed && gate.is_open(),
                        room.holds_for_clipboard(holder),
                    );
                    // What the person copies while nothing is shared is nobody's business: said
                    // only when a technician holds control and could have had it.
                    let name = holder.map(|h| room.name(h));
                    if allowed.is_ok() || (holder.is_some() && room.control_allowed) {
                        crate::clipboard::report(room.report, Direction::ToTechnician, name.as_deref(),
                            selection, &content, allowed.err());
                    }
                    if let (Ok(()), Some(h)) = (allowed, holder) {
                        room.members[&h].tell(ToViewer::Clipboard(ClipboardData { selection, content }));
                    }
                }
                selection::Copied::TooLarge { selection, kind, bytes } => {
                    if room.owner.is_some() && room.control_allowed && clipboard.policy.switched_on {
                        crate::clipboard::report_too_large(room.report, selection, kind, bytes);
                    }
                }
            },
            said = person.input.next() => {
                let Some(said) = said else { continue };
                let asked = question.as_ref().map(|q| q.id);
                let said = match said {
                    FromUser::Line(l) => match (crate::chat::parse_line(&l), crate::clipboard::parse_switch(&l)) {
                        (Some(text), _) => FromUser::Chat(text),
                        (None, Some(on)) => FromUser::Clipboard(on),
                        (None, None) => FromUser::Line(l),
                    },
                    other => other,
                };
                // An answer about files: from the window, or a line while only files are asked.
                let about_files = match &said {
                    FromUser::Files(a) => questions.answer(a.viewer, a.offer, a.save_in.clone()),
                    FromUser::Line(l) if asked.is_none() => questions.line(l),
                    _ => None,
                };
                if let Some((viewer, command)) = about_files {
                    if let Some(m) = room.members.get(&viewer) {
                        m.tell(ToViewer::Files(command));
                    }
                    crate::files::put(room.report, &person.status, questions.open(), questions.default_dir());
                    continue;
                }
                if let FromUser::Line(l) = &said {
                    if asked.is_none() && crate::files::parse_stop(l) {
                        for m in room.members.values() {
                            m.tell(ToViewer::Files(link::files::Command::CancelMoving {
                                reason: "the user stopped them".into(),
                            }));
                        }
                        room.report.event("files_stop", json!({}), "Stopping the files on their way.");
                        continue;
                    }
                }
                let (answer_given, command) = match said {
                    FromUser::Chat(text) => {
                        if let Some(text) = protocol::chat::outgoing(&text) {
                            room.tell_chat(None, Chat { from: None, text: text.clone() });
                            room.show_chat(None, text);
                        }
                        (None, None)
                    }
                    FromUser::Clipboard(on) => {
                        clipboard.policy.switched_on = on;
                        room.clipboard = clipboard.is_shared() && on;
                        room.tell_all();
                        room.report.event("clipboard_switch", json!({ "on": on }), if on {
                            "The clipboard is shared with the technician in control again."
                        } else {
                            "The clipboard is no longer shared."
                        });
                        (None, None)
                    }
                    FromUser::Answer(a) => (Some(a), None),
                    FromUser::Command(c) => (None, Some(c)),
                    FromUser::Files(_) => (None, None),
                    FromUser::Browse(on) => {
                        opts.files.browse.store(on, std::sync::atomic::Ordering::Relaxed);
                        person.status.send(Status::BrowseAllowed(on));
                        room.report.event("browse_switch", json!({ "on": on }), if on {
                            "The technician in control may look through your folders and fetch files from them."
                        } else {
                            "Technicians can no longer look through your folders."
                        });
                        (None, None)
                    }
                    FromUser::CancelFiles { viewer, offer } => {
                        if let Some(m) = room.members.get(&viewer) {
                            m.tell(ToViewer::Files(link::files::Command::Cancel {
                                offer,
                                reason: "the user stopped them".into(),
                            }));
                        }
                        (None, None)
                    }
                    FromUser::Line(l) => match (asked, parse_answer(&l), parse_command(&l)) {
                        (Some(_), Some(a), _) => (Some(a), None),
                        (_, _, Some(c)) => (None, Some(c)),
                        (Some(_), None, None) => {
                            room.report.event("consent_unknown_answer", json!({ "answer": l }),
                                "Please type c (control), v (view only) or d (deny), then Enter.");
                            (None, None)
                        }
                        _ => (None, None),
                    },
                };
                match (asked, answer_given, command) {
                    (Some(id), Some(a), _) => {
                        question = None;
                        if answer(&mut room, id, a, false) {
                            release_held(&injector);
                        }
                    }
                    (_, _, Some(UserCommand::End)) => end_all(&mut room, EndReason::UserEnded, &mut ending),
                    (_, _, Some(UserCommand::StopControl)) if room.control_allowed => {
                        room.control_allowed = false;
                        // Already closed by the side the person spoke through; the worker
                        // releases what is held as soon as it sees it.
                        gate.close();
                        pending = None;
                        person.status.send(Status::ControlStopped);
                        room.report.event("consent", json!({ "state": "view_only" }),
                            "Control stopped: the technicians can only see the screen now.");
                        room.tell_all();
                    }
                    _ => {}
                }
            }
            _ = question_deadline => {
                if let Some(q) = question.take() {
                    if answer(&mut room, q.id, ConsentState::Denied, true) {
                        release_held(&injector);
                    }
                }
            }
            Some(attached) = attaching.join_next(), if !attaching.is_empty() => match attached {
                Ok(Ok((conn, peer, joining))) if ending.is_none() => {
                    let account = peer.account.as_ref();
                    room.report.event(
                        "joining",
                        json!({
                            "peer": peer.description, "technician": account.map(|a| &a.name),
                            "tier": account.map(|a| a.tier), "joining": joining_name(&joining),
                        }),
                        format!("Another technician connected: {}.", shown::introduce(&peer)),
                    );
                    let meeting = Meeting::Queue(conn.session.clone().unwrap_or_default());
                    join(&mut room, &mut viewers, conn, meeting, peer, Some(joining));
                }
                Ok(Ok((conn, _, _))) => conn.close("the session is ending"),
                Ok(Err(e)) => room.report.event("joining_failed", json!({ "message": e.to_string() }),
                    format!("Another technician could not join: {e}.")),
                Err(e) => info!(error = %e, "attaching a viewer stopped"),
            },
            // Not polled again once it has fired.
            _ = &mut user_end, if !user_ended => {
                user_ended = true;
                end_all(&mut room, EndReason::UserEnded, &mut ending);
            }
            _ = goodbye_deadline => {
                info!(left = room.members.len(), "viewers did not say goodbye in time");
                viewers.abort_all();
                break;
            }
        }
    }
    // Viewers still ending do not wait for the session to read their news.
    news.close();
    if let Some(injector) = injector {
        let injected = injector.finish(RELEASE_WAIT).await;
        debug!(
            injected = injected.injected,
            discarded = injected.discarded,
            "input worker done"
        );
    }
    truncated.report_final(room.report);
    if room.dropped > 0 {
        room.report.event(
            "input_dropped",
            json!({ "count": room.dropped, "final": true, "late": true }),
            format!(
                "{} input events arrived as control changed and were dropped.",
                room.dropped
            ),
        );
    }
    last.unwrap_or(Ok(Ended::Reason(EndReason::UserEnded)))
}

/// Releases every key and button the input worker holds, if it runs.
fn release_held(injector: &Option<Injector>) {
    if let Some(i) = injector {
        i.release_held();
    }
}

/// Resolves when the input worker has room for another event.
async fn room_for_input(injector: &Option<Injector>) {
    match injector {
        Some(i) => i.room().await,
        None => std::future::pending().await,
    }
}

/// Resolves if the input worker's sink failed.
async fn input_failure(
    failure: &mut Option<crate::injector::InjectFailure>,
) -> crate::sink::SinkError {
    match failure {
        Some(f) => f.wait().await,
        None => std::future::pending().await,
    }
}

/// The person's answer about viewer `id` (`timed_out`: no answer in time, a deny): tells it,
/// lets it in or sends it away, and decides who holds control. Returns whether control moved
/// (what was held must be released).
fn answer(room: &mut Room, id: ViewerId, state: ConsentState, timed_out: bool) -> bool {
    let Some(m) = room.members.get_mut(&id) else {
        return false;
    };
    let name = m.name.clone();
    room.report.event(
        "consent",
        json!({ "state": consent_name(state), "timed_out": timed_out, "technician": name }),
        match (state, timed_out) {
            (_, true) => "No answer in time: the session is denied.".to_string(),
            (ConsentState::Control, _) => format!(
                "Allowed: {} may see the screen and use mouse and keyboard.",
                shown::name(&name)
            ),
            (ConsentState::ViewOnly, _) => format!(
                "Allowed: {} may see the screen, not control it.",
                shown::name(&name)
            ),
            _ => format!("Denied: nothing is shared with {}.", shown::name(&name)),
        },
    );
    if state == ConsentState::Denied {
        m.unanswered = timed_out;
        m.tell(ToViewer::Consent(ConsentState::Denied));
        room.show();
        return false;
    }
    m.admitted = true;
    m.may_control = state == ConsentState::Control;
    let escalation = matches!(m.joining, Some(Joining::Escalation { .. }));
    let first = room.members.values().filter(|m| m.admitted).count() == 1;
    if first {
        room.status.send(Status::Answered);
    }
    let mut moved = false;
    if state == ConsentState::Control {
        // The person's latest answer allows control again, if they had stopped it.
        if !room.control_allowed || !room.gate.is_open() {
            room.control_allowed = true;
        }
        room.gate.open();
        if room.owner.is_none() || escalation {
            let why = if escalation {
                "the request was escalated to them and you allowed it"
            } else {
                "you allowed it"
            };
            moved = room.set_owner(Some(id), why);
        }
    }
    room.tell_all();
    moved
}

fn consent_name(state: ConsentState) -> &'static str {
    match state {
        ConsentState::Asking => "asking",
        ConsentState::ViewOnly => "view_only",
        ConsentState::Control => "control",
        ConsentState::Denied => "denied",
    }
}

/// Why a technician joins, as JSON events name it.
fn joining_name(joining: &Joining) -> &'static str {
    match joining {
        Joining::Escalation { .. } => "escalation",
        Joining::Monitor => "monitor",
    }
}

/// Text cut from key events that carried more than [`MAX_TEXT_CHARS`] characters: counted, and
/// reported at most twice a second.
#[derive(Default)]
struct Truncated {
    events: u64,
    chars: u64,
    reported: Option<Instant>,
}

impl Truncated {
    fn add(&mut self, dropped_chars: usize, report: Reporter) {
        if dropped_chars == 0 {
            return;
        }
        self.events += 1;
        self.chars += dropped_chars as u64;
        warn!(
            dropped_chars,
            limit = MAX_TEXT_CHARS,
            "text of an input event cut short"
        );
        if self
            .reported
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            self.reported = Some(Instant::now());
            self.report(report, false);
        }
    }

    fn report(&self, report: Reporter, last: bool) {
        report.event(
            "input_truncated",
            json!({ "events": self.events, "chars": self.chars, "limit": MAX_TEXT_CHARS, "final": last }),
            format!(
                "{} characters of text from the technician were dropped: a key event carries at most {MAX_TEXT_CHARS}.",
                self.chars
            ),
        );
    }

    fn report_final(&self, report: Reporter) {
        if self.events > 0 {
            self.report(report, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::TechnicianAccount;

    fn room() -> Room {
        Room {
            members: BTreeMap::new(),
            owner: None,
            control_allowed: true,
            report: Reporter::new(true),
            status: StatusTx::none(),
            gate: InputGate::new(),
            dropped: 0,
            sharing: true,
            clipboard: true,
        }
    }

    /// Adds technician `name` (joined as `joining`); returns its orders.
    fn arrive(
        room: &mut Room,
        id: ViewerId,
        name: &str,
        joining: Option<Joining>,
    ) -> tmpsc::UnboundedReceiver<ToViewer> {
        let (orders, rx) = tmpsc::unbounded_channel();
        let info = PeerInfo {
            role: Role::Technician,
            description: format!("technician {name}"),
            software: "technician".into(),
            account: Some(TechnicianAccount {
                name: name.into(),
                tier: 1,
                organisation: "Example Support".into(),
            }),
        };
        room.members.insert(id, Member::new(info, joining, orders));
        rx
    }

    /// The consents a viewer was told, in order (lists passed over).
    fn consents(rx: &mut tmpsc::UnboundedReceiver<ToViewer>) -> Vec<ConsentState> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            if let ToViewer::Consent(c) = o {
                out.push(c);
            }
        }
        out
    }

    fn holder(room: &Room) -> Option<String> {
        room.owner.map(|id| room.name(id))
    }

    #[test]
    fn the_first_allowed_control_holds_it_and_an_escalation_takes_it_once_allowed() {
        let mut room = room();
        let mut tom = arrive(&mut room, 0, "tom", None);
        assert!(answer(&mut room, 0, ConsentState::Control, false));
        assert_eq!(holder(&room), Some("tom".into()));
        assert_eq!(consents(&mut tom), [ConsentState::Control]);
        let escalation = Joining::Escalation {
            by: "tom".into(),
            note: "needs an administrator".into(),
        };
        let mut ana = arrive(&mut room, 1, "ana", Some(escalation));
        // Let in to watch only: Tom keeps control.
        assert!(!answer(&mut room, 1, ConsentState::ViewOnly, false));
        assert_eq!(holder(&room), Some("tom".into()));
        assert_eq!(consents(&mut ana), [ConsentState::ViewOnly]);
        assert!(consents(&mut tom).is_empty());
        // The same with control: it passes to Ana, and Tom is told he only views.
        room.members.get_mut(&1).unwrap().admitted = false;
        assert!(answer(&mut room, 1, ConsentState::Control, false));
        assert_eq!(holder(&room), Some("ana".into()));
        assert_eq!(consents(&mut tom), [ConsentState::ViewOnly]);
        assert_eq!(consents(&mut ana), [ConsentState::Control]);
    }

    #[test]
    fn a_lead_monitoring_observes_until_it_takes_over_and_control_passes_on_departure() {
        let mut room = room();
        let _tom = arrive(&mut room, 0, "tom", None);
        answer(&mut room, 0, ConsentState::Control, false);
        let mut lena = arrive(&mut room, 1, "lena", Some(Joining::Monitor));
        assert!(!answer(&mut room, 1, ConsentState::Control, false));
        assert_eq!(holder(&room), Some("tom".into()));
        assert_eq!(consents(&mut lena), [ConsentState::ViewOnly]);
        let view = arrive(&mut room, 2, "vic", Some(Joining::Monitor));
        drop(view);
        answer(&mut room, 2, ConsentState::ViewOnly, false);
        // Tom leaves: the one there longest among those allowed control takes it (Lena, not
        // Vic, who may only watch).
        room.members.remove(&0);
        room.owner = None;
        assert!(room.pass_on_control("tom"));
        assert_eq!(holder(&room), Some("lena".into()));
        room.tell_all();
        assert_eq!(consents(&mut lena), [ConsentState::Control]);
        // Lena leaves too: nobody Vic could be given control to.
        room.members.remove(&1);
        room.owner = None;
        room.pass_on_control("lena");
        assert_eq!(holder(&room), None);
    }

    #[test]
    fn a_denied_technician_is_sent_away_and_a_timed_out_one_counts_as_unanswered() {
        let mut room = room();
        let mut tom = arrive(&mut room, 0, "tom", None);
        assert!(!answer(&mut room, 0, ConsentState::Denied, true));
        assert_eq!(consents(&mut tom), [ConsentState::Denied]);
        assert!(room.members[&0].unanswered);
        assert!(!room.members[&0].admitted);
        assert_eq!(holder(&room), None);
    }

    /// Everything a viewer was told of chat and of the shared clipboard, in order.
    fn tools(rx: &mut tmpsc::UnboundedReceiver<ToViewer>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            match o {
                ToViewer::Chat(c) => out.push(format!("chat {:?}: {}", c.from, c.text)),
                ToViewer::ClipboardShared(s) => out.push(format!("clipboard {s}")),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn chat_reaches_every_other_technician_and_the_clipboard_only_the_holder() {
        let mut room = room();
        let mut tom = arrive(&mut room, 0, "tom", None);
        answer(&mut room, 0, ConsentState::Control, false);
        let mut ana = arrive(&mut room, 1, "ana", Some(Joining::Monitor));
        answer(&mut room, 1, ConsentState::Control, false);
        assert_eq!(tools(&mut tom), ["clipboard true"]);
        assert_eq!(tools(&mut ana), ["clipboard false"]);
        // Tom writes: Ana reads it, named as the relay vouched; Tom is not sent his own.
        room.tell_chat(
            Some(0),
            Chat {
                from: Some("tom".into()),
                text: "rebooting now".into(),
            },
        );
        assert!(tools(&mut tom).is_empty());
        assert_eq!(tools(&mut ana), ["chat Some(\"tom\"): rebooting now"]);
        // The person writes: both read it.
        room.tell_chat(
            None,
            Chat {
                from: None,
                text: "ok".into(),
            },
        );
        assert_eq!(tools(&mut tom), ["chat None: ok"]);
        assert_eq!(tools(&mut ana), ["chat None: ok"]);
        // The person stops control: the clipboard is no longer shared with Tom.
        room.control_allowed = false;
        room.tell_all();
        assert_eq!(tools(&mut tom), ["clipboard false"]);
        // Ana takes over once control is allowed again: it follows her.
        room.control_allowed = true;
        room.set_owner(Some(1), "took over");
        room.tell_all();
        assert!(tools(&mut tom).is_empty());
        assert_eq!(tools(&mut ana), ["clipboard true"]);
        // The switch off: nobody.
        room.clipboard = false;
        room.tell_all();
        assert_eq!(tools(&mut ana), ["clipboard false"]);
    }

    #[test]
    fn lists_go_out_once_there_are_two_and_say_who_controls() {
        let mut room = room();
        let mut tom = arrive(&mut room, 0, "tom", None);
        answer(&mut room, 0, ConsentState::Control, false);
        let listed = |rx: &mut tmpsc::UnboundedReceiver<ToViewer>| {
            let mut last = None;
            while let Ok(o) = rx.try_recv() {
                if let ToViewer::Participants(l) = o {
                    last = Some(l);
                }
            }
            last
        };
        assert_eq!(listed(&mut tom), None, "one technician needs no list");
        let _ana = arrive(&mut room, 1, "ana", None);
        answer(&mut room, 1, ConsentState::ViewOnly, false);
        let list = listed(&mut tom).expect("a list once there are two");
        assert_eq!(list.len(), 2);
        assert!(list[0].you && list[0].controls && list[0].may_control);
        assert!(!list[1].you && !list[1].controls && !list[1].may_control);
    }
}
