//! `bench record`: what recording the session log costs the technician, against what receiving
//! the screen costs it anyway.
//!
//! For every corpus file the frames are encoded by the agent's codec beforehand (not timed).
//! Then, on this thread's CPU clock, each update goes through what the technician does with it:
//! decoding the update from its wire bytes and applying it to the framebuffer (`receive`), and
//! appending it to a session log in a file (`record`: `LogWriter::screen_update`, its
//! serialisation, SHA-256 chain and buffered writes, and the seal at the end, flushed to disk).
//! Bytes: the screen traffic (updates as framed on the wire) and the log file, each also per
//! minute of the recording. Target: recording adds at most 5% to the technician's CPU.
//!
//! With `--processes`, the same is measured on the whole technician process: a real relay
//! (release build, allowing `--no-record`), an agent playing the file at its recorded pace and
//! a technician joining it, once recording and once with `--no-record`, `--runs` times each;
//! the technician's CPU time (user + system, from its shell's `times`) is compared by median.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use protocol::codec::{Decoder, Encoder, Update};
use protocol::control::Role;
use protocol::peer::EndReason;
use protocol::sessionlog::{CloseReason, LogWriter, Participant, SessionOpened, TypedText};

use crate::codec::{open, thread_cpu, CorpusArgs};

/// Recording the session log against receiving the screen, on the corpus
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Also measure whole technician processes in real sessions, recording and not (needs
    /// `cargo build --release -p relay -p agent -p technician` first)
    #[arg(long)]
    processes: bool,
    /// With --processes: sessions per file and mode
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

/// Most recording may add to the technician's CPU, in percent.
const TARGET_PERCENT: f64 = 5.0;

struct Row {
    scenario: String,
    minutes: f64,
    screen_bytes: u64,
    log_bytes: u64,
    receive_ms: f64,
    record_ms: f64,
}

fn opened() -> SessionOpened {
    let who = |role, description: &str| Participant {
        role,
        description: description.into(),
        software: format!("bench {}", protocol::SOFTWARE_VERSION),
    };
    SessionOpened {
        started_unix_ms: 0,
        relay_address: "127.0.0.1:4433".into(),
        relay_fingerprint: "00".repeat(32),
        relay_software: "bench".into(),
        technician: who(Role::Technician, "bench technician"),
        agent: who(Role::Agent, "bench agent"),
        protocol_version: protocol::PROTOCOL_VERSION,
        code_sha256: protocol::sessionlog::code_sha256("000000000"),
        typed_text: TypedText::Full,
    }
}

fn measure(path: &std::path::Path) -> anyhow::Result<Row> {
    let mut r = open(path)?;
    let h = r.header();
    let mut enc = Encoder::new(h.width, h.height);
    let mut updates: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut last_t = 0u64;
    let mut seq = 0;
    while let Some((t, frame)) = r.next_frame()? {
        last_t = u64::from(t);
        if let Some(u) = enc.encode(frame, h.width, h.height, last_t, seq + 1) {
            seq += 1;
            updates.push((last_t, protocol::wire::encode_frame(&u)));
        }
    }
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("bench.tlog");
    let file = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut dec = Decoder::new();
    let (mut receive, mut record) = (0f64, 0f64);
    let t0 = thread_cpu();
    let mut log = LogWriter::create(BufWriter::new(file), &opened())?;
    record += (thread_cpu() - t0).as_secs_f64();
    for (t, wire) in &updates {
        let t0 = thread_cpu();
        let u: Update = protocol::wire::decode_peer(&wire[4..]).context("an update")?;
        dec.apply(&u).context("an update does not apply")?;
        let t1 = thread_cpu();
        log.screen_update(*t, &u)?;
        let t2 = thread_cpu();
        receive += (t1 - t0).as_secs_f64();
        record += (t2 - t1).as_secs_f64();
    }
    let t0 = thread_cpu();
    let out = log.finish(last_t, &CloseReason::ByAgent(EndReason::SourceFinished))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    record += (thread_cpu() - t0).as_secs_f64();
    Ok(Row {
        scenario: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        minutes: (last_t.max(1) as f64) / 60_000.0,
        screen_bytes: updates.iter().map(|(_, w)| w.len() as u64).sum(),
        log_bytes: std::fs::metadata(&log_path)?.len(),
        receive_ms: receive * 1e3,
        record_ms: record * 1e3,
    })
}

pub fn main(args: &Args, json: bool) -> anyhow::Result<()> {
    let files = args.corpus.files()?;
    let mut rows = Vec::new();
    for path in &files {
        eprintln!("bench record: {}", path.display());
        rows.push(measure(path)?);
    }
    let mut procs = Vec::new();
    if args.processes {
        let mut sessions = Sessions::start()?;
        for path in &files {
            procs.push(sessions.measure(path, args.runs.max(1))?);
        }
    }
    if json {
        for r in &rows {
            let share = 100.0 * r.record_ms / r.receive_ms.max(1e-9);
            for (metric, value, unit) in [
                ("screen_bytes", r.screen_bytes as f64, "bytes"),
                ("log_bytes", r.log_bytes as f64, "bytes"),
                (
                    "log_bytes_per_minute",
                    r.log_bytes as f64 / r.minutes,
                    "bytes",
                ),
                (
                    "screen_bytes_per_minute",
                    r.screen_bytes as f64 / r.minutes,
                    "bytes",
                ),
                ("receive_cpu_ms", r.receive_ms, "ms"),
                ("record_cpu_ms", r.record_ms, "ms"),
                ("record_cpu_share_percent", share, "%"),
            ] {
                println!(
                    "{}",
                    serde_json::json!({"bench": "record", "scenario": r.scenario,
                        "system": "technician", "metric": metric, "value": value, "unit": unit})
                );
            }
        }
        for p in &procs {
            for (metric, value, unit) in [
                ("process_cpu_ms_recording", p.recording_ms, "ms"),
                ("process_cpu_ms_not_recording", p.plain_ms, "ms"),
                ("process_record_cpu_added_percent", p.added_percent(), "%"),
            ] {
                println!(
                    "{}",
                    serde_json::json!({"bench": "record", "scenario": p.scenario,
                        "system": "technician", "metric": metric, "value": value, "unit": unit})
                );
            }
        }
        return Ok(());
    }
    println!(
        "record: the technician's CPU to record each screen update in the session log, against \
         decoding and applying it (one thread), and the log's bytes against the screen traffic"
    );
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>14} {:>14} {:>11} {:>11} {:>9}  target",
        "scenario",
        "screen B",
        "log B",
        "screen B/min",
        "log B/min",
        "receive ms",
        "record ms",
        "record %"
    );
    for r in &rows {
        let share = 100.0 * r.record_ms / r.receive_ms.max(1e-9);
        println!(
            "{:<16} {:>12} {:>12} {:>14.0} {:>14.0} {:>11.2} {:>11.2} {:>8.2}%  ≤ {TARGET_PERCENT}% ({})",
            r.scenario,
            r.screen_bytes,
            r.log_bytes,
            r.screen_bytes as f64 / r.minutes,
            r.log_bytes as f64 / r.minutes,
            r.receive_ms,
            r.record_ms,
            share,
            if share <= TARGET_PERCENT { "met" } else { "MISSED" }
        );
    }
    if !procs.is_empty() {
        println!();
        println!(
            "whole technician process in real sessions (median of the runs, user + system CPU)"
        );
        println!(
            "{:<16} {:>14} {:>14} {:>9}  target",
            "scenario", "recording ms", "no-record ms", "added %"
        );
        for p in &procs {
            let added = p.added_percent();
            println!(
                "{:<16} {:>14.1} {:>14.1} {:>8.2}%  ≤ {TARGET_PERCENT}% ({})",
                p.scenario,
                p.recording_ms,
                p.plain_ms,
                added,
                if added <= TARGET_PERCENT {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    }
    Ok(())
}

/// One file's whole-process figures.
struct ProcRow {
    scenario: String,
    recording_ms: f64,
    plain_ms: f64,
}

impl ProcRow {
    fn added_percent(&self) -> f64 {
        100.0 * (self.recording_ms - self.plain_ms) / self.plain_ms.max(1e-9)
    }
}

/// A relay with the bench's technician logged in, for real sessions.
struct Sessions {
    relay: harness::relay::Relay,
    dir: tempfile::TempDir,
    addr: String,
    fingerprint: String,
    agent: PathBuf,
    technician: PathBuf,
}

impl Sessions {
    fn start() -> anyhow::Result<Self> {
        use crate::e2e::procs::{self, sibling_binary};
        use std::time::Duration;
        let relay_bin = sibling_binary("relay")?;
        let agent = sibling_binary("agent")?;
        let technician = sibling_binary("technician")?;
        let dir = tempfile::Builder::new()
            .prefix("tandem-bench-record-")
            .tempdir()?;
        let data = dir.path().join("relay");
        crate::relay::add_bench_account(&relay_bin, &data)?;
        let mut command = harness::relay::command(&relay_bin, "127.0.0.1:0", &data, None);
        command.arg("--allow-no-record");
        let relay = harness::relay::Relay::start(
            "relay",
            command,
            procs::options(false),
            Duration::from_secs(20),
        )?;
        let this = Self {
            addr: relay.addr.to_string(),
            fingerprint: relay.fingerprint.clone(),
            relay,
            dir,
            agent,
            technician,
        };
        let (user, password) = crate::relay::bench_account();
        let mut login = std::process::Command::new(&this.technician);
        login
            .args(["login", "--user", user])
            .args(this.peer_args())
            .arg("--tokens")
            .arg(this.dir.path().join("tokens.json"));
        let out = harness::process::run("technician login", login, &format!("{password}\n"))?;
        anyhow::ensure!(out.success, "technician login failed: {}", out.stderr);
        Ok(this)
    }

    fn peer_args(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--relay".into(),
            self.addr.clone(),
            "--fingerprint".into(),
            self.fingerprint.clone(),
            "--known-relays".into(),
            d.join("known.json").display().to_string(),
        ]
    }

    /// One session on `file`; the technician's CPU time in ms.
    fn session(&mut self, file: &std::path::Path, record: bool) -> anyhow::Result<f64> {
        use crate::e2e::procs;
        self.relay.process.check_running()?;
        let mut cmd = std::process::Command::new(&self.agent);
        cmd.args(self.peer_args())
            .arg("--source")
            .arg(format!("corpus:{}", file.display()))
            .args(["--consent", "control", "--json"]);
        let mut agent = procs::start("agent", cmd, false)?;
        let code = procs::wait_code(&mut agent)?;
        let d = self.dir.path();
        let mut cmd = std::process::Command::new(&self.technician);
        cmd.args(["connect", &code])
            .args(self.peer_args())
            .arg("--tokens")
            .arg(d.join("tokens.json"))
            .arg("--log-dir")
            .arg(d.join("logs"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if !record {
            cmd.arg("--no-record");
        }
        let child = cmd.spawn().context("cannot start the technician")?;
        // Reaped here with wait4 for its resource usage (std's Child never waits on drop).
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it and the status for our child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = child.id() as libc::pid_t;
        // SAFETY: waits for our own child process, writing into the locals given.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        anyhow::ensure!(r == pid, "cannot wait for the technician");
        anyhow::ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the technician's session failed (status {status})"
        );
        agent
            .wait_line(std::time::Duration::from_secs(5), "its end", |_| None::<()>)
            .ok();
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
        Ok(cpu * 1e3)
    }

    fn measure(&mut self, file: &std::path::Path, runs: u32) -> anyhow::Result<ProcRow> {
        let mut median = |record: bool| -> anyhow::Result<f64> {
            let mut v = Vec::new();
            for k in 0..runs {
                eprintln!(
                    "bench record: {} session {} of {runs}, {}",
                    file.display(),
                    k + 1,
                    if record { "recording" } else { "not recording" }
                );
                v.push(self.session(file, record)?);
            }
            v.sort_by(f64::total_cmp);
            Ok(v[v.len() / 2])
        };
        let recording_ms = median(true)?;
        let plain_ms = median(false)?;
        Ok(ProcRow {
            scenario: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            recording_ms,
            plain_ms,
        })
    }
}
