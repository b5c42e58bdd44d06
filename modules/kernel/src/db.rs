//! One binary, SQLite or PostgreSQL chosen at run time by `databases.main.url`.
//!
//! rocket_db_pools 0.2 pins sqlx 0.7, whose `Any` driver corrupts data (docs/architecture.md,
//! "Database"), so the pool is sqlx 0.8's `AnyPool` behind a newtype implementing
//! rocket_db_pools' `Pool` trait: `Connection<Db>` and `Db::fetch` work as usual.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor as _, Row, Transaction};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/stride.db?mode=rwc";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The database every module shares: `Connection<Db>` in a handler, `Db::fetch` elsewhere.
#[derive(Database)]
#[database("main")]
pub struct Db(DbPool);

pub struct DbPool(AnyPool);

impl std::ops::Deref for DbPool {
    type Target = AnyPool;
    fn deref(&self) -> &AnyPool {
        &self.0
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for DbPool {
    type Connection = PoolConnection<Any>;
    type Error = rocket_db_pools::Error<sqlx::Error>;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config = figment.extract()?;
        sqlx::any::install_default_drivers();
        if let Some(path) = sqlite_path(&config.url) {
            // SQLite creates the file but not its folder (docs/architecture.md, "Database").
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    rocket_db_pools::Error::Init(sqlx::Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", parent.display()),
                    )))
                })?;
            }
        }
        let mut max_connections = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
        let sqlite = sqlite_path(&config.url).is_some();
        if sqlite {
            // SQLite writes one transaction at a time, and each connection costs a thread and a
            // page cache: two per core are all the reads can use (BENCHMARKS.md, RSS).
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let cap = u32::try_from(2 * cores).unwrap_or(u32::MAX);
            if max_connections > cap {
                tracing::info!(
                    configured = max_connections,
                    used = cap,
                    "SQLite: databases.main.max_connections capped at two per core"
                );
                max_connections = cap;
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // sqlx pings every connection it lends by default: on SQLite that is a second trip
            // to the connection's thread for each query, and a local file cannot drop the line.
            .test_before_acquire(!sqlite)
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_secs(config.connect_timeout))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        // WAL: readers never wait on the writer; NORMAL sync is durable across
                        // process crashes in WAL mode. The busy timeout queues writers instead
                        // of failing them. Each connection keeps its own page cache: 1 MiB
                        // rather than SQLite's 2 MiB, as the operating system caches the file
                        // for all of them (BENCHMARKS.md, RSS).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA cache_size = -1024;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&config.url)
            .await
            .map_err(rocket_db_pools::Error::Init)?;
        Ok(DbPool(pool))
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.0.acquire().await.map_err(rocket_db_pools::Error::Get)
    }

    /// Rocket calls this as a shutdown begins, while requests still drain and need the
    /// database: the pool stays open, and the binary closes it once the server has stopped
    /// ([`DbPool::close_when_stopped`]).
    async fn close(&self) {}
}

impl DbPool {
    /// Closes every connection (on SQLite the last one checkpoints the WAL into the file).
    pub async fn close_when_stopped(&self) {
        self.0.close().await;
    }
}

/// The file behind a `sqlite:` URL, if it names one.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub async fn of(pool: &AnyPool) -> Result<Backend, sqlx::Error> {
        let conn = pool.acquire().await?;
        Ok(match conn.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        })
    }
}

/// Applies the embedded migrations of the pool's backend. On PostgreSQL sqlx holds an advisory
/// lock meanwhile, so instances starting together migrate once.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = match Backend::of(pool).await? {
        Backend::Postgres => &POSTGRES_MIGRATIONS,
        Backend::Sqlite => &SQLITE_MIGRATIONS,
    };
    migrator.run(pool).await
}

/// The versions of a backend's embedded migrations, to tell whether a database is up to date.
pub fn embedded_migrations(backend: Backend) -> impl Iterator<Item = i64> {
    let migrator = match backend {
        Backend::Postgres => &POSTGRES_MIGRATIONS,
        Backend::Sqlite => &SQLITE_MIGRATIONS,
    };
    migrator.iter().map(|m| m.version)
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a transaction that reads and then writes would otherwise fail with
/// SQLITE_BUSY, without waiting, whenever another connection wrote in between.
pub async fn begin_write(pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// Booleans are `INTEGER` on SQLite (sqlx's `Any` cannot read SQLite `BOOLEAN`:
/// docs/architecture.md, "Database") and `BOOLEAN` on PostgreSQL: read either.
pub fn get_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// Instants are stored as Unix seconds: `Any` has no date types.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// True when a write failed on a unique constraint (a racing duplicate, not a server fault).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/stride.db?mode=rwc"),
            Some("data/stride.db")
        );
        assert_eq!(sqlite_path("sqlite:/tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
