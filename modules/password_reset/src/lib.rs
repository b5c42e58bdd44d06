//! Password reset by email: `POST /api/auth/password/reset-request`,
//! `POST /api/auth/password/update`, and the pages a browser user opens from the email,
//! `GET`/`POST /password-reset`.

mod api;
mod pages;
mod reset;
mod reset_tokens;

use std::sync::Arc;

pub use api::queue_reset_link;
use kernel::config::{ConfigError, Section};
use kernel::Describe;
use rocket::fairing::AdHoc;
use serde::Deserialize;

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: PasswordResetConfig| {
            if let Some(lifecycle) = rocket.state::<kernel::Lifecycle>() {
                lifecycle.offer_reset_links(Arc::new(api::Links {
                    ttl: config.token_ttl,
                }));
            }
            rocket
                .manage(config)
                .mount("/api/auth/password", api::routes())
                .mount("/", pages::routes())
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `password_reset.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordResetConfig {
    /// Lifetime of a reset link, in seconds.
    pub token_ttl: u64,
    /// Reset requests for one address (known or not) per `throttle.window`, before a 429.
    pub requests_per_account: i64,
    /// Reset requests from one client per `throttle.window`, before a 429.
    pub requests_per_client: i64,
}

impl Default for PasswordResetConfig {
    fn default() -> Self {
        PasswordResetConfig {
            token_ttl: 3600,
            requests_per_account: 3,
            requests_per_client: 20,
        }
    }
}

impl Section for PasswordResetConfig {
    const NAME: &'static str = "password_reset";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.token_ttl == 0 {
            return Err(ConfigError::invalid(
                "password_reset.token_ttl",
                "must be at least 1 second (got 0)",
            ));
        }
        for (key, n) in [
            ("requests_per_account", self.requests_per_account),
            ("requests_per_client", self.requests_per_client),
        ] {
            if n < 1 {
                return Err(ConfigError::invalid(
                    &format!("password_reset.{key}"),
                    format!("must be at least 1 (got {n})"),
                ));
            }
        }
        Ok(())
    }
}
