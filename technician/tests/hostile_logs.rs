//! The session-log tools on logs made to hurt them: a log is a file anyone can hand a
//! technician, and everything in it came from the agent or was written by someone else. The
//! tools must refuse with words a person can act on, never abort, and never let a string in
//! the log act on the terminal.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};

use protocol::peer::{CodecOp, CodecTile, EndReason, ScreenUpdate, TileCoding};
use protocol::sessionlog::{CloseReason, LogWriter};

mod common;
use common::opened;

/// A sealed log holding `updates` at 100 ms apart, the agent's software string `software` and
/// an agent's end reason `reason`.
fn write_log(path: &Path, software: &str, updates: &[ScreenUpdate], reason: &str) {
    let mut log = LogWriter::create(File::create(path).unwrap(), &opened(software)).unwrap();
    for (i, u) in updates.iter().enumerate() {
        log.screen_update(100 * (i as u64 + 1), u).unwrap();
    }
    let end = CloseReason::ByAgent(EndReason::Error(reason.into()));
    log.finish(100 * (updates.len() as u64 + 2), &end)
        .unwrap()
        .sync_all()
        .unwrap();
}

fn technician(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_technician"))
        .args(args)
        .output()
        .expect("the technician binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn empty_update(seq: u64, width: u32, height: u32) -> ScreenUpdate {
    ScreenUpdate {
        seq,
        width,
        height,
        ops: Vec::new(),
        tile_data: Vec::new(),
    }
}

#[test]
fn export_refuses_a_log_that_declares_a_screen_larger_than_any_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("huge.tlog");
    write_log(
        &log,
        "agent test",
        &[empty_update(1, 60_000, 60_000)],
        "bye",
    );
    let mp4 = dir.path().join("huge.mp4");
    let out = technician(&[
        "log",
        "export",
        log.to_str().unwrap(),
        "-o",
        mp4.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("60000x60000"), "{said}");
    assert!(said.contains("8192"), "names the limit: {said}");
    assert!(!mp4.exists(), "nothing exported");
}

#[test]
fn frame_and_export_refuse_an_update_asking_for_too_much_work() {
    // The 15 KB update of review finding 2: a thousand whole-screen tiles, each declaring the
    // largest length a tile of its size may have.
    let (w, h) = (8192, 8192);
    let tile = CodecOp::Tile(CodecTile {
        x: 0,
        y: 0,
        width: w,
        height: h,
        coding: TileCoding::Predicted,
        len: w * h * 4 + 1 + 128 * 4,
    });
    let hostile = ScreenUpdate {
        seq: 1,
        width: w,
        height: h,
        ops: vec![tile; 1000],
        tile_data: vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 1, 0, 0],
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("work.tlog");
    write_log(&log, "agent test", &[hostile], "bye");
    let png = dir.path().join("at.png");
    let out = technician(&[
        "log",
        "frame",
        log.to_str().unwrap(),
        "--at",
        "1",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("times its screen"), "{}", text(&out));
    let mp4 = dir.path().join("work.mp4");
    let out = technician(&[
        "log",
        "export",
        log.to_str().unwrap(),
        "-o",
        mp4.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("times its screen"), "{}", text(&out));
}

#[test]
fn show_escapes_what_the_agent_wrote_before_it_reaches_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("escape.tlog");
    write_log(
        &log,
        "agent 1.0\r\x1b[2KExample Support (verified)",
        &[empty_update(1, 4, 4)],
        "done\x1b]0;owned\x07\u{202E}",
    );
    let out = technician(&["log", "show", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("agent 1.0\\u{d}\\u{1b}[2KExample Support"),
        "the software string is shown escaped:\n{shown}"
    );
    assert!(shown.contains("\\u{202e}"), "{shown}");
    for c in ['\r', '\x1b', '\x07', '\u{202E}'] {
        assert!(!shown.contains(c), "{c:?} reached the terminal:\n{shown:?}");
    }
    // The JSON lines carry the same text, escaped as JSON, and still parse.
    let out = technician(&["log", "show", "--json", log.to_str().unwrap()]);
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    for c in ['\r', '\x1b', '\x07', '\u{202E}'] {
        assert!(!json.contains(c), "{c:?} reached the terminal:\n{json:?}");
    }
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["record"]["agent"]["software"],
        "agent 1.0\r\x1b[2KExample Support (verified)"
    );
}
