//! What follows every change of a user's factors: an email to the user (en/fr,
//! templates/email/*/two_factor_changed) and, but for a recovery code used at a login, the end
//! of their other sessions, in the transaction of the change.

use kernel::language::Language;
use kernel::users::User;
use kernel::{auth, ApiError, Db, Mailer};
use serde_json::json;
use sqlx::AnyConnection;

use crate::store;

#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Enabled,
    /// TOTP removed while passkeys stay.
    TotpRemoved,
    /// A passkey registered; `first`: the account's first factor (recovery codes were made).
    PasskeyAdded {
        name: &'a str,
        first: bool,
    },
    /// A passkey removed; `last`: the account's last factor (second factors are off).
    PasskeyRemoved {
        name: &'a str,
        last: bool,
    },
    Disabled,
    RecoveryCodes,
    RecoveryCodeUsed {
        left: i64,
    },
    RemovedByOperator,
}

impl Change<'_> {
    fn name(self) -> &'static str {
        match self {
            Change::Enabled => "enabled",
            Change::TotpRemoved => "totp_removed",
            Change::PasskeyAdded { .. } => "passkey_added",
            Change::PasskeyRemoved { .. } => "passkey_removed",
            Change::Disabled => "disabled",
            Change::RecoveryCodes => "recovery_codes",
            Change::RecoveryCodeUsed { .. } => "recovery_code_used",
            Change::RemovedByOperator => "removed_by_operator",
        }
    }
}

/// Queues the email of `change` and ends the user's sessions but `keep`; returns how many
/// ended. The caller commits, then wakes the courier.
pub async fn changed(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    user: &User,
    change: Change<'_>,
    keep: Option<&str>,
) -> Result<u64, ApiError> {
    let lang = Language::of_user(user.language.as_deref()).code();
    let (left, passkey, edge) = match change {
        Change::RecoveryCodeUsed { left } => (left, "", false),
        Change::PasskeyAdded { name, first } => (0, name, first),
        Change::PasskeyRemoved { name, last } => (0, name, last),
        _ => (0, "", false),
    };
    let email = mailer
        .compose(
            "two_factor_changed",
            lang,
            &user.email,
            &user.username,
            json!({ "change": change.name(), "left": left, "passkey": passkey, "edge": edge }),
        )
        .map_err(|e| ApiError::internal("two-factor email", e))?;
    mailer.enqueue(conn, &email).await?;
    let ended = match change {
        Change::RecoveryCodeUsed { .. } => 0,
        _ => auth::close_all(conn, user.id, keep).await?,
    };
    tracing::info!(
        user_id = user.id,
        change = change.name(),
        ended,
        "second factors changed"
    );
    Ok(ended)
}

/// The reminder of a grace period's end (sent once: when the grace period begins), queued in
/// the login's transaction; the courier's next round sends it.
pub async fn enrolment_required(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    user: &User,
    deadline: &str,
) -> Result<(), ApiError> {
    let lang = Language::of_user(user.language.as_deref()).code();
    let email = mailer
        .compose(
            "two_factor_required",
            lang,
            &user.email,
            &user.username,
            json!({ "deadline": deadline }),
        )
        .map_err(|e| ApiError::internal("two-factor email", e))?;
    mailer.enqueue(conn, &email).await?;
    Ok(())
}

/// Removes every factor of the account named `username` (a lost phone: `stride users
/// remove-factors`), ends all its sessions and tells the user. Ok(false) when it had none.
/// Under the policy (`two_factor.required`), the account's grace period starts again at its next
/// login.
pub async fn remove_factors(db: &Db, mailer: &Mailer, username: &str) -> Result<bool, String> {
    let mut tx = kernel::db::begin_write(db)
        .await
        .map_err(|e| e.to_string())?;
    let user = kernel::users::by_username(&mut tx, username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named '{username}'"))?;
    let removed = store::remove_all(&mut tx, user.id)
        .await
        .map_err(|e| e.to_string())?;
    if removed {
        store::forget_grace(&mut tx, user.id)
            .await
            .map_err(|e| e.to_string())?;
        changed(&mut tx, mailer, &user, Change::RemovedByOperator, None)
            .await
            .map_err(|e| e.message.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    mailer.wake();
    Ok(removed)
}
