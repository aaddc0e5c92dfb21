//! The processes the end-to-end bench starts (Xvfb, the relay, the agent, the VNC servers):
//! each behind a [`Spawned`] guard that kills it when dropped, also on error, and with
//! `PR_SET_PDEATHSIG` so that the kernel kills it if the bench itself dies without unwinding.
//! Output lines are read on a thread so that a chatty child never blocks on a full pipe.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process that is killed when this guard drops.
pub struct Spawned {
    pub name: String,
    child: Child,
    lines: Option<Receiver<String>>,
}

impl Spawned {
    /// Starts `command` (stdout piped and read line by line, stderr discarded unless
    /// `show_stderr`), dying with the bench.
    pub fn start(name: &str, command: Command, show_stderr: bool) -> anyhow::Result<Self> {
        let stderr = if show_stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::start_with_stderr(name, command, stderr)
    }

    /// Starts `command` with its stderr going to `log` (a file, read back with [`log_tail`]
    /// when the process fails), stdout piped and read line by line.
    pub fn start_logged(name: &str, command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        Self::start_with_stderr(name, command, Stdio::from(file))
    }

    fn start_with_stderr(name: &str, mut command: Command, stderr: Stdio) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe and only changes this child's own attributes.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || pump(stdout, tx));
        Ok(Self {
            name: name.to_string(),
            child,
            lines: Some(rx),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Hands over the stdout lines, for a caller that reads them on its own thread from now on.
    pub fn take_lines(&mut self) -> anyhow::Result<Receiver<String>> {
        self.lines.take().context("output already given up")
    }

    /// Waits for a stdout line for which `pick` returns something.
    pub fn wait_line<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        let lines = self.lines.as_ref().context("output already given up")?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(t) = pick(&line) {
                        return Ok(t);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "{} did not print {what} within {} s",
                        self.name,
                        limit.as_secs()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "{} ended before printing {what}{}",
                        self.name,
                        status.map(|s| format!(" ({s})")).unwrap_or_default()
                    )
                }
            }
        }
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited unexpectedly ({status})", self.name);
        }
        Ok(())
    }
}

fn pump(r: impl Read, tx: mpsc::Sender<String>) {
    for line in BufReader::new(r).lines() {
        let Ok(line) = line else { return };
        // Nobody listening any more: keep draining so the child never blocks on the pipe.
        let _ = tx.send(line);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: a signal to the child this guard started and has not reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log file, for an error message; empty if it cannot be read.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `NAME` next to the bench executable (`target/release/NAME` for a release bench).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where the bench executable is")?;
    let dir = exe
        .parent()
        .context("the bench executable has no parent directory")?;
    let bin = dir.join(name);
    if !bin.is_file() {
        bail!(
            "the {name} binary is missing: expected {} next to the bench; build it first with \
             `cargo build --release -p relay -p agent -p technician`",
            bin.display()
        );
    }
    Ok(bin)
}

/// Whether `program` can be found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

/// A free TCP port on loopback (free when asked; the server binds it right after).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free TCP port")?;
    Ok(l.local_addr()?.port())
}

/// Waits until something accepts TCP connections on loopback `port`.
pub fn wait_listening(proc: &mut Spawned, port: u16, limit: Duration) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    loop {
        proc.check_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} does not accept connections on port {port} after {} s",
                proc.name,
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private X server: Xvfb on a display it picks itself (`-displayfd`).
pub struct Xvfb {
    pub proc: Spawned,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Xvfb {
    pub fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        Self::start_with(width, height, &[])
    }

    /// Starts Xvfb with `extra` arguments as well (e.g. `+extension GLX`).
    pub fn start_with(width: u32, height: u32, extra: &[&str]) -> anyhow::Result<Self> {
        if !on_path("Xvfb") {
            bail!("Xvfb is missing: this bench needs a private X server; install it with `apt-get install -y xvfb`");
        }
        let mut command = Command::new("Xvfb");
        command
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-noreset",
                "-screen",
                "0",
            ])
            .arg(format!("{width}x{height}x24"))
            .args(extra);
        let mut proc = Spawned::start("Xvfb", command, false)?;
        let number = proc.wait_line(Duration::from_secs(20), "its display number", |l| {
            let n = l.trim();
            (!n.is_empty()).then(|| n.to_string())
        })?;
        Ok(Self {
            proc,
            display: format!(":{number}"),
        })
    }
}

/// CPU time used so far by process `pid` and every process below it (a VNC server may be a
/// wrapper script that runs the real server as its child).
pub fn tree_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot list /proc")? {
        let Some(child) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that ended meanwhile has no stat any more.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let Some(ppid) = parse_ppid(&stat) {
            parents.push((child, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    let mut total = crate::procstat::cpu_time(pid)?;
    for p in &tree[1..] {
        total += crate::procstat::cpu_time(*p).unwrap_or_default();
    }
    Ok(total)
}

/// The parent pid (field 4) from the text of `/proc/PID/stat`, counted from the last `)`.
fn parse_ppid(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_the_fourth_field() {
        assert_eq!(
            parse_ppid("4242 (we (ird) name) S 17 4242 4242 0"),
            Some(17)
        );
        assert_eq!(parse_ppid("4242 (x)"), None);
    }

    #[test]
    fn own_tree_includes_a_child() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        assert!(tree_cpu_time(std::process::id()).is_ok());
        let _ = child.kill();
        let _ = child.wait();
    }
}
