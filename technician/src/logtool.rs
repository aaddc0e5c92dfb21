//! `technician log …`: offline tools for session logs: verify, show, frame, export.
//!
//! Everything here reads a log file with `protocol::sessionlog` and never touches the
//! network. `verify` and `show` exit 0 for an intact sealed log, 1 for a tampered one, 2 for
//! one that ended early (a crash, a kill) and 3 when the file cannot be read as a session log.
//! `frame` and `export` work on the part of a log that verifies, and say so when that is not
//! all of it. `export` pipes raw frames into an installed `ffmpeg` (H.264 in MP4).
//!
//! A log is a file anyone can hand over, and most of what it holds came from the agent: every
//! line `show` prints goes through `protocol::text::printable`, so no string in it acts on the
//! terminal, and a screen size is checked against the codec's limits before anything is sized
//! by it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use protocol::clipboard::ClipContent;
use protocol::input::InputEvent;
use protocol::sessionlog::record::{self, KIND_SCREEN_UPDATE};
use protocol::sessionlog::replay::decode_stored_update;
use protocol::sessionlog::{
    format_ms, format_utc, LogReader, OpenError, Player, RawRecord, Record, RecordedInput,
    SessionOpened, TypedText, Verdict,
};
use protocol::text::{is_unsafe, printable};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Exit status of `verify` for a log tampered with (as [`Verdict::exit_code`] says it).
pub const EXIT_TAMPERED: u8 = 1;
/// Exit status for a file that cannot be read as a session log.
pub const EXIT_UNREADABLE: u8 = 3;

/// `technician log …`
#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Check a session log's hash chain and seal. Exit 0: intact and sealed; 1: tampered;
    /// 2: ended early (the recording process was killed or crashed); 3: not readable as a log
    Verify {
        file: PathBuf,
        /// Also check the log against the chain hashes the relay was sent during the session
        /// (the `.checkpoints.json` that `relay logs get` writes beside the log): a log cut short
        /// or rewritten after the session is then found (exit 1)
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
    },
    /// Decrypt a session log fetched from the relay's archive (`*.tlog.age`) with the
    /// organisation's audit key
    Decrypt {
        file: PathBuf,
        /// The audit key file (from `technician log keygen`, or any age X25519 key file)
        #[arg(long, value_name = "KEYFILE")]
        identity: PathBuf,
        #[arg(short, long, value_name = "FILE.tlog")]
        output: PathBuf,
    },
    /// Make a new audit key: the private half goes to FILE (keep it off the relay, with the
    /// auditors); the public half, printed, goes into the relay's configuration (`audit_key`)
    Keygen {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// The session as a readable timeline (exit status as for verify)
    Show {
        file: PathBuf,
        /// One JSON object per record, then one with the verdict
        #[arg(long)]
        json: bool,
    },
    /// Write the screen as it was at a moment of the session as PNG
    Frame {
        file: PathBuf,
        /// Time since the session opened: seconds (`12.5`), `mm:ss[.s]` or `h:mm:ss[.s]`
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: u64,
        #[arg(short, long, value_name = "FILE.png")]
        output: PathBuf,
    },
    /// Export the session as an H.264 MP4 video (needs ffmpeg)
    Export {
        file: PathBuf,
        #[arg(short, long, value_name = "FILE.mp4")]
        output: PathBuf,
        /// Frames per second of the video
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
        fps: u32,
    },
}

/// Runs a `log` subcommand and says what happened on stdout/stderr.
pub fn run(cmd: LogCommand) -> ExitCode {
    let result = match cmd {
        LogCommand::Verify { file, checkpoints } => verify_cmd(&file, checkpoints.as_deref()),
        LogCommand::Decrypt {
            file,
            identity,
            output,
        } => crate::archive::decrypt_file(&identity, &file, &output).map(|()| {
            println!("Decrypted {} into {}.", file.display(), output.display());
            0
        }),
        LogCommand::Keygen { output } => crate::archive::keygen(&output).map(|public| {
            eprintln!(
                "Wrote the audit key to {}: keep it with the auditors, off the relay.",
                output.display()
            );
            eprintln!("Its public half, for the relay's configuration (audit_key):");
            println!("{public}");
            0
        }),
        LogCommand::Show { file, json } => {
            let stdout = std::io::stdout();
            show(&file, json, &mut stdout.lock()).map(|v| v.exit_code())
        }
        LogCommand::Frame { file, at, output } => frame_cmd(&file, at, &output).map(|()| 0),
        LogCommand::Export { file, output, fps } => export(&file, &output, fps, true).map(|s| {
            println!(
                "Wrote {}: {} frames at {fps} fps ({}).",
                output.display(),
                s.frames,
                format_ms(s.frames * 1000 / u64::from(fps))
            );
            0
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("technician: {e:#}");
            let unreadable = e.downcast_ref::<OpenError>().is_some();
            ExitCode::from(if unreadable { EXIT_UNREADABLE } else { 1 })
        }
    }
}

/// Parses `12.5`, `90`, `1:30`, `01:30.25` or `1:02:03` as ms.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a time: write seconds (12.5), mm:ss or h:mm:ss");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (last, whole) = parts.split_last().ok_or_else(bad)?;
    let secs: f64 = last.parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs < 0.0 || (!whole.is_empty() && secs >= 60.0) {
        return Err(bad());
    }
    let mut total_s: u64 = 0;
    for (i, p) in whole.iter().enumerate() {
        let v: u64 = p.parse().map_err(|_| bad())?;
        if i > 0 && v >= 60 {
            return Err(bad());
        }
        total_s = total_s * 60 + v;
    }
    let ms = (secs * 1000.0).round() as u64;
    Ok(total_s * 60_000 + ms)
}

fn open(path: &Path) -> anyhow::Result<LogReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    LogReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not readable as a session log", path.display()))
}

fn verify_cmd(path: &Path, checkpoints: Option<&Path>) -> anyhow::Result<u8> {
    let mut reader = open(path)?;
    let Some(cp_path) = checkpoints else {
        while reader
            .next_record()
            .with_context(|| format!("cannot read {}", path.display()))?
            .is_some()
        {}
        let verdict = reader.verdict().expect("a finished reader has a verdict");
        println!("{}: {verdict}", path.display());
        return Ok(verdict.exit_code());
    };
    let text = std::fs::read_to_string(cp_path)
        .with_context(|| format!("cannot read {}", cp_path.display()))?;
    let file: protocol::sessionlog::CheckpointFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint file", cp_path.display()))?;
    let (verdict, finding) =
        protocol::sessionlog::checkpoint::check(&mut reader, &file.checkpoints)
            .with_context(|| format!("cannot read {}", path.display()))?;
    println!("{}: {verdict}", path.display());
    println!("{}: {finding}", path.display());
    // Cut short or rewritten after the session is tampering, whatever the log says alone.
    Ok(if finding.is_consistent() {
        verdict.exit_code()
    } else {
        EXIT_TAMPERED
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn describe_input(input: &RecordedInput) -> String {
    match input {
        RecordedInput::Event(InputEvent::PointerMove { x, y }) => format!("pointer to ({x},{y})"),
        RecordedInput::Event(InputEvent::Button { button, down }) => {
            format!("{button:?} button {}", if *down { "down" } else { "up" })
        }
        RecordedInput::Event(InputEvent::Wheel { dx, dy }) => format!("wheel {dx},{dy}"),
        RecordedInput::Event(InputEvent::Key {
            down,
            key,
            text,
            modifiers,
        }) => {
            let mut s = format!("key {key} {}", if *down { "down" } else { "up" });
            if !modifiers.is_empty() {
                s.push_str(&format!(" with {modifiers:?}"));
            }
            if let Some(t) = text.as_ref().filter(|t| t.as_str() != key.to_string()) {
                s.push_str(&format!(" text {t:?}"));
            }
            s
        }
        RecordedInput::Typed {
            down,
            chars,
            modifiers,
        } => {
            let mut s = format!(
                "typed key {} ({chars} character{}, not recorded)",
                if *down { "down" } else { "up" },
                if *chars == 1 { "" } else { "s" }
            );
            if !modifiers.is_empty() {
                s.push_str(&format!(" with {modifiers:?}"));
            }
            s
        }
    }
}

fn describe(record: &Record) -> String {
    match record {
        Record::SessionOpened(o) => format!(
            "session opened: technician {} with agent {}",
            o.technician.description, o.agent.description
        ),
        Record::ParticipantJoined(p) if p.participant.software.is_empty() => format!(
            "{} joined: {}",
            p.participant.role, p.participant.description
        ),
        Record::ParticipantJoined(p) => format!(
            "{} joined: {} ({})",
            p.participant.role, p.participant.description, p.participant.software
        ),
        Record::ParticipantLeft(p) => format!(
            "{} left: {} ({})",
            p.participant.role, p.participant.description, p.reason
        ),
        Record::Consent(state) => format!("consent from the agent: {state:?}"),
        Record::Input(i) => format!("input: {}", describe_input(i)),
        Record::ScreenUpdate(u) => format!(
            "screen update {} ({}x{}, {} tiles)",
            u.seq,
            u.width,
            u.height,
            u.ops.len()
        ),
        Record::Error(e) => format!("error: {}", e.message),
        Record::DeskStep(d) => d.to_string(),
        Record::Control(c) => c.to_string(),
        Record::Chat(c) => format!(
            "chat from {}: {}",
            printable(&c.from.to_string()),
            printable(&c.text)
        ),
        Record::Clipboard(c) => match &c.content {
            Some(ClipContent::Text(t)) => {
                format!("{c}: {}", printable(&protocol::text::clip(t, 200)))
            }
            _ => c.to_string(),
        },
        Record::Monitors(m) => format!(
            "monitors: {} of the user's, this technician sees {}",
            m.list.len(),
            m.describe_shown()
        ),
        Record::CursorShape(s) => format!(
            "pointer shape {} ({}x{}, hotspot {},{})",
            s.id, s.width, s.height, s.hot_x, s.hot_y
        ),
        Record::Cursor(p) if p.visible => {
            format!("pointer at {},{} (shape {})", p.x, p.y, p.shape)
        }
        Record::Cursor(p) => format!("pointer off the screen seen (shape {})", p.shape),
        Record::FileTransfer(f) => f.to_string(),
        Record::Link(l) => printable(&l.to_string()).into_owned(),
        Record::Folder(l) => l.to_string(),
        Record::SessionClosed(c) => format!("session closed: {}", c.reason),
        Record::Seal => "sealed".into(),
        Record::Unknown { kind } => format!("record of kind {kind} (newer than this program)"),
    }
}

fn header_lines(o: &SessionOpened) -> Vec<String> {
    vec![
        format!("Opened {}", format_utc(o.started_unix_ms)),
        format!(
            "  relay      {} ({}), certificate {}",
            o.relay_address, o.relay_software, o.relay_fingerprint
        ),
        format!(
            "  technician {} ({})",
            o.technician.description, o.technician.software
        ),
        format!(
            "  agent      {} ({})",
            o.agent.description, o.agent.software
        ),
        format!(
            "  protocol {}, session code SHA-256 {}, typed text {}",
            o.protocol_version,
            hex(&o.code_sha256),
            match o.typed_text {
                TypedText::Full => "recorded",
                TypedText::CountOnly => "recorded as counts only",
            }
        ),
    ]
}

/// A run of screen updates or pointer moves shown as one line.
struct Run {
    first: u64,
    last: u64,
    time_ms: u64,
    count: u64,
    bytes: u64,
    what: &'static str,
    tail: String,
}

fn flush_run(run: &mut Option<Run>, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(r) = run.take() {
        let ids = if r.first == r.last {
            format!("#{}", r.first)
        } else {
            format!("#{}-{}", r.first, r.last)
        };
        let line = match r.what {
            "screen" => format!(
                "{} screen update{} ({:.1} kB){}",
                r.count,
                if r.count == 1 { "" } else { "s" },
                r.bytes as f64 / 1000.0,
                r.tail
            ),
            _ => format!(
                "pointer moved{}{}",
                if r.count > 1 {
                    format!(" {} times", r.count)
                } else {
                    String::new()
                },
                r.tail
            ),
        };
        writeln!(out, "{:>12}  {ids:<12} {line}", format_ms(r.time_ms))?;
    }
    Ok(())
}

/// Writes the timeline of a log to `out` (JSON lines with `json`) and returns its verdict.
pub fn show(path: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<Verdict> {
    let mut reader = open(path)?;
    if !json {
        writeln!(
            out,
            "Session log {} (format {})",
            path.display(),
            reader.version()
        )?;
    }
    let mut run: Option<Run> = None;
    while let Some(rec) = reader
        .next_record()
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        if json {
            writeln!(out, "{}", json_line(&record_json(&rec)))?;
            continue;
        }
        let decoded = match rec.decode() {
            Ok(d) => d,
            Err(e) => {
                flush_run(&mut run, out)?;
                let line = format!("{:>12}  #{:<11} {e}", format_ms(rec.time_ms), rec.index);
                writeln!(out, "{}", printable(&line))?;
                continue;
            }
        };
        let (what, bytes, tail) = match &decoded {
            Record::ScreenUpdate(u) => (
                Some("screen"),
                rec.body.len() as u64,
                format!(", {}x{}", u.width, u.height),
            ),
            Record::Input(RecordedInput::Event(InputEvent::PointerMove { x, y })) => {
                (Some("pointer"), 0, format!(" to ({x},{y})"))
            }
            _ => (None, 0, String::new()),
        };
        if let Some(what) = what {
            match run.as_mut().filter(|r| r.what == what) {
                Some(r) => {
                    r.last = rec.index;
                    r.count += 1;
                    r.bytes += bytes;
                    r.tail = tail;
                }
                None => {
                    flush_run(&mut run, out)?;
                    run = Some(Run {
                        first: rec.index,
                        last: rec.index,
                        time_ms: rec.time_ms,
                        count: 1,
                        bytes,
                        what,
                        tail,
                    });
                }
            }
            continue;
        }
        flush_run(&mut run, out)?;
        if let Record::SessionOpened(o) = &decoded {
            for line in header_lines(o) {
                writeln!(out, "{}", printable(&line))?;
            }
        }
        let line = format!(
            "{:>12}  #{:<11} {}",
            format_ms(rec.time_ms),
            rec.index,
            describe(&decoded)
        );
        writeln!(out, "{}", printable(&line))?;
    }
    flush_run(&mut run, out)?;
    let verdict = reader
        .verdict()
        .cloned()
        .expect("a finished reader has a verdict");
    if json {
        writeln!(out, "{}", json_line(&verdict_json(&verdict)))?;
    } else {
        writeln!(out, "{}", printable(&format!("Verdict: {verdict}")))?;
    }
    Ok(verdict)
}

/// `v` as one line of JSON that is safe on a terminal: JSON escapes the C0 controls itself;
/// every other character that could act there (DEL, C1 controls such as CSI, bidirectional
/// overrides) is written as a `\uXXXX` escape too, so the value a parser reads is unchanged.
fn json_line(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if !text.chars().any(is_unsafe) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn record_json(rec: &RawRecord) -> serde_json::Value {
    let mut v = json!({
        "index": rec.index,
        "time_ms": rec.time_ms,
        "kind": rec.kind_name(),
        "kind_number": rec.kind,
        "hash": hex(&rec.hash),
    });
    match rec.decode() {
        Ok(Record::ScreenUpdate(u)) => {
            v["record"] = json!({
                "seq": u.seq, "width": u.width, "height": u.height,
                "tiles": u.ops.len(), "bytes": rec.body.len(),
            })
        }
        Ok(Record::SessionOpened(o)) => {
            v["record"] = serde_json::to_value(&o).unwrap_or_default();
            v["record"]["code_sha256"] = json!(hex(&o.code_sha256));
        }
        Ok(Record::ParticipantJoined(p)) => {
            v["record"] = serde_json::to_value(p).unwrap_or_default()
        }
        Ok(Record::ParticipantLeft(p)) => v["record"] = serde_json::to_value(p).unwrap_or_default(),
        Ok(Record::Consent(c)) => v["record"] = serde_json::to_value(c).unwrap_or_default(),
        Ok(Record::Input(i)) => v["record"] = serde_json::to_value(i).unwrap_or_default(),
        Ok(Record::Error(e)) => v["record"] = serde_json::to_value(e).unwrap_or_default(),
        Ok(Record::DeskStep(d)) => v["record"] = serde_json::to_value(d).unwrap_or_default(),
        Ok(Record::Control(c)) => v["record"] = serde_json::to_value(c).unwrap_or_default(),
        Ok(Record::FileTransfer(f)) => {
            v["record"] = serde_json::to_value(&f).unwrap_or_default();
            v["record"]["sha256"] = json!(hex(&f.sha256));
        }
        Ok(Record::SessionClosed(c)) => v["record"] = serde_json::to_value(c).unwrap_or_default(),
        Ok(Record::Chat(c)) => v["record"] = serde_json::to_value(c).unwrap_or_default(),
        Ok(Record::Clipboard(c)) => {
            v["record"] = json!({
                "direction": c.direction.name(), "selection": c.selection.name(),
                "kind": c.kind.name(), "bytes": c.bytes,
            });
            match &c.content {
                Some(ClipContent::Text(t)) => v["record"]["text"] = json!(t),
                Some(ClipContent::Png(p)) => {
                    v["record"]["png_sha256"] = json!(hex(&Sha256::digest(p)))
                }
                None => {}
            }
        }
        Ok(Record::Monitors(m)) => v["record"] = serde_json::to_value(m).unwrap_or_default(),
        Ok(Record::CursorShape(s)) => {
            v["record"] = json!({
                "id": s.id, "width": s.width, "height": s.height, "hot_x": s.hot_x,
                "hot_y": s.hot_y, "sha256": hex(&Sha256::digest(&s.pixels)),
            })
        }
        Ok(Record::Cursor(p)) => v["record"] = serde_json::to_value(p).unwrap_or_default(),
        Ok(Record::Link(l)) => v["record"] = serde_json::to_value(l).unwrap_or_default(),
        Ok(Record::Folder(l)) => v["record"] = serde_json::to_value(l).unwrap_or_default(),
        Ok(Record::Seal) | Ok(Record::Unknown { .. }) => {}
        Err(e) => v["error"] = json!(e.to_string()),
    }
    v
}

fn verdict_json(v: &Verdict) -> serde_json::Value {
    let mut j = match v {
        Verdict::Intact {
            records,
            duration_ms,
            chain_hash,
        } => json!({
            "verdict": "intact", "records": records, "duration_ms": duration_ms,
            "chain_hash": hex(chain_hash),
        }),
        Verdict::EndedEarly {
            after_record,
            at_ms,
            torn_bytes,
        } => json!({
            "verdict": "ended_early", "after_record": after_record, "at_ms": at_ms,
            "torn_bytes": torn_bytes,
        }),
        Verdict::Tampered { at_record, why } => {
            json!({ "verdict": "tampered", "at_record": at_record, "why": why })
        }
    };
    j["kind"] = json!("verdict");
    j["message"] = json!(v.to_string());
    j
}

/// Warns on stderr when a log is not intact: tools then use the part that verifies.
fn warn_if_not_intact(path: &Path, verdict: Option<&Verdict>) {
    match verdict {
        Some(Verdict::Intact { .. }) | None => {}
        Some(v) => eprintln!(
            "technician: warning: {} {v}; using the records before that point",
            path.display()
        ),
    }
}

/// Replays `path` up to `at_ms` and returns the player (its framebuffer is the screen then).
pub fn screen_at(path: &Path, at_ms: u64) -> anyhow::Result<Player<BufReader<File>>> {
    let mut player = Player::new(open(path)?);
    player
        .advance_to(at_ms)
        .with_context(|| format!("cannot replay {}", path.display()))?;
    Ok(player)
}

fn frame_cmd(path: &Path, at_ms: u64, output: &Path) -> anyhow::Result<()> {
    let player = screen_at(path, at_ms)?;
    if player.finished() {
        warn_if_not_intact(path, player.verdict());
        if at_ms > player.last_time_ms() {
            eprintln!(
                "technician: the log ends at {}; this is the screen at its end.",
                format_ms(player.last_time_ms())
            );
        }
    }
    if player.framebuffer().width() == 0 {
        bail!("no screen update had arrived by {}", format_ms(at_ms));
    }
    crate::viewer::write_png(player.framebuffer(), output).map_err(anyhow::Error::msg)?;
    println!(
        "Wrote {}: the screen at {} ({}x{}, after {} screen updates).",
        output.display(),
        format_ms(at_ms),
        player.framebuffer().width(),
        player.framebuffer().height(),
        player.replayer().updates_applied()
    );
    Ok(())
}

/// What an export produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
}

/// Video frames for a log of `duration_ms` at `fps`: one per 1/fps from time 0, covering the
/// whole session (at least one).
pub fn frame_count(duration_ms: u64, fps: u32) -> u64 {
    duration_ms
        .saturating_mul(u64::from(fps))
        .div_ceil(1000)
        .max(1)
}

/// What a first pass over a log finds.
struct Survey {
    /// Time of the last record that verifies.
    duration_ms: u64,
    /// Size of the first screen.
    size: Option<(u32, u32)>,
    verdict: Option<Verdict>,
}

/// First pass: duration of the verified part and size of the first screen.
fn survey(path: &Path) -> anyhow::Result<Survey> {
    let mut reader = open(path)?;
    let (mut duration_ms, mut size) = (0, None);
    while let Some(rec) = reader.next_record()? {
        duration_ms = rec.time_ms;
        if size.is_none() && rec.kind == KIND_SCREEN_UPDATE {
            if let Some(Ok(u)) = decode_stored_update(rec.kind, &rec.body) {
                size = Some((u.width, u.height));
            }
        }
    }
    Ok(Survey {
        duration_ms,
        size,
        verdict: reader.verdict().cloned(),
    })
}

/// Exports the session as H.264 in MP4 through `ffmpeg`, one frame per 1/`fps` second from the
/// opening to the last record. The video has the size of the first screen (rounded up to even
/// numbers, as H.264 4:2:0 needs); a later screen of another size is drawn from the top left,
/// cropped or on black. With `progress`, a progress bar on stderr (only on a terminal).
pub fn export(
    path: &Path,
    output: &Path,
    fps: u32,
    progress: bool,
) -> anyhow::Result<ExportSummary> {
    let Survey {
        duration_ms,
        size,
        verdict,
    } = survey(path)?;
    warn_if_not_intact(path, verdict.as_ref());
    let Some((sw, sh)) = size else {
        bail!(
            "{} holds no screen update: there is nothing to show",
            path.display()
        );
    };
    // The video, and the canvas a frame of another size is drawn on, have this size: a log
    // declaring more than any screen the codec accepts is refused before either is made.
    protocol::codec::check_screen_size(sw, sh).map_err(|e| {
        anyhow::anyhow!(
            "{} declares a screen of {sw}x{sh}, which no viewer would have shown ({e}); it \
             is not exported",
            path.display()
        )
    })?;
    let (w, h) = (sw + sw % 2, sh + sh % 2);
    let frames = frame_count(duration_ms, fps);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "rawvideo", "-pix_fmt", "bgr0"])
        .args(["-s", &format!("{w}x{h}"), "-r", &fps.to_string(), "-i", "-"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(output)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "ffmpeg is not installed, and `log export` uses it to encode H.264; install it \
                 (Debian/Ubuntu: apt-get install ffmpeg) and run the export again"
            ),
            _ => anyhow::anyhow!("cannot start ffmpeg: {e}"),
        })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(frames);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} frames, {elapsed} elapsed, {eta} left",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_message("Exporting");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let written = (|| -> anyhow::Result<()> {
        let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped"));
        let mut player = Player::new(open(path)?);
        let mut canvas = vec![0u8; w as usize * h as usize * 4];
        for k in 0..frames {
            player.advance_to(k * 1000 / u64::from(fps))?;
            let fb = player.framebuffer();
            if (fb.width(), fb.height()) == (w, h) {
                stdin.write_all(fb.pixels())?;
            } else {
                canvas.fill(0);
                let cw = fb.width().min(w) as usize * 4;
                for y in 0..fb.height().min(h) as usize {
                    let src = y * fb.width() as usize * 4;
                    let dst = y * w as usize * 4;
                    canvas[dst..dst + cw].copy_from_slice(&fb.pixels()[src..src + cw]);
                }
                stdin.write_all(&canvas)?;
            }
            bar.inc(1);
        }
        stdin.flush()?;
        Ok(())
    })();
    bar.finish_and_clear();
    let status = child.wait().context("ffmpeg did not finish")?;
    let ffmpeg_said = drain.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "ffmpeg failed ({status}) writing {}: {}",
            output.display(),
            ffmpeg_said.trim()
        );
    }
    written.with_context(|| format!("cannot feed frames to ffmpeg for {}", output.display()))?;
    Ok(ExportSummary {
        frames,
        width: w,
        height: h,
    })
}

/// Record kinds `show` knows by name (for docs and tests).
pub fn known_kinds() -> Vec<(u16, &'static str)> {
    [
        record::KIND_SESSION_OPENED,
        record::KIND_PARTICIPANT_JOINED,
        record::KIND_PARTICIPANT_LEFT,
        record::KIND_CONSENT,
        record::KIND_INPUT,
        record::KIND_SCREEN_UPDATE,
        record::KIND_ERROR,
        record::KIND_SESSION_CLOSED,
        record::KIND_SEAL,
    ]
    .into_iter()
    .map(|k| (k, record::kind_name(k)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("12.5"), Ok(12_500));
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1:30"), Ok(90_000));
        assert_eq!(parse_time("01:02.25"), Ok(62_250));
        assert_eq!(parse_time("1:02:03"), Ok(3_723_000));
        for bad in [
            "", "x", "1:", ":5", "1:60", "1:2:3:4", "-1", "1:75:00", "nan",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frame_counts_cover_the_session() {
        assert_eq!(frame_count(0, 10), 1);
        assert_eq!(frame_count(3950, 10), 40);
        assert_eq!(frame_count(4000, 10), 40);
        assert_eq!(frame_count(4001, 10), 41);
    }
}
