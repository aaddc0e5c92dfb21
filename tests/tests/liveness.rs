//! Departures and restarts: a killed peer's silence is reported to the other within a second
//! or two, its departure at the relay's idle timeout, after which the other tries to resume the
//! session for as long as it is told (`--resume-secs`) and then ends; a killed relay is noticed
//! at once; a relay told to stop tells its peers; a restarted relay keeps its certificate.

use std::time::{Duration, Instant};

use tests::{data, start_agent, start_technician, Proc, Relay, PROMPT};

fn long_source() -> String {
    // 80 frames at a tenth of the speed: 40 s, longer than any of these tests.
    format!("corpus:{}", data("idle-clock.scrn").display())
}

/// Starts a session and waits until the technician has the screen.
fn session(relay: &Relay) -> (Proc, Proc) {
    let src = long_source();
    let resume = RESUME_SECS.as_secs().to_string();
    let (agent, code) = start_agent(
        relay,
        &["--source", &src, "--speed", "0.1", "--resume-secs", &resume],
    );
    let mut tech = start_technician(
        relay,
        &code,
        &["--report-updates", "--resume-secs", &resume],
    );
    tech.wait_event("update", PROMPT);
    (agent, tech)
}

/// The relay's idle timeout in these tests: a killed peer's silence is told after a second,
/// its departure after this.
const IDLE_TIMEOUT_MS: &str = "3000";
const IDLE_TIMEOUT: Duration = Duration::from_millis(3000);
/// Silence after which the partner is told (1 s), checked every 250 ms, with room for a busy
/// machine.
const TOLD_QUIET_WITHIN: Duration = Duration::from_millis(2000);
/// How long the ends of these sessions try to resume a lost link.
const RESUME_SECS: Duration = Duration::from_secs(1);

/// Waits for `proc`'s `link_lost` event and checks it came at the idle timeout, saying the other
/// end's connection was lost; then for the end of the session once resuming failed.
fn lost_at_the_idle_timeout_then_ended(proc: &mut Proc, killed: Instant) -> serde_json::Value {
    let lost = proc.wait_event("link_lost", Duration::from_secs(10));
    let after = killed.elapsed();
    eprintln!("told it left after {after:?}: {lost}");
    assert!(
        lost["why"]
            .as_str()
            .unwrap()
            .contains("connection was lost"),
        "{lost}"
    );
    assert!(
        after >= IDLE_TIMEOUT - Duration::from_millis(500)
            && after <= IDLE_TIMEOUT + Duration::from_secs(2),
        "told it left after {after:?}"
    );
    proc.wait_event("link_gone", RESUME_SECS + Duration::from_secs(5));
    let ended = proc.wait_event("ended", PROMPT);
    assert!(
        killed.elapsed() <= IDLE_TIMEOUT + RESUME_SECS + Duration::from_secs(4),
        "ended after {:?}",
        killed.elapsed()
    );
    ended
}

#[test]
fn killing_the_agent_tells_the_technician_at_once_and_ends_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--idle-timeout-ms", IDLE_TIMEOUT_MS]);
    let (agent, mut tech) = session(&relay);
    let killed = Instant::now();
    agent.signal(libc::SIGKILL);
    let quiet = tech.wait_event("peer_quiet", Duration::from_secs(5));
    let told = killed.elapsed();
    eprintln!("told quiet after {told:?}: {quiet}");
    assert!(told <= TOLD_QUIET_WITHIN, "told quiet after {told:?}");
    assert!(quiet["silent_ms"].as_u64().unwrap() >= 1000, "{quiet}");
    lost_at_the_idle_timeout_then_ended(&mut tech, killed);
    assert!(tech.events("peer_back").is_empty(), "{}", tech.transcript());
    assert!(!tech.wait_exit(PROMPT).success());
}

#[test]
fn killing_the_technician_tells_the_agent_at_once_and_ends_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--idle-timeout-ms", IDLE_TIMEOUT_MS]);
    let (mut agent, mut tech) = session(&relay);
    let log = tech.wait_event("recording", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let killed = Instant::now();
    tech.signal(libc::SIGKILL);
    agent.wait_event("peer_quiet", Duration::from_secs(5));
    let told = killed.elapsed();
    eprintln!("told quiet after {told:?}");
    assert!(told <= TOLD_QUIET_WITHIN, "told quiet after {told:?}");
    let ended = lost_at_the_idle_timeout_then_ended(&mut agent, killed);
    assert_eq!(ended["reason"], "PeerLeft", "{ended}");
    agent.wait_exit(PROMPT);
    // The killed technician's log is whole up to its last record: it ended early, untampered.
    let (code, text) = tests::verify_log(&log);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("ended early"), "{text}");
}

#[test]
fn killing_the_relay_is_noticed_by_both_at_once_and_ends_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--idle-timeout-ms", IDLE_TIMEOUT_MS]);
    let (mut agent, mut tech) = session(&relay);
    let killed = Instant::now();
    relay.proc.signal(libc::SIGKILL);
    for (who, p) in [("technician", &mut tech), ("agent", &mut agent)] {
        let quiet = p.wait_event("relay_quiet", Duration::from_secs(5));
        let told = killed.elapsed();
        eprintln!("{who} told the relay is quiet after {told:?}: {quiet}");
        assert!(told <= TOLD_QUIET_WITHIN, "{who}: after {told:?}");
    }
    // Both take the silence for a lost link, try to resume through a relay that is not there,
    // and end once their time for it is up.
    for (who, p) in [("technician", &mut tech), ("agent", &mut agent)] {
        p.wait_event("link_lost", Duration::from_secs(5));
        let gone = p.wait_event("link_gone", Duration::from_secs(10));
        let after = killed.elapsed();
        eprintln!("{who} gave up after {after:?}: {gone}");
        assert!(
            after <= link::resume::LOST_AFTER + RESUME_SECS + Duration::from_secs(3),
            "{who} gave up after {after:?}"
        );
    }
}

#[test]
fn stopping_the_relay_tells_peers_and_a_restart_keeps_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let first = relay.fingerprint.clone();
    let src = long_source();
    let (mut waiting, _code) = start_agent(&relay, &["--source", &src]);
    let (mut agent, mut tech) = session(&relay);

    relay.proc.signal(libc::SIGTERM);
    assert!(
        relay.proc.wait_exit(PROMPT).success(),
        "{}",
        relay.proc.transcript()
    );
    // The agent waiting for a technician is told and ends; the two in a session are told and
    // try to resume it (a relay restarted at once would take them back), then end.
    assert!(!waiting.wait_exit(PROMPT).success());
    let err = waiting.wait_event("error", PROMPT);
    assert!(
        err["message"].as_str().unwrap().contains("shutting down"),
        "{err}"
    );
    for p in [&mut agent, &mut tech] {
        let lost = p.wait_event("link_lost", PROMPT);
        assert!(
            lost["why"].as_str().unwrap().contains("shutting down"),
            "{}: {lost}",
            p.name()
        );
        p.wait_event("link_gone", PROMPT);
        p.wait_exit(PROMPT);
    }

    let again = Relay::start(dir.path(), &[]);
    assert_eq!(again.fingerprint, first);
    assert!(!again
        .proc
        .stdout()
        .iter()
        .any(|l| l.contains("new certificate")));
}
