//! The relay's archive of session logs: encrypted files it stores but cannot read.
//!
//! Technicians upload each session's log encrypted to the organisation's audit key (see the
//! technician's `archive` module); the relay keeps the bytes under `logs/` in its data
//! directory and indexes them in its SQLite database (`relay.db`): who recorded it, when, how
//! long, its size and SHA-256, and the log's final chain hash. During a session the technician
//! also sends checkpoints (the running chain hash), kept here too, so that a log cut short
//! after the session can be told from one that really ended early.
//!
//! Uploads are resumable: an upload is offered with its size and SHA-256, the relay answers
//! with how much it already holds, and the rest is appended at that offset; the file counts as
//! stored only once its size and hash match the offer. Logs older than the retention period are
//! deleted by [`LogStore::sweep`], which records each deletion (what, when, why) in the index.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::sessionlog::Checkpoint;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::accounts::DATABASE_FILE;

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
    #[error("the log archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log index: {0}")]
    Database(#[from] rusqlite::Error),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS session_logs (
    id          TEXT PRIMARY KEY,
    technician  TEXT NOT NULL,
    agent       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    chain_hash  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    complete    INTEGER NOT NULL DEFAULT 0,
    stored_at   INTEGER
);
CREATE TABLE IF NOT EXISTS log_checkpoints (
    log_id      TEXT NOT NULL,
    technician  TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    chain_hash  BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE TABLE IF NOT EXISTS log_deletions (
    id         TEXT NOT NULL,
    deleted_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
";

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

/// The archive: files under `logs/`, index in `relay.db`.
pub struct LogStore {
    conn: Connection,
    dir: PathBuf,
    max_size: u64,
}

impl LogStore {
    /// Opens (creating if needed) the archive of the data directory `data_dir`; logs larger
    /// than `max_size` bytes are refused.
    pub fn open(data_dir: &Path, max_size: u64) -> Result<Self, StoreError> {
        let dir = data_dir.join(LOGS_DIR);
        std::fs::create_dir_all(&dir)?;
        let conn = Connection::open(data_dir.join(DATABASE_FILE))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn,
            dir,
            max_size,
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
        if offer.size > self.max_size {
            return Err(StoreError::TooLarge {
                id: offer.id.clone(),
                size: offer.size,
                max: self.max_size,
            });
        }
        if let Some(known) = self.get(&offer.id)? {
            if known.technician != technician {
                return Err(StoreError::NotYours(offer.id.clone()));
            }
            if known.offer.size != offer.size || known.offer.sha256 != offer.sha256 {
                return Err(StoreError::Conflicting(offer.id.clone()));
            }
            return Ok(known.received);
        }
        self.conn.execute(
            "INSERT INTO session_logs (id, technician, agent, started_at, duration_ms, records,
                 chain_hash, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                offer.id,
                technician,
                offer.agent,
                offer.started_unix_ms as i64,
                offer.duration_ms as i64,
                offer.records as i64,
                offer.chain_hash,
                offer.size as i64,
                offer.sha256,
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
            .open(self.part_path(id))?;
        // Not synced per chunk: `finish` syncs, and checks the hash, so what a crash loses is
        // only sent again.
        f.write_all(data)?;
        Ok(offset + data.len() as u64)
    }

    /// The upload of `id` is over: checks size and hash, moves the file into place and marks
    /// it stored. A file whose hash does not match is discarded (the upload starts over).
    pub fn finish(&self, technician: &str, id: &str) -> Result<StoredLog, StoreError> {
        let log = self.owned(technician, id)?;
        if log.complete {
            return Ok(log);
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
            File::create(&part)?;
        }
        File::open(&part)?.sync_all()?;
        if hex::encode(sha256_file(&part)?) != log.offer.sha256 {
            std::fs::remove_file(&part)?;
            return Err(StoreError::HashMismatch(id.to_string()));
        }
        std::fs::rename(&part, self.path(id))?;
        self.conn.execute(
            "UPDATE session_logs SET complete = 1, stored_at = ?2 WHERE id = ?1",
            params![id, now_ms() as i64],
        )?;
        self.get(id)?
            .ok_or_else(|| StoreError::Unknown(id.to_string()))
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
    /// session is still going on).
    pub fn checkpoint(
        &self,
        technician: &str,
        id: &str,
        cp: &Checkpoint,
    ) -> Result<(), StoreError> {
        check_id(id)?;
        if let Some(log) = self.get(id)? {
            if log.technician != technician {
                return Err(StoreError::NotYours(id.to_string()));
            }
        }
        let owner: Option<String> = self
            .conn
            .query_row(
                "SELECT technician FROM log_checkpoints WHERE log_id = ?1 LIMIT 1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        if owner.is_some_and(|o| o != technician) {
            return Err(StoreError::NotYours(id.to_string()));
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO log_checkpoints (log_id, technician, idx, time_ms, chain_hash,
                 received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                technician,
                cp.index as i64,
                cp.time_ms as i64,
                &cp.chain_hash[..],
                now_ms() as i64
            ],
        )?;
        Ok(())
    }

    /// The checkpoints held for log `id`, in record order.
    pub fn checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT idx, time_ms, chain_hash FROM log_checkpoints WHERE log_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            let hash: Vec<u8> = r.get(2)?;
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, hash))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (index, time_ms, hash) = row?;
            if let Ok(chain_hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                out.push(Checkpoint {
                    index: index as u64,
                    time_ms: time_ms as u64,
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
        if let Some(log) = self.get(id)? {
            let hash = hex::decode(&log.offer.chain_hash)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
            if let (Some(index), Some(chain_hash)) = (log.offer.records.checked_sub(1), hash) {
                if !checkpoints.iter().any(|c| c.index == index) {
                    checkpoints.push(Checkpoint {
                        index,
                        time_ms: log.offer.duration_ms,
                        chain_hash,
                    });
                }
            }
        }
        Ok(checkpoints)
    }

    /// Up to `max` bytes of stored log `id` from `offset`.
    pub fn read(&self, id: &str, offset: u64, max: usize) -> Result<Vec<u8>, StoreError> {
        let mut f = File::open(self.path(id))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(max);
        f.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredLog> {
        let id: String = r.get(0)?;
        let complete: bool = r.get(9)?;
        let size = r.get::<_, i64>(7)? as u64;
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
                started_unix_ms: r.get::<_, i64>(3)? as u64,
                duration_ms: r.get::<_, i64>(4)? as u64,
                records: r.get::<_, i64>(5)? as u64,
                chain_hash: r.get(6)?,
                size,
                sha256: r.get(8)?,
                id,
            },
            technician: r.get(1)?,
            received,
            complete,
            stored_unix_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        })
    }

    const COLUMNS: &'static str = "id, technician, agent, started_at, duration_ms, records,
        chain_hash, size, sha256, complete, stored_at";

    pub fn get(&self, id: &str) -> Result<Option<StoredLog>, StoreError> {
        let sql = format!("SELECT {} FROM session_logs WHERE id = ?1", Self::COLUMNS);
        Ok(self
            .conn
            .query_row(&sql, params![id], |r| self.row(r))
            .optional()?)
    }

    /// Every log in the index, oldest session first.
    pub fn list(&self) -> Result<Vec<StoredLog>, StoreError> {
        let sql = format!(
            "SELECT {} FROM session_logs ORDER BY started_at, id",
            Self::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| self.row(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes every log whose session started more than `retention` before `now` (stored or
    /// half-uploaded), with its checkpoints, and records each deletion. Returns the ids.
    pub fn sweep(&self, now: SystemTime, retention: Duration) -> Result<Vec<String>, StoreError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let cutoff = now.saturating_sub(retention.as_millis() as u64) as i64;
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM session_logs WHERE started_at < ?1")?;
            let rows = stmt.query_map(params![cutoff], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let days = retention.as_secs() / 86_400;
        for id in &ids {
            for p in [self.path(id), self.part_path(id)] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let tx = self.conn.unchecked_transaction()?;
            tx.execute("DELETE FROM session_logs WHERE id = ?1", params![id])?;
            tx.execute("DELETE FROM log_checkpoints WHERE log_id = ?1", params![id])?;
            tx.execute(
                "INSERT INTO log_deletions (id, deleted_at, reason) VALUES (?1, ?2, ?3)",
                params![
                    id,
                    now as i64,
                    format!("retention period of {days} days passed")
                ],
            )?;
            tx.commit()?;
            tracing::info!(log = %id, "deleted a session log: retention period passed");
        }
        Ok(ids)
    }

    /// Every deletion recorded, oldest first.
    pub fn deletions(&self) -> Result<Vec<Deletion>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, deleted_at, reason FROM log_deletions ORDER BY deleted_at, id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Deletion {
                id: r.get(0)?,
                deleted_unix_ms: r.get::<_, i64>(1)? as u64,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let o = offer("log-0001", &data, now_ms());
        {
            let store = LogStore::open(dir.path(), 1 << 30).unwrap();
            assert_eq!(store.begin("alice", &o).unwrap(), 0);
            assert_eq!(
                store.append("alice", &o.id, 0, &data[..40_000]).unwrap(),
                40_000
            );
            // The connection drops here; the store is closed with the relay.
        }
        let store = LogStore::open(dir.path(), 1 << 30).unwrap();
        assert!(matches!(
            store.begin("bob", &o),
            Err(StoreError::NotYours(_))
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
    }

    #[test]
    fn a_corrupted_upload_is_discarded_and_bad_offers_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 1000).unwrap();
        let data = vec![7u8; 500];
        let o = offer("log-0002", &data, now_ms());
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

    #[test]
    fn checkpoints_are_kept_per_log_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 1000).unwrap();
        let cp = |index| Checkpoint {
            index,
            time_ms: index * 100,
            chain_hash: [index as u8; 32],
        };
        store.checkpoint("alice", "log-0004", &cp(9)).unwrap();
        store.checkpoint("alice", "log-0004", &cp(3)).unwrap();
        assert!(matches!(
            store.checkpoint("bob", "log-0004", &cp(12)),
            Err(StoreError::NotYours(_))
        ));
        assert_eq!(store.checkpoints("log-0004").unwrap(), vec![cp(3), cp(9)]);
    }

    #[test]
    fn logs_past_retention_are_deleted_and_the_deletion_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 1 << 20).unwrap();
        let day = 86_400_000;
        let now = now_ms();
        for (id, age_days) in [("log-old-01", 40), ("log-new-01", 2)] {
            let data = id.as_bytes().repeat(10);
            let o = offer(id, &data, now - age_days * day);
            store.begin("alice", &o).unwrap();
            store.append("alice", id, 0, &data).unwrap();
            store.finish("alice", id).unwrap();
        }
        let deleted = store
            .sweep(SystemTime::now(), Duration::from_secs(30 * 86_400))
            .unwrap();
        assert_eq!(deleted, vec!["log-old-01".to_string()]);
        assert!(!store.path("log-old-01").exists());
        assert!(store.path("log-new-01").exists());
        let d = store.deletions().unwrap();
        assert_eq!(d.len(), 1);
        assert!(d[0].reason.contains("30 days"), "{}", d[0].reason);
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
