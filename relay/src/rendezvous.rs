//! Session codes: an agent registers and is given a code; a technician presents it and is handed
//! the waiting agent.
//!
//! Codes are nine random decimal digits from the operating system's CSPRNG, single-use, and
//! expire when unused for the configured time. A code that was used, expired or withdrawn stays
//! known for a while afterwards (a tombstone), so that a technician who presents it is told what
//! happened to it rather than "unknown". Tombstones are purged after [`TOMBSTONE_TTL`], which
//! bounds the table by the rate of registrations.
//!
//! Pure: the time is an argument and the waiting agent is any value `W`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use protocol::control::{SessionCode, SESSION_CODE_DIGITS};
use rand::Rng;

/// How long a spent code is remembered.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// What became of a code that can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    Used {
        at: Instant,
    },
    Expired {
        at: Instant,
    },
    /// The agent left before anyone joined.
    Withdrawn {
        at: Instant,
    },
}

/// Why a join failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("no session has this code; check the digits with the user")]
    Unknown,
    #[error("this code expired {} ago unused; ask the user for a new one", human(*.ago))]
    Expired { ago: Duration },
    #[error("this code was already used {} ago; codes work once, ask the user for a new one", human(*.ago))]
    Used { ago: Duration },
    #[error("the user's agent that had this code left {} ago; ask the user to start it again", human(*.ago))]
    Withdrawn { ago: Duration },
}

/// "3 minutes", "40 seconds".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=1 => "a moment".into(),
        2..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        _ => format!("{} hours", s / 3600),
    }
}

struct Waiting<W> {
    agent: W,
    expires_at: Instant,
}

/// The table of codes.
pub struct Rendezvous<W> {
    waiting: HashMap<String, Waiting<W>>,
    spent: HashMap<String, Spent>,
    ttl: Duration,
}

impl<W> Rendezvous<W> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            waiting: HashMap::new(),
            spent: HashMap::new(),
            ttl,
        }
    }

    /// Issues a fresh code for `agent`. Returns the code and when it expires.
    pub fn register(
        &mut self,
        agent: W,
        now: Instant,
        rng: &mut impl Rng,
    ) -> (SessionCode, Instant) {
        let max = 10u64.pow(SESSION_CODE_DIGITS as u32);
        let digits = loop {
            let n = rng.random_range(0..max);
            let d = format!("{n:0width$}", width = SESSION_CODE_DIGITS);
            if !self.waiting.contains_key(&d) && !self.spent.contains_key(&d) {
                break d;
            }
        };
        let expires_at = now + self.ttl;
        self.waiting
            .insert(digits.clone(), Waiting { agent, expires_at });
        let code = SessionCode::from_digits(digits).expect("nine digits make a code");
        (code, expires_at)
    }

    /// Takes the agent waiting under `code`; the code is spent from then on.
    pub fn join(&mut self, code: &SessionCode, now: Instant) -> Result<W, JoinError> {
        let key = code.digits();
        if let Some(w) = self.waiting.remove(key) {
            if now >= w.expires_at {
                self.spent
                    .insert(key.to_string(), Spent::Expired { at: w.expires_at });
                return Err(JoinError::Expired {
                    ago: now - w.expires_at,
                });
            }
            self.spent.insert(key.to_string(), Spent::Used { at: now });
            return Ok(w.agent);
        }
        Err(match self.spent.get(key) {
            None => JoinError::Unknown,
            Some(Spent::Used { at }) => JoinError::Used { ago: now - *at },
            Some(Spent::Expired { at }) => JoinError::Expired { ago: now - *at },
            Some(Spent::Withdrawn { at }) => JoinError::Withdrawn { ago: now - *at },
        })
    }

    /// Expires `code` if it is still waiting and its time is up; returns its agent then.
    pub fn expire(&mut self, code: &SessionCode, now: Instant) -> Option<W> {
        let key = code.digits();
        if self.waiting.get(key).is_some_and(|w| now >= w.expires_at) {
            let w = self.waiting.remove(key)?;
            self.spent
                .insert(key.to_string(), Spent::Expired { at: w.expires_at });
            return Some(w.agent);
        }
        None
    }

    /// The agent behind `code` left before anyone joined.
    pub fn withdraw(&mut self, code: &SessionCode, now: Instant) {
        if self.waiting.remove(code.digits()).is_some() {
            self.spent
                .insert(code.digits().to_string(), Spent::Withdrawn { at: now });
        }
    }

    /// Forgets tombstones older than [`TOMBSTONE_TTL`] and turns overdue waiting codes into
    /// tombstones (their agents are dropped).
    pub fn purge(&mut self, now: Instant) {
        self.spent.retain(|_, s| {
            let (Spent::Used { at } | Spent::Expired { at } | Spent::Withdrawn { at }) = *s;
            now.saturating_duration_since(at) < TOMBSTONE_TTL
        });
        let overdue: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| now >= w.expires_at)
            .map(|(k, _)| k.clone())
            .collect();
        for k in overdue {
            if let Some(w) = self.waiting.remove(&k) {
                self.spent.insert(k, Spent::Expired { at: w.expires_at });
            }
        }
    }

    /// Codes waiting for a technician.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Spent codes still remembered.
    pub fn spent_count(&self) -> usize {
        self.spent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Rendezvous<u32>, Instant, rand::rngs::StdRng) {
        use rand::SeedableRng;
        (
            Rendezvous::new(Duration::from_secs(600)),
            Instant::now(),
            rand::rngs::StdRng::seed_from_u64(7),
        )
    }

    #[test]
    fn a_code_works_once() {
        let (mut r, t0, mut rng) = table();
        let (code, exp) = r.register(1, t0, &mut rng);
        assert_eq!(code.digits().len(), 9);
        assert_eq!(exp, t0 + Duration::from_secs(600));
        assert_eq!(r.join(&code, t0 + Duration::from_secs(5)), Ok(1));
        assert_eq!(
            r.join(&code, t0 + Duration::from_secs(65)),
            Err(JoinError::Used {
                ago: Duration::from_secs(60)
            })
        );
    }

    #[test]
    fn unknown_expired_and_withdrawn_codes_say_so() {
        let (mut r, t0, mut rng) = table();
        let other = SessionCode::parse("000000001").unwrap();
        assert_eq!(r.join(&other, t0), Err(JoinError::Unknown));
        let (a, _) = r.register(1, t0, &mut rng);
        let late = t0 + Duration::from_secs(660);
        assert_eq!(
            r.join(&a, late),
            Err(JoinError::Expired {
                ago: Duration::from_secs(60)
            })
        );
        let (b, _) = r.register(2, t0, &mut rng);
        assert_eq!(r.expire(&b, t0 + Duration::from_secs(1)), None);
        assert_eq!(r.expire(&b, t0 + Duration::from_secs(600)), Some(2));
        assert!(matches!(r.join(&b, late), Err(JoinError::Expired { .. })));
        let (c, _) = r.register(3, t0, &mut rng);
        r.withdraw(&c, t0);
        assert!(matches!(r.join(&c, t0), Err(JoinError::Withdrawn { .. })));
    }

    #[test]
    fn purge_bounds_the_table() {
        let (mut r, t0, mut rng) = table();
        for i in 0..100 {
            r.register(i, t0, &mut rng);
        }
        r.purge(t0 + Duration::from_secs(601));
        assert_eq!(r.waiting_count(), 0);
        assert_eq!(r.spent_count(), 100);
        r.purge(t0 + Duration::from_secs(601) + TOMBSTONE_TTL);
        assert_eq!(r.spent_count(), 0);
    }

    #[test]
    fn codes_are_distinct() {
        let (mut r, t0, mut rng) = table();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let (c, _) = r.register(i, t0, &mut rng);
            assert!(seen.insert(c));
        }
    }
}
