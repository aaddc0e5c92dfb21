//! A live session outlives its relay: the relay is SIGKILLed mid-session and started again in
//! place (same port, same data directory), and agent and technician resume the same session
//! through it, proving to each other that they are its two ends, with screen and input flowing
//! again and the technician's session log going on with a record of the loss and the resume.

use std::time::{Duration, Instant};

use tests::{data, frame_hashes, start_agent, start_technician, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(60);

/// How soon after the kill the session must be back (issue: within 5 s).
const RESUMED_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn a_session_resumes_through_its_relay_restarted_in_place_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let corpus = data("idle-clock.scrn");
    let source = format!("corpus:{}", corpus.display());
    let record = dir.path().join("input.jsonl");
    let input = format!("record:{}", record.display());
    // The script waits past the kill and the resume, then works the mouse and keyboard.
    let script_path = dir.path().join("script.txt");
    let script = "wait 6000\nmove 10 20\nclick left\ntype after the resume\nwait 1000\nend\n";
    std::fs::write(&script_path, script).unwrap();
    // Slow enough that the clock still moves after the resume.
    let (mut agent, code) = start_agent(
        &relay,
        &["--source", &source, "--speed", "0.25", "--input", &input],
    );
    let mut tech = start_technician(
        &relay,
        &code,
        &[
            "--report-updates",
            "--hash-frames",
            "--input-script",
            script_path.to_str().unwrap(),
        ],
    );
    tech.wait_event("update", PROMPT);
    let hashes = frame_hashes(&corpus);

    // SIGKILL: no goodbye to anyone, the session's state on the relay gone with the process.
    let addr = relay.addr.clone();
    relay.proc.signal(libc::SIGKILL);
    let killed = Instant::now();
    drop(relay);
    let again = Relay::start_at(&addr, dir.path(), &[]);

    tech.wait_event("link_lost", PROMPT);
    let resumed = tech.wait_event("link_resumed", PROMPT);
    let took = killed.elapsed();
    assert!(
        took <= RESUMED_WITHIN,
        "resumed {took:?} after the kill\n{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    assert_eq!(resumed["relay"], addr.as_str());
    agent.wait_event("link_lost", PROMPT);
    agent.wait_event("link_resumed", PROMPT);

    // The screen flows again: an update after the resume shows a frame of the recording.
    tech.wait_event_after("link_resumed", "update", PROMPT, |_| true);
    // The figure a person would ask for: how long the screen stood still.
    eprintln!(
        "relay restarted in place: link back {took:?} after the kill, first update after it {:?} after the kill",
        killed.elapsed()
    );
    let after = tech.wait_event_after("link_resumed", "update", PROMPT, |u| {
        u["sha256"].as_str().is_some_and(|s| !s.is_empty())
    });
    let sha = after["sha256"].as_str().unwrap().to_string();
    assert!(
        hashes.contains(&sha),
        "the screen after the resume is no frame of the recording"
    );

    // Input still works: the script's events all arrived, in order, after the resume.
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert_eq!(
        agent.wait_event("ended", PROMPT)["reason"],
        "TechnicianEnded"
    );
    tests::assert_script_input_arrived(script, &record);

    // The log verifies whole, and says the link was lost and resumed through the relay.
    let log = tests::log_with_one_resume(&mut tech, &addr);
    // And it replays to a frame of the recording, through the resume.
    assert!(hashes.contains(&tests::replayed_end_sha256(&log)));
    drop(again);
}
