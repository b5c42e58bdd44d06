//! Second factors (docs/two-factor.md): TOTP (RFC 6238) and passkeys (WebAuthn) with recovery
//! codes, enrolled and removed from a full session (`/api/auth/two-factor…`), asked for by the login through the
//! kernel's hook (`kernel::second_factor`): a protected account's login answers a step token
//! instead of a session until a code comes, in the login itself or at
//! `POST /api/auth/two-factor/login`. The page `/two-factor/passkeys` runs the passkey
//! ceremonies in a browser.

mod notify;
mod page;
mod passkeys;
mod routes;
mod secrets;
mod store;

use std::fmt::{self, Write as _};
use std::sync::Arc;

use kernel::config::{ConfigError, Section};
use kernel::second_factor::{Attempt, Passage, Presented, SecondFactor};
use kernel::throttle::{self, Counter, Verdict};
use kernel::{ApiError, Describe, Metrics, Services};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter as Series;
use prometheus_client::metrics::family::Family;
use rocket::fairing::AdHoc;
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyConnection;

pub use notify::remove_factors;

pub const REQUIRED: &str = "two-factor authentication required";
pub const INVALID_CODE: &str = "invalid two-factor authentication code";
pub const INVALID_STEP: &str = "invalid token, please log in again";
pub const ENROLMENT_REQUIRED: &str = "two-factor enrolment required";
/// The login answer's extra key during a grace period (docs/two-factor.md, "Policy").
pub const REQUIRED_BY: &str = "two_factor_enrolment_required_by";

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: TwoFactorConfig| {
            let codes = Codes::default();
            if let Some(metrics) = rocket.state::<Metrics>() {
                metrics.register(
                    "two_factor_codes",
                    "Second-factor codes checked, by outcome",
                    codes.0.clone(),
                );
            }
            let public_url = kernel::Config::from_figment(rocket.figment())
                .map(|c| c.public_url)
                .unwrap_or_default();
            let webauthn = passkeys::relying_party(
                &public_url,
                config.rp_id.as_deref(),
                &config.issuer,
                config.passkey_ttl,
            );
            let webauthn = match webauthn {
                Ok(webauthn) => Some(webauthn),
                Err(why) => {
                    // Info, not a warning: the default public_url (an IP address, for a local
                    // run) is not a mistake.
                    tracing::info!("passkeys are off: {why}");
                    None
                }
            };
            let factors = Arc::new(Factors {
                config: config.clone(),
                codes: codes.clone(),
                webauthn,
            });
            if let Some(lifecycle) = rocket.state::<kernel::Lifecycle>() {
                lifecycle.require_second_factor(factors.clone());
                lifecycle.offer_export_part(Arc::new(FactorsExport));
            }
            rocket
                .manage(factors)
                .mount("/api/auth/two-factor", routes::routes())
                .mount("/", page::routes())
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `two_factor.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwoFactorConfig {
    /// The issuer an authenticator app shows beside the account.
    pub issuer: String,
    /// Seconds a login's step token lives.
    pub step_ttl: u64,
    /// Wrong codes (TOTP or recovery) of one account per `throttle.window`.
    pub code_failures_per_account: i64,
    /// Recovery codes made at enrolment and at each regeneration.
    pub recovery_codes: u8,
    /// Whose accounts must have a second factor.
    pub required: Required,
    /// Seconds an account the policy requires a factor of may still log in without one,
    /// from the first login at which the policy applied to it.
    pub grace_period: u64,
    /// Seconds the enrolment token of a login past its grace period lives.
    pub enrol_ttl: u64,
    /// Seconds a passkey ceremony (registration or login) may take, from its options to the
    /// authenticator's answer.
    pub passkey_ttl: u64,
    /// Passkeys one account may register.
    pub max_passkeys: u8,
    /// The WebAuthn relying party id: `public_url`'s host by default, or a parent domain of it
    /// (passkeys then work on its other subdomains too). Changing it orphans every passkey.
    pub rp_id: Option<String>,
}

/// `two_factor.required`: the accounts that must have a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Required {
    Off,
    Admins,
    Everyone,
}

impl Required {
    fn applies(self, admin: bool) -> bool {
        match self {
            Required::Off => false,
            Required::Admins => admin,
            Required::Everyone => true,
        }
    }
}

/// The longest grace period: a year.
const MAX_GRACE: u64 = 365 * 24 * 3600;

impl Default for TwoFactorConfig {
    fn default() -> Self {
        TwoFactorConfig {
            issuer: "Stride".into(),
            step_ttl: 300,
            code_failures_per_account: 5,
            recovery_codes: 10,
            required: Required::Off,
            grace_period: 7 * 24 * 3600,
            enrol_ttl: 900,
            passkey_ttl: 300,
            max_passkeys: 10,
            rp_id: None,
        }
    }
}

impl Section for TwoFactorConfig {
    const NAME: &'static str = "two_factor";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() || self.issuer.contains(':') {
            return Err(ConfigError::invalid(
                "two_factor.issuer",
                format!("must be a name without ':' (got {:?})", self.issuer),
            ));
        }
        if self.step_ttl == 0 {
            return Err(ConfigError::invalid(
                "two_factor.step_ttl",
                "must be at least 1 second (got 0)",
            ));
        }
        if self.code_failures_per_account < 1 {
            return Err(ConfigError::invalid(
                "two_factor.code_failures_per_account",
                format!(
                    "must be at least 1 (got {})",
                    self.code_failures_per_account
                ),
            ));
        }
        if !(1..=50).contains(&self.recovery_codes) {
            return Err(ConfigError::invalid(
                "two_factor.recovery_codes",
                format!("must be 1 to 50 (got {})", self.recovery_codes),
            ));
        }
        if self.grace_period > MAX_GRACE {
            return Err(ConfigError::invalid(
                "two_factor.grace_period",
                format!(
                    "must be 0 to {MAX_GRACE} seconds (a year; got {})",
                    self.grace_period
                ),
            ));
        }
        if !(1..=3600).contains(&self.passkey_ttl) {
            return Err(ConfigError::invalid(
                "two_factor.passkey_ttl",
                format!("must be 1 to 3600 seconds (got {})", self.passkey_ttl),
            ));
        }
        if !(1..=100).contains(&self.max_passkeys) {
            return Err(ConfigError::invalid(
                "two_factor.max_passkeys",
                format!("must be 1 to 100 (got {})", self.max_passkeys),
            ));
        }
        if let Some(rp_id) = &self.rp_id {
            let plain = rp_id.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !plain {
                return Err(ConfigError::invalid(
                    "two_factor.rp_id",
                    format!("must be a domain name such as example.com (got {rp_id:?})"),
                ));
            }
        }
        if self.enrol_ttl == 0 {
            return Err(ConfigError::invalid(
                "two_factor.enrol_ttl",
                "must be at least 1 second (got 0)",
            ));
        }
        Ok(())
    }
}

/// How a code check ended: the `outcome` label of `stride_two_factor_codes_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Refused,
    Throttled,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Throttled => "throttled",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

#[derive(Default, Clone)]
struct Codes(Family<OutcomeLabels, Series>);

/// The module's state: its section, its series, the relying party (None when passkeys are off:
/// no usable `public_url`), and the login's second step.
pub struct Factors {
    config: TwoFactorConfig,
    codes: Codes,
    webauthn: Option<webauthn_rs::Webauthn>,
}

/// A second factor's proof: a code a user typed, or a passkey's answer.
#[derive(Debug, Clone, Copy)]
enum Code<'a> {
    Totp(&'a str),
    Recovery(&'a str),
    Passkey(&'a passkeys::Asserted),
}

impl<'a> Code<'a> {
    /// The TOTP code when there is one, else the recovery code.
    fn of(totp: Option<&'a str>, recovery: Option<&'a str>) -> Option<Code<'a>> {
        totp.map(Code::Totp).or(recovery.map(Code::Recovery))
    }
}

/// What checking a code decided.
enum Checked {
    Accepted,
    Refused(ApiError),
}

impl Factors {
    /// The relying party, or 400 `passkeys are not available on this instance`.
    fn webauthn(&self) -> Result<&webauthn_rs::Webauthn, ApiError> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| ApiError::bad_request(passkeys::UNAVAILABLE))
    }

    fn seal_key(kernel: &Services<'_>) -> [u8; 32] {
        kernel.keys.derive_key(secrets::SEAL_KEY_INFO)
    }

    /// The user's TOTP secret, unsealed: the active one, or with `pending` the one of an
    /// enrolment still to be confirmed; None when there is no such factor.
    async fn secret(
        conn: &mut AnyConnection,
        kernel: &Services<'_>,
        user_id: i64,
        pending: bool,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let found = store::totp(conn, user_id).await?;
        let Some(totp) = found.filter(|t| t.confirmed != pending) else {
            return Ok(None);
        };
        secrets::open(&Self::seal_key(kernel), user_id, &totp.sealed_secret)
            .map(Some)
            .ok_or_else(|| {
                ApiError::internal(
                    "a TOTP secret",
                    "it does not open with this root key (was tokens.private_key changed?)",
                )
            })
    }

    /// Checks a code of an account with an active factor, counted first against the account's
    /// limit (`two_factor.code_failures_per_account`); a code accepted is given back and used
    /// up (a TOTP code's step, a recovery code). In the caller's transaction, which the caller
    /// commits whatever the answer, so that refusals stay counted.
    async fn check(
        &self,
        conn: &mut AnyConnection,
        kernel: &Services<'_>,
        user_id: i64,
        code: Code<'_>,
        pending: bool,
    ) -> Result<Checked, ApiError> {
        let throttling = &kernel.config.throttle;
        // Keyed by the user, with no account subject: a correct password (which forgets the
        // account's login failures) must not forget the code guesses that follow it.
        let counters = [Counter::new(
            throttling,
            "two_factor:user",
            &user_id.to_string(),
            self.config.code_failures_per_account,
        )];
        if let Verdict::Refused { retry_after } =
            throttle::take(conn, throttling, &counters).await?
        {
            self.count(Outcome::Throttled);
            return Ok(Checked::Refused(ApiError::too_many_requests(
                throttle::TOO_MANY,
                retry_after,
            )));
        }
        let now = kernel::db::now();
        let accepted = match code {
            Code::Totp(code) => match Self::secret(conn, kernel, user_id, pending).await? {
                Some(secret) => match secrets::matching_step(&secret, code, now) {
                    Some(step) => store::use_step(conn, user_id, step, pending, now).await?,
                    None => false,
                },
                None => false,
            },
            Code::Recovery(_) | Code::Passkey(_) if pending => false,
            Code::Passkey(answer) => match &self.webauthn {
                Some(webauthn) => passkeys::passes(conn, webauthn, user_id, answer).await?,
                None => false,
            },
            Code::Recovery(code) => {
                let digest = secrets::recovery_digest(code);
                let used = store::use_recovery_code(conn, user_id, &digest).await?;
                if used {
                    if let Some(user) = kernel::users::by_id(conn, user_id).await? {
                        let left = store::recovery_codes_left(conn, user_id).await?;
                        let change = notify::Change::RecoveryCodeUsed { left };
                        notify::changed(conn, kernel.mailer, &user, change, None).await?;
                    }
                }
                used
            }
        };
        if accepted {
            throttle::refund(conn, throttling, &counters).await?;
            self.count(Outcome::Accepted);
            Ok(Checked::Accepted)
        } else {
            self.count(Outcome::Refused);
            Ok(Checked::Refused(ApiError::unauthorized(INVALID_CODE)))
        }
    }

    fn count(&self, outcome: Outcome) {
        self.codes.0.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A new step token for `user_id`'s login: given once, stored as its SHA-256 with its
    /// purpose; a login's lives `step_ttl`, an enrolment's `enrol_ttl`.
    async fn new_step(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
        purpose: store::Purpose,
    ) -> Result<String, ApiError> {
        let token =
            kernel::tokens::link_token().map_err(|e| ApiError::internal("a step token", e))?;
        let now = kernel::db::now();
        let ttl = match purpose {
            store::Purpose::Login => self.config.step_ttl,
            store::Purpose::Enrol => self.config.enrol_ttl,
        };
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        store::insert_step(
            conn,
            &kernel::tokens::link_digest(&token),
            user_id,
            purpose,
            now.saturating_add(ttl),
            now,
        )
        .await?;
        Ok(token)
    }

    /// The policy (`two_factor.required`), for a login whose account has no active factor:
    /// not required, the session opens (and a grace period begun earlier is forgotten);
    /// required and within the grace period, the session opens and the answer says until when
    /// (the first time, an email too); past it, no session but an enrolment token.
    async fn policy(
        &self,
        conn: &mut AnyConnection,
        kernel: &Services<'_>,
        user_id: i64,
    ) -> Result<Passage, ApiError> {
        let user = kernel::users::by_id(conn, user_id).await?;
        let Some(user) = user.filter(|u| self.config.required.applies(u.admin)) else {
            store::forget_grace(conn, user_id).await?;
            return Ok(Passage::Open);
        };
        let now = kernel::db::now();
        let (started, first) = store::grace_start(conn, user_id, now).await?;
        let grace = i64::try_from(self.config.grace_period).unwrap_or(i64::MAX);
        let deadline = started.saturating_add(grace);
        if now < deadline {
            let by = kernel::dates::http_date_from_unix(deadline);
            if first {
                notify::enrolment_required(conn, kernel.mailer, &user, &by).await?;
            }
            let mut keys = serde_json::Map::new();
            keys.insert(REQUIRED_BY.into(), by.into());
            return Ok(Passage::OpenWith(keys));
        }
        let token = self.new_step(conn, user_id, store::Purpose::Enrol).await?;
        Ok(Passage::Refused(
            ApiError::unauthorized(ENROLMENT_REQUIRED).with_data(json!({
                "enrol_token": token,
                "expires_in": self.config.enrol_ttl,
                "methods": ["totp"],
            })),
        ))
    }
}

#[rocket::async_trait]
impl SecondFactor for Factors {
    async fn pass(
        &self,
        conn: &mut AnyConnection,
        kernel: Services<'_>,
        attempt: Attempt<'_>,
        presented: &Presented,
    ) -> Result<Passage, ApiError> {
        let held = store::held(conn, attempt.user_id).await?;
        if !held.any() {
            return self.policy(conn, &kernel, attempt.user_id).await;
        }
        let code = Code::of(
            presented.totp_code.as_deref(),
            presented.recovery_code.as_deref(),
        );
        let Some(code) = code else {
            // A client that knows nothing of second factors shows the message; one that knows
            // sends the code with the step token.
            let token = self
                .new_step(conn, attempt.user_id, store::Purpose::Login)
                .await?;
            return Ok(Passage::Refused(
                ApiError::unauthorized(REQUIRED).with_data(json!({
                    "step_token": token,
                    "expires_in": self.config.step_ttl,
                    "methods": methods(held),
                })),
            ));
        };
        Ok(
            match self
                .check(conn, &kernel, attempt.user_id, code, false)
                .await?
            {
                Checked::Accepted => Passage::Open,
                Checked::Refused(error) => Passage::Refused(error),
            },
        )
    }
}

/// The ways a login's second step can be passed, for an account holding these factors.
fn methods(held: store::Held) -> Vec<&'static str> {
    let mut methods = Vec::with_capacity(3);
    if held.totp {
        methods.push("totp");
    }
    if held.passkeys > 0 {
        methods.push("passkey");
    }
    methods.push("recovery_code");
    methods
}

/// What a user's data export says of their second factors (`two_factor.json`), when they have
/// one: whether TOTP is active, their passkeys (names and dates) and how many recovery codes are
/// left. Never the secret, never a code's digest, never a credential.
struct FactorsExport;

#[rocket::async_trait]
impl kernel::lifecycle::ExportPart for FactorsExport {
    fn file_name(&self) -> &'static str {
        "two_factor.json"
    }

    async fn part(
        &self,
        conn: &mut sqlx::AnyConnection,
        user_id: i64,
    ) -> Result<Option<serde_json::Value>, kernel::error::Failure> {
        let failed = |e| kernel::error::Failure::new("second factors", e);
        let held = store::held(&mut *conn, user_id).await.map_err(failed)?;
        if !held.any() {
            return Ok(None);
        }
        let left = store::recovery_codes_left(&mut *conn, user_id)
            .await
            .map_err(failed)?;
        let rows = store::passkeys(&mut *conn, user_id).await.map_err(failed)?;
        // A passkey's name and dates, never its credential (public key, counter).
        let shown: Vec<_> = rows.iter().map(passkeys::shown).collect();
        Ok(Some(serde_json::json!({
            "totp": held.totp,
            "passkeys": shown,
            "recovery_codes_left": left,
        })))
    }
}
