//! The session gap of `bench cluster`: how long the technician's screen stands still when the
//! relay of a live session is SIGKILLed and started again in place (same port, same data
//! directory, so the same certificate and stateless reset key).
//!
//! A relay with a data directory of its own, the real `agent` sharing a private X server where a
//! window changes colour every [`PAINT_EVERY`], and the real `technician` joined with
//! `--report-updates`, whose JSON lines are stamped as they arrive on a thread. Each kill: once
//! updates flow, the relay is SIGKILLed and started again; the gap runs from the last update the
//! technician reported before the kill to the first after it reported the link resumed (the
//! issue's measure), and the link's return from the kill to `link_resumed`.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::e2e::probe::Rect;
use crate::e2e::procs::{self, sibling_binary};
use crate::e2e::window::TestWindow;
use crate::report::progress;

const BENCH: &str = "cluster";
/// How often the shared screen changes: the gap cannot be measured finer than this.
const PAINT_EVERY: Duration = Duration::from_millis(40);
/// Updates the technician reports before each kill: the session runs steadily again.
const STEADY: usize = 5;
/// How long one step (a start, a resume, updates) may take before the bench gives up.
const STEP: Duration = Duration::from_secs(30);

/// What the kills measured, one entry per kill.
pub(crate) struct Gaps {
    /// Last update before the kill until the first after the resume.
    pub gaps: Vec<Duration>,
    /// The kill until the technician reported the link resumed.
    pub link_back: Vec<Duration>,
}

/// What the technician reported, as it arrived.
enum Seen {
    Update(Instant),
    Resumed(Instant),
    /// The technician's output ended (the session ended).
    Over,
}

/// `kills` SIGKILLs of a live session's relay, each started again in place. Blocking: starts
/// and stops processes (the relays die with the thread that started them, so run it on a thread
/// that lives as long as it does).
pub(crate) fn measure(kills: u32) -> anyhow::Result<Gaps> {
    let relay_bin = crate::relay::relay_binary()?;
    let agent_bin = sibling_binary("agent")?;
    let technician_bin = sibling_binary("technician")?;
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-resume-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let data = dir.path().join("relay");
    crate::relay::add_bench_account(&relay_bin, &data)?;
    let start_relay = |listen: &str| {
        let command = harness::relay::command(&relay_bin, listen, &data, None);
        harness::relay::Relay::start("relay", command, procs::options(false), STEP)
    };
    let first = start_relay("127.0.0.1:0")?;
    let addr = first.addr.to_string();
    let peer_args = [
        "--relay".to_string(),
        addr.clone(),
        "--fingerprint".into(),
        first.fingerprint.clone(),
        "--known-relays".into(),
        dir.path().join("known.json").display().to_string(),
    ];
    let tokens = dir.path().join("tokens.json");
    let (user, password) = crate::relay::bench_account();
    let mut login = std::process::Command::new(&technician_bin);
    login
        .args(["login", "--user", user])
        .args(&peer_args)
        .arg("--tokens")
        .arg(&tokens);
    let out = harness::process::run("technician login", login, &format!("{password}\n"))?;
    anyhow::ensure!(out.success, "technician login failed: {}", out.stderr);

    let xvfb = procs::xvfb(640, 480, &[])?;
    let window = TestWindow::open(
        &xvfb.display,
        Rect {
            x: 0,
            y: 0,
            width: 200,
            height: 200,
        },
        0x202020,
    )?;
    let painting = Arc::new(AtomicBool::new(true));
    let painter = {
        let painting = painting.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while painting.load(Ordering::Relaxed) {
                i += 1;
                if window.fill(crate::e2e::colour(i)).is_err() {
                    return;
                }
                std::thread::sleep(PAINT_EVERY);
            }
        })
    };

    let mut command = std::process::Command::new(&agent_bin);
    command
        .args(&peer_args)
        .args(["--source", "x11", "--consent", "control", "--json"])
        .env("DISPLAY", &xvfb.display);
    let mut agent = procs::start("agent", command, false)?;
    let code = procs::wait_code(&mut agent)?;
    let mut command = std::process::Command::new(&technician_bin);
    command
        .args(["connect", &code])
        .args(&peer_args)
        .arg("--tokens")
        .arg(&tokens)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .args(["--json", "--report-updates"])
        .stdin(Stdio::null());
    let mut technician = procs::start("technician", command, false)?;
    let seen = stamp(technician.take_stdout()?);

    let mut gaps = Gaps {
        gaps: Vec::new(),
        link_back: Vec::new(),
    };
    let mut relay = Some(first);
    let measured = (|| -> anyhow::Result<()> {
        for kill in 1..=kills {
            progress(BENCH, format!("resume gap: kill {kill} of {kills}"));
            let mut last = None;
            for _ in 0..STEADY {
                match next(&seen)? {
                    Seen::Update(t) => last = Some(t),
                    Seen::Resumed(_) => {}
                    Seen::Over => bail!("the session ended before the kill"),
                }
            }
            let killed = Instant::now();
            if let Some(gone) = relay.take() {
                gone.process.signal(libc::SIGKILL);
            }
            relay = Some(start_relay(&addr)?);
            let mut resumed = None;
            let first = loop {
                match next(&seen)? {
                    Seen::Update(t) if resumed.is_some() => break t,
                    Seen::Update(t) if t <= killed => last = Some(t),
                    Seen::Update(_) => {}
                    Seen::Resumed(t) => resumed = Some(t),
                    Seen::Over => bail!("the session ended instead of resuming"),
                }
            };
            let last = last.context("no update before the kill")?;
            gaps.gaps.push(first.duration_since(last));
            gaps.link_back
                .push(resumed.unwrap_or(first).duration_since(killed));
        }
        Ok(())
    })();
    painting.store(false, Ordering::Relaxed);
    let _ = painter.join();
    drop(technician);
    drop(agent);
    drop(relay);
    measured.map(|()| gaps)
}

/// Reads the technician's JSON lines on a thread, stamping the updates and the resumes as they
/// arrive.
fn stamp(lines: harness::process::StdoutLines) -> mpsc::Receiver<Seen> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            let at = Instant::now();
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let seen = match v["event"].as_str() {
                Some("update") => Seen::Update(at),
                Some("link_resumed") => Seen::Resumed(at),
                _ => continue,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
        let _ = tx.send(Seen::Over);
    });
    rx
}

/// The next thing the technician reported, within [`STEP`].
fn next(seen: &mpsc::Receiver<Seen>) -> anyhow::Result<Seen> {
    seen.recv_timeout(STEP)
        .context("the technician reported nothing in time")
}
