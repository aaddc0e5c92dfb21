//! `relay`: the Tandem relay server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relay::config::{Config, FileConfig};
use relay::identity;
use relay::server::Relay;

/// Tandem relay: pairs end users' agents with technicians by session code and forwards their
/// traffic over QUIC.
///
/// On first start the relay generates a self-signed certificate in its data directory and
/// prints its SHA-256 fingerprint; agents and technicians pin it with `--fingerprint`. Settings
/// come from built-in defaults, then the TOML file given with --config, then these flags.
#[derive(Parser, Debug)]
#[command(name = "relay", version, about, long_about)]
struct Cli {
    /// UDP address to listen on [default: 0.0.0.0:4433]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the certificate, key and state [default: ~/.local/share/tandem/relay]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file; keys: listen, data_dir, code_ttl_secs, join_attempts,
    /// join_window_secs, idle_timeout_ms, keep_alive_ms
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
        };
        flags.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }
}

fn init_tracing(verbose: u8) {
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
    let id = identity::load_or_generate(&cfg.data_dir)?;
    if let Some(Command::Fingerprint) = cli.command {
        println!("{}", id.fingerprint);
        return Ok(());
    }
    let data_dir = cfg.data_dir.clone();
    let code_ttl = cfg.code_ttl;
    let relay = Relay::bind(cfg, &id)?;
    let addr = relay
        .local_addr()
        .context("cannot read the bound address")?;
    println!("Tandem relay {}", protocol::SOFTWARE_VERSION);
    println!("  listening on {addr} (QUIC over UDP)");
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
    println!(
        "Agents and technicians connect with: --relay HOST:{} --fingerprint {}",
        addr.port(),
        id.fingerprint
    );
    println!("Press Ctrl+C to stop.");
    relay.run(stop_signal()).await;
    println!("Relay stopped.");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
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
