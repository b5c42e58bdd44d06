//! Which account a provider's identity opens (docs/sso.md, "Linking rules"):
//!
//! 1. an identity already linked opens its account;
//! 2. else an account whose email is the identity's, when the provider says it verified that
//!    email, is linked and opened;
//! 3. else, with a verified email and registration open (the admin's switch and `max_users`),
//!    an account is made, with a username derived from the identity (FitTrackee's rules; a
//!    taken one gets a number) and no password;
//! 4. else nothing is opened, and the browser is told why.

use kernel::db::WriteTx;
use kernel::users::{self, AccountState, InsertError, User};
use kernel::validate::{Email, Username};
use kernel::{settings, ApiError};

use crate::oidc::Identity;
use crate::{store, Outcome};

/// What an account made through SSO has for a password hash: no PHC string, so that no
/// password ever verifies against it (a password reset can give it one).
pub const NO_PASSWORD: &str = "!sso-no-password";

/// Why no account was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The provider gave no email, or did not verify it, and the identity is not linked.
    Unverified,
    /// No account has the email and registration is closed.
    Closed,
    /// The account is pending or deactivated.
    Inactive,
    /// The address is kept for another account (the way back of an email change), or an
    /// account took it meanwhile.
    Reserved,
}

/// The account the identity opens, linking or making it as the rules say (in `tx`, which the
/// caller commits). Under the accounts lock (kernel::db::lock_accounts), taken first: two
/// first logins of one identity at once (two tabs, a double click) then run one after the
/// other, and the second finds the first's link instead of failing on it; account deletions
/// and admin changes wait likewise.
pub async fn resolve(
    tx: &mut WriteTx,
    provider: &str,
    identity: &Identity,
) -> Result<Result<(User, Outcome), Refusal>, ApiError> {
    kernel::db::lock_accounts(tx).await?;
    if let Some(link) = store::link_of_subject(tx, provider, &identity.subject).await? {
        let email = identity
            .email_verified
            .then_some(identity.email.as_deref())
            .flatten();
        store::touch(tx, link.id, email).await?;
        let user = users::by_id(tx, link.user_id)
            .await?
            .ok_or_else(|| ApiError::internal("sso", "a linked account is gone"))?;
        return Ok(active(user, Outcome::Known));
    }
    let Some(email) = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(|e| Email::parse(e).ok())
    else {
        return Ok(Err(Refusal::Unverified));
    };
    if let Some(user) = users::by_email(tx, &email.key()).await? {
        if user.state != AccountState::Active {
            return Ok(Err(Refusal::Inactive));
        }
        store::link(
            tx,
            user.id,
            provider,
            &identity.subject,
            Some(email.as_str()),
        )
        .await?;
        tracing::info!(
            user_id = user.id,
            provider,
            "identity linked by its verified email"
        );
        return Ok(Ok((user, Outcome::Linked)));
    }
    // Under the settings row's lock, as a registration checks it.
    if !settings::load_locked(tx).await?.is_registration_enabled() {
        return Ok(Err(Refusal::Closed));
    }
    let Some(user_id) = create(tx, identity, &email).await? else {
        return Ok(Err(Refusal::Reserved));
    };
    store::link(
        tx,
        user_id,
        provider,
        &identity.subject,
        Some(email.as_str()),
    )
    .await?;
    let user = users::by_id(tx, user_id)
        .await?
        .ok_or_else(|| ApiError::internal("sso", "the new account is gone"))?;
    tracing::info!(user_id, provider, "account made through single sign-on");
    Ok(Ok((user, Outcome::Created)))
}

fn active(user: User, outcome: Outcome) -> Result<(User, Outcome), Refusal> {
    if user.state == AccountState::Active {
        Ok((user, outcome))
    } else {
        Err(Refusal::Inactive)
    }
}

/// Makes an active account with a free username derived from the identity; none when the
/// address is taken after all.
async fn create(
    tx: &mut WriteTx,
    identity: &Identity,
    email: &Email,
) -> Result<Option<i64>, ApiError> {
    let base = username_base(identity, email);
    for attempt in 0..100u32 {
        let candidate = numbered(&base, attempt);
        let Ok(username) = Username::parse(&candidate) else {
            continue;
        };
        if users::username_taken(tx, &username).await? {
            continue;
        }
        return match users::insert(tx, &username, email, NO_PASSWORD, AccountState::Active).await {
            Ok(id) => Ok(Some(id)),
            // The address was reserved (an email change's way back) or taken meanwhile.
            Err(InsertError::Duplicate) => Ok(None),
            Err(InsertError::Database(e)) => Err(e.into()),
        };
    }
    Err(ApiError::internal("sso", "no free username"))
}

/// A username from the identity as FitTrackee's rules allow (3 to 12 of `[A-Za-z0-9_]`): the
/// provider's preferred username, else the email's local part, other characters as `_`.
pub fn username_base(identity: &Identity, email: &Email) -> String {
    let source = identity
        .preferred_username
        .as_deref()
        .filter(|u| u.chars().any(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| email.as_str().split('@').next().unwrap_or_default());
    let mut base: String = source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(12)
        .collect();
    if base.chars().count() < 3 {
        base = format!("user_{base}");
    }
    base
}

/// The `attempt`-th candidate: the base, then the base cut to leave room for a number.
pub fn numbered(base: &str, attempt: u32) -> String {
    if attempt == 0 {
        return base.chars().take(12).collect();
    }
    let suffix = (attempt + 1).to_string();
    let keep = 12 - suffix.len();
    let mut name: String = base.chars().take(keep).collect();
    name.push_str(&suffix);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(preferred: Option<&str>) -> Identity {
        Identity {
            subject: "s".into(),
            email: None,
            email_verified: true,
            preferred_username: preferred.map(str::to_owned),
        }
    }

    #[test]
    fn usernames_follow_fittrackee_rules() {
        let email = Email::parse("jean.dupont@example.com").expect("an email");
        assert_eq!(username_base(&identity(None), &email), "jean_dupont");
        assert_eq!(
            username_base(&identity(Some("a-very-long-name-indeed")), &email),
            "a_very_long_"
        );
        assert_eq!(username_base(&identity(Some("jo")), &email), "user_jo");
        assert_eq!(numbered("a_very_long_", 1), "a_very_long2");
        assert_eq!(numbered("sam", 0), "sam");
        assert_eq!(numbered("sam", 9), "sam10");
        for attempt in 0..100 {
            assert!(Username::parse(&numbered("a_very_long_", attempt)).is_ok());
        }
    }
}
