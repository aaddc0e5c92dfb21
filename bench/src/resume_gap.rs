//! The session gap of `bench cluster`: how long the technician's screen stands still when the
//! relay of a live session is SIGKILLed, either started again in place (same port, same data
//! directory, so the same certificate and stateless reset key), or with the session going on
//! through the other relay of a cluster of two on one PostgreSQL database.
//!
//! The real `agent` shares a private X server where a window changes colour every
//! [`PAINT_EVERY`], and the real `technician` joined with `--report-updates` has its JSON lines
//! stamped as they arrive on a thread. Each kill: once updates flow, the relay holding the
//! session is SIGKILLed; in place it is started again at once; in the cluster the session must
//! resume through the other relay (the relays named it to the ends; nothing is given by hand),
//! and the killed one is started again after that, so the next kill is of the other. The gap
//! runs from the last update the technician reported before the kill to the first after it
//! reported the link resumed (the measure), and the link's return from the kill to
//! `link_resumed`.

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

/// Where the session's relay runs, and where it resumes when that relay is killed.
pub(crate) enum Setup {
    /// One relay with its own data directory (SQLite), started again in place.
    InPlace,
    /// Two relays of the cluster "bench" on the PostgreSQL database at this URL: the session
    /// resumes through the one not killed.
    Cluster { database_url: String },
}

/// What the technician reported, as it arrived.
enum Seen {
    Update(Instant),
    /// The link resumed, through the relay at this address.
    Resumed(Instant, String),
    /// The technician's output ended (the session ended).
    Over,
}

/// `kills` SIGKILLs of a live session's relay, as `setup` says. Blocking: starts and stops
/// processes (the relays die with the thread that started them, so run it on a thread that
/// lives as long as it does).
pub(crate) fn measure(kills: u32, setup: &Setup) -> anyhow::Result<Gaps> {
    let relay_bin = crate::relay::relay_binary()?;
    let agent_bin = sibling_binary("agent")?;
    let technician_bin = sibling_binary("technician")?;
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-resume-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let (user, password) = crate::relay::bench_account();
    let data: Vec<std::path::PathBuf> = match setup {
        Setup::InPlace => vec![dir.path().join("relay")],
        Setup::Cluster { .. } => vec![dir.path().join("relay-a"), dir.path().join("relay-b")],
    };
    match setup {
        Setup::InPlace => crate::relay::add_bench_account(&relay_bin, &data[0])?,
        Setup::Cluster { database_url } => {
            let added = harness::relay::user(
                &relay_bin,
                &data[0],
                &["--database-url", database_url, "add", user, "--tier", "1"],
                &format!("{password}\n"),
            )?;
            anyhow::ensure!(added.success, "relay user add: {}", added.text());
        }
    }
    let start_relay = |i: usize, listen: &str| {
        let mut command = harness::relay::command(&relay_bin, listen, &data[i], None);
        if let Setup::Cluster { database_url } = setup {
            command.args(["--database-url", database_url, "--cluster", "bench"]);
        }
        harness::relay::Relay::start("relay", command, procs::options(false), STEP)
    };
    // The last first: the first then knows the others from its start, and names them to the
    // session's ends at once.
    let mut relays: Vec<Option<harness::relay::Relay>> = (0..data.len()).map(|_| None).collect();
    for i in (0..data.len()).rev() {
        relays[i] = Some(start_relay(i, "127.0.0.1:0")?);
    }
    let addrs: Vec<String> = relays
        .iter()
        .flatten()
        .map(|r| r.addr.to_string())
        .collect();
    let first = relays[0].as_ref().context("the first relay")?;
    let peer_args = [
        "--relay".to_string(),
        addrs[0].clone(),
        "--fingerprint".into(),
        first.fingerprint.clone(),
        "--known-relays".into(),
        dir.path().join("known.json").display().to_string(),
    ];
    let tokens = dir.path().join("tokens.json");
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
    // The relay the session is on now.
    let mut on = 0usize;
    let measured = (|| -> anyhow::Result<()> {
        for kill in 1..=kills {
            progress(BENCH, format!("resume gap: kill {kill} of {kills}"));
            let mut last = None;
            for _ in 0..STEADY {
                match next(&seen)? {
                    Seen::Update(t) => last = Some(t),
                    Seen::Resumed(..) => {}
                    Seen::Over => bail!("the session ended before the kill"),
                }
            }
            let killed = Instant::now();
            if let Some(gone) = relays[on].take() {
                gone.process.signal(libc::SIGKILL);
            }
            if let Setup::InPlace = setup {
                relays[on] = Some(start_relay(on, &addrs[on])?);
            }
            let mut resumed = None;
            let first = loop {
                match next(&seen)? {
                    Seen::Update(t) if resumed.is_some() => break t,
                    Seen::Update(t) if t <= killed => last = Some(t),
                    Seen::Update(_) => {}
                    Seen::Resumed(t, through) => resumed = Some((t, through)),
                    Seen::Over => bail!("the session ended instead of resuming"),
                }
            };
            let last = last.context("no update before the kill")?;
            gaps.gaps.push(first.duration_since(last));
            let (back, through) = resumed.context("no resume before the update")?;
            gaps.link_back.push(back.duration_since(killed));
            if relays[on].is_none() {
                // Through the other relay of the cluster; the killed one starts again, and is
                // the one the session goes to when the next kill is of this one.
                let now_on = addrs.iter().position(|a| *a == through).with_context(|| {
                    format!("resumed through {through}, not a relay of the bench")
                })?;
                anyhow::ensure!(now_on != on, "resumed through the killed relay {through}");
                relays[on] = Some(start_relay(on, &addrs[on])?);
                on = now_on;
            }
        }
        Ok(())
    })();
    painting.store(false, Ordering::Relaxed);
    let _ = painter.join();
    drop(technician);
    drop(agent);
    drop(relays);
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
                Some("link_resumed") => {
                    Seen::Resumed(at, v["relay"].as_str().unwrap_or_default().to_string())
                }
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
