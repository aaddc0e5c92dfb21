//! The relay's own record of every paired session, kept whatever the technician's client does.
//!
//! A row is written when a technician is paired with an agent: the session's identifier, the
//! account and tier, both peers' addresses, the agent's software, a SHA-256 of the code's
//! rendezvous part, whether the relay's policy requires a recording, and the time; it is
//! closed with the end time and reason. The technician is told the identifier at pairing
//! and must checkpoint and upload its session log under it ([`crate::logstore`] takes a log
//! only for a ledger session of the same account), so every stored log belongs to a session the
//! relay saw, and `relay logs list` shows the sessions whose log never arrived.
//!
//! Rows are never deleted by the relay: they are small, and they are the audit trail of who
//! reached which machine when. At start, rows a crash left open are closed as "the relay
//! stopped".

use std::path::Path;
use std::time::Duration;

use rand::TryRngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::accounts::DATABASE_FILE;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id                 TEXT PRIMARY KEY,
    technician         TEXT NOT NULL,
    tier               INTEGER NOT NULL,
    technician_addr    TEXT NOT NULL,
    agent_addr         TEXT NOT NULL,
    agent_software     TEXT NOT NULL,
    code_hash          TEXT NOT NULL,
    recording_required INTEGER NOT NULL,
    paired_at          INTEGER NOT NULL,
    ended_at           INTEGER,
    end_reason         TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_technician ON sessions (technician, paired_at);
";

/// A session as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    pub id: String,
    pub technician: String,
    pub tier: u8,
    pub technician_addr: String,
    pub agent_addr: String,
    pub agent_software: String,
    /// SHA-256 (hex) of the code's rendezvous digits.
    pub code_hash: String,
    pub recording_required: bool,
    pub paired_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub end_reason: Option<String>,
}

/// What the relay knows of a session when it is paired.
#[derive(Debug, Clone)]
pub struct Pairing<'a> {
    pub technician: &'a str,
    pub tier: u8,
    pub technician_addr: String,
    pub agent_addr: String,
    pub agent_software: &'a str,
    pub code_digits: &'a str,
    pub recording_required: bool,
}

pub struct Ledger {
    conn: Connection,
}

/// The wall clock in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh session identifier: `s-` and 24 hex digits (96 random bits), which is also a valid
/// log identifier.
fn new_id() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .expect("the operating system's random source failed");
    format!("s-{}", hex::encode(b))
}

impl Ledger {
    /// Opens the ledger of the data directory `data_dir` (creating the table if needed), and
    /// closes the rows a stopped relay left open.
    pub fn open(data_dir: &Path) -> Result<Self, crate::logstore::StoreError> {
        let db = data_dir.join(DATABASE_FILE);
        crate::accounts::prepare_database(&db)?;
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let ledger = Self { conn };
        ledger.conn.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = 'the relay stopped'
             WHERE ended_at IS NULL",
            params![now_ms() as i64],
        )?;
        Ok(ledger)
    }

    /// Writes the row of a new paired session; returns its identifier.
    pub fn open_session(&self, p: &Pairing<'_>) -> rusqlite::Result<String> {
        let id = new_id();
        let code_hash = hex::encode(Sha256::digest(p.code_digits.as_bytes()));
        self.conn.execute(
            "INSERT INTO sessions (id, technician, tier, technician_addr, agent_addr,
                 agent_software, code_hash, recording_required, paired_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                p.technician,
                p.tier,
                p.technician_addr,
                p.agent_addr,
                p.agent_software,
                code_hash,
                p.recording_required,
                now_ms() as i64
            ],
        )?;
        Ok(id)
    }

    /// Closes a session's row with why it ended (the first reason given stays).
    pub fn close_session(&self, id: &str, reason: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = ?2, end_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
            params![id, now_ms() as i64, reason],
        )?;
        Ok(())
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
        Ok(Session {
            id: r.get(0)?,
            technician: r.get(1)?,
            tier: r.get(2)?,
            technician_addr: r.get(3)?,
            agent_addr: r.get(4)?,
            agent_software: r.get(5)?,
            code_hash: r.get(6)?,
            recording_required: r.get(7)?,
            paired_unix_ms: r.get::<_, i64>(8)? as u64,
            ended_unix_ms: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
            end_reason: r.get(10)?,
        })
    }

    const COLUMNS: &'static str = "id, technician, tier, technician_addr, agent_addr,
        agent_software, code_hash, recording_required, paired_at, ended_at, end_reason";

    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Session>> {
        let sql = format!("SELECT {} FROM sessions WHERE id = ?1", Self::COLUMNS);
        self.conn.query_row(&sql, params![id], Self::row).optional()
    }

    /// Every session, oldest first.
    pub fn list(&self) -> rusqlite::Result<Vec<Session>> {
        let sql = format!(
            "SELECT {} FROM sessions ORDER BY paired_at, id",
            Self::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], Self::row)?;
        rows.collect()
    }

    /// Sessions that ended without a stored log of theirs, oldest first: those that required a
    /// recording are the ones an auditor asks about.
    pub fn without_log(&self) -> rusqlite::Result<Vec<Session>> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE ended_at IS NOT NULL
                 AND id NOT IN (SELECT id FROM session_logs WHERE complete = 1)
             ORDER BY paired_at, id",
            Self::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], Self::row)?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairing<'a>(who: &'a str) -> Pairing<'a> {
        Pairing {
            technician: who,
            tier: 1,
            technician_addr: "10.0.0.7:5000".into(),
            agent_addr: "10.0.0.9:6000".into(),
            agent_software: "agent 0.1.0",
            code_digits: "123456789",
            recording_required: true,
        }
    }

    #[test]
    fn sessions_are_recorded_closed_once_and_open_ones_closed_at_restart() {
        let dir = tempfile::tempdir().unwrap();
        crate::logstore::LogStore::open(dir.path(), Default::default()).unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        let a = l.open_session(&pairing("alice")).unwrap();
        let b = l.open_session(&pairing("bob")).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("s-") && a.len() == 26, "{a}");
        let row = l.get(&a).unwrap().unwrap();
        assert_eq!(row.technician, "alice");
        assert_eq!(
            row.code_hash,
            hex::encode(Sha256::digest(b"123456789")),
            "the code itself is not kept"
        );
        assert!(row.ended_unix_ms.is_none());
        l.close_session(&a, "the technician ended it").unwrap();
        l.close_session(&a, "later words").unwrap();
        let row = l.get(&a).unwrap().unwrap();
        assert_eq!(row.end_reason.as_deref(), Some("the technician ended it"));
        assert_eq!(l.without_log().unwrap().len(), 1, "b is still open");
        drop(l);
        let l = Ledger::open(dir.path()).unwrap();
        let row = l.get(&b).unwrap().unwrap();
        assert_eq!(row.end_reason.as_deref(), Some("the relay stopped"));
        let mut missing: Vec<String> = l.without_log().unwrap().into_iter().map(|s| s.id).collect();
        missing.sort();
        let mut expected = [a, b];
        expected.sort();
        assert_eq!(missing, expected);
    }
}
