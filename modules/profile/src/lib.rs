//! The user's own profile: `GET /api/auth/profile`, `POST /api/auth/profile/edit`,
//! `POST /api/auth/profile/edit/preferences`, and the time zones the preferences offer
//! (`GET /api/auth/timezones`).
//!
//! With `cookies.enabled` (docs/users-api.md, "FitTrackee 1.x's keys"), FitTrackee 1.x's web
//! client is served as it calls: `""` clears a profile key, the preferences take its 20 keys.

mod json;
mod timezones;

use kernel::auth::Read;
use kernel::config::Section;
use kernel::language::LanguageTag;
use kernel::users::{Preferences, ProfileFields};
use kernel::validate::{self, Password};
use kernel::Lifecycle;
use kernel::{
    auth, envelope, users, ApiError, ApiResult, AuthUser, Caller, Db, Describe, Payload, Services,
};
use rocket::fairing::AdHoc;
use rocket::response::content::RawJson;
use rocket::serde::json::Value;
use rocket::{get, post, routes, State};
use serde::Deserialize;
use serde_json::Map;

use crate::json::{field, nullable_string, parse_birth_date, Preferences1x};

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: ProfileConfig| {
            rocket
                .manage(config)
                .mount(
                    "/api/auth",
                    routes![
                        profile,
                        edit_profile,
                        edit_preferences,
                        timezones::timezones
                    ],
                )
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `profile_edit.*` (not `profile.*`: `ROCKET_PROFILE` is Rocket's profile
/// selector, so the environment could not set it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Changing the password through `profile/edit` requires `current_password`. Off by
    /// default: FitTrackee 0.5's clients do not send it. When sent, it is always checked.
    pub require_current_password: bool,
}

impl Section for ProfileConfig {
    const NAME: &'static str = "profile";
    const KEY: &'static str = "profile_edit";
}

async fn respond(
    db: &Db,
    lifecycle: &Lifecycle,
    user_id: i64,
    message: Option<&str>,
) -> ApiResult<RawJson<String>> {
    let mut conn = db.acquire().await?;
    let user = users::by_id(&mut conn, user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(auth::PROVIDE_TOKEN))?;
    envelope::success(&lifecycle.user_object(&user), message)
}

#[get("/profile")]
fn profile(auth: AuthUser<Read>, lifecycle: &State<Lifecycle>) -> ApiResult<RawJson<String>> {
    envelope::success(&lifecycle.user_object(&auth.user), None)
}

/// Longest values kept, as FitTrackee's columns.
const NAME_MAX: usize = 80;
const BIO_MAX: usize = 200;

/// The five profile keys are required (null allowed); `password` and `password_conf` are
/// optional. A password change ends the user's other sessions and keeps this one.
#[post("/profile/edit", data = "<body>")]
async fn edit_profile(
    auth: AuthUser,
    kernel: Services<'_>,
    caller: Caller,
    profile: &State<ProfileConfig>,
    body: Payload<Map<String, Value>>,
) -> ApiResult<RawJson<String>> {
    let Services {
        db,
        config,
        passwords,
        mailer,
        ..
    } = kernel;
    let body = body.0;
    // FitTrackee 1.x's client sends "" for an empty field: with its shapes on, "" clears the
    // key as null does (FitTrackee 0.5 keeps "" as sent, and so does Stride with them off).
    let empty_is_null = config.cookies.enabled;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        let value = nullable_string(&body, key)?;
        Ok(value.filter(|v| !(empty_is_null && v.is_empty())))
    };
    let first_name = text("first_name")?;
    let last_name = text("last_name")?;
    let location = text("location")?;
    let bio = text("bio")?;
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
            Some(Err(problems)) => {
                lines.extend(problems.iter().map(|p| p.line()));
                None
            }
        };
    if let Some(candidate) = &password {
        let mut words = validate::account_words(&auth.user.username, &auth.user.email);
        words.extend(first_name.iter().chain(&last_name).cloned());
        let min = config.passwords.min_strength;
        if let Some(problem) = passwords.screen(candidate, &words, min).await? {
            lines.push_str(&problem.line());
        }
    }
    if !lines.is_empty() {
        return Err(ApiError::bad_request(lines));
    }
    if password.is_some() {
        let required = profile.require_current_password || auth.narrowed;
        confirm_current(kernel, &auth, caller, current, required).await?;
    }

    // Hash before taking a connection: none is held across argon2.
    let hash = match password {
        Some(p) => Some(passwords.hash(p.into_inner()).await?),
        None => None,
    };
    let fields = ProfileFields {
        first_name,
        last_name,
        location,
        bio,
        birth_date,
    };
    let mut tx = kernel::db::begin_write(db).await?;
    users::update_profile(&mut tx, auth.user.id, &fields).await?;
    let changed = hash.is_some();
    if let Some(hash) = hash {
        users::set_password(&mut tx, auth.user.id, &hash).await?;
        let ended = auth::close_all(&mut tx, auth.user.id, Some(&auth.session_id)).await?;
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
    respond(
        db,
        kernel.lifecycle,
        auth.user.id,
        Some("user profile updated"),
    )
    .await
}

/// ASVS 2.1.6: the current password, when sent or when
/// `profile_edit.require_current_password` asks for it, must match before the password changes.
/// A wrong one counts as a failed login of the account, so a stolen token cannot be used to
/// guess the password. A narrowed token always needs it: otherwise its holder could set a
/// password and log in for a token as broad as the owner's.
async fn confirm_current(
    kernel: Services<'_>,
    auth: &AuthUser,
    caller: Caller,
    current: Option<String>,
    required: bool,
) -> Result<(), ApiError> {
    let Services {
        db,
        config,
        passwords,
        ..
    } = kernel;
    let current = match current {
        Some(current) => current,
        None if required => return Err(ApiError::bad_request(CURRENT_MISSING)),
        None => return Ok(()),
    };
    let account = validate::email_key(&auth.user.email);
    let sign_in = passwords
        .check_credentials(db, &config.throttle, &account, caller.client, current)
        .await?
        .verified()?;
    let mut tx = kernel::db::begin_write(db).await?;
    sign_in.record(&mut tx, &config.throttle).await?;
    tx.commit().await?;
    Ok(())
}

const CURRENT_MISSING: &str = "current password is missing";

/// FitTrackee 0.5's four keys are required. With `cookies.enabled`, FitTrackee 1.x's others
/// are read too ([`Preferences1x`]): `date_format` and `use_dark_mode` are kept, the rest
/// only checked; without, they are ignored as FitTrackee 0.5 ignores them.
#[post("/profile/edit/preferences", data = "<body>")]
async fn edit_preferences(
    auth: AuthUser,
    kernel: Services<'_>,
    body: Payload<Map<String, Value>>,
) -> ApiResult<RawJson<String>> {
    let Services { db, lifecycle, .. } = kernel;
    let body = body.0;
    let timezone: String = field(&body, "timezone")?;
    let weekm: bool = field(&body, "weekm")?;
    let imperial_units: bool = field(&body, "imperial_units")?;
    let language = nullable_string(&body, "language")?;
    let more = if kernel.config.cookies.enabled {
        Preferences1x::read(&body)?
    } else {
        Preferences1x::default()
    };

    let mut lines = String::new();
    if let Err(line) = validate::timezone(&timezone) {
        lines.push_str(&line);
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
    let preferences = Preferences {
        timezone,
        weekm,
        language,
        imperial_units,
        date_format: more.date_format,
        use_dark_mode: more.use_dark_mode,
    };
    let mut conn = db.acquire().await?;
    users::update_preferences(&mut conn, auth.user.id, &preferences).await?;
    drop(conn);
    respond(
        db,
        lifecycle,
        auth.user.id,
        Some("user preferences updated"),
    )
    .await
}
