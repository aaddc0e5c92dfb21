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
//! has passed since the link died. With several relays, one that has not answered within
//! `HEAD_START` has the next tried beside it, and the first to answer is kept.

use std::time::Duration;

use protocol::control::{RelayPointer, Role, RESUME_RELAYS_MAX};
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

/// Another relay of the organisation to resume through: given by hand
/// (`FINGERPRINT@HOST:PORT`), or told by the relay of the session
/// ([`protocol::control::FromRelay::ResumeThrough`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRelay {
    /// Where it is reached, `HOST:PORT` (a name is resolved when it is tried).
    pub addr: String,
    pub fingerprint: crate::tls::Fingerprint,
}

impl OtherRelay {
    /// Checks the parts of a relay as given or told: `addr` is `HOST:PORT`, `fingerprint` a
    /// certificate's fingerprint.
    pub fn new(addr: &str, fingerprint: &str) -> Result<Self, String> {
        let well_formed = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !well_formed || addr.len() > MAX_ADDR {
            return Err(format!(
                "`{}` is not HOST:PORT",
                protocol::text::clip(addr, 80)
            ));
        }
        Ok(Self {
            addr: addr.to_string(),
            fingerprint: fingerprint.parse().map_err(|_| {
                format!(
                    "`{}` is not a relay's fingerprint",
                    protocol::text::clip(fingerprint, 80)
                )
            })?,
        })
    }
}

/// Longest `HOST:PORT` taken (a DNS name is at most 253 bytes).
const MAX_ADDR: usize = 260;

impl std::str::FromStr for OtherRelay {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (fp, addr) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("`{s}` is not FINGERPRINT@HOST:PORT"))?;
        Self::new(addr, fp)
    }
}

/// The relays a relay told to resume through, as an end takes them: at most
/// [`RESUME_RELAYS_MAX`], in the order told; an entry that is not a relay (a malformed address
/// or fingerprint) is passed over, not the end of the session.
pub fn told(relays: &[RelayPointer]) -> Vec<OtherRelay> {
    relays
        .iter()
        .take(RESUME_RELAYS_MAX)
        .filter_map(|p| match OtherRelay::new(&p.addr, &p.fingerprint) {
            Ok(r) => Some(r),
            Err(why) => {
                tracing::warn!(relay = %protocol::text::clip(&p.name, 80), %why, "the relay named a relay to resume through that is none");
                None
            }
        })
        .collect()
}

/// The relays to resume through: the one the session was on (`first`), then those `given` by
/// hand, then those the relay `told`, each once and in that order (both ends told the same
/// list by the same relay meet at the first that is up).
pub fn relays(first: Redial, given: &[OtherRelay], told: &[OtherRelay]) -> Vec<Redial> {
    let mut others: Vec<&OtherRelay> = Vec::new();
    for o in given.iter().chain(told) {
        if !others.contains(&o) && !first.reaches(&o.addr) {
            others.push(o);
        }
    }
    let mut all = vec![first];
    all.extend(
        others
            .into_iter()
            .map(|o| Redial::named(o.addr.clone(), o.fingerprint)),
    );
    all
}

/// Pause between two attempts to reach a relay.
const ATTEMPT_EVERY: Duration = Duration::from_millis(200);

/// Longest one connection attempt may take (a relay that does not answer is tried again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// With several relays to try: how long a relay has to answer before the next is tried too,
/// beside it. A relay that answers within it is where the end goes, so two ends that reach the
/// same relays meet at the first of them that is up; a relay that is gone costs this, not
/// [`CONNECT_TIMEOUT`]. A relay answers within a round trip or two, which this leaves room for.
const HEAD_START: Duration = Duration::from_millis(250);

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
            let first = turn % self.relays.len();
            turn += 1;
            match tokio::time::timeout_at(deadline, self.attempt(first)).await {
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

    /// One attempt: connects to a relay, from the one at `first` on ([`Resume::connect`]), and
    /// resumes there.
    async fn attempt(&self, first: usize) -> Result<Resumed, LinkError> {
        let mut conn = self.connect(first).await?;
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

impl Resume {
    /// Connects to the relays in turn from the one at `first`, each given [`HEAD_START`]
    /// before the next is tried beside it, and keeps the first to answer.
    async fn connect(&self, first: usize) -> Result<RelayConnection, LinkError> {
        let n = self.relays.len();
        let mut trying = tokio::task::JoinSet::new();
        for (i, relay) in self.relays.iter().cycle().skip(first).take(n).enumerate() {
            let (relay, role) = (relay.clone(), self.role);
            trying.spawn(async move {
                tokio::time::sleep(HEAD_START * i as u32).await;
                tokio::time::timeout(CONNECT_TIMEOUT, relay.connect(role))
                    .await
                    .map_err(|_| LinkError::ConnectionLost("the relay did not answer".into()))?
            });
        }
        let mut last = LinkError::ConnectionLost("no relay to try".into());
        while let Some(done) = trying.join_next().await {
            match done {
                // The others are dropped with `trying`.
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => last = e,
                Err(e) => last = LinkError::ConnectionLost(e.to_string()),
            }
        }
        Err(last)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(addr: &str, fingerprint: &str) -> RelayPointer {
        RelayPointer {
            name: "b".into(),
            addr: addr.into(),
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn a_relay_is_given_by_name_or_address_with_its_fingerprint() {
        let fp = "ab".repeat(32);
        let named: OtherRelay = format!("{fp}@relay-b.example.org:4433").parse().unwrap();
        assert_eq!(named.addr, "relay-b.example.org:4433");
        assert_eq!(named.fingerprint.to_string(), fp);
        let ip: OtherRelay = format!("{fp}@[::1]:4433").parse().unwrap();
        assert_eq!(ip.addr, "[::1]:4433");
        for bad in [
            "relay-b.example.org:4433".to_string(),
            format!("{fp}@relay-b.example.org"),
            format!("{fp}@:4433"),
            format!("{fp}@relay-b:0"),
            format!("{fp}@relay-b:70000"),
            "abcd@relay-b:4433".to_string(),
        ] {
            assert!(bad.parse::<OtherRelay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_relays_told_are_taken_in_order_up_to_the_bound_passing_over_malformed_ones() {
        let fp = |i: usize| format!("{i:02x}").repeat(32);
        let mut list = vec![
            pointer("a.example.org:4433", &fp(1)),
            pointer("no port", &fp(2)),
            pointer("c.example.org:4433", "not a fingerprint"),
            pointer(&format!("{}:4433", "x".repeat(300)), &fp(3)),
            pointer("10.0.0.5:4433", &fp(4)),
        ];
        let taken = told(&list);
        let addrs: Vec<&str> = taken.iter().map(|r| r.addr.as_str()).collect();
        assert_eq!(addrs, ["a.example.org:4433", "10.0.0.5:4433"]);
        assert_eq!(taken[1].fingerprint.to_string(), fp(4));
        list.extend((0..40).map(|i| pointer(&format!("r{i}.example.org:4433"), &fp(i))));
        assert_eq!(told(&list).len(), RESUME_RELAYS_MAX - 3);
    }

    #[test]
    fn the_session_s_relay_comes_first_then_those_given_then_those_told_each_once() {
        let fp = |i: usize| format!("{i:02x}").repeat(32);
        let first = Redial::named("a.example.org:4433".into(), fp(1).parse().unwrap());
        let b: OtherRelay = format!("{}@b.example.org:4433", fp(2)).parse().unwrap();
        let c: OtherRelay = format!("{}@c.example.org:4433", fp(3)).parse().unwrap();
        let a_again: OtherRelay = format!("{}@a.example.org:4433", fp(1)).parse().unwrap();
        let all = relays(first, std::slice::from_ref(&b), &[a_again, c, b.clone()]);
        let order: Vec<bool> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, r)| all[i].reaches(&format!("{r}.example.org:4433")))
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(order, [true, true, true]);
    }
}
