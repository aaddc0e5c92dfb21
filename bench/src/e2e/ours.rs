//! Tandem's side of the comparison: the technician in this process, joined through the real
//! relay to the real `agent` binary, doing what `technician/src/session.rs` does without a
//! window. It accepts the session stream, runs the end-to-end key exchange with the agent's code
//! and from then on speaks sealed messages (`link::sealed`), as the technician does; it waits for
//! the session start, reads each screen update
//! from its own unidirectional stream, applies them in sequence order, shows the framebuffer to
//! the [`ScreenProbe`] and only then acknowledges; input events go out on the session stream.
//!
//! [`Screen`] is the one place that knows the screen codec.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use link::sealed::{self, SealedSession};
use link::RelayConnection;
use protocol::codec::Decoder;
use protocol::e2e::{UpdateReceiver, UserCode};
use protocol::input::InputEvent;
use protocol::peer::{PeerMessage, ScreenUpdate};
use tokio::sync::mpsc;

use super::probe::ScreenProbe;

/// Updates that arrived ahead of a missing one, at most.
const MAX_PENDING: usize = 64;

/// The technician's image of the agent's screen. To follow a change of the screen codec, change
/// the update type and the decoder here (and `link::sealed::read_update`); nothing else reads
/// updates.
struct Screen {
    fb: Decoder,
}

type Update = ScreenUpdate;

impl Screen {
    fn apply(&mut self, update: &Update) -> anyhow::Result<()> {
        self.fb
            .apply(update)
            .context("a screen update does not apply")
    }

    fn pixels(&self) -> (&[u8], u32) {
        (self.fb.pixels(), self.fb.width())
    }
}

/// What the technician has applied so far: updates, and their tile bytes (the codec's
/// payload, without sealing or QUIC).
#[derive(Debug, Default)]
pub struct Received {
    pub updates: AtomicU64,
    pub tile_bytes: AtomicU64,
}

/// Runs the technician side of a paired session until the agent ends it, the connection goes,
/// or `input` closes, counting what it applies in `received`. Errors are the protocol going
/// wrong.
pub async fn technician(
    conn: RelayConnection,
    code: UserCode,
    probe: Arc<ScreenProbe>,
    mut input: mpsc::UnboundedReceiver<InputEvent>,
    received: Arc<Received>,
) -> anyhow::Result<()> {
    let connection = conn.connection.clone();
    let SealedSession {
        send: mut tx,
        recv: mut rx,
        keys,
    } = sealed::technician_session(&connection, &code, Duration::from_secs(15))
        .await
        .context("the key exchange with the agent failed")?
        .context("the agent did not open the session within 15 s")?;
    loop {
        match rx.recv().await? {
            Some(PeerMessage::Consent(_)) => {}
            Some(PeerMessage::SessionStart { .. }) => break,
            Some(PeerMessage::EndSession { reason }) => {
                bail!("the agent ended the session: {reason}")
            }
            other => bail!("the agent began with {other:?} instead of a session start"),
        }
    }

    let (upd_tx, mut upd_rx) = mpsc::channel::<Update>(64);
    let acceptor = tokio::spawn(accept_updates(
        connection.clone(),
        keys.update_receiver(),
        upd_tx,
    ));
    drop(keys);
    let mut screen = Screen { fb: Decoder::new() };
    let mut pending: BTreeMap<u64, Update> = BTreeMap::new();
    let mut next_seq = 1u64;
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            u = upd_rx.recv() => {
                let Some(u) = u else { break Ok(()) };
                if pending.len() >= MAX_PENDING {
                    break Err(anyhow::anyhow!("more than {MAX_PENDING} updates arrived ahead of update {next_seq}"));
                }
                pending.insert(u.seq, u);
                let mut failed = None;
                while let Some(u) = pending.remove(&next_seq) {
                    if let Err(e) = screen.apply(&u) {
                        failed = Some(e);
                        break;
                    }
                    received.updates.fetch_add(1, Ordering::Relaxed);
                    received
                        .tile_bytes
                        .fetch_add(u.tile_data.len() as u64, Ordering::Relaxed);
                    let (pixels, width) = screen.pixels();
                    probe.observe(pixels, width);
                    if let Err(e) = tx.send(&PeerMessage::UpdateAck { seq: next_seq }).await {
                        failed = Some(anyhow::anyhow!("cannot acknowledge an update: {e}"));
                        break;
                    }
                    next_seq += 1;
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
            ev = input.recv() => match ev {
                Some(ev) => if let Err(e) = tx.send(&PeerMessage::Input(ev)).await {
                    break Err(anyhow::anyhow!("cannot send input to the agent: {e}"));
                },
                None => break Ok(()),
            },
            msg = rx.recv() => match msg {
                Ok(Some(PeerMessage::EndSession { reason })) => break Err(anyhow::anyhow!("the agent ended the session: {reason}")),
                // What the bench has no use for (consent, monitors, participants, control,
                // the pointer's shape) is passed over.
                Ok(Some(_)) => {}
                Ok(None) => break Err(anyhow::anyhow!("the agent closed the session stream")),
                Err(e) => break Err(anyhow::anyhow!("the session stream broke: {e}")),
            },
        }
    };
    acceptor.abort();
    let _ = tx.finish().await;
    conn.close("the bench is done");
    result
}

/// Reads each update stream the agent opens and hands its update over.
async fn accept_updates(
    conn: quinn::Connection,
    receiver: UpdateReceiver,
    out: mpsc::Sender<Update>,
) {
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    while let Ok(stream) = conn.accept_uni().await {
        let out = out.clone();
        let receiver = receiver.clone();
        tokio::spawn(async move {
            if let Ok(u) = sealed::read_update(stream, &receiver).await {
                let _ = out.send(u).await;
            }
        });
    }
}
