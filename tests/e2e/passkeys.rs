//! Passkeys end to end (docs/two-factor.md, "The passkey page"): headless Chromium, with
//! WebDriver's virtual authenticator (CTAP2, internal, user verification) standing in for a
//! phone or a laptop's, registers a passkey on Stride's passkey page, logs in with it as the
//! second factor, and removes it.

use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::chromium::{self, save_screenshot};
use crate::helpers::{each_backend, TestDb, PASSWORD};
use crate::mail::SmtpServer;
use crate::served::Served;

/// A command of WebDriver's WebAuthn extension (W3C WebAuthn Level 2, §11), under the session.
#[derive(Debug)]
struct Authenticators {
    path: String,
    method: http::Method,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Authenticators {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// Adds a virtual platform authenticator that verifies its user; its id.
async fn add_authenticator(browser: &Client) -> String {
    let added = browser
        .issue_cmd(Authenticators {
            path: "authenticator".into(),
            method: http::Method::POST,
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            })),
        })
        .await
        .expect("a virtual authenticator");
    added.as_str().expect("an authenticator id").to_owned()
}

/// The credentials the virtual authenticator holds.
async fn credentials(browser: &Client, authenticator: &str) -> Vec<Value> {
    let listed = browser
        .issue_cmd(Authenticators {
            path: format!("authenticator/{authenticator}/credentials"),
            method: http::Method::GET,
            body: None,
        })
        .await
        .expect("the credentials");
    listed.as_array().expect("a list").clone()
}

async fn text_of(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .expect("the element")
        .text()
        .await
        .expect("its text")
}

/// Waits until the status line says `expected`.
async fn status_says(browser: &Client, expected: &str) {
    for _ in 0..100 {
        if text_of(browser, "status").await.contains(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let png = browser.screenshot().await.unwrap_or_default();
    let shot = save_screenshot("passkeys-failed", &png);
    panic!(
        "the status never said {expected:?}: {:?} (screenshot {})",
        text_of(browser, "status").await,
        shot.display()
    );
}

async fn visible(browser: &Client, id: &str) -> bool {
    let element = browser.find(Locator::Id(id)).await.expect("the element");
    element.is_displayed().await.expect("displayed or not")
}

async fn log_in(browser: &Client) {
    let field =
        |id: &'static str| async move { browser.find(Locator::Id(id)).await.expect("a field") };
    field("email").await.clear().await.expect("clear");
    field("email")
        .await
        .send_keys("sam@example.com")
        .await
        .expect("type");
    field("password").await.clear().await.expect("clear");
    field("password")
        .await
        .send_keys(PASSWORD)
        .await
        .expect("type");
    field("login-submit").await.click().await.expect("click");
}

fn register_sam(base: &str) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent
        .post(format!("{base}/api/auth/register"))
        .header("Content-Type", "application/json")
        .send(
            json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD})
                .to_string(),
        )
        .expect("a registration");
    assert_eq!(response.status().as_u16(), 201);
}

each_backend! {
    async fn a_browser_registers_a_passkey_logs_in_with_it_and_removes_it(backend) {
        let Some(chromium) = chromium::start(412, 915).await else { return };
        let Some(smtp) = SmtpServer::start() else { return };
        let db = TestDb::new(&backend).await;
        // WebAuthn needs a domain name: the page is opened at localhost, public_url says so.
        let served = Served::start_as(&db, &smtp, "localhost", |f| f).await;
        let base = served.base.clone();
        let api = base.clone();
        tokio::task::spawn_blocking(move || register_sam(&api)).await.expect("join");

        let browser = chromium.client.clone();
        let authenticator = add_authenticator(&browser).await;
        browser.goto(&format!("{base}/two-factor/passkeys")).await.expect("the page");
        save_screenshot("passkeys-login", &browser.screenshot().await.expect("screenshot"));

        // No factor yet: the password opens the session, and the list is empty.
        log_in(&browser).await;
        status_says(&browser, "Logged in.").await;
        browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("none")).await.expect("the list");
        assert!(visible(&browser, "none").await);

        // Registering: the browser's ceremony with the virtual authenticator.
        browser.find(Locator::Id("name")).await.expect("name").send_keys("Laptop").await.expect("type");
        browser.find(Locator::Id("add")).await.expect("add").click().await.expect("click");
        status_says(&browser, "Passkey “Laptop” added.").await;
        assert!(visible(&browser, "codes").await, "the first factor shows recovery codes");
        assert_eq!(text_of(&browser, "codes-list").await.lines().count(), 10);
        let field = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("li input[type=text]"))
            .await
            .expect("the passkey in the list");
        assert_eq!(field.prop("value").await.expect("value").as_deref(), Some("Laptop"));
        assert_eq!(credentials(&browser, &authenticator).await.len(), 1);
        save_screenshot("passkeys-added", &browser.screenshot().await.expect("screenshot"));

        // Logged out, the password alone no longer opens a session: the passkey does.
        browser.find(Locator::Id("logout")).await.expect("logout").click().await.expect("click");
        status_says(&browser, "Logged out.").await;
        log_in(&browser).await;
        browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#second:not([hidden])")).await.expect("the second step");
        assert!(visible(&browser, "use-passkey").await);
        browser.find(Locator::Id("use-passkey")).await.expect("button").click().await.expect("click");
        status_says(&browser, "Logged in.").await;
        let dates = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("li .dates"))
            .await
            .expect("the passkey's dates");
        assert!(dates.text().await.expect("text").contains("last used"), "the login used it");
        save_screenshot("passkeys-logged-in", &browser.screenshot().await.expect("screenshot"));

        // Removed (with the password the page kept), the account is back to the password.
        browser.find(Locator::Css("button[id^=passkey-remove-]")).await.expect("remove").click().await.expect("click");
        status_says(&browser, "Passkey removed.").await;
        browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#none:not([hidden])")).await.expect("an empty list");
        browser.find(Locator::Id("logout")).await.expect("logout").click().await.expect("click");
        status_says(&browser, "Logged out.").await;
        log_in(&browser).await;
        status_says(&browser, "Logged in.").await;

        browser.close().await.expect("close the browser");
        served.stop().await;
    }
}
