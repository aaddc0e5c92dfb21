//! The PostgreSQL backend: a pool of connections (`deadpool-postgres` over `tokio-postgres`)
//! driven by a runtime of its own with one worker thread, so that whoever calls storage (the
//! relay's blocking pool, the command line, tests) waits for its statement without an async
//! context of its own. Each connection prepares a statement once and keeps it. A transaction
//! borrows one connection until it commits or rolls back; a connection given up in the middle
//! of one (a panic) is closed rather than lent again.
//!
//! The URL is the one `libpq` reads (`postgres://user:password@host:port/dbname`, or `host=…
//! dbname=…`; a Unix socket's directory goes percent-encoded where the host is). Connections
//! are not encrypted: reach the database through a Unix socket, loopback or a private network.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, PoolError, RecyclingMethod,
};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::{DbError, Kind, Param, Row, Sql, Value};

/// Connections one relay holds at most.
const POOL_SIZE: usize = 16;
/// How long a statement waits for a connection, and a new connection for the server.
const WAIT: Duration = Duration::from_secs(10);

/// The pool of connections to one database, and the runtime that drives them.
pub(super) struct Pool {
    pool: Option<deadpool_postgres::Pool>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The database in words, for errors.
    shown: String,
}

impl Pool {
    /// Connects to the database at `url` once, to say at start (not at the first login) when
    /// it cannot be reached.
    pub(super) fn connect(url: &str) -> Result<Self, DbError> {
        let shown = describe(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| DbError::BadUrl {
            what: shown.clone(),
            message: words(&e),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres-client")
            .enable_all()
            .build()
            .map_err(DbError::Runtime)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .build()
            .map_err(|e| DbError::BadUrl {
                what: shown.clone(),
                message: e.to_string(),
            })?;
        let this = Self {
            pool: Some(pool),
            runtime: Some(runtime),
            shown,
        };
        // The connection goes back to the pool for the first statement.
        drop(this.block_on(this.lend())?);
        Ok(this)
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the pool")
            .block_on(f)
    }

    async fn lend(&self) -> Result<Object, DbError> {
        let pool = self.pool.as_ref().expect("the pool lives until dropped");
        pool.get().await.map_err(|e| DbError::Unreachable {
            what: self.shown.clone(),
            message: match e {
                PoolError::Backend(e) => words(&e),
                PoolError::Timeout(_) => format!(
                    "no connection within {} s (all {POOL_SIZE} busy, or the server is not \
                     answering)",
                    WAIT.as_secs()
                ),
                other => other.to_string(),
            },
        })
    }

    /// Runs `f` in a transaction on one connection: committed if `f` returns `Ok`, rolled back
    /// otherwise.
    pub(super) fn transaction<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut lent = Lent {
            object: Some(self.block_on(self.lend())?),
            finished: false,
        };
        let client: &ClientWrapper = lent.object.as_ref().expect("lent until dropped");
        self.block_on(client.batch_execute("BEGIN"))
            .map_err(DbError::from)?;
        let result = f(&Tx { pool: self, client });
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.block_on(client.batch_execute(end))
            .map_err(DbError::from)?;
        lent.finished = true;
        result
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The connections first (their tasks end), then the runtime, without waiting for it:
        // this may run on an async thread, which must not block.
        drop(self.pool.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A connection lent to a transaction: closed, not given back, if the transaction did not end.
struct Lent {
    object: Option<Object>,
    finished: bool,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            if !self.finished {
                drop(Object::take(object));
            }
        }
    }
}

/// The statements of a transaction, on its connection.
struct Tx<'a> {
    pool: &'a Pool,
    client: &'a ClientWrapper,
}

impl Sql for Tx<'_> {
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        self.pool.block_on(execute_on(self.client, sql, params))
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        self.pool.block_on(query_on(self.client, sql, params))
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.pool.block_on(self.client.batch_execute(sql))?)
    }

    fn kind(&self) -> Kind {
        Kind::Postgres
    }
}

impl Sql for Pool {
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        self.block_on(async { execute_on(&*self.lend().await?, sql, params).await })
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        self.block_on(async { query_on(&*self.lend().await?, sql, params).await })
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.block_on(async { Ok(self.lend().await?.batch_execute(sql).await?) })
    }

    fn kind(&self) -> Kind {
        Kind::Postgres
    }
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

async fn execute_on(
    client: &ClientWrapper,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, DbError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, &refs(params)).await?)
}

async fn query_on(
    client: &ClientWrapper,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    let rows = client.query(&statement, &refs(params)).await?;
    rows.iter().map(row).collect()
}

fn row(r: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
            _ if <String as FromSql>::accepts(ty) => {
                r.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            _ => {
                return Err(DbError::Column {
                    index: i,
                    expected: "an integer, a flag, text or bytes",
                    found: format!("of type {ty}"),
                })
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || format!("{self:?} cannot be stored as {ty}").into();
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 => i64::from(b).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Text(t) if <&str as ToSql>::accepts(ty) => t.to_sql(ty, out),
            Param::Bytes(b) if <&[u8] as ToSql>::accepts(ty) => b.to_sql(ty, out),
            Param::Text(_) | Param::Bytes(_) => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A client error in words: the server's message for an error it sent, else the client's.
pub(super) fn words(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

/// The database a URL names, in words and without its password: `PostgreSQL database tandem
/// at db.example.org:5432 as relay`.
pub(super) fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "PostgreSQL database (its URL does not read)".into();
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(dir) => {
                    format!("{}/.s.PGSQL.{port}", dir.display())
                }
            }
        })
        .collect();
    let mut text = format!(
        "PostgreSQL database {}",
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
    );
    if !hosts.is_empty() {
        text.push_str(&format!(" at {}", hosts.join(", ")));
    }
    if let Some(user) = config.get_user() {
        text.push_str(&format!(" as {user}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_described_without_its_password() {
        let text = describe("postgres://relay:s3cret@db.example.org:6432/tandem");
        assert_eq!(
            text,
            "PostgreSQL database tandem at db.example.org:6432 as relay"
        );
        assert_eq!(
            describe("postgres://tandem@%2Frun%2Fpostgresql/desk"),
            "PostgreSQL database desk at /run/postgresql/.s.PGSQL.5432 as tandem"
        );
        assert!(!describe("host=db password=s3cret dbname=x").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_database_is_said_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "postgres://nobody@{}/nothing",
            dir.path().display().to_string().replace('/', "%2F")
        );
        let Err(e) = Pool::connect(&url) else {
            panic!("connected to nothing");
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot reach the PostgreSQL database nothing at "),
            "{text}"
        );
        assert!(text.contains("No such file or directory"), "{text}");
    }
}
