//! The SQLite backend: `relay.db` in the data directory, owner-only, in write-ahead-log mode so
//! that `relay user …` writes while the relay reads. Each store keeps a connection of its own;
//! statements are prepared once per connection and kept.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{numbered_for_sqlite, DbError, Kind, Param, Row, Sql, Value};

/// The database file in the relay's data directory.
pub const DATABASE_FILE: &str = "relay.db";

/// How long a statement waits for another connection's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Gives `path` the permission bits `mode` (owner-only: 0o600 for files, 0o700 for
/// directories), if it exists.
pub fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes the database at `path` owner-only before SQLite opens it: created empty with mode
/// 0600 if missing (SQLite then gives its `-wal` and `-shm` files the same mode), and the mode
/// put right on a database, write-ahead log and shared-memory file made before.
///
/// An existing database is never opened here: closing any descriptor of a database file drops
/// every POSIX lock this process holds on it, including those of SQLite connections already
/// open, after which another process may take the write-ahead log away from under them.
pub fn prepare_database(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        make_private(Path::new(&p), 0o600)?;
    }
    Ok(())
}

/// A connection to the database at `path` (prepared owner-only before).
pub(super) fn open(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // The mode is the database's own and stays; an in-memory database answers "memory".
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    Ok(conn)
}

/// Runs `f` in a transaction that takes the write lock at once (so that two writers never
/// deadlock upgrading a read).
pub(super) fn transaction<T, E: From<DbError>>(
    conn: &Connection,
    f: impl FnOnce(&dyn Sql) -> Result<T, E>,
) -> Result<T, E> {
    let tx =
        Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(DbError::from)?;
    let value = f(&*tx)?;
    tx.commit().map_err(DbError::from)?;
    Ok(value)
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(i) => ValueRef::Integer(i),
            Param::Bool(b) => ValueRef::Integer(i64::from(b)),
            Param::Text(t) => ValueRef::Text(t.as_bytes()),
            Param::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // The relay stores no floating point; one read back is kept as its integer part.
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl Sql for Connection {
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.prepare_cached(&numbered_for_sqlite(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare_cached(&numbered_for_sqlite(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(columns);
            for i in 0..columns {
                row.push(value(r.get_ref(i)?));
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }

    fn kind(&self) -> Kind {
        Kind::Sqlite
    }
}
