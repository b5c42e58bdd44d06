//! One binary, SQLite or PostgreSQL chosen at run time by `databases.main.url`.
//!
//! rocket_db_pools 0.2 pins sqlx 0.7, whose `Any` driver corrupts data (docs/architecture.md,
//! "Database"), so the pool is sqlx 0.8's `AnyPool` behind a newtype implementing
//! rocket_db_pools' `Pool` trait: `Connection<Db>` and `Db::fetch` work as usual.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocket::figment::Figment;
use rocket_db_pools::Database;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor as _, Row, Transaction};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/stride.db?mode=rwc";

/// A pooled PostgreSQL connection idle this long is pinged before it is lent (see
/// [`DbPool`]'s `init`); a busier one is lent as it is.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The database every module shares: `Connection<Db>` in a handler, `Db::fetch` elsewhere.
#[derive(Database)]
#[database("main")]
pub struct Db(DbPool);

pub struct DbPool {
    pool: AnyPool,
    /// On a SQLite file: the session check's reads without thread hand-offs.
    reader: Option<SqliteReader>,
    /// Pools of their own for work that must not queue for the shared one
    /// ([`DbPool::own_pool`]): closed with it, counted in its metrics.
    own: std::sync::Mutex<Vec<AnyPool>>,
}

impl std::ops::Deref for DbPool {
    type Target = AnyPool;
    fn deref(&self) -> &AnyPool {
        &self.pool
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
            let cores = crate::workers::cores();
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
        // sqlx pings every connection it lends by default: a second round trip for every
        // query, which on PostgreSQL doubled the session check's cost (BENCHMARKS.md, "What the
        // run says"), and on SQLite a second trip to the connection's thread for a local file
        // that cannot drop the line. A server connection is pinged only after a pause
        // ([`PING_AFTER_IDLE`]): one used within the last second is alive, and one the server
        // dropped since (a restart) is found by the ping and replaced, unseen by the query.
        let options = AnyPoolOptions::new().test_before_acquire(false);
        let options = if sqlite {
            options
        } else {
            options.before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
        };
        let pool = options
            .max_connections(max_connections)
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_secs(config.connect_timeout))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        // WAL: readers never wait on the writer; NORMAL sync is durable across
                        // process crashes in WAL mode. The busy timeout queues writers instead
                        // of failing them. Each connection keeps its own page cache: 512 KiB
                        // rather than SQLite's 2 MiB, as the operating system caches the file
                        // for all of them, and the hottest read (the session check) has the
                        // reader's connections (BENCHMARKS.md, "memory").
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA cache_size = -512;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&config.url)
            .await
            .map_err(rocket_db_pools::Error::Init)?;
        let reader = sqlite_path(&config.url).map(SqliteReader::new);
        Ok(DbPool {
            pool,
            reader,
            own: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.pool
            .acquire()
            .await
            .map_err(rocket_db_pools::Error::Get)
    }

    /// Rocket calls this as a shutdown begins, while requests still drain and need the
    /// database: the pool stays open, and the binary closes it once the server has stopped
    /// ([`DbPool::close_when_stopped`]).
    async fn close(&self) {}
}

impl DbPool {
    /// Closes every connection (on SQLite the last one checkpoints the WAL into the file).
    pub async fn close_when_stopped(&self) {
        if let Some(reader) = &self.reader {
            reader.close();
        }
        for pool in self.own_pools() {
            pool.close().await;
        }
        self.pool.close().await;
    }

    /// **A pool of its own on the same database**, with the shared pool's settings (its
    /// timeouts, its ping after a pause) and `connections` connections at most (at least one),
    /// opened when first needed. For reads that every request waits for (the session check's
    /// batches on PostgreSQL: `auth::SessionReads`): on the shared pool they queued behind
    /// whatever held its connections, and a flood of logins, each holding one through its
    /// transactions, made the profile's p99 wait for them (BENCHMARKS.md, "What the run
    /// says"). It is closed with the shared pool and counted in [`DbPool::connections`].
    pub fn own_pool(&self, connections: u32) -> AnyPool {
        let pool = self
            .pool
            .options()
            .clone()
            .max_connections(connections.max(1))
            .min_connections(0)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        self.own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pool.clone());
        pool
    }

    fn own_pools(&self) -> Vec<AnyPool> {
        self.own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This instance's database connections, its own pools' included: (open, idle, most).
    pub fn connections(&self) -> (u32, usize, u32) {
        let mut counted = (
            self.pool.size(),
            self.pool.num_idle(),
            self.pool.options().get_max_connections(),
        );
        for pool in self.own_pools() {
            counted.0 = counted.0.saturating_add(pool.size());
            counted.1 = counted.1.saturating_add(pool.num_idle());
            counted.2 = counted
                .2
                .saturating_add(pool.options().get_max_connections());
        }
        counted
    }

    /// The synchronous reader of a SQLite file; none on PostgreSQL or an in-memory database.
    pub fn sqlite_reader(&self) -> Option<&SqliteReader> {
        self.reader.as_ref()
    }
}

/// **Reads without thread hand-offs (SQLite).** sqlx's SQLite driver runs each connection on a
/// thread of its own: every query is sent to that thread and its rows sent back, two hand-offs
/// between threads, which cost the session check far more than SQLite's lookup itself
/// (BENCHMARKS.md, "What the run says"). This reader runs a read on the calling thread instead,
/// through SQLite's own driver (rusqlite, on the library sqlx links), on connections of its own
/// to the same file, kept between reads.
///
/// Each read is one statement in its own read transaction, so it sees every transaction
/// committed before it began, by this process or any other on the file, as sqlx's connections
/// do: nothing is cached, and a session revoked anywhere is refused on its next request. In WAL
/// mode (which the pool's connections set on the file) a reader never waits for a writer; the
/// connections are `query_only`, so they cannot take the write lock. Use it for small reads by
/// primary key only (a request's thread waits for it): anything longer belongs on the pool.
pub struct SqliteReader {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    /// Connections kept between reads: one per core is as many as can read at once. Counted
    /// once: [`crate::workers::cores`] reads the cgroup's files on every call (an open, a read
    /// and a close per request when it was asked at each read).
    idle_max: usize,
    closed: std::sync::atomic::AtomicBool,
}

impl SqliteReader {
    fn new(path: &str) -> SqliteReader {
        SqliteReader {
            path: path.into(),
            idle: std::sync::Mutex::new(Vec::new()),
            idle_max: crate::workers::cores(),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn open(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        use rusqlite::OpenFlags;
        // The file exists: the pool created and migrated it. NO_MUTEX: a connection is used
        // by one thread at a time, taken from `idle` and put back.
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // A page cache as small as the pool's (BENCHMARKS.md, RSS), and no write ever.
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -1024;")?;
        Ok(conn)
    }

    /// Runs `read` on a connection of the reader, on this thread.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        use std::sync::atomic::Ordering;
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        let idle = || {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let taken = idle().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.open().map_err(sqlite_error)?,
        };
        let result = read(&conn);
        let mut idle = idle();
        if idle.len() < self.idle_max && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// **Many requests' reads as one query (PostgreSQL).** Each request's own query to the server
/// costs a round trip through a PostgreSQL process on the same cores, dearer than the lookup
/// itself (BENCHMARKS.md, "What the run says"). Here a request asks and waits; one runner
/// takes every question waiting, up to `most`, and answers them with one query, so every
/// question asked while a query runs goes in the next.
///
/// Nothing is cached and nothing is read early: the runner takes a question after it was asked
/// and sends its query after that, so the answer reflects every transaction committed before
/// the question was asked, as the request's own query would (a session ended anywhere is
/// refused on its next request). With one question waiting it is sent at once, alone. The
/// queue is bounded: a request waits for room, and memory stays bounded under any load.
pub struct Batched<Q, A> {
    asks: flume::Sender<Asked<Q, A>>,
}

type Asked<Q, A> = (Q, tokio::sync::oneshot::Sender<Result<A, String>>);

/// Questions that wait for the runner, at most, before a request waits for room.
const BATCH_QUEUE: usize = 4096;

impl<Q: Send + 'static, A: Send + 'static> Batched<Q, A> {
    /// Starts the runner on the current runtime, answering up to `most` questions with one
    /// call of `run`, which returns one answer per question, in their order.
    pub fn start<F, Fut>(most: usize, run: F) -> Batched<Q, A>
    where
        F: Fn(Vec<Q>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<A>, sqlx::Error>> + Send + 'static,
    {
        let (asks, asked) = flume::bounded::<Asked<Q, A>>(BATCH_QUEUE);
        let most = most.max(1);
        tokio::spawn(async move {
            // Ends when the last sender is gone.
            while let Ok(first) = asked.recv_async().await {
                let mut batch = vec![first];
                while batch.len() < most {
                    match asked.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (questions, waiting): (Vec<Q>, Vec<_>) = batch.into_iter().unzip();
                let count = questions.len();
                match run(questions).await {
                    Ok(answers) if answers.len() == count => {
                        for (answer, to) in answers.into_iter().zip(waiting) {
                            // A request that went away no longer waits: nothing to do.
                            let _ = to.send(Ok(answer));
                        }
                    }
                    outcome => {
                        let error = match outcome {
                            Err(e) => e.to_string(),
                            Ok(answers) => {
                                format!("{} answers to {count} questions", answers.len())
                            }
                        };
                        for to in waiting {
                            let _ = to.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Batched { asks }
    }

    /// Asks one question and waits for its answer.
    pub async fn ask(&self, question: Q) -> Result<A, sqlx::Error> {
        let (to, answer) = tokio::sync::oneshot::channel();
        self.asks
            .send_async((question, to))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?
            .map_err(sqlx::Error::Protocol)
    }
}

/// An error of SQLite's own driver, as sqlx's errors are reported.
pub(crate) fn sqlite_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("SQLite: {error}"))
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
///
/// **One writer at a time, queued in the process.** SQLite lets one transaction write at a time;
/// a connection that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 … ms)
/// and tries again, so under load writers slept far longer than any of them held the lock
/// (docs/architecture.md, "Database"). Writing transactions of this process on one SQLite file
/// therefore wait their turn on an async mutex first, and the next one starts the moment the
/// last commits or rolls back. The turn is taken before the connection, so a waiter holds no
/// pooled connection. Other processes sharing the file, and single statements outside
/// transactions, still meet the lock in SQLite's busy handler, as before. On PostgreSQL rows
/// are locked, not the database: no queue.
pub async fn begin_write(pool: &AnyPool) -> Result<WriteTx, sqlx::Error> {
    let url = &pool.connect_options().database_url;
    if url.scheme() == "sqlite" {
        let turn = writer_queue(url.as_str()).lock_owned().await;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            _turn: Some(turn),
        })
    } else {
        Ok(WriteTx {
            tx: pool.begin().await?,
            _turn: None,
        })
    }
}

/// This process's turn at a SQLite file's write lock for one writing statement outside a
/// transaction (a session's "last used", a logout, the courier's records), held until dropped:
/// the statement waits here, in the queue of [`begin_write`], instead of asleep in SQLite's busy
/// handler behind the process's own writers. Take it before the statement's connection. None on
/// PostgreSQL.
pub async fn write_turn(pool: &AnyPool) -> Option<tokio::sync::OwnedMutexGuard<()>> {
    let url = &pool.connect_options().database_url;
    if url.scheme() == "sqlite" {
        Some(writer_queue(url.as_str()).lock_owned().await)
    } else {
        None
    }
}

/// Serialises the changes of accounts that depend on other accounts (the last admin keeps their
/// rights and their account), until the transaction ends: on PostgreSQL a transaction-scoped
/// advisory lock, taken by every instance on the database; on SQLite the writing transaction
/// already holds the database's one write lock ([`begin_write`]).
pub async fn lock_accounts(tx: &mut WriteTx) -> Result<(), sqlx::Error> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ACCOUNTS_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The advisory lock id of account changes: "stride:accounts", as an i64.
const ACCOUNTS_LOCK: i64 = 0x5374_7269_6465_4163;

/// The queue of writing transactions on one SQLite database, by its URL.
fn writer_queue(url: &str) -> Arc<tokio::sync::Mutex<()>> {
    static QUEUES: OnceLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let mut queues = QUEUES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(queue) = queues.get(url) {
        return queue.clone();
    }
    queues.entry(url.to_owned()).or_default().clone()
}

/// A writing transaction ([`begin_write`]): use it as a connection, then [`WriteTx::commit`].
/// Dropped without a commit, it rolls back, and gives its turn to the next writer.
pub struct WriteTx {
    // Declared first, dropped first: the rollback is queued before the turn passes on.
    tx: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
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

/// A nullable boolean column, read as `get_bool` reads one.
pub fn get_optional_bool(row: &AnyRow, column: &str) -> Result<Option<bool>, sqlx::Error> {
    match row.try_get::<Option<bool>, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0)),
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

/// Scratch SQLite files for the kernel's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use sqlx::any::AnyPoolOptions;

    pub fn sqlite_file(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("stride-{name}-{}.db", std::process::id()))
    }

    /// A pool of up to `connections` on a new, empty file named after `name`.
    pub async fn sqlite_pool_of(name: &str, connections: u32) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let path = sqlite_file(name);
        let _ = std::fs::remove_file(&path);
        AnyPoolOptions::new()
            .max_connections(connections)
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("pool")
    }

    pub async fn sqlite_pool(name: &str) -> sqlx::AnyPool {
        sqlite_pool_of(name, 4).await
    }

    /// A one-connection pool on a new file with the project's migrations, and the file.
    pub async fn migrated_sqlite(name: &str) -> (sqlx::AnyPool, std::path::PathBuf) {
        let pool = sqlite_pool_of(name, 1).await;
        super::migrate(&pool).await.expect("migrations");
        (pool, sqlite_file(name))
    }
}

#[cfg(test)]
mod tests {
    use super::{
        begin_write, sqlite_path, write_turn, Batched, SqliteReader, POSTGRES_MIGRATIONS,
        SQLITE_MIGRATIONS,
    };
    use std::time::Duration;

    /// Each backend's migrations have distinct versions (branches written side by side can
    /// both take the next number), and the two backends have the same ones, of the same names.
    #[test]
    fn migrations_are_one_list_on_both_backends() {
        let list = |migrator: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
            migrator
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        let (sqlite, postgres) = (list(&SQLITE_MIGRATIONS), list(&POSTGRES_MIGRATIONS));
        let mut versions: Vec<i64> = sqlite.iter().map(|(v, _)| *v).collect();
        versions.dedup();
        assert_eq!(
            versions.len(),
            sqlite.len(),
            "a version taken twice: {sqlite:?}"
        );
        assert_eq!(sqlite, postgres);
    }

    use super::testing::{sqlite_file, sqlite_pool};

    /// A second writer waits for its turn in the process, holding no pooled connection, and
    /// starts as soon as the first commits; a dropped transaction hands its turn on too.
    #[tokio::test]
    async fn sqlite_writers_queue_in_the_process() {
        let pool = sqlite_pool("queue").await;
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .expect("table");
        let mut first = begin_write(&pool).await.expect("first");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *first)
            .await
            .expect("insert");
        let second = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut tx = begin_write(&pool).await.expect("second");
                sqlx::query("INSERT INTO t VALUES (2)")
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.commit().await.expect("commit");
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second writer did not wait");
        // Without the queue the waiter would hold a second connection, asleep in SQLite's busy
        // handler.
        let in_use = pool.size() - u32::try_from(pool.num_idle()).expect("idle");
        assert_eq!(in_use, 1, "a waiting writer holds a connection");
        first.commit().await.expect("commit");
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second writer started when the first committed")
            .expect("second writer");

        let dropped = begin_write(&pool).await.expect("dropped");
        drop(dropped);
        let mut third = tokio::time::timeout(Duration::from_secs(5), begin_write(&pool))
            .await
            .expect("a dropped transaction gave its turn back")
            .expect("third");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *third)
            .await
            .expect("count");
        assert_eq!(rows, 2);
    }

    /// A single writing statement's turn waits behind a writing transaction of the process,
    /// holding no pooled connection, and comes when it commits.
    #[tokio::test]
    async fn single_writes_take_their_turn_too() {
        let pool = sqlite_pool("turn").await;
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .expect("table");
        let first = begin_write(&pool).await.expect("first");
        let single = tokio::spawn({
            let pool = pool.clone();
            async move {
                let _turn = write_turn(&pool).await;
                sqlx::query("INSERT INTO t VALUES (1)")
                    .execute(&pool)
                    .await
                    .expect("insert");
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!single.is_finished(), "the single write did not wait");
        let in_use = pool.size() - u32::try_from(pool.num_idle()).expect("idle");
        assert_eq!(in_use, 1, "a waiting write holds a connection");
        first.commit().await.expect("commit");
        tokio::time::timeout(Duration::from_secs(5), single)
            .await
            .expect("the single write went once the transaction committed")
            .expect("single write");
    }

    /// The synchronous reader sees what another connection committed the moment it commits
    /// (a session ended by the pool, by another instance, is gone for the next check), and
    /// cannot write.
    #[tokio::test]
    async fn the_sqlite_reader_sees_every_commit_and_never_writes() {
        let pool = sqlite_pool("reader").await;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .expect("wal");
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .expect("table");
        let path = sqlite_file("reader");
        let reader = SqliteReader::new(path.to_str().expect("a UTF-8 path"));
        let count = || {
            reader.read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0))
                    .map_err(super::sqlite_error)
            })
        };
        assert_eq!(count().expect("read"), 0);
        for expected in 1..=3 {
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&pool)
                .await
                .expect("insert");
            assert_eq!(
                count().expect("read"),
                expected,
                "a commit not seen at once"
            );
        }
        let mut tx = begin_write(&pool).await.expect("writer");
        sqlx::query("DELETE FROM t")
            .execute(&mut *tx)
            .await
            .expect("delete");
        assert_eq!(
            count().expect("read"),
            3,
            "a reader saw an uncommitted change"
        );
        tx.commit().await.expect("commit");
        assert_eq!(count().expect("read"), 0);
        let write = reader.read(|conn| {
            conn.execute("INSERT INTO t VALUES (2)", [])
                .map_err(super::sqlite_error)
        });
        assert!(write.is_err(), "the reader wrote");
        reader.close();
        assert!(count().is_err(), "a closed reader read");
    }

    /// Questions waiting together go as one call, each gets its own answer, and one asked
    /// while a call runs waits for the next call: an answer never predates its question.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_questions_get_their_own_answers_from_calls_made_after_them() {
        use std::sync::{Arc, Mutex};
        let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (recorded, opened) = (Arc::clone(&calls), Arc::clone(&gate));
        let batched = Arc::new(Batched::start(8, move |questions: Vec<u32>| {
            let (recorded, opened) = (Arc::clone(&recorded), Arc::clone(&opened));
            async move {
                recorded.lock().unwrap().push(questions.clone());
                opened.acquire().await.expect("gate").forget();
                match questions.first() {
                    Some(13) => Err(sqlx::Error::Protocol("thirteen".into())),
                    Some(99) => Ok(vec![]),
                    _ => Ok(questions.iter().map(|q| q * 10).collect()),
                }
            }
        }));
        let ask = |q: u32| {
            let batched = Arc::clone(&batched);
            tokio::spawn(async move { batched.ask(q).await })
        };
        let first = ask(1);
        while calls.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Asked while the first call runs: they wait, then go together, at most 8 at a time.
        // Each is queued before the next is asked: tasks spawned together on two workers may
        // reach the queue in any order.
        let mut waiting = Vec::new();
        for (queued, q) in (2..=11).enumerate() {
            waiting.push(ask(q));
            while batched.asks.len() <= queued {
                tokio::task::yield_now().await;
            }
        }
        while batched.asks.len() < 10 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
        assert_eq!(first.await.expect("task").expect("answer"), 10);
        for (q, task) in (2..=11).zip(waiting) {
            assert_eq!(task.await.expect("task").expect("answer"), q * 10);
        }
        assert_eq!(
            *calls.lock().unwrap(),
            vec![vec![1], (2..=9).collect::<Vec<_>>(), vec![10, 11]]
        );
        // A failed call, or one that answers the wrong number, fails each of its questions.
        gate.add_permits(2);
        let error = batched.ask(13).await.expect_err("a failed call");
        assert!(error.to_string().contains("thirteen"), "{error}");
        let error = batched.ask(99).await.expect_err("no answer");
        assert!(error.to_string().contains("0 answers to 1"), "{error}");
    }

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
