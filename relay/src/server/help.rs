//! Help requests on the control plane. An agent files one (or takes its own back after a dropped
//! connection) and waits in the queue, told its place as it moves; a logged-in technician
//! watches the queue it may take from and takes one; the two are then paired as for a code.
//!
//! The queue itself is [`crate::desk`]: every change is an event stored in the relay's database
//! before it takes effect, so a relay restart keeps every request and its place, and a request
//! is taken exactly once (the check and the event happen under one lock). Which agents are
//! connected now is kept here, in memory only: a request whose agent is away waits, and can be
//! taken once the agent is back. In a cluster, the requests whose agents wait on another live
//! relay count as connected too ([`Help::set_elsewhere`]): they are shown, routed and picked as
//! the oldest like this relay's own, and taken on that relay.
//!
//! A clock ([`Help::tick`], four times a second) applies the desk's rules of time: requests
//! overflow into the next tier, go overdue, are abandoned when their agent stays away, and
//! routing offers them to technicians and takes back offers not answered in time; and if the
//! queue moved since the last tick, the waiting agents are told their places. Presence (who
//! watches the queue, who is away, who is in how many sessions) is kept in memory, and only
//! leads' dashboards follow it.
//!
//! A thousand agents may wait and fifty technicians watch: after a change the places and the
//! order of the queue are worked out once for all of them (and kept until the next event); a
//! watcher is sent its queue a moment after a change, the changes of a burst as one, and only
//! what changed of its queue and dashboard.

use std::collections::{HashMap, HashSet};

use protocol::control::{
    EscalationTarget, Handoff, Joining, LiveSession, Presence, QueueEntry, RelayPointer,
    RequestFiling, TechnicianPresence, TierLoad, QUEUE_SHOWN,
};

use super::*;
use crate::accounts::Technician;
use crate::config::{DeskRules, Routing};
use crate::desk::{
    Desk, DeskError, Event, Filing, Journal, JournalError, Place, Replica, Request, Target,
};
use crate::ledger::now_ms;
use crate::limits::Source;

/// How long an agent taking its request back waits for the session before to be wound up.
const RESUME_WAIT: Duration = Duration::from_secs(3);

/// How long after a change a watcher is sent its queue: the changes of a burst go as one.
const NEWS_SETTLE: Duration = Duration::from_millis(15);

/// How long the places worked out for the agents are used while the desk does not change (the
/// expected wait moves with the clock).
const PLACES_KEPT_MS: u64 = 1000;

/// How often the desk's rules of time are applied.
pub(super) const TICK: Duration = Duration::from_millis(250);

/// A technician as the desk knows them now.
struct Person {
    tier: u8,
    /// Connections watching the queue.
    watching: usize,
    away: bool,
    sessions: u32,
}

/// A paired session running now, as the desk knows it: whose it is, and how to ask its agent
/// for another viewer ([`Invite`]).
pub(super) struct Live {
    pub invites: mpsc::Sender<Invite>,
    pub technician: String,
    pub tier: u8,
    pub request: Option<u64>,
    pub started_at: u64,
    /// A lead's monitoring of another session: not listed on the dashboard.
    pub monitor: bool,
}

/// A technician waits to join a live session: its agent is to attach a connection with
/// `ticket`.
pub(super) struct Invite {
    pub ticket: String,
    pub joining: Joining,
}

/// How a request a technician took reaches its agent: waiting on a connection of its own, or in
/// a live session (an escalation taken while the first technician is still there); or, for the
/// oldest request asked for, that it is not taken here but on the relay of the cluster where its
/// agent waits.
pub(super) enum Reach {
    Waiting(WaitingAgent),
    Live {
        session: String,
        invites: mpsc::Sender<Invite>,
        joining: Joining,
    },
    Elsewhere(RelayPointer),
}

/// A connection watching the queue, and where its offers go.
struct Watcher {
    name: String,
    offers: mpsc::Sender<u64>,
}

/// The desk (kept in step with its journal) and the agents waiting on a connection now.
struct State {
    desk: Replica,
    present: HashMap<u64, WaitingAgent>,
    /// When each source filed its requests within the last minute, for the relay's
    /// per-source limits (those of session codes: one address cannot fill the queue).
    filings: HashMap<Source, Vec<Instant>>,
    /// Waiting requests whose agent is not connected, since when.
    away_since: HashMap<u64, Instant>,
    /// Requests whose agent waits on another live relay of the cluster, and which: connected,
    /// but taken there.
    elsewhere: HashMap<u64, RelayPointer>,
    /// Sessions running on other live relays of the cluster, for the leads' dashboards.
    live_elsewhere: Vec<LiveSession>,
    people: HashMap<String, Person>,
    watchers: HashMap<u64, Watcher>,
    next_watcher: u64,
    /// Waiting requests past their tier's overdue limit.
    overdue: HashSet<u64>,
    /// Paired sessions running now, by their ledger identifier.
    live: HashMap<String, Live>,
    /// How many live sessions serve each request.
    live_requests: HashMap<u64, usize>,
    rules: DeskRules,
    /// Every waiting request's place, and when it was worked out: worked out once for all the
    /// agents told after a change, forgotten with the next event.
    places: Option<(u64, HashMap<u64, Place>)>,
    /// Every waiting request, oldest first: read once for all the watchers sent the queue after
    /// a change, forgotten with the next event.
    line: Option<Vec<InLine>>,
    /// Failures of the desk's journal in the database, for the relay's metrics.
    journal_errors: u64,
}

/// A waiting request as the watchers' queues are cut from it.
struct InLine {
    id: u64,
    tier: u8,
    reserved_for: Option<String>,
}

impl InLine {
    fn open_to(&self, name: &str, tier: u8) -> bool {
        crate::desk::open_to(self.tier, self.reserved_for.as_deref(), name, tier)
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Sources remembered at once before the old entries are swept out.
const FILING_SOURCES: usize = 10_000;

impl State {
    /// Forgets the places and the order worked out for the queue: the desk changed.
    fn forget_views(&mut self) {
        self.places = None;
        self.line = None;
    }

    /// The refusal for a journal that did not take an event; a failure of the database
    /// (rather than the desk's rules or other relays storing first) is counted.
    fn journal_failed(&mut self, e: JournalError) -> Refusal {
        if matches!(e, JournalError::Db(_) | JournalError::Corrupt(_)) {
            self.journal_errors += 1;
        }
        journal_refusal(e)
    }

    /// Whether the agent of request `id` can be reached now: waiting on a connection, or in a
    /// live session.
    fn reachable(&self, id: u64) -> bool {
        self.present.contains_key(&id) || self.live_requests.contains_key(&id)
    }

    /// Whether the agent of request `id` is connected now: reachable here, or waiting on
    /// another live relay of the cluster.
    fn connected(&self, id: u64) -> bool {
        self.reachable(id) || self.elsewhere.contains_key(&id)
    }

    /// Whether `source` may file one more request now: at most `per_minute` filings a minute,
    /// and at most `waiting` of its agents waiting at once.
    fn may_file(
        &mut self,
        source: Source,
        per_minute: u32,
        waiting: usize,
        now: Instant,
    ) -> Result<(), Refusal> {
        let minute = Duration::from_secs(60);
        if self.filings.len() > FILING_SOURCES {
            self.filings
                .retain(|_, times| times.iter().any(|t| now.duration_since(*t) < minute));
        }
        let times = self.filings.entry(source).or_default();
        times.retain(|t| now.duration_since(*t) < minute);
        if times.len() >= per_minute as usize {
            let oldest = times.iter().min().copied().unwrap_or(now);
            let secs = (minute - now.duration_since(oldest)).as_secs().max(1) as u32;
            return Err(Refusal::new(
                ErrorCode::RateLimited {
                    retry_after_secs: secs,
                },
                format!("too many help requests from {source}; try again in {secs} seconds"),
            ));
        }
        let from_here = self
            .present
            .values()
            .filter(|w| crate::limits::source_of(w.conn.remote_address().ip()) == source)
            .count();
        if from_here >= waiting {
            return Err(Refusal::new(
                ErrorCode::RateLimited {
                    retry_after_secs: 60,
                },
                format!(
                    "{from_here} help requests from {source} wait already, the most this relay \
                     allows from one address"
                ),
            ));
        }
        times.push(now);
        Ok(())
    }

    /// How many sessions technician `name` is in: on this relay, and on the other relays of
    /// the cluster.
    fn sessions_of(&self, name: &str) -> u32 {
        let here = self.people.get(name).map_or(0, |p| p.sessions);
        let elsewhere = self
            .live_elsewhere
            .iter()
            .filter(|l| l.technician == name)
            .count();
        here + elsewhere as u32
    }

    fn presence(&self, name: &str) -> Presence {
        match self.people.get(name) {
            Some(_) if self.sessions_of(name) >= self.rules.sessions_per_technician => {
                Presence::Busy
            }
            Some(p) if p.watching == 0 => Presence::Offline,
            Some(p) if p.away => Presence::Away,
            Some(_) => Presence::Available,
            None => Presence::Offline,
        }
    }

    fn person(&mut self, name: &str, tier: u8) -> &mut Person {
        let p = self.people.entry(name.to_string()).or_insert(Person {
            tier,
            watching: 0,
            away: false,
            sessions: 0,
        });
        p.tier = tier;
        p
    }

    /// Forgets a person with nothing going on, so the map holds only the people of now.
    fn forget_idle(&mut self, name: &str) {
        if self
            .people
            .get(name)
            .is_some_and(|p| p.watching == 0 && p.sessions == 0)
        {
            self.people.remove(name);
        }
    }

    fn entry(&self, r: &Request) -> QueueEntry {
        QueueEntry {
            id: r.id,
            tier: r.tier,
            filed_unix_ms: r.filed_at,
            filing: RequestFiling {
                description: r.filing.description.clone(),
                machine: r.filing.machine.clone(),
                os: r.filing.os.clone(),
                ticket: r.filing.ticket.clone(),
            },
            connected: self.connected(r.id),
            queued_unix_ms: r.queued_at,
            overdue: self.overdue.contains(&r.id),
            offered_to: r.offered.as_ref().map(|(to, _)| to.clone()),
            reserved_for: r.reserved_for.clone(),
            handoff: r.handoff.as_ref().map(|h| Handoff {
                by: h.by.clone(),
                note: h.note.clone(),
                session: h.session.clone(),
                held: h.held,
            }),
        }
    }

    /// Applies the desk's rules of time at `now_ms` (and `now`). Returns whether the queue
    /// changed.
    fn tick(&mut self, now_ms: u64, now: Instant) -> Result<bool, Refusal> {
        // What other relays on the same database did since.
        let caught_up = self.desk.catch_up();
        let mut changed = caught_up.map_err(|e| self.journal_failed(e))? > 0;
        if changed {
            self.forget_views();
        }
        // Which waiting requests have no agent, since when.
        let desk = &self.desk;
        let (present, live, elsewhere) = (&self.present, &self.live_requests, &self.elsewhere);
        self.away_since.retain(|id, _| {
            !present.contains_key(id)
                && !live.contains_key(id)
                && !elsewhere.contains_key(id)
                && desk
                    .get(*id)
                    .is_some_and(|r| r.state == crate::desk::State::Waiting)
        });
        let mut events = Vec::new();
        let abandon = self.rules.abandon_after;
        let mut overdue = HashSet::new();
        for t in 1..=crate::desk::MAX_TIER {
            let rules = self.rules.tier(t);
            for r in self.desk.queue_of(t) {
                let waited = now_ms.saturating_sub(r.queued_at);
                if !self.connected(r.id) {
                    let since = *self.away_since.entry(r.id).or_insert(now);
                    if now.duration_since(since) >= abandon {
                        events.extend(self.desk.abandon(r.id, now_ms).ok());
                    }
                }
                if let Some((to, at)) = &r.offered {
                    if now_ms.saturating_sub(*at) >= ms(rules.offer_timeout) {
                        events.extend(self.desk.decline(r.id, to, true, now_ms).ok());
                    }
                }
                if rules.overflow_after.is_some_and(|d| waited >= ms(d)) {
                    events.extend(self.desk.overflow(r.id, now_ms).ok());
                }
                if rules.overdue_after.is_some_and(|d| waited >= ms(d)) {
                    overdue.insert(r.id);
                }
            }
        }
        changed |= overdue.iter().any(|id| !self.overdue.contains(id));
        self.overdue = overdue;
        for e in events {
            // Two rules may have acted on one request: the first wins.
            if self.desk.check(&e).is_ok() {
                let abandoned = matches!(e, Event::Abandoned { .. }).then(|| e.id());
                changed = true;
                if !store_current(self, e)? {
                    // Another relay changed the desk first: the rules are applied to it on the
                    // next tick.
                    return Ok(true);
                }
                if let Some(id) = abandoned {
                    self.away_since.remove(&id);
                }
            }
        }
        for (id, name) in self.routes() {
            let event = self.desk.offer(id, &name, now_ms).map_err(refusal)?;
            changed = true;
            if !store_current(self, event)? {
                return Ok(true);
            }
            for w in self.watchers.values().filter(|w| w.name == name) {
                // A watcher too slow to read its offers lets this one time out.
                let _ = w.offers.try_send(id);
            }
        }
        Ok(changed)
    }

    /// The offers routing makes now: each waiting request of a least-busy tier whose agent is
    /// connected (here or on another relay of the cluster) and that is offered to nobody goes
    /// to the available technician of that tier with the fewest sessions (on any relay of the
    /// cluster) who has not declined it and has no other offer open.
    fn routes(&self) -> Vec<(u64, String)> {
        let mut busy: HashSet<&str> = HashSet::new();
        for t in 1..=crate::desk::MAX_TIER {
            for r in self.desk.queue_of(t) {
                if let Some((to, _)) = &r.offered {
                    busy.insert(to);
                }
            }
        }
        let mut routes = Vec::new();
        for t in 1..=crate::desk::MAX_TIER {
            if self.rules.tier(t).routing != Routing::LeastBusy {
                continue;
            }
            let mut candidates: Vec<(u32, &str)> = self
                .people
                .iter()
                .filter(|(name, p)| p.tier == t && self.presence(name) == Presence::Available)
                .map(|(name, _)| (self.sessions_of(name), name.as_str()))
                .collect();
            candidates.sort_unstable();
            for r in self.desk.queue_of(t) {
                if r.offered.is_some() || !self.connected(r.id) {
                    continue;
                }
                let pick = candidates.iter().find(|(_, name)| {
                    !busy.contains(name)
                        && !r.declined.iter().any(|d| d == name)
                        && r.reserved_for.as_deref().is_none_or(|n| n == *name)
                });
                if let Some((_, name)) = pick {
                    busy.insert(name);
                    routes.push((r.id, name.to_string()));
                }
            }
        }
        routes
    }
}

/// How long the other relays of a cluster are told this relay holds a request's agent, from
/// when it connected (the row goes when it leaves; this bounds a row a crash left behind).
const REQUEST_HELD: Duration = Duration::from_secs(24 * 3600);

/// The help-request side of the relay, shared by every connection.
pub(super) struct Help {
    state: Arc<Mutex<State>>,
    /// Counts changes of the queue (and of which agents are connected): watchers wake on it.
    changed: watch::Sender<u64>,
    /// Counts changes of the technicians' presence, which only leads' dashboards show: leads
    /// wake on it.
    presence: watch::Sender<u64>,
    /// Counts the clock's ticks after which the queue had changed: waiting agents wake on it
    /// to be told their place. The queue moves in bursts (a take, a new filing, a session's
    /// end), and an agent is told its place once a tick at most, each place worked out once
    /// for all of them.
    moved: watch::Sender<u64>,
}

fn refusal(e: DeskError) -> Refusal {
    let code = match &e {
        DeskError::Unknown(_)
        | DeskError::Cancelled(_)
        | DeskError::Closed(_)
        | DeskError::NotTaken(_)
        | DeskError::NoSurvey(_)
        | DeskError::NoneWaiting(_) => ErrorCode::UnknownRequest,
        DeskError::AlreadyTaken { .. } => ErrorCode::RequestTaken,
        DeskError::AboveTier { .. }
        | DeskError::Reserved { .. }
        | DeskError::NotYours { .. }
        | DeskError::NoTier(_) => ErrorCode::NotPermitted,
        DeskError::BadScore(_) => ErrorCode::ProtocolViolation,
        DeskError::Full(_) => ErrorCode::QueueFull,
        DeskError::Replay(_) => ErrorCode::Internal,
    };
    Refusal::new(code, e.to_string())
}

fn journal_refusal(e: JournalError) -> Refusal {
    if let JournalError::Desk(e) = e {
        return refusal(e);
    }
    warn!(error = %e, "the desk's journal failed");
    Refusal::new(
        ErrorCode::Internal,
        format!("the relay cannot record the help request: {e}"),
    )
}

impl Help {
    /// The desk as the journal in `db` leaves it, for the relay called `relay`.
    pub(super) fn open(
        db: &crate::storage::Database,
        relay: &str,
        rules: DeskRules,
    ) -> anyhow::Result<Self> {
        let desk = Replica::open(Journal::open(db)?, relay)?;
        let mut state = State {
            desk,
            present: HashMap::new(),
            filings: HashMap::new(),
            away_since: HashMap::new(),
            elsewhere: HashMap::new(),
            live_elsewhere: Vec::new(),
            people: HashMap::new(),
            watchers: HashMap::new(),
            next_watcher: 0,
            overdue: HashSet::new(),
            live: HashMap::new(),
            live_requests: HashMap::new(),
            rules,
            places: None,
            line: None,
            journal_errors: 0,
        };
        // Every session of this relay died with it: their requests wait again. (Those taken
        // through other relays on the same database are theirs.)
        let orphans = state.desk.taken_here();
        for id in &orphans {
            record(&mut state, |d| {
                d.give_back(*id, "the relay restarted during the session", now_ms())
            })
            .map_err(|r| anyhow::anyhow!(r.message))?;
        }
        info!(
            waiting = state.desk.waiting_count(),
            returned = orphans.len(),
            "help requests loaded"
        );
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
            changed: watch::channel(0).0,
            presence: watch::channel(0).0,
            moved: watch::channel(0).0,
        })
    }

    /// Whether this relay holds the agent of request `id` (waiting, or in a live session).
    pub(super) fn holds_agent(&self, id: u64) -> bool {
        self.lock().reachable(id)
    }

    /// Which requests' agents wait (or are in a session) on other live relays of the cluster,
    /// and which sessions run there, as the shared database says now; watchers and dashboards
    /// are told when that changed.
    pub(super) fn set_elsewhere(
        &self,
        elsewhere: HashMap<u64, RelayPointer>,
        mut live: Vec<LiveSession>,
    ) {
        live.sort_by(|a, b| a.session.cmp(&b.session));
        let mut st = self.lock();
        let sessions_changed = st.live_elsewhere != live;
        st.live_elsewhere = live;
        if st.elsewhere != elsewhere {
            st.elsewhere = elsewhere;
            st.forget_views();
            drop(st);
            self.changed.send_modify(|n| *n += 1);
        } else {
            drop(st);
        }
        if sessions_changed {
            self.live_changed();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the leads' dashboards that a technician's presence changed.
    fn presence_changed(&self) {
        self.presence.send_modify(|n| *n += 1);
    }

    /// Tells the queue's watchers and the leads that a live session began or ended (a request
    /// of it can be taken, or not; the dashboard lists it, or not).
    fn live_changed(&self) {
        self.changed.send_modify(|n| *n += 1);
        self.presence.send_modify(|n| *n += 1);
    }

    /// Applies the desk's rules of time (see the module's words).
    pub(super) async fn tick(&self) {
        let ticked = self
            .with(|st| {
                let changed = st.tick(now_ms(), Instant::now())?;
                Ok(((), changed))
            })
            .await;
        if let Err(r) = ticked {
            warn!(error = %r.message, "the desk's rules of time failed");
        }
        let changes = *self.changed.borrow();
        self.moved
            .send_if_modified(|told| std::mem::replace(told, changes) != changes);
    }

    /// Counts a session of technician `name` (of `tier`) until the guard is dropped.
    pub(super) fn session_begins(&self, name: &str, tier: u8) -> SessionCount<'_> {
        self.lock().person(name, tier).sessions += 1;
        self.presence_changed();
        SessionCount {
            help: self,
            name: name.to_string(),
        }
    }

    /// Runs `f` on the state off the async threads (the journal writes to SQLite); tells the
    /// watchers when it says the queue changed.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<(T, bool), Refusal> + Send + 'static,
    ) -> Result<T, Refusal> {
        let state = self.state.clone();
        let (value, changed) = tokio::task::spawn_blocking(move || {
            f(&mut state.lock().unwrap_or_else(|p| p.into_inner()))
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Internal, format!("the desk failed: {e}")))??;
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(value)
    }

    /// The request's place and how long it may wait yet, in seconds.
    fn place(&self, id: u64) -> Option<(u32, Option<u32>)> {
        let mut state = self.lock();
        let now = now_ms();
        let (at, places) = match state.places.take() {
            Some((at, places)) if now.saturating_sub(at) < PLACES_KEPT_MS => (at, places),
            _ => (now, state.desk.places(now)),
        };
        let place = places.get(&id).copied();
        state.places = Some((at, places));
        let Place {
            position,
            expected_wait,
        } = place?;
        let wait = expected_wait.map(|ms| (ms / 1000).min(u64::from(u32::MAX)) as u32);
        Some((position as u32, wait))
    }

    /// The queue technician `name` of `tier` sees, and the dashboard for leads.
    fn snapshot(&self, name: &str, tier: u8, lead: bool) -> Vec<FromRelay> {
        let mut state = self.lock();
        if state.line.is_none() {
            let line = state
                .desk
                .waiting()
                .map(|r| InLine {
                    id: r.id,
                    tier: r.tier,
                    reserved_for: r.reserved_for.clone(),
                })
                .collect();
            state.line = Some(line);
        }
        let state = &*state;
        let mut requests = Vec::new();
        let mut more = 0u32;
        let line = state.line.iter().flatten();
        for r in line.filter(|r| r.open_to(name, tier)) {
            if requests.len() == QUEUE_SHOWN {
                more += 1;
                continue;
            }
            requests.extend(state.desk.get(r.id).map(|r| state.entry(r)));
        }
        let mut out = vec![FromRelay::Queue { requests, more }];
        if lead {
            let tiers = (1..=crate::desk::MAX_TIER)
                .map(|t| {
                    let mut load = TierLoad {
                        tier: t,
                        waiting: 0,
                        oldest_queued_unix_ms: None,
                        overdue: 0,
                    };
                    // The queue is in filing order; a request back from a hold may be first
                    // without having waited longest.
                    for r in state.desk.queue_of(t) {
                        load.waiting += 1;
                        load.overdue += u32::from(state.overdue.contains(&r.id));
                        load.oldest_queued_unix_ms = Some(
                            load.oldest_queued_unix_ms
                                .map_or(r.queued_at, |o| o.min(r.queued_at)),
                        );
                    }
                    load
                })
                .collect();
            let mut technicians: Vec<TechnicianPresence> = state
                .people
                .iter()
                .map(|(n, p)| TechnicianPresence {
                    name: n.clone(),
                    tier: p.tier,
                    presence: state.presence(n),
                    sessions: state.sessions_of(n),
                })
                .collect();
            technicians.sort_by(|a, b| (a.tier, &a.name).cmp(&(b.tier, &b.name)));
            let mut sessions: Vec<LiveSession> = state
                .live
                .iter()
                .filter(|(_, l)| !l.monitor && l.tier <= tier)
                .map(|(id, l)| LiveSession {
                    session: id.clone(),
                    technician: l.technician.clone(),
                    tier: l.tier,
                    request: l.request,
                    started_unix_ms: l.started_at,
                })
                .chain(
                    state
                        .live_elsewhere
                        .iter()
                        .filter(|l| l.tier <= tier)
                        .cloned(),
                )
                .collect();
            sessions.sort_by(|a, b| {
                (a.started_unix_ms, &a.session).cmp(&(b.started_unix_ms, &b.session))
            });
            sessions.truncate(QUEUE_SHOWN);
            out.push(FromRelay::Dashboard {
                tiers,
                technicians,
                sessions,
            });
        }
        out
    }

    /// The offer of request `id`, if it is still open.
    fn offer(&self, id: u64, name: &str) -> Option<FromRelay> {
        let state = self.lock();
        let r = state.desk.get(id)?;
        let (to, at) = r.offered.as_ref()?;
        if to != name {
            return None;
        }
        let limit = ms(state.rules.tier(r.tier).offer_timeout);
        let left = (at + limit).saturating_sub(now_ms()) / 1000;
        Some(FromRelay::Offer {
            request: state.entry(r),
            expires_in_secs: left.max(1) as u32,
        })
    }
}

impl Help {
    /// Keeps paired session `session` among the live ones until the guard is dropped, so that
    /// an escalation of its request can be taken while it runs and leads can monitor it.
    pub(super) fn live_begins(&self, session: &str, live: Live) -> LiveGuard<'_> {
        let mut st = self.lock();
        if let Some(id) = live.request {
            *st.live_requests.entry(id).or_default() += 1;
        }
        st.live.insert(session.to_string(), live);
        drop(st);
        self.live_changed();
        LiveGuard {
            help: self,
            session: session.to_string(),
        }
    }

    /// How many live sessions, waiting requests per tier and watchers there are now, for the
    /// relay's metrics.
    pub(super) fn gauges(&self) -> DeskGauges {
        let st = self.lock();
        DeskGauges {
            sessions: st.live.len() as u64,
            queue: [1, 2, 3].map(|tier| st.desk.queue_of(tier).count() as u64),
            watchers: st.watchers.len() as u64,
            journal_errors: st.journal_errors,
        }
    }

    /// Where to invite another viewer of live session `session`, its technician's tier, and
    /// whether it is a lead's monitoring.
    pub(super) fn live_session(&self, session: &str) -> Option<(mpsc::Sender<Invite>, u8, bool)> {
        let st = self.lock();
        let l = st.live.get(session)?;
        Some((l.invites.clone(), l.tier, l.monitor))
    }
}

/// The desk's share of the relay's metrics.
pub(super) struct DeskGauges {
    pub(super) sessions: u64,
    pub(super) queue: [u64; 3],
    pub(super) watchers: u64,
    /// Failures to record in the desk's journal so far.
    pub(super) journal_errors: u64,
}

/// Holds a session among the live ones (see [`Help::live_begins`]).
pub(super) struct LiveGuard<'a> {
    help: &'a Help,
    session: String,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.help.lock();
        if let Some(l) = st.live.remove(&self.session) {
            if let Some(id) = l.request {
                if let Some(n) = st.live_requests.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        st.live_requests.remove(&id);
                    }
                }
            }
        }
        drop(st);
        self.help.live_changed();
    }
}

/// Holds a technician's session in the count of their sessions (see [`Help::session_begins`]).
pub(super) struct SessionCount<'a> {
    help: &'a Help,
    name: String,
}

impl Drop for SessionCount<'_> {
    fn drop(&mut self) {
        let mut st = self.help.lock();
        if let Some(p) = st.people.get_mut(&self.name) {
            p.sessions = p.sessions.saturating_sub(1);
        }
        st.forget_idle(&self.name);
        drop(st);
        self.help.presence_changed();
    }
}

/// Holds a connection among the queue's watchers until dropped.
struct Watching<'a> {
    help: &'a Help,
    key: u64,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let mut st = self.help.lock();
        if let Some(w) = st.watchers.remove(&self.key) {
            if let Some(p) = st.people.get_mut(&w.name) {
                p.watching = p.watching.saturating_sub(1);
            }
            st.forget_idle(&w.name);
        }
        drop(st);
        self.help.presence_changed();
    }
}

/// Decides `command` on the desk, stores the event it returns and applies it (decided again on
/// a newer desk when another relay on the same database stored an event first: see
/// [`Replica::commit`]). An event the desk could not replay is never stored.
fn record(
    state: &mut State,
    command: impl FnMut(&Desk) -> Result<Event, DeskError>,
) -> Result<Event, Refusal> {
    let event = state.desk.commit(command);
    state.forget_views();
    event.map_err(|e| state.journal_failed(e))
}

/// Stores `event`, decided on the desk as it is, unless another relay stored an event first
/// (see [`Replica::commit_if_current`]); whether it was stored.
fn store_current(state: &mut State, event: Event) -> Result<bool, Refusal> {
    let stored = state.desk.commit_if_current(event);
    state.forget_views();
    Ok(stored.map_err(|e| state.journal_failed(e))?.is_some())
}

/// An agent's help request, from its first message ([`ToRelay::FileRequest`] or
/// [`ToRelay::ResumeRequest`]) until a technician takes it (then the paired session), the agent
/// cancels it, or the agent leaves (the request then waits without it).
pub(super) async fn requester(
    conn: &Connection,
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    info: PeerInfo,
    first: ToRelay,
) -> Result<(), Refusal> {
    let remote = conn.remote_address();
    let help = &shared.help;
    let (tx, mut rx) = oneshot::channel();
    let waiting = WaitingAgent {
        conn: conn.clone(),
        info,
        pair: tx,
    };
    let (id, secret) = match first {
        ToRelay::FileRequest { filing } => {
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
            let secret = hex::encode(bytes);
            let s = secret.clone();
            let source = crate::limits::source_of(remote.ip());
            let (per_minute, waiting_cap) = (
                shared.cfg.registrations_per_minute,
                shared.cfg.max_waiting_codes_per_source as usize,
            );
            let id = help
                .with(move |st| {
                    st.may_file(source, per_minute, waiting_cap, Instant::now())?;
                    let filing = Filing {
                        description: filing.description,
                        machine: filing.machine,
                        os: filing.os,
                        ticket: filing.ticket,
                    };
                    let event = record(st, |d| d.file(filing.clone(), &s, now_ms()))?;
                    st.present.insert(event.id(), waiting);
                    Ok((event.id(), true))
                })
                .await?;
            info!(peer = %remote, request = id, "help request filed");
            (id, secret)
        }
        ToRelay::ResumeRequest { request, secret } => {
            // Straight after a session, the desk may not have heard yet how it ended (the
            // technician's side records that): a request still taken is waited for briefly.
            let mut changed = help.changed.subscribe();
            let deadline = tokio::time::Instant::now() + RESUME_WAIT;
            loop {
                let taken = matches!(
                    help.lock().desk.get(request).map(|r| &r.state),
                    Some(crate::desk::State::Taken { .. })
                );
                if !taken
                    || tokio::time::timeout_at(deadline, changed.changed())
                        .await
                        .is_err()
                {
                    break;
                }
            }
            let s = secret.clone();
            help.with(move |st| {
                if !st.desk.may_resume(request, &s) {
                    return Err(Refusal::new(
                        ErrorCode::UnknownRequest,
                        format!("no help request {request} waits under that secret"),
                    ));
                }
                // A newer connection of the same agent replaces the older one, whose task
                // then ends (its sender is dropped).
                st.present.insert(request, waiting);
                Ok(((), true))
            })
            .await?;
            info!(peer = %remote, request, "help request taken back by its agent");
            (request, secret)
        }
        other => {
            return Err(Refusal::violation(format!(
                "an agent files or resumes a help request, not {other}"
            )))
        }
    };
    // For the other relays of the cluster, while this connection waits here.
    let _held = super::Held::new(
        shared,
        crate::cluster::request_key(id),
        conn,
        now_ms() + REQUEST_HELD.as_millis() as u64,
    )
    .await;
    let (position, expected_wait_secs) = help.place(id).unwrap_or((0, None));
    let mut place = position;
    send(
        out,
        FromRelay::Queued {
            request: id,
            position,
            expected_wait_secs,
            secret,
        },
    )
    .await?;
    let mut moved = help.moved.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let mine = conn.stable_id();
    // Forgets this connection as the request's agent, unless a newer one took its place.
    let leave = |help: &Help| {
        let mut st = help.lock();
        if st
            .present
            .get(&id)
            .is_some_and(|w| w.conn.stable_id() == mine)
        {
            st.present.remove(&id);
            drop(st);
            help.changed.send_modify(|n| *n += 1);
        }
    };
    let partner = loop {
        tokio::select! {
            p = &mut rx => match p {
                Ok(p) => break p,
                Err(_) => {
                    return Err(Refusal::new(
                        ErrorCode::ProtocolViolation,
                        "this help request was taken back by a newer connection of its agent",
                    ))
                }
            },
            _ = moved.changed() => {
                if let Some((now, expected_wait_secs)) = help.place(id) {
                    if now != place {
                        place = now;
                        send(out, FromRelay::QueuePlace { position: place, expected_wait_secs }).await?;
                    }
                }
            }
            r = read(inp) => {
                match r? {
                    Read::Msg(ToRelay::CancelRequest) => {
                        let cancelled = help.with(move |st| {
                            record(st, |d| d.cancel(id, now_ms()))?;
                            st.present.remove(&id);
                            Ok(((), true))
                        }).await;
                        match cancelled {
                            Ok(()) => {
                                info!(peer = %remote, request = id, "help request cancelled");
                                send(out, FromRelay::RequestCancelled).await?;
                                // Delivered before the connection closes.
                                let _ = out.finish();
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(1),
                                    out.stream_mut().stopped(),
                                )
                                .await;
                                return Ok(());
                            }
                            // Taken at this very moment: the technician is on its way.
                            Err(r) if r.code == ErrorCode::RequestTaken => continue,
                            Err(r) => return Err(r),
                        }
                    }
                    Read::Gone => {
                        leave(help);
                        return Ok(());
                    }
                    Read::Msg(m) => {
                        leave(help);
                        return Err(Refusal::violation(format!(
                            "{m} is not allowed while a help request waits"
                        )));
                    }
                }
            }
            _ = shutdown.changed() => {
                leave(help);
                return Err(Refusal::new(ErrorCode::ShuttingDown, "the relay is shutting down"));
            }
        }
    };
    info!(peer = %remote, request = id, technician = %partner.info.description, session = %partner.session, "paired from a help request");
    agent_paired(conn, out, inp, shared, partner).await
}

/// A logged-in technician watching its queue: the queue now and after every change (with the
/// dashboard for leads), and the offers routing makes it, until it takes a request (`Some` with
/// what it asked for) or leaves (`None`).
pub(super) async fn watch(
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    account: &Technician,
) -> Result<Option<Option<u64>>, Refusal> {
    let help = &shared.help;
    let (name, tier, lead) = (
        account.name.as_str(),
        account.tier,
        account.role.sees_dashboard(),
    );
    let (offer_tx, mut offers) = mpsc::channel(8);
    let _watching = {
        let mut st = help.lock();
        st.person(name, tier).watching += 1;
        let key = st.next_watcher;
        st.next_watcher += 1;
        st.watchers.insert(
            key,
            Watcher {
                name: name.to_string(),
                offers: offer_tx,
            },
        );
        drop(st);
        help.presence_changed();
        Watching { help, key }
    };
    let mut changed = help.changed.subscribe();
    let mut presence = help.presence.subscribe();
    let mut shown = Vec::new();
    send_news(out, help.snapshot(name, tier, lead), &mut shown).await?;
    let mut due = None;
    loop {
        tokio::select! {
            _ = changed.changed(), if due.is_none() => {
                due = Some(tokio::time::Instant::now() + NEWS_SETTLE);
            }
            _ = presence.changed(), if lead && due.is_none() => {
                due = Some(tokio::time::Instant::now() + NEWS_SETTLE);
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                due = None;
                changed.borrow_and_update();
                presence.borrow_and_update();
                send_news(out, help.snapshot(name, tier, lead), &mut shown).await?;
            }
            Some(id) = offers.recv() => {
                if let Some(offer) = help.offer(id, name) {
                    send(out, offer).await?;
                }
            }
            r = read(inp) => match r? {
                Read::Msg(ToRelay::Take { request }) => return Ok(Some(request)),
                Read::Msg(ToRelay::SetPresence { away }) => {
                    help.lock().person(name, tier).away = away;
                    help.presence_changed();
                }
                Read::Msg(ToRelay::Decline { request }) => {
                    let who = name.to_string();
                    let declined = help.with(move |st| {
                        record(st, |d| d.decline(request, &who, false, now_ms()))?;
                        Ok(((), true))
                    }).await;
                    // An offer that timed out or was taken meanwhile: nothing left to decline.
                    if let Err(r) = declined {
                        debug!(request, reason = %r.message, "decline not applied");
                    }
                }
                Read::Gone => return Ok(None),
                Read::Msg(m) => {
                    return Err(Refusal::violation(format!(
                        "a technician watching the queue sends take, decline or set presence, not {m}"
                    )))
                }
            },
        }
    }
}

/// Sends each of the queue and the dashboard `now` that differs from what was `shown` last.
async fn send_news(
    out: &mut FramedSend<FromRelay>,
    now: Vec<FromRelay>,
    shown: &mut Vec<FromRelay>,
) -> Result<(), Refusal> {
    for (i, m) in now.iter().enumerate() {
        if shown.get(i) != Some(m) {
            send(out, m.clone()).await?;
        }
    }
    *shown = now;
    Ok(())
}

/// Takes `request` (or the oldest the account may take whose agent can be reached and that is
/// not offered to someone else) for `account`: exactly one technician gets a request, the
/// others are refused with who did. Its agent waits on a connection of its own, or is in a live
/// session (an escalation taken while the technician before is still there).
pub(super) async fn take(
    shared: &Shared,
    name: &str,
    tier: u8,
    request: Option<u64>,
) -> Result<(QueueEntry, Reach), Refusal> {
    let name = name.to_string();
    shared
        .help
        .with(move |st| {
            if let Some(id) = request {
                // Why it cannot be taken comes before where its agent is.
                st.desk.take(id, &name, tier, now_ms()).map_err(refusal)?;
                if !st.reachable(id) {
                    return Err(Refusal::new(
                        ErrorCode::RequestAway,
                        format!(
                            "the agent of help request {id} is not connected now; it can be \
                             taken once the user's agent is back"
                        ),
                    ));
                }
            }
            // Decided on the desk as the journal stands: a request another relay's technician
            // took first is refused (by id) or passed over (the next).
            // The oldest whose agent waits on another relay is taken there: the technician is
            // sent to it.
            let (present, live, elsewhere) = (&st.present, &st.live_requests, &st.elsewhere);
            let mut away = None;
            let taken = st.desk.commit(|d| {
                away = None;
                let id = match request {
                    Some(id) => id,
                    None => d
                        .visible(&name, tier)
                        .find(|r| {
                            (present.contains_key(&r.id)
                                || live.contains_key(&r.id)
                                || elsewhere.contains_key(&r.id))
                                && r.offered.as_ref().is_none_or(|(to, _)| *to == name)
                        })
                        .map(|r| r.id)
                        .ok_or(DeskError::NoneWaiting(tier))?,
                };
                let take = d.take(id, &name, tier, now_ms())?;
                if request.is_none() && !present.contains_key(&id) && !live.contains_key(&id) {
                    // Checked as a take here would be, then left to that relay.
                    away = Some(id);
                    return Err(DeskError::NoneWaiting(tier));
                }
                Ok(take)
            });
            if let Some(id) = away {
                let to = st.elsewhere[&id].clone();
                let entry = st.entry(st.desk.get(id).expect("the take checked it"));
                return Ok(((entry, Reach::Elsewhere(to)), false));
            }
            st.forget_views();
            let id = taken.map_err(|e| st.journal_failed(e))?.id();
            let entry = st.entry(st.desk.get(id).expect("the take checked it"));
            let reach = match st.present.remove(&id) {
                Some(agent) => Reach::Waiting(agent),
                None => {
                    // The session the request was passed on from, if it still runs; else any
                    // live session of the request.
                    let from = entry.handoff.as_ref().map(|h| h.session.as_str());
                    let (session, live) = st
                        .live
                        .iter()
                        .filter(|(_, l)| l.request == Some(id))
                        .max_by_key(|(s, l)| (Some(s.as_str()) == from, l.started_at))
                        .expect("reachable and not waiting: live");
                    let joining = match &entry.handoff {
                        Some(h) => Joining::Escalation {
                            by: h.by.clone(),
                            note: h.note.clone(),
                        },
                        None => Joining::Escalation {
                            by: live.technician.clone(),
                            note: String::new(),
                        },
                    };
                    Reach::Live {
                        session: session.clone(),
                        invites: live.invites.clone(),
                        joining,
                    }
                }
            };
            Ok(((entry, reach), true))
        })
        .await
}

/// A technician in a session from help request `id` passes it on or closes it
/// ([`ToRelay::Escalate`], [`ToRelay::Hold`], [`ToRelay::Resolve`]); `session` is the ledger's.
/// Returns the words of what was done.
pub(super) async fn pass_on(
    shared: &Shared,
    id: u64,
    name: &str,
    session: &str,
    msg: ToRelay,
) -> Result<String, Refusal> {
    let (name, session) = (name.to_string(), session.to_string());
    let (to, words) = match &msg {
        ToRelay::Escalate {
            to: EscalationTarget::Tier(t),
            ..
        } => (Some(Target::Tier(*t)), format!("escalated to tier {t}")),
        ToRelay::Escalate {
            to: EscalationTarget::Technician(other),
            ..
        } => {
            let other = protocol::text::tame(other.trim(), crate::desk::MAX_FIELD);
            if other == name {
                return Err(Refusal::new(
                    ErrorCode::NotPermitted,
                    "a request is escalated to someone else; hold it to keep it for yourself",
                ));
            }
            let Some(t) = shared.logins.technician_named(other.clone()).await? else {
                return Err(Refusal::new(
                    ErrorCode::NotPermitted,
                    format!("there is no technician {other:?} who may take sessions"),
                ));
            };
            (
                Some(Target::Technician {
                    name: t.name.clone(),
                    tier: t.tier,
                }),
                format!("escalated to {} (tier {})", t.name, t.tier),
            )
        }
        ToRelay::Hold { .. } => (None, format!("held in {name}'s own queue")),
        ToRelay::Resolve { resolved: true, .. } => (None, "closed as resolved".to_string()),
        ToRelay::Resolve { .. } => (None, "closed as not resolved".to_string()),
        other => {
            return Err(Refusal::violation(format!(
                "{other} is not a way to pass on a help request"
            )))
        }
    };
    shared
        .help
        .with(move |st| {
            let at = now_ms();
            record(st, |d| match (&msg, &to) {
                (ToRelay::Escalate { note, .. }, Some(to)) => {
                    d.escalate(id, &name, to.clone(), note, &session, at)
                }
                (ToRelay::Hold { note }, _) => d.hold(id, &name, note, &session, at),
                (ToRelay::Resolve { resolved, note }, _) => d.close(id, &name, *resolved, note, at),
                _ => unreachable!("matched above"),
            })?;
            Ok(((), true))
        })
        .await?;
    info!(request = id, %words, "help request passed on");
    Ok(words)
}

/// The session of help request `id` that `name` took has ended: unless they passed it on or
/// closed it, it is closed as not resolved (someone ended it on purpose) or goes back to its
/// queue (a connection died, the relay is stopping, or another technician is still with the
/// user: an escalation's next technician the user turned away, or who left first).
pub(super) async fn session_over(shared: &Shared, id: u64, name: &str, on_purpose: Option<String>) {
    let name = name.to_string();
    let done = shared
        .help
        .with(move |st| {
            let at = now_ms();
            let others_stay = st.live_requests.contains_key(&id);
            let done = st.desk.commit(|d| {
                let still_mine = matches!(
                    d.get(id).map(|r| &r.state),
                    Some(crate::desk::State::Taken { by, .. }) if *by == name
                );
                match &on_purpose {
                    _ if !still_mine => Err(DeskError::NotYours {
                        id,
                        name: name.clone(),
                    }),
                    _ if others_stay => d.give_back(
                        id,
                        "the next technician left while another stays with the user",
                        at,
                    ),
                    Some(why) => d.close(id, &name, false, why, at),
                    None => d.give_back(id, "the session's connection was lost", at),
                }
            });
            st.forget_views();
            match done {
                Ok(_) => Ok(((), true)),
                // Passed on or closed already, or given back by the relay meanwhile.
                Err(JournalError::Desk(DeskError::NotYours { .. })) => Ok(((), false)),
                Err(e) => Err(st.journal_failed(e)),
            }
        })
        .await;
    if let Err(r) = done {
        warn!(request = id, error = %r.message, "the end of a help request's session is not recorded");
    }
}

/// An agent's answer to the survey of its help request.
pub(super) async fn survey(
    out: &mut FramedSend<FromRelay>,
    shared: &Shared,
    msg: ToRelay,
) -> Result<(), Refusal> {
    let ToRelay::AnswerSurvey {
        request,
        secret,
        score,
        comment,
    } = msg
    else {
        return Err(Refusal::violation("not a survey answer"));
    };
    shared
        .help
        .with(move |st| {
            record(st, |d| {
                d.survey(request, &secret, score, &comment, now_ms())
            })?;
            Ok(((), false))
        })
        .await?;
    info!(request, score, "survey answered");
    send(out, FromRelay::SurveyTaken).await?;
    // Delivered before the connection closes.
    let _ = out.finish();
    let _ = tokio::time::timeout(Duration::from_secs(1), out.stream_mut().stopped()).await;
    Ok(())
}
