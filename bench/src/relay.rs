//! `bench relay`: what the relay costs, measured through a real `relay` process on loopback and
//! compared, in the same run, with a direct QUIC connection between the same two ends.
//!
//! The agent side opens streams; the technician side echoes length-prefixed messages on a
//! bidirectional stream and drains unidirectional ones. On the relay path both sides are
//! [`link::RelayConnection`]s paired by session code, so every stream crosses two QUIC hops
//! (agent → relay → technician) and the relay splices it; on the direct path the technician side
//! is a quinn server endpoint of this process with a fresh self-signed certificate that the agent
//! pins, and the same [`link::transport::transport_config`], so a stream crosses one hop. Four
//! phases: latency (ping-pong, interleaved between the paths), throughput of one session (the
//! relay's CPU time read from `/proc` around it), then, on a second, fresh relay process, the
//! resident memory of many paired idle sessions. Every relay process started here is killed when
//! its guard drops, also on error.
//!
//! The end-to-end channel's cost is measured beside it ([`crate::sealing`]): seal-and-open CPU
//! time of one 200 KB update and one 1 KB message, and the throughput of screen updates through
//! the same relay process sent as the agent sends them, plain and sealed, in alternating runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use harness::process::{Options, Process, Stderr, Stop};
use link::tls::{self, Fingerprint};
use link::{transport, RelayConnection};
use protocol::control::Role;
use quinn::{Connection, Endpoint, ReadExactError, RecvStream, SendStream};
use tokio::task::JoinSet;

use crate::procstat;
use crate::report::{progress, Report};
use crate::sealing::{self, SealCost, Updates};

const BENCH: &str = "relay";

/// Message sizes of the latency phase: a small control-sized message and a screen update.
const SMALL: usize = 1024;
const LARGE: usize = 200 * 1024;
/// Samples per path and size, after warm-up.
const SAMPLES_SMALL: usize = 1000;
const SAMPLES_LARGE: usize = 200;
const WARMUP_SMALL: usize = 200;
const WARMUP_LARGE: usize = 20;
/// The paths take turns in this many blocks, so drift in the machine's load hits both alike.
const ROUNDS: usize = 10;
/// Largest message the echo side accepts: nothing from the network is trusted, even here.
const MAX_ECHO: usize = 1024 * 1024;
/// Size of each screen-update-like message of the throughput phase (one uni stream each).
const UPDATE: usize = 200 * 1024;

/// Flags the relay is started with beyond address and data directory. The bench joins thousands
/// of sessions from one address, so the join rate limit is lifted; and the idle timeout is
/// raised from the relay's sub-second default so that a scheduling stall on a busy machine does
/// not end the bench's sessions. Neither touches forwarding or the state a session holds.
pub(crate) const RELAY_FLAGS: [&str; 6] = [
    "--join-attempts",
    "1000000",
    "--join-window-secs",
    "1",
    "--idle-timeout-ms",
    "10000",
];
/// Limits the bench's relay is started with (a `--config` file): every connection of the bench
/// comes from 127.0.0.1, so the per-source limits on connections, waiting codes and
/// registrations, which stop one address from holding a relay, are raised past what the bench
/// opens. Nothing here touches forwarding or the state a session holds.
const RELAY_LIMITS: &str = "max_connections = 100000
max_connections_per_source = 100000
max_waiting_codes_per_source = 100000
registrations_per_minute = 1000000
";

/// The direct server's transport settings: those of the relay as started here (the idle
/// timeout above, and no keep-alives of its own), so that both paths run alike.
const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const SERVER_KEEP_ALIVE: Option<Duration> = None;

/// How long the relay may take to print each of its address and its fingerprint.
const STARTING: Duration = Duration::from_secs(15);

/// Idle sessions opened at once while building up the memory phase.
const OPEN_CONCURRENCY: usize = 32;

/// Relay bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Paired idle sessions (agent + technician connection each) held open for the memory figure
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub sessions: u32,
    /// Seconds each throughput run (relay, then direct) sends for
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
}

/// Runs the bench and returns its figures.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let relay_bin = relay_binary()?;
    progress(BENCH, "seal and open: CPU time per update and per message");
    let seal_cost = sealing::seal_cost(UPDATE, Duration::from_secs(1));
    let paths = compare_paths(&relay_bin, Duration::from_secs(args.seconds)).await?;
    let memory = idle_sessions(&relay_bin, args.sessions).await?;
    Ok(report(&args, &paths, &memory, &seal_cost))
}

/// Latency, throughput, CPU and drops of the relay path and the direct path.
struct PathFigures {
    /// Indexed like [`SYSTEMS`].
    small: Vec<Latency>,
    large: Vec<Latency>,
    throughput: [Throughput; 2],
    relay_cpu: Duration,
    /// This process's CPU time during each throughput run.
    own_cpu: [Duration; 2],
    /// Datagrams dropped at each path's sockets, and at the relay's alone.
    drops: [u64; 2],
    relay_drops: u64,
    /// Screen updates through the relay: plain, then sealed.
    updates: [Throughput; 2],
    /// Latency of one screen update alone through the relay: plain, then sealed.
    update_latency: [Latency; 2],
    load_before: f64,
    load_after: f64,
}

/// The paths compared, in the order of [`PathFigures`]' arrays.
const SYSTEMS: [&str; 2] = ["relay", "direct"];

/// Sets up both paths (a relay process, and a direct server) and measures them.
async fn compare_paths(relay_bin: &Path, seconds: Duration) -> anyhow::Result<PathFigures> {
    progress(BENCH, format!("starting {}", relay_bin.display()));
    let relay = RelayProcess::start(relay_bin).await?;
    let relayed = RelayedSession::open(relay.addr, relay.fingerprint, relay.token.clone())
        .await
        .context("cannot pair an agent and a technician through the relay")?;
    let direct = DirectSession::open()
        .await
        .context("cannot set up the direct QUIC connection")?;

    let relay_ports = [
        relay.addr.port(),
        local_port(&relayed.agent.endpoint)?,
        local_port(&relayed.technician.endpoint)?,
    ];
    let direct_ports = [local_port(&direct.client)?, local_port(&direct.server)?];
    let relay_drops_before = procstat::udp_drops(relay.addr.port())?;
    let drops_before = [udp_drops(&relay_ports)?, udp_drops(&direct_ports)?];
    let load_before = procstat::load_average()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if load_before > cpus as f64 {
        progress(
            BENCH,
            format!("the machine is busy (load average {load_before:.1} on {cpus} CPUs): figures will be noisy"),
        );
    }

    let mut echoes = [
        EchoStream::new(SYSTEMS[0], &relayed.agent.connection).await?,
        EchoStream::new(SYSTEMS[1], &direct.agent).await?,
    ];
    let small = latency(&mut echoes, SMALL, WARMUP_SMALL, SAMPLES_SMALL).await?;
    let large = latency(&mut echoes, LARGE, WARMUP_LARGE, SAMPLES_LARGE).await?;

    let me = std::process::id();
    progress(
        BENCH,
        format!("throughput through the relay ({} s)", seconds.as_secs()),
    );
    let (relay_cpu_before, own_before) = (procstat::cpu_time(relay.pid)?, procstat::cpu_time(me)?);
    let via_relay = throughput(&relayed.agent.connection, &relayed.received, seconds).await?;
    let relay_cpu = procstat::cpu_time(relay.pid)? - relay_cpu_before;
    let own_relay = procstat::cpu_time(me)? - own_before;

    progress(
        BENCH,
        format!("throughput direct ({} s)", seconds.as_secs()),
    );
    let own_before = procstat::cpu_time(me)?;
    let direct_thr = throughput(&direct.agent, &direct.received, seconds).await?;
    let own_direct = procstat::cpu_time(me)? - own_before;

    let (updates, update_latency) =
        update_figures(relay.addr, relay.fingerprint, &relay.token, seconds).await?;

    let figures = PathFigures {
        small,
        large,
        throughput: [via_relay, direct_thr],
        relay_cpu,
        own_cpu: [own_relay, own_direct],
        drops: [
            udp_drops(&relay_ports)? - drops_before[0],
            udp_drops(&direct_ports)? - drops_before[1],
        ],
        relay_drops: procstat::udp_drops(relay.addr.port())? - relay_drops_before,
        updates,
        update_latency,
        load_before,
        load_after: procstat::load_average()?,
    };
    relayed.close().await;
    direct.close().await;
    relay.stop().await;
    Ok(figures)
}

/// The figures, with what they mean and the targets they are held against.
fn report(args: &Args, p: &PathFigures, memory: &IdleMemory, seal: &SealCost) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (load_before, load_after) = (p.load_before, p.load_after);
    let mut r = Report::new(BENCH);
    r.note(format!(
        "relay = agent -> relay process -> technician (2 QUIC hops); direct = agent -> technician (1 hop); \
         loopback, {cpus} CPU(s) shared by this process and the relay"
    ));
    r.note(format!(
        "relay started with {}; 1-minute load average {load_before:.1} before the latency and throughput \
         phases, {load_after:.1} after (figures from a busy machine are noisy)",
        RELAY_FLAGS.join(" ")
    ));
    r.note(format!(
        "latency: one-way = RTT/2 of a length-prefixed message on one bi stream, echoed back whole by the \
         technician side; {SAMPLES_SMALL} samples of 1 KB and {SAMPLES_LARGE} of 200 KB per path after warm-up, \
         paths interleaved in {ROUNDS} rounds"
    ));
    r.note(
        "added latency per hop = relay one-way - direct one-way (same percentile): the relay path is 2 hops vs 1, \
         so this is what inserting the relay (its extra hop and its forwarding) adds",
    );
    r.note(format!(
        "throughput: {} KB messages, each on its own uni stream (as screen updates travel; at most {} open at \
         once, the peers' stream limit), sent for {} s as fast as flow control allows, relay first, then \
         direct; Mbit/s of payload, timed until the technician side has read it all",
        UPDATE / 1024,
        transport::MAX_UNI_STREAMS,
        args.seconds
    ));
    r.note(
        "relay CPU = utime+stime of the relay process (/proc/PID/stat) over the relayed throughput run, per GB \
         (1e9 bytes) of payload forwarded; cpu_s_per_gb = all processes (bench + relay) per GB, for comparison",
    );
    r.note(
        "udp_drops = datagrams the kernel dropped at the path's UDP sockets (receive buffer full, \
         /proc/net/udp) during the latency and throughput phases; each costs a QUIC loss recovery",
    );
    r.note(format!(
        "memory: VmRSS of a fresh relay process with {} paired idle sessions open ({} client connections) minus \
         with 1, after settling (stable for 2 s, at least 6 s after the last session opened), divided by {}; 1 KiB = 1024 bytes; for comparison, the same growth of this \
         process, which holds both peers' ends of the same connections",
        memory.sessions,
        memory.sessions * 2,
        memory.sessions
    ));

    r.note(format!(
        "sealing: seal+open = CPU time of this thread to seal and open one {} KB screen update on its own \
         stream (its keys derived from the traffic secret, AES-256-GCM), and one 1 KB message on the \
         session stream; update throughput = {} KB screen updates through the relay as the agent sends them \
         (encoded, sealed or not, each on its own stream, at most 8 on their way), decoded (and opened) by \
         the technician side; plain and sealed runs alternate, {} s each, twice; update latency = one \
         update alone, from making it (encoding, sealing) until the technician side has decoded (and \
         opened) it, {UPDATE_SAMPLES} samples each, alternating in {ROUNDS} rounds; updates are sealed in \
         records of {} KB, so that sealing and opening overlap the transfer",
        UPDATE / 1024,
        UPDATE / 1024,
        args.seconds,
        link::sealed::UPDATE_RECORD / 1024,
    ));

    let metrics = [
        ("latency_1k_p50_ms", "one-way latency 1 KB p50"),
        ("latency_1k_p99_ms", "one-way latency 1 KB p99"),
        ("latency_200k_p50_ms", "one-way latency 200 KB p50"),
        ("latency_200k_p99_ms", "one-way latency 200 KB p99"),
        ("added_latency_1k_p50_ms", "added latency per hop 1 KB p50"),
        ("added_latency_1k_p99_ms", "added latency per hop 1 KB p99"),
        (
            "added_latency_200k_p50_ms",
            "added latency per hop 200 KB p50",
        ),
        (
            "added_latency_200k_p99_ms",
            "added latency per hop 200 KB p99",
        ),
        ("throughput_mbit_s", "throughput of one session"),
        ("throughput_ratio", "throughput relative to direct"),
        ("relay_cpu_s_per_gb", "relay process CPU per GB forwarded"),
        ("cpu_s_per_gb", "CPU of all processes per GB"),
        ("udp_drops", "datagrams dropped, receive buffer full"),
        ("relay_udp_drops", "... of which at the relay's socket"),
        (
            "relay_rss_per_idle_session_kib",
            "relay memory per idle session",
        ),
        (
            "peers_rss_per_idle_session_kib",
            "both peers' memory per idle session",
        ),
        ("relay_rss_baseline_kib", "relay memory with 1 session"),
        ("relay_rss_loaded_kib", "relay memory with all sessions"),
        ("seal_open_200k_ms", "seal+open of one 200 KB update"),
        ("seal_open_1k_us", "seal+open of one 1 KB message"),
        (
            "update_throughput_mbit_s",
            "screen updates through the relay",
        ),
        (
            "sealed_throughput_ratio",
            "sealed updates relative to plain",
        ),
        (
            "update_latency_200k_p50_ms",
            "one 200 KB update through the relay p50",
        ),
        (
            "update_latency_200k_p99_ms",
            "one 200 KB update through the relay p99",
        ),
        (
            "sealing_added_200k_p50_ms",
            "latency sealing adds to a 200 KB update p50",
        ),
    ];
    for (metric, label) in metrics {
        r.label(metric, label);
    }

    let (small, large) = (&p.small, &p.large);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (i, system) in SYSTEMS.into_iter().enumerate() {
        r.add(system, "latency_1k_p50_ms", ms(small[i].p50), "ms", 4);
        r.add(system, "latency_1k_p99_ms", ms(small[i].p99), "ms", 4);
        r.add(system, "latency_200k_p50_ms", ms(large[i].p50), "ms", 4);
        r.add(system, "latency_200k_p99_ms", ms(large[i].p99), "ms", 4);
    }
    let added = |a: Duration, b: Duration| ms(a) - ms(b);
    let added_1k_p50 = added(small[0].p50, small[1].p50);
    r.add("relay", "added_latency_1k_p50_ms", added_1k_p50, "ms", 4);
    r.add(
        "relay",
        "added_latency_1k_p99_ms",
        added(small[0].p99, small[1].p99),
        "ms",
        4,
    );
    r.add(
        "relay",
        "added_latency_200k_p50_ms",
        added(large[0].p50, large[1].p50),
        "ms",
        4,
    );
    r.add(
        "relay",
        "added_latency_200k_p99_ms",
        added(large[0].p99, large[1].p99),
        "ms",
        4,
    );
    r.target(
        "relay",
        "added_latency_1k_p50_ms",
        "≤ 0.3 ms",
        added_1k_p50 <= 0.3,
    );

    let [via_relay, direct] = &p.throughput;
    let relay_mbit = via_relay.mbit_s();
    let direct_mbit = direct.mbit_s();
    let ratio = relay_mbit / direct_mbit;
    r.add("relay", "throughput_mbit_s", relay_mbit, "Mbit/s", 1);
    r.add("direct", "throughput_mbit_s", direct_mbit, "Mbit/s", 1);
    r.add("relay", "throughput_ratio", ratio, "ratio", 3);
    r.target("relay", "throughput_ratio", "≥ 0.5 of direct", ratio >= 0.5);

    let relay_gb = via_relay.bytes as f64 / 1e9;
    let direct_gb = direct.bytes as f64 / 1e9;
    let all_relay_cpu = p.relay_cpu + p.own_cpu[0];
    r.add(
        "relay",
        "relay_cpu_s_per_gb",
        p.relay_cpu.as_secs_f64() / relay_gb,
        "s/GB",
        3,
    );
    r.add(
        "relay",
        "cpu_s_per_gb",
        all_relay_cpu.as_secs_f64() / relay_gb,
        "s/GB",
        3,
    );
    r.add(
        "direct",
        "cpu_s_per_gb",
        p.own_cpu[1].as_secs_f64() / direct_gb,
        "s/GB",
        3,
    );

    for (i, system) in SYSTEMS.into_iter().enumerate() {
        r.add(system, "udp_drops", p.drops[i] as f64, "datagrams", 0);
    }
    r.add(
        "relay",
        "relay_udp_drops",
        p.relay_drops as f64,
        "datagrams",
        0,
    );

    let per_session = memory.per_session_kib();
    r.add(
        "relay",
        "relay_rss_per_idle_session_kib",
        per_session,
        "KiB",
        1,
    );
    r.add(
        "relay",
        "peers_rss_per_idle_session_kib",
        memory.clients_kib / memory.sessions as f64,
        "KiB",
        1,
    );
    r.add(
        "relay",
        "relay_rss_baseline_kib",
        memory.before_kib as f64,
        "KiB",
        0,
    );
    r.add(
        "relay",
        "relay_rss_loaded_kib",
        memory.after_kib as f64,
        "KiB",
        0,
    );
    r.target(
        "relay",
        "relay_rss_per_idle_session_kib",
        "≤ 64 KiB",
        per_session <= 64.0,
    );

    let update_ms = ms(seal.update);
    r.add(SEALED, "seal_open_200k_ms", update_ms, "ms", 4);
    r.target(SEALED, "seal_open_200k_ms", "≤ 0.2 ms", update_ms <= 0.2);
    r.add(
        SEALED,
        "seal_open_1k_us",
        seal.message.as_secs_f64() * 1e6,
        "µs",
        2,
    );
    let [plain, sealed] = &p.updates;
    r.add(
        "relay",
        "update_throughput_mbit_s",
        plain.mbit_s(),
        "Mbit/s",
        1,
    );
    r.add(
        SEALED,
        "update_throughput_mbit_s",
        sealed.mbit_s(),
        "Mbit/s",
        1,
    );
    let sealed_ratio = sealed.mbit_s() / plain.mbit_s();
    r.add(SEALED, "sealed_throughput_ratio", sealed_ratio, "ratio", 3);
    r.target(
        SEALED,
        "sealed_throughput_ratio",
        "≥ 0.9 of plain",
        sealed_ratio >= 0.9,
    );
    let [plain, sealed] = &p.update_latency;
    for (system, l) in [("relay", plain), (SEALED, sealed)] {
        r.add(system, "update_latency_200k_p50_ms", ms(l.p50), "ms", 4);
        r.add(system, "update_latency_200k_p99_ms", ms(l.p99), "ms", 4);
    }
    let added = ms(sealed.p50) - ms(plain.p50);
    r.add(SEALED, "sealing_added_200k_p50_ms", added, "ms", 4);
    r.target(
        SEALED,
        "sealing_added_200k_p50_ms",
        "≤ 0.2 ms",
        added <= 0.2,
    );
    r
}

/// Samples of the update latency phase, per way.
const UPDATE_SAMPLES: usize = 200;

/// The column of the sealed figures.
const SEALED: &str = "relay+sealed";

/// Screen updates through the relay at `relay`, plain and sealed, each on a session of its own:
/// latency of one update alone, then throughput in alternating runs of `seconds`.
async fn update_figures(
    relay: SocketAddr,
    pin: Fingerprint,
    token: &str,
    seconds: Duration,
) -> anyhow::Result<([Throughput; 2], [Latency; 2])> {
    let (agent_keys, tech_keys) = sealing::session_keys()?;
    let plain = UpdateSession::open(relay, pin, token, None).await?;
    let sealed = UpdateSession::open(relay, pin, token, Some(tech_keys.update_receiver())).await?;
    let ways = [Updates::Plain, Updates::Sealed(Arc::new(agent_keys))];
    let mut totals = [(0u64, Duration::ZERO), (0u64, Duration::ZERO)];
    let mut seqs = [0u64; 2];
    progress(
        BENCH,
        format!("one screen update at a time, plain and sealed: {UPDATE_SAMPLES} samples each"),
    );
    let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS + 1 {
        for (i, (session, how)) in [&plain, &sealed].into_iter().zip(&ways).enumerate() {
            let n = if round == 0 {
                10
            } else {
                UPDATE_SAMPLES / ROUNDS
            };
            for _ in 0..n {
                let t = sealing::update_latency(
                    &session.pair.0.connection,
                    how,
                    &mut seqs[i],
                    UPDATE,
                    &session.arrived,
                )
                .await?;
                // Round 0 warms up.
                if round > 0 {
                    samples[i].push(t);
                }
            }
        }
    }
    let latency = samples.map(|mut v| {
        v.sort_unstable();
        Latency {
            p50: percentile(&v, 0.50),
            p99: percentile(&v, 0.99),
        }
    });
    for round in 0..2 {
        for (i, (session, how)) in [&plain, &sealed].into_iter().zip(&ways).enumerate() {
            progress(
                BENCH,
                format!(
                    "{} screen updates through the relay, run {} of 2 ({} s)",
                    ["plain", "sealed"][i],
                    round + 1,
                    seconds.as_secs()
                ),
            );
            let run = sealing::send_updates(
                &session.pair.0.connection,
                how,
                &mut seqs[i],
                UPDATE,
                &session.received,
                seconds,
            )
            .await?;
            totals[i].0 += run.bytes;
            totals[i].1 += run.elapsed;
        }
    }
    plain.close().await;
    sealed.close().await;
    Ok((
        totals.map(|(bytes, elapsed)| Throughput { bytes, elapsed }),
        latency,
    ))
}

/// A paired session whose technician side decodes (and, given a receiver, opens) updates.
struct UpdateSession {
    pair: (RelayConnection, RelayConnection),
    received: Arc<AtomicU64>,
    arrived: Arc<tokio::sync::Notify>,
}

impl UpdateSession {
    async fn open(
        relay: SocketAddr,
        pin: Fingerprint,
        token: &str,
        receiver: Option<protocol::e2e::UpdateReceiver>,
    ) -> anyhow::Result<Self> {
        let agent_ep = link::client::client_endpoint(relay, pin)
            .context("cannot open the agent's endpoint")?;
        let tech_ep = link::client::client_endpoint(relay, pin)
            .context("cannot open the technician's endpoint")?;
        let pair = within(Duration::from_secs(10), "pairing", async {
            Ok(open_pair(&agent_ep, &tech_ep, relay, token).await?)
        })
        .await?;
        let received = Arc::new(AtomicU64::new(0));
        let arrived = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(sealing::receive_updates(
            pair.1.connection.clone(),
            receiver,
            received.clone(),
            arrived.clone(),
        ));
        Ok(Self {
            pair,
            received,
            arrived,
        })
    }

    async fn close(self) {
        self.pair.0.close("bench done");
        self.pair.1.close_and_wait("bench done").await;
    }
}

/// The `relay` binary built next to this one (`target/release/relay` for a release bench).
pub(crate) fn relay_binary() -> anyhow::Result<PathBuf> {
    harness::programs::sibling_binary("relay", "cargo build --release -p relay")
}

/// The local port of an endpoint's socket.
fn local_port(endpoint: &Endpoint) -> anyhow::Result<u16> {
    Ok(endpoint
        .local_addr()
        .context("cannot read an endpoint's address")?
        .port())
}

/// Datagrams dropped so far at the sockets on `ports`.
fn udp_drops(ports: &[u16]) -> anyhow::Result<u64> {
    ports.iter().map(|p| procstat::udp_drops(*p)).sum()
}

/// Awaits `fut`, failing with "`what` took longer than `limit`" if it does not finish in time.
pub(crate) async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => bail!("{what} took longer than {} s", limit.as_secs()),
    }
}

/// Runs `open(i)` for each `i` in `0..count`, `concurrency` at a time, and returns what they
/// opened, in the order they finished; says how many are done every hundred (`done`: "sessions
/// paired").
pub(crate) async fn open_many<T, Fut>(
    bench: &str,
    count: u32,
    concurrency: usize,
    done: &str,
    open: impl Fn(u32) -> Fut,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut opened = Vec::with_capacity(count as usize);
    let mut pending = JoinSet::new();
    let mut started = 0u32;
    while started < count || !pending.is_empty() {
        while started < count && pending.len() < concurrency {
            pending.spawn(open(started));
            started += 1;
        }
        if let Some(finished) = pending.join_next().await {
            opened.push(finished.context("an opening task failed")??);
            if opened.len() % 100 == 0 {
                progress(bench, format!("{} of {count} {done}", opened.len()));
            }
        }
    }
    Ok(opened)
}

/// `n` client endpoints for connections to the relay at `relay`, which they pin.
pub(crate) fn client_endpoints(
    relay: SocketAddr,
    pin: Fingerprint,
    n: usize,
) -> anyhow::Result<Vec<Endpoint>> {
    (0..n)
        .map(|_| link::client::client_endpoint(relay, pin).context("cannot open a client endpoint"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The relay process

/// A `relay` process this bench started, with its data directory. Dropping it kills the process.
pub(crate) struct RelayProcess {
    process: Process,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) fingerprint: Fingerprint,
    /// A login token of the bench's technician account, for every technician connection.
    pub(crate) token: Arc<str>,
    _data_dir: tempfile::TempDir,
}

/// The technician account the benches create on the relays they start.
const BENCH_ACCOUNT: &str = "bench";
const BENCH_PASSWORD: &str = "bench password, not a secret";

/// Creates the bench's technician account in the relay's `data_dir` (`relay user add`, the
/// password on stdin); its name and password are [`bench_account`].
pub(crate) fn add_bench_account(relay_bin: &Path, data_dir: &Path) -> anyhow::Result<()> {
    harness::relay::add_user(relay_bin, data_dir, BENCH_ACCOUNT, 1, BENCH_PASSWORD)
}

/// The bench's technician account: name and password.
pub(crate) fn bench_account() -> (&'static str, &'static str) {
    (BENCH_ACCOUNT, BENCH_PASSWORD)
}

/// The fingerprint a relay printed, parsed.
pub(crate) fn parse_fingerprint(printed: &str) -> anyhow::Result<Fingerprint> {
    printed.parse().map_err(|e| {
        anyhow::anyhow!("the relay printed an unreadable fingerprint `{printed}`: {e}")
    })
}

/// Logs in as the bench's technician account on the running relay at `addr`, and returns the
/// token.
pub(crate) async fn technician_token(
    addr: &str,
    fingerprint: Fingerprint,
) -> anyhow::Result<String> {
    let mut conn = RelayConnection::connect(addr, fingerprint, Role::Technician)
        .await
        .context("cannot reach the relay to log in")?;
    let (_, token, _) = conn
        .login(BENCH_ACCOUNT, BENCH_PASSWORD)
        .await
        .context("cannot log in to the relay")?;
    conn.close("logged in");
    Ok(token)
}

impl RelayProcess {
    /// Starts the relay on a free loopback port with a temporary data directory and reads the
    /// address and fingerprint it prints.
    ///
    /// The relay is started on the caller's thread, which it dies with (`PR_SET_PDEATHSIG`),
    /// and this thread waits the moment it takes to print its address: not a blocking-pool
    /// thread, which would end while the relay runs.
    pub(crate) async fn start(bin: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, "").await
    }

    /// As [`RelayProcess::start`], with `config` added to its config file. With `config`
    /// naming a `database_url`, the bench's account must be in that database already.
    pub(crate) async fn start_with(bin: &Path, config: &str) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new()
            .prefix("tandem-bench-relay-")
            .tempdir()
            .context("cannot create a temporary data directory for the relay")?;
        let limits = data_dir.path().join("bench-limits.toml");
        std::fs::write(&limits, format!("{RELAY_LIMITS}{config}"))
            .with_context(|| format!("cannot write {}", limits.display()))?;
        let mut command = harness::relay::command(bin, "127.0.0.1:0", data_dir.path(), None);
        command.arg("--config").arg(&limits).args(RELAY_FLAGS);
        let options = Options {
            stderr: Stderr::Inherit,
            stop: Stop::Kill,
            ..Options::default()
        };
        let relay = harness::relay::Relay::start("relay", command, options, STARTING)
            .with_context(|| format!("cannot start the relay at {}", bin.display()))?;
        let fingerprint = parse_fingerprint(&relay.fingerprint)?;
        let pid = relay.process.pid();
        if !config.contains("database_url") {
            add_bench_account(bin, data_dir.path())?;
        }
        let token = technician_token(&relay.addr.to_string(), fingerprint).await?;
        progress(
            BENCH,
            format!("relay pid {pid} listening on {}", relay.addr),
        );
        Ok(Self {
            process: relay.process,
            pid,
            addr: relay.addr,
            fingerprint,
            token: Arc::from(token),
            _data_dir: data_dir,
        })
    }

    /// Its data directory (its database: accounts, desk, ledger).
    pub(crate) fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    /// Stops the relay: SIGTERM, then SIGKILL if it has not exited within two seconds.
    pub(crate) async fn stop(self) {
        let Self {
            process, _data_dir, ..
        } = self;
        let stopping = tokio::task::spawn_blocking(move || {
            process.stop(Stop::Terminate(Duration::from_secs(2)))
        });
        let _ = stopping.await;
    }
}

// ---------------------------------------------------------------------------------------------
// The technician side: echo and drain

/// Serves what the agent side opens on `conn` until the connection ends: bi streams are echoed
/// message by message, uni streams are read to the end and their bytes added to `received`.
async fn technician_side(conn: Connection, received: Arc<AtomicU64>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            bi = conn.accept_bi() => {
                let Ok((send, recv)) = bi else { break };
                tasks.spawn(async move {
                    // The agent side reports what went wrong; the echo side just stops.
                    let _ = echo(send, recv).await;
                });
            }
            uni = conn.accept_uni() => {
                let Ok(recv) = uni else { break };
                tasks.spawn(drain(recv, received.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Reads whole length-prefixed messages and writes each back unchanged.
async fn echo(mut send: SendStream, mut recv: RecvStream) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut header = [0u8; 4];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return Ok(()),
            Err(e) => return Err(e).context("reading a message header"),
        }
        let len = u32::from_le_bytes(header) as usize;
        ensure!(
            len <= MAX_ECHO,
            "message of {len} bytes announced; the limit is {MAX_ECHO}"
        );
        buf.resize(4 + len, 0);
        buf[..4].copy_from_slice(&header);
        recv.read_exact(&mut buf[4..])
            .await
            .context("reading a message")?;
        send.write_all(&buf).await.context("echoing a message")?;
    }
}

/// Reads a stream to its end without copying, counting its bytes.
async fn drain(mut recv: RecvStream, received: Arc<AtomicU64>) {
    while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
        received.fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The two paths

/// An agent and a technician paired through the relay. Both control streams stay open for the
/// session's life: dropping one would end the session.
struct RelayedSession {
    agent: RelayConnection,
    technician: RelayConnection,
    received: Arc<AtomicU64>,
}

impl RelayedSession {
    async fn open(relay: SocketAddr, pin: Fingerprint, token: Arc<str>) -> anyhow::Result<Self> {
        let agent_ep = link::client::client_endpoint(relay, pin)
            .context("cannot open the agent's endpoint")?;
        let tech_ep = link::client::client_endpoint(relay, pin)
            .context("cannot open the technician's endpoint")?;
        let (agent, technician) = within(Duration::from_secs(10), "pairing", async {
            Ok(open_pair(&agent_ep, &tech_ep, relay, &token).await?)
        })
        .await?;
        let received = Arc::new(AtomicU64::new(0));
        tokio::spawn(technician_side(
            technician.connection.clone(),
            received.clone(),
        ));
        Ok(Self {
            agent,
            technician,
            received,
        })
    }

    async fn close(self) {
        self.agent.close("bench done");
        self.technician.close_and_wait("bench done").await;
    }
}

/// Connects an agent and a technician (logged in with `token`), registers a code and joins it.
pub(crate) async fn open_pair(
    agent_ep: &Endpoint,
    tech_ep: &Endpoint,
    relay: SocketAddr,
    token: &str,
) -> Result<(RelayConnection, RelayConnection), link::LinkError> {
    let mut agent = RelayConnection::connect_with(agent_ep.clone(), relay, Role::Agent).await?;
    let (code, _) = agent.register().await?;
    let mut technician =
        RelayConnection::connect_with(tech_ep.clone(), relay, Role::Technician).await?;
    technician.resume(token).await?;
    technician.join(code).await?;
    agent.wait_paired().await?;
    Ok((agent, technician))
}

/// An agent connected straight to a technician-side server endpoint of this process.
struct DirectSession {
    server: Endpoint,
    client: Endpoint,
    agent: Connection,
    received: Arc<AtomicU64>,
}

/// The configuration of a server endpoint standing for the technician on a direct path: a
/// fresh self-signed certificate (its fingerprint for the clients to pin) and the transport
/// settings with `idle_timeout` and `keep_alive`.
pub(crate) fn direct_server_config(
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
) -> anyhow::Result<(quinn::ServerConfig, Fingerprint)> {
    let id = tls::generate_self_signed(vec!["localhost".into()])
        .context("cannot generate a certificate")?;
    let pin = Fingerprint::of(&id.cert_der);
    let tls = tls::server_config(id.cert_der, id.key_der)
        .context("the generated certificate is not usable")?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .context("the TLS configuration does not suit QUIC")?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport::transport_config(idle_timeout, keep_alive));
    Ok((cfg, pin))
}

impl DirectSession {
    async fn open() -> anyhow::Result<Self> {
        let (cfg, pin) = direct_server_config(SERVER_IDLE_TIMEOUT, SERVER_KEEP_ALIVE)?;
        let server = Endpoint::server(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("cannot open a server endpoint on loopback")?;
        let addr = server
            .local_addr()
            .context("cannot read the server's address")?;

        let client =
            link::client::client_endpoint(addr, pin).context("cannot open the agent's endpoint")?;
        let (agent, technician) = within(Duration::from_secs(10), "the direct handshake", async {
            let connecting = client
                .connect(addr, "localhost")
                .context("cannot start the handshake")?;
            let accepting = async {
                let incoming = server
                    .accept()
                    .await
                    .context("the server endpoint closed")?;
                incoming.await.context("the server's handshake failed")
            };
            let (agent, technician) = tokio::join!(connecting, accepting);
            Ok((agent.context("the agent's handshake failed")?, technician?))
        })
        .await?;
        let received = Arc::new(AtomicU64::new(0));
        tokio::spawn(technician_side(technician, received.clone()));
        Ok(Self {
            server,
            client,
            agent,
            received,
        })
    }

    async fn close(self) {
        self.agent.close(0u32.into(), b"bench done");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.server.wait_idle()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Latency

/// One path's echo stream, seen from the agent side.
struct EchoStream {
    system: &'static str,
    send: SendStream,
    recv: RecvStream,
    message: Vec<u8>,
    back: Vec<u8>,
}

impl EchoStream {
    async fn new(system: &'static str, conn: &Connection) -> anyhow::Result<Self> {
        let (send, recv) = conn
            .open_bi()
            .await
            .with_context(|| format!("cannot open a stream on the {system} path"))?;
        Ok(Self {
            system,
            send,
            recv,
            message: Vec::new(),
            back: Vec::new(),
        })
    }

    /// Sends one message of `size` bytes and waits for it to come back whole.
    async fn round_trip(&mut self, size: usize) -> anyhow::Result<Duration> {
        if self.message.len() != 4 + size {
            self.message.clear();
            self.message.extend_from_slice(&(size as u32).to_le_bytes());
            self.message.extend((0..size).map(|i| (i % 251) as u8));
            self.back.resize(4 + size, 0);
        }
        let start = Instant::now();
        self.send
            .write_all(&self.message)
            .await
            .context("sending a message")?;
        self.recv
            .read_exact(&mut self.back)
            .await
            .context("reading the echo")?;
        let rtt = start.elapsed();
        ensure!(
            self.back == self.message,
            "the echo differs from what was sent"
        );
        Ok(rtt)
    }
}

/// One-way latency percentiles of one path.
struct Latency {
    p50: Duration,
    p99: Duration,
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Measures one-way latency (RTT/2) for `size`-byte messages on every path, taking turns.
async fn latency(
    paths: &mut [EchoStream],
    size: usize,
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Vec<Latency>> {
    let label = if size >= 1024 {
        format!("{} KB", size / 1024)
    } else {
        format!("{size} B")
    };
    progress(
        BENCH,
        format!("latency {label}: {warmup} warm-up and {samples} samples per path"),
    );
    let limit = Duration::from_secs(120);
    within(limit, &format!("the {label} latency phase"), async {
        let mut rtts: Vec<Vec<Duration>> =
            paths.iter().map(|_| Vec::with_capacity(samples)).collect();
        for path in paths.iter_mut() {
            for _ in 0..warmup {
                path.round_trip(size)
                    .await
                    .with_context(|| format!("warm-up on the {} path", path.system))?;
            }
        }
        for round in 0..ROUNDS {
            let n = samples / ROUNDS + usize::from(round < samples % ROUNDS);
            for (path, rtts) in paths.iter_mut().zip(&mut rtts) {
                for _ in 0..n {
                    rtts.push(
                        path.round_trip(size).await.with_context(|| {
                            format!("{label} sample on the {} path", path.system)
                        })?,
                    );
                }
            }
        }
        Ok(rtts
            .into_iter()
            .map(|mut v| {
                v.sort_unstable();
                Latency {
                    p50: percentile(&v, 0.50) / 2,
                    p99: percentile(&v, 0.99) / 2,
                }
            })
            .collect())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Throughput

/// Payload bytes that arrived and how long it took.
struct Throughput {
    bytes: u64,
    elapsed: Duration,
}

impl Throughput {
    fn mbit_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Sends `UPDATE`-byte messages, each on its own uni stream, for `duration`, then waits until the
/// technician side has read them all (`received` counts what it read).
async fn throughput(
    agent: &Connection,
    received: &AtomicU64,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let message = vec![0x5a_u8; UPDATE];
    let already = received.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut sent = 0u64;
    let sending = async {
        while start.elapsed() < duration {
            let mut stream = agent.open_uni().await.context("cannot open a stream")?;
            stream
                .write_all(&message)
                .await
                .context("cannot send an update")?;
            stream.finish().context("cannot finish an update stream")?;
            sent += UPDATE as u64;
        }
        Ok(())
    };
    within(duration + Duration::from_secs(30), "sending", sending).await?;
    let arrived = async {
        while received.load(Ordering::Relaxed) - already < sent {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    };
    within(
        Duration::from_secs(30),
        "waiting for the technician side to read everything",
        arrived,
    )
    .await?;
    Ok(Throughput {
        bytes: sent,
        elapsed: start.elapsed(),
    })
}

// ---------------------------------------------------------------------------------------------
// Memory of idle sessions

/// Relay RSS with one session open and with `sessions` more.
struct IdleMemory {
    sessions: u64,
    before_kib: u64,
    after_kib: u64,
    /// Growth of this process's RSS over the same sessions: both peers' client connections,
    /// the same QUIC state the relay holds, without the relay's own bookkeeping.
    clients_kib: f64,
}

impl IdleMemory {
    fn per_session_kib(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.sessions as f64
    }
}

/// Opens `sessions` paired idle sessions on a fresh relay and measures its RSS before and after.
async fn idle_sessions(relay_bin: &Path, sessions: u32) -> anyhow::Result<IdleMemory> {
    progress(BENCH, "memory: starting a fresh relay");
    let relay = RelayProcess::start(relay_bin).await?;
    let agent_ep = link::client::client_endpoint(relay.addr, relay.fingerprint)
        .context("cannot open the agents' endpoint")?;
    let tech_ep = link::client::client_endpoint(relay.addr, relay.fingerprint)
        .context("cannot open the technicians' endpoint")?;
    let first = within(
        Duration::from_secs(10),
        "pairing the first session",
        async { Ok(open_pair(&agent_ep, &tech_ep, relay.addr, &relay.token).await?) },
    )
    .await?;
    let before_kib = settled_rss(relay.pid).await?;
    let clients_before_kib = procstat::rss_kib(std::process::id())?;

    progress(
        BENCH,
        format!(
            "memory: opening {sessions} paired sessions ({} connections)",
            sessions * 2
        ),
    );
    let mut open = open_many(BENCH, sessions, OPEN_CONCURRENCY, "sessions paired", |i| {
        let (a, t, addr) = (agent_ep.clone(), tech_ep.clone(), relay.addr);
        let token = relay.token.clone();
        async move {
            within(Duration::from_secs(20), "pairing a session", async {
                Ok(open_pair(&a, &t, addr, &token).await?)
            })
            .await
            .with_context(|| format!("cannot open idle session {i} of {sessions}"))
        }
    })
    .await?;
    open.push(first);
    progress(BENCH, "memory: letting the relay settle");
    let after_kib = settled_rss(relay.pid).await?;
    let clients_after_kib = procstat::rss_kib(std::process::id())?;
    let alive = open
        .iter()
        .filter(|(a, t)| {
            a.connection.close_reason().is_none() && t.connection.close_reason().is_none()
        })
        .count();
    ensure!(
        alive == open.len(),
        "only {alive} of {} idle sessions were still open when memory was measured; \
         the figure would be wrong",
        open.len()
    );
    for (a, t) in &open {
        a.close("bench done");
        t.close("bench done");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tokio::join!(agent_ep.wait_idle(), tech_ep.wait_idle())
    })
    .await;
    relay.stop().await;
    Ok(IdleMemory {
        sessions: u64::from(sessions),
        before_kib,
        after_kib,
        clients_kib: clients_after_kib as f64 - clients_before_kib as f64,
    })
}

/// How long a new idle connection takes to reach its steady size: quinn hands each connection
/// its packets through a channel that allocates a second block of slots after 32 events, which
/// keep-alives every 150 ms reach within about five seconds.
const SETTLE_MIN: Duration = Duration::from_secs(6);
const SETTLE_MAX: Duration = Duration::from_secs(30);

/// The process's RSS once it has stopped moving: at least [`SETTLE_MIN`] after asking, and then
/// once three readings a second apart agree within 0.5% (or [`SETTLE_MAX`] has passed).
pub(crate) async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETTLE_MAX;
    tokio::time::sleep(SETTLE_MIN - Duration::from_secs(2)).await;
    let mut readings = vec![procstat::rss_kib(pid)?];
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(procstat::rss_kib(pid)?);
        let last3 = &readings[readings.len().saturating_sub(3)..];
        let (lo, hi) = (last3.iter().min(), last3.iter().max());
        if let (3, Some(&lo), Some(&hi)) = (last3.len(), lo, hi) {
            if (hi - lo) * 200 <= hi || Instant::now() > deadline {
                return Ok(*last3.last().unwrap_or(&hi));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 0.99), Duration::from_millis(1));
    }
}
