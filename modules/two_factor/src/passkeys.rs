//! Passkeys (WebAuthn) as a second factor (docs/two-factor.md, "Passkeys"), with webauthn-rs:
//! the relying party this instance is, its two ceremonies (registering a passkey from a full
//! session; asserting one at a login's second step) and their state, kept in the database
//! between a ceremony's two requests so that any instance can answer the second.

use std::time::Duration;

use base64::Engine as _;
use kernel::users::User;
use kernel::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::store::{self, Ceremony};

pub const UNAVAILABLE: &str = "passkeys are not available on this instance";
pub const TOO_MANY: &str = "too many passkeys";
pub const NO_CEREMONY: &str = "invalid or expired passkey ceremony, please start again";
pub const INVALID: &str = "invalid passkey";
pub const ALREADY_REGISTERED: &str = "this passkey is already registered";
pub const INVALID_NAME: &str = "invalid passkey name";
pub const NOT_FOUND: &str = "passkey not found";
pub const NONE_REGISTERED: &str = "no passkey registered";

/// The longest passkey name, in characters.
pub const NAME_MAX: usize = 64;

/// The relying party: this instance, named by its `public_url`'s host (or `two_factor.rp_id`,
/// a parent domain of it). Err says why passkeys are off: WebAuthn needs a domain name
/// (`localhost` counts), never an IP address.
pub fn relying_party(
    public_url: &str,
    rp_id: Option<&str>,
    rp_name: &str,
    ttl: u64,
) -> Result<Webauthn, String> {
    let origin = Url::parse(public_url).map_err(|e| format!("public_url: {e}"))?;
    let Some(host) = origin.domain() else {
        return Err(format!(
            "public_url ({public_url}) names no domain: WebAuthn needs a domain name (localhost \
             counts), not an IP address"
        ));
    };
    let rp_id = rp_id.unwrap_or(host);
    WebauthnBuilder::new(rp_id, &origin)
        .map_err(|_| format!("two_factor.rp_id ({rp_id}) is not {host} or a parent domain of it"))?
        .rp_name(rp_name)
        .timeout(Duration::from_secs(ttl))
        .build()
        .map_err(|e| format!("the relying party: {e}"))
}

/// A stored passkey's credential, as webauthn-rs reads it back.
fn credential(row: &store::PasskeyRow) -> Result<Passkey, ApiError> {
    serde_json::from_str(&row.credential)
        .map_err(|e| ApiError::internal("a stored passkey", e.to_string()))
}

fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::internal(what, e.to_string()))
}

/// A credential id as stored and compared: base64url without padding.
fn credential_id(passkey: &Passkey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice())
}

/// A new ceremony id (given once; its SHA-256 stored with the state).
async fn keep(
    conn: &mut AnyConnection,
    user_id: i64,
    kind: Ceremony,
    state: &str,
    ttl: u64,
) -> Result<String, ApiError> {
    let id = kernel::tokens::link_token().map_err(|e| ApiError::internal("a ceremony id", e))?;
    let expires_at = kernel::db::now().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    let digest = kernel::tokens::link_digest(&id);
    store::put_ceremony(conn, &digest, user_id, kind, state, expires_at).await?;
    Ok(id)
}

/// A passkey as the API shows it.
pub fn shown(row: &store::PasskeyRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "created_at": kernel::dates::http_date_from_unix(row.created_at),
        "last_used_at": row.last_used_at.map(kernel::dates::http_date_from_unix),
    })
}

/// A passkey's name: trimmed, 1 to 64 characters, no control character.
pub fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let fits = (1..=NAME_MAX).contains(&name.chars().count());
    (fits && !name.chars().any(char::is_control)).then_some(name)
}

/// Starts registering a passkey for `user`: the options for `navigator.credentials.create`
/// (`publicKey`, base64url as WebAuthn's JSON form writes it) and the ceremony's id. The user's
/// passkeys are excluded, so an authenticator registers once.
pub async fn start_registration(
    conn: &mut AnyConnection,
    webauthn: &Webauthn,
    user: &User,
    ttl: u64,
    max: u8,
) -> Result<Value, ApiError> {
    let rows = store::passkeys(conn, user.id).await?;
    if rows.len() >= usize::from(max) {
        return Err(ApiError::bad_request(TOO_MANY));
    }
    let exclude = rows
        .iter()
        .map(|row| credential(row).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let handle = match store::user_handle(conn, user.id).await? {
        Some(handle) => Uuid::parse_str(&handle)
            .map_err(|e| ApiError::internal("a passkey user handle", e.to_string()))?,
        None => {
            let bytes = crate::secrets::random::<16>()
                .map_err(|e| ApiError::internal("a passkey user handle", e))?;
            Uuid::from_bytes(bytes)
        }
    };
    let (options, state) = webauthn
        .start_passkey_registration(handle, &user.username, &user.username, Some(exclude))
        .map_err(|e| ApiError::internal("a passkey registration", e.to_string()))?;
    let kept = Registering {
        handle: handle.to_string(),
        state,
    };
    let kept = to_json("a passkey registration", &kept)?;
    let ceremony = keep(conn, user.id, Ceremony::Register, &kept, ttl).await?;
    Ok(json!({ "ceremony": ceremony, "options": options }))
}

/// A registration's state as kept between its two requests: webauthn-rs's, and the user
/// handle it was made for.
#[derive(serde::Serialize, Deserialize)]
struct Registering {
    handle: String,
    state: PasskeyRegistration,
}

/// What a client answers to a registration's options.
#[derive(Deserialize)]
pub struct Registered {
    pub ceremony: String,
    pub name: String,
    pub credential: RegisterPublicKeyCredential,
}

/// Finishes a registration begun by `user`: the new passkey's row, or 400. The ceremony is used
/// up whatever the answer.
pub async fn finish_registration(
    conn: &mut AnyConnection,
    webauthn: &Webauthn,
    user: &User,
    answer: &Registered,
) -> Result<store::PasskeyRow, ApiError> {
    let name = valid_name(&answer.name).ok_or_else(|| ApiError::bad_request(INVALID_NAME))?;
    let now = kernel::db::now();
    let digest = kernel::tokens::link_digest(&answer.ceremony);
    let state = store::take_ceremony(conn, &digest, user.id, Ceremony::Register, now).await?;
    let Some(state) = state else {
        return Err(ApiError::bad_request(NO_CEREMONY));
    };
    let Registering { handle, state } = serde_json::from_str(&state)
        .map_err(|e| ApiError::internal("a passkey registration", e.to_string()))?;
    let passkey = match webauthn.finish_passkey_registration(&answer.credential, &state) {
        Ok(passkey) => passkey,
        Err(e) => {
            tracing::info!(user_id = user.id, error = %e, "passkey registration refused");
            return Err(ApiError::bad_request(INVALID));
        }
    };
    let id = credential_id(&passkey);
    let stored = to_json("a passkey", &passkey)?;
    let new = store::NewPasskey {
        user_id: user.id,
        credential_id: &id,
        user_handle: &handle,
        name,
        credential: &stored,
        now,
    };
    let Some(row_id) = store::insert_passkey(conn, new).await? else {
        return Err(ApiError::bad_request(ALREADY_REGISTERED));
    };
    Ok(store::PasskeyRow {
        id: row_id,
        name: name.to_owned(),
        credential: stored,
        created_at: now,
        last_used_at: None,
    })
}

/// Starts a login's passkey assertion for `user_id`: the options for
/// `navigator.credentials.get` and the ceremony's id; 400 when the user has no passkey.
pub async fn start_login(
    conn: &mut AnyConnection,
    webauthn: &Webauthn,
    user_id: i64,
    ttl: u64,
) -> Result<Value, ApiError> {
    let rows = store::passkeys(conn, user_id).await?;
    if rows.is_empty() {
        return Err(ApiError::bad_request(NONE_REGISTERED));
    }
    let passkeys = rows.iter().map(credential).collect::<Result<Vec<_>, _>>()?;
    let (options, state) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| ApiError::internal("a passkey login", e.to_string()))?;
    let state = to_json("a passkey login", &state)?;
    let ceremony = keep(conn, user_id, Ceremony::Login, &state, ttl).await?;
    Ok(json!({ "ceremony": ceremony, "options": options }))
}

/// What a client answers to a login's options.
#[derive(Debug, Deserialize)]
pub struct Asserted {
    pub ceremony: String,
    pub credential: PublicKeyCredential,
}

/// Whether `answer` proves one of `user_id`'s passkeys for the login ceremony it names. The
/// ceremony is used up whatever the answer; a passkey that passes has its use recorded (and its
/// signature counter, which webauthn-rs checks against cloned authenticators).
pub async fn passes(
    conn: &mut AnyConnection,
    webauthn: &Webauthn,
    user_id: i64,
    answer: &Asserted,
) -> Result<bool, ApiError> {
    let now = kernel::db::now();
    let digest = kernel::tokens::link_digest(&answer.ceremony);
    let Some(state) = store::take_ceremony(conn, &digest, user_id, Ceremony::Login, now).await?
    else {
        return Ok(false);
    };
    let state: PasskeyAuthentication = serde_json::from_str(&state)
        .map_err(|e| ApiError::internal("a passkey login", e.to_string()))?;
    let result = match webauthn.finish_passkey_authentication(&answer.credential, &state) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(user_id, error = %e, "passkey assertion refused");
            return Ok(false);
        }
    };
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(result.cred_id().as_slice());
    let Some(row) = store::passkey_by_credential(conn, user_id, &id).await? else {
        return Ok(false);
    };
    let mut passkey = credential(&row)?;
    passkey.update_credential(&result);
    store::passkey_used(conn, row.id, &to_json("a passkey", &passkey)?, now).await?;
    Ok(true)
}
