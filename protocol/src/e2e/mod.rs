//! The end-to-end channel between agent and technician: keys the relay never learns, and sealed
//! records the relay can forward but neither read nor alter.
//!
//! The pieces, each pure (no I/O; the caller moves the bytes):
//!
//! - [`code`]: the code the user reads out, [`UserCode`]: a rendezvous part the relay sees and a
//!   secret part that never leaves the two ends, and the odds of guessing it online;
//! - [`handshake`]: the sans-IO key exchange, [`Handshake`]. With a code it is SPAKE2 keyed by the
//!   code's secret part; without one (the help-request queue) it is X25519 with a commitment, and
//!   both ends get a 6-digit [`VerificationCode`] to compare on the phone. Either way both sides
//!   confirm the keys before anything else travels, and the result is a [`SessionKeys`];
//! - [`seal`]: [`Sealer`] and [`Opener`], AES-256-GCM records with a per-direction,
//!   per-stream sequence number, and [`UpdateReceiver`], which opens the first record of each
//!   screen update stream and refuses a stream replayed under a number already opened (a
//!   number counts as opened only once its record authenticates);
//! - [`sas`]: the 6-digit verification code.
//!
//! Key schedule (HKDF-SHA256 throughout): the exchange's shared secret is extracted with the
//! SHA-256 hash of the transcript (context, then every handshake message) as salt; from that come
//! one confirmation key per role, one traffic secret per direction and the verification code.
//! A traffic secret is then expanded once per stream (kind and id in the label), so a record
//! sealed for one stream cannot be opened on another. All key material is wiped when dropped.

pub mod code;
pub mod handshake;
pub mod resume;
pub mod sas;
pub mod seal;

use std::fmt;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::control::Role;

pub use code::{CodeParseError, CodeSecret, UserCode};
pub use handshake::{AbortReason, Handshake, HandshakeError, HandshakeMessage};
pub use resume::{Challenges, ResumeError, ResumeMessage, ResumeSecret};
pub use sas::VerificationCode;
pub use seal::{
    DatagramOpener, DatagramSealer, OpenError, Opener, SealError, Sealer, StreamId, StreamKind,
    UpdateReceiver,
};

/// Label prefix of every hash and key derivation of this module: a new version of the channel
/// changes it, so keys of two versions never coincide.
const LABEL: &[u8] = b"tandem/e2e/v1 ";

/// What both ends must agree on besides the secret: bound into every key, so a handshake run in
/// one setting (another protocol version, another code) yields nothing usable in another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The protocol version both ends speak ([`crate::PROTOCOL_VERSION`]).
    pub version: u16,
    /// What the two ends met by: the rendezvous part of the code (its digits), or, for the
    /// queue, the request's identifier as the relay gave it to both.
    pub rendezvous: String,
}

impl Context {
    pub fn new(version: u16, rendezvous: impl Into<String>) -> Self {
        Self {
            version,
            rendezvous: rendezvous.into(),
        }
    }

    /// Unambiguous encoding: version, then the length-prefixed rendezvous, then the two roles in
    /// their fixed order (agent first).
    fn encode(&self, mode: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.rendezvous.len());
        out.extend_from_slice(LABEL);
        out.extend_from_slice(mode);
        out.extend_from_slice(&self.version.to_le_bytes());
        put_bytes(&mut out, self.rendezvous.as_bytes());
        put_bytes(&mut out, b"agent");
        put_bytes(&mut out, b"technician");
        out
    }
}

/// Appends `bytes` with a 4-byte length in front, so concatenations cannot be re-split.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A 32-byte secret that is wiped when dropped.
type Secret = Zeroizing<[u8; 32]>;

/// HKDF-Expand of `prk` under `LABEL || label || extra` into 32 bytes.
fn expand(hk: &Hkdf<Sha256>, label: &[u8], extra: &[u8]) -> Secret {
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(&[LABEL, label, extra], out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Everything the handshake derives from the shared secret and the transcript.
struct Schedule {
    confirm_agent: Secret,
    confirm_technician: Secret,
    agent_to_technician: Secret,
    technician_to_agent: Secret,
    sas: Secret,
    transcript: [u8; 32],
}

impl Schedule {
    fn derive(shared: &[u8], transcript: [u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(&transcript), shared);
        Self {
            confirm_agent: expand(&hk, b"confirm agent", &[]),
            confirm_technician: expand(&hk, b"confirm technician", &[]),
            agent_to_technician: expand(&hk, b"traffic agent->technician", &[]),
            technician_to_agent: expand(&hk, b"traffic technician->agent", &[]),
            sas: expand(&hk, b"verification code", &[]),
            transcript,
        }
    }

    fn confirm_key(&self, role: Role) -> &[u8; 32] {
        match role {
            Role::Agent => &self.confirm_agent,
            Role::Technician => &self.confirm_technician,
        }
    }

    fn into_keys(self, role: Role, with_sas: bool) -> SessionKeys {
        let verification = with_sas.then(|| VerificationCode::from_secret(&self.sas));
        SessionKeys {
            role,
            agent_to_technician: self.agent_to_technician,
            technician_to_agent: self.technician_to_agent,
            session_id: self.transcript,
            verification,
        }
    }
}

/// SHA-256 over the label and the given parts, each length-prefixed.
fn transcript_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LABEL);
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The keys of one session, as one end holds them: a traffic secret per direction, from which a
/// [`Sealer`] (this end's direction) and an [`Opener`] (the other's) are made per stream.
///
/// Lives only in memory; the secrets are wiped when it is dropped. Drop it (and every sealer and
/// opener) when the session ends.
pub struct SessionKeys {
    role: Role,
    agent_to_technician: Secret,
    technician_to_agent: Secret,
    session_id: [u8; 32],
    verification: Option<VerificationCode>,
}

impl SessionKeys {
    /// Which end holds these keys.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The hash of the handshake transcript: the same on both ends, public, and unique to this
    /// session. Suitable for naming the session in logs (it reveals nothing about the keys).
    pub fn session_id(&self) -> [u8; 32] {
        self.session_id
    }

    /// The 6-digit code both people can compare on the phone; present after an X25519 exchange
    /// (the queue), absent after SPAKE2 (the code itself authenticated the other end).
    pub fn verification_code(&self) -> Option<VerificationCode> {
        self.verification
    }

    fn send_secret(&self) -> &[u8; 32] {
        match self.role {
            Role::Agent => &self.agent_to_technician,
            Role::Technician => &self.technician_to_agent,
        }
    }

    fn recv_secret(&self) -> &[u8; 32] {
        match self.role {
            Role::Agent => &self.technician_to_agent,
            Role::Technician => &self.agent_to_technician,
        }
    }

    /// Seals what this end sends on `stream`.
    pub fn sealer(&self, stream: StreamId) -> Sealer {
        Sealer::new(self.send_secret(), stream)
    }

    /// Opens what the other end sends on `stream`.
    pub fn opener(&self, stream: StreamId) -> Opener {
        Opener::new(self.recv_secret(), stream)
    }

    /// Seals this end's side of the session stream.
    pub fn session_sealer(&self) -> Sealer {
        self.sealer(StreamId::SESSION)
    }

    /// Opens the other end's side of the session stream.
    pub fn session_opener(&self) -> Opener {
        self.opener(StreamId::SESSION)
    }

    /// Seals the screen update numbered `seq`, alone on its own stream (agent side).
    pub fn update_sealer(&self, seq: u64) -> Sealer {
        self.sealer(StreamId::update(seq))
    }

    /// Hands out openers for the other end's screen update streams, each number once
    /// (technician side).
    pub fn update_receiver(&self) -> UpdateReceiver {
        UpdateReceiver::new(self.recv_secret())
    }

    /// Seals the datagrams this end sends.
    pub fn datagram_sealer(&self) -> DatagramSealer {
        DatagramSealer::new(self.send_secret())
    }

    /// Opens the datagrams the other end sends.
    pub fn datagram_opener(&self) -> DatagramOpener {
        DatagramOpener::new(self.recv_secret())
    }

    /// Seals and opens the streams of files, both ways, for as long as the file transfers of
    /// the session run (the session's other keys may be dropped before).
    pub fn file_keys(&self) -> FileKeys {
        FileKeys {
            send: Zeroizing::new(*self.send_secret()),
            recv: Zeroizing::new(*self.recv_secret()),
        }
    }
}

/// The keys of a session's file streams: each file's stream has its own key per direction,
/// expanded from the direction's traffic secret with the file's number
/// ([`StreamId::file`]). Wiped when dropped.
pub struct FileKeys {
    send: Secret,
    recv: Secret,
}

impl FileKeys {
    /// Seals this end's stream of file `id`.
    pub fn sealer(&self, id: u64) -> Sealer {
        Sealer::new(&self.send, StreamId::file(id))
    }

    /// Opens the other end's stream of file `id`.
    pub fn opener(&self, id: u64) -> Opener {
        Opener::new(&self.recv, StreamId::file(id))
    }
}

impl fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeys").finish_non_exhaustive()
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("role", &self.role)
            .field("session_id", &hex_prefix(&self.session_id))
            .field("verification", &self.verification)
            .finish_non_exhaustive()
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
