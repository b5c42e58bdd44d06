//! `stride users …`: the accounts an operator manages from the command line, with the server's
//! configuration and database, and the API's rules (the last admin stays; a deletion takes
//! everything of the account in one transaction). Each command does all of its work or none,
//! prints its data on stdout and its outcome on stderr, and exits 0 on success, 1 when refused.

use std::io::Read as _;

use kernel::users::{self, InsertError, Listing, Order};
use kernel::validate::{Email, Password, Username};
use kernel::{Config, Db, Passwords};
use rocket::{Ignite, Rocket};

/// What the commands need of an ignited server.
pub struct Accounts<'a> {
    pub db: &'a Db,
    pub config: &'a Config,
    pub passwords: &'a Passwords,
    pub mailer: &'a kernel::Mailer,
    pub rocket: &'a Rocket<Ignite>,
}

impl<'a> Accounts<'a> {
    pub fn of(rocket: &'a Rocket<Ignite>) -> Result<Accounts<'a>, String> {
        use rocket_db_pools::Database as _;
        Ok(Accounts {
            db: Db::fetch(rocket).ok_or("the database did not start")?,
            config: rocket.state().ok_or("the configuration is not loaded")?,
            passwords: rocket.state().ok_or("the password workers did not start")?,
            mailer: rocket.state().ok_or("the mailer did not start")?,
            rocket,
        })
    }

    /// Every account, in registration order: name, address, admin or not, registration date.
    pub async fn list(&self) -> Result<String, String> {
        let mut conn = self.db.acquire().await.map_err(|e| e.to_string())?;
        let mut out = format!(
            "{:<12}  {:<40}  {:<5}  {}\n",
            "USERNAME", "EMAIL", "ADMIN", "CREATED"
        );
        for page in 1.. {
            let listing = Listing {
                contains: None,
                order: Order::Registration,
                page,
                per_page: 500,
            };
            let (found, _) = users::list(&mut conn, &listing)
                .await
                .map_err(|e| e.to_string())?;
            if found.is_empty() {
                break;
            }
            for user in found {
                let created = kernel::dates::http_date_from_unix(user.created_at);
                let admin = if user.admin { "yes" } else { "no" };
                out.push_str(&format!(
                    "{:<12}  {:<40}  {admin:<5}  {created}\n",
                    user.username, user.email
                ));
            }
        }
        Ok(out)
    }

    /// Makes an account, whatever the registration settings (the operator decides). With
    /// `password_stdin` the password is read from standard input (the whole of it, less one
    /// final line break) and checked as registration checks it; otherwise the account gets a
    /// password no one knows and a reset link by email, so the person sets their own.
    pub async fn create(
        &self,
        name: &str,
        email: &str,
        password_stdin: bool,
    ) -> Result<String, String> {
        let username =
            Username::parse(name).map_err(|lines| lines.concat().trim_end().to_owned())?;
        let email = Email::parse(email).map_err(|line| line.trim_end().to_owned())?;
        let hash = if password_stdin {
            // Read no more than a password can be (128 characters of up to 4 bytes, a line
            // break): whatever is piped in, the command holds a few hundred bytes at most.
            let limit = 4 * kernel::config::MAX_PASSWORD_LENGTH + 2;
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(u64::try_from(limit + 1).unwrap_or(u64::MAX))
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            if bytes.len() > limit {
                return Err(format!(
                    "password: {} characters maximum",
                    kernel::config::MAX_PASSWORD_LENGTH
                ));
            }
            let typed = String::from_utf8(bytes)
                .map_err(|_| "the password on standard input is not UTF-8".to_owned())?;
            let typed = typed.strip_suffix('\n').unwrap_or(&typed);
            let typed = typed.strip_suffix('\r').unwrap_or(typed);
            let min = self.config.passwords.min_length;
            let password = Password::parse(typed, typed, min)
                .map_err(|problems| lines(problems.iter().map(|p| p.line())))?;
            let words = kernel::validate::account_words(name, email.as_str());
            let strength = self.config.passwords.min_strength;
            if let Some(problem) = self
                .passwords
                .screen(&password, &words, strength)
                .await
                .map_err(|e| e.message.to_string())?
            {
                return Err(problem.line().trim_end().to_owned());
            }
            self.passwords
                .hash(password.into_inner())
                .await
                .map_err(|e| e.message.to_string())?
        } else {
            if !cfg!(feature = "password_reset") {
                return Err(
                    "no password given, and this build has no password reset module to \
                            send a link: pass --password-stdin"
                        .into(),
                );
            }
            let mut secret = [0u8; 32];
            // A password no one is told: the person sets theirs through the emailed link.
            getrandom::fill(&mut secret).map_err(|e| format!("no OS randomness: {e}"))?;
            self.passwords
                .hash(hex::encode(secret))
                .await
                .map_err(|e| e.message.to_string())?
        };
        let mut tx = kernel::db::begin_write(self.db)
            .await
            .map_err(|e| e.to_string())?;
        let id = match users::insert(
            &mut tx,
            &username,
            &email,
            &hash,
            users::AccountState::Active,
        )
        .await
        {
            Ok(id) => id,
            Err(InsertError::Duplicate) => return Err("sorry, that user already exists".into()),
            Err(InsertError::Database(e)) => return Err(e.to_string()),
        };
        let mut outcome = format!("{} created", username.as_str());
        if !password_stdin {
            let user = users::by_id(&mut tx, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the new account vanished")?;
            self.queue_reset_link(&mut tx, &user).await?;
            outcome.push_str(&format!(
                "; a link to set a password is queued for {} (sent by a running server)",
                user.email
            ));
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(outcome)
    }

    #[cfg(feature = "password_reset")]
    async fn queue_reset_link(
        &self,
        tx: &mut kernel::db::WriteTx,
        user: &users::User,
    ) -> Result<(), String> {
        let section: password_reset::PasswordResetConfig =
            kernel::config::section(self.rocket.figment()).map_err(|e| e.to_string())?;
        password_reset::queue_reset_link(
            tx,
            &self.config.public_url,
            section.token_ttl,
            self.mailer,
            user,
        )
        .await
        .map_err(|e| e.to_string())
    }

    #[cfg(not(feature = "password_reset"))]
    async fn queue_reset_link(
        &self,
        _: &mut kernel::db::WriteTx,
        _: &users::User,
    ) -> Result<(), String> {
        Err("this build has no password reset module".into())
    }

    /// Grants admin rights (kernel store: no rule can refuse it).
    pub async fn grant_admin(&self, name: &str) -> Result<String, String> {
        let mut conn = self.db.acquire().await.map_err(|e| e.to_string())?;
        if !users::set_admin(&mut conn, name)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err(format!("no user named '{name}'"));
        }
        Ok(format!("{name} is now an admin"))
    }

    /// Removes a user's second factors (docs/two-factor.md, "Lost factors").
    #[cfg(feature = "two_factor")]
    pub async fn remove_factors(&self, name: &str) -> Result<String, String> {
        if two_factor::remove_factors(self.db, self.mailer, name).await? {
            Ok(format!(
                "{name}'s second factors are removed and their sessions ended; where \
                 two_factor.required applies to them, a new grace period starts at their next login"
            ))
        } else {
            Err(format!("{name} has no second factor"))
        }
    }

    #[cfg(feature = "users")]
    pub async fn remove_admin(&self, name: &str) -> Result<String, String> {
        match ::users::set_admin_rights(self.db, ::users::Actor::Operator, name, false).await {
            Ok(user) => Ok(format!("{} is no longer an admin", user.username)),
            Err(refusal) => Err(refused(name, refusal, "its admin rights cannot be removed")),
        }
    }

    #[cfg(feature = "users")]
    pub async fn delete(&self, name: &str) -> Result<String, String> {
        match ::users::delete_account(self.db, self.mailer, ::users::Actor::Operator, name).await {
            Ok(user) => Ok(format!(
                "{} deleted, with everything of the account",
                user.username
            )),
            Err(refusal) => Err(refused(name, refusal, "it cannot be deleted")),
        }
    }
}

#[cfg(feature = "users")]
fn refused(name: &str, refusal: ::users::Refusal, what: &str) -> String {
    match refusal {
        ::users::Refusal::NoUser => format!("no user named '{name}'"),
        ::users::Refusal::LastAdmin => {
            format!("{name} is the only admin, so {what}: make another user admin first")
        }
        other => other.to_string(),
    }
}

fn lines(lines: impl Iterator<Item = String>) -> String {
    lines.collect::<String>().trim_end().replace('\n', "; ")
}
