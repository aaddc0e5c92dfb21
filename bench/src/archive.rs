//! `bench archive`: how fast the relay's archive takes and gives back session logs, with the
//! bytes in its data directory and in S3 (a SeaweedFS server on this machine, started here).
//!
//! Each backend gets the same encrypted-looking log (random bytes, as age output is), uploaded
//! as a technician's client does: offered, sent in chunks of the control plane's size, then
//! ended (the hash checked and the log put in place), through the relay's own
//! [`relay::logstore::LogStore`]; then fetched whole, as `technician fetch-log` is served. The
//! control plane in front of it is the same for both backends, so the ratio of the two rates
//! is what moving the logs to S3 costs. Target: S3 takes uploads at half the directory's rate
//! or better.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use relay::logstore::{Limits, LogStore, Offer};
use relay::objects::{Location, S3Location};

use crate::report::{progress, Report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the log uploaded to each backend, in MiB
    #[arg(long, default_value_t = 256)]
    pub mb: u64,
    /// Uploads per backend; the median rate is reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Rates of one backend, in MB/s (10^6 bytes a second).
struct Rates {
    upload: f64,
    fetch: f64,
}

pub fn main(args: &Args, json: bool) -> anyhow::Result<()> {
    let size = args.mb.max(1) << 20;
    let data = random_bytes(size as usize);
    let runs = args.runs.max(1);
    let dir = tempfile::tempdir()?;
    progress(
        "archive",
        format!("directory: {runs} uploads of {} MiB", args.mb),
    );
    let directory = measure(
        &dir.path().join("directory"),
        &Location::DataDir,
        &data,
        runs,
    )?;
    progress("archive", "starting SeaweedFS for the S3 backend");
    let s3 = harness::s3::SeaweedFs::start(&dir.path().join("seaweedfs"), "tandem-logs")?;
    let location = Location::S3(S3Location {
        bucket: s3.bucket.clone(),
        prefix: "bench".into(),
        endpoint: Some(s3.endpoint.clone()),
        region: None,
        access_key_id: Some(s3.access_key_id.clone()),
        secret_access_key: Some(s3.secret_access_key.clone()),
    });
    progress("archive", format!("S3: {runs} uploads of {} MiB", args.mb));
    let bucket = measure(&dir.path().join("s3"), &location, &data, runs)?;

    let mut report = Report::new("archive");
    report.note(format!(
        "A {} MiB session log uploaded through the relay's archive in {} KiB chunks (offer, \
         chunks, end: hash checked, log put in place), then fetched whole; median of {runs}.",
        args.mb,
        protocol::control::UPLOAD_CHUNK / 1024
    ));
    report.note(
        "directory: logs/ in the data directory; s3: SeaweedFS on loopback, 8 MiB multipart \
         parts."
            .to_string(),
    );
    report.label("upload_mb_s", "log upload (MB/s)");
    report.label("fetch_mb_s", "log fetch (MB/s)");
    report.label("upload_ratio", "upload rate against the directory's");
    for (system, r) in [("directory", &directory), ("s3", &bucket)] {
        report.add(system, "upload_mb_s", r.upload, "MB/s", 1);
        report.add(system, "fetch_mb_s", r.fetch, "MB/s", 1);
    }
    let ratio = bucket.upload / directory.upload.max(1e-9);
    report.add("s3", "upload_ratio", ratio, "x", 2);
    report.target("s3", "upload_ratio", "≥ 0.5", ratio >= 0.5);
    report.print(json)
}

/// Uploads and fetches `data` `runs` times through an archive in `data_dir` whose bytes go
/// to `location`.
fn measure(
    data_dir: &Path,
    location: &Location,
    data: &[u8],
    runs: usize,
) -> anyhow::Result<Rates> {
    std::fs::create_dir_all(data_dir)?;
    let objects = relay::objects::open(location, data_dir)
        .with_context(|| format!("cannot open {}", location.describe(data_dir)))?;
    let limits = Limits {
        max_size: u64::MAX,
        account_quota: u64::MAX,
        ..Limits::default()
    };
    // The index in SQLite in the data directory, the same for both backends.
    let db = relay::storage::Database::open(&relay::storage::Location::of(data_dir, None))?;
    let store = LogStore::open_with(&db, objects, limits)?;
    let ledger = relay::ledger::Ledger::open(&db, "bench")?;
    let sha256 = sha256_hex(data);
    let mb = data.len() as f64 / 1e6;
    let (mut uploads, mut fetches) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let id = ledger.open_session(&relay::ledger::Pairing {
            technician: "bench",
            tier: 1,
            technician_addr: "127.0.0.1:1".into(),
            agent_addr: "127.0.0.1:2".into(),
            agent_software: "bench",
            code_digits: "000000000",
            recording_required: true,
        })?;
        let offer = Offer {
            id: id.clone(),
            agent: "agent at 127.0.0.1".into(),
            started_unix_ms: 0,
            duration_ms: 1000,
            records: 1,
            chain_hash: "00".repeat(32),
            size: data.len() as u64,
            sha256: sha256.clone(),
        };
        let start = Instant::now();
        let mut at = store.begin("bench", &offer)?;
        for chunk in data.chunks(protocol::control::UPLOAD_CHUNK) {
            at = store.append("bench", &id, at, chunk)?;
        }
        let stored = store.finish("bench", &id)?;
        anyhow::ensure!(stored.complete, "log {id} was not stored");
        uploads.push(mb / start.elapsed().as_secs_f64());

        let start = Instant::now();
        let mut reader = store.reader(&id, 0)?;
        let mut buf = vec![0u8; protocol::control::UPLOAD_CHUNK];
        let mut read = 0usize;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read += n;
        }
        fetches.push(mb / start.elapsed().as_secs_f64());
        anyhow::ensure!(read == data.len(), "fetched {read} of {} bytes", data.len());
    }
    Ok(Rates {
        upload: median(&mut uploads),
        fetch: median(&mut fetches),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes that look like an encrypted log: no pattern a disk or a server could compress.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64*: plenty for incompressible filler.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
