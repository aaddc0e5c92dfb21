//! A throw-away PostgreSQL server for the tests that run the relay's state in PostgreSQL:
//! Debian's `postgres` on a data directory of its own under the temporary directory, reached
//! through a Unix socket beside it (no TCP port to collide on), with a fresh database for each
//! test ([`Server::database`]).
//!
//! `initdb` takes a second or two, so the cluster it makes is kept as a template (one per
//! PostgreSQL version and user, under a lock so that test processes starting together make it
//! once) and each server starts on a copy of it, in a tenth of that. A test process has one
//! server ([`Server::shared`]) whatever number of its tests use it; it is stopped when the
//! process exits (a fast shutdown, then its directory removed), and killed by the kernel with a
//! process that dies without exiting. As root, the server runs as the `postgres` user the Debian
//! package makes: PostgreSQL refuses to run as root. Durability is off (`fsync`): these
//! databases live for one test.
//!
//! Where PostgreSQL is not installed, starting one fails and says how to install it; nothing is
//! skipped.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::process::{Options, Process, Stderr};

/// How long a server may take to accept connections.
const READY: Duration = Duration::from_secs(30);
/// The role the tests connect as (the cluster's superuser).
pub const ROLE: &str = "tandem";

/// A running PostgreSQL server and where to reach it.
pub struct Server {
    /// The postmaster, until [`Server::stop`].
    process: Mutex<Option<Process>>,
    /// The server's directory: `data/` and the socket.
    dir: PathBuf,
    bin: PathBuf,
    /// The user the server runs as, when this runs as root.
    runs_as: Option<(u32, u32)>,
}

impl Server {
    /// Starts a server of its own on a copy of the template cluster.
    pub fn start() -> anyhow::Result<Server> {
        let bin = bin_dir()?;
        let runs_as = server_user()?;
        let template = template(&bin, runs_as)?;
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-postgres-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let server = Server {
            process: Mutex::new(None),
            dir,
            bin,
            runs_as,
        };
        server.own(&server.dir)?;
        let data = server.dir.join("data");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .context("cannot run cp to copy the template cluster")?;
        ensure!(
            copied.success(),
            "cannot copy the template cluster {}",
            template.display()
        );
        let log = std::fs::File::create(server.dir.join("server.log"))?;
        server.own(&server.dir.join("server.log"))?;
        let mut command = server.command("postgres");
        command
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&server.dir)
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"]);
        let options = Options {
            stderr: Stderr::File(log),
            ..Options::default()
        };
        let process = Process::start("postgres", command, options)?;
        *server.process.lock().unwrap_or_else(|p| p.into_inner()) = Some(process);
        server.wait_ready()?;
        Ok(server)
    }

    /// The server of this test process, started on first use. It is started on a thread of
    /// its own that lives as long as the process (the server dies with the thread that started
    /// it), and stopped when the process exits.
    pub fn shared() -> anyhow::Result<&'static Server> {
        static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("postgres".into())
                .spawn(move || {
                    let _ = tx.send(Server::start().map_err(|e| format!("{e:#}")));
                    loop {
                        std::thread::park();
                    }
                })
                .map_err(|e| format!("cannot start a thread for PostgreSQL: {e}"))?;
            let server = rx
                .recv()
                .map_err(|_| "the thread starting PostgreSQL ended".to_string())??;
            extern "C" fn stop_shared() {
                if let Some(Ok(server)) = SHARED.get() {
                    server.stop();
                }
            }
            // SAFETY: registers a function without arguments to run when the process exits.
            unsafe { libc::atexit(stop_shared) };
            Ok(server)
        });
        started.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Stops the server (a fast shutdown: clients are disconnected, shared memory given back)
    /// and removes its directory.
    pub fn stop(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut p) = process {
            p.signal(libc::SIGINT);
            let _ = p.wait_exit(Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A fresh, empty database on this server; returns the URL to reach it
    /// (`postgres://tandem@%2Fsocket%2Fdir/NAME`).
    pub fn database(&self) -> anyhow::Result<String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", ROLE, &name])
            .output()
            .context("cannot run createdb")?;
        ensure!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(self.url(&name))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        let socket: String = self
            .dir
            .display()
            .to_string()
            .chars()
            .map(|c| match c {
                '/' => "%2F".to_string(),
                ' ' => "%20".to_string(),
                c => c.to_string(),
            })
            .collect();
        format!("postgres://{ROLE}@{socket}/{name}")
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// `program` of this PostgreSQL, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.runs_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Gives `path` to the server's user.
    fn own(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.runs_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to the postgres user", path.display()))?;
        }
        Ok(())
    }

    /// Waits until `postmaster.pid` says the server is ready (its last line).
    fn wait_ready(&self) -> anyhow::Result<()> {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let deadline = Instant::now() + READY;
        loop {
            let ready = std::fs::read_to_string(&pid_file)
                .is_ok_and(|t| t.lines().last().is_some_and(|l| l.trim() == "ready"));
            if ready && self.dir.join(".s.PGSQL.5432").exists() {
                return Ok(());
            }
            let log = || std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let running = self
                .process
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .is_some_and(|p| p.check_running().is_ok());
            if !running {
                bail!("PostgreSQL stopped while starting:\n{}", log());
            }
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL did not accept connections within {} s:\n{}",
                    READY.as_secs(),
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where this machine's PostgreSQL programs are: beside `postgres` on `PATH`, or Debian's
/// `/usr/lib/postgresql/VERSION/bin` (the newest), which is not on `PATH`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let postgres = dir.join("postgres");
        if postgres.is_file() && dir.join("initdb").is_file() {
            // Debian links the programs into PATH at most: their directory is where they are.
            let real = std::fs::canonicalize(&postgres).unwrap_or(postgres);
            if let Some(d) = real.parent() {
                return Ok(d.to_path_buf());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL is missing: the tests of the relay's state run a throw-away PostgreSQL \
             server; install it with `apt-get install -y postgresql`"
        ),
    }
}

/// The user and group the server runs as: `postgres` when this runs as root, else this user.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: getpwnam reads the user database; the result is copied out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    ensure!(
        !pw.is_null(),
        "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
         install Debian's package (`apt-get install -y postgresql`), which makes one"
    );
    // SAFETY: a non-null result of getpwnam points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// The template cluster of this PostgreSQL (made by `initdb` if there is none yet), for this
/// user: `TMP/tandem-postgres-template-VERSION-UID`.
fn template(bin: &Path, runs_as: Option<(u32, u32)>) -> anyhow::Result<PathBuf> {
    let version = bin
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("local")
        .to_string();
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let root = std::env::temp_dir();
    let template = root.join(format!("tandem-postgres-template-{version}-{uid}"));
    let done = template.join("PG_VERSION");
    if done.is_file() {
        return Ok(template);
    }
    let lock_path = root.join(format!("tandem-postgres-template-{version}-{uid}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("cannot lock {}", lock_path.display());
    }
    if done.is_file() {
        return Ok(template);
    }
    let partial = root.join(format!("tandem-postgres-template-{version}-{uid}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    if let Some((uid, gid)) = runs_as {
        std::os::unix::fs::chown(&partial, Some(uid), Some(gid))?;
    }
    let mut initdb = Command::new(bin.join("initdb"));
    if let Some((uid, gid)) = runs_as {
        initdb.uid(uid).gid(gid);
    }
    let out = initdb
        .arg("-D")
        .arg(&partial)
        .args(["-U", ROLE, "--auth=trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"])
        .output()
        .context("cannot run initdb")?;
    ensure!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The data directory must be its user's alone.
    ensure!(
        std::fs::metadata(&partial)?.mode() & 0o077 == 0,
        "initdb left {} open to others",
        partial.display()
    );
    std::fs::rename(&partial, &template)?;
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_directory_goes_into_the_url_percent_encoded() {
        let server = Server {
            process: Mutex::new(None),
            dir: PathBuf::from("/tmp/tandem-postgres-1-0"),
            bin: PathBuf::new(),
            runs_as: None,
        };
        assert_eq!(
            server.url("t1_0"),
            "postgres://tandem@%2Ftmp%2Ftandem-postgres-1-0/t1_0"
        );
        std::mem::forget(server);
    }
}
