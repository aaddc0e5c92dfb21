//! A child process a test or a bench starts and watches: [`Process`]. Its standard output (and
//! standard error, unless it goes elsewhere, [`Stderr`]) is read line by line on threads of its
//! own, so that a chatty child never blocks on a full pipe; the lines reach a channel that
//! [`Process::wait_line`] and [`Process::wait_exit`] wait on, with a time limit, and every line
//! taken from it is kept in a transcript for failure messages ([`Process::transcript`], and
//! the [`Error`]s of the waits).
//!
//! A process dies with whoever started it: dropping it stops it ([`Stop`]: SIGKILL at once,
//! or SIGTERM with a grace period), also while a test unwinds or a bench returns an error; and
//! it is started with `PR_SET_PDEATHSIG`, so that the kernel kills it when the thread that
//! started it ends without dropping it (a process killed outright, an abort). Start it from a
//! thread that outlives it: not from a short-lived thread of a pool.
//!
//! [`command`] makes the command to start inside a network namespace ([`crate::netns`]);
//! [`run`] is the one-shot kind, a command given its whole input and run to its end.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// `program` as a command, to start inside `netns` when one is given.
pub fn command(netns: Option<&Netns>, program: impl AsRef<OsStr>) -> Command {
    match netns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    }
}

/// Where a child's standard error goes.
#[derive(Debug, Default)]
pub enum Stderr {
    /// Read line by line into the transcript, as standard output is.
    #[default]
    Collect,
    /// This process's own standard error.
    Inherit,
    /// Nowhere.
    Discard,
    /// Into this file (a log to read back when the child fails).
    File(std::fs::File),
}

/// How a [`Process`] still running is stopped when it drops (or by [`Process::stop`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL at once.
    #[default]
    Kill,
    /// SIGTERM, then SIGKILL if it has not exited within this long.
    Terminate(Duration),
}

/// How a [`Process`] is started. The default: empty input, standard error collected, killed
/// when dropped.
#[derive(Debug, Default)]
pub struct Options {
    /// Whether standard input is a pipe, written with [`Process::send_line`]; else it is empty.
    pub stdin: bool,
    pub stderr: Stderr,
    pub stop: Stop,
}

/// A line of the child's output, and the stream it came on.
enum Line {
    Out(String),
    Err(String),
}

/// A running child process whose output lines are collected. Dropping it stops it.
pub struct Process {
    name: String,
    child: Child,
    /// Lines not yet taken; `None` once [`Process::take_stdout`] gave them away.
    lines: Option<Receiver<Line>>,
    stdout: Vec<String>,
    stderr: Vec<String>,
    stdin: Option<ChildStdin>,
    /// Set once the child is reaped.
    status: Option<ExitStatus>,
    stop: Stop,
}

impl Process {
    /// Starts `command`, called `name` in messages, with its standard output piped and read
    /// line by line, and `options` for the rest.
    pub fn start(name: &str, mut command: Command, options: Options) -> Result<Process, Error> {
        let stderr = match options.stderr {
            Stderr::Collect => Stdio::piped(),
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Discard => Stdio::null(),
            Stderr::File(file) => Stdio::from(file),
        };
        command
            .stdin(if options.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: prctl(2) is async-signal-safe and changes only the child's own attributes.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| Error::Start {
            name: name.to_string(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pump(out, Line::Out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, Line::Err, tx);
        }
        Ok(Process {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines: Some(rx),
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
            stop: options.stop,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every standard output line taken so far (by the waits).
    pub fn stdout(&self) -> &[String] {
        &self.stdout
    }

    /// Every standard error line taken so far, when it is collected.
    pub fn stderr(&self) -> &[String] {
        &self.stderr
    }

    /// Everything taken so far, both streams, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.join("\n"),
            self.name,
            self.stderr.join("\n")
        )
    }

    /// The transcript, if there is anything in it.
    fn evidence(&self) -> String {
        if self.stdout.is_empty() && self.stderr.is_empty() {
            String::new()
        } else {
            self.transcript()
        }
    }

    /// Keeps `line` in the transcript; whether it was a stdout line.
    fn take(&mut self, line: Line) -> bool {
        match line {
            Line::Out(l) => {
                self.stdout.push(l);
                true
            }
            Line::Err(l) => {
                self.stderr.push(l);
                false
            }
        }
    }

    /// Takes every line that has arrived, without waiting.
    fn take_ready(&mut self) {
        while let Some(Ok(line)) = self.lines.as_ref().map(Receiver::try_recv) {
            self.take(line);
        }
    }

    /// Takes lines as they arrive until none has for `gap`.
    fn take_until_quiet(&mut self, gap: Duration) {
        while let Some(Ok(line)) = self.lines.as_ref().map(|l| l.recv_timeout(gap)) {
            self.take(line);
        }
    }

    /// The first standard output line, printed so far or within `limit`, for which `pick`
    /// returns something; `what` names it in the error.
    pub fn wait_line<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, Error> {
        if let Some(found) = self.stdout.iter().find_map(|l| pick(l)) {
            return Ok(found);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = match &self.lines {
                Some(lines) => lines.recv_timeout(left),
                None => {
                    return Err(Error::OutputTaken {
                        name: self.name.clone(),
                    })
                }
            };
            match next {
                Ok(line) => {
                    if self.take(line) {
                        let last = self.stdout.last().map(String::as_str).unwrap_or_default();
                        if let Some(found) = pick(last) {
                            return Ok(found);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        name: self.name.clone(),
                        what: what.to_string(),
                        limit,
                        transcript: self.evidence(),
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Ended {
                        name: self.name.clone(),
                        what: what.to_string(),
                        status: self.child.try_wait().ok().flatten(),
                        transcript: self.evidence(),
                    })
                }
            }
        }
    }

    /// Waits up to `limit` for the process to exit, taking its output meanwhile and, once it
    /// has exited, what its pipes still hold.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let deadline = Instant::now() + limit;
        loop {
            self.take_ready();
            if let Some(status) = self.try_wait()? {
                self.take_until_quiet(Duration::from_millis(200));
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(Error::Running {
                    name: self.name.clone(),
                    limit,
                    transcript: self.evidence(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `limit` for the process to exit, taking its output meanwhile; `None` if it
    /// is still running then.
    pub fn wait_exit_or(&mut self, limit: Duration) -> Result<Option<ExitStatus>, Error> {
        let deadline = Instant::now() + limit;
        loop {
            self.take_until_quiet(Duration::from_millis(10));
            if let Some(status) = self.try_wait()? {
                self.status = Some(status);
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
        }
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.try_wait()? {
            Some(status) => Err(Error::Exited {
                name: self.name.clone(),
                status,
                transcript: self.evidence(),
            }),
            None => Ok(()),
        }
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child.try_wait().map_err(|source| Error::Io {
            name: self.name.clone(),
            doing: "wait for",
            source,
        })
    }

    /// Writes `line` to the process's standard input (started with [`Options::stdin`]).
    pub fn send_line(&mut self, line: &str) -> Result<(), Error> {
        let io = |source| Error::Io {
            name: self.name.clone(),
            doing: "write to the standard input of",
            source,
        };
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io(io::Error::new(
                io::ErrorKind::NotConnected,
                "it was started without a pipe on its standard input",
            )));
        };
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(io)
    }

    /// Sends signal `sig` (`libc::SIGTERM`, `libc::SIGINT`, …).
    pub fn signal(&self, sig: libc::c_int) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child's pid, not yet reaped; no memory effects.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    /// Hands the standard output lines to a caller that reads them on its own from now on
    /// (the waits fail with [`Error::OutputTaken`] afterwards).
    pub fn take_stdout(&mut self) -> Result<StdoutLines, Error> {
        self.lines
            .take()
            .map(StdoutLines)
            .ok_or_else(|| Error::OutputTaken {
                name: self.name.clone(),
            })
    }

    /// Stops the process now, `how`, and reaps it.
    pub fn stop(mut self, how: Stop) {
        self.halt(how);
    }

    fn halt(&mut self, how: Stop) {
        if self.status.is_some() {
            return;
        }
        if let Ok(None) = self.child.try_wait() {
            match how {
                Stop::Kill => {
                    let _ = self.child.kill();
                }
                Stop::Terminate(grace) => {
                    self.signal(libc::SIGTERM);
                    let deadline = Instant::now() + grace;
                    while Instant::now() < deadline {
                        if let Ok(Some(status)) = self.child.try_wait() {
                            self.status = Some(status);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = self.child.kill();
                }
            }
        }
        self.status = self.child.wait().ok();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.halt(self.stop);
    }
}

/// Reads `r` line by line into `tx` until it ends; keeps reading when nobody listens any
/// more, so that the child never blocks on a full pipe.
fn pump(r: impl Read + Send + 'static, line: fn(String) -> Line, tx: Sender<Line>) {
    std::thread::spawn(move || {
        for text in BufReader::new(r).lines() {
            let Ok(text) = text else { return };
            let _ = tx.send(line(text));
        }
    });
}

/// A process's standard output lines, from [`Process::take_stdout`]; ends when the process
/// closes its standard output.
pub struct StdoutLines(Receiver<Line>);

impl Iterator for StdoutLines {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            match self.0.recv().ok()? {
                Line::Out(text) => return Some(text),
                Line::Err(_) => {}
            }
        }
    }
}

/// What a command run to its end printed.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
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

/// Runs `command`, called `name` in messages, with `input` as its whole standard input, and
/// waits for it to end.
pub fn run(name: &str, mut command: Command, input: &str) -> Result<Ran, Error> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Start {
            name: name.to_string(),
            source,
        })?;
    let io = |doing, source| Error::Io {
        name: name.to_string(),
        doing,
        source,
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| io("write to the standard input of", e))?;
    }
    let out = child.wait_with_output().map_err(|e| io("wait for", e))?;
    Ok(Ran {
        status: out.status,
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// What went wrong with a child process. The waits' errors end with the child's transcript,
/// when it printed anything.
#[derive(Debug)]
pub enum Error {
    /// The program could not be started.
    Start { name: String, source: io::Error },
    /// Writing to it or waiting for it failed.
    Io {
        name: String,
        doing: &'static str,
        source: io::Error,
    },
    /// It printed nothing matching within the limit.
    Timeout {
        name: String,
        what: String,
        limit: Duration,
        transcript: String,
    },
    /// Its output ended before it printed what was waited for.
    Ended {
        name: String,
        what: String,
        status: Option<ExitStatus>,
        transcript: String,
    },
    /// It was still running at the end of the limit.
    Running {
        name: String,
        limit: Duration,
        transcript: String,
    },
    /// It has exited, and should not have.
    Exited {
        name: String,
        status: ExitStatus,
        transcript: String,
    },
    /// Its output was handed over with [`Process::take_stdout`].
    OutputTaken { name: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (message, transcript) = match self {
            Error::Start { name, source } => (format!("cannot start {name}: {source}"), ""),
            Error::Io {
                name,
                doing,
                source,
            } => (format!("cannot {doing} {name}: {source}"), ""),
            Error::Timeout {
                name,
                what,
                limit,
                transcript,
            } => (
                format!("{name} did not print {what} within {}", seconds(*limit)),
                transcript.as_str(),
            ),
            Error::Ended {
                name,
                what,
                status,
                transcript,
            } => (
                format!(
                    "{name} ended before printing {what}{}",
                    status.map(|s| format!(" ({s})")).unwrap_or_default()
                ),
                transcript.as_str(),
            ),
            Error::Running {
                name,
                limit,
                transcript,
            } => (
                format!("{name} did not exit within {}", seconds(*limit)),
                transcript.as_str(),
            ),
            Error::Exited {
                name,
                status,
                transcript,
            } => (
                format!("{name} exited unexpectedly ({status})"),
                transcript.as_str(),
            ),
            Error::OutputTaken { name } => {
                (format!("{name}'s output was handed to another reader"), "")
            }
        };
        f.write_str(&message)?;
        if !transcript.is_empty() {
            write!(f, "\n{transcript}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Start { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `20 s`, or `300ms` for a limit that is no whole number of seconds.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    fn alive(pid: u32) -> bool {
        // A reaped child has no /proc entry; a zombie would still have one, and is reaped here.
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_line_printed_before_the_wait_is_found_and_stderr_is_kept() {
        let mut p = Process::start(
            "talker",
            sh("echo one; echo oops >&2; echo two"),
            Options::default(),
        )
        .unwrap();
        let two = p.wait_line(Duration::from_secs(10), "two", |l| {
            (l == "two").then(|| l.to_string())
        });
        assert_eq!(two.unwrap(), "two");
        // "one" was taken on the way: a later wait finds it without new output.
        let one = p.wait_line(Duration::ZERO, "one", |l| (l == "one").then_some(1));
        assert_eq!(one.unwrap(), 1);
        assert!(p.wait_exit(Duration::from_secs(10)).unwrap().success());
        assert_eq!(p.stderr(), ["oops"]);
        assert!(p.transcript().contains("--- talker stderr ---\noops"));
    }

    #[test]
    fn a_wait_that_fails_says_what_was_printed() {
        let mut p =
            Process::start("quiet", sh("echo hello; sleep 30"), Options::default()).unwrap();
        let e = p
            .wait_line(Duration::from_millis(300), "a code", |_| None::<()>)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("quiet did not print a code within 300ms"),
            "{text}"
        );
        assert!(text.contains("hello"), "{text}");

        let mut p = Process::start("brief", sh("exit 3"), Options::default()).unwrap();
        let e = p
            .wait_line(Duration::from_secs(10), "a code", |_| None::<()>)
            .unwrap_err();
        assert!(matches!(e, Error::Ended { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("brief ended before printing a code"));
    }

    #[test]
    fn input_reaches_the_child() {
        let options = Options {
            stdin: true,
            ..Options::default()
        };
        let mut p = Process::start("echo", sh("read l; echo got $l"), options).unwrap();
        p.send_line("it").unwrap();
        let got = p.wait_line(Duration::from_secs(10), "the echo", |l| {
            l.strip_prefix("got ").map(str::to_string)
        });
        assert_eq!(got.unwrap(), "it");
    }

    #[test]
    fn dropping_stops_it_either_way() {
        for stop in [Stop::Kill, Stop::Terminate(Duration::from_secs(2))] {
            let options = Options {
                stop,
                ..Options::default()
            };
            let mut p = Process::start("sleeper", sh("echo up; exec sleep 30"), options).unwrap();
            p.wait_line(Duration::from_secs(10), "up", |l| (l == "up").then_some(()))
                .unwrap();
            p.check_running().unwrap();
            let pid = p.pid();
            let started = Instant::now();
            drop(p);
            assert!(!alive(pid), "{stop:?} left {pid} running");
            assert!(started.elapsed() < Duration::from_secs(2), "{stop:?}");
        }
    }

    #[test]
    fn it_dies_with_the_thread_that_started_it() {
        let pid = std::thread::spawn(|| {
            let mut p =
                Process::start("orphan", sh("echo up; exec sleep 30"), Options::default()).unwrap();
            p.wait_line(Duration::from_secs(10), "up", |l| (l == "up").then_some(()))
                .unwrap();
            let pid = p.pid();
            // Never dropped: only the kernel can stop it now.
            std::mem::forget(p);
            pid
        })
        .join()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Killed, it stays a zombie (state Z) until reaped, which nobody does here.
        let dead = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat[stat.rfind(')').unwrap() + 2..].starts_with('Z')
            })
        };
        while !dead() {
            assert!(Instant::now() < deadline, "{pid} outlived its starter");
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: reaps our own dead child.
        unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
    }

    #[test]
    fn one_shot_commands_report_their_output() {
        let ran = run("cat", Command::new("cat"), "in\n").unwrap();
        assert!(ran.success);
        assert_eq!(ran.text(), "in\n");
        let e = run("nothing", Command::new("/nonexistent/program"), "").unwrap_err();
        assert!(e.to_string().starts_with("cannot start nothing: "), "{e}");
    }
}
