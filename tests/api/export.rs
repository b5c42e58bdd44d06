//! Data exports (docs/accounts.md, "Data export"): requested through the API, built in the
//! background by any instance, downloadable by their owner only, expiring.

use std::io::Read as _;
use std::time::Duration;

use rocket::http::Header;
use serde_json::{json, Value};

use crate::helpers::{each_backend, Backend, Mail, TestApp, TestDb, PASSWORD};

async fn app(backend: &Backend, mail: &Mail) -> TestApp {
    TestApp::with_mail(backend, mail, |f| f).await
}

pub(crate) async fn request(app: &TestApp, token: &str) -> crate::helpers::Reply {
    app.send(
        "POST",
        "/api/auth/account/export/request",
        Some(token),
        None,
    )
    .await
}

/// Waits until the user's export is built, and returns its request object.
pub(crate) async fn built(app: &TestApp, token: &str) -> Value {
    for _ in 0..200 {
        let reply = app.get("/api/auth/account/export", Some(token)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        if reply.body["request"]["status"] == "successful" {
            return reply.body["request"].clone();
        }
        assert_ne!(reply.body["request"]["status"], "errored", "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export was not built");
}

/// The archive's files: name and bytes, in order.
pub(crate) async fn download(
    app: &TestApp,
    token: &str,
    file_name: &str,
) -> Vec<(String, Vec<u8>)> {
    let response = app
        .client
        .get(format!("/api/auth/account/export/{file_name}"))
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .dispatch()
        .await;
    assert_eq!(response.status().code, 200);
    assert_eq!(
        response.headers().get_one("Content-Type"),
        Some("application/zip")
    );
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store")
    );
    assert_eq!(
        response.headers().get_one("X-Content-Type-Options"),
        Some("nosniff")
    );
    assert_eq!(
        response.headers().get_one("Content-Disposition"),
        Some(format!("attachment; filename=\"{file_name}\"").as_str())
    );
    let bytes = response.into_bytes().await.expect("bytes");
    let declared = app
        .count(&format!(
            "SELECT file_size AS n FROM data_exports WHERE file_name = '{file_name}'"
        ))
        .await;
    assert_eq!(
        i64::try_from(bytes.len()).expect("size"),
        declared,
        "file_size is the archive's size"
    );
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).expect("a file");
            let mut content = Vec::new();
            file.read_to_end(&mut content).expect("read");
            (file.name().expect("a name").into_owned(), content)
        })
        .collect()
}

each_backend! {
    async fn an_export_holds_the_account_and_no_secret(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        app.register("kim").await;
        let first = request(&app, &token).await;
        assert_eq!(first.status.code, 200, "{}", first.body);
        let queued = &first.body["request"];
        assert_eq!(queued["type"], "user_data_export");
        assert!(["queued", "in_progress", "successful"].contains(&queued["status"].as_str().unwrap_or("")), "{queued}");
        assert!(queued["expires_at"].is_string() && queued["created_at"].is_string());
        let done = built(&app, &token).await;
        let file_name = done["file_name"].as_str().expect("a file name").to_owned();
        assert!(file_name.starts_with("archive_") && file_name.ends_with(".zip") && file_name.len() >= 8 + 16 + 4, "{file_name}");
        let files = download(&app, &token, &file_name).await;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user_data.json", "user_sessions.json"], "no picture, no picture file");
        let size = app.count("SELECT file_size AS n FROM data_exports").await;
        assert_eq!(done["file_size"].as_i64(), Some(size));
        assert!(size > 0);
        let profile: Value = serde_json::from_slice(&files[0].1).expect("JSON");
        assert_eq!(profile, app.profile(&token).await.body["data"], "the profile as the API gives it");
        let sessions: Value = serde_json::from_slice(&files[1].1).expect("JSON");
        assert_eq!(sessions.as_array().map(Vec::len), Some(1));
        assert!(sessions[0].get("current").is_none() && sessions[0]["id"].is_string(), "{sessions}");
        let everything: String = files.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
        for secret in [token.as_str(), "$argon2", PASSWORD, "password", "kim"] {
            assert!(!everything.contains(secret), "{secret} in the archive");
        }
        // The email says it is ready.
        let ready = mail.wait("sam@example.com", 1).await;
        assert!(ready[0].contains("/profile/edit/account"), "{}", ready[0]);
        // One at a time: a completed one that has not expired refuses another.
        request(&app, &token).await.assert_error(400, "completed request already exists");
    }

    async fn only_the_owner_downloads(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        request(&app, &sam).await;
        let file_name = built(&app, &sam).await["file_name"].as_str().expect("name").to_owned();
        for (token, name) in [(&kim, file_name.clone()), (&sam, "archive_nope.zip".into()), (&sam, "x".repeat(300)), (&sam, "request".into())] {
            app.get(&format!("/api/auth/account/export/{name}"), Some(token)).await.assert_error(404, "file not found");
        }
        app.get(&format!("/api/auth/account/export/{file_name}"), None).await.assert_error(401, "provide a valid auth token");
        assert_eq!(app.get("/api/auth/account/export", Some(&kim)).await.body, json!({"status": "success", "request": null}));
    }

    async fn a_picture_is_in_the_archive(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        #[cfg(feature = "pictures")]
        {
            let png = crate::helpers::png(40, 30);
            app.upload_picture(&token, "me.png", &png).await.assert_success(200, "user picture updated");
            request(&app, &token).await;
            let file_name = built(&app, &token).await["file_name"].as_str().expect("name").to_owned();
            let files = download(&app, &token, &file_name).await;
            assert_eq!(files.len(), 3);
            assert_eq!(files[2].0, "picture.png");
            let served = app.picture("sam", &[]).await;
            assert_eq!(files[2].1, served.body, "the bytes the picture route serves");
        }
        drop(token);
    }

    async fn concurrent_requests_make_one(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let replies = futures::future::join_all((0..5).map(|_| request(&app, &token))).await;
        let ok = replies.iter().filter(|r| r.status.code == 200).count();
        assert_eq!(ok, 1, "{:?}", replies.iter().map(|r| r.body.clone()).collect::<Vec<_>>());
        for reply in replies.iter().filter(|r| r.status.code != 200) {
            assert_eq!(reply.status.code, 400);
            assert!(["ongoing request exists", "completed request already exists"].contains(&reply.message()), "{}", reply.body);
        }
    }

    async fn an_export_expires_and_then_another_may_be_asked(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f.merge(("accounts.export_ttl", 2)).merge(("accounts.unconfirmed_ttl", 2)).merge(("accounts.confirmation_ttl", 1))).await;
        let token = app.register("sam").await;
        request(&app, &token).await;
        let file_name = built(&app, &token).await["file_name"].as_str().expect("name").to_owned();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(app.get("/api/auth/account/export", Some(&token)).await.body["request"], Value::Null);
        app.get(&format!("/api/auth/account/export/{file_name}"), Some(&token)).await.assert_error(404, "file not found");
        // The sweep deletes its bytes.
        let mut left = 1;
        for _ in 0..60 {
            left = app.count("SELECT COUNT(*) AS n FROM data_exports").await;
            if left == 0 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0);
        assert_eq!(request(&app, &token).await.status.code, 200);
    }

    async fn a_claim_left_by_a_stopped_builder_is_taken_over(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let far = kernel::db::now() + 3600;
        app.sql(&format!("INSERT INTO data_exports (user_id, id, status, created_at, expires_at, claimed_until, file_name) \
                          SELECT id, 'left-behind', 'in_progress', {}, {far}, {}, 'archive_left_behind.zip' FROM users", far - 3700, far - 3650)).await;
        let done = built(&app, &token).await;
        assert_eq!(done["id"], "left-behind");
    }

    async fn deleting_the_account_deletes_its_export(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        request(&app, &token).await;
        built(&app, &token).await;
        let reply = app.send("DELETE", "/api/users/sam", Some(&token), None).await;
        assert_eq!(reply.status.code, 204);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM data_exports").await, 0);
    }

    async fn requested_on_one_instance_built_once_served_by_another(backend) {
        let mail = Mail::new();
        let a = app(&backend, &mail).await;
        let url = mail.url();
        let b = TestApp::on(TestDb::shared(&a.db), |f| f.merge(("email.url", url))).await;
        let token = a.register("sam").await;
        request(&a, &token).await;
        let file_name = built(&b, &token).await["file_name"].as_str().expect("name").to_owned();
        let files = download(&b, &token, &file_name).await;
        assert_eq!(files[0].0, "user_data.json");
        mail.wait("sam@example.com", 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(mail.to("sam@example.com").len(), 1, "built once: one email");
    }

    async fn export_routes_need_a_token(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        app.send("POST", "/api/auth/account/export/request", None, None).await.assert_error(401, "provide a valid auth token");
        app.get("/api/auth/account/export", None).await.assert_error(401, "provide a valid auth token");
    }
}
