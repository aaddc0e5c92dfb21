//! The session-log tools on a recorded corpus session: the replayed screen equals the corpus
//! frames bit for bit, `verify` and `show` exit as documented for intact, tampered, cut and
//! foreign files, `frame` writes the right pixels, and `export` makes an MP4 whose frame count
//! and duration `ffprobe` confirms. Export needs `ffmpeg` and `ffprobe` installed; without them
//! that test fails and says so.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use protocol::codec::Encoder;
use protocol::input::{InputEvent, Key, Modifiers};
use protocol::peer::{ConsentState, EndReason};
use protocol::scrnseq;
use protocol::sessionlog::{CloseReason, LogReader, LogWriter, Player};
use technician::logtool;

mod common;
use common::opened;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/typing.scrn")
}

/// Records the corpus session as the technician would see it: every frame encoded with the
/// interim tile codec, stamped with its capture time, with consent and a few keys between.
/// Returns the time of the last frame.
fn record(path: &Path) -> u64 {
    let mut reader = scrnseq::Reader::new(BufReader::new(File::open(corpus()).unwrap())).unwrap();
    let h = reader.header();
    let mut enc = Encoder::new(h.width, h.height);
    let mut log = LogWriter::create(File::create(path).unwrap(), &opened("agent test")).unwrap();
    log.consent(1, ConsentState::Control).unwrap();
    let mut seq = 1;
    let mut last = 0;
    while let Some((t, frame)) = reader.next_frame().unwrap() {
        let t = u64::from(t) + 2;
        if let Some(u) = enc.encode(frame, h.width, h.height, t, seq) {
            log.screen_update(t, &u).unwrap();
            seq += 1;
        }
        if seq % 7 == 0 {
            let key = InputEvent::Key {
                down: true,
                key: Key::Char('k'),
                text: Some("k".into()),
                modifiers: Modifiers::NONE,
            };
            log.input(t, &key).unwrap();
        }
        log.tick(t).unwrap();
        last = t;
    }
    log.finish(last + 10, &CloseReason::ByAgent(EndReason::SourceFinished))
        .unwrap()
        .sync_all()
        .unwrap();
    last
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

#[test]
fn replay_is_bit_exact_with_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("typing.tlog");
    record(&log);
    let mut player =
        Player::new(LogReader::new(BufReader::new(File::open(&log).unwrap())).unwrap());
    let mut reader = scrnseq::Reader::new(BufReader::new(File::open(corpus()).unwrap())).unwrap();
    let mut frames = 0;
    while let Some((t, frame)) = reader.next_frame().unwrap() {
        player.advance_to(u64::from(t) + 2).unwrap();
        assert!(
            player.framebuffer().pixels() == frame,
            "the replayed screen differs from corpus frame {frames} at {t} ms"
        );
        frames += 1;
    }
    assert_eq!(frames, 80);

    // The library call behind `frame --at`, and the command itself through a PNG.
    let p = logtool::screen_at(&log, 2_000).unwrap();
    let mut reader = scrnseq::Reader::new(BufReader::new(File::open(corpus()).unwrap())).unwrap();
    let mut expected = Vec::new();
    while let Some((t, frame)) = reader.next_frame().unwrap() {
        if u64::from(t) + 2 > 2_000 {
            break;
        }
        expected = frame.to_vec();
    }
    assert!(p.framebuffer().pixels() == &expected[..]);
    let png = dir.path().join("at2s.png");
    let out = technician(&[
        "log",
        "frame",
        log.to_str().unwrap(),
        "--at",
        "0:02",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dec = png::Decoder::new(BufReader::new(File::open(&png).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut rgb = vec![0; r.output_buffer_size()];
    r.next_frame(&mut rgb).unwrap();
    let want: Vec<u8> = expected
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    assert!(rgb == want, "the PNG differs from the corpus frame at 2 s");
}

#[test]
fn verify_and_show_exit_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("typing.tlog");
    record(&log);
    let path = log.to_str().unwrap();

    let out = technician(&["log", "verify", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("intact"), "{}", text(&out));

    let out = technician(&["log", "show", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    for want in [
        "consent from the agent: Control",
        "screen update",
        "typed key down (1 character, not recorded)",
        "session closed",
        "sealed",
    ] {
        assert!(shown.contains(want), "`{want}` missing from:\n{shown}");
    }
    let out = technician(&["log", "show", "--json", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines[0]["kind"], "session_opened");
    assert_eq!(lines.last().unwrap()["verdict"], "intact");

    // One byte changed in the middle: tampered, at the record that holds it.
    let bytes = std::fs::read(&log).unwrap();
    let target = {
        let r = LogReader::new(&bytes[..]).unwrap();
        r.map(|r| r.unwrap()).nth(5).unwrap()
    };
    let mut bad = bytes.clone();
    bad[target.offset as usize + 70] ^= 0x20;
    let bad_path = dir.path().join("tampered.tlog");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = technician(&["log", "verify", bad_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("tampered at record 5"),
        "{}",
        text(&out)
    );
    let out = technician(&["log", "show", bad_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Cut in the middle of a record, as a kill leaves it: ended early.
    let cut_path = dir.path().join("cut.tlog");
    std::fs::write(&cut_path, &bytes[..target.offset as usize + 30]).unwrap();
    let out = technician(&["log", "verify", cut_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("ended early after record 4"),
        "{}",
        text(&out)
    );

    // Not a session log at all.
    let out = technician(&["log", "verify", corpus().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("not a Tandem session log"),
        "{}",
        text(&out)
    );
}

fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{tool}` is not installed: this test exports a session to MP4 and checks it with \
         ffprobe. Install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)."
    );
}

#[test]
fn export_makes_an_mp4_of_the_right_length() {
    require("ffmpeg");
    require("ffprobe");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("typing.tlog");
    let last = record(&log);
    let mp4 = dir.path().join("typing.mp4");
    let fps = 10;
    let out = technician(&[
        "log",
        "export",
        log.to_str().unwrap(),
        "-o",
        mp4.to_str().unwrap(),
        "--fps",
        &fps.to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let want_frames = logtool::frame_count(last + 10, fps);
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height:format=duration",
        ])
        .args(["-of", "json"])
        .arg(&mp4)
        .output()
        .unwrap();
    assert!(probe.status.success(), "{}", text(&probe));
    let j: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &j["streams"][0];
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(1920), Some(1080))
    );
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert_eq!(frames, want_frames);
    let duration: f64 = j["format"]["duration"].as_str().unwrap().parse().unwrap();
    let want = want_frames as f64 / f64::from(fps);
    assert!(
        (duration - want).abs() <= 1.0 / f64::from(fps),
        "duration {duration} s, want {want} s"
    );
}
