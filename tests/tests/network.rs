//! Bad networks: the relay, the agent and the technician each in a network namespace of their
//! own (`harness::Network`), the peers' links shaped. A session over links that lose 10 % of
//! the datagrams each way ends bit-exact, every update on the way too; a session whose agent
//! loses its network for 5 s resumes and ends bit-exact.
//!
//! Needs root, iproute2 and nftables (`scripts/test` installs them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Network, Shape, Side};
use tests::{data, frame_hashes, start_agent, start_technician, Proc, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(180);

/// The outage the relay must ride out.
const OUTAGE: Duration = Duration::from_secs(5);

fn network(agent: Shape, technician: Shape) -> Arc<Network> {
    Arc::new(
        Network::start(agent, technician)
            .unwrap_or_else(|e| panic!("cannot build the test network: {e:#}")),
    )
}

/// The `event` events of `p` since its last `link_resumed` (all of them if it never resumed).
fn since_resume(p: &Proc, event: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = p
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let from = all
        .iter()
        .rposition(|v| v["event"] == "link_resumed")
        .map_or(0, |i| i + 1);
    all.into_iter()
        .skip(from)
        .filter(|v| v["event"] == event)
        .collect()
}

/// Checks that every update the agent sent (since the session was last resumed: what was on its
/// way when a link died is lost, and the resumed leg starts from a whole screen) was applied,
/// each leaving the technician's screen equal to the corpus frame it was made from, and that the
/// session ended on the last frame, recorded in a log that verifies.
fn assert_bit_exact(agent: &mut Proc, tech: &mut Proc, hashes: &[String]) {
    let sent = since_resume(agent, "update_sent");
    let applied = since_resume(tech, "update");
    assert!(
        !sent.is_empty(),
        "no updates were sent\n{}",
        agent.transcript()
    );
    assert_eq!(
        sent.len(),
        applied.len(),
        "every update sent was applied\n{}\n{}",
        agent.transcript(),
        tech.transcript()
    );
    // An update that arrives before the one it follows (each travels on its own stream, and
    // loss delays one more than another) is held back, and applied together with it: the
    // technician then reports the screen after the last of them for each. So each update's
    // screen is the frame of the last update of its run of equal reports.
    let shas: Vec<&str> = applied
        .iter()
        .map(|a| a["sha256"].as_str().expect("--hash-frames"))
        .collect();
    for (i, (s, a)) in sent.iter().zip(&applied).enumerate() {
        assert_eq!(s["seq"], a["seq"]);
        let last = (i..shas.len())
            .take_while(|&k| shas[k] == shas[i])
            .last()
            .expect("i itself");
        let frame = sent[last]["frame"].as_u64().unwrap() as usize;
        assert_eq!(
            shas[i], hashes[frame],
            "after update {} (applied up to update {}) the technician's screen differs from \
             corpus frame {frame}",
            s["seq"], sent[last]["seq"]
        );
    }
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "SourceFinished", "{ended}");
    assert_eq!(ended["sha256"].as_str().unwrap(), hashes.last().unwrap());
    let log = tests::verified_log(tech);
    assert_eq!(tests::replayed_end_sha256(&log), *hashes.last().unwrap());
}

#[test]
fn a_session_over_ten_percent_loss_each_way_ends_bit_exact() {
    // Both links lose 10 % each way: an update crossing agent -> relay -> technician loses
    // 19 % of its datagrams, its acknowledgement as many.
    let net = network(Shape::loss(10), Shape::loss(10));
    let dir = tempfile::tempdir().unwrap();
    // The relay's defaults, as a user runs it.
    let relay = Relay::start_in(net.clone(), dir.path(), &[]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    // Paced as recorded: the agent merges what changes while an update is on its way.
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--report-updates"]);
    let mut tech = start_technician(&relay, &code, &["--report-updates", "--hash-frames"]);
    let status = tech.wait_exit(SESSION);
    assert!(status.success(), "technician failed\n{}", tech.transcript());
    assert!(
        agent.wait_exit(PROMPT).success(),
        "agent failed\n{}",
        agent.transcript()
    );
    assert_bit_exact(&mut agent, &mut tech, &frame_hashes(&corpus));
    // The loss was real: the forwarders saw fewer datagrams than the far ends sent.
    for side in [Side::Agent, Side::Technician] {
        let c = net.counts(side);
        eprintln!("{side:?} link: {c:?}");
        assert!(c.up_datagrams > 0 && c.down_datagrams > 0, "{c:?}");
    }
}

#[test]
fn a_session_resumes_after_a_five_second_outage_and_ends_bit_exact() {
    // A 50 ms round trip on the agent's link, which then goes dead for 5 s.
    let net = network(Shape::rtt(50), Shape::CLEAN);
    let dir = tempfile::tempdir().unwrap();
    // The relay's default idle timeout (10 s) outlasts the outage.
    let relay = Relay::start_in(net.clone(), dir.path(), &[]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    // 80 frames at 0.4 times the speed: 10 s of typing, which goes on during the outage.
    let (mut agent, code) = start_agent(
        &relay,
        &["--source", &source, "--speed", "0.4", "--report-updates"],
    );
    let mut tech = start_technician(&relay, &code, &["--report-updates", "--hash-frames"]);
    tech.wait_event("update", PROMPT);

    tech.wait_exit_or(Duration::from_millis(300));
    let before = tech.events("update").len();
    net.cut(Side::Agent).unwrap();
    let cut = Instant::now();
    // Nothing crosses a dead link, and neither end gives up meanwhile.
    assert!(
        tech.wait_exit_or(OUTAGE).is_none(),
        "the technician ended during the outage\n{}",
        tech.transcript()
    );
    // The technician is told the agent fell silent, while the session waits for it.
    let quiet = tech.events("peer_quiet");
    assert_eq!(quiet.len(), 1, "{}", tech.transcript());
    net.restore(Side::Agent).unwrap();
    eprintln!("link restored after {:?}", cut.elapsed());
    let during = tech.events("update").len();
    assert!(
        during <= before + 2,
        "{} updates crossed a dead link",
        during - before
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while tech.events("update").len() <= during {
        assert!(
            Instant::now() < deadline,
            "no update within 15 s of the link coming back\n{}\n{}",
            agent.transcript(),
            tech.transcript()
        );
        assert!(
            tech.wait_exit_or(Duration::from_millis(20)).is_none(),
            "the technician ended after the outage\n{}",
            tech.transcript()
        );
    }
    eprintln!(
        "first update after the outage {:?} after it began",
        cut.elapsed()
    );
    // The agent took the silence for a lost link and rejoined; the technician, told the agent's
    // link was lost, rejoined too, and the two resumed the session.
    tech.wait_event("link_resumed", PROMPT);

    assert!(
        tech.wait_exit(SESSION).success(),
        "technician failed\n{}",
        tech.transcript()
    );
    assert!(
        agent.wait_exit(PROMPT).success(),
        "agent failed\n{}",
        agent.transcript()
    );
    assert_bit_exact(&mut agent, &mut tech, &frame_hashes(&corpus));
}
