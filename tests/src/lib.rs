//! Harness for the end-to-end tests: starts the real `relay`, `agent` and `technician` binaries
//! as processes, reads their output line by line, and waits on conditions with timeouts.
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

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use harness::{Host, Network, Side};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod x11;

/// `target/<profile>/NAME`, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "the `{name}` binary is missing at {}; build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// A running program whose stdout and stderr lines are collected.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<(bool, String)>,
    /// Every stdout line seen so far.
    pub stdout: Vec<String>,
    /// Every stderr line seen so far.
    pub stderr: Vec<String>,
    status: Option<ExitStatus>,
    stdin: Option<std::process::ChildStdin>,
}

fn pump(r: impl Read + Send + 'static, is_err: bool, tx: mpsc::Sender<(bool, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send((is_err, line)).is_err() {
                return;
            }
        }
    });
}

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
        let mut command = match ns {
            Some(ns) => ns.command(bin(name)),
            None => Command::new(bin(name)),
        };
        let mut child = command
            .args(terminal.then_some("--no-window"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        pump(child.stdout.take().expect("piped"), false, tx.clone());
        pump(child.stderr.take().expect("piped"), true, tx);
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
            stdin,
        }
    }

    /// Writes a line to the program's standard input.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("started with a piped stdin");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("write to stdin");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take(&mut self, (is_err, line): (bool, String)) -> Option<String> {
        if is_err {
            self.stderr.push(line);
            None
        } else {
            self.stdout.push(line.clone());
            Some(line)
        }
    }

    /// Everything seen, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.join("\n"),
            self.name,
            self.stderr.join("\n")
        )
    }

    /// Waits for a stdout line matching `pred`, failing with the transcript after `timeout`.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(l) = self.stdout.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(item) => {
                    if let Some(line) = self.take(item) {
                        if pred(&line) {
                            return line;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{} did not print {what} within {timeout:?}\n{}",
                        self.name,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{} ended without printing {what}\n{}",
                        self.name,
                        self.transcript()
                    )
                }
            }
        }
    }

    /// Waits for a JSON status event `{"event": event, …}` on stdout.
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> Value {
        let line = self.wait_line(timeout, &format!("a `{event}` event"), |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == event)
        });
        serde_json::from_str(&line).expect("checked above")
    }

    /// All JSON events named `event` seen so far on stdout.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Waits for the process to exit, collecting the rest of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(item) = self.lines.try_recv() {
                self.take(item);
            }
            if let Some(s) = self.child.try_wait().expect("wait on child") {
                // Drain what the pipes still hold.
                while let Ok(item) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.take(item);
                }
                self.status = Some(s);
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `limit` for the process to exit, collecting output meanwhile; `None` if it
    /// is still running then.
    pub fn wait_exit_or(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            while let Ok(item) = self.lines.recv_timeout(Duration::from_millis(10)) {
                self.take(item);
            }
            if let Some(s) = self.child.try_wait().expect("wait on child") {
                self.status = Some(s);
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
        }
    }

    /// Sends a signal (SIGKILL, SIGTERM, SIGINT).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Both outputs, for assertions and failure messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `name` with `args` and `stdin` as its whole standard input.
pub fn run(name: &str, args: &[&str], stdin: &str) -> Ran {
    run_in(None, name, args, stdin)
}

/// As [`run`], inside network namespace `ns` when one is given.
pub fn run_in(ns: Option<&harness::netns::Netns>, name: &str, args: &[&str], stdin: &str) -> Ran {
    use std::io::Write;
    let mut command = match ns {
        Some(ns) => ns.command(bin(name)),
        None => Command::new(bin(name)),
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut input = child.stdin.take().expect("piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait for the command");
    Ran {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
        let dir = data_dir.to_str().expect("utf-8 path");
        let mut args = vec!["--listen", listen, "--data-dir", dir];
        args.extend_from_slice(extra);
        let ns = net.map(|n| n.netns(Host::Relay));
        let mut proc = Proc::spawn_in(ns, program, &args, &[], false);
        let listen = proc.wait_line(PROMPT, "its address", |l| l.contains("listening on "));
        let addr = listen
            .split_whitespace()
            .nth(2)
            .expect("listening on ADDR")
            .to_string();
        let fp = proc.wait_line(PROMPT, "its fingerprint", |l| {
            l.contains("fingerprint (SHA-256): ")
        });
        let fingerprint = fp
            .split("fingerprint (SHA-256): ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("fingerprint")
            .to_string();
        Relay {
            proc,
            addr,
            fingerprint,
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
        let dir = self.data_dir.display().to_string();
        let mut all = vec!["--data-dir", &dir, "user"];
        all.extend_from_slice(args);
        run("relay", &all, stdin)
    }

    /// Creates an account (`relay user add`, the password on stdin); panics if that fails.
    pub fn add_user(&self, name: &str, tier: u8, password: &str) {
        let tier = tier.to_string();
        let r = self.user(&["add", name, "--tier", &tier], &format!("{password}\n"));
        assert!(r.success, "relay user add {name} failed: {}", r.text());
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
        let mut c = link::RelayConnection::connect(
            &self.addr,
            self.fingerprint(),
            protocol::control::Role::Technician,
        )
        .await
        .expect("connect to the relay");
        c.login(TECHNICIAN, TECHNICIAN_PASSWORD)
            .await
            .expect("log in as the test technician");
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
    let mut all: Vec<String> = relay.peer_args_on(Side::Agent);
    all.push("--json".into());
    if !args.contains(&"--consent") {
        all.extend(["--consent".into(), "control".into()]);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_in(relay.netns_of(Side::Agent), "agent", &refs, &[], false);
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

/// Starts a technician joining `code` with `args` (plus relay, the test's logins file and
/// `--json`), logged in or not.
pub fn start_technician_unprepared(relay: &Relay, code: &str, args: &[&str]) -> Proc {
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
        &[],
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
