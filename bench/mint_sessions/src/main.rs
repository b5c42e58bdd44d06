//! Benchmark support (bench/run): opens sessions for existing users and prints one token per
//! line, so a load script can spend a fresh token on every logout, or spread profile requests
//! over many users, without paying argon2 for each login.
//!
//! ```sh
//! cargo run --release -p stride-mint-sessions -- COUNT [USERS [plain|narrowed|costly]] > tokens.txt
//! ```
//!
//! `narrowed` appends a read-only narrowing to each token (`check if operation("read"); check
//! if route("/api/auth/profile");`), as a client would; `costly` appends the block that made
//! judging a token unbounded (facts joined four ways), which Stride refuses unrun.
//!
//! COUNT sessions go to the first USERS users by id (all of them by default), spread evenly:
//! round-robin when COUNT is larger, every (USERS / COUNT)-th user when it is smaller. The
//! database and keys come from the same configuration as `stride serve` (Rocket.toml and
//! `ROCKET_*`), and the sessions are the real ones a login opens.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::Biscuit;
use kernel::auth::{self, UserAgent};
use kernel::{Config, Db, TokenKeys};
use rocket_db_pools::Database as _;
use sqlx::Row;

#[rocket::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mint_sessions: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.into_iter();
    let count: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: mint_sessions COUNT [USERS]")?;
    let users: i64 = args.next().map_or(Ok(i64::MAX), |a| {
        a.parse().map_err(|_| "USERS must be a number")
    })?;
    let shape = Shape::from(args.next().as_deref())?;

    let figment = stride::figment().merge(("log_level", "off"));
    let rocket = stride::build(figment)
        .ignite()
        .await
        .map_err(|e| e.to_string())?;
    let db = Db::fetch(&rocket).ok_or("the database did not start")?;
    let config = rocket.state::<Config>().ok_or("no configuration")?;
    let keys = rocket.state::<TokenKeys>().ok_or("no token keys")?;

    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let ids: Vec<i64> = sqlx::query("SELECT id FROM users ORDER BY id LIMIT $1")
        .bind(users)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    drop(conn);
    if ids.is_empty() {
        return Err("there are no users".into());
    }

    let step = (ids.len() / count.max(1)).max(1);
    let agent = UserAgent(Some("stride-bench".into()));
    let mut tokens = Vec::with_capacity(count);
    // A thousand sessions per transaction: one commit each would dominate on SQLite.
    for batch in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut tx = kernel::db::begin_write(db)
            .await
            .map_err(|e| e.to_string())?;
        for &i in batch {
            let user = ids[(i * step) % ids.len()];
            let token = auth::open(&mut tx, keys, config, user, &agent)
                .await
                .map_err(|e| format!("{e:?}"))?
                .token;
            tokens.push(token);
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for token in tokens {
        let token = shape.apply(&token, keys)?;
        writeln!(out, "{token}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(())
}

/// What is appended to each token.
enum Shape {
    Plain,
    Narrowed,
    Costly,
}

impl Shape {
    fn from(arg: Option<&str>) -> Result<Shape, String> {
        match arg {
            None | Some("plain") => Ok(Shape::Plain),
            Some("narrowed") => Ok(Shape::Narrowed),
            Some("costly") => Ok(Shape::Costly),
            Some(other) => Err(format!("unknown shape {other}: plain, narrowed or costly")),
        }
    }

    fn apply(&self, token: &str, keys: &TokenKeys) -> Result<String, String> {
        let code = match self {
            Shape::Plain => return Ok(token.to_owned()),
            Shape::Narrowed => {
                r#"check if operation("read"); check if route("/api/auth/profile");"#.to_owned()
            }
            Shape::Costly => {
                let facts: String = (0..60).map(|i| format!("n({i});")).collect();
                format!("{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;")
            }
        };
        let block = BlockBuilder::new().code(code).map_err(|e| e.to_string())?;
        Biscuit::from_base64(token, keys.public_key())
            .and_then(|t| t.append(block))
            .and_then(|t| t.to_base64())
            .map_err(|e| e.to_string())
    }
}
