//! The replay store in PostgreSQL: for several service instances sharing one database.
//!
//! Atomicity across instances: the key is the primary key and the insert is
//! `ON CONFLICT DO NOTHING`, so of concurrent inserts of one key exactly one affects a row.
//! Durability: the insert commits (with the server's `synchronous_commit`) before the settle
//! is answered. Migrations take PostgreSQL's advisory lock, so instances may start together.

use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};

use super::{ACQUIRE_TIMEOUT, StoreError, migrator, redact_password};

/// A replay store in a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB…`; `?options=-c search_path=SCHEMA`
    /// picks a schema) and runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Open`] (naming the URL, its password hidden) if the server cannot be
    /// reached or refuses the connection; a migration error if the schema cannot be brought up
    /// to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opening = |source| StoreError::Open {
            url: redact_password(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(opening)?;
        // One connection first: its error says why (refused, unknown database, …), where the
        // pool's would only say that it timed out.
        let probe = options.connect().await.map_err(opening)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(opening)?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }
}

super::replay_store_on_pool!(PostgresStore);
super::books::books_on_pool!(PostgresStore, sqlx::Postgres, "BEGIN", true);
