//! Sessions: `POST /api/auth/login`, `GET`/`POST /api/auth/logout`.

use kernel::users;
use kernel::validate::email_key;
use kernel::{sessions, ApiError, ApiResult, AuthUser, Config, Db, Passwords, Payload, TokenKeys};
use rocket::fairing::AdHoc;
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, State};
use serde::Deserialize;

pub const INVALID_CREDENTIALS: &str = "invalid credentials";

pub fn stage() -> AdHoc {
    kernel::module(
        "sessions",
        |rocket| rocket.mount("/api/auth", routes![login, logout_get, logout_post]),
        |rocket| rocket,
    )
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

/// Unknown address and wrong password answer alike, in the same time: both verify an argon2
/// hash (a dummy one for an unknown address).
#[post("/login", data = "<body>")]
async fn login(
    db: &State<Db>,
    config: &State<Config>,
    keys: &State<TokenKeys>,
    passwords: &State<Passwords>,
    body: Payload<Login>,
) -> ApiResult<Value> {
    let Login { email, password } = body.0;
    if password.chars().count() > kernel::config::MAX_PASSWORD_LENGTH {
        // Never hash an oversized input; no account can have such a password anyway. The
        // answer does not depend on the account, so it tells nothing.
        return Err(ApiError::unauthorized(INVALID_CREDENTIALS));
    }
    let found = {
        let mut conn = db.acquire().await?;
        users::credentials(&mut conn, &email_key(&email)).await?
    };
    let (user_id, hash) = found.map_or((None, None), |(id, hash)| (Some(id), Some(hash)));
    if !passwords.verify(password, hash).await? {
        return Err(ApiError::unauthorized(INVALID_CREDENTIALS));
    }
    let Some(user_id) = user_id else {
        return Err(ApiError::unauthorized(INVALID_CREDENTIALS));
    };
    let mut conn = db.acquire().await?;
    let token = sessions::open(&mut conn, keys, config, user_id).await?;
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
