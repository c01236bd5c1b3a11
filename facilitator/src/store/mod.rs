//! The replay store: where settled proofs are recorded, once, durably (upstream
//! `scheme_exact_lnbtc.md`, "Settlement and Replay Protection" and "Durable Replay Protection").
//!
//! A [`ReplayStore`] records a [`ReplayEntry`] with an atomic insert-if-absent on its key,
//! `network + ":" + payment_hash`: of any number of settles of one proof, on any number of
//! instances sharing the store, exactly one is [`Inserted::New`]. Entries are kept until
//! `retain_until` (the invoice's end + skew + 1 h) and only purged after it.
//!
//! Two stores, chosen by URL ([`open`]): [`SqliteStore`] (`sqlite://PATH`, a file, the embedded
//! default) and [`PostgresStore`] (`postgres://…`, for several instances). Both run their schema
//! migrations when opened.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) mod books;
pub mod postgres;
pub mod sqlite;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

/// The future a [`ReplayStore`] call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One settled proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayEntry {
    /// `network + ":" + payment_hash` (lowercase hex), the canonical consumption key.
    pub key: String,
    /// Unix seconds until which the entry must be kept (`invoice_end + skew + 1 h`).
    pub retain_until: u64,
    /// Unix seconds of the settle.
    pub settled_at: u64,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The key was absent and is now recorded: this settle succeeds.
    New,
    /// The key was already recorded: `duplicate_settlement`.
    AlreadyPresent,
}

/// A durable store of settled proofs.
pub trait ReplayStore: fmt::Debug + Send + Sync + 'static {
    /// Records `entry` if its key is absent, atomically with respect to every other insert on
    /// the same store (other connections and other processes included). Returns once the
    /// outcome is durable.
    fn insert_if_absent<'a>(&'a self, entry: &'a ReplayEntry) -> StoreFuture<'a, Inserted>;

    /// Removes the entries whose `retain_until` is before `now` (Unix seconds); returns how
    /// many. An entry whose `retain_until` is `now` or later is never removed. Also removes the
    /// recorded invoices that expired more than an hour and the largest skew before `now`.
    fn purge(&self, now: u64) -> StoreFuture<'_, u64>;

    /// How many entries the store holds.
    fn count(&self) -> StoreFuture<'_, u64>;

    /// Checks that the store answers (for `/healthz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Closes the store's connections (at shutdown, after the last request).
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The store failed; the settle is not decided (answered 503, the proof is not consumed unless
/// the insert reached the database before the failure).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this service can use.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// An in-memory database: upstream calls a replay store that a restart empties
    /// non-compliant.
    #[error("`{0}` is an in-memory database: the replay store must survive a restart, use a file")]
    InMemory(String),
    /// The database cannot be opened or reached.
    #[error("cannot open the replay store {url}: {source}")]
    Open {
        /// The URL, its password hidden.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A database error.
    #[error("replay store: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("replay store migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A value does not fit the database's integer type.
    #[error("replay store: {0} does not fit a 64-bit signed integer")]
    OutOfRange(u64),
    /// A row holds what this service never writes (a negative amount, an unknown state).
    #[error("the books hold an unexpected value: {0}")]
    Corrupt(String),
}

/// A store: the replay store and the seed flow's [books](crate::books::Books), in one
/// database.
pub trait Store: ReplayStore + crate::books::Books {}

impl<T: ReplayStore + crate::books::Books> Store for T {}

/// How long a settle waits for a database connection before giving up.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store `url` names (`sqlite://PATH`, `sqlite:PATH`, `postgres://…` or
/// `postgresql://…`) and runs its migrations.
///
/// # Errors
/// [`StoreError::UnsupportedUrl`] for another scheme, [`StoreError::InMemory`] for an in-memory
/// SQLite database, [`StoreError::Open`] when the database cannot be opened or reached, a
/// migration error when it cannot be migrated.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_password(url)))
    }
}

/// The schema's migrations, in order: version, description (as `sqlx migrate` names them, from
/// the file name) and SQL, shared by both stores (their SQL for it is the same). Embedded with
/// `include_str!` rather than sqlx's `migrate!` macro, so that building the service does not
/// build sqlx's proc macro and a second copy of its drivers.
const MIGRATIONS: [(i64, &str, &str); 2] = [
    (
        20261201000000,
        "replay keys",
        include_str!("../../migrations/20261201000000_replay_keys.sql"),
    ),
    (
        20261207000000,
        "accounts",
        include_str!("../../migrations/20261207000000_accounts.sql"),
    ),
];

/// The migrator of [`MIGRATIONS`].
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            sqlx::migrate::Migration::new(
                *version,
                std::borrow::Cow::Borrowed(*description),
                sqlx::migrate::MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(migrations),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

/// How many rows one purge statement deletes, so a purge never holds the write lock (SQLite) or
/// many row locks (PostgreSQL) for long.
const PURGE_BATCH: i64 = 5_000;

/// The atomic insert-if-absent. SQLite and PostgreSQL both read `$N` parameters and
/// `ON CONFLICT … DO NOTHING`; a row affected means the key was absent.
const INSERT_SQL: &str = "INSERT INTO replay_keys (replay_key, retain_until, settled_at) \
                          VALUES ($1, $2, $3) ON CONFLICT (replay_key) DO NOTHING";

/// One batch of the purge: entries strictly past their `retain_until`.
const PURGE_SQL: &str = "DELETE FROM replay_keys WHERE replay_key IN \
                         (SELECT replay_key FROM replay_keys WHERE retain_until < $1 LIMIT $2)";

/// One batch of the recorded invoices' purge: those that expired before `$1` (an hour past the
/// largest skew: no settle can accept them, and the replay key records a paid one).
const PURGE_INVOICES_SQL: &str = "DELETE FROM invoices WHERE payment_hash IN \
                                  (SELECT payment_hash FROM invoices WHERE expires_at < $1 LIMIT $2)";

/// The number of entries.
const COUNT_SQL: &str = "SELECT COUNT(*) FROM replay_keys";

/// Implements [`ReplayStore`] for a store holding an sqlx `pool`: the two databases share the
/// SQL above, and only their pool types differ.
macro_rules! replay_store_on_pool {
    ($store:ty) => {
        impl $crate::store::ReplayStore for $store {
            fn insert_if_absent<'a>(
                &'a self,
                entry: &'a $crate::store::ReplayEntry,
            ) -> $crate::store::StoreFuture<'a, $crate::store::Inserted> {
                Box::pin(async move {
                    let result = sqlx::query($crate::store::INSERT_SQL)
                        .bind(entry.key.clone())
                        .bind($crate::store::to_i64(entry.retain_until)?)
                        .bind($crate::store::to_i64(entry.settled_at)?)
                        .execute(&self.pool)
                        .await?;
                    Ok(if result.rows_affected() == 1 {
                        $crate::store::Inserted::New
                    } else {
                        $crate::store::Inserted::AlreadyPresent
                    })
                })
            }

            fn purge(&self, now: u64) -> $crate::store::StoreFuture<'_, u64> {
                Box::pin(async move {
                    let now = $crate::store::to_i64(now)?;
                    let mut purged = 0;
                    loop {
                        let deleted = sqlx::query($crate::store::PURGE_SQL)
                            .bind(now)
                            .bind($crate::store::PURGE_BATCH)
                            .execute(&self.pool)
                            .await?
                            .rows_affected();
                        purged += deleted;
                        if deleted < $crate::store::PURGE_BATCH.unsigned_abs() {
                            break;
                        }
                    }
                    let invoices_before = now
                        .saturating_sub($crate::store::to_i64($crate::config::MAX_SKEW_SECONDS)?)
                        .saturating_sub(3600);
                    loop {
                        let deleted = sqlx::query($crate::store::PURGE_INVOICES_SQL)
                            .bind(invoices_before)
                            .bind($crate::store::PURGE_BATCH)
                            .execute(&self.pool)
                            .await?
                            .rows_affected();
                        if deleted < $crate::store::PURGE_BATCH.unsigned_abs() {
                            return Ok(purged);
                        }
                    }
                })
            }

            fn count(&self) -> $crate::store::StoreFuture<'_, u64> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    let row = sqlx::query($crate::store::COUNT_SQL)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(row.try_get::<i64, _>(0)?.unsigned_abs())
                })
            }

            fn ping(&self) -> $crate::store::StoreFuture<'_, ()> {
                Box::pin(async move {
                    // The table itself, not just the connection.
                    sqlx::query("SELECT 1 FROM replay_keys LIMIT 1")
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn close(
                &self,
            ) -> ::std::pin::Pin<Box<dyn ::std::future::Future<Output = ()> + Send + '_>> {
                Box::pin(self.pool.close())
            }
        }
    };
}
pub(crate) use replay_store_on_pool;

/// A database `BIGINT` that must be a `u64` (amounts, times).
pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("a negative amount or time {value}")))
}

/// A network stored under its x402 v1 name.
pub(crate) fn parse_network(name: &str) -> Result<x402_lightning::Network, StoreError> {
    name.parse()
        .map_err(|_| StoreError::Corrupt(format!("network {name}")))
}

/// A `u64` as the databases' `BIGINT`.
pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange(value))
}

/// A database URL fit for logs and errors: a password in the user info or in a `password`
/// query parameter becomes `***`; a URL that does not parse keeps only its scheme.
pub fn redact_password(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        return format!("{scheme}:<unparsable URL, not shown>");
    };
    if parsed.password().is_some() {
        // Only URLs that cannot have a password refuse one; this one has one.
        let _ = parsed.set_password(Some("***"));
    }
    let secret = |name: &str| name.eq_ignore_ascii_case("password");
    if parsed.query_pairs().any(|(name, _)| secret(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/x402?sslmode=require"),
            "postgres://app:***@db:5432/x402?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(redact_password("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_password("postgres://u@db/x?password=hunter2&options=-c%20a"),
            "postgres://u@db/x?password=***&options=-c+a"
        );
        let odd = redact_password("postgres://u:p#w/d?@db/x");
        assert!(!odd.contains("p#w"), "{odd}");
    }
}
