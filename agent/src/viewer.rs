//! One technician's side of a session, as the agent runs it: its own relay connection, its own
//! end-to-end session, and its own capture thread, screen encoder and credit.
//!
//! A session may have several technicians (an escalation's next technician, a lead
//! monitoring); each is a viewer task of this module, and the session
//! ([`crate::session`]) coordinates them: it asks the person about each, decides who holds
//! control, and injects only that one's input. A viewer task tells the session what happens
//! ([`FromViewer`]) and takes its orders ([`ToViewer`]); everything else (screen updates,
//! acknowledgements, the link's silences) stays inside the task, so a slow viewer slows only
//! itself.
//!
//! The steps of a viewer:
//! 1. The end-to-end key exchange on the session stream it opens, keyed by the code's secret
//!    part or, without a code, the queue kind with six digits to compare (`link::sealed`).
//! 2. It tells the technician the person is being asked, waits (briefly) for word that the
//!    session is recorded, then asks the session to ask the person ([`FromViewer::Ask`]).
//!    Anything else the technician sends meanwhile ends this viewer: input typed during the
//!    question must never reach the screen once control is allowed.
//! 3. Once the person allowed it, a capture thread makes the screen source and owns it and the
//!    encoder (`protocol::codec`): it waits for a credit, captures, and encodes the difference
//!    between what this viewer holds and the new frame. Each update goes out on its own
//!    unidirectional stream; at most `max_in_flight` are unacknowledged ([`crate::flow`]), and
//!    changes in between merge into the next update. A link that dies mid-session is resumed
//!    (`link::resume`); the capture thread and encoder go on across it ([`Screen`]) and send the
//!    whole screen once the link is back.
//! 4. Input is passed to the session only while this viewer holds control; otherwise it is
//!    dropped here, counted and reported (the session checks again before injecting). Pointer
//!    positions are mapped to the desktop from the monitor this viewer sees.
//! 5. Files run beside the screen (`link::files`): the technician's offers and fetches are
//!    answered here where no person need be asked ([`crate::files::decide`]: only while this
//!    viewer holds control), else put to the session, which asks the person.
//!
//! Chat passes both ways from the key exchange on, before the person answers too (they may ask
//! who is calling); the session relays it between the person and every technician
//! ([`crate::chat`]). Clipboards go to the session, which decides ([`crate::clipboard`]). A
//! technician may switch what it sees to another monitor, or all of them: the capture thread
//! switches its source and says so ([`PeerMessage::Monitors`]). Beside the capture thread, a
//! pointer thread follows the user's own pointer ([`crate::cursor`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use link::report::Reporter;
use link::sealed::{self, last_word, Meeting, PeerPlaneError, SealedRecv, SealedSend};
use link::silence::{Change, Silence};
use link::{LinkError, RelayConnection};
use protocol::chat::{Chat, ChatMeter};
use protocol::clipboard::ClipboardData;
use protocol::codec::encoder::REFINE_AFTER_MS;
use protocol::codec::Encoder;
use protocol::control::{FromRelay, Joining, PeerLeftReason};
use protocol::cursor::CursorShape;
use protocol::input::InputEvent;
use protocol::monitor::{MonitorChoice, Monitors};
use protocol::peer::{CodecOp, ConsentState, EndReason, Participant, PeerMessage, ScreenUpdate};
use serde_json::json;
use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::flow::{Ack, Window};
use crate::session::{Ended, SessionOptions};
use crate::shown;
use crate::source::{Area, Capture, SourceFactory};

/// Why a monitor switch is refused to a technician not holding control: what the others see
/// stays what the one working on the machine chose.
pub const MONITOR_NOT_IN_CONTROL: &str =
    "only the technician who holds control may switch monitors";

/// Which viewer of a session: numbered in the order they joined.
pub type ViewerId = u32;

/// What a viewer tells the session.
#[derive(Debug)]
pub enum FromViewer {
    /// The keys are agreed and the technician said whether it records: the person is to be
    /// asked. `verification`: the six digits to compare, for a session without a code.
    Ask {
        recorded: bool,
        verification: Option<String>,
    },
    /// The screen is being shared with it: the source, and its size.
    Sharing {
        describe: String,
        width: u32,
        height: u32,
    },
    /// An input event from the technician, sent while it was told it holds control.
    Input(InputEvent),
    /// The technician holding control hands it to the participant of this account name.
    HandOver(String),
    /// A lead monitoring the session takes control.
    TakeOver,
    /// A chat message from the technician (checked against the limits).
    Chat(String),
    /// The technician's clipboard changed (checked against the limits); for the session to
    /// pass on or drop.
    Clipboard(ClipboardData),
    /// The relay invites another technician into the session: attach a connection with
    /// `ticket`.
    Invite { ticket: String, joining: Joining },
    /// The relay hears nothing of this technician for now (`true`), or hears it again.
    PeerQuiet(bool),
    /// Nothing is heard from the relay on this viewer's connection (`true`), or it is again.
    RelayQuiet(bool),
    /// What happened to files with this technician.
    Files(link::files::FileNews),
    /// The technician offers files: ask the person.
    FileQuestion(protocol::transfer::IncomingOffer),
    /// The viewer is over (its connection closed with words that say why).
    Ended(Result<Ended, LinkError>),
}

/// What the session tells a viewer.
#[derive(Debug, Clone)]
pub enum ToViewer {
    /// The person's answer, first, and every change after it: [`ConsentState::Control`] only
    /// while this viewer holds control. [`ConsentState::Denied`] ends the viewer.
    Consent(ConsentState),
    /// Who is in the session and who holds control.
    Participants(Vec<Participant>),
    /// A chat message for the technician, from the person or another technician.
    Chat(Chat),
    /// The person's clipboard, for the technician holding control.
    Clipboard(ClipboardData),
    /// Whether the clipboard is shared with this technician now.
    ClipboardShared(bool),
    /// Whether this technician may switch monitors now: it holds control, or nobody does (a
    /// view-only session).
    Leads(bool),
    /// End this viewer's session for this reason.
    End(EndReason),
    /// The person's answer about files, or anything else asked of this viewer's files.
    Files(link::files::Command),
}

/// What a viewer task needs.
pub struct ViewerSetup {
    pub id: ViewerId,
    pub conn: RelayConnection,
    pub meeting: Meeting,
    /// Makes this viewer's screen source on its capture thread.
    pub factory: SourceFactory,
    pub opts: SessionOptions,
    pub report: Reporter,
    /// Who it is, for what is reported (the account name).
    pub name: String,
}

/// What the capture thread hands the viewer.
enum Produced {
    Ready {
        width: u32,
        height: u32,
        describe: String,
        monitors: Option<Monitors>,
    },
    /// The technician's view switched to another monitor (or all), or could not.
    Switched(Result<(Monitors, String), String>),
    Update {
        update: ScreenUpdate,
        frame_id: u64,
        /// The leg of the link it was made for (see [`Screen`]).
        leg: u64,
    },
    Finished,
    Failed(String),
}

/// What the capture thread is given besides its source.
struct CaptureSetup {
    /// Credits, each for one update on the leg of the link it names.
    credits: mpsc::Receiver<u64>,
    /// The leg of the link now.
    leg: Arc<AtomicU64>,
    out: tmpsc::Sender<Produced>,
    stop: Arc<AtomicBool>,
    lossless: bool,
    /// The technician's monitor switches.
    switches: mpsc::Receiver<MonitorChoice>,
    /// What this viewer sees on the desktop, kept up to date for the input and the pointer.
    area: Arc<Mutex<Area>>,
    /// Where the user's pointer goes: datagrams, and shapes for the session stream.
    pointer: Option<(Datagrams, tmpsc::Sender<CursorShape>)>,
}

/// Where the pointer's datagrams go: the connection of the link's current leg.
type Datagrams = Arc<Mutex<link::sealed::DatagramSender>>;

fn capture_thread(factory: SourceFactory, setup: CaptureSetup) {
    let CaptureSetup {
        credits,
        leg: current_leg,
        out,
        stop,
        lossless,
        switches,
        area,
        pointer,
    } = setup;
    let mut source = match factory() {
        Ok(s) => s,
        Err(e) => {
            let _ = out.blocking_send(Produced::Failed(e.to_string()));
            return;
        }
    };
    let (w, h) = source.size();
    *area.lock().expect("area lock") = source.area();
    if let (Some((datagrams, shapes)), Some(watch)) = (pointer, source.pointer()) {
        let (area, stop) = (area.clone(), stop.clone());
        let started = std::thread::Builder::new()
            .name("pointer".into())
            .spawn(move || crate::cursor::follow(watch, area, datagrams, shapes, stop));
        if let Err(e) = started {
            warn!(error = %e, "cannot start the pointer thread");
        }
    }
    let ready = Produced::Ready {
        width: w,
        height: h,
        describe: source.describe(),
        monitors: source.monitors(),
    };
    if out.blocking_send(ready).is_err() {
        return;
    }
    let mut encoder = if lossless {
        Encoder::lossless(w, h)
    } else {
        Encoder::new(w, h)
    };
    let started = Instant::now();
    let mut seq = 0u64;
    let mut failures = 0u32;
    // The frame the last update showed (a refinement shows it again, exactly).
    let mut last_frame = 0u64;
    let mut encoded_any = false;
    // The leg of the link the updates are numbered for.
    let mut leg = current_leg.load(Ordering::Relaxed);
    while let Ok(credit) = credits.recv() {
        if credit != current_leg.load(Ordering::Relaxed) {
            // A credit of a leg that is over.
            continue;
        }
        if credit != leg {
            // The link was resumed: the technician numbers updates from 1 again and may have
            // lost some of the last leg's, so it is sent the whole screen at once, without
            // waiting for the screen to change.
            leg = credit;
            seq = 0;
            encoder.request_full();
            let now_ms = started.elapsed().as_millis() as u64;
            if let Some(update) = encoded_any.then(|| encoder.resend(now_ms, 1)).flatten() {
                seq = 1;
                let produced = Produced::Update {
                    update,
                    frame_id: last_frame,
                    leg,
                };
                if out.blocking_send(produced).is_err() {
                    return;
                }
                continue;
            }
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if current_leg.load(Ordering::Relaxed) != leg {
                // The leg this credit was for is over: the next credit starts the new one.
                break;
            }
            if let Ok(choice) = switches.try_recv() {
                let switched = source
                    .show(choice)
                    .map(|()| {
                        *area.lock().expect("area lock") = source.area();
                        (
                            source.monitors().unwrap_or_else(|| Monitors {
                                list: Vec::new(),
                                shown: choice,
                            }),
                            source.describe(),
                        )
                    })
                    .map_err(|e| e.to_string());
                if out.blocking_send(Produced::Switched(switched)).is_err() {
                    return;
                }
            }
            let captured = source.capture();
            let now_ms = started.elapsed().as_millis() as u64;
            // An update from the encoder takes the next number.
            let next = seq + 1;
            let mut numbered = |update: Option<ScreenUpdate>, frame_id: u64| {
                update.map(|update| {
                    seq = next;
                    Produced::Update {
                        update,
                        frame_id,
                        leg,
                    }
                })
            };
            let produced = match captured {
                // The end of a recording: what was sent lossy is refined first, so the viewer
                // is left with the exact last frame.
                Ok(Capture::Finished) => {
                    let update = encoder.refine(now_ms + REFINE_AFTER_MS + 1, next);
                    numbered(update, last_frame).unwrap_or(Produced::Finished)
                }
                // A still screen: what was sent lossy is refined once it has been still long
                // enough (the source wakes up at least every 250 ms).
                Ok(Capture::Unchanged) => {
                    let update = encoder.refine(now_ms, next);
                    match numbered(update, last_frame) {
                        Some(p) => p,
                        None => continue,
                    }
                }
                Ok(Capture::Frame(f)) => {
                    failures = 0;
                    last_frame = f.id;
                    encoded_any = true;
                    let update = encoder
                        .encode_changed(f.pixels, f.width, f.height, f.changed, now_ms, next);
                    match numbered(update, f.id) {
                        Some(p) => p,
                        None => continue,
                    }
                }
                // A transient failure (the screen is being reconfigured) is retried; a lasting
                // one ends the session with its words.
                Err(e) if failures < 10 => {
                    failures += 1;
                    warn!(error = %e, attempt = failures, "capture failed; retrying");
                    std::thread::sleep(Duration::from_millis(100 * u64::from(failures)));
                    continue;
                }
                Err(e) => Produced::Failed(e.to_string()),
            };
            let last = !matches!(produced, Produced::Update { .. });
            if out.blocking_send(produced).is_err() || last {
                return;
            }
            break;
        }
    }
}

/// A viewer's capture thread and what drives it, kept across the legs of its link: a resumed
/// link goes on with the same screen source and encoder, which sends the whole screen at once
/// (the technician may have lost the last leg's updates), rather than starting them again.
///
/// Legs are numbered from 1. Each credit names its leg, and each update the leg it was made
/// for: the credits and updates of a leg that is over are dropped, so a new leg starts with all
/// its credits, and its updates numbered from 1, as the technician expects.
struct Screen {
    credits: mpsc::Sender<u64>,
    leg: Arc<AtomicU64>,
    produced: tmpsc::Receiver<Produced>,
    stop: Arc<AtomicBool>,
    /// One switch waits at most; a technician clicking faster has the later ones dropped.
    switches: mpsc::SyncSender<MonitorChoice>,
    area: Arc<Mutex<Area>>,
    shapes: tmpsc::Receiver<CursorShape>,
    datagrams: Datagrams,
    /// What the technician is told a leg's screen starts with, once the source is ready.
    shown: Option<Shown>,
}

/// What a screen shows, told again to a resumed technician.
struct Shown {
    width: u32,
    height: u32,
    monitors: Option<Monitors>,
}

impl Screen {
    /// Starts the capture thread, on the first leg, with its credits.
    fn start(
        factory: SourceFactory,
        opts: &SessionOptions,
        connection: &quinn::Connection,
        keys: &protocol::e2e::SessionKeys,
    ) -> Result<Self, LinkError> {
        let (credits, credit_rx) = mpsc::channel();
        let leg = Arc::new(AtomicU64::new(1));
        let (prod_tx, produced) = tmpsc::channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let (switches, switch_rx) = mpsc::sync_channel::<MonitorChoice>(1);
        let area = Arc::new(Mutex::new(Area::default()));
        let (shape_tx, shapes) = tmpsc::channel::<CursorShape>(4);
        let datagrams = Arc::new(Mutex::new(link::sealed::DatagramSender::new(
            connection.clone(),
            keys,
        )));
        let setup = CaptureSetup {
            credits: credit_rx,
            leg: leg.clone(),
            out: prod_tx,
            stop: stop.clone(),
            lossless: opts.lossless,
            switches: switch_rx,
            area: area.clone(),
            pointer: Some((datagrams.clone(), shape_tx)),
        };
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || capture_thread(factory, setup))
            .map_err(|e| LinkError::Protocol(format!("cannot start the capture thread: {e}")))?;
        let screen = Self {
            credits,
            leg,
            produced,
            stop,
            switches,
            area,
            shapes,
            datagrams,
            shown: None,
        };
        screen.fill(opts.max_in_flight);
        Ok(screen)
    }

    /// The link was resumed: the next leg starts on `connection`, with all its credits.
    fn next_leg(
        &mut self,
        connection: &quinn::Connection,
        keys: &protocol::e2e::SessionKeys,
        credits: usize,
    ) {
        *self.datagrams.lock().expect("datagrams lock") =
            link::sealed::DatagramSender::new(connection.clone(), keys);
        self.leg.fetch_add(1, Ordering::Relaxed);
        self.fill(credits);
    }

    fn fill(&self, credits: usize) {
        for _ in 0..credits {
            self.credit();
        }
    }

    /// One more update may be made on this leg.
    fn credit(&self) {
        // Only a capture thread that is over has stopped taking them.
        let _ = self.credits.send(self.leg.load(Ordering::Relaxed));
    }

    /// Whether an update was made for this leg (not one that is over).
    fn current(&self, leg: u64) -> bool {
        leg == self.leg.load(Ordering::Relaxed)
    }
}

impl Drop for Screen {
    /// The capture thread stops when the viewer is over, however it ends; it notices within one
    /// capture and is not joined, so a capture blocked on a slow screen cannot hold up the end
    /// of the session.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The end of a viewer for what the technician sent before the person answered (anything but
/// word that it records, first). Input there ends it: nothing the technician typed or clicked
/// while the person read the question may reach the screen once they allow control, and a
/// technician's program sends none before it is allowed.
async fn before_consent(
    msg: Result<Option<PeerMessage>, PeerPlaneError>,
    tx: &mut SealedSend,
    conn: &mut RelayConnection,
) -> Result<Ended, LinkError> {
    let reason = match msg {
        Ok(Some(PeerMessage::EndSession { reason })) => {
            if !matches!(reason, EndReason::TechnicianEnded) {
                goodbye(tx, conn, &reason).await;
            }
            return Ok(Ended::Reason(reason));
        }
        Ok(Some(PeerMessage::Input(_))) => {
            warn!("the technician sent input before the user allowed control; ending the session");
            EndReason::Error("the technician sent input before the user allowed control".into())
        }
        Ok(Some(PeerMessage::Recorded)) => EndReason::Error(
            "the technician said it records this session only after the user was asked".into(),
        ),
        Ok(Some(other)) => EndReason::Error(format!(
            "the technician sent {} before the user consented",
            other.kind()
        )),
        Err(e) if e.is_violation() => EndReason::Error(e.to_string()),
        Ok(None) => {
            return Ok(Ended::PeerLeft(
                conn.explain_departure("the technician closed the session stream".into())
                    .await?,
            ))
        }
        Err(e) => {
            return Ok(Ended::PeerLeft(
                conn.explain_departure(format!("the session stream broke: {e}"))
                    .await?,
            ))
        }
    };
    goodbye(tx, conn, &reason).await;
    Ok(Ended::Reason(reason))
}

/// A message already received and not yet read, if there is one (without waiting for more).
async fn already_received(
    rx: &mut SealedRecv,
) -> Option<Result<Option<PeerMessage>, PeerPlaneError>> {
    tokio::select! {
        biased;
        msg = rx.recv() => Some(msg),
        _ = std::future::ready(()) => None,
    }
}

/// Tells the technician the session is over and why, then waits (briefly) until it has left.
async fn goodbye(tx: &mut SealedSend, conn: &mut RelayConnection, reason: &EndReason) {
    let _ = tx
        .send(&PeerMessage::EndSession {
            reason: reason.clone(),
        })
        .await;
    let _ = tx.finish().await;
    conn.await_departure(Duration::from_secs(2)).await;
}

/// Runs one viewer from the key exchange to its end, then closes its connection with words
/// that say how it ended, and tells the session ([`FromViewer::Ended`]).
pub async fn run(
    setup: ViewerSetup,
    mut orders: tmpsc::UnboundedReceiver<ToViewer>,
    events: tmpsc::Sender<(ViewerId, FromViewer)>,
) {
    let ViewerSetup {
        id,
        mut conn,
        meeting,
        factory,
        opts,
        report,
        name,
    } = setup;
    let mut said = Said {
        id,
        events: &events,
    };
    let ended = serve(
        &mut conn,
        &meeting,
        factory,
        &opts,
        report,
        &name,
        &mut orders,
        &mut said,
    )
    .await;
    // A connection already gone (a link that could not be resumed) has nobody left to tell.
    if let (Ok(e), None) = (&ended, conn.connection.close_reason()) {
        conn.close_and_wait(&crate::session::ended_words(e).1).await;
    }
    let _ = events.send((id, FromViewer::Ended(ended))).await;
}

/// Where a viewer's news go.
struct Said<'a> {
    id: ViewerId,
    events: &'a tmpsc::Sender<(ViewerId, FromViewer)>,
}

impl Said<'_> {
    /// Passes `news` on; `false` once the session has stopped listening.
    async fn tell(&mut self, news: FromViewer) -> bool {
        self.events.send((self.id, news)).await.is_ok()
    }
}

/// What a viewer is told before its keys are agreed: the person answered (too early: the
/// technician is not there yet to be told), or the end.
enum Before {
    Answered,
    End(EndReason),
}

/// The next order that matters before the person answered. A list of participants is kept in
/// `list` (the latest), to send once the answer is out, and whether this viewer leads in
/// `leads`.
async fn order_before(
    orders: &mut tmpsc::UnboundedReceiver<ToViewer>,
    list: &mut Option<Vec<Participant>>,
    leads: &mut bool,
) -> Before {
    loop {
        match orders.recv().await {
            Some(ToViewer::Consent(_)) => return Before::Answered,
            Some(ToViewer::End(reason)) => return Before::End(reason),
            Some(ToViewer::Participants(l)) => *list = Some(l),
            // Before the keys are agreed there is nobody to tell; nothing is copied before
            // consent.
            Some(ToViewer::Chat(_) | ToViewer::Clipboard(_) | ToViewer::ClipboardShared(_)) => {}
            Some(ToViewer::Leads(l)) => *leads = l,
            // Nothing of files is asked before the person answered.
            Some(ToViewer::Files(_)) => {}
            None => return Before::End(EndReason::UserEnded),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    conn: &mut RelayConnection,
    meeting: &Meeting,
    factory: SourceFactory,
    opts: &SessionOptions,
    report: Reporter,
    name: &str,
    orders: &mut tmpsc::UnboundedReceiver<ToViewer>,
    said: &mut Said<'_>,
) -> Result<Ended, LinkError> {
    let connection = conn.connection.clone();
    let mut list = None;
    let mut leads = false;
    // The key exchange first: nothing else travels before both ends proved they met.
    let exchanged = tokio::select! {
        s = sealed::agent_session_met(&connection, meeting) => s,
        order = order_before(orders, &mut list, &mut leads) => return Ok(Ended::Reason(match order {
            Before::End(reason) => reason,
            Before::Answered => EndReason::UserEnded,
        })),
    };
    let sealed::SealedSession {
        send: mut tx,
        recv: mut rx,
        keys,
    } = match exchanged {
        Ok(s) => s,
        Err(e) if !e.is_violation() => {
            return Ok(Ended::PeerLeft(
                conn.explain_departure(e.to_string()).await?,
            ))
        }
        Err(e) => return Err(e.into()),
    };

    // Without a code (a help request, a further viewer), the two people compare six digits: a
    // relay in the middle would have made each end a different one.
    let verification = keys.verification_code().map(|v| v.to_string());
    if let Some(v) = keys.verification_code() {
        report.event(
            "verification",
            json!({ "code": v.digits(), "technician": name }),
            format!("Verification code for {}: {v}. Your technician sees the same six digits; if they read out others, end the session.", shown::name(name)),
        );
    }
    // Consent next: nothing is captured before it. (Sent even when the answer is preset: the
    // technician learns at once whether someone is being asked.)
    tx.send(&PeerMessage::Consent(ConsentState::Asking)).await?;
    // A recording technician says so first, so that the user knows before answering; one that
    // does not record may begin with a chat message.
    let started = Instant::now();
    let mut meter = ChatMeter::default();
    let mut early_chat = None;
    let recorded = match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        Ok(Ok(Some(PeerMessage::Recorded))) => true,
        Err(_) => false,
        Ok(Ok(Some(PeerMessage::Chat(chat)))) => {
            early_chat = Some(chat);
            false
        }
        Ok(msg) => return before_consent(msg, &mut tx, conn).await,
    };
    if !said
        .tell(FromViewer::Ask {
            recorded,
            verification,
        })
        .await
    {
        return Ok(Ended::Reason(EndReason::UserEnded));
    }
    if let Some(chat) = early_chat {
        if let Err(reason) = chat_in(chat, &mut meter, started, said).await {
            goodbye(&mut tx, conn, &reason).await;
            return Ok(Ended::Reason(reason));
        }
    }
    // While the person decides, the technician may only chat (the person may ask who is
    // calling): whatever else it sends ends the viewer (see `before_consent`), input above all,
    // which would otherwise wait in the stream and reach the screen in one burst the moment
    // control is allowed.
    let decided = loop {
        tokio::select! {
            order = orders.recv() => match order {
                Some(ToViewer::Consent(state)) => break state,
                Some(ToViewer::Participants(l)) => list = Some(l),
                Some(ToViewer::Chat(chat)) => tx.send(&PeerMessage::Chat(chat)).await?,
                // Nothing is copied, and nothing of files asked, before consent.
                Some(ToViewer::Clipboard(_) | ToViewer::ClipboardShared(_) | ToViewer::Files(_)) => {}
                Some(ToViewer::Leads(l)) => leads = l,
                Some(ToViewer::End(reason)) => {
                    goodbye(&mut tx, conn, &reason).await;
                    return Ok(Ended::Reason(reason));
                }
                None => {
                    let reason = EndReason::UserEnded;
                    goodbye(&mut tx, conn, &reason).await;
                    return Ok(Ended::Reason(reason));
                }
            },
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::Chat(chat))) => {
                    if let Err(reason) = chat_in(chat, &mut meter, started, said).await {
                        goodbye(&mut tx, conn, &reason).await;
                        return Ok(Ended::Reason(reason));
                    }
                }
                other => return before_consent(other, &mut tx, conn).await,
            },
            ctl = conn.next_skipping_silences() => return match ctl {
                Err(LinkError::PeerLeft(reason)) => Ok(Ended::PeerLeft(reason.to_string())),
                Err(e) => Err(e),
                Ok(other) => Err(LinkError::Protocol(format!(
                    "unexpected control message: {}",
                    protocol::text::clip(&format!("{other:?}"), 200)
                ))),
            },
        }
    };
    if decided != ConsentState::Denied {
        // Received while the answer came, and not read yet: sent before it too.
        while let Some(msg) = already_received(&mut rx).await {
            match msg {
                Ok(Some(PeerMessage::Chat(chat))) => {
                    if let Err(reason) = chat_in(chat, &mut meter, started, said).await {
                        goodbye(&mut tx, conn, &reason).await;
                        return Ok(Ended::Reason(reason));
                    }
                }
                other => return before_consent(other, &mut tx, conn).await,
            }
        }
    }
    tx.send(&PeerMessage::Consent(decided)).await?;
    if decided == ConsentState::Denied {
        let reason = EndReason::ConsentDenied;
        goodbye(&mut tx, conn, &reason).await;
        return Ok(Ended::Reason(reason));
    }
    if let Some(list) = list {
        tx.send(&PeerMessage::Participants(list)).await?;
    }
    let mut carried = Carried {
        consent: decided,
        meter,
        started,
        leads,
        accepted: Default::default(),
    };
    let mut keys = keys;
    let mut screen = Screen::start(factory, opts, &connection, &keys)?;
    loop {
        let leg = run_leg(
            conn,
            &mut tx,
            &mut rx,
            &keys,
            &mut screen,
            opts,
            report,
            name,
            orders,
            said,
            &mut carried,
        )
        .await;
        // A link that died mid-session is resumed; any other end is the end.
        let lost = match &leg {
            Err(e) if e.is_link_lost() => true,
            Err(_) | Ok(Ended::PeerLeft(_)) => link::resume::resumable(&conn.connection),
            Ok(_) => false,
        };
        if !lost {
            return leg;
        }
        let why = match &leg {
            Err(e) => e.to_string(),
            Ok(Ended::PeerLeft(words)) => words.clone(),
            Ok(_) => String::new(),
        };
        said.tell(FromViewer::RelayQuiet(true)).await;
        report.event(
            "link_lost",
            json!({ "technician": name, "why": why }),
            "Connection lost, reconnecting…",
        );
        let resume = link::resume::Resume {
            role: protocol::control::Role::Agent,
            relays: link::resume::relays(conn.redial(), &opts.other_relays, &conn.resume_through),
            secret: keys.resume_secret(),
            session: conn.session.clone().unwrap_or_default(),
            token: None,
            limit: opts.resume_limit,
        };
        let resumed = tokio::select! {
            r = resume.run(tokio::time::Instant::now()) => r,
            reason = order_while_away(orders, &mut carried) => {
                return Ok(Ended::Reason(reason));
            }
        };
        match resumed {
            Ok(r) => {
                let relay = r.conn.relay_addr;
                conn.resumed_on(r.conn);
                (tx, rx, keys) = (r.session.send, r.session.recv, r.session.keys);
                screen.next_leg(&conn.connection, &keys, opts.max_in_flight);
                said.tell(FromViewer::RelayQuiet(false)).await;
                report.event(
                    "link_resumed",
                    json!({ "technician": name, "relay": relay.to_string() }),
                    "Reconnected",
                );
                // The technician hears again where the session stands before the screen.
                tx.send(&PeerMessage::Consent(carried.consent)).await?;
            }
            Err(e) => {
                report.event(
                    "link_gone",
                    json!({ "technician": name, "why": e.to_string() }),
                    format!("The session ended: {e}."),
                );
                return Ok(Ended::PeerLeft(e.to_string()));
            }
        }
    }
}

/// Takes the session's orders while the link is being resumed, until one ends the viewer: a
/// change of consent is kept to tell the technician once back, and who leads; what was for the
/// technician alone (chat, clipboard, files) has nobody to go to.
async fn order_while_away(
    orders: &mut tmpsc::UnboundedReceiver<ToViewer>,
    carried: &mut Carried,
) -> EndReason {
    loop {
        match orders.recv().await {
            Some(ToViewer::Consent(ConsentState::Denied)) => return EndReason::ConsentDenied,
            Some(ToViewer::Consent(state)) => carried.consent = state,
            Some(ToViewer::Leads(l)) => carried.leads = l,
            Some(ToViewer::End(reason)) => return reason,
            Some(_) => {}
            None => return EndReason::UserEnded,
        }
    }
}

/// What a viewer carries from one leg of its session to the next: where consent stands, the
/// chat's meter, and whether this viewer leads.
struct Carried {
    consent: ConsentState,
    meter: ChatMeter,
    started: Instant,
    /// Whether this viewer leads the session (may switch monitors).
    leads: bool,
    /// The files the person accepted: offered again on a resumed leg, they go on unasked.
    accepted: crate::files::AcceptedFiles,
}

/// Tells the technician what the screen shows as it starts (again, on a resumed leg).
async fn start_screen(tx: &mut SealedSend, shown: &Shown) -> Result<(), LinkError> {
    tx.send(&PeerMessage::SessionStart {
        width: shown.width,
        height: shown.height,
        agent_version: protocol::SOFTWARE_VERSION.into(),
    })
    .await?;
    if let Some(m) = &shown.monitors {
        tx.send(&PeerMessage::Monitors(m.clone())).await?;
    }
    Ok(())
}

/// One leg of a viewer's session after the person's answer: from the start of the screen, or
/// of a resumed link, until the session ends or its link dies (the caller then tells which, and
/// resumes).
#[allow(clippy::too_many_arguments)]
async fn run_leg(
    conn: &mut RelayConnection,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    keys: &protocol::e2e::SessionKeys,
    screen: &mut Screen,
    opts: &SessionOptions,
    report: Reporter,
    name: &str,
    orders: &mut tmpsc::UnboundedReceiver<ToViewer>,
    said: &mut Said<'_>,
    carried: &mut Carried,
) -> Result<Ended, LinkError> {
    let connection = conn.connection.clone();
    let Carried {
        consent,
        meter,
        started,
        leads,
        accepted,
    } = carried;
    let started = *started;
    let mut control = *consent == ConsentState::Control;

    // Until the session start is out, the technician takes only consent, lists and chat: what
    // else is for the started session waits (pointer shapes in their channel; whether the
    // clipboard is shared, here). A resumed leg starts with the screen the last one showed.
    let mut screen_started = false;
    if let Some(shown) = &screen.shown {
        start_screen(tx, shown).await?;
        screen_started = true;
    }
    let mut clipboard_told: Option<bool> = None;
    // Files beside the screen; the technician opens no other unidirectional streams.
    let mut files = link::files::Files::start(connection.clone(), keys.file_keys(), true);
    // This leg's offers, until the person answers them.
    let mut offered: std::collections::HashMap<u64, protocol::transfer::IncomingOffer> =
        Default::default();
    let mut window = Window::new(opts.max_in_flight);
    // The updates being written, one task each: at most `max_in_flight`.
    let mut sending: JoinSet<u64> = JoinSet::new();
    let mut finished = false;
    let mut dropped = Dropped::default();
    let mut relay_silence = Silence::new(&conn.connection);
    let mut silence_tick = link::silence::ticker();
    let ended = loop {
        tokio::select! {
            produced = screen.produced.recv(), if !finished => match produced {
                Some(Produced::Ready { width, height, describe, monitors }) => {
                    let shown = Shown { width, height, monitors };
                    start_screen(tx, &shown).await?;
                    screen.shown = Some(shown);
                    screen_started = true;
                    if let Some(shared) = clipboard_told.take() {
                        tx.send(&PeerMessage::ClipboardShared(shared)).await?;
                    }
                    said.tell(FromViewer::Sharing { describe, width, height }).await;
                }
                Some(Produced::Switched(switched)) => {
                    crate::monitors::report_switch(report, name, &switched);
                    if let Ok((m, _)) = switched {
                        if let Some(shown) = &mut screen.shown {
                            shown.monitors = Some(m.clone());
                        }
                        tx.send(&PeerMessage::Monitors(m)).await?;
                    }
                }
                Some(Produced::Update { leg, .. }) if !screen.current(leg) => {
                    debug!(leg, "an update made for a leg of the link that is over; dropped");
                }
                Some(Produced::Update { update, frame_id, .. }) => {
                    if let Some(shown) = &mut screen.shown {
                        (shown.width, shown.height) = (update.width, update.height);
                    }
                    let seq = update.seq;
                    window.sent(seq);
                    if opts.report_updates {
                        report.event("update_sent", json!({
                            "seq": update.seq, "frame": frame_id, "ops": update.ops.len(),
                            "video": update.ops.iter().filter(|o| matches!(o, CodecOp::Video { .. })).count(),
                            "width": update.width, "height": update.height, "technician": name,
                        }), "");
                    }
                    // On its own stream, sealed record by record as it goes out.
                    let outgoing = sealed::prepare_update(keys, update);
                    let c = connection.clone();
                    sending.spawn(async move {
                        if let Err(e) = sealed::send_update(&c, outgoing).await {
                            debug!(error = %e, "a screen update could not be sent; the connection is ending");
                        }
                        seq
                    });
                }
                Some(Produced::Finished) | None => {
                    finished = true;
                    if window.is_idle() {
                        break Ended::Reason(EndReason::SourceFinished);
                    }
                }
                Some(Produced::Failed(e)) => break Ended::Reason(EndReason::Error(format!("screen capture failed: {e}"))),
            },
            Some(written) = sending.join_next(), if !sending.is_empty() => match written {
                Ok(seq) => {
                    if window.written(seq) {
                        screen.credit();
                    }
                    if finished && window.is_idle() {
                        break Ended::Reason(EndReason::SourceFinished);
                    }
                }
                Err(e) => break Ended::Reason(EndReason::Error(format!("sending a screen update failed: {e}"))),
            },
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::UpdateAck { seq })) => match window.ack(seq) {
                    Ok(Ack::Freed) => {
                        screen.credit();
                        if finished && window.is_idle() {
                            break Ended::Reason(EndReason::SourceFinished);
                        }
                    }
                    Ok(Ack::Writing) => {}
                    Ok(Ack::Repeated) => debug!(seq, "a repeated acknowledgement ignored"),
                    Err(e) => break Ended::Reason(EndReason::Error(e.to_string())),
                },
                Ok(Some(PeerMessage::Input(mut event))) => {
                    if let InputEvent::PointerMove { x, y } = &mut event {
                        (*x, *y) = screen.area.lock().expect("area lock").to_desktop(*x, *y);
                    }
                    if control {
                        // Waits while the session's input is full: flow control then slows the
                        // technician, and this viewer's screen waits with it.
                        said.tell(FromViewer::Input(event)).await;
                    } else {
                        dropped.add(report, name);
                    }
                }
                Ok(Some(PeerMessage::HandOver { to })) => {
                    said.tell(FromViewer::HandOver(protocol::text::tame(&to, protocol::text::MAX_PEER_STRING))).await;
                }
                Ok(Some(PeerMessage::TakeOver)) => {
                    said.tell(FromViewer::TakeOver).await;
                }
                Ok(Some(PeerMessage::Chat(chat))) => {
                    if let Err(reason) = chat_in(chat, meter, started, said).await {
                        break Ended::Reason(reason);
                    }
                }
                Ok(Some(PeerMessage::Clipboard(data))) => match data.check() {
                    Ok(()) => { said.tell(FromViewer::Clipboard(data)).await; }
                    Err(e) => break Ended::Reason(EndReason::Error(format!("the technician sent {e}"))),
                },
                Ok(Some(PeerMessage::ShowMonitor(_))) if !*leads => {
                    tx.send(&PeerMessage::MonitorRefused { reason: MONITOR_NOT_IN_CONTROL.into() }).await?;
                }
                Ok(Some(PeerMessage::ShowMonitor(choice))) => {
                    if screen.switches.try_send(choice).is_err() {
                        debug!("a monitor switch came while another was waiting; dropped");
                    }
                }
                Ok(Some(PeerMessage::File(m))) => files.command(link::files::Command::Peer(m)).await,
                Ok(Some(PeerMessage::EndSession { reason })) => break Ended::Reason(reason),
                Ok(Some(other)) => {
                    break Ended::Reason(EndReason::Error(format!("the technician sent {}, which an agent does not accept", other.kind())));
                }
                Ok(None) => break Ended::PeerLeft(conn.explain_departure("the technician closed the session stream".into()).await?),
                Err(e) if e.is_violation() => break Ended::Reason(EndReason::Error(e.to_string())),
                Err(e) => break Ended::PeerLeft(conn.explain_departure(format!("the session stream broke: {e}")).await?),
            },
            order = orders.recv() => match order {
                Some(ToViewer::Consent(state)) => {
                    if state == ConsentState::Denied {
                        break Ended::Reason(EndReason::ConsentDenied);
                    }
                    control = state == ConsentState::Control;
                    *consent = state;
                    tx.send(&PeerMessage::Consent(state)).await?;
                }
                Some(ToViewer::Participants(list)) => tx.send(&PeerMessage::Participants(list)).await?,
                Some(ToViewer::Chat(chat)) => tx.send(&PeerMessage::Chat(chat)).await?,
                Some(ToViewer::Clipboard(data)) => tx.send(&PeerMessage::Clipboard(data)).await?,
                Some(ToViewer::ClipboardShared(shared)) if screen_started => tx.send(&PeerMessage::ClipboardShared(shared)).await?,
                Some(ToViewer::ClipboardShared(shared)) => clipboard_told = Some(shared),
                Some(ToViewer::Files(command)) => {
                    if let link::files::Command::Accept { offer, dir, by: protocol::transfer::AcceptedBy::Person } = &command {
                        if let Some(o) = offered.remove(offer) {
                            accepted.accepted(&o, dir);
                        }
                    }
                    files.command(command).await
                }
                Some(ToViewer::Leads(l)) => *leads = l,
                Some(ToViewer::End(reason)) => break Ended::Reason(reason),
                None => break Ended::Reason(EndReason::UserEnded),
            },
            Some(shape) = screen.shapes.recv(), if screen_started => tx.send(&PeerMessage::CursorShape(shape)).await?,
            out = files.next() => match out {
                link::files::Out::Peer(m) => tx.send(&PeerMessage::File(m)).await?,
                link::files::Out::News(news) => {
                    let decision = crate::files::decide(&news, control, &opts.files, accepted);
                    if let crate::files::Decision::Ask(offer) = &decision {
                        offered.insert(offer.id, offer.clone());
                    }
                    said.tell(FromViewer::Files(news)).await;
                    crate::files::tell_decision(report, name, &decision);
                    match decision {
                        crate::files::Decision::Answer(command) => files.command(command).await,
                        crate::files::Decision::Ask(offer) => {
                            said.tell(FromViewer::FileQuestion(offer)).await;
                        }
                        crate::files::Decision::Nothing => {}
                    }
                }
                link::files::Out::Broken(why) => break Ended::Reason(EndReason::Error(why)),
            },
            _ = silence_tick.tick() => match relay_silence.check(&conn.connection) {
                _ if relay_silence.silent_for() >= link::resume::LOST_AFTER => {
                    let why = link::resume::give_up(&conn.connection, relay_silence.silent_for());
                    return Err(LinkError::ConnectionLost(why));
                }
                Some(Change::Quiet(silent)) => {
                    said.tell(FromViewer::RelayQuiet(true)).await;
                    report.event("relay_quiet", json!({ "silent_ms": silent.as_millis() as u64 }), format!(
                        "Nothing heard from the relay for {:.1} s; the session waits for the connection.",
                        silent.as_secs_f64()
                    ));
                }
                Some(Change::Back) => {
                    said.tell(FromViewer::RelayQuiet(false)).await;
                    report.event("relay_back", json!({}), "The relay is heard again.");
                }
                None => {}
            },
            ctl = conn.next() => match ctl {
                Err(LinkError::PeerLeft(reason)) => match last_word(rx).await {
                    Some(r) => break Ended::Reason(r),
                    // The technician's link died without a word: it may be resuming, so this
                    // end rejoins too and the relay pairs the two again.
                    None if reason == PeerLeftReason::ConnectionLost => return Err(LinkError::PeerLinkLost),
                    None => break Ended::PeerLeft(reason.to_string()),
                },
                Ok(FromRelay::PeerQuiet { silent_ms }) => {
                    said.tell(FromViewer::PeerQuiet(true)).await;
                    report.event("peer_quiet", json!({ "silent_ms": silent_ms, "technician": name }),
                        format!("Nothing heard from {} for {:.1} s; the session waits for their connection.", shown::name(name), f64::from(silent_ms) / 1000.0));
                }
                Ok(FromRelay::PeerBack) => {
                    said.tell(FromViewer::PeerQuiet(false)).await;
                    report.event("peer_back", json!({ "technician": name }), format!("The connection of {} is back.", shown::name(name)));
                }
                Ok(FromRelay::Invite { ticket, joining }) => {
                    said.tell(FromViewer::Invite { ticket, joining }).await;
                }
                // The link is gone: the guard stops the capture.
                Err(e) => return Err(e),
                Ok(other) => return Err(LinkError::Protocol(format!(
                    "unexpected control message during a session: {}",
                    protocol::text::clip(&format!("{other:?}"), 200)
                ))),
            },
        }
    };
    if window.repeated() > 0 {
        warn!(
            repeated = window.repeated(),
            "the technician repeated acknowledgements; they were ignored"
        );
    }
    dropped.report_final(report, name);
    if let Ended::Reason(reason) = &ended {
        // Tell the technician why, unless it was the technician who ended it.
        if !matches!(reason, EndReason::TechnicianEnded) {
            goodbye(tx, conn, reason).await;
        }
    }
    Ok(ended)
}

/// Takes in a chat message from the technician: passed to the session, or the reason the viewer
/// ends (beyond the limits).
async fn chat_in(
    chat: Chat,
    meter: &mut ChatMeter,
    started: Instant,
    said: &mut Said<'_>,
) -> Result<(), EndReason> {
    let text = crate::chat::received(chat, meter, started)?;
    said.tell(FromViewer::Chat(text)).await;
    Ok(())
}

/// Input events a viewer sent while it did not hold control: dropped, counted, and reported at
/// most twice a second.
#[derive(Default)]
struct Dropped {
    count: u64,
    reported: Option<Instant>,
}

impl Dropped {
    fn add(&mut self, report: Reporter, name: &str) {
        self.count += 1;
        if self
            .reported
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            self.reported = Some(Instant::now());
            report.event(
                "input_dropped",
                json!({ "count": self.count, "technician": name }),
                format!(
                    "{} input events from {} were dropped: they do not hold control.",
                    self.count,
                    shown::name(name)
                ),
            );
        }
    }

    fn report_final(&self, report: Reporter, name: &str) {
        if self.count > 0 {
            report.event(
                "input_dropped",
                json!({ "count": self.count, "final": true, "technician": name }),
                format!(
                    "{} input events from {} were dropped while they did not hold control.",
                    self.count,
                    shown::name(name)
                ),
            );
        }
    }
}

/// Whether a message of `kind` names a peer-plane message the agent takes after consent.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_words() {
        let msgs = [
            PeerMessage::TakeOver,
            PeerMessage::HandOver { to: "ana".into() },
            PeerMessage::Participants(vec![]),
        ];
        for m in msgs {
            assert!(m.kind().starts_with('a'), "{m:?}");
        }
    }
}
