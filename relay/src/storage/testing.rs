//! Storage tests run on both backends: [`each_backend`] runs a test's body on a fresh SQLite
//! database in a temporary directory, then on a fresh database of the test process's
//! throw-away PostgreSQL server ([`harness::postgres`]). A machine without PostgreSQL fails the
//! test, saying how to install it.

use std::path::Path;

use super::{Database, Kind, Location};

/// A fresh database of `kind`, and a directory beside it for whatever else the test keeps.
pub(crate) struct Scratch {
    pub dir: tempfile::TempDir,
    pub db: Database,
}

impl Scratch {
    pub fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let location = match kind {
            Kind::Sqlite => Location::of(dir.path(), None),
            Kind::Postgres => Location::Postgres(postgres_database()),
        };
        let db = Database::open(&location)
            .unwrap_or_else(|e| panic!("cannot open the {kind} database: {e}"));
        Self { dir, db }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

/// The URL of a fresh database on this test process's PostgreSQL server.
pub(crate) fn postgres_database() -> String {
    let server = harness::postgres::Server::shared().unwrap_or_else(|e| panic!("{e:#}"));
    server.database().unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `body` on a fresh SQLite database, then on a fresh PostgreSQL one; a failure says
/// which.
pub(crate) fn each_backend(mut body: impl FnMut(&Scratch)) {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let scratch = Scratch::new(kind);
        eprintln!("--- on {kind}");
        body(&scratch);
    }
}
