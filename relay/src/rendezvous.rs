//! Session codes: an agent registers and is given a code; a technician presents it and is handed
//! the waiting agent.
//!
//! Codes are nine random decimal digits from the operating system's CSPRNG, single-use, and
//! expire when unused for the configured time. A code that was used, expired or withdrawn stays
//! known for a while afterwards (a tombstone), so that a technician who presents it is told what
//! happened to it rather than "unknown".
//!
//! What the table holds is bounded:
//! - each source (see [`crate::limits::source_of`]) may be given
//!   [`Limits::registrations_per_minute`] codes a minute and hold
//!   [`Limits::max_waiting_per_source`] codes waiting at once;
//! - tombstones are forgotten after [`TOMBSTONE_TTL`], and beyond [`MAX_TOMBSTONES`] the oldest
//!   are forgotten first.
//!
//! [`Rendezvous::purge`] costs what it removes, not the size of the table: waiting codes are
//! kept in order of expiry and tombstones in the order they are forgotten, and it takes from the
//! front of each until the first that is not due.
//!
//! Pure: the time is an argument and the waiting agent is any value `W`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use protocol::control::{SessionCode, SESSION_CODE_DIGITS};
use rand::Rng;

use crate::limits::Source;
use crate::ratelimit::RateLimiter;

/// How long a spent code is remembered: as long as a code waits by default. A technician later
/// than that is told the code is unknown, which leads to the same advice: ask for a new one.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

/// Spent codes remembered at most; past it the oldest are forgotten first. Each costs well under
/// 200 bytes, so the tombstones take a few megabytes at most, and legitimate use comes nowhere
/// near: twenty thousand codes spent within [`TOMBSTONE_TTL`] is more than thirty a second.
pub const MAX_TOMBSTONES: usize = 20_000;

/// The window [`Limits::registrations_per_minute`] counts in.
const MINUTE: Duration = Duration::from_secs(60);

/// What one source may ask of the table (from the relay's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Codes one source may hold waiting at once.
    pub max_waiting_per_source: usize,
    /// Codes one source may be given per minute: all of them at once, then one each
    /// `60 / registrations_per_minute` seconds.
    pub registrations_per_minute: u32,
}

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

impl Spent {
    fn at(self) -> Instant {
        let (Spent::Used { at } | Spent::Expired { at } | Spent::Withdrawn { at }) = self;
        at
    }
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

/// Why a registration was refused. Either way the source may try again after
/// [`RegisterError::retry_after_secs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("too many session codes asked from {origin}; try again in {retry_after_secs} seconds")]
    TooOften {
        origin: Source,
        retry_after_secs: u32,
    },
    #[error(
        "{origin} already has {waiting} session codes waiting, the most this relay allows; \
         close one of those agents, or try again when one expires (within {})",
        human(Duration::from_secs(u64::from(*.retry_after_secs)))
    )]
    TooManyWaiting {
        origin: Source,
        waiting: usize,
        retry_after_secs: u32,
    },
}

impl RegisterError {
    pub fn retry_after_secs(&self) -> u32 {
        match *self {
            RegisterError::TooOften {
                retry_after_secs, ..
            }
            | RegisterError::TooManyWaiting {
                retry_after_secs, ..
            } => retry_after_secs,
        }
    }
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

/// Whole seconds to wait, at least one, so that waiting them is enough.
fn whole_secs(d: Duration) -> u32 {
    d.as_secs_f64().ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// A code waiting for a technician.
struct Waiting<W> {
    agent: W,
    source: Source,
    expires_at: Instant,
}

/// What one [`Rendezvous::purge`] removed; that is all the work it did, besides one look at the
/// first entry of each queue that was not due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Waiting codes past their time, now tombstones (their agents dropped).
    pub expired: usize,
    /// Tombstones past [`TOMBSTONE_TTL`], forgotten.
    pub forgotten: usize,
    /// Sources whose registration count is back to nothing, forgotten.
    pub sources: usize,
}

/// The table of codes.
pub struct Rendezvous<W> {
    waiting: HashMap<String, Waiting<W>>,
    /// Every waiting code, by when it expires.
    expiries: BTreeSet<(Instant, String)>,
    /// Waiting codes per source; a source with none has no entry.
    waiting_by_source: HashMap<Source, usize>,
    spent: HashMap<String, Spent>,
    /// Every tombstone, by when it is forgotten (never decreasing from front to back).
    forget: VecDeque<(Instant, String)>,
    /// Registrations per source, at the rate `registrations_rate`.
    registrations: RateLimiter<Source>,
    registrations_rate: u32,
    ttl: Duration,
}

impl<W> Rendezvous<W> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            waiting: HashMap::new(),
            expiries: BTreeSet::new(),
            waiting_by_source: HashMap::new(),
            spent: HashMap::new(),
            forget: VecDeque::new(),
            registrations: RateLimiter::new(0, MINUTE),
            registrations_rate: 0,
            ttl,
        }
    }

    /// Issues a fresh code for `agent`, which asked from `source`, unless that source is over
    /// one of `limits`. Returns the code and when it expires.
    ///
    /// The limits come with each registration, from the relay's configuration; should their
    /// rate change, every source's count starts afresh.
    pub fn register(
        &mut self,
        agent: W,
        source: Source,
        limits: Limits,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<(SessionCode, Instant), RegisterError> {
        // A source at its cap spends no registration: the count is of codes given.
        let held = self.waiting_by_source.get(&source).copied().unwrap_or(0);
        if held >= limits.max_waiting_per_source {
            return Err(RegisterError::TooManyWaiting {
                origin: source,
                waiting: held,
                retry_after_secs: whole_secs(self.ttl),
            });
        }
        if limits.registrations_per_minute != self.registrations_rate {
            self.registrations_rate = limits.registrations_per_minute;
            self.registrations = RateLimiter::new(self.registrations_rate, MINUTE);
        }
        if let Err(wait) = self.registrations.attempt(&source, now) {
            return Err(RegisterError::TooOften {
                origin: source,
                retry_after_secs: whole_secs(wait),
            });
        }
        let max = 10u64.pow(SESSION_CODE_DIGITS as u32);
        let digits = loop {
            let n = rng.random_range(0..max);
            let d = format!("{n:0width$}", width = SESSION_CODE_DIGITS);
            if !self.waiting.contains_key(&d) && !self.spent.contains_key(&d) {
                break d;
            }
        };
        let expires_at = now + self.ttl;
        self.expiries.insert((expires_at, digits.clone()));
        *self.waiting_by_source.entry(source).or_insert(0) += 1;
        self.waiting.insert(
            digits.clone(),
            Waiting {
                agent,
                source,
                expires_at,
            },
        );
        let code = SessionCode::from_digits(digits).expect("nine digits make a code");
        Ok((code, expires_at))
    }

    /// Takes the agent waiting under `code`; the code is spent from then on.
    pub fn join(&mut self, code: &SessionCode, now: Instant) -> Result<W, JoinError> {
        let key = code.digits();
        if let Some(w) = self.take_waiting(key) {
            if now >= w.expires_at {
                self.bury(key.to_string(), Spent::Expired { at: w.expires_at });
                return Err(JoinError::Expired {
                    ago: now - w.expires_at,
                });
            }
            self.bury(key.to_string(), Spent::Used { at: now });
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
            let w = self.take_waiting(key)?;
            self.bury(key.to_string(), Spent::Expired { at: w.expires_at });
            return Some(w.agent);
        }
        None
    }

    /// The agent behind `code` left before anyone joined.
    pub fn withdraw(&mut self, code: &SessionCode, now: Instant) {
        if self.take_waiting(code.digits()).is_some() {
            self.bury(code.digits().to_string(), Spent::Withdrawn { at: now });
        }
    }

    /// Turns overdue waiting codes into tombstones (their agents are dropped), forgets
    /// tombstones older than [`TOMBSTONE_TTL`] and sources whose registrations are forgiven.
    /// Looks at nothing that is not due (see [`Purged`]).
    pub fn purge(&mut self, now: Instant) -> Purged {
        let mut purged = Purged::default();
        while self.expiries.first().is_some_and(|(at, _)| *at <= now) {
            let (_, key) = self.expiries.pop_first().expect("a first entry");
            if let Some(w) = self.waiting.remove(&key) {
                self.release(w.source);
                self.bury(key, Spent::Expired { at: w.expires_at });
                purged.expired += 1;
            }
        }
        while self.forget.front().is_some_and(|(at, _)| *at <= now) {
            self.forget_oldest();
            purged.forgotten += 1;
        }
        purged.sources = self.registrations.purge(now);
        purged
    }

    /// Removes a waiting code with its place in the expiry order and its source's count.
    fn take_waiting(&mut self, key: &str) -> Option<Waiting<W>> {
        let w = self.waiting.remove(key)?;
        self.expiries.remove(&(w.expires_at, key.to_string()));
        self.release(w.source);
        Some(w)
    }

    /// One code fewer waiting from `source`.
    fn release(&mut self, source: Source) {
        if let Some(n) = self.waiting_by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.waiting_by_source.remove(&source);
            }
        }
    }

    /// Remembers `key` as `spent` for [`TOMBSTONE_TTL`], forgetting the oldest tombstone when
    /// there are more than [`MAX_TOMBSTONES`].
    fn bury(&mut self, key: String, spent: Spent) {
        // Kept in order even if the times come a little out of it (from callers' clocks read
        // before they took the lock): a tombstone is then kept a little longer, never less.
        let latest = self.forget.back().map(|(at, _)| *at);
        let forget_at = latest.map_or(spent.at() + TOMBSTONE_TTL, |latest| {
            latest.max(spent.at() + TOMBSTONE_TTL)
        });
        self.forget.push_back((forget_at, key.clone()));
        self.spent.insert(key, spent);
        while self.forget.len() > MAX_TOMBSTONES {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.forget.pop_front() {
            self.spent.remove(&key);
        }
    }

    /// Codes waiting for a technician.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Codes `source` holds waiting.
    pub fn waiting_from(&self, source: Source) -> usize {
        self.waiting_by_source.get(&source).copied().unwrap_or(0)
    }

    /// Spent codes still remembered.
    pub fn spent_count(&self) -> usize {
        self.spent.len()
    }
}

#[cfg(test)]
impl<W> Rendezvous<W> {
    /// Asserts that the queues and counts mirror the tables they order and count.
    fn check(&self) {
        let expiries: BTreeSet<(Instant, String)> = self
            .waiting
            .iter()
            .map(|(k, w)| (w.expires_at, k.clone()))
            .collect();
        assert_eq!(self.expiries, expiries, "one expiry entry per waiting code");
        let mut by_source = HashMap::new();
        for w in self.waiting.values() {
            *by_source.entry(w.source).or_insert(0) += 1;
        }
        assert_eq!(
            self.waiting_by_source, by_source,
            "waiting codes per source"
        );
        assert_eq!(
            self.forget.len(),
            self.spent.len(),
            "one entry per tombstone"
        );
        assert!(self.forget.iter().all(|(_, k)| self.spent.contains_key(k)));
        assert!(
            self.forget
                .iter()
                .zip(self.forget.iter().skip(1))
                .all(|(a, b)| a.0 <= b.0),
            "tombstones in the order they are forgotten"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Source = Source::V4([10, 0, 0, 1]);
    const OTHER: Source = Source::V4([10, 0, 0, 2]);
    const TTL: Duration = Duration::from_secs(600);
    /// Limits no test meets unless it means to.
    const AMPLE: Limits = Limits {
        max_waiting_per_source: usize::MAX,
        registrations_per_minute: u32::MAX,
    };

    fn table() -> (Rendezvous<u32>, Instant, rand::rngs::StdRng) {
        use rand::SeedableRng;
        (
            Rendezvous::new(TTL),
            Instant::now(),
            rand::rngs::StdRng::seed_from_u64(7),
        )
    }

    /// Registers `agent` from [`HOME`] within [`AMPLE`] limits.
    fn register(
        r: &mut Rendezvous<u32>,
        agent: u32,
        now: Instant,
        rng: &mut rand::rngs::StdRng,
    ) -> SessionCode {
        r.register(agent, HOME, AMPLE, now, rng).unwrap().0
    }

    #[test]
    fn a_code_works_once() {
        let (mut r, t0, mut rng) = table();
        let (code, exp) = r.register(1, HOME, AMPLE, t0, &mut rng).unwrap();
        assert_eq!(code.digits().len(), 9);
        assert_eq!(exp, t0 + TTL);
        assert_eq!(r.join(&code, t0 + Duration::from_secs(5)), Ok(1));
        assert_eq!(
            r.join(&code, t0 + Duration::from_secs(65)),
            Err(JoinError::Used {
                ago: Duration::from_secs(60)
            })
        );
        r.check();
    }

    #[test]
    fn unknown_expired_and_withdrawn_codes_say_so() {
        let (mut r, t0, mut rng) = table();
        let other = SessionCode::parse("000000001").unwrap();
        assert_eq!(r.join(&other, t0), Err(JoinError::Unknown));
        let a = register(&mut r, 1, t0, &mut rng);
        let late = t0 + Duration::from_secs(660);
        assert_eq!(
            r.join(&a, late),
            Err(JoinError::Expired {
                ago: Duration::from_secs(60)
            })
        );
        let b = register(&mut r, 2, t0, &mut rng);
        assert_eq!(r.expire(&b, t0 + Duration::from_secs(1)), None);
        assert_eq!(r.expire(&b, t0 + TTL), Some(2));
        assert!(matches!(r.join(&b, late), Err(JoinError::Expired { .. })));
        let c = register(&mut r, 3, t0, &mut rng);
        r.withdraw(&c, t0);
        assert!(matches!(r.join(&c, t0), Err(JoinError::Withdrawn { .. })));
        r.check();
    }

    #[test]
    fn a_source_is_given_its_registrations_per_minute_and_no_more() {
        let (mut r, t0, mut rng) = table();
        let limits = Limits {
            registrations_per_minute: 3,
            ..AMPLE
        };
        for i in 0..3 {
            r.register(i, HOME, limits, t0, &mut rng).unwrap();
        }
        let refused = r.register(9, HOME, limits, t0, &mut rng).unwrap_err();
        assert_eq!(
            refused,
            RegisterError::TooOften {
                origin: HOME,
                retry_after_secs: 20
            }
        );
        assert_eq!(
            refused.to_string(),
            "too many session codes asked from 10.0.0.1; try again in 20 seconds"
        );
        assert_eq!(refused.retry_after_secs(), 20);
        assert_eq!(r.waiting_count(), 3, "a refused registration holds nothing");
        assert!(
            r.register(4, OTHER, limits, t0, &mut rng).is_ok(),
            "other sources are not affected"
        );
        let later = t0 + Duration::from_secs(20);
        assert!(r.register(5, HOME, limits, later, &mut rng).is_ok());
        assert!(r.register(6, HOME, limits, later, &mut rng).is_err());
        r.check();
    }

    #[test]
    fn a_source_holds_its_cap_of_waiting_codes_and_each_way_out_frees_a_place() {
        let (mut r, t0, mut rng) = table();
        let limits = Limits {
            max_waiting_per_source: 2,
            ..AMPLE
        };
        let full = |r: &mut Rendezvous<u32>, rng: &mut _, now| {
            r.register(0, HOME, limits, now, rng).unwrap_err()
        };
        let a = r.register(1, HOME, limits, t0, &mut rng).unwrap().0;
        let b = r.register(2, HOME, limits, t0, &mut rng).unwrap().0;
        let refused = full(&mut r, &mut rng, t0);
        assert_eq!(
            refused,
            RegisterError::TooManyWaiting {
                origin: HOME,
                waiting: 2,
                retry_after_secs: 600
            }
        );
        assert!(
            refused
                .to_string()
                .starts_with("10.0.0.1 already has 2 session codes waiting"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("within 10 minutes"),
            "{refused}"
        );
        assert!(r.register(3, OTHER, limits, t0, &mut rng).is_ok());
        assert_eq!((r.waiting_from(HOME), r.waiting_from(OTHER)), (2, 1));

        // Paired: a place comes back.
        assert_eq!(r.join(&a, t0), Ok(1));
        let c = r.register(4, HOME, limits, t0, &mut rng).unwrap().0;
        full(&mut r, &mut rng, t0);
        // Withdrawn.
        r.withdraw(&c, t0);
        let d = r.register(5, HOME, limits, t0, &mut rng).unwrap().0;
        full(&mut r, &mut rng, t0);
        // Expired by its agent's task, then by the purge.
        let t1 = t0 + TTL;
        assert_eq!(r.expire(&b, t1), Some(2));
        let e = r.register(6, HOME, limits, t1, &mut rng).unwrap().0;
        full(&mut r, &mut rng, t1);
        assert_eq!(r.purge(t1).expired, 2, "d and OTHER's code");
        assert_eq!((r.waiting_from(HOME), r.waiting_from(OTHER)), (1, 0));
        r.register(7, HOME, limits, t1, &mut rng).unwrap();
        full(&mut r, &mut rng, t1);
        // An expired code presented late frees its place too.
        assert!(matches!(
            r.join(&e, t1 + TTL),
            Err(JoinError::Expired { .. })
        ));
        assert_eq!(r.waiting_from(HOME), 1);
        assert!(matches!(r.join(&d, t1), Err(JoinError::Expired { .. })));
        r.check();
    }

    #[test]
    fn tombstones_are_forgotten_after_their_time_and_the_oldest_first_past_the_cap() {
        let (mut r, t0, mut rng) = table();
        let codes: Vec<SessionCode> = (0..MAX_TOMBSTONES + 10)
            .map(|i| {
                let code = register(&mut r, i as u32, t0, &mut rng);
                r.withdraw(&code, t0);
                code
            })
            .collect();
        assert_eq!(r.spent_count(), MAX_TOMBSTONES);
        assert_eq!(r.join(&codes[9], t0), Err(JoinError::Unknown), "forgotten");
        assert!(matches!(
            r.join(&codes[10], t0),
            Err(JoinError::Withdrawn { .. })
        ));
        r.check();

        let used = register(&mut r, 0, t0 + Duration::from_secs(1), &mut rng);
        r.join(&used, t0 + Duration::from_secs(1)).unwrap();
        let purged = r.purge(t0 + TOMBSTONE_TTL);
        assert_eq!(purged.forgotten, MAX_TOMBSTONES - 1, "all but the last");
        assert!(matches!(
            r.join(&used, t0 + TOMBSTONE_TTL),
            Err(JoinError::Used { .. })
        ));
        r.purge(t0 + TOMBSTONE_TTL + Duration::from_secs(1));
        assert_eq!(r.spent_count(), 0);
        assert_eq!(r.join(&used, t0), Err(JoinError::Unknown));
        r.check();
    }

    #[test]
    fn purge_takes_only_what_is_due() {
        // Many codes, yet all their tombstones within MAX_TOMBSTONES.
        const N: u32 = 5_000;
        let (mut r, t0, mut rng) = table();
        let early: Vec<SessionCode> = (0..3).map(|i| register(&mut r, i, t0, &mut rng)).collect();
        let t1 = t0 + Duration::from_secs(60);
        r.withdraw(&early[0], t1);
        for i in 0..N {
            register(&mut r, i, t1, &mut rng);
            let spent = register(&mut r, i, t1, &mut rng);
            r.withdraw(&spent, t1);
        }
        r.check();
        // Due: the two codes of t0 still waiting. Not due: any tombstone, and the codes of t1.
        // The purge stops at the first entry of each queue that is not due.
        let purged = r.purge(t0 + TTL);
        assert_eq!((purged.expired, purged.forgotten), (2, 0));
        assert_eq!(
            (r.waiting_count(), r.spent_count()),
            (N as usize, N as usize + 3)
        );
        r.check();
        // Nothing due: nothing done.
        assert_eq!(r.purge(t0 + TTL), Purged::default());
        // The waiting codes of t1 and the withdrawn tombstones of t1 (both live ten minutes),
        // then the tombstones of the expired codes.
        assert_eq!(TTL, TOMBSTONE_TTL);
        let purged = r.purge(t1 + TTL);
        assert_eq!(
            (purged.expired, purged.forgotten),
            (N as usize, N as usize + 1)
        );
        r.check();
        assert_eq!(r.purge(t1 + TTL + TOMBSTONE_TTL).forgotten, N as usize + 2);
        assert_eq!((r.waiting_count(), r.spent_count()), (0, 0));
        r.check();
    }

    #[test]
    fn purge_bounds_the_table() {
        let (mut r, t0, mut rng) = table();
        let limits = Limits {
            registrations_per_minute: 100,
            ..AMPLE
        };
        for i in 0..100 {
            r.register(i, HOME, limits, t0, &mut rng).unwrap();
        }
        let purged = r.purge(t0 + Duration::from_secs(601));
        assert_eq!(r.waiting_count(), 0);
        assert_eq!(r.spent_count(), 100);
        assert_eq!(
            purged.sources, 1,
            "HOME's registrations are forgiven after a minute"
        );
        r.purge(t0 + Duration::from_secs(601) + TOMBSTONE_TTL);
        assert_eq!(r.spent_count(), 0);
        r.check();
    }

    #[test]
    fn codes_are_distinct() {
        let (mut r, t0, mut rng) = table();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let c = register(&mut r, i, t0, &mut rng);
            assert!(seen.insert(c));
        }
    }
}
