//! A private X server: `Xvfb` on a display it picks itself. `-displayfd` has it write the
//! display's number once it accepts connections, so a started [`Xvfb`] is ready for clients;
//! dropping it stops the server.

use std::process::Command;
use std::time::Duration;

use anyhow::bail;

use crate::process::{Error, Options, Process, Stderr, Stop};

/// How long Xvfb may take to report its display.
const READY: Duration = Duration::from_secs(20);

/// A running Xvfb with one screen.
pub struct Xvfb {
    pub process: Process,
    /// `:N`, for `DISPLAY`.
    pub display: String,
    pub width: u32,
    pub height: u32,
}

impl Xvfb {
    /// Starts Xvfb with one `width` x `height` screen at 24 bits, `extra` arguments for the
    /// server (`+extension GLX`), stopped `stop` when dropped. Says how to install it when it
    /// is missing.
    pub fn start(width: u32, height: u32, extra: &[&str], stop: Stop) -> anyhow::Result<Xvfb> {
        let mut command = Command::new("Xvfb");
        command
            .args(["-displayfd", "1", "-nolisten", "tcp", "-noreset"])
            .args(extra)
            .args(["-screen", "0"])
            .arg(format!("{width}x{height}x24"));
        let options = Options {
            stderr: Stderr::Discard,
            stop,
            ..Options::default()
        };
        let mut process = match Process::start("Xvfb", command, options) {
            Ok(p) => p,
            Err(Error::Start { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "Xvfb is missing: a private X server is needed; install it with \
                     `apt-get install -y xvfb`"
                )
            }
            Err(e) => return Err(e.into()),
        };
        let number = process.wait_line(READY, "its display number", |l| {
            let n = l.trim();
            (!n.is_empty()).then(|| n.to_string())
        })?;
        Ok(Xvfb {
            process,
            display: format!(":{number}"),
            width,
            height,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
