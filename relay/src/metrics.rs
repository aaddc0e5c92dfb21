//! The relay's figures for its operators, in Prometheus text format.
//!
//! Counters ([`Metrics`]) are atomics bumped where the thing happens: a chunk forwarded on the
//! peer plane, a chunk of a session log taken, a refusal sent, a database or storage error
//! met. Gauges (sessions, waiting codes, queue lengths, connections) are read from the
//! relay's own tables when someone asks ([`Gauges`]). [`render`] turns both into the text a
//! Prometheus server scrapes from the admin listener ([`crate::admin`]); it is a pure
//! function, tested on its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use protocol::control::ErrorCode;

/// Counters of one relay since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Peer-plane bytes passed from one peer to the other (both directions).
    pub forwarded_bytes: AtomicU64,
    /// Session-log bytes taken from technicians' uploads.
    pub upload_bytes: AtomicU64,
    /// Session logs stored whole.
    pub logs_stored: AtomicU64,
    /// Sessions paired (by code, from the queue, or joining a live one).
    pub sessions_paired: AtomicU64,
    /// Connections refused before their handshake: the relay or their source was full.
    pub connections_refused: AtomicU64,
    /// Errors of the relay's database (accounts, ledger, the log index, the desk's journal).
    pub database_errors: AtomicU64,
    /// Errors of the log storage (the directory or the S3 bucket).
    pub storage_errors: AtomicU64,
    /// Technicians sent to another relay of the cluster, which holds the agent they asked for.
    pub redirects: AtomicU64,
    /// Refusals sent to peers, by reason. Rare enough for a lock.
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refusal sent to a peer.
    pub fn refused(&self, code: &ErrorCode) {
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(reason(code)).or_default() += 1;
    }

    fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The label of a refusal's reason.
pub fn reason(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::UnsupportedVersion => "unsupported_version",
        ErrorCode::UnknownCode => "unknown_code",
        ErrorCode::ExpiredCode => "expired_code",
        ErrorCode::UsedCode => "used_code",
        ErrorCode::RateLimited { .. } => "rate_limited",
        ErrorCode::ProtocolViolation => "protocol_violation",
        ErrorCode::MalformedMessage => "malformed_message",
        ErrorCode::FrameTooLarge => "frame_too_large",
        ErrorCode::ShuttingDown => "shutting_down",
        ErrorCode::Internal => "internal",
        ErrorCode::NotLoggedIn => "not_logged_in",
        ErrorCode::BadCredentials => "bad_credentials",
        ErrorCode::AccountDisabled => "account_disabled",
        ErrorCode::TokenExpired => "token_expired",
        ErrorCode::TokenRevoked => "token_revoked",
        ErrorCode::NotPermitted => "not_permitted",
        ErrorCode::LogRefused => "log_refused",
        ErrorCode::Timeout => "timeout",
        ErrorCode::RecordingMissing => "recording_missing",
        ErrorCode::QuotaExceeded => "quota_exceeded",
        ErrorCode::SecondFactorRequired => "second_factor_required",
        ErrorCode::UnknownRequest => "unknown_request",
        ErrorCode::RequestTaken => "request_taken",
        ErrorCode::RelayGone => "relay_gone",
        _ => "other",
    }
}

/// What the relay holds now, read when the metrics are asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Connections open.
    pub connections: u64,
    /// Paired sessions running.
    pub sessions: u64,
    /// Session codes waiting for a technician.
    pub waiting_codes: u64,
    /// Help requests waiting, per tier (1 to 3).
    pub queue: [u64; 3],
    /// Technicians watching the queue.
    pub watchers: u64,
    /// Database errors counted by their own parts (the accounts' gate, the desk's journal),
    /// added to [`Metrics::database_errors`].
    pub other_database_errors: u64,
}

/// The Prometheus text exposition of `counters` and `gauges`.
pub fn render(counters: &Metrics, gauges: &Gauges) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP tandem_relay_{name} {help}");
        let _ = writeln!(out, "# TYPE tandem_relay_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "tandem_relay_{name}{labels} {value}");
        }
    };
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    metric(
        "connections",
        "gauge",
        "Connections open.",
        &[("", gauges.connections)],
    );
    metric(
        "sessions",
        "gauge",
        "Paired sessions running.",
        &[("", gauges.sessions)],
    );
    metric(
        "waiting_codes",
        "gauge",
        "Session codes waiting for a technician.",
        &[("", gauges.waiting_codes)],
    );
    metric(
        "queue_length",
        "gauge",
        "Help requests waiting, by tier.",
        &[
            ("{tier=\"1\"}", gauges.queue[0]),
            ("{tier=\"2\"}", gauges.queue[1]),
            ("{tier=\"3\"}", gauges.queue[2]),
        ],
    );
    metric(
        "queue_watchers",
        "gauge",
        "Technicians watching the queue.",
        &[("", gauges.watchers)],
    );
    metric(
        "sessions_paired_total",
        "counter",
        "Sessions paired since the relay started.",
        &[("", get(&counters.sessions_paired))],
    );
    metric(
        "forwarded_bytes_total",
        "counter",
        "Peer-plane bytes forwarded between agents and technicians.",
        &[("", get(&counters.forwarded_bytes))],
    );
    metric(
        "log_upload_bytes_total",
        "counter",
        "Session-log bytes taken from technicians' uploads.",
        &[("", get(&counters.upload_bytes))],
    );
    metric(
        "logs_stored_total",
        "counter",
        "Session logs stored whole.",
        &[("", get(&counters.logs_stored))],
    );
    metric(
        "connections_refused_total",
        "counter",
        "Connections refused before their handshake: the relay or their source was full.",
        &[("", get(&counters.connections_refused))],
    );
    let refusals = counters.refusals();
    let labelled: Vec<(String, u64)> = refusals
        .iter()
        .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n))
        .collect();
    let samples: Vec<(&str, u64)> = labelled.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric(
        "refusals_total",
        "counter",
        "Refusals sent to peers, by reason.",
        &samples,
    );
    metric(
        "database_errors_total",
        "counter",
        "Errors of the relay's database.",
        &[(
            "",
            get(&counters.database_errors) + gauges.other_database_errors,
        )],
    );
    metric(
        "redirects_total",
        "counter",
        "Technicians sent to the relay of the cluster that holds the agent they asked for.",
        &[("", get(&counters.redirects))],
    );
    metric(
        "storage_errors_total",
        "counter",
        "Errors of the session-log storage (directory or S3).",
        &[("", get(&counters.storage_errors))],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples of a Prometheus text exposition: `name{labels}` to value, each metric
    /// announced by its HELP and TYPE lines first.
    fn parse(text: &str) -> BTreeMap<String, u64> {
        let mut typed = std::collections::HashSet::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "gauge" || kind == "counter", "{line}");
                typed.insert(name.to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').unwrap();
            let name = key.split('{').next().unwrap();
            assert!(typed.contains(name), "{name} has no TYPE line before it");
            samples.insert(key.to_string(), value.parse().unwrap());
        }
        samples
    }

    #[test]
    fn counters_and_gauges_read_as_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.forwarded_bytes, 1500);
        Metrics::add(&m.forwarded_bytes, 500);
        Metrics::add(&m.upload_bytes, 32768);
        Metrics::add(&m.storage_errors, 1);
        m.refused(&ErrorCode::BadCredentials);
        m.refused(&ErrorCode::BadCredentials);
        m.refused(&ErrorCode::RateLimited {
            retry_after_secs: 3,
        });
        let g = Gauges {
            connections: 7,
            sessions: 2,
            waiting_codes: 3,
            queue: [4, 1, 0],
            watchers: 5,
            other_database_errors: 2,
        };
        let s = parse(&render(&m, &g));
        assert_eq!(s["tandem_relay_sessions"], 2);
        assert_eq!(s["tandem_relay_waiting_codes"], 3);
        assert_eq!(s["tandem_relay_queue_length{tier=\"1\"}"], 4);
        assert_eq!(s["tandem_relay_queue_length{tier=\"3\"}"], 0);
        assert_eq!(s["tandem_relay_forwarded_bytes_total"], 2000);
        assert_eq!(s["tandem_relay_log_upload_bytes_total"], 32768);
        assert_eq!(
            s["tandem_relay_refusals_total{reason=\"bad_credentials\"}"],
            2
        );
        assert_eq!(s["tandem_relay_refusals_total{reason=\"rate_limited\"}"], 1);
        assert_eq!(s["tandem_relay_storage_errors_total"], 1);
        assert_eq!(s["tandem_relay_database_errors_total"], 2);
    }
}
