//! Resuming a session after its relay connection died: the same two ends, the same session, a
//! new leg through a new connection (to the same relay restarted, or another of the cluster).
//!
//! Both ends derive a [`ResumeSecret`] from the session's keys; the relay never sees it. From
//! it each derives the same [`ResumeSecret::ticket`], which is all the relay sees: an identifier
//! under which it pairs the two connections that present it, and nothing more (it is a hash of
//! the secret, so it tells nothing about the keys and cannot be turned into a proof).
//!
//! On the new connection the agent sends a fresh random challenge; the technician answers with
//! its own and its proof, the agent checks it and sends its proof ([`ResumeMessage`]). A proof
//! is an HMAC-SHA256 under the secret over the role and both challenges, so it cannot be
//! replayed into another attempt, and a relay that does not hold the secret cannot make one.
//!
//! The resumed leg gets fresh keys ([`ResumeSecret::resumed_keys`]): derived from the secret
//! and both challenges, rather than the old keys with their counters carried on. The old leg's
//! counters stopped at some point neither end can be sure the other saw (records in flight
//! when the connection died), and screen updates start their numbering again with the new
//! encoder; under fresh keys every number may start from zero without a nonce ever repeating
//! under a key. The session's identifier stays the same, so its log goes on under the same
//! name, and the next resume derives its secret from the new keys.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{expand, put_bytes, Secret, SessionKeys, LABEL};
use crate::control::Role;

/// Length of a challenge and of a proof.
pub const RESUME_LEN: usize = 32;

/// What the two ends send each other on the resumed leg's session stream, before anything is
/// sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeMessage {
    /// The agent, first: its challenge.
    Challenge([u8; RESUME_LEN]),
    /// The technician: its challenge and its proof over both.
    Answer {
        challenge: [u8; RESUME_LEN],
        proof: [u8; RESUME_LEN],
    },
    /// The agent: its proof over both, once the technician's checked.
    Proof([u8; RESUME_LEN]),
}

/// Largest frame of the resume exchange.
pub const RESUME_MAX_FRAME: usize = 256;

/// The two challenges of one resume attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenges {
    pub agent: [u8; RESUME_LEN],
    pub technician: [u8; RESUME_LEN],
}

/// A fresh random challenge.
pub fn challenge() -> [u8; RESUME_LEN] {
    let mut c = [0u8; RESUME_LEN];
    rand::Rng::fill(&mut rand::rng(), c.as_mut_slice());
    c
}

/// Why a resume was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("the other end could not prove it is the same session's other end")]
    BadProof,
    #[error("the other end's challenge equals this end's: a reflection, refused")]
    Reflected,
}

/// The secret both ends of a session derive from its keys to resume it; never sent anywhere.
/// Wiped when dropped.
pub struct ResumeSecret {
    secret: Secret,
    session_id: [u8; 32],
}

impl std::fmt::Debug for ResumeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeSecret").finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// The secret to resume this session with (the same on both ends).
    pub fn resume_secret(&self) -> ResumeSecret {
        let mut ikm = Zeroizing::new(Vec::with_capacity(64));
        ikm.extend_from_slice(self.agent_to_technician.as_ref());
        ikm.extend_from_slice(self.technician_to_agent.as_ref());
        let hk = hkdf::Hkdf::<Sha256>::new(Some(&self.session_id), &ikm);
        ResumeSecret {
            secret: expand(&hk, b"resume secret", &[]),
            session_id: self.session_id,
        }
    }
}

impl ResumeSecret {
    /// What the relay pairs the two ends by: 32 hex digits, the same on both ends, from which
    /// nothing about the secret follows.
    pub fn ticket(&self) -> String {
        let hk = hkdf::Hkdf::<Sha256>::from_prk(self.secret.as_ref()).expect("32-byte PRK");
        let t = expand(&hk, b"resume ticket", &[]);
        t[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The proof of the end playing `role` in the attempt with these challenges.
    pub fn proof(&self, role: Role, challenges: &Challenges) -> [u8; RESUME_LEN] {
        self.mac(role, challenges).finalize().into_bytes().into()
    }

    /// Checks the other end's proof (it plays `role`), in constant time. A challenge equal to
    /// this end's own is refused: it would be this end's own words reflected back.
    pub fn check(
        &self,
        role: Role,
        challenges: &Challenges,
        proof: &[u8; RESUME_LEN],
    ) -> Result<(), ResumeError> {
        if challenges.agent == challenges.technician {
            return Err(ResumeError::Reflected);
        }
        self.mac(role, challenges)
            .verify_slice(proof)
            .map_err(|_| ResumeError::BadProof)
    }

    fn mac(&self, role: Role, challenges: &Challenges) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_ref())
            .expect("HMAC takes any key length");
        let mut msg = Vec::with_capacity(128);
        msg.extend_from_slice(LABEL);
        msg.extend_from_slice(b"resume proof ");
        put_bytes(&mut msg, role_name(role));
        put_bytes(&mut msg, &challenges.agent);
        put_bytes(&mut msg, &challenges.technician);
        m.update(&msg);
        m
    }

    /// The keys of the resumed leg, as the end playing `role` holds them: fresh traffic secrets
    /// from the secret and both challenges, the session's identifier unchanged.
    pub fn resumed_keys(&self, role: Role, challenges: &Challenges) -> SessionKeys {
        let mut salt = Vec::with_capacity(2 * RESUME_LEN);
        salt.extend_from_slice(&challenges.agent);
        salt.extend_from_slice(&challenges.technician);
        let hk = hkdf::Hkdf::<Sha256>::new(Some(&salt), self.secret.as_ref());
        SessionKeys {
            role,
            agent_to_technician: expand(&hk, b"resumed traffic agent->technician", &[]),
            technician_to_agent: expand(&hk, b"resumed traffic technician->agent", &[]),
            session_id: self.session_id,
            verification: None,
        }
    }
}

fn role_name(role: Role) -> &'static [u8] {
    match role {
        Role::Agent => b"agent",
        Role::Technician => b"technician",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::{Context, Handshake};

    /// Both ends' keys of one session, by a full exchange without a code.
    fn session() -> (SessionKeys, SessionKeys) {
        let ctx = Context::new(crate::PROTOCOL_VERSION, "queue 7");
        let mut a = Handshake::agent_with_exchange(&ctx, None);
        let mut t = Handshake::technician_with_exchange(&ctx);
        for _ in 0..8 {
            while let Some(m) = a.poll_transmit() {
                t.handle(m).unwrap();
            }
            while let Some(m) = t.poll_transmit() {
                a.handle(m).unwrap();
            }
        }
        (a.take_keys().unwrap(), t.take_keys().unwrap())
    }

    fn challenges(a: u8, t: u8) -> Challenges {
        Challenges {
            agent: [a; 32],
            technician: [t; 32],
        }
    }

    #[test]
    fn both_ends_derive_the_same_ticket_and_accept_each_others_proofs() {
        let (a, t) = session();
        let (sa, st) = (a.resume_secret(), t.resume_secret());
        assert_eq!(sa.ticket(), st.ticket());
        assert_eq!(sa.ticket().len(), 32);
        let c = challenges(1, 2);
        st.check(Role::Agent, &c, &sa.proof(Role::Agent, &c))
            .unwrap();
        sa.check(Role::Technician, &c, &st.proof(Role::Technician, &c))
            .unwrap();
    }

    #[test]
    fn a_wrong_proof_is_refused() {
        let (a, t) = session();
        let (_, other) = session();
        let (sa, st) = (a.resume_secret(), t.resume_secret());
        let c = challenges(1, 2);
        // Another session's secret, a proof for other challenges, the other role's proof, a
        // flipped bit, and a reflection: all refused.
        let forged = other.resume_secret().proof(Role::Technician, &c);
        assert_eq!(
            sa.check(Role::Technician, &c, &forged),
            Err(ResumeError::BadProof)
        );
        let stale = st.proof(Role::Technician, &challenges(1, 3));
        assert_eq!(
            sa.check(Role::Technician, &c, &stale),
            Err(ResumeError::BadProof)
        );
        let mirrored = sa.proof(Role::Agent, &c);
        assert_eq!(
            sa.check(Role::Technician, &c, &mirrored),
            Err(ResumeError::BadProof)
        );
        let mut flipped = st.proof(Role::Technician, &c);
        flipped[0] ^= 1;
        assert_eq!(
            sa.check(Role::Technician, &c, &flipped),
            Err(ResumeError::BadProof)
        );
        let same = challenges(4, 4);
        let reflected = st.proof(Role::Technician, &same);
        assert_eq!(
            sa.check(Role::Technician, &same, &reflected),
            Err(ResumeError::Reflected)
        );
    }

    #[test]
    fn the_resumed_leg_has_fresh_keys_that_both_ends_share() {
        let (a, t) = session();
        let c = challenges(1, 2);
        let (ra, rt) = (
            a.resume_secret().resumed_keys(Role::Agent, &c),
            t.resume_secret().resumed_keys(Role::Technician, &c),
        );
        assert_eq!(ra.session_id(), a.session_id());
        // A record sealed on the resumed leg opens on the other end, and not under the old keys.
        let mut sealed = Vec::new();
        ra.session_sealer()
            .seal_frame(b"hello", false, &mut sealed)
            .unwrap();
        let mut out = Vec::new();
        rt.session_opener().open(&sealed[4..], &mut out).unwrap();
        assert_eq!(out, b"hello");
        assert!(t.session_opener().open(&sealed[4..], &mut out).is_err());
        // Another attempt's challenges give other keys again, and another ticket follows.
        let again = a
            .resume_secret()
            .resumed_keys(Role::Agent, &challenges(1, 5));
        assert_ne!(again.send_secret(), ra.send_secret());
        assert_ne!(ra.resume_secret().ticket(), a.resume_secret().ticket());
    }
}
