//! Email confirmation end to end: registration with `accounts.email_confirmation` on, the
//! email through a real SMTP server (aiosmtpd), and its link followed in headless Chromium.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::chromium::{self, save_screenshot, wait_for_port};
use crate::helpers::{agent, each_backend, figment, TestDb, PASSWORD};
use crate::mail::{free_port, SmtpServer};

fn post(base: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut response = agent()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).expect("JSON"))
}

each_backend! {
    async fn a_browser_confirms_an_account_from_the_email(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let Some(chromium) = chromium::start(412, 915).await else { return };
        let db = TestDb::new(&backend).await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let rocket = stride::build(figment(&db)
            .merge(("port", port))
            .merge(("public_url", base.as_str()))
            .merge(("email.url", smtp.url()))
            .merge(("accounts.email_confirmation", true)))
            .ignite().await.expect("ignite");
        let shutdown = rocket.shutdown();
        let server = tokio::spawn(rocket.launch());
        tokio::task::spawn_blocking(move || wait_for_port(port, "stride")).await.expect("join");

        let api = base.clone();
        let (status, body) = tokio::task::spawn_blocking(move || {
            post(&api, "/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD}))
        }).await.expect("join");
        assert_eq!((status, body), (200, json!({"status": "success"})));
        let email = smtp.wait_for(1).await.remove(0);
        assert_eq!(email.subject, "Stride: confirm your account");
        assert!(email.html.contains("Confirm my account"), "{}", email.html);
        let (link, _) = email.link();
        assert!(link.starts_with(&format!("{base}/account-confirmation?token=")), "{link}");

        let browser = chromium.client.clone();
        // Opening the link twice (a mail scanner, then the person) uses nothing.
        for _ in 0..2 {
            browser.goto(&link).await.expect("open the link");
            browser.find(Locator::Id("submit")).await.expect("the form");
        }
        save_screenshot("confirmation-form", &browser.screenshot().await.expect("screenshot"));
        let api = base.clone();
        let (status, _) = tokio::task::spawn_blocking(move || {
            post(&api, "/api/auth/login", json!({"email": "sam@example.com", "password": PASSWORD}))
        }).await.expect("join");
        assert_eq!(status, 401, "not confirmed yet");

        browser.find(Locator::Id("submit")).await.expect("button").click().await.expect("click");
        let result = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("result")).await.expect("confirmed");
        assert!(result.text().await.expect("text").contains("your account is confirmed"));
        save_screenshot("confirmation-done", &browser.screenshot().await.expect("screenshot"));

        let api = base.clone();
        let (status, body) = tokio::task::spawn_blocking(move || {
            post(&api, "/api/auth/login", json!({"email": "sam@example.com", "password": PASSWORD}))
        }).await.expect("join");
        assert_eq!(status, 200, "{body}");

        // The used link shows the "no longer works" page.
        browser.goto(&link).await.expect("open the link again");
        let invalid = browser.find(Locator::Id("invalid")).await.expect("invalid-link page");
        assert!(invalid.text().await.expect("text").contains("already used"));

        browser.close().await.expect("close the browser");
        shutdown.notify();
        let _ = server.await;
    }
}
