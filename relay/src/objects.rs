//! Where the bytes of stored session logs live: a directory on the relay's disk (the default),
//! or a bucket of S3-compatible object storage that several relays can share.
//!
//! [`LogObjects`] is the seam between the archive's index ([`crate::logstore`], which knows
//! who uploaded what, how much and whether it is whole) and the bytes. An upload grows by
//! appends at the offset it has reached, is sealed once whole (its SHA-256 checked, then put in
//! place, so that a log that is not whole never stands where a stored one does), is read back
//! as a stream, and is deleted when its retention ends.
//!
//! - [`Directory`]: `ID.tlog.age.part` while it grows, renamed to `ID.tlog.age` once synced
//!   and checked; private to the relay's user.
//! - [`S3`]: the object `PREFIX/ID.tlog.age`, written by one multipart upload. What the relay
//!   has received beyond the last whole part waits in a file of its data directory
//!   (`log-uploads/ID.from-OFFSET`, and in memory) until it makes a part of [`PART_SIZE`].
//!   Whole parts are sent while the next ones arrive, up to [`PARTS_IN_FLIGHT`] of an upload
//!   at once, each from the bytes held in memory; a part's waiting file stays until the part
//!   and all before it are recorded, with the upload's identifier, in
//!   `PREFIX/uploads/ID.json`. An upload cut short (the technician's connection, or the relay
//!   itself) therefore goes on from the parts recorded and the waiting files that follow them,
//!   on this relay or another one sharing the bucket; a multipart upload is invisible until it
//!   is completed, so a half log is never readable under the stored name. A log of less than a
//!   part is sent with one PUT.
//!
//! The S3 client is async; this interface is blocking (the archive runs off the relay's async
//! threads), so the S3 backend drives its requests on a small runtime of its own.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

/// Directory of the stored logs inside the data directory, when the config names no other.
pub const LOGS_DIR: &str = "logs";
/// Directory inside the data directory where S3 uploads wait for a whole part.
pub const UPLOADS_DIR: &str = "log-uploads";
/// Size of each part of a multipart upload to S3 but the last (S3 takes 5 MiB at least).
pub const PART_SIZE: u64 = 8 << 20;
/// Parts of one upload on their way to S3 at once, at most: while they travel, the next
/// chunks are taken. Each holds its part's bytes in memory until it is sent.
pub const PARTS_IN_FLIGHT: usize = 4;
/// Longest the relay spends on one request to object storage, retries included.
const S3_PATIENCE: Duration = Duration::from_secs(20);

/// Where the config says stored logs go (`log_store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `logs/` in the relay's data directory: the default.
    DataDir,
    /// A directory of the relay's machine.
    Directory(PathBuf),
    /// A bucket of S3-compatible object storage.
    S3(S3Location),
}

/// A bucket, the prefix of the relay's objects in it, and how to reach it. Settings left out
/// come from the usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing slashes; empty for the bucket's top.
    pub prefix: String,
    /// `https://…` or `http://…`; `None`: Amazon's endpoint for the region.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Location {
    // The secret stays out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a `log_store` setting is not a place for logs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("log_store {0:?} names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX")]
    NoBucket(String),
    #[error("log_store {0:?}: only s3:// URLs and directories are understood")]
    Scheme(String),
    #[error("log_store is empty: leave it out for the data directory's logs/")]
    Empty,
}

impl Location {
    /// Reads a `log_store` setting: `s3://BUCKET[/PREFIX]` or a directory.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LocationError::Empty);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LocationError::NoBucket(text.to_string()));
            }
            return Ok(Location::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                ..S3Location::default()
            }));
        }
        if let Some(path) = text.strip_prefix("file://") {
            return Ok(Location::Directory(PathBuf::from(path)));
        }
        if text.contains("://") {
            return Err(LocationError::Scheme(text.to_string()));
        }
        Ok(Location::Directory(PathBuf::from(text)))
    }

    /// In words, for the relay's start-up lines and messages.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            Location::DataDir => data_dir.join(LOGS_DIR).display().to_string(),
            Location::Directory(d) => d.display().to_string(),
            Location::S3(s) => s.describe(),
        }
    }
}

impl S3Location {
    fn describe(&self) -> String {
        let mut url = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        match &self.endpoint {
            Some(e) => format!("{url} at {e}"),
            None => url,
        }
    }
}

/// What went wrong with the bytes of a log.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}: {1}")]
    Storage(String, #[source] object_store::Error),
    #[error("the record of upload {0} in object storage is not readable: {1}")]
    Record(String, serde_json::Error),
    #[error("cannot set up the object-storage client: {0}")]
    Setup(String),
    #[error("upload {id} holds {held} bytes, not {offset}")]
    Offset { id: String, offset: u64, held: u64 },
    #[error("sending a part of a log stopped before its end: {0}")]
    Stopped(String),
}

/// How sealing an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// Its SHA-256 matched: it is stored under its name.
    Stored,
    /// Its SHA-256 differed: it was discarded, the upload starts over.
    Mismatch,
}

/// The bytes of the archive. Every method blocks; each call is safe beside others, also on
/// the same log (an upload's appends and seal are serialised by the archive's index anyway).
pub trait LogObjects: Send + Sync {
    /// Bytes held of the unfinished upload `id` (0 when there is none), as this relay knows.
    fn held(&self, id: &str) -> Result<u64, ObjectError>;

    /// As [`LogObjects::held`], read again from storage: where an upload that begins again
    /// goes on from (it may have gone on through another relay meanwhile).
    fn resume(&self, id: &str) -> Result<u64, ObjectError>;

    /// Appends `data` to the unfinished upload `id` at `offset`; fails with
    /// [`ObjectError::Offset`], writing nothing, when the upload holds another number of
    /// bytes (an append beside it got there first).
    fn append(&self, id: &str, offset: u64, data: &[u8]) -> Result<(), ObjectError>;

    /// The unfinished upload `id` holds all `size` bytes: checks that their SHA-256 is
    /// `sha256` (hex) and puts them in place as the stored log, or discards them.
    fn seal(&self, id: &str, size: u64, sha256: &str) -> Result<Sealed, ObjectError>;

    /// Forgets the unfinished upload `id`, if any.
    fn discard(&self, id: &str) -> Result<(), ObjectError>;

    /// The stored log `id` from byte `offset` on, read as it is consumed.
    fn reader(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>, ObjectError>;

    /// Whether a stored log `id` exists.
    fn exists(&self, id: &str) -> Result<bool, ObjectError>;

    /// Deletes the stored log `id` and any unfinished upload of it.
    fn delete(&self, id: &str) -> Result<(), ObjectError>;

    /// Where the logs are, in words.
    fn describe(&self) -> String;
}

/// The backend `location` names, with `data_dir` for the default directory and the waiting
/// parts of S3 uploads.
pub fn open(location: &Location, data_dir: &Path) -> Result<Arc<dyn LogObjects>, ObjectError> {
    Ok(match location {
        Location::DataDir => Arc::new(Directory::open(&data_dir.join(LOGS_DIR))?),
        Location::Directory(dir) => Arc::new(Directory::open(dir)?),
        Location::S3(s3) => Arc::new(S3::open(s3, &data_dir.join(UPLOADS_DIR))?),
    })
}

fn ignore_missing(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Feeds `reader` to the end into `h`.
fn feed(h: &mut Sha256, mut reader: impl Read) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// The SHA-256 of what `reader` gives to its end.
fn sha256_of(reader: impl Read) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    feed(&mut h, reader)?;
    Ok(h.finalize().into())
}

/// Logs as files of a directory (0700), each file 0600.
pub struct Directory {
    dir: PathBuf,
    /// Held while an append checks where its upload stands and writes.
    appending: Mutex<()>,
}

impl Directory {
    pub fn open(dir: &Path) -> Result<Self, ObjectError> {
        link::userfile::private_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            appending: Mutex::new(()),
        })
    }

    /// Where log `id` is (or will be) stored.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tlog.age"))
    }

    /// Where its upload grows.
    pub fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tlog.age.part"))
    }
}

impl LogObjects for Directory {
    fn held(&self, id: &str) -> Result<u64, ObjectError> {
        match std::fs::metadata(self.part_path(id)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn resume(&self, id: &str) -> Result<u64, ObjectError> {
        self.held(id)
    }

    fn append(&self, id: &str, offset: u64, data: &[u8]) -> Result<(), ObjectError> {
        let _one_at_a_time = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.held(id)?;
        if held != offset {
            return Err(ObjectError::Offset {
                id: id.to_string(),
                offset,
                held,
            });
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.part_path(id))?;
        // Not synced per chunk: sealing syncs, and checks the hash, so what a crash loses is
        // only sent again.
        f.write_all(data)?;
        Ok(())
    }

    fn seal(&self, id: &str, size: u64, sha256: &str) -> Result<Sealed, ObjectError> {
        let part = self.part_path(id);
        // An empty log has no part file.
        if size == 0 {
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&part)?;
        }
        let f = File::open(&part)?;
        f.sync_all()?;
        if hex::encode(sha256_of(f)?) != sha256 {
            std::fs::remove_file(&part)?;
            return Ok(Sealed::Mismatch);
        }
        std::fs::rename(&part, self.path(id))?;
        // The rename is durable only once the directory is.
        File::open(&self.dir)?.sync_all()?;
        Ok(Sealed::Stored)
    }

    fn discard(&self, id: &str) -> Result<(), ObjectError> {
        Ok(ignore_missing(std::fs::remove_file(self.part_path(id)))?)
    }

    fn reader(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>, ObjectError> {
        let mut f = File::open(self.path(id))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }

    fn exists(&self, id: &str) -> Result<bool, ObjectError> {
        Ok(self.path(id).try_exists()?)
    }

    fn delete(&self, id: &str) -> Result<(), ObjectError> {
        for p in [self.path(id), self.part_path(id)] {
            ignore_missing(std::fs::remove_file(&p))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// The record of a multipart upload, kept in the bucket beside the logs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    upload_id: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Part {
    etag: String,
    size: u64,
}

/// A whole part of an upload after those recorded; its bytes are in its waiting file until
/// it is recorded.
struct Outgoing {
    /// Where its first byte is in the log.
    from: u64,
    size: u64,
    /// Its bytes, until its sending starts.
    data: Option<Bytes>,
    /// Its sending, once started.
    sending: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
}

/// What this relay knows of one unfinished upload.
struct Upload {
    /// The multipart upload, once a first part was sent; its parts recorded.
    record: Option<Record>,
    /// Bytes in the parts recorded.
    sent: u64,
    /// Whole parts after them, in order.
    outgoing: VecDeque<Outgoing>,
    /// The bytes after those, as in the waiting file.
    waiting: Vec<u8>,
    /// The waiting file, once opened for appends.
    file: Option<File>,
    /// SHA-256 of every byte so far, while this relay has seen them all.
    hash: Option<Sha256>,
    /// The latest write of the record to the bucket, while it travels, with the waiting files
    /// of the parts it adds.
    recording: Option<(Writing, Vec<PathBuf>)>,
    /// Waiting files of parts recorded here, not yet in the bucket's record.
    unwritten: Vec<PathBuf>,
}

type Writing = tokio::task::JoinHandle<object_store::Result<object_store::PutResult>>;

impl Upload {
    /// Where the waiting file starts.
    fn waiting_from(&self) -> u64 {
        self.sent + self.outgoing.iter().map(|p| p.size).sum::<u64>()
    }

    fn held(&self) -> u64 {
        self.waiting_from() + self.waiting.len() as u64
    }

    /// The waiting bytes become a whole part; the next bytes start a waiting file of their own.
    fn cut_part(&mut self) {
        let from = self.waiting_from();
        let data = Bytes::from(std::mem::take(&mut self.waiting));
        self.file = None;
        self.outgoing.push_back(Outgoing {
            from,
            size: data.len() as u64,
            data: Some(data),
            sending: None,
        });
    }

    /// Stops the parts on their way: what storage holds is read again before going on. (A
    /// write of the record on its way is left to land: what it says is true.)
    fn stop_sending(&mut self) {
        for part in &mut self.outgoing {
            if let Some(t) = part.sending.take() {
                t.abort();
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.stop_sending();
    }
}

/// Logs as objects of an S3 bucket. See the module's words.
pub struct S3 {
    store: Arc<AmazonS3>,
    location: S3Location,
    uploads_dir: PathBuf,
    uploads: Mutex<HashMap<String, Arc<Mutex<Upload>>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3 {
    /// The bucket `location` names; uploads wait for whole parts in `uploads_dir`.
    pub fn open(location: &S3Location, uploads_dir: &Path) -> Result<Self, ObjectError> {
        link::userfile::private_dir(uploads_dir)?;
        // reqwest's TLS uses the process's rustls provider: ring, as for QUIC.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        let region = location
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        b = b.with_region(region);
        let endpoint = location
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        // Plain HTTP only when the endpoint says so (a store on the relay's own network).
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &location.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &location.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: S3_PATIENCE,
            ..RetryConfig::default()
        };
        b = b.with_retry(retry).with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(S3_PATIENCE)
                .with_allow_http(allow_http),
        );
        let store = b
            .build()
            .map_err(|e| ObjectError::Setup(format!("{}: {e}", location.describe())))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("log-storage")
            .enable_all()
            .build()
            .map_err(|e| ObjectError::Setup(format!("cannot start its threads: {e}")))?;
        let mut location = location.clone();
        location.endpoint = endpoint;
        Ok(Self {
            store: Arc::new(store),
            location,
            uploads_dir: uploads_dir.to_path_buf(),
            uploads: Mutex::new(HashMap::new()),
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `f` to its end on the backend's runtime. Never called from async code: the
    /// archive runs on blocking threads.
    fn wait<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime().block_on(f)
    }

    fn key(&self, name: &str) -> ObjectPath {
        if self.location.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.location.prefix))
        }
    }

    fn object(&self, id: &str) -> ObjectPath {
        self.key(&format!("{id}.tlog.age"))
    }

    fn record_key(&self, id: &str) -> ObjectPath {
        self.key(&format!("uploads/{id}.json"))
    }

    fn waiting_path(&self, id: &str, from: u64) -> PathBuf {
        self.uploads_dir.join(format!("{id}.from-{from}"))
    }

    fn failed(&self, what: &str, e: object_store::Error) -> ObjectError {
        ObjectError::Storage(format!("{what} in {}", self.location.describe()), e)
    }

    /// The waiting files of upload `id`, with the offsets they start at.
    fn waiting_files(&self, id: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let prefix = format!("{id}.from-");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.uploads_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(from) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            out.push((from, entry.path()));
        }
        Ok(out)
    }

    fn read_record(&self, id: &str) -> Result<Option<Record>, ObjectError> {
        let key = self.record_key(id);
        let got = self.wait(async {
            match self.store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        match got.map_err(|e| self.failed("reading the record of an upload", e))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ObjectError::Record(id.to_string(), e)),
        }
    }

    /// What storage holds of upload `id`: the parts its record lists, and the waiting files
    /// that go on from them, each but the last a whole part not yet recorded (others are
    /// stale: the upload went on elsewhere, or a part was recorded just before the relay
    /// stopped).
    fn load(&self, id: &str) -> Result<Upload, ObjectError> {
        let record = self.read_record(id)?;
        let sent = record
            .as_ref()
            .map_or(0, |r| r.parts.iter().map(|p| p.size).sum());
        let mut files: HashMap<u64, PathBuf> = self.waiting_files(id)?.into_iter().collect();
        // Every byte is here when no part was recorded: the running hash can be had again.
        let mut hash = (sent == 0).then(Sha256::new);
        let mut outgoing = VecDeque::new();
        let mut waiting = Vec::new();
        let mut at = sent;
        while let Some(path) = files.remove(&at) {
            let data = std::fs::read(&path)?;
            if let Some(h) = hash.as_mut() {
                h.update(&data);
            }
            at += data.len() as u64;
            if (data.len() as u64) < PART_SIZE {
                // The last one: the waiting file that grows.
                waiting = data;
                break;
            }
            outgoing.push_back(Outgoing {
                from: at - data.len() as u64,
                size: data.len() as u64,
                data: Some(Bytes::from(data)),
                sending: None,
            });
        }
        for path in files.into_values() {
            ignore_missing(std::fs::remove_file(&path))?;
        }
        Ok(Upload {
            record,
            sent,
            outgoing,
            waiting,
            file: None,
            hash,
            recording: None,
            unwritten: Vec::new(),
        })
    }

    /// The state of upload `id`, loaded from storage unless this relay has it (or `fresh`).
    fn upload(&self, id: &str, fresh: bool) -> Result<Arc<Mutex<Upload>>, ObjectError> {
        if !fresh {
            if let Some(u) = self.uploads.lock().expect("uploads lock").get(id) {
                return Ok(u.clone());
            }
        }
        let u = Arc::new(Mutex::new(self.load(id)?));
        self.uploads
            .lock()
            .expect("uploads lock")
            .insert(id.to_string(), u.clone());
        Ok(u)
    }

    /// Forgets what this relay knows of upload `id`: after a failure it is read again from
    /// storage.
    fn forget(&self, id: &str) {
        self.uploads.lock().expect("uploads lock").remove(id);
    }

    /// Moves the parts of `up` along: starts those not started while fewer than
    /// [`PARTS_IN_FLIGHT`] are on their way (beginning the multipart upload with the first),
    /// records in order those sent (a part once all before it are), and waits until at most
    /// `left` are not recorded.
    fn advance(&self, id: &str, up: &mut Upload, left: usize) -> Result<(), ObjectError> {
        if up.outgoing.is_empty() {
            return self.record_behind(id, up, false);
        }
        let object = self.object(id);
        if up.record.is_none() {
            let upload_id = self
                .wait(self.store.create_multipart(&object))
                .map_err(|e| self.failed("beginning a multipart upload", e))?;
            up.record = Some(Record {
                upload_id,
                parts: Vec::new(),
            });
        }
        let mut recorded = Vec::new();
        let result = loop {
            let record = up.record.as_mut().expect("just set");
            let first = record.parts.len();
            for (i, part) in up.outgoing.iter_mut().take(PARTS_IN_FLIGHT).enumerate() {
                let Some(data) = part.data.take() else {
                    continue;
                };
                let store = self.store.clone();
                let (object, upload_id) = (object.clone(), record.upload_id.clone());
                part.sending = Some(self.runtime().spawn(async move {
                    let payload = PutPayload::from(data);
                    store
                        .put_part(&object, &upload_id, first + i, payload)
                        .await
                }));
            }
            let on_their_way = up.outgoing.len();
            let Some(front) = up.outgoing.front_mut() else {
                break Ok(());
            };
            let sending = front.sending.as_mut().expect("started above");
            if !sending.is_finished() && on_their_way <= left {
                break Ok(());
            }
            let part = match self.wait(sending) {
                Ok(Ok(part)) => part,
                Ok(Err(e)) => break Err(self.failed("sending a part of a log", e)),
                Err(e) => break Err(ObjectError::Stopped(e.to_string())),
            };
            let front = up.outgoing.pop_front().expect("there");
            record.parts.push(Part {
                etag: part.content_id,
                size: front.size,
            });
            up.sent += front.size;
            recorded.push(self.waiting_path(id, front.from));
        };
        up.unwritten.extend(recorded);
        result?;
        self.record_behind(id, up, false)
    }

    /// Brings the bucket's record of `up` up to date without waiting for it (a small write
    /// takes as long as a part's at some stores). Once a write lands, the waiting files of the
    /// parts it adds go (until then they are what a resumed upload sends again); the next
    /// write starts only then, so that they land in order. With `last`, waits for the write on
    /// its way and starts none.
    fn record_behind(&self, id: &str, up: &mut Upload, last: bool) -> Result<(), ObjectError> {
        if let Some((writing, _)) = &up.recording {
            if last || writing.is_finished() {
                let (writing, freed) = up.recording.take().expect("there");
                match self.wait(writing) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(self.failed("recording an upload's parts", e)),
                    Err(e) => return Err(ObjectError::Stopped(e.to_string())),
                }
                for path in freed {
                    ignore_missing(std::fs::remove_file(&path))?;
                }
            }
        }
        if last || up.recording.is_some() || up.unwritten.is_empty() {
            return Ok(());
        }
        let record = up.record.as_ref().expect("parts were recorded");
        let json = serde_json::to_vec(record).map_err(|e| ObjectError::Record(id.into(), e))?;
        let (store, key) = (self.store.clone(), self.record_key(id));
        let writing = self
            .runtime()
            .spawn(async move { store.put(&key, PutPayload::from(json)).await });
        up.recording = Some((writing, std::mem::take(&mut up.unwritten)));
        Ok(())
    }

    fn append_locked(
        &self,
        id: &str,
        up: &mut Upload,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ObjectError> {
        if up.held() != offset {
            return Err(ObjectError::Offset {
                id: id.to_string(),
                offset,
                held: up.held(),
            });
        }
        let file = match &mut up.file {
            Some(f) => f,
            None => up.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(self.waiting_path(id, up.waiting_from()))?,
            ),
        };
        file.write_all(data)?;
        if up.waiting.is_empty() {
            // Room for a whole part at once, rather than growing (and copying) on the way.
            up.waiting.reserve(PART_SIZE as usize + data.len());
        }
        up.waiting.extend_from_slice(data);
        if let Some(h) = up.hash.as_mut() {
            h.update(data);
        }
        if up.waiting.len() as u64 >= PART_SIZE {
            up.cut_part();
        }
        // Records the parts sent meanwhile; waits only when too many travel.
        self.advance(id, up, PARTS_IN_FLIGHT)
    }

    /// Puts upload `id` in place as the stored object: one PUT of the waiting bytes when no
    /// part was cut, else its last part, all parts sent, and the completion of the multipart
    /// upload.
    fn put_in_place(&self, id: &str, up: &mut Upload) -> Result<(), ObjectError> {
        let object = self.object(id);
        if up.record.is_none() && up.outgoing.is_empty() {
            let data = Bytes::from(std::mem::take(&mut up.waiting));
            self.wait(self.store.put(&object, PutPayload::from(data)))
                .map_err(|e| self.failed("storing a log", e))?;
            return Ok(());
        }
        if !up.waiting.is_empty() {
            up.cut_part();
        }
        self.advance(id, up, 0)?;
        self.record_behind(id, up, true)?;
        let record = up.record.clone().expect("advanced");
        let parts = record
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        let completed = self.wait(
            self.store
                .complete_multipart(&object, &record.upload_id, parts),
        );
        if let Err(e) = completed {
            // The completion may have happened with its answer lost: then the object is there.
            let head = self.wait(self.store.head(&object));
            if !matches!(head, Ok(meta) if meta.size == up.held()) {
                return Err(self.failed("completing the upload of a log", e));
            }
        }
        Ok(())
    }

    fn discard_locked(&self, id: &str, up: &mut Upload) -> Result<(), ObjectError> {
        up.stop_sending();
        // A write of the record landing after its removal would point at an abandoned upload.
        if let Some((writing, _)) = up.recording.take() {
            let _ = self.wait(writing);
        }
        if let Some(r) = &up.record {
            let aborted = self.wait(self.store.abort_multipart(&self.object(id), &r.upload_id));
            match aborted {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("abandoning a multipart upload", e)),
            }
        }
        self.remove_record(id)?;
        for (_, path) in self.waiting_files(id)? {
            ignore_missing(std::fs::remove_file(&path))?;
        }
        Ok(())
    }

    fn remove_record(&self, id: &str) -> Result<(), ObjectError> {
        match self.wait(self.store.delete(&self.record_key(id))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("removing the record of an upload", e)),
        }
    }

    fn seal_locked(&self, id: &str, up: &mut Upload, sha256: &str) -> Result<Sealed, ObjectError> {
        let known = up.hash.clone().map(|h| hex::encode(h.finalize()));
        if known.as_deref().is_some_and(|h| h != sha256) {
            self.discard_locked(id, up)?;
            return Ok(Sealed::Mismatch);
        }
        self.put_in_place(id, up)?;
        if known.is_none() {
            // The relay restarted during the upload: hash what storage holds now.
            let hashed = sha256_of(self.reader(id, 0)?)?;
            if hex::encode(hashed) != sha256 {
                self.delete_object(id)?;
                self.discard_locked(id, up)?;
                return Ok(Sealed::Mismatch);
            }
        }
        self.remove_record(id)?;
        for (_, path) in self.waiting_files(id)? {
            ignore_missing(std::fs::remove_file(&path))?;
        }
        Ok(Sealed::Stored)
    }

    fn delete_object(&self, id: &str) -> Result<(), ObjectError> {
        match self.wait(self.store.delete(&self.object(id))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("deleting a log", e)),
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code (a relay shutting down) must not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl LogObjects for S3 {
    fn held(&self, id: &str) -> Result<u64, ObjectError> {
        let u = self.upload(id, false)?;
        let held = u.lock().expect("upload lock").held();
        Ok(held)
    }

    fn resume(&self, id: &str) -> Result<u64, ObjectError> {
        let u = self.upload(id, true)?;
        let held = u.lock().expect("upload lock").held();
        Ok(held)
    }

    fn append(&self, id: &str, offset: u64, data: &[u8]) -> Result<(), ObjectError> {
        let u = self.upload(id, false)?;
        let mut up = u.lock().expect("upload lock");
        let r = self.append_locked(id, &mut up, offset, data);
        if matches!(r, Err(ref e) if !matches!(e, ObjectError::Offset { .. })) {
            self.forget(id);
        }
        r
    }

    fn seal(&self, id: &str, _size: u64, sha256: &str) -> Result<Sealed, ObjectError> {
        let u = self.upload(id, false)?;
        let mut up = u.lock().expect("upload lock");
        let r = self.seal_locked(id, &mut up, sha256);
        // Stored, discarded or failed: either way what this relay knew is done with.
        self.forget(id);
        r
    }

    fn discard(&self, id: &str) -> Result<(), ObjectError> {
        let u = self.upload(id, true)?;
        let mut up = u.lock().expect("upload lock");
        let r = self.discard_locked(id, &mut up);
        self.forget(id);
        r
    }

    fn reader(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>, ObjectError> {
        Ok(Box::new(ObjectReader {
            store: self.store.clone(),
            runtime: self.runtime().handle().clone(),
            object: self.object(id),
            offset,
            stream: None,
            chunk: Bytes::new(),
            what: self.location.describe(),
        }))
    }

    fn exists(&self, id: &str) -> Result<bool, ObjectError> {
        match self.wait(self.store.head(&self.object(id))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed("looking for a log", e)),
        }
    }

    fn delete(&self, id: &str) -> Result<(), ObjectError> {
        self.discard(id)?;
        self.delete_object(id)
    }

    fn describe(&self) -> String {
        self.location.describe()
    }
}

/// A stored object read as a stream: one GET, sent when first read, its body taken as it
/// arrives.
struct ObjectReader {
    store: Arc<AmazonS3>,
    runtime: tokio::runtime::Handle,
    object: ObjectPath,
    offset: u64,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    chunk: Bytes,
    what: String,
}

impl ObjectReader {
    fn broken(&self, e: object_store::Error) -> std::io::Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(
            kind,
            format!("reading {} from {}: {e}", self.object, self.what),
        )
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.stream.is_none() {
                let options = GetOptions {
                    range: (self.offset > 0).then_some(GetRange::Offset(self.offset)),
                    ..GetOptions::default()
                };
                let got = self
                    .runtime
                    .block_on(self.store.get_opts(&self.object, options));
                self.stream = Some(got.map_err(|e| self.broken(e))?.into_stream());
            }
            let stream = self.stream.as_mut().expect("just set");
            match self.runtime.block_on(stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(self.broken(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_store_settings_name_a_bucket_or_a_directory() {
        let s3 = |bucket: &str, prefix: &str| {
            Location::S3(S3Location {
                bucket: bucket.into(),
                prefix: prefix.into(),
                ..S3Location::default()
            })
        };
        assert_eq!(Location::parse("s3://logs"), Ok(s3("logs", "")));
        assert_eq!(Location::parse("s3://logs/"), Ok(s3("logs", "")));
        assert_eq!(
            Location::parse(" s3://logs/site-a/relay1/ "),
            Ok(s3("logs", "site-a/relay1"))
        );
        assert_eq!(
            Location::parse("/srv/tandem/logs"),
            Ok(Location::Directory("/srv/tandem/logs".into()))
        );
        assert_eq!(
            Location::parse("file:///srv/logs"),
            Ok(Location::Directory("/srv/logs".into()))
        );
        assert!(matches!(
            Location::parse("s3:///x"),
            Err(LocationError::NoBucket(_))
        ));
        assert!(matches!(
            Location::parse("gs://bucket"),
            Err(LocationError::Scheme(_))
        ));
        assert_eq!(Location::parse("  "), Err(LocationError::Empty));
        let secret = S3Location {
            secret_access_key: Some("hunter2".into()),
            ..S3Location::default()
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
