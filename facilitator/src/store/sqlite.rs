//! The replay store in a SQLite file: the embedded default, for one instance (or several
//! processes on one machine sharing the file).
//!
//! Durability: WAL journal with `synchronous = FULL`, so a settle is answered only once its
//! row is on disk (it survives a killed process and a power cut). Atomicity: the key is the
//! primary key and the insert is `ON CONFLICT DO NOTHING`; SQLite takes one writer at a time,
//! and a busy writer (another process on the same file) is waited for up to
//! [`ACQUIRE_TIMEOUT`].

use std::str::FromStr as _;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{ACQUIRE_TIMEOUT, StoreError, migrator, redact_password};

/// A replay store in a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database `url` names (`sqlite://PATH` or `sqlite:PATH`)
    /// and runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::InMemory`] for `:memory:` or `mode=memory`; [`StoreError::Open`] (naming
    /// the URL) if the file cannot be opened or created; a migration error if the schema cannot
    /// be brought up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::InMemory(redact_password(url)));
        }
        let opening = |source| StoreError::Open {
            url: redact_password(url),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(opening)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(ACQUIRE_TIMEOUT);
        // One connection: SQLite takes one writer at a time anyway, and settles queued fairly in
        // the pool wait less at the tail than connections retrying SQLite's busy lock
        // (`cargo bench --bench settle`, 32 clients: p99 49 ms with 4 connections, 20 ms with 1).
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(opening)?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }
}

super::replay_store_on_pool!(SqliteStore);
super::books::books_on_pool!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE", false);
