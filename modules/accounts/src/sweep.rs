//! The module's background sweep, on every instance: deletes the accounts that stayed pending
//! longer than `accounts.unconfirmed_ttl` (with every trace: their row and what refers to it,
//! their queued emails, what the throttle holds of their address; confirmed accounts are never
//! touched), the links that can no longer be used, and the data exports that expired (their
//! archives with them). It runs every `unconfirmed_ttl / 2`
//! seconds (at least 1, at most 60) and stops with the server.

use std::sync::Mutex;
use std::time::Duration;

use kernel::db::now;
use kernel::validate::email_key;
use kernel::{throttle, users, Db, Mailer};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Orbit, Rocket, Shutdown};
use rocket_db_pools::Database as _;
use sqlx::AnyPool;
use tokio::task::JoinHandle;

use crate::tokens;
use crate::AccountsConfig;

/// Accounts deleted in one transaction, at most.
const BATCH: i64 = 100;
/// Used and expired links are kept this long (seconds) before they are deleted.
const DEAD_TOKEN_GRACE: i64 = 24 * 3600;

pub struct Sweeper {
    config: AccountsConfig,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Sweeper {
    pub fn new(config: AccountsConfig) -> Sweeper {
        Sweeper {
            config,
            task: Mutex::new(None),
        }
    }
}

#[rocket::async_trait]
impl Fairing for Sweeper {
    fn info(&self) -> Info {
        Info {
            name: "Stride accounts sweep",
            kind: Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let (Some(db), Some(mailer)) = (Db::fetch(rocket), rocket.state::<Mailer>()) else {
            tracing::error!("accounts sweep: no database or mailer; unconfirmed accounts stay");
            return;
        };
        let pool: AnyPool = (**db).clone();
        let task = tokio::spawn(run(
            pool,
            mailer.clone(),
            self.config.unconfirmed_ttl,
            rocket.shutdown(),
        ));
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
    }

    async fn on_shutdown(&self, _: &Rocket<Orbit>) {
        let task = self.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

async fn run(pool: AnyPool, mailer: Mailer, unconfirmed_ttl: u64, shutdown: Shutdown) {
    let every = Duration::from_secs((unconfirmed_ttl / 2).clamp(1, 60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = sweep(&pool, &mailer, unconfirmed_ttl).await {
            tracing::warn!("accounts sweep: {e}; tried again later");
        }
    }
}

/// One pass; the number of accounts deleted.
pub async fn sweep(
    pool: &AnyPool,
    mailer: &Mailer,
    unconfirmed_ttl: u64,
) -> Result<u64, sqlx::Error> {
    let before = now().saturating_sub(i64::try_from(unconfirmed_ttl).unwrap_or(i64::MAX));
    let mut deleted = 0;
    loop {
        let mut tx = kernel::db::begin_write(pool).await?;
        let stale = users::pending_before(&mut tx, before, BATCH).await?;
        for (id, email) in &stale {
            // Still pending now, in this transaction: a confirmation that won the race keeps
            // its account.
            if users::delete_if_pending(&mut tx, *id).await? {
                mailer.drop_pending_to(&mut tx, email).await?;
                throttle::forget_account(&mut tx, &email_key(email)).await?;
                deleted += 1;
            }
        }
        tx.commit().await?;
        if stale.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "unconfirmed accounts deleted");
    }
    let mut tx = kernel::db::begin_write(pool).await?;
    tokens::delete_dead(&mut tx, now().saturating_sub(DEAD_TOKEN_GRACE)).await?;
    let expired = crate::export::delete_expired(&mut tx).await?;
    users::release_addresses(&mut tx, None, now()).await?;
    tx.commit().await?;
    if expired > 0 {
        tracing::info!(expired, "expired data exports deleted");
    }
    Ok(deleted)
}
