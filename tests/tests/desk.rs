//! The help-request queue through a real relay process: agents file requests and are told their
//! place, technicians watch the queue and take requests, ten of them racing for one get it
//! exactly once, and a relay restarted mid-queue keeps every request in its order.

use link::client::QueueNews;
use link::{LinkError, RelayConnection};
use protocol::control::{ErrorCode, RequestFiling, Role};
use tests::desk::{log_in_as, log_text, request_help, take_next};
use tests::{Relay, PROMPT};

fn filing(what: &str) -> RequestFiling {
    RequestFiling {
        description: what.into(),
        machine: "pc-17".into(),
        os: "Debian 12".into(),
        ticket: Some("T-1001".into()),
    }
}

async fn agent(relay: &Relay) -> RelayConnection {
    RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Agent)
        .await
        .expect("an agent connects")
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PROMPT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_in_order_and_ten_technicians_racing_take_one_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut first = agent(&relay).await;
    let queued = first
        .file_request(filing("the printer stops"))
        .await
        .unwrap();
    let (id1, place1) = (queued.request, queued.position);
    assert_eq!(queued.expected_wait_secs, None, "nothing was taken yet");
    let mut second = agent(&relay).await;
    let queued = second.file_request(filing("no mail")).await.unwrap();
    let (id2, place2) = (queued.request, queued.position);
    assert_eq!((place1, place2), (1, 2));
    assert!(id2 > id1);

    let mut watcher = relay.technician_connection().await;
    watcher.watch_queue().await.unwrap();
    let (queue, more) = within("the queue", watcher.next_queue()).await.unwrap();
    assert_eq!(more, 0);
    let ids: Vec<u64> = queue.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![id1, id2]);
    assert!(queue.iter().all(|e| e.connected && e.tier == 1));
    assert_eq!(queue[0].filing.description, "the printer stops");
    assert_eq!(queue[0].filing.ticket.as_deref(), Some("T-1001"));

    // Ten technicians take the first request at once: one is paired, nine are told who won.
    let mut racers = Vec::new();
    for _ in 0..10 {
        racers.push(relay.technician_connection().await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut t) in racers.into_iter().enumerate() {
        tasks.spawn(async move { (i, t.take(Some(id1)).await, t) });
    }
    let mut won = Vec::new();
    let mut lost = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, outcome, conn) = done.unwrap();
        match outcome {
            Ok(peer) => won.push((i, peer, conn)),
            Err(LinkError::Refused { code, message }) => lost.push((code, message)),
            Err(e) => panic!("technician {i}: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "taken {} times", won.len());
    assert_eq!(lost.len(), 9);
    for (code, message) in &lost {
        assert_eq!(*code, ErrorCode::RequestTaken, "{message}");
        assert!(message.contains("already taken by tess"), "{message}");
    }
    // The user's agent is paired with the winner; the other request moves up.
    match within("the first agent's news", first.next_in_queue()).await {
        Ok(QueueNews::Taken(peer)) => {
            assert_eq!(peer.account.as_ref().map(|a| a.name.as_str()), Some("tess"))
        }
        other => panic!("the first agent heard {other:?}"),
    }
    assert!(first.session.is_some());
    match within("the second agent's news", second.next_in_queue()).await {
        Ok(QueueNews::Place { position: 1, .. }) => {}
        other => panic!("the second agent heard {other:?}"),
    }
    // The watcher sees the queue without the taken request.
    let queue = loop {
        let (q, _) = within("the queue after the take", watcher.next_queue())
            .await
            .unwrap();
        if q.len() == 1 {
            break q;
        }
    };
    assert_eq!(queue[0].id, id2);

    // A withdrawn request is gone for everyone.
    second.cancel_request().await.unwrap();
    match within("the cancel", second.next_in_queue()).await {
        Ok(QueueNews::Cancelled) => {}
        other => panic!("the second agent heard {other:?}"),
    }
    let mut late = relay.technician_connection().await;
    match late.take(Some(id2)).await {
        Err(LinkError::Refused { code, .. }) => assert_eq!(code, ErrorCode::UnknownRequest),
        other => panic!("took a cancelled request: {other:?}"),
    }
    drop(won);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_keeps_every_request_and_a_returning_agent_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let mut secrets = Vec::new();
    for what in ["one", "two", "three"] {
        let mut a = agent(&relay).await;
        let q = a.file_request(filing(what)).await.unwrap();
        let (id, secret) = (q.request, q.secret);
        secrets.push((id, secret));
        a.close("the user's machine went to sleep");
    }
    relay.proc.signal(libc::SIGTERM);
    relay.proc.wait_exit(PROMPT);
    relay = Relay::start(dir.path(), &[]);

    let mut watcher = relay.technician_connection().await;
    watcher.watch_queue().await.unwrap();
    let (queue, _) = within("the queue", watcher.next_queue()).await.unwrap();
    let ids: Vec<u64> = queue.iter().map(|e| e.id).collect();
    assert_eq!(ids, secrets.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    assert!(queue.iter().all(|e| !e.connected));

    // Away: it cannot be taken until its agent is back.
    let mut taker = relay.technician_connection().await;
    let (id2, secret2) = secrets[1].clone();
    match taker.take(Some(id2)).await {
        Err(LinkError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RequestAway),
        other => panic!("took a request whose agent is away: {other:?}"),
    }
    // A wrong secret takes nothing back.
    let mut impostor = agent(&relay).await;
    match impostor.resume_request(id2, "0".repeat(32)).await {
        Err(LinkError::Refused { code, .. }) => assert_eq!(code, ErrorCode::UnknownRequest),
        other => panic!("resumed with a wrong secret: {other:?}"),
    }
    let mut back = agent(&relay).await;
    let q = back.resume_request(id2, secret2).await.unwrap();
    let (id, place) = (q.request, q.position);
    assert_eq!(
        (id, place),
        (id2, 2),
        "the second request keeps the second place"
    );
    let mut taker = relay.technician_connection().await;
    let peer = taker
        .take(None)
        .await
        .expect("take the oldest connected request");
    assert_eq!(peer.role, Role::Agent);
    match within("the returning agent's news", back.next_in_queue()).await {
        Ok(QueueNews::Taken(_)) => {}
        other => panic!("the returning agent heard {other:?}"),
    }
}

/// The whole way with the real programs: `agent --request` waits in the queue, `technician
/// queue` shows it, `technician take --next` takes it, both ends show the same verification
/// code, and the screen arrives.
#[test]
fn an_agent_asking_for_help_is_taken_from_the_queue_and_both_see_one_verification_code() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    relay.ensure_technician();
    let mut agent = request_help(&relay, "control", &["--ticket", "T-7"]);
    let queued = agent.wait_event("queued", PROMPT);
    assert_eq!(queued["position"], 1, "{queued}");

    let tokens = relay.tokens_file().display().to_string();
    let mut args = vec!["queue".to_string()];
    args.extend(relay.peer_args());
    args.extend(["--tokens", &tokens, "--json"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let listed = tests::run("technician", &refs, "");
    assert!(listed.success, "{}", listed.text());
    let queue: serde_json::Value = listed
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "queue")
        .expect("a queue event");
    let first = &queue["requests"][0];
    assert_eq!(first["id"], queued["request"], "{queue}");
    assert_eq!(
        first["filing"]["description"],
        "the printer stops after each page"
    );
    assert_eq!(first["filing"]["ticket"], "T-7");
    assert_eq!(first["connected"], true);

    let mut tech = take_next(
        &relay,
        dir.path(),
        &tokens,
        "wait 500\nend\n",
        &["--report-updates"],
    );
    agent.wait_event("claimed", PROMPT);
    let theirs = agent.wait_event("verification", PROMPT);
    let ours = tech.wait_event("verification", PROMPT);
    assert_eq!(theirs["code"], ours["code"]);
    assert_eq!(ours["code"].as_str().unwrap().len(), 6, "{ours}");
    tech.wait_event("update", PROMPT);
    assert!(
        tech.wait_exit(PROMPT).success(),
        "technician failed\n{}",
        tech.transcript()
    );
    agent.wait_exit(PROMPT);
}

/// Checks that `filed` was refused as rate-limited, with words containing `says`.
fn rate_limited<T: std::fmt::Debug>(filed: Result<T, LinkError>, says: &str, what: &str) {
    match filed {
        Err(LinkError::Refused { code, message }) => {
            assert!(
                matches!(code, ErrorCode::RateLimited { .. }),
                "{what}: {code:?}: {message}"
            );
            assert!(message.contains(says), "{what}: {message}");
        }
        other => panic!("{what} was let in: {other:?}"),
    }
}

/// One address cannot fill the queue: it holds at most its share of waiting requests, and files
/// at most so many a minute, as with session codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_its_share_of_the_queue_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tests::relay_config(
        dir.path(),
        "max_waiting_codes_per_source = 3\nregistrations_per_minute = 5\n",
    );
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut waiting = Vec::new();
    for i in 0..3 {
        let mut a = agent(&relay).await;
        a.file_request(filing(&format!("request {i}")))
            .await
            .unwrap();
        waiting.push(a);
    }
    let mut fourth = agent(&relay).await;
    rate_limited(
        fourth.file_request(filing("one too many")).await,
        "wait already",
        "a fourth waiting request from one address",
    );
    // One leaves: there is room again (once the relay has seen it go), until the five filings
    // of the minute are used up.
    waiting.pop().unwrap().close("gone");
    for n in 4..=5 {
        let mut filed = None;
        for _ in 0..50 {
            let mut a = agent(&relay).await;
            match a.file_request(filing("again")).await {
                Ok(_) => {
                    filed = Some(a);
                    break;
                }
                Err(LinkError::Refused { message, .. }) if message.contains("wait already") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) => panic!("filing {n}: {e}"),
            }
        }
        filed
            .unwrap_or_else(|| panic!("filing {n}: no room after one left"))
            .close("gone");
    }
    let mut sixth = agent(&relay).await;
    rate_limited(
        sixth.file_request(filing("the sixth this minute")).await,
        "too many help requests",
        "a sixth filing within a minute",
    );
}

/// The next offer a watching technician hears.
async fn offer(c: &mut RelayConnection) -> (u64, u32) {
    within("an offer", async {
        loop {
            if let link::client::DeskNews::Offer {
                request,
                expires_in_secs,
            } = c.next_desk().await.expect("the desk's news")
            {
                return (request.id, expires_in_secs);
            }
        }
    })
    .await
}

/// Least-busy routing offers a request to one available technician at a time; a decline and a
/// time-out pass it on, and nobody is offered it twice. The taker closes it as resolved, the
/// user answers the survey, and `relay report` counts all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_offers_declines_and_times_out_and_the_report_counts_the_close_and_survey() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tests::relay_config(
        dir.path(),
        "[desk.tier1]\nrouting = \"least-busy\"\noffer_secs = 2\n",
    );
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut ann = relay.technician_connection_as("ann", 1).await;
    let mut ben = relay.technician_connection_as("ben", 1).await;
    for t in [&mut ann, &mut ben] {
        t.watch_queue().await.unwrap();
    }
    let mut user = agent(&relay).await;
    let queued = user.file_request(filing("vpn drops")).await.unwrap();
    // Both available with no sessions: ann first by name; she declines, ben is offered it.
    let (id, secs) = offer(&mut ann).await;
    assert_eq!(id, queued.request);
    assert!((1..=2).contains(&secs), "{secs}");
    ann.decline(id).await.unwrap();
    let (again, _) = offer(&mut ben).await;
    assert_eq!(again, id);
    // Ben lets the time pass: the offer lapses and nobody else is left who has not declined,
    // so the request waits in the queue, offered to nobody, for anyone to take.
    within("ben's offer to lapse", async {
        let mut offered_to_ben = false;
        loop {
            match ben.next_desk().await.expect("the desk's news") {
                link::client::DeskNews::Queue { requests, .. } => {
                    let Some(r) = requests.iter().find(|r| r.id == id) else {
                        continue;
                    };
                    match r.offered_to.as_deref() {
                        Some("ben") => offered_to_ben = true,
                        None if offered_to_ben => return,
                        _ => {}
                    }
                }
                link::client::DeskNews::Offer { request, .. } => {
                    panic!("offered again after ann declined and ben let it lapse: {request:?}")
                }
                _ => {}
            }
        }
    })
    .await;
    let mut taker = relay.technician_connection_as("ann", 1).await;
    taker.take(Some(id)).await.expect("ann takes it herself");
    match within("the user's news", user.next_in_queue()).await {
        Ok(QueueNews::Taken(peer)) => {
            assert_eq!(peer.account.map(|a| a.name).as_deref(), Some("ann"))
        }
        other => panic!("the user heard {other:?}"),
    }
    // Closed as resolved in the session: the relay says so.
    taker
        .pass_on(protocol::control::ToRelay::Resolve {
            resolved: true,
            note: "reinstalled the client".into(),
        })
        .await
        .unwrap();
    let passed = within("the relay's answer", async {
        loop {
            match taker.next().await {
                Ok(protocol::control::FromRelay::RequestPassed { words }) => return words,
                Ok(_) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(passed, "closed as resolved");
    taker.close("done");
    drop(user);
    // The survey, once, with the request's secret.
    let mut later = agent(&relay).await;
    later
        .answer_survey(id, queued.secret.clone(), 4, "quick".into())
        .await
        .expect("the survey is taken");
    let mut twice = agent(&relay).await;
    match twice
        .answer_survey(id, queued.secret, 5, String::new())
        .await
    {
        Err(LinkError::Refused { code, .. }) => assert_eq!(code, ErrorCode::UnknownRequest),
        other => panic!("a second survey answer: {other:?}"),
    }
    drop(relay);
    let out = std::process::Command::new(tests::bin("relay"))
        .args([
            "--data-dir",
            &dir.path().display().to_string(),
            "report",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tier1 = &report["tiers"][0];
    assert_eq!(tier1["tier"], 1);
    assert_eq!(tier1["requests"], 1);
    assert_eq!(tier1["first_contact_resolution"], 1.0);
    assert_eq!(tier1["survey_average"], 4.0);
    let ann_row = report["technicians"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ann")
        .expect("ann's row");
    assert_eq!(ann_row["requests"], 1);
    // The wait before the first response spans the two offers (about 2 s and more).
    assert!(
        tier1["wait_median_secs"].as_f64().unwrap() >= 2.0,
        "{tier1}"
    );
}

/// Escalation the whole way with the real programs: tier 1 takes the request, escalates it
/// to tier 2 with a note and leaves; the agent goes back to the queue with it; tier 2 takes it, reads the
/// note, is let in by the user, and closes it as resolved; the user answers the survey. Both
/// session logs hold the steps, and `relay report` counts the escalation and the survey.
#[test]
fn an_escalated_request_reaches_tier_two_with_its_note_and_is_closed_and_surveyed() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let tom = log_in_as(&relay, dir.path(), "tom", 1, &[]);
    let ana = log_in_as(&relay, dir.path(), "ana", 2, &[]);
    let mut agent = request_help(
        &relay,
        "control",
        &[
            "--survey",
            "4",
            "--survey-comment",
            "second person fixed it",
        ],
    );
    let queued = agent.wait_event("queued", PROMPT);
    let id = queued["request"].as_u64().unwrap();

    let mut first = take_next(
        &relay,
        dir.path(),
        &tom,
        "wait-change 5000\nescalate 2 the driver needs an administrator\nend\n",
        &[],
    );
    let passed = first.wait_event("request_passed", PROMPT);
    assert_eq!(passed["action"], "escalated", "{passed}");
    assert_eq!(passed["words"], "escalated to tier 2", "{passed}");
    let tom_log = first.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .map(String::from);
    assert!(first.wait_exit(PROMPT).success(), "{}", first.transcript());
    // The agent waits again, with the same request.
    let again = agent.wait_event("ended", PROMPT);
    assert_eq!(again["reason"], "TechnicianEnded", "{again}");
    let requeued: serde_json::Value =
        serde_json::from_str(&agent.wait_line(PROMPT, "queued again", |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["event"] == "queued" && v["again"] == true)
        }))
        .unwrap();
    assert_eq!(requeued["request"], id);

    // Tier 1 does not see it any more; tier 2 takes it with the note.
    let mut second = take_next(
        &relay,
        dir.path(),
        &ana,
        "wait-change 5000\nresolve reinstalled the driver as administrator\n",
        &[],
    );
    let request = second.wait_event("request", PROMPT);
    assert_eq!(request["request"]["id"], id, "{request}");
    assert_eq!(request["request"]["tier"], 2, "{request}");
    let handoff = &request["request"]["handoff"];
    assert_eq!(handoff["by"], "tom", "{request}");
    assert_eq!(handoff["note"], "the driver needs an administrator");
    // The user is asked again, for the new person (here: the preset answer).
    second.wait_event("consent", PROMPT);
    let closed = second.wait_event("request_passed", PROMPT);
    assert_eq!(closed["words"], "closed as resolved", "{closed}");
    let ana_log = second.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .map(String::from);
    assert!(
        second.wait_exit(PROMPT).success(),
        "{}",
        second.transcript()
    );
    agent.wait_event("request_closed", PROMPT);
    agent.wait_event("survey_answered", PROMPT);
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let technicians: Vec<String> = agent
        .events("paired")
        .iter()
        .map(|p| p["technician"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(technicians, ["tom", "ana"]);

    // The steps are in both session logs.
    let tom_text = log_text(&tom_log.expect("tom's log is sealed"));
    assert!(
        tom_text.contains("escalated to tier 2")
            && tom_text.contains("the driver needs an administrator"),
        "{tom_text}"
    );
    let ana_text = log_text(&ana_log.expect("ana's log is sealed"));
    assert!(
        ana_text.contains("taken after tom escalated it"),
        "{ana_text}"
    );
    assert!(ana_text.contains("closed as resolved"), "{ana_text}");

    drop(relay);
    let out = std::process::Command::new(tests::bin("relay"))
        .args([
            "--data-dir",
            &dir.path().display().to_string(),
            "report",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tier = |t: u64| {
        report["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tier"] == t)
            .unwrap_or_else(|| panic!("no row for tier {t}: {report}"))
            .clone()
    };
    assert_eq!(tier(1)["requests"], 1, "{report}");
    assert_eq!(tier(1)["escalated"], 1, "{report}");
    assert_eq!(tier(1)["first_contact_resolution"], 0.0, "{report}");
    assert_eq!(tier(2)["requests"], 1, "{report}");
    assert_eq!(tier(2)["surveys"], 1, "{report}");
    assert_eq!(tier(2)["survey_average"], 4.0, "{report}");
}

/// The survey asks how well the user was helped, so a request closed without anything shared
/// asks none: the user denies the technician who took it, the session ends unresolved, the
/// desk closes the request, and the agent says so and leaves without answering, `--survey`
/// or not.
#[test]
fn a_request_closed_without_anything_shared_asks_no_survey() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let tom = log_in_as(&relay, dir.path(), "tom", 1, &[]);
    let mut agent = request_help(&relay, "ask", &["--survey", "4"]);
    agent.wait_event("queued", PROMPT);
    let mut tech = take_next(&relay, dir.path(), &tom, "resolve\n", &[]);
    agent.wait_event("consent_request", PROMPT);
    agent.send_line("d");
    let ended = agent.wait_event("ended", PROMPT);
    assert_eq!(ended["reason"], "ConsentDenied", "{ended}");
    let closed = agent.wait_event("request_closed", PROMPT);
    assert_eq!(closed["shared"], false, "{closed}");
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    assert!(
        agent.events("survey_answered").is_empty(),
        "{}",
        agent.transcript()
    );
    tech.wait_exit(PROMPT);
}

/// Ten technicians race for each of a hundred waiting requests at once: every request is taken
/// exactly once, none is lost, and each of the nine others is told who took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_technicians_racing_for_a_hundred_requests_take_each_exactly_once() {
    const REQUESTS: usize = 100;
    const RACERS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tests::relay_config(
        dir.path(),
        "max_waiting_codes_per_source = 200\nregistrations_per_minute = 1000\n\
         max_connections_per_source = 4000\nmax_connections = 4000\n",
    );
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut agents = Vec::new();
    let mut ids = Vec::new();
    for i in 0..REQUESTS {
        let mut a = agent(&relay).await;
        let q = a
            .file_request(filing(&format!("request {i}")))
            .await
            .unwrap();
        ids.push(q.request);
        agents.push(a);
    }
    // Each racer logs in once; each attempt is a connection of its own on its token.
    let mut tokens = Vec::new();
    for r in 0..RACERS {
        let name = format!("racer{r}");
        // Made with its account; then a login whose token the attempts resume.
        relay.technician_connection_as(&name, 1).await.close("made");
        let mut c = RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
            .await
            .unwrap();
        let (_, token, _) = c.login(&name, tests::TECHNICIAN_PASSWORD).await.unwrap();
        c.close("logged in");
        tokens.push((name, token));
    }
    let addr = relay.addr.clone();
    let pin = relay.fingerprint();
    let mut winners: Vec<(u64, String, RelayConnection)> = Vec::new();
    for &id in &ids {
        let mut race = tokio::task::JoinSet::new();
        for (name, token) in tokens.clone() {
            let addr = addr.clone();
            race.spawn(async move {
                let mut c = RelayConnection::connect(&addr, pin, Role::Technician)
                    .await
                    .expect("connect");
                c.resume(&token).await.expect("resume the login");
                (name, c.take(Some(id)).await, c)
            });
        }
        let mut won = Vec::new();
        let mut told = Vec::new();
        while let Some(done) = race.join_next().await {
            let (name, outcome, conn) = done.unwrap();
            match outcome {
                Ok(_) => won.push((name, conn)),
                Err(LinkError::Refused { code, message }) => {
                    assert_eq!(code, ErrorCode::RequestTaken, "request {id}: {message}");
                    told.push(message);
                }
                Err(e) => panic!("request {id}, {name}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "request {id} was taken {} times", won.len());
        let (winner, conn) = won.pop().unwrap();
        assert_eq!(told.len(), RACERS - 1);
        for message in &told {
            assert!(
                message.contains(&format!("already taken by {winner}")),
                "request {id}: {message}"
            );
        }
        winners.push((id, winner, conn));
    }
    // None lost: every agent was paired with its request's winner.
    for (a, (id, winner, _)) in agents.iter_mut().zip(&winners) {
        // Places told before the take are passed over.
        loop {
            match within("an agent's news", a.next_in_queue()).await {
                Ok(QueueNews::Place { .. }) => continue,
                Ok(QueueNews::Taken(peer)) => {
                    assert_eq!(
                        peer.account.as_ref().map(|t| t.name.as_str()),
                        Some(winner.as_str()),
                        "request {id}"
                    );
                    break;
                }
                other => panic!("the agent of request {id} heard {other:?}"),
            }
        }
    }
    let mut watcher = relay.technician_connection_as("tess", 1).await;
    watcher.watch_queue().await.unwrap();
    let (queue, more) = within("the queue", watcher.next_queue()).await.unwrap();
    assert!(queue.is_empty() && more == 0, "{queue:?} and {more} more");
}
