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
//! reached which machine when. Each row names the relay that paired the session
//! ([`crate::identity::relay_name`]): relays that share a database each close, at start, only
//! the rows a crash of their own left open, as "the relay stopped"
//! ([`Ledger::close_left_open`]).

use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::storage::{params, Conn, Database, DbError, Row, Sql};

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
    /// The relay that paired it (none for sessions from before rows named their relay).
    pub relay: Option<String>,
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
    conn: Conn,
    /// This relay's name, written in the rows it opens.
    relay: String,
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
    /// The ledger of `db`, for the relay called `relay` (whose rows it opens and closes).
    pub fn open(db: &Database, relay: &str) -> Result<Self, DbError> {
        Ok(Self {
            conn: db.connect()?,
            relay: relay.to_string(),
        })
    }

    /// Closes the rows this relay left open when it stopped (a crash, a kill) as "the relay
    /// stopped", and those that name no relay (written before rows named theirs, by the one
    /// relay of an SQLite database); rows of other relays sharing the database stay as they
    /// are. Returns how many it closed.
    pub fn close_left_open(&self) -> Result<u64, DbError> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = $1, end_reason = 'the relay stopped'
             WHERE ended_at IS NULL AND (relay = $2 OR relay IS NULL)",
            params![now_ms(), &self.relay],
        )
    }

    /// Writes the row of a new paired session; returns its identifier.
    pub fn open_session(&self, p: &Pairing<'_>) -> Result<String, DbError> {
        let id = new_id();
        let code_hash = hex::encode(Sha256::digest(p.code_digits.as_bytes()));
        self.conn.execute(
            "INSERT INTO sessions (id, technician, tier, technician_addr, agent_addr,
                 agent_software, code_hash, recording_required, paired_at, relay)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            params![
                &id,
                p.technician,
                p.tier,
                &p.technician_addr,
                &p.agent_addr,
                p.agent_software,
                &code_hash,
                p.recording_required,
                now_ms(),
                &self.relay
            ],
        )?;
        Ok(id)
    }

    /// Closes a session's row with why it ended (the first reason given stays).
    pub fn close_session(&self, id: &str, reason: &str) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL",
            params![id, now_ms(), reason],
        )?;
        Ok(())
    }

    fn row(r: &Row) -> Result<Session, DbError> {
        Ok(Session {
            id: r.get(0)?,
            technician: r.get(1)?,
            tier: r.get(2)?,
            technician_addr: r.get(3)?,
            agent_addr: r.get(4)?,
            agent_software: r.get(5)?,
            code_hash: r.get(6)?,
            recording_required: r.get(7)?,
            paired_unix_ms: r.get(8)?,
            ended_unix_ms: r.get(9)?,
            end_reason: r.get(10)?,
            relay: r.get(11)?,
        })
    }

    fn rows(
        &self,
        sql: &str,
        params: &[crate::storage::Param<'_>],
    ) -> Result<Vec<Session>, DbError> {
        self.conn
            .query(sql, params)?
            .iter()
            .map(Self::row)
            .collect()
    }

    const COLUMNS: &'static str = "id, technician, tier, technician_addr, agent_addr,
        agent_software, code_hash, recording_required, paired_at, ended_at, end_reason, relay";

    pub fn get(&self, id: &str) -> Result<Option<Session>, DbError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = $1", Self::COLUMNS);
        Ok(self.rows(&sql, params![id])?.into_iter().next())
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Result<Vec<Session>, DbError> {
        let sql = format!(
            "SELECT {} FROM sessions ORDER BY paired_at, id",
            Self::COLUMNS
        );
        self.rows(&sql, params![])
    }

    /// Sessions that ended without a stored log of theirs, oldest first: those that required a
    /// recording are the ones an auditor asks about.
    pub fn without_log(&self) -> Result<Vec<Session>, DbError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE ended_at IS NOT NULL
                 AND id NOT IN (SELECT id FROM session_logs WHERE complete = TRUE)
             ORDER BY paired_at, id",
            Self::COLUMNS
        );
        self.rows(&sql, params![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::each_backend;

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
        each_backend(|db| {
            let l = Ledger::open(db, "relay-a").unwrap();
            let a = l.open_session(&pairing("alice")).unwrap();
            let b = l.open_session(&pairing("bob")).unwrap();
            assert_ne!(a, b);
            assert!(a.starts_with("s-") && a.len() == 26, "{a}");
            let row = l.get(&a).unwrap().unwrap();
            assert_eq!(row.technician, "alice");
            assert_eq!(row.relay.as_deref(), Some("relay-a"));
            assert!(row.recording_required);
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
            // Another relay on the same database, running: its session stays open when the
            // first relay starts again.
            let other = Ledger::open(db, "relay-b").unwrap();
            let c = other.open_session(&pairing("carol")).unwrap();
            drop(l);
            let l = Ledger::open(db, "relay-a").unwrap();
            assert_eq!(l.close_left_open().unwrap(), 1);
            let row = l.get(&b).unwrap().unwrap();
            assert_eq!(row.end_reason.as_deref(), Some("the relay stopped"));
            assert!(l.get(&c).unwrap().unwrap().ended_unix_ms.is_none());
            let mut missing: Vec<String> =
                l.without_log().unwrap().into_iter().map(|s| s.id).collect();
            missing.sort();
            let mut expected = [a, b];
            expected.sort();
            assert_eq!(missing, expected);
            assert_eq!(l.list().unwrap().len(), 3);
        });
    }
}
