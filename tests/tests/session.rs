//! A whole session through real processes: corpus frames arrive bit-exact, input arrives
//! complete and in order.

use std::time::Duration;

use tests::{data, frame_hashes, start_agent, start_technician, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(120);

#[test]
fn every_acknowledged_update_and_the_last_frame_are_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    // Unpaced: every frame of the file is offered, as fast as the technician acknowledges.
    let (mut agent, code) = start_agent(
        &relay,
        &["--source", &source, "--speed", "0", "--report-updates"],
    );
    let mut tech = start_technician(&relay, &code, &["--report-updates", "--hash-frames"]);
    let status = tech.wait_exit(SESSION);
    assert!(status.success(), "technician failed\n{}", tech.transcript());
    assert!(
        agent.wait_exit(PROMPT).success(),
        "agent failed\n{}",
        agent.transcript()
    );

    let hashes = frame_hashes(&corpus);
    let sent = agent.events("update_sent");
    let applied = tech.events("update");
    assert!(
        !sent.is_empty(),
        "no updates were sent\n{}",
        agent.transcript()
    );
    assert_eq!(sent.len(), applied.len(), "every update sent was applied");
    for (s, a) in sent.iter().zip(&applied) {
        assert_eq!(s["seq"], a["seq"]);
        let frame = s["frame"].as_u64().unwrap() as usize;
        assert_eq!(
            a["sha256"].as_str().unwrap(),
            hashes[frame],
            "after update {} the technician's screen differs from corpus frame {frame}",
            s["seq"]
        );
    }
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "SourceFinished");
    assert_eq!(ended["sha256"].as_str().unwrap(), hashes.last().unwrap());
    // The session was recorded: the log is sealed, intact, and replays to the same screen.
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, text) = tests::verify_log(&log);
    assert_eq!(code, 0, "{text}");
    assert_eq!(tests::replayed_end_sha256(&log), *hashes.last().unwrap());
    // Identical frames cost no update: the typing capture repeats frames while nothing moves.
    assert!(
        sent.len() < hashes.len(),
        "{} updates for {} frames",
        sent.len(),
        hashes.len()
    );
}

#[test]
fn paced_playback_ends_on_the_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let corpus = data("idle-clock.scrn");
    let source = format!("corpus:{}", corpus.display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "4"]);
    let snapshot = dir.path().join("end.png");
    let mut tech = start_technician(&relay, &code, &["--snapshot", snapshot.to_str().unwrap()]);
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(
        ended["sha256"].as_str().unwrap(),
        frame_hashes(&corpus).last().unwrap()
    );
    assert!(
        std::fs::metadata(&snapshot).unwrap().len() > 1000,
        "snapshot written"
    );
}

#[test]
fn input_events_arrive_complete_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let record = dir.path().join("input.jsonl");
    let script_path = dir.path().join("script.txt");
    let mut script = String::new();
    for i in 0..40 {
        script.push_str(&format!("move {} {}\n", i * 7, 1000 - i * 3));
    }
    script.push_str(
        "click left\ndown right\nup right\nclick middle\nwheel 0 3\nwheel -2 0\n\
         type Hello, World! é€ß\\n\nkey ctrl+alt+t\nkey shift+Tab\nkey Return\nkey F5\nend\n",
    );
    std::fs::write(&script_path, &script).unwrap();
    // A slow source keeps the session open while the script plays.
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    let input = format!("record:{}", record.display());
    let (mut agent, code) = start_agent(
        &relay,
        &["--source", &source, "--speed", "0.5", "--input", &input],
    );
    let mut tech = start_technician(
        &relay,
        &code,
        &["--input-script", script_path.to_str().unwrap()],
    );
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert_eq!(
        agent.wait_event("ended", PROMPT)["reason"],
        "TechnicianEnded"
    );

    tests::assert_script_input_arrived(&script, &record);
}

/// Writes a recording of a moving picture (many colours, changing every frame) on a still
/// desktop of text-like blocks: what the codec sends as video while it moves.
fn write_moving_picture(path: &std::path::Path, frames: u32) {
    let (w, h) = (480usize, 320usize);
    let header = protocol::scrnseq::Header {
        width: w as u32,
        height: h as u32,
        frame_count: frames,
        interval_ms: 50,
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut out = protocol::scrnseq::Writer::new(file, header).unwrap();
    let mut frame = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let v = if (x / 6 + y / 11) % 4 == 0 && y % 11 < 8 {
                40
            } else {
                235
            };
            frame[(y * w + x) * 4..(y * w + x) * 4 + 3].copy_from_slice(&[v, v, v]);
        }
    }
    for t in 0..frames as usize {
        for y in 70..250 {
            for x in 100..380 {
                let o = (y * w + x) * 4;
                frame[o] = ((x + 3 * t) % 256) as u8 ^ ((x * 7 + y * 13 + t) % 6) as u8;
                frame[o + 1] = ((2 * y + 5 * t) % 256) as u8;
                frame[o + 2] = (((x + y) / 2 + 7 * t) % 256) as u8;
            }
        }
        out.push(t as u32 * 50, &frame).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn a_moving_picture_travels_as_video_and_the_session_ends_exact() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("moving.scrn");
    write_moving_picture(&corpus, 40);
    let relay = Relay::start(dir.path(), &[]);
    let source = format!("corpus:{}", corpus.display());
    // Paced as recorded (50 ms a frame), as a live screen would be.
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--report-updates"]);
    let mut tech = start_technician(&relay, &code, &["--report-updates"]);
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let sent = agent.events("update_sent");
    let video = sent
        .iter()
        .filter(|u| u["video"].as_u64().unwrap() > 0)
        .count();
    assert!(
        video >= sent.len() / 3,
        "{video} of {} updates carried video\n{}",
        sent.len(),
        agent.transcript()
    );
    assert_eq!(tech.events("update").len(), sent.len());
    // The last update refines the picture: the technician ends on the exact last frame, and
    // so does the replay of the session log.
    let last = frame_hashes(&corpus).last().unwrap().clone();
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(ended["sha256"].as_str().unwrap(), last);
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(tests::verify_log(&log).0, 0);
    assert_eq!(tests::replayed_end_sha256(&log), last);
}
