//! The relay's archive of session logs: encrypted files it stores but cannot read.
//!
//! Technicians upload each session's log encrypted to the organisation's audit key (see the
//! technician's `archive` module); the relay keeps the bytes where its config says
//! ([`crate::objects`]: `logs/` in its data directory, or an S3 bucket) and indexes them in its
//! database ([`crate::storage`]): who recorded it, when, how long, its size and SHA-256, and
//! the log's final chain hash. During a session the technician
//! also sends checkpoints (the running chain hash), kept here too, so that a log cut short
//! after the session can be told from one that really ended early.
//!
//! Uploads are resumable: an upload is offered with its size and SHA-256, the relay answers
//! with how much it already holds, and the rest is appended at that offset; the file counts as
//! stored only once its size and hash match the offer. Logs the relay received longer ago than
//! the retention period (by its own clock, not the date the upload claims) are deleted by
//! [`LogStore::sweep`], which records each deletion (what, when, why) in the index.
//!
//! A log is taken only for a session of the relay's [ledger](crate::ledger), from the account
//! that ran it, and once per session. Each account may hold at most its quota of stored bytes,
//! and each log at most [`Limits::max_checkpoints`] checkpoints, in record order.
//!
//! The files are private to the relay's user (the directory 0700, each file 0600), though they
//! are encrypted: who talked to whom, and how much, is the relay's business only.
//!
//! The index decides; the bytes follow ([`LogObjects`]): a log counts as stored only once its
//! bytes are sealed in place, and only then is it marked so.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::sessionlog::Checkpoint;

use crate::objects::{LogObjects, ObjectError, Sealed};
use crate::storage::{params, Conn, Database, DbError, Row, Sql};

pub use crate::objects::LOGS_DIR;

pub use protocol::control::LogOffer as Offer;

/// One log in the index: the offer it was uploaded with, who uploaded it, and how far along.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredLog {
    #[serde(flatten)]
    pub offer: Offer,
    pub technician: String,
    /// Bytes held so far; equals `offer.size` once complete.
    pub received: u64,
    pub complete: bool,
    pub stored_unix_ms: Option<u64>,
}

/// A deletion, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deletion {
    pub id: String,
    pub deleted_unix_ms: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("log identifier {0:?} is not allowed (8 to 64 of 0-9, a-z and -)")]
    BadId(String),
    #[error("log {0} belongs to another technician")]
    NotYours(String),
    #[error("log {0} was offered before with another size or hash")]
    Conflicting(String),
    #[error("log {id} is {size} bytes; this relay stores at most {max}")]
    TooLarge { id: String, size: u64, max: u64 },
    #[error("log {0} was not offered")]
    Unknown(String),
    #[error("log {id}: data at offset {got}, the relay holds {expected} bytes")]
    WrongOffset { id: String, got: u64, expected: u64 },
    #[error("log {id}: more bytes than offered ({size})")]
    Overrun { id: String, size: u64 },
    #[error("log {id}: {received} of {size} bytes received")]
    Incomplete {
        id: String,
        received: u64,
        size: u64,
    },
    #[error("log {0} arrived whole but its SHA-256 differs from the offer; it was discarded")]
    HashMismatch(String),
    #[error("log {0} is not of a session this relay paired for this account")]
    NoSession(String),
    #[error(
        "log {id} ({size} bytes) would pass this account's share of the relay's storage: \
         {used} of {quota} bytes are used"
    )]
    Quota {
        id: String,
        size: u64,
        used: u64,
        quota: u64,
    },
    #[error("log {id} has its limit of {max} checkpoints")]
    TooManyCheckpoints { id: String, max: u32 },
    #[error("log {id}: checkpoint of record {got} after one of record {last}")]
    CheckpointBackwards { id: String, got: u64, last: u64 },
    #[error("the log archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log storage: {0}")]
    Storage(#[from] ObjectError),
    #[error("the log index: {0}")]
    Database(#[from] DbError),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadId(id.to_string()))
    }
}

/// What the archive takes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest log, in bytes.
    pub max_size: u64,
    /// Stored (and half-uploaded) bytes one account may hold.
    pub account_quota: u64,
    /// Checkpoints kept per log.
    pub max_checkpoints: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_size: 8 << 30,
            account_quota: 64 << 30,
            max_checkpoints: 100_000,
        }
    }
}

impl Limits {
    /// No limits: for the administrator's own commands, which only read.
    pub fn none() -> Self {
        Self {
            max_size: u64::MAX,
            account_quota: u64::MAX,
            max_checkpoints: u32::MAX,
        }
    }
}

/// The archive: the bytes in [`LogObjects`], the index in the relay's database.
pub struct LogStore {
    conn: Conn,
    objects: Arc<dyn LogObjects>,
    limits: Limits,
}
/// A chunk's place in an upload, checked: the chunk is written by [`Appending::write`].
pub struct Appending {
    id: String,
    offset: u64,
    objects: Arc<dyn LogObjects>,
}

impl Appending {
    /// Writes the chunk (its length checked by [`LogStore::appending`]); returns the bytes
    /// the upload holds now. An append beside it that got there first makes this one fail
    /// with [`StoreError::WrongOffset`], as if it had been checked under the lock.
    pub fn write(self, data: &[u8]) -> Result<u64, StoreError> {
        match self.objects.append(&self.id, self.offset, data) {
            Ok(()) => Ok(self.offset + data.len() as u64),
            Err(ObjectError::Offset { id, offset, held }) => Err(StoreError::WrongOffset {
                id,
                got: offset,
                expected: held,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// A whole upload, checked and ready to be sealed (off the store's lock): hashed and put in
/// place.
pub struct Finishing {
    id: String,
    size: u64,
    sha256: String,
    objects: Arc<dyn LogObjects>,
}

impl LogStore {
    /// Opens (creating if needed) the archive of the data directory `data_dir`, its logs under
    /// `logs/` there, indexed in `db`.
    pub fn open(db: &Database, data_dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let objects = crate::objects::open(&crate::objects::Location::DataDir, data_dir)?;
        Self::open_with(db, objects, limits)
    }

    /// As [`LogStore::open`], with the logs' bytes in `objects`.
    pub fn open_with(
        db: &Database,
        objects: Arc<dyn LogObjects>,
        limits: Limits,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            conn: db.connect()?,
            objects,
            limits,
        })
    }

    /// Where the logs' bytes are.
    pub fn objects(&self) -> &Arc<dyn LogObjects> {
        &self.objects
    }

    /// Takes an offer from `technician`: returns how many bytes of it the relay holds already
    /// (the offset to go on from; `offer.size` when it is stored whole).
    pub fn begin(&self, technician: &str, offer: &Offer) -> Result<u64, StoreError> {
        check_id(&offer.id)?;
        if offer.size > self.limits.max_size {
            return Err(StoreError::TooLarge {
                id: offer.id.clone(),
                size: offer.size,
                max: self.limits.max_size,
            });
        }
        self.session_of(technician, &offer.id)?;
        if let Some(known) = self.get(&offer.id)? {
            if known.technician != technician {
                return Err(StoreError::NotYours(offer.id.clone()));
            }
            if known.offer.size != offer.size || known.offer.sha256 != offer.sha256 {
                return Err(StoreError::Conflicting(offer.id.clone()));
            }
            if known.complete {
                return Ok(known.received);
            }
            // Storage says where it goes on from: the upload may have gone on elsewhere.
            return Ok(self.objects.resume(&offer.id)?);
        }
        let used: u64 = self
            .conn
            .query_one(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM session_logs
                 WHERE technician = $1",
                params![technician],
            )?
            .get(0)?;
        if used.saturating_add(offer.size) > self.limits.account_quota {
            return Err(StoreError::Quota {
                id: offer.id.clone(),
                size: offer.size,
                used,
                quota: self.limits.account_quota,
            });
        }
        self.conn.execute(
            "INSERT INTO session_logs (id, technician, agent, started_at, duration_ms, records,
                 chain_hash, size, sha256, offered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            params![
                &offer.id,
                technician,
                &offer.agent,
                offer.started_unix_ms,
                offer.duration_ms,
                offer.records,
                &offer.chain_hash,
                offer.size,
                &offer.sha256,
                now_ms(),
            ],
        )?;
        // A stale upload of an id the index did not know is not trusted.
        self.objects.discard(&offer.id)?;
        Ok(0)
    }

    /// Appends `data` at `offset` of log `id`, which must be where the relay's copy ends.
    /// Returns the bytes held now.
    pub fn append(
        &self,
        technician: &str,
        id: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, StoreError> {
        self.appending(technician, id, offset, data.len() as u64)?
            .write(data)
    }

    /// The first step of [`LogStore::append`], under the store's lock: checks that `len` bytes
    /// at `offset` are what upload `id` of `technician` takes next, and returns the append to
    /// do off the lock (sending a part to S3 may take a while; other uploads go on meanwhile).
    pub fn appending(
        &self,
        technician: &str,
        id: &str,
        offset: u64,
        len: u64,
    ) -> Result<Appending, StoreError> {
        let log = self.owned(technician, id)?;
        if log.complete {
            return Err(StoreError::Overrun {
                id: id.to_string(),
                size: log.offer.size,
            });
        }
        if offset != log.received {
            return Err(StoreError::WrongOffset {
                id: id.to_string(),
                got: offset,
                expected: log.received,
            });
        }
        if offset + len > log.offer.size {
            return Err(StoreError::Overrun {
                id: id.to_string(),
                size: log.offer.size,
            });
        }
        Ok(Appending {
            id: id.to_string(),
            offset,
            objects: self.objects.clone(),
        })
    }

    /// The upload of `id` is over: checks size and hash, puts the bytes in place and marks
    /// the log stored. Bytes whose hash does not match are discarded (the upload starts over).
    pub fn finish(&self, technician: &str, id: &str) -> Result<StoredLog, StoreError> {
        match self.finishing(technician, id)? {
            Ok(log) => Ok(log),
            Err(f) => {
                let sealed = f.seal();
                self.finished(f, sealed)
            }
        }
    }

    /// The first step of [`LogStore::finish`], under the store's lock: `Ok` with the log if it
    /// is stored already, else `Err` with the upload to seal.
    pub fn finishing(
        &self,
        technician: &str,
        id: &str,
    ) -> Result<Result<StoredLog, Finishing>, StoreError> {
        let log = self.owned(technician, id)?;
        if log.complete {
            return Ok(Ok(log));
        }
        if log.received != log.offer.size {
            return Err(StoreError::Incomplete {
                id: id.to_string(),
                received: log.received,
                size: log.offer.size,
            });
        }
        Ok(Err(Finishing {
            id: id.to_string(),
            size: log.offer.size,
            sha256: log.offer.sha256,
            objects: self.objects.clone(),
        }))
    }

    /// The last step of [`LogStore::finish`], under the store's lock again: given how sealing
    /// the bytes went, marks the log stored.
    pub fn finished(
        &self,
        f: Finishing,
        sealed: Result<Sealed, ObjectError>,
    ) -> Result<StoredLog, StoreError> {
        if sealed? == Sealed::Mismatch {
            return Err(StoreError::HashMismatch(f.id));
        }
        self.conn.execute(
            "UPDATE session_logs SET complete = TRUE, stored_at = $2 WHERE id = $1",
            params![&f.id, now_ms()],
        )?;
        self.get(&f.id)?.ok_or(StoreError::Unknown(f.id))
    }

    /// The ledger session `id` of `technician`, or why a log of it is not taken.
    fn session_of(&self, technician: &str, id: &str) -> Result<(), StoreError> {
        let owner: Option<String> = self
            .conn
            .query_opt("SELECT technician FROM sessions WHERE id = $1", params![id])?
            .map(|r| r.get(0))
            .transpose()?;
        match owner {
            Some(o) if o == technician => Ok(()),
            _ => Err(StoreError::NoSession(id.to_string())),
        }
    }

    fn owned(&self, technician: &str, id: &str) -> Result<StoredLog, StoreError> {
        let log = self
            .get(id)?
            .ok_or_else(|| StoreError::Unknown(id.to_string()))?;
        if log.technician != technician {
            return Err(StoreError::NotYours(id.to_string()));
        }
        Ok(log)
    }

    /// Keeps a checkpoint of log `id` from `technician` (the log need not be offered yet: the
    /// session is still going on). The log must be of the technician's ledger session `id`;
    /// checkpoints come in record order (the same one again is a heartbeat, kept once), up to
    /// the limit per log.
    pub fn checkpoint(
        &self,
        technician: &str,
        id: &str,
        cp: &Checkpoint,
    ) -> Result<(), StoreError> {
        check_id(id)?;
        self.session_of(technician, id)?;
        let row = self.conn.query_one(
            "SELECT COUNT(*), MAX(idx) FROM log_checkpoints WHERE log_id = $1",
            params![id],
        )?;
        let (count, last): (i64, Option<u64>) = (row.get(0)?, row.get(1)?);
        match last {
            Some(last) if cp.index < last => {
                return Err(StoreError::CheckpointBackwards {
                    id: id.to_string(),
                    got: cp.index,
                    last,
                })
            }
            Some(last) if cp.index == last => return Ok(()),
            _ => {}
        }
        if count >= i64::from(self.limits.max_checkpoints) {
            return Err(StoreError::TooManyCheckpoints {
                id: id.to_string(),
                max: self.limits.max_checkpoints,
            });
        }
        self.conn.execute(
            "INSERT INTO log_checkpoints (log_id, technician, idx, time_ms, chain_hash,
                 received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            params![
                id,
                technician,
                cp.index,
                cp.time_ms,
                &cp.chain_hash[..],
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// The checkpoints held for log `id`, in record order.
    pub fn checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.checkpoints_page(id, None, u32::MAX)
    }

    /// Up to `limit` checkpoints of log `id` after record `after` (from the first with `None`),
    /// in record order: a fetch reads them a batch at a time.
    pub fn checkpoints_page(
        &self,
        id: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let rows = self.conn.query(
            "SELECT idx, time_ms, chain_hash FROM log_checkpoints WHERE log_id = $1 AND idx > $2
             ORDER BY idx LIMIT $3",
            params![id, after, limit],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let hash: Vec<u8> = row.get(2)?;
            if let Ok(chain_hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                out.push(Checkpoint {
                    index: row.get(0)?,
                    time_ms: row.get(1)?,
                    chain_hash,
                });
            }
        }
        Ok(out)
    }

    /// The checkpoints held for log `id`, with its seal's (the final chain hash as offered)
    /// last: what a log fetched from here is checked against.
    pub fn checkpoints_with_seal(&self, id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let mut checkpoints = self.checkpoints(id)?;
        if let Some(seal) = self.seal(id)? {
            if !checkpoints.iter().any(|c| c.index == seal.index) {
                checkpoints.push(seal);
            }
        }
        Ok(checkpoints)
    }

    /// The seal of log `id` as offered (its last record's chain hash) as a checkpoint.
    pub fn seal(&self, id: &str) -> Result<Option<Checkpoint>, StoreError> {
        let Some(log) = self.get(id)? else {
            return Ok(None);
        };
        let hash = hex::decode(&log.offer.chain_hash)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
        Ok(match (log.offer.records.checked_sub(1), hash) {
            (Some(index), Some(chain_hash)) => Some(Checkpoint {
                index,
                time_ms: log.offer.duration_ms,
                chain_hash,
            }),
            _ => None,
        })
    }

    /// Whether a checkpoint of record `index` of log `id` is held.
    pub fn has_checkpoint(&self, id: &str, index: u64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM log_checkpoints WHERE log_id = $1 AND idx = $2",
                params![id, index],
            )?
            .is_some())
    }

    /// How many checkpoints are held for log `id`.
    pub fn checkpoint_count(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_one(
                "SELECT COUNT(*) FROM log_checkpoints WHERE log_id = $1",
                params![id],
            )?
            .get(0)?)
    }

    /// Stored log `id` from byte `offset` on, read as it is consumed (off the store's lock).
    pub fn reader(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(self.objects.reader(id, offset)?)
    }

    /// A row of the index; `received` of an unfinished upload is filled in by
    /// [`LogStore::with_received`].
    fn row(r: &Row) -> Result<StoredLog, DbError> {
        let id: String = r.get(0)?;
        let complete: bool = r.get(9)?;
        let size: u64 = r.get(7)?;
        let received = if complete { size } else { 0 };
        Ok(StoredLog {
            offer: Offer {
                agent: r.get(2)?,
                started_unix_ms: r.get(3)?,
                duration_ms: r.get(4)?,
                records: r.get(5)?,
                chain_hash: r.get(6)?,
                size,
                sha256: r.get(8)?,
                id,
            },
            technician: r.get(1)?,
            received,
            complete,
            stored_unix_ms: r.get(10)?,
        })
    }

    const COLUMNS: &'static str = "id, technician, agent, started_at, duration_ms, records,
        chain_hash, size, sha256, complete, stored_at";

    /// How much of an unfinished upload the storage holds.
    fn with_received(&self, mut log: StoredLog) -> Result<StoredLog, StoreError> {
        if !log.complete {
            log.received = self.objects.held(&log.offer.id)?;
        }
        Ok(log)
    }

    pub fn get(&self, id: &str) -> Result<Option<StoredLog>, StoreError> {
        let sql = format!("SELECT {} FROM session_logs WHERE id = $1", Self::COLUMNS);
        let row = self.conn.query_opt(&sql, params![id])?;
        let log = row.map(|r| Self::row(&r)).transpose()?;
        log.map(|l| self.with_received(l)).transpose()
    }

    /// Every log in the index, oldest session first.
    pub fn list(&self) -> Result<Vec<StoredLog>, StoreError> {
        let sql = format!(
            "SELECT {} FROM session_logs ORDER BY started_at, id",
            Self::COLUMNS
        );
        let rows = self.conn.query(&sql, params![])?;
        let logs: Vec<StoredLog> = rows.iter().map(Self::row).collect::<Result<_, _>>()?;
        logs.into_iter().map(|l| self.with_received(l)).collect()
    }

    /// Deletes every log the relay received more than `retention` before `now` (stored or
    /// half-uploaded), with its checkpoints, and records each deletion. Returns the ids. The
    /// time is the relay's own, of the offer: a date the upload claims moves nothing.
    pub fn sweep(&self, now: SystemTime, retention: Duration) -> Result<Vec<String>, StoreError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let cutoff = now.saturating_sub(retention.as_millis() as u64);
        let ids: Vec<String> = self
            .conn
            .query(
                "SELECT id FROM session_logs WHERE offered_at < $1",
                params![cutoff],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_, _>>()?;
        let days = retention.as_secs() / 86_400;
        for id in &ids {
            self.objects.delete(id)?;
            let reason = format!("retention period of {days} days passed");
            self.conn.transaction(|tx| {
                tx.execute("DELETE FROM session_logs WHERE id = $1", params![id])?;
                tx.execute("DELETE FROM log_checkpoints WHERE log_id = $1", params![id])?;
                tx.execute(
                    "INSERT INTO log_deletions (id, deleted_at, reason) VALUES ($1, $2, $3)",
                    params![id, now, &reason],
                )
            })?;
            tracing::info!(log = %id, "deleted a session log: retention period passed");
        }
        Ok(ids)
    }

    /// Every deletion recorded, oldest first.
    pub fn deletions(&self) -> Result<Vec<Deletion>, StoreError> {
        let rows = self.conn.query(
            "SELECT id, deleted_at, reason FROM log_deletions ORDER BY deleted_at, id",
            params![],
        )?;
        let deletions = rows.iter().map(|r| {
            Ok(Deletion {
                id: r.get(0)?,
                deleted_unix_ms: r.get(1)?,
                reason: r.get(2)?,
            })
        });
        deletions.collect()
    }
}

impl Finishing {
    /// Checks the upload's hash and puts its bytes in place (syncing, hashing gigabytes,
    /// completing an upload to S3): the long step, without the store's lock.
    pub fn seal(&self) -> Result<Sealed, ObjectError> {
        self.objects.seal(&self.id, self.size, &self.sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Location, S3Location, PARTS_IN_FLIGHT, PART_SIZE};
    use crate::storage::testing::Scratch;
    use crate::storage::Kind;
    use protocol::control::UPLOAD_CHUNK;
    use sha2::{Digest, Sha256};

    /// Where a test's logs go: a database and a data directory beside it, the logs' bytes
    /// there or in a real S3 server.
    struct Archive {
        db: Scratch,
        location: Location,
    }

    impl Archive {
        fn path(&self) -> &Path {
            self.db.path()
        }

        /// The archive as a relay (re)starting on it opens it.
        fn open(&self, limits: Limits) -> LogStore {
            let objects = crate::objects::open(&self.location, self.path()).unwrap();
            LogStore::open_with(&self.db, objects, limits).unwrap()
        }
    }

    /// Runs `body` on a fresh SQLite database, then on a fresh PostgreSQL one, the logs' bytes
    /// where `location` says for each; a failure says which database.
    fn each_database(location: impl Fn(Kind) -> Location, body: fn(Archive)) {
        for kind in [Kind::Sqlite, Kind::Postgres] {
            eprintln!("--- on {kind}");
            body(Archive {
                db: Scratch::new(kind),
                location: location(kind),
            });
        }
    }

    /// Runs `body` with the logs in the data directory, on each database.
    fn in_directories(body: fn(Archive)) {
        each_database(|_| Location::DataDir, body);
    }

    /// Runs `body` with the logs in a real S3 server (one for both runs, each database with
    /// its own prefix), on each database.
    fn in_s3(body: fn(Archive)) {
        let dir = tempfile::tempdir().unwrap();
        let s3 = harness::s3::SeaweedFs::start(&dir.path().join("seaweedfs"), "logs")
            .expect("the S3 backend's tests need SeaweedFS");
        each_database(
            |kind| {
                Location::S3(S3Location {
                    bucket: s3.bucket.clone(),
                    prefix: format!("site-a/{}", kind.to_string().to_lowercase()),
                    endpoint: Some(s3.endpoint.clone()),
                    region: None,
                    access_key_id: Some(s3.access_key_id.clone()),
                    secret_access_key: Some(s3.secret_access_key.clone()),
                })
            },
            body,
        );
    }

    /// Runs test `name(archive)` with the logs in a directory and in S3, as `name::directory`
    /// and `name::s3`, each on SQLite and on PostgreSQL.
    macro_rules! on_both_backends {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[test]
                fn directory() {
                    super::in_directories(super::$name)
                }

                #[test]
                fn s3() {
                    super::in_s3(super::$name)
                }
            }
        )*};
    }

    on_both_backends!(
        an_interrupted_upload_resumes_and_ends_with_identical_bytes,
        an_upload_of_more_parts_than_travel_at_once_resumes_after_a_cut,
        a_stored_log_is_read_back_from_any_offset,
        a_crash_never_leaves_a_half_log_counted_as_stored,
        a_corrupted_upload_is_discarded_and_bad_offers_refused,
        checkpoints_are_kept_per_session_and_owner_in_order_up_to_the_limit,
        uploads_are_taken_only_for_own_ledger_sessions_and_within_the_quota,
        the_relays_own_files_are_owner_only,
        logs_past_retention_are_deleted_and_the_deletion_recorded,
        of_two_chunks_checked_for_the_same_place_only_the_first_is_written,
    );

    fn limits(max_size: u64) -> Limits {
        Limits {
            max_size,
            ..Limits::default()
        }
    }

    /// A ledger session `id` of `who`, as the relay writes one at pairing.
    fn session(store: &LogStore, id: &str, who: &str) {
        store
            .conn
            .execute(
                "INSERT INTO sessions (id, technician, tier, technician_addr, agent_addr,
                     agent_software, code_hash, recording_required, paired_at)
                 VALUES ($1, $2, 1, '10.0.0.7:5000', '10.0.0.9:6000', 'agent', '00', TRUE, 0)",
                params![id, who],
            )
            .unwrap();
    }

    fn offer(id: &str, data: &[u8], started: u64) -> Offer {
        Offer {
            id: id.into(),
            agent: "agent at 10.0.0.9".into(),
            started_unix_ms: started,
            duration_ms: 1000,
            records: 5,
            chain_hash: "ab".repeat(32),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
        }
    }

    /// `len` bytes that differ from one offset to the next.
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Sends `data` from `at` on as the technician's client does, a chunk at a time.
    fn send(store: &LogStore, id: &str, mut at: u64, data: &[u8]) -> u64 {
        for chunk in data.chunks(UPLOAD_CHUNK) {
            at = store.append("alice", id, at, chunk).unwrap();
        }
        at
    }

    /// Uploads `data` whole as log `id` of alice's session `id`.
    fn upload(store: &LogStore, id: &str, data: &[u8]) {
        session(store, id, "alice");
        let at = store.begin("alice", &offer(id, data, now_ms())).unwrap();
        send(store, id, at, &data[at as usize..]);
        assert!(store.finish("alice", id).unwrap().complete);
    }

    /// Stored log `id` as a fetch reads it, from `offset`.
    fn fetched(store: &LogStore, id: &str, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        store
            .reader(id, offset)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn an_interrupted_upload_resumes_and_ends_with_identical_bytes(a: Archive) {
        // Past two parts of an S3 upload; cut after the first part went, with more waiting.
        let data = bytes(2 * PART_SIZE as usize + 100_000);
        let cut = PART_SIZE as usize + 40_000;
        let o = offer("log-0001", &data, now_ms());
        {
            let store = a.open(limits(1 << 30));
            session(&store, &o.id, "alice");
            assert_eq!(store.begin("alice", &o).unwrap(), 0);
            assert_eq!(send(&store, &o.id, 0, &data[..cut]), cut as u64);
            assert!(
                !store.objects().exists(&o.id).unwrap(),
                "nothing stands under the log's name before it is whole"
            );
            // The connection drops here; the relay stops with it.
        }
        let store = a.open(limits(1 << 30));
        assert!(matches!(
            store.begin("bob", &o),
            Err(StoreError::NoSession(_))
        ));
        let at = store.begin("alice", &o).unwrap();
        assert_eq!(at, cut as u64, "the relay says how much it holds");
        assert!(matches!(
            store.append("alice", &o.id, 0, &data[..10]),
            Err(StoreError::WrongOffset { expected, .. }) if expected == cut as u64
        ));
        assert!(matches!(
            store.finish("alice", &o.id),
            Err(StoreError::Incomplete { .. })
        ));
        send(&store, &o.id, at, &data[cut..]);
        let log = store.finish("alice", &o.id).unwrap();
        assert!(log.complete);
        assert_eq!(fetched(&store, &o.id, 0), data);
        assert_eq!(store.begin("alice", &o).unwrap(), data.len() as u64);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    fn an_upload_of_more_parts_than_travel_at_once_resumes_after_a_cut(a: Archive) {
        // More whole parts than go to S3 at once, cut while some are on their way: the relay
        // stops without waiting for them, and the upload goes on from every byte it took.
        let data = bytes((PARTS_IN_FLIGHT + 1) * PART_SIZE as usize + 70_000);
        let cut = PARTS_IN_FLIGHT * PART_SIZE as usize + 30_000;
        let o = offer("log-many-1", &data, now_ms());
        {
            let store = a.open(limits(1 << 30));
            session(&store, &o.id, "alice");
            assert_eq!(store.begin("alice", &o).unwrap(), 0);
            assert_eq!(send(&store, &o.id, 0, &data[..cut]), cut as u64);
        }
        let store = a.open(limits(1 << 30));
        let at = store.begin("alice", &o).unwrap();
        assert_eq!(at, cut as u64, "the relay says how much it holds");
        assert!(!store.objects().exists(&o.id).unwrap());
        send(&store, &o.id, at, &data[cut..]);
        assert!(store.finish("alice", &o.id).unwrap().complete);
        assert_eq!(fetched(&store, &o.id, 0), data);
        if let Location::S3(_) = a.location {
            let waiting = a.path().join(crate::objects::UPLOADS_DIR);
            let left: Vec<_> = std::fs::read_dir(&waiting).unwrap().collect();
            assert!(left.is_empty(), "nothing waits once stored: {left:?}");
        }
    }

    fn of_two_chunks_checked_for_the_same_place_only_the_first_is_written(a: Archive) {
        // Two connections of one technician upload the same log at once: both chunks are
        // checked under the lock, then written beside each other off it.
        let store = a.open(limits(1 << 30));
        let data = bytes(200_000);
        let o = offer("log-twice-1", &data, now_ms());
        session(&store, &o.id, "alice");
        let at = store.begin("alice", &o).unwrap();
        let first = store.appending("alice", &o.id, at, 1000).unwrap();
        let second = store.appending("alice", &o.id, at, 1000).unwrap();
        assert_eq!(first.write(&data[..1000]).unwrap(), 1000);
        assert!(matches!(
            second.write(&data[..1000]),
            Err(StoreError::WrongOffset {
                got: 0,
                expected: 1000,
                ..
            })
        ));
        assert_eq!(store.get(&o.id).unwrap().unwrap().received, 1000);
        send(&store, &o.id, 1000, &data[1000..]);
        assert!(store.finish("alice", &o.id).unwrap().complete);
        assert_eq!(fetched(&store, &o.id, 0), data);
    }

    fn a_stored_log_is_read_back_from_any_offset(a: Archive) {
        let store = a.open(limits(1 << 30));
        // One log of several parts, one of a single PUT, one empty.
        let big = bytes(PART_SIZE as usize + 5_000);
        upload(&store, "log-big-01", &big);
        let small = bytes(3_000);
        upload(&store, "log-small-1", &small);
        upload(&store, "log-empty-1", &[]);
        assert_eq!(fetched(&store, "log-big-01", 0), big);
        assert_eq!(fetched(&store, "log-big-01", 1_234_567), &big[1_234_567..]);
        assert_eq!(fetched(&store, "log-small-1", 2_999), &small[2_999..]);
        assert_eq!(fetched(&store, "log-empty-1", 0), Vec::<u8>::new());
        // A reader is consumed in the fetch's chunks.
        let mut r = store.reader("log-big-01", 0).unwrap();
        let mut chunk = vec![0u8; UPLOAD_CHUNK];
        r.read_exact(&mut chunk).unwrap();
        assert_eq!(chunk, &big[..UPLOAD_CHUNK]);
        assert!(store
            .reader("log-none-01", 0)
            .and_then(|mut r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(StoreError::from)
            })
            .is_err());
    }

    fn a_crash_never_leaves_a_half_log_counted_as_stored(a: Archive) {
        let data = bytes(300_000);
        let o = offer("log-crash-1", &data, now_ms());
        {
            let store = a.open(limits(1 << 30));
            session(&store, &o.id, "alice");
            store.begin("alice", &o).unwrap();
            send(&store, &o.id, 0, &data);
            // Every byte is in, and the relay stops before the upload's end.
        }
        {
            let store = a.open(limits(1 << 30));
            let log = store.get(&o.id).unwrap().unwrap();
            assert!(!log.complete);
            assert_eq!(log.received, data.len() as u64);
            assert!(!store.objects().exists(&o.id).unwrap());
            // Now the relay stops after the bytes were put in place, before the index says so.
            let Err(f) = store.finishing("alice", &o.id).unwrap() else {
                panic!("not stored yet")
            };
            assert_eq!(f.seal().unwrap(), Sealed::Stored);
        }
        let store = a.open(limits(1 << 30));
        let log = store.get(&o.id).unwrap().unwrap();
        assert!(!log.complete, "the index never said it was stored");
        assert!(!store.list().unwrap()[0].complete);
        // The technician's client uploads it again and it is stored.
        let at = store.begin("alice", &o).unwrap();
        assert_eq!(at, 0, "the upload starts over");
        send(&store, &o.id, at, &data);
        assert!(store.finish("alice", &o.id).unwrap().complete);
        assert_eq!(fetched(&store, &o.id, 0), data);
    }

    fn a_corrupted_upload_is_discarded_and_bad_offers_refused(a: Archive) {
        let store = a.open(limits(1000));
        let data = vec![7u8; 500];
        let o = offer("log-0002", &data, now_ms());
        session(&store, &o.id, "alice");
        store.begin("alice", &o).unwrap();
        let mut bad = data.clone();
        bad[100] ^= 1;
        store.append("alice", &o.id, 0, &bad).unwrap();
        assert!(matches!(
            store.finish("alice", &o.id),
            Err(StoreError::HashMismatch(_))
        ));
        assert!(!store.objects().exists(&o.id).unwrap());
        assert_eq!(store.begin("alice", &o).unwrap(), 0, "starts over");
        assert!(matches!(
            store.append("alice", &o.id, 0, &vec![0u8; 501]),
            Err(StoreError::Overrun { .. })
        ));
        let big = offer("log-0003", &vec![0u8; 1001], now_ms());
        session(&store, &big.id, "alice");
        assert!(matches!(
            store.begin("alice", &big),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(matches!(
            store.begin("alice", &offer("../../etc", &data, 0)),
            Err(StoreError::BadId(_))
        ));
        let mut other = o.clone();
        other.sha256 = "00".repeat(32);
        assert!(matches!(
            store.begin("alice", &other),
            Err(StoreError::Conflicting(_))
        ));
    }

    fn checkpoints_are_kept_per_session_and_owner_in_order_up_to_the_limit(a: Archive) {
        let store = a.open(Limits {
            max_checkpoints: 10,
            ..limits(1000)
        });
        let cp = |index| Checkpoint {
            index,
            time_ms: index * 100,
            chain_hash: [index as u8; 32],
        };
        // Only for a session of the ledger, of that account.
        assert!(matches!(
            store.checkpoint("alice", "log-0004", &cp(3)),
            Err(StoreError::NoSession(_))
        ));
        session(&store, "log-0004", "alice");
        store.checkpoint("alice", "log-0004", &cp(3)).unwrap();
        store.checkpoint("alice", "log-0004", &cp(9)).unwrap();
        // The same one again is a heartbeat; an earlier one is refused.
        store.checkpoint("alice", "log-0004", &cp(9)).unwrap();
        assert!(matches!(
            store.checkpoint("alice", "log-0004", &cp(4)),
            Err(StoreError::CheckpointBackwards {
                got: 4,
                last: 9,
                ..
            })
        ));
        assert!(matches!(
            store.checkpoint("bob", "log-0004", &cp(12)),
            Err(StoreError::NoSession(_))
        ));
        assert_eq!(store.checkpoints("log-0004").unwrap(), vec![cp(3), cp(9)]);
        for i in 10..18 {
            store.checkpoint("alice", "log-0004", &cp(i)).unwrap();
        }
        assert!(matches!(
            store.checkpoint("alice", "log-0004", &cp(30)),
            Err(StoreError::TooManyCheckpoints { max: 10, .. })
        ));
        // Read a page at a time.
        let page = store.checkpoints_page("log-0004", Some(9), 3).unwrap();
        assert_eq!(page, vec![cp(10), cp(11), cp(12)]);
        assert_eq!(store.checkpoint_count("log-0004").unwrap(), 10);
    }

    fn uploads_are_taken_only_for_own_ledger_sessions_and_within_the_quota(a: Archive) {
        let store = a.open(Limits {
            account_quota: 1000,
            ..limits(1000)
        });
        let data = vec![1u8; 600];
        let o = offer("log-0005", &data, now_ms());
        assert!(matches!(
            store.begin("alice", &o),
            Err(StoreError::NoSession(_))
        ));
        session(&store, "log-0005", "alice");
        session(&store, "log-0006", "alice");
        session(&store, "log-0007", "bob");
        assert!(matches!(
            store.begin("bob", &o),
            Err(StoreError::NoSession(_))
        ));
        store.begin("alice", &o).unwrap();
        let second = offer("log-0006", &data, now_ms());
        assert!(matches!(
            store.begin("alice", &second),
            Err(StoreError::Quota {
                used: 600,
                quota: 1000,
                ..
            })
        ));
        // Another account has its own share.
        store
            .begin("bob", &offer("log-0007", &data, now_ms()))
            .unwrap();
    }

    fn the_relays_own_files_are_owner_only(a: Archive) {
        use std::os::unix::fs::PermissionsExt;
        let store = a.open(limits(1000));
        session(&store, "log-0008", "alice");
        let data = vec![3u8; 10];
        store
            .begin("alice", &offer("log-0008", &data, now_ms()))
            .unwrap();
        store.append("alice", "log-0008", 0, &data[..5]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What waits on the relay's disk while the upload goes on.
        let (dir, waiting, stored) = match a.location {
            Location::S3(_) => {
                let dir = a.path().join(crate::objects::UPLOADS_DIR);
                (dir.clone(), dir.join("log-0008.from-0"), None)
            }
            _ => {
                let dir = a.path().join(LOGS_DIR);
                let stored = dir.join("log-0008.tlog.age");
                (
                    dir.clone(),
                    dir.join("log-0008.tlog.age.part"),
                    Some(stored),
                )
            }
        };
        assert_eq!(mode(&waiting), 0o600);
        store.append("alice", "log-0008", 5, &data[5..]).unwrap();
        store.finish("alice", "log-0008").unwrap();
        if let Some(stored) = stored {
            assert_eq!(mode(&stored), 0o600);
        }
        assert_eq!(mode(&dir), 0o700);
        // SQLite's database beside them.
        if a.db.kind() == Kind::Sqlite {
            use crate::storage::DATABASE_FILE;
            let db = a.path().join(DATABASE_FILE);
            assert_eq!(mode(&db), 0o600);
            let wal = a.path().join(format!("{DATABASE_FILE}-wal"));
            if wal.exists() {
                assert_eq!(mode(&wal), 0o600);
            }
        }
    }

    fn logs_past_retention_are_deleted_and_the_deletion_recorded(a: Archive) {
        let store = a.open(limits(1 << 30));
        let day = 86_400_000;
        let now = now_ms();
        for (id, age_days) in [("log-old-01", 40), ("log-new-01", 2), ("log-zero-1", 0)] {
            let data = id.as_bytes().repeat(10);
            session(&store, id, "alice");
            // One upload claims to be from 1970: the relay's own time of receipt counts.
            let started = if age_days == 0 {
                0
            } else {
                now - age_days * day
            };
            let o = offer(id, &data, started);
            store.begin("alice", &o).unwrap();
            store.append("alice", id, 0, &data).unwrap();
            store.finish("alice", id).unwrap();
        }
        // An upload never finished, a part of it already in S3.
        let half = bytes(PART_SIZE as usize + 10);
        session(&store, "log-half-1", "alice");
        let o = offer("log-half-1", &bytes(2 * PART_SIZE as usize), now);
        store.begin("alice", &o).unwrap();
        send(&store, "log-half-1", 0, &half);
        for (id, age_days) in [("log-old-01", 40), ("log-new-01", 2), ("log-half-1", 31)] {
            store
                .conn
                .execute(
                    "UPDATE session_logs SET offered_at = $2 WHERE id = $1",
                    params![id, now - age_days * day],
                )
                .unwrap();
        }
        let deleted = store
            .sweep(SystemTime::now(), Duration::from_secs(30 * 86_400))
            .unwrap();
        assert_eq!(
            deleted,
            vec!["log-old-01".to_string(), "log-half-1".to_string()]
        );
        let exists = |id: &str| store.objects().exists(id).unwrap();
        assert!(!exists("log-old-01"));
        assert!(exists("log-new-01"));
        assert!(exists("log-zero-1"), "a claimed date deletes nothing");
        assert_eq!(store.objects().resume("log-half-1").unwrap(), 0);
        let d = store.deletions().unwrap();
        assert_eq!(d.len(), 2);
        assert!(d[0].reason.contains("30 days"), "{}", d[0].reason);
        assert_eq!(store.list().unwrap().len(), 2);
    }
}
