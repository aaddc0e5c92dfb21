//! Trust on first use: without `--fingerprint`, the first connection to a relay address
//! remembers its certificate; a relay with another certificate at that address is refused with
//! both fingerprints and the way to accept it, and is accepted after that step.

use std::path::Path;

use serde_json::Value;
use tests::{data, run, Proc, Ran, Relay, PROMPT, TECHNICIAN, TECHNICIAN_PASSWORD};

/// `technician login` to `relay` with the given known-relays and logins files, with or without
/// an explicit fingerprint.
fn login(relay: &Relay, known: &Path, fingerprint: Option<&str>) -> Ran {
    let known = known.display().to_string();
    let tokens = known.replace("known-relays", "tokens");
    let mut args = vec![
        "login",
        "--relay",
        &relay.addr,
        "--user",
        TECHNICIAN,
        "--known-relays",
        &known,
        "--tokens",
        &tokens,
        "--json",
    ];
    if let Some(f) = fingerprint {
        args.extend(["--fingerprint", f]);
    }
    run("technician", &args, &format!("{TECHNICIAN_PASSWORD}\n"))
}

/// An agent without `--fingerprint`; its session code once it has one, or its failure.
fn agent(relay: &Relay, known: &Path) -> Proc {
    let known = known.display().to_string();
    let src = format!("corpus:{}", data("idle-clock.scrn").display());
    Proc::spawn(
        "agent",
        &[
            "--relay",
            &relay.addr,
            "--known-relays",
            &known,
            "--source",
            &src,
            "--consent",
            "control",
            "--json",
        ],
    )
}

fn events(ran: &Ran, name: &str) -> Vec<Value> {
    ran.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}

#[test]
fn first_use_remembers_the_relay_and_a_changed_certificate_is_refused_until_accepted() {
    let first_dir = tempfile::tempdir().unwrap();
    let peers = tempfile::tempdir().unwrap();
    let known = peers.path().join("known-relays.json");

    let mut first = Relay::start(first_dir.path(), &[]);
    first.add_user(TECHNICIAN, 1, TECHNICIAN_PASSWORD);
    // First use: accepted, and the fingerprint remembered.
    let r = login(&first, &known, None);
    assert!(r.success, "{}", r.text());
    let trusted = events(&r, "relay_trusted");
    assert_eq!(trusted.len(), 1, "{}", r.text());
    assert_eq!(trusted[0]["first_use"], true);
    assert_eq!(trusted[0]["fingerprint"], first.fingerprint.as_str());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&known).unwrap()).unwrap();
    assert_eq!(
        file["relays"][first.addr.as_str()],
        first.fingerprint.as_str()
    );
    // Later connections check it silently, and the agent shares the file.
    let r = login(&first, &known, None);
    assert!(
        r.success && events(&r, "relay_trusted").is_empty(),
        "{}",
        r.text()
    );
    let mut a = agent(&first, &known);
    a.wait_event("code", PROMPT);
    drop(a);

    // Another relay, with a new certificate, at the same address.
    first.proc.signal(libc::SIGTERM);
    first.proc.wait_exit(PROMPT);
    let second_dir = tempfile::tempdir().unwrap();
    let second = Relay::start_at(&first.addr, second_dir.path(), &[]);
    assert_eq!(second.addr, first.addr);
    assert_ne!(second.fingerprint, first.fingerprint);
    second.add_user(TECHNICIAN, 1, TECHNICIAN_PASSWORD);

    let r = login(&second, &known, None);
    assert!(!r.success);
    let msg = r.text();
    for part in [
        format!(
            "presented a certificate with fingerprint {}",
            second.fingerprint
        ),
        format!("remembered fingerprint {}", first.fingerprint),
        format!("--fingerprint {}", second.fingerprint),
    ] {
        assert!(msg.contains(&part), "missing `{part}` in: {msg}");
    }
    let mut a = agent(&second, &known);
    assert!(!a.wait_exit(PROMPT).success());
    let err = a.wait_event("error", PROMPT);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains(&second.fingerprint),
        "{err}"
    );

    // The documented step: connect once with the new fingerprint. From then on it is the one.
    let r = login(&second, &known, Some(&second.fingerprint));
    assert!(r.success, "{}", r.text());
    assert_eq!(events(&r, "relay_trusted")[0]["first_use"], false);
    let r = login(&second, &known, None);
    assert!(r.success, "{}", r.text());
    let mut a = agent(&second, &known);
    a.wait_event("code", PROMPT);

    // An explicit fingerprint that does not match is refused whatever is remembered.
    let r = login(&second, &known, Some(&first.fingerprint));
    assert!(!r.success);
    assert!(
        r.text().contains(&format!(
            "fingerprint {}, but {} was expected",
            second.fingerprint, first.fingerprint
        )),
        "{}",
        r.text()
    );
}
