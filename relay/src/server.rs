//! The QUIC endpoint and the control plane of every connection.
//!
//! Each connection gets a task. It reads the hello, then either registers an agent (which waits
//! for a technician, its code's expiry, or its own departure) or joins a technician to a waiting
//! agent. Once paired, each side's task forwards what its peer opens toward the other peer
//! ([`crate::forward`]) and watches the other connection: when that one ends, it tells its own
//! peer at once on the control stream. A peer that breaks the protocol is sent an error and
//! disconnected with a reason; nothing it sends can stop the relay or another session.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use link::channel::{ChannelError, FramedRecv, FramedSend};
use protocol::control::{
    close_code, peek_hello_version, ErrorCode, FromRelay, PeerInfo, PeerLeftReason, Role,
    SessionCode, ToRelay,
};
use protocol::framing::FrameError;
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use rand::TryRngCore;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::forward::{self, SharedTap};
use crate::identity::Identity;
use crate::ratelimit::RateLimiter;
use crate::rendezvous::{JoinError, Rendezvous};

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer that was told its partner left may take to close before the relay closes it.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// How often expired codes and idle rate-limit entries are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

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
}

struct Shared {
    cfg: Config,
    rendezvous: Mutex<Rendezvous<WaitingAgent>>,
    joins: Mutex<RateLimiter<IpAddr>>,
    shutdown: watch::Receiver<bool>,
    tap: SharedTap,
}

/// A running relay endpoint.
pub struct Relay {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
}

/// Why the relay ends a connection: an error message for the peer, and the close code.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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

impl Relay {
    /// Binds the endpoint with `identity`.
    pub fn bind(cfg: Config, identity: &Identity) -> anyhow::Result<Self> {
        Self::bind_with_tap(cfg, identity, None)
    }

    /// As [`Relay::bind`], with a [`forward::Tap`] on the peer plane of every session (for tests
    /// that play a hostile relay).
    pub fn bind_with_tap(cfg: Config, identity: &Identity, tap: SharedTap) -> anyhow::Result<Self> {
        let tls = link::tls::server_config(identity.cert_der.clone(), identity.key_der.clone())
            .context("the relay's certificate is not usable")?;
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .context("the TLS configuration does not suit QUIC")?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(link::transport::transport_config(
            cfg.idle_timeout,
            cfg.keep_alive,
        ));
        let endpoint = link::transport::endpoint(cfg.listen, Some(server)).with_context(|| {
            format!(
                "cannot listen on {} (UDP): another relay may be running there; choose another address with --listen",
                cfg.listen
            )
        })?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            rendezvous: Mutex::new(Rendezvous::new(cfg.code_ttl)),
            joins: Mutex::new(RateLimiter::new(cfg.join_attempts, cfg.join_window)),
            shutdown,
            cfg,
            tap,
        });
        Ok(Self {
            endpoint,
            shared,
            shutdown_tx,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serves until `stop` completes, then tells every peer the relay is shutting down and
    /// closes.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut conns = JoinSet::new();
        let mut purge = tokio::time::interval(PURGE_INTERVAL);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let shared = self.shared.clone();
                    conns.spawn(async move {
                        let remote = incoming.remote_address();
                        match incoming.await {
                            Ok(conn) => serve(conn, shared).await,
                            Err(e) => debug!(peer = %remote, error = %e, "handshake failed"),
                        }
                    });
                }
                _ = purge.tick() => {
                    let now = Instant::now();
                    self.shared.rendezvous.lock().expect("rendezvous lock").purge(now);
                    self.shared.joins.lock().expect("limiter lock").purge(now);
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        info!(connections = conns.len(), "shutting down");
        let _ = self.shutdown_tx.send(true);
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

/// One connection, start to end.
async fn serve(conn: Connection, shared: Arc<Shared>) {
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
        refuse(&conn, &mut out, refusal).await;
    }
}

/// Sends the refusal as an error message, waits (briefly) for it to be delivered, and closes.
async fn refuse(conn: &Connection, out: &mut FramedSend<FromRelay>, refusal: Refusal) {
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
    let frame = match inp.recv_frame().await {
        Ok(Some(f)) => f.to_vec(),
        Ok(None) => return Ok(()),
        Err(e) => return refusal_for(e).map_or(Ok(()), Err),
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
                name(&other)
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
    let info = PeerInfo {
        role,
        description: format!("{role} at {remote}"),
        software,
    };
    debug!(peer = %remote, %role, "hello");
    match role {
        Role::Agent => agent(conn, out, inp, shared, info).await,
        Role::Technician => technician(conn, out, inp, shared, info).await,
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

fn name(msg: &ToRelay) -> &'static str {
    match msg {
        ToRelay::Hello { .. } => "hello",
        ToRelay::Register => "register",
        ToRelay::Join { .. } => "join",
    }
}

async fn send(out: &mut FramedSend<FromRelay>, msg: FromRelay) -> Result<(), Refusal> {
    // A failed write means the peer is gone; the refusal that follows goes nowhere, harmlessly.
    out.send(&msg).await.map_err(|e| {
        Refusal::new(
            ErrorCode::Internal,
            format!("cannot write to the peer: {e}"),
        )
    })
}

async fn agent(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    info: PeerInfo,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    match read(inp).await? {
        Read::Msg(ToRelay::Register) => {}
        Read::Msg(other) => {
            return Err(Refusal::violation(format!(
                "an agent sends register after hello, not {}",
                name(&other)
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
    let (code, expires_at) = {
        let mut rng = rand::rngs::OsRng.unwrap_err();
        shared.rendezvous.lock().expect("rendezvous lock").register(
            waiting,
            Instant::now(),
            &mut rng,
        )
    };
    info!(peer = %remote, code = %code, "agent registered");
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
                        "{} is not allowed while waiting for a technician", name(&m)
                    ))),
                };
            }
            _ = shutdown.changed() => {
                withdraw();
                return Err(Refusal::new(ErrorCode::ShuttingDown, "the relay is shutting down"));
            }
        }
    };
    info!(peer = %remote, code = %code, technician = %partner.info.description, "paired");
    send(out, FromRelay::Paired { peer: partner.info }).await?;
    paired(conn, Role::Agent, &partner.conn, out, inp, shared).await
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
    info: PeerInfo,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    let code = match read(inp).await? {
        Read::Msg(ToRelay::Join { code }) => code,
        Read::Msg(other) => {
            return Err(Refusal::violation(format!(
                "a technician sends join after hello, not {}",
                name(&other)
            )))
        }
        Read::Gone => return Ok(()),
    };
    let now = Instant::now();
    if let Err(wait) = shared
        .joins
        .lock()
        .expect("limiter lock")
        .attempt(&remote.ip(), now)
    {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
        return Err(Refusal::new(
            ErrorCode::RateLimited {
                retry_after_secs: secs,
            },
            format!(
                "too many join attempts from {}; try again in {secs} seconds",
                remote.ip()
            ),
        ));
    }
    let agent = lookup(shared, &code, now)?;
    let agent_info = agent.info.clone();
    let agent_conn = agent.conn.clone();
    if agent
        .pair
        .send(Partner {
            conn: conn.clone(),
            info,
        })
        .is_err()
    {
        return Err(Refusal::new(
            ErrorCode::UnknownCode,
            "the agent with this code left just now; ask the user to start it again",
        ));
    }
    info!(peer = %remote, code = %code, "technician joined");
    send(out, FromRelay::Paired { peer: agent_info }).await?;
    paired(conn, Role::Technician, &agent_conn, out, inp, shared).await
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

/// What ended a paired session, from one side's view.
enum End {
    OwnGone,
    OtherGone(PeerLeftReason),
    Refused(Refusal),
}

/// Forwards `own`'s peer plane to `other` until one of them ends, then tells `own`'s peer.
async fn paired(
    own: &Connection,
    role: Role,
    other: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
) -> Result<(), Refusal> {
    let mut tasks = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    let end = tokio::select! {
        _ = forward::forward_from(own, other, role, &shared.tap, &mut tasks) => End::OwnGone,
        why = other.closed() => End::OtherGone(left_reason(why)),
        r = read(inp) => match r {
            Ok(Read::Gone) => End::OwnGone,
            Ok(Read::Msg(m)) => End::Refused(Refusal::violation(format!(
                "{} is not allowed once paired", name(&m)
            ))),
            Err(refusal) => End::Refused(refusal),
        },
        _ = shutdown.changed() => End::Refused(Refusal::new(ErrorCode::ShuttingDown, "the relay is shutting down")),
    };
    match end {
        End::OwnGone => Ok(()),
        End::Refused(r) => Err(r),
        // The relay closed the other connection because it is shutting down: that is the news
        // for this peer too, whichever of the two this task noticed first.
        End::OtherGone(_) if *shared.shutdown.borrow() => Err(Refusal::new(
            ErrorCode::ShuttingDown,
            "the relay is shutting down",
        )),
        End::OtherGone(reason) => {
            info!(peer = %own.remote_address(), %reason, "telling the peer its partner left");
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
            Ok(())
        }
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
