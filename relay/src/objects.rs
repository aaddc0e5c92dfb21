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
//!   (`log-uploads/ID.from-OFFSET`) until it makes a part of [`PART_SIZE`]; each part sent is
//!   recorded, with the upload's identifier, in `PREFIX/uploads/ID.json`. An upload cut short
//!   (the technician's connection, or the relay itself) therefore goes on from the parts
//!   recorded and the waiting file, on this relay or another one sharing the bucket; a
//!   multipart upload is invisible until it is completed, so a half log is never readable
//!   under the stored name. A log of less than a part is sent with one PUT.
//!
//! The S3 client is async; this interface is blocking (the archive runs off the relay's async
//! threads), so the S3 backend drives its requests on a small runtime of its own.

use std::collections::HashMap;
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

/// What this relay knows of one unfinished upload.
struct Upload {
    /// The multipart upload, once a first part was sent.
    record: Option<Record>,
    /// Bytes in the parts sent.
    sent: u64,
    /// Bytes in the waiting file after them.
    waiting: u64,
    /// SHA-256 of every byte so far, while this relay has seen them all.
    hash: Option<Sha256>,
}

impl Upload {
    fn held(&self) -> u64 {
        self.sent + self.waiting
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

    fn write_record(&self, id: &str, record: &Record) -> Result<(), ObjectError> {
        let json = serde_json::to_vec(record).map_err(|e| ObjectError::Record(id.into(), e))?;
        let key = self.record_key(id);
        self.wait(self.store.put(&key, PutPayload::from(json)))
            .map_err(|e| self.failed("recording an upload's parts", e))?;
        Ok(())
    }

    /// What storage holds of upload `id`: the parts its record lists, and the waiting file
    /// that goes on from them (others are stale: the upload went on elsewhere, or a part was
    /// recorded just before the relay stopped).
    fn load(&self, id: &str) -> Result<Upload, ObjectError> {
        let record = self.read_record(id)?;
        let sent = record
            .as_ref()
            .map_or(0, |r| r.parts.iter().map(|p| p.size).sum());
        let mut waiting = 0;
        let mut hash = None;
        for (from, path) in self.waiting_files(id)? {
            if from != sent {
                ignore_missing(std::fs::remove_file(&path))?;
                continue;
            }
            let f = File::open(&path)?;
            waiting = f.metadata()?.len();
            if sent == 0 {
                // Every byte is here: the running hash can be had again.
                let mut h = Sha256::new();
                feed(&mut h, f)?;
                hash = Some(h);
            }
        }
        if sent == 0 && waiting == 0 {
            hash = Some(Sha256::new());
        }
        Ok(Upload {
            record,
            sent,
            waiting,
            hash,
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

    /// Sends the waiting file of `up` as the next part of its multipart upload (begun here if
    /// it is the first) and records it.
    fn send_part(&self, id: &str, up: &mut Upload) -> Result<(), ObjectError> {
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
        let path = self.waiting_path(id, up.sent);
        let data = Bytes::from(std::fs::read(&path)?);
        let size = data.len() as u64;
        let record = up.record.as_mut().expect("just set");
        let index = record.parts.len();
        let part = self
            .wait(
                self.store
                    .put_part(&object, &record.upload_id, index, PutPayload::from(data)),
            )
            .map_err(|e| self.failed("sending a part of a log", e))?;
        record.parts.push(Part {
            etag: part.content_id,
            size,
        });
        let record = record.clone();
        self.write_record(id, &record)?;
        up.sent += size;
        up.waiting = 0;
        ignore_missing(std::fs::remove_file(&path))?;
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
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.waiting_path(id, up.sent))?;
        f.write_all(data)?;
        up.waiting += data.len() as u64;
        if let Some(h) = up.hash.as_mut() {
            h.update(data);
        }
        if up.waiting >= PART_SIZE {
            self.send_part(id, up)?;
        }
        Ok(())
    }

    /// Puts upload `id` in place as the stored object: one PUT of the waiting file when no
    /// part was sent, else its last part and the completion of the multipart upload.
    fn put_in_place(&self, id: &str, up: &mut Upload) -> Result<(), ObjectError> {
        let object = self.object(id);
        if up.record.is_none() {
            let data = match std::fs::read(self.waiting_path(id, 0)) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && up.held() == 0 => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            self.wait(self.store.put(&object, PutPayload::from(data)))
                .map_err(|e| self.failed("storing a log", e))?;
            return Ok(());
        }
        if up.waiting > 0 {
            self.send_part(id, up)?;
        }
        let record = up.record.clone().expect("checked");
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

    fn discard_locked(&self, id: &str, up: &Upload) -> Result<(), ObjectError> {
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
        let up = u.lock().expect("upload lock");
        let r = self.discard_locked(id, &up);
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
