//! The QUIC endpoint and the control plane of every connection.
//!
//! Each connection gets a task. It reads the hello, then either registers an agent (which waits
//! for a technician, its code's expiry, or its own departure) or logs a technician in (password
//! or token, [`crate::login`]) and joins it to a waiting agent; a technician that is not logged
//! in, or whose token was revoked or account disabled meanwhile, is refused. Once paired, each
//! side's task forwards what its peer opens toward the other peer ([`crate::forward`]) and watches the other connection: when that one ends, it tells its own
//! peer at once on the control stream. A peer that breaks the protocol is sent an error and
//! disconnected with a reason; nothing it sends can stop the relay or another session.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use link::channel::{ChannelError, FramedRecv, FramedSend};
use protocol::control::{
    close_code, peek_hello_version, ErrorCode, FromRelay, LiveSession, PeerInfo, PeerLeftReason,
    RecordingPolicy, Role, SessionCode, ToRelay,
};
use protocol::framing::FrameError;
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use rand::TryRngCore;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::accounts::{AccountRole, Accounts};
use crate::cluster::{Cluster, Whereabouts};
use crate::config::Config;
use crate::forward::{self, SharedTap};
use crate::identity::Identity;
use crate::ledger::{Ledger, Pairing};
use crate::limits::{Connections, Slot, Windows};
use crate::login::{Gate, LoggedIn};
use crate::logstore::{LogStore, StoreError};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::rendezvous::{JoinError, Rendezvous};

mod help;
mod rejoin;

/// How long a new connection has to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the relay waits for a write to a peer to be taken (its flow control to open).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer that was told its partner left may take to close before the relay closes it.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// How often expired codes and idle rate-limit entries are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);
/// How often stored session logs past their retention are deleted (and once at start).
const LOG_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Every how many ticks of the desk's clock (four a second) a relay of a cluster reads which
/// requests' agents wait on its peers: their technicians see them as connected within a second.
const ELSEWHERE_EVERY: u64 = 4;

/// An agent waiting under its code, with the way to hand it a technician.
struct WaitingAgent {
    conn: Connection,
    info: PeerInfo,
    pair: oneshot::Sender<Partner>,
}

/// The other side of a session, as handed from one task to the other.
struct Partner {
    conn: Connection,
    info: PeerInfo,
    /// The session's row in the ledger.
    session: String,
    /// To the agent's side: technicians waiting to join the live session, for the agent to
    /// attach another connection to.
    invites: mpsc::Receiver<help::Invite>,
}

/// Longest a session whose recording the policy requires may go without a checkpoint.
const CHECKPOINT_DEADLINE: Duration =
    Duration::from_secs(2 * protocol::control::CHECKPOINT_INTERVAL_SECS);

struct Shared {
    cfg: Config,
    /// The archive of uploaded session logs (blocking I/O: used from `spawn_blocking`).
    logs: Arc<Mutex<LogStore>>,
    /// The relay's record of paired sessions (blocking I/O: used from `spawn_blocking`).
    ledger: Arc<Mutex<Ledger>>,
    rendezvous: Mutex<Rendezvous<WaitingAgent>>,
    /// Technicians waiting for an agent in a live session to attach another connection, by
    /// the ticket of the invite (see [`invite`]).
    attaching: Mutex<std::collections::HashMap<String, oneshot::Sender<WaitingAgent>>>,
    /// Ends of live sessions whose relay connection died, waiting for the other end.
    rejoining: rejoin::Rejoining,
    /// The queue of help requests.
    help: help::Help,
    joins: Mutex<RateLimiter<crate::limits::Source>>,
    logins: Gate,
    shutdown: watch::Receiver<bool>,
    tap: SharedTap,
    conns: Connections,
    metrics: Arc<Metrics>,
    /// This relay's place among the relays of its cluster (blocking I/O: used from
    /// `spawn_blocking`); `None` for a relay on its own.
    cluster: Option<Arc<Mutex<Cluster>>>,
    /// The live peers of this relay in its cluster, as last read: told to the ends of each
    /// session to resume through when they are paired and whenever it changes
    /// ([`FromRelay::ResumeThrough`]).
    peers: watch::Sender<Vec<protocol::control::RelayPointer>>,
}

/// A running relay endpoint.
pub struct Relay {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    name: String,
    /// The administrator's HTTP listener, bound at start when the config names one.
    admin: Option<std::net::TcpListener>,
}

/// Why the relay ends a connection: an error message for the peer, and the close code.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn violation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ProtocolViolation, message)
    }

    fn close_code(&self) -> u32 {
        match self.code {
            ErrorCode::ProtocolViolation
            | ErrorCode::MalformedMessage
            | ErrorCode::FrameTooLarge => close_code::PROTOCOL_VIOLATION,
            ErrorCode::ShuttingDown => close_code::SHUTTING_DOWN,
            _ => close_code::REFUSED,
        }
    }
}

/// How a control-stream read went wrong, as a refusal, or `None` if the peer just went away.
fn refusal_for(e: ChannelError) -> Option<Refusal> {
    match e {
        ChannelError::Frame(FrameError::TooLarge { len, max }) => Some(Refusal::new(
            ErrorCode::FrameTooLarge,
            format!("control frame of {len} bytes announced; the limit is {max}"),
        )),
        ChannelError::Decode(d) => Some(Refusal::new(
            ErrorCode::MalformedMessage,
            format!("not a control message: {d}"),
        )),
        _ => None,
    }
}

/// Outcome of a control-stream read: a message, the peer gone, or a refusal to send.
enum Read {
    Msg(ToRelay),
    Gone,
}

async fn read(inp: &mut FramedRecv<ToRelay>) -> Result<Read, Refusal> {
    match inp.recv().await {
        Ok(Some(m)) => Ok(Read::Msg(m)),
        Ok(None) => Ok(Read::Gone),
        Err(e) => refusal_for(e).map_or(Ok(Read::Gone), Err),
    }
}

/// The relay's state as it starts: the stores of its database, opened (and the database's
/// schema migrated) off the async threads.
struct Stores {
    /// This relay's name among relays sharing the database.
    name: String,
    accounts: Accounts,
    logs: LogStore,
    ledger: Ledger,
    help: help::Help,
    /// The database, for this relay to enter its cluster once it listens.
    db: crate::storage::Database,
}

impl Stores {
    fn open(cfg: &Config) -> anyhow::Result<Self> {
        let location = cfg.database();
        let db = crate::storage::Database::open(&location)
            .with_context(|| format!("cannot open the relay's state ({})", location.describe()))?;
        let name = crate::identity::relay_name(&cfg.data_dir)?;
        let policy = crate::accounts::LoginPolicy {
            token_ttl: cfg.token_ttl,
            ..Default::default()
        };
        let accounts = Accounts::open_with(&db, policy, argon2::Argon2::default())
            .context("cannot open the technician accounts")?;
        let limits = crate::logstore::Limits {
            max_size: cfg.max_log_bytes,
            account_quota: cfg.account_log_quota,
            max_checkpoints: cfg.max_checkpoints_per_log,
        };
        let location = cfg.log_location()?;
        let objects = crate::objects::open(&location, &cfg.data_dir).with_context(|| {
            format!(
                "cannot open the session-log storage {}",
                location.describe(&cfg.data_dir)
            )
        })?;
        let logs = LogStore::open_with(&db, objects, limits)
            .context("cannot open the session-log archive")?;
        let ledger = Ledger::open(&db, &name).context("cannot open the ledger of sessions")?;
        // The sessions this relay ran when it stopped ended with it.
        ledger
            .close_left_open()
            .context("cannot close the ledger's sessions of the relay's last run")?;
        let help = help::Help::open(&db, &name, cfg.desk.clone())
            .context("cannot open the help requests")?;
        Ok(Self {
            name,
            accounts,
            logs,
            ledger,
            help,
            db,
        })
    }
}

impl Relay {
    /// Binds the endpoint with `identity`, with the relay's state in the database `cfg` names.
    pub async fn bind(cfg: Config, identity: &Identity) -> anyhow::Result<Self> {
        Self::bind_with_tap(cfg, identity, None).await
    }

    /// As [`Relay::bind`], with a [`forward::Tap`] on the peer plane of every session (for tests
    /// that play a hostile relay).
    pub async fn bind_with_tap(
        cfg: Config,
        identity: &Identity,
        tap: SharedTap,
    ) -> anyhow::Result<Self> {
        let stores = {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || Stores::open(&cfg))
                .await
                .context("opening the relay's state failed")??
        };
        let tls = link::tls::server_config(identity.cert_der.clone(), identity.key_der.clone())
            .context("the relay's certificate is not usable")?;
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .context("the TLS configuration does not suit QUIC")?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(link::transport::relay_transport_config(
            cfg.idle_timeout,
            cfg.keep_alive,
            Windows::UNPAIRED,
        ));
        let endpoint = link::transport::endpoint_with_reset_key(
            cfg.listen,
            Some(server),
            &identity.reset_key(),
        )
        .with_context(|| {
            format!(
                "cannot listen on {} (UDP): another relay may be running there; choose another address with --listen",
                cfg.listen
            )
        })?;
        let admin = match cfg.admin_listen {
            None => None,
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr).with_context(|| {
                    format!(
                        "cannot listen on {addr} (TCP) for metrics and health: something else \
                         listens there; choose another admin_listen"
                    )
                })?;
                l.set_nonblocking(true)?;
                Some(l)
            }
        };
        let (cluster, peers) = match (&cfg.cluster_name, cfg.cluster_addr(endpoint.local_addr()?)?)
        {
            (Some(cluster), Some(public_addr)) => {
                let me = crate::cluster::Member {
                    name: stores.name.clone(),
                    cluster: cluster.clone(),
                    public_addr,
                    fingerprint: identity.fingerprint.to_string(),
                };
                let db = stores.db.clone();
                let (entered, peers) = tokio::task::spawn_blocking(move || {
                    let entered = Cluster::enter(&db, me)?;
                    let peers = entered.peers()?;
                    Ok::<_, crate::storage::DbError>((entered, peers))
                })
                .await
                .context("entering the cluster failed")?
                .context("cannot record this relay among the relays of its cluster")?;
                (Some(Arc::new(Mutex::new(entered))), peers)
            }
            _ => (None, Vec::new()),
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            logs: Arc::new(Mutex::new(stores.logs)),
            ledger: Arc::new(Mutex::new(stores.ledger)),
            rendezvous: Mutex::new(Rendezvous::new(cfg.code_ttl)),
            attaching: Mutex::new(std::collections::HashMap::new()),
            rejoining: rejoin::Rejoining::default(),
            help: stores.help,
            joins: Mutex::new(RateLimiter::new(cfg.join_attempts, cfg.join_window)),
            logins: Gate::with_policy(stores.accounts, cfg.organisation.clone(), cfg.require_totp),
            shutdown,
            conns: Connections::new(cfg.max_connections, cfg.max_connections_per_source),
            metrics: Arc::new(Metrics::default()),
            cluster,
            peers: watch::Sender::new(peers),
            cfg,
            tap,
        });
        Ok(Self {
            endpoint,
            shared,
            shutdown_tx,
            name: stores.name,
            admin,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The name this relay marks its sessions and takes with in its database
    /// ([`crate::identity::relay_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many technician accounts are enabled.
    pub async fn enabled_accounts(&self) -> Result<usize, Refusal> {
        self.shared.logins.enabled_accounts().await
    }

    /// Where the administrator's HTTP listener listens, if the config names one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `stop` completes, then tells every peer the relay is shutting down and
    /// closes.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut conns = JoinSet::new();
        let admin = match self.admin.take().map(tokio::net::TcpListener::from_std) {
            Some(Ok(listener)) => {
                let figures = Arc::new(Figures(self.shared.clone()));
                let stop = self.shared.shutdown.clone();
                Some(tokio::spawn(crate::admin::serve(listener, figures, stop)))
            }
            Some(Err(e)) => {
                warn!(error = %e, "the admin listener cannot serve");
                None
            }
            None => None,
        };
        let mut purge = tokio::time::interval(PURGE_INTERVAL);
        let mut seen = tokio::time::interval(crate::cluster::SEEN_EVERY);
        seen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(LOG_SWEEP_INTERVAL);
        let desk = self.shared.clone();
        let desk_clock = tokio::spawn(async move {
            let mut tick = tokio::time::interval(help::TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                if ticks.is_multiple_of(ELSEWHERE_EVERY) {
                    if let Some(e) = with_cluster(&desk, Cluster::elsewhere).await {
                        let sessions = e.sessions.into_iter().map(|(l, _)| l).collect();
                        desk.help.set_elsewhere(e.requests, sessions);
                    }
                }
                ticks += 1;
                desk.help.tick().await;
            }
        });
        tokio::pin!(stop);
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let remote = incoming.remote_address();
                    // Counted before the handshake: a source at its limit costs no TLS work.
                    let slot = match self.shared.conns.admit(remote.ip()) {
                        Ok(slot) => slot,
                        Err(full) => {
                            debug!(peer = %remote, reason = %full, "connection refused");
                            Metrics::add(&self.shared.metrics.connections_refused, 1);
                            incoming.refuse();
                            continue;
                        }
                    };
                    let shared = self.shared.clone();
                    conns.spawn(async move {
                        match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
                            Ok(Ok(conn)) => serve(conn, shared, slot).await,
                            Ok(Err(e)) => debug!(peer = %remote, error = %e, "handshake failed"),
                            Err(_) => debug!(peer = %remote, "handshake not finished in time"),
                        }
                    });
                }
                _ = purge.tick() => {
                    // Each purge takes only what is due, so none holds up the accepts.
                    let now = Instant::now();
                    let purged = self.shared.rendezvous.lock().expect("rendezvous lock").purge(now);
                    let joins = self.shared.joins.lock().expect("limiter lock").purge(now);
                    self.shared.logins.purge(now);
                    debug!(
                        expired = purged.expired,
                        tombstones_forgotten = purged.forgotten,
                        registration_sources_forgotten = purged.sources,
                        join_sources_forgotten = joins,
                        "purged"
                    );
                }
                _ = sweep.tick() => {
                    let retention = self.shared.cfg.log_retention;
                    let swept = with_logs(&self.shared, move |s| {
                        s.sweep(std::time::SystemTime::now(), retention)
                    })
                    .await;
                    if let Err(e) = swept {
                        warn!(error = %e.message, "the session-log retention sweep failed");
                    }
                }
                _ = seen.tick(), if self.shared.cluster.is_some() => {
                    let peers = with_cluster(&self.shared, |c| {
                        c.seen()?;
                        c.peers()
                    })
                    .await;
                    if let Some(peers) = peers {
                        self.shared.peers.send_if_modified(|told| {
                            let changed = *told != peers;
                            *told = peers;
                            changed
                        });
                    }
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        desk_clock.abort();
        info!(connections = conns.len(), "shutting down");
        // Technicians sent here from now on are told this relay is gone.
        with_cluster(&self.shared, Cluster::leave).await;
        let _ = self.shutdown_tx.send(true);
        if let Some(a) = admin {
            a.abort();
        }
        // Let the tasks tell their peers; then close whatever is left.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        self.endpoint.close(
            VarInt::from_u32(close_code::SHUTTING_DOWN),
            b"the relay is shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// One connection, start to end; `_slot` holds its place in the connection limits until then.
async fn serve(conn: Connection, shared: Arc<Shared>, _slot: Slot) {
    let remote = conn.remote_address();
    let (send, recv) = match tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(peer = %remote, error = %e, "connection ended before hello");
            return;
        }
        Err(_) => {
            info!(peer = %remote, "no hello in time");
            conn.close(
                VarInt::from_u32(close_code::PROTOCOL_VIOLATION),
                b"no hello in time",
            );
            return;
        }
    };
    let mut out = FramedSend::<FromRelay>::new(send);
    let mut inp = FramedRecv::<ToRelay>::control(recv);
    if let Err(refusal) = control(&conn, &mut out, &mut inp, &shared).await {
        info!(peer = %remote, code = ?refusal.code, reason = %refusal.message, "refused");
        refuse(&conn, &mut out, refusal, &shared.metrics).await;
    }
}

/// Sends the refusal as an error message, waits (briefly) for it to be delivered, and closes.
async fn refuse(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    refusal: Refusal,
    metrics: &Metrics,
) {
    metrics.refused(&refusal.code);
    let msg = if refusal.code == ErrorCode::ShuttingDown {
        FromRelay::ShuttingDown
    } else {
        FromRelay::Error {
            code: refusal.code,
            message: refusal.message.clone(),
        }
    };
    let delivered = async {
        out.send(&msg).await.ok()?;
        out.finish().ok()?;
        out.stream_mut().stopped().await.ok()
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), delivered).await;
    let close_code = refusal.close_code();
    let mut reason = refusal.message.into_bytes();
    reason.truncate(512);
    conn.close(VarInt::from_u32(close_code), &reason);
}

/// The control plane of one connection. `Err` ends it with a refusal; `Ok` means the
/// connection is over for another reason (peer gone, session done).
async fn control(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    let frame = match tokio::time::timeout(HELLO_TIMEOUT, inp.recv_frame()).await {
        Err(_) => return Err(Refusal::violation("no hello in time")),
        Ok(Ok(Some(f))) => f.to_vec(),
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return refusal_for(e).map_or(Ok(()), Err),
    };
    let (role, software) = match inp.decode(&frame) {
        Ok(ToRelay::Hello {
            version,
            role,
            software,
        }) if version == protocol::PROTOCOL_VERSION => (role, software),
        Ok(ToRelay::Hello { version, .. }) => return Err(unsupported(version)),
        Ok(other) => {
            return Err(Refusal::violation(format!(
                "expected hello first, got {}",
                other
            )))
        }
        Err(e) => match peek_hello_version(&frame) {
            Some(version) if version != protocol::PROTOCOL_VERSION => {
                return Err(unsupported(version))
            }
            _ => return Err(refusal_for(e).unwrap_or_else(|| Refusal::violation("bad hello"))),
        },
    };
    send(
        out,
        FromRelay::Welcome {
            version: protocol::PROTOCOL_VERSION,
            software: format!("relay {}", protocol::SOFTWARE_VERSION),
        },
    )
    .await?;
    // What a peer says of itself is shown to the other peer and in the relay's own output:
    // bounded and made printable here, whatever the peers do with it.
    let info = PeerInfo {
        role,
        description: format!("{role} at {remote}"),
        software: protocol::text::tame(&software, protocol::text::MAX_PEER_STRING),
        account: None,
    };
    debug!(peer = %remote, %role, "hello");
    match role {
        // Boxed: a connection's task then holds only the state of the path it is on (an idle
        // paired session is most of a relay's connections, and its memory is per connection).
        Role::Agent => Box::pin(agent(conn, out, inp, shared, info)).await,
        Role::Technician => Box::pin(technician(conn, out, inp, shared, info)).await,
    }
}

fn unsupported(theirs: u16) -> Refusal {
    Refusal::new(
        ErrorCode::UnsupportedVersion,
        format!(
            "this relay speaks protocol version {}, the client speaks version {theirs}; \
             use a client and relay of matching versions",
            protocol::PROTOCOL_VERSION
        ),
    )
}

async fn send(out: &mut FramedSend<FromRelay>, msg: FromRelay) -> Result<(), Refusal> {
    // A failed write means the peer is gone; the refusal that follows goes nowhere, harmlessly.
    match tokio::time::timeout(SEND_TIMEOUT, out.send(&msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Refusal::new(
            ErrorCode::Internal,
            format!("cannot write to the peer: {e}"),
        )),
        Err(_) => Err(Refusal::violation(format!(
            "the peer took nothing the relay sent for {} seconds",
            SEND_TIMEOUT.as_secs()
        ))),
    }
}

/// The next control message of a peer that is not paired yet, which must come within the
/// relay's `unpaired_timeout`.
async fn read_unpaired(inp: &mut FramedRecv<ToRelay>, shared: &Shared) -> Result<Read, Refusal> {
    let limit = shared.cfg.unpaired_timeout;
    match tokio::time::timeout(limit, read(inp)).await {
        Ok(r) => r,
        Err(_) => Err(Refusal::new(
            ErrorCode::Timeout,
            format!(
                "nothing was asked of the relay for {} seconds; connect again when you need it",
                limit.as_secs()
            ),
        )),
    }
}

async fn agent(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    info: PeerInfo,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    match read_unpaired(inp, shared).await? {
        Read::Msg(ToRelay::Register) => {}
        Read::Msg(m @ (ToRelay::FileRequest { .. } | ToRelay::ResumeRequest { .. })) => {
            return Box::pin(help::requester(conn, out, inp, shared, info, m)).await
        }
        Read::Msg(m @ ToRelay::AnswerSurvey { .. }) => return help::survey(out, shared, m).await,
        Read::Msg(ToRelay::Attach { ticket }) => {
            return Box::pin(attach(conn, out, inp, shared, info, ticket)).await
        }
        Read::Msg(ToRelay::Rejoin { ticket, session }) => {
            return Box::pin(rejoin::rejoin(
                conn, out, inp, shared, info, ticket, session, None,
            ))
            .await
        }
        Read::Msg(other) => {
            return Err(Refusal::violation(format!(
                "an agent sends register, file request, resume request, attach, rejoin or a \
                 survey answer after hello, not {}",
                other
            )))
        }
        Read::Gone => return Ok(()),
    }
    let (tx, mut rx) = oneshot::channel();
    let waiting = WaitingAgent {
        conn: conn.clone(),
        info,
        pair: tx,
    };
    let source = crate::limits::source_of(remote.ip());
    let limits = crate::rendezvous::Limits {
        max_waiting_per_source: shared.cfg.max_waiting_codes_per_source as usize,
        registrations_per_minute: shared.cfg.registrations_per_minute,
    };
    let registered = {
        let mut rng = rand::rngs::OsRng.unwrap_err();
        shared.rendezvous.lock().expect("rendezvous lock").register(
            waiting,
            source,
            limits,
            Instant::now(),
            &mut rng,
        )
    };
    let (code, expires_at) = registered.map_err(|e| {
        Refusal::new(
            ErrorCode::RateLimited {
                retry_after_secs: e.retry_after_secs(),
            },
            e.to_string(),
        )
    })?;
    info!(peer = %remote, code = %code, "agent registered");
    let _held = Held::new(
        shared,
        crate::cluster::code_key(&code),
        conn,
        crate::ledger::now_ms() + shared.cfg.code_ttl.as_millis() as u64,
    )
    .await;
    let withdraw = || {
        shared
            .rendezvous
            .lock()
            .expect("rendezvous lock")
            .withdraw(&code, Instant::now())
    };
    send(
        out,
        FromRelay::Registered {
            code: code.clone(),
            expires_in_secs: shared.cfg.code_ttl.as_secs() as u32,
        },
    )
    .await?;
    let mut shutdown = shared.shutdown.clone();
    let mut expiry_checked = false;
    let partner = loop {
        tokio::select! {
            p = &mut rx => match p {
                Ok(p) => break p,
                // The table dropped us: the code was purged as expired.
                Err(_) => return Err(expired(shared)),
            },
            _ = tokio::time::sleep_until(expires_at.into()), if !expiry_checked => {
                expiry_checked = true;
                let expired_now = shared.rendezvous.lock().expect("rendezvous lock").expire(&code, Instant::now());
                if expired_now.is_some() {
                    info!(peer = %remote, code = %code, "code expired unused");
                    return Err(expired(shared));
                }
                // A technician took it at the last moment; the partner is on its way.
            }
            r = read(inp) => {
                withdraw();
                return match r? {
                    Read::Gone => Ok(()),
                    Read::Msg(m) => Err(Refusal::violation(format!(
                        "{} is not allowed while waiting for a technician", m
                    ))),
                };
            }
            _ = shutdown.changed() => {
                withdraw();
                return Err(Refusal::new(ErrorCode::ShuttingDown, "the relay is shutting down"));
            }
        }
    };
    info!(peer = %remote, code = %code, technician = %partner.info.description, session = %partner.session, "paired");
    agent_paired(conn, out, inp, shared, partner).await
}

/// An agent's further connection to its live session, for the technician waiting under
/// `ticket` (see [`invite`]): handed to that technician, then paired as under a code.
async fn attach(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    info: PeerInfo,
    ticket: String,
) -> Result<(), Refusal> {
    let waiting = shared
        .attaching
        .lock()
        .expect("attaching lock")
        .remove(&ticket);
    let gone = || {
        Refusal::new(
            ErrorCode::UnknownSession,
            "no technician waits to join under this ticket any more",
        )
    };
    let waiting = waiting.ok_or_else(gone)?;
    let (tx, rx) = oneshot::channel();
    let agent = WaitingAgent {
        conn: conn.clone(),
        info,
        pair: tx,
    };
    waiting.send(agent).map_err(|_| gone())?;
    let partner = match tokio::time::timeout(HELLO_TIMEOUT, rx).await {
        Ok(Ok(p)) => p,
        _ => return Err(gone()),
    };
    info!(peer = %conn.remote_address(), technician = %partner.info.description, session = %partner.session, "another viewer attached");
    agent_paired(conn, out, inp, shared, partner).await
}

/// Asks the agent of a live session (through `invites`, which its side of the session reads)
/// for another connection, and waits for it to attach: the technician then pairs with it as
/// with an agent waiting under a code.
async fn invite(
    shared: &Shared,
    invites: mpsc::Sender<help::Invite>,
    joining: protocol::control::Joining,
) -> Result<WaitingAgent, Refusal> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    let ticket = hex::encode(bytes);
    let (tx, rx) = oneshot::channel();
    let attaching = || shared.attaching.lock().expect("attaching lock");
    attaching().insert(ticket.clone(), tx);
    let limit = Duration::from_secs(protocol::control::ATTACH_SECS);
    let attached = match invites.try_send(help::Invite {
        ticket: ticket.clone(),
        joining,
    }) {
        Ok(()) => tokio::time::timeout(limit, rx)
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    };
    attaching().remove(&ticket);
    attached.ok_or_else(|| {
        Refusal::new(
            ErrorCode::UnknownSession,
            format!(
                "the user's agent did not let another technician join within {} seconds (the \
                 session may have just ended)",
                limit.as_secs()
            ),
        )
    })
}

/// The agent's side once a technician is handed to it: told who, then the paired session.
async fn agent_paired(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    partner: Partner,
) -> Result<(), Refusal> {
    Windows::paired(conn);
    send(
        out,
        FromRelay::Paired {
            peer: partner.info,
            session: partner.session.clone(),
            request: None,
        },
    )
    .await?;
    Box::pin(paired(
        conn,
        Role::Agent,
        &partner.conn,
        out,
        inp,
        shared,
        Side::Agent(partner.invites),
    ))
    .await
    .map(|_| ())
}

fn expired(shared: &Shared) -> Refusal {
    Refusal::new(
        ErrorCode::ExpiredCode,
        format!(
            "the session code expired: no technician used it within {}; start again for a new code",
            crate::rendezvous::human(shared.cfg.code_ttl)
        ),
    )
}

async fn technician(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    mut info: PeerInfo,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    // Log in (or out) as often as the technician likes; then join.
    let mut login: Option<LoggedIn> = None;
    let wanted = loop {
        match read_unpaired(inp, shared).await? {
            Read::Msg(ToRelay::Join { code }) => break Wanted::Code(code),
            Read::Msg(ToRelay::Take { request }) => break Wanted::Request(request),
            Read::Msg(ToRelay::Monitor { session }) => break Wanted::Monitor(session),
            Read::Msg(ToRelay::Rejoin { ticket, session }) => {
                let Some(l) = &login else {
                    return Err(Refusal::new(
                        ErrorCode::NotLoggedIn,
                        "log in first: only logged-in technicians rejoin a session",
                    ));
                };
                let account = shared.logins.may_join(l).await?;
                info.account = Some(account.clone());
                return Box::pin(rejoin::rejoin(
                    conn,
                    out,
                    inp,
                    shared,
                    info,
                    ticket,
                    session,
                    Some(&account.name),
                ))
                .await;
            }
            Read::Msg(ToRelay::WatchQueue) => match &login {
                Some(l) => {
                    let account = shared.logins.live_account(l).await?;
                    match Box::pin(help::watch(out, inp, shared, &account)).await? {
                        Some(request) => break Wanted::Request(request),
                        None => return Ok(()),
                    }
                }
                None => {
                    return Err(Refusal::new(
                        ErrorCode::NotLoggedIn,
                        "log in first: the queue is shown to logged-in technicians only",
                    ))
                }
            },
            Read::Msg(ToRelay::Login {
                name,
                password,
                one_time,
            }) => {
                let l = shared
                    .logins
                    .password_and_code(remote.ip(), name, password, one_time)
                    .await?;
                Windows::logged_in(conn);
                send(out, logged_in(&l, &shared.cfg)).await?;
                login = Some(l);
            }
            Read::Msg(ToRelay::Resume { token }) => {
                let l = shared.logins.resume(remote.ip(), token).await?;
                Windows::logged_in(conn);
                send(out, logged_in(&l, &shared.cfg)).await?;
                login = Some(l);
            }
            Read::Msg(ToRelay::Logout { token }) => {
                shared.logins.logout(remote.ip(), token.clone()).await?;
                if login.as_ref().is_some_and(|l| l.token == token) {
                    login = None;
                }
                send(out, FromRelay::LoggedOut).await?;
            }
            Read::Msg(ToRelay::FetchLog { log_id, offset }) => match &login {
                Some(l) => Box::pin(fetch_log(out, shared, l, log_id, offset)).await?,
                None => {
                    return Err(Refusal::new(
                        ErrorCode::NotLoggedIn,
                        "log in first: stored session logs go to logged-in accounts only",
                    ))
                }
            },
            Read::Msg(
                m @ (ToRelay::Checkpoint { .. }
                | ToRelay::UploadBegin { .. }
                | ToRelay::UploadChunk { .. }
                | ToRelay::UploadEnd { .. }),
            ) => match &login {
                Some(l) => Box::pin(log_message(out, shared, &l.account.name, m)).await?,
                None => {
                    return Err(Refusal::new(
                        ErrorCode::NotLoggedIn,
                        "log in first: session logs are taken from logged-in technicians only",
                    ))
                }
            },
            Read::Msg(other) => {
                return Err(Refusal::violation(format!(
                    "a technician sends login, resume, logout, session-log messages, join, \
                     watch queue, take or monitor after hello, not {}",
                    other
                )))
            }
            Read::Gone => return Ok(()),
        }
    };
    let now = Instant::now();
    let source = crate::limits::source_of(remote.ip());
    // Codes are guessed; taking from the queue needs no limit beyond the login's.
    let attempt = if matches!(wanted, Wanted::Code(_)) {
        shared
            .joins
            .lock()
            .expect("limiter lock")
            .attempt(&source, now)
    } else {
        Ok(())
    };
    if let Err(wait) = attempt {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
        return Err(Refusal::new(
            ErrorCode::RateLimited {
                retry_after_secs: secs,
            },
            format!("too many join attempts from {source}; try again in {secs} seconds"),
        ));
    }
    let Some(login) = login else {
        return Err(Refusal::new(
            ErrorCode::NotLoggedIn,
            "log in first: only technicians logged in to this relay may join (technician login --user NAME)",
        ));
    };
    // The token may have been revoked, or the account disabled, since the login.
    let account = shared.logins.may_join(&login).await?;
    info.account = Some(account.clone());
    let monitor = matches!(wanted, Wanted::Monitor(_));
    let (agent, what, request) = match wanted {
        Wanted::Code(code) => match lookup(shared, &code, now) {
            Ok(agent) => (agent, code.digits().to_string(), None),
            Err(here) if here.code == ErrorCode::UnknownCode && code.is_well_formed() => {
                return elsewhere(conn, out, shared, crate::cluster::code_key(&code), here).await
            }
            Err(here) => return Err(here),
        },
        Wanted::Request(request) => {
            if let Some(id) = request.filter(|id| !shared.help.holds_agent(*id)) {
                if let Some(to) = request_elsewhere(shared, id).await {
                    return redirect(conn, out, shared, to).await;
                }
            }
            let (entry, reach) = help::take(shared, &account.name, account.tier, request).await?;
            let agent = match reach {
                help::Reach::Waiting(agent) => agent,
                help::Reach::Elsewhere(to) => {
                    info!(peer = %remote, request = entry.id, relay = %to.name, "the oldest request's agent waits on another relay");
                    return redirect(conn, out, shared, to).await;
                }
                help::Reach::Live {
                    session,
                    invites,
                    joining,
                } => {
                    info!(peer = %remote, request = entry.id, %session, "joining the live session of an escalated request");
                    match invite(shared, invites, joining).await {
                        Ok(agent) => agent,
                        Err(refusal) => {
                            // Taken, but its agent cannot be reached: it waits again.
                            help::session_over(shared, entry.id, &account.name, None).await;
                            return Err(refusal);
                        }
                    }
                }
            };
            (agent, format!("request {}", entry.id), Some(entry))
        }
        Wanted::Monitor(session) => {
            let who = shared.logins.live_account(&login).await?;
            if shared.help.live_session(&session).is_none() {
                let s = session.clone();
                if let Some(Some(to)) = with_cluster(shared, move |c| c.find_session(&s)).await {
                    return redirect(conn, out, shared, to).await;
                }
            }
            (
                monitored(shared, &who, &session).await?,
                format!("monitor {session}"),
                None,
            )
        }
    };
    let request_id = request.as_ref().map(|r| r.id);
    let agent_info = agent.info.clone();
    let agent_conn = agent.conn.clone();
    let recording_required = shared.cfg.audit_key.is_some() && !shared.cfg.allow_no_record;
    let session = {
        let (technician, tier) = (account.name.clone(), account.tier);
        let (technician_addr, agent_addr) =
            (remote.to_string(), agent_conn.remote_address().to_string());
        let (software, digits) = (agent_info.software.clone(), what.clone());
        with_ledger(shared, move |l| {
            l.open_session(&Pairing {
                technician: &technician,
                tier,
                technician_addr,
                agent_addr,
                agent_software: &software,
                code_digits: &digits,
                recording_required,
            })
        })
        .await?
    };
    let (invites, invited) = mpsc::channel(INVITES_WAITING);
    if agent
        .pair
        .send(Partner {
            conn: conn.clone(),
            info,
            session: session.clone(),
            invites: invited,
        })
        .is_err()
    {
        close_in_ledger(shared, &session, "the agent left before the pairing".into()).await;
        if let Some(id) = request_id {
            help::session_over(shared, id, &account.name, None).await;
        }
        return Err(Refusal::new(
            ErrorCode::UnknownCode,
            "the agent with this code left just now; ask the user to start it again",
        ));
    }
    info!(peer = %remote, joined = %what, account = %account.name, tier = account.tier, %session, "technician joined");
    Windows::paired(conn);
    let counted = shared.help.session_begins(&account.name, account.tier);
    let started_at = crate::ledger::now_ms();
    let live = shared.help.live_begins(
        &session,
        help::Live {
            invites,
            technician: account.name.clone(),
            tier: account.tier,
            request: request_id,
            started_at,
            monitor,
        },
    );
    // The other relays' leads see it too (a lead's monitoring is not listed).
    let _listed = if monitor {
        None
    } else {
        let listed = LiveSession {
            session: session.clone(),
            technician: account.name.clone(),
            tier: account.tier,
            request: request_id,
            started_unix_ms: started_at,
        };
        Some(Held::live(shared, listed).await)
    };
    let ended = async {
        send(
            out,
            FromRelay::Paired {
                peer: agent_info,
                session: session.clone(),
                request,
            },
        )
        .await?;
        Box::pin(paired(
            conn,
            Role::Technician,
            &agent_conn,
            out,
            inp,
            shared,
            Side::Technician(Recorded {
                technician: &account.name,
                session: &session,
                required: recording_required,
                request: request_id,
            }),
        ))
        .await
    }
    .await;
    drop(live);
    drop(counted);
    let why = match &ended {
        Ok(words) => words.clone(),
        Err(r) => r.message.clone(),
    };
    if let Some(id) = request_id {
        // Ended on purpose by one of the two (a close with words), or lost.
        let on_purpose = |c: &Connection| {
            matches!(
                c.close_reason(),
                Some(ConnectionError::ApplicationClosed(_))
            )
        };
        let words = if on_purpose(conn) {
            Some("the technician ended the session without closing the request".to_string())
        } else if on_purpose(&agent_conn) {
            Some("the user ended the session".to_string())
        } else {
            None
        };
        help::session_over(shared, id, &account.name, words).await;
    }
    close_in_ledger(shared, &session, why).await;
    ended.map(|_| ())
}

/// Runs `f` on the ledger off the async threads; a failure is a refusal (the relay does not
/// run a session it cannot record in its ledger).
async fn with_ledger<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce(&Ledger) -> Result<T, crate::storage::DbError> + Send + 'static,
) -> Result<T, Refusal> {
    let ledger = shared.ledger.clone();
    tokio::task::spawn_blocking(move || f(&ledger.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("the ledger failed: {e}")))?
        .map_err(|e| {
            Metrics::add(&shared.metrics.database_errors, 1);
            warn!(error = %e, "the ledger of sessions");
            Refusal::new(
                ErrorCode::Internal,
                "the relay cannot write its ledger of sessions; try again later",
            )
        })
}

async fn close_in_ledger(shared: &Shared, session: &str, why: String) {
    let id = session.to_string();
    if let Err(r) = with_ledger(shared, move |l| l.close_session(&id, &why)).await {
        warn!(%session, reason = %r.message, "the session's end is not in the ledger");
    }
}

fn logged_in(l: &LoggedIn, cfg: &Config) -> FromRelay {
    FromRelay::LoggedIn {
        account: l.account.clone(),
        token: l.token.clone(),
        expires_in_secs: l.expires_in.as_secs(),
        recording: RecordingPolicy {
            audit_key: cfg.audit_key.clone(),
            optional: cfg.allow_no_record,
            clipboard_content: cfg.record_clipboard,
        },
    }
}

/// Runs `f` on the log archive off the async threads; its errors become refusals.
async fn with_logs<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce(&LogStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    let logs = shared.logs.clone();
    beside_logs(shared, move || f(&logs.lock().expect("log store lock"))).await
}

/// Runs `f`, a step of the log archive that needs no lock, off the async threads; its errors
/// become refusals, counted as [`with_logs`] counts them.
async fn beside_logs<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("the log archive failed: {e}")))?
        .map_err(|e| {
            match e {
                StoreError::Database(_) => Metrics::add(&shared.metrics.database_errors, 1),
                StoreError::Io(_) | StoreError::Storage(_) => {
                    Metrics::add(&shared.metrics.storage_errors, 1)
                }
                _ => {}
            }
            let code = match e {
                StoreError::Quota { .. } => ErrorCode::QuotaExceeded,
                _ => ErrorCode::LogRefused,
            };
            Refusal::new(code, e.to_string())
        })
}

/// Sends stored log `log_id` from `offset` to `login`, if it may have it: the technician who
/// recorded it, or an auditor or administrator.
async fn fetch_log(
    out: &mut FramedSend<FromRelay>,
    shared: &Shared,
    login: &LoggedIn,
    log_id: String,
    offset: u64,
) -> Result<(), Refusal> {
    let who = shared.logins.live_account(login).await?;
    let id = log_id.clone();
    let (log, held, seal) = with_logs(shared, move |s| {
        // The seal goes last, unless a stored checkpoint is of the same record.
        let seal = match s.seal(&id)? {
            Some(c) if !s.has_checkpoint(&id, c.index)? => Some(c),
            _ => None,
        };
        Ok((s.get(&id)?, s.checkpoint_count(&id)?, seal))
    })
    .await?;
    let refused = |m: String| Err(Refusal::new(ErrorCode::LogRefused, m));
    let Some(log) = log else {
        return refused(format!("no session log {log_id} is stored here"));
    };
    let privileged = matches!(who.role, AccountRole::Auditor | AccountRole::Admin);
    if !privileged && log.technician != who.name {
        info!(account = %who.name, log = %log_id, "log fetch refused");
        return Err(Refusal::new(
            ErrorCode::NotPermitted,
            format!(
                "session log {log_id} was recorded by another technician; only they, auditors and \
                 administrators may fetch it"
            ),
        ));
    }
    if !log.complete {
        return refused(format!(
            "session log {log_id} is still being uploaded ({} of {} bytes)",
            log.received, log.offer.size
        ));
    }
    if offset > log.offer.size {
        return refused(format!(
            "session log {log_id} has {} bytes, not {offset}",
            log.offer.size
        ));
    }
    info!(account = %who.name, role = %who.role, log = %log_id, "log fetched");
    // The checkpoints go a batch at a time from the index, the seal's last.
    let total = held + u64::from(seal.is_some());
    send(
        out,
        FromRelay::LogFound {
            log: log.offer.clone(),
            technician: log.technician.clone(),
            checkpoints: u32::try_from(total).unwrap_or(u32::MAX),
        },
    )
    .await?;
    let batch_len = protocol::control::CHECKPOINT_BATCH;
    let mut seal = seal;
    let mut after = None;
    // A short page is the last: the seal fits after it (an empty page when the one before was
    // full).
    loop {
        let id = log_id.clone();
        let mut batch = with_logs(shared, move |s| {
            s.checkpoints_page(&id, after, batch_len as u32)
        })
        .await?;
        let last_page = batch.len() < batch_len;
        after = batch.last().map(|c| c.index);
        if last_page {
            batch.extend(seal.take());
        }
        if !batch.is_empty() {
            send(out, FromRelay::LogCheckpoints { checkpoints: batch }).await?;
        }
        if last_page {
            break;
        }
    }
    // One read of the stored bytes, streamed a chunk at a time off the store's lock.
    let id = log_id.clone();
    let mut reader = Some(with_logs(shared, move |s| s.reader(&id, offset)).await?);
    let mut at = offset;
    while at < log.offer.size {
        let mut r = reader.take().expect("put back after each chunk");
        let (r, data) = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(protocol::control::UPLOAD_CHUNK);
            let read = (&mut r)
                .take(protocol::control::UPLOAD_CHUNK as u64)
                .read_to_end(&mut buf)
                .map(|_| buf);
            (r, read)
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("the log archive failed: {e}")))?;
        reader = Some(r);
        let data = data.map_err(|e| {
            Metrics::add(&shared.metrics.storage_errors, 1);
            Refusal::new(
                ErrorCode::LogRefused,
                format!("session log {log_id} cannot be read: {e}"),
            )
        })?;
        if data.is_empty() {
            return refused(format!(
                "session log {log_id} is shorter than its index says"
            ));
        }
        let n = data.len() as u64;
        send(out, FromRelay::LogChunk { offset: at, data }).await?;
        at += n;
    }
    Ok(())
}

/// A session-log message from the logged-in technician `name`: stored, and answered where
/// the protocol says so.
async fn log_message(
    out: &mut FramedSend<FromRelay>,
    shared: &Shared,
    name: &str,
    msg: ToRelay,
) -> Result<(), Refusal> {
    if shared.cfg.audit_key.is_none() {
        return Err(Refusal::new(
            ErrorCode::LogRefused,
            "this relay does not store session logs (it has no audit_key); keep them locally",
        ));
    }
    let name = name.to_string();
    match msg {
        ToRelay::Checkpoint { log_id, checkpoint } => {
            with_logs(shared, move |s| s.checkpoint(&name, &log_id, &checkpoint)).await
        }
        ToRelay::UploadBegin { offer } => {
            let log_id = offer.id.clone();
            let offset = with_logs(shared, move |s| s.begin(&name, &offer)).await?;
            send(out, FromRelay::UploadAt { log_id, offset }).await
        }
        ToRelay::UploadChunk {
            log_id,
            offset,
            data,
        } => {
            let n = data.len() as u64;
            let appending =
                with_logs(shared, move |s| s.appending(&name, &log_id, offset, n)).await?;
            // Off the store's lock: a chunk that completes a part sends it to S3.
            beside_logs(shared, move || appending.write(&data)).await?;
            Metrics::add(&shared.metrics.upload_bytes, n);
            Ok(())
        }
        ToRelay::UploadEnd { log_id } => {
            let id = log_id.clone();
            let log = match with_logs(shared, move |s| s.finishing(&name, &id)).await? {
                Ok(log) => log,
                Err(finishing) => {
                    // Syncing and hashing gigabytes takes seconds: not under the store's lock.
                    let (finishing, sealed) = tokio::task::spawn_blocking(move || {
                        let sealed = finishing.seal();
                        (finishing, sealed)
                    })
                    .await
                    .map_err(|e| {
                        Refusal::new(ErrorCode::Internal, format!("the log archive failed: {e}"))
                    })?;
                    with_logs(shared, move |s| s.finished(finishing, sealed)).await?
                }
            };
            Metrics::add(&shared.metrics.logs_stored, 1);
            info!(log = %log.offer.id, technician = %log.technician, bytes = log.offer.size, "session log stored");
            send(out, FromRelay::UploadStored { log_id }).await
        }
        other => Err(Refusal::violation(format!(
            "{other} is not a session-log message"
        ))),
    }
}

/// Runs `f` on this relay's place in its cluster off the async threads, when it is in one; a
/// failure is logged (the relay goes on serving its own agents) and gives `None`.
async fn with_cluster<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce(&Cluster) -> Result<T, crate::storage::DbError> + Send + 'static,
) -> Option<T> {
    let cluster = shared.cluster.clone()?;
    let done = tokio::task::spawn_blocking(move || f(&cluster.lock().expect("cluster lock"))).await;
    match done {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            warn!(error = %e, "the cluster's rows in the database cannot be used");
            Metrics::add(&shared.metrics.database_errors, 1);
            None
        }
        Err(e) => {
            warn!(error = %e, "the cluster's task failed");
            None
        }
    }
}

/// The other relay of the cluster that holds the agent of request `id`, waiting or in a
/// session there.
async fn request_elsewhere(shared: &Shared, id: u64) -> Option<protocol::control::RelayPointer> {
    let mut elsewhere = with_cluster(shared, Cluster::elsewhere).await?;
    elsewhere.requests.remove(&id)
}

/// Where the agent of `what` (a code's or a request's key) is among the relays of the cluster.
async fn find(shared: &Shared, what: String) -> Option<Whereabouts> {
    with_cluster(shared, move |c| c.find(&what)).await
}

/// What this relay records for the other relays of its cluster (an agent it holds, a session
/// it runs) until the guard is dropped; or, when the relay is stopping, until it expires or
/// the relay is struck off (so that a technician asking another relay for it is told this one
/// is gone).
struct Held {
    cluster: Option<Arc<Mutex<Cluster>>>,
    undo: Option<Undo>,
    shutdown: watch::Receiver<bool>,
}

/// How a [`Held`] takes back what it recorded.
type Undo = Box<dyn FnOnce(&Cluster) -> Result<(), crate::storage::DbError> + Send>;

impl Held {
    /// Records that this relay holds the agent of `what` on `conn` until `until_ms`.
    async fn new(shared: &Shared, what: String, conn: &Connection, until_ms: u64) -> Self {
        let holder = conn.stable_id().to_string();
        let (w, h) = (what.clone(), holder.clone());
        with_cluster(shared, move |c| c.hold(&w, &h, until_ms)).await;
        Self::until_dropped(shared, Box::new(move |c| c.release(&what, &holder)))
    }

    /// Records that session `live` runs on this relay, for the other relays' leads.
    async fn live(shared: &Shared, live: LiveSession) -> Self {
        let session = live.session.clone();
        with_cluster(shared, move |c| c.live(&live)).await;
        Self::until_dropped(shared, Box::new(move |c| c.not_live(&session)))
    }

    fn until_dropped(shared: &Shared, undo: Undo) -> Self {
        Self {
            cluster: shared.cluster.clone(),
            undo: Some(undo),
            shutdown: shared.shutdown.clone(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(cluster), Some(undo)) = (self.cluster.take(), self.undo.take()) else {
            return;
        };
        if *self.shutdown.borrow() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                if let Err(e) = undo(&cluster.lock().expect("cluster lock")) {
                    warn!(error = %e, "the cluster's rows in the database cannot be used");
                }
            });
        }
    }
}

/// A code or request this relay does not hold (`here` says why): a technician is sent to the
/// relay of the cluster that holds its agent, told when that relay is gone, or refused as
/// `here` says.
async fn elsewhere(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    shared: &Shared,
    what: String,
    here: Refusal,
) -> Result<(), Refusal> {
    match find(shared, what).await {
        Some(Whereabouts::At(to)) => redirect(conn, out, shared, to).await,
        Some(Whereabouts::Gone { relay }) => Err(Refusal::new(
            ErrorCode::RelayGone,
            format!(
                "the user's agent waits on relay {relay} of this organisation, which is gone \
                 (stopped, or not heard from); ask the user to start the agent again for a new \
                 code"
            ),
        )),
        _ => Err(here),
    }
}

/// Tells the technician to go to relay `to` (waiting, briefly, for the words to be delivered)
/// and closes the connection.
async fn redirect(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    shared: &Shared,
    to: protocol::control::RelayPointer,
) -> Result<(), Refusal> {
    info!(peer = %conn.remote_address(), relay = %to.name, addr = %to.addr, "sent to another relay of the cluster");
    Metrics::add(&shared.metrics.redirects, 1);
    let delivered = async {
        out.send(&FromRelay::Redirect { to }).await.ok()?;
        out.finish().ok()?;
        out.stream_mut().stopped().await.ok()
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), delivered).await;
    conn.close(
        VarInt::from_u32(close_code::DONE),
        b"the session is on another relay",
    );
    Ok(())
}

fn lookup(shared: &Shared, code: &SessionCode, now: Instant) -> Result<WaitingAgent, Refusal> {
    if !code.is_well_formed() {
        return Err(Refusal::new(
            ErrorCode::UnknownCode,
            "a session code is nine or more digits",
        ));
    }
    let joined = shared
        .rendezvous
        .lock()
        .expect("rendezvous lock")
        .join(code, now);
    joined.map_err(|e| {
        let code = match e {
            JoinError::Unknown | JoinError::Withdrawn { .. } => ErrorCode::UnknownCode,
            JoinError::Expired { .. } => ErrorCode::ExpiredCode,
            JoinError::Used { .. } => ErrorCode::UsedCode,
        };
        Refusal::new(code, e.to_string())
    })
}

/// Invites for one live session that may wait for its agent at once (technicians racing to join
/// it beyond this are refused; each invite is answered within [`protocol::control::ATTACH_SECS`]).
const INVITES_WAITING: usize = 4;

/// The agent of live session `session`, attached for lead `who` to monitor it: leads and
/// administrators may monitor the sessions of their tier and below.
async fn monitored(
    shared: &Shared,
    who: &crate::accounts::Technician,
    session: &str,
) -> Result<WaitingAgent, Refusal> {
    if !who.role.sees_dashboard() {
        return Err(Refusal::new(
            ErrorCode::NotPermitted,
            format!(
                "the account {} has the role {}; only leads and administrators monitor sessions",
                who.name, who.role
            ),
        ));
    }
    let unknown = || {
        Refusal::new(
            ErrorCode::UnknownSession,
            format!("no session {session} runs on this relay now"),
        )
    };
    let (invites, tier, monitoring) = shared.help.live_session(session).ok_or_else(unknown)?;
    if monitoring {
        return Err(unknown());
    }
    if tier > who.tier {
        return Err(Refusal::new(
            ErrorCode::NotPermitted,
            format!(
                "session {session} is a tier {tier} technician's; {} (tier {}) monitors sessions \
                 of tiers up to {}",
                who.name, who.tier, who.tier
            ),
        ));
    }
    info!(lead = %who.name, %session, "monitoring a session");
    invite(shared, invites, protocol::control::Joining::Monitor).await
}

/// What a technician asks to be paired with: the agent of a code, or of a help request (`None`:
/// the oldest it may take).
enum Wanted {
    Code(SessionCode),
    Request(Option<u64>),
    /// A lead joins a live session, named by its ledger identifier.
    Monitor(String),
}

/// What ended a paired session, from one side's view.
enum End {
    OwnGone,
    OtherGone(PeerLeftReason),
    Refused(Refusal),
}

/// The technician's side of a paired session: whose it is, its ledger row, and whether the
/// relay's policy requires it to be recorded.
struct Recorded<'a> {
    technician: &'a str,
    session: &'a str,
    required: bool,
    /// The help request the session is for, which the technician may pass on or close.
    request: Option<u64>,
}

/// Which end of a paired session a task serves, with what only that end has.
enum Side<'a> {
    /// The agent's: invites to pass on for technicians waiting to join its live session.
    Agent(mpsc::Receiver<help::Invite>),
    Technician(Recorded<'a>),
}

/// The next invite for the agent, if it has a live session whose technicians can still invite
/// (else pending for ever).
async fn next_invite(invites: &mut Option<mpsc::Receiver<help::Invite>>) -> Option<help::Invite> {
    match invites.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Forwards `own`'s peer plane to `other` until one of them ends, then tells `own`'s peer.
/// `Ok` says in words how it ended. On the technician's side, checkpoints of its session log
/// are taken, and where the recording is required a session without one for
/// [`CHECKPOINT_DEADLINE`] is ended. On the agent's side, invites of further technicians are
/// passed on.
async fn paired(
    own: &Connection,
    role: Role,
    other: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    side: Side<'_>,
) -> Result<String, Refusal> {
    let (recorded, mut invites) = match side {
        Side::Agent(invites) => (None, Some(invites)),
        Side::Technician(recorded) => {
            Metrics::add(&shared.metrics.sessions_paired, 1);
            (Some(recorded), None)
        }
    };
    // Where the two ends may resume the session should this relay go (and again whenever
    // the cluster changes).
    let mut peers = shared.peers.subscribe();
    let told = peers.borrow_and_update().clone();
    if !told.is_empty() {
        send(out, FromRelay::ResumeThrough { relays: told }).await?;
    }
    let mut tasks = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    let required = recorded.as_ref().is_some_and(|r| r.required);
    let mut deadline = tokio::time::Instant::now() + CHECKPOINT_DEADLINE;
    // A silence shorter than the idle timeout is worth telling: the session outlives it.
    let watch_silence = shared.cfg.idle_timeout > link::silence::QUIET_AFTER;
    let mut silence = link::silence::Silence::new(other);
    let mut silence_check = link::silence::ticker();
    let end = {
        let forwarding =
            forward::forward_from(own, other, role, &shared.tap, &shared.metrics, &mut tasks);
        tokio::pin!(forwarding);
        loop {
            break tokio::select! {
                _ = &mut forwarding => End::OwnGone,
                why = other.closed() => End::OtherGone(left_reason(why)),
                r = read(inp) => match (r, &recorded) {
                    (Ok(Read::Gone), _) => End::OwnGone,
                    // A technician's session log reports how far it has got while the session
                    // runs, under the session's own identifier.
                    (Ok(Read::Msg(ToRelay::Checkpoint { log_id, .. })), Some(rec)) if log_id != rec.session => {
                        End::Refused(Refusal::new(
                            ErrorCode::LogRefused,
                            format!("checkpoints of this session go under its identifier {}, not {log_id}", rec.session),
                        ))
                    }
                    (Ok(Read::Msg(m @ ToRelay::Checkpoint { .. })), Some(rec)) => {
                        // Boxed: a checkpoint is brief, the wait for the next one is not.
                        match Box::pin(log_message(out, shared, rec.technician, m)).await {
                            Ok(()) => {
                                deadline = tokio::time::Instant::now() + CHECKPOINT_DEADLINE;
                                continue;
                            }
                            Err(refusal) => End::Refused(refusal),
                        }
                    }
                    (Ok(Read::Msg(m @ (ToRelay::Escalate { .. } | ToRelay::Hold { .. } | ToRelay::Resolve { .. }))), Some(rec)) => {
                        let answer = match rec.request {
                            Some(id) => Box::pin(help::pass_on(shared, id, rec.technician, rec.session, m)).await,
                            None => Err(Refusal::new(ErrorCode::NotPermitted, "this session is not from a help request: there is nothing to escalate, hold or close")),
                        };
                        // A refusal here is an answer: the session goes on.
                        let reply = match answer {
                            Ok(words) => FromRelay::RequestPassed { words },
                            Err(r) => FromRelay::Error { code: r.code, message: r.message },
                        };
                        match send(out, reply).await {
                            Ok(()) => continue,
                            Err(refusal) => End::Refused(refusal),
                        }
                    }
                    (Ok(Read::Msg(m)), _) => End::Refused(Refusal::violation(format!(
                        "{} is not allowed once paired", m
                    ))),
                    (Err(refusal), _) => End::Refused(refusal),
                },
                _ = tokio::time::sleep_until(deadline), if required => End::Refused(Refusal::new(
                    ErrorCode::RecordingMissing,
                    format!(
                        "this relay requires every session to be recorded, and the technician's \
                         client sent no checkpoint of its session log for {} seconds",
                        CHECKPOINT_DEADLINE.as_secs()
                    ),
                )),
                _ = silence_check.tick(), if watch_silence => match silence.check(other).map(partner_news) {
                    Some(news) => match send(out, news).await {
                        Ok(()) => continue,
                        Err(refusal) => End::Refused(refusal),
                    },
                    None => continue,
                },
                invite = next_invite(&mut invites) => match invite {
                    Some(help::Invite { ticket, joining }) => match send(out, FromRelay::Invite { ticket, joining }).await {
                        Ok(()) => continue,
                        Err(refusal) => End::Refused(refusal),
                    },
                    // The technician's side is over: no one invites through it any more.
                    None => {
                        invites = None;
                        continue;
                    }
                },
                Ok(()) = peers.changed() => {
                    let relays = peers.borrow_and_update().clone();
                    match send(out, FromRelay::ResumeThrough { relays }).await {
                        Ok(()) => continue,
                        Err(refusal) => End::Refused(refusal),
                    }
                }
                _ = shutdown.changed() => End::Refused(Refusal::new(ErrorCode::ShuttingDown, "the relay is shutting down")),
            };
        }
    };
    match end {
        End::OwnGone => Ok(format!("the {role} left")),
        End::Refused(r) => Err(r),
        // The relay closed the other connection because it is shutting down: that is the news
        // for this peer too, whichever of the two this task noticed first.
        End::OtherGone(_) if *shared.shutdown.borrow() => Err(Refusal::new(
            ErrorCode::ShuttingDown,
            "the relay is shutting down",
        )),
        End::OtherGone(reason) => {
            info!(peer = %own.remote_address(), %reason, "telling the peer its partner left");
            let words = format!("the other side left: {reason}");
            // The explanation goes out before the cut streams are reset.
            let _ = out.send(&FromRelay::PeerLeft { reason }).await;
            drop(tasks);
            let _ = out.finish();
            if tokio::time::timeout(LEAVE_GRACE, own.closed())
                .await
                .is_err()
            {
                own.close(
                    VarInt::from_u32(close_code::PEER_LEFT),
                    b"the other side left",
                );
            }
            Ok(words)
        }
    }
}

/// What a peer is told of its partner's silence.
fn partner_news(change: link::silence::Change) -> FromRelay {
    match change {
        link::silence::Change::Quiet(silent) => FromRelay::PeerQuiet {
            silent_ms: silent.as_millis().min(u128::from(u32::MAX)) as u32,
        },
        link::silence::Change::Back => FromRelay::PeerBack,
    }
}

fn left_reason(e: ConnectionError) -> PeerLeftReason {
    match e {
        ConnectionError::ApplicationClosed(c) => PeerLeftReason::Closed {
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        },
        ConnectionError::TimedOut | ConnectionError::Reset => PeerLeftReason::ConnectionLost,
        ConnectionError::LocallyClosed => PeerLeftReason::Disconnected {
            reason: "the relay closed its connection".into(),
        },
        other => {
            warn!(error = %other, "peer connection failed");
            PeerLeftReason::Disconnected {
                reason: other.to_string(),
            }
        }
    }
}

/// What the admin listener reports of this relay.
struct Figures(Arc<Shared>);

impl crate::admin::Figures for Figures {
    fn metrics(&self) -> String {
        let s = &self.0;
        let desk = s.help.gauges();
        let gauges = crate::metrics::Gauges {
            connections: s.conns.open() as u64,
            sessions: desk.sessions,
            waiting_codes: s
                .rendezvous
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .waiting_count() as u64,
            queue: desk.queue,
            watchers: desk.watchers,
            other_database_errors: s.logins.database_errors() + desk.journal_errors,
        };
        crate::metrics::render(&s.metrics, &gauges)
    }

    fn health(&self) -> Result<String, String> {
        if *self.0.shutdown.borrow() {
            return Err("shutting down".into());
        }
        Ok(format!("serving: {} connections", self.0.conns.open()))
    }
}
