//! Sessions: `POST /api/auth/login`, `GET`/`POST /api/auth/logout`.

mod manage;

use std::fmt::{self, Write as _};

use kernel::auth::End;
use kernel::config::Section;
use kernel::cookies::Browser;
use kernel::lifecycle::PasswordUse;
use kernel::passwords::Credentials;
use kernel::second_factor::{Attempt, Passage, Presented};
use kernel::validate::email_key;
use kernel::{
    auth, ApiError, ApiResult, AuthUser, Caller, Db, Describe, Metrics, Payload, Services,
};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rocket::fairing::AdHoc;
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, State};
use serde::Deserialize;

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, _: SessionsConfig| {
            let logins = Logins::default();
            if let Some(metrics) = rocket.state::<Metrics>() {
                metrics.register("logins", "Login attempts, by outcome", logins.0.clone());
            }
            rocket
                .manage(logins)
                .mount("/api/auth", routes![login, logout_get, logout_post])
                .mount("/api/auth", manage::routes())
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `sessions.*`: no keys yet (a session's lifetime is the kernel's
/// `tokens.session_ttl`, as the guard that checks it is the kernel's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {}

impl Section for SessionsConfig {
    const NAME: &'static str = "sessions";
}

/// How a login ended: the `outcome` label of `stride_logins_total`, which says nothing of
/// whether the address has an account (an unknown one fails like a wrong password).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    /// Refused with a 429 before any password was checked.
    Throttled,
    /// The password matched, the second factor was missing, wrong or throttled.
    SecondFactor,
}

/// Label values in lower case, as Prometheus names go.
impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Throttled => "throttled",
            Outcome::SecondFactor => "second_factor",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

/// This module's series: logins by outcome.
#[derive(Default)]
struct Logins(Family<OutcomeLabels, Counter>);

impl Logins {
    fn count(&self, outcome: Outcome) {
        self.0.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
    /// A second factor, for an account that has one (docs/two-factor.md); FitTrackee's
    /// clients send neither.
    totp_code: Option<String>,
    recovery_code: Option<String>,
}

/// Unknown address and wrong password answer alike, in the same time: both verify an argon2
/// hash (a dummy one for an unknown address). Failures are counted per address and per client;
/// past the limit the answer is a 429, whatever the password. Each outcome is counted in the
/// metrics.
#[post("/login", data = "<body>")]
async fn login(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    logins: &State<Logins>,
    body: Payload<Login>,
) -> ApiResult<Value> {
    let Services {
        db,
        config,
        keys,
        passwords,
        lifecycle,
        ..
    } = kernel;
    let Login {
        email,
        password,
        totp_code,
        recovery_code,
    } = body.0;
    // An admin may leave single sign-on the only way in (lifecycle.rs, `PasswordGate`).
    {
        let mut conn = db.acquire().await?;
        if let Some(refusal) = lifecycle
            .password_refusal(&mut conn, PasswordUse::Login)
            .await
            .map_err(|e| ApiError::internal("password gate", e))?
        {
            return Err(ApiError::forbidden(refusal));
        }
    }
    let account = email_key(&email);
    let outcome = passwords
        .check_credentials(db, &config.throttle, &account, caller.client, password)
        .await?;
    match outcome {
        Credentials::Verified(_) => {}
        Credentials::Invalid => logins.count(Outcome::Failed),
        Credentials::Throttled { .. } => logins.count(Outcome::Throttled),
    }
    let sign_in = outcome.verified()?;
    // The success, the second step and the new session in one transaction: one turn at
    // SQLite's write lock.
    let mut tx = kernel::db::begin_write(db).await?;
    sign_in.record(&mut tx, &config.throttle).await?;
    let mut extra = serde_json::Map::new();
    if let Some(factor) = kernel.lifecycle.second_factor() {
        let attempt = Attempt {
            user_id: sign_in.user_id,
            account: &account,
            client: caller.client,
        };
        let presented = Presented {
            totp_code,
            recovery_code,
        };
        match factor.pass(&mut tx, kernel, attempt, &presented).await? {
            Passage::Open => {}
            Passage::OpenWith(keys) => extra = keys,
            Passage::Refused(error) => {
                // The password was right (recorded) and the step's counts stay counted.
                tx.commit().await?;
                logins.count(Outcome::SecondFactor);
                return Err(error);
            }
        }
    }
    let session = auth::open(&mut tx, keys, config, sign_in.user_id, &caller.agent).await?;
    tx.commit().await?;
    logins.count(Outcome::Ok);
    // A browser gets the session in its cookies too (docs/browser-sessions.md); the body is
    // 0.5's either way.
    browser.open(&session);
    let mut answer = json!({
        "status": "success",
        "message": "successfully logged in",
        "auth_token": session.token,
    });
    if let Some(answer) = answer.as_object_mut() {
        for (key, value) in extra {
            answer.entry(key).or_insert(value);
        }
    }
    Ok(answer)
}

/// Ends the session making the request; a browser's cookies are cleared by the kernel, which
/// finds the session gone. On SQLite the delete waits for this process's turn at the write lock.
async fn logout(auth: AuthUser<End>, db: &Db) -> ApiResult<Value> {
    let _turn = kernel::db::write_turn(db).await;
    let mut conn = db.acquire().await?;
    auth::close(&mut conn, &auth.session_id).await?;
    Ok(json!({ "status": "success", "message": "successfully logged out" }))
}

#[get("/logout")]
async fn logout_get(auth: AuthUser<End>, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}

#[post("/logout")]
async fn logout_post(auth: AuthUser<End>, db: &State<Db>) -> ApiResult<Value> {
    logout(auth, db).await
}
