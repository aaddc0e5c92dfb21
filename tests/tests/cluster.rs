//! Two relay processes of one cluster (`--cluster`) on one PostgreSQL database (a throw-away
//! server, harness::postgres): a technician who gives relay B the code of an agent waiting on
//! relay A is sent to A by B and the session runs there; a help request filed through A and
//! taken through B the same, and B's queue shows A's requests waiting and `take --next` through
//! B takes the oldest of them; the code of a relay that stopped is refused as a gone relay's; a
//! session on A is listed on B's dashboard, and a lead monitoring it or a technician taking its
//! escalation through B is sent to A and joins it.

use link::RelayConnection;
use protocol::control::{QueueEntry, Role};
use std::path::Path;

use tests::desk::{login_at, request_help, take_next, technician, At};
use tests::{run, start_agent, start_technician_unprepared, Relay, PROMPT, TECHNICIAN};
use tests::{TECHNICIAN_PASSWORD, TECHNICIAN_TIER};

/// Two relays of the cluster "north" on a fresh database with the account [`TECHNICIAN`],
/// logged in on relay B (its logins file), and their data directories.
struct Cluster {
    a: Relay,
    b: Relay,
    /// The shared database.
    url: String,
    _dirs: [tempfile::TempDir; 2],
}

impl Cluster {
    /// Adds the account `name` of `tier` to the shared database (the password
    /// [`TECHNICIAN_PASSWORD`]).
    fn add_user(&self, name: &str, tier: u8) {
        add_user(&self.url, self._dirs[1].path(), name, tier, &[]);
    }

    /// Adds the account `name` of `tier` (with `extra` arguments of `relay user add`, e.g.
    /// `--role lead`) and logs it in on `relay` with its own logins file in `dir`; returns the
    /// file.
    fn log_in(&self, relay: &Relay, dir: &Path, name: &str, tier: u8, extra: &[&str]) -> String {
        add_user(&self.url, self._dirs[1].path(), name, tier, extra);
        login_at(&At::loopback(relay), dir, name)
    }
}

fn add_user(url: &str, data_dir: &Path, name: &str, tier: u8, extra: &[&str]) {
    let (tier, data) = (tier.to_string(), data_dir.display().to_string());
    let mut args = vec![
        "--data-dir",
        &data,
        "--database-url",
        url,
        "user",
        "add",
        name,
        "--tier",
        &tier,
    ];
    args.extend(extra);
    let added = run("relay", &args, &format!("{TECHNICIAN_PASSWORD}\n"));
    assert!(added.success, "relay user add {name}: {}", added.text());
}

fn cluster() -> Cluster {
    cluster_with("")
}

/// As [`cluster`], both relays with the config file `config`.
fn cluster_with(config: &str) -> Cluster {
    let server = harness::postgres::Server::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let url = server.database().unwrap_or_else(|e| panic!("{e:#}"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    add_user(&url, dir_b.path(), TECHNICIAN, TECHNICIAN_TIER, &[]);
    let start = |dir: &Path| {
        let cfg = tests::relay_config(dir, config);
        Relay::start(
            dir,
            &[
                "--database-url",
                &url,
                "--cluster",
                "north",
                "--config",
                &cfg,
            ],
        )
    };
    let a = start(dir_a.path());
    let b = start(dir_b.path());
    let login = b.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(login.success, "technician login on B: {}", login.text());
    Cluster {
        a,
        b,
        url,
        _dirs: [dir_a, dir_b],
    }
}

#[test]
fn a_code_of_relay_a_joined_through_relay_b_runs_the_session_on_a() {
    let c = cluster();
    let src = format!("corpus:{}", tests::data("typing.scrn").display());
    let (mut agent, code) = start_agent(&c.a, &["--source", &src]);
    let mut tech = start_technician_unprepared(&c.b, &code, &["--report-updates"]);
    let sent = tech.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    assert_eq!(sent["fingerprint"], c.a.fingerprint.as_str(), "{sent}");
    tech.wait_event("session_start", PROMPT);
    tech.wait_event("update", PROMPT);
    let paired = agent.wait_event("paired", PROMPT);
    assert_eq!(paired["technician"], TECHNICIAN, "{paired}");
}

#[test]
fn a_help_request_filed_through_a_is_taken_through_b_once() {
    let c = cluster();
    let mut agent = request_help(&c.a, "control", &[]);
    let id = agent.wait_event("queued", PROMPT)["request"].to_string();
    let dir = tempfile::tempdir().unwrap();
    let tokens = c.b.tokens_file().display().to_string();
    let mut tech = technician(
        &c.b,
        dir.path(),
        &tokens,
        &["take", &id],
        "wait 300\nend\n",
        &["--report-updates"],
    );
    let sent = tech.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    agent.wait_event("claimed", PROMPT);
    let theirs = agent.wait_event("verification", PROMPT);
    let ours = tech.wait_event("verification", PROMPT);
    assert_eq!(theirs["code"], ours["code"]);
    tech.wait_event("update", PROMPT);
    assert!(
        tech.wait_exit(PROMPT).success(),
        "technician failed\n{}",
        tech.transcript()
    );
    // Taken once: a second take through B finds it taken (or done), never a second session.
    let mut again = technician(&c.b, dir.path(), &tokens, &["take", &id], "end\n", &[]);
    assert!(!again.wait_exit(PROMPT).success(), "{}", again.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_of_a_relay_gone_from_the_cluster_is_refused_as_such() {
    let mut c = cluster();
    let mut agent = RelayConnection::connect(&c.a.addr, c.a.fingerprint(), Role::Agent)
        .await
        .expect("an agent connects to relay A");
    let (code, _) = agent.register().await.unwrap();
    c.a.proc.signal(libc::SIGTERM);
    assert!(c.a.proc.wait_exit(PROMPT).success(), "relay A stopped");
    let mut tech = c.b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    match tech.join(code).await {
        Err(link::LinkError::Refused { code, message }) => {
            assert_eq!(code, protocol::control::ErrorCode::RelayGone, "{message}");
            assert!(message.contains("which is gone"), "{message}");
        }
        other => panic!("a code of the stopped relay A: {other:?}"),
    }
}

/// The queue `watcher` is sent, read until `done` holds for it (within [`PROMPT`]).
async fn queue_until(
    watcher: &mut RelayConnection,
    what: &str,
    done: impl Fn(&[QueueEntry]) -> bool,
) -> Vec<QueueEntry> {
    let wait = async {
        loop {
            let (queue, _) = watcher.next_queue().await.expect("the queue");
            if done(&queue) {
                return queue;
            }
        }
    };
    tokio::time::timeout(PROMPT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} not seen within {PROMPT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_b_shows_the_requests_of_relay_a_waiting_and_takes_the_oldest_there() {
    let mut c = cluster();
    let mut first = request_help(&c.a, "control", &[]);
    let id1 = first.wait_event("queued", PROMPT)["request"]
        .as_u64()
        .unwrap();
    let mut second = request_help(&c.a, "control", &[]);
    let id2 = second.wait_event("queued", PROMPT)["request"]
        .as_u64()
        .unwrap();

    // B's queue: both of A's requests, oldest first, their agents connected.
    let mut watcher = c.b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    watcher.watch_queue().await.unwrap();
    let queue = queue_until(&mut watcher, "A's requests waiting at B", |q| {
        q.len() == 2 && q.iter().all(|e| e.connected)
    })
    .await;
    let ids: Vec<u64> = queue.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![id1, id2]);

    // The next request through B is the oldest, taken on A where its agent is.
    let dir = tempfile::tempdir().unwrap();
    let tokens = c.b.tokens_file().display().to_string();
    let mut tech = take_next(
        &c.b,
        dir.path(),
        &tokens,
        "wait 300\nend\n",
        &["--report-updates"],
    );
    let sent = tech.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    first.wait_event("claimed", PROMPT);
    tech.wait_event("update", PROMPT);
    assert!(
        tech.wait_exit(PROMPT).success(),
        "technician failed\n{}",
        tech.transcript()
    );
    assert!(
        second.events("claimed").is_empty(),
        "the newer request was left waiting"
    );
    queue_until(&mut watcher, "the taken request gone from B's queue", |q| {
        q.iter().map(|e| e.id).collect::<Vec<_>>() == vec![id2]
    })
    .await;

    // A stops: its agent that still waits is not connected as B sees it.
    c.a.proc.signal(libc::SIGTERM);
    assert!(c.a.proc.wait_exit(PROMPT).success(), "relay A stopped");
    queue_until(&mut watcher, "the request of the stopped relay away", |q| {
        q.iter().any(|e| e.id == id2 && !e.connected)
    })
    .await;
}

/// The first request offered to `who` watching the queue on `watcher` (within [`PROMPT`]).
async fn offer_to(watcher: &mut RelayConnection, who: &str) -> QueueEntry {
    tokio::time::timeout(PROMPT, async {
        loop {
            if let link::client::DeskNews::Offer { request, .. } =
                watcher.next_desk().await.unwrap()
            {
                return *request;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no offer to {who} within {PROMPT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_on_relay_b_offers_a_request_of_relay_a_and_taking_it_goes_there() {
    let c = cluster_with("[desk.tier1]\nrouting = \"least-busy\"\noffer_secs = 30\n");
    c.add_user("ann", 1);
    let mut ann = c.b.logged_in("ann", TECHNICIAN_PASSWORD).await;
    ann.watch_queue().await.unwrap();
    let mut user = request_help(&c.a, "control", &[]);
    let id = user.wait_event("queued", PROMPT)["request"]
        .as_u64()
        .unwrap();
    let offered = offer_to(&mut ann, "ann").await;
    assert_eq!(offered.id, id);
    assert!(offered.connected);
    match ann.take(Some(id)).await {
        Err(link::LinkError::Redirected(to)) => assert_eq!(to.addr, c.a.addr),
        other => panic!("taking the offer through B: {other:?}"),
    }
    let mut there = c.a.logged_in("ann", TECHNICIAN_PASSWORD).await;
    there
        .take(Some(id))
        .await
        .expect("ann takes her offer on A");
    user.wait_event("claimed", PROMPT);
}

/// Ann is in a session on relay A; routing on relay B, where Ann and Bob watch the queue,
/// counts it and offers the next request to Bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_counts_the_sessions_a_technician_has_on_other_relays() {
    let c = cluster_with("[desk.tier1]\nrouting = \"least-busy\"\noffer_secs = 30\n");
    let dir = tempfile::tempdir().unwrap();
    let ann_tokens = c.log_in(&c.a, dir.path(), "ann", 1, &[]);
    c.add_user("bob", 1);
    let src = format!("corpus:{}", tests::data("idle-clock.scrn").display());
    let (_agent, code) = start_agent(&c.a, &["--source", &src, "--speed", "0.05"]);
    let mut busy = technician(
        &c.a,
        dir.path(),
        &ann_tokens,
        &["connect", &code],
        "wait 120000\n",
        &[],
    );
    busy.wait_event("paired", PROMPT);
    let mut ann = c.b.logged_in("ann", TECHNICIAN_PASSWORD).await;
    ann.watch_queue().await.unwrap();
    let mut bob = c.b.logged_in("bob", TECHNICIAN_PASSWORD).await;
    bob.watch_queue().await.unwrap();
    // B has heard of Ann's session on A before the request comes: its dashboard counts it.
    add_user(&c.url, dir.path(), "lena", 1, &["--role", "lead"]);
    let mut lead = c.b.logged_in("lena", TECHNICIAN_PASSWORD).await;
    lead.watch_queue().await.unwrap();
    tokio::time::timeout(PROMPT, async {
        loop {
            if let link::client::DeskNews::Dashboard { technicians, .. } =
                lead.next_desk().await.unwrap()
            {
                if technicians
                    .iter()
                    .any(|t| t.name == "ann" && t.sessions == 1)
                {
                    return;
                }
            }
        }
    })
    .await
    .expect("Ann's session on A counted on B's dashboard within the prompt");

    let mut user = request_help(&c.a, "control", &[]);
    let id = user.wait_event("queued", PROMPT)["request"]
        .as_u64()
        .unwrap();
    let offered = offer_to(&mut bob, "bob").await;
    assert_eq!(offered.id, id);
    busy.signal(libc::SIGTERM);
    drop(ann);
}

/// The first event `event` of `proc` about technician `name`.
fn event_about(proc: &mut tests::Proc, event: &str, name: &str) -> serde_json::Value {
    let line = proc.wait_line(PROMPT, &format!("{event} about {name}"), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["event"] == event && v["technician"] == name)
    });
    serde_json::from_str(&line).unwrap()
}

/// A session runs on relay A: a lead who asks relay B to monitor it, and a tier-2 technician
/// who takes its escalated request through B, are sent to A and join it there (the user asked
/// about each); B's dashboard lists the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_and_an_escalation_through_relay_b_join_the_live_session_on_relay_a() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let tom = c.log_in(&c.a, dir.path(), "tom", 1, &[]);
    let ana = c.log_in(&c.b, dir.path(), "ana", 2, &[]);
    let lena = c.log_in(&c.b, dir.path(), "lena", 1, &["--role", "lead"]);
    let mut agent = request_help(&c.a, "ask", &["--speed", "0.05"]);
    agent.wait_event("queued", PROMPT);
    let mut first = take_next(
        &c.a,
        dir.path(),
        &tom,
        "wait-control me 30000\nescalate 2 needs an administrator\nwait 120000\n",
        &[],
    );
    event_about(&mut agent, "consent_request", "tom");
    agent.send_line("c");
    let session = first.wait_event("paired", PROMPT)["session"]
        .as_str()
        .expect("the session's identifier")
        .to_string();
    first.wait_event("request_passed", PROMPT);

    // B's dashboard, as a lead there sees it, lists the session running on A.
    let mut watcher = c.b.logged_in("lena", TECHNICIAN_PASSWORD).await;
    watcher.watch_queue().await.unwrap();
    let listed = tokio::time::timeout(PROMPT, async {
        loop {
            if let link::client::DeskNews::Dashboard { sessions, .. } =
                watcher.next_desk().await.unwrap()
            {
                if let Some(s) = sessions.into_iter().find(|s| s.session == session) {
                    return s;
                }
            }
        }
    })
    .await
    .expect("A's session on B's dashboard within the prompt");
    assert_eq!(listed.technician, "tom");

    // Lena asks B to monitor it: sent to A, the user is asked about her, she watches.
    let mut lead = technician(
        &c.b,
        dir.path(),
        &lena,
        &["monitor", &session],
        "wait 500\nend\n",
        &["--report-updates"],
    );
    let sent = lead.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    let asked = event_about(&mut agent, "consent_request", "lena");
    assert_eq!(asked["joining"], "monitor", "{asked}");
    agent.send_line("c");
    lead.wait_event("update", PROMPT);
    assert!(lead.wait_exit(PROMPT).success(), "{}", lead.transcript());

    // Ana takes the escalation through B: sent to A, into the running session.
    let mut second = take_next(
        &c.b,
        dir.path(),
        &ana,
        "wait 500\nend\n",
        &["--report-updates"],
    );
    let sent = second.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    let asked = event_about(&mut agent, "consent_request", "ana");
    assert_eq!(asked["joining"], "escalation", "{asked}");
    agent.send_line("c");
    second.wait_event("update", PROMPT);
    assert!(
        second.wait_exit(PROMPT).success(),
        "{}",
        second.transcript()
    );
}

/// A relay SIGKILLed mid-session: agent and technician, given relay B of the cluster to resume
/// through, resume the session there within 5 s; the screen flows again and the technician's
/// log verifies, with the loss and the resume through B in it.
#[test]
fn a_session_on_relay_a_killed_resumes_through_relay_b() {
    let c = cluster();
    let src = format!("corpus:{}", tests::data("idle-clock.scrn").display());
    let via_b = format!("{}@{}", c.b.fingerprint, c.b.addr);
    let (mut agent, code) = start_agent(
        &c.a,
        &[
            "--source",
            &src,
            "--speed",
            "0.25",
            "--resume-relay",
            &via_b,
        ],
    );
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), "wait 6000\nend\n").unwrap();
    let mut tech = start_technician_unprepared(
        &c.b,
        &code,
        &[
            "--report-updates",
            "--hash-frames",
            "--resume-relay",
            &via_b,
            "--input-script",
            script.path().to_str().unwrap(),
        ],
    );
    tech.wait_event("redirected", PROMPT);
    tech.wait_event("update", PROMPT);
    let hashes = tests::frame_hashes(&tests::data("idle-clock.scrn"));
    c.a.proc.signal(libc::SIGKILL);
    let killed = std::time::Instant::now();
    tech.wait_event("link_lost", PROMPT);
    let resumed = tech.wait_event("link_resumed", PROMPT);
    let took = killed.elapsed();
    assert!(
        took <= std::time::Duration::from_secs(5),
        "resumed {took:?} after the kill\n{}\n{}",
        tech.transcript(),
        agent.transcript()
    );
    assert_eq!(resumed["relay"], c.b.addr.as_str());
    agent.wait_event("link_resumed", PROMPT);
    let after = tech.wait_event_after("link_resumed", "update", PROMPT, |_| true);
    // The figure a person would ask for: how long the screen stood still.
    eprintln!(
        "through relay B: link back {took:?} after the kill, first update after it {:?} after the kill",
        killed.elapsed()
    );
    assert!(hashes.contains(&after["sha256"].as_str().unwrap().to_string()));
    assert!(tech.wait_exit(PROMPT).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    tests::log_with_one_resume(&mut tech, &c.b.addr);
}
