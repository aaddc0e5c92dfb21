//! The support desk's queue of help requests: a pure state machine driven by events.
//!
//! A user files a help request from the agent (a description, the machine's name and OS, an
//! optional ticket number of the desk's own system); it waits in the queue of tier 1. A
//! technician sees the requests of their tier and of the tiers below, oldest first, and takes
//! one: a request is taken by exactly one technician, however many try at once. Every change is
//! an [`Event`] with its time and who caused it; [`Desk::apply`] is the only way the state
//! changes, so the state after a relay restart is the state the stored events replay to, and the
//! desk's figures can be computed from the events alone. [`Journal`] stores them in the relay's
//! database, in order, and never rewrites one; a [`Replica`] is the desk as one relay sees it,
//! kept in step with the journal that other relays on the same database append to.
//!
//! A request's life: filed (tier 1's queue), perhaps offered to one technician by routing and
//! declined, perhaps overflowed into the next tier's queue after waiting too long; taken; then
//! escalated (into another tier's queue, or to one technician, with a note), held (parked in the
//! taker's own queue), returned (its session died without a word) or closed (resolved or not).
//! While it waits the user may cancel it; it is abandoned when its agent stays away too long.
//! After a session the user may answer a survey once.
//!
//! Commands ([`Desk::file`], [`Desk::take`], [`Desk::escalate`], …) check the state and return
//! the event to store and apply, or why they cannot be done. Times are milliseconds since the
//! Unix epoch, given by the caller. [`report`] computes the desk's figures from the events.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub mod journal;
pub mod report;

pub use journal::{Journal, JournalError, Replica};

/// Longest description kept, in characters; longer ones are cut.
pub const MAX_DESCRIPTION: usize = 500;
/// Longest machine name, OS and ticket number kept, in characters.
pub const MAX_FIELD: usize = 100;
/// Requests waiting at once, over all tiers: a filing beyond is refused.
pub const MAX_WAITING: usize = 10_000;
/// The highest tier.
pub const MAX_TIER: u8 = 3;

/// What a user asks for, as filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    pub description: String,
    pub machine: String,
    pub os: String,
    pub ticket: Option<String>,
}

impl Filing {
    /// The filing with every field trimmed, bounded and printable (see
    /// [`protocol::text::tame`]); an empty ticket is none.
    pub fn tamed(self) -> Self {
        use protocol::text::tame;
        Self {
            description: tame(self.description.trim(), MAX_DESCRIPTION),
            machine: tame(self.machine.trim(), MAX_FIELD),
            os: tame(self.os.trim(), MAX_FIELD),
            ticket: self
                .ticket
                .map(|t| tame(t.trim(), MAX_FIELD))
                .filter(|t| !t.is_empty()),
        }
    }
}

/// Where an escalation sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The queue of a tier, for any of its technicians.
    Tier(u8),
    /// One technician (of the given tier): only they see and take it.
    Technician { name: String, tier: u8 },
}

impl Target {
    pub fn tier(&self) -> u8 {
        match self {
            Target::Tier(t) | Target::Technician { tier: t, .. } => *t,
        }
    }
}

/// One change of the desk, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Filed {
        id: u64,
        at: u64,
        tier: u8,
        filing: Filing,
        /// SHA-256 (hex) of the secret the agent takes the request back with after a dropped
        /// connection.
        secret_hash: String,
    },
    /// Routing offered the waiting request to one technician, who accepts (takes it) or
    /// declines within the tier's time limit.
    Offered { id: u64, at: u64, to: String },
    /// The technician it was offered to said no, or let the time limit pass (`timed_out`).
    Declined {
        id: u64,
        at: u64,
        by: String,
        timed_out: bool,
    },
    Taken {
        id: u64,
        at: u64,
        by: String,
        /// The relay whose session serves it (see [`journal::Replica`]); none in events
        /// stored before relays named themselves.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<String>,
    },
    /// The technician who had it passed it up, with a note for whoever takes it next; it waits
    /// again in `to`'s queue. `session` is the ledger's session so far.
    Escalated {
        id: u64,
        at: u64,
        by: String,
        to: Target,
        note: String,
        session: String,
    },
    /// The technician who had it parked it in their own queue, to take it back later.
    Held {
        id: u64,
        at: u64,
        by: String,
        note: String,
        session: String,
    },
    /// It waited longer than its tier allows and moved on to the queue of `tier`.
    Overflowed { id: u64, at: u64, tier: u8 },
    /// The technician who had it ended the work on it, solved or not.
    Closed {
        id: u64,
        at: u64,
        by: String,
        resolved: bool,
        note: String,
    },
    /// The session ended without its technician passing the request on or closing it (their
    /// connection died, or the relay restarted): it waits again at the head of its queue.
    Returned { id: u64, at: u64, why: String },
    /// The user withdrew the request while it waited.
    Cancelled { id: u64, at: u64 },
    /// The request waited without its agent for longer than the relay keeps such requests.
    Abandoned { id: u64, at: u64 },
    /// The user answered the one-question survey after the session: 1 (bad) to 5 (very good).
    Surveyed {
        id: u64,
        at: u64,
        score: u8,
        comment: String,
    },
}

impl Event {
    pub fn id(&self) -> u64 {
        match self {
            Event::Filed { id, .. }
            | Event::Offered { id, .. }
            | Event::Declined { id, .. }
            | Event::Taken { id, .. }
            | Event::Escalated { id, .. }
            | Event::Held { id, .. }
            | Event::Overflowed { id, .. }
            | Event::Closed { id, .. }
            | Event::Returned { id, .. }
            | Event::Cancelled { id, .. }
            | Event::Abandoned { id, .. }
            | Event::Surveyed { id, .. } => *id,
        }
    }

    pub fn at(&self) -> u64 {
        match self {
            Event::Filed { at, .. }
            | Event::Offered { at, .. }
            | Event::Declined { at, .. }
            | Event::Taken { at, .. }
            | Event::Escalated { at, .. }
            | Event::Held { at, .. }
            | Event::Overflowed { at, .. }
            | Event::Closed { at, .. }
            | Event::Returned { at, .. }
            | Event::Cancelled { at, .. }
            | Event::Abandoned { at, .. }
            | Event::Surveyed { at, .. } => *at,
        }
    }

    /// The event's kind, as stored beside it for queries.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Filed { .. } => "filed",
            Event::Offered { .. } => "offered",
            Event::Declined { .. } => "declined",
            Event::Taken { .. } => "taken",
            Event::Escalated { .. } => "escalated",
            Event::Held { .. } => "held",
            Event::Overflowed { .. } => "overflowed",
            Event::Closed { .. } => "closed",
            Event::Returned { .. } => "returned",
            Event::Cancelled { .. } => "cancelled",
            Event::Abandoned { .. } => "abandoned",
            Event::Surveyed { .. } => "surveyed",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum State {
    Waiting,
    Taken { by: String, at: u64 },
    Closed { by: String, at: u64, resolved: bool },
    Cancelled { at: u64 },
    Abandoned { at: u64 },
}

/// What the technician before left for whoever takes the request next (an escalation or a hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handoff {
    pub by: String,
    pub note: String,
    /// The ledger's identifier of the session so far (its log is fetched under it).
    pub session: String,
    pub held: bool,
}

/// A request as the desk holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub id: u64,
    pub filed_at: u64,
    /// The tier whose queue it waits in (or waited in last).
    pub tier: u8,
    /// When it entered that queue (filed, overflowed, escalated or held).
    pub queued_at: u64,
    pub filing: Filing,
    pub state: State,
    /// Only this technician sees and takes it (escalated to them, or their own held request).
    pub reserved_for: Option<String>,
    /// The last escalation or hold.
    pub handoff: Option<Handoff>,
    /// The technician routing offered it to, and when.
    pub offered: Option<(String, u64)>,
    /// Who declined it (routing does not offer it to them again).
    pub declined: Vec<String>,
    pub surveyed: bool,
    /// When it was last taken.
    pub last_taken: Option<u64>,
    /// The relay it was last taken through, whose session serves it while it is taken.
    pub taken_through: Option<String>,
    secret_hash: String,
}

impl Request {
    /// Whether a technician named `name` of `tier` may see and take it while it waits.
    pub fn open_to(&self, name: &str, tier: u8) -> bool {
        open_to(self.tier, self.reserved_for.as_deref(), name, tier)
    }
}

/// Whether a technician named `name` of `tier` may see and take a request waiting for tier
/// `waits_for` (and reserved for one technician, if so).
pub fn open_to(waits_for: u8, reserved_for: Option<&str>, name: &str, tier: u8) -> bool {
    waits_for <= tier && reserved_for.is_none_or(|r| r == name)
}

/// Why a command cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    #[error("there is no help request {0}")]
    Unknown(u64),
    #[error("help request {id} was already taken by {by}")]
    AlreadyTaken { id: u64, by: String },
    #[error("help request {0} was cancelled by the user")]
    Cancelled(u64),
    #[error("help request {0} is closed")]
    Closed(u64),
    #[error("help request {id} waits for tier {tier}; a tier {yours} technician cannot take it")]
    AboveTier { id: u64, tier: u8, yours: u8 },
    #[error("help request {id} waits for {name} only")]
    Reserved { id: u64, name: String },
    #[error("help request {id} is not {name}'s to pass on or close")]
    NotYours { id: u64, name: String },
    #[error("help request {0} is not in a technician's hands")]
    NotTaken(u64),
    #[error("there is no tier {0}: tiers are 1 to {MAX_TIER}")]
    NoTier(u8),
    #[error("the survey of help request {0} was answered already, or its session has not begun")]
    NoSurvey(u64),
    #[error("a survey answer is 1 to 5, not {0}")]
    BadScore(u8),
    #[error("no help request is waiting for tier {0} or below")]
    NoneWaiting(u8),
    #[error("{0} help requests are waiting already; try again later")]
    Full(usize),
    #[error("the stored desk events are out of order: {0}")]
    Replay(String),
}

/// The queue of help requests. See the module's words.
#[derive(Debug, Default)]
pub struct Desk {
    /// Every request, by id (ids are given in filing order).
    requests: BTreeMap<u64, Request>,
    /// Waiting ids by tier, oldest filing first (ids grow with time), so a request that comes
    /// back to a queue (held, escalated) is near its head.
    waiting: [std::collections::BTreeSet<u64>; MAX_TIER as usize],
    next_id: u64,
}

/// Longest note of an escalation, hold or closing kept, in characters.
pub const MAX_NOTE: usize = 1000;

impl Desk {
    pub fn new() -> Self {
        Self {
            next_id: 1,
            ..Self::default()
        }
    }

    /// The desk the events replay to.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Self, DeskError> {
        let mut desk = Self::new();
        for e in events {
            desk.check(e)?;
            desk.apply(e);
        }
        Ok(desk)
    }

    /// Whether `event` may follow the state as it is (what [`Desk::replay`] insists on).
    pub fn check(&self, event: &Event) -> Result<(), DeskError> {
        let id = event.id();
        let state = self.requests.get(&id).map(|r| &r.state);
        let ok = match event {
            Event::Filed { tier, .. } => id >= self.next_id && (1..=MAX_TIER).contains(tier),
            Event::Offered { .. }
            | Event::Declined { .. }
            | Event::Taken { .. }
            | Event::Overflowed { .. }
            | Event::Cancelled { .. }
            | Event::Abandoned { .. } => state == Some(&State::Waiting),
            Event::Escalated { .. }
            | Event::Held { .. }
            | Event::Closed { .. }
            | Event::Returned { .. } => {
                matches!(state, Some(State::Taken { .. }))
            }
            Event::Surveyed { .. } => {
                matches!(state, Some(State::Taken { .. } | State::Closed { .. }))
                    && !self.requests[&id].surveyed
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DeskError::Replay(format!(
                "request {id} {} while {}",
                event.kind(),
                match state {
                    None => "unknown".to_string(),
                    Some(s) => format!("{s:?}"),
                }
            )))
        }
    }

    /// Puts request `id` in `tier`'s queue from `at` on.
    fn enqueue(&mut self, id: u64, tier: u8, at: u64, reserved_for: Option<String>) {
        if let Some(r) = self.requests.get_mut(&id) {
            self.waiting[usize::from(r.tier - 1)].remove(&id);
            r.tier = tier;
            r.queued_at = at;
            r.state = State::Waiting;
            r.reserved_for = reserved_for;
            r.offered = None;
            r.declined.clear();
            self.waiting[usize::from(tier - 1)].insert(id);
        }
    }

    /// Takes request `id` out of the queues, into `state`.
    fn dequeue(&mut self, id: u64, state: State) {
        if let Some(r) = self.requests.get_mut(&id) {
            self.waiting[usize::from(r.tier - 1)].remove(&id);
            r.state = state;
            r.offered = None;
        }
    }

    /// Changes the state by `event`, which a command of this desk returned (or which replays
    /// one it returned before).
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Filed {
                id,
                at,
                tier,
                filing,
                secret_hash,
            } => {
                self.next_id = self.next_id.max(id + 1);
                self.waiting[usize::from(tier - 1)].insert(*id);
                self.requests.insert(
                    *id,
                    Request {
                        id: *id,
                        filed_at: *at,
                        tier: *tier,
                        queued_at: *at,
                        filing: filing.clone(),
                        state: State::Waiting,
                        reserved_for: None,
                        handoff: None,
                        offered: None,
                        declined: Vec::new(),
                        surveyed: false,
                        last_taken: None,
                        taken_through: None,
                        secret_hash: secret_hash.clone(),
                    },
                );
            }
            Event::Offered { id, at, to } => {
                if let Some(r) = self.requests.get_mut(id) {
                    r.offered = Some((to.clone(), *at));
                }
            }
            Event::Declined { id, by, .. } => {
                if let Some(r) = self.requests.get_mut(id) {
                    r.offered = None;
                    if !r.declined.contains(by) {
                        r.declined.push(by.clone());
                    }
                }
            }
            Event::Taken { id, at, by, relay } => {
                self.dequeue(
                    *id,
                    State::Taken {
                        by: by.clone(),
                        at: *at,
                    },
                );
                if let Some(r) = self.requests.get_mut(id) {
                    r.last_taken = Some(*at);
                    r.taken_through = relay.clone();
                }
            }
            Event::Escalated {
                id,
                at,
                by,
                to,
                note,
                session,
            } => {
                let reserved = match to {
                    Target::Tier(_) => None,
                    Target::Technician { name, .. } => Some(name.clone()),
                };
                self.enqueue(*id, to.tier(), *at, reserved);
                if let Some(r) = self.requests.get_mut(id) {
                    r.handoff = Some(Handoff {
                        by: by.clone(),
                        note: note.clone(),
                        session: session.clone(),
                        held: false,
                    });
                }
            }
            Event::Held {
                id,
                at,
                by,
                note,
                session,
            } => {
                let tier = self.requests.get(id).map_or(1, |r| r.tier);
                self.enqueue(*id, tier, *at, Some(by.clone()));
                if let Some(r) = self.requests.get_mut(id) {
                    r.handoff = Some(Handoff {
                        by: by.clone(),
                        note: note.clone(),
                        session: session.clone(),
                        held: true,
                    });
                }
            }
            Event::Overflowed { id, at, tier } => {
                let reserved = self.requests.get(id).and_then(|r| r.reserved_for.clone());
                self.enqueue(*id, *tier, *at, reserved);
            }
            Event::Closed {
                id,
                at,
                by,
                resolved,
                ..
            } => self.dequeue(
                *id,
                State::Closed {
                    by: by.clone(),
                    at: *at,
                    resolved: *resolved,
                },
            ),
            Event::Returned { id, at, .. } => {
                let tier = self.requests.get(id).map_or(1, |r| r.tier);
                self.enqueue(*id, tier, *at, None);
            }
            Event::Cancelled { id, at } => self.dequeue(*id, State::Cancelled { at: *at }),
            Event::Abandoned { id, at } => self.dequeue(*id, State::Abandoned { at: *at }),
            Event::Surveyed { id, .. } => {
                if let Some(r) = self.requests.get_mut(id) {
                    r.surveyed = true;
                }
            }
        }
    }

    fn waiting_request(&self, id: u64) -> Result<&Request, DeskError> {
        let r = self.requests.get(&id).ok_or(DeskError::Unknown(id))?;
        match &r.state {
            State::Waiting => Ok(r),
            State::Taken { by, .. } => Err(DeskError::AlreadyTaken { id, by: by.clone() }),
            State::Cancelled { .. } => Err(DeskError::Cancelled(id)),
            State::Closed { .. } | State::Abandoned { .. } => Err(DeskError::Closed(id)),
        }
    }

    /// The request `by` has taken now, to pass on or close.
    fn taken_by(&self, id: u64, by: &str) -> Result<&Request, DeskError> {
        let r = self.requests.get(&id).ok_or(DeskError::Unknown(id))?;
        match &r.state {
            State::Taken { by: holder, .. } if holder == by => Ok(r),
            _ => Err(DeskError::NotYours {
                id,
                name: by.to_string(),
            }),
        }
    }

    /// Files a request in tier 1's queue; `secret` is what its agent takes it back with.
    pub fn file(&self, filing: Filing, secret: &str, at: u64) -> Result<Event, DeskError> {
        let waiting = self.waiting_count();
        if waiting >= MAX_WAITING {
            return Err(DeskError::Full(waiting));
        }
        Ok(Event::Filed {
            id: self.next_id,
            at,
            tier: 1,
            filing: filing.tamed(),
            secret_hash: hash_secret(secret),
        })
    }

    /// `by` (of `tier`) takes request `id`.
    pub fn take(&self, id: u64, by: &str, tier: u8, at: u64) -> Result<Event, DeskError> {
        let r = self.waiting_request(id)?;
        if r.tier > tier {
            return Err(DeskError::AboveTier {
                id,
                tier: r.tier,
                yours: tier,
            });
        }
        if let Some(name) = r.reserved_for.as_ref().filter(|n| *n != by) {
            return Err(DeskError::Reserved {
                id,
                name: name.clone(),
            });
        }
        Ok(Event::Taken {
            id,
            at,
            by: by.to_string(),
            relay: None,
        })
    }

    /// `by` (of `tier`) takes the oldest request waiting for their tier or below.
    pub fn take_next(&self, by: &str, tier: u8, at: u64) -> Result<Event, DeskError> {
        let id = self
            .visible(by, tier)
            .next()
            .map(|r| r.id)
            .ok_or(DeskError::NoneWaiting(tier))?;
        self.take(id, by, tier, at)
    }

    /// Routing offers waiting request `id` to `to`.
    pub fn offer(&self, id: u64, to: &str, at: u64) -> Result<Event, DeskError> {
        self.waiting_request(id)?;
        Ok(Event::Offered {
            id,
            at,
            to: to.to_string(),
        })
    }

    /// `by` says no to the request offered to them (or lets the time pass: `timed_out`).
    pub fn decline(&self, id: u64, by: &str, timed_out: bool, at: u64) -> Result<Event, DeskError> {
        let r = self.waiting_request(id)?;
        if r.offered.as_ref().is_none_or(|(to, _)| to != by) {
            return Err(DeskError::NotYours {
                id,
                name: by.to_string(),
            });
        }
        Ok(Event::Declined {
            id,
            at,
            by: by.to_string(),
            timed_out,
        })
    }

    /// `by`, who has request `id`, passes it to `to` with `note`; `session` is the session so
    /// far.
    pub fn escalate(
        &self,
        id: u64,
        by: &str,
        to: Target,
        note: &str,
        session: &str,
        at: u64,
    ) -> Result<Event, DeskError> {
        self.taken_by(id, by)?;
        if !(1..=MAX_TIER).contains(&to.tier()) {
            return Err(DeskError::NoTier(to.tier()));
        }
        Ok(Event::Escalated {
            id,
            at,
            by: by.to_string(),
            to,
            note: tame_note(note),
            session: session.to_string(),
        })
    }

    /// `by`, who has request `id`, parks it in their own queue.
    pub fn hold(
        &self,
        id: u64,
        by: &str,
        note: &str,
        session: &str,
        at: u64,
    ) -> Result<Event, DeskError> {
        self.taken_by(id, by)?;
        Ok(Event::Held {
            id,
            at,
            by: by.to_string(),
            note: tame_note(note),
            session: session.to_string(),
        })
    }

    /// `by`, who has request `id`, closes it.
    pub fn close(
        &self,
        id: u64,
        by: &str,
        resolved: bool,
        note: &str,
        at: u64,
    ) -> Result<Event, DeskError> {
        self.taken_by(id, by)?;
        Ok(Event::Closed {
            id,
            at,
            by: by.to_string(),
            resolved,
            note: tame_note(note),
        })
    }

    /// Moves waiting request `id` on to the next tier's queue.
    pub fn overflow(&self, id: u64, at: u64) -> Result<Event, DeskError> {
        let r = self.waiting_request(id)?;
        if r.tier >= MAX_TIER {
            return Err(DeskError::NoTier(r.tier + 1));
        }
        Ok(Event::Overflowed {
            id,
            at,
            tier: r.tier + 1,
        })
    }

    /// Request `id`, taken, goes back to its queue: its session ended without a word on it.
    pub fn give_back(&self, id: u64, why: &str, at: u64) -> Result<Event, DeskError> {
        let r = self.requests.get(&id).ok_or(DeskError::Unknown(id))?;
        if !matches!(r.state, State::Taken { .. }) {
            return Err(DeskError::NotTaken(id));
        }
        Ok(Event::Returned {
            id,
            at,
            why: why.to_string(),
        })
    }

    /// The user withdraws request `id`.
    pub fn cancel(&self, id: u64, at: u64) -> Result<Event, DeskError> {
        self.waiting_request(id)?;
        Ok(Event::Cancelled { id, at })
    }

    /// Request `id` waited too long without its agent.
    pub fn abandon(&self, id: u64, at: u64) -> Result<Event, DeskError> {
        self.waiting_request(id)?;
        Ok(Event::Abandoned { id, at })
    }

    /// The user answers the survey of request `id` (whose secret they hold).
    pub fn survey(
        &self,
        id: u64,
        secret: &str,
        score: u8,
        comment: &str,
        at: u64,
    ) -> Result<Event, DeskError> {
        let r = self.requests.get(&id).ok_or(DeskError::Unknown(id))?;
        if r.secret_hash != hash_secret(secret) {
            return Err(DeskError::Unknown(id));
        }
        if !(1..=5).contains(&score) {
            return Err(DeskError::BadScore(score));
        }
        if r.surveyed || !matches!(r.state, State::Taken { .. } | State::Closed { .. }) {
            return Err(DeskError::NoSurvey(id));
        }
        Ok(Event::Surveyed {
            id,
            at,
            score,
            comment: tame_note(comment),
        })
    }

    /// Whether `secret` is the one request `id` was filed with, and it still waits.
    pub fn may_resume(&self, id: u64, secret: &str) -> bool {
        // Hashes are compared, so how long the comparison takes tells nothing of the secret.
        self.requests
            .get(&id)
            .is_some_and(|r| r.state == State::Waiting && r.secret_hash == hash_secret(secret))
    }

    pub fn get(&self, id: u64) -> Option<&Request> {
        self.requests.get(&id)
    }

    /// The requests technician `name` of `tier` may take: those waiting for their tier or a
    /// lower one and not reserved for someone else, oldest first.
    pub fn visible<'a>(&'a self, name: &'a str, tier: u8) -> impl Iterator<Item = &'a Request> {
        self.waiting_up_to(tier)
            .filter(move |r| r.open_to(name, tier))
    }

    /// Every waiting request, oldest filing first, whatever its tier.
    pub fn waiting(&self) -> impl Iterator<Item = &Request> {
        self.waiting_up_to(MAX_TIER)
    }

    /// The requests waiting for `tier` or a lower one, oldest filing first. The tiers' queues
    /// are merged as they are read, so the first few cost no more than that.
    fn waiting_up_to(&self, tier: u8) -> impl Iterator<Item = &Request> {
        let mut queues: Vec<_> = self.waiting[..usize::from(tier.min(MAX_TIER))]
            .iter()
            .map(|q| q.iter().peekable())
            .collect();
        std::iter::from_fn(move || {
            let (_, oldest) = (0..queues.len())
                .filter_map(|k| queues[k].peek().map(|id| (**id, k)))
                .min()?;
            queues[oldest].next()
        })
        .filter_map(|id| self.requests.get(id))
    }

    /// Where a waiting request stands in its tier's queue: 1 for the next to be taken.
    pub fn position(&self, id: u64) -> Option<usize> {
        let r = self.requests.get(&id)?;
        if r.state != State::Waiting {
            return None;
        }
        let queue = &self.waiting[usize::from(r.tier - 1)];
        Some(queue.range(..id).count() + 1)
    }

    /// How long request `id` may wait yet, in milliseconds: its place divided by the rate at
    /// which its tier's requests were taken in the hour before `now`. `None` when none was.
    pub fn expected_wait(&self, id: u64, now: u64) -> Option<u64> {
        let position = self.position(id)?;
        let tier = self.requests.get(&id)?.tier;
        wait_at(position, self.taken_last_hour(now)[usize::from(tier - 1)])
    }

    /// Every waiting request's [`Place`], as [`Desk::position`] and [`Desk::expected_wait`]
    /// give them one at a time, in one walk of the queues (and one of the last day's requests).
    pub fn places(&self, now: u64) -> HashMap<u64, Place> {
        let taken = self.taken_last_hour(now);
        let mut places = HashMap::with_capacity(self.waiting_count());
        for (queue, taken) in self.waiting.iter().zip(taken) {
            for (i, id) in queue.iter().enumerate() {
                let position = i + 1;
                let expected_wait = wait_at(position, taken);
                places.insert(
                    *id,
                    Place {
                        position,
                        expected_wait,
                    },
                );
            }
        }
        places
    }

    /// How many requests of each tier were last taken in the hour before `now`.
    fn taken_last_hour(&self, now: u64) -> [u64; MAX_TIER as usize] {
        let mut taken = [0; MAX_TIER as usize];
        for r in self
            .requests
            .values()
            .rev()
            // A request filed more than a day before is not looked at: the walk stays short.
            .take_while(|r| now.saturating_sub(r.filed_at) <= DAY)
        {
            if r.last_taken
                .is_some_and(|at| now.saturating_sub(at) <= HOUR)
            {
                taken[usize::from(r.tier - 1)] += 1;
            }
        }
        taken
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.iter().map(|q| q.len()).sum()
    }

    /// The requests waiting in `tier`'s own queue, oldest filing first.
    pub fn queue_of(&self, tier: u8) -> impl Iterator<Item = &Request> {
        self.waiting
            .get(usize::from(tier.saturating_sub(1)))
            .into_iter()
            .flatten()
            .filter_map(|id| self.requests.get(id))
    }

    /// The requests taken and not yet passed on or closed.
    pub fn in_hand(&self) -> impl Iterator<Item = &Request> {
        self.requests
            .values()
            .filter(|r| matches!(r.state, State::Taken { .. }))
    }
}

/// A waiting request's place in its tier's queue (1: the next to be taken) and how long it
/// may wait yet, in milliseconds (`None`: not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub position: usize,
    pub expected_wait: Option<u64>,
}

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// The wait at `position` when `taken` requests were taken in the last hour.
fn wait_at(position: usize, taken: u64) -> Option<u64> {
    (taken > 0).then(|| position as u64 * HOUR / taken)
}

/// A note or comment as stored: trimmed, bounded to [`MAX_NOTE`] and printable.
fn tame_note(text: &str) -> String {
    protocol::text::tame(text.trim(), MAX_NOTE)
}

fn hash_secret(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filing(what: &str) -> Filing {
        Filing {
            description: what.into(),
            machine: "pc-17".into(),
            os: "Debian 12".into(),
            ticket: None,
        }
    }

    /// Runs a command's event into the desk, as the relay does.
    fn run(
        desk: &mut Desk,
        command: impl FnOnce(&Desk) -> Result<Event, DeskError>,
    ) -> Result<Event, DeskError> {
        let e = command(desk)?;
        desk.apply(&e);
        Ok(e)
    }

    const MIN: u64 = 60_000;

    /// A desk with `n` requests filed a minute apart from time 0, numbered 1 to `n`.
    fn filed_a_minute_apart(n: u64) -> Desk {
        let mut d = Desk::new();
        for i in 0..n {
            run(&mut d, |d| d.file(filing("x"), "s", i * MIN)).unwrap();
        }
        d
    }

    #[test]
    fn requests_wait_oldest_first_and_are_taken_once() {
        let mut d = Desk::new();
        for (i, what) in ["printer", "mail", "vpn"].iter().enumerate() {
            let e = run(&mut d, |d| d.file(filing(what), "s", 100 + i as u64)).unwrap();
            assert_eq!(e.id(), i as u64 + 1);
        }
        assert_eq!(d.position(1), Some(1));
        assert_eq!(d.position(3), Some(3));
        let next = run(&mut d, |d| d.take_next("alice", 1, 200)).unwrap();
        assert_eq!(next.id(), 1);
        assert_eq!(d.position(1), None);
        assert_eq!(d.position(2), Some(1));
        assert_eq!(
            d.take(1, "bob", 1, 201),
            Err(DeskError::AlreadyTaken {
                id: 1,
                by: "alice".into()
            })
        );
        let ids: Vec<u64> = d.visible("bob", 1).map(|r| r.id).collect();
        assert_eq!(ids, vec![2, 3]);
        run(&mut d, |d| d.cancel(2, 202)).unwrap();
        assert_eq!(d.take(2, "bob", 1, 203), Err(DeskError::Cancelled(2)));
        assert_eq!(
            d.cancel(1, 204),
            Err(DeskError::AlreadyTaken {
                id: 1,
                by: "alice".into()
            })
        );
        assert_eq!(d.take(9, "bob", 1, 205), Err(DeskError::Unknown(9)));
        assert_eq!(run(&mut d, |d| d.take_next("bob", 2, 206)).unwrap().id(), 3);
        assert_eq!(d.take_next("bob", 1, 207), Err(DeskError::NoneWaiting(1)));
        assert_eq!(d.waiting_count(), 0);
    }

    #[test]
    fn the_expected_wait_follows_how_fast_the_queue_moved_in_the_last_hour() {
        let mut d = filed_a_minute_apart(6);
        // Nothing taken yet: not known.
        assert_eq!(d.expected_wait(1, 10 * MIN), None);
        // Three taken in the last hour: one every 20 minutes.
        for at in [20, 30, 40] {
            run(&mut d, |d| d.take_next("alice", 1, at * MIN)).unwrap();
        }
        assert_eq!(d.position(4), Some(1));
        assert_eq!(d.expected_wait(4, 50 * MIN), Some(20 * MIN));
        assert_eq!(d.expected_wait(6, 50 * MIN), Some(60 * MIN));
        // Two hours later the old takes no longer count.
        assert_eq!(d.expected_wait(4, 170 * MIN), None);
        assert_eq!(
            d.expected_wait(1, 50 * MIN),
            None,
            "taken requests wait no more"
        );
    }

    #[test]
    fn every_place_at_once_is_each_place_alone_and_tiers_are_seen_merged_oldest_first() {
        let mut d = filed_a_minute_apart(12);
        // Requests in all three tiers' queues, and some in no queue.
        run(&mut d, |d| d.take(2, "alice", 1, 20 * MIN)).unwrap();
        run(&mut d, |d| d.take(5, "alice", 1, 21 * MIN)).unwrap();
        run(&mut d, |d| d.overflow(7, 22 * MIN)).unwrap();
        run(&mut d, |d| d.overflow(3, 22 * MIN)).unwrap();
        run(&mut d, |d| {
            d.escalate(5, "alice", Target::Tier(3), "disk", "s1", 23 * MIN)
        })
        .unwrap();
        run(&mut d, |d| d.cancel(9, 24 * MIN)).unwrap();

        let now = 30 * MIN;
        let places = d.places(now);
        assert_eq!(places.len(), d.waiting_count());
        for id in 1..=12 {
            let alone = d.position(id).map(|position| Place {
                position,
                expected_wait: d.expected_wait(id, now),
            });
            assert_eq!(places.get(&id).copied(), alone, "request {id}");
        }
        // One of tier 1's requests was taken in the hour (the other went on to tier 3).
        assert_eq!(
            places[&4],
            Place {
                position: 2,
                expected_wait: Some(2 * HOUR)
            }
        );

        let seen = |tier| d.visible("bob", tier).map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(seen(1), vec![1, 4, 6, 8, 10, 11, 12]);
        assert_eq!(seen(2), vec![1, 3, 4, 6, 7, 8, 10, 11, 12]);
        assert_eq!(seen(3), vec![1, 3, 4, 5, 6, 7, 8, 10, 11, 12]);
    }

    #[test]
    fn a_replay_gives_the_same_desk_and_refuses_events_out_of_order() {
        let mut d = Desk::new();
        let mut log = Vec::new();
        for i in 0..5 {
            log.push(run(&mut d, |d| d.file(filing("x"), "s", i)).unwrap());
        }
        log.push(run(&mut d, |d| d.take(2, "alice", 1, 10)).unwrap());
        log.push(run(&mut d, |d| d.cancel(4, 11)).unwrap());
        let again = Desk::replay(&log).unwrap();
        assert_eq!(again.requests, d.requests);
        assert_eq!(again.waiting, d.waiting);
        // A new filing after the replay takes the next number.
        assert_eq!(again.file(filing("y"), "s", 12).unwrap().id(), 6);
        // Taken twice: not a history this desk can have had.
        let mut bad = log.clone();
        bad.push(Event::Taken {
            id: 2,
            at: 13,
            by: "bob".into(),
            relay: None,
        });
        assert!(matches!(Desk::replay(&bad), Err(DeskError::Replay(_))));
    }

    #[test]
    fn what_a_user_files_is_bounded_and_printable() {
        let d = Desk::new();
        let long = format!("\u{1b}[31mred\r{}", "x".repeat(2 * MAX_DESCRIPTION));
        let Event::Filed { filing, .. } = d
            .file(
                Filing {
                    description: long,
                    machine: "m\u{7}".into(),
                    os: "os".into(),
                    ticket: Some("  ".into()),
                },
                "s",
                0,
            )
            .unwrap()
        else {
            unreachable!()
        };
        // Cut to the limit, then its two control characters written out as escapes.
        assert!(filing.description.ends_with('…'), "{}", filing.description);
        assert_eq!(
            filing.description.chars().count(),
            MAX_DESCRIPTION + "\\u{1b}\\u{d}".chars().count() - 2
        );
        assert!(!filing.description.contains('\u{1b}'));
        assert!(!filing.description.contains('\r'));
        assert!(!filing.machine.contains('\u{7}'));
        assert_eq!(filing.ticket, None);
    }
}
