//! `bench cluster`: joining by code across two relays of one cluster, beside joining on one.
//!
//! Two `relay` processes share a throw-away PostgreSQL database (harness::postgres) as the
//! cluster "bench". For each join an agent connects to relay A and registers a code; a
//! technician then connects as the console does (hello, resume its login, join) and is timed
//! until it is paired: on relay A itself (the peer: one relay), or on relay B, which sends it to
//! A, where it connects, resumes and joins again (across relays). The two ways take turns in
//! rounds, so drift in the machine's load hits them alike. Figures: joins a second (one after
//! another, each with its agent's registration), and the join's latency (median, 99th
//! percentile).
//!
//! Then the session gap ([`crate::resume_gap`]): a live session's relay SIGKILLed `--kills`
//! times, each time started again in place, then `--kills` times in a cluster of two relays on
//! the PostgreSQL database, the session resuming through the other relay; how long the
//! technician's screen stood still, from the last update before the kill to the first after the
//! resume (median, 99th percentile; targets 2 s and 5 s), and how soon the link was back.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use link::{LinkError, RelayConnection};
use protocol::control::Role;

use crate::relay::{bench_account, percentile, relay_binary, within, RelayProcess};
use crate::report::{progress, Report};
use crate::resume_gap::Setup;

const BENCH: &str = "cluster";
const ONE: &str = "one relay";
const ACROSS: &str = "across relays";
/// Turns the two ways take.
const ROUNDS: u32 = 5;
/// How long one join may take before the bench gives up.
const STEP: Duration = Duration::from_secs(30);

/// Cluster bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Joins each way, split over the rounds
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(5..=100_000))]
    pub joins: u32,
    /// Relay kills in a live session, for the session gap, with the relay restarted in place
    /// and again in a cluster of two (0: none)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub kills: u32,
}

const IN_PLACE: &str = "relay restarted in place";
const THROUGH_OTHER: &str = "through the other relay";
/// Most the session gap may be, at the median and at the 99th percentile.
const GAP_P50: Duration = Duration::from_secs(2);
const GAP_P99: Duration = Duration::from_secs(5);

/// Runs the bench and returns its figures.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let bin = relay_binary()?;
    progress(BENCH, "starting PostgreSQL");
    // Started on a thread of its own, which lives as long as the bench (the server dies with
    // the thread that started it), and stopped when the bench exits.
    let server = tokio::task::spawn_blocking(harness::postgres::Server::shared)
        .await
        .context("starting PostgreSQL failed")??;
    let url = server.database()?;
    let (name, password) = bench_account();
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let added = harness::relay::user(
        &bin,
        scratch.path(),
        &["--database-url", &url, "add", name, "--tier", "1"],
        &format!("{password}\n"),
    )?;
    ensure!(added.success, "relay user add: {}", added.text());
    let config = format!("database_url = \"{url}\"\ncluster_name = \"bench\"\n");
    let a = RelayProcess::start_with(&bin, &config).await?;
    let b = RelayProcess::start_with(&bin, &config).await?;
    let per_round = args.joins.div_ceil(ROUNDS);
    let (mut one, mut across) = (Vec::new(), Vec::new());
    let (mut one_time, mut across_time) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=ROUNDS {
        progress(BENCH, format!("round {round} of {ROUNDS}"));
        for (via, times, total) in [
            (&a, &mut one, &mut one_time),
            (&b, &mut across, &mut across_time),
        ] {
            let started = Instant::now();
            for _ in 0..per_round {
                times.push(within(STEP, "a join", join(&a, via)).await?);
            }
            *total += started.elapsed();
        }
    }
    a.stop().await;
    b.stop().await;
    let kills = args.kills;
    let mut gaps = Vec::new();
    if kills > 0 {
        let cluster = Setup::Cluster {
            database_url: server.database()?,
        };
        for (system, setup) in [(IN_PLACE, Setup::InPlace), (THROUGH_OTHER, cluster)] {
            let g = tokio::task::spawn_blocking(move || crate::resume_gap::measure(kills, &setup))
                .await
                .context("the resume gap bench failed")??;
            gaps.push((system, g));
        }
    }

    let mut report = Report::new(BENCH);
    report.note(format!(
        "{} joins each way, one after another (joins a second counts each with its agent's \
         registration), in {ROUNDS} rounds; an agent registers on relay A, the technician joins \
         through A (one relay) or through B, which sends it to A (across relays); both relays \
         on one PostgreSQL database",
        one.len()
    ));
    for (system, times, total) in [
        (ONE, &mut one, one_time),
        (ACROSS, &mut across, across_time),
    ] {
        times.sort();
        report.add(
            system,
            "joins a second",
            times.len() as f64 / total.as_secs_f64(),
            "1/s",
            1,
        );
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        report.add(system, "join p50", ms(percentile(times, 0.5)), "ms", 2);
        report.add(system, "join p99", ms(percentile(times, 0.99)), "ms", 2);
    }
    if let Some((_, g)) = gaps.first() {
        report.note(format!(
            "session gap: a live session's relay SIGKILLed {} times, from the last screen update \
             the technician reported before the kill to the first after the resume (the screen \
             changes every 40 ms), and from the kill until the link was back; {IN_PLACE}: one \
             relay (SQLite) started again at once on the same port and data directory; \
             {THROUGH_OTHER}: two relays of one cluster on PostgreSQL, the session resumes \
             through the one not killed (named to the ends by the relays, nothing given by \
             hand), the killed one started again after that, so kills alternate",
            g.gaps.len()
        ));
    }
    for (system, mut g) in gaps {
        g.gaps.sort();
        g.link_back.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (p50, p99) = (percentile(&g.gaps, 0.5), percentile(&g.gaps, 0.99));
        report.add(system, "session gap p50", ms(p50), "ms", 0);
        report.add(system, "session gap p99", ms(p99), "ms", 0);
        let back = percentile(&g.link_back, 0.5);
        report.add(system, "link back p50", ms(back), "ms", 0);
        report.target(system, "session gap p50", "at most 2000 ms", p50 <= GAP_P50);
        report.target(system, "session gap p99", "at most 5000 ms", p99 <= GAP_P99);
    }
    Ok(report)
}

/// An agent registers a code on `a`; a technician joins it through `via` (following a
/// redirect), timed from connecting until paired.
async fn join(a: &RelayProcess, via: &RelayProcess) -> anyhow::Result<Duration> {
    let mut agent = RelayConnection::connect(&a.addr.to_string(), a.fingerprint, Role::Agent)
        .await
        .context("an agent connects to relay A")?;
    let (code, _) = agent.register().await?;
    let started = Instant::now();
    let mut tech =
        RelayConnection::connect(&via.addr.to_string(), via.fingerprint, Role::Technician)
            .await
            .context("a technician connects")?;
    tech.resume(&via.token).await?;
    let paired = match tech.join(code.clone()).await {
        Err(LinkError::Redirected(to)) => {
            tech = RelayConnection::connect_redirected(&to, Role::Technician).await?;
            tech.resume(&via.token).await?;
            tech.join(code).await
        }
        other => other,
    };
    paired.context("the technician joins")?;
    let took = started.elapsed();
    agent.wait_paired().await.context("the agent is paired")?;
    tech.close("done");
    agent.close("done");
    Ok(took)
}
