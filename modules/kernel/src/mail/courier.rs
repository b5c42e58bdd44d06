//! The courier: delivers the outbox. One per instance; instances sharing a PostgreSQL database
//! claim messages with `FOR UPDATE SKIP LOCKED`, so each message goes out once.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use rocket::fairing::AdHoc;
use rocket_db_pools::Database;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Mailer, Transport};
use crate::db::{now, Backend, Db};

/// How long a claim lasts: a courier that died mid-send frees its message after this.
const CLAIM_SECONDS: i64 = 120;
/// Idle polling, for messages queued by other instances.
const POLL: Duration = Duration::from_secs(1);
/// Retries back off exponentially from 2 s to 15 min, and stop after this many attempts
/// (about a day).
const MAX_ATTEMPTS: i64 = 100;

fn backoff(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    (2_i64 << exponent).min(15 * 60)
}

struct Outgoing {
    id: i64,
    message_id: String,
    recipient: String,
    subject: String,
    text: String,
    html: String,
    created_at: i64,
    attempts: i64,
}

impl Outgoing {
    fn from_row(row: &AnyRow) -> Result<Outgoing, sqlx::Error> {
        Ok(Outgoing {
            id: row.try_get("id")?,
            message_id: row.try_get("message_id")?,
            recipient: row.try_get("recipient")?,
            subject: row.try_get("subject")?,
            text: row.try_get("text_body")?,
            html: row.try_get("html_body")?,
            created_at: row.try_get("created_at")?,
            attempts: row.try_get("attempts")?,
        })
    }

    fn message(&self, from: &Mailbox) -> Result<Message, String> {
        let to: Mailbox = self
            .recipient
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&self.subject)
            .message_id(Some(self.message_id.clone()))
            .date(UNIX_EPOCH + Duration::from_secs(u64::try_from(self.created_at).unwrap_or(0)))
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }
}

async fn claim(pool: &AnyPool, backend: Backend) -> Result<Option<Outgoing>, sqlx::Error> {
    let now = now();
    let lock = if backend == Backend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE outbox SET claimed_until = $1 \
         WHERE id = (SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2 \
                     AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY id LIMIT 1 {lock}) \
           AND (claimed_until IS NULL OR claimed_until < $2) \
         RETURNING id, message_id, recipient, subject, text_body, html_body, created_at, attempts"
    );
    let row = sqlx::query(&sql)
        .bind(now + CLAIM_SECONDS)
        .bind(now)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(Outgoing::from_row).transpose()
}

async fn deliver(
    pool: &AnyPool,
    transport: &Transport,
    from: &Mailbox,
    mail: Outgoing,
) -> Result<(), sqlx::Error> {
    let attempts = mail.attempts + 1;
    let outcome = match mail.message(from) {
        Ok(message) => transport.send(message).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(id = mail.id, attempts, "email sent");
            // A sent message keeps its headers for the record, not its body: a reset link must
            // not outlive its delivery in clear.
            sqlx::query(
                "UPDATE outbox SET sent_at = $1, attempts = $2, claimed_until = NULL, last_error = NULL, \
                 text_body = '', html_body = '' WHERE id = $3",
            )
                .bind(now())
                .bind(attempts)
                .bind(mail.id)
                .execute(pool)
                .await?;
        }
        Err(error) => {
            let give_up = attempts >= MAX_ATTEMPTS;
            let retry_in = backoff(attempts);
            tracing::warn!(
                id = mail.id,
                attempts,
                retry_in,
                give_up,
                "email not sent: {error}"
            );
            sqlx::query(
                "UPDATE outbox SET attempts = $1, next_attempt_at = $2, claimed_until = NULL, last_error = $3, \
                 failed_at = $4, text_body = CASE WHEN $4 IS NULL THEN text_body ELSE '' END, \
                 html_body = CASE WHEN $4 IS NULL THEN html_body ELSE '' END WHERE id = $5",
            )
            .bind(attempts)
            .bind(now() + retry_in)
            .bind(error)
            .bind(give_up.then(now))
            .bind(mail.id)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// The courier's fairing: starts delivering at liftoff, stops at shutdown.
pub fn courier() -> AdHoc {
    AdHoc::on_liftoff("Stride courier", |rocket| {
        Box::pin(async move {
            let (Some(db), Some(mailer), Some(config)) = (
                Db::fetch(rocket),
                rocket.state::<Mailer>(),
                rocket.state::<crate::Config>(),
            ) else {
                tracing::error!("courier: no database or mailer, emails will wait in the outbox");
                return;
            };
            let transport = match Transport::open(&config.email) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("courier: {e}; emails will wait in the outbox");
                    return;
                }
            };
            let pool: AnyPool = (**db).clone();
            let mailer = mailer.clone();
            let mut shutdown = rocket.shutdown();
            tokio::spawn(async move {
                let backend = match Backend::of(&pool).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!("courier: {e}");
                        return;
                    }
                };
                loop {
                    loop {
                        match claim(&pool, backend).await {
                            Ok(Some(mail)) => {
                                if let Err(e) = deliver(&pool, &transport, &mailer.from, mail).await
                                {
                                    tracing::error!("courier: recording a delivery: {e}");
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!("courier: reading the outbox: {e}");
                                break;
                            }
                        }
                    }
                    tokio::select! {
                        _ = &mut shutdown => return,
                        () = mailer.wake.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            });
        })
    })
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(
            (backoff(1), backoff(2), backoff(3), backoff(4)),
            (2, 4, 8, 16)
        );
        assert_eq!(backoff(10), 900);
        assert_eq!(backoff(100), 900);
    }
}
