//! Departures and restarts: a killed peer's silence is reported to the other within a second
//! or two, its departure at the relay's idle timeout; a relay told to stop tells its peers; a
//! restarted relay keeps its certificate.

use std::time::{Duration, Instant};

use tests::{data, start_agent, start_technician, Proc, Relay, PROMPT};

fn long_source() -> String {
    // 80 frames at a tenth of the speed: 40 s, longer than any of these tests.
    format!("corpus:{}", data("idle-clock.scrn").display())
}

/// Starts a session and waits until the technician has the screen.
fn session(relay: &Relay) -> (Proc, Proc) {
    let src = long_source();
    let (agent, code) = start_agent(relay, &["--source", &src, "--speed", "0.1"]);
    let mut tech = start_technician(relay, &code, &["--report-updates"]);
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
    let ended = tech.wait_event("ended", Duration::from_secs(10));
    let after = killed.elapsed();
    assert!(
        ended["message"]
            .as_str()
            .unwrap()
            .contains("connection was lost"),
        "{ended}"
    );
    eprintln!("told it left after {after:?}");
    assert!(
        after >= IDLE_TIMEOUT - Duration::from_millis(500)
            && after <= IDLE_TIMEOUT + Duration::from_secs(2),
        "told it left after {after:?}"
    );
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
    let ended = agent.wait_event("ended", Duration::from_secs(10));
    let after = killed.elapsed();
    assert_eq!(ended["reason"], "PeerLeft", "{ended}");
    assert!(
        ended["message"]
            .as_str()
            .unwrap()
            .contains("connection was lost"),
        "{ended}"
    );
    eprintln!("told it left after {after:?}");
    assert!(
        after >= IDLE_TIMEOUT - Duration::from_millis(500)
            && after <= IDLE_TIMEOUT + Duration::from_secs(2),
        "told it left after {after:?}"
    );
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
    // QUIC's idle timeout is the smaller of the two ends': the relay's here. The technician's
    // session ends; the agent reports the lost link as its error.
    for (who, p, event) in [
        ("technician", &mut tech, "ended"),
        ("agent", &mut agent, "error"),
    ] {
        let end = p.wait_event(event, Duration::from_secs(10));
        let after = killed.elapsed();
        assert!(end.to_string().contains("lost"), "{who}: {end}");
        eprintln!("{who} ended after {after:?}");
        assert!(
            after <= IDLE_TIMEOUT + Duration::from_secs(2),
            "{who} ended after {after:?}"
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
    for p in [&mut waiting, &mut agent, &mut tech] {
        assert!(!p.wait_exit(PROMPT).success());
        let err = p.wait_event("error", PROMPT);
        assert!(
            err["message"].as_str().unwrap().contains("shutting down"),
            "{}: {err}",
            p.name()
        );
    }

    let again = Relay::start(dir.path(), &[]);
    assert_eq!(again.fingerprint, first);
    assert!(!again
        .proc
        .stdout()
        .iter()
        .any(|l| l.contains("new certificate")));
}
