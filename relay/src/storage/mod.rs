//! The relay's state behind one interface, kept in SQLite or in PostgreSQL.
//!
//! Accounts and tokens ([`crate::accounts`]), the ledger of sessions ([`crate::ledger`]), the
//! index of stored logs and their checkpoints ([`crate::logstore`]) and the desk's journal
//! ([`crate::desk::journal`]) are written once, as SQL run through [`Sql`]; a [`Database`]
//! is one of two backends:
//!
//! - SQLite, the default: `relay.db` in the data directory, for one relay;
//! - PostgreSQL (`database_url = "postgres://…"`): one database several relays may share.
//!
//! The SQL is the common part of both dialects: PostgreSQL's numbered parameters (`$1`, which
//! SQLite reads as `?1`), 64-bit integers, flags as booleans (`TRUE`; integers in SQLite),
//! account names compared through `lower()`, `ON CONFLICT DO NOTHING` for a conditional
//! insert. Only the schema differs, and it is versioned ([`migrations`]): opening a database
//! brings it to this relay's version, on either backend, under a lock, so relays and `relay
//! user …` started together migrate it once.
//!
//! The interface is synchronous, like the SQLite calls it wraps; PostgreSQL's client is
//! asynchronous and runs on a small runtime of its own ([`postgres`]). The relay calls storage
//! from tokio's blocking pool (`spawn_blocking`), never from its async threads: a PostgreSQL
//! call made from one panics at once rather than stall the tasks that share the thread.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod migrations;
mod postgres;
mod sqlite;
#[cfg(test)]
pub(crate) mod testing;

pub use migrations::SCHEMA_VERSION;
pub use sqlite::{make_private, prepare_database, DATABASE_FILE};

/// Which backend a database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        })
    }
}

/// Where the relay's state is, as its configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (`relay.db` in the data directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user:password@host/dbname`, or the
    /// `key=value` form).
    Postgres(String),
}

impl Location {
    /// The database `database_url` names, or `relay.db` in `data_dir` without one.
    pub fn of(data_dir: &Path, database_url: Option<&str>) -> Self {
        match database_url {
            Some(url) => Location::Postgres(url.to_string()),
            None => Location::Sqlite(data_dir.join(DATABASE_FILE)),
        }
    }

    /// Where it is in words, without a password: `relay.db in DIR`, `PostgreSQL database
    /// tandem at db.example.org:5432`.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("SQLite database {}", path.display()),
            Location::Postgres(url) => postgres::describe(url),
        }
    }
}

/// Why the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres::words(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot reach the {what}: {message}")]
    Unreachable { what: String, message: String },
    #[error("{what} is not a database URL this relay reads: {message}")]
    BadUrl { what: String, message: String },
    #[error("cannot create the database {path} owner-only: {source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the PostgreSQL client's runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "a stored value is not what the relay expects: column {index} is {found}, not {expected}"
    )]
    Column {
        index: usize,
        expected: &'static str,
        found: String,
    },
    #[error("a query that returns a row returned none")]
    NoRow,
    #[error(
        "the database is at schema version {found}, newer than this relay knows ({known}): run \
         the newer relay with it"
    )]
    TooNew { found: i64, known: i64 },
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

/// A value given to a statement (`$1`, `$2`, …).
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u64> for Param<'_> {
    fn from(v: u64) -> Self {
        Param::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<u8> for Param<'_> {
    fn from(v: u8) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Bytes(v)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// The parameters of a statement: `params![name, tier, now]`.
macro_rules! params {
    () => { &[] as &[$crate::storage::Param<'_>] };
    ($($v:expr),+ $(,)?) => { &[$($crate::storage::Param::from($v)),+] };
}
pub(crate) use params;

/// A type a stored value reads back as.
pub trait FromValue: Sized {
    /// What it is, for an error.
    const WHAT: &'static str;
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const WHAT: &'static str = "an integer";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u64 {
    const WHAT: &'static str = "an integer of 0 or more";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for u32 {
    const WHAT: &'static str = "an integer of 0 to 2^32";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for u8 {
    const WHAT: &'static str = "an integer of 0 to 255";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u8::try_from(i).ok())
    }
}

impl FromValue for bool {
    const WHAT: &'static str = "a flag";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            // SQLite keeps flags as integers.
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    const WHAT: &'static str = "text";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const WHAT: &'static str = "bytes";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const WHAT: &'static str = T::WHAT;
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `index` as a `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.0.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| DbError::Column {
            index,
            expected: T::WHAT,
            found: match value {
                Value::Null => "empty".into(),
                Value::Int(i) => format!("the integer {i}"),
                Value::Bool(b) => format!("the flag {b}"),
                Value::Text(_) => "text".into(),
                Value::Bytes(b) => format!("{} bytes", b.len()),
            },
        })
    }
}

/// SQL run on one of the backends. See the module's words for the dialect.
pub trait Sql {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Runs a query; returns its rows.
    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;
    /// Runs several statements without parameters (a schema).
    fn batch(&self, sql: &str) -> Result<(), DbError>;
    fn kind(&self) -> Kind;

    /// The first row of a query, if any.
    fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one (`SELECT COUNT(*)`).
    fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)
    }
}

/// An open database of either backend: cheap to clone, shared by the relay's stores.
#[derive(Clone)]
pub struct Database {
    backend: Arc<Backend>,
    location: Location,
}

enum Backend {
    Sqlite(PathBuf),
    Postgres(Arc<postgres::Pool>),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location.describe())
    }
}

impl Database {
    /// Opens the database at `location` (creating an SQLite file owner-only if it is missing)
    /// and brings its schema to this relay's version.
    pub fn open(location: &Location) -> Result<Self, DbError> {
        let backend = match location {
            Location::Sqlite(path) => {
                // The file is made owner-only before SQLite first opens it.
                prepare_database(path).map_err(|source| DbError::Prepare {
                    path: path.clone(),
                    source,
                })?;
                Backend::Sqlite(path.clone())
            }
            Location::Postgres(url) => Backend::Postgres(Arc::new(postgres::Pool::connect(url)?)),
        };
        let db = Self {
            backend: Arc::new(backend),
            location: location.clone(),
        };
        migrations::migrate(&db.connect()?)?;
        Ok(db)
    }

    /// A connection to it for one store: for SQLite a connection of its own, for PostgreSQL
    /// the shared pool, which lends a connection for each statement or transaction.
    pub fn connect(&self) -> Result<Conn, DbError> {
        Ok(Conn(match &*self.backend {
            Backend::Sqlite(path) => Inner::Sqlite(sqlite::open(path)?),
            Backend::Postgres(pool) => Inner::Postgres(pool.clone()),
        }))
    }

    pub fn kind(&self) -> Kind {
        match &*self.backend {
            Backend::Sqlite(_) => Kind::Sqlite,
            Backend::Postgres(_) => Kind::Postgres,
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }
}

/// A store's connection to the database.
pub struct Conn(Inner);

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Arc<postgres::Pool>),
}

impl Conn {
    /// A private SQLite database in memory, at this relay's schema version (tests, benches).
    pub fn in_memory() -> Result<Self, DbError> {
        let conn = Conn(Inner::Sqlite(rusqlite::Connection::open_in_memory()?));
        migrations::migrate(&conn)?;
        Ok(conn)
    }

    /// Runs `f` in a transaction: committed if `f` returns `Ok`, rolled back otherwise.
    pub fn transaction<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.0 {
            Inner::Sqlite(c) => sqlite::transaction(c, f),
            Inner::Postgres(p) => p.transaction(f),
        }
    }

    fn sql(&self) -> &dyn Sql {
        match &self.0 {
            Inner::Sqlite(c) => c,
            Inner::Postgres(p) => &**p,
        }
    }
}

impl Sql for Conn {
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        self.sql().execute(sql, params)
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        self.sql().query(sql, params)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.sql().batch(sql)
    }

    fn kind(&self) -> Kind {
        self.sql().kind()
    }
}

/// `sql` with PostgreSQL's `$1` parameters written as SQLite's `?1`.
fn numbered_for_sqlite(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::testing::each_backend;
    use super::*;

    #[test]
    fn parameters_are_numbered_for_sqlite() {
        assert_eq!(
            numbered_for_sqlite("SELECT a FROM t WHERE b = $2 AND c = $10"),
            "SELECT a FROM t WHERE b = ?2 AND c = ?10"
        );
        assert!(matches!(
            numbered_for_sqlite("SELECT 1"),
            Cow::Borrowed("SELECT 1")
        ));
    }

    #[test]
    fn values_go_in_and_come_back_the_same_on_both_backends() {
        each_backend(|db| {
            let c = db.connect().unwrap();
            c.batch(match c.kind() {
                Kind::Sqlite => "CREATE TABLE t (i INTEGER, f INTEGER, s TEXT, b BLOB, n INTEGER)",
                Kind::Postgres => "CREATE TABLE t (i BIGINT, f BOOLEAN, s TEXT, b BYTEA, n BIGINT)",
            })
            .unwrap();
            let blob = vec![0u8, 1, 254, 255];
            let n = c
                .execute(
                    "INSERT INTO t (s, i, f, b, n) VALUES ($3, $1, $2, $4, $5)",
                    params![i64::MIN, true, "é €", &blob, None::<i64>],
                )
                .unwrap();
            assert_eq!(n, 1);
            let row = c
                .query_one("SELECT i, f, s, b, n FROM t WHERE s = $1", params!["é €"])
                .unwrap();
            assert_eq!(row.get::<i64>(0).unwrap(), i64::MIN);
            assert!(row.get::<bool>(1).unwrap());
            assert_eq!(row.get::<String>(2).unwrap(), "é €");
            assert_eq!(row.get::<Vec<u8>>(3).unwrap(), blob);
            assert_eq!(row.get::<Option<i64>>(4).unwrap(), None);
            assert!(matches!(
                row.get::<u64>(0),
                Err(DbError::Column { index: 0, .. })
            ));
            assert!(c
                .query_opt("SELECT i FROM t WHERE s = $1", params!["none"])
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn a_transaction_commits_on_ok_and_leaves_nothing_on_err() {
        each_backend(|db| {
            let c = db.connect().unwrap();
            c.batch("CREATE TABLE t (s TEXT PRIMARY KEY)").unwrap();
            c.transaction(|tx| {
                tx.execute("INSERT INTO t (s) VALUES ($1)", params!["kept"])?;
                Ok::<_, DbError>(())
            })
            .unwrap();
            let failed: Result<(), DbError> = c.transaction(|tx| {
                tx.execute("INSERT INTO t (s) VALUES ($1)", params!["dropped"])?;
                Err(DbError::NoRow)
            });
            assert!(failed.is_err());
            // A conflicting insert fails the transaction it is in, and nothing else.
            let conflict = c.transaction(|tx| {
                tx.execute("INSERT INTO t (s) VALUES ($1)", params!["also dropped"])?;
                tx.execute("INSERT INTO t (s) VALUES ($1)", params!["kept"])
            });
            assert!(conflict.is_err());
            let rows = c.query("SELECT s FROM t ORDER BY s", params![]).unwrap();
            let all: Vec<String> = rows.iter().map(|r| r.get(0).unwrap()).collect();
            assert_eq!(all, ["kept"]);
            // The connection is usable after both.
            assert_eq!(
                c.execute(
                    "INSERT INTO t (s) VALUES ($1) ON CONFLICT DO NOTHING",
                    params!["kept"]
                )
                .unwrap(),
                0
            );
        });
    }
}
