//! Files between a technician and the user through real processes and a real relay: a gigabyte
//! goes to the user and comes back bit-exact, a declined offer writes nothing and fails the
//! technician's step, and a transfer cut off by a relay restart resumes in the next session from
//! what the user's machine kept.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::Side;
use protocol::sessionlog::{FolderLook, FolderOutcome};
use sha2::{Digest, Sha256};
use tests::{data, start_agent, start_agent_asking, start_technician, Proc, Relay, PROMPT};

/// Longest a transfer test may take, on a slow machine.
const TRANSFER: Duration = Duration::from_secs(180);

/// A screen that changes slowly and lasts longer than any of these tests (80 frames at a
/// fiftieth of their speed).
fn screen() -> Vec<String> {
    let source = format!("corpus:{}", data("idle-clock.scrn").display());
    vec!["--source".into(), source, "--speed".into(), "0.02".into()]
}

/// Writes a file of `len` bytes that differ from one offset to the next (a byte out of place
/// shows in its SHA-256); returns its SHA-256 as hex.
fn write_file(path: &Path, len: u64) -> String {
    let mut hasher = Sha256::new();
    harness::bigfile::write_varied(path, len, |b| hasher.update(b))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(hasher.finalize())
}

fn sha256_of(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// Starts `technician ARGS… --code CODE` (`send` or `fetch`) with the test's relay, logins
/// and log folder.
fn technician(relay: &Relay, args: &[&str], code: &str) -> Proc {
    relay.ensure_technician();
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--code".into(), code.into()]);
    all.extend(relay.peer_args_on(Side::Technician));
    all.extend([
        "--tokens".into(),
        relay.tokens_file().display().to_string(),
        "--json".into(),
        "--log-dir".into(),
        relay.data_dir.join("technician-logs").display().to_string(),
    ]);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    Proc::spawn("technician", &refs)
}

fn agent(relay: &Relay, extra: &[&str]) -> (Proc, String) {
    let mut args = screen();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    start_agent(relay, &refs)
}

/// The `file_done` event of a file a program received (`receiving`) or sent (`sending`).
fn done(p: &mut Proc, direction: &str) -> serde_json::Value {
    p.wait_line(PROMPT, &format!("a file {direction} done"), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["event"] == "file_done" && v["direction"] == direction)
    });
    p.events("file_done")
        .into_iter()
        .find(|v| v["direction"] == direction)
        .expect("just seen")
}

#[test]
fn a_gigabyte_goes_to_the_user_and_back_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let big = dir.path().join("big.bin");
    let sha = write_file(&big, 1 << 30);
    let inbox = dir.path().join("user-inbox");
    let back = dir.path().join("back");
    let (mut agent, code) = agent(
        &relay,
        &["--accept-files", inbox.to_str().unwrap(), "--allow-files"],
    );
    let script = dir.path().join("files.script");
    std::fs::write(
        &script,
        format!(
            "send {}\nfetch {} {}\nend\n",
            big.display(),
            inbox.join("big.bin").display(),
            back.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut tech = start_technician(&relay, &code, &["--input-script", script.to_str().unwrap()]);
    assert!(tech.wait_exit(TRANSFER).success(), "{}", tech.transcript());
    eprintln!("1 GiB there and back in {:?}", started.elapsed());

    // To the user: accepted unattended into the folder given, checked there.
    let there = done(&mut agent, "receiving");
    assert_eq!(there["sha256"], sha.as_str());
    assert_eq!(there["by"], "unattended");
    assert_eq!(sha256_of(&inbox.join("big.bin")), sha);
    // And back, fetched where the user allows it.
    let fetched = done(&mut tech, "receiving");
    assert_eq!(fetched["sha256"], sha.as_str());
    assert_eq!(fetched["by"], "requester");
    assert_eq!(sha256_of(&back.join("big.bin")), sha);
    let allowed = agent.wait_event("fetch_allowed", PROMPT);
    assert_eq!(allowed["path"], inbox.join("big.bin").display().to_string());

    // Both files are in the session log, with their SHA-256 and who accepted them.
    let log = tests::verified_log(&mut tech);
    let shown = tests::run("technician", &["log", "show", &log], "");
    let text = shown.text();
    assert!(text.contains(&sha[..16]), "{text}");
    assert!(
        text.contains("to the user") && text.contains("from the user"),
        "{text}"
    );
}

#[test]
fn files_the_user_declines_are_not_written_and_the_step_fails() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"restart the print spooler").unwrap();
    // The agent asks the person on its terminal (no folder given in advance).
    let mut args: Vec<String> = relay.peer_args_on(Side::Agent);
    args.extend(["--json".into(), "--consent".into(), "control".into()]);
    args.extend(screen());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let home_env = home.display().to_string();
    let mut agent = Proc::spawn_env(
        "agent",
        &refs,
        &[("HOME", &home_env), ("XDG_CONFIG_HOME", &home_env)],
        true,
    );
    let code = agent.wait_event("code", PROMPT)["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tech = technician(&relay, &["send", notes.to_str().unwrap()], &code);
    let question = agent.wait_event("files_question", PROMPT);
    assert_eq!(question["technician"], tests::TECHNICIAN);
    assert!(
        question["dir"].as_str().unwrap().starts_with(&home_env),
        "{question}"
    );
    agent.send_line("n");
    let status = tech.wait_exit(PROMPT);
    assert!(!status.success(), "{}", tech.transcript());
    let declined = tech.wait_event("files_declined", PROMPT);
    assert!(
        declined["message"].as_str().unwrap().contains("declined"),
        "{declined}"
    );
    // Nothing landed: no Downloads folder, no partial file.
    let written: Vec<PathBuf> = walk(&home);
    assert!(
        written
            .iter()
            .all(|p| !p.to_string_lossy().contains("notes")),
        "{written:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(walk(&p));
            } else {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_transfer_cut_by_a_relay_restart_resumes_in_the_next_session() {
    let dir = tempfile::tempdir().unwrap();
    let relay_dir = dir.path().join("relay");
    let mut relay = Relay::start(&relay_dir, &[]);
    let big = dir.path().join("big.bin");
    let sha = write_file(&big, 512 << 20);
    let inbox = dir.path().join("user-inbox");
    // The agent gives the session up a second after its link is lost (it would resume it
    // through a relay back within that time, and the file with the next session).
    let (mut first, code) = agent(
        &relay,
        &[
            "--accept-files",
            inbox.to_str().unwrap(),
            "--resume-secs",
            "1",
        ],
    );
    let _tech = technician(&relay, &["send", big.to_str().unwrap()], &code);

    // Cut the relay off once part of the file is on the user's disk; the agent writes what it
    // had received until it gives the connection up.
    let partial = wait_for_partial(&inbox, 32 << 20);
    relay.proc.signal(libc::SIGKILL);
    relay.proc.wait_exit(PROMPT);
    first.wait_exit(PROMPT);
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept < 512 << 20, "the file arrived whole before the cut");

    // The next session, through the relay restarted where it was, carries on from there.
    let addr = relay.addr.clone();
    let relay = Relay::start_at(&addr, &relay_dir, &[]);
    let (mut agent, code) = agent(&relay, &["--accept-files", inbox.to_str().unwrap()]);
    let mut tech = technician(&relay, &["send", big.to_str().unwrap()], &code);
    assert!(tech.wait_exit(TRANSFER).success(), "{}", tech.transcript());
    let arrived = done(&mut agent, "receiving");
    let from = arrived["resumed_from"].as_u64().unwrap();
    assert!(
        from >= 32 << 20 && from <= kept,
        "resumed from {from}; {kept} bytes were kept"
    );
    assert_eq!(arrived["stored_as"], "big.bin");
    assert_eq!(sha256_of(&inbox.join("big.bin")), sha);
    assert!(!partial.exists(), "the partial file took the file's name");
    let accepted = tech.wait_event("files_accepted", PROMPT);
    assert_eq!(accepted["resumed"].as_u64(), Some(from));
}

#[test]
fn a_transfer_cut_by_a_relay_restart_goes_on_in_the_resumed_session() {
    let dir = tempfile::tempdir().unwrap();
    let relay_dir = dir.path().join("relay");
    let relay = Relay::start(&relay_dir, &[]);
    let big = dir.path().join("big.bin");
    let sha = write_file(&big, 512 << 20);
    let inbox = dir.path().join("user-inbox");
    // The user is asked, and saves it in a folder of their choice.
    let screen = screen();
    let mut args = vec!["--consent", "control"];
    args.extend(screen.iter().map(String::as_str));
    let (mut agent, code) = start_agent_asking(&relay, &args);
    let mut tech = technician(&relay, &["send", big.to_str().unwrap()], &code);
    agent.wait_event("files_question", PROMPT);
    agent.send_line(&format!("y {}", inbox.display()));

    // The relay is killed once part of the file is on the user's disk, and started again
    // where it was: the session resumes, and the file goes on from what had arrived, into the
    // same folder without asking the user again.
    wait_for_partial(&inbox, 32 << 20);
    let addr = relay.addr.clone();
    relay.proc.signal(libc::SIGKILL);
    drop(relay);
    let _again = Relay::start_at(&addr, &relay_dir, &[]);
    tech.wait_event("link_resumed", PROMPT);
    let carried = tech.wait_event("files_resumed", PROMPT);
    assert_eq!(carried["steps"], 1, "{carried}");
    assert!(tech.wait_exit(TRANSFER).success(), "{}", tech.transcript());
    let arrived = done(&mut agent, "receiving");
    let from = arrived["resumed_from"].as_u64().unwrap();
    assert!(from >= 32 << 20, "resumed from {from}");
    assert_eq!(arrived["stored_as"], "big.bin");
    assert_eq!(sha256_of(&inbox.join("big.bin")), sha);
    assert_eq!(agent.events("files_question").len(), 1, "asked again");
}

/// Waits until a partial file in `dir` holds at least `len` bytes; its path.
fn wait_for_partial(dir: &Path, len: u64) -> PathBuf {
    let deadline = Instant::now() + TRANSFER;
    while Instant::now() < deadline {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                e.file_name().to_string_lossy().ends_with(".tandem-partial")
                    && e.metadata().is_ok_and(|m| m.len() >= len)
            });
        if let Some(e) = found {
            return e.path();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no partial file of {len} bytes in {}", dir.display());
}

#[test]
fn a_folder_is_browsed_and_a_file_picked_from_it_arrives_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    std::fs::write(shared.join("note.txt"), b"hello").unwrap();
    let sha = write_file(&shared.join("sub").join("pick.bin"), 3 << 20);
    let back = dir.path().join("back");
    let (mut agent, code) = agent(&relay, &["--allow-browse"]);
    let script = dir.path().join("browse.script");
    let sub = shared.join("sub");
    std::fs::write(
        &script,
        format!(
            "ls {}\nls {}\nfetch {} {}\nend\n",
            shared.display(),
            sub.display(),
            sub.join("pick.bin").display(),
            back.display()
        ),
    )
    .unwrap();
    let mut tech = start_technician(&relay, &code, &["--input-script", script.to_str().unwrap()]);
    assert!(tech.wait_exit(TRANSFER).success(), "{}", tech.transcript());

    // The technician saw the folder, folders first, then the one below.
    let listings = tech.events("listing");
    assert_eq!(listings.len(), 2, "{}", tech.transcript());
    let names = |l: &serde_json::Value| -> Vec<(String, bool, u64)> {
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_string();
                (
                    name,
                    e["folder"].as_bool().unwrap(),
                    e["size"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        names(&listings[0]),
        [("sub".into(), true, 0), ("note.txt".into(), false, 5)]
    );
    assert_eq!(names(&listings[1]), [("pick.bin".into(), false, 3 << 20)]);
    assert_eq!(listings[1]["omitted"], 0);
    // The file picked arrived whole.
    assert_eq!(sha256_of(&back.join("pick.bin")), sha);
    // The user was told of each folder looked into.
    agent.wait_line(PROMPT, "the second folder shown to the user", |l| {
        l.contains("listing_served") && l.contains("pick.bin")
    });
    assert_eq!(agent.events("listing_served").len(), 2);
    // The session log says which folders were looked into and how much was there.
    let listed = |path: &Path, folders, files| FolderLook {
        path: path.display().to_string(),
        outcome: FolderOutcome::Listed {
            folders,
            files,
            omitted: 0,
        },
    };
    assert_eq!(
        tests::folder_records(&mut tech),
        [listed(&shared, 1, 1), listed(&sub, 0, 1)]
    );
}

#[test]
fn browsing_is_refused_where_the_user_does_not_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let (_agent, code) = agent(&relay, &[]);
    let folder = dir.path().display().to_string();
    let mut tech = technician(&relay, &["ls", &folder], &code);
    assert!(!tech.wait_exit(PROMPT).success(), "{}", tech.transcript());
    let refused = tech.wait_event("fetch_refused", PROMPT);
    assert!(
        refused["message"].as_str().unwrap().contains("browse"),
        "{refused}"
    );
    assert!(tech.events("listing").is_empty());
    // The log keeps the refusal too.
    let looks = tests::folder_records(&mut tech);
    assert!(
        matches!(looks.as_slice(), [FolderLook { path, outcome: FolderOutcome::Refused { reason } }]
            if *path == folder && reason.contains("browse")),
        "{looks:?}"
    );
}

#[test]
fn the_user_stops_a_file_and_both_ends_say_so_keeping_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let big = dir.path().join("big.bin");
    write_file(&big, 512 << 20);
    let inbox = dir.path().join("user-inbox");
    let inbox_arg = inbox.display().to_string();
    let screen = screen();
    let mut args = vec!["--consent", "control", "--accept-files", &inbox_arg];
    args.extend(screen.iter().map(String::as_str));
    let (mut agent, code) = start_agent_asking(&relay, &args);
    let mut tech = technician(&relay, &["send", big.to_str().unwrap()], &code);
    agent.wait_event("file_started", TRANSFER);
    agent.send_line("s");

    let stopped = agent.wait_event("files_cancelled", PROMPT);
    assert_eq!(stopped["by_other_end"], false);
    assert!(!tech.wait_exit(PROMPT).success(), "{}", tech.transcript());
    let told = tech.wait_event("files_cancelled", PROMPT);
    assert_eq!(told["by_other_end"], true);
    assert!(
        told["message"].as_str().unwrap().contains("user stopped"),
        "{told}"
    );
    // Nothing took the file's name; what arrived waits in the partial file for a resume.
    assert!(!inbox.join("big.bin").exists());
    let partial = walk(&inbox);
    assert!(
        partial
            .iter()
            .all(|p| p.to_string_lossy().ends_with(".tandem-partial")),
        "{partial:?}"
    );
}
