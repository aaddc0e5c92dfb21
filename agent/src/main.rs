//! `agent`: the end user's program.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::session::{self, Ended, SessionOptions};
use agent::sink::{DropSink, InputSink, RecordingSink};
use agent::source::{CorpusSource, ScreenSource};
use clap::Parser;
use link::report::Reporter;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::Role;
use serde_json::json;

/// Tandem agent: shares this machine's screen with a technician, through a relay.
///
/// The agent connects to the relay, gets a session code and shows it. Read the code to your
/// technician; when they enter it, the session starts. Press Ctrl+C at any moment to end it.
#[derive(Parser, Debug)]
#[command(name = "agent", version, about, long_about)]
struct Cli {
    /// Relay address, HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    relay: String,
    /// SHA-256 fingerprint of the relay's certificate (the relay prints it when it starts)
    #[arg(long, value_name = "SHA256")]
    fingerprint: Fingerprint,
    /// What to share: `corpus:PATH` plays a SCRNSEQ1 screen recording
    #[arg(long, value_name = "SOURCE")]
    source: String,
    /// Playback speed of a corpus source; 0 plays every frame as fast as the viewer takes them
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    speed: f64,
    /// Where the technician's input goes: `record:PATH` writes each event as a JSON line;
    /// `drop` discards it
    #[arg(long, default_value = "drop", value_name = "SINK")]
    input: String,
    /// Screen updates the technician may have unacknowledged
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    max_in_flight: u16,
    /// Status as JSON lines on stdout, for scripts
    #[arg(long)]
    json: bool,
    /// With --json, also report every screen update sent
    #[arg(long)]
    report_updates: bool,
    /// Show diagnostic logs on stderr (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn open_source(spec: &str, speed: f64) -> anyhow::Result<Box<dyn ScreenSource>> {
    match spec.split_once(':') {
        Some(("corpus", path)) => Ok(Box::new(CorpusSource::open(&PathBuf::from(path), speed)?)),
        _ => anyhow::bail!("unknown source `{spec}`; use corpus:PATH"),
    }
}

fn open_sink(spec: &str) -> anyhow::Result<Box<dyn InputSink>> {
    match spec.split_once(':') {
        Some(("record", path)) => Ok(Box::new(RecordingSink::create(&PathBuf::from(path))?)),
        None if spec == "drop" => Ok(Box::new(DropSink)),
        _ => anyhow::bail!("unknown input sink `{spec}`; use record:PATH or drop"),
    }
}

async fn run(cli: Cli, report: Reporter) -> anyhow::Result<ExitCode> {
    let source = open_source(&cli.source, cli.speed)?;
    let sink = open_sink(&cli.input)?;
    let mut conn = RelayConnection::connect(&cli.relay, cli.fingerprint, Role::Agent).await?;
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software }),
        format!("Connected to the relay at {}.", conn.relay_addr),
    );
    let (code, expires) = conn.register().await?;
    report.event(
        "code",
        json!({ "code": code.digits(), "expires_in_secs": expires }),
        format!(
            "Session code: {code}\nGive this code to your technician. It works once and expires in {} minutes.",
            expires.div_ceil(60)
        ),
    );
    let mut ctrl_c = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let peer = tokio::select! {
        p = conn.wait_paired() => p?,
        _ = &mut ctrl_c => {
            conn.close_and_wait("the user cancelled").await;
            report.event("ended", json!({ "reason": "cancelled" }), "Cancelled; no session took place.");
            return Ok(ExitCode::SUCCESS);
        }
    };
    report.event(
        "paired",
        json!({ "peer": peer.description, "software": peer.software }),
        format!(
            "A technician joined: {} ({}). Press Ctrl+C to end the session.",
            peer.description, peer.software
        ),
    );
    let opts = SessionOptions {
        max_in_flight: usize::from(cli.max_in_flight),
        report_updates: cli.report_updates,
    };
    let ended = session::run(&mut conn, source, sink, opts, report, ctrl_c).await?;
    let (reason, human) = match &ended {
        Ended::Reason(r) => (format!("{r:?}"), r.to_string()),
        Ended::PeerLeft(why) => (
            "PeerLeft".to_string(),
            format!("the technician left: {why}"),
        ),
    };
    conn.close_and_wait(&human).await;
    report.event(
        "ended",
        json!({ "reason": reason, "message": human }),
        format!("Session ended: {human}."),
    );
    Ok(match ended {
        Ended::Reason(protocol::peer::EndReason::Error(_)) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug,quinn=info,quinn_proto=info,rustls=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    let report = Reporter::new(cli.json);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(cli, report)) {
        Ok(code) => code,
        Err(e) => {
            let message = match e.downcast_ref::<LinkError>() {
                Some(LinkError::PeerLeft(r)) => format!("the technician left: {r}"),
                _ => format!("{e:#}"),
            };
            report.error("agent", &message);
            ExitCode::FAILURE
        }
    }
}
