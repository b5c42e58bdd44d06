//! The account lifecycle's hooks: what a lifecycle module (email confirmation, email change,
//! account states) offers the rest of the server, which knows no module. The kernel manages a
//! [`Lifecycle`] at its stage; the module fills it in from its fairing:
//!
//! - [`Lifecycle::mount`]: the user object carries the lifecycle's keys (`is_active`,
//!   `email_to_confirm`, `role`), wherever a module renders it ([`Lifecycle::user_json`]);
//! - [`Lifecycle::require_confirmation`]: new accounts start pending, and the module's
//!   [`SignUpConfirmation`] sends their link, in the registering transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use sqlx::AnyConnection;

use crate::error::Failure;
use crate::mail::Mailer;
use crate::users::User;

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

#[derive(Default)]
pub struct Lifecycle {
    mounted: AtomicBool,
    confirmation: OnceLock<Arc<dyn SignUpConfirmation>>,
}

impl Lifecycle {
    /// A lifecycle module is mounted: the user object carries its keys.
    pub fn mount(&self) {
        self.mounted.store(true, Ordering::Relaxed);
    }

    pub fn mounted(&self) -> bool {
        self.mounted.load(Ordering::Relaxed)
    }

    /// New accounts wait for their emailed link, which `confirmation` sends.
    pub fn require_confirmation(&self, confirmation: Arc<dyn SignUpConfirmation>) {
        let _ = self.confirmation.set(confirmation);
    }

    /// Who confirms new accounts, when they must be confirmed.
    pub fn confirmation(&self) -> Option<&dyn SignUpConfirmation> {
        self.confirmation.get().map(|c| &**c)
    }

    /// The user object of FitTrackee's API, with the lifecycle's keys when they are served.
    pub fn user_json(&self, user: &User) -> Value {
        if self.mounted() {
            user.to_json_with_lifecycle()
        } else {
            user.to_json()
        }
    }
}
