//! Help requests on the control plane. An agent files one (or takes its own back after a dropped
//! connection) and waits in the queue, told its place as it moves; a logged-in technician
//! watches the queue it may take from and takes one; the two are then paired as for a code.
//!
//! The queue itself is [`crate::desk`]: every change is an event stored in the relay's database
//! before it takes effect, so a relay restart keeps every request and its place, and a request
//! is taken exactly once (the check and the event happen under one lock). Which agents are
//! connected now is kept here, in memory only: a request whose agent is away waits, and can be
//! taken once the agent is back.

use std::collections::HashMap;

use protocol::control::{QueueEntry, RequestFiling, QUEUE_SHOWN};

use super::*;
use crate::desk::{Desk, DeskError, Event, Filing, Journal, JournalError};
use crate::ledger::now_ms;
use crate::limits::Source;

/// The desk, its journal and the agents waiting on a connection now.
struct State {
    desk: Desk,
    journal: Journal,
    present: HashMap<u64, WaitingAgent>,
    /// When each source filed its requests within the last minute, for the relay's
    /// per-source limits (those of session codes: one address cannot fill the queue).
    filings: HashMap<Source, Vec<Instant>>,
}

/// Sources remembered at once before the old entries are swept out.
const FILING_SOURCES: usize = 10_000;

impl State {
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
}

/// The help-request side of the relay, shared by every connection.
pub(super) struct Help {
    state: Arc<Mutex<State>>,
    /// Counts changes of the queue: watchers wake on it.
    changed: watch::Sender<u64>,
}

fn refusal(e: DeskError) -> Refusal {
    let code = match &e {
        DeskError::Unknown(_) | DeskError::Cancelled(_) | DeskError::NoneWaiting(_) => {
            ErrorCode::UnknownRequest
        }
        DeskError::AlreadyTaken { .. } => ErrorCode::RequestTaken,
        DeskError::AboveTier { .. } => ErrorCode::NotPermitted,
        DeskError::Full(_) => ErrorCode::QueueFull,
        DeskError::Replay(_) => ErrorCode::Internal,
    };
    Refusal::new(code, e.to_string())
}

fn journal_refusal(e: JournalError) -> Refusal {
    warn!(error = %e, "the desk's journal failed");
    Refusal::new(
        ErrorCode::Internal,
        format!("the relay cannot record the help request: {e}"),
    )
}

impl Help {
    /// The desk as the journal in `data_dir` leaves it.
    pub(super) fn open(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let journal = Journal::open(data_dir)?;
        let desk = journal.desk()?;
        info!(waiting = desk.waiting_count(), "help requests loaded");
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                desk,
                journal,
                present: HashMap::new(),
                filings: HashMap::new(),
            })),
            changed: watch::channel(0).0,
        })
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
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let position = state.desk.position(id)? as u32;
        let wait = state
            .desk
            .expected_wait(id, now_ms())
            .map(|ms| (ms / 1000).min(u64::from(u32::MAX)) as u32);
        Some((position, wait))
    }

    /// The queue a technician of `tier` sees.
    fn snapshot(&self, tier: u8) -> FromRelay {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut requests = Vec::new();
        let mut more = 0u32;
        for r in state.desk.visible(tier) {
            if requests.len() == QUEUE_SHOWN {
                more += 1;
                continue;
            }
            requests.push(QueueEntry {
                id: r.id,
                tier: r.tier,
                filed_unix_ms: r.filed_at,
                filing: RequestFiling {
                    description: r.filing.description.clone(),
                    machine: r.filing.machine.clone(),
                    os: r.filing.os.clone(),
                    ticket: r.filing.ticket.clone(),
                },
                connected: state.present.contains_key(&r.id),
            });
        }
        FromRelay::Queue { requests, more }
    }
}

/// Applies `event` after storing it.
fn record(state: &mut State, event: &Event) -> Result<(), Refusal> {
    state.journal.append(event).map_err(journal_refusal)?;
    state.desk.apply(event);
    Ok(())
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
                    let event = st.desk.file(filing, &s, now_ms()).map_err(refusal)?;
                    record(st, &event)?;
                    st.present.insert(event.id(), waiting);
                    Ok((event.id(), true))
                })
                .await?;
            info!(peer = %remote, request = id, "help request filed");
            (id, secret)
        }
        ToRelay::ResumeRequest { request, secret } => {
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
    let mut changed = help.changed.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let mine = conn.stable_id();
    // Forgets this connection as the request's agent, unless a newer one took its place.
    let leave = |help: &Help| {
        let mut st = help.state.lock().unwrap_or_else(|p| p.into_inner());
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
            _ = changed.changed() => {
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
                            let event = st.desk.cancel(id, now_ms()).map_err(refusal)?;
                            record(st, &event)?;
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

/// A logged-in technician watching its queue: the queue now and after every change, until it
/// takes a request (`Some` with what it asked for) or leaves (`None`).
pub(super) async fn watch(
    out: &mut FramedSend<FromRelay>,
    inp: &mut FramedRecv<ToRelay>,
    shared: &Shared,
    tier: u8,
) -> Result<Option<Option<u64>>, Refusal> {
    let help = &shared.help;
    let mut changed = help.changed.subscribe();
    send(out, help.snapshot(tier)).await?;
    loop {
        tokio::select! {
            _ = changed.changed() => send(out, help.snapshot(tier)).await?,
            r = read(inp) => match r? {
                Read::Msg(ToRelay::Take { request }) => return Ok(Some(request)),
                Read::Gone => return Ok(None),
                Read::Msg(m) => {
                    return Err(Refusal::violation(format!(
                        "a technician watching the queue sends take, not {m}"
                    )))
                }
            },
        }
    }
}

/// Takes `request` (or the oldest the account may take whose agent is connected) for
/// `account`: exactly one technician gets a request, the others are refused with who did.
pub(super) async fn take(
    shared: &Shared,
    name: &str,
    tier: u8,
    request: Option<u64>,
) -> Result<(u64, WaitingAgent), Refusal> {
    let name = name.to_string();
    shared
        .help
        .with(move |st| {
            let id = match request {
                Some(id) => id,
                None => st
                    .desk
                    .visible(tier)
                    .map(|r| r.id)
                    .find(|id| st.present.contains_key(id))
                    .ok_or_else(|| refusal(DeskError::NoneWaiting(tier)))?,
            };
            let event = st.desk.take(id, &name, tier, now_ms()).map_err(refusal)?;
            if !st.present.contains_key(&id) {
                return Err(Refusal::new(
                    ErrorCode::RequestAway,
                    format!(
                        "the agent of help request {id} is not connected now; it can be taken \
                         once the user's agent is back"
                    ),
                ));
            }
            record(st, &event)?;
            let agent = st.present.remove(&id).expect("checked just above");
            Ok(((id, agent), true))
        })
        .await
}
