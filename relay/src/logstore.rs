//! The relay's archive of session logs: encrypted files it stores but cannot read.
//!
//! Technicians upload each session's log encrypted to the organisation's audit key (see the
//! technician's `archive` module); the relay keeps the bytes under `logs/` in its data
//! directory and indexes them in its database ([`crate::storage`]): who recorded it, when, how
//! long, its size and SHA-256, and the log's final chain hash. During a session the technician
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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::sessionlog::Checkpoint;
use sha2::{Digest, Sha256};

use crate::storage::{params, Conn, Database, DbError, Row, Sql};

/// Directory of the stored logs, inside the data directory.
pub const LOGS_DIR: &str = "logs";

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

/// The archive: files under `logs/`, index in `relay.db`.
pub struct LogStore {
    conn: Conn,
    dir: PathBuf,
    limits: Limits,
}

/// A whole upload, checked and ready to be hashed (off the store's lock) and put in place.
#[derive(Debug)]
pub struct Finishing {
    id: String,
    part: PathBuf,
    sha256: String,
}

impl LogStore {
    /// Opens (creating if needed) the archive of the data directory `data_dir`, indexed in
    /// `db`.
    pub fn open(db: &Database, data_dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let dir = data_dir.join(LOGS_DIR);
        link::userfile::private_dir(&dir)?;
        Ok(Self {
            conn: db.connect()?,
            dir,
            limits,
        })
    }

    /// Where log `id` is (or will be) stored.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tlog.age"))
    }

    fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tlog.age.part"))
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
            return Ok(known.received);
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
        // A stale partial file of an id the index did not know is not trusted.
        let _ = std::fs::remove_file(self.part_path(&offer.id));
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
        if offset + data.len() as u64 > log.offer.size {
            return Err(StoreError::Overrun {
                id: id.to_string(),
                size: log.offer.size,
            });
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.part_path(id))?;
        // Not synced per chunk: `finish` syncs, and checks the hash, so what a crash loses is
        // only sent again.
        f.write_all(data)?;
        Ok(offset + data.len() as u64)
    }

    /// The upload of `id` is over: checks size and hash, moves the file into place and marks
    /// it stored. A file whose hash does not match is discarded (the upload starts over).
    pub fn finish(&self, technician: &str, id: &str) -> Result<StoredLog, StoreError> {
        match self.finishing(technician, id)? {
            Ok(log) => Ok(log),
            Err(f) => {
                let hashed = f.hash();
                self.finished(f, hashed)
            }
        }
    }

    /// The first step of [`LogStore::finish`], under the store's lock: `Ok` with the log if it
    /// is stored already, else `Err` with the upload to hash.
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
        let part = self.part_path(id);
        // An empty log has no part file.
        if log.offer.size == 0 {
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&part)?;
        }
        Ok(Err(Finishing {
            id: id.to_string(),
            part,
            sha256: log.offer.sha256,
        }))
    }

    /// The last step of [`LogStore::finish`], under the store's lock again: given the hash of
    /// the synced part file, puts it in place (and syncs the directory) or discards it.
    pub fn finished(
        &self,
        f: Finishing,
        hashed: std::io::Result<[u8; 32]>,
    ) -> Result<StoredLog, StoreError> {
        if hex::encode(hashed?) != f.sha256 {
            std::fs::remove_file(&f.part)?;
            return Err(StoreError::HashMismatch(f.id));
        }
        std::fs::rename(&f.part, self.path(&f.id))?;
        // The rename is durable only once the directory is.
        File::open(&self.dir)?.sync_all()?;
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

    /// Up to `max` bytes of stored log `id` from `offset`.
    pub fn read(&self, id: &str, offset: u64, max: usize) -> Result<Vec<u8>, StoreError> {
        let mut f = File::open(self.path(id))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(max);
        f.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn row(&self, r: &Row) -> Result<StoredLog, DbError> {
        let id: String = r.get(0)?;
        let complete: bool = r.get(9)?;
        let size: u64 = r.get(7)?;
        let received = if complete {
            size
        } else {
            std::fs::metadata(self.part_path(&id))
                .map(|m| m.len())
                .unwrap_or(0)
        };
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

    pub fn get(&self, id: &str) -> Result<Option<StoredLog>, StoreError> {
        let sql = format!("SELECT {} FROM session_logs WHERE id = $1", Self::COLUMNS);
        let row = self.conn.query_opt(&sql, params![id])?;
        Ok(row.map(|r| self.row(&r)).transpose()?)
    }

    /// Every log in the index, oldest session first.
    pub fn list(&self) -> Result<Vec<StoredLog>, StoreError> {
        let sql = format!(
            "SELECT {} FROM session_logs ORDER BY started_at, id",
            Self::COLUMNS
        );
        let rows = self.conn.query(&sql, params![])?;
        Ok(rows.iter().map(|r| self.row(r)).collect::<Result<_, _>>()?)
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
            for p in [self.path(id), self.part_path(id)] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
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
    /// Syncs the part file and hashes it: the long step, without the store's lock.
    pub fn hash(&self) -> std::io::Result<[u8; 32]> {
        File::open(&self.part)?.sync_all()?;
        sha256_file(&self.part)
    }
}

fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{each_backend, Scratch};

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

    #[test]
    fn an_interrupted_upload_resumes_and_ends_with_identical_bytes() {
        each_backend(|db| {
            let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let o = offer("log-0001", &data, now_ms());
            {
                let store = LogStore::open(db, db.path(), limits(1 << 30)).unwrap();
                session(&store, &o.id, "alice");
                assert_eq!(store.begin("alice", &o).unwrap(), 0);
                assert_eq!(
                    store.append("alice", &o.id, 0, &data[..40_000]).unwrap(),
                    40_000
                );
                // The connection drops here; the store is closed with the relay.
            }
            let store = LogStore::open(db, db.path(), limits(1 << 30)).unwrap();
            assert!(matches!(
                store.begin("bob", &o),
                Err(StoreError::NoSession(_))
            ));
            let at = store.begin("alice", &o).unwrap();
            assert_eq!(at, 40_000, "the relay says how much it holds");
            assert!(matches!(
                store.append("alice", &o.id, 0, &data[..10]),
                Err(StoreError::WrongOffset {
                    expected: 40_000,
                    ..
                })
            ));
            assert!(matches!(
                store.finish("alice", &o.id),
                Err(StoreError::Incomplete { .. })
            ));
            store
                .append("alice", &o.id, at, &data[at as usize..])
                .unwrap();
            let log = store.finish("alice", &o.id).unwrap();
            assert!(log.complete);
            assert_eq!(std::fs::read(store.path(&o.id)).unwrap(), data);
            assert_eq!(store.begin("alice", &o).unwrap(), data.len() as u64);
            assert_eq!(store.list().unwrap().len(), 1);
        });
    }

    #[test]
    fn a_corrupted_upload_is_discarded_and_bad_offers_refused() {
        each_backend(|db| {
            let store = LogStore::open(db, db.path(), limits(1000)).unwrap();
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
        });
    }

    #[test]
    fn checkpoints_are_kept_per_session_and_owner_in_order_up_to_the_limit() {
        each_backend(|db| {
            let store = LogStore::open(
                db,
                db.path(),
                Limits {
                    max_checkpoints: 10,
                    ..limits(1000)
                },
            )
            .unwrap();
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
        });
    }

    #[test]
    fn uploads_are_taken_only_for_own_ledger_sessions_and_within_the_quota() {
        each_backend(|db| {
            let store = LogStore::open(
                db,
                db.path(),
                Limits {
                    account_quota: 1000,
                    ..limits(1000)
                },
            )
            .unwrap();
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
        });
    }

    #[test]
    fn the_archive_and_its_database_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        // The files of the archive, and SQLite's database beside them.
        let db = &Scratch::new(crate::storage::Kind::Sqlite);
        let store = LogStore::open(db, db.path(), limits(1000)).unwrap();
        session(&store, "log-0008", "alice");
        let data = vec![3u8; 10];
        store
            .begin("alice", &offer("log-0008", &data, now_ms()))
            .unwrap();
        store.append("alice", "log-0008", 0, &data[..5]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.part_path("log-0008")), 0o600);
        store.append("alice", "log-0008", 5, &data[5..]).unwrap();
        store.finish("alice", "log-0008").unwrap();
        assert_eq!(mode(&store.path("log-0008")), 0o600);
        assert_eq!(mode(&db.path().join(LOGS_DIR)), 0o700);
        let file = db.path().join(crate::storage::DATABASE_FILE);
        assert_eq!(mode(&file), 0o600);
        let wal = db
            .path()
            .join(format!("{}-wal", crate::storage::DATABASE_FILE));
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
    }

    #[test]
    fn logs_past_retention_are_deleted_and_the_deletion_recorded() {
        each_backend(|db| {
            let store = LogStore::open(db, db.path(), limits(1 << 20)).unwrap();
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
                if age_days > 0 {
                    store
                        .conn
                        .execute(
                            "UPDATE session_logs SET offered_at = $2 WHERE id = $1",
                            params![id, now - age_days * day],
                        )
                        .unwrap();
                }
            }
            let deleted = store
                .sweep(SystemTime::now(), Duration::from_secs(30 * 86_400))
                .unwrap();
            assert_eq!(deleted, vec!["log-old-01".to_string()]);
            assert!(!store.path("log-old-01").exists());
            assert!(store.path("log-new-01").exists());
            assert!(
                store.path("log-zero-1").exists(),
                "a claimed date deletes nothing"
            );
            let d = store.deletions().unwrap();
            assert_eq!(d.len(), 1);
            assert!(d[0].reason.contains("30 days"), "{}", d[0].reason);
            assert_eq!(store.list().unwrap().len(), 2);
        });
    }
}
