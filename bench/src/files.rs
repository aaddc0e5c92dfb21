//! `bench files`: a large file sent end to end sealed through a real `relay` process, against
//! the relay's plain throughput of one stream measured in the same run, and the screen's latency
//! while the file streams against the same session idle.
//!
//! Both ends are this process: two [`link::RelayConnection`]s paired through the relay, each
//! with its file transfers ([`link::files::Files`], as the agent and the technician run them)
//! and the keys of a real exchange. The file goes from the agent's side to the technician's,
//! the way screen updates go, so that the two share the path as they do when a technician
//! fetches a file: sealed screen updates ([`crate::sealing::update_latency`]) are sent one at a
//! time on the same connection while the file streams, and timed until the technician side has
//! opened each. The technician side tells the two kinds of stream apart by their first record,
//! as the technician does.
//!
//! Phases: plain throughput (one unidirectional stream of bytes, on a session of its own), then
//! on a second session the screen latency idle, then the file (written to a scratch folder
//! first, hashed when offered; the rate is timed from the first byte streamed to the SHA-256
//! checked on the technician side) with the screen latency measured meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use link::files::{Command, Direction, FileNews, Files, Out};
use link::RelayConnection;
use protocol::e2e::StreamKind;
use protocol::framing::FrameReader;
use quinn::{Connection, RecvStream};
use tokio::sync::{mpsc, Notify};

use crate::relay::{open_pair, percentile, relay_binary, within, RelayProcess};
use crate::report::{progress, Report};
use crate::sealing::{self, Updates};

const BENCH: &str = "files";

/// Screen updates of the latency probe: a large update, as in `bench relay`.
const UPDATE: usize = 200 * 1024;
/// Pause between two probe updates.
const PROBE_GAP: Duration = Duration::from_millis(20);
/// Probe updates on the idle session.
const IDLE_SAMPLES: usize = 100;
/// Bytes written to the plain stream at once.
const PLAIN_WRITE: usize = 1 << 20;

/// Files bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the file sent, in MB (1e6 bytes)
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub size_mb: u64,
    /// Seconds the plain stream sends for
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Scratch folder for the file and its copy (twice its size is written there) [default:
    /// the system's temporary folder]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs the bench and returns its figures.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let relay_bin = relay_binary()?;
    let scratch = match &args.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("tandem-bench-files-")
            .tempdir_in(d),
        None => tempfile::Builder::new()
            .prefix("tandem-bench-files-")
            .tempdir(),
    }
    .context("cannot make a scratch folder")?;
    let size = args.size_mb * 1_000_000;
    progress(BENCH, format!("writing a file of {} MB", args.size_mb));
    let source = scratch.path().join("large.bin");
    let write_to = source.clone();
    tokio::task::spawn_blocking(move || write_file(&write_to, size))
        .await
        .context("the writing task failed")??;

    let relay = RelayProcess::start(&relay_bin).await?;
    let plain = plain_throughput(&relay, Duration::from_secs(args.seconds)).await?;
    let sealed = sealed_file(&relay, &source, &scratch.path().join("received")).await?;
    relay.stop().await;
    Ok(report(&args, &plain, &sealed))
}

/// Writes `size` bytes that differ from one offset to the next.
fn write_file(path: &Path, size: u64) -> anyhow::Result<()> {
    harness::bigfile::write_varied(path, size, |_| {})
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Bytes over time.
struct Rate {
    bytes: u64,
    elapsed: Duration,
}

impl Rate {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

async fn pair(relay: &RelayProcess) -> anyhow::Result<(RelayConnection, RelayConnection)> {
    let agent_ep = link::client::client_endpoint(relay.addr, relay.fingerprint)
        .context("cannot open the agent's endpoint")?;
    let tech_ep = link::client::client_endpoint(relay.addr, relay.fingerprint)
        .context("cannot open the technician's endpoint")?;
    within(Duration::from_secs(10), "pairing", async {
        Ok(open_pair(&agent_ep, &tech_ep, relay.addr, &relay.token).await?)
    })
    .await
}

/// One unidirectional stream of plain bytes through the relay for `duration`, timed until the
/// technician side has read them all.
async fn plain_throughput(relay: &RelayProcess, duration: Duration) -> anyhow::Result<Rate> {
    progress(
        BENCH,
        format!("plain throughput of one stream ({} s)", duration.as_secs()),
    );
    let (agent, tech) = pair(relay).await?;
    let reading = tokio::spawn({
        let conn = tech.connection.clone();
        async move {
            let mut recv = conn.accept_uni().await?;
            let mut buf = vec![0u8; PLAIN_WRITE];
            let mut total = 0u64;
            while let Some(n) = recv.read(&mut buf).await? {
                total += n as u64;
            }
            anyhow::Ok(total)
        }
    });
    let block = vec![0x5a_u8; PLAIN_WRITE];
    let start = Instant::now();
    let mut stream = agent.connection.open_uni().await?;
    let mut sent = 0u64;
    while start.elapsed() < duration {
        stream.write_all(&block).await?;
        sent += block.len() as u64;
    }
    stream.finish()?;
    let read = within(Duration::from_secs(30), "reading the plain stream", async {
        reading.await.context("the reading task failed")?
    })
    .await?;
    let elapsed = start.elapsed();
    if read != sent {
        bail!("{sent} bytes were sent and {read} read");
    }
    agent.close("bench done");
    tech.close_and_wait("bench done").await;
    Ok(Rate {
        bytes: sent,
        elapsed,
    })
}

/// The file's figures.
struct Sealed {
    rate: Rate,
    idle: Vec<Duration>,
    busy: Vec<Duration>,
}

/// The technician side's streams: file streams go to its file transfers, screen updates are
/// opened and each one's arrival told.
async fn technician_streams(
    conn: Connection,
    receiver: protocol::e2e::UpdateReceiver,
    files: mpsc::Sender<FrameReader<RecvStream>>,
    arrived: Arc<Notify>,
) {
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    while let Ok(stream) = conn.accept_uni().await {
        let (files, receiver, arrived) = (files.clone(), receiver.clone(), arrived.clone());
        tokio::spawn(async move {
            match link::sealed::first_record(stream).await {
                Ok((reader, id)) if id.kind == StreamKind::File => {
                    let _ = files.send(reader).await;
                }
                Ok((reader, _)) => {
                    if link::sealed::read_update_from(reader, &receiver)
                        .await
                        .is_ok()
                    {
                        arrived.notify_one();
                    }
                }
                Err(_) => {}
            }
        });
    }
}

/// Screen updates one at a time on `agent` until `stop` is set (or `count` are done): the
/// latency of each.
async fn probe(
    agent: &Connection,
    how: &Updates,
    seq: &AtomicU64,
    arrived: &Notify,
    count: Option<usize>,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) && count.is_none_or(|n| samples.len() < n) {
        let mut s = seq.load(Ordering::Relaxed);
        let t = sealing::update_latency(agent, how, &mut s, UPDATE, arrived).await?;
        seq.store(s, Ordering::Relaxed);
        samples.push(t);
        tokio::time::sleep(PROBE_GAP).await;
    }
    Ok(samples)
}

/// The file from the agent's side to the technician's, sealed, through the relay; the screen's
/// latency before and while it streams.
async fn sealed_file(relay: &RelayProcess, source: &Path, into: &Path) -> anyhow::Result<Sealed> {
    let (agent_keys, tech_keys) = sealing::session_keys()?;
    let (agent, tech) = pair(relay).await?;
    let (streams_tx, mut streams) = mpsc::channel(16);
    let arrived = Arc::new(Notify::new());
    let acceptor = tokio::spawn(technician_streams(
        tech.connection.clone(),
        tech_keys.update_receiver(),
        streams_tx,
        arrived.clone(),
    ));
    let mut agent_files = Files::start(agent.connection.clone(), agent_keys.file_keys(), false);
    let mut tech_files = Files::start(tech.connection.clone(), tech_keys.file_keys(), false);
    let how = Updates::Sealed(Arc::new(agent_keys));
    let seq = AtomicU64::new(0);
    let never = std::sync::atomic::AtomicBool::new(false);

    progress(
        BENCH,
        format!("screen latency, idle: {IDLE_SAMPLES} updates"),
    );
    // A few to warm up.
    probe(&agent.connection, &how, &seq, &arrived, Some(10), &never).await?;
    let mut idle = probe(
        &agent.connection,
        &how,
        &seq,
        &arrived,
        Some(IDLE_SAMPLES),
        &never,
    )
    .await?;
    idle.sort_unstable();

    progress(
        BENCH,
        "hashing and offering the file (not timed), then sending it sealed with the screen probed",
    );
    agent_files
        .command(Command::Send {
            paths: vec![source.to_path_buf()],
            tag: 0,
        })
        .await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::sync::OnceLock::<Instant>::new();
    let transfer = async {
        let result = loop {
            tokio::select! {
                out = agent_files.next() => match out {
                    Out::Peer(m) => tech_files.command(Command::Peer(m)).await,
                    Out::News(FileNews::Started { .. }) => {
                        let _ = started.set(Instant::now());
                    }
                    Out::News(FileNews::Failed { reason, .. }) => break Err(anyhow::anyhow!(reason)),
                    Out::News(_) => {}
                    Out::Broken(why) => break Err(anyhow::anyhow!(why)),
                },
                out = tech_files.next() => match out {
                    Out::Peer(m) => agent_files.command(Command::Peer(m)).await,
                    Out::News(FileNews::Offered { offer, .. }) => {
                        tech_files.command(Command::Accept {
                            offer: offer.id,
                            dir: into.to_path_buf(),
                            by: protocol::transfer::AcceptedBy::Person,
                        }).await;
                    }
                    Out::News(FileNews::Done { file, direction: Direction::Receiving, .. }) => {
                        break Ok((file.size, Instant::now()));
                    }
                    Out::News(FileNews::Failed { reason, .. }) => break Err(anyhow::anyhow!(reason)),
                    Out::News(FileNews::Declined { reason, .. }) => break Err(anyhow::anyhow!(reason)),
                    Out::News(_) => {}
                    Out::Broken(why) => break Err(anyhow::anyhow!(why)),
                },
                Some(reader) = streams.recv() => tech_files.stream(reader).await,
            }
        };
        stop.store(true, Ordering::Relaxed);
        result
    };
    // The probe starts once the file streams.
    let probing = async {
        while started.get().is_none() && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        probe(&agent.connection, &how, &seq, &arrived, None, &stop).await
    };
    let (done, busy) = within(Duration::from_secs(3600), "sending the file", async {
        Ok(tokio::join!(transfer, probing))
    })
    .await?;
    let (bytes, finished) = done?;
    let mut busy = busy?;
    busy.sort_unstable();
    let began = *started.get().context("the file never started")?;
    if busy.is_empty() {
        bail!("no screen update was timed while the file streamed");
    }
    acceptor.abort();
    agent.close("bench done");
    tech.close_and_wait("bench done").await;
    Ok(Sealed {
        rate: Rate {
            bytes,
            elapsed: finished - began,
        },
        idle,
        busy,
    })
}

fn report(args: &Args, plain: &Rate, sealed: &Sealed) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut r = Report::new(BENCH);
    r.note(format!(
        "agent -> relay process -> technician on loopback, both ends in this process, {cpus} CPU(s) \
         shared with the relay"
    ));
    r.note(format!(
        "plain = one unidirectional stream of bytes for {} s, timed until read; file = {} MB sent by \
         the file transfers both ends run (read from disk, sealed in records of {} KB, opened, hashed \
         and written on the other side), timed from its first byte until its SHA-256 checked",
        args.seconds,
        args.size_mb,
        protocol::transfer::FILE_RECORD / 1024
    ));
    r.note(format!(
        "screen latency = one sealed {} KB screen update on the same session, from making it until \
         the technician side opened it, one every {} ms; idle: {} updates before the file, busy: \
         every update while the file streamed ({} of them)",
        UPDATE / 1024,
        PROBE_GAP.as_millis(),
        sealed.idle.len(),
        sealed.busy.len()
    ));
    r.label("throughput_mb_s", "throughput");
    r.label("throughput_ratio", "file throughput relative to plain");
    r.label("screen_latency_p50_ms", "screen update latency p50");
    r.label("screen_latency_p99_ms", "screen update latency p99");
    r.label(
        "screen_latency_ratio_p50",
        "p50 during the file relative to idle",
    );
    r.add("plain", "throughput_mb_s", plain.mb_s(), "MB/s", 0);
    r.add("file", "throughput_mb_s", sealed.rate.mb_s(), "MB/s", 0);
    let ratio = sealed.rate.mb_s() / plain.mb_s();
    r.add("file", "throughput_ratio", ratio, "", 2);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let idle_p50 = ms(percentile(&sealed.idle, 0.5));
    let busy_p50 = ms(percentile(&sealed.busy, 0.5));
    r.add("idle", "screen_latency_p50_ms", idle_p50, "ms", 2);
    r.add(
        "idle",
        "screen_latency_p99_ms",
        ms(percentile(&sealed.idle, 0.99)),
        "ms",
        2,
    );
    r.add("file", "screen_latency_p50_ms", busy_p50, "ms", 2);
    r.add(
        "file",
        "screen_latency_p99_ms",
        ms(percentile(&sealed.busy, 0.99)),
        "ms",
        2,
    );
    let lat_ratio = busy_p50 / idle_p50;
    r.add("file", "screen_latency_ratio_p50", lat_ratio, "", 2);
    r.target("file", "throughput_ratio", "≥ 0.7", ratio >= 0.7);
    r.target("file", "screen_latency_ratio_p50", "≤ 2", lat_ratio <= 2.0);
    r
}
