//! The end-to-end key exchange as a sans-IO state machine: feed it the other end's
//! [`HandshakeMessage`]s, send what [`Handshake::poll_transmit`] gives, take the
//! [`SessionKeys`] when [`Handshake::is_complete`].
//!
//! The messages travel first on the peer-plane session stream (the agent opens it and speaks
//! first), each as one frame ([`HandshakeMessage::encode_frame`], [`HandshakeMessage::decode`]).
//! Nothing else may travel before the exchange completes.
//!
//! **With a code** (SPAKE2 over Ed25519, password = the code's secret part):
//!
//! ```text
//! agent                                   technician
//!   Pake { version, message: X }      ->
//!                                     <-  PakeReply { message: Y, confirm: MAC_t }
//!   Confirm { confirm: MAC_a }        ->      (or Abort { CodeMismatch })
//! ```
//!
//! The agent checks the technician's confirmation before it sends its own, so a technician with a
//! wrong secret learns nothing but "no". A wrong secret gives each end different keys and the
//! confirmation fails: [`HandshakeError::CodeMismatch`] on both ends ("the code did not match").
//!
//! **Without a code** (X25519, the queue), with a commitment so that a party in the middle cannot
//! choose its keys to make the two verification codes agree:
//!
//! ```text
//! agent                                   technician
//!   Commit { version, H(A) }          ->
//!                                     <-  Share { public: T }
//!   Reveal { public: A, confirm: MAC_a } ->
//!                                     <-  Confirm { confirm: MAC_t }
//! ```
//!
//! The agent may be given the technician's public key as the relay vouched for it (see
//! [`Handshake::agent_with_exchange`]); both ends then show [`SessionKeys::verification_code`].
//!
//! Confirmations are HMAC-SHA256 over the transcript hash, each role with its own key from the
//! key schedule (see [`crate::e2e`]). Any failure queues an [`HandshakeMessage::Abort`] for the
//! other end (unless the other end aborted), so both learn why.

use std::collections::VecDeque;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::{transcript_hash, CodeSecret, Context, Schedule, SessionKeys};
use crate::control::Role;
use crate::wire::{self, DecodeError};

/// Largest handshake frame: the messages are a few dozen bytes; an abort reason is capped.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// Longest reason an abort carries; longer ones are cut.
const MAX_REASON: usize = 200;

/// One message of the exchange.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeMessage {
    /// SPAKE2, agent to technician, first.
    Pake {
        version: u16,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// SPAKE2, technician to agent: its SPAKE2 message and its key confirmation.
    PakeReply {
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        confirm: [u8; 32],
    },
    /// X25519, agent to technician, first: the hash of the agent's public key.
    Commit { version: u16, commitment: [u8; 32] },
    /// X25519, technician to agent: its public key.
    Share { public: [u8; 32] },
    /// X25519, agent to technician: the committed public key and the agent's confirmation.
    Reveal { public: [u8; 32], confirm: [u8; 32] },
    /// Last message: the sender's key confirmation.
    Confirm { confirm: [u8; 32] },
    /// The sender gives up; the receiver ends the attempt too.
    Abort { reason: AbortReason },
}

impl HandshakeMessage {
    /// One whole frame (length prefix and payload), as [`crate::wire::encode_frame`].
    pub fn encode_frame(&self) -> Vec<u8> {
        wire::encode_frame(self)
    }

    /// Decodes a frame's payload, capped at [`HANDSHAKE_MAX_FRAME`].
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        wire::decode::<Self, HANDSHAKE_MAX_FRAME>(payload)
    }

    fn name(&self) -> &'static str {
        match self {
            HandshakeMessage::Pake { .. } => "Pake",
            HandshakeMessage::PakeReply { .. } => "PakeReply",
            HandshakeMessage::Commit { .. } => "Commit",
            HandshakeMessage::Share { .. } => "Share",
            HandshakeMessage::Reveal { .. } => "Reveal",
            HandshakeMessage::Confirm { .. } => "Confirm",
            HandshakeMessage::Abort { .. } => "Abort",
        }
    }
}

impl fmt::Debug for HandshakeMessage {
    /// Names and sizes only: public values, but nothing a log needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeMessage::Abort { reason } => write!(f, "Abort({reason:?})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Why an end gave up, as told to the other end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The key confirmation failed in a SPAKE2 exchange: the two ends used different secrets.
    CodeMismatch,
    /// Anything else, in words.
    Failed { reason: String },
}

/// Why the exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The two ends used different secret parts (or someone altered the exchange). The code is
    /// spent: the user must read out a new one.
    #[error("the code did not match")]
    CodeMismatch,
    /// The key confirmation of an exchange without a code failed: the messages were altered in
    /// transit.
    #[error("the key confirmation failed: the exchange was altered in transit")]
    ConfirmationFailed,
    /// The public key the agent received is not the one the relay vouched for.
    #[error("the technician's key is not the one the relay vouched for")]
    UnvouchedKey,
    /// The revealed key does not match the commitment sent before it.
    #[error("the agent's key does not match its commitment")]
    CommitmentMismatch,
    /// A public value is a degenerate point that would give a predictable secret.
    #[error("the other end sent a degenerate public key")]
    WeakKey,
    #[error("the other end speaks end-to-end protocol version {theirs}, this end {ours}")]
    VersionMismatch { ours: u16, theirs: u16 },
    #[error("handshake message {got} arrived where {expected} was expected")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    #[error("the other end gave up: {0}")]
    PeerAborted(String),
    #[error("the exchange already failed")]
    Failed,
}

impl HandshakeError {
    fn abort_reason(&self) -> AbortReason {
        match self {
            HandshakeError::CodeMismatch => AbortReason::CodeMismatch,
            other => {
                let mut reason = other.to_string();
                if reason.len() > MAX_REASON {
                    let mut cut = MAX_REASON;
                    while !reason.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    reason.truncate(cut);
                }
                AbortReason::Failed { reason }
            }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn confirmation(key: &[u8; 32], transcript: &[u8; 32]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// Constant-time check of a received confirmation.
fn confirmation_ok(key: &[u8; 32], transcript: &[u8; 32], got: &[u8; 32]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(transcript);
    mac.verify_slice(got).is_ok()
}

/// Keys derived but not yet confirmed by the other end.
struct Pending {
    schedule: Schedule,
    with_sas: bool,
}

enum State {
    /// SPAKE2 agent: sent `Pake`, waits for `PakeReply`.
    AgentAwaitPakeReply {
        spake: Box<Spake2<Ed25519Group>>,
        ours: Vec<u8>,
    },
    /// SPAKE2 technician: waits for `Pake`.
    TechnicianAwaitPake {
        secret: CodeSecret,
    },
    /// X25519 agent: sent `Commit`, waits for `Share`.
    AgentAwaitShare {
        secret: StaticSecret,
        commitment: [u8; 32],
        vouched: Option<[u8; 32]>,
    },
    /// X25519 technician: waits for `Commit`.
    TechnicianAwaitCommit {
        secret: StaticSecret,
    },
    /// X25519 technician: sent `Share`, waits for `Reveal`.
    TechnicianAwaitReveal {
        secret: StaticSecret,
        commitment: [u8; 32],
    },
    /// Either: sent its confirmation, waits for the other's `Confirm`.
    AwaitConfirm(Pending),
    Complete(SessionKeys),
    Taken,
    Failed,
}

/// One end of the end-to-end key exchange. See the module documentation for the flows.
pub struct Handshake {
    role: Role,
    context: Vec<u8>,
    version: u16,
    state: State,
    outbox: VecDeque<HandshakeMessage>,
    /// The error a SPAKE2 confirmation failure maps to.
    mismatch: HandshakeError,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("complete", &self.is_complete())
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

fn random_x25519() -> StaticSecret {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::Rng::fill(&mut rand::rng(), bytes.as_mut_slice());
    StaticSecret::from(*bytes)
}

fn spake_ids(context: &[u8]) -> (Identity, Identity) {
    let mut a = b"agent ".to_vec();
    a.extend_from_slice(context);
    let mut b = b"technician ".to_vec();
    b.extend_from_slice(context);
    (Identity::new(&a), Identity::new(&b))
}

fn commitment(context: &[u8], public: &[u8; 32]) -> [u8; 32] {
    transcript_hash(&[b"x25519 commitment", context, public])
}

impl Handshake {
    fn new(role: Role, ctx: &Context, mode: &[u8], state: State) -> Self {
        let mismatch = if mode == b"spake2" {
            HandshakeError::CodeMismatch
        } else {
            HandshakeError::ConfirmationFailed
        };
        Self {
            role,
            context: ctx.encode(mode),
            version: ctx.version,
            state,
            outbox: VecDeque::new(),
            mismatch,
        }
    }

    /// The agent's side of an exchange keyed by the code's secret part. Its first message is
    /// ready at once.
    pub fn agent_with_code(ctx: &Context, secret: &CodeSecret) -> Self {
        let mut hs = Self::new(Role::Agent, ctx, b"spake2", State::Failed);
        let (id_a, id_b) = spake_ids(&hs.context);
        let password = Password::new(secret.password());
        let (spake, ours) = Spake2::<Ed25519Group>::start_a(&password, &id_a, &id_b);
        hs.outbox.push_back(HandshakeMessage::Pake {
            version: ctx.version,
            message: ours.clone(),
        });
        hs.state = State::AgentAwaitPakeReply {
            spake: Box::new(spake),
            ours,
        };
        hs
    }

    /// The technician's side of an exchange keyed by the code's secret part. It speaks once the
    /// agent's first message arrived.
    pub fn technician_with_code(ctx: &Context, secret: &CodeSecret) -> Self {
        Self::new(
            Role::Technician,
            ctx,
            b"spake2",
            State::TechnicianAwaitPake {
                secret: secret.clone(),
            },
        )
    }

    /// The agent's side of an exchange without a code. `vouched` is the technician's public key
    /// as the relay reported it at pairing, if it did; a different key then ends the exchange.
    pub fn agent_with_exchange(ctx: &Context, vouched: Option<[u8; 32]>) -> Self {
        let mut hs = Self::new(Role::Agent, ctx, b"x25519", State::Failed);
        let secret = random_x25519();
        let public = PublicKey::from(&secret).to_bytes();
        let commitment = commitment(&hs.context, &public);
        hs.outbox.push_back(HandshakeMessage::Commit {
            version: ctx.version,
            commitment,
        });
        hs.state = State::AgentAwaitShare {
            secret,
            commitment,
            vouched,
        };
        hs
    }

    /// The technician's side of an exchange without a code. Its public key
    /// ([`Handshake::technician_public_key`]) can be given to the relay beforehand, so the relay
    /// can vouch for it to the agent.
    pub fn technician_with_exchange(ctx: &Context) -> Self {
        Self::new(
            Role::Technician,
            ctx,
            b"x25519",
            State::TechnicianAwaitCommit {
                secret: random_x25519(),
            },
        )
    }

    /// The technician's X25519 public key, before the exchange has gone past its start.
    pub fn technician_public_key(&self) -> Option<[u8; 32]> {
        match &self.state {
            State::TechnicianAwaitCommit { secret } => Some(PublicKey::from(secret).to_bytes()),
            _ => None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The next message to send to the other end, if any. Call until `None` after creating the
    /// handshake and after every [`Handshake::handle`], also when it failed.
    pub fn poll_transmit(&mut self) -> Option<HandshakeMessage> {
        self.outbox.pop_front()
    }

    /// True once both ends' keys are confirmed (and nothing is left to send but what
    /// [`Handshake::poll_transmit`] still holds).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete(_))
    }

    /// The keys, once complete. `None` before, after a failure, or if already taken.
    pub fn take_keys(&mut self) -> Option<SessionKeys> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Complete(keys) => Some(keys),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Feeds one message from the other end. On error the exchange is over; an abort for the
    /// other end may be waiting in [`Handshake::poll_transmit`].
    pub fn handle(&mut self, msg: HandshakeMessage) -> Result<(), HandshakeError> {
        if let HandshakeMessage::Abort { reason } = &msg {
            self.outbox.clear();
            let was_failed = matches!(self.state, State::Failed);
            self.state = State::Failed;
            if was_failed {
                return Err(HandshakeError::Failed);
            }
            return Err(match reason {
                AbortReason::CodeMismatch => HandshakeError::CodeMismatch,
                AbortReason::Failed { reason } => HandshakeError::PeerAborted(reason.clone()),
            });
        }
        let state = std::mem::replace(&mut self.state, State::Failed);
        match self.step(state, msg) {
            Ok(next) => {
                self.state = next;
                Ok(())
            }
            Err(e) => {
                self.outbox.clear();
                if e != HandshakeError::Failed {
                    self.outbox.push_back(HandshakeMessage::Abort {
                        reason: e.abort_reason(),
                    });
                }
                Err(e)
            }
        }
    }

    fn check_version(&self, theirs: u16) -> Result<(), HandshakeError> {
        if theirs == self.version {
            Ok(())
        } else {
            Err(HandshakeError::VersionMismatch {
                ours: self.version,
                theirs,
            })
        }
    }

    fn step(&mut self, state: State, msg: HandshakeMessage) -> Result<State, HandshakeError> {
        use HandshakeMessage as M;
        match (state, msg) {
            (State::TechnicianAwaitPake { secret }, M::Pake { version, message }) => {
                self.check_version(version)?;
                let (id_a, id_b) = spake_ids(&self.context);
                let password = Password::new(secret.password());
                let (spake, ours) = Spake2::<Ed25519Group>::start_b(&password, &id_a, &id_b);
                let shared = finish_spake(spake, &message)?;
                let schedule = Schedule::derive(
                    &shared,
                    transcript_hash(&[b"spake2", &self.context, &message, &ours]),
                );
                let confirm =
                    confirmation(schedule.confirm_key(Role::Technician), &schedule.transcript);
                self.outbox.push_back(M::PakeReply {
                    message: ours,
                    confirm,
                });
                Ok(State::AwaitConfirm(Pending {
                    schedule,
                    with_sas: false,
                }))
            }
            (State::AgentAwaitPakeReply { spake, ours }, M::PakeReply { message, confirm }) => {
                let shared = finish_spake(*spake, &message)?;
                let schedule = Schedule::derive(
                    &shared,
                    transcript_hash(&[b"spake2", &self.context, &ours, &message]),
                );
                self.confirm_and_finish(schedule, false, &confirm)
            }
            (
                State::TechnicianAwaitCommit { secret },
                M::Commit {
                    version,
                    commitment,
                },
            ) => {
                self.check_version(version)?;
                self.outbox.push_back(M::Share {
                    public: PublicKey::from(&secret).to_bytes(),
                });
                Ok(State::TechnicianAwaitReveal { secret, commitment })
            }
            (
                State::AgentAwaitShare {
                    secret,
                    commitment,
                    vouched,
                },
                M::Share { public },
            ) => {
                if vouched.is_some_and(|v| v != public) {
                    return Err(HandshakeError::UnvouchedKey);
                }
                let ours = PublicKey::from(&secret).to_bytes();
                let shared = diffie_hellman(&secret, public)?;
                let schedule = Schedule::derive(
                    shared.as_slice(),
                    transcript_hash(&[b"x25519", &self.context, &commitment, &public, &ours]),
                );
                let confirm = confirmation(schedule.confirm_key(Role::Agent), &schedule.transcript);
                self.outbox.push_back(M::Reveal {
                    public: ours,
                    confirm,
                });
                Ok(State::AwaitConfirm(Pending {
                    schedule,
                    with_sas: true,
                }))
            }
            (
                State::TechnicianAwaitReveal { secret, commitment },
                M::Reveal { public, confirm },
            ) => {
                if self::commitment(&self.context, &public) != commitment {
                    return Err(HandshakeError::CommitmentMismatch);
                }
                let ours = PublicKey::from(&secret).to_bytes();
                let shared = diffie_hellman(&secret, public)?;
                let schedule = Schedule::derive(
                    shared.as_slice(),
                    transcript_hash(&[b"x25519", &self.context, &commitment, &ours, &public]),
                );
                self.confirm_and_finish(schedule, true, &confirm)
            }
            (State::AwaitConfirm(pending), M::Confirm { confirm }) => {
                let peer = other(self.role);
                let s = &pending.schedule;
                if !confirmation_ok(s.confirm_key(peer), &s.transcript, &confirm) {
                    return Err(self.mismatch.clone());
                }
                Ok(State::Complete(
                    pending.schedule.into_keys(self.role, pending.with_sas),
                ))
            }
            (State::Failed | State::Taken, _) => Err(HandshakeError::Failed),
            (State::Complete(_), got) => Err(HandshakeError::Unexpected {
                expected: "nothing (the exchange is complete)",
                got: got.name(),
            }),
            (state, got) => Err(HandshakeError::Unexpected {
                expected: expected(&state),
                got: got.name(),
            }),
        }
    }

    /// Checks the other end's confirmation that came with its last message, then sends ours.
    fn confirm_and_finish(
        &mut self,
        schedule: Schedule,
        with_sas: bool,
        theirs: &[u8; 32],
    ) -> Result<State, HandshakeError> {
        let peer = other(self.role);
        if !confirmation_ok(schedule.confirm_key(peer), &schedule.transcript, theirs) {
            return Err(self.mismatch.clone());
        }
        let confirm = confirmation(schedule.confirm_key(self.role), &schedule.transcript);
        self.outbox.push_back(HandshakeMessage::Confirm { confirm });
        Ok(State::Complete(schedule.into_keys(self.role, with_sas)))
    }
}

fn other(role: Role) -> Role {
    match role {
        Role::Agent => Role::Technician,
        Role::Technician => Role::Agent,
    }
}

fn expected(state: &State) -> &'static str {
    match state {
        State::AgentAwaitPakeReply { .. } => "PakeReply",
        State::TechnicianAwaitPake { .. } => "Pake",
        State::AgentAwaitShare { .. } => "Share",
        State::TechnicianAwaitCommit { .. } => "Commit",
        State::TechnicianAwaitReveal { .. } => "Reveal",
        State::AwaitConfirm(_) => "Confirm",
        State::Complete(_) | State::Taken | State::Failed => "nothing",
    }
}

fn finish_spake(
    spake: Spake2<Ed25519Group>,
    theirs: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HandshakeError> {
    spake
        .finish(theirs)
        .map(Zeroizing::new)
        .map_err(|e| HandshakeError::Malformed(format!("SPAKE2 message: {e:?}")))
}

fn diffie_hellman(
    secret: &StaticSecret,
    theirs: [u8; 32],
) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
    let shared = secret.diffie_hellman(&PublicKey::from(theirs));
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::{StreamId, UserCode};

    fn ctx() -> Context {
        Context::new(crate::PROTOCOL_VERSION, "123456789")
    }

    /// Runs both ends against each other through encode/decode, as over a stream. Returns each
    /// end's result.
    fn run(
        mut agent: Handshake,
        mut tech: Handshake,
    ) -> (
        Result<SessionKeys, HandshakeError>,
        Result<SessionKeys, HandshakeError>,
    ) {
        let mut a_err = None;
        let mut t_err = None;
        for _ in 0..10 {
            let mut moved = false;
            while let Some(m) = agent.poll_transmit() {
                moved = true;
                let m = HandshakeMessage::decode(&m.encode_frame()[4..]).unwrap();
                if let Err(e) = tech.handle(m) {
                    t_err.get_or_insert(e);
                }
            }
            while let Some(m) = tech.poll_transmit() {
                moved = true;
                let m = HandshakeMessage::decode(&m.encode_frame()[4..]).unwrap();
                if let Err(e) = agent.handle(m) {
                    a_err.get_or_insert(e);
                }
            }
            if !moved {
                break;
            }
        }
        let a = a_err.map_or_else(|| agent.take_keys().ok_or(HandshakeError::Failed), Err);
        let t = t_err.map_or_else(|| tech.take_keys().ok_or(HandshakeError::Failed), Err);
        (a, t)
    }

    fn assert_same_keys(a: &SessionKeys, t: &SessionKeys) {
        assert_eq!(a.role(), Role::Agent);
        assert_eq!(t.role(), Role::Technician);
        assert_eq!(a.session_id(), t.session_id());
        assert_eq!(*a.send_secret(), *t.recv_secret());
        assert_eq!(*a.recv_secret(), *t.send_secret());
        assert_ne!(*a.send_secret(), *a.recv_secret());
        // And the keys work: a record from one end opens at the other.
        let mut frame = Vec::new();
        a.session_sealer()
            .seal_frame(b"hello", false, &mut frame)
            .unwrap();
        let mut out = Vec::new();
        t.session_opener().open(&frame[4..], &mut out).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn right_code_gives_equal_keys_on_both_ends() {
        let code = UserCode::parse("123 456 789 - 4821").unwrap();
        let (a, t) = run(
            Handshake::agent_with_code(&ctx(), code.secret()),
            Handshake::technician_with_code(&ctx(), code.secret()),
        );
        let (a, t) = (a.unwrap(), t.unwrap());
        assert_same_keys(&a, &t);
        assert!(a.verification_code().is_none());
    }

    #[test]
    fn wrong_code_is_a_mismatch_on_both_ends() {
        let right = CodeSecret::from_digits("4821").unwrap();
        let wrong = CodeSecret::from_digits("4812").unwrap();
        let (a, t) = run(
            Handshake::agent_with_code(&ctx(), &right),
            Handshake::technician_with_code(&ctx(), &wrong),
        );
        assert_eq!(a.unwrap_err(), HandshakeError::CodeMismatch);
        assert_eq!(t.unwrap_err(), HandshakeError::CodeMismatch);
        assert_eq!(
            HandshakeError::CodeMismatch.to_string(),
            "the code did not match"
        );
    }

    #[test]
    fn another_context_is_a_mismatch() {
        let s = CodeSecret::from_digits("4821").unwrap();
        let (a, t) = run(
            Handshake::agent_with_code(&ctx(), &s),
            Handshake::technician_with_code(
                &Context::new(crate::PROTOCOL_VERSION, "123456780"),
                &s,
            ),
        );
        assert_eq!(a.unwrap_err(), HandshakeError::CodeMismatch);
        assert_eq!(t.unwrap_err(), HandshakeError::CodeMismatch);
    }

    #[test]
    fn another_version_is_refused_with_both_numbers() {
        let s = CodeSecret::from_digits("4821").unwrap();
        let (a, t) = run(
            Handshake::agent_with_code(&Context::new(2, "123456789"), &s),
            Handshake::technician_with_code(&Context::new(1, "123456789"), &s),
        );
        assert_eq!(
            t.unwrap_err(),
            HandshakeError::VersionMismatch { ours: 1, theirs: 2 }
        );
        assert!(matches!(a.unwrap_err(), HandshakeError::PeerAborted(r) if r.contains("version")));
    }

    #[test]
    fn exchange_gives_equal_keys_and_equal_verification_codes() {
        let tech = Handshake::technician_with_exchange(&ctx());
        let vouched = tech.technician_public_key();
        assert!(vouched.is_some());
        let (a, t) = run(Handshake::agent_with_exchange(&ctx(), vouched), tech);
        let (a, t) = (a.unwrap(), t.unwrap());
        assert_same_keys(&a, &t);
        let code = a.verification_code().unwrap();
        assert_eq!(Some(code), t.verification_code());
    }

    #[test]
    fn exchange_refuses_a_key_the_relay_did_not_vouch_for() {
        let (a, t) = run(
            Handshake::agent_with_exchange(&ctx(), Some([7; 32])),
            Handshake::technician_with_exchange(&ctx()),
        );
        assert_eq!(a.unwrap_err(), HandshakeError::UnvouchedKey);
        assert!(matches!(t.unwrap_err(), HandshakeError::PeerAborted(_)));
    }

    /// A party in the middle that runs one exchange with each end gets keys with both, but the
    /// two verification codes differ (except by a one-in-a-million chance).
    #[test]
    fn a_party_in_the_middle_shows_as_different_verification_codes() {
        let mut codes = Vec::new();
        for _ in 0..3 {
            let (a, _) = run(
                Handshake::agent_with_exchange(&ctx(), None),
                Handshake::technician_with_exchange(&ctx()),
            );
            let (_, t) = run(
                Handshake::agent_with_exchange(&ctx(), None),
                Handshake::technician_with_exchange(&ctx()),
            );
            codes.push(a.unwrap().verification_code() != t.unwrap().verification_code());
        }
        assert!(
            codes.iter().any(|d| *d),
            "codes matched three times in a row"
        );
    }

    #[test]
    fn weak_public_key_is_refused() {
        let mut agent = Handshake::agent_with_exchange(&ctx(), None);
        agent.poll_transmit().unwrap();
        let err = agent
            .handle(HandshakeMessage::Share { public: [0; 32] })
            .unwrap_err();
        assert_eq!(err, HandshakeError::WeakKey);
        assert!(matches!(
            agent.poll_transmit(),
            Some(HandshakeMessage::Abort { .. })
        ));
    }

    #[test]
    fn altered_reveal_breaks_the_commitment() {
        let mut agent = Handshake::agent_with_exchange(&ctx(), None);
        let mut tech = Handshake::technician_with_exchange(&ctx());
        tech.handle(agent.poll_transmit().unwrap()).unwrap();
        agent.handle(tech.poll_transmit().unwrap()).unwrap();
        let HandshakeMessage::Reveal {
            mut public,
            confirm,
        } = agent.poll_transmit().unwrap()
        else {
            panic!("reveal expected")
        };
        public[3] ^= 1;
        assert_eq!(
            tech.handle(HandshakeMessage::Reveal { public, confirm }),
            Err(HandshakeError::CommitmentMismatch)
        );
    }

    #[test]
    fn out_of_order_and_late_messages_are_errors() {
        let s = CodeSecret::from_digits("0000").unwrap();
        let mut tech = Handshake::technician_with_code(&ctx(), &s);
        let err = tech
            .handle(HandshakeMessage::Confirm { confirm: [0; 32] })
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Unexpected {
                expected: "Pake",
                got: "Confirm"
            }
        );
        assert_eq!(
            tech.handle(HandshakeMessage::Confirm { confirm: [0; 32] }),
            Err(HandshakeError::Failed)
        );
        assert!(tech.take_keys().is_none());
    }

    #[test]
    fn malformed_spake_message_is_an_error_not_a_panic() {
        let s = CodeSecret::from_digits("0000").unwrap();
        for message in [vec![], vec![0x41; 33], vec![0x41; 5], vec![0xff; 40]] {
            let mut tech = Handshake::technician_with_code(&ctx(), &s);
            let err = tech
                .handle(HandshakeMessage::Pake {
                    version: crate::PROTOCOL_VERSION,
                    message,
                })
                .unwrap_err();
            assert!(matches!(err, HandshakeError::Malformed(_)), "{err:?}");
        }
    }

    #[test]
    fn keys_open_only_their_own_stream() {
        let s = CodeSecret::from_digits("1111").unwrap();
        let (a, t) = run(
            Handshake::agent_with_code(&ctx(), &s),
            Handshake::technician_with_code(&ctx(), &s),
        );
        let (a, t) = (a.unwrap(), t.unwrap());
        let mut frame = Vec::new();
        a.update_sealer(5)
            .seal_frame(b"update", true, &mut frame)
            .unwrap();
        let mut out = Vec::new();
        assert!(t
            .opener(StreamId::update(6))
            .open(&frame[4..], &mut out)
            .is_err());
        assert!(t.session_opener().open(&frame[4..], &mut out).is_err());
        let mut rx = t.update_receiver();
        let (_, plaintext) = rx.open_first(&mut frame[4..]).unwrap();
        assert_eq!(plaintext, b"update");
    }
}
