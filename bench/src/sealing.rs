//! What the end-to-end channel costs, for `bench relay`: the CPU time to seal and open one
//! screen update and one small message (`protocol::e2e`, on one core, no I/O), and the two ends
//! of a relayed session that sends screen updates as the agent and technician do, either plain
//! (a framed peer message, as before sealing) or sealed (`link::sealed`), so that the two can be
//! compared through the same relay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use link::sealed::UPDATE_RECORD;
use protocol::e2e::{
    Context as E2eContext, Handshake, Opener, Sealer, SessionKeys, StreamId, UpdateReceiver,
    UserCode,
};
use protocol::framing::FrameReader;
use protocol::peer::{PeerMessage, ScreenUpdate};
use quinn::{Connection, RecvStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// CPU time of this thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec it is given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Seal-and-open CPU time per message.
pub struct SealCost {
    /// One screen update on its own stream: the stream's keys derived, sealed, opened.
    pub update: Duration,
    /// One 1 KB message on the session stream.
    pub message: Duration,
}

/// Measures [`SealCost`] with `update_size`-byte updates and 1 KB messages, repeating each for
/// about `budget` of CPU time after a warm-up.
pub fn seal_cost(update_size: usize, budget: Duration) -> SealCost {
    let secret = [0x42u8; 32];
    let payload: Vec<u8> = (0..update_size).map(|i| (i % 251) as u8).collect();
    let mut frame = Vec::with_capacity(update_size + 64);
    let mut seq = 0u64;
    let mut one_update = || {
        seq += 1;
        let mut sealer = Sealer::new(&secret, StreamId::update(seq));
        let mut opener = Opener::new(&secret, StreamId::update(seq));
        let records = payload.len().div_ceil(UPDATE_RECORD);
        let mut opened = 0;
        for (i, chunk) in payload.chunks(UPDATE_RECORD).enumerate() {
            frame.clear();
            sealer
                .seal_frame(chunk, i + 1 == records, &mut frame)
                .expect("a fresh sealer seals");
            opened += opener
                .open_in_place(&mut frame[4..])
                .expect("a sealed record opens")
                .len();
        }
        assert_eq!(opened, update_size);
    };
    let update = per_op(&mut one_update, budget);

    let small = &payload[..1024];
    let mut sealer = Sealer::new(&secret, StreamId::SESSION);
    let mut opener = Opener::new(&secret, StreamId::SESSION);
    let mut one_message = || {
        frame.clear();
        sealer
            .seal_frame(small, false, &mut frame)
            .expect("the session sealer seals");
        let plain = opener
            .open_in_place(&mut frame[4..])
            .expect("a sealed message opens");
        assert_eq!(plain.len(), 1024);
    };
    let message = per_op(&mut one_message, budget);
    SealCost { update, message }
}

/// CPU time per call of `op`: a warm-up, then as many calls as fit in `budget`.
fn per_op(op: &mut dyn FnMut(), budget: Duration) -> Duration {
    for _ in 0..10 {
        op();
    }
    let start = thread_cpu();
    let mut n = 0u32;
    while thread_cpu() - start < budget || n < 10 {
        op();
        n += 1;
    }
    (thread_cpu() - start) / n
}

/// Both ends' keys of a session, from a real exchange run in memory.
pub fn session_keys() -> anyhow::Result<(SessionKeys, SessionKeys)> {
    let code = UserCode::parse("123 456 789 - 4821").context("the bench's code")?;
    let ctx = E2eContext::new(protocol::PROTOCOL_VERSION, code.rendezvous().digits());
    let mut agent = Handshake::agent_with_code(&ctx, code.secret());
    let mut tech = Handshake::technician_with_code(&ctx, code.secret());
    for _ in 0..4 {
        while let Some(m) = agent.poll_transmit() {
            tech.handle(m)
                .context("the technician's side of the exchange")?;
        }
        while let Some(m) = tech.poll_transmit() {
            agent
                .handle(m)
                .context("the agent's side of the exchange")?;
        }
    }
    Ok((
        agent.take_keys().context("the agent's keys")?,
        tech.take_keys().context("the technician's keys")?,
    ))
}

/// How the updates of a throughput run travel.
pub enum Updates {
    /// A framed peer message, as before the channel was sealed.
    Plain,
    /// Sealed with these keys (agent side) / opened with this receiver (technician side).
    Sealed(Arc<SessionKeys>),
}

/// The technician side of an update run: reads each update stream, decodes (and opens) the
/// update, adds its tile data to `received` and notifies `arrived`.
pub async fn receive_updates(
    conn: Connection,
    receiver: Option<UpdateReceiver>,
    received: Arc<AtomicU64>,
    arrived: Arc<Notify>,
) {
    let receiver = receiver.map(|r| Arc::new(Mutex::new(r)));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            uni = conn.accept_uni() => {
                let Ok(recv) = uni else { break };
                let (receiver, received, arrived) = (receiver.clone(), received.clone(), arrived.clone());
                tasks.spawn(async move {
                    let update = match receiver {
                        Some(r) => link::sealed::read_update(recv, &r).await.ok(),
                        None => read_plain(recv).await,
                    };
                    if let Some(u) = update {
                        received.fetch_add(u.tile_data.len() as u64, Ordering::Relaxed);
                        arrived.notify_one();
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Sends one frame on a stream of its own, as updates travelled before sealing.
async fn send_plain(agent: &Connection, frame: &[u8]) -> anyhow::Result<()> {
    let mut s = agent.open_uni().await.context("cannot open a stream")?;
    s.write_all(frame).await.context("cannot send an update")?;
    s.finish().context("cannot finish an update stream")?;
    Ok(())
}

async fn read_plain(recv: RecvStream) -> Option<ScreenUpdate> {
    let mut reader = FrameReader::new(recv, protocol::wire::PEER_MAX_FRAME);
    let frame = reader.next_frame().await.ok()??;
    match protocol::wire::decode_peer::<PeerMessage>(frame).ok()? {
        PeerMessage::ScreenUpdate(u) => Some(u),
        _ => None,
    }
}

/// Payload bytes that arrived and how long it took.
pub struct Run {
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Sends updates of `size` bytes of tile data, each on its own stream, for `duration`, as the
/// agent does (the update made, sealed if so, sent by a task of its own); then waits until the
/// technician side has taken them all. `seq` is the session's last update number so far (a
/// number is used once per session).
pub async fn send_updates(
    agent: &Connection,
    how: &Updates,
    seq: &mut u64,
    size: usize,
    received: &AtomicU64,
    duration: Duration,
) -> anyhow::Result<Run> {
    let tile_data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let already = received.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut in_flight = JoinSet::new();
    while start.elapsed() < duration {
        *seq += 1;
        let update = ScreenUpdate {
            seq: *seq,
            width: 1920,
            height: 1080,
            ops: Vec::new(),
            tile_data: tile_data.clone(),
        };
        // At most a few updates on their way, as the agent keeps them.
        while in_flight.len() >= 8 {
            in_flight.join_next().await;
        }
        let c = agent.clone();
        match how {
            Updates::Plain => {
                let frame = protocol::wire::encode_frame(&PeerMessage::ScreenUpdate(update));
                in_flight.spawn(async move { send_plain(&c, &frame).await });
            }
            Updates::Sealed(keys) => {
                let outgoing = link::sealed::prepare_update(keys, update);
                in_flight.spawn(async move {
                    link::sealed::send_update(&c, outgoing)
                        .await
                        .map_err(anyhow::Error::from)
                });
            }
        }
        sent += size as u64;
    }
    while let Some(r) = in_flight.join_next().await {
        r.context("a sending task failed")?
            .context("cannot send an update")?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) - already < sent {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the technician side took only {} of {sent} bytes within 30 s",
            received.load(Ordering::Relaxed) - already
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Run {
        bytes: sent,
        elapsed: start.elapsed(),
    })
}

/// One update of `size` bytes, alone on the path: the time from making it (encoding, sealing if
/// so) until the technician side has it decoded (and opened).
pub async fn update_latency(
    agent: &Connection,
    how: &Updates,
    seq: &mut u64,
    size: usize,
    arrived: &Notify,
) -> anyhow::Result<Duration> {
    let tile_data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    *seq += 1;
    let update = ScreenUpdate {
        seq: *seq,
        width: 1920,
        height: 1080,
        ops: Vec::new(),
        tile_data,
    };
    let start = Instant::now();
    match how {
        Updates::Plain => {
            let frame = protocol::wire::encode_frame(&PeerMessage::ScreenUpdate(update));
            send_plain(agent, &frame).await?;
        }
        Updates::Sealed(keys) => {
            let outgoing = link::sealed::prepare_update(keys, update);
            link::sealed::send_update(agent, outgoing).await?;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .context("an update did not arrive within 10 s")?;
    Ok(start.elapsed())
}
