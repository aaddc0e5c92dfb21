//! The technician's side of a paired session.
//!
//! First the end-to-end key exchange on the session stream the agent opens, keyed by the secret
//! part of the code the user read out (`link::sealed`); everything after it is sealed, and a
//! record that does not open ends the session with words that say what was done to it.
//!
//! Tasks: one writer owns the send half of the session stream (acks and input go through it in
//! order); one acceptor reads each screen-update stream and hands the update over; the script
//! runner (if any) plays actions. The main loop applies updates in sequence, acknowledges each,
//! and watches the session stream and the control stream for the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use link::report::Reporter;
use link::sealed::{self, last_word, SealedSession};
use link::{LinkError, RelayConnection};
use protocol::e2e::{UpdateReceiver, UserCode};
use protocol::peer::{ConsentState, EndReason, PeerMessage, ScreenUpdate};
use protocol::text::{tame, MAX_PEER_STRING};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::record::Recorder;
use crate::script::{self, Action, Step};
use crate::viewer::{self, Damage, Viewer};
use protocol::input::InputEvent;

/// How long the agent has to open the session after pairing.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long later updates may wait for a missing one, with no update stream still being read,
/// before the missing one counts as dropped on the way. (A slow update still arriving is being
/// read, so it never counts.)
const MISSING_LIMIT: Duration = Duration::from_secs(2);

/// Called with the framebuffer and the rectangles that the applied updates changed, after they
/// are applied and before they are acknowledged (so a window's presentation counts in the flow
/// control, as a person sees it). It runs on the session's task: it must be quick.
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
    /// The framebuffer to hold the remote screen in (a window shares it); a new one otherwise.
    pub viewer: Option<Arc<Mutex<Viewer>>>,
    /// Called for every applied update (a window presenting the screen).
    pub on_frame: Option<FrameHook>,
    /// Events for a window following the session.
    pub events: Option<mpsc::UnboundedSender<SessionEvent>>,
}

impl SessionOptions {
    fn tell(&self, event: SessionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

/// Seconds between checkpoints of the session log sent to the relay.
pub const CHECKPOINT_SECS: u64 = 5;

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

/// Reads each update stream the agent opens: one sealed update each, every number once.
/// `reading` counts the streams being read.
async fn accept_updates(
    conn: quinn::Connection,
    receiver: UpdateReceiver,
    out: mpsc::Sender<Incoming>,
    reading: Arc<AtomicUsize>,
) {
    let receiver = Arc::new(Mutex::new(receiver));
    while let Ok(stream) = conn.accept_uni().await {
        let out = out.clone();
        let receiver = receiver.clone();
        let reading = reading.clone();
        reading.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let item = match sealed::read_update(stream, &receiver).await {
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

fn kind(m: &PeerMessage) -> &'static str {
    match m {
        PeerMessage::SessionStart { .. } => "a session start",
        PeerMessage::ScreenUpdate(_) => "a screen update",
        PeerMessage::UpdateAck { .. } => "an update ack",
        PeerMessage::Input(_) => "an input event",
        PeerMessage::Consent(_) => "a consent change",
        PeerMessage::EndSession { .. } => "an end of session",
        PeerMessage::Recorded => "a recording notice",
    }
}

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

/// Plays the script. Returns `Ok(true)` when it ended the session with `end`.
async fn play(
    steps: Vec<Step>,
    input: mpsc::Sender<PeerMessage>,
    viewer: Arc<Mutex<Viewer>>,
    mut changes: watch::Receiver<u64>,
    report: Reporter,
) -> Result<bool, String> {
    for step in steps {
        let at = |e: String| format!("script line {}: {e}", step.line);
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
            _ => {}
        }
    }
    report.event("script_done", json!({}), "The input script has finished.");
    Ok(false)
}

/// Runs the session on a paired connection until it ends. `code` is the code the user read out;
/// its secret part keys the exchange with the agent. Another code than the agent's ends it with
/// [`protocol::e2e::HandshakeError::CodeMismatch`] ("the code did not match"), as an `Err`.
pub async fn run(
    conn: &mut RelayConnection,
    code: &UserCode,
    mut opts: SessionOptions,
    report: Reporter,
    mut user_end: impl std::future::Future<Output = ()> + Unpin,
) -> Result<(Ended, Stats, Arc<Mutex<Viewer>>), LinkError> {
    let connection = conn.connection.clone();
    let exchanged = tokio::select! {
        s = sealed::technician_session(&connection, code, START_TIMEOUT) => s,
        _ = &mut user_end => return Ok((Ended::ByTechnician, Stats::default(), Arc::new(Mutex::new(Viewer::new())))),
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
    if opts.recorder.is_some() {
        // The user is told before being asked to consent.
        tx.send(&PeerMessage::Recorded).await?;
    }
    // Before the screen: the user's consent. The agent may be asking them (up to a minute).
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Ok(m) => m,
                Err(e) if e.is_violation() => {
                    let why = e.to_string();
                    let _ = tx.send(&PeerMessage::EndSession { reason: EndReason::Error(why.clone()) }).await;
                    let _ = tx.finish().await;
                    conn.await_departure(Duration::from_secs(2)).await;
                    return Ok((Ended::Failed(why), Stats::default(), Arc::new(Mutex::new(Viewer::new()))));
                }
                Err(e) => return Err(e.into()),
            },
            ctl = conn.next() => return match ctl {
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
            _ = &mut user_end => return Ok((Ended::ByTechnician, Stats::default(), Arc::new(Mutex::new(Viewer::new())))),
        };
        match msg {
            Some(PeerMessage::Consent(state)) => {
                record(&opts.recorder, |r| r.consent(state));
                opts.tell(SessionEvent::Consent(state));
                report_consent(report, state)
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

    // Writer: acks and input in order on the session stream.
    let (out_tx, mut out_rx) = mpsc::channel::<PeerMessage>(256);
    let input_recorder = opts.recorder.clone();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if let PeerMessage::Input(ev) = &m {
                record(&input_recorder, |r| r.input(ev));
            }
            if tx.send(&m).await.is_err() {
                return;
            }
        }
        let _ = tx.finish().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), tx.stream_mut().stopped()).await;
    });

    let (upd_tx, mut upd_rx) = mpsc::channel(64);
    let reading = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio::spawn(accept_updates(
        connection.clone(),
        keys.update_receiver(),
        upd_tx,
        reading.clone(),
    ));
    // The update later ones wait for, and since when.
    let mut missing: Option<(u64, Instant)> = None;
    drop(keys);
    let viewer = opts
        .viewer
        .clone()
        .unwrap_or_else(|| Arc::new(Mutex::new(Viewer::new())));
    let mut on_frame = opts.on_frame.take();
    let mut live_input = opts.input.take();
    let mut damage: Vec<Damage> = Vec::new();
    let (mut second_updates, mut second_bytes) = (0u32, 0u64);
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let mut script = opts.script.clone();
    let mut script_task: Option<tokio::task::JoinHandle<Result<bool, String>>> = None;
    let mut stats = Stats::default();

    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let ended = loop {
        let script_done = async {
            match script_task.as_mut() {
                Some(t) => t.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = upd_rx.recv() => match item {
                Some(Incoming::Update(u)) => {
                    // As received, before reordering: the replay reorders the same way.
                    record(&opts.recorder, |r| r.update(&u));
                    let tiles = u.ops.len();
                    let bytes = u.tile_data.len();
                    let (applied, waiting_for) = {
                        let mut v = viewer.lock().expect("viewer lock");
                        damage.clear();
                        let applied = v.offer_with_damage(u, &mut damage);
                        if let (Ok(seqs), Some(hook)) = (&applied, on_frame.as_mut()) {
                            if !seqs.is_empty() {
                                hook(v.framebuffer(), &damage);
                            }
                        }
                        (applied, v.missing())
                    };
                    let applied = match applied {
                        Ok(a) => a,
                        Err(e) => break Ended::Failed(e.to_string()),
                    };
                    missing = match (waiting_for, missing) {
                        (Some(seq), Some((was, since))) if seq == was => Some((seq, since)),
                        (Some(seq), _) => Some((seq, Instant::now())),
                        (None, _) => None,
                    };
                    stats.tile_bytes += bytes as u64;
                    second_bytes += bytes as u64;
                    for seq in applied {
                        stats.updates += 1;
                        second_updates += 1;
                        if out_tx.send(PeerMessage::UpdateAck { seq }).await.is_err() {
                            break;
                        }
                        if opts.report_updates {
                            let (width, height) = {
                                let v = viewer.lock().expect("viewer lock");
                                (v.framebuffer().width(), v.framebuffer().height())
                            };
                            let mut fields = json!({
                                "seq": seq, "ops": tiles, "bytes": bytes,
                                "width": width, "height": height,
                            });
                            if opts.hash_frames {
                                fields["sha256"] = json!(viewer.lock().expect("viewer lock").pixels_sha256());
                            }
                            report.event("update", fields, "");
                        }
                    }
                    changed_tx.send_modify(|n| *n += 1);
                    if let Some(steps) = script.take() {
                        script_task = Some(tokio::spawn(play(steps, out_tx.clone(), viewer.clone(), changed_rx.clone(), report)));
                    }
                }
                Some(Incoming::Bad(why)) => break Ended::Failed(why),
                None => break Ended::Failed(format!("the agent left: {}", conn.explain_departure("the connection closed".into()).await?)),
            },
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::Consent(state))) => {
                    record(&opts.recorder, |r| r.consent(state));
                    opts.tell(SessionEvent::Consent(state));
                    report_consent(report, state)
                }
                Ok(Some(PeerMessage::EndSession { reason })) => break Ended::ByAgent(reason),
                Ok(Some(other)) => break Ended::Failed(format!("the agent sent {} on the session stream", kind(&other))),
                Ok(None) => break Ended::Failed(format!("the agent left: {}", conn.explain_departure("it closed the session stream without saying why".into()).await?)),
                Err(e) if e.is_violation() => break Ended::Failed(e.to_string()),
                Err(e) => break Ended::Failed(format!("the agent left: {}", conn.explain_departure(format!("the session stream broke: {e}")).await?)),
            },
            ctl = conn.next() => match ctl {
                Err(LinkError::PeerLeft(reason)) => match last_word(&mut rx).await {
                    Some(r) => break Ended::ByAgent(r),
                    None => break Ended::Failed(format!("the agent left: {reason}")),
                },
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
            ev = async {
                match live_input.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(ev) => {
                    if out_tx.send(PeerMessage::Input(ev)).await.is_err() {
                        break Ended::Failed("the session stream closed".into());
                    }
                }
                // The window closed its side: no more live input, the session goes on.
                None => live_input = None,
            },
            _ = flush.tick() => {
                opts.tell(SessionEvent::Quality {
                    rtt: connection.rtt(),
                    updates_per_sec: std::mem::take(&mut second_updates),
                    bits_per_sec: std::mem::take(&mut second_bytes) * 8,
                });
                record(&opts.recorder, |r| r.tick());
                ticks += 1;
                if let (Some(rec), Some(id), true) = (&opts.recorder, &opts.log_id, ticks.is_multiple_of(CHECKPOINT_SECS)) {
                    let cp = rec.lock().expect("recorder lock").checkpoint();
                    if let Some(cp) = cp {
                        // A broken control stream shows in `conn.next()`; nothing to do here.
                        if let Err(e) = conn.checkpoint(id, cp).await {
                            debug!(error = %e, "checkpoint not sent");
                        }
                    }
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
            _ = &mut user_end => break Ended::ByTechnician,
        }
    };
    if let Some(t) = script_task {
        t.abort();
    }
    acceptor.abort();
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
