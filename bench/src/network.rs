//! `bench network`: what a technician feels on a bad network. The relay, the real `agent` and a
//! technician in this process each run in a network namespace of their own
//! (`harness::Network`); the agent's link is shaped per scenario (delay, loss, rate, an
//! outage), the technician's is clean, as for a user at home and a desk next to its relay.
//!
//! The agent shares a 1920x1080 Xvfb on which a panel of text is redrawn whole 5 times a second
//! ([`activity`]), so there is always more to send; beside it, the bench's window has the
//! keyboard focus. The technician types a key (T0, sent on its session stream); when the window
//! receives the key press it repaints itself in a new colour, as a terminal echoes a glyph; T1
//! is when the technician's framebuffer first holds that colour over the whole window. Samples
//! are 150 to 350 ms apart (someone typing), for `--seconds` per scenario.
//!
//! Per scenario: echo latency p50 and p99; updates applied a second and their tile bytes; what
//! the agent's link carried each way (QUIC and all, as the forwarder saw it); and whether the
//! delay grew: the p50 of the samples sent in the first 10 s against that of the last 10 s, and
//! the least-squares trend of all of them, which judges it ([`grew`]: where echoes spread over
//! hundreds of milliseconds, 10 s windows of a dozen samples each move by a hundred). It
//! must not: the agent keeps at most two updates unacknowledged and merges in between, so a
//! slow link means fewer, larger updates, never a growing queue.
//!
//! The outage scenario cuts the agent's link for 5 s in the middle of the run, with the relay
//! started with `--idle-timeout-ms` [`OUTAGE_IDLE_TIMEOUT_MS`] (its default, 600 ms, ends the
//! session within a second of the cut); it reports whether the session survived and how long
//! after the link came back the first echo arrived.
//!
//! Needs root, iproute2 and nftables, Xvfb, and `cargo build --release -p relay -p agent`.

mod activity;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use harness::{Host, Network, Shape, Side};
use link::RelayConnection;
use protocol::control::Role;
use protocol::e2e::UserCode;
use protocol::input::{InputEvent, Key, Modifiers};

use crate::e2e::ours::{self, Received};
use crate::e2e::probe::{Rect, ScreenProbe};
use crate::e2e::procs;
use crate::e2e::window::TestWindow;
use crate::report::{progress, Report};

const BENCH: &str = "network";
const SCREEN: (u32, u32) = (1920, 1080);
/// The window that echoes typed keys.
const ECHO: Rect = Rect {
    x: 160,
    y: 120,
    width: 200,
    height: 200,
};
/// The panel of text redrawn beside it: 100 columns, 30 lines.
const PANEL: Rect = Rect {
    x: 480,
    y: 120,
    width: 800,
    height: 480,
};
/// Redraws of the panel a second.
const PANEL_HZ: u32 = 5;
/// Where the pointer is parked: a software cursor over the window would keep it from being one
/// colour.
const POINTER_PARK: (i16, i16) = (1800, 1000);
/// A sample that has not arrived by then is counted as lost (longer than the outage).
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(15);
/// The outage, and the relay's idle timeout that rides it out.
const OUTAGE: Duration = Duration::from_secs(5);
pub const OUTAGE_IDLE_TIMEOUT_MS: &str = "8000";
/// The windows whose p50s are compared for growth.
const GROWTH_WINDOW: Duration = Duration::from_secs(10);
/// The round trip every scenario but `clean` has, beside what it is about.
const BASE_RTT_MS: u64 = 50;

/// The conditions on the agent's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// No shaping (the namespaces and the forwarder only): the reference
    Clean,
    /// 50 ms round trip
    Rtt50,
    /// 200 ms round trip
    Rtt200,
    /// 50 ms round trip, 2 % loss each way
    Loss2,
    /// 50 ms round trip, 10 % loss each way
    Loss10,
    /// 50 ms round trip, 2 Mbit/s each way
    Rate2m,
    /// 50 ms round trip, 512 kbit/s each way
    Rate512k,
    /// 50 ms round trip, and no link at all for 5 s in the middle of the run
    Outage,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Clean => "clean",
            Scenario::Rtt50 => "rtt50",
            Scenario::Rtt200 => "rtt200",
            Scenario::Loss2 => "loss2",
            Scenario::Loss10 => "loss10",
            Scenario::Rate2m => "rate2m",
            Scenario::Rate512k => "rate512k",
            Scenario::Outage => "outage",
        }
    }

    fn shape(self) -> Shape {
        let base = Shape::rtt(BASE_RTT_MS);
        match self {
            Scenario::Clean => Shape::CLEAN,
            Scenario::Rtt50 | Scenario::Outage => base,
            Scenario::Rtt200 => Shape::rtt(200),
            Scenario::Loss2 => Shape {
                loss_pct: 2,
                ..base
            },
            Scenario::Loss10 => Shape {
                loss_pct: 10,
                ..base
            },
            Scenario::Rate2m => Shape {
                rate_kbit: Some(2000),
                ..base
            },
            Scenario::Rate512k => Shape {
                rate_kbit: Some(512),
                ..base
            },
        }
    }
}

/// Network bench options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds each scenario types for (at least 25: the growth check compares its first and
    /// last 10 s, and the outage sits between them)
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(25..=3600))]
    pub seconds: u64,
    /// Scenarios to run, in this order
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "clean,rtt50,rtt200,loss2,loss10,rate2m,rate512k,outage"
    )]
    pub scenarios: Vec<Scenario>,
}

/// One echo: when the key was sent (from the start of typing) and how long until its echo was
/// on the technician's screen.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: Duration,
    latency: Duration,
    /// When the echo arrived (from the start of typing).
    arrived: Duration,
}

/// What one scenario measured.
struct Measured {
    samples: Vec<Sample>,
    lost: u32,
    seconds: f64,
    updates: u64,
    tile_bytes: u64,
    link_up_bytes: u64,
    link_down_bytes: u64,
    link_dropped: u64,
    panel_pages: u64,
    /// For the outage: when the link came back (from the start of typing), and whether the
    /// session was still there at the end.
    restored: Option<Duration>,
    survived: bool,
}

/// Runs the bench and prints its report.
pub fn main(args: &Args, json: bool) -> anyhow::Result<()> {
    let relay_bin = procs::sibling_binary("relay")?;
    let agent_bin = procs::sibling_binary("agent")?;
    let xvfb = procs::xvfb(SCREEN.0, SCREEN.1, &[])?;
    progress(BENCH, format!("Xvfb {} pid {}", xvfb.display, xvfb.pid()));
    let win = TestWindow::open(&xvfb.display, ECHO, 0x202020)?;
    win.warp_pointer(POINTER_PARK.0, POINTER_PARK.1)?;
    win.focus()?;
    let mut results = Vec::new();
    for &scenario in &args.scenarios {
        progress(
            BENCH,
            format!(
                "{}: {:?}, {} s",
                scenario.name(),
                scenario.shape(),
                args.seconds
            ),
        );
        let m = run_scenario(scenario, &relay_bin, &agent_bin, &xvfb.display, &win, args)
            .with_context(|| format!("scenario {}", scenario.name()))?;
        progress(
            BENCH,
            format!(
                "{}: {} echoes, p50 {:.1} ms, {} lost, {} updates",
                scenario.name(),
                m.samples.len(),
                percentile_ms(&latencies(&m.samples), 50.0),
                m.lost,
                m.updates
            ),
        );
        results.push((scenario, m));
    }
    report(args, &results).print(json)
}

fn run_scenario(
    scenario: Scenario,
    relay_bin: &std::path::Path,
    agent_bin: &std::path::Path,
    display: &str,
    win: &TestWindow,
    args: &Args,
) -> anyhow::Result<Measured> {
    let net = Arc::new(Network::start(scenario.shape(), Shape::CLEAN)?);
    let relay_args: &[&str] = if scenario == Scenario::Outage {
        &["--idle-timeout-ms", OUTAGE_IDLE_TIMEOUT_MS]
    } else {
        &[]
    };
    let peers =
        crate::e2e::start_tandem(relay_bin, agent_bin, display, Some(&net), relay_args, false)?;

    // The technician: a thread in the technician's namespace, with a runtime of its own.
    let probe = Arc::new(ScreenProbe::new(ECHO));
    let received = Arc::new(Received::default());
    let (input_tx, input_rx) = tokio::sync::mpsc::unbounded_channel();
    let (addr, fingerprint, code) = (peers.addr.clone(), peers.fingerprint, peers.code.clone());
    let (thread_probe, thread_received) = (probe.clone(), received.clone());
    let technician = net
        .netns(Host::Technician)
        .spawn_thread("technician", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the technician's runtime")?;
            rt.block_on(async move {
                let (user, password) = crate::relay::bench_account();
                let mut conn = RelayConnection::connect(&addr, fingerprint, Role::Technician)
                    .await
                    .context("the technician cannot reach the relay")?;
                conn.login(user, password)
                    .await
                    .context("the technician cannot log in")?;
                let code = UserCode::parse(&code)
                    .with_context(|| format!("the agent printed an unreadable code `{code}`"))?;
                conn.join(code.rendezvous().clone())
                    .await
                    .context("the technician cannot join the agent's session")?;
                ours::technician(conn, code, thread_probe, input_rx, thread_received).await
            })
        })?;

    // The first screen: the window in a colour of its own.
    let first = 0x00c0_c0c0;
    win.fill(first)?;
    if probe
        .wait_for(first, Instant::now() + Duration::from_secs(30))
        .is_none()
    {
        drop(input_tx);
        let why = match technician.join() {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(())) => "the session ended".into(),
            Err(_) => "the technician thread panicked".into(),
        };
        bail!("the technician did not see the screen within 30 s: {why}");
    }
    let panel = activity::Activity::start(display, PANEL, PANEL_HZ)?;
    // Let the panel's first pages through before typing.
    std::thread::sleep(Duration::from_secs(2));

    let key = |down| InputEvent::Key {
        down,
        key: Key::Char('x'),
        text: Some("x".into()),
        modifiers: Modifiers::NONE,
    };
    let run = Duration::from_secs(args.seconds);
    let outage_at = (scenario == Scenario::Outage).then(|| run / 2 - OUTAGE / 2);
    let mut restored = None;
    let start = Instant::now();
    let (updates0, bytes0) = (
        received.updates.load(Ordering::Relaxed),
        received.tile_bytes.load(Ordering::Relaxed),
    );
    let link0 = net.counts(Side::Agent);
    let pages0 = panel.pages();
    // The outage runs on its own thread so that typing goes on through it.
    let outage = outage_at.map(|at| {
        let net = net.clone();
        std::thread::spawn(move || -> anyhow::Result<Duration> {
            std::thread::sleep(at);
            net.cut(Side::Agent)?;
            std::thread::sleep(OUTAGE);
            net.restore(Side::Agent)?;
            Ok(start.elapsed())
        })
    });
    let mut samples = Vec::new();
    let mut lost = 0u32;
    let mut prev = first;
    let mut i = 0u32;
    let mut survived = true;
    while start.elapsed() < run {
        let mut c = colour(i);
        if c == prev {
            c ^= 0x0040_4040;
        }
        let seen = win.key_presses();
        let t0 = Instant::now();
        let sent = input_tx.send(key(true)).and(input_tx.send(key(false)));
        if sent.is_err() {
            survived = false;
            break;
        }
        let deadline = t0 + SAMPLE_TIMEOUT;
        let echoed = win.wait_key(seen, deadline).is_some() && {
            win.fill(c)?;
            prev = c;
            true
        };
        match echoed.then(|| probe.wait_for(c, deadline)).flatten() {
            Some(t1) => samples.push(Sample {
                sent: t0 - start,
                latency: t1.saturating_duration_since(t0),
                arrived: t1.saturating_duration_since(start),
            }),
            None => lost += 1,
        }
        std::thread::sleep(gap(i));
        i += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let updates = received.updates.load(Ordering::Relaxed) - updates0;
    let tile_bytes = received.tile_bytes.load(Ordering::Relaxed) - bytes0;
    let link = net.counts(Side::Agent);
    let panel_pages = panel.pages() - pages0;
    panel.stop()?;
    if let Some(outage) = outage {
        restored = Some(
            outage
                .join()
                .map_err(|_| anyhow::anyhow!("the outage thread panicked"))??,
        );
    }
    // Closing the input ends the technician's side; it must not have ended before.
    drop(input_tx);
    match technician.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            progress(
                BENCH,
                format!("{}: the session failed: {e:#}", scenario.name()),
            );
            survived = false;
        }
        Err(_) => bail!("the technician thread panicked"),
    }
    drop(peers);
    Ok(Measured {
        samples,
        lost,
        seconds,
        updates,
        tile_bytes,
        link_up_bytes: link.up_bytes - link0.up_bytes,
        link_down_bytes: link.down_bytes - link0.down_bytes,
        link_dropped: link.dropped - link0.dropped,
        panel_pages,
        restored,
        survived,
    })
}

/// The colour of sample `i` (0xRRGGBB), scattered over the colour cube.
fn colour(i: u32) -> u32 {
    (i.wrapping_add(1).wrapping_mul(0x9E37_79B1) >> 8) & 0x00ff_ffff
}

/// An irregular pause of 150 to 350 ms between keys.
fn gap(i: u32) -> Duration {
    Duration::from_millis(150 + u64::from(i.wrapping_mul(2_654_435_761) >> 16) % 201)
}

fn latencies(samples: &[Sample]) -> Vec<Duration> {
    let mut v: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    v.sort();
    v
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// p50 of the samples sent in `[from, to)`.
fn p50_between(samples: &[Sample], from: Duration, to: Duration) -> f64 {
    let within: Vec<Sample> = samples
        .iter()
        .filter(|s| s.sent >= from && s.sent < to)
        .copied()
        .collect();
    percentile_ms(&latencies(&within), 50.0)
}

/// The least-squares trend of the echo latency over the run: its slope in ms a minute and that
/// slope's standard error, from the samples for which `keep` holds. `None` with fewer than 3.
fn trend(samples: &[Sample], keep: impl Fn(&Sample) -> bool) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| keep(s))
        .map(|s| {
            (
                s.sent.as_secs_f64() / 60.0,
                s.latency.as_secs_f64() * 1000.0,
            )
        })
        .collect();
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let residual: f64 = points
        .iter()
        .map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2))
        .sum();
    Some((slope, (residual / (n - 2.0) / sxx).sqrt()))
}

/// Whether the delay grew over a run of `minutes`, from its [`trend`] and the p50 of its first
/// window: grown when even the low end of the slope (two standard errors below it) adds more
/// than a quarter of that p50 and 20 ms over the run. A wide spread (10 % loss) moves the p50
/// of 10 s windows by a hundred milliseconds either way; a queue that grows does so steadily.
fn grew(trend: Option<(f64, f64)>, first_ms: f64, minutes: f64) -> bool {
    match trend {
        // No trend (too few echoes) is no sign of health.
        None => true,
        Some((slope, se)) => (slope - 2.0 * se) * minutes > first_ms.max(0.0) * 0.25 + 20.0,
    }
}

fn report(args: &Args, results: &[(Scenario, Measured)]) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut r = Report::new(BENCH);
    r.note(format!(
        "relay, agent binary and technician (in this process) each in a network namespace; the \
         agent's link shaped per scenario (delay in a user-space forwarder, loss from nftables, \
         rate from tc tbf with a {} ms queue), the technician's clean; {cpus} CPU(s) shared by \
         everything",
        harness::network::QUEUE_LATENCY.as_millis()
    ));
    r.note(format!(
        "screen {}x{} (Xvfb); a {}x{} panel of text redrawn whole {PANEL_HZ} times a second beside \
         a {}x{} window that repaints in a new colour when it receives a typed key. typing echo: \
         from the technician sending the key to its framebuffer holding the new colour; keys \
         150-350 ms apart for {} s per scenario; a sample not back within {} s is lost",
        SCREEN.0,
        SCREEN.1,
        PANEL.width,
        PANEL.height,
        ECHO.width,
        ECHO.height,
        args.seconds,
        SAMPLE_TIMEOUT.as_secs()
    ));
    r.note(format!(
        "delay growth: p50 of the echoes sent in the last {0} s minus that of the first {0} s, and \
         the least-squares trend of every echo over the run (± its standard error, the outage's \
         echoes left out); grown if the trend less two standard errors adds more than a quarter \
         of the first {0} s p50 + 20 ms over the run. link kbit/s: what the forwarder passed on \
         the agent's link (QUIC, with retransmissions), up = agent to relay. outage: the agent's \
         link dropped for {1} s in the middle, relay --idle-timeout-ms {2}",
        GROWTH_WINDOW.as_secs(),
        OUTAGE.as_secs(),
        OUTAGE_IDLE_TIMEOUT_MS
    ));
    r.label("rtt_ms", "round trip added on the agent's link");
    r.label("loss_pct", "loss each way");
    r.label("rate_kbit_s", "rate each way (0: unlimited)");
    r.label("echo_p50_ms", "typing echo p50");
    r.label("echo_p99_ms", "typing echo p99");
    r.label("echo_max_ms", "typing echo max");
    r.label("echo_samples", "echoes measured");
    r.label("echo_lost", "echoes lost");
    r.label("echo_first_p50_ms", "echo p50, first 10 s");
    r.label("echo_last_p50_ms", "echo p50, last 10 s");
    r.label("delay_growth_ms", "delay growth (last - first)");
    r.label("echo_trend_ms_per_min", "echo trend over the run");
    r.label("echo_trend_se_ms_per_min", "its standard error");
    r.label("updates_per_s", "screen updates a second");
    r.label("update_kb_per_s", "update tile bytes a second");
    r.label("link_up_kbit_s", "agent link up (agent -> relay)");
    r.label("link_down_kbit_s", "agent link down");
    r.label("link_up_mb", "agent link up, whole run");
    r.label("panel_pages_per_s", "panel redraws a second (offered)");
    r.label("session_survived", "session alive at the end (1 = yes)");
    r.label("outage_recovery_ms", "first echo after the link is back");
    for (scenario, m) in results {
        let s = scenario.name();
        let shape = scenario.shape();
        let add = |r: &mut Report, metric, value, unit, decimals| {
            r.add_in(s, "ours", metric, value, unit, decimals)
        };
        let lat = latencies(&m.samples);
        let run = Duration::from_secs_f64(m.seconds);
        let first = p50_between(&m.samples, Duration::ZERO, GROWTH_WINDOW);
        let last = p50_between(&m.samples, run.saturating_sub(GROWTH_WINDOW), run);
        add(&mut r, "rtt_ms", shape.rtt.as_millis() as f64, "ms", 0);
        add(&mut r, "loss_pct", f64::from(shape.loss_pct), "%", 0);
        add(
            &mut r,
            "rate_kbit_s",
            f64::from(shape.rate_kbit.unwrap_or(0)),
            "kbit/s",
            0,
        );
        add(&mut r, "echo_p50_ms", percentile_ms(&lat, 50.0), "ms", 1);
        add(&mut r, "echo_p99_ms", percentile_ms(&lat, 99.0), "ms", 1);
        add(&mut r, "echo_max_ms", percentile_ms(&lat, 100.0), "ms", 1);
        add(&mut r, "echo_samples", m.samples.len() as f64, "count", 0);
        add(&mut r, "echo_lost", f64::from(m.lost), "count", 0);
        add(&mut r, "echo_first_p50_ms", first, "ms", 1);
        add(&mut r, "echo_last_p50_ms", last, "ms", 1);
        add(&mut r, "delay_growth_ms", last - first, "ms", 1);
        add(
            &mut r,
            "updates_per_s",
            m.updates as f64 / m.seconds,
            "1/s",
            1,
        );
        add(
            &mut r,
            "update_kb_per_s",
            m.tile_bytes as f64 / m.seconds / 1000.0,
            "kB/s",
            1,
        );
        add(
            &mut r,
            "link_up_kbit_s",
            m.link_up_bytes as f64 * 8.0 / m.seconds / 1000.0,
            "kbit/s",
            0,
        );
        add(
            &mut r,
            "link_down_kbit_s",
            m.link_down_bytes as f64 * 8.0 / m.seconds / 1000.0,
            "kbit/s",
            0,
        );
        add(&mut r, "link_up_mb", m.link_up_bytes as f64 / 1e6, "MB", 2);
        add(
            &mut r,
            "panel_pages_per_s",
            m.panel_pages as f64 / m.seconds,
            "1/s",
            1,
        );
        add(
            &mut r,
            "session_survived",
            f64::from(u8::from(m.survived)),
            "bool",
            0,
        );
        if let Some(back) = m.restored {
            let recovery = m
                .samples
                .iter()
                .find(|x| x.arrived > back)
                .map_or(f64::NAN, |x| (x.arrived - back).as_secs_f64() * 1000.0);
            add(&mut r, "outage_recovery_ms", recovery, "ms", 0);
        }
        if m.link_dropped > 0 {
            r.note(format!(
                "{s}: the forwarder's queue was full {} times (datagrams dropped beyond the shaping)",
                m.link_dropped
            ));
        }
        // The outage's own echoes (sent before the link came back, arriving after it was cut)
        // are its spike, not a trend.
        let outage = m.restored.map(|back| (back.saturating_sub(OUTAGE), back));
        let t = trend(&m.samples, |x| {
            outage.is_none_or(|(cut, back)| x.arrived < cut || x.sent > back)
        });
        let (slope, se) = t.unwrap_or((f64::NAN, f64::NAN));
        add(&mut r, "echo_trend_ms_per_min", slope, "ms/min", 1);
        add(&mut r, "echo_trend_se_ms_per_min", se, "ms/min", 1);
        r.target(
            s,
            "echo_trend_ms_per_min",
            "no growth",
            !grew(t, first, m.seconds / 60.0) && m.survived,
        );
        if *scenario == Scenario::Loss2 {
            let rtt = shape.rtt.as_millis() as f64;
            let p50 = percentile_ms(&lat, 50.0);
            r.target(
                s,
                "echo_p50_ms",
                format!("≤ RTT + 30 ms ({:.0} ms)", rtt + 30.0),
                p50 <= rtt + 30.0,
            );
        }
        if *scenario == Scenario::Outage {
            r.target(s, "session_survived", "survives", m.survived);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sent_ms: u64, lat_ms: u64) -> Sample {
        Sample {
            sent: Duration::from_millis(sent_ms),
            latency: Duration::from_millis(lat_ms),
            arrived: Duration::from_millis(sent_ms + lat_ms),
        }
    }

    #[test]
    fn a_steady_climb_is_growth_and_a_flat_spread_is_not() {
        // 100 ms a minute on top of 60 ms, for a minute.
        let climbing: Vec<Sample> = (0..200).map(|i| at(i * 300, 60 + i / 2)).collect();
        let t = trend(&climbing, |_| true).unwrap();
        assert!((t.0 - 100.0).abs() < 3.0, "{t:?}");
        assert!(grew(Some(t), 60.0, 1.0));
        // A wide spread with no trend: 300 to 900 ms at random.
        let mut x = 7u64;
        let flat: Vec<Sample> = (0..80)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                at(i * 750, 300 + (x >> 33) % 600)
            })
            .collect();
        let t = trend(&flat, |_| true).unwrap();
        assert!(!grew(Some(t), 500.0, 1.0), "{t:?}");
        assert!(grew(None, 60.0, 1.0), "no samples is no verdict of health");
    }

    #[test]
    fn windows_take_the_samples_sent_in_them() {
        let samples = [at(0, 10), at(5_000, 20), at(9_999, 30), at(10_000, 99)];
        assert_eq!(
            p50_between(&samples, Duration::ZERO, Duration::from_secs(10)),
            20.0
        );
    }
}
