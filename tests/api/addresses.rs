//! Email addresses: what registration accepts can be delivered, and one mailbox is one account
//! however it is spelled (modules/kernel/src/address.rs has the rules). Look-alikes (Cyrillic
//! letters among Latin ones), invisible characters, IP literals and quoted local parts of an
//! existing address do not make a second account; an internationalised domain registers, is
//! the same account in its A-label form (its emails: tests/e2e/email_addresses.rs).

use crate::helpers::{each_backend, TestApp, PASSWORD};

const EMAIL_INVALID: &str = "email: valid email must be provided\n";
const ALREADY_EXISTS: &str = "sorry, that user already exists";

async fn users(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) AS n FROM users").await
}

async fn no_throttle(backend: &crate::helpers::Backend) -> TestApp {
    TestApp::with(backend, |f| f.merge(("throttle.enabled", false))).await
}

each_backend! {
    async fn variants_of_an_address_make_no_second_account(backend) {
        let app = no_throttle(&backend).await;
        app.register_as("sam", "sam@example.com", PASSWORD).await
            .assert_success(201, "successfully registered");
        // Refused: not deliverable, or passing for sam@example.com.
        for (i, variant) in [
            "sаm@example.com",          // Cyrillic а
            "sam@exаmple.com",          // Cyrillic а in the domain
            "sam@ехаmрlе.com",          // Cyrillic е, х, а, р, е
            "sam@eχample.com",          // Greek χ
            "sam@раураl.com",           // wholly Cyrillic, looks Latin
            "sam\u{200b}@example.com",  // zero-width space
            "s\u{200d}am@example.com",  // zero-width joiner
            "sam@exam\u{ad}ple.com",    // soft hyphen
            "\u{202e}moc.elpmaxe@mas",  // right-to-left override
            "sam@example.com\u{2066}",  // bidi isolate
            "sam\u{feff}@example.com",  // byte order mark
            "sam@example.com\u{0}",     // NUL (a 400 "invalid payload" before the address)
            "sam\u{85}@example.com",    // C1 control
            "sam@example\u{a0}.com",    // no-break space
            "sam@[127.0.0.1]",          // IP literal
            "sam@127.0.0.1",
            "\"sam\"@example.com",      // quoted local part
            "\"sam@example.com\"@example.com",
            "sam@example.com.",
        ].into_iter().enumerate() {
            let reply = app.register_as(&format!("other{i}"), variant, PASSWORD).await;
            assert_eq!(reply.status.code, 400, "{variant:?}: {}", reply.body);
            let message = reply.message();
            assert!(message == EMAIL_INVALID || message == "invalid payload", "{variant:?}: {message}");
        }
        // Folded to the same address: the existing account.
        for (i, variant) in [
            "SAM@EXAMPLE.COM",
            "Sam@Example.com",
            "ｓａｍ@example.com",               // fullwidth
            "ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ",     // fullwidth, at sign and full stop too
            "sam@example。com",                 // ideographic full stop
        ].into_iter().enumerate() {
            app.register_as(&format!("fold{i}"), variant, PASSWORD).await
                .assert_error(400, ALREADY_EXISTS);
            app.login(variant, PASSWORD).await.assert_success(200, "successfully logged in");
        }
        assert_eq!(users(&app).await, 1);
        // Ordinary addresses are as in FitTrackee: same line, any case is one account.
        app.register_as("bob", "not-an-address", PASSWORD).await.assert_error(400, EMAIL_INVALID);
        app.register_as("bob", "Bob.Smith+fit@Example.org", PASSWORD).await
            .assert_success(201, "successfully registered");
        app.register_as("bob2", "bob.smith+FIT@example.ORG", PASSWORD).await
            .assert_error(400, ALREADY_EXISTS);
        let token = app.login("BOB.SMITH+fit@example.org", PASSWORD).await.token();
        // Kept as typed.
        assert_eq!(app.profile(&token).await.body["data"]["email"], "Bob.Smith+fit@Example.org");
    }

    async fn an_internationalised_domain_is_one_account(backend) {
        let app = no_throttle(&backend).await;
        let token = app.register_as("hans", "Hans@BÜCHER.example", PASSWORD).await.token();
        // Stored in its Unicode form, lower-cased by UTS 46; the local part as typed.
        assert_eq!(app.profile(&token).await.body["data"]["email"], "Hans@bücher.example");
        for (i, variant) in [
            "hans@xn--bcher-kva.example",
            "HANS@XN--BCHER-KVA.EXAMPLE",
            "hans@bücher.example",
            "hans@bu\u{308}cher.example", // decomposed ü
            "hans@ｂüｃｈｅｒ.example",
        ].into_iter().enumerate() {
            app.register_as(&format!("hans{i}"), variant, PASSWORD).await
                .assert_error(400, ALREADY_EXISTS);
            app.login(variant, PASSWORD).await.assert_success(200, "successfully logged in");
        }
        assert_eq!(users(&app).await, 1);
        // Other scripts register, one script to a label.
        for (name, address) in [("ivan", "ivan@пример.рф"), ("yuki", "yuki@例え.jp"), ("mia", "mia@mañana.com")] {
            app.register_as(name, address, PASSWORD).await.assert_success(201, "successfully registered");
        }
    }

}
