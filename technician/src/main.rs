//! `technician`: the technician's client.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use link::client::Trusted;
use link::report::Reporter;
use link::sealed::PeerPlaneError;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{
    ErrorCode, LogOffer, RecordingPolicy, Role, SessionCode, TechnicianAccount,
};
use protocol::e2e::{HandshakeError, UserCode};
use protocol::sessionlog::{
    code_sha256, CloseReason, Participant, SessionOpened, TypedText, Verdict,
};
use rand::TryRngCore;
use serde_json::json;
use std::sync::{Arc, Mutex};
use technician::archive::{Spool, SpoolEntry};
use technician::record::{default_log_dir, Recorder};
use technician::session::{self, Ended, SessionOptions};
use technician::tokens::{StoredLogin, Tokens};
use technician::{script, viewer};
use tracing::warn;

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
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Log in to a relay with your account (the password is asked at the terminal, or read as
    /// one line from standard input when that is not a terminal)
    Login(Login),
    /// End your login to a relay
    Logout(Logout),
    /// Join the session with the code the user reads out (log in first)
    Connect(Connect),
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
    fn known_relays(&self) -> PathBuf {
        self.known_relays
            .clone()
            .unwrap_or_else(link::known::default_path)
    }

    fn tokens(&self) -> anyhow::Result<Tokens> {
        let path = self
            .tokens
            .clone()
            .unwrap_or_else(technician::tokens::default_path);
        Tokens::load(&path)
    }

    /// Connects as a technician, trusting the relay as the flags and known relays say.
    async fn connect(&self, report: Reporter) -> Result<(RelayConnection, Trusted), LinkError> {
        let known = self.known_relays();
        let (conn, trusted) = RelayConnection::connect_trusting(
            &self.relay,
            self.fingerprint,
            &known,
            Role::Technician,
        )
        .await?;
        report.trust(&self.relay, &trusted, &known);
        Ok((conn, trusted))
    }
}

#[derive(clap::Args, Debug)]
struct Login {
    #[command(flatten)]
    relay: RelayArgs,
    /// Your account's name on the relay
    #[arg(long, value_name = "NAME")]
    user: String,
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
}

/// Opens the session's log in the log directory.
fn start_recording(
    args: &Connect,
    conn: &RelayConnection,
    trusted: &Trusted,
    account: &TechnicianAccount,
    code: &SessionCode,
    peer: &protocol::control::PeerInfo,
) -> anyhow::Result<Recorder> {
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let opened = SessionOpened {
        started_unix_ms,
        relay_address: args.relay.relay.clone(),
        relay_fingerprint: trusted.fingerprint().to_string(),
        relay_software: conn.relay_software.clone(),
        technician: Participant {
            role: Role::Technician,
            description: format!(
                "{account}, technician at {}",
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
            ErrorCode::BadCredentials => Some("Check the account name and password; after a few failures logins are delayed."),
            ErrorCode::AccountDisabled => Some("Ask an administrator of the relay to enable your account (relay user enable NAME)."),
            _ => None,
        },
        LinkError::WrongFingerprint { .. } => Some(
            "Copy the fingerprint again from the relay's start-up output or `relay fingerprint`.",
        ),
        LinkError::PeerPlane(PeerPlaneError::Handshake(HandshakeError::CodeMismatch)) => Some(
            "Nothing was shared. Check the code with the user: the code is spent now, so they must start the agent again for a new one.",
        ),
        LinkError::Connect { .. } => Some(
            "Check the relay address and port, that the relay is running, and the fingerprint it printed.",
        ),
        _ => None,
    }
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

async fn login(args: Login, report: Reporter) -> anyhow::Result<ExitCode> {
    let mut tokens = args.relay.tokens()?;
    let password = read_password(&args.relay.relay, &args.user)?;
    let (mut conn, _) = args.relay.connect(report).await?;
    let result = conn.login(&args.user, &password).await;
    drop(password);
    let (account, token, expires_in) = result?;
    conn.close_and_wait("logged in").await;
    tokens.put(
        &args.relay.relay,
        StoredLogin::new(
            account.name.clone(),
            token,
            Duration::from_secs(expires_in),
            SystemTime::now(),
        ),
    )?;
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

/// Why `technician connect` cannot use a stored login.
fn not_logged_in(relay: &str, stored: Option<&StoredLogin>, why: &str) -> anyhow::Error {
    let user = stored.map_or("NAME", |s| s.user.as_str());
    anyhow::anyhow!(
        "not logged in to {relay}{why}: run technician login --relay {relay} --user {user}"
    )
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
    let relay = args.relay.relay.clone();
    let mut tokens = args.relay.tokens()?;
    let stored = match tokens.get(&relay) {
        None => return Err(not_logged_in(&relay, None, "")),
        Some(s) if s.expired(SystemTime::now()) => {
            return Err(not_logged_in(&relay, Some(s), " (the login expired)"))
        }
        Some(s) => s.clone(),
    };
    let (mut conn, trusted) = args.relay.connect(report).await?;
    report.event(
        "connected",
        json!({ "relay": conn.relay_addr.to_string(), "relay_software": conn.relay_software }),
        format!("Connected to the relay at {}.", conn.relay_addr),
    );
    let account = match conn.resume(&stored.token).await {
        Ok((account, _, _)) => account,
        Err(LinkError::Refused {
            code:
                code @ (ErrorCode::TokenExpired | ErrorCode::TokenRevoked | ErrorCode::AccountDisabled),
            message,
        }) => {
            if code != ErrorCode::AccountDisabled {
                tokens.remove(&relay)?;
            }
            return Err(not_logged_in(
                &relay,
                Some(&stored),
                &format!(" ({message})"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    report.event(
        "logged_in",
        json!({ "relay": relay, "user": account.name, "tier": account.tier, "organisation": account.organisation }),
        format!("Logged in to {} as {} (tier {}).", account.organisation, account.name, account.tier),
    );
    let policy = conn.recording.clone().unwrap_or(RecordingPolicy {
        audit_key: None,
        optional: false,
    });
    if args.no_record && !policy.optional {
        anyhow::bail!(
            "{} records every session (its policy does not allow --no-record)",
            account.organisation
        );
    }
    let recipient = match &policy.audit_key {
        Some(k) => Some(
            technician::archive::parse_recipient(k)
                .context("the relay's audit key is not usable; tell its administrator")?,
        ),
        None => None,
    };
    let log_dir = args.log_dir.clone().unwrap_or_else(default_log_dir);
    let spool = Spool::new(log_dir.join("upload-spool"));
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
    let recorder = if args.no_record {
        report.event(
            "not_recording",
            json!({}),
            "This session is not recorded (--no-record).",
        );
        None
    } else {
        let recorder = start_recording(&args, &conn, &trusted, &account, code.rendezvous(), &peer)?;
        report.event(
            "recording",
            json!({ "path": recorder.path().display().to_string() }),
            format!("Recording this session to {}.", recorder.path().display()),
        );
        Some(Arc::new(Mutex::new(recorder)))
    };
    let log_id = (recorder.is_some() && recipient.is_some()).then(new_log_id);
    let opts = SessionOptions {
        script: steps,
        snapshot: args.snapshot.clone(),
        report_updates: args.report_updates,
        hash_frames: args.hash_frames,
        recorder: recorder.clone(),
        log_id: log_id.clone(),
    };
    let ctrl_c = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    // However the session ends, its log is sealed (and spooled for the relay) below.
    let (ended, stats, viewer) = match session::run(&mut conn, &code, opts, report, ctrl_c).await {
        Ok(r) => r,
        Err(e) => {
            let mut message = e.to_string();
            if let Some(hint) = advice(&e) {
                message = format!("{message}\n{hint}");
            }
            report.error("technician", &message);
            (
                Ended::Failed(e.to_string()),
                session::Stats::default(),
                Arc::new(Mutex::new(viewer::Viewer::new())),
            )
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
    let mut sealed = None;
    if let Some(recorder) = &recorder {
        let mut rec = recorder.lock().expect("recorder lock");
        match rec.finish(&close) {
            Ok(verdict) => {
                report.event(
                    "recorded",
                    json!({ "path": rec.path().display().to_string() }),
                    format!("Session log sealed: {}.", rec.path().display()),
                );
                sealed = Some((rec.path().to_path_buf(), rec.started_unix_ms(), verdict));
            }
            Err(e) => report.error(
                "technician",
                &format!(
                    "the session log {} is incomplete: {e}",
                    rec.path().display()
                ),
            ),
        }
    }
    // Into the spool, encrypted to the audit key, before anything can go wrong with the relay.
    let mut spooled = false;
    if let (
        Some((
            path,
            started_unix_ms,
            Verdict::Intact {
                records,
                duration_ms,
                chain_hash,
            },
        )),
        Some(recipient),
        Some(id),
    ) = (&sealed, &recipient, &log_id)
    {
        let entry = SpoolEntry {
            relay: relay.clone(),
            offer: LogOffer {
                id: id.clone(),
                agent: peer.description.clone(),
                started_unix_ms: *started_unix_ms,
                duration_ms: *duration_ms,
                records: *records,
                chain_hash: hex::encode(chain_hash),
                sha256: String::new(),
                size: 0,
            },
        };
        match spool.add(path, recipient, entry) {
            Ok(_) => spooled = true,
            Err(e) => report.error(
                "technician",
                &format!("the session log could not be encrypted for upload: {e:#}"),
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
    if spooled || !spool.entries().is_empty() {
        upload_spool(&args.relay, &stored.token, &spool, report).await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A new identifier for a session log on the relay: 32 hex digits from the OS's randomness.
fn new_log_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .expect("the operating system's random number generator works");
    hex::encode(b)
}

/// Uploads every log waiting in the spool for this relay, oldest first, over a new
/// connection; on any failure the rest waits for the next session.
async fn upload_spool(relay_args: &RelayArgs, token: &str, spool: &Spool, report: Reporter) {
    let relay = &relay_args.relay;
    let waiting: Vec<SpoolEntry> = spool
        .entries()
        .into_iter()
        .filter(|e| &e.relay == relay)
        .collect();
    if waiting.is_empty() {
        return;
    }
    let pending = |why: String| {
        report.event(
            "upload_pending",
            json!({ "waiting": waiting.len(), "spool": spool.dir().display().to_string(), "why": why }),
            format!(
                "{} session log(s) wait in {} for upload to {relay} ({why}); they go after your next session.",
                waiting.len(),
                spool.dir().display()
            ),
        )
    };
    let mut conn = match relay_args.connect(report).await {
        Ok((conn, _)) => conn,
        Err(e) => return pending(e.to_string()),
    };
    if let Err(e) = conn.resume(token).await {
        return pending(e.to_string());
    }
    for entry in &waiting {
        let offer = &entry.offer;
        let path = spool.data_path(&offer.id);
        match conn.upload(offer, &path, |_, _| {}).await {
            Ok(from) => {
                if let Err(e) = spool.remove(&offer.id) {
                    warn!(error = %e, "an uploaded log stays in the spool");
                }
                report.event(
                    "uploaded",
                    json!({ "id": offer.id, "bytes": offer.size, "resumed_from": from }),
                    format!(
                        "Session log {} stored on the relay ({} bytes, encrypted to the audit key).",
                        offer.id, offer.size
                    ),
                );
            }
            Err(e) => {
                conn.close("upload failed");
                return pending(e.to_string());
            }
        }
    }
    conn.close_and_wait("uploads done").await;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match cli.command {
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
            finish(report, rt.block_on(connect(args, report)))
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
            let mut message = format!("{e:#}");
            if let Some(hint) = e.downcast_ref::<LinkError>().and_then(advice) {
                message = format!("{message}\n{hint}");
            }
            report.error("technician", &message);
            ExitCode::FAILURE
        }
    }
}
