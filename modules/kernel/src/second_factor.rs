//! The login's second step: what a module that keeps second factors offers the login, which
//! knows none. The module fills the hook in from its fairing
//! ([`crate::Lifecycle::require_second_factor`]); the login asks it, after the password is
//! verified and before any session opens, whether this sign-in may open one
//! ([`SecondFactor::pass`]). Without a module there is no second step.

use std::net::IpAddr;

use sqlx::AnyConnection;

use crate::error::ApiError;
use crate::services::Services;

/// What a login request carries beside the password (absent keys are `None`).
#[derive(Debug, Clone, Default)]
pub struct Presented {
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

/// The sign-in whose password matched.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub user_id: i64,
    /// The account's address key (`validate::email_key`), as its counters name it.
    pub account: &'a str,
    pub client: Option<IpAddr>,
}

/// Whether the session may open.
#[derive(Debug)]
pub enum Passage {
    Open,
    /// The session opens, and the login's answer carries these keys too: Stride's extras
    /// beside FitTrackee's keys, which they never replace (a FitTrackee client ignores them).
    OpenWith(serde_json::Map<String, serde_json::Value>),
    /// No session: the answer to give instead (a factor is required, a code is wrong, too
    /// many guesses). What the step wrote is kept: the caller commits its transaction.
    Refused(ApiError),
}

#[rocket::async_trait]
pub trait SecondFactor: Send + Sync + 'static {
    /// Decides in the login's writing transaction, after the password is verified. An `Err`
    /// is a failure of the server (the transaction is dropped), not a refusal.
    async fn pass(
        &self,
        conn: &mut AnyConnection,
        kernel: Services<'_>,
        attempt: Attempt<'_>,
        presented: &Presented,
    ) -> Result<Passage, ApiError>;
}
