//! Stride in this test process on a real port, as a browser or an SMTP round trip needs: the
//! project's figment on a test database, its emails to a test SMTP server.

use rocket::figment::Figment;

use crate::chromium::wait_for_port;
use crate::helpers::{figment, TestDb};
use crate::mail::{free_port, SmtpServer};

pub struct Served {
    pub base: String,
    shutdown: rocket::Shutdown,
    task: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
}

impl Served {
    /// Starts the server (`public_url` is its own address) and waits until it listens.
    pub async fn start(
        db: &TestDb,
        smtp: &SmtpServer,
        tweak: impl FnOnce(Figment) -> Figment,
    ) -> Served {
        Self::start_as(db, smtp, "127.0.0.1", tweak).await
    }

    /// As [`Served::start`], its `public_url` naming the loopback address by `host` (`localhost`
    /// for WebAuthn, which needs a domain name).
    pub async fn start_as(
        db: &TestDb,
        smtp: &SmtpServer,
        host: &str,
        tweak: impl FnOnce(Figment) -> Figment,
    ) -> Served {
        let port = free_port();
        let base = format!("http://{host}:{port}");
        let rocket = stride::build(tweak(
            figment(db)
                .merge(("port", port))
                .merge(("public_url", base.as_str()))
                .merge(("email.url", smtp.url())),
        ))
        .ignite()
        .await
        .expect("ignite");
        let shutdown = rocket.shutdown();
        let task = tokio::spawn(rocket.launch());
        tokio::task::spawn_blocking(move || wait_for_port(port, "stride"))
            .await
            .expect("join");
        Served {
            base,
            shutdown,
            task,
        }
    }

    /// A graceful shutdown, waited for.
    pub async fn stop(self) {
        self.shutdown.notify();
        let _ = self.task.await;
    }
}
