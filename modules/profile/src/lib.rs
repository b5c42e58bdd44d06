//! The user's own profile: `GET /api/auth/profile`, `POST /api/auth/profile/edit`,
//! `POST /api/auth/profile/edit/preferences`.

mod json;

use std::net::IpAddr;

use kernel::language::LanguageTag;
use kernel::sessions::Read;
use kernel::stats::Stats;
use kernel::validate::{self, Password};
use kernel::{
    sessions, users, ApiError, ApiResult, AuthUser, Config, Db, Describe, Mailer, Passwords,
    Payload,
};
use rocket::fairing::AdHoc;
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, State};
use serde_json::Map;

use crate::json::{field, nullable_string, parse_birth_date, profile_json};

pub fn stage() -> AdHoc {
    kernel::module(
        "profile",
        |rocket| {
            rocket
                .mount(
                    "/api/auth",
                    routes![profile, edit_profile, edit_preferences],
                )
                .describe(include_str!("../openapi.json"))
        },
        |rocket| rocket,
    )
}

async fn respond(db: &Db, stats: &Stats, user_id: i64, message: Option<&str>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let user = users::by_id(&mut conn, user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(sessions::PROVIDE_TOKEN))?;
    drop(conn);
    let summary = stats.summary(db, user_id).await?;
    let mut body = json!({ "status": "success", "data": profile_json(&user, &summary) });
    if let Some(message) = message {
        body["message"] = message.into();
    }
    Ok(body)
}

#[get("/profile")]
async fn profile(auth: AuthUser<Read>, stats: Stats, db: &State<Db>) -> ApiResult<Value> {
    let summary = stats.summary(db, auth.user.id).await?;
    Ok(json!({ "status": "success", "data": profile_json(&auth.user, &summary) }))
}

/// Longest values kept, as FitTrackee's columns.
const NAME_MAX: usize = 80;
const BIO_MAX: usize = 200;

/// The five profile keys are required (null allowed); `password` and `password_conf` are
/// optional. A password change ends the user's other sessions and keeps this one.
#[post("/profile/edit", data = "<body>")]
#[allow(clippy::too_many_arguments)] // a handler's request guards are its arguments
async fn edit_profile(
    auth: AuthUser,
    client: Option<IpAddr>,
    stats: Stats,
    db: &State<Db>,
    config: &State<Config>,
    passwords: &State<Passwords>,
    mailer: &State<Mailer>,
    body: Payload<Map<String, Value>>,
) -> ApiResult<Value> {
    let body = body.0;
    let first_name = nullable_string(&body, "first_name")?;
    let last_name = nullable_string(&body, "last_name")?;
    let location = nullable_string(&body, "location")?;
    let bio = nullable_string(&body, "bio")?;
    let birth_date = nullable_string(&body, "birth_date")?;
    let password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.is_empty() => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(ApiError::invalid_payload()),
    };
    let confirmation = match body.get("password_conf") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err(ApiError::invalid_payload()),
    };
    let current = match body.get("current_password") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => return Err(ApiError::invalid_payload()),
    };

    let mut lines = String::new();
    for (key, value, max) in [
        ("first_name", &first_name, NAME_MAX),
        ("last_name", &last_name, NAME_MAX),
        ("location", &location, NAME_MAX),
        ("bio", &bio, BIO_MAX),
    ] {
        if value.as_deref().is_some_and(|v| v.chars().count() > max) {
            lines.push_str(&format!("{key}: {max} characters maximum\n"));
        }
    }
    let birth_date = match birth_date
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(parse_birth_date)
    {
        None => None,
        Some(Some(date)) => Some(date),
        Some(None) => {
            lines.push_str("birth_date: valid date (YYYY-MM-DD) required\n");
            None
        }
    };
    let password =
        match password.map(|p| Password::parse(&p, &confirmation, config.passwords.min_length)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(errors)) => {
                lines.extend(errors);
                None
            }
        };
    if let Some(candidate) = &password {
        let mut words = validate::account_words(&auth.user.username, &auth.user.email);
        words.extend(first_name.iter().chain(&last_name).cloned());
        let min = config.passwords.min_strength;
        if let Some(line) = passwords.screen(candidate, &words, min).await? {
            lines.push_str(line);
        }
    }
    if !lines.is_empty() {
        return Err(ApiError::bad_request(lines));
    }
    if password.is_some() {
        confirm_current(db, config, passwords, &auth, client, current).await?;
    }

    // Hash before taking a connection: none is held across argon2.
    let hash = match password {
        Some(p) => Some(passwords.hash(p.into_inner()).await?),
        None => None,
    };
    let mut tx = kernel::db::begin_write(db).await?;
    sqlx::query(
        "UPDATE users SET first_name = $1, last_name = $2, location = $3, bio = $4, birth_date = $5 WHERE id = $6",
    )
    .bind(first_name)
    .bind(last_name)
    .bind(location)
    .bind(bio)
    .bind(birth_date)
    .bind(auth.user.id)
    .execute(&mut *tx)
    .await?;
    let changed = hash.is_some();
    if let Some(hash) = hash {
        users::set_password(&mut tx, auth.user.id, &hash).await?;
        let ended = sessions::close_all(&mut tx, auth.user.id, Some(&auth.session_id)).await?;
        mailer
            .password_changed(&mut tx, &auth.user)
            .await
            .map_err(|e| ApiError::internal("password changed email", e))?;
        tracing::info!(
            user_id = auth.user.id,
            ended,
            "password changed, other sessions ended"
        );
    }
    tx.commit().await?;
    if changed {
        // This instance's courier sends it now rather than at its next poll.
        mailer.wake();
    }
    respond(db, &stats, auth.user.id, Some("user profile updated")).await
}

/// ASVS 2.1.6: the current password, when sent or when `passwords.require_current` asks for it,
/// must match before the password changes. A wrong one counts as a failed login of the account,
/// so a stolen token cannot be used to guess the password. A narrowed token always needs it:
/// otherwise its holder could set a password and log in for a token as broad as the owner's.
async fn confirm_current(
    db: &Db,
    config: &Config,
    passwords: &Passwords,
    auth: &AuthUser,
    client: Option<IpAddr>,
    current: Option<String>,
) -> Result<(), ApiError> {
    let current = match current {
        Some(current) => current,
        None if config.passwords.require_current || auth.narrowed => {
            return Err(ApiError::bad_request(CURRENT_MISSING))
        }
        None => return Ok(()),
    };
    let account = validate::email_key(&auth.user.email);
    let sign_in = passwords
        .check_credentials(db, &config.throttle, &account, client, current)
        .await?
        .verified()?;
    let mut tx = kernel::db::begin_write(db).await?;
    sign_in.record(&mut tx, &config.throttle).await?;
    tx.commit().await?;
    Ok(())
}

const CURRENT_MISSING: &str = "current password is missing";

const TIMEZONE_MAX: usize = 50;

#[post("/profile/edit/preferences", data = "<body>")]
async fn edit_preferences(
    auth: AuthUser,
    stats: Stats,
    db: &State<Db>,
    body: Payload<Map<String, Value>>,
) -> ApiResult<Value> {
    let body = body.0;
    let timezone: String = field(&body, "timezone")?;
    let weekm: bool = field(&body, "weekm")?;
    let imperial_units: bool = field(&body, "imperial_units")?;
    let language = nullable_string(&body, "language")?;

    let mut lines = String::new();
    if timezone.trim().is_empty() || timezone.chars().count() > TIMEZONE_MAX {
        lines.push_str(&format!(
            "timezone: 1 to {TIMEZONE_MAX} characters required\n"
        ));
    }
    // Null, or a language tag (README.md, "Where Stride differs from FitTrackee").
    let language = match language.as_deref().map(LanguageTag::parse) {
        None => None,
        Some(Ok(tag)) => Some(tag.into_inner()),
        Some(Err(line)) => {
            lines.push_str(line);
            None
        }
    };
    if !lines.is_empty() {
        return Err(ApiError::bad_request(lines));
    }
    let mut conn = db.acquire().await?;
    sqlx::query("UPDATE users SET timezone = $1, weekm = $2, language = $3, imperial_units = $4 WHERE id = $5")
        .bind(timezone)
        .bind(weekm)
        .bind(language)
        .bind(imperial_units)
        .bind(auth.user.id)
        .execute(&mut *conn)
        .await?;
    drop(conn);
    respond(db, &stats, auth.user.id, Some("user preferences updated")).await
}
