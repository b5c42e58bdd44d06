//! What the test targets share (tests/api: in-process; tests/e2e: binaries, SMTP, Chromium,
//! clusters). Each target uses a part of it.
#![allow(dead_code)]

// A fresh Stride per test, on a fresh database: a temporary SQLite file, or a new PostgreSQL
// database on the server named by `STRIDE_TEST_POSTGRES_URL` (dropped at the end).

use std::time::Duration;

use rocket::figment::Figment;
use sqlx::{Connection, Executor};

pub const PASSWORD: &str = "correct-horse";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL server to test against, when there is one.
    pub fn postgres() -> Option<Backend> {
        std::env::var("STRIDE_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(Backend::Postgres)
    }
}

/// Runs each test once on SQLite and once on PostgreSQL (when `STRIDE_TEST_POSTGRES_URL` is
/// set; CI sets it). The body gets the backend as `$backend`.
macro_rules! each_backend {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = $crate::helpers::Backend::Sqlite;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($backend) = $crate::helpers::Backend::postgres() else {
                    eprintln!("STRIDE_TEST_POSTGRES_URL is not set: PostgreSQL run skipped");
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use each_backend;

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_on: Option<(String, String)>,
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("OS randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `postgres://u@h:p/db?x` with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("stride.db").display()
                );
                TestDb {
                    url,
                    _dir: Some(dir),
                    drop_on: None,
                }
            }
            Backend::Postgres(admin) => {
                let name = format!("stride_test_{}", random_suffix());
                let mut conn = sqlx::PgConnection::connect(admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot reach STRIDE_TEST_POSTGRES_URL ({admin}): {e}")
                    });
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                TestDb {
                    url: with_database(admin, &name),
                    _dir: None,
                    drop_on: Some((admin.clone(), name)),
                }
            }
        }
    }
}

impl TestDb {
    /// The same database, for a second server on it; the original keeps ownership.
    pub fn shared(other: &TestDb) -> TestDb {
        TestDb {
            url: other.url.clone(),
            _dir: None,
            drop_on: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_on.take() else {
            return;
        };
        // Drop runs outside any async context we may block: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// The figment a test server starts from: the project's own (Rocket.toml, env) on a test
/// database, quiet.
pub fn figment(db: &TestDb) -> Figment {
    stride::figment()
        .merge(("databases.main.url", db.url.as_str()))
        .merge(("databases.main.connect_timeout", 10))
        .merge(("log_level", "off"))
}

/// FitTrackee 0.5's 20 keys of the user object, sorted.
pub const USER_KEYS_05: [&str; 20] = [
    "admin",
    "bio",
    "birth_date",
    "created_at",
    "email",
    "first_name",
    "imperial_units",
    "language",
    "last_name",
    "location",
    "nb_sports",
    "nb_workouts",
    "picture",
    "records",
    "sports_list",
    "timezone",
    "total_distance",
    "total_duration",
    "username",
    "weekm",
];

/// A JSON object's keys, sorted.
pub fn sorted_keys(object: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

pub async fn sleep(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

/// A free TCP port on the loopback interface, never the same twice in one test process.
///
/// The port is released before the server that will use it binds it, so the OS may hand it
/// out again meanwhile: two tests running side by side then got one port, the second server
/// failed to bind, and its test talked to the first one's (an SMTP server that delivered one
/// test's reset email to the other's mailbox: a token of another server, refused). Remembering
/// the ports given out rules that out between the tests of a process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

mod app;
mod binary;
mod images;
mod mail_dir;
mod multipart;

pub use app::*;
#[allow(unused_imports)] // the end-to-end target's
pub use binary::*;
pub use images::*;
#[allow(unused_imports)] // the in-process target's
pub use mail_dir::*;
pub use multipart::*;
