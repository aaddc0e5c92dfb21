//! `relay`: the Tandem relay server.

use std::io::IsTerminal;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use relay::accounts::{AccountRole, Accounts};
use relay::config::{Config, FileConfig};
use relay::identity;
use relay::server::Relay;
use relay::storage::{Database, Location};

/// Tandem relay: pairs end users' agents with logged-in technicians by session code and forwards
/// their traffic over QUIC.
///
/// On first start the relay generates a self-signed certificate in its data directory and
/// prints its SHA-256 fingerprint; agents and technicians pin it with `--fingerprint` (or
/// remember it on their first connection). Technicians need an account: `relay user add NAME
/// --tier 1`. Settings come from built-in defaults, then the TOML file given with --config, then
/// these flags.
#[derive(Parser, Debug)]
#[command(name = "relay", version, about, long_about)]
struct Cli {
    /// UDP address to listen on [default: 0.0.0.0:4433]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the certificate, key and state [default: ~/.local/share/tandem/relay]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the relay's state (accounts, sessions, help requests, the log index) in this
    /// PostgreSQL database, which several relays may share: postgres://USER:PASSWORD@HOST/DBNAME
    /// [default: SQLite, relay.db in the data directory]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "TANDEM_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// TOML config file; keys: listen, data_dir, database_url, organisation, code_ttl_secs, token_ttl_secs,
    /// join_attempts, join_window_secs, idle_timeout_ms, keep_alive_ms, audit_key,
    /// allow_no_record, record_clipboard, log_retention_days, max_log_mb, require_totp, and
    /// the limits max_connections [10000], max_connections_per_source [256, per IPv4 address
    /// or IPv6 /64], unpaired_timeout_secs [60], max_waiting_codes_per_source [32],
    /// registrations_per_minute [30], account_log_quota_mb [65536],
    /// max_checkpoints_per_log [100000]; log_store, s3_endpoint, s3_region, s3_access_key_id,
    /// s3_secret_access_key; admin_listen; cluster_name, public_addr
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The organisation that runs this relay, as users are told ("alice (tier 2) of Example
    /// Support wants to see this screen") [default: Tandem relay on HOSTNAME]
    #[arg(long, value_name = "NAME")]
    organisation: Option<String>,
    /// Seconds a technician's login stays valid [default: 43200, 12 hours]
    #[arg(long, value_name = "SECS")]
    token_ttl_secs: Option<u64>,
    /// The organisation's audit key (age1…, from `technician log keygen`): technicians
    /// encrypt session logs to it and upload them here; only its private half opens them
    /// [default: none, logs stay with the technicians]
    #[arg(long, value_name = "AGE_KEY")]
    audit_key: Option<String>,
    /// Let technicians run sessions without recording them (`technician connect --no-record`)
    #[arg(long)]
    allow_no_record: bool,
    /// Make every account log in with a one-time code (TOTP) as well as its password; enrol
    /// each with `relay user totp NAME` first
    #[arg(long)]
    require_totp: bool,
    /// Days stored session logs are kept before they are deleted [default: 90]
    #[arg(long, value_name = "DAYS")]
    log_retention_days: Option<u64>,
    /// Where stored session logs go: s3://BUCKET/PREFIX (with s3_endpoint and s3_region in the
    /// config file, credentials there or in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or a
    /// directory [default: logs/ in the data directory]
    #[arg(long, value_name = "WHERE")]
    log_store: Option<String>,
    /// TCP address for the administrator's HTTP listener: GET /metrics (Prometheus text
    /// format) and GET /health, e.g. 127.0.0.1:9433 [default: none]
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Join the cluster NAME: the relays that share database_url under the same cluster name
    /// find each other there, and a technician who gives one of them a code or takes a help
    /// request whose user's agent waits on another is sent to that one (config: cluster_name)
    /// [default: none, a relay on its own]
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Where the other relays of the cluster send technicians to reach this one, HOST:PORT
    /// as technicians reach it (config: public_addr) [default: the listen address, when it
    /// names one host]
    #[arg(long, value_name = "HOST:PORT")]
    public_addr: Option<String>,
    /// Seconds an unused session code stays valid [default: 600]
    #[arg(long, value_name = "SECS")]
    code_ttl_secs: Option<u64>,
    /// Join attempts allowed per source address per window [default: 10]
    #[arg(long, value_name = "N")]
    join_attempts: Option<u32>,
    /// Length of the join rate-limit window in seconds [default: 60]
    #[arg(long, value_name = "SECS")]
    join_window_secs: Option<u64>,
    /// Milliseconds of silence after which a peer counts as gone and its partner is told it
    /// left; after one second of silence the partner is told it is not responding, so an
    /// outage shorter than this is survived [default: 10000]
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Milliseconds between keep-alives sent by the relay; 0 leaves them to the peers, which
    /// send one every 150 ms [default: 0]
    #[arg(long, value_name = "MS")]
    keep_alive_ms: Option<u64>,
    /// Show diagnostic logs (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the certificate fingerprint (generating the certificate if there is none) and exit
    Fingerprint,
    /// Manage technician accounts (in the relay's database: relay.db in the data directory, or
    /// database_url)
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// The archive of session logs technicians uploaded (encrypted to the audit key: the relay
    /// cannot read them; `technician log decrypt` opens them)
    Logs {
        #[command(subcommand)]
        action: LogsCommand,
    },
    /// The support desk's figures from its record of help requests, per tier and per
    /// technician: requests, wait before first response (median, 90th percentile), abandoned
    /// (cancelled or given up while waiting), escalated, first-contact resolution at tier 1,
    /// median handle time and the survey average
    Report {
        /// Only requests filed at or after this UTC date: YYYY-MM-DD or "YYYY-MM-DD HH:MM"
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only this tier's figures, and the technicians' work in it
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=3))]
        tier: Option<u8>,
        /// One JSON object
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Comma-separated rows with a header
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LogsCommand {
    /// List the stored logs, oldest session first
    List {
        /// One JSON object per log
        #[arg(long)]
        json: bool,
    },
    /// Everything the index holds of one log, or when and why it was deleted
    Show { id: String },
    /// Copy a stored log out of the archive, with the checkpoints the relay holds for it:
    /// writes DIR/ID.tlog.age and DIR/ID.checkpoints.json
    Get {
        id: String,
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account; the password is asked at the terminal (twice), or read as one line
    /// from standard input when that is not a terminal
    Add {
        name: String,
        /// Support tier: 1 (first contact), 2 (escalations from tier 1) or 3 (the rest)
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(relay::accounts::MAX_TIER)))]
        tier: u8,
        /// technician, auditor or admin
        #[arg(long, default_value = "technician", value_parser = parse_role)]
        role: AccountRole,
    },
    /// List the accounts
    List,
    /// Stop an account from logging in and end its logins
    Disable { name: String },
    /// Let a disabled account log in again
    Enable { name: String },
    /// Set a new password (asked as for `add`); ends the account's logins
    Passwd { name: String },
    /// End every login of an account without changing anything else
    Revoke { name: String },
    /// Give an account a second factor: prints an otpauth:// URI and its QR code for an
    /// authenticator app (any TOTP app); from then on a login asks for the app's six-digit code
    /// as well as the password. Running it again replaces the secret; ends the account's logins
    Totp {
        name: String,
        /// Take the account's second factor away instead
        #[arg(long)]
        off: bool,
    },
    /// Delete an account
    Remove { name: String },
}

fn parse_role(s: &str) -> Result<AccountRole, String> {
    s.parse()
}

/// A new password: at a terminal asked twice without echo, otherwise one line of stdin.
fn read_new_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .context("cannot read the password from the terminal")?;
        let second = rpassword::prompt_password("Again: ")
            .context("cannot read the password from the terminal")?;
        anyhow::ensure!(
            first == second,
            "the two passwords differ; nothing was changed"
        );
        Ok(first)
    } else {
        link::userfile::password_line().context("cannot read the password from standard input")
    }
}

/// The relay's database as `cfg` names it, for a command (creating the data directory for an
/// SQLite one).
fn open_database(cfg: &Config) -> anyhow::Result<Database> {
    let location = cfg.database();
    if let Location::Sqlite(_) = location {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    }
    Database::open(&location)
        .with_context(|| format!("cannot open the relay's state ({})", location.describe()))
}

fn user_command(cfg: &Config, action: UserCommand) -> anyhow::Result<()> {
    let db = open_database(cfg)?;
    let mut accounts = Accounts::open(&db)?;
    let now = SystemTime::now();
    match action {
        UserCommand::Add { name, tier, role } => {
            // Check what can be checked before asking for a password.
            anyhow::ensure!(
                accounts.get(&name, now)?.is_none(),
                "an account called {name:?} already exists"
            );
            let password = read_new_password(&name)?;
            let t = accounts.add_user(&name, &password, tier, role, now)?;
            println!("Added {} (tier {}, {}).", t.name, t.tier, t.role);
        }
        UserCommand::List => {
            let all = accounts.list(now)?;
            if all.is_empty() {
                println!(
                    "No accounts in the {}. Add one with: relay user add NAME --tier 1",
                    db.location().describe()
                );
            }
            for t in all {
                let status = match (t.enabled, t.locked_until) {
                    (false, _) => "disabled".to_string(),
                    (true, Some(until)) => format!(
                        "locked for {} after failed logins",
                        relay::rendezvous::human(until.duration_since(now).unwrap_or_default())
                    ),
                    (true, None) => "enabled".to_string(),
                };
                println!(
                    "{:<24} tier {:<2} {:<11} {status}",
                    t.name,
                    t.tier,
                    t.role.as_str()
                );
            }
        }
        UserCommand::Disable { name } => {
            accounts.disable(&name, now)?;
            println!("Disabled {name}; its logins have ended.");
        }
        UserCommand::Enable { name } => {
            accounts.set_enabled(&name, true, now)?;
            println!("Enabled {name}.");
        }
        UserCommand::Passwd { name } => {
            anyhow::ensure!(
                accounts.get(&name, now)?.is_some(),
                "no account is called {name:?}"
            );
            let password = read_new_password(&name)?;
            accounts.set_password(&name, &password, now)?;
            println!("Changed the password of {name}; its logins have ended.");
        }
        UserCommand::Revoke { name } => {
            let n = accounts.revoke_tokens(&name, now)?;
            println!("Ended {n} login(s) of {name}.");
        }
        UserCommand::Totp { name, off: true } => {
            accounts.set_totp(&name, false, now)?;
            println!("{name} logs in with the password alone now; its logins have ended.");
        }
        UserCommand::Totp { name, off: false } => {
            let secret = accounts
                .set_totp(&name, true, now)?
                .context("no secret was made")?;
            let uri = relay::totp::uri(&secret, &name, &cfg.organisation);
            println!("{name} now logs in with a one-time code as well as the password.");
            println!("Scan this with the authenticator app (or enter the secret by hand):");
            println!();
            if let Some(qr) = relay::totp::qr(&uri) {
                print!("{qr}");
            }
            println!();
            println!("  {uri}");
            println!("  secret: {secret}");
            println!();
            println!(
                "Keep this out of sight: whoever has it makes the codes. Its logins have ended; \
                 the next asks for the code."
            );
        }
        UserCommand::Remove { name } => {
            accounts.remove(&name)?;
            println!("Removed {name}.");
        }
    }
    Ok(())
}

fn logs_command(cfg: &Config, action: LogsCommand) -> anyhow::Result<()> {
    use protocol::sessionlog::{format_ms, format_utc, CheckpointFile};
    use protocol::text::printable;
    use relay::logstore::LogStore;
    let data_dir = cfg.data_dir.as_path();
    let db = open_database(cfg)?;
    let location = cfg.log_location()?;
    let objects = relay::objects::open(&location, data_dir).with_context(|| {
        format!(
            "cannot reach the session logs in {}",
            location.describe(data_dir)
        )
    })?;
    let store = LogStore::open_with(&db, objects, relay::logstore::Limits::none())?;
    // Reads only: the relay's name marks nothing here.
    let ledger = relay::ledger::Ledger::open(&db, "")?;
    match action {
        LogsCommand::List { json } => {
            let logs = store.list()?;
            let missing = ledger.without_log()?;
            if json {
                for log in &logs {
                    println!("{}", serde_json::to_string(log)?);
                }
                for s in &missing {
                    let mut v = serde_json::to_value(s)?;
                    v["state"] = "no log stored".into();
                    println!("{v}");
                }
            } else if logs.is_empty() {
                println!("No session logs stored in {}.", store.objects().describe());
            } else {
                println!(
                    "{:<36} {:<16} {:<23} {:>12} {:>12}  state",
                    "id", "technician", "started", "duration", "bytes"
                );
                for log in &logs {
                    let state = if log.complete {
                        "stored".to_string()
                    } else {
                        format!("uploading ({} of {} bytes)", log.received, log.offer.size)
                    };
                    println!(
                        "{:<36} {:<16} {:<23} {:>12} {:>12}  {state}",
                        log.offer.id,
                        printable(&log.technician),
                        format_utc(log.offer.started_unix_ms),
                        format_ms(log.offer.duration_ms),
                        log.offer.size
                    );
                }
            }
            if !json && !missing.is_empty() {
                println!();
                println!("Sessions the relay paired whose log it does not hold:");
                println!(
                    "{:<36} {:<16} {:<23} {:<9} {:<21}  ended",
                    "session", "technician", "paired", "recording", "agent"
                );
                for s in &missing {
                    println!(
                        "{:<36} {:<16} {:<23} {:<9} {:<21}  {}",
                        s.id,
                        printable(&s.technician),
                        format_utc(s.paired_unix_ms),
                        if s.recording_required {
                            "required"
                        } else {
                            "optional"
                        },
                        s.agent_addr,
                        printable(s.end_reason.as_deref().unwrap_or("still running"))
                    );
                }
            }
        }
        LogsCommand::Show { id } => match store.get(&id)? {
            Some(log) => {
                let checkpoints = store.checkpoints(&id)?;
                println!("log          {}", log.offer.id);
                println!("technician   {}", printable(&log.technician));
                println!("agent        {}", printable(&log.offer.agent));
                println!("started      {}", format_utc(log.offer.started_unix_ms));
                println!("duration     {}", format_ms(log.offer.duration_ms));
                println!("records      {}", log.offer.records);
                println!("chain hash   {}", log.offer.chain_hash);
                println!(
                    "bytes        {} (SHA-256 {})",
                    log.offer.size, log.offer.sha256
                );
                match log.stored_unix_ms {
                    Some(t) => println!("stored       {}", format_utc(t)),
                    None => println!("stored       not yet: {} bytes received", log.received),
                }
                println!("checkpoints  {}", checkpoints.len());
            }
            None => {
                let deleted = store.deletions()?.into_iter().find(|d| d.id == id);
                match deleted {
                    Some(d) => println!(
                        "{id} was deleted on {}: {}.",
                        format_utc(d.deleted_unix_ms),
                        d.reason
                    ),
                    None => anyhow::bail!("no session log {id:?} in {}", data_dir.display()),
                }
            }
        },
        LogsCommand::Get { id, output } => {
            let log = store
                .get(&id)?
                .with_context(|| format!("no session log {id:?} in {}", data_dir.display()))?;
            anyhow::ensure!(
                log.complete,
                "log {id} is still being uploaded ({} of {} bytes)",
                log.received,
                log.offer.size
            );
            std::fs::create_dir_all(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let data = output.join(format!("{id}.tlog.age"));
            let mut from = store.reader(&id, 0)?;
            let mut to = std::fs::File::create(&data)
                .with_context(|| format!("cannot write {}", data.display()))?;
            let copied = std::io::copy(&mut from, &mut to)
                .with_context(|| format!("cannot copy log {id} into {}", data.display()))?;
            anyhow::ensure!(
                copied == log.offer.size,
                "log {id} has {copied} bytes in {}, the index says {}",
                store.objects().describe(),
                log.offer.size
            );
            let checkpoints = store.checkpoints_with_seal(&id)?;
            let file = CheckpointFile {
                log_id: id.clone(),
                checkpoints,
            };
            let cps = output.join(format!("{id}.checkpoints.json"));
            std::fs::write(&cps, serde_json::to_string_pretty(&file)?)
                .with_context(|| format!("cannot write {}", cps.display()))?;
            println!("Wrote {} and {}.", data.display(), cps.display());
            println!(
                "Open it with: technician log decrypt {} --identity AUDIT_KEY -o {id}.tlog",
                data.display()
            );
            println!(
                "then: technician log verify {id}.tlog --checkpoints {}",
                cps.display()
            );
        }
    }
    Ok(())
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        let mut cfg = Config::default();
        if let Some(path) = &self.config {
            FileConfig::load(path)?.apply(&mut cfg);
        }
        let flags = FileConfig {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            code_ttl_secs: self.code_ttl_secs,
            join_attempts: self.join_attempts,
            join_window_secs: self.join_window_secs,
            idle_timeout_ms: self.idle_timeout_ms,
            keep_alive_ms: self.keep_alive_ms,
            organisation: self.organisation.clone(),
            token_ttl_secs: self.token_ttl_secs,
            audit_key: self.audit_key.clone(),
            allow_no_record: self.allow_no_record.then_some(true),
            require_totp: self.require_totp.then_some(true),
            log_retention_days: self.log_retention_days,
            log_store: self.log_store.clone(),
            admin_listen: self.admin_listen,
            cluster_name: self.cluster.clone(),
            public_addr: self.public_addr.clone(),
            ..FileConfig::default()
        };
        flags.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }
}

fn report_command(
    cfg: &Config,
    since: Option<String>,
    tier: Option<u8>,
    json: bool,
    csv: bool,
) -> anyhow::Result<()> {
    let since = match since {
        Some(text) => Some(protocol::sessionlog::parse_utc(&text).with_context(|| {
            format!("--since {text:?} is not a date: give YYYY-MM-DD or \"YYYY-MM-DD HH:MM\" (UTC)")
        })?),
        None => None,
    };
    if let Location::Sqlite(path) = cfg.database() {
        anyhow::ensure!(
            path.exists(),
            "no relay state in {} (relay.db is missing): give the relay's --data-dir, or its \
             --database-url",
            cfg.data_dir.display()
        );
    }
    let journal = relay::desk::Journal::open(&open_database(cfg)?)?;
    let events = journal.events()?;
    let report = relay::desk::report::report(&events, since, tier);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if csv {
        print!("{}", report.csv());
    } else {
        match since {
            Some(ms) => println!(
                "Help requests filed since {}:\n",
                protocol::sessionlog::format_utc(ms)
            ),
            None => println!("All help requests:\n"),
        }
        print!("{}", report.table());
    }
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The relay: serves until SIGINT or SIGTERM (or prints its fingerprint, `fingerprint`).
async fn serve(cfg: Config, fingerprint_only: bool) -> anyhow::Result<()> {
    let id = identity::load_or_generate(&cfg.data_dir)?;
    if fingerprint_only {
        println!("{}", id.fingerprint);
        return Ok(());
    }
    let data_dir = cfg.data_dir.clone();
    let state = cfg.database().describe();
    let code_ttl = cfg.code_ttl;
    let organisation = cfg.organisation.clone();
    let recording = if cfg.allow_no_record {
        "technicians may choose not to record"
    } else {
        "every session is recorded"
    };
    let logs_line = match &cfg.audit_key {
        Some(key) => format!(
            "session logs: stored in {} encrypted to the audit key {key}, kept {} days; {recording}",
            cfg.log_location()?.describe(&data_dir),
            cfg.log_retention.as_secs() / 86_400
        ),
        None => format!("session logs: kept by the technicians only (no audit_key); {recording}"),
    };
    let relay = Relay::bind(cfg, &id).await?;
    let accounts = relay.enabled_accounts().await.unwrap_or(0);
    let addr = relay
        .local_addr()
        .context("cannot read the bound address")?;
    let admin = relay.admin_addr();
    println!("Tandem relay {}", protocol::SOFTWARE_VERSION);
    println!("  listening on {addr} (QUIC over UDP)");
    println!("  organisation: {organisation}");
    println!("  data directory {}", data_dir.display());
    println!("  state: {state} (this relay is {})", relay.name());
    println!(
        "  certificate fingerprint (SHA-256): {}{}",
        id.fingerprint,
        if id.generated {
            "  [new certificate generated]"
        } else {
            ""
        }
    );
    println!(
        "  session codes expire after {}",
        relay::rendezvous::human(code_ttl)
    );
    println!("  {logs_line}");
    if let Some(a) = admin {
        println!("  metrics at http://{a}/metrics, health at http://{a}/health");
    }
    if accounts == 0 {
        println!(
            "  no technician accounts yet: add one with `relay user add NAME --tier 1` (technicians cannot join until then)"
        );
    } else {
        println!("  {accounts} technician account(s) enabled");
    }
    println!(
        "Agents and technicians connect with: --relay HOST:{} --fingerprint {}",
        addr.port(),
        id.fingerprint
    );
    println!("Press Ctrl+C to stop.");
    relay.run(stop_signal()).await;
    // stdout may be gone by now (a supervisor that stopped reading): that is no reason to fail.
    let _ = writeln!(std::io::stdout(), "Relay stopped.");
    Ok(())
}

/// Runs the command `cli` gives, or the relay.
fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.config()?;
    // The commands run without an async runtime: storage waits for its database itself.
    match cli.command {
        Some(Command::User { action }) => user_command(&cfg, action),
        Some(Command::Logs { action }) => logs_command(&cfg, action),
        Some(Command::Report {
            since,
            tier,
            json,
            csv,
        }) => report_command(&cfg, since, tier, json, csv),
        command => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let served = rt.block_on(serve(cfg, matches!(command, Some(Command::Fingerprint))));
            rt.shutdown_timeout(Duration::from_secs(1));
            served
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let result = run(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
