//! Registration: `POST /api/auth/register`.
//!
//! When the module is switched off it still answers that route, with FitTrackee's 403
//! "error, registration is disabled", so clients see why rather than a 404.

use kernel::config::{ConfigError, Section};
use kernel::cookies::Browser;
use kernel::language::LanguageTag;
use kernel::lifecycle::PasswordUse;
use kernel::throttle::{self, Counter};
use kernel::users::{self, AccountState, InsertError};
use kernel::validate::{self, account_words, Email, Password, Username};
use kernel::{auth, settings, ApiError, ApiResult, Caller, Describe, Payload, Services};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{post, routes, State};
use serde::Deserialize;

pub const DISABLED: &str = "error, registration is disabled";
pub const ALREADY_EXISTS: &str = "sorry, that user already exists";
/// With email confirmation on (FitTrackee 0.6+): only a taken username is told.
pub const USERNAME_TAKEN: &str = "sorry, that username is already taken";

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: RegistrationConfig| {
            if let Some(sign_ups) = rocket.state::<settings::SignUps>() {
                sign_ups.offer();
            }
            rocket
                .manage(config)
                .mount("/api/auth", routes![register])
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| {
            rocket
                .mount("/api/auth", routes![registration_off])
                .describe(include_str!("../openapi-disabled.json"))
        },
    )
}

/// The section `registration.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Accounts made from one client per `throttle.window`, before a 429.
    pub per_client: i64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig { per_client: 10 }
    }
}

impl Section for RegistrationConfig {
    const NAME: &'static str = "registration";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.per_client < 1 {
            return Err(ConfigError::invalid(
                "registration.per_client",
                format!("must be at least 1 (got {})", self.per_client),
            ));
        }
        Ok(())
    }
}

/// The counter of accounts made from one client (the kind name is stored, as a digest, in
/// counters already running: keep it).
fn made_by(kernel: &Services<'_>, config: &RegistrationConfig, caller: &Caller) -> Counter {
    let client = throttle::client_text(caller.client);
    Counter::new(
        &kernel.config.throttle,
        "register:client",
        &client,
        config.per_client,
    )
}

#[derive(Deserialize)]
struct Registration {
    username: String,
    email: String,
    password: String,
    /// Required unless new accounts are confirmed by email or FitTrackee 1.x's shapes are on
    /// (`cookies.enabled`: its client does not send it); checked whenever it is sent.
    password_conf: Option<String>,
    /// FitTrackee 1.x's client sends the browser's language and time zone: kept as the
    /// preferences keep them.
    language: Option<String>,
    timezone: Option<String>,
}

#[post("/register", data = "<body>")]
async fn register(
    kernel: Services<'_>,
    config: &State<RegistrationConfig>,
    caller: Caller,
    browser: Browser<'_>,
    body: Result<Payload<Registration>, ApiError>,
) -> ApiResult<(Status, Value)> {
    let counters = [made_by(&kernel, config, &caller)];
    let throttling = &kernel.config.throttle;
    {
        let mut conn = kernel.db.acquire().await?;
        // Closed registration is the first answer, whatever the payload.
        if !settings::load(&mut conn).await?.is_registration_enabled() {
            return Err(ApiError::forbidden(DISABLED));
        }
        // An admin may leave single sign-on the only way in (lifecycle.rs, `PasswordGate`).
        if let Some(refusal) = kernel
            .lifecycle
            .password_refusal(&mut conn, PasswordUse::Registration)
            .await
            .map_err(|e| ApiError::internal("password gate", e))?
        {
            return Err(ApiError::forbidden(refusal));
        }
        // Accounts made per client are counted before anything else, so that no burst passes
        // the limit; an attempt that makes no account (typos in a form) gives its count back.
        throttle::take(&mut conn, throttling, &counters)
            .await?
            .or_too_many()?;
    }
    let outcome = create(kernel, &caller, &browser, body).await;
    if outcome.is_err() {
        let mut conn = kernel.db.acquire().await?;
        throttle::refund(&mut conn, throttling, &counters).await?;
    }
    outcome
}

async fn create(
    kernel: Services<'_>,
    caller: &Caller,
    browser: &Browser<'_>,
    body: Result<Payload<Registration>, ApiError>,
) -> ApiResult<(Status, Value)> {
    let Services {
        db,
        config,
        keys,
        passwords,
        mailer,
        lifecycle,
        ..
    } = kernel;
    let form = body?.0;
    // With email confirmation (lifecycle.rs), FitTrackee 0.6+'s answers: 200 and no session,
    // the same whether the address is new or taken.
    let confirmation = lifecycle.confirmation();
    let optional = confirmation.is_some() || config.cookies.enabled;
    let Some(confirm) = form
        .password_conf
        .as_deref()
        .or(optional.then_some(form.password.as_str()))
    else {
        return Err(ApiError::invalid_payload());
    };
    let username = Username::parse(&form.username);
    let email = Email::parse(&form.email);
    let mut password = Password::parse(&form.password, confirm, config.passwords.min_length);
    if let Ok(candidate) = &password {
        // zxcvbn runs on the password workers; no pooled connection is held meanwhile.
        let words = account_words(&form.username, &form.email);
        let min = config.passwords.min_strength;
        if let Some(problem) = passwords.screen(candidate, &words, min).await? {
            password = Err(vec![problem]);
        }
    }
    let language = form.language.as_deref().map(LanguageTag::parse).transpose();
    let timezone = form.timezone.as_deref().map(validate::timezone).transpose();
    let (username, email, password, language) =
        match (username, email, password, language, timezone) {
            (Ok(u), Ok(e), Ok(p), Ok(l), Ok(_)) => (u, e, p, l),
            (u, e, p, l, t) => {
                let mut lines = String::new();
                lines.extend(u.err().into_iter().flatten());
                lines.extend(e.err());
                lines.extend(p.err().into_iter().flatten().map(|p| p.line()));
                lines.extend(t.err());
                lines.extend(l.err());
                return Err(ApiError::bad_request(lines));
            }
        };
    {
        let mut conn = db.acquire().await?;
        match confirmation {
            None if users::exists(&mut conn, &username, &email).await? => {
                return Err(ApiError::bad_request(ALREADY_EXISTS));
            }
            // A taken username is public (a user's page shows it); a taken address is not told:
            // it costs the same hashing as a new one below and answers the same.
            Some(_) if users::username_taken(&mut conn, &username).await? => {
                return Err(ApiError::bad_request(USERNAME_TAKEN));
            }
            _ => {}
        }
    }
    // No pooled connection is held while argon2 runs.
    let hash = passwords.hash(password.into_inner()).await?;

    let mut tx = kernel::db::begin_write(db).await?;
    // Checked again under the settings row's lock: registrations racing for the last place
    // below `max_users` queue here, and only as many as there are places get through.
    if !settings::load_locked(&mut tx)
        .await?
        .is_registration_enabled()
    {
        return Err(ApiError::forbidden(DISABLED));
    }
    let state = match confirmation {
        Some(_) => AccountState::Pending,
        None => AccountState::Active,
    };
    let user_id = match users::insert(&mut tx, &username, &email, &hash, state).await {
        Ok(id) => id,
        Err(InsertError::Duplicate) => {
            drop(tx);
            return match confirmation {
                // A racing registration of the same name or address won.
                None => Err(ApiError::bad_request(ALREADY_EXISTS)),
                Some(_) => {
                    let mut conn = db.acquire().await?;
                    if users::username_taken(&mut conn, &username).await? {
                        Err(ApiError::bad_request(USERNAME_TAKEN))
                    } else {
                        // The address is another account's: nothing made, nothing sent.
                        Ok(confirmation_pending())
                    }
                }
            };
        }
        Err(InsertError::Database(e)) => return Err(e.into()),
    };
    if language.is_some() || form.timezone.is_some() {
        let language = language.as_ref().map(|l| l.as_str());
        users::set_locale(&mut tx, user_id, language, form.timezone.as_deref()).await?;
    }
    if let Some(confirmation) = confirmation {
        let user = users::by_id(&mut tx, user_id)
            .await?
            .ok_or_else(|| ApiError::internal("registration", "the new account is gone"))?;
        confirmation
            .send(&mut tx, mailer, &user)
            .await
            .map_err(|e| ApiError::internal("account confirmation email", e))?;
        tx.commit().await?;
        mailer.wake();
        tracing::info!(user_id, "user registered, confirmation pending");
        return Ok(confirmation_pending());
    }
    let session = auth::open(&mut tx, keys, config, user_id, &caller.agent).await?;
    // The client that made the account is one of its own (docs: SECURITY.md, lockout).
    throttle::know_client(&mut tx, &config.throttle, &email.key(), caller.client).await?;
    tx.commit().await?;
    tracing::info!(user_id, "user registered");
    // A browser gets the session in its cookies too; the body is 0.5's either way.
    browser.open(&session);
    Ok((
        Status::Created,
        json!({ "status": "success", "message": "successfully registered", "auth_token": session.token }),
    ))
}

/// The answer to a registration awaiting its emailed confirmation (FitTrackee 0.6+'s).
fn confirmation_pending() -> (Status, Value) {
    (Status::Ok, json!({ "status": "success" }))
}

#[post("/register")]
fn registration_off() -> ApiError {
    ApiError::forbidden(DISABLED)
}
