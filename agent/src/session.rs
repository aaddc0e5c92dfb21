//! The agent's side of a paired session.
//!
//! The agent opens the session stream and announces the screen. A capture thread owns the
//! screen source and the encoder: it waits for a credit, captures, and encodes the difference
//! between what the viewer holds and the new frame; unchanged frames cost no update. Each update
//! goes out on its own unidirectional stream. There are at most `max_in_flight` updates the
//! technician has not acknowledged; while there are, nothing is captured, and changes in between
//! merge into the next update. So a slow viewer gets fewer, larger updates, never a growing
//! queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use link::channel::{FramedRecv, FramedSend};
use link::report::Reporter;
use link::{LinkError, RelayConnection};
use protocol::peer::{ConsentState, EndReason, PeerMessage, ScreenUpdate};
use protocol::tiles::TileEncoder;
use serde_json::json;
use tokio::sync::mpsc as tmpsc;
use tracing::{debug, warn};

use crate::sink::InputSink;
use crate::source::{Capture, ScreenSource};

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Updates the viewer may have unacknowledged.
    pub max_in_flight: usize,
    /// Report every update sent (JSON event `update_sent`).
    pub report_updates: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 2,
            report_updates: false,
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Ended {
    /// Normally, for this reason.
    Reason(EndReason),
    /// The technician's side went away.
    PeerLeft(String),
}

/// What the capture thread hands the session.
enum Produced {
    Update { update: ScreenUpdate, frame_id: u64 },
    Finished,
    Failed(String),
}

fn capture_thread(
    mut source: Box<dyn ScreenSource>,
    credits: mpsc::Receiver<()>,
    out: tmpsc::Sender<Produced>,
    stop: Arc<AtomicBool>,
) {
    let (w, h) = source.size();
    let mut encoder = TileEncoder::new(w, h);
    let mut seq = 0u64;
    while credits.recv().is_ok() {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let produced = match source.capture() {
                Ok(Capture::Finished) => Produced::Finished,
                Ok(Capture::Frame(f)) => match encoder.encode(f.pixels, f.width, f.height, seq + 1)
                {
                    Some(update) => {
                        seq += 1;
                        Produced::Update {
                            update,
                            frame_id: f.id,
                        }
                    }
                    None => continue,
                },
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

/// Runs the session on a paired connection until it ends.
pub async fn run(
    conn: &mut RelayConnection,
    source: Box<dyn ScreenSource>,
    mut sink: Box<dyn InputSink>,
    opts: SessionOptions,
    report: Reporter,
    mut user_end: impl std::future::Future<Output = ()> + Unpin,
) -> Result<Ended, LinkError> {
    let connection = conn.connection.clone();
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| LinkError::ConnectionLost(e.to_string()))?;
    let mut tx = FramedSend::<PeerMessage>::new(send);
    let mut rx = FramedRecv::<PeerMessage>::peer(recv);
    let (width, height) = source.size();
    tx.send(&PeerMessage::SessionStart {
        width,
        height,
        agent_version: protocol::SOFTWARE_VERSION.into(),
    })
    .await?;
    tx.send(&PeerMessage::Consent(ConsentState::Control))
        .await?;
    report.event(
        "sharing",
        json!({ "source": source.describe(), "width": width, "height": height }),
        format!("Sharing {} with the technician.", source.describe()),
    );

    let (credit_tx, credit_rx) = mpsc::sync_channel::<()>(opts.max_in_flight);
    for _ in 0..opts.max_in_flight {
        credit_tx.send(()).expect("room for the initial credits");
    }
    let (prod_tx, mut prod_rx) = tmpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let capture = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || capture_thread(source, credit_rx, prod_tx, thread_stop))
        .map_err(|e| LinkError::Protocol(format!("cannot start the capture thread: {e}")))?;

    let mut in_flight = 0usize;
    let mut finished = false;
    let mut last_seq = 0u64;
    let ended = loop {
        tokio::select! {
            produced = prod_rx.recv(), if !finished => match produced {
                Some(Produced::Update { update, frame_id }) => {
                    in_flight += 1;
                    last_seq = update.seq;
                    if opts.report_updates {
                        report.event("update_sent", json!({
                            "seq": update.seq, "frame": frame_id, "tiles": update.tiles.len(),
                        }), "");
                    }
                    let c = connection.clone();
                    tokio::spawn(async move {
                        let frame = protocol::wire::encode_frame(&PeerMessage::ScreenUpdate(update));
                        let sent = async {
                            let mut s = c.open_uni().await.ok()?;
                            s.write_all(&frame).await.ok()?;
                            s.finish().ok()
                        };
                        if sent.await.is_none() {
                            debug!("a screen update could not be sent; the connection is ending");
                        }
                    });
                }
                Some(Produced::Finished) | None => {
                    finished = true;
                    if in_flight == 0 {
                        break Ended::Reason(EndReason::SourceFinished);
                    }
                }
                Some(Produced::Failed(e)) => break Ended::Reason(EndReason::Error(format!("screen capture failed: {e}"))),
            },
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::UpdateAck { seq })) => {
                    if in_flight == 0 || seq > last_seq {
                        break Ended::Reason(EndReason::Error(format!("the technician acknowledged update {seq}, which was never sent")));
                    }
                    in_flight -= 1;
                    let _ = credit_tx.try_send(());
                    if finished && in_flight == 0 {
                        break Ended::Reason(EndReason::SourceFinished);
                    }
                }
                Ok(Some(PeerMessage::Input(event))) => {
                    if let Err(e) = sink.inject(&event) {
                        warn!(error = %e, "input could not be injected");
                        break Ended::Reason(EndReason::Error(e.to_string()));
                    }
                }
                Ok(Some(PeerMessage::EndSession { reason })) => break Ended::Reason(reason),
                Ok(Some(other)) => {
                    break Ended::Reason(EndReason::Error(format!("the technician sent {other:?}, which an agent does not accept")));
                }
                Ok(None) => break Ended::PeerLeft(conn.explain_departure("the technician closed the session stream".into()).await?),
                Err(e) if e.is_violation() => break Ended::Reason(EndReason::Error(format!("the technician sent a malformed message: {e}"))),
                Err(e) => break Ended::PeerLeft(conn.explain_departure(format!("the session stream broke: {e}")).await?),
            },
            ctl = conn.next() => match ctl {
                Err(LinkError::PeerLeft(reason)) => break Ended::PeerLeft(reason.to_string()),
                Err(e) => { stop_capture(&stop, capture, credit_tx); let _ = sink.release_all(); return Err(e) },
                Ok(other) => {
                    stop_capture(&stop, capture, credit_tx);
                    let _ = sink.release_all();
                    return Err(LinkError::Protocol(format!("unexpected control message during a session: {other:?}")));
                }
            },
            _ = &mut user_end => break Ended::Reason(EndReason::UserEnded),
        }
    };
    stop_capture(&stop, capture, credit_tx);
    if let Err(e) = sink.release_all() {
        warn!(error = %e, "could not release held input");
    }
    if let Ended::Reason(reason) = &ended {
        // Tell the technician why, unless it was the technician who ended it.
        if !matches!(reason, EndReason::TechnicianEnded) {
            let _ = tx
                .send(&PeerMessage::EndSession {
                    reason: reason.clone(),
                })
                .await;
            let _ = tx.finish();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), tx.stream_mut().stopped())
                    .await;
        }
    }
    Ok(ended)
}

fn stop_capture(
    stop: &AtomicBool,
    capture: std::thread::JoinHandle<()>,
    credits: mpsc::SyncSender<()>,
) {
    stop.store(true, Ordering::Relaxed);
    drop(credits);
    // The thread notices within one capture; it is not joined, so a capture blocked on a slow
    // screen cannot hold up the end of the session.
    drop(capture);
}
