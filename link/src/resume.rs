//! Resuming a live session when its relay connection dies: the same two ends, keys and
//! consent, on a new connection (to the relay restarted in place, or another relay the end was
//! given).
//!
//! Each end keeps its session and calls [`Resume::run`]: it connects again, logs in (the
//! technician, with its token), and asks the relay to pair it under the ticket both ends
//! derive from the session's keys ([`protocol::e2e::ResumeSecret`]). Once paired, the agent
//! opens a new session stream and the two prove to each other that they hold the resume
//! secret ([`agent_exchange`], [`technician_exchange`]); the leg then runs under fresh keys
//! from the secret and both challenges. A proof that fails ends the attempt for good; a relay
//! that cannot be reached, or an other end not there yet, is tried again until [`Resume::limit`]
//! has passed since the link died.

use std::time::Duration;

use protocol::control::Role;
use protocol::e2e::resume::{challenge, RESUME_MAX_FRAME};
use protocol::e2e::{Challenges, ResumeMessage, ResumeSecret};
use protocol::framing::FrameReader;
use protocol::wire;
use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::time::Instant;

use crate::client::{LinkError, Redial, RelayConnection};
use crate::sealed::{PeerPlaneError, SealedRecv, SealedSend, SealedSession, SEALED_MAX_FRAME};

/// How long a session waits for its link to come back before it ends, by default.
pub const RESUME_LIMIT: Duration = Duration::from_secs(30);

/// Silence of the relay after which the link counts as dead, and the session resumes. A relay
/// restarted in place answers the old connection's larger packets with a stateless reset at
/// once, but keep-alives are too small to draw one, and a relay gone answers nothing: hearing
/// nothing for this long (keep-alives go out every 150 ms, and the relay answers each) is the
/// sign that does not wait for the connection's idle timeout.
pub const LOST_AFTER: Duration = Duration::from_millis(1500);

/// With several relays to try: how long an end waits at one for the other end before it tries
/// the next (the other may have found this one down a moment before and gone on).
const WAIT_AT_ONE: Duration = Duration::from_secs(4);

/// Another relay of the organisation to resume through, as given: `FINGERPRINT@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRelay {
    pub addr: std::net::SocketAddr,
    pub fingerprint: crate::tls::Fingerprint,
}

impl std::str::FromStr for OtherRelay {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (fp, addr) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("`{s}` is not FINGERPRINT@HOST:PORT"))?;
        Ok(Self {
            addr: addr
                .parse()
                .map_err(|e| format!("`{addr}` is not HOST:PORT: {e}"))?,
            fingerprint: fp
                .parse()
                .map_err(|_| format!("`{fp}` is not a relay's fingerprint"))?,
        })
    }
}

/// The relays to resume through: the one the session was on (`first`), then `others` in the
/// order given (both ends given the same order meet at the first that is up).
pub fn relays(first: Redial, others: &[OtherRelay]) -> Vec<Redial> {
    let mut all = vec![first];
    for o in others {
        match Redial::to(o.addr, o.fingerprint) {
            Ok(r) => all.push(r),
            Err(e) => {
                tracing::warn!(relay = %o.addr, error = %e, "cannot resume through this relay")
            }
        }
    }
    all
}

/// Pause between two attempts to reach a relay.
const ATTEMPT_EVERY: Duration = Duration::from_millis(200);

/// Longest one connection attempt may take (a relay that does not answer is tried again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the proofs may take once both ends are paired.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `connection` ended in a way a resume can mend: lost (nothing heard until the idle
/// timeout), reset (a relay restarted in place answers the old connection's packets with a
/// stateless reset), or the relay shutting down. A close by either end of the session, or a
/// refusal, is no such thing.
pub fn resumable(connection: &Connection) -> bool {
    match connection.close_reason() {
        Some(ConnectionError::TimedOut | ConnectionError::Reset) => true,
        Some(ConnectionError::ApplicationClosed(c)) => {
            c.error_code.into_inner() == u64::from(protocol::control::close_code::SHUTTING_DOWN)
        }
        _ => false,
    }
}

/// What an end needs to resume its session.
pub struct Resume {
    pub role: Role,
    /// The relays to try, in turn: the one the session was on first.
    pub relays: Vec<Redial>,
    pub secret: ResumeSecret,
    /// The session's identifier in the relay's ledger.
    pub session: String,
    /// The technician's login token (an agent has none).
    pub token: Option<String>,
    /// How long after the link died to keep trying.
    pub limit: Duration,
}

/// Why a session could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeFailed {
    #[error("the connection did not come back within {} s ({last})", .limit.as_secs())]
    TimedOut { limit: Duration, last: String },
    #[error("{0}")]
    Refused(PeerPlaneError),
}

/// Ends `connection` as dead after [`LOST_AFTER`] of silence; the words say why.
pub fn give_up(connection: &Connection, silent: Duration) -> String {
    connection.close(quinn::VarInt::from_u32(0), b"nothing heard from the relay");
    format!(
        "nothing heard from the relay for {:.1} s",
        silent.as_secs_f64()
    )
}

/// A resumed leg: its connection and its sealed session stream.
pub struct Resumed {
    pub conn: RelayConnection,
    pub session: SealedSession,
}

impl Resume {
    /// Tries the relays in turn until the session is resumed or [`Resume::limit`] has passed
    /// since `lost_at`.
    pub async fn run(&self, lost_at: Instant) -> Result<Resumed, ResumeFailed> {
        let deadline = lost_at + self.limit;
        let mut last = String::from("no relay was tried");
        let mut turn = 0usize;
        while Instant::now() < deadline && !self.relays.is_empty() {
            let relay = &self.relays[turn % self.relays.len()];
            turn += 1;
            match tokio::time::timeout_at(deadline, self.attempt(relay)).await {
                Ok(Ok(resumed)) => return Ok(resumed),
                Ok(Err(LinkError::PeerPlane(e))) if e.is_violation() => {
                    return Err(ResumeFailed::Refused(e))
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "resume attempt failed");
                    last = e.to_string();
                }
                Err(_) => break,
            }
            tokio::time::sleep(ATTEMPT_EVERY).await;
        }
        Err(ResumeFailed::TimedOut {
            limit: self.limit,
            last,
        })
    }

    async fn attempt(&self, relay: &Redial) -> Result<Resumed, LinkError> {
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, relay.connect(self.role))
            .await
            .map_err(|_| LinkError::ConnectionLost("the relay did not answer".into()))??;
        if let Some(token) = &self.token {
            conn.resume(token).await?;
        }
        let rejoined = conn.rejoin(self.secret.ticket(), self.session.clone());
        if self.relays.len() > 1 {
            tokio::time::timeout(WAIT_AT_ONE, rejoined)
                .await
                .map_err(|_| {
                    LinkError::ConnectionLost("the other end did not come here".into())
                })??;
        } else {
            rejoined.await?;
        }
        let connection = conn.connection.clone();
        let session = match self.role {
            Role::Agent => agent_exchange(&connection, &self.secret).await?,
            Role::Technician => technician_exchange(&connection, &self.secret).await?,
        };
        Ok(Resumed { conn, session })
    }
}

/// The agent's side of the proofs: opens the new session stream, sends its challenge, checks
/// the technician's proof, sends its own.
pub async fn agent_exchange(
    connection: &Connection,
    secret: &ResumeSecret,
) -> Result<SealedSession, PeerPlaneError> {
    let (mut send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| PeerPlaneError::Broken(e.to_string()))?;
    let mut reader = FrameReader::new(recv, RESUME_MAX_FRAME);
    let exchange = async {
        let agent = challenge();
        write(&mut send, &ResumeMessage::Challenge(agent)).await?;
        let (technician, proof) = match read(&mut reader).await? {
            ResumeMessage::Answer { challenge, proof } => (challenge, proof),
            other => return Err(out_of_order(&other)),
        };
        let challenges = Challenges { agent, technician };
        secret
            .check(Role::Technician, &challenges, &proof)
            .map_err(PeerPlaneError::Resume)?;
        let mine = secret.proof(Role::Agent, &challenges);
        write(&mut send, &ResumeMessage::Proof(mine)).await?;
        Ok(secret.resumed_keys(Role::Agent, &challenges))
    };
    let keys = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(PeerPlaneError::HandshakeTimeout))?;
    Ok(sealed_session(send, reader, keys))
}

/// The technician's side of the proofs: accepts the session stream the agent opens, answers
/// its challenge with its own and its proof, and checks the agent's.
pub async fn technician_exchange(
    connection: &Connection,
    secret: &ResumeSecret,
) -> Result<SealedSession, PeerPlaneError> {
    let exchange = async {
        let (mut send, recv) = connection
            .accept_bi()
            .await
            .map_err(|e| PeerPlaneError::Broken(e.to_string()))?;
        let mut reader = FrameReader::new(recv, RESUME_MAX_FRAME);
        let agent = match read(&mut reader).await? {
            ResumeMessage::Challenge(c) => c,
            other => return Err(out_of_order(&other)),
        };
        let challenges = Challenges {
            agent,
            technician: challenge(),
        };
        let proof = secret.proof(Role::Technician, &challenges);
        write(
            &mut send,
            &ResumeMessage::Answer {
                challenge: challenges.technician,
                proof,
            },
        )
        .await?;
        let theirs = match read(&mut reader).await? {
            ResumeMessage::Proof(p) => p,
            other => return Err(out_of_order(&other)),
        };
        secret
            .check(Role::Agent, &challenges, &theirs)
            .map_err(PeerPlaneError::Resume)?;
        let keys = secret.resumed_keys(Role::Technician, &challenges);
        Ok(sealed_session(send, reader, keys))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(PeerPlaneError::HandshakeTimeout))
}

fn sealed_session(
    send: SendStream,
    mut reader: FrameReader<RecvStream>,
    keys: protocol::e2e::SessionKeys,
) -> SealedSession {
    reader.set_max(SEALED_MAX_FRAME);
    SealedSession {
        send: SealedSend::new(send, keys.session_sealer()),
        recv: SealedRecv::new(reader, keys.session_opener()),
        keys,
    }
}

async fn write(send: &mut SendStream, msg: &ResumeMessage) -> Result<(), PeerPlaneError> {
    send.write_all(&wire::encode_frame(msg)).await?;
    Ok(())
}

async fn read(reader: &mut FrameReader<RecvStream>) -> Result<ResumeMessage, PeerPlaneError> {
    match reader.next_frame().await? {
        Some(frame) => {
            wire::decode_peer(frame).map_err(|e| PeerPlaneError::Malformed(e.to_string()))
        }
        None => Err(PeerPlaneError::EndedDuringHandshake),
    }
}

fn out_of_order(msg: &ResumeMessage) -> PeerPlaneError {
    PeerPlaneError::Malformed(format!("out of order in resuming the session: {msg:?}"))
}
