//! The processes the end-to-end bench starts (Xvfb, the relay, the agent, the VNC servers) are
//! [`harness::process::Process`]es, started here the bench's way: stopped with SIGTERM (and
//! SIGKILL two seconds later) when dropped, also on error, and killed by the kernel if the
//! bench dies without unwinding; stderr shown, discarded or kept in a log file. And what the
//! bench reads of them: a session code, a listening port, a log's last lines, CPU time.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use harness::process::{Options, Process, Stderr, Stop};

/// How a bench process still running is stopped when it drops.
pub const STOP: Stop = Stop::Terminate(Duration::from_secs(2));

/// Options for a bench process: stderr to this process's stderr with `show_stderr`, else
/// nowhere.
pub fn options(show_stderr: bool) -> Options {
    Options {
        stderr: if show_stderr {
            Stderr::Inherit
        } else {
            Stderr::Discard
        },
        stop: STOP,
        ..Options::default()
    }
}

/// Starts `command` (stdout read line by line, stderr discarded unless `show_stderr`).
pub fn start(name: &str, command: Command, show_stderr: bool) -> anyhow::Result<Process> {
    Ok(Process::start(name, command, options(show_stderr))?)
}

/// Starts `command` with its stderr going to `log` (a file, read back with [`log_tail`]
/// when the process fails), stdout read line by line.
pub fn start_logged(name: &str, command: Command, log: &Path) -> anyhow::Result<Process> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let options = Options {
        stderr: Stderr::File(file),
        stop: STOP,
        ..Options::default()
    };
    Ok(Process::start(name, command, options)?)
}

/// A private X server of `width` x `height` (and `extra` arguments), stopped like the rest.
pub fn xvfb(width: u32, height: u32, extra: &[&str]) -> anyhow::Result<harness::xvfb::Xvfb> {
    harness::xvfb::Xvfb::start(width, height, extra, STOP)
}

/// Waits for the `{"event":"code","code":…}` line of an agent started with `--json`: the
/// whole session code, as the user would read it out.
pub fn wait_code(agent: &mut Process) -> anyhow::Result<String> {
    Ok(
        agent.wait_line(Duration::from_secs(20), "a session code", |l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "code").then(|| v["code"].as_str().map(str::to_string))?
        })?,
    )
}

/// The last `n` lines of a log file, for an error message; empty if it cannot be read.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `NAME` next to the bench executable (`target/release/NAME` for a release bench).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    harness::programs::sibling_binary(name, &format!("cargo build --release -p {name}"))
}

/// A free TCP port on loopback (free when asked; the server binds it right after).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free TCP port")?;
    Ok(l.local_addr()?.port())
}

/// Waits until something accepts TCP connections on loopback `port`.
pub fn wait_listening(proc: &mut Process, port: u16, limit: Duration) -> anyhow::Result<()> {
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
                proc.name(),
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
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
