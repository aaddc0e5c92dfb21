//! `bench desk`: the support desk under load, through a real `relay` process on loopback.
//!
//! A thousand agents connect and file help requests, which wait in tier 1's queue, each agent
//! staying connected and reading its news as the real one does; fifty technician accounts log
//! in and watch the queue live. The relay is started as the other benches start it, its
//! per-source limits raised past what the bench opens (every connection comes from one
//! address). Then:
//!
//! - visibility: a new request is filed, one at a time, and timed from sending it until every
//!   watcher has been sent a queue that counts it; the request is withdrawn before the next.
//!   Beside each, the peer: an agent's bare control-plane round trip on the same relay (ask for
//!   a session code, have it).
//! - claims: a few of the technicians take requests while the others keep watching, each
//!   claim on a fresh connection as the console makes it (resume the login, watch, take from
//!   the queue shown): by id, or the next one (`Take` without an id). A claim is timed from
//!   sending `Take` until `Paired`; the technician then ends the session, and the request's
//!   agent, told its technician left, files a new request on a new connection, so the queue
//!   keeps its length. The peer: the same technicians pairing by session code on the same
//!   relay (an agent registers a code, the technician joins it), timed from sending `Join`
//!   until `Paired`. Each way runs flat out (every claimer claiming again as soon as it is
//!   done: how many claims a second the desk sustains, and the latency when it is saturated)
//!   and at a steady pace below that (the latency a technician sees, held to the target); the
//!   ways take turns in rounds, so drift in the machine's load hits them alike.
//! - CPU: the relay's CPU time per claim and per new request, beyond what it uses with
//!   everything connected and nothing happening (the keep-alives).
//! - memory: the relay's resident memory before anything connects, with everything connected
//!   and settled, at its peak during the phases (read every 250 ms), and settled at the end;
//!   beside it, a fresh relay with as many agents waiting by session code instead.
//!
//! The queue a technician is sent shows its oldest [`QUEUE_SHOWN`] requests and counts the rest,
//! so a new request behind a thousand is seen as one more counted: a watcher has seen it when
//! it has a queue whose total is one more than before (nothing else changes the queue then).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use link::client::{DeskNews, QueueNews};
use link::{LinkError, RelayConnection};
use protocol::control::{ErrorCode, QueueEntry, RequestFiling, Role, QUEUE_SHOWN};
use quinn::Endpoint;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::procstat;
use crate::relay::{
    bench_account, client_endpoints, open_many, percentile, relay_binary, settled_rss, within,
    RelayProcess, RELAY_FLAGS,
};
use crate::report::{progress, Report};

const BENCH: &str = "desk";
/// The column of the figures of the desk as a whole.
const DESK: &str = "desk";

/// Client endpoints the agents' connections are spread over, as many machines' would be over
/// their own sockets; the technicians have as many again.
const ENDPOINTS: usize = 4;
/// Agents (and technicians) connecting at once while the load is built up.
const OPEN_CONCURRENCY: usize = 32;
/// Turns the three ways of claiming take.
const ROUNDS: u32 = 3;
/// How long any one step may take before the bench gives up on it.
const STEP: Duration = Duration::from_secs(30);
/// How often the relay's memory is read for its peak.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Desk bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Help requests waiting, each from an agent connected to the relay
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=9_000))]
    pub requests: u32,
    /// Technician accounts logged in and watching the queue
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(2..=500))]
    pub watchers: u32,
    /// Of the watchers, how many claim at once during the claims (the others keep watching)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=499))]
    pub claimers: u32,
    /// Claims each way (by id, the next one, and the peer: sessions joined by code) and each
    /// pace (flat out, and at --rate)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    pub claims: u32,
    /// Claims a second of the paced runs, whose latency is held to the target
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub rate: u32,
    /// New requests filed one at a time and timed until every watcher sees them
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub probes: u32,
}

/// Runs the bench and returns its figures.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    ensure!(
        args.claimers < args.watchers,
        "--claimers ({}) must be fewer than --watchers ({}): the others watch while they claim",
        args.claimers,
        args.watchers
    );
    let relay_bin = relay_binary()?;
    progress(BENCH, "starting the relay");
    let relay = RelayProcess::start(&relay_bin).await?;
    let endpoints = Arc::new(Endpoints::open(&relay)?);
    progress(
        BENCH,
        format!("creating {} technician accounts", args.watchers),
    );
    let technicians = technician_accounts(&relay, &relay_bin, &endpoints, args.watchers).await?;
    progress(BENCH, "memory: letting the relay settle before the load");
    let before_kib = settled_rss(relay.pid).await?;
    let peak = PeakRss::start(relay.pid);

    progress(
        BENCH,
        format!("{} agents file help requests", args.requests),
    );
    let agents = Arc::new(AgentTally::default());
    let mut waiting = JoinSet::new();
    for (n, conn) in open_agents(&relay, &endpoints, args.requests)
        .await?
        .into_iter()
        .enumerate()
    {
        waiting.spawn(agent_waits(
            conn,
            endpoints.agent(n).clone(),
            relay.addr,
            n as u32,
            agents.clone(),
        ));
    }

    progress(
        BENCH,
        format!("{} technicians watch the queue", args.watchers),
    );
    let mut watchers = Vec::new();
    for (k, t) in technicians.iter().enumerate() {
        watchers
            .push(Watcher::start(t.clone(), endpoints.technician(k).clone(), relay.addr).await?);
    }
    let seen: Vec<_> = watchers.iter().map(|w| w.seen.clone()).collect();
    all_see(&seen, u64::from(args.requests))
        .await
        .context("the watchers' first queue")?;
    progress(BENCH, "memory: letting the relay settle under the load");
    let idle = CpuClock::start(relay.pid)?;
    let loaded_kib = settled_rss(relay.pid).await?;
    let idle = idle.share()?;

    progress(
        BENCH,
        format!(
            "visibility: {} new requests, each until all {} watchers see it",
            args.probes, args.watchers
        ),
    );
    let cpu = CpuClock::start(relay.pid)?;
    let visibility = visibility(
        &endpoints,
        relay.addr,
        &seen,
        u64::from(args.requests),
        args.probes,
    )
    .await?;
    let visibility_cpu = cpu.above(idle)?;

    // The claimers stop watching; their accounts claim on connections of their own.
    let claimers: Vec<Arc<Technician>> = technicians[..args.claimers as usize].to_vec();
    let mut still_watching = watchers.split_off(args.claimers as usize);
    for w in watchers {
        w.stop().await?;
    }
    let watching_seen: Vec<_> = still_watching.iter().map(|w| w.seen.clone()).collect();
    let mut claims = Claims::default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let own = CpuClock::start(std::process::id())?;
    let relay_busy = CpuClock::start(relay.pid)?;
    let paces = [
        Pace::FlatOut,
        Pace::Every(Duration::from_secs(1) / args.rate),
    ];
    for round in 0..ROUNDS {
        for way in WAYS {
            // The last round takes what the others left over.
            let count = if round + 1 == ROUNDS {
                args.claims - args.claims / ROUNDS * (ROUNDS - 1)
            } else {
                args.claims / ROUNDS
            };
            for pace in paces {
                progress(
                    BENCH,
                    format!(
                        "claims, round {} of {ROUNDS}: {count} {} {} while {} technicians watch",
                        round + 1,
                        way.doing(),
                        pace.words(claimers.len()),
                        still_watching.len()
                    ),
                );
                // Every request taken before has been filed again.
                all_see(&watching_seen, u64::from(args.requests)).await?;
                let news = News::now(&watching_seen, &agents);
                let cpu = CpuClock::start(relay.pid)?;
                let run = claim_run(way, pace, &claimers, count, relay.addr, &endpoints).await?;
                let relay_cpu = cpu.above(idle)?;
                claims
                    .of(pace, way)
                    .add(run, relay_cpu, news.since(&watching_seen, &agents));
            }
        }
    }
    let busy = (relay_busy.share()? + own.share()?) / cpus as f64;
    let load = procstat::load_average()?;

    progress(BENCH, "memory: letting the relay settle after the load");
    let end_kib = settled_rss(relay.pid).await?;
    let peak_kib = peak.stop().max(end_kib);

    progress(BENCH, "done; closing the connections");
    let mut watchers_lost = Vec::new();
    for w in still_watching.drain(..) {
        if let Err(e) = w.stop().await {
            watchers_lost.push(format!("{e:#}"));
        }
    }
    waiting.abort_all();
    while waiting.join_next().await.is_some() {}
    endpoints.close();
    relay.stop().await;

    let codes = code_wait_memory(&relay_bin, args.requests, args.watchers).await?;

    Ok(Figures {
        args: &args,
        visibility,
        visibility_cpu,
        claims,
        memory: [before_kib, loaded_kib, peak_kib, end_kib],
        codes,
        idle,
        load,
        agents: &agents,
        watchers_lost,
        busy,
        cpus,
    }
    .report())
}

// ---------------------------------------------------------------------------------------------
// Connections

/// The bench's client endpoints: the agents' and the technicians'.
struct Endpoints {
    agents: Vec<Endpoint>,
    technicians: Vec<Endpoint>,
}

impl Endpoints {
    fn open(relay: &RelayProcess) -> anyhow::Result<Self> {
        Ok(Self {
            agents: client_endpoints(relay.addr, relay.fingerprint, ENDPOINTS)?,
            technicians: client_endpoints(relay.addr, relay.fingerprint, ENDPOINTS)?,
        })
    }

    fn agent(&self, n: usize) -> &Endpoint {
        &self.agents[n % ENDPOINTS]
    }

    fn technician(&self, n: usize) -> &Endpoint {
        &self.technicians[n % ENDPOINTS]
    }

    fn close(&self) {
        for e in self.agents.iter().chain(&self.technicians) {
            e.close(0u32.into(), b"bench done");
        }
    }
}

/// What an agent of the bench files.
fn filing(description: String) -> RequestFiling {
    RequestFiling {
        description,
        machine: "bench-pc".into(),
        os: "Linux".into(),
        ticket: None,
    }
}

/// Connects an agent and files a help request; returns the connection, its request waiting.
async fn file(
    endpoint: &Endpoint,
    relay: SocketAddr,
    description: String,
) -> Result<RelayConnection, LinkError> {
    let mut conn = RelayConnection::connect_with(endpoint.clone(), relay, Role::Agent).await?;
    conn.file_request(filing(description)).await?;
    Ok(conn)
}

/// Opens `count` agents, [`OPEN_CONCURRENCY`] at a time, each with its request filed.
async fn open_agents(
    relay: &RelayProcess,
    endpoints: &Endpoints,
    count: u32,
) -> anyhow::Result<Vec<RelayConnection>> {
    open_many(BENCH, count, OPEN_CONCURRENCY, "requests filed", |n| {
        let (ep, addr) = (endpoints.agent(n as usize).clone(), relay.addr);
        async move {
            within(STEP, "filing a help request", async {
                file(&ep, addr, format!("bench request {n}"))
                    .await
                    .with_context(|| format!("agent {n} cannot file its request"))
            })
            .await
        }
    })
    .await
}

/// What the waiting agents heard and did, counted as they go.
#[derive(Default)]
struct AgentTally {
    /// News of a new place in the queue.
    places: AtomicU64,
    /// Requests taken (the agent paired with a technician).
    taken: AtomicU64,
    /// Requests filed again after their session.
    refiled: AtomicU64,
    lost: AtomicU64,
    first_loss: Mutex<Option<String>>,
}

impl AgentTally {
    fn lose(&self, what: String) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_loss.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(what);
    }
}

/// One agent, its request waiting on `conn`: reads its news until a technician takes it, is
/// in the session until the technician leaves, then files a new request and waits again.
async fn agent_waits(
    mut conn: RelayConnection,
    endpoint: Endpoint,
    relay: SocketAddr,
    n: u32,
    tally: Arc<AgentTally>,
) {
    loop {
        let news = loop {
            match conn.next_in_queue().await {
                Ok(QueueNews::Place { .. }) => {
                    tally.places.fetch_add(1, Ordering::Relaxed);
                }
                other => break other,
            }
        };
        if !matches!(news, Ok(QueueNews::Taken(_))) {
            return tally.lose(format!("agent {n} waiting in the queue heard {news:?}"));
        }
        tally.taken.fetch_add(1, Ordering::Relaxed);
        // The technician ends the session at once.
        match conn.next_skipping_silences().await {
            Err(LinkError::PeerLeft(_)) => {}
            other => return tally.lose(format!("agent {n} in its session heard {other:?}")),
        }
        conn.close("bench: the session is over");
        conn = match file(&endpoint, relay, format!("bench request {n} again")).await {
            Ok(c) => c,
            Err(e) => return tally.lose(format!("agent {n} cannot file again: {e}")),
        };
        tally.refiled.fetch_add(1, Ordering::Relaxed);
    }
}

/// A technician account of the bench and its login.
struct Technician {
    name: String,
    token: String,
}

/// Creates `count` tier-1 technician accounts on the relay and logs each in once.
async fn technician_accounts(
    relay: &RelayProcess,
    relay_bin: &std::path::Path,
    endpoints: &Endpoints,
    count: u32,
) -> anyhow::Result<Vec<Arc<Technician>>> {
    let (_, password) = bench_account();
    let mut accounts = Vec::new();
    for k in 0..count as usize {
        let name = format!("desk{k:03}");
        harness::relay::add_user(relay_bin, relay.data_dir(), &name, 1, password)?;
        let mut conn = RelayConnection::connect_with(
            endpoints.technician(k).clone(),
            relay.addr,
            Role::Technician,
        )
        .await
        .context("a technician cannot connect")?;
        let (_, token, _) = conn
            .login(&name, password)
            .await
            .with_context(|| format!("{name} cannot log in"))?;
        conn.close("bench: logged in");
        accounts.push(Arc::new(Technician { name, token }));
    }
    Ok(accounts)
}

/// A technician's connection, logged in with its token.
async fn technician_connection(
    endpoint: &Endpoint,
    relay: SocketAddr,
    technician: &Technician,
) -> Result<RelayConnection, LinkError> {
    let mut conn = RelayConnection::connect_with(endpoint.clone(), relay, Role::Technician).await?;
    conn.resume(&technician.token).await?;
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// Watching

/// What one watcher has been sent: how many requests its last queue counted (shown and more),
/// since when, and how many queues in all.
#[derive(Clone, Copy, Debug)]
struct Seen {
    total: Option<u64>,
    since: Instant,
    queues: u64,
}

impl Seen {
    /// A queue counting `total` arrived `at`.
    fn queue(&mut self, total: u64, at: Instant) {
        if self.total != Some(total) {
            self.total = Some(total);
            self.since = at;
        }
        self.queues += 1;
    }
}

/// A technician watching the queue in a task of its own.
struct Watcher {
    name: String,
    seen: watch::Receiver<Seen>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Watcher {
    async fn start(
        technician: Arc<Technician>,
        endpoint: Endpoint,
        relay: SocketAddr,
    ) -> anyhow::Result<Self> {
        let name = technician.name.clone();
        let mut conn = within(STEP, "a watcher's login", async {
            technician_connection(&endpoint, relay, &technician)
                .await
                .with_context(|| format!("{name} cannot connect"))
        })
        .await?;
        conn.watch_queue().await?;
        let (tx, seen) = watch::channel(Seen {
            total: None,
            since: Instant::now(),
            queues: 0,
        });
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    news = conn.next_desk() => match news {
                        Ok(DeskNews::Queue { requests, more }) => {
                            let total = requests.len() as u64 + u64::from(more);
                            let at = Instant::now();
                            tx.send_modify(|s| s.queue(total, at));
                        }
                        Ok(DeskNews::Offer { .. } | DeskNews::Dashboard { .. }) => {}
                        Err(e) => return Err(format!("{}: {e}", technician.name)),
                    },
                    _ = &mut stopped => {
                        conn.close("bench: done watching");
                        return Ok(());
                    }
                }
            }
        });
        Ok(Self {
            name,
            seen,
            stop,
            task,
        })
    }

    /// Stops watching; `Err` if the watcher had failed before.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => bail!("watcher {e}"),
            Err(e) => bail!("watcher {}'s task failed: {e}", self.name),
        }
    }
}

/// Waits until every watcher's last queue counts `total` requests; returns since when each
/// has.
async fn all_see(seen: &[watch::Receiver<Seen>], total: u64) -> anyhow::Result<Vec<Instant>> {
    let mut since = Vec::with_capacity(seen.len());
    for (k, s) in seen.iter().enumerate() {
        let mut s = s.clone();
        let waited = tokio::time::timeout(STEP, s.wait_for(|s| s.total == Some(total)))
            .await
            .map(|r| r.map(|now| now.since));
        match waited {
            Ok(Ok(at)) => since.push(at),
            Ok(Err(_)) => bail!("watcher {k} stopped before its queue counted {total}"),
            Err(_) => bail!(
                "watcher {k}'s queue did not count {total} requests within {} s (it counts {:?})",
                STEP.as_secs(),
                s.borrow().total
            ),
        }
    }
    Ok(since)
}

/// Visibility samples: until every watcher saw each new request, until each watcher did, and
/// the peer's round trips.
#[derive(Default)]
struct Visibility {
    all: Vec<Duration>,
    each: Vec<Duration>,
    round_trip: Vec<Duration>,
}

async fn visibility(
    endpoints: &Endpoints,
    relay: SocketAddr,
    seen: &[watch::Receiver<Seen>],
    waiting: u64,
    probes: u32,
) -> anyhow::Result<Visibility> {
    let mut v = Visibility::default();
    for p in 0..probes {
        let endpoint = endpoints.agent(p as usize);
        all_see(seen, waiting).await?;
        // The peer: a bare round trip on the control plane of the same relay.
        let mut agent = RelayConnection::connect_with(endpoint.clone(), relay, Role::Agent).await?;
        let t0 = Instant::now();
        within(STEP, "asking for a session code", async {
            Ok(agent.register().await?)
        })
        .await?;
        v.round_trip.push(t0.elapsed());
        agent.close("bench: measured");

        let mut probe = RelayConnection::connect_with(endpoint.clone(), relay, Role::Agent).await?;
        let t0 = Instant::now();
        within(STEP, "filing a new request", async {
            Ok(probe
                .file_request(filing(format!("bench probe {p}")))
                .await?)
        })
        .await?;
        let each: Vec<Duration> = all_see(seen, waiting + 1)
            .await?
            .into_iter()
            .map(|at| at.saturating_duration_since(t0))
            .collect();
        v.all.extend(each.iter().max());
        v.each.extend(each);
        probe.cancel_request().await?;
        match within(STEP, "withdrawing the new request", async {
            Ok(probe.next_in_queue().await?)
        })
        .await?
        {
            QueueNews::Cancelled => {}
            other => bail!("the new request could not be withdrawn: {other:?}"),
        }
        probe.close("bench: measured");
    }
    for samples in [&mut v.all, &mut v.each, &mut v.round_trip] {
        samples.sort_unstable();
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Claims

/// How a technician comes to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Takes a request by its id, from the queue it was shown.
    ById,
    /// Takes the next request (`Take` without an id).
    Next,
    /// The peer: joins an agent by its session code.
    Code,
}

const WAYS: [Way; 3] = [Way::ById, Way::Next, Way::Code];

impl Way {
    /// The table's column.
    fn system(self) -> &'static str {
        match self {
            Way::ById => "take by id",
            Way::Next => "take next",
            Way::Code => "join by code",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Way::ById => "requests taken by id",
            Way::Next => "requests taken as the next",
            Way::Code => "sessions joined by code",
        }
    }
}

/// The request the `k`th claimer takes by id from the queue it was shown: the `k`th of those it
/// may take, counting around, so that claimers shown the same queue pick different requests.
fn pick(shown: &[QueueEntry], k: usize) -> Option<u64> {
    let open: Vec<u64> = shown
        .iter()
        .filter(|e| e.connected && e.offered_to.is_none() && e.reserved_for.is_none())
        .map(|e| e.id)
        .collect();
    (!open.is_empty()).then(|| open[k % open.len()])
}

/// One claim: `Some` latency when paired, `None` when the request was taken by someone else.
async fn claim(
    way: Way,
    k: usize,
    technician: &Technician,
    relay: SocketAddr,
    endpoints: &Endpoints,
) -> anyhow::Result<Option<Duration>> {
    let mut conn = technician_connection(endpoints.technician(k), relay, technician).await?;
    let (latency, agent) = match way {
        Way::ById | Way::Next => {
            conn.watch_queue().await?;
            let (shown, _) = conn.next_queue().await?;
            let request = match way {
                Way::ById => Some(pick(&shown, k).context("the queue shown had nothing to take")?),
                _ => None,
            };
            let t0 = Instant::now();
            match conn.take(request).await {
                Ok(_) => (t0.elapsed(), None),
                // Taken by another claimer since the queue was shown (and perhaps closed
                // already); the relay closes the connection of a refused take.
                Err(LinkError::Refused {
                    code: ErrorCode::RequestTaken | ErrorCode::UnknownRequest,
                    ..
                }) => return Ok(None),
                Err(e) => return Err(e).context("taking a request"),
            }
        }
        Way::Code => {
            let mut agent =
                RelayConnection::connect_with(endpoints.agent(k).clone(), relay, Role::Agent)
                    .await?;
            let (code, _) = agent.register().await?;
            let t0 = Instant::now();
            conn.join(code).await.context("joining by code")?;
            (t0.elapsed(), Some(agent))
        }
    };
    conn.close("bench: claimed");
    if let Some(mut agent) = agent {
        agent.wait_paired().await.context("the agent of the code")?;
        agent.close("bench: claimed");
    }
    Ok(Some(latency))
}

/// What one run of claims measured.
#[derive(Default)]
struct ClaimRun {
    latencies: Vec<Duration>,
    refused: u64,
    elapsed: Duration,
}

impl ClaimRun {
    /// One claim's outcome, as [`claim`] gives it.
    fn add(&mut self, latency: Option<Duration>) {
        match latency {
            Some(l) => self.latencies.push(l),
            None => self.refused += 1,
        }
    }
}

/// How the claims of a run are made.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// Every claimer claims again as soon as it is done: the most the desk sustains.
    FlatOut,
    /// One claim every so often, the claimers taking turns, whether or not the claims before
    /// are done.
    Every(Duration),
}

impl Pace {
    fn words(self, claimers: usize) -> String {
        match self {
            Pace::FlatOut => format!("flat out by {claimers} technicians"),
            Pace::Every(d) => format!("one every {} ms", d.as_millis()),
        }
    }
}

/// `count` claims made `way` by the `claimers` at `pace`.
async fn claim_run(
    way: Way,
    pace: Pace,
    claimers: &[Arc<Technician>],
    count: u32,
    relay: SocketAddr,
    endpoints: &Arc<Endpoints>,
) -> anyhow::Result<ClaimRun> {
    let one = move |k: usize, t: Arc<Technician>, endpoints: Arc<Endpoints>| async move {
        within(STEP, "a claim", claim(way, k, &t, relay, &endpoints))
            .await
            .with_context(|| format!("{} claiming ({way:?})", t.name))
    };
    let mut all = ClaimRun::default();
    let started = Instant::now();
    match pace {
        Pace::FlatOut => {
            let claimed = Arc::new(AtomicU32::new(0));
            let mut tasks = JoinSet::new();
            for (k, t) in claimers.iter().enumerate() {
                let (t, claimed, endpoints) = (t.clone(), claimed.clone(), endpoints.clone());
                tasks.spawn(async move {
                    let mut run = ClaimRun::default();
                    while claimed.load(Ordering::Relaxed) < count {
                        let latency = one(k, t.clone(), endpoints.clone()).await?;
                        if latency.is_some() {
                            claimed.fetch_add(1, Ordering::Relaxed);
                        }
                        run.add(latency);
                    }
                    anyhow::Ok(run)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let run = done.context("a claimer's task failed")??;
                all.latencies.extend(run.latencies);
                all.refused += run.refused;
            }
        }
        Pace::Every(every) => {
            let mut tasks = JoinSet::new();
            let mut beat = tokio::time::interval(every);
            for k in 0..count as usize {
                beat.tick().await;
                let t = claimers[k % claimers.len()].clone();
                tasks.spawn(one(k, t, endpoints.clone()));
            }
            while let Some(done) = tasks.join_next().await {
                all.add(done.context("a claim's task failed")??);
            }
        }
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

/// The news the watchers and agents had been sent at one moment, to count what a run caused.
struct News {
    queues: u64,
    places: u64,
}

impl News {
    fn now(seen: &[watch::Receiver<Seen>], agents: &AgentTally) -> Self {
        Self {
            queues: seen.iter().map(|s| s.borrow().queues).sum(),
            places: agents.places.load(Ordering::Relaxed),
        }
    }

    /// What was sent since `self`.
    fn since(&self, seen: &[watch::Receiver<Seen>], agents: &AgentTally) -> News {
        let now = News::now(seen, agents);
        News {
            queues: now.queues - self.queues,
            places: now.places - self.places,
        }
    }
}

/// Every run of one way, merged.
#[derive(Default)]
struct WayFigures {
    latencies: Vec<Duration>,
    claims: u64,
    refused: u64,
    elapsed: Duration,
    relay_cpu: Duration,
    /// Queues sent to the technicians who kept watching, and places to the waiting agents.
    queues: u64,
    places: u64,
}

impl WayFigures {
    fn add(&mut self, run: ClaimRun, relay_cpu: Duration, news: News) {
        self.claims += run.latencies.len() as u64;
        self.latencies.extend(run.latencies);
        self.latencies.sort_unstable();
        self.refused += run.refused;
        self.elapsed += run.elapsed;
        self.relay_cpu += relay_cpu;
        self.queues += news.queues;
        self.places += news.places;
    }
}

/// The figures of each way, indexed like [`WAYS`], flat out and paced.
#[derive(Default)]
struct Claims {
    flat_out: [WayFigures; 3],
    paced: [WayFigures; 3],
}

impl Claims {
    fn of(&mut self, pace: Pace, way: Way) -> &mut WayFigures {
        match pace {
            Pace::FlatOut => &mut self.flat_out[way as usize],
            Pace::Every(_) => &mut self.paced[way as usize],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU and memory

/// The peer of the memory figures: a fresh relay with as many agents waiting for a technician
/// by session code (no desk) and as many technicians logged in, not watching. Its memory
/// before they connect and with them, settled, in KiB.
async fn code_wait_memory(
    relay_bin: &std::path::Path,
    agents: u32,
    technicians: u32,
) -> anyhow::Result<[u64; 2]> {
    progress(
        BENCH,
        format!(
            "memory, the peer: a fresh relay with {agents} agents waiting by code and \
             {technicians} technicians logged in"
        ),
    );
    let relay = RelayProcess::start(relay_bin).await?;
    let endpoints = Endpoints::open(&relay)?;
    let before = settled_rss(relay.pid).await?;
    let waiting = open_many(BENCH, agents, OPEN_CONCURRENCY, "codes registered", |n| {
        let (ep, addr) = (endpoints.agent(n as usize).clone(), relay.addr);
        async move {
            within(STEP, "registering a code", async {
                let mut agent = RelayConnection::connect_with(ep, addr, Role::Agent).await?;
                agent.register().await?;
                Ok(agent)
            })
            .await
        }
    })
    .await?;
    let bench = Technician {
        name: bench_account().0.into(),
        token: relay.token.to_string(),
    };
    let mut logged_in = Vec::new();
    for k in 0..technicians as usize {
        logged_in.push(technician_connection(endpoints.technician(k), relay.addr, &bench).await?);
    }
    let with = settled_rss(relay.pid).await?;
    for c in waiting.iter().chain(&logged_in) {
        c.close("bench: measured");
    }
    endpoints.close();
    relay.stop().await;
    Ok([before, with])
}

/// The CPU time a process uses from a moment on.
struct CpuClock {
    pid: u32,
    cpu: Duration,
    at: Instant,
}

impl CpuClock {
    fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            pid,
            cpu: procstat::cpu_time(pid)?,
            at: Instant::now(),
        })
    }

    /// The share of a CPU used since the start.
    fn share(&self) -> anyhow::Result<f64> {
        let used = procstat::cpu_time(self.pid)? - self.cpu;
        Ok(used.as_secs_f64() / self.at.elapsed().as_secs_f64())
    }

    /// The CPU time used since the start beyond the `idle` share of a CPU.
    fn above(&self, idle: f64) -> anyhow::Result<Duration> {
        let used = procstat::cpu_time(self.pid)? - self.cpu;
        Ok(used.saturating_sub(self.at.elapsed().mul_f64(idle)))
    }
}

/// The highest resident memory of a process, read every [`SAMPLE_EVERY`] until stopped.
struct PeakRss {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            loop {
                every.tick().await;
                match procstat::rss_kib(pid) {
                    Ok(kib) => {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        });
        Self { peak, task }
    }

    /// The peak in KiB.
    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// The report

struct Figures<'a> {
    args: &'a Args,
    visibility: Visibility,
    visibility_cpu: Duration,
    claims: Claims,
    /// KiB before the load, loaded and settled, peak, and settled at the end.
    memory: [u64; 4],
    /// The peer's KiB: before and with the same connections waiting by code, settled.
    codes: [u64; 2],
    /// The share of a CPU the relay used with everything connected and nothing happening.
    idle: f64,
    agents: &'a AgentTally,
    watchers_lost: Vec<String>,
    /// How busy the machine's CPUs were with the relay and this process during the claims.
    busy: f64,
    /// The machine's load average after the claims.
    load: f64,
    cpus: usize,
}

/// The claim latency target, and the visibility and memory ones.
const CLAIM_P99_MS: f64 = 20.0;
const VISIBLE_P99_MS: f64 = 100.0;
const GROWTH_MIB: f64 = 10.0;

impl Figures<'_> {
    fn report(&self) -> Report {
        let a = self.args;
        let mut r = Report::new(BENCH);
        r.note(format!(
            "one relay process on loopback ({}, per-source limits raised past what the bench \
             opens); {} agents' help requests waiting, each agent connected and reading its \
             news; {} technician accounts (tier 1) logged in and watching the queue; all \
             simulated in this process; {} CPU(s) shared by this process and the relay",
            RELAY_FLAGS.join(" "),
            a.requests,
            a.watchers,
            self.cpus
        ));
        r.note(format!(
            "claims: {} of the technicians claim, each claim on a fresh connection (resume the \
             login, watch, then take from the queue shown), while the other {} watch; by id = \
             the k-th request the k-th claim may take in the queue shown; next = Take without \
             an id; join by code (the peer) = an agent registers a code and the technician \
             joins it, on the same relay under the same load. {} claims each way flat out \
             (every claimer claiming again as soon as done: claims a second = claims over the \
             time they took) and {} at {} a second (latency, CPU and news per claim), the ways \
             taking turns in {ROUNDS} rounds. Latency = from sending Take (Join) until Paired. \
             After a claim the technician ends the session and the agent files a new request on \
             a new connection, so {} keep waiting",
            a.claimers,
            a.watchers - a.claimers,
            a.claims,
            a.claims,
            a.rate,
            a.requests
        ));
        r.note(format!(
            "visibility: a new request filed {} times, one at a time, each withdrawn before the \
             next; time from sending it until every watcher (all {}) was sent a queue that \
             counts it (a queue shows the oldest {QUEUE_SHOWN} and counts the rest, so the \
             newest is seen as one more); per watcher = the same for each watcher alone; the \
             peer = an agent's bare control-plane round trip on the same relay (ask for a \
             session code, have it), one beside each new request",
            a.probes, a.watchers
        ));
        r.note(format!(
            "relay CPU = utime+stime (/proc) beyond what the relay uses with everything \
             connected and nothing happening ({:.0}% of a core: the keep-alives of {} \
             connections, read while its memory settles), per claim or per new request",
            self.idle * 100.0,
            a.requests + a.watchers
        ));
        r.note(
            "relay memory = VmRSS (/proc): before = accounts made and logged in, nothing \
             connected, settled; loaded = every agent and watcher connected, settled; peak = \
             highest reading every 250 ms from the first agent until the end; end = settled \
             after the claims, everything still connected; growth = peak - before; the peer \
             (join by code) = a fresh relay's growth with as many agents waiting by session \
             code instead and as many technicians logged in, settled, against the desk's \
             loaded - before",
        );
        for (metric, label) in [
            ("claims_per_s", "claims a second, flat out"),
            ("claim_latency_p50_ms", "claim latency p50"),
            ("claim_latency_p99_ms", "claim latency p99"),
            (
                "claim_latency_flat_out_p50_ms",
                "claim latency flat out p50",
            ),
            (
                "claim_latency_flat_out_p99_ms",
                "claim latency flat out p99",
            ),
            ("claims", "claims made"),
            ("takes_refused", "takes refused, taken by another"),
            ("relay_cpu_per_claim_ms", "relay CPU per claim"),
            ("relay_idle_cpu_pct", "relay CPU, loaded and idle"),
            ("queues_per_claim", "queues sent to each watcher per claim"),
            ("places_per_claim", "places sent to agents per claim"),
            (
                "visible_p50_ms",
                "seen by all watchers (peer: round trip) p50",
            ),
            (
                "visible_p99_ms",
                "seen by all watchers (peer: round trip) p99",
            ),
            ("visible_each_p50_ms", "seen by each watcher p50"),
            ("visible_each_p99_ms", "seen by each watcher p99"),
            (
                "relay_cpu_per_probe_ms",
                "relay CPU per new request and round trip",
            ),
            ("relay_rss_before_mib", "relay memory before the load"),
            ("relay_rss_loaded_mib", "relay memory loaded, settled"),
            ("relay_rss_peak_mib", "relay memory peak"),
            ("relay_rss_end_mib", "relay memory at the end, settled"),
            ("relay_rss_growth_mib", "relay memory growth"),
            (
                "relay_rss_connected_mib",
                "... of which connecting, settled (peer: by code)",
            ),
            (
                "relay_rss_desk_growth_mib",
                "... of which during the claims",
            ),
            ("agents_lost", "agents lost"),
            ("refiled", "requests filed again after their session"),
            ("watchers_lost", "watchers lost"),
        ] {
            r.label(metric, label);
        }

        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let watching = f64::from(a.watchers - a.claimers);
        for way in WAYS {
            let (flat, paced) = (
                &self.claims.flat_out[way as usize],
                &self.claims.paced[way as usize],
            );
            let system = way.system();
            r.add(
                system,
                "claims_per_s",
                flat.claims as f64 / flat.elapsed.as_secs_f64(),
                "1/s",
                1,
            );
            let p99 = ms(percentile(&paced.latencies, 0.99));
            for (metric, f, p) in [
                ("claim_latency_p50_ms", paced, 0.5),
                ("claim_latency_p99_ms", paced, 0.99),
                ("claim_latency_flat_out_p50_ms", flat, 0.5),
                ("claim_latency_flat_out_p99_ms", flat, 0.99),
            ] {
                r.add(system, metric, ms(percentile(&f.latencies, p)), "ms", 2);
            }
            if way != Way::Code {
                r.target(
                    system,
                    "claim_latency_p99_ms",
                    format!("≤ {CLAIM_P99_MS} ms"),
                    p99 <= CLAIM_P99_MS,
                );
            }
            r.add(
                system,
                "claims",
                (flat.claims + paced.claims) as f64,
                "claims",
                0,
            );
            r.add(
                system,
                "takes_refused",
                (flat.refused + paced.refused) as f64,
                "takes",
                0,
            );
            let n = paced.claims.max(1) as f64;
            r.add(
                system,
                "relay_cpu_per_claim_ms",
                ms(paced.relay_cpu) / n,
                "ms",
                2,
            );
            r.add(
                system,
                "queues_per_claim",
                paced.queues as f64 / watching / n,
                "queues",
                2,
            );
            r.add(
                system,
                "places_per_claim",
                paced.places as f64 / n,
                "messages",
                0,
            );
        }

        let v = &self.visibility;
        let queue = "new request";
        let peer = "round trip";
        for (system, metric, samples, p) in [
            (queue, "visible_p50_ms", &v.all, 0.5),
            (queue, "visible_p99_ms", &v.all, 0.99),
            (queue, "visible_each_p50_ms", &v.each, 0.5),
            (queue, "visible_each_p99_ms", &v.each, 0.99),
            (peer, "visible_p50_ms", &v.round_trip, 0.5),
            (peer, "visible_p99_ms", &v.round_trip, 0.99),
        ] {
            r.add(system, metric, ms(percentile(samples, p)), "ms", 2);
        }
        let visible_p99 = ms(percentile(&v.all, 0.99));
        r.target(
            queue,
            "visible_p99_ms",
            format!("≤ {VISIBLE_P99_MS} ms"),
            visible_p99 <= VISIBLE_P99_MS,
        );
        r.add(
            queue,
            "relay_cpu_per_probe_ms",
            ms(self.visibility_cpu) / f64::from(a.probes),
            "ms",
            2,
        );

        r.add(
            DESK,
            "relay_idle_cpu_pct",
            self.idle * 100.0,
            "% of a core",
            1,
        );

        let mib = |kib: u64| kib as f64 / 1024.0;
        let [before, loaded, peak, end] = self.memory;
        for (metric, kib) in [
            ("relay_rss_before_mib", before),
            ("relay_rss_loaded_mib", loaded),
            ("relay_rss_peak_mib", peak),
            ("relay_rss_end_mib", end),
        ] {
            r.add(DESK, metric, mib(kib), "MiB", 1);
        }
        let growth = mib(peak) - mib(before);
        r.add(DESK, "relay_rss_growth_mib", growth, "MiB", 1);
        let [code_before, code_with] = self.codes;
        for (system, grown) in [
            (DESK, mib(loaded) - mib(before)),
            (Way::Code.system(), mib(code_with) - mib(code_before)),
        ] {
            r.add(system, "relay_rss_connected_mib", grown, "MiB", 1);
        }
        r.target(
            DESK,
            "relay_rss_growth_mib",
            format!("≤ {GROWTH_MIB} MiB"),
            growth <= GROWTH_MIB,
        );
        r.add(
            DESK,
            "relay_rss_desk_growth_mib",
            mib(peak) - mib(loaded),
            "MiB",
            1,
        );

        let lost = self.agents.lost.load(Ordering::Relaxed);
        r.add(DESK, "agents_lost", lost as f64, "agents", 0);
        r.target(DESK, "agents_lost", "0", lost == 0);
        r.add(
            DESK,
            "refiled",
            self.agents.refiled.load(Ordering::Relaxed) as f64,
            "requests",
            0,
        );
        r.add(
            DESK,
            "watchers_lost",
            self.watchers_lost.len() as f64,
            "watchers",
            0,
        );
        r.target(DESK, "watchers_lost", "0", self.watchers_lost.is_empty());
        if let Some(first) = self
            .agents
            .first_loss
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            r.note(format!("{lost} agent(s) lost; the first: {first}"));
        }
        if let Some(first) = self.watchers_lost.first() {
            r.note(format!(
                "{} watcher(s) lost; the first: {first}",
                self.watchers_lost.len()
            ));
        }
        if self.busy > 0.9 || self.load > self.cpus as f64 {
            r.note(format!(
                "the machine was busy during the claims: the relay and this process kept {:.0}% \
                 of its {} CPU(s) busy, and its load average was {:.1} after them, so latencies \
                 include the wait for a CPU",
                self.busy * 100.0,
                self.cpus,
                self.load
            ));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, connected: bool, offered_to: Option<&str>) -> QueueEntry {
        QueueEntry {
            id,
            tier: 1,
            filed_unix_ms: 0,
            filing: filing(format!("request {id}")),
            connected,
            queued_unix_ms: 0,
            overdue: false,
            offered_to: offered_to.map(str::to_string),
            reserved_for: None,
            handoff: None,
        }
    }

    #[test]
    fn claimers_shown_the_same_queue_pick_different_requests_they_may_take() {
        let shown = [
            entry(1, true, None),
            entry(2, false, None),
            entry(3, true, Some("someone")),
            entry(4, true, None),
            entry(5, true, None),
        ];
        let picks: Vec<_> = (0..4).map(|k| pick(&shown, k)).collect();
        assert_eq!(picks, vec![Some(1), Some(4), Some(5), Some(1)]);
        assert_eq!(pick(&[entry(2, false, None)], 0), None);
    }

    #[test]
    fn a_watcher_has_seen_a_total_since_it_first_arrived() {
        let t0 = Instant::now();
        let mut s = Seen {
            total: None,
            since: t0,
            queues: 0,
        };
        let (t1, t2, t3) = (
            t0 + Duration::from_millis(1),
            t0 + Duration::from_millis(2),
            t0 + Duration::from_millis(3),
        );
        s.queue(1000, t1);
        s.queue(1001, t2);
        // Sent again for another change: still seen since it first arrived.
        s.queue(1001, t3);
        assert_eq!((s.total, s.since, s.queues), (Some(1001), t2, 3));
        s.queue(1000, t3);
        assert_eq!((s.total, s.since), (Some(1000), t3));
    }
}
