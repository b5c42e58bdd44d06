//! The account lifecycle end to end: registration with `accounts.email_confirmation` on, the
//! email through a real SMTP server (aiosmtpd) and its link followed in headless Chromium; and
//! every lifecycle email through SMTP.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::chromium::{self, save_screenshot};
use crate::helpers::{agent, each_backend, TestDb, PASSWORD};
use crate::mail::SmtpServer;
use crate::served::Served;

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
        let served = Served::start(&db, &smtp, |f| f.merge(("accounts.email_confirmation", true))).await;
        let base = served.base.clone();

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
        served.stop().await;
    }
}

fn send(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("request");
    let mut response = agent().run(request).expect("an answer");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

each_backend! {
    /// Every email of the account lifecycle through a real SMTP server, in order: the
    /// confirmation link, the change of address (link to the new address, notice with a revert
    /// link to the old one), and the export's "ready".
    async fn the_lifecycles_emails_go_through_smtp(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let db = TestDb::new(&backend).await;
        let served = Served::start(&db, &smtp, |f| f.merge(("accounts.email_confirmation", true))).await;
        let base = served.base.clone();
        let call = |method: &'static str, path: &'static str, token: Option<String>, body: serde_json::Value| {
            let base = base.clone();
            tokio::task::spawn_blocking(move || match token {
                Some(token) => send(&base, method, path, &token, Some(body)),
                None => post(&base, path, body),
            })
        };

        let (status, _) = call("POST", "/api/auth/register", None,
            json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "language": "fr"})).await.expect("join");
        assert_eq!(status, 200);
        let confirmation = smtp.wait_for(1).await.remove(0);
        assert!(confirmation.to.contains("sam@example.com"), "{}", confirmation.to);
        assert_eq!(confirmation.subject, "Stride : confirmez votre compte");
        assert!(confirmation.html.contains("Confirmer mon compte"));
        let (_, token) = confirmation.link();
        let (status, body) = call("POST", "/api/auth/account/confirm", None, json!({"token": token})).await.expect("join");
        assert_eq!(status, 200, "{body}");
        // The confirmation's session went to cookies (docs/browser-sessions.md): this client
        // logs in for a token.
        let (status, body) = call("POST", "/api/auth/login", None, json!({"email": "sam@example.com", "password": PASSWORD})).await.expect("join");
        assert_eq!(status, 200, "{body}");
        let session = body["auth_token"].as_str().expect("a session").to_owned();

        let (status, body) = call("PATCH", "/api/auth/profile/edit/account", Some(session.clone()),
            json!({"email": "samuel@example.org", "password": PASSWORD})).await.expect("join");
        assert_eq!(status, 200, "{body}");
        let mails = smtp.wait_for(3).await;
        let to_new = mails.iter().find(|m| m.to.contains("samuel@example.org")).expect("the link to the new address");
        let notice = mails.iter().find(|m| m.to.contains("sam@example.com") && m.subject.contains("adresse va changer")).expect("the notice");
        assert!(to_new.link().0.starts_with(&format!("{base}/email-update?token=")));
        assert!(notice.text.contains("samuel@example.org") && notice.link().0.starts_with(&format!("{base}/email-revert?token=")));
        assert!(notice.html.contains("Ce n'était pas moi"));
        let (status, _) = call("POST", "/api/auth/email/update", None, json!({"token": to_new.link().1})).await.expect("join");
        assert_eq!(status, 200);

        let (status, body) = call("POST", "/api/auth/account/export/request", Some(session.clone()), json!({})).await.expect("join");
        assert_eq!(status, 200, "{body}");
        let mails = smtp.wait_for(4).await;
        let ready = mails.iter().find(|m| m.subject == "Stride : votre export de données est prêt").expect("the ready email");
        assert!(ready.to.contains("samuel@example.org"), "to the address the account has now: {}", ready.to);
        assert!(ready.text.contains(&format!("{base}/profile/edit/account")));

        served.stop().await;
    }
}
