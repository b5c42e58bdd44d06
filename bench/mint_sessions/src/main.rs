//! Benchmark support (bench/run): opens sessions for existing users and prints one token per
//! line, so a load script can spend a fresh token on every logout, or spread profile requests
//! over many users, without paying argon2 for each login.
//!
//! ```sh
//! cargo run --release -p stride-mint-sessions -- COUNT [USERS [plain|narrowed|costly|cookie]] > tokens.txt
//! cargo run --release -p stride-mint-sessions -- totp FIRST COUNT > secrets.txt
//! ```
//!
//! `narrowed` appends a read-only narrowing to each token (`check if operation("read"); check
//! if route("/api/auth/profile");`), as a client would; `costly` appends the block that made
//! judging a token unbounded (facts joined four ways), which Stride refuses unrun; `cookie`
//! prints the session's browser cookie token (the `access_token_cookie` a login sets, valid
//! `cookies.ttl`) instead of its Bearer token.
//!
//! `totp FIRST COUNT` gives the COUNT users after the first FIRST (by id) an active TOTP
//! factor, as an enrolment confirmed would leave it (the secret sealed for the user,
//! modules/two_factor/src/secrets.rs), and prints `email hex-secret` for each, for the load
//! script to compute the codes of the login scenario with a second factor.
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
    if args.first().map(String::as_str) == Some("totp") {
        return totp(&args[1..]).await;
    }
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
            let opened = auth::open(&mut tx, keys, config, user, &agent)
                .await
                .map_err(|e| format!("{e:?}"))?;
            tokens.push(match shape {
                // As the kernel's cookie refresh mints it: never past the session's end.
                Shape::Cookie => {
                    let ttl = i64::try_from(config.cookies.ttl).unwrap_or(i64::MAX);
                    let until = kernel::db::now().saturating_add(ttl).min(opened.expires_at);
                    keys.mint_cookie(user, &opened.session_id, until)
                        .map_err(|e| e.to_string())?
                }
                _ => opened.token,
            });
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
    Cookie,
}

impl Shape {
    fn from(arg: Option<&str>) -> Result<Shape, String> {
        match arg {
            None | Some("plain") => Ok(Shape::Plain),
            Some("narrowed") => Ok(Shape::Narrowed),
            Some("costly") => Ok(Shape::Costly),
            Some("cookie") => Ok(Shape::Cookie),
            Some(other) => Err(format!(
                "unknown shape {other}: plain, narrowed, costly or cookie"
            )),
        }
    }

    fn apply(&self, token: &str, keys: &TokenKeys) -> Result<String, String> {
        let code = match self {
            Shape::Plain | Shape::Cookie => return Ok(token.to_owned()),
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

/// HKDF's `info` of the key that seals TOTP secrets: `SEAL_KEY_INFO` in
/// modules/two_factor/src/secrets.rs (the module keeps its cryptography private). Were the two
/// to differ, every login of the TOTP scenario would fail, and bench/run stops on its first.
const TOTP_SEAL_KEY_INFO: &[u8] = b"stride/two-factor/totp-secret/v1";

/// `totp FIRST COUNT`: an active TOTP factor for each of the COUNT users after the first FIRST.
async fn totp(args: &[String]) -> Result<(), String> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    use ring::rand::{SecureRandom, SystemRandom};

    let number = |i: usize| -> Result<i64, String> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| "usage: mint_sessions totp FIRST COUNT".to_owned())
    };
    let (first, count) = (number(0)?, number(1)?);
    let figment = stride::figment().merge(("log_level", "off"));
    let rocket = stride::build(figment)
        .ignite()
        .await
        .map_err(|e| e.to_string())?;
    let db = Db::fetch(&rocket).ok_or("the database did not start")?;
    let keys = rocket.state::<TokenKeys>().ok_or("no token keys")?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &keys.derive_key(TOTP_SEAL_KEY_INFO))
            .map_err(|_| "an AES-256 key")?,
    );
    let random = SystemRandom::new();

    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let users: Vec<(i64, String)> =
        sqlx::query("SELECT id, email FROM users ORDER BY id LIMIT $1 OFFSET $2")
            .bind(count)
            .bind(first)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("email")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| e.to_string())?;
    drop(conn);
    if users.len() != usize::try_from(count).unwrap_or(0) {
        return Err(format!(
            "{} users after the first {first}, not {count}",
            users.len()
        ));
    }
    let now = kernel::db::now();
    let mut lines = Vec::with_capacity(users.len());
    for batch in users.chunks(1000) {
        let mut tx = kernel::db::begin_write(db)
            .await
            .map_err(|e| e.to_string())?;
        for (id, email) in batch {
            let mut secret = [0u8; 20];
            let mut nonce = [0u8; NONCE_LEN];
            random
                .fill(&mut secret)
                .and_then(|()| random.fill(&mut nonce))
                .map_err(|_| "no OS randomness")?;
            // nonce || ciphertext || tag, the user's id as associated data.
            let mut sealed = secret.to_vec();
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.to_be_bytes()),
                &mut sealed,
            )
            .map_err(|_| "AES-GCM failed")?;
            sealed.splice(0..0, nonce);
            sqlx::query(
                "INSERT INTO two_factor_totp (user_id, sealed_secret, created_at, confirmed_at) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO UPDATE SET \
                 sealed_secret = $2, confirmed_at = $3, last_step = NULL",
            )
            .bind(id)
            .bind(sealed)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
            lines.push(format!("{email} {}", hex::encode(secret)));
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(())
}
