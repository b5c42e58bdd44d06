//! Single sign-on (docs/sso.md): log in through an OpenID Connect provider, or through a
//! forward-auth proxy's trusted header, into an ordinary session (revocable, listed,
//! narrowable like any other).
//!
//! - `GET /api/auth/sso/providers`: the configured providers and whether SSO is the only way in.
//! - `GET /api/auth/sso/<provider>/start` → the provider; its `…/callback` → `sso.return_url`
//!   with a one-time `code` (or an HTML page saying why not).
//! - `POST /api/auth/sso/exchange` {code} → a session (`auth_token`, and a browser's cookies).
//! - `POST /api/auth/sso/header/login`: the trusted header's account, from the proxies only.
//! - `GET /api/auth/sso/identities`, `DELETE /api/auth/sso/identities/<id>`: linked identities.
//! - `GET`/`PATCH /api/auth/sso/settings` (admin): the SSO-only switch, which closes password
//!   login and registration through the kernel's [`PasswordGate`].

mod accounts;
mod api;
mod config;
mod oidc;
mod store;
mod web;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use kernel::error::Failure;
use kernel::lifecycle::{PasswordGate, PasswordUse};
use kernel::{Describe, Lifecycle, Metrics};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rocket::fairing::AdHoc;
use sqlx::AnyConnection;

pub use accounts::Refusal;
pub use config::{Identifies, ProviderConfig, SsoConfig, TrustedHeaderConfig};
pub use oidc::Identity;

/// The linking rules as the callback applies them (docs/sso.md, "Linking rules"), for a
/// verified identity of `provider`: the account it opens, or why none. Public so that the
/// rules are tested on both backends without a provider (tests/api/sso.rs).
pub async fn link_identity(
    tx: &mut kernel::db::WriteTx,
    provider: &str,
    identity: &Identity,
) -> Result<Result<kernel::users::User, Refusal>, kernel::ApiError> {
    Ok(accounts::resolve(tx, provider, identity)
        .await?
        .map(|(user, _)| user))
}

/// A user's linked identities in their data export (`sso_identities.json`), when they have
/// any: provider, subject, email, when linked and last used.
struct IdentitiesExport;

#[rocket::async_trait]
impl kernel::lifecycle::ExportPart for IdentitiesExport {
    fn file_name(&self) -> &'static str {
        "sso_identities.json"
    }

    async fn part(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<Option<serde_json::Value>, kernel::error::Failure> {
        use kernel::dates::http_date_from_unix;
        let links = store::links_of(conn, user_id)
            .await
            .map_err(|e| kernel::error::Failure::new("linked identities", e))?;
        if links.is_empty() {
            return Ok(None);
        }
        let list: Vec<serde_json::Value> = links
            .iter()
            .map(|link| {
                serde_json::json!({
                    "provider": link.provider,
                    "subject": link.subject,
                    "email": link.email,
                    "created_at": http_date_from_unix(link.created_at),
                    "last_login_at": http_date_from_unix(link.last_login_at),
                })
            })
            .collect();
        Ok(Some(serde_json::Value::Array(list)))
    }
}

/// The 403 of a password login while SSO is the only way in.
pub const PASSWORD_LOGIN_OFF: &str =
    "error, password login is disabled: log in with single sign-on";
/// The 403 of a registration while SSO is the only way in.
pub const REGISTRATION_OFF: &str = "error, registration is disabled: log in with single sign-on";

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: SsoConfig| {
            let kernel_config = kernel::Config::from_figment(rocket.figment()).ok();
            let public_url = kernel_config
                .as_ref()
                .map(|c| c.public_url.clone())
                .unwrap_or_default();
            let cookies = kernel_config.is_some_and(|c| c.cookies.enabled);
            let sso = Sso::new(config, &public_url);
            let logins = Logins::default();
            if let Some(metrics) = rocket.state::<Metrics>() {
                // Private: whether a login linked or made an account tells whether the
                // address had one.
                metrics.register_private(
                    "sso_logins",
                    "Single sign-on logins, by way and outcome",
                    logins.0.clone(),
                );
            }
            if let Some(lifecycle) = rocket.state::<Lifecycle>() {
                lifecycle.gate_passwords(Arc::new(OnlySso {
                    default: sso.config.only,
                }));
                lifecycle.offer_export_part(Arc::new(IdentitiesExport));
            }
            let header = sso.config.trusted_header.header.is_some();
            let rocket = rocket
                .mount("/api/auth/sso", api::routes())
                .mount("/api/auth/sso", web::routes())
                .describe(include_str!("../openapi.json"));
            let rocket = if cookies {
                rocket
                    .mount("/api/auth/sso", web::browser_routes())
                    .describe(include_str!("../openapi-browser.json"))
            } else {
                rocket
            };
            let rocket = if header {
                rocket
                    .mount("/api/auth/sso", api::header_routes())
                    .describe(include_str!("../openapi-header.json"))
            } else {
                rocket
            };
            rocket.manage(sso).manage(logins)
        },
        |rocket, _| rocket,
    )
}

/// The module's state: its section, its providers and the proxies it believes.
pub struct Sso {
    config: SsoConfig,
    providers: BTreeMap<String, oidc::Provider>,
    proxies: Vec<IpNet>,
    public_url: String,
}

impl Sso {
    fn new(config: SsoConfig, public_url: &str) -> Sso {
        let ttl = Duration::from_secs(config.discovery_ttl);
        let mut providers = BTreeMap::new();
        for provider in &config.providers {
            match oidc::Provider::new(provider.clone(), public_url, ttl) {
                Ok(p) => {
                    providers.insert(provider.id.clone(), p);
                }
                Err(e) => tracing::error!(provider = %provider.id, "provider left out: {e}"),
            }
        }
        Sso {
            proxies: config.trusted_header.networks(),
            config,
            providers,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    fn ttl(seconds: u64) -> i64 {
        i64::try_from(seconds).unwrap_or(i64::MAX)
    }
}

/// The SSO-only switch, read from the module's table at every password login and registration,
/// so that an admin's change applies at once on every instance.
struct OnlySso {
    default: bool,
}

#[rocket::async_trait]
impl PasswordGate for OnlySso {
    async fn refusal(
        &self,
        conn: &mut AnyConnection,
        usage: PasswordUse,
    ) -> Result<Option<&'static str>, Failure> {
        let only = store::only_sso(conn, self.default)
            .await
            .map_err(|e| Failure::new("the SSO-only switch", e))?;
        Ok(only.then_some(match usage {
            PasswordUse::Login => PASSWORD_LOGIN_OFF,
            PasswordUse::Registration => REGISTRATION_OFF,
        }))
    }
}

/// How a single sign-on went: the labels of `stride_sso_logins_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Way {
    Oidc,
    Header,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Outcome {
    Linked,
    Created,
    Known,
    Refused,
}

impl EncodeLabelValue for Way {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            Way::Oidc => "oidc",
            Way::Header => "header",
        })
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            Outcome::Linked => "linked",
            Outcome::Created => "created",
            Outcome::Known => "known",
            Outcome::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    way: Way,
    outcome: Outcome,
}

#[derive(Default)]
struct Logins(Family<Labels, Counter>);

impl Logins {
    fn count(&self, way: Way, outcome: Outcome) {
        self.0.get_or_create(&Labels { way, outcome }).inc();
    }
}
