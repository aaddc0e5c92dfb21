//! `technician`: the technician's client.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use link::client::{DeskNews, Trusted};
use link::report::Reporter;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::ErrorCode;
use protocol::e2e::UserCode;
use serde_json::json;
use technician::join::{self, not_logged_in, JoinOptions, Joining, Live, RelayTarget};
use technician::script;
use technician::tokens::Tokens;

/// Tandem technician client: log in to a relay, join a user's session by its code, see their
/// screen, and work their mouse and keyboard (with their consent).
///
/// Start with `technician login --relay HOST:PORT --user NAME`; the login is kept (per relay)
/// until `technician logout` or until it expires.
#[derive(Parser, Debug)]
#[command(name = "technician", version, about, long_about)]
struct Cli {
    /// Show diagnostic logs on stderr (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open the console window (the default without a command): log in, join sessions by
    /// code, see and work the remote screen, play session logs
    Console(ConsoleArgs),
    /// Log in to a relay with your account (the password is asked at the terminal, or read as
    /// one line from standard input when that is not a terminal)
    Login(Login),
    /// End your login to a relay
    Logout(Logout),
    /// Join the session with the code the user reads out (log in first)
    Connect(Connect),
    /// Show the help requests waiting for your tier and the tiers below, oldest first
    Queue(Queue),
    /// Take a help request from the queue (by number, or --next) and run its session like
    /// `connect`; the user and you compare a 6-digit verification code
    Take(Take),
    /// Watch a live session of your tiers as a lead (`technician queue` lists them); the user is
    /// asked to let you in, and you may take over control (`takeover` in an input script)
    Monitor(Monitor),
    /// Join the session with the code the user reads out, send files and folders to the user,
    /// and end the session once every one arrived: the user accepts them (or their unattended
    /// agent does) and their agent checks each file's SHA-256. Only the technician holding
    /// control may send
    Send(SendFiles),
    /// Join the session with the code the user reads out, fetch a file or a folder of the
    /// user's machine into a folder here, and end the session once it arrived. The user must
    /// allow it (agent --allow-files)
    Fetch(FetchFiles),
    /// Join the session with the code the user reads out, list a folder of the user's machine
    /// (its folders and files, with their sizes), and end the session. The user must allow
    /// browsing (agent --allow-browse, or the switch in the agent's window)
    Ls(ListFolder),
    /// Fetch a session log stored on the relay (your own; auditors and administrators: any),
    /// with the checkpoints the relay holds for it; open it with `technician log decrypt`
    FetchLog(FetchLog),
    /// Work with session logs: verify, show, frame, export, decrypt, and make the audit key
    Log {
        #[command(subcommand)]
        command: technician::logtool::LogCommand,
    },
}

/// How to reach a relay and trust it, and where the logins are kept.
#[derive(clap::Args, Debug)]
struct RelayArgs {
    /// Relay address, HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    relay: String,
    /// SHA-256 fingerprint of the relay's certificate (the relay prints it when it starts).
    /// Without it, the fingerprint seen on the first connection to this address is remembered
    /// and required from then on
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<Fingerprint>,
    /// File of remembered relay fingerprints [default: ~/.config/tandem/known-relays.json]
    #[arg(long, value_name = "FILE", env = "TANDEM_KNOWN_RELAYS")]
    known_relays: Option<PathBuf>,
    /// File the logins are kept in [default: ~/.config/tandem/technician/tokens.json]
    #[arg(long, value_name = "FILE", env = "TANDEM_TOKENS")]
    tokens: Option<PathBuf>,
    /// Status as JSON lines on stdout, for scripts
    #[arg(long)]
    json: bool,
}

impl RelayArgs {
    fn target(&self) -> RelayTarget {
        RelayTarget {
            relay: self.relay.clone(),
            fingerprint: self.fingerprint,
            known_relays: self
                .known_relays
                .clone()
                .unwrap_or_else(link::known::default_path),
            tokens: self
                .tokens
                .clone()
                .unwrap_or_else(technician::tokens::default_path),
        }
    }

    fn tokens(&self) -> anyhow::Result<Tokens> {
        self.target().tokens()
    }

    async fn connect(&self, report: Reporter) -> Result<(RelayConnection, Trusted), LinkError> {
        self.target().connect(report).await
    }
}

#[derive(clap::Args, Debug, Default)]
struct ConsoleArgs {
    /// Relay address, HOST:PORT [default: the relay of the last login kept]
    #[arg(long, value_name = "HOST:PORT")]
    relay: Option<String>,
    /// Your account's name on the relay, to fill in the login form
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// SHA-256 fingerprint of the relay's certificate; without it the console shows the
    /// fingerprint on the first connection and asks whether to trust it
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<Fingerprint>,
    /// File of remembered relay fingerprints [default: ~/.config/tandem/known-relays.json]
    #[arg(long, value_name = "FILE", env = "TANDEM_KNOWN_RELAYS")]
    known_relays: Option<PathBuf>,
    /// File the logins are kept in [default: ~/.config/tandem/technician/tokens.json]
    #[arg(long, value_name = "FILE", env = "TANDEM_TOKENS")]
    tokens: Option<PathBuf>,
    /// Directory session logs are recorded into [default: ~/.local/share/tandem/technician/logs]
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Join this session at once (after logging in, if needed)
    #[arg(long, value_name = "CODE")]
    connect: Option<String>,
    /// Start full screen
    #[arg(long)]
    fullscreen: bool,
    /// Show the remote screen at 1:1 (one remote pixel a screen pixel) rather than fitted
    #[arg(long)]
    one_to_one: bool,
    /// Open this session log (.tlog) in the player
    #[arg(long, value_name = "FILE.tlog")]
    play: Option<PathBuf>,
    /// Status as JSON lines on stdout, for scripts (with `viewer_area`: where the remote
    /// screen is on the display)
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct Login {
    #[command(flatten)]
    relay: RelayArgs,
    /// Your account's name on the relay
    #[arg(long, value_name = "NAME")]
    user: String,
    /// The six-digit code of your authenticator app, for an account with a second factor
    /// [default: asked when the relay wants one: at the terminal, or the next line of standard
    /// input after the password]
    #[arg(long, value_name = "DIGITS")]
    code: Option<String>,
}

#[derive(clap::Args, Debug)]
struct FetchLog {
    /// The log's identifier (as `relay logs list` or the technician's `uploaded` event say)
    id: String,
    #[command(flatten)]
    relay: RelayArgs,
    /// Directory to write ID.tlog.age and ID.checkpoints.json into
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct Logout {
    #[command(flatten)]
    relay: RelayArgs,
}

#[derive(clap::Args, Debug)]
struct Connect {
    /// The whole session code the user reads out: nine digits, a dash, four digits
    /// ("123 456 789 - 4821"; spaces and dashes are ignored). The four after the dash never
    /// reach the relay: they key the encryption between you and the user's agent
    code: String,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct SendFiles {
    /// The files and folders to send (one offer: the user accepts or declines them together)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The whole session code the user reads out (see `connect`)
    #[arg(long, value_name = "CODE")]
    code: String,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct FetchFiles {
    /// The file or folder on the user's machine (absolute, or `~/…` for their home folder)
    #[arg(value_name = "REMOTE-PATH")]
    path: String,
    /// The whole session code the user reads out (see `connect`)
    #[arg(long, value_name = "CODE")]
    code: String,
    /// The folder here to put it in
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct ListFolder {
    /// The folder on the user's machine (absolute, or `~` and `~/…` for their home folder)
    #[arg(value_name = "REMOTE-PATH", default_value = "~")]
    path: String,
    /// The whole session code the user reads out (see `connect`)
    #[arg(long, value_name = "CODE")]
    code: String,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct Take {
    /// The number of the help request to take (`technician queue` lists them)
    #[arg(required_unless_present = "next", conflicts_with = "next")]
    request: Option<u64>,
    /// Take the oldest request you may take whose user is connected
    #[arg(long)]
    next: bool,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct Monitor {
    /// The live session's identifier, as `technician queue` shows it to leads
    session: String,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    session_args: SessionArgs,
}

#[derive(clap::Args, Debug)]
struct Queue {
    #[command(flatten)]
    relay: RelayArgs,
    /// Keep showing the queue as it changes, until Ctrl+C
    #[arg(long)]
    watch: bool,
}

/// How a session runs, for `connect` and `take`.
#[derive(clap::Args, Debug)]
struct SessionArgs {
    /// Play this input script once the screen arrives (see docs/input-script.md)
    #[arg(long, value_name = "FILE")]
    input_script: Option<PathBuf>,
    /// Write the screen as PNG when the session ends
    #[arg(long, value_name = "FILE.png")]
    snapshot: Option<PathBuf>,
    /// With --json, report every screen update applied
    #[arg(long)]
    report_updates: bool,
    /// With --report-updates, include the SHA-256 of the screen after each update
    #[arg(long, requires = "report_updates")]
    hash_frames: bool,
    /// Directory the session log is recorded into; logs waiting for upload to the relay are
    /// kept in its `upload-spool` [default: ~/.local/share/tandem/technician/logs]
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Record typed text as a count of characters only, not the characters
    #[arg(long)]
    typed_text_count_only: bool,
    /// Do not record this session (only where the relay's policy allows it)
    #[arg(long)]
    no_record: bool,
    /// Share this display's clipboard (X selections of DISPLAY) with the user while you hold
    /// control: what either copies, the other can paste
    #[arg(long)]
    clipboard: bool,
    /// Another relay of the organisation to resume the session through when its own relay is
    /// gone, as FINGERPRINT@HOST:PORT; tried in the order given, after the session's own relay
    /// and before those the relay names (a relay of a cluster names its live peers)
    #[arg(long = "resume-relay", value_name = "FINGERPRINT@HOST:PORT")]
    resume_relays: Vec<link::resume::OtherRelay>,
    /// Seconds a session whose connection to the relay died keeps trying to resume before it
    /// ends
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    resume_secs: u64,
}

/// The password: asked at the terminal without echo, or one line of standard input.
fn read_password(relay: &str, user: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {user} at {relay}: "))
            .context("cannot read the password from the terminal")
    } else {
        link::userfile::password_line().context("cannot read the password from standard input")
    }
}

fn when(secs: u64) -> String {
    // Rounded: a login of 12 hours reads "12 hours" a second after it was made.
    if secs >= 2 * 3600 {
        format!("{} hours", (secs + 1800) / 3600)
    } else if secs >= 120 {
        format!("{} minutes", (secs + 30) / 60)
    } else {
        format!("{secs} seconds")
    }
}

/// The one-time code of an account's authenticator: asked at the terminal, or one more line of
/// standard input.
fn read_code(user: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("One-time code for {user} (from the authenticator app): ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the code from the terminal")?;
        Ok(line.trim().to_string())
    } else {
        link::userfile::password_line()
            .context("the relay asks for a one-time code: give it with --code or on the line after the password")
    }
}

async fn login(args: Login, report: Reporter) -> anyhow::Result<ExitCode> {
    let password = read_password(&args.relay.relay, &args.user)?;
    let (mut conn, _) = args.relay.connect(report).await?;
    let target = args.relay.target();
    let mut result = join::log_in(
        &mut conn,
        &target,
        &args.user,
        &password,
        args.code.as_deref(),
    )
    .await;
    let wants_code = |r: &anyhow::Result<_>| {
        matches!(
            r.as_ref().err().and_then(|e| e.downcast_ref::<LinkError>()),
            Some(LinkError::Refused {
                code: ErrorCode::SecondFactorRequired,
                ..
            })
        )
    };
    if args.code.is_none() && wants_code(&result) {
        // The relay closed that connection with its answer: the code goes on a new one.
        let code = read_code(&args.user)?;
        let (again, _) = args.relay.connect(report).await?;
        conn = again;
        result = join::log_in(&mut conn, &target, &args.user, &password, Some(&code)).await;
    }
    drop(password);
    let (account, expires_in) = result?;
    conn.close_and_wait("logged in").await;
    let tokens = args.relay.tokens()?;
    report.event(
        "logged_in",
        json!({
            "relay": args.relay.relay, "user": account.name, "tier": account.tier,
            "organisation": account.organisation, "expires_in_secs": expires_in,
            "tokens": tokens.path().display().to_string(),
        }),
        format!(
            "Logged in to {} at {} as {} (tier {}) for {}.",
            account.organisation,
            args.relay.relay,
            account.name,
            account.tier,
            when(expires_in)
        ),
    );
    Ok(ExitCode::SUCCESS)
}

async fn fetch_log(args: FetchLog, report: Reporter) -> anyhow::Result<ExitCode> {
    let relay = args.relay.relay.clone();
    let tokens = args.relay.tokens()?;
    let stored = match tokens.get(&relay) {
        Some(s) if !s.expired(SystemTime::now()) => s.clone(),
        other => return Err(not_logged_in(&relay, other, "")),
    };
    anyhow::ensure!(
        !args.id.is_empty()
            && args
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "`{}` is not a session-log identifier",
        args.id
    );
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let data = args.output.join(format!("{}.tlog.age", args.id));
    let (mut conn, _) = args.relay.connect(report).await?;
    conn.resume(&stored.token).await?;
    let (log, technician, checkpoints) = conn.fetch_log(&args.id, &data, |_, _| {}).await?;
    conn.close_and_wait("fetched").await;
    let (sha, size) = technician::archive::hash_file(&data)?;
    if hex::encode(sha) != log.sha256 || size != log.size {
        let _ = std::fs::remove_file(&data);
        anyhow::bail!(
            "the fetched log does not match what the relay indexed (SHA-256 or size); it was \
             removed, fetch it again"
        );
    }
    let cps = args.output.join(format!("{}.checkpoints.json", args.id));
    let file = protocol::sessionlog::CheckpointFile {
        log_id: args.id.clone(),
        checkpoints,
    };
    std::fs::write(&cps, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("cannot write {}", cps.display()))?;
    report.event(
        "fetched",
        json!({ "id": args.id, "technician": technician, "bytes": size,
                "path": data.display().to_string(), "checkpoints": cps.display().to_string() }),
        format!(
            "Fetched session log {} (recorded by {technician}, {size} bytes) into {} and {}.\n\
             Open it with: technician log decrypt {} --identity AUDIT_KEY -o {}.tlog",
            args.id,
            data.display(),
            cps.display(),
            data.display(),
            args.id
        ),
    );
    Ok(ExitCode::SUCCESS)
}

async fn logout(args: Logout, report: Reporter) -> anyhow::Result<ExitCode> {
    let mut tokens = args.relay.tokens()?;
    let Some(stored) = tokens.get(&args.relay.relay).cloned() else {
        report.event(
            "logged_out",
            json!({ "relay": args.relay.relay, "was_logged_in": false }),
            format!("Not logged in to {}; nothing to do.", args.relay.relay),
        );
        return Ok(ExitCode::SUCCESS);
    };
    // Forget the token here first: even if the relay cannot be told, it is not used again.
    tokens.remove(&args.relay.relay)?;
    let told = async {
        let (mut conn, _) = args.relay.connect(report).await?;
        conn.logout(&stored.token).await?;
        conn.close_and_wait("logged out").await;
        Ok::<_, LinkError>(())
    }
    .await;
    match told {
        Ok(()) => {
            report.event(
                "logged_out",
                json!({ "relay": args.relay.relay, "user": stored.user, "was_logged_in": true }),
                format!(
                    "Logged out of {} ({}); the login no longer works.",
                    args.relay.relay, stored.user
                ),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow::anyhow!(
            "the login was removed from this machine, but the relay could not be told to end it: {e}"
        )),
    }
}

/// Prints the queue once, or as it changes with `--watch`: the requests, the offers routing
/// makes, and for leads the dashboard (each tier's queue, the technicians, the live sessions).
async fn queue(args: Queue, report: Reporter) -> anyhow::Result<ExitCode> {
    let target = args.relay.target();
    let stored = target.stored_login()?;
    let (mut conn, _) = target.connect(report).await?;
    conn.resume(&stored.token).await?;
    conn.watch_queue().await?;
    let mut shown_queue = false;
    loop {
        // Once the queue is shown, a one-off look waits only for the dashboard sent with it.
        let news = if shown_queue && !args.watch {
            match tokio::time::timeout(Duration::from_millis(300), conn.next_desk()).await {
                Ok(n) => n?,
                Err(_) => break,
            }
        } else {
            conn.next_desk().await?
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let waited = |since: u64| when(now.saturating_sub(since) / 1000);
        match news {
            DeskNews::Queue { requests, more } => {
                let mut text = if requests.is_empty() {
                    "No help request is waiting.".to_string()
                } else {
                    format!(
                        "{} help request(s) waiting, oldest first:",
                        requests.len() + more as usize
                    )
                };
                for r in &requests {
                    text.push_str(&format!("\n  {}", request_line(r, &waited)));
                }
                if more > 0 {
                    text.push_str(&format!("\n  … and {more} more"));
                }
                report.event("queue", json!({ "requests": requests, "more": more }), text);
                shown_queue = true;
            }
            DeskNews::Offer {
                request,
                expires_in_secs,
            } => report.event(
                "offer",
                json!({ "request": request, "expires_in_secs": expires_in_secs }),
                format!(
                    "Offered to you: {}\n  take it with `technician take {}` within {expires_in_secs} s",
                    request_line(&request, &waited),
                    request.id
                ),
            ),
            DeskNews::Dashboard {
                tiers,
                technicians,
                sessions,
            } => {
                let mut text = "Desk now:".to_string();
                for t in &tiers {
                    text.push_str(&format!(
                        "\n  tier {}: {} waiting{}{}",
                        t.tier,
                        t.waiting,
                        t.oldest_queued_unix_ms
                            .map(|o| format!(", oldest {}", waited(o)))
                            .unwrap_or_default(),
                        if t.overdue > 0 {
                            format!(", {} OVERDUE", t.overdue)
                        } else {
                            String::new()
                        }
                    ));
                }
                for p in &technicians {
                    text.push_str(&format!(
                        "\n  {} (tier {}): {}, {} session(s)",
                        protocol::text::printable(&p.name),
                        p.tier,
                        p.presence.as_str(),
                        p.sessions
                    ));
                }
                if sessions.is_empty() {
                    text.push_str("\n  No live session to monitor.");
                }
                for s in &sessions {
                    text.push_str(&format!(
                        "\n  session {}: {} (tier {}){} for {}  (technician monitor {})",
                        s.session,
                        protocol::text::printable(&s.technician),
                        s.tier,
                        s.request
                            .map(|r| format!(", help request {r}"))
                            .unwrap_or_default(),
                        waited(s.started_unix_ms),
                        s.session
                    ));
                }
                report.event(
                    "dashboard",
                    json!({ "tiers": tiers, "technicians": technicians, "sessions": sessions }),
                    text,
                );
            }
        }
    }
    conn.close_and_wait("done").await;
    Ok(ExitCode::SUCCESS)
}

/// One waiting request in a line: number, tier, wait, what the user wrote, ticket, machine, and
/// what is special about it (away, overdue, offered, reserved, handed over).
fn request_line(r: &protocol::control::QueueEntry, waited: &dyn Fn(u64) -> String) -> String {
    let p = |s: &str| protocol::text::printable(s).into_owned();
    let mut line = format!(
        "{:>5}  tier {}  waiting {}  {}{}  ({} on {})",
        r.id,
        r.tier,
        waited(r.queued_unix_ms),
        p(&r.filing.description),
        r.filing
            .ticket
            .as_deref()
            .map(|t| format!(" [ticket {}]", p(t)))
            .unwrap_or_default(),
        p(&r.filing.machine),
        p(&r.filing.os),
    );
    if !r.connected {
        line.push_str("  (user away)");
    }
    if r.overdue {
        line.push_str("  OVERDUE");
    }
    if let Some(to) = &r.offered_to {
        line.push_str(&format!("  (offered to {})", p(to)));
    }
    if let Some(to) = &r.reserved_for {
        line.push_str(&format!("  (for {} only)", p(to)));
    }
    if let Some(h) = &r.handoff {
        let how = if h.held { "held by" } else { "escalated by" };
        line.push_str(&format!(
            "\n         {how} {}: \"{}\"",
            p(&h.by),
            p(&h.note)
        ));
    }
    line
}

/// A session whose script is one file step and the end: `technician send` and `fetch`.
async fn run_file_step(
    code: &str,
    action: script::Action,
    relay: RelayArgs,
    args: SessionArgs,
    report: Reporter,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.input_script.is_none(),
        "`send` and `fetch` play no input script; use `connect --input-script` with `send` and \
         `fetch` steps in it"
    );
    let joining = Joining::Code(parse_code(code)?);
    // Line 0: the command line's step, not a script file's.
    let steps = vec![
        script::Step { line: 0, action },
        script::Step {
            line: 0,
            action: script::Action::End,
        },
    ];
    run_session_with(joining, relay, args, Some(steps), report).await
}

async fn run_session(
    joining: Joining,
    relay: RelayArgs,
    args: SessionArgs,
    report: Reporter,
) -> anyhow::Result<ExitCode> {
    // Check the script before anything happens, so that an error costs no session.
    let script = match &args.input_script {
        Some(p) => Some(script::load(p)?),
        None => None,
    };
    run_session_with(joining, relay, args, script, report).await
}

async fn run_session_with(
    joining: Joining,
    relay: RelayArgs,
    args: SessionArgs,
    script: Option<Vec<script::Step>>,
    report: Reporter,
) -> anyhow::Result<ExitCode> {
    let opts = JoinOptions {
        script,
        snapshot: args.snapshot,
        report_updates: args.report_updates,
        hash_frames: args.hash_frames,
        log_dir: args.log_dir,
        typed_text_count_only: args.typed_text_count_only,
        no_record: args.no_record,
        clipboard: args.clipboard,
        other_relays: args.resume_relays,
        resume_limit: Some(std::time::Duration::from_secs(args.resume_secs)),
    };
    let ctrl_c = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let outcome = join::join(
        &relay.target(),
        &joining,
        opts,
        Live::default(),
        report,
        ctrl_c,
    )
    .await?;
    Ok(if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole code, or words that say what a code looks like.
fn parse_code(code: &str) -> anyhow::Result<UserCode> {
    UserCode::parse(code).map_err(|e| {
        anyhow::anyhow!(
            "`{code}` is not a whole session code: {e}. The code the agent shows has nine digits, \
             a dash and four more digits, like \"123 456 789 - 4821\"; enter all of them"
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let command = cli
        .command
        .unwrap_or_else(|| Command::Console(ConsoleArgs::default()));
    match command {
        Command::Console(args) => {
            drop(rt);
            let report = Reporter::new(args.json);
            let opts = technician::console::ConsoleOptions {
                relay: args.relay,
                user: args.user,
                fingerprint: args.fingerprint,
                known_relays: args.known_relays.unwrap_or_else(link::known::default_path),
                tokens: args.tokens.unwrap_or_else(technician::tokens::default_path),
                log_dir: args.log_dir,
                connect: args.connect,
                fullscreen: args.fullscreen,
                one_to_one: args.one_to_one,
                play: args.play,
                json: args.json,
            };
            finish(
                report,
                technician::console::run(opts).map(|()| ExitCode::SUCCESS),
            )
        }
        Command::Log { command } => technician::logtool::run(command),
        Command::Login(args) => {
            let report = Reporter::new(args.relay.json);
            finish(report, rt.block_on(login(args, report)))
        }
        Command::Logout(args) => {
            let report = Reporter::new(args.relay.json);
            finish(report, rt.block_on(logout(args, report)))
        }
        Command::Connect(args) => {
            let report = Reporter::new(args.relay.json);
            let joining = match parse_code(&args.code) {
                Ok(code) => Joining::Code(code),
                Err(e) => return finish(report, Err(e)),
            };
            finish(
                report,
                rt.block_on(run_session(joining, args.relay, args.session, report)),
            )
        }
        Command::Send(_) | Command::Fetch(_) | Command::Ls(_) => {
            let (code, action, relay, session) = match command {
                Command::Send(a) => (a.code, script::Action::Send(a.files), a.relay, a.session),
                Command::Fetch(a) => (
                    a.code,
                    script::Action::Fetch {
                        path: a.path,
                        dir: a.output,
                    },
                    a.relay,
                    a.session,
                ),
                Command::Ls(a) => (a.code, script::Action::List(a.path), a.relay, a.session),
                _ => unreachable!("matched above"),
            };
            let report = Reporter::new(relay.json);
            finish(
                report,
                rt.block_on(run_file_step(&code, action, relay, session, report)),
            )
        }
        Command::Take(args) => {
            let report = Reporter::new(args.relay.json);
            let joining = Joining::Request(args.request.filter(|_| !args.next));
            finish(
                report,
                rt.block_on(run_session(joining, args.relay, args.session, report)),
            )
        }
        Command::Monitor(args) => {
            let report = Reporter::new(args.relay.json);
            let joining = Joining::Monitor(args.session);
            finish(
                report,
                rt.block_on(run_session(joining, args.relay, args.session_args, report)),
            )
        }
        Command::Queue(args) => {
            let report = Reporter::new(args.relay.json);
            finish(report, rt.block_on(queue(args, report)))
        }
        Command::FetchLog(args) => {
            let report = Reporter::new(args.relay.json);
            finish(report, rt.block_on(fetch_log(args, report)))
        }
    }
}

fn finish(report: Reporter, result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            report.error("technician", &join::explain(&e));
            ExitCode::FAILURE
        }
    }
}
