//! A peer's connection to the relay: QUIC with the relay's certificate pinned (given, or
//! remembered from the first connection, [`crate::known`]), then the control-plane handshake
//! (hello; register, or log in and join).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::control::{
    ErrorCode, FromRelay, LiveSession, LogOffer, PeerInfo, PeerLeftReason, QueueEntry,
    RecordingPolicy, RelayPointer, RequestFiling, Role, SessionCode, TechnicianAccount,
    TechnicianPresence, TierLoad, ToRelay,
};
use quinn::{ClientConfig, Connection, Endpoint};

use crate::channel::{ChannelError, FramedRecv, FramedSend};
use crate::known::{self, KnownRelays, KnownRelaysError, Plan};
use crate::tls::{self, Fingerprint, Presented, ServerTrust};
use crate::transport;

/// What can go wrong between a peer and the relay, worded for the person running the peer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve relay address `{relay}`: {reason}")]
    Resolve { relay: String, reason: String },
    #[error("cannot connect to the relay at {relay}: {reason}")]
    Connect { relay: String, reason: String },
    #[error(
        "the relay at {relay} presented a certificate with fingerprint {presented}, but earlier \
         connections to it remembered fingerprint {remembered} (in {file}). Someone may be \
         intercepting the connection, or the relay got a new certificate. If the change is \
         intended (check the new fingerprint with the relay's administrator: `relay fingerprint`), \
         accept it by connecting once with --fingerprint {presented}, which replaces the \
         remembered one, or remove the line for {relay} from {file}"
    )]
    CertificateChanged {
        relay: String,
        remembered: Fingerprint,
        presented: Fingerprint,
        file: PathBuf,
    },
    #[error(
        "the relay at {relay} presented a certificate with fingerprint {presented}, but \
         {expected} was expected (--fingerprint)"
    )]
    WrongFingerprint {
        relay: String,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error("{0}")]
    KnownRelays(#[from] KnownRelaysError),
    #[error("the relay refused: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the other side left: {0}")]
    PeerLeft(PeerLeftReason),
    #[error("the relay is shutting down")]
    RelayShuttingDown,
    /// The other end's connection to the relay died without a word: it may be resuming the
    /// session, so this end rejoins too ([`crate::resume`]).
    #[error("the other side's connection was lost")]
    PeerLinkLost,
    /// The agent asked for is on another relay of the organisation: connect there
    /// ([`RelayConnection::connect_redirected`]) and ask again.
    #[error("the session is on relay {} at {} of the same organisation", .0.name, .0.addr)]
    Redirected(RelayPointer),
    #[error("the connection to the relay was lost: {0}")]
    ConnectionLost(String),
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("{0}")]
    PeerPlane(#[from] crate::sealed::PeerPlaneError),
}

impl LinkError {
    /// Whether the session's link died in a way it may be resumed from ([`crate::resume`]): the
    /// connection to the relay lost, the relay going away, or the other end's link lost.
    pub fn is_link_lost(&self) -> bool {
        matches!(
            self,
            LinkError::ConnectionLost(_) | LinkError::RelayShuttingDown | LinkError::PeerLinkLost
        )
    }
}

/// An open connection to the relay with its control stream.
pub struct RelayConnection {
    pub endpoint: Endpoint,
    pub connection: Connection,
    pub control_send: FramedSend<ToRelay>,
    pub control_recv: FramedRecv<FromRelay>,
    pub relay_addr: SocketAddr,
    pub relay_software: String,
    /// What the relay asks of session recording, once logged in (technician).
    pub recording: Option<RecordingPolicy>,
    /// The session's identifier in the relay's ledger, once paired.
    pub session: Option<String>,
    /// For a technician paired from a help request: the request as it was taken (its filing,
    /// and the note of whoever escalated or held it).
    pub request: Option<QueueEntry>,
    /// The other relays of the organisation this relay told to resume the session through
    /// ([`FromRelay::ResumeThrough`]), once paired.
    pub resume_through: Vec<crate::resume::OtherRelay>,
}

/// Resolves `HOST:PORT` to the first address it names.
pub async fn resolve(relay: &str) -> Result<SocketAddr, LinkError> {
    let mut addrs = tokio::net::lookup_host(relay)
        .await
        .map_err(|e| LinkError::Resolve {
            relay: relay.to_string(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| LinkError::Resolve {
        relay: relay.to_string(),
        reason: "it names no address".into(),
    })
}

/// A client endpoint that trusts only the certificate with fingerprint `pin`.
pub fn client_endpoint(relay_addr: SocketAddr, pin: Fingerprint) -> std::io::Result<Endpoint> {
    client_endpoint_trusting(relay_addr, ServerTrust::Pinned(pin), Presented::default())
}

/// A help request in the queue, as [`RelayConnection::file_request`] and
/// [`RelayConnection::resume_request`] answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub request: u64,
    /// Its place (1: next).
    pub position: u32,
    /// How long it may wait yet, in seconds (`None`: not known).
    pub expected_wait_secs: Option<u32>,
    /// What takes it back after a dropped connection.
    pub secret: String,
}

/// Makes further connections to the relay of an existing [`RelayConnection`]
/// ([`RelayConnection::redial`]), or to another relay of the organisation
/// ([`Redial::named`]).
#[derive(Debug, Clone)]
pub struct Redial(Dial);

#[derive(Debug, Clone)]
enum Dial {
    /// Through an open endpoint, to a known address.
    Open {
        endpoint: Endpoint,
        relay_addr: SocketAddr,
    },
    /// To `HOST:PORT`, resolved at each connection, trusting only the certificate `pin`.
    Named { relay: String, pin: Fingerprint },
}

impl Redial {
    /// Connections to another relay (of the same organisation) at `relay` (`HOST:PORT`, its
    /// name resolved when it is tried), trusting only the certificate `pin`.
    pub fn named(relay: String, pin: Fingerprint) -> Self {
        Self(Dial::Named { relay, pin })
    }

    /// Connects and says hello as `role`.
    pub async fn connect(&self, role: Role) -> Result<RelayConnection, LinkError> {
        match &self.0 {
            Dial::Open {
                endpoint,
                relay_addr,
            } => RelayConnection::connect_with(endpoint.clone(), *relay_addr, role).await,
            Dial::Named { relay, pin } => RelayConnection::connect(relay, *pin, role).await,
        }
    }

    /// Whether this reaches the relay at `addr` (`HOST:PORT`, as written).
    pub fn reaches(&self, addr: &str) -> bool {
        match &self.0 {
            Dial::Open { relay_addr, .. } => relay_addr.to_string() == addr,
            Dial::Named { relay, .. } => relay == addr,
        }
    }
}

/// What happens to a waiting help request, as [`RelayConnection::next_in_queue`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueNews {
    /// Its place in the queue now (1: next), and how long it may wait yet in seconds (`None`:
    /// not known).
    Place {
        position: u32,
        expected_wait_secs: Option<u32>,
    },
    /// A technician took it: the session is paired.
    Taken(PeerInfo),
    /// It was withdrawn.
    Cancelled,
}

/// What a technician watching the queue hears, as [`RelayConnection::next_desk`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskNews {
    /// The requests it may take, oldest first, and how many more wait behind them.
    Queue {
        requests: Vec<QueueEntry>,
        more: u32,
    },
    /// Routing offers it this request: take or decline it within `expires_in_secs`.
    Offer {
        request: Box<QueueEntry>,
        expires_in_secs: u32,
    },
    /// For leads: the tiers' queues, the technicians' presence, and the live sessions they may
    /// monitor.
    Dashboard {
        tiers: Vec<TierLoad>,
        technicians: Vec<TechnicianPresence>,
        sessions: Vec<LiveSession>,
    },
}

/// How the relay's certificate was checked on a connection made with
/// [`RelayConnection::connect_trusting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trusted {
    /// It had the fingerprint given on the command line; `remembered_now` when that was not
    /// yet the remembered one (it is now).
    Explicit {
        fingerprint: Fingerprint,
        remembered_now: bool,
    },
    /// It had the fingerprint remembered from an earlier connection.
    Remembered(Fingerprint),
    /// First connection to this address: its fingerprint is remembered from now on.
    FirstUse(Fingerprint),
}

impl Trusted {
    pub fn fingerprint(&self) -> Fingerprint {
        match *self {
            Trusted::Explicit { fingerprint, .. }
            | Trusted::Remembered(fingerprint)
            | Trusted::FirstUse(fingerprint) => fingerprint,
        }
    }
}

/// What to do with the fingerprint of a relay met for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// Remember it at once (the command-line programs, which say so).
    Remember,
    /// Leave it to the caller, who asks a person first.
    Confirm,
}

/// A client endpoint that trusts what `trust` says and records the presented fingerprint.
pub fn client_endpoint_trusting(
    relay_addr: SocketAddr,
    trust: ServerTrust,
    presented: Presented,
) -> std::io::Result<Endpoint> {
    let bind: SocketAddr = if relay_addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    client_endpoint_at(bind, trust, presented)
}

/// As [`client_endpoint`], on a socket bound to `bind` (tests that play many sources bind
/// 127.0.0.x).
pub fn client_endpoint_bound(bind: SocketAddr, pin: Fingerprint) -> std::io::Result<Endpoint> {
    client_endpoint_at(bind, ServerTrust::Pinned(pin), Presented::default())
}

fn client_endpoint_at(
    bind: SocketAddr,
    trust: ServerTrust,
    presented: Presented,
) -> std::io::Result<Endpoint> {
    let mut endpoint = transport::endpoint(bind, None)?;
    let tls = tls::client_config(trust, presented).map_err(std::io::Error::other)?;
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(std::io::Error::other)?;
    let mut cfg = ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport::transport_config(
        transport::CLIENT_IDLE_TIMEOUT,
        Some(transport::CLIENT_KEEP_ALIVE),
    ));
    endpoint.set_default_client_config(cfg);
    Ok(endpoint)
}

fn refused(code: ErrorCode, message: String) -> LinkError {
    LinkError::Refused { code, message }
}

impl RelayConnection {
    /// Connects to the relay at `relay` (`HOST:PORT`), checks its certificate against `pin`,
    /// and says hello as `role`.
    pub async fn connect(relay: &str, pin: Fingerprint, role: Role) -> Result<Self, LinkError> {
        let relay_addr = resolve(relay).await?;
        let endpoint = client_endpoint(relay_addr, pin).map_err(|e| LinkError::Connect {
            relay: relay.to_string(),
            reason: e.to_string(),
        })?;
        Self::connect_with(endpoint, relay_addr, role).await
    }

    /// Connects to the relay at `relay` (`HOST:PORT`), checking its certificate against the
    /// `explicit` fingerprint, else the one remembered for this address in the `known_relays`
    /// file, else accepting it on first use and remembering it there. A certificate that differs
    /// from the remembered one is refused with [`LinkError::CertificateChanged`].
    pub async fn connect_trusting(
        relay: &str,
        explicit: Option<Fingerprint>,
        known_relays: &Path,
        role: Role,
    ) -> Result<(Self, Trusted), LinkError> {
        Self::connect_trusting_with(relay, explicit, known_relays, role, FirstUse::Remember).await
    }

    /// As [`RelayConnection::connect_trusting`]; with [`FirstUse::Confirm`] a relay met for the
    /// first time is not remembered: the caller shows its fingerprint to a person and remembers
    /// it ([`crate::known::KnownRelays::remember`]) only once they accept it.
    pub async fn connect_trusting_with(
        relay: &str,
        explicit: Option<Fingerprint>,
        known_relays: &Path,
        role: Role,
        first_use: FirstUse,
    ) -> Result<(Self, Trusted), LinkError> {
        let mut known = KnownRelays::load(known_relays)?;
        let plan = known::plan(explicit, known.get(relay));
        let relay_addr = resolve(relay).await?;
        let presented = Presented::default();
        let endpoint = client_endpoint_trusting(relay_addr, plan.server_trust(), presented.clone())
            .map_err(|e| LinkError::Connect {
                relay: relay.to_string(),
                reason: e.to_string(),
            })?;
        let conn = match Self::connect_with(endpoint, relay_addr, role).await {
            Ok(c) => c,
            Err(e) => {
                return Err(match (plan, presented.get()) {
                    (Plan::Remembered(remembered), Some(now)) if now != remembered => {
                        LinkError::CertificateChanged {
                            relay: relay.to_string(),
                            remembered,
                            presented: now,
                            file: known.path().to_path_buf(),
                        }
                    }
                    (Plan::Explicit(expected), Some(now)) if now != expected => {
                        LinkError::WrongFingerprint {
                            relay: relay.to_string(),
                            expected,
                            presented: now,
                        }
                    }
                    _ => e,
                })
            }
        };
        let trusted = match plan {
            Plan::Remembered(f) => Trusted::Remembered(f),
            Plan::Explicit(f) => {
                let remembered_now = known.get(relay) != Some(f);
                if remembered_now {
                    known.remember(relay, f)?;
                }
                Trusted::Explicit {
                    fingerprint: f,
                    remembered_now,
                }
            }
            Plan::FirstUse => {
                let f = presented.get().ok_or_else(|| {
                    LinkError::Protocol("the relay presented no certificate".into())
                })?;
                if first_use == FirstUse::Remember {
                    known.remember(relay, f)?;
                }
                Trusted::FirstUse(f)
            }
        };
        Ok((conn, trusted))
    }

    /// Connects to the relay another relay of the organisation sent this client to
    /// ([`LinkError::Redirected`]), trusting only the certificate that relay named, and says
    /// hello as `role`.
    pub async fn connect_redirected(to: &RelayPointer, role: Role) -> Result<Self, LinkError> {
        let pin: Fingerprint = to.fingerprint.parse().map_err(|_| {
            LinkError::Protocol(format!(
                "the relay sent this client to {} with a fingerprint that is not one: {:?}",
                to.addr, to.fingerprint
            ))
        })?;
        Self::connect(&to.addr, pin, role).await
    }

    /// Like [`RelayConnection::connect`] on an endpoint made with [`client_endpoint`], so that
    /// many connections can share one socket.
    pub async fn connect_with(
        endpoint: Endpoint,
        relay_addr: SocketAddr,
        role: Role,
    ) -> Result<Self, LinkError> {
        let connect_err = |reason: String| LinkError::Connect {
            relay: relay_addr.to_string(),
            reason,
        };
        let connection = endpoint
            .connect(relay_addr, "relay")
            .map_err(|e| connect_err(e.to_string()))?
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| LinkError::ConnectionLost(e.to_string()))?;
        let mut this = Self {
            endpoint,
            connection,
            control_send: FramedSend::new(send),
            control_recv: FramedRecv::control(recv),
            relay_addr,
            relay_software: String::new(),
            recording: None,
            session: None,
            request: None,
            resume_through: Vec::new(),
        };
        this.control_send
            .send(&ToRelay::Hello {
                version: protocol::PROTOCOL_VERSION,
                role,
                software: format!("{role} {}", protocol::SOFTWARE_VERSION),
            })
            .await?;
        match this.next().await? {
            FromRelay::Welcome { software, .. } => {
                this.relay_software = software;
                Ok(this)
            }
            other => Err(unexpected(&other, "a welcome")),
        }
    }

    /// Reads the next control message; relay errors, departures and shutdown become errors.
    /// The relays to resume through that the relay tells are kept
    /// ([`RelayConnection::resume_through`]), not returned.
    pub async fn next(&mut self) -> Result<FromRelay, LinkError> {
        let msg = loop {
            match self.control_recv.recv().await {
                Ok(Some(FromRelay::ResumeThrough { relays })) => {
                    self.resume_through = crate::resume::told(&relays);
                    tracing::debug!(relays = ?self.resume_through, "relays to resume through");
                }
                Ok(Some(m)) => break m,
                Ok(None) => return Err(self.lost()),
                Err(ChannelError::Frame(protocol::framing::FrameError::Io(_)))
                | Err(ChannelError::Frame(protocol::framing::FrameError::Truncated)) => {
                    return Err(self.lost())
                }
                Err(e) => return Err(e.into()),
            }
        };
        match msg {
            FromRelay::Error { code, message } => Err(refused(code, message)),
            FromRelay::PeerLeft { reason } => Err(LinkError::PeerLeft(reason)),
            FromRelay::ShuttingDown => Err(LinkError::RelayShuttingDown),
            FromRelay::Redirect { to } => Err(LinkError::Redirected(to)),
            other => Ok(other),
        }
    }

    /// As [`RelayConnection::next`], passing over the relay's news of a silent partner
    /// ([`FromRelay::PeerQuiet`], [`FromRelay::PeerBack`]), for a caller with no use for it.
    pub async fn next_skipping_silences(&mut self) -> Result<FromRelay, LinkError> {
        loop {
            match self.next().await? {
                FromRelay::PeerQuiet { .. } | FromRelay::PeerBack => continue,
                other => return Ok(other),
            }
        }
    }

    fn lost(&self) -> LinkError {
        match self.connection.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c))
                if c.error_code.into_inner()
                    == u64::from(protocol::control::close_code::SHUTTING_DOWN) =>
            {
                LinkError::RelayShuttingDown
            }
            Some(reason) => LinkError::ConnectionLost(reason.to_string()),
            None => LinkError::ConnectionLost("the relay closed the control stream".into()),
        }
    }

    /// Asks for a session code (agent).
    pub async fn register(&mut self) -> Result<(SessionCode, u32), LinkError> {
        self.control_send.send(&ToRelay::Register).await?;
        match self.next().await? {
            FromRelay::Registered {
                code,
                expires_in_secs,
            } => Ok((code, expires_in_secs)),
            other => Err(unexpected(&other, "a session code")),
        }
    }

    /// Waits until a technician joins (agent, after [`RelayConnection::register`]).
    pub async fn wait_paired(&mut self) -> Result<PeerInfo, LinkError> {
        match self.next().await? {
            FromRelay::Paired {
                peer,
                session,
                request,
            } => {
                self.session = Some(session);
                self.request = request;
                Ok(peer)
            }
            other => Err(unexpected(&other, "pairing")),
        }
    }

    /// Logs in with an account's name and password (technician). Returns who the relay says
    /// this is, the token to resume with, and its lifetime in seconds.
    pub async fn login(
        &mut self,
        name: &str,
        password: &str,
    ) -> Result<(TechnicianAccount, String, u64), LinkError> {
        self.login_with_code(name, password, None).await
    }

    /// As [`RelayConnection::login`], with the one-time code of the account's second factor.
    pub async fn login_with_code(
        &mut self,
        name: &str,
        password: &str,
        one_time: Option<&str>,
    ) -> Result<(TechnicianAccount, String, u64), LinkError> {
        self.control_send
            .send(&ToRelay::Login {
                name: name.to_string(),
                password: password.to_string(),
                one_time: one_time.map(str::to_string),
            })
            .await?;
        self.logged_in().await
    }

    /// Logs in with the token of an earlier login (technician).
    pub async fn resume(
        &mut self,
        token: &str,
    ) -> Result<(TechnicianAccount, String, u64), LinkError> {
        self.control_send
            .send(&ToRelay::Resume {
                token: token.to_string(),
            })
            .await?;
        self.logged_in().await
    }

    async fn logged_in(&mut self) -> Result<(TechnicianAccount, String, u64), LinkError> {
        match self.next().await? {
            FromRelay::LoggedIn {
                account,
                token,
                expires_in_secs,
                recording,
            } => {
                self.recording = Some(recording);
                Ok((account, token, expires_in_secs))
            }
            other => Err(unexpected(&other, "a login")),
        }
    }

    /// Tells the relay how far the session log `log_id` has got on disk (technician, logged
    /// in; also during a session). No answer.
    pub async fn checkpoint(
        &mut self,
        log_id: &str,
        checkpoint: protocol::sessionlog::Checkpoint,
    ) -> Result<(), LinkError> {
        self.control_send
            .send(&ToRelay::Checkpoint {
                log_id: log_id.to_string(),
                checkpoint,
            })
            .await?;
        Ok(())
    }

    /// Uploads the encrypted session log in `file` described by `offer` (technician, logged
    /// in), from where the relay's copy ends, so an upload cut off earlier resumes.
    /// `progress(bytes the relay holds, total)` is called as it goes. Returns the offset the
    /// upload resumed from once the relay has stored the log whole.
    pub async fn upload(
        &mut self,
        offer: &LogOffer,
        file: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, LinkError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let id = offer.id.clone();
        self.control_send
            .send(&ToRelay::UploadBegin {
                offer: offer.clone(),
            })
            .await?;
        let from = match self.next().await? {
            FromRelay::UploadAt { log_id, offset } if log_id == id && offset <= offer.size => {
                offset
            }
            other => return Err(unexpected(&other, "the upload's offset")),
        };
        let local = |e: std::io::Error| {
            LinkError::Protocol(format!("cannot read the log {}: {e}", file.display()))
        };
        let mut f = tokio::fs::File::open(file).await.map_err(local)?;
        f.seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(local)?;
        let mut offset = from;
        let mut buf = vec![0u8; protocol::control::UPLOAD_CHUNK];
        while offset < offer.size {
            let want = buf.len().min((offer.size - offset) as usize);
            let n = f.read(&mut buf[..want]).await.map_err(local)?;
            if n == 0 {
                return Err(LinkError::Protocol(format!(
                    "the log {} is shorter than offered",
                    file.display()
                )));
            }
            self.control_send
                .send(&ToRelay::UploadChunk {
                    log_id: id.clone(),
                    offset,
                    data: buf[..n].to_vec(),
                })
                .await?;
            offset += n as u64;
            progress(offset, offer.size);
        }
        self.control_send
            .send(&ToRelay::UploadEnd { log_id: id.clone() })
            .await?;
        match self.next().await? {
            FromRelay::UploadStored { log_id } if log_id == id => Ok(from),
            other => Err(unexpected(&other, "the upload's confirmation")),
        }
    }

    /// Fetches stored session log `log_id` into `file` (appending to what `file` already holds,
    /// so a fetch cut off resumes), for a logged-in account that may have it. Returns what the
    /// relay holds of it, who recorded it and its checkpoints.
    pub async fn fetch_log(
        &mut self,
        log_id: &str,
        file: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(LogOffer, String, Vec<protocol::sessionlog::Checkpoint>), LinkError> {
        use tokio::io::AsyncWriteExt;
        let local = |e: std::io::Error| {
            LinkError::Protocol(format!("cannot write {}: {e}", file.display()))
        };
        let have = match tokio::fs::metadata(file).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(local(e)),
        };
        self.control_send
            .send(&ToRelay::FetchLog {
                log_id: log_id.to_string(),
                offset: have,
            })
            .await?;
        let (log, technician, count) = match self.next().await? {
            FromRelay::LogFound {
                log,
                technician,
                checkpoints,
            } if log.id == log_id => (log, technician, checkpoints as usize),
            other => return Err(unexpected(&other, "the log")),
        };
        let mut checkpoints = Vec::with_capacity(count.min(1 << 16));
        while checkpoints.len() < count {
            match self.next().await? {
                FromRelay::LogCheckpoints { checkpoints: batch } if !batch.is_empty() => {
                    checkpoints.extend(batch)
                }
                other => return Err(unexpected(&other, "the log's checkpoints")),
            }
        }
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .await
            .map_err(local)?;
        let mut at = have;
        while at < log.size {
            match self.next().await? {
                FromRelay::LogChunk { offset, data }
                    if offset == at && !data.is_empty() && at + data.len() as u64 <= log.size =>
                {
                    out.write_all(&data).await.map_err(local)?;
                    at += data.len() as u64;
                    progress(at, log.size);
                }
                other => return Err(unexpected(&other, "the log's bytes")),
            }
        }
        out.sync_all().await.map_err(local)?;
        Ok((log, technician, checkpoints))
    }

    /// Ends the validity of `token` (technician).
    pub async fn logout(&mut self, token: &str) -> Result<(), LinkError> {
        self.control_send
            .send(&ToRelay::Logout {
                token: token.to_string(),
            })
            .await?;
        match self.next().await? {
            FromRelay::LoggedOut => Ok(()),
            other => Err(unexpected(&other, "a logout")),
        }
    }

    /// Joins the session with `code` (technician, logged in).
    pub async fn join(&mut self, code: SessionCode) -> Result<PeerInfo, LinkError> {
        self.control_send.send(&ToRelay::Join { code }).await?;
        match self.next().await? {
            FromRelay::Paired {
                peer,
                session,
                request,
            } => {
                self.session = Some(session);
                self.request = request;
                Ok(peer)
            }
            other => Err(unexpected(&other, "pairing")),
        }
    }

    /// Files a help request (agent) in the relay's queue. Returns the request's number, its
    /// place (1: next) and the secret to take it back with ([`RelayConnection::resume_request`])
    /// after a dropped connection.
    pub async fn file_request(&mut self, filing: RequestFiling) -> Result<Queued, LinkError> {
        self.control_send
            .send(&ToRelay::FileRequest { filing })
            .await?;
        self.queued().await
    }

    /// Takes a waiting help request back (agent) after a dropped connection; its place is kept.
    pub async fn resume_request(
        &mut self,
        request: u64,
        secret: String,
    ) -> Result<Queued, LinkError> {
        self.control_send
            .send(&ToRelay::ResumeRequest { request, secret })
            .await?;
        self.queued().await
    }

    async fn queued(&mut self) -> Result<Queued, LinkError> {
        match self.next().await? {
            FromRelay::Queued {
                request,
                position,
                expected_wait_secs,
                secret,
            } => Ok(Queued {
                request,
                position,
                expected_wait_secs,
                secret,
            }),
            other => Err(unexpected(&other, "the help request's place in the queue")),
        }
    }

    /// While a help request waits (agent): its new place, or the technician who took it.
    pub async fn next_in_queue(&mut self) -> Result<QueueNews, LinkError> {
        match self.next().await? {
            FromRelay::QueuePlace {
                position,
                expected_wait_secs,
            } => Ok(QueueNews::Place {
                position,
                expected_wait_secs,
            }),
            FromRelay::Paired {
                peer,
                session,
                request,
            } => {
                self.session = Some(session);
                self.request = request;
                Ok(QueueNews::Taken(peer))
            }
            FromRelay::RequestCancelled => Ok(QueueNews::Cancelled),
            other => Err(unexpected(&other, "news of the help request")),
        }
    }

    /// Withdraws the waiting help request (agent); [`RelayConnection::next_in_queue`] then
    /// says [`QueueNews::Cancelled`] (or that it was taken at that moment).
    pub async fn cancel_request(&mut self) -> Result<(), LinkError> {
        Ok(self.control_send.send(&ToRelay::CancelRequest).await?)
    }

    /// Asks for the queue (logged-in technician); [`RelayConnection::next_queue`] then gives
    /// it now and after every change.
    pub async fn watch_queue(&mut self) -> Result<(), LinkError> {
        Ok(self.control_send.send(&ToRelay::WatchQueue).await?)
    }

    /// The queue as it is now (technician, after [`RelayConnection::watch_queue`]): the
    /// requests it may take, oldest first, and how many more wait behind them.
    /// Offers and the dashboard are passed over ([`RelayConnection::next_desk`] gives them).
    pub async fn next_queue(&mut self) -> Result<(Vec<QueueEntry>, u32), LinkError> {
        loop {
            match self.next_desk().await? {
                DeskNews::Queue { requests, more } => return Ok((requests, more)),
                DeskNews::Offer { .. } | DeskNews::Dashboard { .. } => continue,
            }
        }
    }

    /// The next news of the desk (technician, after [`RelayConnection::watch_queue`]).
    pub async fn next_desk(&mut self) -> Result<DeskNews, LinkError> {
        match self.next().await? {
            FromRelay::Queue { requests, more } => Ok(DeskNews::Queue { requests, more }),
            FromRelay::Offer {
                request,
                expires_in_secs,
            } => Ok(DeskNews::Offer {
                request: Box::new(request),
                expires_in_secs,
            }),
            FromRelay::Dashboard {
                tiers,
                technicians,
                sessions,
            } => Ok(DeskNews::Dashboard {
                tiers,
                technicians,
                sessions,
            }),
            other => Err(unexpected(&other, "the queue")),
        }
    }

    /// Says whether this technician is away (watching the queue). No answer.
    pub async fn set_presence(&mut self, away: bool) -> Result<(), LinkError> {
        Ok(self
            .control_send
            .send(&ToRelay::SetPresence { away })
            .await?)
    }

    /// Declines a request routing offered (watching the queue). No answer.
    pub async fn decline(&mut self, request: u64) -> Result<(), LinkError> {
        Ok(self
            .control_send
            .send(&ToRelay::Decline { request })
            .await?)
    }

    /// In a session from a help request: asks the relay to escalate, hold or close it
    /// (`action` is [`ToRelay::Escalate`], [`ToRelay::Hold`] or [`ToRelay::Resolve`]). Its
    /// answer, [`FromRelay::RequestPassed`] or a refusal, comes through
    /// [`RelayConnection::next`] like the session's other news.
    pub async fn pass_on(&mut self, action: ToRelay) -> Result<(), LinkError> {
        Ok(self.control_send.send(&action).await?)
    }

    /// Answers the survey of a help request (agent, on a fresh connection): `score` 1 to 5.
    pub async fn answer_survey(
        &mut self,
        request: u64,
        secret: String,
        score: u8,
        comment: String,
    ) -> Result<(), LinkError> {
        self.control_send
            .send(&ToRelay::AnswerSurvey {
                request,
                secret,
                score,
                comment,
            })
            .await?;
        match self.next().await? {
            FromRelay::SurveyTaken => Ok(()),
            other => Err(unexpected(&other, "the survey's receipt")),
        }
    }

    /// What makes further connections to this relay through this connection's endpoint (the
    /// same socket, and the same trust in the relay's certificate): an agent's connections for
    /// further viewers of its session.
    pub fn redial(&self) -> Redial {
        Redial(Dial::Open {
            endpoint: self.endpoint.clone(),
            relay_addr: self.relay_addr,
        })
    }

    /// Takes `resumed` as this session's connection from now on, keeping the relays to
    /// resume through that the last relay told until the new one tells its own.
    pub fn resumed_on(&mut self, resumed: RelayConnection) {
        let told = std::mem::take(&mut self.resume_through);
        *self = resumed;
        if self.resume_through.is_empty() {
            self.resume_through = told;
        }
    }

    /// Attaches this connection (agent, first after hello) to the live session whose invite
    /// carried `ticket` ([`FromRelay::Invite`]), and waits until it is paired with the
    /// technician waiting under it.
    pub async fn attach(&mut self, ticket: String) -> Result<PeerInfo, LinkError> {
        self.control_send.send(&ToRelay::Attach { ticket }).await?;
        self.wait_paired().await
    }

    /// Rejoins a live session whose relay connection died (agent, or technician logged in
    /// first), under the ticket both ends derive from its keys, and waits (as long as the relay
    /// lets it) until the other end rejoins too.
    pub async fn rejoin(&mut self, ticket: String, session: String) -> Result<PeerInfo, LinkError> {
        self.control_send
            .send(&ToRelay::Rejoin { ticket, session })
            .await?;
        self.wait_paired().await
    }

    /// Joins live session `session` to monitor it (a logged-in lead), as
    /// [`RelayConnection::join`] joins by code.
    pub async fn monitor(&mut self, session: String) -> Result<PeerInfo, LinkError> {
        self.control_send
            .send(&ToRelay::Monitor { session })
            .await?;
        self.take_pairing().await
    }

    /// Takes a help request (logged-in technician; `None`: the oldest it may take) and is
    /// paired with its agent, as [`RelayConnection::join`] is with a code's.
    pub async fn take(&mut self, request: Option<u64>) -> Result<PeerInfo, LinkError> {
        self.control_send.send(&ToRelay::Take { request }).await?;
        self.take_pairing().await
    }

    /// The pairing that answers a take or monitor, past news of the queue sent before the
    /// request was read.
    async fn take_pairing(&mut self) -> Result<PeerInfo, LinkError> {
        loop {
            match self.next().await? {
                FromRelay::Paired {
                    peer,
                    session,
                    request,
                } => {
                    self.session = Some(session);
                    self.request = request;
                    return Ok(peer);
                }
                // News of the queue sent before the take was read.
                FromRelay::Queue { .. } | FromRelay::Dashboard { .. } | FromRelay::Offer { .. } => {
                    continue
                }
                other => return Err(unexpected(&other, "pairing")),
            }
        }
    }

    /// After a peer-plane stream ended unexpectedly: waits briefly for the relay's word on why.
    /// `Ok` with the reason the other peer left (or `fallback` when the relay says nothing);
    /// `Err` when the relay itself is going away or the connection to it failed, or
    /// [`LinkError::PeerLinkLost`] when the other peer's link died (it may come back).
    pub async fn explain_departure(&mut self, fallback: String) -> Result<String, LinkError> {
        match tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.next_skipping_silences(),
        )
        .await
        {
            Ok(Err(LinkError::PeerLeft(PeerLeftReason::ConnectionLost))) => {
                Err(LinkError::PeerLinkLost)
            }
            Ok(Err(LinkError::PeerLeft(reason))) => Ok(reason.to_string()),
            Ok(Err(e)) => Err(e),
            _ => Ok(fallback),
        }
    }

    /// After telling the other peer the session is over: waits (at most `limit`) until it has
    /// left, so that everything sent before the goodbye reached it before this side closes (a
    /// closed connection abandons what is still in flight).
    pub async fn await_departure(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async { while self.next().await.is_ok() {} }).await;
    }

    /// Closes the connection, telling the relay (and through it the other peer) why.
    pub fn close(&self, reason: &str) {
        self.connection.close(
            quinn::VarInt::from_u32(protocol::control::close_code::DONE),
            reason.as_bytes(),
        );
    }

    /// Closes, then waits (briefly) until the relay has been told.
    pub async fn close_and_wait(&self, reason: &str) {
        self.close(reason);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.endpoint.wait_idle())
            .await;
    }
}

fn unexpected(msg: &FromRelay, wanted: &str) -> LinkError {
    // A message may carry kilobytes (a chunk of a log): say what it was, not all of it.
    let mut said = format!("{msg:?}");
    if said.len() > 200 {
        let mut end = 200;
        while !said.is_char_boundary(end) {
            end -= 1;
        }
        said.truncate(end);
        said.push('…');
    }
    LinkError::Protocol(format!("expected {wanted}, got {said}"))
}
