//! Scale-out, end to end: several real `stride serve` processes, each in its own working
//! directory and on its own port, sharing one fresh PostgreSQL database and no configured
//! `tokens.private_key`. What a client does through one instance holds on every other.
//!
//! The checks that need no control over the processes are functions over a [`Deployment`] (a
//! list of base URLs, an admin's credentials, the throttling limit), so that the same checks
//! run here on a local cluster and, as `cluster::acceptance`, against a real deployment:
//!
//! ```sh
//! STRIDE_ACCEPTANCE_URLS=http://a:8000,http://b:8000 \
//! STRIDE_ACCEPTANCE_ADMIN_EMAIL=admin@example.org STRIDE_ACCEPTANCE_ADMIN_PASSWORD=… \
//! STRIDE_ACCEPTANCE_LOGIN_FAILURES=10 \
//!   cargo test --test e2e cluster::acceptance -- --ignored --nocapture
//! ```
//!
//! These tests run when `STRIDE_TEST_POSTGRES_URL` is set; with `CI` set they fail without it.

use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{file_body, multipart_content_type, Backend, TestDb};
use crate::helpers::{start_with, stride, Server};
use crate::mail::{required, SmtpServer};

const TOO_MANY: &str = "too many requests, please try again later";
const ALREADY_EXISTS: &str = "sorry, that user already exists";
const PASSWORD: &str = "cluster-horse-1";

mod accounts;
mod checks;
mod http;

use accounts::*;
use checks::*;
use http::*;

/// The PostgreSQL server to test against; `None` (the test skips) without one, except in CI.
fn postgres() -> Option<Backend> {
    let backend = Backend::postgres();
    if backend.is_none() {
        assert!(
            !required(),
            "STRIDE_TEST_POSTGRES_URL is required in CI: the cluster tests need PostgreSQL"
        );
        eprintln!("STRIDE_TEST_POSTGRES_URL is not set: cluster test skipped");
    }
    backend
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Instances on one database; dropped in order: processes, their folders, the database.
struct Cluster {
    servers: Vec<Server>,
    dirs: Vec<tempfile::TempDir>,
    db: TestDb,
}

impl Cluster {
    /// `n` instances of `stride serve`, started at the same moment on a fresh (empty)
    /// database, each in its own empty working directory; `configure` adds to each one's
    /// environment.
    fn start(backend: &Backend, n: usize, configure: impl Fn(&mut Command) + Sync) -> Cluster {
        let db = block_on(TestDb::new(backend));
        let dirs: Vec<_> = (0..n)
            .map(|_| tempfile::tempdir().expect("a working directory"))
            .collect();
        let barrier = Barrier::new(n);
        let servers = std::thread::scope(|scope| {
            let handles: Vec<_> = dirs
                .iter()
                .map(|dir| {
                    let (barrier, url, configure) = (&barrier, &db.url, &configure);
                    scope.spawn(move || {
                        barrier.wait();
                        start_with(dir.path(), Some(url), configure)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an instance started"))
                .collect()
        });
        Cluster { servers, dirs, db }
    }

    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.base.clone()).collect()
    }

    /// `stride users set-admin NAME`, the CLI as an operator runs it, from instance 0's folder.
    fn set_admin(&self, name: &str) {
        let out = stride(self.dirs[0].path(), Some(&self.db.url))
            .args(["users", "set-admin", name])
            .output()
            .expect("stride runs");
        assert!(
            out.status.success(),
            "set-admin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The integer `n` a query returns, read straight from the database.
    fn count(&self, query: &str) -> i64 {
        block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.db.url)
                .await
                .expect("the test database");
            let row = sqlx::query(query)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            row.try_get::<i64, _>("n").expect("a column n")
        })
    }
}

fn throttle(limit: u32) -> impl Fn(&mut Command) + Sync {
    move |command: &mut Command| {
        command.env(
            "ROCKET_THROTTLE",
            format!("{{login_failures_per_account={limit}}}"),
        );
    }
}

/// The acceptance checks, on two local instances: tokens, logouts and password changes
/// cross, an admin's configuration applies everywhere, pictures are served by all, a
/// registration race has one winner, and throttling counts across instances.
#[test]
fn a_local_cluster_passes_the_acceptance_checks() {
    let Some(backend) = postgres() else { return };
    const LIMIT: u32 = 4;
    let cluster = Cluster::start(&backend, 2, throttle(LIMIT));
    let urls = cluster.urls();
    let admin = User::new("adm");
    admin.sign_up(&urls[1]);
    cluster.set_admin(&admin.name);
    Deployment {
        urls,
        admin: Some((admin.email.clone(), admin.password.clone())),
        login_failures: Some(LIMIT),
    }
    .check_all();
}

/// Two processes on one SQLite file: the session check reads the session row with SQLite's
/// own driver there (docs/architecture.md, "Database"), on every request as on PostgreSQL, so
/// a logout or a password change through one process is refused by the other at once.
#[test]
fn two_processes_on_one_sqlite_file_end_sessions_at_once() {
    let db = block_on(TestDb::new(&Backend::Sqlite));
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("a working directory"))
        .collect();
    // One after the other: SQLite has no lock for migrations racing on an empty file.
    let servers: Vec<Server> = dirs
        .iter()
        .map(|dir| start_with(dir.path(), Some(&db.url), |_| {}))
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    tokens_cross(&urls);
    logout_crosses(&urls);
    password_change_crosses(&urls);
}

/// The signing key is shared through the database: three instances started together on an
/// empty database all come up (their migrations race, under sqlx's advisory lock), exactly
/// one key is stored, and tokens cross between all of them.
#[test]
fn instances_starting_together_agree_on_one_key() {
    let Some(backend) = postgres() else { return };
    let cluster = Cluster::start(&backend, 3, |_| {});
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM instance_secrets WHERE name = 'biscuit_root_key'"),
        1,
        "one signing key, stored in the database"
    );
    let migrations =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"))
            .expect("migrations")
            .count();
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success"),
        i64::try_from(migrations).expect("a count"),
        "each migration applied once"
    );
    let urls = cluster.urls();
    // A user signed up on each instance; each token works on all three.
    for (i, base) in urls.iter().enumerate() {
        let user = User::new(&format!("k{i}"));
        let token = user.sign_up(base);
        for other in &urls {
            assert_works(other, &token, &user, &format!("a token minted by {base}"));
        }
    }
    tokens_cross(&urls);
}

/// The outbox on two instances whose couriers share one SMTP server: a burst of reset
/// requests spread over both, and every email goes out exactly once.
#[test]
fn each_email_goes_out_once_from_two_couriers() {
    let Some(backend) = postgres() else { return };
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let smtp_url = smtp.url();
    let cluster = Cluster::start(&backend, 2, |command| {
        command
            .env("ROCKET_EMAIL", format!("{{url=\"{smtp_url}\"}}"))
            .env("ROCKET_THROTTLE", "{enabled=false}");
    });
    let urls = cluster.urls();
    const USERS: usize = 6;
    const REQUESTS_EACH: usize = 3;
    let users: Vec<User> = (0..USERS).map(|_| User::new("mail")).collect();
    for (i, user) in users.iter().enumerate() {
        user.sign_up(&urls[i % urls.len()]);
    }
    // Every request at once, alternating between the instances.
    let barrier = Barrier::new(USERS * REQUESTS_EACH);
    std::thread::scope(|scope| {
        for (i, user) in users.iter().cycle().take(USERS * REQUESTS_EACH).enumerate() {
            let (barrier, base) = (&barrier, &urls[i % urls.len()]);
            scope.spawn(move || {
                barrier.wait();
                expect(
                    call(
                        base,
                        "POST",
                        "/api/auth/password/reset-request",
                        None,
                        Some(json!({"email": user.email})),
                    ),
                    200,
                    "password reset request processed",
                    base,
                );
            });
        }
    });
    let expected = USERS * REQUESTS_EACH;
    // Wait (generously) until the outbox holds every message and all of them are sent.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let queued = cluster.count("SELECT COUNT(*) AS n FROM outbox");
        let sent = cluster.count("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL");
        if queued == expected as i64 && sent == queued && smtp.received().len() >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {queued} queued emails sent ({expected} expected), {} received",
            smtp.received().len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both couriers keep polling (every second): give a duplicate time to show.
    std::thread::sleep(Duration::from_secs(3));
    let received = smtp.received();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for message in &received {
        *per_recipient.entry(message.to.clone()).or_default() += 1;
    }
    let wanted: BTreeMap<String, usize> = users
        .iter()
        .map(|u| (u.email.clone(), REQUESTS_EACH))
        .collect();
    assert_eq!(per_recipient, wanted, "messages per recipient");
    let ids: HashSet<_> = received
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(ids.len(), expected, "one Message-ID per message");
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM outbox WHERE attempts <> 1"),
        0,
        "each message sent at the first attempt"
    );
}

/// The acceptance of a real deployment: the checks above against the instances named by
/// `STRIDE_ACCEPTANCE_URLS` (see the module's documentation and docs/deploy.md).
#[test]
#[ignore = "runs against a deployment: set STRIDE_ACCEPTANCE_URLS and pass --ignored"]
fn acceptance() {
    let deployment =
        Deployment::from_vars(|name| std::env::var(name).ok()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("acceptance of {:?}", deployment.urls);
    deployment.check_all();
}

#[test]
fn acceptance_settings_come_from_the_environment() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        Deployment::from_vars(vars(&[
            ("STRIDE_ACCEPTANCE_URLS", " http://a:8000/, https://b.lan ,"),
            ("STRIDE_ACCEPTANCE_ADMIN_EMAIL", "root@example.org"),
            ("STRIDE_ACCEPTANCE_ADMIN_PASSWORD", "secret secret"),
            ("STRIDE_ACCEPTANCE_LOGIN_FAILURES", "10"),
        ])),
        Ok(Deployment {
            urls: vec!["http://a:8000".into(), "https://b.lan".into()],
            admin: Some(("root@example.org".into(), "secret secret".into())),
            login_failures: Some(10),
        })
    );
    assert_eq!(
        Deployment::from_vars(vars(&[(
            "STRIDE_ACCEPTANCE_URLS",
            "http://a:8000,http://b:8000"
        )])),
        Ok(Deployment {
            urls: vec!["http://a:8000".into(), "http://b:8000".into()],
            admin: None,
            login_failures: None,
        })
    );
    for (pairs, error) in [
        (&[][..], "is not set"),
        (
            &[("STRIDE_ACCEPTANCE_URLS", "http://a:8000")][..],
            "at least two",
        ),
        (
            &[("STRIDE_ACCEPTANCE_URLS", "http://a,b:8000")][..],
            "b:8000 is not an http(s) URL",
        ),
        (
            &[
                ("STRIDE_ACCEPTANCE_URLS", "http://a,http://b"),
                ("STRIDE_ACCEPTANCE_ADMIN_EMAIL", "root@example.org"),
            ][..],
            "go together",
        ),
        (
            &[
                ("STRIDE_ACCEPTANCE_URLS", "http://a,http://b"),
                ("STRIDE_ACCEPTANCE_LOGIN_FAILURES", "0"),
            ][..],
            "is not a limit",
        ),
    ] {
        let found = Deployment::from_vars(vars(pairs));
        assert!(
            found.as_ref().is_err_and(|e| e.contains(error)),
            "{pairs:?}: {found:?}"
        );
    }
}
