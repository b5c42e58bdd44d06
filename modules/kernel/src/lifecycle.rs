//! The account lifecycle's hooks: what a lifecycle module (email confirmation, email change,
//! account states) offers the rest of the server, which knows no module. The kernel manages a
//! [`Lifecycle`] at its stage; the module fills it in from its fairing:
//!
//! - [`Lifecycle::mount`]: the user object carries the lifecycle's keys (`is_active`,
//!   `email_to_confirm`, `role`), wherever a module renders it ([`Lifecycle::user_json`]);
//! - [`Lifecycle::require_confirmation`]: new accounts start pending, and the module's
//!   [`SignUpConfirmation`] sends their link, in the registering transaction;
//! - [`Lifecycle::offer_email_changes`]: an admin can move an account to a new address
//!   ([`EmailChanges`], the lifecycle module's links);
//! - [`Lifecycle::offer_reset_links`]: an admin can send an account a reset link
//!   ([`ResetLinks`], the password-reset module's);
//! - [`Lifecycle::offer_pictures`]: a data export carries the user's picture ([`PictureSource`],
//!   the pictures module's);
//! - [`Lifecycle::require_second_factor`]: a login whose password matched passes a second
//!   step before its session opens ([`SecondFactor`], crate::second_factor);
//! - [`Lifecycle::gate_passwords`]: a module of other ways in (an identity provider's) may
//!   close password login and registration at run time ([`PasswordGate`]); the login and
//!   registration routes ask [`Lifecycle::password_refusal`] first.
//!
//! The kernel itself sets one more: with `cookies.enabled`, the user object also carries
//! FitTrackee 1.x's keys ([`User::add_1x_keys`]), which the web client of cookie sessions reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use sqlx::AnyConnection;

use crate::error::Failure;
use crate::mail::Mailer;
use crate::second_factor::SecondFactor;
use crate::users::{User, UserKeys, UserObject};
use crate::validate::Email;

/// Sends the confirmation link of an account that has just registered pending.
#[rocket::async_trait]
pub trait SignUpConfirmation: Send + Sync + 'static {
    /// Issues the account's confirmation link and queues its email through `mailer`, in the
    /// caller's transaction (the caller wakes the courier after its commit).
    async fn send(
        &self,
        conn: &mut AnyConnection,
        mailer: &Mailer,
        user: &User,
    ) -> Result<(), Failure>;
}

/// Starts a change of an account's address that an admin asked for: the link to the new
/// address and the notice to the current one, without a way back from the old address.
#[rocket::async_trait]
pub trait EmailChanges: Send + Sync + 'static {
    async fn request_by_admin(
        &self,
        conn: &mut AnyConnection,
        mailer: &Mailer,
        user: &User,
        new_email: &Email,
    ) -> Result<(), Failure>;
}

/// Mails an account a password-reset link, in the caller's transaction.
#[rocket::async_trait]
pub trait ResetLinks: Send + Sync + 'static {
    async fn send(
        &self,
        conn: &mut AnyConnection,
        mailer: &Mailer,
        user: &User,
    ) -> Result<(), Failure>;
}

/// A user's picture as it is served: its bytes and its file extension (`png`, `jpg`, `gif`).
#[rocket::async_trait]
pub trait PictureSource: Send + Sync + 'static {
    async fn picture(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<Option<(Vec<u8>, &'static str)>, Failure>;
}

/// A module's share of a user's data export: one JSON file of the archive, named by the
/// module (`sso_identities.json`), or none when the module holds nothing of the user. Never
/// a secret (no sealed factor, no digest of a code).
#[rocket::async_trait]
pub trait ExportPart: Send + Sync + 'static {
    /// The file's name in the archive.
    fn file_name(&self) -> &'static str;

    async fn part(&self, conn: &mut AnyConnection, user_id: i64) -> Result<Option<Value>, Failure>;
}

/// What a password is used for, when a [`PasswordGate`] is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordUse {
    /// A password login.
    Login,
    /// A registration with a password.
    Registration,
}

/// Whether passwords still open sessions and make accounts. The gate owns its answer: the
/// message of the 403 that refuses, or none when passwords are open.
#[rocket::async_trait]
pub trait PasswordGate: Send + Sync + 'static {
    async fn refusal(
        &self,
        conn: &mut AnyConnection,
        usage: PasswordUse,
    ) -> Result<Option<&'static str>, Failure>;
}

#[derive(Default)]
pub struct Lifecycle {
    mounted: AtomicBool,
    keys_1x: AtomicBool,
    confirmation: OnceLock<Arc<dyn SignUpConfirmation>>,
    email_changes: OnceLock<Arc<dyn EmailChanges>>,
    reset_links: OnceLock<Arc<dyn ResetLinks>>,
    pictures: OnceLock<Arc<dyn PictureSource>>,
    second_factor: OnceLock<Arc<dyn SecondFactor>>,
    password_gate: OnceLock<Arc<dyn PasswordGate>>,
    export_parts: std::sync::Mutex<Vec<Arc<dyn ExportPart>>>,
}

impl Lifecycle {
    /// A lifecycle module is mounted: the user object carries its keys.
    pub fn mount(&self) {
        self.mounted.store(true, Ordering::Relaxed);
    }

    pub fn mounted(&self) -> bool {
        self.mounted.load(Ordering::Relaxed)
    }

    /// The user object carries FitTrackee 1.x's keys (the kernel says so when `cookies.enabled`).
    pub fn serve_1x_keys(&self, on: bool) {
        self.keys_1x.store(on, Ordering::Relaxed);
    }

    /// New accounts wait for their emailed link, which `confirmation` sends.
    pub fn require_confirmation(&self, confirmation: Arc<dyn SignUpConfirmation>) {
        let _ = self.confirmation.set(confirmation);
    }

    /// Who confirms new accounts, when they must be confirmed.
    pub fn confirmation(&self) -> Option<&dyn SignUpConfirmation> {
        self.confirmation.get().map(|c| &**c)
    }

    pub fn offer_email_changes(&self, changes: Arc<dyn EmailChanges>) {
        let _ = self.email_changes.set(changes);
    }

    pub fn email_changes(&self) -> Option<&dyn EmailChanges> {
        self.email_changes.get().map(|c| &**c)
    }

    pub fn offer_reset_links(&self, links: Arc<dyn ResetLinks>) {
        let _ = self.reset_links.set(links);
    }

    pub fn reset_links(&self) -> Option<&dyn ResetLinks> {
        self.reset_links.get().map(|l| &**l)
    }

    pub fn offer_pictures(&self, pictures: Arc<dyn PictureSource>) {
        let _ = self.pictures.set(pictures);
    }

    /// Who keeps users' pictures (a data export carries the user's).
    pub fn pictures(&self) -> Option<Arc<dyn PictureSource>> {
        self.pictures.get().cloned()
    }

    /// Logins pass `factor`'s step once their password matched.
    pub fn require_second_factor(&self, factor: Arc<dyn SecondFactor>) {
        let _ = self.second_factor.set(factor);
    }

    /// The second step of a login, when a module keeps second factors.
    pub fn second_factor(&self) -> Option<&dyn SecondFactor> {
        self.second_factor.get().map(|f| &**f)
    }

    /// A module's data joins every user's export ([`ExportPart`]).
    pub fn offer_export_part(&self, part: Arc<dyn ExportPart>) {
        if let Ok(mut parts) = self.export_parts.lock() {
            parts.push(part);
        }
    }

    /// The modules' shares of an export, in the order they were offered.
    pub fn export_parts(&self) -> Vec<Arc<dyn ExportPart>> {
        self.export_parts
            .lock()
            .map(|parts| parts.clone())
            .unwrap_or_default()
    }

    /// Passwords may be closed at run time by `gate`.
    pub fn gate_passwords(&self, gate: Arc<dyn PasswordGate>) {
        let _ = self.password_gate.set(gate);
    }

    /// The message of the 403 refusing this use of a password, or none when passwords are
    /// open (always, without a gate).
    pub async fn password_refusal(
        &self,
        conn: &mut AnyConnection,
        usage: PasswordUse,
    ) -> Result<Option<&'static str>, Failure> {
        match self.password_gate.get() {
            Some(gate) => gate.refusal(conn, usage).await,
            None => Ok(None),
        }
    }

    /// The user object of FitTrackee's API, with the lifecycle's keys and FitTrackee 1.x's
    /// when they are served.
    pub fn user_json(&self, user: &User) -> Value {
        self.user_object(user).to_value()
    }

    /// The same object, to serialize straight into a response ([`crate::users::UserObject`]).
    pub fn user_object<'u>(&self, user: &'u User) -> UserObject<'u> {
        user.object(UserKeys {
            lifecycle: self.mounted(),
            fittrackee_1x: self.keys_1x.load(Ordering::Relaxed),
        })
    }
}
