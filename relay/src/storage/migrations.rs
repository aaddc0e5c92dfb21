//! The schema of the relay's state, as numbered versions applied in order.
//!
//! `schema_migrations` holds one row per version applied, with when. Opening a database applies
//! the versions it lacks, in one transaction, under a lock (PostgreSQL: an advisory lock; SQLite:
//! the write lock), so that several relays or commands starting on one database apply each
//! version once; a database at a version newer than this relay knows is refused rather than
//! misread.
//!
//! A version means the same on both backends; each has its own SQL for it. SQLite databases
//! made before versions existed hold some of version 1 already: its step creates what is
//! missing and adds the columns that came later (second factors, the time of an offer).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{params, Conn, DbError, Kind, Sql};

/// How a version is applied on one backend.
enum Step {
    Sql(&'static str),
    Code(fn(&dyn Sql) -> Result<(), DbError>),
}

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: Step,
    postgres: Step,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts and tokens, the ledger of sessions, the log index with \
                      checkpoints and deletions, the desk's events",
        sqlite: Step::Code(sqlite_tables),
        postgres: Step::Sql(POSTGRES_TABLES),
    },
    Migration {
        version: 2,
        description: "each session names the relay that holds it",
        sqlite: Step::Sql("ALTER TABLE sessions ADD COLUMN relay TEXT;"),
        postgres: Step::Sql("ALTER TABLE sessions ADD COLUMN relay TEXT;"),
    },
    Migration {
        version: 3,
        description: "the relays of a cluster, and which relay holds the agent of a code or a \
                      help request",
        sqlite: Step::Sql(CLUSTER_TABLES),
        postgres: Step::Sql(CLUSTER_TABLES),
    },
    Migration {
        version: 4,
        description: "the live sessions of a cluster's relays, for every relay's leads",
        sqlite: Step::Sql(LIVE_AT),
        postgres: Step::Sql(LIVE_AT),
    },
];

/// Version 4, the same on both backends.
const LIVE_AT: &str = "
CREATE TABLE live_at (
    session    TEXT PRIMARY KEY,
    relay      TEXT NOT NULL,
    technician TEXT NOT NULL,
    tier       INTEGER NOT NULL,
    request    BIGINT,
    started_at BIGINT NOT NULL
);
CREATE INDEX live_at_by_relay ON live_at (relay);
";

/// Version 3, the same on both backends.
const CLUSTER_TABLES: &str = "
CREATE TABLE relays (
    name        TEXT PRIMARY KEY,
    cluster     TEXT NOT NULL,
    public_addr TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    last_seen   BIGINT NOT NULL
);
CREATE TABLE agents_at (
    what     TEXT PRIMARY KEY,
    relay    TEXT NOT NULL,
    holder   TEXT NOT NULL,
    until_at BIGINT NOT NULL
);
CREATE INDEX agents_at_by_relay ON agents_at (relay);
";

/// The schema version this relay brings a database to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Any number, the same for every relay: the advisory lock migrations take in PostgreSQL.
const LOCK: i64 = 0x7461_6e64_656d;

/// Brings the database `conn` reaches to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &Conn) -> Result<(), DbError> {
    conn.transaction(|tx| {
        if tx.kind() == Kind::Postgres {
            tx.batch(&format!("SELECT pg_advisory_xact_lock({LOCK})"))?;
        }
        tx.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     BIGINT PRIMARY KEY,
                 description TEXT NOT NULL,
                 applied_at  BIGINT NOT NULL
             )",
        )?;
        let found: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                params![],
            )?
            .get(0)?;
        if found > SCHEMA_VERSION {
            return Err(DbError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for m in MIGRATIONS.iter().filter(|m| m.version > found) {
            match (tx.kind(), &m.sqlite, &m.postgres) {
                (Kind::Sqlite, Step::Sql(sql), _) | (Kind::Postgres, _, Step::Sql(sql)) => {
                    tx.batch(sql)?
                }
                (Kind::Sqlite, Step::Code(f), _) | (Kind::Postgres, _, Step::Code(f)) => f(tx)?,
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at)
                 VALUES ($1, $2, $3)",
                params![m.version, m.description, now],
            )?;
            tracing::info!(version = m.version, backend = %tx.kind(), "database schema migrated");
        }
        Ok(())
    })
}

const POSTGRES_TABLES: &str = "
CREATE TABLE technicians (
    name           TEXT PRIMARY KEY,
    tier           BIGINT NOT NULL,
    role           TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash  TEXT NOT NULL,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    totp_secret    TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX technicians_by_lower_name ON technicians (lower(name));
CREATE TABLE tokens (
    hash       BYTEA PRIMARY KEY,
    name       TEXT NOT NULL REFERENCES technicians(name) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_by_name ON tokens (name);
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    technician         TEXT NOT NULL,
    tier               BIGINT NOT NULL,
    technician_addr    TEXT NOT NULL,
    agent_addr         TEXT NOT NULL,
    agent_software     TEXT NOT NULL,
    code_hash          TEXT NOT NULL,
    recording_required BOOLEAN NOT NULL,
    paired_at          BIGINT NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT
);
CREATE INDEX sessions_by_technician ON sessions (technician, paired_at);
CREATE TABLE session_logs (
    id          TEXT PRIMARY KEY,
    technician  TEXT NOT NULL,
    agent       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    records     BIGINT NOT NULL,
    chain_hash  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    complete    BOOLEAN NOT NULL DEFAULT FALSE,
    stored_at   BIGINT,
    offered_at  BIGINT
);
CREATE TABLE log_checkpoints (
    log_id      TEXT NOT NULL,
    technician  TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    time_ms     BIGINT NOT NULL,
    chain_hash  BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE TABLE log_deletions (
    id         TEXT NOT NULL,
    deleted_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE desk_events (
    seq     BIGINT PRIMARY KEY,
    request BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    event   TEXT NOT NULL
);
CREATE INDEX desk_events_by_request ON desk_events (request, seq);
";

/// Version 1 on SQLite: the tables as the relay made them before versions, where missing, and
/// the columns added to them since.
fn sqlite_tables(sql: &dyn Sql) -> Result<(), DbError> {
    sql.batch(
        "
CREATE TABLE IF NOT EXISTS technicians (
    name          TEXT PRIMARY KEY COLLATE NOCASE,
    tier          INTEGER NOT NULL,
    role          TEXT NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS technicians_by_lower_name ON technicians (lower(name));
CREATE TABLE IF NOT EXISTS tokens (
    hash       BLOB PRIMARY KEY,
    name       TEXT NOT NULL REFERENCES technicians(name) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_by_name ON tokens(name);
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
CREATE TABLE IF NOT EXISTS desk_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    request INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    event   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS desk_events_by_request ON desk_events (request, seq);
",
    )?;
    let has = |table: &str, column: &str| -> Result<bool, DbError> {
        Ok(sql
            .query_opt(
                "SELECT 1 FROM pragma_table_info($1) WHERE name = $2",
                params![table, column],
            )?
            .is_some())
    };
    if !has("technicians", "totp_secret")? {
        sql.batch(
            "ALTER TABLE technicians ADD COLUMN totp_secret TEXT;
             ALTER TABLE technicians ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    // Logs indexed before receipt times were kept: the time of storing stands in.
    if !has("session_logs", "offered_at")? {
        sql.batch(
            "ALTER TABLE session_logs ADD COLUMN offered_at INTEGER;
             UPDATE session_logs SET offered_at = COALESCE(stored_at, started_at);",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::each_backend;
    use super::super::Database;
    use super::*;

    fn versions(conn: &Conn) -> Vec<i64> {
        conn.query(
            "SELECT version FROM schema_migrations ORDER BY version",
            params![],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect()
    }

    #[test]
    fn every_version_is_applied_once_however_often_the_database_is_opened() {
        each_backend(|db| {
            let again = Database::open(db.location()).unwrap();
            let conn = again.connect().unwrap();
            let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
            assert_eq!(versions(&conn), all);
            // Opened by several at once: still once each.
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| Database::open(db.location()).unwrap());
                }
            });
            assert_eq!(versions(&conn), all);
        });
    }

    #[test]
    fn a_database_newer_than_the_relay_is_refused() {
        each_backend(|db| {
            db.connect()
                .unwrap()
                .execute(
                    "INSERT INTO schema_migrations (version, description, applied_at)
                     VALUES ($1, 'from the future', 0)",
                    params![SCHEMA_VERSION + 1],
                )
                .unwrap();
            let e = Database::open(db.location()).unwrap_err();
            assert!(
                matches!(e, DbError::TooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
                "{e}"
            );
        });
    }

    #[test]
    fn an_sqlite_database_from_before_versions_keeps_its_rows_and_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DATABASE_FILE);
        {
            // The tables as the first relays made them.
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE technicians (
                     name TEXT PRIMARY KEY COLLATE NOCASE, tier INTEGER NOT NULL,
                     role TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,
                     password_hash TEXT NOT NULL, failed_logins INTEGER NOT NULL DEFAULT 0,
                     locked_until INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
                 INSERT INTO technicians (name, tier, role, password_hash, created_at)
                     VALUES ('alice', 2, 'technician', '$argon2id$x', 1);
                 CREATE TABLE session_logs (
                     id TEXT PRIMARY KEY, technician TEXT NOT NULL, agent TEXT NOT NULL,
                     started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
                     records INTEGER NOT NULL, chain_hash TEXT NOT NULL, size INTEGER NOT NULL,
                     sha256 TEXT NOT NULL, complete INTEGER NOT NULL DEFAULT 0,
                     stored_at INTEGER);
                 INSERT INTO session_logs VALUES
                     ('log-0001', 'alice', 'agent', 5, 10, 3, 'ab', 7, 'cd', 1, 9);",
            )
            .unwrap();
        }
        let db = Database::open(&super::super::Location::Sqlite(path)).unwrap();
        let conn = db.connect().unwrap();
        let row = conn
            .query_one(
                "SELECT tier, totp_secret, totp_last_step FROM technicians WHERE name = 'alice'",
                params![],
            )
            .unwrap();
        assert_eq!(row.get::<u8>(0).unwrap(), 2);
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<i64>(2).unwrap(), 0);
        let offered: i64 = conn
            .query_one("SELECT offered_at FROM session_logs", params![])
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(offered, 9, "the time of storing stands in for the offer's");
        assert_eq!(versions(&conn), vec![1, 2, 3, 4]);
    }
}
