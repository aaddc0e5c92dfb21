//! The session's tools between real processes, without a display: chat goes both ways in the
//! order it was written, before the user answers too, and each message is in the technician's
//! session log as `technician log show` prints it.

use std::time::Duration;

use serde_json::Value;
use tests::{data, run, start_agent_asking, Proc, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(60);

/// Waits for a JSON event of `p` for which `pred` holds.
fn wait_for(p: &mut Proc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = p.wait_line(PROMPT, what, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
    });
    serde_json::from_str(&line).unwrap()
}

/// The texts of the `chat` events of `p` written by `from` (`user`, `me`, `technician`).
fn chats(p: &Proc, from: &str) -> Vec<String> {
    p.events("chat")
        .into_iter()
        .filter(|e| e["from"] == from)
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn chat_goes_both_ways_in_order_before_consent_too_and_is_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    // The agent asks its user (in its terminal, which the test types into).
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    let (mut agent, code) = start_agent_asking(&relay, &["--source", &source, "--speed", "0.2"]);
    // The technician introduces itself before the user answers, and says more once it sees the
    // screen.
    let script = dir.path().join("chat.txt");
    std::fs::write(
        &script,
        "chat Hello, this is the help desk.\nchat About your printer.\nwait 100\nchat I can see your screen now: é€ and a \\ttab\n",
    )
    .unwrap();
    let mut tech =
        tests::start_technician(&relay, &code, &["--input-script", script.to_str().unwrap()]);
    agent.wait_event("consent_request", PROMPT);
    wait_for(&mut agent, "the technician's second message", |v| {
        v["event"] == "chat" && v["text"] == "About your printer."
    });
    // The user asks who is calling before answering; the technician hears it while it waits.
    agent.send_line("> who is calling?");
    agent.send_line(">and why?");
    wait_for(&mut tech, "the user's second message", |v| {
        v["event"] == "chat" && v["text"] == "and why?"
    });
    assert!(
        tech.events("session_start").is_empty(),
        "nothing shared yet"
    );
    agent.send_line("c");
    wait_for(&mut agent, "the technician's third message", |v| {
        v["event"] == "chat"
            && v["from"] == "technician"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("I can see"))
    });
    for i in 1..=5 {
        agent.send_line(&format!("> line {i}"));
    }
    wait_for(&mut tech, "the user's fifth line", |v| {
        v["event"] == "chat" && v["text"] == "line 5"
    });
    agent.send_line("q");
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());

    let from_technician = [
        "Hello, this is the help desk.",
        "About your printer.",
        "I can see your screen now: é€ and a \ttab",
    ];
    let from_user = [
        "who is calling?",
        "and why?",
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "line 5",
    ];
    // Each end in the order written; the agent names the technician as the relay vouched.
    let got: Vec<String> = agent
        .events("chat")
        .into_iter()
        .filter(|e| e["from"] == "technician")
        .map(|e| {
            assert_eq!(e["technician"], tests::TECHNICIAN);
            e["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, from_technician);
    assert_eq!(chats(&agent, "user"), from_user);
    assert_eq!(chats(&tech, "user"), from_user);
    assert_eq!(chats(&tech, "me"), from_technician);

    // The log has every message, in order, with who wrote it.
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = run("technician", &["log", "show", "--json", &log], "");
    assert!(shown.status.success(), "{}", shown.stderr);
    let logged: Vec<(String, String)> = shown
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "chat")
        .map(|v| {
            let from = match &v["record"]["from"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (from, v["record"]["text"].as_str().unwrap().to_string())
        })
        .collect();
    let expected: Vec<(String, String)> = from_technician[..2]
        .iter()
        .map(|t| ("Recorder".to_string(), t.to_string()))
        .chain(
            from_user[..2]
                .iter()
                .map(|t| ("User".to_string(), t.to_string())),
        )
        .chain([("Recorder".to_string(), from_technician[2].to_string())])
        .chain(
            from_user[2..]
                .iter()
                .map(|t| ("User".to_string(), t.to_string())),
        )
        .collect();
    assert_eq!(logged, expected);
    // And in words.
    let words = run("technician", &["log", "show", &log], "");
    assert!(
        words.stdout.contains("chat from the user: who is calling?"),
        "{}",
        words.stdout
    );
}
