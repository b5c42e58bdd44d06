//! Sessions: `POST /api/auth/login`, `GET`/`POST /api/auth/logout`.

mod manage;

use std::net::IpAddr;

use kernel::metrics::Login as LoginOutcome;
use kernel::passwords::Credentials;
use kernel::sessions::{Manage, UserAgent};
use kernel::validate::email_key;
use kernel::{
    sessions, ApiResult, AuthUser, Config, Db, Describe, Metrics, Passwords, Payload, TokenKeys,
};
use rocket::fairing::AdHoc;
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, State};
use serde::Deserialize;

pub fn stage() -> AdHoc {
    kernel::module(
        "sessions",
        |rocket| {
            rocket
                .mount("/api/auth", routes![login, logout_get, logout_post])
                .mount("/api/auth", manage::routes())
                .describe(include_str!("../openapi.json"))
        },
        |rocket| rocket,
    )
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

/// Unknown address and wrong password answer alike, in the same time: both verify an argon2
/// hash (a dummy one for an unknown address). Failures are counted per address and per client;
/// past the limit the answer is a 429, whatever the password. Each outcome is counted in the
/// metrics.
#[post("/login", data = "<body>")]
#[allow(clippy::too_many_arguments)] // a handler's request guards are its arguments
async fn login(
    db: &State<Db>,
    config: &State<Config>,
    keys: &State<TokenKeys>,
    passwords: &State<Passwords>,
    metrics: &State<Metrics>,
    client: Option<IpAddr>,
    agent: UserAgent,
    body: Payload<Login>,
) -> ApiResult<Value> {
    let Login { email, password } = body.0;
    let account = email_key(&email);
    let outcome = passwords
        .check_credentials(db, &config.throttle, &account, client, password)
        .await?;
    metrics.login(match outcome {
        Credentials::Verified(_) => LoginOutcome::Ok,
        Credentials::Invalid => LoginOutcome::Failed,
        Credentials::Throttled { .. } => LoginOutcome::Throttled,
    });
    let sign_in = outcome.verified()?;
    // The success and the new session in one transaction: one turn at SQLite's write lock.
    let mut tx = kernel::db::begin_write(db).await?;
    sign_in.record(&mut tx, &config.throttle).await?;
    let token = sessions::open(&mut tx, keys, config, sign_in.user_id, &agent).await?;
    tx.commit().await?;
    Ok(json!({ "status": "success", "message": "successfully logged in", "auth_token": token }))
}

async fn logout(auth: AuthUser<Manage>, db: &Db) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    sessions::close(&mut conn, &auth.session_id).await?;
    Ok(json!({ "status": "success", "message": "successfully logged out" }))
}

#[get("/logout")]
async fn logout_get(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}

#[post("/logout")]
async fn logout_post(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}
