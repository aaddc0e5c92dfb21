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

    let steps = technician::script::parse(&script, "test").unwrap();
    let expected: Vec<serde_json::Value> = steps
        .iter()
        .flat_map(|s| technician::script::events(&s.action))
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let recorded: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, events) = recorded.split_last().expect("something was recorded");
    assert_eq!(
        last, "ReleaseAll",
        "held input is released when the session ends"
    );
    assert_eq!(events.len(), expected.len());
    assert_eq!(events, &expected[..]);
}
