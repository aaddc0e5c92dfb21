//! The support desk's programs as the end-to-end tests run them: technicians with accounts of
//! their own (each logged in with its own logins file), an agent asking for help, and a
//! technician taking, monitoring or reading the session logs.

use std::path::Path;

use harness::netns::Netns;

use crate::{data, run, run_in, Proc, Relay, TECHNICIAN_PASSWORD};

/// Where a technician's program runs (a network namespace, or none) and the arguments that
/// reach the relay from there.
pub struct At<'a> {
    pub ns: Option<&'a Netns>,
    pub peer_args: Vec<String>,
}

impl<'a> At<'a> {
    /// Beside a relay on loopback.
    pub fn loopback(relay: &Relay) -> At<'a> {
        At {
            ns: None,
            peer_args: relay.peer_args(),
        }
    }
}

/// Creates account `name` of `tier` (with `extra` arguments of `relay user add`, e.g. `--role
/// lead`) and logs it in with its own logins file; returns the file.
pub fn log_in_as(relay: &Relay, dir: &Path, name: &str, tier: u8, extra: &[&str]) -> String {
    log_in_at(relay, &At::loopback(relay), dir, name, tier, extra)
}

/// As [`log_in_as`], logging in from `at`.
pub fn log_in_at(
    relay: &Relay,
    at: &At,
    dir: &Path,
    name: &str,
    tier: u8,
    extra: &[&str],
) -> String {
    let t = tier.to_string();
    let mut add = vec!["add", name, "--tier", &t];
    add.extend(extra);
    let r = relay.user(&add, &format!("{TECHNICIAN_PASSWORD}\n"));
    assert!(r.success, "relay user add {name}: {}", r.text());
    login_at(at, dir, name)
}

/// Logs the existing account `name` in from `at` with its own logins file in `dir`; returns the
/// file.
pub fn login_at(at: &At, dir: &Path, name: &str) -> String {
    let tokens = dir
        .join(format!("{name}-tokens.json"))
        .display()
        .to_string();
    let mut args = vec!["login".to_string(), "--user".into(), name.into()];
    args.extend(at.peer_args.iter().cloned());
    args.extend(["--tokens", &tokens, "--json"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_in(
        at.ns,
        "technician",
        &refs,
        &format!("{TECHNICIAN_PASSWORD}\n"),
    );
    assert!(r.success, "technician login as {name}: {}", r.text());
    tokens
}

/// `agent --request` for "the printer stops after each page" with `--consent consent` (with
/// `ask`, the test answers on the agent's standard input), sharing the corpus file
/// `typing.scrn` unless `extra` names another `--source`.
pub fn request_help(relay: &Relay, consent: &str, extra: &[&str]) -> Proc {
    let source = format!("corpus:{}", data("typing.scrn").display());
    let mut args = relay.peer_args();
    args.extend(
        [
            "--json",
            "--consent",
            consent,
            "--request",
            "the printer stops after each page",
        ]
        .map(String::from),
    );
    if !extra.contains(&"--source") {
        args.extend(["--source".to_string(), source]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn_env("agent", &refs, &[], consent == "ask")
}

/// `technician COMMAND…` (`take --next`, `monitor SESSION`) with a logins file, an input
/// script and `extra` arguments; recorded into `dir/logs`.
pub fn technician(
    relay: &Relay,
    dir: &Path,
    tokens: &str,
    command: &[&str],
    script: &str,
    extra: &[&str],
) -> Proc {
    technician_at(&At::loopback(relay), dir, tokens, command, script, extra)
}

/// As [`technician`], run at `at`.
pub fn technician_at(
    at: &At,
    dir: &Path,
    tokens: &str,
    command: &[&str],
    script: &str,
    extra: &[&str],
) -> Proc {
    let file = dir.join(format!("script-{}.txt", unique()));
    std::fs::write(&file, script).unwrap();
    let logs = dir.join("logs").display().to_string();
    let file = file.display().to_string();
    let mut args: Vec<String> = command.iter().map(|a| a.to_string()).collect();
    args.extend(at.peer_args.iter().cloned());
    args.extend(
        [
            "--tokens",
            tokens,
            "--json",
            "--log-dir",
            &logs,
            "--input-script",
            &file,
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn_in(at.ns, "technician", &refs, &[], false)
}

/// `technician take --next` (see [`technician`]).
pub fn take_next(relay: &Relay, dir: &Path, tokens: &str, script: &str, extra: &[&str]) -> Proc {
    technician(relay, dir, tokens, &["take", "--next"], script, extra)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// What `technician log show` prints of a log.
pub fn log_text(path: &str) -> String {
    let r = run("technician", &["log", "show", path], "");
    assert!(r.success, "technician log show {path}: {}", r.text());
    r.stdout
}

/// The path of the session log a technician recorded (its `recorded` event).
pub fn recorded_log(tech: &mut Proc) -> String {
    tech.wait_event("recorded", crate::PROMPT)["path"]
        .as_str()
        .expect("the log's path")
        .to_string()
}
