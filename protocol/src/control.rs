//! The control plane: messages between a peer (agent or technician) and the relay, on the first
//! bidirectional stream of the peer's QUIC connection.
//!
//! Order: the peer sends [`ToRelay::Hello`]; the relay answers [`FromRelay::Welcome`] or an
//! error. An agent then sends [`ToRelay::Register`] and gets [`FromRelay::Registered`]. A
//! technician first logs in, with a name and password ([`ToRelay::Login`]) or a token from an
//! earlier login ([`ToRelay::Resume`]), and gets [`FromRelay::LoggedIn`]; then it sends
//! [`ToRelay::Join`] (a join before a login is refused with [`ErrorCode::NotLoggedIn`]).
//! [`ToRelay::Logout`] ends a token's validity. When both are there the relay sends
//! [`FromRelay::Paired`] to each, and from then on forwards the peer plane. [`FromRelay::PeerLeft`]
//! tells a peer that the other side is gone; [`FromRelay::ShuttingDown`] that the relay is going
//! away. Any other order is a protocol violation and ends the connection with a reason.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which end of a session a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Agent,
    Technician,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Agent => "agent",
            Role::Technician => "technician",
        })
    }
}

/// A session code as the relay hands it out: nine or more decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionCode(String);

/// Shortest code the relay issues.
pub const SESSION_CODE_DIGITS: usize = 9;

impl SessionCode {
    /// Builds a code from digits, as the relay does when it issues one.
    pub fn from_digits(digits: String) -> Option<Self> {
        (digits.len() >= SESSION_CODE_DIGITS
            && digits.len() <= 32
            && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(Self(digits))
    }

    /// Parses a code as a person types it: spaces and dashes between digits are ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
            .collect();
        Self::from_digits(digits)
    }

    /// The bare digits, as scripts want them.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Checks a code that arrived over the network.
    pub fn is_well_formed(&self) -> bool {
        Self::from_digits(self.0.clone()).is_some()
    }
}

impl fmt::Display for SessionCode {
    /// Groups of three digits, as a person reads them out: `123 456 789`. A code that is not
    /// all ASCII digits (it came from a hostile peer) is shown as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.bytes().all(|b| b.is_ascii_digit()) {
            return f.write_str(&self.0);
        }
        for (i, chunk) in self.0.as_bytes().chunks(3).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for &b in chunk {
                fmt::Write::write_char(f, char::from(b))?;
            }
        }
        Ok(())
    }
}

/// Peer to relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRelay {
    /// First message of every connection. Variant 0 with `version` first, in every protocol
    /// version, so that a relay can always read the version of a peer it cannot otherwise
    /// understand.
    Hello {
        version: u16,
        role: Role,
        software: String,
    },
    /// An agent asks for a session code.
    Register,
    /// A technician presents a code (after logging in).
    Join { code: SessionCode },
    /// A technician logs in with its account's name and password, and the one-time code of its
    /// authenticator when the account has a second factor (the relay answers
    /// [`ErrorCode::SecondFactorRequired`] to a login without one).
    Login {
        name: String,
        password: String,
        one_time: Option<String>,
    },
    /// A technician logs in with the token of an earlier [`ToRelay::Login`].
    Resume { token: String },
    /// A technician ends a token's validity (logs out); the relay answers
    /// [`FromRelay::LoggedOut`].
    Logout { token: String },
    /// A logged-in technician, during its session: how far the session log has got on disk.
    /// No answer.
    Checkpoint {
        log_id: String,
        checkpoint: crate::sessionlog::Checkpoint,
    },
    /// A logged-in technician offers an encrypted session log; the relay answers
    /// [`FromRelay::UploadAt`] with how much of it it holds already.
    UploadBegin { offer: LogOffer },
    /// The log's bytes from `offset` (at most [`UPLOAD_CHUNK`]). No answer.
    UploadChunk {
        log_id: String,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// All sent; the relay checks size and hash and answers [`FromRelay::UploadStored`].
    UploadEnd { log_id: String },
    /// A logged-in account asks for a stored session log (its own, or any for auditors and
    /// administrators), from `offset` of the encrypted file. The relay answers
    /// [`FromRelay::LogFound`], then [`FromRelay::LogCheckpoints`] until all are sent, then
    /// [`FromRelay::LogChunk`]s up to the end.
    FetchLog { log_id: String, offset: u64 },
    /// An agent files a help request instead of asking for a code; the relay answers
    /// [`FromRelay::Queued`], then [`FromRelay::QueuePlace`] as the queue moves, and
    /// [`FromRelay::Paired`] when a technician takes it.
    FileRequest { filing: RequestFiling },
    /// An agent whose connection dropped takes its waiting request back, with the secret that
    /// [`FromRelay::Queued`] gave it; its place is kept.
    ResumeRequest { request: u64, secret: String },
    /// An agent withdraws its waiting request; the relay answers [`FromRelay::RequestCancelled`].
    CancelRequest,
    /// A logged-in technician asks for the requests it may take: [`FromRelay::Queue`] now and
    /// after every change, until it takes one or leaves.
    WatchQueue,
    /// A logged-in technician takes a request (`None`: the oldest it may take); the relay
    /// answers [`FromRelay::Paired`] as for a code, or refuses (taken by someone else, gone).
    Take { request: Option<u64> },
    /// A technician watching the queue says whether it is away (routing offers nothing to an
    /// away technician). No answer; the presence shows in leads' dashboards.
    SetPresence { away: bool },
    /// A technician watching the queue says no to the request routing offered it
    /// ([`FromRelay::Offer`]); it goes to the next technician.
    Decline { request: u64 },
    /// In a session from a help request: pass the request on, with a note for whoever takes it
    /// next. The relay answers [`FromRelay::RequestPassed`]; the technician then leaves the
    /// session and the user's agent waits in the new queue.
    Escalate { to: EscalationTarget, note: String },
    /// In a session from a help request: park it in the technician's own queue, to take back
    /// later. Answered with [`FromRelay::RequestPassed`].
    Hold { note: String },
    /// In a session from a help request: the work on it is done, solved or not. Answered with
    /// [`FromRelay::RequestPassed`].
    Resolve { resolved: bool, note: String },
    /// An agent, first after hello: the user's answer to the survey after a session of its help
    /// request (`score` 1 to 5), with the request's secret. Answered with
    /// [`FromRelay::SurveyTaken`].
    AnswerSurvey {
        request: u64,
        secret: String,
        score: u8,
        comment: String,
    },
    /// An agent, first after hello on a further connection: it attaches a viewer the relay
    /// announced with [`FromRelay::Invite`] to its live session, with that invite's ticket.
    /// The relay pairs the connection with the waiting technician ([`FromRelay::Paired`]).
    Attach { ticket: String },
    /// A logged-in lead (or administrator) asks to watch a live session of their tiers, named
    /// by its ledger identifier (the dashboard lists them). Paired like a join, as an observer
    /// the user must let in; the lead may later take over control.
    Monitor { session: String },
    /// Agent or technician (the technician logged in first), after hello on a new connection:
    /// its live session's relay connection died, and it resumes the session. The relay pairs
    /// the agent and the technician that present the same `ticket` (derived by both from the
    /// session's keys, see `e2e::resume`) as it pairs a code, and answers both
    /// [`FromRelay::Paired`]; the two ends then prove to each other that they are the same
    /// session's. `session`: the session's identifier in the ledger, as paired first (its log
    /// goes on under it).
    Rejoin { ticket: String, session: String },
}

/// Why the relay asks an agent for another viewer of its live session ([`FromRelay::Invite`]),
/// so that the user can be told before they are asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Joining {
    /// The request was escalated by `by` with this note; the next technician took it.
    Escalation { by: String, note: String },
    /// A lead watches the session, and may take over control.
    Monitor,
}

/// A live session as leads see it on the dashboard, to monitor it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    /// Its identifier in the relay's ledger ([`ToRelay::Monitor`] names it so).
    pub session: String,
    pub technician: String,
    pub tier: u8,
    /// The help request it serves, if any.
    pub request: Option<u64>,
    pub started_unix_ms: u64,
}

/// Where an escalation sends a help request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EscalationTarget {
    /// The queue of a tier (2 or 3).
    Tier(u8),
    /// One technician, by account name: only they see and take it.
    Technician(String),
}

/// What the technician before left with a request they escalated or held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub by: String,
    pub note: String,
    /// The session so far, as the relay's ledger names it (its log is fetched under it).
    pub session: String,
    /// Held (parked by `by` for themselves) rather than escalated.
    pub held: bool,
}

/// A technician as leads see them on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianPresence {
    pub name: String,
    pub tier: u8,
    pub presence: Presence,
    pub sessions: u32,
}

/// Whether a technician can take work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    /// Watching the queue, not away, below their session limit.
    Available,
    /// In as many sessions as their limit.
    Busy,
    /// Watching the queue but away.
    Away,
    /// Not watching the queue.
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Busy => "busy",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

/// One tier's queue as leads see it on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLoad {
    pub tier: u8,
    pub waiting: u32,
    /// When the request waiting longest entered the queue.
    pub oldest_queued_unix_ms: Option<u64>,
    pub overdue: u32,
}

/// What a user asks for in a help request. The relay bounds every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFiling {
    /// In the user's words ("the printer stops after each page").
    pub description: String,
    /// The machine's name.
    pub machine: String,
    /// The operating system, as the agent tells it.
    pub os: String,
    /// The desk's own ticket number for it, if the user has one.
    pub ticket: Option<String>,
}

/// A waiting help request, as a technician sees it in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: u64,
    /// The tier whose queue it waits in.
    pub tier: u8,
    pub filed_unix_ms: u64,
    pub filing: RequestFiling,
    /// Whether the user's agent is connected now (only then can it be taken).
    pub connected: bool,
    /// When it entered this tier's queue (filed, escalated, held, overflowed).
    pub queued_unix_ms: u64,
    /// It has waited longer than its tier's rules allow.
    pub overdue: bool,
    /// Routing offered it to this technician, who has not answered yet.
    pub offered_to: Option<String>,
    /// Only this technician may take it.
    pub reserved_for: Option<String>,
    /// The note of the escalation or hold that put it here.
    pub handoff: Option<Handoff>,
}

/// Most entries of one [`FromRelay::Queue`]: the oldest, well inside a control frame.
pub const QUEUE_SHOWN: usize = 50;

/// Seconds an agent has to attach a further connection after an invite
/// ([`FromRelay::Invite`]); the technician waiting for it is refused after that.
pub const ATTACH_SECS: u64 = 10;

/// Seconds between the checkpoints a recording technician sends while a session runs. Where
/// the relay's policy requires a recording it ends a session that sends none for two intervals.
pub const CHECKPOINT_INTERVAL_SECS: u64 = 5;

/// Most checkpoints in one [`FromRelay::LogCheckpoints`]: well inside a control frame.
pub const CHECKPOINT_BATCH: usize = 256;

/// Most bytes of one [`ToRelay::UploadChunk`]: well inside a control frame.
pub const UPLOAD_CHUNK: usize = 32 * 1024;

/// A session log a technician is about to upload, encrypted to the audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOffer {
    /// Chosen by the technician, unique per session: 8 to 64 of `[0-9a-z-]`.
    pub id: String,
    /// Who the agent was, as the log says.
    pub agent: String,
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    pub records: u64,
    /// Hex of the log's final chain hash (its seal record's hash).
    pub chain_hash: String,
    /// Size and hex SHA-256 of the encrypted file.
    pub size: u64,
    pub sha256: String,
}

/// What a relay asks of session recording, as a technician is told when it logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPolicy {
    /// Logs are encrypted to this audit key (an age X25519 recipient, `age1…`) and uploaded
    /// to the relay; `None`: they stay with the technician.
    pub audit_key: Option<String>,
    /// A session may go unrecorded (`technician connect --no-record`).
    pub optional: bool,
    /// The log keeps what was copied through the shared clipboard; otherwise only that it was
    /// copied, which way, its kind and size.
    pub clipboard_content: bool,
}

impl fmt::Display for ToRelay {
    /// The message's name, as logs and errors mention it; never its contents (passwords).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ToRelay::Hello { .. } => "hello",
            ToRelay::Register => "register",
            ToRelay::Join { .. } => "join",
            ToRelay::Login { .. } => "login",
            ToRelay::Resume { .. } => "resume",
            ToRelay::Logout { .. } => "logout",
            ToRelay::Checkpoint { .. } => "checkpoint",
            ToRelay::UploadBegin { .. } => "upload begin",
            ToRelay::UploadChunk { .. } => "upload chunk",
            ToRelay::UploadEnd { .. } => "upload end",
            ToRelay::FetchLog { .. } => "fetch log",
            ToRelay::FileRequest { .. } => "file request",
            ToRelay::ResumeRequest { .. } => "resume request",
            ToRelay::CancelRequest => "cancel request",
            ToRelay::WatchQueue => "watch queue",
            ToRelay::Take { .. } => "take",
            ToRelay::SetPresence { .. } => "set presence",
            ToRelay::Decline { .. } => "decline",
            ToRelay::Escalate { .. } => "escalate",
            ToRelay::Hold { .. } => "hold",
            ToRelay::Resolve { .. } => "resolve",
            ToRelay::AnswerSurvey { .. } => "answer survey",
            ToRelay::Attach { .. } => "attach",
            ToRelay::Monitor { .. } => "monitor",
            ToRelay::Rejoin { .. } => "rejoin",
        })
    }
}

/// Who a technician is, as the relay vouches for it: its account and the relay's organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianAccount {
    pub name: String,
    /// Support tier, 1 (first contact) and up.
    pub tier: u8,
    /// The organisation that runs the relay ("Example Support").
    pub organisation: String,
}

impl fmt::Display for TechnicianAccount {
    /// `alice (tier 2) of Example Support`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (tier {}) of {}",
            self.name, self.tier, self.organisation
        )
    }
}

/// What the peer on the other end of a session is, as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub role: Role,
    /// Who it is, in words a person can read ("technician at 10.0.0.7:51234").
    pub description: String,
    pub software: String,
    /// For a technician: the account it logged in with, as the relay vouches for it.
    pub account: Option<TechnicianAccount>,
}

impl PeerInfo {
    /// How to name this peer to a person: `alice (tier 2) of Example Support (technician at
    /// 10.0.0.7:51234, technician 0.1.0)` for a logged-in technician, else the description and
    /// software.
    pub fn introduce(&self) -> String {
        match &self.account {
            Some(a) => format!("{a} ({}, {})", self.description, self.software),
            None => format!("{} ({})", self.description, self.software),
        }
    }
}

/// Why the other peer of a session is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerLeftReason {
    /// It closed its connection on purpose, with these words.
    Closed { reason: String },
    /// Its connection died (process killed, network gone): nothing was heard from it in time.
    ConnectionLost,
    /// The relay cut it off for breaking the protocol.
    Disconnected { reason: String },
}

impl fmt::Display for PeerLeftReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerLeftReason::Closed { reason } if reason.is_empty() => {
                f.write_str("it closed the session")
            }
            PeerLeftReason::Closed { reason } => write!(f, "it closed the session: {reason}"),
            PeerLeftReason::ConnectionLost => f.write_str("its connection was lost"),
            PeerLeftReason::Disconnected { reason } => {
                write!(f, "the relay disconnected it: {reason}")
            }
        }
    }
}

/// What went wrong, in a form a program can match. The accompanying message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer speaks a protocol version the relay does not.
    UnsupportedVersion,
    /// No session has this code.
    UnknownCode,
    /// The code was not used within its lifetime.
    ExpiredCode,
    /// The code was already used by a technician.
    UsedCode,
    /// Too many attempts from this address; try again after this many seconds.
    RateLimited { retry_after_secs: u32 },
    /// A message arrived that is not allowed at this point.
    ProtocolViolation,
    /// Bytes that are not a message.
    MalformedMessage,
    /// A frame announced more bytes than allowed.
    FrameTooLarge,
    /// The relay is going away.
    ShuttingDown,
    /// Something failed inside the relay.
    Internal,
    /// A technician tried to join before logging in.
    NotLoggedIn,
    /// Unknown name or wrong password (deliberately one answer for both).
    BadCredentials,
    /// The account is disabled.
    AccountDisabled,
    /// The login token expired; log in again.
    TokenExpired,
    /// The login token was revoked (logout, password change) or is not known.
    TokenRevoked,
    /// The account may not do this (an auditor joining a session).
    NotPermitted,
    /// A session-log upload, checkpoint or fetch the relay cannot serve (the message says why).
    LogRefused,
    /// A peer that is not paired asked nothing of the relay for too long.
    Timeout,
    /// The relay's policy requires a recorded session and the technician's client sent no
    /// checkpoint of its session log in time.
    RecordingMissing,
    /// The account's share of the relay's log storage is used up.
    QuotaExceeded,
    /// The account has a second factor (or the relay requires one): a one-time code is needed
    /// with the password.
    SecondFactorRequired,
    /// No waiting help request has this number (or the secret to take it back is wrong).
    UnknownRequest,
    /// Another technician took the request first (the message says who).
    RequestTaken,
    /// The request's agent is not connected now; it can be taken once it is back.
    RequestAway,
    /// The queue holds as many requests as the relay allows.
    QueueFull,
    /// No live session has this identifier, or its agent did not let another technician
    /// connect in time.
    UnknownSession,
    /// The code or request belongs to a relay of the organisation that is gone (stopped, or
    /// no longer heard from).
    RelayGone,
}

/// Another relay of the same organisation, as one relay tells a technician where to go
/// ([`FromRelay::Redirect`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayPointer {
    /// Its name among the relays sharing the organisation's database.
    pub name: String,
    /// Where peers reach it: `HOST:PORT`.
    pub addr: String,
    /// The SHA-256 fingerprint of its certificate, hex, as `relay fingerprint` prints it.
    pub fingerprint: String,
}

/// Relay to peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromRelay {
    Welcome {
        version: u16,
        software: String,
    },
    Registered {
        code: SessionCode,
        expires_in_secs: u32,
    },
    Paired {
        peer: PeerInfo,
        /// The session's identifier in the relay's ledger of paired sessions. The technician's
        /// session log is checkpointed and uploaded under it, and the relay takes a log only
        /// for a session of its ledger.
        session: String,
        /// To the technician of a session from a help request: the request as it was taken.
        request: Option<QueueEntry>,
    },
    /// Answer to [`ToRelay::Login`] and [`ToRelay::Resume`]: who the technician is now, and
    /// the token to resume with until it expires.
    LoggedIn {
        account: TechnicianAccount,
        token: String,
        expires_in_secs: u64,
        recording: RecordingPolicy,
    },
    /// Answer to [`ToRelay::Logout`]: the token no longer works.
    LoggedOut,
    PeerLeft {
        reason: PeerLeftReason,
    },
    /// Nothing has been heard from the partner for `silent_ms` (its keep-alives stopped): its
    /// network may be down for a moment. The session is kept until the relay's idle timeout
    /// ends it with [`FromRelay::PeerLeft`]; [`FromRelay::PeerBack`] if the partner is heard
    /// again before.
    PeerQuiet {
        silent_ms: u32,
    },
    /// The partner of an earlier [`FromRelay::PeerQuiet`] is heard again.
    PeerBack,
    /// Answer to [`ToRelay::FileRequest`] (and [`ToRelay::ResumeRequest`]): the request's number,
    /// its place in the queue (1: next), and the secret to take it back with after a dropped
    /// connection.
    Queued {
        request: u64,
        position: u32,
        /// How long it may wait yet, from how fast the tier's queue moved in the last hour
        /// (`None`: no request of the tier was taken in that hour).
        expected_wait_secs: Option<u32>,
        secret: String,
    },
    /// The waiting request's place changed.
    QueuePlace {
        position: u32,
        expected_wait_secs: Option<u32>,
    },
    /// Answer to [`ToRelay::CancelRequest`]: the request is withdrawn.
    RequestCancelled,
    /// The requests the technician may take, oldest first (at most [`QUEUE_SHOWN`]), and how
    /// many more wait behind them.
    Queue {
        requests: Vec<QueueEntry>,
        more: u32,
    },
    /// Routing offers the technician this request: take it ([`ToRelay::Take`]) or decline it
    /// ([`ToRelay::Decline`]) within `expires_in_secs`.
    Offer {
        request: QueueEntry,
        expires_in_secs: u32,
    },
    /// To leads and administrators watching the queue, with every change: each tier's queue and
    /// each technician's presence.
    Dashboard {
        tiers: Vec<TierLoad>,
        technicians: Vec<TechnicianPresence>,
        /// The live sessions of the lead's tiers and below (at most [`QUEUE_SHOWN`]).
        sessions: Vec<LiveSession>,
    },
    /// To an agent in a live session: a technician waits to join it (an escalation was taken, a
    /// lead monitors). The agent opens another connection and sends [`ToRelay::Attach`] with
    /// `ticket` within [`ATTACH_SECS`]; the user is asked about the newcomer as for any
    /// technician.
    Invite {
        ticket: String,
        joining: Joining,
    },
    /// Answer to [`ToRelay::Escalate`], [`ToRelay::Hold`] and [`ToRelay::Resolve`]: done, in
    /// words for the technician and the user ("escalated to tier 2").
    RequestPassed {
        words: String,
    },
    /// Answer to [`ToRelay::AnswerSurvey`].
    SurveyTaken,
    ShuttingDown,
    /// Answer to [`ToRelay::UploadBegin`]: go on from `offset` (the size: nothing to send).
    UploadAt {
        log_id: String,
        offset: u64,
    },
    /// Answer to [`ToRelay::UploadEnd`]: the log is stored whole.
    UploadStored {
        log_id: String,
    },
    /// Answer to [`ToRelay::FetchLog`]: what the relay holds of the log (as offered, and who
    /// recorded it), and how many checkpoints follow.
    LogFound {
        log: LogOffer,
        technician: String,
        checkpoints: u32,
    },
    /// Some of the log's checkpoints, in record order (the last is its seal's).
    LogCheckpoints {
        checkpoints: Vec<crate::sessionlog::Checkpoint>,
    },
    /// The encrypted log's bytes from `offset` (at most [`UPLOAD_CHUNK`]).
    LogChunk {
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Answer to [`ToRelay::Join`] or [`ToRelay::Take`] when the agent is on another relay of
    /// the organisation: connect there (its certificate must have this fingerprint), log in
    /// with the same token and ask again. The relay closes the connection after it.
    Redirect {
        to: RelayPointer,
    },
    /// To both ends of a session, after [`FromRelay::Paired`] (and again after a rejoin): the
    /// other live relays of this relay's cluster, at most [`RESUME_RELAYS_MAX`], in the same
    /// order to both. Should this relay go, the ends resume the session through them (after
    /// this one, and after any given by hand). A hint only: the ends still prove to each other
    /// that they are the same session's, and each relay's certificate is pinned to the
    /// fingerprint named here. A relay on its own sends none.
    ResumeThrough {
        relays: Vec<RelayPointer>,
    },
}

/// Most relays one [`FromRelay::ResumeThrough`] names; an end takes no more than these.
pub const RESUME_RELAYS_MAX: usize = 16;

/// Reads the protocol version out of a hello frame even when the rest of it is not understood
/// (a newer or older peer). Returns `None` when the payload does not start like a hello.
pub fn peek_hello_version(payload: &[u8]) -> Option<u16> {
    #[derive(Deserialize)]
    struct HelloPrefix {
        tag: u32,
        version: u16,
    }
    let cfg = bincode::config::standard().with_limit::<64>();
    let (prefix, _): (HelloPrefix, usize) = bincode::serde::decode_from_slice(payload, cfg).ok()?;
    (prefix.tag == 0).then_some(prefix.version)
}

/// Application error codes used when closing a QUIC connection, so the other side can tell why.
pub mod close_code {
    /// Normal end: the session is over.
    pub const DONE: u32 = 0;
    /// The peer broke the protocol (garbage, oversized frame, wrong order).
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// The relay is shutting down.
    pub const SHUTTING_DOWN: u32 = 2;
    /// The other peer of the session left.
    pub const PEER_LEFT: u32 = 3;
    /// Refused: bad code, rate limit, version.
    pub const REFUSED: u32 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn code_parses_as_typed_and_displays_in_groups() {
        let c = SessionCode::parse("123 456-789").unwrap();
        assert_eq!(c.digits(), "123456789");
        assert_eq!(c.to_string(), "123 456 789");
        assert!(SessionCode::parse("12345678").is_none());
        assert!(SessionCode::parse("12345678x").is_none());
        // Whatever a hostile peer puts in a code displays without a panic.
        let odd: SessionCode = crate::wire::decode_control(&[4, 0x61, 0x61, 0xc3, 0xa9]).unwrap();
        assert_eq!(odd.to_string(), "aaé");
    }

    #[test]
    fn hello_version_is_readable_without_the_rest() {
        let frame = wire::encode_frame(&ToRelay::Hello {
            version: 7,
            role: Role::Agent,
            software: "x".into(),
        });
        assert_eq!(peek_hello_version(&frame[4..]), Some(7));
        // A future hello with different fields after the version still yields its version.
        let mut future = frame[4..7].to_vec();
        future.extend_from_slice(&[0xff; 10]);
        assert_eq!(peek_hello_version(&future), Some(7));
        let reg = wire::encode_frame(&ToRelay::Register);
        assert_eq!(peek_hello_version(&reg[4..]), None);
        let login = wire::encode_frame(&ToRelay::Login {
            name: "alice".into(),
            password: "secret secret".into(),
            one_time: None,
        });
        assert_eq!(peek_hello_version(&login[4..]), None);
    }

    #[test]
    fn a_technician_is_introduced_with_its_account() {
        let mut peer = PeerInfo {
            role: Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: "technician 0.1.0".into(),
            account: None,
        };
        assert_eq!(
            peer.introduce(),
            "technician at 10.0.0.7:5000 (technician 0.1.0)"
        );
        peer.account = Some(TechnicianAccount {
            name: "alice".into(),
            tier: 2,
            organisation: "Example Support".into(),
        });
        assert_eq!(
            peer.introduce(),
            "alice (tier 2) of Example Support (technician at 10.0.0.7:5000, technician 0.1.0)"
        );
        // A login's password never shows in what is logged of a message.
        let login = ToRelay::Login {
            name: "alice".into(),
            password: "hunter2 hunter2".into(),
            one_time: Some("123456".into()),
        };
        assert_eq!(login.to_string(), "login");
    }

    #[test]
    fn control_messages_round_trip() {
        let msgs = vec![
            FromRelay::Registered {
                code: SessionCode::parse("123456789").unwrap(),
                expires_in_secs: 600,
            },
            FromRelay::Error {
                code: ErrorCode::RateLimited {
                    retry_after_secs: 12,
                },
                message: "slow down".into(),
            },
            FromRelay::LoggedIn {
                account: TechnicianAccount {
                    name: "alice".into(),
                    tier: 2,
                    organisation: "Example Support".into(),
                },
                token: "ab".repeat(32),
                expires_in_secs: 3600,
                recording: RecordingPolicy {
                    audit_key: Some("age1example".into()),
                    optional: false,
                    clipboard_content: false,
                },
            },
            FromRelay::Paired {
                peer: PeerInfo {
                    role: Role::Technician,
                    description: "technician at 10.0.0.7:5000".into(),
                    software: "technician 0.1.0".into(),
                    account: None,
                },
                session: "s-0123456789abcdef".into(),
                request: None,
            },
        ];
        for m in msgs {
            let f = wire::encode_frame(&m);
            let back: FromRelay = wire::decode_control(&f[4..]).unwrap();
            assert_eq!(back, m);
        }
    }

    fn pointer(i: usize) -> RelayPointer {
        RelayPointer {
            name: format!("relay-{i}"),
            addr: format!("relay-{i}.example.org:4433"),
            fingerprint: format!("{i:02x}").repeat(32),
        }
    }

    #[test]
    fn the_relays_to_resume_through_round_trip_in_their_order() {
        let told = FromRelay::ResumeThrough {
            relays: (0..RESUME_RELAYS_MAX).map(pointer).collect(),
        };
        let f = wire::encode_frame(&told);
        assert!(f.len() < wire::CONTROL_MAX_FRAME / 4, "{} bytes", f.len());
        let back: FromRelay = wire::decode_control(&f[4..]).unwrap();
        assert_eq!(back, told);
        let none = FromRelay::ResumeThrough { relays: Vec::new() };
        let f = wire::encode_frame(&none);
        assert_eq!(wire::decode_control::<FromRelay>(&f[4..]).unwrap(), none);
    }

    #[test]
    fn a_list_of_relays_claiming_more_than_a_frame_holds_is_refused_before_it_is_read() {
        let f = wire::encode_frame(&FromRelay::ResumeThrough {
            relays: vec![pointer(1)],
        });
        // After the variant's tag, the list's length (a one-byte varint, 1) claims a billion
        // entries instead.
        let mut payload = f[4..].to_vec();
        assert_eq!(payload[1], 1);
        let mut claim = vec![252u8];
        claim.extend_from_slice(&1_000_000_000u32.to_le_bytes());
        payload.splice(1..=1, claim);
        assert!(wire::decode_control::<FromRelay>(&payload).is_err());
        // A list cut short is refused too, never half read.
        assert!(wire::decode_control::<FromRelay>(&f[4..f.len() - 3]).is_err());
    }
}
