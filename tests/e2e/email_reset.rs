//! Password reset by email, end to end: requests, links, the pages, French, concurrency, an
//! SMTP outage, the file transport and TLS to the SMTP server, against a real SMTP server
//! (aiosmtpd).

use std::time::{Duration, Instant};

use rocket::http::{ContentType, Header};
use serde_json::json;

use crate::helpers::{each_backend, Backend, TestApp, PASSWORD};
use crate::mail::SmtpServer;

const INVALID: &str = "invalid token, please request a new token";
const PUBLIC_URL: &str = "https://fit.example.org";

async fn app_with_smtp(backend: &Backend, smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    TestApp::with(backend, move |f| {
        f.merge(("email.url", url))
            .merge(("public_url", PUBLIC_URL))
    })
    .await
}

async fn request_reset(app: &TestApp, email: &str) {
    app.post(
        "/api/auth/password/reset-request",
        json!({ "email": email }),
    )
    .await
    .assert_success(200, "password reset request processed");
}

fn update(token: &str, password: &str, confirmation: &str) -> serde_json::Value {
    json!({ "token": token, "password": password, "password_conf": confirmation })
}

/// Counts the outbox rows matching a condition.
async fn outbox(app: &TestApp, condition: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE {condition}"
    ))
    .await
}

each_backend! {
    async fn reset_by_json_from_request_to_login(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let session = app.register("sam").await;
        request_reset(&app, "SAM@example.COM").await;
        let mail = smtp.wait_for(1).await.remove(0);
        assert_eq!(mail.to, "sam@example.com");
        assert_eq!(mail.subject, "Stride: reset your password");
        assert!(mail.has_date, "Date header");
        assert!(mail.message_id.as_deref().is_some_and(|id| id.ends_with("@localhost")), "{:?}", mail.message_id);
        assert!(mail.text.starts_with("Hi sam,"), "{}", mail.text);
        assert!(mail.text.contains("valid for an hour"), "{}", mail.text);
        assert!(mail.text.contains("ignore this email"), "{}", mail.text);
        let (link, token) = mail.link();
        assert_eq!(link, format!("{PUBLIC_URL}/password-reset?token={token}"));
        assert_eq!(token.len(), 43, "32 random bytes, base64url");
        // MiniJinja escapes "/" in HTML; a browser reads the attribute decoded.
        let html = mail.html.replace("&#x2f;", "/").replace("&amp;", "&");
        assert!(html.contains(&format!("href=\"{link}\"")), "{}", mail.html);
        assert!(mail.html.contains("Hi sam,"));

        // The token is checked before the password lines.
        app.post("/api/auth/password/update", update("not-a-token", "x", "y")).await.assert_error(401, INVALID);
        app.post("/api/auth/password/update", update(&token, "new-password", "other-password")).await
            .assert_error(400, "password: password and password confirmation do not match\n");
        app.post("/api/auth/password/update", update(&token, "short", "short")).await
            .assert_error(400, "password: 8 characters required\n");
        app.post("/api/auth/password/update", update(&token, "sam12345", "sam12345")).await
            .assert_error(400, "password: this password is too common or too easy to guess\n");
        app.post("/api/auth/password/update", update(&token, "new-password", "new-password")).await
            .assert_success(200, "password updated");

        // Every session ended; the new password works, the old one and the token do not.
        app.profile(&session).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", "new-password").await.assert_success(200, "successfully logged in");
        app.post("/api/auth/password/update", update(&token, "third-password", "third-password")).await
            .assert_error(401, INVALID);

        let changed = smtp.wait_for(2).await.remove(1);
        assert_eq!(changed.subject, "Stride: your password was changed");
        assert!(changed.text.starts_with("Hi sam,"), "{}", changed.text);
        // Delivered messages keep no body: no reset link stays in the database in clear.
        let deadline = Instant::now() + Duration::from_secs(10);
        while outbox(&app, "sent_at IS NOT NULL AND text_body = '' AND html_body = ''").await < 2 {
            assert!(Instant::now() < deadline, "sent bodies were not cleared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn using_one_link_kills_the_others(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        smtp.wait_for(1).await;
        request_reset(&app, "sam@example.com").await;
        let links: Vec<String> = smtp.wait_for(2).await.iter().map(|m| m.link().1).collect();
        assert_ne!(links[0], links[1]);
        app.post("/api/auth/password/update", update(&links[1], "new-password", "new-password")).await
            .assert_success(200, "password updated");
        app.post("/api/auth/password/update", update(&links[0], "other-password", "other-password")).await
            .assert_error(401, INVALID);
        let changed = smtp.wait_for(3).await.remove(2);
        assert_eq!(changed.subject, "Stride: your password was changed");
        assert!(changed.text.starts_with("Hi sam,"));
    }

    async fn unknown_address_answers_alike_and_sends_nothing(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        app.register("sam").await;
        let known = app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await;
        let unknown = app.post("/api/auth/password/reset-request", json!({"email": "nobody@example.com"})).await;
        assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
        smtp.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(smtp.received().len(), 1, "only the known address got an email");
        assert_eq!(outbox(&app, "1 = 1").await, 1);
    }

    async fn concurrent_requests_each_get_their_email(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let names = ["ann", "ben", "cat", "dan", "eli"];
        for name in names {
            app.register(name).await;
        }
        let emails: Vec<String> = names.iter().map(|n| format!("{n}@example.com")).collect();
        futures::future::join_all(emails.iter().map(|e| request_reset(&app, e))).await;
        let mut to: Vec<String> = smtp.wait_for(5).await.into_iter().map(|m| m.to).collect();
        to.sort();
        assert_eq!(to, emails);
    }

    async fn french_email_for_a_french_user(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let token = app.register("sam").await;
        app.post_auth("/api/auth/profile/edit/preferences", &token,
            json!({"timezone": "Europe/Paris", "weekm": true, "language": "fr", "imperial_units": false})).await;
        request_reset(&app, "sam@example.com").await;
        let mail = smtp.wait_for(1).await.remove(0);
        assert_eq!(mail.subject, "Stride : réinitialisation de votre mot de passe");
        assert!(mail.text.starts_with("Bonjour sam,"), "{}", mail.text);
        assert!(mail.text.contains("valable une heure"), "{}", mail.text);
        assert!(mail.text.contains("ignorez ce message"), "{}", mail.text);
    }

    async fn tokens_expire_and_die_with_a_password_change(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let url = smtp.url();
        let app = TestApp::with(&backend, move |f| f.merge(("email.url", url)).merge(("password_reset.token_ttl", 1))).await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        let (_, expired) = smtp.wait_for(1).await[0].link();
        tokio::time::sleep(Duration::from_secs(2)).await;
        app.post("/api/auth/password/update", update(&expired, "new-password", "new-password")).await
            .assert_error(401, INVALID);

        let app2 = {
            let url = smtp.url();
            TestApp::with(&backend, move |f| f.merge(("email.url", url))).await
        };
        let session = app2.register("bob").await;
        request_reset(&app2, "bob@example.com").await;
        let (_, token) = smtp.wait_for(2).await[1].link();
        // The password changes another way: the reset link dies with the old password.
        let mut edit = json!({"first_name": null, "last_name": null, "location": null, "bio": null, "birth_date": null});
        edit["password"] = json!("changed-password");
        edit["password_conf"] = json!("changed-password");
        app2.post_auth("/api/auth/profile/edit", &session, edit).await.assert_success(200, "user profile updated");
        app2.post("/api/auth/password/update", update(&token, "new-password", "new-password")).await
            .assert_error(401, INVALID);
        // ...and the profile change sent its notice too.
        assert_eq!(smtp.wait_for(3).await[2].subject, "Stride: your password was changed");
    }

    async fn session_and_reset_tokens_do_not_mix(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let session = app.register("sam").await;
        app.post("/api/auth/password/update", update(&session, "new-password", "new-password")).await
            .assert_error(401, INVALID);
        request_reset(&app, "sam@example.com").await;
        let (_, reset) = smtp.wait_for(1).await[0].link();
        app.profile(&reset).await.assert_error(401, "invalid token, please log in again");
    }

    async fn nothing_is_lost_while_smtp_is_down(backend) {
        // Nothing listens on this port yet.
        let port = crate::helpers::free_port();
        let url = format!("smtp://127.0.0.1:{port}");
        let app = TestApp::with(&backend, { let url = url.clone(); move |f| f.merge(("email.url", url)) }).await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while outbox(&app, "attempts >= 1 AND sent_at IS NULL AND last_error IS NOT NULL").await == 0 {
            assert!(Instant::now() < deadline, "the failed attempt was not recorded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Stride stops; SMTP comes back; Stride starts again on the same database.
        let TestApp { client, db } = app;
        client.terminate().await;
        let Some(smtp) = SmtpServer::start_on(port) else { return };
        let app = TestApp::on(db, move |f| f.merge(("email.url", url))).await;
        let mails = smtp.wait_for(1).await;
        assert_eq!(mails[0].subject, "Stride: reset your password");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(smtp.received().len(), 1, "sent once");
        assert_eq!(outbox(&app, "sent_at IS NOT NULL AND attempts >= 2").await, 1);
    }

    async fn file_transport_writes_eml_files(backend) {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("file://{}", dir.path().join("outbox").display());
        let app = TestApp::with(&backend, move |f| f.merge(("email.url", url))).await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let file = loop {
            let found = std::fs::read_dir(dir.path().join("outbox")).ok()
                .and_then(|mut entries| entries.find_map(|e| e.ok().map(|e| e.path())))
                .filter(|p| p.extension().is_some_and(|e| e == "eml"));
            if let Some(file) = found { break file; }
            assert!(Instant::now() < deadline, "no .eml file written");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mail = crate::mail::parse(&std::fs::read(file).expect("eml"));
        assert_eq!(mail.subject, "Stride: reset your password");
        mail.link();
    }

    async fn pages_from_form_to_success(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        let (_, token) = smtp.wait_for(1).await[0].link();

        let page = app.client.get(format!("/password-reset?token={token}")).dispatch().await;
        assert_eq!(page.status().code, 200);
        assert_eq!(page.content_type(), Some(ContentType::HTML));
        assert_eq!(page.headers().get_one("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(page.headers().get_one("Cache-Control"), Some("no-store"));
        assert!(page.headers().get_one("Content-Security-Policy").is_some_and(|c| c.contains("default-src 'none'")));
        let html = page.into_string().await.expect("html");
        assert!(html.contains("<form method=\"post\""), "{html}");
        assert!(html.contains(&format!("value=\"{token}\"")));
        assert!(!html.contains("<script"), "no JavaScript needed");

        let submit = |password: &str, confirmation: &str| {
            app.client.post("/password-reset")
                .header(ContentType::Form)
                .body(format!("token={token}&password={password}&password_conf={confirmation}"))
                .dispatch()
        };
        let mismatch = submit("new-password", "other-password").await;
        assert_eq!(mismatch.status().code, 400);
        let html = mismatch.into_string().await.expect("html");
        assert!(html.contains("The two passwords do not match"), "{html}");
        assert!(html.contains(&format!("value=\"{token}\"")), "the token is kept");
        let short = submit("short", "short").await.into_string().await.expect("html");
        assert!(short.contains("too short: use at least 8 characters"), "{short}");
        let guessable = submit("password123", "password123").await.into_string().await.expect("html");
        assert!(guessable.contains("too common or too easy to guess"), "{guessable}");

        let done = submit("new-password", "new-password").await;
        assert_eq!(done.status().code, 200);
        assert_eq!(done.headers().get_one("Cache-Control"), Some("no-store"));
        assert!(done.into_string().await.expect("html").contains("Your new password is saved"));
        app.login("sam@example.com", "new-password").await.assert_success(200, "successfully logged in");

        // The link is used now.
        let used = app.client.get(format!("/password-reset?token={token}")).dispatch().await;
        assert_eq!(used.status().code, 400);
        assert!(used.into_string().await.expect("html").contains("This link no longer works"));
        let again = submit("third-password", "third-password").await.into_string().await.expect("html");
        assert!(again.contains("This link no longer works"));
    }

    async fn pages_in_french(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let session = app.register("sam").await;
        app.post_auth("/api/auth/profile/edit/preferences", &session,
            json!({"timezone": "Europe/Paris", "weekm": true, "language": "fr", "imperial_units": false})).await;
        request_reset(&app, "sam@example.com").await;
        let (_, token) = smtp.wait_for(1).await[0].link();
        let html = app.client.get(format!("/password-reset?token={token}")).dispatch().await.into_string().await.expect("html");
        assert!(html.contains("lang=\"fr\"") && html.contains("Choisissez un nouveau mot de passe"), "{html}");
        // A bad link: the account is unknown, the browser's language decides.
        let invalid = app.client.get("/password-reset?token=nope")
            .header(Header::new("Accept-Language", "fr-FR,fr;q=0.9,en;q=0.5")).dispatch().await;
        assert!(invalid.into_string().await.expect("html").contains("Ce lien ne fonctionne plus"));
        let invalid = app.client.get("/password-reset").dispatch().await;
        assert!(invalid.into_string().await.expect("html").contains("This link no longer works"));
    }

}

/// TLS to the SMTP server, as operators configure it: STARTTLS and SMTPS against a server whose
/// certificate comes from a private CA named by `email.ca_file`; without it, the certificate is
/// refused, the failure recorded, and nothing sent. (SQLite only: the database plays no part.)
mod smtp_tls {
    use super::*;
    use crate::mail::TestTls;

    async fn reset_through(url: String, ca_file: Option<String>) -> TestApp {
        let app = TestApp::with(&Backend::Sqlite, move |f| {
            let f = f.merge(("email.url", url));
            match ca_file {
                Some(ca) => f.merge(("email.ca_file", ca)),
                None => f,
            }
        })
        .await;
        app.register("sam").await;
        request_reset(&app, "sam@example.com").await;
        app
    }

    /// A reset email goes out through `url` to `smtp`, trusting the test CA.
    async fn delivered(smtp: &SmtpServer, tls: &TestTls, url: String) {
        let _app = reset_through(url, Some(tls.ca.clone())).await;
        assert_eq!(
            smtp.wait_for(1).await[0].subject,
            "Stride: reset your password"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starttls_with_a_private_ca() {
        let Some(tls) = TestTls::new() else { return };
        let Some(smtp) = SmtpServer::start_starttls(&tls) else {
            return;
        };
        delivered(
            &smtp,
            &tls,
            format!("smtp://localhost:{}?tls=required", smtp.port),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smtps_with_a_private_ca() {
        let Some(tls) = TestTls::new() else { return };
        let Some(smtp) = SmtpServer::start_smtps(&tls) else {
            return;
        };
        delivered(&smtp, &tls, format!("smtps://localhost:{}", smtp.port)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_untrusted_certificate_is_refused_and_recorded() {
        let Some(tls) = TestTls::new() else { return };
        let Some(smtp) = SmtpServer::start_starttls(&tls) else {
            return;
        };
        let app = reset_through(format!("smtp://localhost:{}?tls=required", smtp.port), None).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while outbox(
            &app,
            "attempts >= 1 AND sent_at IS NULL AND last_error IS NOT NULL",
        )
        .await
            == 0
        {
            assert!(Instant::now() < deadline, "the failure was not recorded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(smtp.received().is_empty());
    }

    #[tokio::test]
    async fn a_ca_file_without_tls_stops_the_start() {
        let Some(tls) = TestTls::new() else { return };
        let db = crate::helpers::TestDb::new(&Backend::Sqlite).await;
        let figment = crate::helpers::figment(&db)
            .merge(("email.url", "smtp://localhost:25"))
            .merge(("email.ca_file", tls.ca.as_str()));
        let error = kernel::Config::from_figment(&figment)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("email.ca_file"), "{error}");
        let figment = crate::helpers::figment(&db)
            .merge(("email.url", "smtps://localhost"))
            .merge(("email.ca_file", "/nonexistent.pem"));
        let error = kernel::Config::from_figment(&figment)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("email.ca_file"), "{error}");
    }
}
