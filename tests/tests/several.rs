//! Several technicians in one session, with the real relay, agent and technician programs: an
//! escalation taken while the first technician is still there passes control once the user
//! agrees, and the first stays to observe (their input never reaches the screen), each one's chat
//! reaching the user and the other; a user who
//! turns the next technician away keeps the first; a lead monitors a session, takes over, hands
//! control back, and takes it again when the technician holding it is killed; the desk's
//! overflow moves a request that waited too long into the next tier's queue.
//!
//! The agent records the input it injects (`--input record:FILE`), so the tests see exactly what
//! reached the screen, and from whom (each technician types its own words).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tests::desk::{
    log_in_as, log_in_at, log_text, recorded_log, request_help, take_next, technician,
    technician_at, At,
};
use tests::{Proc, Relay, PROMPT};

/// Long enough for a session's steps on a loaded machine: the corpus plays for over a minute.
const SLOW: &str = "0.05";

/// The text typed into the agent's screen so far, as its input sink recorded it.
fn typed(sink: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(sink) else {
        return String::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["Key"]["down"] == true)
        .filter_map(|v| v["Key"]["text"].as_str().map(String::from))
        .collect()
}

/// The first event of `proc` (printed so far, or within [`PROMPT`]) for which `pick` holds.
fn first_event(proc: &mut Proc, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let line = proc.wait_line(PROMPT, what, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| pick(&v))
    });
    serde_json::from_str(&line).unwrap()
}

/// The first event `event` about technician `name`.
fn event_about(proc: &mut Proc, event: &str, name: &str) -> Value {
    first_event(proc, &format!("{event} about {name}"), |v| {
        v["event"] == event && v["technician"] == name
    })
}

/// A relay, Tom (tier 1) and `second` (logged in with `extra`), and an agent asking for help
/// that asks the user (on its standard input) and records the input it injects.
struct Desk {
    dir: tempfile::TempDir,
    relay: Relay,
    tom: String,
    second: String,
    agent: Proc,
    sink: std::path::PathBuf,
}

fn desk(relay_args: &[&str], second: (&str, u8, &[&str])) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), relay_args);
    let tom = log_in_as(&relay, dir.path(), "tom", 1, &[]);
    let (name, tier, extra) = second;
    let second = log_in_as(&relay, dir.path(), name, tier, extra);
    let sink = dir.path().join("input.jsonl");
    let input = format!("record:{}", sink.display());
    // A technician killed mid-session is given up after a second of trying to resume its link
    // (then control passes on, as the desk asks).
    let mut agent = request_help(
        &relay,
        "ask",
        &["--speed", SLOW, "--input", &input, "--resume-secs", "1"],
    );
    agent.wait_event("queued", PROMPT);
    Desk {
        dir,
        relay,
        tom,
        second,
        agent,
        sink,
    }
}

/// Tom takes the request and plays `script`, the user lets him in: his process and the
/// session's identifier.
fn tom_takes_it(
    relay: &Relay,
    dir: &Path,
    tom: &str,
    agent: &mut Proc,
    script: &str,
) -> (Proc, String) {
    let mut first = take_next(relay, dir, tom, script, &[]);
    event_about(agent, "consent_request", "tom");
    agent.send_line("c");
    let session = first.wait_event("paired", PROMPT)["session"]
        .as_str()
        .expect("the session's identifier")
        .to_string();
    (first, session)
}

#[test]
fn an_escalation_taken_live_passes_control_once_the_user_agrees_and_the_first_only_observes() {
    let Desk {
        dir,
        relay,
        tom,
        second: ana,
        mut agent,
        sink,
    } = desk(&[], ("ana", 2, &[]));

    // Tom takes the request, types, escalates it and stays until Ana holds control; then he
    // types again (he only observes by then) and leaves.
    let mut first = take_next(
        &relay,
        dir.path(),
        &tom,
        "wait-control me 30000\ntype tom\nescalate 2 the driver needs an administrator\n\
         wait-control ana 60000\nchat over to you, Ana\ntype observer\nwait 2000\nend\n",
        &[],
    );
    event_about(&mut agent, "consent_request", "tom");
    agent.send_line("c");
    let passed = first.wait_event("request_passed", PROMPT);
    assert_eq!(passed["words"], "escalated to tier 2", "{passed}");

    // Ana takes it with Tom's note and joins the session that is still running.
    let mut second = take_next(
        &relay,
        dir.path(),
        &ana,
        "wait-control me 30000\nchat thanks, Tom\ntype ana\nwait 2000\nresolve reinstalled the driver\n",
        &[],
    );
    let request = second.wait_event("request", PROMPT);
    assert_eq!(request["request"]["handoff"]["by"], "tom", "{request}");
    assert_eq!(
        request["request"]["handoff"]["note"], "the driver needs an administrator",
        "{request}"
    );
    // The user is asked about Ana, and told why she comes.
    let asked = event_about(&mut agent, "consent_request", "ana");
    assert_eq!(asked["joining"], "escalation", "{asked}");
    assert_eq!(typed(&sink), "tom", "only Tom has typed so far");
    agent.send_line("c");

    // Control passes to Ana; Tom is told he observes.
    let control = event_about(&mut agent, "control", "ana");
    assert_eq!(control["from"], "tom", "{control}");
    let tom_told = event_about(&mut first, "control", "ana");
    assert_eq!(tom_told["me"], false, "{tom_told}");
    assert!(first.wait_exit(PROMPT).success(), "{}", first.transcript());
    let closed = second.wait_event("request_passed", PROMPT);
    assert_eq!(closed["words"], "closed as resolved", "{closed}");
    assert!(
        second.wait_exit(PROMPT).success(),
        "{}",
        second.transcript()
    );
    agent.wait_event("request_closed", PROMPT);
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());

    // Tom's words as an observer never reached the screen; the agent counted them.
    assert_eq!(typed(&sink), "tomana", "{}", agent.transcript());
    let dropped = agent
        .events("input_dropped")
        .into_iter()
        .rfind(|e| e["technician"] == "tom" && e["final"] == true)
        .unwrap_or_else(|| panic!("no dropped input of tom's\n{}", agent.transcript()));
    assert!(dropped["count"].as_u64().unwrap() >= 16, "{dropped}");

    // Each technician's chat reached the user and the other technician, named by the agent.
    let from = |p: &Proc, who: &str| -> Vec<String> {
        p.events("chat")
            .into_iter()
            .filter(|e| e["from"] == "technician" && e["technician"] == who)
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        from(&agent, "tom"),
        ["over to you, Ana"],
        "{}",
        agent.transcript()
    );
    assert_eq!(
        from(&agent, "ana"),
        ["thanks, Tom"],
        "{}",
        agent.transcript()
    );
    assert_eq!(
        from(&second, "tom"),
        ["over to you, Ana"],
        "{}",
        second.transcript()
    );
    assert_eq!(
        from(&first, "ana"),
        ["thanks, Tom"],
        "{}",
        first.transcript()
    );

    // Both logs say who joined and who held control.
    let tom_text = log_text(&recorded_log(&mut first));
    assert!(
        tom_text.contains("technician joined: ana (tier 2)"),
        "{tom_text}"
    );
    assert!(tom_text.contains("control passed to ana"), "{tom_text}");
    assert!(tom_text.contains("thanks, Tom"), "{tom_text}");
    let ana_text = log_text(&recorded_log(&mut second));
    assert!(
        ana_text.contains("taken after tom escalated it"),
        "{ana_text}"
    );
    assert!(
        ana_text.contains("control passed to this technician"),
        "{ana_text}"
    );
    assert!(
        ana_text.contains("technician joined: tom (tier 1)"),
        "{ana_text}"
    );
}

#[test]
fn a_user_who_turns_the_next_technician_away_keeps_the_first() {
    let Desk {
        dir,
        relay,
        tom,
        second: ana,
        mut agent,
        sink,
    } = desk(&[], ("ana", 2, &[]));
    // Tom escalates, then works on; he types well after Ana has been turned away.
    let mut first = take_next(
        &relay,
        dir.path(),
        &tom,
        "wait-control me 30000\nescalate 2 the driver needs an administrator\nwait 8000\n\
         type still tom\nwait 500\nend\n",
        &[],
    );
    event_about(&mut agent, "consent_request", "tom");
    agent.send_line("c");
    first.wait_event("request_passed", PROMPT);
    let mut second = take_next(
        &relay,
        dir.path(),
        &ana,
        "wait-control me 30000\ntype ana\n",
        &[],
    );
    event_about(&mut agent, "consent_request", "ana");
    agent.send_line("d");
    let ended = second.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "ConsentDenied", "{ended}");
    second.wait_exit(PROMPT);
    assert_eq!(
        typed(&sink),
        "",
        "Tom had not typed yet when Ana was turned away"
    );

    // The session goes on with Tom in control.
    assert!(first.wait_exit(PROMPT).success(), "{}", first.transcript());
    assert_eq!(typed(&sink), "still tom", "{}", agent.transcript());
    assert!(
        agent
            .events("control")
            .iter()
            .all(|c| c["technician"] != "ana"),
        "{}",
        agent.transcript()
    );
    // The request is still escalated: once Tom has left, the agent waits in tier 2's queue.
    first_event(&mut agent, "queued again", |v| {
        v["event"] == "queued" && v["again"] == true
    });
}

#[test]
fn a_lead_monitors_takes_over_hands_back_and_takes_control_when_its_holder_is_killed() {
    let Desk {
        dir,
        relay,
        tom,
        second: lena,
        mut agent,
        sink,
    } = desk(
        &["--idle-timeout-ms", "3000"],
        ("lena", 1, &["--role", "lead"]),
    );
    let (first, session) = tom_takes_it(
        &relay,
        dir.path(),
        &tom,
        &mut agent,
        "wait-control me 30000\nwait-control lena 60000\nwait-control me 60000\ntype back\n\
         wait 120000\n",
    );

    // A technician who is not a lead may not monitor.
    let mut refused = technician(
        &relay,
        dir.path(),
        &tom,
        &["monitor", &session],
        "end\n",
        &[],
    );
    assert!(!refused.wait_exit(PROMPT).success());
    assert!(
        refused
            .transcript()
            .contains("only leads and administrators"),
        "{}",
        refused.transcript()
    );

    let mut lead = technician(
        &relay,
        dir.path(),
        &lena,
        &["monitor", &session],
        "takeover\nwait-control me 30000\ntype lead\nhandover tom\nwait-control tom 30000\n\
         wait-control me 60000\ntype again\nwait 500\nend\n",
        &[],
    );
    let asked = event_about(&mut agent, "consent_request", "lena");
    assert_eq!(asked["joining"], "monitor", "{asked}");
    agent.send_line("c");
    let why = |v: &Value, name: &str, words: &str| {
        v["event"] == "control"
            && v["technician"] == name
            && v["why"].as_str().is_some_and(|w| w.contains(words))
    };
    first_event(&mut agent, "lena takes over", |v| {
        why(v, "lena", "took over")
    });
    first_event(&mut agent, "lena hands back", |v| {
        why(v, "tom", "handed it over")
    });
    assert!(
        tests::x11::wait_until(PROMPT, || typed(&sink) == "leadback"),
        "typed: {:?}\n{}",
        typed(&sink),
        agent.transcript()
    );

    // Tom's machine dies: control passes to Lena, the one left who may have it.
    first.signal(libc::SIGKILL);
    first_event(&mut agent, "control passed on", |v| {
        why(v, "lena", "tom left")
    });
    assert!(lead.wait_exit(PROMPT).success(), "{}", lead.transcript());
    assert_eq!(typed(&sink), "leadbackagain", "{}", agent.transcript());
    let lena_text = log_text(&recorded_log(&mut lead));
    assert!(
        lena_text.contains("technician left: tom (tier 1)"),
        "{lena_text}"
    );
}

/// A request that waits longer than its tier allows overflows into the next tier's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_too_long_overflows_into_the_next_tier() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tests::relay_config(dir.path(), "[desk.tier1]\noverflow_after_secs = 1\n");
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut agent = link::RelayConnection::connect(
        &relay.addr,
        relay.fingerprint(),
        protocol::control::Role::Agent,
    )
    .await
    .unwrap();
    let queued = agent
        .file_request(protocol::control::RequestFiling {
            description: "no mail".into(),
            machine: "pc-3".into(),
            os: "Debian 12".into(),
            ticket: None,
        })
        .await
        .unwrap();
    let mut ana = relay.technician_connection_as("ana", 2).await;
    ana.watch_queue().await.unwrap();
    let tiers = tokio::time::timeout(PROMPT, async {
        let mut seen = Vec::new();
        loop {
            let (queue, _) = ana.next_queue().await.unwrap();
            if let Some(e) = queue.iter().find(|e| e.id == queued.request) {
                if seen.last() != Some(&e.tier) {
                    seen.push(e.tier);
                }
                if e.tier == 2 {
                    return seen;
                }
            }
        }
    })
    .await
    .expect("the request overflowed into tier 2");
    assert_eq!(tiers.last(), Some(&2));
    // A tier-1 technician no longer sees it.
    let mut tess = relay.technician_connection_as("tess", 1).await;
    tess.watch_queue().await.unwrap();
    let (queue, _) = tess.next_queue().await.unwrap();
    assert!(queue.iter().all(|e| e.id != queued.request), "{queue:?}");
}

/// Frames a second the noise window paints.
const NOISE_FPS: u32 = 10;

/// How long each update rate is measured.
const WINDOW: Duration = Duration::from_secs(4);

/// Updates `tech` applied during `WINDOW`, a second: `others` are read meanwhile too (their
/// output waits until read), and their counts returned likewise.
fn rates(tech: &mut Proc, others: &mut [&mut Proc]) -> (f64, Vec<f64>) {
    for o in others.iter_mut() {
        o.wait_exit_or(Duration::ZERO);
    }
    tech.wait_exit_or(Duration::ZERO);
    let before = tech.events("update").len();
    let others_before: Vec<usize> = others.iter().map(|o| o.events("update").len()).collect();
    assert!(
        tech.wait_exit_or(WINDOW).is_none(),
        "{} ended\n{}",
        tech.name(),
        tech.transcript()
    );
    let secs = WINDOW.as_secs_f64();
    let rate = (tech.events("update").len() - before) as f64 / secs;
    let other_rates = others
        .iter_mut()
        .zip(others_before)
        .map(|(o, b)| {
            o.wait_exit_or(Duration::ZERO);
            (o.events("update").len() - b) as f64 / secs
        })
        .collect();
    (rate, other_rates)
}

/// Two technicians see one screen of noise repainted ten times a second: Tom beside the relay,
/// Lena (a lead monitoring) over a link throttled to 4 Mbit/s, far less than the screen needs.
/// Each viewer has its own encoder and credit, so Lena's slow link slows only Lena: Tom's update
/// rate with her there stays near his rate alone.
#[test]
fn a_throttled_viewer_does_not_lower_the_other_viewers_update_rate() {
    let net = std::sync::Arc::new(
        harness::Network::start(harness::Shape::CLEAN, harness::Shape::rate(4000))
            .unwrap_or_else(|e| panic!("cannot build the test network: {e:#}")),
    );
    let dir = tempfile::tempdir().unwrap();
    let x = tests::x11::Xvfb::start(640, 480);
    let _noise = x.noise_window(100, 100, 256, 256, NOISE_FPS);
    let relay = Relay::start_in(net, dir.path(), &["--allow-no-record"]);
    let (ns, peer_args) = relay.beside();
    let near = At { ns, peer_args };
    let far = At {
        ns: relay.netns_of(harness::Side::Technician),
        peer_args: relay.peer_args_on(harness::Side::Technician),
    };
    let tom = log_in_at(&relay, &near, dir.path(), "tom", 1, &[]);
    let lena = log_in_at(&relay, &far, dir.path(), "lena", 1, &["--role", "lead"]);
    let mut args = relay.peer_args_on(harness::Side::Agent);
    args.extend(
        [
            "--json",
            "--consent",
            "control",
            "--request",
            "the screen flickers",
            "--source",
            "x11",
            "--lossless",
            "--input",
            "drop",
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_in(
        relay.netns_of(harness::Side::Agent),
        "agent",
        &refs,
        &[("DISPLAY", &x.display)],
        false,
    );
    agent.wait_event("queued", PROMPT);
    let watch = ["--report-updates", "--no-record"];
    let mut near_tech = technician_at(
        &near,
        dir.path(),
        &tom,
        &["take", "--next"],
        "wait 600000\n",
        &watch,
    );
    let session = near_tech.wait_event("paired", PROMPT)["session"]
        .as_str()
        .expect("the session's identifier")
        .to_string();
    near_tech.wait_event("update", PROMPT);
    let (alone, _) = rates(&mut near_tech, &mut []);

    let mut far_tech = technician_at(
        &far,
        dir.path(),
        &lena,
        &["monitor", &session],
        "wait 600000\n",
        &watch,
    );
    far_tech.wait_event("update", PROMPT);
    let (together, far_rates) = rates(&mut near_tech, &mut [&mut far_tech]);
    let far_rate = far_rates[0];
    eprintln!(
        "updates a second: Tom alone {alone:.1}, Tom with Lena there {together:.1}, Lena over \
         4 Mbit/s {far_rate:.1} (the screen changes {NOISE_FPS} times a second)"
    );
    assert!(
        alone >= f64::from(NOISE_FPS) / 2.0,
        "Tom alone got {alone:.1} updates a second\n{}",
        agent.transcript()
    );
    assert!(
        far_rate < together / 2.0,
        "the throttled link did not hold Lena back ({far_rate:.1} against {together:.1} a \
         second): the test shows nothing"
    );
    assert!(
        together >= alone * 0.7,
        "Tom's updates fell from {alone:.1} to {together:.1} a second with Lena there"
    );
    drop(far_tech);
    drop(near_tech);
    drop(agent);
}

#[test]
fn only_the_technician_in_control_switches_monitors_and_the_others_are_told_why() {
    let Desk {
        dir,
        relay,
        tom,
        second: lena,
        mut agent,
        ..
    } = desk(&[], ("lena", 1, &["--role", "lead"]));
    let (first, session) = tom_takes_it(&relay, dir.path(), &tom, &mut agent, "wait 120000\n");
    let mut lead = technician(
        &relay,
        dir.path(),
        &lena,
        &["monitor", &session],
        "monitor all\nend\n",
        &[],
    );
    event_about(&mut agent, "consent_request", "lena");
    agent.send_line("c");
    assert!(!lead.wait_exit(PROMPT).success(), "{}", lead.transcript());
    let refused = lead.wait_event("monitor_refused", PROMPT);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("only the technician who holds control"),
        "{refused}"
    );
    drop(first);
}
