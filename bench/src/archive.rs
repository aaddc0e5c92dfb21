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
//!
//! Beside them, the same bytes go to the same server through a plain S3 client (object_store's
//! multipart calls, no relay, no disk, no hash), in parts of the relay's size sent one at a
//! time and several at once: what the server itself takes on this machine, the ceiling of the
//! relay's S3 rate.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, PutPayload};
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
    // Each run takes one upload on every backend in turn, so that what else the machine does
    // weighs on all of them alike.
    let (mut directories, mut buckets, mut ones, mut manys) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        progress(
            "archive",
            format!("run {} of {runs}: {} MiB to each backend", run + 1, args.mb),
        );
        let data_dir = |name: &str| dir.path().join(format!("{name}-{run}"));
        directories.push(measure(&data_dir("directory"), &Location::DataDir, &data)?);
        buckets.push(measure(&data_dir("s3"), &location, &data)?);
        ones.push(direct(&s3, &data, run, 1)?);
        manys.push(direct(&s3, &data, run, DIRECT_IN_FLIGHT)?);
    }
    let rates = |runs: &[Rates]| {
        let [upload, fetch] = medians(runs, |r| [r.upload, r.fetch]);
        Rates { upload, fetch }
    };
    let (directory, bucket) = (rates(&directories), rates(&buckets));
    let plain = |runs: &[Direct]| {
        let [upload, server_cores] = medians(runs, |r| [r.upload, r.server_cores]);
        Direct {
            upload,
            server_cores,
        }
    };
    let (direct_one, direct_many) = (plain(&ones), plain(&manys));

    let mut report = Report::new("archive");
    report.note(format!(
        "A {} MiB session log uploaded through the relay's archive in {} KiB chunks (offer, \
         chunks, end: hash checked, log put in place), then fetched whole; median of {runs} runs, each uploading to every backend in turn.",
        args.mb,
        protocol::control::UPLOAD_CHUNK / 1024
    ));
    report.note(format!(
        "directory: logs/ in the data directory; s3: SeaweedFS on loopback, {} MiB multipart \
         parts; s3-direct-1 and s3-direct-many: the same bytes in the same parts \
         through a plain S3 client, one part at a time and {DIRECT_IN_FLIGHT} at once (upload \
         only).",
        relay::objects::PART_SIZE >> 20
    ));
    report.label("upload_mb_s", "log upload (MB/s)");
    report.label("fetch_mb_s", "log fetch (MB/s)");
    report.label("upload_ratio", "upload rate against the directory's");
    for (system, r) in [("directory", &directory), ("s3", &bucket)] {
        report.add(system, "upload_mb_s", r.upload, "MB/s", 1);
        report.add(system, "fetch_mb_s", r.fetch, "MB/s", 1);
    }
    let ratio = bucket.upload / directory.upload.max(1e-9);
    report.add("s3", "upload_ratio", ratio, "x", 2);
    report.label("server_cores", "S3 server's CPU while taking them (cores)");
    for (system, d) in [("s3-direct-1", direct_one), (DIRECT_MANY, direct_many)] {
        report.add(system, "upload_mb_s", d.upload, "MB/s", 1);
        report.add(
            system,
            "upload_ratio",
            d.upload / directory.upload.max(1e-9),
            "x",
            2,
        );
        report.add(system, "server_cores", d.server_cores, "cores", 2);
    }
    if let Ok(load) = crate::procstat::load_average() {
        report.note(format!("1-minute load average at the end: {load:.1}"));
    }
    report.target("s3", "upload_ratio", "≥ 0.5", ratio >= 0.5);
    report.print(json)
}

/// Uploads and fetches `data` through an archive in `data_dir` whose bytes go to `location`.
fn measure(data_dir: &Path, location: &Location, data: &[u8]) -> anyhow::Result<Rates> {
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
    let upload = mb / start.elapsed().as_secs_f64();

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
    let fetch = mb / start.elapsed().as_secs_f64();
    anyhow::ensure!(read == data.len(), "fetched {read} of {} bytes", data.len());
    Ok(Rates { upload, fetch })
}

/// Parts in flight at once for the plain client's second run: as many as the relay sends.
const DIRECT_IN_FLIGHT: usize = relay::objects::PARTS_IN_FLIGHT;
const DIRECT_MANY: &str = "s3-direct-many";

/// What a plain client got from the server: the median rate in MB/s, and the CPU the server
/// used meanwhile, in cores (its CPU time over the upload's wall time).
struct Direct {
    upload: f64,
    server_cores: f64,
}

/// Uploads `data` to `s3` with a plain S3 client, one multipart upload of run `run`,
/// `in_flight` parts at once.
fn direct(
    s3: &harness::s3::SeaweedFs,
    data: &[u8],
    run: usize,
    in_flight: usize,
) -> anyhow::Result<Direct> {
    let store = std::sync::Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region("us-east-1")
            .with_endpoint(&s3.endpoint)
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(&s3.secret_access_key)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let data = bytes::Bytes::copy_from_slice(data);
    let part = relay::objects::PART_SIZE as usize;
    let mb = data.len() as f64 / 1e6;
    let server = s3.process.pid();
    let cpu_before = crate::procstat::cpu_time(server)?;
    let object = ObjectPath::from(format!("direct/{in_flight}-{run}"));
    let start = Instant::now();
    rt.block_on(async {
        let id = store.create_multipart(&object).await?;
        let mut sending = tokio::task::JoinSet::new();
        let mut parts = Vec::new();
        for (index, from) in (0..data.len()).step_by(part).enumerate() {
            if sending.len() == in_flight {
                parts.push(sending.join_next().await.expect("some")??);
            }
            let (store, object, id) = (store.clone(), object.clone(), id.clone());
            let payload = PutPayload::from(data.slice(from..(from + part).min(data.len())));
            sending.spawn(async move {
                let done = store.put_part(&object, &id, index, payload).await?;
                anyhow::Ok((index, done))
            });
        }
        while let Some(done) = sending.join_next().await {
            parts.push(done??);
        }
        parts.sort_by_key(|(index, _)| *index);
        let parts = parts.into_iter().map(|(_, p)| p).collect();
        store.complete_multipart(&object, &id, parts).await?;
        anyhow::Ok(())
    })?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = crate::procstat::cpu_time(server)? - cpu_before;
    Ok(Direct {
        upload: mb / wall,
        server_cores: cpu.as_secs_f64() / wall,
    })
}

/// The median of each figure over `runs`.
fn medians<T, const N: usize>(runs: &[T], figures: impl Fn(&T) -> [f64; N]) -> [f64; N] {
    let all: Vec<[f64; N]> = runs.iter().map(figures).collect();
    std::array::from_fn(|i| median(all.iter().map(|f| f[i])))
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
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
