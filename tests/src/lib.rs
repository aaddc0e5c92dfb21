//! Harness for the end-to-end tests: starts the real `relay`, `agent` and `technician` binaries
//! as processes, reads their output line by line, and waits on conditions with timeouts. The
//! processes, the relay's start-up and Xvfb are the `harness` crate's, shared with the
//! benches; here they are wrapped for tests, which fail (with the process's transcript) where
//! the harness returns an error.
//!
//! Technicians log in first: [`start_technician`] creates the account [`TECHNICIAN`] on the
//! test relay (`relay user add`, password on stdin) and logs in with `technician login` once per
//! relay. The peers keep their known relays and logins in the test's directory, never the
//! user's.
//!
//! The binaries are the ones `cargo build --workspace` put beside the test executable's
//! directory (`target/<profile>/`); a missing one is a clear failure, never a skip.
//!
//! A relay started with [`Relay::start_in`] runs in the relay's namespace of a
//! [`harness::Network`]; [`start_agent`] and [`start_technician`] then start the peers in their
//! own namespaces, each reaching the relay over its own shaped link.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use harness::process::{Options, Process};
use harness::{Host, Network, Side};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use harness::process::Ran;

pub mod desk;
pub mod x11;

/// `target/<profile>/NAME`, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    must(harness::programs::sibling_binary(
        name,
        "cargo build --workspace",
    ))
}

/// The value, or a failed test saying why (with the process's transcript, for a wait).
#[track_caller]
fn must<T, E: Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// A running program whose stdout and stderr lines are collected
/// ([`harness::process::Process`]); a wait that fails, fails the test. Dropping it kills it.
pub struct Proc(Process);

impl Proc {
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        Self::spawn_env(name, args, &[], false)
    }

    /// Starts `name` with extra environment variables; with `stdin`, its standard input is a
    /// pipe the test writes to with [`Proc::send_line`] (else it reads an empty input).
    ///
    /// An `agent` stays in the terminal (`--no-window`) unless `args` ask for `--window`: the
    /// tests answer it on its standard input, whatever `DISPLAY` the tests run under.
    pub fn spawn_env(name: &str, args: &[&str], env: &[(&str, &str)], stdin: bool) -> Proc {
        Self::spawn_in(None, name, args, env, stdin)
    }

    /// As [`Proc::spawn_env`], inside network namespace `ns` when one is given.
    pub fn spawn_in(
        ns: Option<&harness::netns::Netns>,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: bool,
    ) -> Proc {
        let terminal = name == "agent" && !args.contains(&"--window");
        let mut command = harness::process::command(ns, bin(name));
        command
            .args(terminal.then_some("--no-window"))
            .args(args)
            .envs(env.iter().copied());
        let options = Options {
            stdin,
            ..Options::default()
        };
        Proc(must(Process::start(name, command, options)))
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Every stdout line seen so far.
    pub fn stdout(&self) -> &[String] {
        self.0.stdout()
    }

    /// Every stderr line seen so far.
    pub fn stderr(&self) -> &[String] {
        self.0.stderr()
    }

    /// Writes a line to the program's standard input.
    pub fn send_line(&mut self, line: &str) {
        must(self.0.send_line(line))
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Everything seen, for failure messages.
    pub fn transcript(&self) -> String {
        self.0.transcript()
    }

    /// Waits for a stdout line matching `pred`, failing with the transcript after `timeout`.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        must(
            self.0
                .wait_line(timeout, what, |l| pred(l).then(|| l.to_string())),
        )
    }

    /// Waits for a JSON status event `{"event": event, …}` on stdout.
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> Value {
        let what = format!("a `{event}` event");
        must(self.0.wait_line(timeout, &what, |l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["event"] == event)
        }))
    }

    /// Waits for a JSON status event `{"event": event, …}` printed after the first `after`
    /// event (the first screen update after `link_resumed`, not one from before), with `pick`
    /// true of it.
    pub fn wait_event_after(
        &mut self,
        after: &str,
        event: &str,
        timeout: Duration,
        pick: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("a `{event}` event after `{after}`");
        let mut seen = false;
        must(self.0.wait_line(timeout, &what, |l| {
            let v = serde_json::from_str::<Value>(l).ok()?;
            if !seen {
                seen = v["event"] == after;
                return None;
            }
            (v["event"] == event && pick(&v)).then_some(v)
        }))
    }

    /// All JSON events named `event` seen so far on stdout.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.stdout()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Waits for the process to exit, collecting the rest of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        must(self.0.wait_exit(timeout))
    }

    /// Waits up to `limit` for the process to exit, collecting output meanwhile; `None` if it
    /// is still running then.
    pub fn wait_exit_or(&mut self, limit: Duration) -> Option<ExitStatus> {
        must(self.0.wait_exit_or(limit))
    }

    /// Sends a signal (SIGKILL, SIGTERM, SIGINT).
    pub fn signal(&self, sig: i32) {
        self.0.signal(sig)
    }
}

/// Default wait for things that happen promptly.
pub const PROMPT: Duration = Duration::from_secs(20);

/// The account [`start_technician`] logs in with.
pub const TECHNICIAN: &str = "tess";
/// Its password.
pub const TECHNICIAN_PASSWORD: &str = "a long test password";
/// Its tier.
pub const TECHNICIAN_TIER: u8 = 2;

/// Runs `name` with `args` and `stdin` as its whole standard input.
pub fn run(name: &str, args: &[&str], stdin: &str) -> Ran {
    run_in(None, name, args, stdin)
}

/// As [`run`], inside network namespace `ns` when one is given.
pub fn run_in(ns: Option<&harness::netns::Netns>, name: &str, args: &[&str], stdin: &str) -> Ran {
    let mut command = harness::process::command(ns, bin(name));
    command.args(args);
    must(harness::process::run(name, command, stdin))
}

/// A relay configuration file `relay.toml` in `dir` holding `body`; returns its path, for
/// `--config`.
pub fn relay_config(dir: &Path, body: &str) -> String {
    let path = dir.join("relay.toml");
    std::fs::write(&path, body).expect("write the relay's config file");
    path.display().to_string()
}

/// A relay process on a free loopback port, or in the relay's namespace of a network.
pub struct Relay {
    pub proc: Proc,
    /// Where it listens (in its namespace, for a relay of a network).
    pub addr: String,
    pub fingerprint: String,
    pub data_dir: PathBuf,
    technician_ready: OnceLock<()>,
    /// The network it runs in, if not this machine's loopback.
    pub net: Option<Arc<Network>>,
}

impl Relay {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Relay {
        Self::start_at("127.0.0.1:0", data_dir, extra)
    }

    /// A relay listening on `listen` (`127.0.0.1:0` picks a free port).
    pub fn start_at(listen: &str, data_dir: &Path, extra: &[&str]) -> Relay {
        Self::start_program_at("relay", listen, data_dir, extra)
    }

    /// Starts `program` (`relay`, or `hostile-relay`, which prints the same start-up lines).
    pub fn start_program(program: &str, data_dir: &Path, extra: &[&str]) -> Relay {
        Self::start_program_at(program, "127.0.0.1:0", data_dir, extra)
    }

    /// A relay in the relay's namespace of `net`, listening on
    /// [`harness::network::RELAY_LISTEN`]; peers reach it over their links.
    pub fn start_in(net: Arc<Network>, data_dir: &Path, extra: &[&str]) -> Relay {
        let listen = harness::network::RELAY_LISTEN;
        let mut relay = Self::start_program_in(Some(&net), "relay", listen, data_dir, extra);
        relay.net = Some(net);
        relay
    }

    fn start_program_at(program: &str, listen: &str, data_dir: &Path, extra: &[&str]) -> Relay {
        Self::start_program_in(None, program, listen, data_dir, extra)
    }

    fn start_program_in(
        net: Option<&Network>,
        program: &str,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
    ) -> Relay {
        let ns = net.map(|n| n.netns(Host::Relay));
        let mut command = harness::relay::command(&bin(program), listen, data_dir, ns);
        command.args(extra);
        let relay = must(harness::relay::Relay::start(
            program,
            command,
            Options::default(),
            PROMPT,
        ));
        Relay {
            proc: Proc(relay.process),
            addr: relay.addr.to_string(),
            fingerprint: relay.fingerprint,
            data_dir: data_dir.to_path_buf(),
            technician_ready: OnceLock::new(),
            net: None,
        }
    }

    /// Arguments every peer needs to reach this relay (with the fingerprint given); for a
    /// relay on loopback (see [`Relay::peer_args_on`] for one in a network).
    pub fn peer_args(&self) -> Vec<String> {
        assert!(
            self.net.is_none(),
            "a relay in a network has an address for each side: use peer_args_on"
        );
        self.peer_args_at(self.addr.clone())
    }

    /// Where a peer on `side` reaches this relay.
    pub fn addr_on(&self, side: Side) -> String {
        match &self.net {
            Some(_) => Network::relay_addr(side).to_string(),
            None => self.addr.clone(),
        }
    }

    /// The network namespace of the peers on `side`, for a relay in a network.
    pub fn netns_of(&self, side: Side) -> Option<&harness::netns::Netns> {
        let host = match side {
            Side::Agent => Host::Agent,
            Side::Technician => Host::Technician,
        };
        self.net.as_deref().map(|n| n.netns(host))
    }

    /// For a relay in a network: the relay's own namespace, and the arguments a peer there
    /// needs to reach it directly, over no shaped link.
    pub fn beside(&self) -> (Option<&harness::netns::Netns>, Vec<String>) {
        let net = self.net.as_deref().expect("beside: a relay in a network");
        (
            Some(net.netns(Host::Relay)),
            self.peer_args_at(harness::network::RELAY_LISTEN.to_string()),
        )
    }

    /// Arguments a peer on `side` needs to reach this relay.
    pub fn peer_args_on(&self, side: Side) -> Vec<String> {
        self.peer_args_at(self.addr_on(side))
    }

    fn peer_args_at(&self, addr: String) -> Vec<String> {
        vec![
            "--relay".into(),
            addr,
            "--fingerprint".into(),
            self.fingerprint.clone(),
            "--known-relays".into(),
            self.known_relays_file().display().to_string(),
        ]
    }

    /// The peers' known-relays file for this test.
    pub fn known_relays_file(&self) -> PathBuf {
        self.data_dir.join("known-relays.json")
    }

    /// The technicians' logins file for this test.
    pub fn tokens_file(&self) -> PathBuf {
        self.data_dir.join("tokens.json")
    }

    /// Runs `relay --data-dir DIR user ARGS…` with `stdin`.
    pub fn user(&self, args: &[&str], stdin: &str) -> Ran {
        must(harness::relay::user(
            &bin("relay"),
            &self.data_dir,
            args,
            stdin,
        ))
    }

    /// Creates an account (`relay user add`, the password on stdin); panics if that fails.
    pub fn add_user(&self, name: &str, tier: u8, password: &str) {
        must(harness::relay::add_user(
            &bin("relay"),
            &self.data_dir,
            name,
            tier,
            password,
        ))
    }

    /// Runs `technician login` as `name` (the password on stdin), with the test's files
    /// (in the technician's namespace, for a relay in a network).
    pub fn login(&self, name: &str, password: &str) -> Ran {
        let mut args = vec!["login".to_string(), "--user".into(), name.into()];
        args.extend(self.peer_args_on(Side::Technician));
        args.extend([
            "--tokens".into(),
            self.tokens_file().display().to_string(),
            "--json".into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let ns = self.netns_of(Side::Technician);
        run_in(ns, "technician", &refs, &format!("{password}\n"))
    }

    /// Creates [`TECHNICIAN`] (unless a relay before this one on the same data directory
    /// did) and logs in as it, once.
    pub fn ensure_technician(&self) {
        self.technician_ready.get_or_init(|| {
            let tier = TECHNICIAN_TIER.to_string();
            let r = self.user(
                &["add", TECHNICIAN, "--tier", &tier],
                &format!("{TECHNICIAN_PASSWORD}\n"),
            );
            assert!(
                r.success || r.text().contains("already exists"),
                "relay user add {TECHNICIAN} failed: {}",
                r.text()
            );
            let r = self.login(TECHNICIAN, TECHNICIAN_PASSWORD);
            assert!(r.success, "technician login failed: {}", r.text());
        });
    }

    /// An in-process technician connection to this relay, logged in as [`TECHNICIAN`].
    pub async fn technician_connection(&self) -> link::RelayConnection {
        self.ensure_technician();
        self.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await
    }

    /// An in-process technician connection logged in as `name` of `tier`, whose account is
    /// created (with the password [`TECHNICIAN_PASSWORD`]) unless it exists.
    pub async fn technician_connection_as(&self, name: &str, tier: u8) -> link::RelayConnection {
        let t = tier.to_string();
        let r = self.user(
            &["add", name, "--tier", &t],
            &format!("{TECHNICIAN_PASSWORD}\n"),
        );
        assert!(
            r.success || r.text().contains("already exists"),
            "relay user add {name} failed: {}",
            r.text()
        );
        self.logged_in(name, TECHNICIAN_PASSWORD).await
    }

    /// An in-process technician connection logged in as `name` with `password` (an account
    /// made beforehand).
    pub async fn logged_in(&self, name: &str, password: &str) -> link::RelayConnection {
        let mut c = link::RelayConnection::connect(
            &self.addr,
            self.fingerprint(),
            protocol::control::Role::Technician,
        )
        .await
        .expect("connect to the relay");
        c.login(name, password)
            .await
            .unwrap_or_else(|e| panic!("log in as {name}: {e}"));
        c
    }

    pub fn fingerprint(&self) -> link::Fingerprint {
        self.fingerprint
            .parse()
            .expect("relay prints a valid fingerprint")
    }
}

/// Starts an agent with `args` (plus relay and `--json`, and `--consent control` unless
/// `args` say otherwise) and waits for its session code: the whole code, rendezvous part and
/// secret part (`123456789-4821`), as the user would read it out.
pub fn start_agent(relay: &Relay, args: &[&str]) -> (Proc, String) {
    let mut all = vec![];
    if !args.contains(&"--consent") {
        all.extend(["--consent", "control"]);
    }
    all.extend(args);
    spawn_agent(relay, &all, false)
}

/// Starts an agent whose terminal the test types into ([`Proc::send_line`]), on `relay` with
/// `args` as given (plus relay and `--json`; no consent preset, so the user is asked unless
/// `args` say otherwise); returns it with its code.
pub fn start_agent_asking(relay: &Relay, args: &[&str]) -> (Proc, String) {
    spawn_agent(relay, args, true)
}

fn spawn_agent(relay: &Relay, args: &[&str], stdin: bool) -> (Proc, String) {
    let mut all: Vec<String> = relay.peer_args_on(Side::Agent);
    all.push("--json".into());
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_in(relay.netns_of(Side::Agent), "agent", &refs, &[], stdin);
    let code = agent.wait_event("code", PROMPT)["code"]
        .as_str()
        .expect("code is a string")
        .to_string();
    (agent, code)
}

/// Starts a technician, logged in as [`TECHNICIAN`], joining `code` with `args` (plus relay
/// and `--json`).
pub fn start_technician(relay: &Relay, code: &str, args: &[&str]) -> Proc {
    relay.ensure_technician();
    start_technician_unprepared(relay, code, args)
}

/// As [`start_technician`], with extra environment variables (`DISPLAY`, for a technician
/// sharing its own X display's clipboard).
pub fn start_technician_env(
    relay: &Relay,
    code: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    relay.ensure_technician();
    technician_proc(relay, code, args, env)
}

/// Starts a technician joining `code` with `args` (plus relay, the test's logins file and
/// `--json`), logged in or not.
pub fn start_technician_unprepared(relay: &Relay, code: &str, args: &[&str]) -> Proc {
    technician_proc(relay, code, args, &[])
}

fn technician_proc(relay: &Relay, code: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut all: Vec<String> = vec!["connect".into(), code.into()];
    all.extend(relay.peer_args_on(Side::Technician));
    all.push("--tokens".into());
    all.push(relay.tokens_file().display().to_string());
    all.push("--json".into());
    // Every session is recorded: into the test's own directory, not the user's.
    all.push("--log-dir".into());
    all.push(relay.data_dir.join("technician-logs").display().to_string());
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    Proc::spawn_in(
        relay.netns_of(Side::Technician),
        "technician",
        &refs,
        env,
        false,
    )
}

/// SHA-256 (hex) of every frame of a SCRNSEQ1 file, in order.
pub fn frame_hashes(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("corpus file");
    let mut r =
        protocol::scrnseq::Reader::new(std::io::BufReader::new(file)).expect("corpus header");
    let mut out = Vec::new();
    while let Some((_, frame)) = r.next_frame().expect("corpus frame") {
        out.push(hex::encode(Sha256::digest(frame)));
    }
    out
}

/// Runs `technician log verify PATH`; returns its exit code and what it printed.
pub fn verify_log(path: &str) -> (i32, String) {
    let out = Command::new(bin("technician"))
        .args(["log", "verify", path])
        .output()
        .expect("run technician log verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// SHA-256 (hex) of the screen at the end of a session log, replayed.
pub fn replayed_end_sha256(path: &str) -> String {
    let file = std::fs::File::open(path).expect("session log");
    let reader =
        protocol::sessionlog::LogReader::new(std::io::BufReader::new(file)).expect("a session log");
    let mut player = protocol::sessionlog::Player::new(reader);
    player.run_to_end().expect("the log replays");
    hex::encode(Sha256::digest(player.framebuffer().pixels()))
}

/// The path of the session log the technician `tech` recorded, once it says so; the log
/// verifies whole.
pub fn verified_log(tech: &mut Proc) -> String {
    let log = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .expect("the log's path")
        .to_string();
    let (code, text) = verify_log(&log);
    assert_eq!(code, 0, "{text}");
    log
}

/// The session log the technician `tech` recorded, once it says so: it verifies whole, and
/// records one loss of the link and its resume through the relay at `relay`.
pub fn log_with_one_resume(tech: &mut Proc, relay: &str) -> String {
    use protocol::sessionlog::LinkChange;
    let log = verified_log(tech);
    let links = link_records(&log);
    assert!(
        matches!(links.as_slice(), [LinkChange::Lost { .. }, LinkChange::Resumed { relay: r }] if r == relay),
        "{links:?}"
    );
    log
}

/// The records of a session log that `pick` keeps, in order.
pub fn log_records<T>(
    path: &str,
    pick: impl Fn(protocol::sessionlog::Record) -> Option<T>,
) -> Vec<T> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = protocol::sessionlog::LogReader::new(std::io::BufReader::new(file)).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record().unwrap() {
        if let Some(t) = rec.decode().ok().and_then(&pick) {
            out.push(t);
        }
    }
    out
}

/// The link records of a session log, in order.
pub fn link_records(path: &str) -> Vec<protocol::sessionlog::LinkChange> {
    log_records(path, |r| match r {
        protocol::sessionlog::Record::Link(l) => Some(l),
        _ => None,
    })
}

/// The folder records of the session log the technician `tech` recorded, once it says so;
/// the log verifies whole.
pub fn folder_records(tech: &mut Proc) -> Vec<protocol::sessionlog::FolderLook> {
    log_records(&verified_log(tech), |r| match r {
        protocol::sessionlog::Record::Folder(f) => Some(f),
        _ => None,
    })
}

/// Checks that the input the agent recorded at `record` (`agent --input record:FILE`) is every
/// event of the input script `script`, in order, then the release of anything held when the
/// session ended.
pub fn assert_script_input_arrived(script: &str, record: &Path) {
    let steps = technician::script::parse(script, "test").expect("the script parses");
    let expected: Vec<Value> = steps
        .iter()
        .flat_map(|s| technician::script::events(&s.action))
        .map(|e| serde_json::to_value(e).expect("an input event as JSON"))
        .collect();
    let recorded: Vec<Value> = std::fs::read_to_string(record)
        .expect("the recorded input")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a recorded input event"))
        .collect();
    let (last, events) = recorded.split_last().expect("something was recorded");
    assert_eq!(
        last, "ReleaseAll",
        "held input is released when the session ends"
    );
    assert_eq!(events.len(), expected.len());
    assert_eq!(events, &expected[..]);
}
