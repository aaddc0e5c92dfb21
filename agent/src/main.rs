//! `agent`: the end user's program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::capture::{self, X11Source};
use agent::consent::{self, ConsentPolicy, FromUser, UserCommand};
use agent::desk::Machine;
use agent::inject::X11InputSink;
use agent::injector::InputGate;
use agent::session::{Person, SessionOptions};
use agent::share::{self, Outcome, ShareOptions};
use agent::sink::{DropSink, InputSink, RecordingSink};
use agent::source::{CorpusSource, ScreenSource, SourceFactory};
use agent::status::{Status, StatusTx};
use clap::{Parser, ValueEnum};
use link::report::Reporter;
use link::Fingerprint;
use protocol::peer::ConsentState;
use serde_json::json;

/// Tandem agent: shares this machine's screen with a technician, through a relay.
///
/// The agent connects to the relay, gets a session code and shows it. Read the whole code to
/// your technician (the nine digits, then the four after the dash); when they enter it, you are
/// asked whether they may see the screen and control it. The four digits after the dash never
/// leave this machine: they key the encryption between you and the technician, so the relay
/// cannot see your screen or fake the technician's input.
///
/// On a desktop (DISPLAY set) the agent opens a window: the code (with Request help, to ask
/// the desk's queue instead), the consent question with Allow control / View only / Deny,
/// while shared a small bar with Stop control, End session, the chat and the clipboard's
/// switch, and once the desk closes a help request its survey. It stays in the terminal with --no-window, without a display, with --json (scripts)
/// and with --consent view or control (unattended machines); --window opens the window even
/// then. In the terminal, answer c, v or d and Enter; during the session type v and Enter to
/// stop control, q and Enter or Ctrl+C to end it; a line that begins with > is a chat message
/// to the technicians. The terminal answers in window mode too.
///
/// While you allow control, what you copy (Ctrl+C, or text you select) can be pasted by the
/// technician holding control, and what they copy by you: text and images. The window's
/// switch (in the terminal: `clipboard off`, `clipboard on`), or --no-clipboard, stops it.
///
/// The window speaks the locale's language (LC_ALL, LC_MESSAGES, LANG: English or Spanish);
/// a desk adds or changes its words with files in $TANDEM_LOCALE_DIR/<lang>/agent.ftl.
#[derive(Parser, Debug, Clone)]
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
    /// `ask` the user (in the window, or in this terminal); or answer in advance for an
    /// unattended machine: `view` (view only) or `control`, which keeps the agent in the
    /// terminal
    #[arg(long, value_enum, default_value_t = ConsentArg::Ask)]
    consent: ConsentArg,
    /// Seconds to wait for the user's answer before denying
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    consent_timeout_secs: u64,
    /// Screen updates the technician may have unacknowledged
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    max_in_flight: u16,
    /// Seconds a session whose connection to the relay died keeps trying to resume before it
    /// ends
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    resume_secs: u64,
    /// Another relay of the organisation to resume a session through when its own relay is
    /// gone, as FINGERPRINT@HOST:PORT; tried in the order given, after the session's own relay
    /// and before those the relay names (a relay of a cluster names its live peers)
    #[arg(long = "resume-relay", value_name = "FINGERPRINT@HOST:PORT")]
    resume_relays: Vec<link::resume::OtherRelay>,
    /// Send everything exactly, never as video: moving pictures (videos, animations) then cost
    /// far more bandwidth. By default a region that changes on most frames and holds a natural
    /// image goes as H.264 while it moves, and is sent exactly within a second of stopping
    #[arg(long)]
    lossless: bool,
    /// Never share the clipboard with the technician, even while control is allowed
    #[arg(long)]
    no_clipboard: bool,
    /// Accept every file the technician in control sends into this folder, without asking (an
    /// unattended machine). Otherwise each offer is put to the user, who chooses where it goes
    /// (Downloads by default) or declines it
    #[arg(long, value_name = "DIR")]
    accept_files: Option<PathBuf>,
    /// Let the technician in control fetch files and folders of this machine
    /// (`technician fetch PATH`); each fetch is reported
    #[arg(long)]
    allow_files: bool,
    /// Let the technician in control look through the folders of this machine and fetch what
    /// they pick (`technician ls PATH`, the console's Files menu); each folder looked into is
    /// shown and reported. The window has a switch for it too; off unless given
    #[arg(long)]
    allow_browse: bool,
    /// Status as JSON lines on stdout, for scripts (no window unless --window)
    #[arg(long)]
    json: bool,
    /// Stay in the terminal: no window, even on a desktop
    #[arg(long, conflicts_with = "window")]
    no_window: bool,
    /// Open the window even with --json or --consent view/control (it needs DISPLAY)
    #[arg(long)]
    window: bool,
    /// With --json, also report every screen update sent
    #[arg(long)]
    report_updates: bool,
    /// Ask for help through the desk's queue instead of showing a code: what is wrong, in a
    /// sentence ("the printer stops after each page"). A technician takes the request; both of
    /// you then see a 6-digit verification code to compare
    #[arg(long, value_name = "TEXT")]
    request: Option<String>,
    /// With --request: the ticket number of the request in your desk's own system
    #[arg(long, value_name = "T", requires = "request")]
    ticket: Option<String>,
    /// With --request: once the desk closes the request, answer its one-question survey with
    /// this score, from 1 (bad) to 5 (very good). Only after a technician saw the screen; the
    /// window asks the person instead
    #[arg(long, value_name = "N", requires = "request", value_parser = clap::value_parser!(u8).range(1..=5))]
    survey: Option<u8>,
    /// With --survey: a comment to go with the score
    #[arg(long, value_name = "TEXT", requires = "survey", default_value = "")]
    survey_comment: String,
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
        let f: SourceFactory = std::sync::Arc::new(move || {
            Ok(Box::new(X11Source::open(display, max_fps)?) as Box<dyn ScreenSource>)
        });
        return Ok((f, describe));
    }
    match cli.source.split_once(':') {
        Some(("corpus", path)) => {
            let path = PathBuf::from(path);
            let speed = cli.speed;
            let describe = CorpusSource::open(&path, speed)?.describe();
            let f: SourceFactory = std::sync::Arc::new(move || {
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
        // Each technician's viewer maps its pointer to the monitor it sees (it may switch), so
        // the sink takes positions on the whole screen.
        None if spec == "x11" => Ok(Box::new(X11InputSink::open(
            (0, 0),
            capture::screen_size()?,
        )?)),
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

/// Whether this run opens the window (see the command's help).
fn wants_window(cli: &Cli) -> bool {
    if cli.no_window {
        return false;
    }
    let display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty());
    cli.window || (display && !cli.json && cli.consent == ConsentArg::Ask)
}

/// Runs the agent with the network on a runtime of its own, as one run of [`share::run`].
async fn run(cli: Cli, mut person: Person, report: Reporter) -> anyhow::Result<Outcome> {
    let Some(relay) = cli.relay.clone() else {
        anyhow::bail!("--relay is required");
    };
    // The sink first: its X connection stays open, so probing the source cannot make an idle X
    // server reset between the two (a server resets when its last client leaves).
    let sink = open_sink(&cli)?;
    let (factory, describe) = source_factory(&cli)?;
    let consent = match cli.consent {
        ConsentArg::Ask => ConsentPolicy::Ask {
            timeout: Duration::from_secs(cli.consent_timeout_secs),
        },
        ConsentArg::View => ConsentPolicy::Preset(ConsentState::ViewOnly),
        ConsentArg::Control => ConsentPolicy::Preset(ConsentState::Control),
    };
    let machine = Machine::this();
    let opts = ShareOptions {
        relay,
        fingerprint: cli.fingerprint,
        known_relays: cli
            .known_relays
            .clone()
            .unwrap_or_else(link::known::default_path),
        session: SessionOptions {
            max_in_flight: usize::from(cli.max_in_flight),
            report_updates: cli.report_updates,
            consent,
            lossless: cli.lossless,
            clipboard: cli.source == "x11" && !cli.no_clipboard,
            files: agent::files::FileOptions {
                accept_dir: cli.accept_files.clone(),
                allow_fetch: cli.allow_files,
                default_dir: link::files::downloads(),
                browse: std::sync::Arc::new(cli.allow_browse.into()),
            },
            resume_limit: std::time::Duration::from_secs(cli.resume_secs),
            other_relays: cli.resume_relays.clone(),
        },
        request: cli
            .request
            .as_ref()
            .map(|description| machine.filing(description, cli.ticket.as_deref())),
        machine,
        survey: cli.survey.map(|score| (score, cli.survey_comment.clone())),
    };
    // The first session's parts are open already; a help request's later sessions open theirs.
    let mut first = Some((sink, factory));
    let parts: share::SessionParts = Box::new(move || match first.take() {
        Some(p) => Ok(p),
        None => {
            let sink = open_sink(&cli)?;
            let (factory, _) = source_factory(&cli)?;
            Ok((sink, factory))
        }
    });
    share::run(opts, parts, describe, &mut person, report).await
}

/// Runs on the network thread: the whole run, its end told to the window and its failure
/// printed.
fn network(cli: Cli, person: Person, report: Reporter) -> ExitCode {
    let status = person.status.clone();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            report.error("agent", &format!("cannot start the network runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli, person, report)) {
        Ok(outcome) => {
            status.send(Status::Ended(share::ended_why(&outcome)));
            if outcome.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            let (message, why) = share::explain_error(&e);
            status.send(Status::Ended(why));
            report.error("agent", &message);
            ExitCode::FAILURE
        }
    };
    // The console thread may be blocked reading the terminal; do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let report = Reporter::new(cli.json);
    if cli.list_displays {
        return match list_displays(report) {
            Ok(code) => code,
            Err(e) => {
                report.error("agent", &format!("{e:#}"));
                ExitCode::FAILURE
            }
        };
    }
    let window = wants_window(&cli);
    let gate = InputGate::new();
    let (side, input) = consent::channel(gate.clone());
    let (status, status_rx) = if window {
        let (tx, rx) = StatusTx::channel();
        (tx, Some(rx))
    } else {
        (StatusTx::none(), None)
    };
    let person = Person {
        input,
        gate,
        status: status.clone(),
    };
    // The terminal answers in every mode; in terminal mode it is the only side, so a closed
    // standard input denies as before.
    if let Err(e) = consent::spawn_terminal(side.clone()) {
        report.error("agent", &format!("cannot read the terminal: {e}"));
        return ExitCode::FAILURE;
    }
    let Some(status_rx) = status_rx else {
        drop(side);
        return network(cli, person, report);
    };
    let net = match std::thread::Builder::new()
        .name("network".into())
        .spawn(move || network(cli, person, report))
    {
        Ok(t) => t,
        Err(e) => {
            report.error("agent", &format!("cannot start the network thread: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let lang = words::Lang::from_env();
    if let Err(e) = agent::window::run(lang, status_rx, status, side.clone()) {
        report.event(
            "window_failed",
            json!({ "message": e.to_string() }),
            format!("The window could not open ({e}); answer here in the terminal instead."),
        );
    } else {
        // The window is closed: whatever was going on ends (a consent question is denied).
        side.say(FromUser::Command(UserCommand::End));
    }
    drop(side);
    net.join().unwrap_or(ExitCode::FAILURE)
}
