//! The account lifecycle (docs/accounts.md): email confirmation of new accounts
//! (`POST /api/auth/account/confirm`, `…/resend-confirmation`, the page `/account-confirmation`),
//! the cleanup of accounts never confirmed, and the change of address and password
//! (`PATCH /api/auth/profile/edit/account`, `POST /api/auth/email/update`, the page
//! `/email-update`), and data exports built in the background (`…/account/export…`).
//!
//! It plugs into the rest through the kernel's hooks (`kernel::lifecycle`): mounted, the user
//! object carries `is_active`, `email_to_confirm` and `role`; with `accounts.email_confirmation`
//! on, registration makes pending accounts and this module sends their link.

mod confirm;
mod email_change;
mod export;
mod pages;
mod sweep;
mod tokens;

use std::sync::Arc;

use kernel::config::{ConfigError, Section};
use kernel::Describe;
use rocket::fairing::AdHoc;
use serde::Deserialize;

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: AccountsConfig| {
            if let Some(lifecycle) = rocket.state::<kernel::Lifecycle>() {
                lifecycle.mount();
                lifecycle.offer_email_changes(Arc::new(email_change::AdminChanges {
                    ttl: config.confirmation_ttl,
                }));
                if config.email_confirmation {
                    lifecycle.require_confirmation(Arc::new(confirm::Links::new(&config)));
                }
            }
            let wake = export::Wake::default();
            rocket
                .manage(config.clone())
                .manage(wake.clone())
                .mount("/api/auth/account", confirm::routes())
                .mount("/api/auth/account", export::routes())
                .mount("/api/auth", email_change::account_routes())
                .mount("/api/auth/email", email_change::email_routes())
                .mount("/", pages::routes())
                .attach(sweep::Sweeper::new(config))
                .attach(export::Builder::new(wake))
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// Why a link did not do what it is for.
pub enum Refusal {
    /// Unknown, expired, used, of another purpose, or the account no longer fits it.
    InvalidToken,
    /// An email-change link whose address was taken since the request: the link dies.
    Taken,
    Internal(kernel::ApiError),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

impl From<kernel::ApiError> for Refusal {
    fn from(e: kernel::ApiError) -> Self {
        Refusal::Internal(e)
    }
}

/// The section `accounts.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// New accounts wait for their emailed link (off: FitTrackee 0.5's registration, a
    /// session at once).
    pub email_confirmation: bool,
    /// Lifetime of an account-confirmation link, in seconds.
    pub confirmation_ttl: u64,
    /// Seconds an account registered pending may stay unconfirmed before it is deleted.
    pub unconfirmed_ttl: u64,
    /// Lifetime of the revert link sent to the old address of a change, in seconds: while it
    /// lives the old address stays reserved for the account.
    pub revert_ttl: u64,
    /// Seconds a data export lives, counted from its request; then it is deleted.
    pub export_ttl: u64,
    /// Confirmation resends for one address (known or not) per `throttle.window`.
    pub resend_requests_per_account: i64,
    /// Confirmation resends from one client per `throttle.window`.
    pub resend_requests_per_client: i64,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            email_confirmation: false,
            confirmation_ttl: 24 * 3600,
            unconfirmed_ttl: 7 * 24 * 3600,
            export_ttl: 24 * 3600,
            revert_ttl: 7 * 24 * 3600,
            resend_requests_per_account: 3,
            resend_requests_per_client: 20,
        }
    }
}

impl Section for AccountsConfig {
    const NAME: &'static str = "accounts";

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, seconds) in [
            ("confirmation_ttl", self.confirmation_ttl),
            ("unconfirmed_ttl", self.unconfirmed_ttl),
            ("export_ttl", self.export_ttl),
            ("revert_ttl", self.revert_ttl),
        ] {
            if seconds == 0 {
                return Err(ConfigError::invalid(
                    &format!("accounts.{key}"),
                    "must be at least 1 second (got 0)",
                ));
            }
        }
        if self.unconfirmed_ttl < self.confirmation_ttl {
            return Err(ConfigError::invalid(
                "accounts.unconfirmed_ttl",
                format!(
                    "must be at least accounts.confirmation_ttl ({}), so that a link works for as long as it says (got {})",
                    self.confirmation_ttl, self.unconfirmed_ttl
                ),
            ));
        }
        for (key, n) in [
            (
                "resend_requests_per_account",
                self.resend_requests_per_account,
            ),
            (
                "resend_requests_per_client",
                self.resend_requests_per_client,
            ),
        ] {
            if n < 1 {
                return Err(ConfigError::invalid(
                    &format!("accounts.{key}"),
                    format!("must be at least 1 (got {n})"),
                ));
            }
        }
        Ok(())
    }
}
