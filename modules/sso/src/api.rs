//! The JSON side: the providers, the one-time code's exchange, the trusted header's login, the
//! user's linked identities and the admin's SSO-only switch.

use std::net::IpAddr;

use kernel::auth::{Manage, Read};
use kernel::cookies::Browser;
use kernel::dates::http_date_from_unix;
use kernel::users::{self, AccountState, User};
use kernel::validate::email_key;
use kernel::{auth, AdminUser, ApiError, ApiResult, AuthUser, Caller, Payload, Services};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome as Guard, Request};
use rocket::serde::json::{json, Value};
use rocket::{delete, get, patch, post, routes, Route, State};
use serde::Deserialize;

use crate::accounts::NO_PASSWORD;
use crate::config::Identifies;
use crate::{store, Logins, Outcome, Sso, Way};

pub const INVALID_CODE: &str = "invalid code, please log in again";
pub const NO_TRUSTED_IDENTITY: &str = "no identity from a trusted proxy";
pub const NO_ACCOUNT: &str = "no account for this identity";
pub const LAST_WAY_IN: &str =
    "this identity is the account's only way to log in: set a password first";

pub fn routes() -> Vec<Route> {
    routes![
        providers,
        exchange,
        identities,
        unlink,
        get_settings,
        patch_settings
    ]
}

pub fn header_routes() -> Vec<Route> {
    routes![header_login]
}

#[get("/providers")]
async fn providers(kernel: Services<'_>, sso: &State<Sso>) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let only = store::only_sso(&mut conn, sso.config.only).await?;
    let list: Vec<Value> = sso
        .providers
        .values()
        .map(|p| {
            json!({
                "id": p.config.id,
                "name": p.config.name(),
                "start_url": format!("{}/api/auth/sso/{}/start", sso.public_url, p.config.id),
            })
        })
        .collect();
    Ok(json!({
        "status": "success",
        "data": {
            "providers": list,
            "trusted_header": sso.config.trusted_header.header.is_some(),
            "only_sso": only,
        }
    }))
}

/// Opens an ordinary session for `user`: the JSON of a login, and a browser's cookies.
async fn open_session(
    kernel: Services<'_>,
    caller: &Caller,
    browser: &Browser<'_>,
    mut tx: kernel::db::WriteTx,
    user_id: i64,
) -> ApiResult<Value> {
    let session = auth::open(&mut tx, kernel.keys, kernel.config, user_id, &caller.agent).await?;
    tx.commit().await?;
    browser.open(&session);
    Ok(json!({
        "status": "success",
        "message": "successfully logged in",
        "auth_token": session.token,
    }))
}

#[derive(Deserialize)]
struct Exchange {
    code: String,
}

/// The one-time code of a callback, for a session: once, before it expires.
#[post("/exchange", data = "<body>")]
async fn exchange(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    body: Payload<Exchange>,
) -> ApiResult<Value> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let Some(user_id) = store::take_code(&mut tx, &body.0.code).await? else {
        // An expired code is spent too.
        tx.commit().await?;
        return Err(ApiError::unauthorized(INVALID_CODE));
    };
    // Taken even when the account went inactive meanwhile: the code is spent either way.
    let active = users::by_id(&mut tx, user_id)
        .await?
        .is_some_and(|u| u.state == AccountState::Active);
    if !active {
        tx.commit().await?;
        return Err(ApiError::unauthorized(INVALID_CODE));
    }
    open_session(kernel, &caller, &browser, tx, user_id).await
}

/// The connecting peer's address, whatever `ip_header` says: the trusted header is believed from
/// the proxy that connects, not from an address a header claims.
pub struct Peer(Option<IpAddr>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Peer {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Guard<Self, Self::Error> {
        Guard::Success(Peer(request.remote().map(|s| s.ip().to_canonical())))
    }
}

/// The trusted header's value, when there is one.
pub struct Asserted(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Asserted {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Guard<Self, Self::Error> {
        let name = request
            .rocket()
            .state::<Sso>()
            .and_then(|s| s.config.trusted_header.header.clone());
        let value = name.and_then(|n| {
            request
                .headers()
                .get_one(&n)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        });
        Guard::Success(Asserted(value))
    }
}

/// The account the forward-auth proxy names, from the proxy's addresses only; from anywhere
/// else the header is ignored, and the attempt logged.
#[post("/header/login")]
async fn header_login(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    peer: Peer,
    asserted: Asserted,
    sso: &State<Sso>,
    logins: &State<Logins>,
) -> ApiResult<Value> {
    let trusted = peer
        .0
        .is_some_and(|ip| sso.proxies.iter().any(|n| n.contains(&ip)));
    let Some(value) = asserted.0 else {
        return Err(ApiError::unauthorized(NO_TRUSTED_IDENTITY));
    };
    if !trusted {
        tracing::warn!(
            peer = ?peer.0,
            header = sso.config.trusted_header.header.as_deref().unwrap_or_default(),
            "trusted header from an address that is not a configured proxy: ignored"
        );
        logins.count(Way::Header, Outcome::Refused);
        return Err(ApiError::unauthorized(NO_TRUSTED_IDENTITY));
    }
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let user = match sso.config.trusted_header.identifies {
        Identifies::Email => users::by_email(&mut tx, &email_key(&value)).await?,
        Identifies::Username => users::by_username(&mut tx, &value).await?,
    };
    let Some(user) = user.filter(|u| u.state == AccountState::Active) else {
        logins.count(Way::Header, Outcome::Refused);
        return Err(ApiError::unauthorized(NO_ACCOUNT));
    };
    logins.count(Way::Header, Outcome::Known);
    tracing::info!(user_id = user.id, "login through the trusted header");
    open_session(kernel, &caller, &browser, tx, user.id).await
}

/// Whether the account has a password (an account made through SSO has none until a reset).
async fn has_password(conn: &mut sqlx::AnyConnection, user: &User) -> Result<bool, sqlx::Error> {
    let stored = users::credentials(conn, &email_key(&user.email)).await?;
    Ok(stored.is_some_and(|c| c.password_hash != NO_PASSWORD && c.password_hash.starts_with('$')))
}

#[get("/identities")]
async fn identities(
    auth: AuthUser<Read>,
    kernel: Services<'_>,
    sso: &State<Sso>,
) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let links = store::links_of(&mut conn, auth.user.id).await?;
    let password = has_password(&mut conn, &auth.user).await?;
    let list: Vec<Value> = links
        .iter()
        .map(|link| {
            json!({
                "id": link.id,
                "provider": link.provider,
                "provider_name": sso.providers.get(&link.provider).map(|p| p.config.name()),
                "subject": link.subject,
                "email": link.email,
                "created_at": http_date_from_unix(link.created_at),
                "last_login_at": http_date_from_unix(link.last_login_at),
            })
        })
        .collect();
    Ok(json!({
        "status": "success",
        "data": { "identities": list, "has_password": password },
    }))
}

/// Removes a linked identity, unless it is the account's last way in (no password, no other
/// identity).
#[delete("/identities/<id>")]
async fn unlink(auth: AuthUser<Manage>, kernel: Services<'_>, id: i64) -> ApiResult<Status> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let links = store::links_of(&mut tx, auth.user.id).await?;
    if !links.iter().any(|l| l.id == id) {
        return Err(ApiError::not_found("identity not found"));
    }
    if links.len() == 1 && !has_password(&mut tx, &auth.user).await? {
        return Err(ApiError::bad_request(LAST_WAY_IN));
    }
    store::unlink(&mut tx, auth.user.id, id).await?;
    tx.commit().await?;
    tracing::info!(user_id = auth.user.id, "identity unlinked");
    Ok(Status::NoContent)
}

#[get("/settings")]
async fn get_settings(
    _admin: AdminUser,
    kernel: Services<'_>,
    sso: &State<Sso>,
) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let only = store::only_sso(&mut conn, sso.config.only).await?;
    Ok(json!({ "status": "success", "data": { "only_sso": only } }))
}

#[derive(Deserialize)]
struct SettingsPatch {
    only_sso: bool,
}

/// The SSO-only switch: password login and registration answer a 403 while it is on. It
/// cannot be turned on while no way of single sign-on is configured (nobody could log in).
#[patch("/settings", data = "<body>")]
async fn patch_settings(
    _admin: AdminUser,
    kernel: Services<'_>,
    sso: &State<Sso>,
    body: Payload<SettingsPatch>,
) -> ApiResult<Value> {
    let on = body.0.only_sso;
    if on && sso.providers.is_empty() && sso.config.trusted_header.header.is_none() {
        return Err(ApiError::bad_request(
            "no single sign-on is configured: password login must stay on",
        ));
    }
    let mut conn = kernel.db.acquire().await?;
    store::set_only_sso(&mut conn, on).await?;
    tracing::info!(only_sso = on, "SSO-only switch set");
    Ok(json!({ "status": "success", "data": { "only_sso": on } }))
}
