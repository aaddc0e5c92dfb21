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

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use protocol::codec::{Decoder, Encoder, Update};
use protocol::control::Role;
use protocol::peer::EndReason;
use protocol::sessionlog::{CloseReason, LogWriter, Participant, SessionOpened, TypedText};

use crate::codec::{corpus_files, open, thread_cpu};

/// Recording the session log against receiving the screen, on the corpus
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of `SCRNSEQ1` files (`*.scrn`) [default: ../shared/corpus]
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Only the files whose name contains this
    #[arg(long)]
    only: Option<String>,
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
    let files = corpus_files(args.corpus.as_deref(), args.only.as_deref())?;
    let mut rows = Vec::new();
    for path in &files {
        eprintln!("bench record: {}", path.display());
        rows.push(measure(path)?);
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
    Ok(())
}
