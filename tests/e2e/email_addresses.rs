//! Addresses and their emails: an internationalised domain's reset email reaches the SMTP
//! server in A-labels, and accounts made under older, looser rules still log in while their
//! undeliverable mail is given up (the rules: tests/api/addresses.rs).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{each_backend, TestApp, PASSWORD};
use crate::mail::SmtpServer;

const EMAIL_INVALID: &str = "email: valid email must be provided\n";

each_backend! {
    async fn an_internationalised_address_gets_its_reset_email(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let url = smtp.url();
        let app = TestApp::with(&backend, move |f| f.merge(("email.url", url))).await;
        app.register_as("hans", "hans@bücher.example", PASSWORD).await
            .assert_success(201, "successfully registered");
        // Asked for under the A-label spelling.
        app.post("/api/auth/password/reset-request", json!({"email": "HANS@xn--bcher-kva.example"})).await
            .assert_success(200, "password reset request processed");
        let mail = smtp.wait_for(1).await.remove(0);
        // Delivered to the A-label form: no relay needs SMTPUTF8 for it.
        assert_eq!(mail.to, "hans@xn--bcher-kva.example");
        assert_eq!(mail.subject, "Stride: reset your password");
        let (_, token) = mail.link();
        app.post("/api/auth/password/update",
            json!({"token": token, "password": "new-long-phrase", "password_conf": "new-long-phrase"})).await
            .assert_success(200, "password updated");
        app.login("hans@bücher.example", "new-long-phrase").await
            .assert_success(200, "successfully logged in");
        let changed = smtp.wait_for(2).await.remove(1);
        assert_eq!(changed.to, "hans@xn--bcher-kva.example");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL").await, 2);
    }

    async fn accounts_made_under_the_old_rules_still_log_in(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let url = smtp.url();
        let app = TestApp::with(&backend, move |f| f.merge(("email.url", url))).await;
        // FitTrackee's pattern took these; a database may hold them.
        app.register("odd").await;
        app.sql(r#"UPDATE users SET email = '"Odd User"@example.com', email_key = '"odd user"@example.com' WHERE username = 'odd'"#).await;
        app.login("\"odd user\"@EXAMPLE.com", PASSWORD).await.assert_success(200, "successfully logged in");
        // The mailer cannot send to it: the message is given up at once, not retried for a day.
        app.post("/api/auth/password/reset-request", json!({"email": "\"Odd User\"@example.com"})).await
            .assert_success(200, "password reset request processed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while app.count("SELECT COUNT(*) AS n FROM outbox WHERE failed_at IS NOT NULL AND attempts = 1").await < 1 {
            assert!(Instant::now() < deadline, "the undeliverable message was not given up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(smtp.received().is_empty());
        // A new account cannot take such an address.
        app.register_as("odd2", "\"odd user\"@example.com", PASSWORD).await.assert_error(400, EMAIL_INVALID);
    }
}
