//! A real browser follows the reset link: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`). Skipped with a message where Chromium is not
//! installed, except in CI, which installs it.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::chromium::{self, save_screenshot};
use crate::helpers::{each_backend, TestDb, PASSWORD};
use crate::mail::SmtpServer;
use crate::served::Served;

fn post_json(base: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).expect("JSON"))
}

fn screenshot(name: &str, png: &[u8]) {
    save_screenshot(name, png);
}

each_backend! {
    async fn a_browser_resets_a_password_from_the_email(backend) {
        let Some(chromium) = chromium::start(412, 915).await else { return };
        let Some(smtp) = SmtpServer::start() else { return };
        // Stride on a real port, as a browser needs.
        let db = TestDb::new(&backend).await;
        let served = Served::start(&db, &smtp, |f| f).await;
        let base = served.base.clone();

        let api = base.clone();
        let (status, _) = tokio::task::spawn_blocking(move || {
            post_json(&api, "/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD}));
            post_json(&api, "/api/auth/password/reset-request", json!({"email": "sam@example.com"}))
        }).await.expect("join");
        assert_eq!(status, 200);
        let (link, _) = smtp.wait_for(1).await[0].link();
        assert!(link.starts_with(&format!("{base}/password-reset?token=")), "{link}");

        let browser = chromium.client.clone();
        browser.goto(&link).await.expect("open the link");
        screenshot("reset-form", &browser.screenshot().await.expect("screenshot"));
        // Two different passwords: the form comes back with the error, token kept.
        browser.find(Locator::Id("password")).await.expect("field").send_keys("new-password").await.expect("type");
        browser.find(Locator::Id("password_conf")).await.expect("field").send_keys("other-password").await.expect("type");
        browser.find(Locator::Id("submit")).await.expect("button").click().await.expect("click");
        let error = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("error")).await.expect("error shown");
        assert!(error.text().await.expect("text").contains("do not match"));
        screenshot("reset-mismatch", &browser.screenshot().await.expect("screenshot"));

        browser.find(Locator::Id("password")).await.expect("field").send_keys("new-password").await.expect("type");
        browser.find(Locator::Id("password_conf")).await.expect("field").send_keys("new-password").await.expect("type");
        browser.find(Locator::Id("submit")).await.expect("button").click().await.expect("click");
        let result = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("result")).await.expect("success shown");
        assert!(result.text().await.expect("text").contains("Your new password is saved"));
        assert_eq!(browser.current_url().await.expect("url").as_str(), format!("{base}/password-reset"));
        screenshot("reset-done", &browser.screenshot().await.expect("screenshot"));

        // The new password logs in through the API.
        let api = base.clone();
        let (status, body) = tokio::task::spawn_blocking(move || {
            post_json(&api, "/api/auth/login", json!({"email": "sam@example.com", "password": "new-password"}))
        }).await.expect("join");
        assert_eq!(status, 200, "{body}");

        // The used link no longer works.
        browser.goto(&link).await.expect("open the link again");
        let invalid = browser.find(Locator::Id("invalid")).await.expect("invalid-link page");
        assert!(invalid.text().await.expect("text").contains("expired, or was already used"));

        browser.close().await.expect("close the browser");
        served.stop().await;
    }
}
