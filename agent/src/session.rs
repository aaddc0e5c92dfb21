//! The agent's side of a paired session.
//!
//! The agent opens the session stream and runs the end-to-end key exchange on it, keyed by the
//! secret part of the code it showed the user (`link::sealed`); a technician who entered another
//! code fails it, and everything after it is sealed. Then, unless consent was given in advance,
//! the agent tells the technician it is asking the user. Nothing is captured before the user
//! agrees, and the technician may send nothing meanwhile but word that it records the session:
//! anything else, input above all, ends the session, so nothing sent during the question can
//! reach the screen once the person allows control.
//!
//! Then a capture thread makes the screen source and owns it and the screen codec's encoder
//! (`protocol::codec`): it waits for a credit, captures, and encodes the difference between what
//! the viewer holds and the new frame (changed tiles, scrolled and moved regions as copies);
//! unchanged frames cost no update. Each update goes out on its own unidirectional stream. There
//! are at most `max_in_flight` updates the technician has not acknowledged, or whose stream is
//! still being written ([`crate::flow`]: each acknowledged once, in order; a repeated one earns
//! nothing); while there are, nothing is captured, and changes in between merge into the next
//! update. So a slow viewer gets fewer, larger updates, never a growing queue.
//!
//! Input is injected only while the user allows control; otherwise it is dropped and counted.
//! It is injected by a worker thread ([`crate::injector`]), never in this loop, so the person's
//! commands are taken at once however much the technician sends; text per event is capped. Whenever
//! control ends (the user stops it, the session ends, the technician leaves, the link breaks)
//! every key and button still held is released: the injector is a guard that does it when
//! dropped, on every way out.
//!
//! What the technician supplied (its description, its end reasons) is shown escaped
//! ([`crate::shown`]).
//!
//! The person is a [`Person`]: what they say (terminal or window), the gate their commands close,
//! and the window's status, kept up to date here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use link::report::Reporter;
use link::sealed::{self, last_word, PeerPlaneError, SealedRecv, SealedSend, SealedSession};
use link::silence::{Change, Silence};
use link::{LinkError, RelayConnection};
use protocol::codec::encoder::REFINE_AFTER_MS;
use protocol::codec::Encoder;
use protocol::control::{FromRelay, PeerInfo};
use protocol::peer::{CodecOp, ConsentState, EndReason, PeerMessage, ScreenUpdate};
use serde_json::json;
use tokio::sync::mpsc as tmpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::consent::{ConsentPolicy, UserCommand, UserInput};
use crate::flow::{Ack, Window};
use crate::injector::{cap_text, Injector, InputGate, MAX_TEXT_CHARS};
use crate::shown;
use crate::sink::InputSink;
use crate::source::{Capture, SourceFactory};
use crate::status::{Status, StatusTx};

/// How long the end of a session waits for the input worker to let go of everything.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

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

/// What the capture thread hands the session.
enum Produced {
    Ready {
        width: u32,
        height: u32,
        describe: String,
    },
    Update {
        update: ScreenUpdate,
        frame_id: u64,
    },
    Finished,
    Failed(String),
}

fn capture_thread(
    factory: SourceFactory,
    credits: mpsc::Receiver<()>,
    out: tmpsc::Sender<Produced>,
    stop: Arc<AtomicBool>,
    lossless: bool,
) {
    let mut source = match factory() {
        Ok(s) => s,
        Err(e) => {
            let _ = out.blocking_send(Produced::Failed(e.to_string()));
            return;
        }
    };
    let (w, h) = source.size();
    let ready = Produced::Ready {
        width: w,
        height: h,
        describe: source.describe(),
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
    while credits.recv().is_ok() {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let captured = source.capture();
            let now_ms = started.elapsed().as_millis() as u64;
            // An update from the encoder takes the next number.
            let next = seq + 1;
            let mut numbered = |update: Option<ScreenUpdate>, frame_id: u64| {
                update.map(|update| {
                    seq = next;
                    Produced::Update { update, frame_id }
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

/// Tells the capture thread to stop when the session is over, however it ends.
struct StopCapture(Arc<AtomicBool>);

impl Drop for StopCapture {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What kind of message the technician sent, in words (not the message: it may be megabytes).
fn kind(msg: &PeerMessage) -> &'static str {
    match msg {
        PeerMessage::SessionStart { .. } => "a session start",
        PeerMessage::ScreenUpdate(_) => "a screen update",
        PeerMessage::UpdateAck { .. } => "an update acknowledgement",
        PeerMessage::Input(_) => "an input event",
        PeerMessage::Consent(_) => "a consent",
        PeerMessage::EndSession { .. } => "the end of the session",
        PeerMessage::Recorded => "word that it records the session",
    }
}

/// The end of a session for what the technician sent before the person answered (anything but
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
            kind(&other)
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

fn consent_name(state: ConsentState) -> &'static str {
    match state {
        ConsentState::Asking => "asking",
        ConsentState::ViewOnly => "view_only",
        ConsentState::Control => "control",
        ConsentState::Denied => "denied",
    }
}

/// Asks the user (or applies the preset answer); says whether the time ran out.
async fn obtain_consent(
    policy: ConsentPolicy,
    person: &mut Person,
    peer: &PeerInfo,
    recorded: bool,
    verification: Option<String>,
    report: Reporter,
) -> (ConsentState, bool) {
    match policy {
        ConsentPolicy::Preset(state) => {
            report.event(
                "consent",
                json!({ "state": consent_name(state), "preset": true }),
                format!(
                    "Unattended mode: accepting {} with {} as set by --consent.",
                    shown::introduce(peer),
                    if state == ConsentState::Control {
                        "control"
                    } else {
                        "view only"
                    }
                ),
            );
            (state, false)
        }
        ConsentPolicy::Ask { timeout } => {
            person.status.send(Status::Asking {
                peer: peer.clone(),
                recorded,
                verification,
                timeout,
                deadline: Instant::now() + timeout,
            });
            let question = crate::consent::question(peer, recorded, timeout);
            let account = peer.account.as_ref();
            report.event(
                "consent_request",
                json!({
                    "peer": peer.description, "timeout_secs": timeout.as_secs(), "recorded": recorded,
                    "technician": account.map(|a| &a.name), "tier": account.map(|a| a.tier),
                    "organisation": account.map(|a| &a.organisation),
                }),
                &question,
            );
            let (state, timed_out) = person
                .input
                .ask(timeout, |l| {
                    report.event(
                        "consent_unknown_answer",
                        json!({ "answer": l }),
                        "Please type c (control), v (view only) or d (deny), then Enter.",
                    )
                })
                .await;
            report.event(
                "consent",
                json!({ "state": consent_name(state), "timed_out": timed_out }),
                match (state, timed_out) {
                    (_, true) => "No answer in time: the session is denied.",
                    (ConsentState::Control, _) => {
                        "Allowed: the technician may see the screen and use mouse and keyboard."
                    }
                    (ConsentState::ViewOnly, _) => {
                        "Allowed: the technician may see the screen, not control it."
                    }
                    _ => "Denied: nothing is shared.",
                },
            );
            if state != ConsentState::Denied {
                person.status.send(Status::Answered);
            }
            (state, timed_out)
        }
    }
}

/// Runs the session on a paired connection until it ends. `code` is the code the user was shown;
/// its secret part keys the exchange with the technician. A technician who entered another code
/// ends it with [`protocol::e2e::HandshakeError::CodeMismatch`] ("the code did not match"), as
/// an `Err`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    conn: &mut RelayConnection,
    meeting: &sealed::Meeting,
    peer: &PeerInfo,
    factory: SourceFactory,
    sink: Box<dyn InputSink>,
    person: &mut Person,
    opts: SessionOptions,
    report: Reporter,
    mut user_end: impl std::future::Future<Output = ()> + Unpin,
) -> Result<Ended, LinkError> {
    let connection = conn.connection.clone();
    // The key exchange first: nothing else travels before both ends proved they hold the code.
    let exchanged = tokio::select! {
        s = sealed::agent_session_met(&connection, meeting) => s,
        _ = &mut user_end => return Ok(Ended::Reason(EndReason::UserEnded)),
    };
    let SealedSession {
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

    // Without a code (a help request), the two people compare six digits: a relay in the middle
    // would have made each end a different one.
    let verification = keys.verification_code().map(|v| v.to_string());
    if let Some(v) = keys.verification_code() {
        report.event(
            "verification",
            json!({ "code": v.digits() }),
            format!("Verification code: {v}. Your technician sees the same six digits; if they read out others, end the session."),
        );
    }
    // Consent next: nothing is captured before it. (Sent even when the answer is preset: the
    // technician learns at once whether someone is being asked.)
    tx.send(&PeerMessage::Consent(ConsentState::Asking)).await?;
    // A recording technician says so first, so that the user knows before answering.
    let recorded = match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        Ok(Ok(Some(PeerMessage::Recorded))) => true,
        Err(_) => false,
        Ok(msg) => return before_consent(msg, &mut tx, conn).await,
    };
    // While the person decides, the technician has nothing to say: whatever it sends ends the
    // session (see `before_consent`), input above all, which would otherwise wait in the stream
    // and reach the screen in one burst the moment control is allowed.
    let (decided, timed_out) = tokio::select! {
        s = obtain_consent(opts.consent, &mut *person, peer, recorded, verification, report) => s,
        msg = rx.recv() => return before_consent(msg, &mut tx, conn).await,
        ctl = conn.next_skipping_silences() => return match ctl {
            Err(LinkError::PeerLeft(reason)) => Ok(Ended::PeerLeft(reason.to_string())),
            Err(e) => Err(e),
            Ok(other) => Err(LinkError::Protocol(format!(
                "unexpected control message: {}",
                protocol::text::clip(&format!("{other:?}"), 200)
            ))),
        },
        _ = &mut user_end => (ConsentState::Denied, false),
    };
    if decided != ConsentState::Denied {
        // Received while the answer came, and not read yet: sent before it too.
        if let Some(msg) = already_received(&mut rx).await {
            return before_consent(msg, &mut tx, conn).await;
        }
    }
    tx.send(&PeerMessage::Consent(decided)).await?;
    if decided == ConsentState::Denied {
        let reason = EndReason::ConsentDenied;
        goodbye(&mut tx, conn, &reason).await;
        return Ok(if timed_out {
            Ended::Unanswered
        } else {
            Ended::Reason(reason)
        });
    }
    let mut control = decided == ConsentState::Control;
    let gate = person.gate.clone();
    if control {
        gate.open();
    }
    // From here on, however the session ends (also by an error on the way out, `?`), dropping
    // the injector releases every key and button the technician held (see `crate::injector`).
    let (injector, mut inject_failure) = Injector::start(sink, gate.clone())
        .map_err(|e| LinkError::Protocol(format!("cannot start the input thread: {e}")))?;
    let mut pending: Option<protocol::input::InputEvent> = None;
    let mut truncated = Truncated::default();

    let (credit_tx, credit_rx) = mpsc::sync_channel::<()>(opts.max_in_flight);
    for _ in 0..opts.max_in_flight {
        credit_tx.send(()).expect("room for the initial credits");
    }
    let (prod_tx, mut prod_rx) = tmpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let _stop_capture = StopCapture(stop.clone());
    let lossless = opts.lossless;
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || capture_thread(factory, credit_rx, prod_tx, thread_stop, lossless))
        .map_err(|e| LinkError::Protocol(format!("cannot start the capture thread: {e}")))?;

    let mut window = Window::new(opts.max_in_flight);
    // The updates being written, one task each: at most `max_in_flight`.
    let mut sending: JoinSet<u64> = JoinSet::new();
    let mut finished = false;
    let mut dropped = 0u64;
    let mut dropped_reported = Instant::now() - Duration::from_secs(1);
    let mut relay_silence = Silence::new(&conn.connection);
    let mut silence_tick = link::silence::ticker();
    let mut quiet = Quiet::default();
    let ended = loop {
        tokio::select! {
            produced = prod_rx.recv(), if !finished => match produced {
                Some(Produced::Ready { width, height, describe }) => {
                    tx.send(&PeerMessage::SessionStart {
                        width,
                        height,
                        agent_version: protocol::SOFTWARE_VERSION.into(),
                    })
                    .await?;
                    person.status.send(Status::Sharing { peer: peer.clone(), control });
                    report.event(
                        "sharing",
                        json!({ "source": describe, "width": width, "height": height, "control": control }),
                        format!(
                            "Your screen ({describe}) is shared with {}{}.\nType v and Enter to stop control (view only), q and Enter or Ctrl+C to end the session.",
                            shown::name(&peer.description),
                            if control { ", who may use mouse and keyboard" } else { ", view only" }
                        ),
                    );
                }
                Some(Produced::Update { update, frame_id }) => {
                    let seq = update.seq;
                    window.sent(seq);
                    if opts.report_updates {
                        report.event("update_sent", json!({
                            "seq": update.seq, "frame": frame_id, "ops": update.ops.len(),
                            "video": update.ops.iter().filter(|o| matches!(o, CodecOp::Video { .. })).count(),
                            "width": update.width, "height": update.height,
                        }), "");
                    }
                    // On its own stream, sealed record by record as it goes out.
                    let outgoing = sealed::prepare_update(&keys, update);
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
            // While the worker's queue is full the technician's stream waits, so flow control
            // slows the technician; everything else goes on.
            _ = injector.room(), if pending.is_some() => {
                if let Some(event) = pending.take() {
                    if gate.is_open() {
                        pending = injector.offer(event).err();
                    }
                }
            },
            e = inject_failure.wait() => {
                break Ended::Reason(EndReason::Error(e.to_string()));
            },
            Some(written) = sending.join_next(), if !sending.is_empty() => match written {
                Ok(seq) => {
                    if window.written(seq) {
                        let _ = credit_tx.try_send(());
                    }
                    if finished && window.is_idle() {
                        break Ended::Reason(EndReason::SourceFinished);
                    }
                }
                Err(e) => break Ended::Reason(EndReason::Error(format!("sending a screen update failed: {e}"))),
            },
            msg = rx.recv(), if pending.is_none() => match msg {
                Ok(Some(PeerMessage::UpdateAck { seq })) => match window.ack(seq) {
                    Ok(Ack::Freed) => {
                        let _ = credit_tx.try_send(());
                        if finished && window.is_idle() {
                            break Ended::Reason(EndReason::SourceFinished);
                        }
                    }
                    Ok(Ack::Writing) => {}
                    Ok(Ack::Repeated) => debug!(seq, "a repeated acknowledgement ignored"),
                    Err(e) => break Ended::Reason(EndReason::Error(e.to_string())),
                },
                Ok(Some(PeerMessage::Input(mut event))) => {
                    if !control || !gate.is_open() {
                        dropped += 1;
                        if dropped_reported.elapsed() >= Duration::from_millis(500) {
                            dropped_reported = Instant::now();
                            report.event("input_dropped", json!({ "count": dropped }),
                                format!("View only: {dropped} input events from the technician were dropped."));
                        }
                    } else {
                        truncated.add(cap_text(&mut event), report);
                        pending = injector.offer(event).err();
                    }
                }
                Ok(Some(PeerMessage::EndSession { reason })) => break Ended::Reason(reason),
                Ok(Some(other)) => {
                    break Ended::Reason(EndReason::Error(format!("the technician sent {}, which an agent does not accept", kind(&other))));
                }
                Ok(None) => break Ended::PeerLeft(conn.explain_departure("the technician closed the session stream".into()).await?),
                Err(e) if e.is_violation() => break Ended::Reason(EndReason::Error(e.to_string())),
                Err(e) => break Ended::PeerLeft(conn.explain_departure(format!("the session stream broke: {e}")).await?),
            },
            cmd = person.input.next_command() => match cmd {
                UserCommand::StopControl if control => {
                    control = false;
                    // Already closed by the side the person spoke through; the worker
                    // releases what is held as soon as it sees it.
                    gate.close();
                    pending = None;
                    person.status.send(Status::ControlStopped);
                    tx.send(&PeerMessage::Consent(ConsentState::ViewOnly)).await?;
                    report.event("consent", json!({ "state": "view_only" }),
                        "Control stopped: the technician can only see the screen now.");
                }
                UserCommand::StopControl => {}
                UserCommand::End => break Ended::Reason(EndReason::UserEnded),
            },
            _ = silence_tick.tick() => match relay_silence.check(&conn.connection) {
                Some(Change::Quiet(silent)) => {
                    injector.release_held();
                    quiet.relay = true;
                    person.status.send(Status::PeerQuiet(quiet.any()));
                    report.event("relay_quiet", json!({ "silent_ms": silent.as_millis() as u64 }), format!(
                        "Nothing heard from the relay for {:.1} s; the session waits for the connection.",
                        silent.as_secs_f64()
                    ));
                }
                Some(Change::Back) => {
                    quiet.relay = false;
                    person.status.send(Status::PeerQuiet(quiet.any()));
                    report.event("relay_back", json!({}), "The relay is heard again.");
                }
                None => {}
            },
            ctl = conn.next() => match ctl {
                Err(LinkError::PeerLeft(reason)) => match last_word(&mut rx).await {
                    Some(r) => break Ended::Reason(r),
                    None => break Ended::PeerLeft(reason.to_string()),
                },
                Ok(FromRelay::PeerQuiet { silent_ms }) => {
                    // Whatever the technician held down must not stay pressed while it is gone.
                    injector.release_held();
                    quiet.technician = true;
                    person.status.send(Status::PeerQuiet(quiet.any()));
                    report.event("peer_quiet", json!({ "silent_ms": silent_ms }),
                        format!("Nothing heard from the technician for {:.1} s; the session waits for their connection.", f64::from(silent_ms) / 1000.0));
                }
                Ok(FromRelay::PeerBack) => {
                    quiet.technician = false;
                    person.status.send(Status::PeerQuiet(quiet.any()));
                    report.event("peer_back", json!({}), "The technician's connection is back.");
                }
                // The link is gone: the guards stop the capture and release held input.
                Err(e) => return Err(e),
                Ok(other) => return Err(LinkError::Protocol(format!(
                    "unexpected control message during a session: {}",
                    protocol::text::clip(&format!("{other:?}"), 200)
                ))),
            },
            _ = &mut user_end => break Ended::Reason(EndReason::UserEnded),
        }
    };
    // The capture thread notices within one capture; it is not joined, so a capture blocked on
    // a slow screen cannot hold up the end of the session.
    stop.store(true, Ordering::Relaxed);
    drop(credit_tx);
    let injected = injector.finish(RELEASE_WAIT).await;
    debug!(
        injected = injected.injected,
        discarded = injected.discarded,
        "input worker done"
    );
    truncated.report_final(report);
    if window.repeated() > 0 {
        warn!(
            repeated = window.repeated(),
            "the technician repeated acknowledgements; they were ignored"
        );
    }
    if dropped > 0 {
        report.event(
            "input_dropped",
            json!({ "count": dropped, "final": true }),
            format!("{dropped} input events were dropped while the session was view only."),
        );
    }
    if let Ended::Reason(reason) = &ended {
        // Tell the technician why, unless it was the technician who ended it.
        if !matches!(reason, EndReason::TechnicianEnded) {
            goodbye(&mut tx, conn, reason).await;
        }
    }
    Ok(ended)
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

/// What is silent for now, of what the session hears from: the relay itself, or the technician
/// (as the relay says).
#[derive(Default)]
struct Quiet {
    relay: bool,
    technician: bool,
}

impl Quiet {
    fn any(&self) -> bool {
        self.relay || self.technician
    }
}
