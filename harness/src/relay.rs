//! The relay as the tests and the benches start it: `relay --listen ADDR --data-dir DIR …` (or
//! a program that prints the same start-up lines, as the tests' `hostile-relay` does), in a
//! network namespace or not ([`command`]), and what it prints on start-up: where it listens
//! and its certificate's fingerprint ([`Relay::start`]). Its accounts are kept in its data
//! directory and made with `relay user …` ([`user`], [`add_user`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::ensure;

use crate::netns::Netns;
use crate::process::{self, Error, Options, Process, Ran};

/// `PROGRAM --listen LISTEN --data-dir DATA_DIR`, to start inside `netns` when one is given;
/// the relay's other flags go after.
pub fn command(program: &Path, listen: &str, data_dir: &Path, netns: Option<&Netns>) -> Command {
    let mut command = process::command(netns, program);
    command
        .args(["--listen", listen, "--data-dir"])
        .arg(data_dir);
    command
}

/// A started relay and what it said about itself.
pub struct Relay {
    pub process: Process,
    /// Where it listens (in its namespace).
    pub addr: SocketAddr,
    /// Its certificate's fingerprint, as it printed it.
    pub fingerprint: String,
}

impl Relay {
    /// Starts `command` (from [`command`]), called `name` in messages, and waits up to `limit`
    /// for each of the lines that say where it listens and its fingerprint.
    pub fn start(
        name: &str,
        command: Command,
        options: Options,
        limit: Duration,
    ) -> Result<Relay, Error> {
        let mut process = Process::start(name, command, options)?;
        let addr = process.wait_line(limit, "its address", listening_addr)?;
        let fingerprint = process.wait_line(limit, "its fingerprint", fingerprint)?;
        Ok(Relay {
            process,
            addr,
            fingerprint,
        })
    }
}

/// `ADDR` of `  listening on ADDR (QUIC over UDP)`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `FP` of `  certificate fingerprint (SHA-256): FP …`.
fn fingerprint(line: &str) -> Option<String> {
    let rest = line.split("fingerprint (SHA-256): ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Runs `PROGRAM --data-dir DATA_DIR user ARGS…` with `input` as its standard input.
pub fn user(program: &Path, data_dir: &Path, args: &[&str], input: &str) -> Result<Ran, Error> {
    let mut command = Command::new(program);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("user")
        .args(args);
    process::run("relay user", command, input)
}

/// Creates the technician account `name` of `tier` in `data_dir` (`relay user add`, the
/// password on its input); fails with what the relay said.
pub fn add_user(
    program: &Path,
    data_dir: &Path,
    name: &str,
    tier: u8,
    password: &str,
) -> anyhow::Result<()> {
    let tier = tier.to_string();
    let args = ["add", name, "--tier", &tier];
    let r = user(program, data_dir, &args, &format!("{password}\n"))?;
    ensure!(r.success, "relay user add {name} failed: {}", r.text());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_lines_are_read() {
        assert_eq!(
            listening_addr("  listening on 127.0.0.1:4433 (QUIC over UDP)"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4433)))
        );
        assert_eq!(listening_addr("Tandem relay 0.1"), None);
        assert_eq!(
            fingerprint("  certificate fingerprint (SHA-256): ab12  [new certificate generated]")
                .as_deref(),
            Some("ab12")
        );
        assert_eq!(fingerprint("Agents connect with: --fingerprint ab12"), None);
    }
}
