//! The courier: delivers the outbox. One per instance; instances sharing a PostgreSQL database
//! claim messages with `FOR UPDATE SKIP LOCKED`, so each message goes out once.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use std::sync::Mutex;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Orbit, Rocket, Shutdown};
use rocket_db_pools::Database;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::task::JoinHandle;

use super::{Mailer, Transport};
use crate::db::{now, Backend, Db};
use crate::error::Failure;
use crate::metrics::EmailEvent;

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

    /// The message, to the recipient's delivery address (the domain in A-labels). An error is
    /// final: the same row will never make a message.
    fn message(&self, from: &Mailbox) -> Result<Message, Failure> {
        let to = Mailbox::new(None, crate::address::delivery_address(&self.recipient)?);
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
            .map_err(|e| Failure::new("message", e))
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
    // The courier's writes take this process's turn at SQLite's write lock, as the requests'
    // do: with a backlog it writes twice a message, and would otherwise meet them in SQLite's
    // sleeping busy handler.
    let _turn = crate::db::write_turn(pool).await;
    let row = sqlx::query(&sql)
        .bind(now + CLAIM_SECONDS)
        .bind(now)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(Outgoing::from_row).transpose()
}

#[tracing::instrument(name = "delivery", skip_all, fields(id = mail.id))]
async fn deliver(
    pool: &AnyPool,
    transport: &Transport,
    mailer: &Mailer,
    mail: Outgoing,
) -> Result<(), sqlx::Error> {
    let attempts = mail.attempts + 1;
    // A message that cannot be made (a recipient lettre refuses) is given up at once rather
    // than retried for a day.
    let (outcome, final_error) = match mail.message(&mailer.from) {
        Ok(message) => (transport.send(message).await, false),
        Err(e) => (Err(e), true),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(id = mail.id, attempts, "email sent");
            mailer.metrics.email(EmailEvent::Sent);
            // A sent message keeps its headers for the record, not its body: a reset link must
            // not outlive its delivery in clear.
            let _turn = crate::db::write_turn(pool).await;
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
            let give_up = final_error || attempts >= MAX_ATTEMPTS;
            let retry_in = backoff(attempts);
            mailer.metrics.email(if give_up {
                EmailEvent::Abandoned
            } else {
                EmailEvent::Failed
            });
            tracing::warn!(
                id = mail.id,
                attempts,
                retry_in,
                give_up,
                "email not sent: {error}"
            );
            let _turn = crate::db::write_turn(pool).await;
            sqlx::query(
                "UPDATE outbox SET attempts = $1, next_attempt_at = $2, claimed_until = NULL, last_error = $3, \
                 failed_at = $4, text_body = CASE WHEN $4 IS NULL THEN text_body ELSE '' END, \
                 html_body = CASE WHEN $4 IS NULL THEN html_body ELSE '' END WHERE id = $5",
            )
            .bind(attempts)
            .bind(now() + retry_in)
            .bind(error.to_string())
            .bind(give_up.then(now))
            .bind(mail.id)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// The longest a shutdown waits for the message being sent (an SMTP command times out after
/// 20 s): past it the message stays claimed, and is sent again once the claim expires.
const STOP_LIMIT: Duration = Duration::from_secs(25);

/// The courier's fairing: starts delivering at liftoff. At shutdown it stops between two
/// messages and the shutdown waits for it, so the message in flight is either recorded as
/// sent or stays in the outbox, never lost nor sent twice.
pub fn courier() -> Courier {
    Courier(Mutex::new(None))
}

pub struct Courier(Mutex<Option<JoinHandle<()>>>);

#[rocket::async_trait]
impl Fairing for Courier {
    fn info(&self) -> Info {
        Info {
            name: "Stride courier",
            kind: Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let (Some(db), Some(mailer)) = (Db::fetch(rocket), rocket.state::<Mailer>()) else {
            tracing::error!("courier: no database or mailer, emails will wait in the outbox");
            return;
        };
        let transport = match Transport::open(&mailer.settings) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("courier: {e}; emails will wait in the outbox");
                return;
            }
        };
        let pool: AnyPool = (**db).clone();
        let handle = tokio::spawn(run(pool, transport, mailer.clone(), rocket.shutdown()));
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(handle);
        }
    }

    async fn on_shutdown(&self, _: &Rocket<Orbit>) {
        let handle = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            match tokio::time::timeout(STOP_LIMIT, handle).await {
                Ok(_) => tracing::info!("courier stopped"),
                Err(_) => tracing::warn!(
                    "courier: still sending after {STOP_LIMIT:?}; that message stays in the outbox"
                ),
            }
        }
    }
}

/// True once a shutdown was requested (without waiting for one).
async fn stopping(shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        biased;
        _ = shutdown => true,
        () = std::future::ready(()) => false,
    }
}

async fn run(pool: AnyPool, transport: Transport, mailer: Mailer, mut shutdown: Shutdown) {
    let backend = match Backend::of(&pool).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("courier: {e}");
            return;
        }
    };
    loop {
        // Everything due, one message at a time, checking for a shutdown between two.
        while !stopping(&mut shutdown).await {
            match claim(&pool, backend).await {
                Ok(Some(mail)) => {
                    if let Err(e) = deliver(&pool, &transport, &mailer, mail).await {
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
