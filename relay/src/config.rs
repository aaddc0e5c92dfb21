//! Relay settings: built-in defaults, then an optional TOML file (`--config`), then flags, each
//! overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::objects::Location;

/// Everything the relay can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the certificate, key and name, the SQLite database (without `database_url`) and
    /// the stored session logs live.
    pub data_dir: PathBuf,
    /// A PostgreSQL database for the relay's state (`postgres://user:password@host/dbname`),
    /// which several relays may share; `None`: SQLite, `relay.db` in the data directory.
    pub database_url: Option<String>,
    /// How long an unused session code stays valid.
    pub code_ttl: Duration,
    /// Join attempts allowed per source address within `join_window`.
    pub join_attempts: u32,
    pub join_window: Duration,
    /// A connection from which nothing is heard this long is dead: this bounds how late a
    /// vanished peer is noticed. Peers send keep-alives every 150 ms; after a second of silence
    /// the partner is told the peer is not responding, and the session lasts until this ends it,
    /// so a network outage shorter than this is survived.
    pub idle_timeout: Duration,
    /// Keep-alives from the relay itself; `None` (the default) leaves them to the peers.
    pub keep_alive: Option<Duration>,
    /// The organisation that runs the relay, as agents are told ("alice (tier 2) of Example
    /// Support wants to see this screen").
    pub organisation: String,
    /// How long a technician's login (its token) stays valid.
    pub token_ttl: Duration,
    /// The organisation's audit key (an age X25519 recipient, `age1…`): session logs are
    /// encrypted to it before they are uploaded. `None`: technicians keep their logs locally
    /// and upload nothing.
    pub audit_key: Option<String>,
    /// Whether a technician may run a session without recording it (`--no-record`).
    pub allow_no_record: bool,
    /// Whether session logs keep what was copied through the shared clipboard, as well as
    /// that it was copied, which way, its kind and size.
    pub record_clipboard: bool,
    /// Stored session logs older than this are deleted (and the deletion recorded).
    pub log_retention: Duration,
    /// Largest session log the relay stores, in bytes.
    pub max_log_bytes: u64,
    /// Connections the relay holds at once, in all; more are refused before their handshake.
    pub max_connections: usize,
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold at once. Generous enough
    /// for an office of technicians and end users behind one address.
    pub max_connections_per_source: usize,
    /// How long a peer that is not paired may leave the relay waiting for its next message
    /// (an agent's wait for a technician is bounded by `code_ttl` instead).
    pub unpaired_timeout: Duration,
    /// Session codes one source may hold waiting at once.
    pub max_waiting_codes_per_source: u32,
    /// Code registrations one source may make per minute.
    pub registrations_per_minute: u32,
    /// Stored session-log bytes one account may hold (its logs past retention are deleted).
    pub account_log_quota: u64,
    /// Checkpoints kept per session log; one every five seconds fills 100,000 in almost six days.
    pub max_checkpoints_per_log: u32,
    /// Whether every account must log in with a one-time code (TOTP) as well as its password.
    pub require_totp: bool,
    /// The support desk's rules: routing and waiting limits per tier.
    pub desk: DeskRules,
    /// Where stored session logs go (`log_store`): `logs/` in the data directory, another
    /// directory, or `s3://BUCKET/PREFIX`.
    pub log_store: Option<String>,
    /// How the S3 bucket of `log_store` is reached; what is left out comes from the usual AWS
    /// variables.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// TCP address of the administrator's HTTP listener (`/metrics`, `/health`); `None`: none.
    pub admin_listen: Option<SocketAddr>,
    /// The cluster this relay belongs to (`cluster_name`): relays sharing `database_url` with
    /// the same cluster name send technicians to each other. `None`: a relay on its own.
    pub cluster_name: Option<String>,
    /// Where the other relays of the cluster tell technicians to reach this one (`HOST:PORT`,
    /// `public_addr`); without it, the listen address when it names one host.
    pub public_addr: Option<String>,
}

/// How the desk treats help requests.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskRules {
    /// Rules of tiers 1, 2 and 3.
    pub tiers: [TierRules; 3],
    /// A waiting request whose agent has been away this long is given up (abandoned).
    pub abandon_after: Duration,
    /// Sessions a technician holds at once before they count as busy (routing offers nothing
    /// to a busy technician).
    pub sessions_per_technician: u32,
}

impl Default for DeskRules {
    fn default() -> Self {
        Self {
            tiers: Default::default(),
            abandon_after: Duration::from_secs(15 * 60),
            sessions_per_technician: 1,
        }
    }
}

impl DeskRules {
    /// The rules of `tier` (1 to 3).
    pub fn tier(&self, tier: u8) -> &TierRules {
        &self.tiers[usize::from(tier.clamp(1, 3) - 1)]
    }
}

/// One tier's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRules {
    pub routing: Routing,
    /// How long an offered request waits for the technician's answer.
    pub offer_timeout: Duration,
    /// Requests waiting longer are shown as overdue.
    pub overdue_after: Option<Duration>,
    /// Requests waiting longer move on to the next tier's queue.
    pub overflow_after: Option<Duration>,
}

impl Default for TierRules {
    fn default() -> Self {
        Self {
            routing: Routing::None,
            offer_timeout: Duration::from_secs(30),
            overdue_after: Some(Duration::from_secs(5 * 60)),
            overflow_after: None,
        }
    }
}

/// How a tier's requests find a technician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// They wait to be taken.
    None,
    /// Each is offered to the available technician of the tier with the fewest sessions, who
    /// takes or declines it within `offer_secs`; then to the next.
    LeastBusy,
}

/// The `[desk]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDesk {
    pub abandon_after_secs: Option<u64>,
    pub sessions_per_technician: Option<u32>,
    pub tier1: Option<FileTier>,
    pub tier2: Option<FileTier>,
    pub tier3: Option<FileTier>,
}

/// A `[desk.tierN]` table; 0 turns a limit off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTier {
    pub routing: Option<Routing>,
    pub offer_secs: Option<u64>,
    pub overdue_after_secs: Option<u64>,
    pub overflow_after_secs: Option<u64>,
}

impl FileDesk {
    fn apply(self, rules: &mut DeskRules) {
        if let Some(v) = self.abandon_after_secs {
            rules.abandon_after = Duration::from_secs(v);
        }
        if let Some(v) = self.sessions_per_technician {
            rules.sessions_per_technician = v;
        }
        let limit = |v: u64| (v > 0).then(|| Duration::from_secs(v));
        for (i, tier) in [self.tier1, self.tier2, self.tier3].into_iter().enumerate() {
            let Some(t) = tier else { continue };
            let r = &mut rules.tiers[i];
            if let Some(v) = t.routing {
                r.routing = v;
            }
            if let Some(v) = t.offer_secs {
                r.offer_timeout = Duration::from_secs(v);
            }
            if let Some(v) = t.overdue_after_secs {
                r.overdue_after = limit(v);
            }
            if let Some(v) = t.overflow_after_secs {
                r.overflow_after = limit(v);
            }
        }
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:4433";

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("literal"),
            data_dir: default_data_dir(),
            database_url: None,
            code_ttl: Duration::from_secs(600),
            join_attempts: 10,
            join_window: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(10),
            keep_alive: None,
            organisation: default_organisation(),
            token_ttl: Duration::from_secs(12 * 3600),
            audit_key: None,
            allow_no_record: false,
            record_clipboard: false,
            log_retention: Duration::from_secs(90 * 86_400),
            max_log_bytes: 8 << 30,
            max_connections: 10_000,
            max_connections_per_source: 256,
            unpaired_timeout: Duration::from_secs(60),
            max_waiting_codes_per_source: 32,
            registrations_per_minute: 30,
            account_log_quota: 64 << 30,
            max_checkpoints_per_log: 100_000,
            require_totp: false,
            desk: DeskRules::default(),
            log_store: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            admin_listen: None,
            cluster_name: None,
            public_addr: None,
        }
    }
}

/// "Tandem relay on HOSTNAME", or "Tandem relay" when the host has no name.
pub fn default_organisation() -> String {
    match hostname() {
        Some(host) => format!("Tandem relay on {host}"),
        None => "Tandem relay".to_string(),
    }
}

/// This machine's host name, if it has one.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(host) if ok && !host.is_empty() => Some(host.to_string()),
        _ => None,
    }
}

/// `$XDG_DATA_HOME/tandem/relay` (usually `~/.local/share/tandem/relay`), or `./tandem-relay`
/// when no home directory is known.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tandem")
        .map(|d| d.data_dir().join("relay"))
        .unwrap_or_else(|| PathBuf::from("tandem-relay"))
}

/// The TOML file's shape: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub code_ttl_secs: Option<u64>,
    pub join_attempts: Option<u32>,
    pub join_window_secs: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub keep_alive_ms: Option<u64>,
    pub organisation: Option<String>,
    pub token_ttl_secs: Option<u64>,
    pub audit_key: Option<String>,
    pub allow_no_record: Option<bool>,
    pub record_clipboard: Option<bool>,
    pub log_retention_days: Option<u64>,
    pub max_log_mb: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub unpaired_timeout_secs: Option<u64>,
    pub max_waiting_codes_per_source: Option<u32>,
    pub registrations_per_minute: Option<u32>,
    pub account_log_quota_mb: Option<u64>,
    pub max_checkpoints_per_log: Option<u32>,
    pub require_totp: Option<bool>,
    pub desk: Option<FileDesk>,
    pub log_store: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    pub cluster_name: Option<String>,
    pub public_addr: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))
    }

    /// Applies the file's settings over `cfg`.
    pub fn apply(self, cfg: &mut Config) {
        let FileConfig {
            listen,
            data_dir,
            database_url,
            code_ttl_secs,
            join_attempts,
            join_window_secs,
            idle_timeout_ms,
            keep_alive_ms,
            organisation,
            token_ttl_secs,
            audit_key,
            allow_no_record,
            record_clipboard,
            log_retention_days,
            max_log_mb,
            max_connections,
            max_connections_per_source,
            unpaired_timeout_secs,
            max_waiting_codes_per_source,
            registrations_per_minute,
            account_log_quota_mb,
            max_checkpoints_per_log,
            require_totp,
            desk,
            log_store,
            s3_endpoint,
            s3_region,
            s3_access_key_id,
            s3_secret_access_key,
            admin_listen,
            cluster_name,
            public_addr,
        } = self;
        let text = |v: String| (!v.trim().is_empty()).then(|| v.trim().to_string());
        if let Some(v) = cluster_name {
            cfg.cluster_name = text(v);
        }
        if let Some(v) = public_addr {
            cfg.public_addr = text(v);
        }
        if let Some(v) = log_store {
            cfg.log_store = text(v);
        }
        if let Some(v) = s3_endpoint {
            cfg.s3_endpoint = text(v);
        }
        if let Some(v) = s3_region {
            cfg.s3_region = text(v);
        }
        if let Some(v) = s3_access_key_id {
            cfg.s3_access_key_id = text(v);
        }
        if let Some(v) = s3_secret_access_key {
            cfg.s3_secret_access_key = text(v);
        }
        if let Some(v) = admin_listen {
            cfg.admin_listen = Some(v);
        }
        if let Some(d) = desk {
            d.apply(&mut cfg.desk);
        }
        if let Some(v) = listen {
            cfg.listen = v;
        }
        if let Some(v) = data_dir {
            cfg.data_dir = v;
        }
        if let Some(v) = database_url {
            // An empty URL says SQLite, over a file that named PostgreSQL.
            cfg.database_url = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = code_ttl_secs {
            cfg.code_ttl = Duration::from_secs(v);
        }
        if let Some(v) = join_attempts {
            cfg.join_attempts = v;
        }
        if let Some(v) = join_window_secs {
            cfg.join_window = Duration::from_secs(v);
        }
        if let Some(v) = idle_timeout_ms {
            cfg.idle_timeout = Duration::from_millis(v);
        }
        if let Some(v) = keep_alive_ms {
            cfg.keep_alive = (v > 0).then(|| Duration::from_millis(v));
        }
        if let Some(v) = organisation {
            cfg.organisation = v;
        }
        if let Some(v) = token_ttl_secs {
            cfg.token_ttl = Duration::from_secs(v);
        }
        if let Some(v) = audit_key {
            cfg.audit_key = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = allow_no_record {
            cfg.allow_no_record = v;
        }
        if let Some(v) = record_clipboard {
            cfg.record_clipboard = v;
        }
        if let Some(v) = log_retention_days {
            cfg.log_retention = Duration::from_secs(v.saturating_mul(86_400));
        }
        if let Some(v) = max_log_mb {
            cfg.max_log_bytes = v.saturating_mul(1 << 20);
        }
        if let Some(v) = max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = max_connections_per_source {
            cfg.max_connections_per_source = v;
        }
        if let Some(v) = unpaired_timeout_secs {
            cfg.unpaired_timeout = Duration::from_secs(v);
        }
        if let Some(v) = max_waiting_codes_per_source {
            cfg.max_waiting_codes_per_source = v;
        }
        if let Some(v) = registrations_per_minute {
            cfg.registrations_per_minute = v;
        }
        if let Some(v) = account_log_quota_mb {
            cfg.account_log_quota = v.saturating_mul(1 << 20);
        }
        if let Some(v) = max_checkpoints_per_log {
            cfg.max_checkpoints_per_log = v;
        }
        if let Some(v) = require_totp {
            cfg.require_totp = v;
        }
    }
}

impl Config {
    /// Where the relay's state is: the PostgreSQL database of `database_url`, or `relay.db` in
    /// the data directory.
    pub fn database(&self) -> crate::storage::Location {
        crate::storage::Location::of(&self.data_dir, self.database_url.as_deref())
    }

    /// Where stored session logs go, as `log_store` and the `s3_*` settings say.
    pub fn log_location(&self) -> anyhow::Result<Location> {
        let mut location = match &self.log_store {
            None => Location::DataDir,
            Some(text) => Location::parse(text)?,
        };
        if let Location::S3(s3) = &mut location {
            s3.endpoint = self.s3_endpoint.clone();
            s3.region = self.s3_region.clone();
            s3.access_key_id = self.s3_access_key_id.clone();
            s3.secret_access_key = self.s3_secret_access_key.clone();
        } else {
            anyhow::ensure!(
                self.s3_endpoint.is_none() && self.s3_region.is_none(),
                "s3_endpoint and s3_region are for a log_store of s3://BUCKET/PREFIX"
            );
        }
        Ok(location)
    }

    /// Where the other relays of the cluster send technicians to reach this one: `public_addr`,
    /// else the address it listens on (`bound`) when that names one host; `None` for a relay
    /// on its own.
    pub fn cluster_addr(&self, bound: SocketAddr) -> anyhow::Result<Option<String>> {
        if self.cluster_name.is_none() {
            return Ok(None);
        }
        match &self.public_addr {
            Some(a) => Ok(Some(a.clone())),
            None if !bound.ip().is_unspecified() => Ok(Some(bound.to_string())),
            None => anyhow::bail!(
                "a relay of a cluster needs public_addr (--public-addr HOST:PORT): where the \
                 other relays send technicians to reach it, as the listen address {bound} names \
                 no single host"
            ),
        }
    }

    /// Refuses settings that cannot work, with a reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.log_location()?;
        if self.cluster_name.is_some() {
            anyhow::ensure!(
                self.database_url.is_some(),
                "a relay of a cluster (cluster_name) keeps its state in the database the other \
                 relays share: give database_url too"
            );
            self.cluster_addr(self.listen)?;
        }
        if let Some(a) = &self.public_addr {
            anyhow::ensure!(
                a.rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
                "public_addr must be HOST:PORT, got {a:?}"
            );
        }
        if let Some(e) = &self.s3_endpoint {
            anyhow::ensure!(
                e.starts_with("http://") || e.starts_with("https://"),
                "s3_endpoint must be an http:// or https:// URL, got {e:?}"
            );
        }
        anyhow::ensure!(
            self.code_ttl >= Duration::from_secs(1),
            "code_ttl_secs must be at least 1"
        );
        if let Some(url) = &self.database_url {
            // Its words may hold the password: they are not repeated.
            anyhow::ensure!(
                (url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.contains('='))
                    && url.parse::<tokio_postgres::Config>().is_ok(),
                "database_url must name a PostgreSQL database (postgres://USER:PASSWORD@HOST/\
                 DBNAME); leave it out to keep the state in SQLite in the data directory"
            );
        }
        anyhow::ensure!(self.join_attempts >= 1, "join_attempts must be at least 1");
        anyhow::ensure!(
            self.join_window >= Duration::from_secs(1),
            "join_window_secs must be at least 1"
        );
        anyhow::ensure!(
            self.idle_timeout >= Duration::from_millis(200),
            "idle_timeout_ms must be at least 200"
        );
        let org = self.organisation.trim();
        anyhow::ensure!(
            !org.is_empty() && org.len() <= 128 && !org.chars().any(char::is_control),
            "organisation must be 1 to 128 printable characters"
        );
        anyhow::ensure!(
            self.token_ttl >= Duration::from_secs(1),
            "token_ttl_secs must be at least 1"
        );
        if let Some(k) = &self.audit_key {
            anyhow::ensure!(
                k.parse::<age::x25519::Recipient>().is_ok(),
                "audit_key must be an age X25519 public key (age1…), as `technician log keygen` \
                 prints it; got {k:?}"
            );
        }
        anyhow::ensure!(
            self.log_retention >= Duration::from_secs(86_400),
            "log_retention_days must be at least 1"
        );
        anyhow::ensure!(
            self.max_connections >= 1 && self.max_connections_per_source >= 1,
            "max_connections and max_connections_per_source must be at least 1"
        );
        anyhow::ensure!(
            self.max_connections_per_source <= self.max_connections,
            "max_connections_per_source ({}) cannot be more than max_connections ({})",
            self.max_connections_per_source,
            self.max_connections
        );
        anyhow::ensure!(
            self.unpaired_timeout >= Duration::from_secs(1),
            "unpaired_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            self.max_waiting_codes_per_source >= 1 && self.registrations_per_minute >= 1,
            "max_waiting_codes_per_source and registrations_per_minute must be at least 1"
        );
        anyhow::ensure!(
            self.max_checkpoints_per_log >= 10,
            "max_checkpoints_per_log must be at least 10"
        );
        anyhow::ensure!(
            self.desk.sessions_per_technician >= 1,
            "desk.sessions_per_technician must be at least 1"
        );
        anyhow::ensure!(
            self.desk.abandon_after >= Duration::from_secs(1),
            "desk.abandon_after_secs must be at least 1"
        );
        for (i, t) in self.desk.tiers.iter().enumerate() {
            anyhow::ensure!(
                t.offer_timeout >= Duration::from_secs(1),
                "desk.tier{}.offer_secs must be at least 1",
                i + 1
            );
            anyhow::ensure!(
                i < 2 || t.overflow_after.is_none(),
                "desk.tier3.overflow_after_secs: tier 3 has no tier above to overflow into"
            );
        }
        if let Some(k) = self.keep_alive {
            anyhow::ensure!(
                k < self.idle_timeout,
                "keep_alive_ms ({}) must be shorter than idle_timeout_ms ({})",
                k.as_millis(),
                self.idle_timeout.as_millis()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let f: FileConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\ncode_ttl_secs = 30\n").unwrap();
        let mut c = Config::default();
        f.apply(&mut c);
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.code_ttl, Duration::from_secs(30));
        assert_eq!(c.join_attempts, 10);
        assert!(
            c.organisation.starts_with("Tandem relay"),
            "{}",
            c.organisation
        );
        let f: FileConfig = toml::from_str("organisation = \"Example Support\"\n").unwrap();
        f.apply(&mut c);
        assert_eq!(c.organisation, "Example Support");
        c.validate().unwrap();
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        let f: FileConfig = toml::from_str(
            "[desk]\nabandon_after_secs = 60\n[desk.tier1]\nrouting = \"least-busy\"\n\
             offer_secs = 5\noverdue_after_secs = 0\noverflow_after_secs = 120\n",
        )
        .unwrap();
        f.apply(&mut c);
        assert_eq!(c.desk.tier(1).routing, Routing::LeastBusy);
        assert_eq!(c.desk.tier(1).overdue_after, None);
        assert_eq!(
            c.desk.tier(1).overflow_after,
            Some(Duration::from_secs(120))
        );
        assert_eq!(c.desk.tier(2).routing, Routing::None);
        assert_eq!(c.desk.abandon_after, Duration::from_secs(60));
        c.validate().unwrap();
        assert!(toml::from_str::<FileConfig>("[desk.tier1]\nrouting = \"random\"").is_err());
    }

    #[test]
    fn a_cluster_needs_a_shared_database_and_an_address_peers_reach() {
        let mut c = Config::default();
        let f: FileConfig = toml::from_str("cluster_name = \"north\"").unwrap();
        f.apply(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("give database_url too"), "{e}");
        c.database_url = Some("postgres://relay:pw@db.example.org/tandem".into());
        // Listening on every address names no host for the others to send technicians to.
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("needs public_addr"), "{e}");
        let bound: SocketAddr = "10.0.0.5:4433".parse().unwrap();
        assert_eq!(
            c.cluster_addr(bound).unwrap().as_deref(),
            Some("10.0.0.5:4433")
        );
        let f: FileConfig = toml::from_str("public_addr = \"relay-a.example.org:4433\"").unwrap();
        f.apply(&mut c);
        c.validate().unwrap();
        assert_eq!(
            c.cluster_addr(c.listen).unwrap().as_deref(),
            Some("relay-a.example.org:4433")
        );
        c.public_addr = Some("relay-a.example.org".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("public_addr must be HOST:PORT"), "{e}");
        // Without a cluster name, a relay is on its own whatever its database.
        c.cluster_name = None;
        c.public_addr = None;
        assert_eq!(c.cluster_addr(bound).unwrap(), None);
    }

    #[test]
    fn a_database_url_names_postgresql_and_an_empty_one_sqlite() {
        let mut c = Config::default();
        assert!(
            matches!(c.database(), crate::storage::Location::Sqlite(p) if p == c.data_dir.join("relay.db"))
        );
        let f: FileConfig =
            toml::from_str("database_url = \"postgres://relay:pw@db.example.org/tandem\"").unwrap();
        f.apply(&mut c);
        c.validate().unwrap();
        assert_eq!(
            c.database(),
            crate::storage::Location::Postgres("postgres://relay:pw@db.example.org/tandem".into())
        );
        c.database_url = Some("sqlite:///var/lib/relay.db".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("database_url must name a PostgreSQL database"),
            "{e}"
        );
        let f: FileConfig = toml::from_str("database_url = \"\"").unwrap();
        f.apply(&mut c);
        assert_eq!(c.database_url, None);
    }

    #[test]
    fn logs_go_to_the_data_directory_unless_a_bucket_is_named() {
        let mut c = Config::default();
        assert_eq!(c.log_location().unwrap(), Location::DataDir);
        let f: FileConfig = toml::from_str(
            "log_store = \"s3://tandem-logs/site-a\"\ns3_endpoint = \"http://127.0.0.1:8333\"\n\
             s3_region = \"eu-west-1\"\nadmin_listen = \"127.0.0.1:9433\"\n",
        )
        .unwrap();
        f.apply(&mut c);
        c.validate().unwrap();
        let Location::S3(s3) = c.log_location().unwrap() else {
            panic!("a bucket was named")
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("tandem-logs", "site-a")
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.admin_listen, Some("127.0.0.1:9433".parse().unwrap()));
        c.s3_endpoint = Some("127.0.0.1:8333".into());
        assert!(c.validate().is_err(), "an endpoint is a URL");
        let f: FileConfig = toml::from_str("log_store = \"ftp://x\"").unwrap();
        let mut c = Config::default();
        f.apply(&mut c);
        assert!(c.validate().is_err());
    }
}
