//! The peer plane of a paired session: every stream one peer opens is spliced onto a new stream
//! to the other, and datagrams are passed on.
//!
//! Splicing is cut-through: each chunk is written on as soon as it is read, and the next read
//! waits until the write has been accepted. The relay therefore holds at most one chunk per
//! stream direction; QUIC flow control on the receiving side then stops the sender, so
//! backpressure reaches from the slow reader back to the writer and no buffer grows with traffic.
//! A reset on one side is passed on as a reset; a receiver that stops reading stops the sender.

use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::task::JoinSet;
use tracing::debug;

/// Largest chunk read at once from a stream.
const CHUNK: usize = 64 * 1024;

/// Resets the stream when dropped unfinished. quinn finishes a dropped stream, which would
/// tell the receiver that everything arrived; a splice cut short (its session ended, its source
/// connection died) must say the opposite.
struct ResetOnDrop(Option<SendStream>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut() {
            let _ = s.reset(VarInt::from_u32(0));
        }
    }
}

/// Copies `from` into `to` until `from` ends, passing resets on in both directions.
pub async fn splice(mut from: RecvStream, to: SendStream) {
    let mut guard = ResetOnDrop(Some(to));
    let to = guard.0.as_mut().expect("just set");
    loop {
        let chunk = tokio::select! {
            r = from.read_chunk(CHUNK, true) => r,
            stopped = to.stopped() => {
                let code = stopped.ok().flatten().unwrap_or(VarInt::from_u32(0));
                let _ = from.stop(code);
                return;
            }
        };
        match chunk {
            Ok(Some(chunk)) => {
                if let Err(e) = to.write_chunk(chunk.bytes).await {
                    let code = match e {
                        quinn::WriteError::Stopped(code) => code,
                        _ => VarInt::from_u32(0),
                    };
                    let _ = from.stop(code);
                    return;
                }
            }
            Ok(None) => {
                let _ = to.finish();
                guard.0 = None;
                return;
            }
            Err(quinn::ReadError::Reset(code)) => {
                let _ = to.reset(code);
                return;
            }
            Err(e) => {
                debug!(error = %e, "stream ended abnormally while forwarding");
                let _ = to.reset(VarInt::from_u32(0));
                return;
            }
        }
    }
}

/// Forwards everything `from` opens or sends toward `to`, until `from`'s connection ends.
/// Splices run as tasks in `tasks`, so the caller ends them all by dropping it.
pub async fn forward_from(from: &Connection, to: &Connection, tasks: &mut JoinSet<()>) {
    loop {
        tokio::select! {
            bi = from.accept_bi() => {
                let Ok((send_back, recv)) = bi else { return };
                let to = to.clone();
                tasks.spawn(async move {
                    let Ok((send, recv_back)) = to.open_bi().await else { return };
                    tokio::join!(splice(recv, send), splice(recv_back, send_back));
                });
            }
            uni = from.accept_uni() => {
                let Ok(recv) = uni else { return };
                let to = to.clone();
                tasks.spawn(async move {
                    let Ok(send) = to.open_uni().await else { return };
                    splice(recv, send).await;
                });
            }
            dgram = from.read_datagram() => {
                let Ok(bytes) = dgram else { return };
                // Datagrams carry only the latest value of something: one that does not fit
                // or finds the send buffer full is dropped, never queued.
                let _ = to.send_datagram(bytes);
            }
            // Reap finished splices so the set does not grow with the number of streams.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
