//! `technician`: the technician's client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use link::report::Reporter;
use link::sealed::PeerPlaneError;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{ErrorCode, Role, SessionCode};
use protocol::e2e::{HandshakeError, UserCode};
use protocol::sessionlog::{code_sha256, CloseReason, Participant, SessionOpened, TypedText};
use serde_json::json;
use std::sync::{Arc, Mutex};
use technician::record::{default_log_dir, Recorder};
use technician::session::{self, Ended, SessionOptions};
use technician::{script, viewer};

/// Tandem technician client: join a user's session by its code, see their screen, and work
/// their mouse and keyboard (with their consent).
#[derive(Parser, Debug)]
#[command(name = "technician", version, about, long_about)]
struct Cli {
    /// Show diagnostic logs on stderr (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Join the session with the code the user reads out
    Connect(Connect),
    /// Work with session logs: verify, show, frame, export
    Log {
        #[command(subcommand)]
        command: technician::logtool::LogCommand,
    },
}

#[derive(clap::Args, Debug)]
struct Connect {
    /// The whole session code the user reads out: nine digits, a dash, four digits
    /// ("123 456 789 - 4821"; spaces and dashes are ignored). The four after the dash never
    /// reach the relay: they key the encryption between you and the user's agent
    code: String,
    /// Relay address, HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    relay: String,
    /// SHA-256 fingerprint of the relay's certificate (the relay prints it when it starts)
    #[arg(long, value_name = "SHA256")]
    fingerprint: Fingerprint,
    /// Play this input script once the screen arrives (see docs/input-script.md)
    #[arg(long, value_name = "FILE")]
    input_script: Option<PathBuf>,
    /// Write the screen as PNG when the session ends
    #[arg(long, value_name = "FILE.png")]
    snapshot: Option<PathBuf>,
    /// Status as JSON lines on stdout, for scripts
    #[arg(long)]
    json: bool,
    /// With --json, report every screen update applied
    #[arg(long)]
    report_updates: bool,
    /// With --report-updates, include the SHA-256 of the screen after each update
    #[arg(long, requires = "report_updates")]
    hash_frames: bool,
    /// Directory the session log is recorded into (every session is recorded)
    /// [default: ~/.local/share/tandem/technician/logs]
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Record typed text as a count of characters only, not the characters
    #[arg(long)]
    typed_text_count_only: bool,
}

/// Opens the session's log in the log directory.
fn start_recording(
    args: &Connect,
    conn: &RelayConnection,
    code: &SessionCode,
    peer: &protocol::control::PeerInfo,
) -> anyhow::Result<Recorder> {
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let opened = SessionOpened {
        started_unix_ms,
        relay_address: args.relay.clone(),
        relay_fingerprint: args.fingerprint.to_string(),
        relay_software: conn.relay_software.clone(),
        technician: Participant {
            role: Role::Technician,
            description: format!(
                "technician at {}",
                conn.endpoint
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            ),
            software: format!("technician {}", protocol::SOFTWARE_VERSION),
        },
        agent: Participant {
            role: Role::Agent,
            description: peer.description.clone(),
            software: peer.software.clone(),
        },
        protocol_version: protocol::PROTOCOL_VERSION,
        code_sha256: code_sha256(code.digits()),
        typed_text: if args.typed_text_count_only {
            TypedText::CountOnly
        } else {
            TypedText::Full
        },
    };
    let dir = args.log_dir.clone().unwrap_or_else(default_log_dir);
    Recorder::create(&dir, &opened).map_err(|e| anyhow::anyhow!("{e}; no session without a record"))
}

fn advice(e: &LinkError) -> Option<&'static str> {
    match e {
        LinkError::Refused { code, .. } => match code {
            ErrorCode::UnknownCode | ErrorCode::ExpiredCode | ErrorCode::UsedCode => {
                Some("Ask the user to read the code again, or to start the agent again for a new one.")
            }
            ErrorCode::UnsupportedVersion => Some("Update the technician client to match the relay."),
            _ => None,
        },
        LinkError::PeerPlane(PeerPlaneError::Handshake(HandshakeError::CodeMismatch)) => Some(
            "Nothing was shared. Check the code with the user: the code is spent now, so they must start the agent again for a new one.",
        ),
        LinkError::Connect { .. } => Some(
            "Check the relay address and port, that the relay is running, and the fingerprint it printed.",
        ),
        _ => None,
    }
}

async fn connect(args: Connect, report: Reporter) -> anyhow::Result<ExitCode> {
    let code = UserCode::parse(&args.code).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is not a whole session code: {e}. The code the agent shows has nine digits, \
             a dash and four more digits, like \"123 456 789 - 4821\"; enter all of them",
            args.code
        )
    })?;
    // Check the script before anything happens, so that an error costs no session.
    let steps = match &args.input_script {
        Some(p) => Some(script::load(p)?),
        None => None,
    };
    let mut conn =
        RelayConnection::connect(&args.relay, args.fingerprint, Role::Technician).await?;
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software }),
        format!("Connected to the relay at {}.", conn.relay_addr),
    );
    // The relay sees only the rendezvous part; the secret part stays here.
    let peer = conn.join(code.rendezvous().clone()).await?;
    report.event(
        "paired",
        json!({ "peer": peer.description, "software": peer.software }),
        format!(
            "Joined session {} with {} ({}).",
            code.rendezvous(),
            peer.description,
            peer.software
        ),
    );
    let recorder = start_recording(&args, &conn, code.rendezvous(), &peer)?;
    report.event(
        "recording",
        json!({ "path": recorder.path().display().to_string() }),
        format!("Recording this session to {}.", recorder.path().display()),
    );
    let recorder = Arc::new(Mutex::new(recorder));
    let opts = SessionOptions {
        script: steps,
        snapshot: args.snapshot.clone(),
        report_updates: args.report_updates,
        hash_frames: args.hash_frames,
        recorder: Some(recorder.clone()),
    };
    let ctrl_c = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let run = session::run(&mut conn, &code, opts, report, ctrl_c).await;
    let (ended, stats, viewer) = match run {
        Ok(r) => r,
        Err(e) => {
            // The log says how the attempt ended (a code that did not match, the relay gone).
            let _ = recorder
                .lock()
                .expect("recorder lock")
                .finish(&CloseReason::Failed(e.to_string()));
            return Err(e.into());
        }
    };
    let (reason, human, ok) = match &ended {
        Ended::ByAgent(r) => (
            format!("{r:?}"),
            r.to_string(),
            !matches!(r, protocol::peer::EndReason::Error(_)),
        ),
        Ended::ByTechnician => (
            "TechnicianEnded".into(),
            "you ended the session".into(),
            true,
        ),
        Ended::Failed(why) => ("Failed".into(), why.clone(), false),
    };
    conn.close_and_wait(&human).await;
    let close = match &ended {
        Ended::ByAgent(r) => CloseReason::ByAgent(r.clone()),
        Ended::ByTechnician => CloseReason::ByTechnician,
        Ended::Failed(why) => CloseReason::Failed(why.clone()),
    };
    {
        let mut rec = recorder.lock().expect("recorder lock");
        match rec.finish(&close) {
            Ok(()) => report.event(
                "recorded",
                json!({ "path": rec.path().display().to_string() }),
                format!("Session log sealed: {}.", rec.path().display()),
            ),
            Err(e) => report.error(
                "technician",
                &format!(
                    "the session log {} is incomplete: {e}",
                    rec.path().display()
                ),
            ),
        }
    }
    if let Some(path) = &args.snapshot {
        let v = viewer.lock().expect("viewer lock");
        match viewer::write_png(v.framebuffer(), path) {
            Ok(()) => report.event(
                "snapshot",
                json!({ "path": path.display().to_string() }),
                format!("Screen saved to {}.", path.display()),
            ),
            Err(e) => report.error("technician", &format!("snapshot not written: {e}")),
        }
    }
    let sha = viewer.lock().expect("viewer lock").pixels_sha256();
    report.event(
        "ended",
        json!({
            "reason": reason, "message": human, "updates": stats.updates,
            "tile_bytes": stats.tile_bytes, "sha256": sha,
        }),
        format!(
            "Session ended: {human}. {} screen updates received ({:.1} MB).",
            stats.updates,
            stats.tile_bytes as f64 / 1e6
        ),
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match cli.command {
        Command::Log { command } => technician::logtool::run(command),
        Command::Connect(args) => {
            let report = Reporter::new(args.json);
            match rt.block_on(connect(args, report)) {
                Ok(code) => code,
                Err(e) => {
                    let mut message = format!("{e:#}");
                    if let Some(hint) = e.downcast_ref::<LinkError>().and_then(advice) {
                        message = format!("{message}\n{hint}");
                    }
                    report.error("technician", &message);
                    ExitCode::FAILURE
                }
            }
        }
    }
}
