//! Session logs stored on the relay, which still cannot read them: encrypted to the audit key,
//! uploaded (resumably) at the end of a session, kept with the checkpoints sent during it,
//! spooled when the relay is down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::control::{ErrorCode, Role};
use tests::{data, run, start_agent, start_technician, Relay, PROMPT, TECHNICIAN};

const SESSION: Duration = Duration::from_secs(120);
/// Typed by the technician's script: it must be in the local log and nowhere on the relay.
const TYPED: &str = "typed-secret-4711";

/// Makes an audit key in `dir`; returns its file and its public half.
fn audit_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("audit.key");
    let r = run(
        "technician",
        &["log", "keygen", "-o", key.to_str().unwrap()],
        "",
    );
    assert!(r.success, "{}", r.text());
    let public = r.stdout.trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    (key, public)
}

/// Runs one recorded session on the corpus with a typing script; returns the technician.
fn session(relay: &Relay, dir: &Path, speed: &str) -> tests::Proc {
    let script = dir.join("typing.script");
    std::fs::write(&script, format!("wait 200\ntype {TYPED}\n")).unwrap();
    let source = format!("corpus:{}", data("typing.scrn").display());
    let (mut agent, code) = start_agent(relay, &["--source", &source, "--speed", speed]);
    let mut tech = start_technician(relay, &code, &["--input-script", script.to_str().unwrap()]);
    tech.wait_exit(SESSION);
    assert!(
        agent.wait_exit(PROMPT).success(),
        "{}\n{}",
        agent.transcript(),
        tech.transcript()
    );
    tech
}

/// `technician log decrypt SEALED --identity KEY -o OUT`.
fn decrypt(sealed: &Path, key: &Path, out: &Path) -> tests::Ran {
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        "log".to_string(),
        "decrypt".into(),
        arg(sealed),
        "--identity".into(),
        arg(key),
        "-o".into(),
        arg(out),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run("technician", &refs, "")
}

fn relay_cmd(relay: &Relay, args: &[&str]) -> tests::Ran {
    let mut all = vec!["--data-dir", relay.data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    run("relay", &all, "")
}

/// What `relay logs list --json` says: the stored logs, and the paired sessions whose log the
/// relay does not hold.
fn listed(relay: &Relay) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let r = relay_cmd(relay, &["logs", "list", "--json"]);
    assert!(r.success, "{}", r.text());
    r.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .partition(|v| v["state"] != "no log stored")
}

/// The stored logs, as `relay logs list --json` says.
fn stored(relay: &Relay) -> Vec<serde_json::Value> {
    listed(relay).0
}

/// Every file the relay keeps (its database and archive), concatenated.
fn relay_files(relay: &Relay) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs = vec![relay.data_dir.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // The test's technician keeps its own files beside the relay's: not the relay's.
            if name == "technician-logs" || name.ends_with(".json") || name.ends_with(".script") {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_session_log_is_stored_encrypted_and_checks_against_the_relays_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = audit_key(dir.path());
    let relay_dir = dir.path().join("relay");
    let relay = Relay::start(&relay_dir, &["--audit-key", &public]);
    // Half speed: the 4-second recording lasts 8, so checkpoints go out during it.
    let mut tech = session(&relay, dir.path(), "0.5");
    let local = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = tech.wait_event("uploaded", PROMPT);
    let id = uploaded["id"].as_str().unwrap().to_string();

    let logs = stored(&relay);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["id"], id.as_str());
    assert_eq!(logs[0]["technician"], TECHNICIAN);
    assert_eq!(logs[0]["complete"], true);

    // The local log holds the typed text and the screen; the relay's files hold neither.
    let plain = std::fs::read(&local).unwrap();
    let shown = run("technician", &["log", "show", &local], "");
    let typed: String = shown
        .stdout
        .lines()
        .filter_map(|l| l.split("input: key ").nth(1)?.strip_suffix(" down"))
        .collect();
    assert_eq!(
        typed,
        TYPED,
        "the local log records the typing\n{}",
        shown.text()
    );
    // A piece of a screen update and the bodies of the typed keys, as the log stores them.
    let (mut screen, mut keys) = (Vec::new(), Vec::new());
    {
        use protocol::sessionlog::record::{KIND_INPUT, KIND_SCREEN_UPDATE};
        let f = std::fs::File::open(&local).unwrap();
        let mut r = protocol::sessionlog::LogReader::new(std::io::BufReader::new(f)).unwrap();
        while let Some(rec) = r.next_record().unwrap() {
            if rec.kind == KIND_SCREEN_UPDATE && rec.body.len() > 200 && screen.is_empty() {
                screen = rec.body[rec.body.len() - 64..].to_vec();
            }
            if rec.kind == KIND_INPUT {
                keys.push(rec.body);
            }
        }
    }
    assert_eq!(screen.len(), 64, "the log has a screen update");
    assert!(keys.len() >= TYPED.len(), "the log has the typed keys");
    let on_relay = relay_files(&relay);
    assert!(
        on_relay.len() > plain.len() / 2,
        "the relay's files include the log"
    );
    assert!(
        !contains(&on_relay, &screen),
        "screen contents on the relay"
    );
    for k in &keys {
        assert!(!contains(&on_relay, k), "a typed key's record on the relay");
    }

    // An auditor fetches it, opens it with the audit key, and checks it.
    let out = dir.path().join("fetched");
    let r = relay_cmd(&relay, &["logs", "get", &id, "-o", out.to_str().unwrap()]);
    assert!(r.success, "{}", r.text());
    let sealed = out.join(format!("{id}.tlog.age"));
    let checkpoints = out.join(format!("{id}.checkpoints.json"));
    let opened = dir.path().join("opened.tlog");
    let r = decrypt(&sealed, &key, &opened);
    assert!(r.success, "{}", r.text());
    assert_eq!(
        std::fs::read(&opened).unwrap(),
        plain,
        "identical to the local log"
    );
    let cps: protocol::sessionlog::CheckpointFile =
        serde_json::from_str(&std::fs::read_to_string(&checkpoints).unwrap()).unwrap();
    assert!(
        cps.checkpoints.len() >= 2,
        "a checkpoint during the session and the seal: {cps:?}"
    );
    let verify = |file: &Path, with: bool| {
        let mut args = vec!["log", "verify", file.to_str().unwrap()];
        if with {
            args.extend(["--checkpoints", checkpoints.to_str().unwrap()]);
        }
        let out = std::process::Command::new(tests::bin("technician"))
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap(), text)
    };
    let (code, text) = verify(&opened, true);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("consistent with the relay's"), "{text}");

    // Cut short after the session: on its own it reads as a crash; the checkpoints say more.
    let cut = dir.path().join("cut.tlog");
    std::fs::write(&cut, &plain[..plain.len() / 2]).unwrap();
    let (code, text) = verify(&cut, false);
    assert_eq!(code, 2, "alone: ended early\n{text}");
    let (code, text) = verify(&cut, true);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cut short after the session"), "{text}");

    // Over the network: an auditor may fetch it, and gets the same bytes and checkpoints;
    // another technician may not.
    let fetch = |dir: &Path| {
        let mut args = vec![
            "fetch-log".to_string(),
            id.clone(),
            "-o".into(),
            dir.display().to_string(),
            "--tokens".into(),
            relay.tokens_file().display().to_string(),
        ];
        args.extend(relay.peer_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("technician", &refs, "")
    };
    let pw = "another long password";
    let r = relay.user(
        &["add", "audrey", "--tier", "1", "--role", "auditor"],
        &format!("{pw}\n"),
    );
    assert!(r.success, "{}", r.text());
    assert!(relay.login("audrey", pw).success);
    let remote = dir.path().join("remote");
    let r = fetch(&remote);
    assert!(r.success, "{}", r.text());
    assert_eq!(
        std::fs::read(remote.join(format!("{id}.tlog.age"))).unwrap(),
        std::fs::read(&sealed).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(remote.join(format!("{id}.checkpoints.json"))).unwrap(),
        std::fs::read_to_string(&checkpoints).unwrap()
    );
    relay.add_user("bob", 1, pw);
    assert!(relay.login("bob", pw).success);
    let r = fetch(&dir.path().join("bobs"));
    assert!(!r.success);
    assert!(
        r.text().contains("recorded by another technician"),
        "{}",
        r.text()
    );

    // The wrong key opens nothing.
    let other = dir.path().join("other.key");
    assert!(
        run(
            "technician",
            &["log", "keygen", "-o", other.to_str().unwrap()],
            ""
        )
        .success
    );
    let r = decrypt(&sealed, &other, &dir.path().join("x"));
    assert!(!r.success, "{}", r.text());
}

#[test]
fn a_log_waits_in_the_spool_while_the_relay_is_down_and_goes_up_after_the_next_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, public) = audit_key(dir.path());
    let relay_dir = dir.path().join("relay");
    let mut relay = Relay::start(&relay_dir, &["--audit-key", &public]);
    let addr = relay.addr.clone();
    // The relay stops in the middle of the first session.
    let source = format!("corpus:{}", data("typing.scrn").display());
    // Both give the session up a second after the relay is gone (no relay comes back in time).
    let (mut agent, code) = start_agent(
        &relay,
        &["--source", &source, "--speed", "0.2", "--resume-secs", "1"],
    );
    let mut tech = start_technician(&relay, &code, &["--resume-secs", "1"]);
    tech.wait_event("session_start", PROMPT);
    std::thread::sleep(Duration::from_millis(500));
    relay.proc.signal(libc::SIGTERM);
    relay.proc.wait_exit(PROMPT);
    tech.wait_exit(SESSION);
    agent.wait_exit(PROMPT);
    tech.wait_event("recorded", PROMPT);
    let pending = tech.wait_event("upload_pending", PROMPT);
    assert_eq!(pending["waiting"], 1, "{pending}");

    // Back at the same address with the same data: the next session takes both logs up.
    let relay = Relay::start_at(&addr, &relay_dir, &["--audit-key", &public]);
    let tech = session(&relay, dir.path(), "0");
    assert_eq!(tech.events("uploaded").len(), 2, "{}", tech.transcript());
    let logs = stored(&relay);
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs.iter().all(|l| l["complete"] == true));
}

#[test]
fn an_upload_cut_off_half_way_resumes_and_ends_with_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, public) = audit_key(dir.path());
    let relay = Relay::start(
        &dir.path().join("relay"),
        &["--audit-key", &public, "--allow-no-record"],
    );
    // A session the relay paired, left unrecorded: its row in the ledger takes one log.
    let source = format!("corpus:{}", data("typing.scrn").display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "0"]);
    let mut tech = start_technician(&relay, &code, &["--no-record"]);
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let (logs, missing) = listed(&relay);
    assert!(logs.is_empty(), "{logs:?}");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["technician"], TECHNICIAN);
    assert_eq!(missing[0]["recording_required"], false);
    let session_id = missing[0]["id"].as_str().unwrap().to_string();
    let file = dir.path().join("log.age");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let mut offer = protocol::control::LogOffer {
        id: "0123456789abcdef".into(),
        agent: "agent".into(),
        started_unix_ms: 1_800_000_000_000,
        duration_ms: 1000,
        records: 3,
        chain_hash: "ab".repeat(32),
        size: bytes.len() as u64,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // A log of no session the relay paired is refused, and so is the session's log from
        // another account.
        let mut c = relay.technician_connection().await;
        let err = c.upload(&offer, &file, |_, _| {}).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("not of a session this relay paired"),
            "{err}"
        );
        c.close_and_wait("refused").await;
        offer.id = session_id.clone();
        relay.add_user("mallory", 1, "another long password");
        let mut m =
            link::RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
                .await
                .unwrap();
        m.login("mallory", "another long password").await.unwrap();
        let err = m.upload(&offer, &file, |_, _| {}).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("not of a session this relay paired"),
            "{err}"
        );
        m.close_and_wait("refused").await;

        // First attempt: the connection drops after about a third of the bytes.
        let mut c = relay.technician_connection().await;
        let half = dir.path().join("first-part");
        std::fs::write(&half, &bytes[..100_000]).unwrap();
        // Offering the whole but holding only the first part, the client gives up part-way
        // with an error, and the connection goes, as when a link drops.
        let err = c.upload(&offer, &half, |_, _| {}).await.unwrap_err();
        assert!(err.to_string().contains("shorter than offered"), "{err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.close_and_wait("cut off").await;
        // The relay says how far it got; the rest goes up and the copy is identical.
        let mut c = relay.technician_connection().await;
        let from = c.upload(&offer, &file, |_, _| {}).await.unwrap();
        assert!(
            from > 0 && from <= 100_000,
            "resumed where the relay's copy ended: {from}"
        );
        c.close_and_wait("done").await;
    });
    let (logs, missing) = listed(&relay);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["complete"], true);
    assert!(
        missing.is_empty(),
        "the session has its log now: {missing:?}"
    );
    let kept = relay
        .data_dir
        .join("logs")
        .join(format!("{session_id}.tlog.age"));
    assert_eq!(std::fs::read(kept).unwrap(), bytes);
}

/// A technician's client that records nothing (a modified one: it joins and sends no
/// checkpoint) is cut off where the relay's policy requires recording, the agent is told, and
/// the ledger shows the session without a log.
#[test]
fn a_client_that_sends_no_checkpoints_is_cut_off_where_recording_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let (_key, public) = audit_key(dir.path());
    let relay = Relay::start(&dir.path().join("relay"), &["--audit-key", &public]);
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "0.1"]);
    let rendezvous = code.split('-').next().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let waited = rt.block_on(async {
        let mut c = relay.technician_connection().await;
        let code = protocol::control::SessionCode::parse(&rendezvous).unwrap();
        c.join(code).await.expect("paired");
        assert!(c.session.as_deref().is_some_and(|s| s.starts_with("s-")));
        let started = std::time::Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match c.next().await {
                    Ok(_) => continue,
                    Err(e) => return e,
                }
            }
        })
        .await
        .expect("the relay ends the session");
        match end {
            link::LinkError::Refused {
                code: ErrorCode::RecordingMissing,
                message,
            } => assert!(message.contains("no checkpoint"), "{message}"),
            other => panic!("expected a recording-missing refusal, got {other:?}"),
        }
        started.elapsed()
    });
    assert!(
        waited >= Duration::from_secs(9) && waited <= Duration::from_secs(15),
        "two checkpoint intervals (10 s), not {waited:?}"
    );
    // The agent learns the technician is gone and ends.
    agent.wait_exit(PROMPT);
    let (_, missing) = listed(&relay);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["recording_required"], true);
    assert!(
        missing[0]["end_reason"]
            .as_str()
            .unwrap()
            .contains("requires every session to be recorded"),
        "{missing:?}"
    );
}

#[test]
fn a_session_goes_unrecorded_only_where_the_relay_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    // By default the relay's policy is to record every session.
    let strict = Relay::start(&dir.path().join("strict"), &[]);
    let (mut agent, code) = start_agent(&strict, &["--source", &source, "--speed", "0"]);
    let mut tech = start_technician(&strict, &code, &["--no-record"]);
    assert!(!tech.wait_exit(PROMPT).success());
    let err = tech.wait_event("error", PROMPT);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("records every session"),
        "{err}"
    );
    agent.signal(libc::SIGTERM);
    agent.wait_exit(PROMPT);
    // A relay that allows it: no log is written.
    let lenient = Relay::start(&dir.path().join("lenient"), &["--allow-no-record"]);
    let (mut agent, code) = start_agent(&lenient, &["--source", &source, "--speed", "0"]);
    let mut tech = start_technician(&lenient, &code, &["--no-record"]);
    assert!(tech.wait_exit(SESSION).success(), "{}", tech.transcript());
    assert!(agent.wait_exit(PROMPT).success());
    tech.wait_event("not_recording", PROMPT);
    assert!(tech.events("recorded").is_empty());
    let logs = lenient.data_dir.join("technician-logs");
    let written = std::fs::read_dir(&logs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "a log was written in {}", logs.display());
}
