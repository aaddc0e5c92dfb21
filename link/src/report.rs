//! Status output of the peer programs: plain sentences for a person, or with `--json` one JSON
//! object a line on stdout (`{"event":"code","code":"123456789"}`) for scripts.

use std::io::Write;

use serde_json::{Map, Value};

/// Where a program's status goes.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    json: bool,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Reports `event`: in JSON mode as `{"event": event, ..fields}`, otherwise as `human`
    /// (nothing when `human` is empty).
    pub fn event(&self, event: &str, fields: Value, human: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let mut obj = Map::new();
            obj.insert("event".into(), Value::from(event));
            if let Value::Object(f) = fields {
                obj.extend(f);
            }
            let _ = writeln!(out, "{}", Value::Object(obj));
        } else if !human.as_ref().is_empty() {
            let _ = writeln!(out, "{}", human.as_ref());
        }
        let _ = out.flush();
    }

    /// Reports a fatal error: `{"event":"error","message":…}` in JSON mode (and always on
    /// stderr, so a person watching a script sees it too).
    pub fn error(&self, program: &str, message: &str) {
        if self.json {
            self.event("error", serde_json::json!({ "message": message }), "");
        }
        eprintln!("{program}: {message}");
    }
}

impl Reporter {
    /// Says how the relay's certificate was trusted, when there is something to say: on a
    /// first connection (its fingerprint is now remembered) and when an explicit fingerprint
    /// replaced the remembered one.
    pub fn trust(&self, relay: &str, trusted: &crate::client::Trusted, file: &std::path::Path) {
        use crate::client::Trusted;
        let (first_use, fingerprint) = match *trusted {
            Trusted::FirstUse(f) => (true, f),
            Trusted::Explicit {
                fingerprint,
                remembered_now: true,
            } => (false, fingerprint),
            _ => return,
        };
        self.event(
            "relay_trusted",
            serde_json::json!({
                "relay": relay, "fingerprint": fingerprint.to_string(),
                "first_use": first_use, "file": file.display().to_string(),
            }),
            if first_use {
                format!(
                    "First connection to the relay at {relay}: its certificate fingerprint {fingerprint} is now remembered (in {}); a different certificate will be refused. Compare it with the one the relay's administrator gave you.",
                    file.display()
                )
            } else {
                format!(
                    "The relay at {relay} has the fingerprint given ({fingerprint}); it is now remembered (in {}).",
                    file.display()
                )
            },
        );
    }
}

/// Diagnostic logs on stderr for a program's `-v` flags: warnings only by default, `-v` info,
/// `-vv` debug (without the QUIC and TLS libraries' own chatter). `RUST_LOG` overrides.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug,quinn=info,quinn_proto=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
