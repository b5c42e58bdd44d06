//! The routes under `/api/auth/two-factor` (docs/two-factor.md, "API").

use std::sync::Arc;

use kernel::auth::{Manage, Read};
use kernel::cookies::Browser;
use kernel::users::{AccountState, User};
use kernel::validate::email_key;
use kernel::{auth, ApiError, ApiResult, AuthUser, Caller, Payload, Services};
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{delete, get, patch, post, routes, Route, State};
use serde::Deserialize;
use sqlx::AnyConnection;

use crate::notify::{self, Change};
use crate::passkeys::{self, Asserted, Registered};
use crate::{secrets, store, Checked, Code, Factors, INVALID_STEP};

pub const ALREADY_ENABLED: &str = "two-factor authentication is already enabled";
pub const NOT_ENABLED: &str = "two-factor authentication is not enabled";
pub const NO_ENROLMENT: &str = "no two-factor authentication enrolment in progress";

pub fn routes() -> Vec<Route> {
    routes![
        status,
        enrol,
        confirm,
        disable,
        totp_remove,
        recovery_codes,
        login,
        enrol_start,
        enrol_confirm,
        passkey_list,
        passkey_register,
        passkey_add,
        passkey_rename,
        passkey_remove,
        passkey_challenge
    ]
}

/// The current password, checked (and counted) as a login's: ASVS 2.1.6's rule for changes of
/// credentials, which a second factor is.
async fn confirm_password(
    kernel: Services<'_>,
    caller: &Caller,
    user: &User,
    password: String,
) -> Result<(), ApiError> {
    let account = email_key(&user.email);
    let sign_in = kernel
        .passwords
        .check_credentials(
            kernel.db,
            &kernel.config.throttle,
            &account,
            caller.client,
            password,
        )
        .await?
        .verified()?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    sign_in.record(&mut tx, &kernel.config.throttle).await?;
    tx.commit().await?;
    Ok(())
}

async fn new_recovery_codes(
    conn: &mut AnyConnection,
    factors: &Factors,
    user_id: i64,
) -> Result<Vec<String>, ApiError> {
    let codes = (0..factors.config.recovery_codes)
        .map(|_| secrets::recovery_code())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("recovery codes", e))?;
    let digests: Vec<String> = codes.iter().map(|c| secrets::recovery_digest(c)).collect();
    store::set_recovery_codes(conn, user_id, &digests).await?;
    Ok(codes)
}

/// The user's factors.
#[get("/")]
async fn status(
    auth: AuthUser<Read>,
    kernel: Services<'_>,
    factors: &State<Arc<Factors>>,
) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let totp = store::totp(&mut conn, auth.user.id).await?;
    let passkeys = store::passkey_count(&mut conn, auth.user.id).await?;
    let left = store::recovery_codes_left(&mut conn, auth.user.id).await?;
    Ok(json!({
        "status": "success",
        "data": {
            "totp": totp.as_ref().is_some_and(|t| t.confirmed),
            "enrolment_pending": totp.as_ref().is_some_and(|t| !t.confirmed),
            "passkeys": passkeys,
            "passkeys_available": factors.webauthn.is_some(),
            "recovery_codes_left": left,
        },
    }))
}

#[derive(Deserialize)]
struct Enrol {
    password: String,
}

/// Starts a TOTP enrolment: a new secret, its URI and QR code. Active only once a first code
/// proves it ([`confirm`]); starting again replaces a secret not yet confirmed.
#[post("/totp", data = "<body>")]
async fn enrol(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    factors: &State<Arc<Factors>>,
    body: Payload<Enrol>,
) -> ApiResult<Value> {
    let user = &auth.user;
    if held(kernel, user.id).await?.totp {
        return Err(ApiError::bad_request(ALREADY_ENABLED));
    }
    confirm_password(kernel, &caller, user, body.0.password).await?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let answer = begin(&mut tx, kernel, factors, user).await?;
    tx.commit().await?;
    Ok(answer)
}

/// A new pending secret for `user` (replacing one not confirmed yet), and the answer showing
/// it; 400 when a factor is active.
async fn begin(
    conn: &mut AnyConnection,
    kernel: Services<'_>,
    factors: &Factors,
    user: &User,
) -> ApiResult<Value> {
    let secret = secrets::random::<{ secrets::SECRET_LEN }>()
        .map_err(|e| ApiError::internal("a TOTP secret", e))?;
    let sealed = secrets::seal(&Factors::seal_key(&kernel), user.id, &secret)
        .map_err(|e| ApiError::internal("a TOTP secret", e))?;
    if !store::start_enrolment(conn, user.id, &sealed, kernel::db::now()).await? {
        return Err(ApiError::bad_request(ALREADY_ENABLED));
    }
    let uri = secrets::otpauth_uri(&factors.config.issuer, &user.username, &secret);
    let qr = secrets::qr_svg_data_uri(&uri).map_err(|e| ApiError::internal("a QR code", e))?;
    Ok(json!({
        "status": "success",
        "message": "scan the QR code, then confirm with a code",
        "data": {
            "secret": secrets::base32(&secret),
            "otpauth_uri": uri,
            "qr_code": qr,
        },
    }))
}

async fn held(kernel: Services<'_>, user_id: i64) -> Result<store::Held, ApiError> {
    let mut conn = kernel.db.acquire().await?;
    Ok(store::held(&mut conn, user_id).await?)
}

/// New recovery codes when the account had no factor before this one (its first factor), in
/// the answer's `data`; an account that already has a set keeps it.
async fn first_codes(
    conn: &mut AnyConnection,
    factors: &Factors,
    user_id: i64,
    before: store::Held,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut data = serde_json::Map::new();
    if !before.any() {
        let codes = new_recovery_codes(conn, factors, user_id).await?;
        data.insert("recovery_codes".into(), json!(codes));
    }
    Ok(data)
}

#[derive(Deserialize)]
struct Confirm {
    totp_code: String,
}

/// Proves an enrolment with a first code: the factor is active, recovery codes are made (shown
/// this once), the user's other sessions end and an email tells them.
#[post("/totp/confirm", data = "<body>")]
async fn confirm(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<Confirm>,
) -> ApiResult<Value> {
    let user = &auth.user;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    match store::totp(&mut tx, user.id).await? {
        None => return Err(ApiError::bad_request(NO_ENROLMENT)),
        Some(t) if t.confirmed => return Err(ApiError::bad_request(ALREADY_ENABLED)),
        Some(_) => {}
    }
    let before = store::held(&mut tx, user.id).await?;
    let code = Code::Totp(&body.0.totp_code);
    if let Checked::Refused(error) = factors.check(&mut tx, &kernel, user.id, code, true).await? {
        tx.commit().await?;
        return Err(error);
    }
    let data = first_codes(&mut tx, factors, user.id, before).await?;
    store::forget_steps(&mut tx, user.id).await?;
    notify::changed(
        &mut tx,
        kernel.mailer,
        user,
        Change::Enabled,
        Some(&auth.session_id),
    )
    .await?;
    tx.commit().await?;
    kernel.mailer.wake();
    Ok(json!({
        "status": "success",
        "message": "two-factor authentication enabled",
        "data": data,
    }))
}

#[derive(Deserialize)]
struct Proof {
    password: String,
    totp_code: Option<String>,
    recovery_code: Option<String>,
}

/// The password, then a code (TOTP or recovery), in the returned transaction: what removing or
/// regenerating asks for. Refusals are committed (counted).
async fn prove(
    auth: &AuthUser<Manage>,
    kernel: Services<'_>,
    caller: &Caller,
    factors: &Factors,
    proof: Proof,
) -> Result<kernel::db::WriteTx, ApiError> {
    let user = &auth.user;
    let Some(code) = Code::of(proof.totp_code.as_deref(), proof.recovery_code.as_deref()) else {
        return Err(ApiError::invalid_payload());
    };
    if !held(kernel, user.id).await?.any() {
        return Err(ApiError::bad_request(NOT_ENABLED));
    }
    confirm_password(kernel, caller, user, proof.password.clone()).await?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    if let Checked::Refused(error) = factors
        .check(&mut tx, &kernel, user.id, code, false)
        .await?
    {
        tx.commit().await?;
        return Err(error);
    }
    Ok(tx)
}

/// Removes every second factor (TOTP, passkeys and recovery codes) with the password and a
/// code.
#[post("/disable", data = "<body>")]
async fn disable(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    factors: &State<Arc<Factors>>,
    body: Payload<Proof>,
) -> ApiResult<Value> {
    let mut tx = prove(&auth, kernel, &caller, factors, body.0).await?;
    store::remove_all(&mut tx, auth.user.id).await?;
    let keep = Some(auth.session_id.as_str());
    notify::changed(&mut tx, kernel.mailer, &auth.user, Change::Disabled, keep).await?;
    tx.commit().await?;
    kernel.mailer.wake();
    Ok(json!({ "status": "success", "message": "two-factor authentication disabled" }))
}

/// Removes the TOTP factor only, with the password and a code: the passkeys stay (and the
/// recovery codes with them); with none, as [`disable`].
#[delete("/totp", data = "<body>")]
async fn totp_remove(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    factors: &State<Arc<Factors>>,
    body: Payload<Proof>,
) -> ApiResult<Value> {
    if !held(kernel, auth.user.id).await?.totp {
        return Err(ApiError::bad_request(NOT_ENABLED));
    }
    let mut tx = prove(&auth, kernel, &caller, factors, body.0).await?;
    store::remove_totp(&mut tx, auth.user.id).await?;
    let last = !store::held(&mut tx, auth.user.id).await?.any();
    let change = if last {
        store::remove_recovery(&mut tx, auth.user.id).await?;
        Change::Disabled
    } else {
        store::forget_steps(&mut tx, auth.user.id).await?;
        Change::TotpRemoved
    };
    let keep = Some(auth.session_id.as_str());
    notify::changed(&mut tx, kernel.mailer, &auth.user, change, keep).await?;
    tx.commit().await?;
    kernel.mailer.wake();
    let message = if last {
        "two-factor authentication disabled"
    } else {
        "authenticator app removed"
    };
    Ok(json!({ "status": "success", "message": message }))
}

/// New recovery codes, the old ones dead, with the password and a code.
#[post("/recovery-codes", data = "<body>")]
async fn recovery_codes(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    factors: &State<Arc<Factors>>,
    body: Payload<Proof>,
) -> ApiResult<Value> {
    let mut tx = prove(&auth, kernel, &caller, factors, body.0).await?;
    let codes = new_recovery_codes(&mut tx, factors, auth.user.id).await?;
    let keep = Some(auth.session_id.as_str());
    notify::changed(
        &mut tx,
        kernel.mailer,
        &auth.user,
        Change::RecoveryCodes,
        keep,
    )
    .await?;
    tx.commit().await?;
    kernel.mailer.wake();
    Ok(json!({
        "status": "success",
        "message": "recovery codes regenerated",
        "data": { "recovery_codes": codes },
    }))
}

#[derive(Deserialize)]
struct Step {
    step_token: String,
    totp_code: Option<String>,
    recovery_code: Option<String>,
    passkey: Option<Asserted>,
}

/// Completes a login that answered `two-factor authentication required`: its step token and a
/// code (or a passkey's answer to [`passkey_challenge`]) open the session, as the login would
/// have. The token is used up by the session it
/// opens; a wrong code leaves it (counted against the account's limit) until it expires.
#[post("/login", data = "<body>")]
async fn login(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<Step>,
) -> ApiResult<Value> {
    let step = body.0;
    let code = Code::of(step.totp_code.as_deref(), step.recovery_code.as_deref())
        .or(step.passkey.as_ref().map(Code::Passkey));
    let Some(code) = code else {
        return Err(ApiError::invalid_payload());
    };
    let digest = kernel::tokens::link_digest(&step.step_token);
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let user_id = stepping(&mut tx, &step.step_token, store::Purpose::Login)
        .await?
        .id;
    if let Checked::Refused(error) = factors
        .check(&mut tx, &kernel, user_id, code, false)
        .await?
    {
        tx.commit().await?;
        return Err(error);
    }
    if !store::use_step_token(&mut tx, &digest).await? {
        return Err(ApiError::unauthorized(INVALID_STEP));
    }
    let session = auth::open(&mut tx, kernel.keys, kernel.config, user_id, &caller.agent).await?;
    tx.commit().await?;
    browser.open(&session);
    Ok(json!({
        "status": "success",
        "message": "successfully logged in",
        "auth_token": session.token,
    }))
}

/// The active account of a live step token of this purpose, not using it up; 401 `invalid
/// token, please log in again` for anything else (a token of the other purpose, a session
/// token, a token used or expired).
async fn stepping(
    conn: &mut AnyConnection,
    token: &str,
    purpose: store::Purpose,
) -> Result<User, ApiError> {
    let digest = kernel::tokens::link_digest(token);
    let now = kernel::db::now();
    let Some(user_id) = store::step_user(conn, &digest, purpose, now).await? else {
        return Err(ApiError::unauthorized(INVALID_STEP));
    };
    kernel::users::by_id(conn, user_id)
        .await?
        .filter(|u| u.state == AccountState::Active)
        .ok_or_else(|| ApiError::unauthorized(INVALID_STEP))
}

/// The account of a live enrolment token (docs/two-factor.md, "Policy").
async fn enrolling(conn: &mut AnyConnection, enrol_token: &str) -> Result<User, ApiError> {
    stepping(conn, enrol_token, store::Purpose::Enrol).await
}

#[derive(Deserialize)]
struct EnrolStart {
    enrol_token: String,
}

/// The TOTP enrolment of a login refused with `two-factor enrolment required`: its enrolment
/// token stands for the password the login just checked. Starting again replaces the pending
/// secret; the token stays live until it opens a session or expires.
#[post("/enrol/start", data = "<body>")]
async fn enrol_start(
    kernel: Services<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<EnrolStart>,
) -> ApiResult<Value> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let user = enrolling(&mut tx, &body.0.enrol_token).await?;
    let answer = begin(&mut tx, kernel, factors, &user).await?;
    tx.commit().await?;
    Ok(answer)
}

#[derive(Deserialize)]
struct EnrolConfirm {
    enrol_token: String,
    totp_code: String,
}

/// Proves the enrolment started with the enrolment token by a first code: the factor is
/// active, recovery codes are made (shown this once), the user's sessions end, an email tells
/// them, and the session the login was refused opens (the browser's cookies too). The token is
/// used up by that session; a wrong code leaves it live, counted against the account's limit.
#[post("/enrol/confirm", data = "<body>")]
async fn enrol_confirm(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<EnrolConfirm>,
) -> ApiResult<Value> {
    let EnrolConfirm {
        enrol_token,
        totp_code,
    } = body.0;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let user = enrolling(&mut tx, &enrol_token).await?;
    match store::totp(&mut tx, user.id).await? {
        None => return Err(ApiError::bad_request(NO_ENROLMENT)),
        Some(t) if t.confirmed => return Err(ApiError::bad_request(ALREADY_ENABLED)),
        Some(_) => {}
    }
    let code = Code::Totp(&totp_code);
    if let Checked::Refused(error) = factors.check(&mut tx, &kernel, user.id, code, true).await? {
        tx.commit().await?;
        return Err(error);
    }
    if !store::use_step_token(&mut tx, &kernel::tokens::link_digest(&enrol_token)).await? {
        return Err(ApiError::unauthorized(INVALID_STEP));
    }
    let codes = new_recovery_codes(&mut tx, factors, user.id).await?;
    store::forget_steps(&mut tx, user.id).await?;
    notify::changed(&mut tx, kernel.mailer, &user, Change::Enabled, None).await?;
    let session = auth::open(&mut tx, kernel.keys, kernel.config, user.id, &caller.agent).await?;
    tx.commit().await?;
    kernel.mailer.wake();
    browser.open(&session);
    Ok(json!({
        "status": "success",
        "message": "two-factor authentication enabled",
        "auth_token": session.token,
        "data": { "recovery_codes": codes },
    }))
}

/// The user's passkeys.
#[get("/passkeys")]
async fn passkey_list(auth: AuthUser<Read>, kernel: Services<'_>) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let rows = store::passkeys(&mut conn, auth.user.id).await?;
    let shown: Vec<Value> = rows.iter().map(passkeys::shown).collect();
    Ok(json!({ "status": "success", "data": { "passkeys": shown } }))
}

/// Starts registering a passkey, with the password (as a TOTP enrolment): the options for
/// `navigator.credentials.create` and the ceremony's id, which [`passkey_add`] takes back with
/// the authenticator's answer within `two_factor.passkey_ttl`.
#[post("/passkeys/register", data = "<body>")]
async fn passkey_register(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    factors: &State<Arc<Factors>>,
    body: Payload<Enrol>,
) -> ApiResult<Value> {
    let webauthn = factors.webauthn()?;
    confirm_password(kernel, &caller, &auth.user, body.0.password).await?;
    let config = &factors.config;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let data = passkeys::start_registration(
        &mut tx,
        webauthn,
        &auth.user,
        config.passkey_ttl,
        config.max_passkeys,
    )
    .await?;
    tx.commit().await?;
    Ok(json!({
        "status": "success",
        "message": "create the passkey, then send the authenticator's answer",
        "data": data,
    }))
}

/// Finishes a registration: the passkey is active at once (the authenticator proved it holds
/// the key). The account's first factor makes recovery codes (shown this once); every added
/// passkey ends the user's other sessions and emails them.
#[post("/passkeys", data = "<body>")]
async fn passkey_add(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<Registered>,
) -> Result<(Status, Value), ApiError> {
    let webauthn = factors.webauthn()?;
    let user = &auth.user;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let before = store::held(&mut tx, user.id).await?;
    let added = passkeys::finish_registration(&mut tx, webauthn, user, &body.0).await;
    let row = match added {
        Ok(row) => row,
        Err(error) => {
            // The ceremony is used up either way.
            tx.commit().await?;
            return Err(error);
        }
    };
    let mut data = first_codes(&mut tx, factors, user.id, before).await?;
    data.insert("passkey".into(), passkeys::shown(&row));
    store::forget_steps(&mut tx, user.id).await?;
    let change = Change::PasskeyAdded {
        name: &row.name,
        first: !before.any(),
    };
    notify::changed(&mut tx, kernel.mailer, user, change, Some(&auth.session_id)).await?;
    tx.commit().await?;
    kernel.mailer.wake();
    Ok((
        Status::Created,
        json!({ "status": "success", "message": "passkey added", "data": data }),
    ))
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

/// Renames one of the user's passkeys.
#[patch("/passkeys/<id>", data = "<body>")]
async fn passkey_rename(
    id: i64,
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    body: Payload<Rename>,
) -> ApiResult<Value> {
    let name = passkeys::valid_name(&body.0.name)
        .ok_or_else(|| ApiError::bad_request(passkeys::INVALID_NAME))?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    if !store::rename_passkey(&mut tx, auth.user.id, id, name).await? {
        return Err(ApiError::not_found(passkeys::NOT_FOUND));
    }
    let rows = store::passkeys(&mut tx, auth.user.id).await?;
    tx.commit().await?;
    let row = rows.iter().find(|r| r.id == id).map(passkeys::shown);
    Ok(json!({ "status": "success", "data": { "passkey": row } }))
}

/// Removes one of the user's passkeys, with the password. The last factor going takes the
/// recovery codes with it; the user's other sessions end and an email tells them.
#[delete("/passkeys/<id>", data = "<body>")]
async fn passkey_remove(
    id: i64,
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    caller: Caller,
    body: Payload<Enrol>,
) -> ApiResult<Value> {
    let user = &auth.user;
    {
        let mut conn = kernel.db.acquire().await?;
        let theirs = store::passkeys(&mut conn, user.id).await?;
        if !theirs.iter().any(|r| r.id == id) {
            return Err(ApiError::not_found(passkeys::NOT_FOUND));
        }
    }
    confirm_password(kernel, &caller, user, body.0.password).await?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let Some(name) = store::remove_passkey(&mut tx, user.id, id).await? else {
        return Err(ApiError::not_found(passkeys::NOT_FOUND));
    };
    let last = !store::held(&mut tx, user.id).await?.any();
    if last {
        store::remove_recovery(&mut tx, user.id).await?;
    } else {
        store::forget_steps(&mut tx, user.id).await?;
    }
    let change = Change::PasskeyRemoved { name: &name, last };
    notify::changed(&mut tx, kernel.mailer, user, change, Some(&auth.session_id)).await?;
    tx.commit().await?;
    kernel.mailer.wake();
    Ok(json!({ "status": "success", "message": "passkey removed" }))
}

#[derive(Deserialize)]
struct Challenge {
    step_token: String,
}

/// The passkey half of a login's second step: for a live step token, the options for
/// `navigator.credentials.get` and the ceremony's id, which `POST …/login` takes back with the
/// step token and the authenticator's answer (`passkey: {ceremony, credential}`). The step token
/// stays live; asking again replaces the ceremony.
#[post("/passkey/challenge", data = "<body>")]
async fn passkey_challenge(
    kernel: Services<'_>,
    factors: &State<Arc<Factors>>,
    body: Payload<Challenge>,
) -> ApiResult<Value> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let user_id = stepping(&mut tx, &body.0.step_token, store::Purpose::Login)
        .await?
        .id;
    let webauthn = factors.webauthn()?;
    let data =
        passkeys::start_login(&mut tx, webauthn, user_id, factors.config.passkey_ttl).await?;
    tx.commit().await?;
    Ok(json!({
        "status": "success",
        "message": "use the passkey, then send the authenticator's answer",
        "data": data,
    }))
}
