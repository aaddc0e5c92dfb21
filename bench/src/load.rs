//! `bench load`: many paired sessions at once through one real `relay` process, each carrying
//! what a live session carries, beside a crowd of stalled attackers; and the same traffic on a
//! few direct QUIC connections in the same process at the same time, as the peer the relay is
//! measured against.
//!
//! Each session is simulated in this process as the agent and technician run it: the agent
//! sends screen updates, each sealed on a stream of its own (`link::sealed::send_update`), the
//! technician opens them and acknowledges each on the sealed session stream, and sends input
//! events (pointer moves) on that stream at a steady rate. Keys come from a real key exchange
//! run in memory ([`crate::sealing::session_keys`]). Every update carries the time it was made
//! and every input event the time it was sent, so the receiving side (same process, same clock)
//! takes one-way latencies. The attackers connect from another loopback address, open the
//! control stream, write half a frame header and say nothing more; when the relay cuts one off
//! it connects again.
//!
//! Phases: the relay's memory with one session and with all of them paired and idle (session
//! stream open, no traffic); then the traffic for `--seconds`, the first [`WARMUP`] not counted,
//! with the relay's CPU time and memory read from `/proc` around it; then every session must
//! have delivered everything it sent, in order, authenticated, with its connections still open.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use link::sealed::{SealedRecv, SealedSend};
use link::tls::Fingerprint;
use link::transport;
use protocol::e2e::SessionKeys;
use protocol::framing::FrameReader;
use protocol::input::InputEvent;
use protocol::peer::{PeerMessage, ScreenUpdate};
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::procstat;
use crate::relay::{
    client_endpoints, open_many, open_pair, relay_binary, settled_rss, within, RelayProcess,
};
use crate::report::{progress, Report};
use crate::sealing::session_keys;

const BENCH: &str = "load";

/// The start of each session's traffic not counted in its latencies: connections and streams
/// reach their steady windows and the first updates' keys are derived.
const WARMUP: Duration = Duration::from_secs(3);
/// After the traffic stops, how long the sessions have to deliver what is still on its way.
const DRAIN: Duration = Duration::from_secs(20);
/// Sessions (and attackers) set up at once.
const OPEN_CONCURRENCY: usize = 32;
/// Client endpoints per side: the sessions' connections are spread over them, as many
/// machines' would be over their own sockets.
const ENDPOINTS: usize = 4;
/// Updates a session's agent keeps on their way at once; beyond that it skips a frame, as the
/// agent merges changes while the viewer is behind.
const IN_FLIGHT: usize = 8;
/// Bytes at the start of each update's tile data that carry the time it was made.
const STAMP: usize = 8;

/// Load bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Paired sessions through the relay
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub sessions: u32,
    /// Stalled attacker connections beside them, from another address
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub attackers: u32,
    /// Sessions on direct connections (no relay) with the same traffic at the same time, the
    /// peer the relay's added latency is measured against
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub direct: u32,
    /// Seconds of traffic, the first 3 not counted
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub seconds: u64,
    /// Screen-update traffic of each session, kbit/s of payload
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub kbit: u32,
    /// Screen updates a second of each session (the payload rate is divided among them)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub updates: u32,
    /// Input events a second the technician of each session sends
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub inputs: u32,
}

/// The traffic every session runs, and when.
#[derive(Clone, Copy)]
struct Plan {
    /// The bench's clock: stamps are microseconds since this instant.
    epoch: Instant,
    /// Latencies are counted from here on.
    measure_from: Instant,
    /// No update or input is made from here on.
    stop_at: Instant,
    update_every: Duration,
    update_bytes: usize,
    input_every: Duration,
}

impl Plan {
    fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The one-way latency of something stamped `sent`, if it counts.
    fn latency(&self, sent: u64) -> Option<u32> {
        let now = Instant::now();
        if now < self.measure_from {
            return None;
        }
        let now_us = now.duration_since(self.epoch).as_micros() as u64;
        Some(now_us.saturating_sub(sent).min(u64::from(u32::MAX)) as u32)
    }
}

/// What one session (or all of a path's sessions, merged) measured.
#[derive(Default)]
struct Tally {
    /// One-way latencies in microseconds.
    input_us: Vec<u32>,
    update_us: Vec<u32>,
    updates_sent: u64,
    updates_skipped: u64,
    updates_received: u64,
    acks_received: u64,
    inputs_sent: u64,
    inputs_received: u64,
    /// Update payload bytes that arrived (tile data).
    update_bytes: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.input_us.extend(other.input_us);
        self.update_us.extend(other.update_us);
        self.updates_sent += other.updates_sent;
        self.updates_skipped += other.updates_skipped;
        self.updates_received += other.updates_received;
        self.acks_received += other.acks_received;
        self.inputs_sent += other.inputs_sent;
        self.inputs_received += other.inputs_received;
        self.update_bytes += other.update_bytes;
    }
}

/// One session's two connections, either through the relay or direct. `_hold` keeps the relay
/// connections' control streams open: dropping them would end the session.
struct Pair {
    agent: Connection,
    technician: Connection,
    _hold: Option<(link::RelayConnection, link::RelayConnection)>,
}

impl Pair {
    fn open(&self) -> bool {
        self.agent.close_reason().is_none() && self.technician.close_reason().is_none()
    }
}

/// A session ready for traffic: its connections, keys and sealed session stream at both ends.
struct Ready {
    pair: Pair,
    agent_keys: SessionKeys,
    technician_keys: SessionKeys,
    agent_send: SealedSend,
    agent_recv: SealedRecv,
    technician_send: SealedSend,
    technician_recv: SealedRecv,
}

/// Opens the session stream as the agent does (the first message announces it) and takes it on
/// the technician's side.
async fn start_session(pair: Pair) -> anyhow::Result<Ready> {
    let (agent_keys, technician_keys) = session_keys()?;
    let (send, recv) = pair
        .agent
        .open_bi()
        .await
        .context("cannot open the session stream")?;
    let mut agent_send = SealedSend::new(send, agent_keys.session_sealer());
    agent_send
        .send(&PeerMessage::SessionStart {
            width: 1920,
            height: 1080,
            agent_version: "bench".into(),
        })
        .await
        .context("cannot start the session stream")?;
    let (tsend, trecv) = pair
        .technician
        .accept_bi()
        .await
        .context("the session stream did not arrive")?;
    let mut technician_recv = SealedRecv::new(
        FrameReader::new(trecv, link::sealed::SEALED_MAX_FRAME),
        technician_keys.session_opener(),
    );
    match technician_recv.recv().await {
        Ok(Some(PeerMessage::SessionStart { .. })) => {}
        other => anyhow::bail!("the session stream began with {other:?}"),
    }
    let agent_recv = SealedRecv::new(
        FrameReader::new(recv, link::sealed::SEALED_MAX_FRAME),
        agent_keys.session_opener(),
    );
    let technician_send = SealedSend::new(tsend, technician_keys.session_sealer());
    Ok(Ready {
        pair,
        agent_keys,
        technician_keys,
        agent_send,
        agent_recv,
        technician_send,
        technician_recv,
    })
}

/// Runs `plan` on one session and checks that everything sent arrived. `Err` is a lost session.
async fn run_session(session: Ready, plan: Plan, phase: Duration) -> Result<Tally, String> {
    let Ready {
        pair,
        agent_keys,
        technician_keys,
        mut agent_send,
        mut agent_recv,
        mut technician_send,
        mut technician_recv,
    } = session;
    // Each session starts its beat at its own point in the period, as real ones do.
    tokio::time::sleep(phase).await;

    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<u64>();
    let updates_sent = Arc::new(AtomicU64::new(u64::MAX));
    let agent_conn = pair.agent.clone();
    let technician_conn = pair.technician.clone();

    // The agent: an update per beat, each sealed on a stream of its own.
    let agent_updates = async {
        let mut tally = Tally::default();
        let mut in_flight = JoinSet::new();
        let mut beat = tokio::time::interval(plan.update_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        let filler: Vec<u8> = (0..plan.update_bytes)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        loop {
            beat.tick().await;
            if Instant::now() >= plan.stop_at {
                break;
            }
            while let Some(done) = in_flight.try_join_next() {
                done.map_err(|e| format!("an update task failed: {e}"))??;
            }
            if in_flight.len() >= IN_FLIGHT {
                tally.updates_skipped += 1;
                continue;
            }
            seq += 1;
            let mut tile_data = filler.clone();
            tile_data[..STAMP].copy_from_slice(&plan.stamp().to_le_bytes());
            let update = ScreenUpdate {
                seq,
                width: 1920,
                height: 1080,
                ops: Vec::new(),
                tile_data,
            };
            let outgoing = link::sealed::prepare_update(&agent_keys, update);
            let conn = agent_conn.clone();
            in_flight.spawn(async move {
                link::sealed::send_update(&conn, outgoing)
                    .await
                    .map_err(|e| format!("cannot send an update: {e}"))
            });
            tally.updates_sent += 1;
        }
        while let Some(done) = in_flight.join_next().await {
            done.map_err(|e| format!("an update task failed: {e}"))??;
        }
        updates_sent.store(tally.updates_sent, Ordering::Release);
        Ok::<_, String>(tally)
    };

    // The agent: input events and acknowledgements from the technician, until it finishes.
    let agent_reader = async {
        let mut tally = Tally::default();
        let mut expected = 0u32;
        loop {
            match agent_recv.recv().await {
                Ok(Some(PeerMessage::Input(InputEvent::PointerMove { x, y }))) => {
                    if y != expected {
                        return Err(format!("input {y} arrived where {expected} was due"));
                    }
                    expected += 1;
                    tally.inputs_received += 1;
                    tally.input_us.extend(plan.latency(u64::from(x)));
                }
                Ok(Some(PeerMessage::UpdateAck { .. })) => tally.acks_received += 1,
                Ok(Some(other)) => return Err(format!("the agent got {other:?}")),
                Ok(None) => return Ok(tally),
                Err(e) => return Err(format!("the agent's session stream: {e}")),
            }
        }
    };

    // The technician: every update stream, opened and checked, each acknowledged.
    let technician_updates = async {
        let mut tally = Tally::default();
        let receiver = Arc::new(Mutex::new(technician_keys.update_receiver()));
        let mut reading = JoinSet::new();
        let deadline = plan.stop_at + DRAIN;
        loop {
            let total = updates_sent.load(Ordering::Acquire);
            if tally.updates_received >= total {
                break;
            }
            let uni = tokio::select! {
                uni = technician_conn.accept_uni() => uni,
                Some(done) = reading.join_next(), if !reading.is_empty() => {
                    let update: ScreenUpdate = done.map_err(|e| format!("a reading task failed: {e}"))??;
                    tally.updates_received += 1;
                    tally.update_bytes += update.tile_data.len() as u64;
                    let mut stamp = [0u8; STAMP];
                    stamp.copy_from_slice(&update.tile_data[..STAMP]);
                    tally.update_us.extend(plan.latency(u64::from_le_bytes(stamp)));
                    let _ = ack_tx.send(update.seq);
                    continue;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Err(format!(
                        "{} of {total} updates arrived within {} s of the end",
                        tally.updates_received,
                        DRAIN.as_secs()
                    ));
                }
            };
            let recv = uni.map_err(|e| format!("the technician's connection: {e}"))?;
            let receiver = receiver.clone();
            reading.spawn(async move {
                link::sealed::read_update(recv, &receiver)
                    .await
                    .map_err(|e| format!("an update stream: {e}"))
            });
        }
        drop(ack_tx);
        Ok::<_, String>(tally)
    };

    // The technician: input events at their rate, and the acknowledgements; then the end.
    let technician_writer = async {
        let mut tally = Tally::default();
        let mut beat = tokio::time::interval(plan.input_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut inputs_open, mut acks_open) = (true, true);
        while inputs_open || acks_open {
            let msg = tokio::select! {
                _ = beat.tick(), if inputs_open => {
                    if Instant::now() >= plan.stop_at {
                        inputs_open = false;
                        continue;
                    }
                    let n = tally.inputs_sent as u32;
                    tally.inputs_sent += 1;
                    PeerMessage::Input(InputEvent::PointerMove {
                        x: plan.stamp() as u32,
                        y: n,
                    })
                }
                ack = ack_rx.recv(), if acks_open => match ack {
                    Some(seq) => PeerMessage::UpdateAck { seq },
                    // Every update is in and acknowledged.
                    None => {
                        acks_open = false;
                        continue;
                    }
                },
            };
            technician_send
                .send(&msg)
                .await
                .map_err(|e| format!("cannot send on the session stream: {e}"))?;
        }
        technician_send
            .finish()
            .await
            .map_err(|e| format!("cannot finish the session stream: {e}"))?;
        Ok::<_, String>(tally)
    };

    let (sent, read, received, wrote) = tokio::join!(
        agent_updates,
        agent_reader,
        technician_updates,
        technician_writer
    );
    let mut tally = sent?;
    tally.merge(read?);
    tally.merge(received?);
    tally.merge(wrote?);
    if tally.inputs_received != tally.inputs_sent {
        return Err(format!(
            "{} of {} input events arrived",
            tally.inputs_received, tally.inputs_sent
        ));
    }
    if tally.acks_received != tally.updates_received {
        return Err(format!(
            "{} of {} acknowledgements arrived",
            tally.acks_received, tally.updates_received
        ));
    }
    // The agent's direction ends too, so the technician's reader is not left waiting.
    let _ = agent_send.finish().await;
    let _ = technician_recv.recv().await;
    if !pair.open() {
        return Err("a connection closed during the session".into());
    }
    drop(pair);
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------
// Attackers

/// What the attackers managed and what the relay did to them.
#[derive(Default)]
struct Attacks {
    connected: AtomicU64,
    refused: AtomicU64,
    cut_off: AtomicU64,
}

/// Connects, opens the control stream, writes half a frame header, and waits; once the relay
/// closes the connection, connects again, until `stop_at`.
async fn attacker(endpoint: Endpoint, relay: SocketAddr, stop_at: Instant, attacks: Arc<Attacks>) {
    while Instant::now() < stop_at {
        let conn = match endpoint.connect(relay, "relay") {
            Ok(connecting) => connecting.await,
            Err(_) => return,
        };
        let Ok(conn) = conn else {
            attacks.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        attacks.connected.fetch_add(1, Ordering::Relaxed);
        if let Ok((mut send, _recv)) = conn.open_bi().await {
            let _ = send.write_all(&[0x10, 0]).await;
            tokio::select! {
                _ = conn.closed() => {
                    attacks.cut_off.fetch_add(1, Ordering::Relaxed);
                }
                _ = tokio::time::sleep_until(stop_at.into()) => {
                    conn.close(0u32.into(), b"bench done");
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Direct sessions

/// A server endpoint of this process standing for the technician on the direct path, with a
/// fresh certificate its clients pin.
struct DirectServer {
    endpoint: Endpoint,
    addr: SocketAddr,
    pin: Fingerprint,
}

impl DirectServer {
    fn start() -> anyhow::Result<Self> {
        let (cfg, pin) = crate::relay::direct_server_config(transport::CLIENT_IDLE_TIMEOUT, None)?;
        let endpoint = transport::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), Some(cfg))
            .context("cannot open a server endpoint on loopback")?;
        let addr = endpoint.local_addr().context("the server's address")?;
        Ok(Self {
            endpoint,
            addr,
            pin,
        })
    }

    async fn pair(&self, client: &Endpoint) -> anyhow::Result<Pair> {
        let connecting = client
            .connect(self.addr, "localhost")
            .context("cannot start the handshake")?;
        let accepting = async {
            let incoming = self.endpoint.accept().await.context("the server closed")?;
            incoming.await.context("the server's handshake failed")
        };
        let (agent, technician) = tokio::join!(connecting, accepting);
        Ok(Pair {
            agent: agent.context("the direct handshake failed")?,
            technician: technician?,
            _hold: None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// Opens `count` sessions through the relay, [`OPEN_CONCURRENCY`] at a time, with their
/// session streams started.
async fn open_relayed(relay: &RelayProcess, count: u32) -> anyhow::Result<Vec<Ready>> {
    let agents = client_endpoints(relay.addr, relay.fingerprint, ENDPOINTS)?;
    let technicians = client_endpoints(relay.addr, relay.fingerprint, ENDPOINTS)?;
    open_many(BENCH, count, OPEN_CONCURRENCY, "sessions paired", |i| {
        let i = i as usize;
        let (a, t) = (
            agents[i % ENDPOINTS].clone(),
            technicians[i % ENDPOINTS].clone(),
        );
        let (addr, token) = (relay.addr, relay.token.clone());
        async move {
            within(Duration::from_secs(30), "pairing a session", async {
                let (agent, technician) = open_pair(&a, &t, addr, &token).await?;
                start_session(Pair {
                    agent: agent.connection.clone(),
                    technician: technician.connection.clone(),
                    _hold: Some((agent, technician)),
                })
                .await
            })
            .await
        }
    })
    .await
}

async fn open_direct(server: &DirectServer, count: u32) -> anyhow::Result<Vec<Ready>> {
    let client = link::client::client_endpoint(server.addr, server.pin)
        .context("cannot open the direct clients' endpoint")?;
    let mut ready = Vec::new();
    for _ in 0..count {
        let pair = within(Duration::from_secs(10), "a direct handshake", async {
            server.pair(&client).await
        })
        .await?;
        ready.push(start_session(pair).await?);
    }
    Ok(ready)
}

/// Runs every session of one path; returns the merged tally and the lost sessions' errors.
fn spawn_path(
    sessions: Vec<Ready>,
    plan: Plan,
    tasks: &mut JoinSet<(bool, Result<Tally, String>)>,
    relayed: bool,
) {
    let n = sessions.len().max(1) as u32;
    for (i, s) in sessions.into_iter().enumerate() {
        let phase = plan.update_every * (i as u32 % n) / n;
        tasks.spawn(async move { (relayed, run_session(s, plan, phase).await) });
    }
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// The figures of one path.
struct PathResult {
    tally: Tally,
    lost: Vec<String>,
    sessions: u32,
}

impl PathResult {
    fn new(sessions: u32) -> Self {
        Self {
            tally: Tally::default(),
            lost: Vec::new(),
            sessions,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let relay_bin = relay_binary()?;
    progress(BENCH, "starting the relay");
    let relay = RelayProcess::start(&relay_bin).await?;

    // Memory: one session, then all of them, paired and idle.
    let mut relayed = open_relayed(&relay, 1).await?;
    let before_kib = settled_rss(relay.pid).await?;
    progress(
        BENCH,
        format!(
            "memory: pairing {} sessions ({} connections)",
            args.sessions,
            args.sessions * 2
        ),
    );
    relayed.extend(open_relayed(&relay, args.sessions).await?);
    progress(BENCH, "memory: letting the relay settle");
    let idle_kib = settled_rss(relay.pid).await?;
    anyhow::ensure!(
        relayed.iter().all(|s| s.pair.open()),
        "a session closed while idle; the memory figure would be wrong"
    );
    // The one measured before the others is not part of the load.
    drop(relayed.remove(0));

    progress(BENCH, format!("starting {} direct sessions", args.direct));
    let server = DirectServer::start()?;
    let direct = open_direct(&server, args.direct).await?;

    let epoch = Instant::now();
    let plan = Plan {
        epoch,
        measure_from: epoch + WARMUP,
        stop_at: epoch + Duration::from_secs(args.seconds),
        update_every: Duration::from_secs(1) / args.updates,
        update_bytes: ((u64::from(args.kbit) * 1000 / 8) / u64::from(args.updates))
            .max(STAMP as u64) as usize,
        input_every: Duration::from_secs(1) / args.inputs,
    };

    progress(
        BENCH,
        format!("starting {} attackers from 127.0.0.2", args.attackers),
    );
    let attacks = Arc::new(Attacks::default());
    let attack_ep = link::client::client_endpoint_bound(
        SocketAddr::from(([127, 0, 0, 2], 0)),
        relay.fingerprint,
    )
    .context("cannot open the attackers' endpoint")?;
    let mut attackers = JoinSet::new();
    for _ in 0..args.attackers {
        attackers.spawn(attacker(
            attack_ep.clone(),
            relay.addr,
            plan.stop_at,
            attacks.clone(),
        ));
    }

    progress(
        BENCH,
        format!(
            "traffic: {} relayed and {} direct sessions for {} s, each {} updates/s of {} B and {} input events/s",
            relayed.len(),
            direct.len(),
            args.seconds,
            args.updates,
            plan.update_bytes,
            args.inputs
        ),
    );
    let mut relay_result = PathResult::new(relayed.len() as u32);
    let mut direct_result = PathResult::new(direct.len() as u32);
    let mut tasks = JoinSet::new();
    spawn_path(relayed, plan, &mut tasks, true);
    spawn_path(direct, plan, &mut tasks, false);
    tokio::time::sleep_until(plan.measure_from.into()).await;
    let cpu_start = procstat::cpu_time(relay.pid)?;
    let own_start = procstat::cpu_time(std::process::id())?;
    let drops_start = procstat::udp_drops(relay.addr.port())?;
    let measured_start = Instant::now();
    let mut peak_kib = 0u64;
    let mut sampler = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < plan.stop_at {
        sampler.tick().await;
        peak_kib = peak_kib.max(procstat::rss_kib(relay.pid)?);
    }
    let measured = measured_start.elapsed();
    let relay_cpu = procstat::cpu_time(relay.pid)? - cpu_start;
    let own_cpu = procstat::cpu_time(std::process::id())? - own_start;
    let loaded_kib = procstat::rss_kib(relay.pid)?;
    let drops = procstat::udp_drops(relay.addr.port())? - drops_start;
    progress(
        BENCH,
        "traffic stopped; waiting for every session to deliver",
    );
    while let Some(done) = tasks.join_next().await {
        let (relayed, outcome) = done.context("a session task failed")?;
        let path = if relayed {
            &mut relay_result
        } else {
            &mut direct_result
        };
        match outcome {
            Ok(t) => path.tally.merge(t),
            Err(e) => path.lost.push(e),
        }
    }
    while attackers.join_next().await.is_some() {}
    relay.stop().await;

    for path in [&mut relay_result, &mut direct_result] {
        path.tally.input_us.sort_unstable();
        path.tally.update_us.sort_unstable();
    }
    let figures = Figures {
        args: &args,
        plan,
        relay: relay_result,
        direct: direct_result,
        before_kib,
        idle_kib,
        loaded_kib,
        peak_kib,
        relay_cpu,
        own_cpu,
        measured,
        drops,
        attacks: &attacks,
    };
    Ok(figures.report())
}

struct Figures<'a> {
    args: &'a Args,
    plan: Plan,
    relay: PathResult,
    direct: PathResult,
    before_kib: u64,
    idle_kib: u64,
    loaded_kib: u64,
    peak_kib: u64,
    relay_cpu: Duration,
    own_cpu: Duration,
    measured: Duration,
    drops: u64,
    attacks: &'a Attacks,
}

impl Figures<'_> {
    fn report(&self) -> Report {
        let mut r = Report::new(BENCH);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let a = self.args;
        r.note(format!(
            "{} sessions through one relay process and {} direct (no relay) at the same time, all simulated in this \
             process on loopback; {cpus} CPU(s) shared by this process and the relay",
            self.relay.sessions, self.direct.sessions
        ));
        r.note(format!(
            "each session: {} sealed screen updates/s of {} B ({} kbit/s), each on its own stream and acknowledged \
             on the sealed session stream, and {} input events/s from the technician on that stream; {} s of \
             traffic, latencies from the first {} s left out",
            a.updates,
            self.plan.update_bytes,
            a.kbit,
            a.inputs,
            a.seconds,
            WARMUP.as_secs()
        ));
        r.note(format!(
            "relay started with {} and limits per source raised past what the bench opens",
            crate::relay::RELAY_FLAGS.join(" ")
        ));
        r.note(format!(
            "beside them {} attackers from 127.0.0.2: connect, open the control stream, write half a frame header, \
             say nothing; reconnect when cut off",
            a.attackers
        ));
        r.note(
            "latency = one-way, stamp to arrival in the same process: input = technician sends a pointer move until \
             the agent has it opened; update = agent makes the update until the technician has it opened; added = \
             relay minus direct at the same percentile, under the same load",
        );
        r.note(
            "relay CPU = utime+stime of the relay process over the measured traffic, in % of one core; memory = \
             VmRSS (/proc); idle per session = (all sessions paired, session streams open, settled) minus (one \
             session), divided by the sessions; loaded per session = the same at the end of the traffic",
        );
        r.note(
            "lost = sessions that did not deliver every update, acknowledgement and input event in order and \
             authenticated, or whose connections closed",
        );
        for (metric, label) in [
            ("sessions", "sessions"),
            ("sessions_lost", "sessions lost"),
            ("input_latency_p50_ms", "input latency p50"),
            ("input_latency_p99_ms", "input latency p99"),
            ("update_latency_p50_ms", "screen update latency p50"),
            ("update_latency_p99_ms", "screen update latency p99"),
            ("added_input_latency_p50_ms", "added input latency p50"),
            ("added_input_latency_p99_ms", "added input latency p99"),
            (
                "added_update_latency_p50_ms",
                "added screen update latency p50",
            ),
            (
                "added_update_latency_p99_ms",
                "added screen update latency p99",
            ),
            ("updates_per_s", "updates a second per session"),
            ("update_kbit_s", "update payload per session"),
            ("inputs_per_s", "input events a second per session"),
            ("updates_skipped", "updates skipped (viewer behind)"),
            ("relay_cpu_pct", "relay CPU"),
            ("relay_cpu_per_session_pct", "relay CPU per session"),
            ("peers_cpu_pct", "this process's CPU (all peers)"),
            (
                "relay_rss_per_idle_session_kib",
                "relay memory per idle session",
            ),
            (
                "relay_rss_per_session_kib",
                "relay memory per session under load",
            ),
            ("relay_rss_loaded_mib", "relay memory under load"),
            ("relay_rss_peak_mib", "relay memory peak"),
            ("udp_drops", "datagrams dropped at the relay's socket"),
            ("attacker_connections", "attacker connections made"),
            (
                "attacker_cut_off",
                "attacker connections cut off by the relay",
            ),
            ("attacker_refused", "attacker connections refused"),
        ] {
            r.label(metric, label);
        }
        let secs = self.measured.as_secs_f64();
        let traffic = (self.plan.stop_at - self.plan.epoch).as_secs_f64();
        for (system, path) in [("relay", &self.relay), ("direct", &self.direct)] {
            let t = &path.tally;
            let n = f64::from(path.sessions.max(1));
            r.add(system, "sessions", f64::from(path.sessions), "sessions", 0);
            r.add(
                system,
                "sessions_lost",
                path.lost.len() as f64,
                "sessions",
                0,
            );
            for (metric, samples, p) in [
                ("input_latency_p50_ms", &t.input_us, 0.5),
                ("input_latency_p99_ms", &t.input_us, 0.99),
                ("update_latency_p50_ms", &t.update_us, 0.5),
                ("update_latency_p99_ms", &t.update_us, 0.99),
            ] {
                r.add(system, metric, percentile_ms(samples, p), "ms", 3);
            }
            r.add(
                system,
                "updates_per_s",
                t.updates_received as f64 / n / traffic,
                "1/s",
                2,
            );
            r.add(
                system,
                "update_kbit_s",
                t.update_bytes as f64 * 8.0 / 1000.0 / n / traffic,
                "kbit/s",
                1,
            );
            r.add(
                system,
                "inputs_per_s",
                t.inputs_received as f64 / n / traffic,
                "1/s",
                2,
            );
            r.add(
                system,
                "updates_skipped",
                t.updates_skipped as f64,
                "updates",
                0,
            );
        }
        let (rt, dt) = (&self.relay.tally, &self.direct.tally);
        for (metric, relayed, direct, p) in [
            (
                "added_input_latency_p50_ms",
                &rt.input_us,
                &dt.input_us,
                0.5,
            ),
            (
                "added_input_latency_p99_ms",
                &rt.input_us,
                &dt.input_us,
                0.99,
            ),
            (
                "added_update_latency_p50_ms",
                &rt.update_us,
                &dt.update_us,
                0.5,
            ),
            (
                "added_update_latency_p99_ms",
                &rt.update_us,
                &dt.update_us,
                0.99,
            ),
        ] {
            let added = percentile_ms(relayed, p) - percentile_ms(direct, p);
            r.add("relay", metric, added, "ms", 3);
        }
        let n = f64::from(self.relay.sessions.max(1));
        let cpu_pct = self.relay_cpu.as_secs_f64() / secs * 100.0;
        r.add("relay", "relay_cpu_pct", cpu_pct, "% of a core", 1);
        r.add(
            "relay",
            "relay_cpu_per_session_pct",
            cpu_pct / n,
            "% of a core",
            4,
        );
        r.add(
            "relay",
            "peers_cpu_pct",
            self.own_cpu.as_secs_f64() / secs * 100.0,
            "% of a core",
            1,
        );
        let per = |kib: u64| (kib as f64 - self.before_kib as f64) / n;
        let idle = per(self.idle_kib);
        r.add("relay", "relay_rss_per_idle_session_kib", idle, "KiB", 1);
        r.target(
            "relay",
            "relay_rss_per_idle_session_kib",
            "≤ 64 KiB",
            idle <= 64.0,
        );
        r.add(
            "relay",
            "relay_rss_per_session_kib",
            per(self.loaded_kib),
            "KiB",
            1,
        );
        r.add(
            "relay",
            "relay_rss_loaded_mib",
            self.loaded_kib as f64 / 1024.0,
            "MiB",
            1,
        );
        r.add(
            "relay",
            "relay_rss_peak_mib",
            self.peak_kib as f64 / 1024.0,
            "MiB",
            1,
        );
        r.add("relay", "udp_drops", self.drops as f64, "datagrams", 0);
        r.add(
            "relay",
            "attacker_connections",
            self.attacks.connected.load(Ordering::Relaxed) as f64,
            "connections",
            0,
        );
        r.add(
            "relay",
            "attacker_cut_off",
            self.attacks.cut_off.load(Ordering::Relaxed) as f64,
            "connections",
            0,
        );
        r.add(
            "relay",
            "attacker_refused",
            self.attacks.refused.load(Ordering::Relaxed) as f64,
            "connections",
            0,
        );
        let busy = (self.relay_cpu + self.own_cpu).as_secs_f64() / secs / cpus as f64;
        if busy > 0.9 {
            r.note(format!(
                "the machine was saturated: the relay and this process kept {:.0}% of its {cpus} CPU(s) busy, so \
                 the latencies measure the wait for a CPU more than the relay; fewer sessions (--sessions) or the \
                 peers on other machines show the relay's own",
                busy * 100.0
            ));
        }
        let lost = self.relay.lost.len();
        r.target("relay", "sessions_lost", "0", lost == 0);
        for (system, path) in [("relay", &self.relay), ("direct", &self.direct)] {
            if let Some(first) = path.lost.first() {
                r.note(format!(
                    "{system}: {} session(s) lost; the first: {first}",
                    path.lost.len()
                ));
            }
        }
        r
    }
}
