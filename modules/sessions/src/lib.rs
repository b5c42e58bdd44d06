//! Sessions: `POST /api/auth/login`, `GET`/`POST /api/auth/logout`.

mod manage;

use std::net::IpAddr;

use kernel::metrics::Login as LoginOutcome;
use kernel::sessions::{UserAgent, INVALID_CREDENTIALS};
use kernel::throttle::Counter;
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
    let outcome = authenticate(db, config, keys, passwords, client, agent, body.0).await;
    match &outcome {
        Ok(_) => metrics.login(LoginOutcome::Ok),
        Err(e) if e.status.code == 429 => metrics.login(LoginOutcome::Throttled),
        Err(e) if e.message == INVALID_CREDENTIALS => metrics.login(LoginOutcome::Failed),
        // A server fault is neither: the 5xx counts in the request metrics.
        Err(_) => {}
    }
    outcome
}

async fn authenticate(
    db: &Db,
    config: &Config,
    keys: &TokenKeys,
    passwords: &Passwords,
    client: Option<IpAddr>,
    agent: UserAgent,
    Login { email, password }: Login,
) -> ApiResult<Value> {
    let account = email_key(&email);
    let counters = [
        Counter::LoginFailuresOfAccount(&account),
        Counter::LoginFailuresOfClient(client),
    ];
    let user_id = passwords
        .check_credentials(db, &config.throttle, &account, password, &counters)
        .await?;
    let mut conn = db.acquire().await?;
    let token = sessions::open(&mut conn, keys, config, user_id, &agent).await?;
    Ok(json!({ "status": "success", "message": "successfully logged in", "auth_token": token }))
}

async fn logout(auth: AuthUser, db: &Db) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    sessions::close(&mut conn, &auth.session_id).await?;
    Ok(json!({ "status": "success", "message": "successfully logged out" }))
}

#[get("/logout")]
async fn logout_get(auth: AuthUser, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}

#[post("/logout")]
async fn logout_post(auth: AuthUser, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}
