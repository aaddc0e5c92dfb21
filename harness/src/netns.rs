//! One network namespace, named and removed with `ip netns`, and the ways into it: a
//! [`Command`] that starts its program inside ([`Netns::command`]), the tools that configure it
//! ([`Netns::run`]: `ip`, `nft`, `tc`), and a thread of this process that moves in
//! ([`Netns::spawn_thread`]), so that the sockets it opens afterwards live there.
//!
//! A namespace is deleted when its [`Netns`] drops, also while a test unwinds from a panic. One
//! left behind by a process that was killed outright is deleted by the next [`Netns::create`]:
//! names carry the creating process's id ([`PREFIX`]`<pid>-…`), and a namespace whose creator
//! is gone is stale.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

/// Every namespace this crate creates is named `tdm<pid>-<n>-<role>`.
pub const PREFIX: &str = "tdm";

/// Where `ip netns` keeps the namespaces' names.
const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// `/run/netns/NAME`, held open for `setns(2)`; shared with the commands made to start in
    /// it, so that the descriptor outlives this value until they are spawned.
    file: Arc<File>,
}

/// Names namespaces uniquely within this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates a namespace named `tdm<pid>-<n>-<role>` with its loopback up.
    ///
    /// Needs root (or `CAP_SYS_ADMIN`) and `ip` from iproute2; says so when either is missing.
    pub fn create(role: &str) -> anyhow::Result<Netns> {
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot run `ip` ({e}): network namespaces need iproute2 \
                     (apt-get install -y iproute2)"
                )
            })?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            bail!(
                "`ip netns add {name}` failed: {}; network namespaces need root \
                 (or CAP_SYS_ADMIN and CAP_NET_ADMIN)",
                why.trim()
            );
        }
        let path = Path::new(NETNS_DIR).join(&name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                delete(&name);
                bail!("cannot open {}: {e}", path.display());
            }
        };
        let ns = Netns {
            name,
            file: Arc::new(file),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace (it moves there between fork and
    /// exec, so nothing else of this process does).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        self.enter(&mut command);
        command
    }

    /// Makes `command` start its program inside this namespace.
    pub fn enter(&self, command: &mut Command) {
        // The command holds the descriptor (close-on-exec) until it drops.
        let file = self.file.clone();
        // SAFETY: setns(2) is async-signal-safe and changes only the child.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Starts a thread of this process that moves into this namespace before it runs `f`:
    /// every socket `f` opens lives here (see [`crate::forward`]).
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>> {
        let (file, ns) = (self.file.clone(), self.name.clone());
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // SAFETY: setns(2) on a namespace descriptor we hold; it moves this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!(
                        "cannot enter network namespace {ns}: {}",
                        std::io::Error::last_os_error()
                    );
                }
                drop(file);
                f()
            })
            .with_context(|| format!("cannot start thread {name}"))
    }

    /// Runs `ip -n NAME ARGS…`, failing with what it printed.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new("ip");
        command.args(["-n", &self.name]).args(args);
        output(command, &format!("ip {}", args.join(" ")), None)
    }

    /// Runs `program ARGS…` inside this namespace, with `stdin` as its input, failing with
    /// what it printed (and how to install it, when it is missing).
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
        let mut command = self.command(program);
        command.args(args);
        output(
            command,
            &format!("{program} {} (in {})", args.join(" "), self.name),
            stdin,
        )
        .map_err(|e| match program {
            "nft" if !crate::programs::on_path("nft") => anyhow::anyhow!(
                "nft is missing: packet loss needs nftables (apt-get install -y nftables)"
            ),
            "tc" if !crate::programs::on_path("tc") => {
                anyhow::anyhow!(
                    "tc is missing: rate limits need iproute2 (apt-get install -y iproute2)"
                )
            }
            _ => e,
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

fn delete(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "delete", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn output(command: Command, what: &str, stdin: Option<&str>) -> anyhow::Result<()> {
    let out = crate::process::run(&format!("`{what}`"), command, stdin.unwrap_or_default())?;
    if !out.success {
        bail!(
            "`{what}` failed ({}): {}{}",
            out.status,
            out.stderr.trim(),
            out.stdout.trim()
        );
    }
    Ok(())
}

/// Deletes the namespaces of processes that are gone (a test killed outright leaves its own).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
        }
    }
}
