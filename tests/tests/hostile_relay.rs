//! The peer plane against a hostile relay: the real relay with a tap (`hostile-relay`) that
//! records every peer-plane byte it forwards and, by flag, alters, replays, drops or injects.
//! The relay must learn neither the screen nor the typed text, and every meddling must end the
//! session on both sides with words that say what happened, with no forged or replayed input
//! reaching the agent's input sink. And the code's secret part: a wrong one fails on both sides,
//! and the code is spent after it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::input::InputEvent;
use protocol::peer::PeerMessage;
use protocol::sessionlog::{LogReader, Record};
use serde_json::Value;
use tests::{data, frame_hashes, start_agent, start_technician, Proc, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(120);

/// Text the technician types: it must not show in what the relay forwarded.
const TYPED: &str = "correct horse battery staple";

/// The input script of every session here. The first input event is the move: the tampering
/// modes aim at it.
fn script_text() -> String {
    format!("move 300 300\nwait 100\ntype {TYPED}\\n\nkey ctrl+alt+t\nmove 310 320\nclick left\n")
}

fn script_events() -> Vec<InputEvent> {
    technician::script::parse(&script_text(), "test")
        .unwrap()
        .iter()
        .flat_map(|s| technician::script::events(&s.action))
        .collect()
}

/// A hostile relay tampering by `mode`, recording into `dir/relay.bin`.
fn hostile(dir: &Path, mode: &str) -> (Relay, PathBuf) {
    let record = dir.join("relay.bin");
    let relay = Relay::start_program(
        "hostile-relay",
        dir,
        &["--record", record.to_str().unwrap(), "--tamper", mode],
    );
    (relay, record)
}

/// A session through `relay`: the agent shares `corpus` at `speed` and records input to
/// `dir/input.jsonl`; the technician plays the script. Returns both, exited.
fn session(relay: &Relay, dir: &Path, corpus: &str, speed: &str) -> (Proc, Proc) {
    let script = dir.join("script.txt");
    std::fs::write(&script, script_text()).unwrap();
    let source = format!("corpus:{}", data(corpus).display());
    let input = format!("record:{}", dir.join("input.jsonl").display());
    let (mut agent, code) = start_agent(
        relay,
        &["--source", &source, "--speed", speed, "--input", &input],
    );
    let mut tech = start_technician(
        relay,
        &code,
        &[
            "--report-updates",
            "--input-script",
            script.to_str().unwrap(),
        ],
    );
    tech.wait_exit(SESSION);
    agent.wait_exit(PROMPT);
    (agent, tech)
}

/// The input events the agent's sink received, without the final release.
fn injected(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("input.jsonl")).unwrap_or_default();
    let mut events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.pop().as_ref().and_then(Value::as_str),
        Some("ReleaseAll"),
        "held input is released when the session ends: {events:?}"
    );
    events
}

/// Finds which of `needles` (each at least 8 bytes) occur in `haystack`: an index of the
/// needles by their first 8 bytes, and one pass over the haystack.
fn occurring<'a>(haystack: &[u8], needles: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
    let mut by_prefix: HashMap<[u8; 8], Vec<&[u8]>> = HashMap::new();
    for n in needles {
        assert!(
            n.len() >= 8,
            "needles of fewer than 8 bytes match by chance"
        );
        by_prefix
            .entry(n[..8].try_into().unwrap())
            .or_default()
            .push(n);
    }
    let mut found = HashSet::new();
    for i in 0..haystack.len().saturating_sub(7) {
        let key: [u8; 8] = haystack[i..i + 8].try_into().unwrap();
        if let Some(candidates) = by_prefix.get(&key) {
            for n in candidates {
                if haystack[i..].starts_with(n) {
                    found.insert(*n);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// 64-byte runs of BGRA from every frame of a corpus file, at most `per_frame` a frame, each
/// with at least 6 distinct byte values (a run of background colour proves nothing).
fn pixel_runs(path: &Path, per_frame: usize) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut r = protocol::scrnseq::Reader::new(std::io::BufReader::new(file)).unwrap();
    let mut runs = Vec::new();
    while let Some((_, frame)) = r.next_frame().unwrap() {
        let mut taken = 0;
        let mut at = 0;
        while taken < per_frame && at + 64 <= frame.len() {
            let run = &frame[at..at + 64];
            if run.iter().collect::<HashSet<_>>().len() >= 6 {
                runs.push(run.to_vec());
                taken += 1;
                at += 64 * 1024;
            } else {
                at += 64;
            }
        }
    }
    runs
}

/// 64-byte runs of the coded screen updates (the compressed tile data exactly as the agent
/// sent it, as the technician's session log holds it): in the clear they would be in the
/// relay's recording byte for byte.
fn update_runs(log: &str) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(log).unwrap();
    let mut reader = LogReader::new(std::io::BufReader::new(file)).unwrap();
    let mut runs = Vec::new();
    while let Some(raw) = reader.next_record().unwrap() {
        if let Ok(Record::ScreenUpdate(u)) = raw.decode() {
            for chunk in u.tile_data.chunks_exact(64).step_by(16) {
                runs.push(chunk.to_vec());
            }
        }
    }
    runs
}

#[test]
fn the_relay_sees_neither_the_screen_nor_the_typed_text() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, record) = hostile(dir.path(), "none");
    let (mut agent, mut tech) = session(&relay, dir.path(), "typing.scrn", "0.5");
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert!(tech.wait_exit(PROMPT).success(), "{}", tech.transcript());
    // The tap forwarded faithfully: the session is whole, bit-exact, every input arrived.
    let corpus = data("typing.scrn");
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "SourceFinished", "{ended}");
    assert_eq!(
        ended["sha256"].as_str().unwrap(),
        frame_hashes(&corpus).last().unwrap()
    );
    let expected: Vec<Value> = script_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(injected(dir.path()), expected);

    let seen = std::fs::read(&record).unwrap();
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let updates = update_runs(&log);
    let sent_bytes: u64 = tech
        .events("update")
        .iter()
        .map(|u| u["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        seen.len() as u64 > sent_bytes,
        "the relay recorded {} bytes, less than the {sent_bytes} bytes of screen updates",
        seen.len()
    );
    assert!(
        updates.len() > 20,
        "only {} runs of update data",
        updates.len()
    );

    // The search itself works: in the clear, the same traffic would show every run looked for.
    let mut clear: Vec<u8> = updates.concat();
    for e in script_events() {
        clear.extend_from_slice(&protocol::wire::encode_frame(&PeerMessage::Input(e)));
    }

    // Nothing of the screen: neither pixels nor the coded updates.
    let pixels = pixel_runs(&corpus, 40);
    assert!(pixels.len() > 1000, "only {} pixel runs", pixels.len());
    let found = occurring(&seen, &pixels);
    assert!(found.is_empty(), "{} pixel runs in the clear", found.len());
    let found = occurring(&seen, &updates);
    assert!(
        found.is_empty(),
        "{} runs of screen updates in the clear",
        found.len()
    );

    // Nothing of the input: neither the text nor any event as the peer message it travels in.
    let typed = [TYPED.as_bytes().to_vec()];
    assert!(
        occurring(&seen, &typed).is_empty(),
        "the typed text is in the clear"
    );
    let messages: Vec<Vec<u8>> = script_events()
        .into_iter()
        .map(|e| protocol::wire::encode_frame(&PeerMessage::Input(e))[4..].to_vec())
        .filter(|m| m.len() >= 8)
        .collect();
    assert!(
        messages.len() > 10,
        "only {} input messages to look for",
        messages.len()
    );
    assert_eq!(
        occurring(&clear, &messages).len(),
        messages.iter().collect::<HashSet<_>>().len()
    );
    assert_eq!(
        occurring(&clear, &updates).len(),
        updates.iter().collect::<HashSet<_>>().len()
    );
    let found = occurring(&seen, &messages);
    assert!(
        found.is_empty(),
        "{} input messages in the clear",
        found.len()
    );
}

/// A session through a relay tampering by `mode`; both sides must fail, each with `words` in
/// its `ended` message. Returns what the agent's input sink received.
fn tampered(mode: &str, words: &str) -> Vec<Value> {
    tampered_with(mode, words, "idle-clock.scrn")
}

fn tampered_with(mode: &str, words: &str, corpus: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let (relay, _record) = hostile(dir.path(), mode);
    // A slow source keeps the session open while the script plays.
    let (mut agent, mut tech) = session(&relay, dir.path(), corpus, "0.5");
    for p in [&mut agent, &mut tech] {
        let status = p.wait_exit(PROMPT);
        assert!(
            !status.success(),
            "{} should fail\n{}",
            p.name(),
            p.transcript()
        );
        let ended = p.wait_event("ended", PROMPT);
        let message = ended["message"].as_str().unwrap();
        assert!(
            message.contains(words),
            "{}: `{message}` does not say `{words}`\n{}",
            p.name(),
            p.transcript()
        );
    }
    injected(dir.path())
}

/// The agent received only events the technician sent, in order, each once.
fn assert_prefix_of_script(got: &[Value]) {
    let expected: Vec<Value> = script_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert!(
        got.len() <= expected.len() && got == &expected[..got.len()],
        "the agent injected events the technician did not send:\n{got:?}"
    );
}

#[test]
fn a_flipped_byte_in_a_screen_update_ends_the_session() {
    let got = tampered(
        "flip-update",
        "message failed authentication: the relay or network altered it",
    );
    assert_prefix_of_script(&got);
}

#[test]
fn a_screen_update_cut_short_ends_the_session() {
    let got = tampered(
        "truncate-update",
        "a stream was cut short or extended: the relay or network altered it",
    );
    assert_prefix_of_script(&got);
}

#[test]
fn a_dropped_screen_update_ends_the_session() {
    // The typing capture changes often, so updates after the dropped one come soon.
    let got = tampered_with(
        "drop-update",
        "a screen update is missing: the relay or network dropped update 2",
        "typing.scrn",
    );
    assert_prefix_of_script(&got);
}

#[test]
fn a_replayed_input_event_ends_the_session_and_is_not_injected() {
    let got = tampered(
        "replay-input",
        "a message was replayed: the relay or network sent it again",
    );
    assert_prefix_of_script(&got);
}

#[test]
fn a_dropped_input_event_ends_the_session() {
    let got = tampered(
        "drop-input",
        "a message is missing: the relay or network dropped or reordered messages",
    );
    assert_prefix_of_script(&got);
    // The move was withheld, and nothing after it may be injected out of order.
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_forged_input_event_ends_the_session_and_is_not_injected() {
    let got = tampered(
        "inject-input",
        "message failed authentication: the relay or network altered it",
    );
    assert_prefix_of_script(&got);
    let forged = serde_json::to_value(InputEvent::PointerMove { x: 777, y: 777 }).unwrap();
    assert!(!got.contains(&forged), "the forged event was injected");
}

/// `code` with its secret part changed in the last digit.
fn with_wrong_secret(code: &str) -> String {
    let (rendezvous, secret) = code.split_once('-').expect("a whole code");
    let mut digits: Vec<u8> = secret.bytes().collect();
    let last = digits.last_mut().unwrap();
    *last = b'0' + (*last - b'0' + 1) % 10;
    format!("{rendezvous}-{}", String::from_utf8(digits).unwrap())
}

#[test]
fn a_wrong_secret_fails_on_both_sides_and_spends_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, _record) = hostile(dir.path(), "none");
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    let input = format!("record:{}", dir.path().join("input.jsonl").display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--input", &input]);
    assert_eq!(code.len(), 14, "nine digits, a dash, four digits: {code}");

    let mut wrong = start_technician(&relay, &with_wrong_secret(&code), &[]);
    for p in [&mut agent, &mut wrong] {
        let status = p.wait_exit(PROMPT);
        assert!(
            !status.success(),
            "{} should fail\n{}",
            p.name(),
            p.transcript()
        );
        let err = p.wait_event("error", PROMPT);
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("the code did not match"),
            "{}: {message}",
            p.name()
        );
        assert!(
            p.stderr()
                .iter()
                .any(|l| l.contains("the code did not match")),
            "{} says so to a person too\n{}",
            p.name(),
            p.transcript()
        );
    }
    // Nothing was shared: no screen, no consent, no session start.
    assert!(agent.events("sharing").is_empty(), "{}", agent.transcript());
    assert!(
        wrong.events("session_start").is_empty(),
        "{}",
        wrong.transcript()
    );

    // The code is spent: the right secret now is refused by the relay.
    let mut right = start_technician(&relay, &code, &[]);
    assert!(!right.wait_exit(PROMPT).success(), "{}", right.transcript());
    let err = right.wait_event("error", PROMPT);
    assert!(
        err["message"].as_str().unwrap().contains("already used"),
        "{err}"
    );
}

#[test]
fn a_code_without_its_secret_part_is_refused_with_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut tech = start_technician(&relay, "123 456 789", &[]);
    assert!(!tech.wait_exit(PROMPT).success());
    let err = tech.wait_event("error", PROMPT);
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("nine digits, a dash and four more digits"),
        "{message}"
    );
}
