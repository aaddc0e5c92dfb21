//! Joining a session by its code, from the stored login to the sealed, uploaded session log:
//! what `technician connect` and the console's session view both run.
//!
//! [`join`] checks the login, connects to the relay, joins with the rendezvous part of the code,
//! opens the session log, runs the session ([`crate::session::run`]), seals the log, puts it in
//! the upload spool encrypted to the audit key, and uploads what the spool holds. A window
//! follows it through [`Live`]: input in, frames and events out.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use link::client::Trusted;
use link::report::Reporter;
use link::sealed::{Meeting, PeerPlaneError};
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{
    ErrorCode, LogOffer, PeerInfo, RecordingPolicy, RelayPointer, Role, TechnicianAccount,
};
use protocol::e2e::{HandshakeError, UserCode};
use protocol::input::InputEvent;
use protocol::sessionlog::{
    code_sha256, CloseReason, Participant, SessionOpened, TypedText, Verdict,
};
use protocol::text::{tame, MAX_PEER_STRING, MAX_REASON};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::warn;

use crate::archive::{Spool, SpoolEntry};
use crate::record::{default_log_dir, Recorder};
use crate::script::Step;
use crate::session::{self, Ended, FrameHook, SessionEvent, SessionOptions};
use crate::tokens::{StoredLogin, Tokens};
use crate::viewer::{self, Viewer};

/// How many times a join follows one relay of the organisation sending it to another.
const MAX_REDIRECTS: usize = 3;

/// A relay, how to trust it, and where the logins are kept.
#[derive(Debug, Clone)]
pub struct RelayTarget {
    /// HOST:PORT.
    pub relay: String,
    /// The fingerprint given explicitly; otherwise the remembered one, or trust on first use.
    pub fingerprint: Option<Fingerprint>,
    pub known_relays: PathBuf,
    pub tokens: PathBuf,
}

impl RelayTarget {
    pub fn tokens(&self) -> anyhow::Result<Tokens> {
        Tokens::load(&self.tokens)
    }

    /// Connects as a technician, trusting the relay as the fingerprint and known relays say.
    pub async fn connect(&self, report: Reporter) -> Result<(RelayConnection, Trusted), LinkError> {
        let (conn, trusted) = RelayConnection::connect_trusting(
            &self.relay,
            self.fingerprint,
            &self.known_relays,
            Role::Technician,
        )
        .await?;
        report.trust(&self.relay, &trusted, &self.known_relays);
        Ok((conn, trusted))
    }

    /// The stored login for this relay, if it is still valid.
    pub fn stored_login(&self) -> anyhow::Result<StoredLogin> {
        let tokens = self.tokens()?;
        match tokens.get(&self.relay) {
            None => Err(not_logged_in(&self.relay, None, "")),
            Some(s) if s.expired(SystemTime::now()) => {
                Err(not_logged_in(&self.relay, Some(s), " (the login expired)"))
            }
            Some(s) => Ok(s.clone()),
        }
    }
}

/// Logs in on a connection and keeps the login for the relay. Returns the account and how long
/// the login lasts, in seconds.
pub async fn log_in(
    conn: &mut RelayConnection,
    target: &RelayTarget,
    user: &str,
    password: &str,
    one_time: Option<&str>,
) -> anyhow::Result<(TechnicianAccount, u64)> {
    let mut tokens = target.tokens()?;
    let (account, token, expires_in) = conn.login_with_code(user, password, one_time).await?;
    tokens.put(
        &target.relay,
        StoredLogin::new(
            account.name.clone(),
            token,
            std::time::Duration::from_secs(expires_in),
            SystemTime::now(),
        ),
    )?;
    Ok((account, expires_in))
}

/// What to do in the session, besides looking.
#[derive(Debug, Default)]
pub struct JoinOptions {
    pub script: Option<Vec<Step>>,
    /// Write the screen as PNG when the session ends.
    pub snapshot: Option<PathBuf>,
    pub report_updates: bool,
    pub hash_frames: bool,
    /// Where the log is recorded [default: `record::default_log_dir`].
    pub log_dir: Option<PathBuf>,
    pub typed_text_count_only: bool,
    pub no_record: bool,
    /// Share this display's clipboard while holding control.
    pub clipboard: bool,
    /// Relays of the organisation to resume through besides the session's own.
    pub other_relays: Vec<link::resume::OtherRelay>,
    /// How long a session whose relay connection died tries to resume (`None`: the default).
    pub resume_limit: Option<std::time::Duration>,
}

/// How a window follows the session.
#[derive(Default)]
pub struct Live {
    pub input: Option<mpsc::Receiver<InputEvent>>,
    pub viewer: Option<Arc<Mutex<Viewer>>>,
    pub on_frame: Option<FrameHook>,
    pub events: Option<mpsc::UnboundedSender<JoinEvent>>,
    /// Steps of the session's help request a window asks for.
    pub desk: Option<mpsc::Receiver<crate::desk::DeskAction>>,
    /// Chat and monitor switches a window asks for.
    pub tools: Option<mpsc::Receiver<session::ToolAction>>,
    /// Where the user's pointer goes (a window drawing it).
    pub cursor: Option<crate::cursor::CursorHook>,
    /// Files a window sends or fetches.
    pub files: Option<mpsc::Receiver<crate::files::FileStep>>,
    /// Hand-overs and take-overs of control a window asks for.
    pub control: Option<mpsc::Receiver<crate::session::ControlStep>>,
}

/// What a window is told besides the session's own events.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinEvent {
    /// Logged in and paired: who is on the other end.
    Paired {
        account: String,
        peer: String,
    },
    /// The session is with the user of this help request, as it was taken.
    Request(Box<protocol::control::QueueEntry>),
    /// The session log goes here (`None`: not recorded).
    Recording(Option<PathBuf>),
    /// The relay asked sent this client to the relay at `relay`, which holds the user's agent.
    Redirected {
        relay: String,
    },
    Session(SessionEvent),
}

/// How the session went.
#[derive(Debug)]
pub struct Outcome {
    pub ended: Ended,
    /// Words for a person: why it ended.
    pub message: String,
    /// It ended normally (not by an error).
    pub ok: bool,
    /// Where its log is, when it was recorded and sealed.
    pub log: Option<PathBuf>,
}

/// What the technician joins: the session of a code the user read out, a help request taken
/// from the queue (`None`: the oldest it may take), or a live session a lead monitors (by its
/// identifier in the relay's ledger).
#[derive(Debug, Clone)]
pub enum Joining {
    Code(UserCode),
    Request(Option<u64>),
    Monitor(String),
}

/// A taken help request in words: what the user wrote, their machine, and the note of whoever
/// passed it on.
fn request_words(entry: &protocol::control::QueueEntry) -> String {
    let f = &entry.filing;
    let clip = |s: &str| tame(s, MAX_PEER_STRING);
    let mut text = format!(
        "Help request {}: \"{}\" from {} ({})",
        entry.id,
        clip(&f.description),
        clip(&f.machine),
        clip(&f.os)
    );
    if let Some(t) = &f.ticket {
        text.push_str(&format!(", ticket {}", clip(t)));
    }
    text.push('.');
    if let Some(h) = &entry.handoff {
        let how = if h.held { "held" } else { "escalated" };
        text.push_str(&format!(
            "\n{} {how} it with the note: {}\n(the session before is {} in the relay's ledger)",
            clip(&h.by),
            clip(&h.note),
            clip(&h.session),
        ));
    }
    text
}

/// Opens the session's log in the log directory.
fn start_recording(
    target: &RelayTarget,
    opts: &JoinOptions,
    conn: &RelayConnection,
    trusted: &Trusted,
    account: &TechnicianAccount,
    rendezvous: &str,
    peer: &protocol::control::PeerInfo,
) -> anyhow::Result<Recorder> {
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let opened = SessionOpened {
        started_unix_ms,
        relay_address: target.relay.clone(),
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
        code_sha256: code_sha256(rendezvous),
        typed_text: if opts.typed_text_count_only {
            TypedText::CountOnly
        } else {
            TypedText::Full
        },
    };
    let dir = opts.log_dir.clone().unwrap_or_else(default_log_dir);
    Recorder::create(&dir, &opened).map_err(|e| anyhow::anyhow!("{e}; no session without a record"))
}

/// What a person can do about an error of the link, when there is something.
pub fn advice(e: &LinkError) -> Option<&'static str> {
    match e {
        LinkError::Refused { code, .. } => match code {
            ErrorCode::UnknownCode | ErrorCode::ExpiredCode | ErrorCode::UsedCode => {
                Some("Ask the user to read the code again, or to start the agent again for a new one.")
            }
            ErrorCode::UnsupportedVersion => Some("Update the technician client to match the relay."),
            ErrorCode::BadCredentials => Some("Check the account name and password; after a few failures logins are delayed."),
            ErrorCode::AccountDisabled => Some("Ask an administrator of the relay to enable your account (relay user enable NAME)."),
            ErrorCode::SecondFactorRequired => Some("Give the six-digit code your authenticator app shows (technician login --code DIGITS)."),
            ErrorCode::RecordingMissing => Some("This relay requires every session to be recorded; use a technician client that records and checkpoints its session log."),
            ErrorCode::QuotaExceeded => Some("Ask an administrator of the relay for a larger share (account_log_quota_mb) or to delete old logs; the log waits in the spool."),
            ErrorCode::Timeout => Some("Connect again when you need the relay."),
            ErrorCode::RelayGone => Some("Ask the user to start the agent again: it connects to a relay that runs, and reads out a new code."),
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

/// An error with the advice that goes with it, as a person reads it.
pub fn explain(e: &anyhow::Error) -> String {
    let mut message = format!("{e:#}");
    if let Some(hint) = e.downcast_ref::<LinkError>().and_then(advice) {
        message = format!("{message}\n{hint}");
    }
    message
}

/// Why a stored login cannot be used.
pub fn not_logged_in(relay: &str, stored: Option<&StoredLogin>, why: &str) -> anyhow::Error {
    let user = stored.map_or("NAME", |s| s.user.as_str());
    anyhow::anyhow!(
        "not logged in to {relay}{why}: run technician login --relay {relay} --user {user}"
    )
}

/// Asks the relay of `conn` for the session of `joining`. The relay sees only a code's
/// rendezvous part; the secret part stays here.
async fn ask(conn: &mut RelayConnection, joining: &Joining) -> Result<PeerInfo, LinkError> {
    match joining {
        Joining::Code(code) => conn.join(code.rendezvous().clone()).await,
        Joining::Request(request) => conn.take(*request).await,
        Joining::Monitor(session) => conn.monitor(session.clone()).await,
    }
}

/// The fingerprint a relay gave for the relay it sent this client to.
fn conn_fingerprint(to: &RelayPointer) -> Result<Fingerprint, LinkError> {
    to.fingerprint
        .parse()
        .map_err(|_| LinkError::Protocol(format!("{:?} is not a fingerprint", to.fingerprint)))
}

/// Joins the session of `code` and runs it until it ends (see the module documentation).
/// Errors before the session (no login, relay refused the code) are `Err`; how the session
/// itself ended is the [`Outcome`].
pub async fn join(
    target: &RelayTarget,
    joining: &Joining,
    opts: JoinOptions,
    live: Live,
    report: Reporter,
    user_end: impl std::future::Future<Output = ()> + Unpin,
) -> anyhow::Result<Outcome> {
    let relay = target.relay.clone();
    let stored = target.stored_login()?;
    let tell = |e: JoinEvent| {
        if let Some(tx) = &live.events {
            let _ = tx.send(e);
        }
    };
    let (mut conn, mut trusted) = target.connect(report).await?;
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
                target.tokens()?.remove(&relay)?;
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
        clipboard_content: false,
    });
    let clipboard_content = policy.clipboard_content;
    if opts.no_record && !policy.optional {
        anyhow::bail!(
            "{} records every session (its policy does not allow --no-record)",
            account.organisation
        );
    }
    let recipient = match &policy.audit_key {
        Some(k) => Some(
            crate::archive::parse_recipient(k)
                .context("the relay's audit key is not usable; tell its administrator")?,
        ),
        None => None,
    };
    let log_dir = opts.log_dir.clone().unwrap_or_else(default_log_dir);
    let spool = Spool::new(log_dir.join("upload-spool"));
    // The user's agent is on another relay of the organisation: this one vouches for it, and
    // the same login works there. (The oldest request may have been taken meanwhile, and the
    // next be on yet another relay: a few hops are followed.)
    let mut hops = 0;
    let peer = loop {
        let to = match ask(&mut conn, joining).await {
            Err(LinkError::Redirected(to)) if hops < MAX_REDIRECTS => to,
            other => break other?,
        };
        hops += 1;
        report.event(
            "redirected",
            json!({ "relay": to.name, "addr": to.addr, "fingerprint": to.fingerprint }),
            format!(
                "The user's agent is on relay {} at {} of the same organisation; joining there.",
                to.name, to.addr
            ),
        );
        tell(JoinEvent::Redirected {
            relay: to.addr.clone(),
        });
        conn = RelayConnection::connect_redirected(&to, Role::Technician).await?;
        conn.resume(&stored.token).await?;
        trusted = Trusted::Explicit {
            fingerprint: conn_fingerprint(&to)?,
            remembered_now: false,
        };
    };
    let session_id = conn.session.clone().unwrap_or_default();
    // What the session is known by: the code's rendezvous part, or the relay's session
    // identifier for a request.
    let (what, rendezvous, meeting) = match joining {
        Joining::Code(code) => (
            format!("session {}", code.rendezvous()),
            code.rendezvous().digits().to_string(),
            Meeting::Code(code.clone()),
        ),
        Joining::Request(_) => (
            format!("help request session {session_id}"),
            session_id.clone(),
            Meeting::Queue(session_id.clone()),
        ),
        Joining::Monitor(watched) => (
            format!("session {watched} to monitor it"),
            session_id.clone(),
            Meeting::Queue(session_id.clone()),
        ),
    };
    // What the agent says of itself, as a person may see it: bounded, and nothing in it acts
    // on a terminal or reorders a label.
    let (who, software) = (
        tame(&peer.description, MAX_PEER_STRING),
        tame(&peer.software, MAX_PEER_STRING),
    );
    report.event(
        "paired",
        json!({ "peer": who, "software": software, "session": session_id }),
        format!("Joined {what} with {who} ({software})."),
    );
    if let Some(entry) = &conn.request {
        report.event("request", json!({ "request": entry }), request_words(entry));
        tell(JoinEvent::Request(Box::new(entry.clone())));
    }
    tell(JoinEvent::Paired {
        account: account.to_string(),
        peer: who.clone(),
    });
    let recorder = if opts.no_record {
        report.event(
            "not_recording",
            json!({}),
            "This session is not recorded (--no-record).",
        );
        tell(JoinEvent::Recording(None));
        None
    } else {
        let recorder =
            start_recording(target, &opts, &conn, &trusted, &account, &rendezvous, &peer)?;
        report.event(
            "recording",
            json!({ "path": recorder.path().display().to_string() }),
            format!("Recording this session to {}.", recorder.path().display()),
        );
        tell(JoinEvent::Recording(Some(recorder.path().to_path_buf())));
        Some(Arc::new(Mutex::new(recorder)))
    };
    if let (Some(r), Some(entry)) = (&recorder, &conn.request) {
        let handoff = entry.handoff.as_ref();
        let words = match handoff {
            Some(h) if h.held => format!("taken again after {} held it", h.by),
            Some(h) => format!("taken after {} escalated it", h.by),
            None => "taken from the queue".to_string(),
        };
        let step = protocol::sessionlog::DeskStep {
            request: entry.id,
            action: "taken".into(),
            to: None,
            note: handoff.map(|h| h.note.clone()).unwrap_or_default(),
            words,
        };
        r.lock().expect("recorder lock").desk_step(&step);
    }
    // The log goes to the relay under the session's row in its ledger.
    let log_id = conn
        .session
        .clone()
        .filter(|_| recorder.is_some() && recipient.is_some());
    // Session events go to the window wrapped as join events.
    let session_events = live.events.clone().map(|join_tx| {
        let (tx, mut rx) = mpsc::unbounded_channel::<SessionEvent>();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if join_tx.send(JoinEvent::Session(e)).is_err() {
                    break;
                }
            }
        });
        tx
    });
    let session_opts = SessionOptions {
        script: opts.script,
        snapshot: opts.snapshot.clone(),
        report_updates: opts.report_updates,
        hash_frames: opts.hash_frames,
        recorder: recorder.clone(),
        log_id: log_id.clone(),
        input: live.input,
        desk: live.desk,
        files: live.files,
        control: live.control,
        viewer: live.viewer,
        on_frame: live.on_frame,
        events: session_events,
        tools: live.tools,
        clipboard: opts.clipboard,
        record_clipboard_content: clipboard_content,
        cursor: live.cursor,
        token: Some(stored.token.clone()),
        resume_limit: opts.resume_limit,
        other_relays: opts.other_relays.clone(),
    };
    // However the session ends, its log is sealed (and spooled for the relay) below.
    let (ended, stats, viewer) =
        match session::run(&mut conn, &meeting, session_opts, report, user_end).await {
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
                    Arc::new(Mutex::new(Viewer::new())),
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
    // The agent's reason (or the relay's words for its departure), as a person reads it.
    let (reason, human) = (tame(&reason, MAX_REASON), tame(&human, MAX_REASON));
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
    if let Some(path) = &opts.snapshot {
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
        upload_spool(target, &stored.token, &spool, report).await;
    }
    Ok(Outcome {
        ended,
        message: human,
        ok,
        log: sealed.map(|(p, _, _)| p),
    })
}

/// Uploads every log waiting in the spool for this relay, oldest first. A log the relay
/// refuses goes to the spool's quarantine ([`Spool::quarantine`]) and is reported (JSON event
/// `upload_refused`: the file and the relay's reason), and the rest go on, over a new
/// connection since the relay ends one after a refusal. Any other failure (no connection, no
/// login, a broken link) leaves the rest waiting for the next session.
pub async fn upload_spool(target: &RelayTarget, token: &str, spool: &Spool, report: Reporter) {
    let relay = &target.relay;
    let waiting: Vec<SpoolEntry> = spool
        .entries()
        .into_iter()
        .filter(|e| &e.relay == relay)
        .collect();
    let pending = |left: usize, why: String| {
        report.event(
            "upload_pending",
            json!({ "waiting": left, "spool": spool.dir().display().to_string(), "why": why }),
            format!(
                "{left} session log(s) wait in {} for upload to {relay} ({why}); they go after your next session.",
                spool.dir().display()
            ),
        )
    };
    let mut conn: Option<RelayConnection> = None;
    for (done, entry) in waiting.iter().enumerate() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match upload_connection(target, token, report).await {
                Ok(c) => conn.insert(c),
                Err(why) => return pending(waiting.len() - done, why),
            },
        };
        let offer = &entry.offer;
        let path = spool.data_path(&offer.id);
        match c.upload(offer, &path, |_, _| {}).await {
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
            Err(LinkError::Refused {
                code: ErrorCode::LogRefused,
                message,
            }) => {
                // The relay ends the connection after a refusal: the next log gets a new one.
                c.close("log refused");
                conn = None;
                let why = tame(&message, MAX_REASON);
                match spool.quarantine(&offer.id, &why) {
                    Ok(moved) => report.event(
                        "upload_refused",
                        json!({ "id": offer.id, "path": moved.display().to_string(), "why": why }),
                        format!(
                            "The relay at {relay} refused session log {} ({why}). It was moved to \
                             {} so that the logs behind it go up; show the relay's administrator, \
                             and move it with its .json back into {} to offer it again.",
                            offer.id,
                            moved.display(),
                            spool.dir().display()
                        ),
                    ),
                    Err(e) => {
                        return pending(
                            waiting.len() - done,
                            format!("the relay refused log {} ({why}), and {e:#}", offer.id),
                        )
                    }
                }
            }
            Err(e) => {
                c.close("upload failed");
                return pending(waiting.len() - done, e.to_string());
            }
        }
    }
    if let Some(c) = conn {
        c.close_and_wait("uploads done").await;
    }
}

/// A connection to upload logs over: logged in with `token`, to a relay that stores logs.
async fn upload_connection(
    target: &RelayTarget,
    token: &str,
    report: Reporter,
) -> Result<RelayConnection, String> {
    let (mut conn, _) = target.connect(report).await.map_err(|e| e.to_string())?;
    if let Err(e) = conn.resume(token).await {
        conn.close("login refused");
        return Err(e.to_string());
    }
    // Such a relay refuses every log, through no fault of theirs: none is quarantined.
    let stores_logs = conn
        .recording
        .as_ref()
        .is_some_and(|p| p.audit_key.is_some());
    if !stores_logs {
        conn.close("no log archive");
        return Err(
            "the relay no longer stores session logs (it has no audit key); ask its administrator"
                .into(),
        );
    }
    Ok(conn)
}
