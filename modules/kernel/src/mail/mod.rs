//! Email: messages are written to the `outbox` table in the same transaction as the change
//! that caused them, and a courier task delivers them (SMTP or .eml files), retrying with
//! exponential backoff. A request never waits on SMTP, and an SMTP outage loses nothing.

mod courier;
mod transport;

use std::sync::Arc;

use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::Notify;

use crate::db::now;
use crate::error::ConfigError;
use crate::error::Failure;
use crate::language::Language;
use crate::metrics::{EmailEvent, Metrics};
use crate::templates::Renderer;
use crate::users::User;

pub use courier::{courier, Courier};
pub use transport::Transport;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:port` (plain, a local relay), `smtp://…?tls=required` (STARTTLS),
    /// `smtps://host` (TLS), credentials as `smtp://user:pass@host` (percent-encoded), or
    /// `file://DIR` (one .eml file per message).
    pub url: String,
    pub from: String,
    /// A PEM certificate (private CA or self-signed) to trust for the SMTP server's TLS, on
    /// top of the public roots.
    pub ca_file: Option<String>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            url: "file://data/outbox".into(),
            from: "Stride <no-reply@localhost>".into(),
            ca_file: None,
        }
    }
}

impl EmailConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        Transport::check(self)?;
        self.from.parse::<Mailbox>().map_err(|e| {
            ConfigError::invalid(
                "email.from",
                format!("not an address ({e}; got {:?})", self.from),
            )
        })?;
        Ok(())
    }
}

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Composes emails from templates and queues them. Managed by the kernel.
#[derive(Clone)]
pub struct Mailer {
    renderer: Renderer,
    /// Where the courier delivers.
    settings: EmailConfig,
    from: Mailbox,
    public_url: String,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl Mailer {
    pub fn new(
        renderer: Renderer,
        settings: &EmailConfig,
        public_url: &str,
        metrics: Metrics,
    ) -> Result<Mailer, ConfigError> {
        let from = settings
            .from
            .parse()
            .map_err(|e| ConfigError::invalid("email.from", e))?;
        Ok(Mailer {
            renderer,
            settings: settings.clone(),
            from,
            public_url: public_url.to_owned(),
            wake: Arc::new(Notify::new()),
            metrics,
        })
    }

    /// The server's public address, on which every link in an email is built.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Renders `email/{lang}/{kind}/{subject,text,html}` for `to`, with `username`, `public_url`
    /// and `context` available to the templates.
    pub fn compose(
        &self,
        kind: &str,
        lang: &str,
        to: &str,
        username: &str,
        context: impl Serialize,
    ) -> Result<Email, Failure> {
        let context = minijinja::context! {
            username => username, public_url => &self.public_url, lang => lang, ..minijinja::Value::from_serialize(&context)
        };
        let base = format!("email/{lang}/{kind}");
        Ok(Email {
            to: to.to_owned(),
            subject: self
                .renderer
                .render(&format!("{base}/subject"), &context)?
                .trim()
                .to_owned(),
            text: self.renderer.render(&format!("{base}/text"), &context)?,
            html: self.renderer.render(&format!("{base}/html"), &context)?,
        })
    }

    /// Puts a message in the outbox, inside the caller's transaction. Call `wake` after the
    /// commit so this instance's courier sends it at once.
    pub async fn enqueue(
        &self,
        conn: &mut AnyConnection,
        email: &Email,
    ) -> Result<(), sqlx::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| sqlx::Error::Protocol(format!("no OS randomness: {e}")))?;
        let domain = self.from.email.domain();
        let message_id = format!("<{}@{domain}>", hex::encode(id));
        let now = now();
        sqlx::query(
            "INSERT INTO outbox (message_id, recipient, subject, text_body, html_body, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $6)",
        )
        .bind(message_id)
        .bind(&email.to)
        .bind(&email.subject)
        .bind(&email.text)
        .bind(&email.html)
        .bind(now)
        .execute(conn)
        .await?;
        // Counted when written: a transaction rolled back afterwards would have counted one
        // that never leaves.
        self.metrics.email(EmailEvent::Queued);
        Ok(())
    }

    /// Drops the messages to `recipient` that have not left yet (an account being deleted):
    /// they are never sent. Inside the caller's transaction.
    pub async fn drop_pending_to(
        &self,
        conn: &mut AnyConnection,
        recipient: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM outbox WHERE recipient = $1 AND sent_at IS NULL AND failed_at IS NULL",
        )
        .bind(recipient)
        .execute(conn)
        .await?;
        Ok(done.rows_affected())
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The "your password was changed" notice, after any password change.
    pub async fn password_changed(
        &self,
        conn: &mut AnyConnection,
        user: &User,
    ) -> Result<(), Failure> {
        let lang = Language::of_user(user.language.as_deref()).code();
        let email = self.compose("password_changed", lang, &user.email, &user.username, ())?;
        self.enqueue(conn, &email)
            .await
            .map_err(|e| Failure::new("the outbox", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_urls() {
        for ok in [
            "file://data/outbox",
            "smtp://127.0.0.1:2525",
            "smtps://mail.example.org",
            "smtp://user:p%40ss@mail.example.org:587?tls=required",
        ] {
            assert!(
                EmailConfig {
                    url: ok.into(),
                    ..Default::default()
                }
                .validate()
                .is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "mail.example.org", "http://x", "smtp://", "file://"] {
            let e = EmailConfig {
                url: bad.into(),
                ..Default::default()
            }
            .validate()
            .unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("invalid configuration: email.url"),
                "{bad}: {e}"
            );
        }
        let e = EmailConfig {
            from: "nobody".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: email.from"),
            "{e}"
        );
    }
}
