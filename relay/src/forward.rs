//! The peer plane of a paired session: every stream one peer opens is spliced onto a new stream
//! to the other, and datagrams are passed on.
//!
//! Splicing is cut-through: each chunk is written on as soon as it is read, and the next read
//! waits until the write has been accepted. The relay therefore holds at most one chunk per
//! stream direction; QUIC flow control on the receiving side then stops the sender, so
//! backpressure reaches from the slow reader back to the writer and no buffer grows with traffic.
//! A reset on one side is passed on as a reset; a receiver that stops reading stops the sender.
//!
//! A [`Tap`] may be given to the server: it is shown every stream spliced and every datagram, and
//! decides what is passed on. The relay itself never sets one (and pays nothing for the option);
//! it exists so that tests can run the real relay as a hostile one that records, alters, replays,
//! drops and injects peer-plane bytes, and check that the sealed peer plane notices.

use std::sync::Arc;

use bytes::Bytes;
use protocol::control::Role;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::task::JoinSet;
use tracing::debug;

use crate::metrics::Metrics;

/// Which spliced stream a [`StreamTap`] sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// The peer whose bytes this direction carries.
    pub from: Role,
    /// The peer that opened the stream.
    pub opened_by: Role,
    /// A bidirectional stream (the session stream) or a unidirectional one (a screen update).
    pub bidirectional: bool,
    /// How many streams of this kind `opened_by` opened in this session before this one.
    pub index: u64,
}

/// Watches (and may change) the peer plane as the relay forwards it. See the module docs.
pub trait Tap: Send + Sync + 'static {
    /// Called for each direction of each spliced stream; `None` leaves it untouched.
    fn stream(&self, info: StreamInfo) -> Option<Box<dyn StreamTap>>;

    /// Called for each datagram from `from`; returns what to pass on instead (`None`: nothing).
    fn datagram(&self, _from: Role, bytes: Bytes) -> Option<Bytes> {
        Some(bytes)
    }
}

/// One direction of one stream, as a [`Tap`] sees it.
pub trait StreamTap: Send {
    /// Bytes as read from the sender; returns what to write to the receiver in their place
    /// (empty: nothing now).
    fn chunk(&mut self, bytes: Bytes) -> Bytes;

    /// The sender ended the stream; returns what to write before the end is passed on.
    fn finish(&mut self) -> Bytes {
        Bytes::new()
    }

    /// Whether a unidirectional stream is passed on at all; `false` stops it at the relay, and
    /// the receiver never learns it was opened.
    fn forward_stream(&self) -> bool {
        true
    }
}

/// The tap of a session, if the server has one.
pub type SharedTap = Option<Arc<dyn Tap>>;

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

/// Priority of a spliced stream that carries a file: below the screen updates' (quinn's
/// default, 0), as its sender set it on the first hop.
pub const FILE_PRIORITY: i32 = -1;

/// Whether the first bytes of a unidirectional stream say it carries a file: a frame's length,
/// then a sealed record whose header (in the clear, bound to the record by its tag) names a
/// file's stream. Only the relay's scheduling follows it: a peer that lies slows itself.
fn carries_file(first: &[u8]) -> bool {
    first
        .get(4..)
        .and_then(protocol::e2e::StreamId::of_record)
        .is_some_and(|id| id.kind == protocol::e2e::StreamKind::File)
}

/// Copies `from` into `to` until `from` ends, passing resets on in both directions; `tap`, if
/// any, sees each chunk and says what is written instead. A unidirectional stream (`uni`: the
/// connection it goes out on) that carries a file is sent on below the screen updates
/// ([`FILE_PRIORITY`]) and paced to the path ([`link::pace`]), so that a large file never holds
/// an update back at the relay or in the queues after it.
pub async fn splice(
    mut from: RecvStream,
    to: SendStream,
    mut tap: Option<Box<dyn StreamTap>>,
    uni: Option<Connection>,
    metrics: Arc<Metrics>,
) {
    let mut guard = ResetOnDrop(Some(to));
    let to = guard.0.as_mut().expect("just set");
    let mut first = uni.is_some();
    // A file goes on only as fast as the next hop takes it without a queue (link::pace).
    let mut pace: Option<link::pace::Yield> = None;
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
                if std::mem::take(&mut first) && carries_file(&chunk.bytes) {
                    let _ = to.set_priority(FILE_PRIORITY);
                    pace = uni.clone().map(link::pace::Yield::new);
                }
                let bytes = match tap.as_mut() {
                    None => chunk.bytes,
                    Some(t) => t.chunk(chunk.bytes),
                };
                if bytes.is_empty() {
                    continue;
                }
                Metrics::add(&metrics.forwarded_bytes, bytes.len() as u64);
                if let Some(p) = pace.as_mut() {
                    p.wait(bytes.len() as u64).await;
                }
                if let Err(e) = to.write_chunk(bytes).await {
                    let code = match e {
                        quinn::WriteError::Stopped(code) => code,
                        _ => VarInt::from_u32(0),
                    };
                    let _ = from.stop(code);
                    return;
                }
            }
            Ok(None) => {
                if let Some(rest) = tap.as_mut().map(|t| t.finish()) {
                    if !rest.is_empty() && to.write_chunk(rest).await.is_err() {
                        return;
                    }
                }
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

/// Forwards everything `from` (the peer in `role`) opens or sends toward `to`, until `from`'s
/// connection ends. Splices run as tasks in `tasks`, so the caller ends them all by dropping it.
pub async fn forward_from(
    from: &Connection,
    to: &Connection,
    role: Role,
    tap: &SharedTap,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<()>,
) {
    let other = match role {
        Role::Agent => Role::Technician,
        Role::Technician => Role::Agent,
    };
    let (mut bi_count, mut uni_count) = (0u64, 0u64);
    let tap_stream = |from: Role, bidirectional: bool, index: u64| {
        tap.as_ref().and_then(|t| {
            t.stream(StreamInfo {
                from,
                opened_by: role,
                bidirectional,
                index,
            })
        })
    };
    loop {
        tokio::select! {
            bi = from.accept_bi() => {
                let Ok((send_back, recv)) = bi else { return };
                let to = to.clone();
                let there = tap_stream(role, true, bi_count);
                let back = tap_stream(other, true, bi_count);
                bi_count += 1;
                let m = metrics.clone();
                tasks.spawn(async move {
                    let Ok((send, recv_back)) = to.open_bi().await else { return };
                    tokio::join!(
                        splice(recv, send, there, None, m.clone()),
                        splice(recv_back, send_back, back, None, m)
                    );
                });
            }
            uni = from.accept_uni() => {
                let Ok(recv) = uni else { return };
                let to = to.clone();
                let there = tap_stream(role, false, uni_count);
                uni_count += 1;
                if there.as_ref().is_some_and(|t| !t.forward_stream()) {
                    let mut recv = recv;
                    let _ = recv.stop(VarInt::from_u32(0));
                    continue;
                }
                let m = metrics.clone();
                tasks.spawn(async move {
                    let Ok(send) = to.open_uni().await else { return };
                    splice(recv, send, there, Some(to.clone()), m).await;
                });
            }
            dgram = from.read_datagram() => {
                let Ok(bytes) = dgram else { return };
                let bytes = match tap {
                    None => bytes,
                    Some(t) => match t.datagram(role, bytes) {
                        Some(b) => b,
                        None => continue,
                    },
                };
                // Datagrams carry only the latest value of something: one that does not fit
                // or finds the send buffer full is dropped, never queued.
                let n = bytes.len() as u64;
                if to.send_datagram(bytes).is_ok() {
                    Metrics::add(&metrics.forwarded_bytes, n);
                }
            }
            // Reap finished splices so the set does not grow with the number of streams.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::carries_file;

    /// A frame's length, then a record header: kind, flags, stream number, counter.
    fn first_bytes(kind: u8) -> Vec<u8> {
        let mut b = 1000u32.to_le_bytes().to_vec();
        b.extend([kind, 0]);
        b.extend(7u64.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend([0; 32]);
        b
    }

    #[test]
    fn only_a_file_stream_goes_below_the_screen_updates() {
        assert!(carries_file(&first_bytes(3)));
        assert!(!carries_file(&first_bytes(2)), "the datagrams' kind");
        assert!(!carries_file(&first_bytes(1)), "a screen update");
        assert!(!carries_file(&first_bytes(0)), "the session stream");
        assert!(!carries_file(&first_bytes(3)[..10]), "too short to tell");
        assert!(!carries_file(&[]));
    }
}
