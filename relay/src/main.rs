//! `relay`: the Tandem relay server.

use std::io::Write;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use relay::accounts::{AccountRole, Accounts};
use relay::config::{Config, FileConfig};
use relay::identity;
use relay::server::Relay;

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
    /// TOML config file; keys: listen, data_dir, organisation, code_ttl_secs, token_ttl_secs,
    /// join_attempts, join_window_secs, idle_timeout_ms, keep_alive_ms
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The organisation that runs this relay, as users are told ("alice (tier 2) of Example
    /// Support wants to see this screen") [default: Tandem relay on HOSTNAME]
    #[arg(long, value_name = "NAME")]
    organisation: Option<String>,
    /// Seconds a technician's login stays valid [default: 43200, 12 hours]
    #[arg(long, value_name = "SECS")]
    token_ttl_secs: Option<u64>,
    /// Seconds an unused session code stays valid [default: 600]
    #[arg(long, value_name = "SECS")]
    code_ttl_secs: Option<u64>,
    /// Join attempts allowed per source address per window [default: 10]
    #[arg(long, value_name = "N")]
    join_attempts: Option<u32>,
    /// Length of the join rate-limit window in seconds [default: 60]
    #[arg(long, value_name = "SECS")]
    join_window_secs: Option<u64>,
    /// Milliseconds of silence after which a peer counts as gone; the other peer is told at
    /// once [default: 600]
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
    /// Manage technician accounts (stored in relay.db in the data directory)
    User {
        #[command(subcommand)]
        action: UserCommand,
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
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        anyhow::ensure!(
            !password.is_empty(),
            "no password on standard input; pipe one line, or run at a terminal"
        );
        Ok(password)
    }
}

fn user_command(data_dir: &Path, action: UserCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = Accounts::path_in(data_dir);
    let mut accounts = Accounts::open(&path)?;
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
                    "No accounts in {}. Add one with: relay user add NAME --tier 1",
                    path.display()
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
        UserCommand::Remove { name } => {
            accounts.remove(&name)?;
            println!("Removed {name}.");
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
            code_ttl_secs: self.code_ttl_secs,
            join_attempts: self.join_attempts,
            join_window_secs: self.join_window_secs,
            idle_timeout_ms: self.idle_timeout_ms,
            keep_alive_ms: self.keep_alive_ms,
            organisation: self.organisation.clone(),
            token_ttl_secs: self.token_ttl_secs,
        };
        flags.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.config()?;
    if let Some(Command::User { action }) = cli.command {
        return user_command(&cfg.data_dir, action);
    }
    let id = identity::load_or_generate(&cfg.data_dir)?;
    if let Some(Command::Fingerprint) = cli.command {
        println!("{}", id.fingerprint);
        return Ok(());
    }
    let data_dir = cfg.data_dir.clone();
    let code_ttl = cfg.code_ttl;
    let organisation = cfg.organisation.clone();
    let accounts = relay::accounts::Accounts::open(&relay::accounts::Accounts::path_in(&data_dir))
        .and_then(|a| a.list(SystemTime::now()))
        .map(|l| l.iter().filter(|t| t.enabled).count())
        .unwrap_or(0);
    let relay = Relay::bind(cfg, &id)?;
    let addr = relay
        .local_addr()
        .context("cannot read the bound address")?;
    println!("Tandem relay {}", protocol::SOFTWARE_VERSION);
    println!("  listening on {addr} (QUIC over UDP)");
    println!("  organisation: {organisation}");
    println!("  data directory {}", data_dir.display());
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    link::report::init_tracing(cli.verbose);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
