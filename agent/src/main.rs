//! `agent`: the end user's program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::capture::{self, X11Source};
use agent::consent::{ConsentPolicy, Console};
use agent::inject::X11InputSink;
use agent::session::{self, Ended, SessionOptions};
use agent::sink::{DropSink, InputSink, RecordingSink};
use agent::source::{CorpusSource, ScreenSource, SourceFactory};
use clap::{Parser, ValueEnum};
use link::report::Reporter;
use link::sealed::PeerPlaneError;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::Role;
use protocol::e2e::{CodeSecret, HandshakeError, UserCode};
use protocol::peer::ConsentState;
use serde_json::json;

/// Tandem agent: shares this machine's screen with a technician, through a relay.
///
/// The agent connects to the relay, gets a session code and shows it. Read the whole code to
/// your technician (the nine digits, then the four after the dash); when they enter it, you are
/// asked whether they may see the screen and control it. The four digits after the dash never
/// leave this machine: they key the encryption between you and the technician, so the relay
/// cannot see your screen or fake the technician's input. Type v and Enter during the session to stop control, q and Enter or Ctrl+C to end it.
#[derive(Parser, Debug)]
#[command(name = "agent", version, about, long_about)]
struct Cli {
    /// Relay address, HOST:PORT
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "list_displays"
    )]
    relay: Option<String>,
    /// SHA-256 fingerprint of the relay's certificate (the relay prints it when it starts).
    /// Without it, the fingerprint seen on the first connection to this address is remembered
    /// and required from then on
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<Fingerprint>,
    /// File of remembered relay fingerprints [default: ~/.config/tandem/known-relays.json]
    #[arg(long, value_name = "FILE", env = "TANDEM_KNOWN_RELAYS")]
    known_relays: Option<PathBuf>,
    /// What to share: `x11` (this X display, from $DISPLAY) or `corpus:PATH` (a SCRNSEQ1
    /// screen recording)
    #[arg(long, value_name = "SOURCE", default_value = "x11")]
    source: String,
    /// Which monitor to share (see --list-displays) [default: the primary one]
    #[arg(long, value_name = "N")]
    display: Option<usize>,
    /// List the monitors of the X display with their sizes, and exit
    #[arg(long)]
    list_displays: bool,
    /// Most screen captures a second
    #[arg(long, default_value_t = 60.0, value_name = "FPS")]
    max_fps: f64,
    /// Playback speed of a corpus source; 0 plays every frame as fast as the viewer takes them
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    speed: f64,
    /// Where the technician's input goes: `x11` (this X display), `record:PATH` (each event
    /// as a JSON line), `drop`; by default x11 for the x11 source, drop otherwise
    #[arg(long, value_name = "SINK")]
    input: Option<String>,
    /// `ask` the user in this terminal; or answer in advance for an unattended machine:
    /// `view` (view only) or `control`
    #[arg(long, value_enum, default_value_t = ConsentArg::Ask)]
    consent: ConsentArg,
    /// Seconds to wait for the user's answer before denying
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    consent_timeout_secs: u64,
    /// Screen updates the technician may have unacknowledged
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    max_in_flight: u16,
    /// Send everything exactly, never as video: moving pictures (videos, animations) then cost
    /// far more bandwidth. By default a region that changes on most frames and holds a natural
    /// image goes as H.264 while it moves, and is sent exactly within a second of stopping
    #[arg(long)]
    lossless: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConsentArg {
    Ask,
    View,
    Control,
}

fn source_factory(cli: &Cli) -> anyhow::Result<(SourceFactory, String)> {
    if cli.source == "x11" {
        let (display, max_fps) = (cli.display, cli.max_fps);
        anyhow::ensure!(max_fps >= 1.0, "--max-fps must be at least 1");
        // Fail early, before any session, if the display cannot be captured.
        let probe = X11Source::open(display, max_fps)?;
        let describe = probe.describe();
        drop(probe);
        let f: SourceFactory = Box::new(move || {
            Ok(Box::new(X11Source::open(display, max_fps)?) as Box<dyn ScreenSource>)
        });
        return Ok((f, describe));
    }
    match cli.source.split_once(':') {
        Some(("corpus", path)) => {
            let path = PathBuf::from(path);
            let speed = cli.speed;
            let describe = CorpusSource::open(&path, speed)?.describe();
            let f: SourceFactory = Box::new(move || {
                Ok(Box::new(CorpusSource::open(&path, speed)?) as Box<dyn ScreenSource>)
            });
            Ok((f, describe))
        }
        _ => anyhow::bail!("unknown source `{}`; use x11 or corpus:PATH", cli.source),
    }
}

fn open_sink(cli: &Cli) -> anyhow::Result<Box<dyn InputSink>> {
    let default = if cli.source == "x11" { "x11" } else { "drop" };
    let spec = cli.input.as_deref().unwrap_or(default);
    match spec.split_once(':') {
        Some(("record", path)) => Ok(Box::new(RecordingSink::create(&PathBuf::from(path))?)),
        None if spec == "drop" => Ok(Box::new(DropSink)),
        None if spec == "x11" => {
            let monitors = capture::list_monitors()?;
            let index = cli
                .display
                .unwrap_or_else(|| capture::primary_index(&monitors));
            let m = monitors.get(index).ok_or_else(|| {
                anyhow::anyhow!("display {index} does not exist (see --list-displays)")
            })?;
            Ok(Box::new(X11InputSink::open(
                (m.x, m.y),
                (m.width, m.height),
            )?))
        }
        _ => anyhow::bail!("unknown input sink `{spec}`; use x11, record:PATH or drop"),
    }
}

fn list_displays(report: Reporter) -> anyhow::Result<ExitCode> {
    let monitors = capture::list_monitors()?;
    for m in &monitors {
        report.event(
            "display",
            json!({ "index": m.index, "name": m.name, "x": m.x, "y": m.y, "width": m.width, "height": m.height, "primary": m.primary }),
            format!(
                "{}: {} {}x{} at {},{}{}",
                m.index,
                m.name,
                m.width,
                m.height,
                m.x,
                m.y,
                if m.primary { " (primary)" } else { "" }
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli, report: Reporter) -> anyhow::Result<ExitCode> {
    if cli.list_displays {
        return list_displays(report);
    }
    let Some(relay) = cli.relay.clone() else {
        anyhow::bail!("--relay is required");
    };
    let known_relays = cli
        .known_relays
        .clone()
        .unwrap_or_else(link::known::default_path);
    // The sink first: its X connection stays open, so probing the source cannot make an idle X
    // server reset between the two (a server resets when its last client leaves).
    let sink = open_sink(&cli)?;
    let (factory, describe) = source_factory(&cli)?;
    let policy = match cli.consent {
        ConsentArg::Ask => ConsentPolicy::Ask {
            timeout: Duration::from_secs(cli.consent_timeout_secs),
        },
        ConsentArg::View => ConsentPolicy::Preset(ConsentState::ViewOnly),
        ConsentArg::Control => ConsentPolicy::Preset(ConsentState::Control),
    };
    if let ConsentPolicy::Preset(state) = policy {
        report.event(
            "unattended",
            json!({ "consent": if state == ConsentState::Control { "control" } else { "view_only" } }),
            format!(
                "UNATTENDED: any technician with the code will be let in {} without asking (--consent).",
                if state == ConsentState::Control { "with control of mouse and keyboard" } else { "to view the screen" }
            ),
        );
    }
    let mut console = Console::start();
    let (mut conn, trusted) =
        RelayConnection::connect_trusting(&relay, cli.fingerprint, &known_relays, Role::Agent)
            .await?;
    report.trust(&relay, &trusted, &known_relays);
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software, "source": describe }),
        format!("Connected to the relay at {}. Ready to share {describe}.", conn.relay_addr),
    );
    let (rendezvous, expires) = conn.register().await?;
    // The secret part is drawn here and never sent: the relay knows only the nine digits.
    let code = UserCode::new(rendezvous, CodeSecret::generate());
    report.event(
        "code",
        json!({
            "code": format!("{}-{}", code.rendezvous().digits(), code.secret().digits()),
            "rendezvous": code.rendezvous().digits(),
            "expires_in_secs": expires,
        }),
        format!(
            "Session code: {code}\nGive the whole code to your technician. It works once and expires in {} minutes.",
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
    let account = peer.account.as_ref();
    report.event(
        "paired",
        json!({
            "peer": peer.description, "software": peer.software,
            "technician": account.map(|a| &a.name), "tier": account.map(|a| a.tier),
            "organisation": account.map(|a| &a.organisation),
        }),
        format!("A technician connected: {}.", peer.introduce()),
    );
    let opts = SessionOptions {
        max_in_flight: usize::from(cli.max_in_flight),
        report_updates: cli.report_updates,
        consent: policy,
        lossless: cli.lossless,
    };
    let ended = session::run(
        &mut conn,
        &code,
        &peer,
        factory,
        sink,
        &mut console,
        opts,
        report,
        ctrl_c,
    )
    .await?;
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
    link::report::init_tracing(cli.verbose);
    let report = Reporter::new(cli.json);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = match rt.block_on(run(cli, report)) {
        Ok(code) => code,
        Err(e) => {
            let message = match e.downcast_ref::<LinkError>() {
                Some(LinkError::PeerLeft(r)) => format!("the technician left: {r}"),
                Some(LinkError::PeerPlane(PeerPlaneError::Handshake(
                    HandshakeError::CodeMismatch,
                ))) => {
                    format!(
                        "{e}: the technician entered another code, and nothing was shared. \
                             The code is spent; start the agent again for a new one"
                    )
                }
                _ => format!("{e:#}"),
            };
            report.error("agent", &message);
            ExitCode::FAILURE
        }
    };
    // The console thread may be blocked reading the terminal; do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}
