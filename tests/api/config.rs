use serde_json::json;

use crate::helpers::{each_backend, TestApp};

each_backend! {
    async fn defaults(backend) {
        let app = TestApp::new(&backend).await;
        let reply = app.get("/api/config", None).await;
        assert_eq!(reply.status.code, 200);
        assert_eq!(reply.body["status"], "success");
        let data = &reply.body["data"];
        assert_eq!(data["is_registration_enabled"], true);
        assert_eq!(data["max_users"], 0);
        assert_eq!(data["max_single_file_size"], 1_048_576);
        assert_eq!(data["max_zip_file_size"], 10_485_760);
        assert_eq!(data["gpx_limit_import"], 10);
        assert_eq!(data["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(app.get("/api/ping", None).await.body, json!({"status": "success", "message": "pong!"}));
    }

    #[cfg(feature = "pictures")] // uses the pictures module
    async fn initial_file_size_comes_from_configuration(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("pictures.max_size", 2048))).await;
        assert_eq!(app.get("/api/config", None).await.body["data"]["max_single_file_size"], 2048);
    }

    async fn only_admins_patch(backend) {
        let app = TestApp::new(&backend).await;
        let user = app.register("sam").await;
        app.send("PATCH", "/api/config", None, Some(r#"{"max_users": 5}"#)).await
            .assert_error(401, "provide a valid auth token");
        app.send("PATCH", "/api/config", Some(&user), Some(r#"{"max_users": 5}"#)).await
            .assert_error(403, "you do not have permissions");
        assert_eq!(app.get("/api/config", None).await.body["data"]["max_users"], 0);
    }

    async fn admin_patches_and_every_request_sees_it(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        let reply = app.send("PATCH", "/api/config", Some(&admin),
            Some(r#"{"max_users": 10, "max_single_file_size": 2048, "max_zip_file_size": 4096, "gpx_limit_import": 3}"#)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        assert_eq!(reply.body["status"], "success");
        let data = &reply.body["data"];
        assert_eq!((data["max_users"].as_i64(), data["max_single_file_size"].as_i64()), (Some(10), Some(2048)));
        assert_eq!((data["max_zip_file_size"].as_i64(), data["gpx_limit_import"].as_i64()), (Some(4096), Some(3)));
        assert_eq!(app.get("/api/config", None).await.body["data"], *data);

        // A second server on the same database sees the change at once.
        let other = TestApp::on(reuse(&app), |f| f).await;
        assert_eq!(other.get("/api/config", None).await.body["data"]["max_users"], 10);
    }

    async fn patch_refusals(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        let patch = |body: &'static str| app.send("PATCH", "/api/config", Some(&admin), Some(body));
        for body in ["{}", "[]", "nope", r#"{"max_users": "ten"}"#, r#"{"max_users": 1.5}"#,
                     r#"{"is_registration_enabled": "no"}"#] {
            patch(body).await.assert_error(400, "invalid payload");
        }
        patch(r#"{"max_single_file_size": 0}"#).await
            .assert_error(400, "Max. size of uploaded files must be greater than 0\n");
        patch(r#"{"gpx_limit_import": 0, "max_zip_file_size": -1}"#).await.assert_error(400,
            "Max. files in a zip archive must be greater than 0\nMax. size of zip archive must be greater than 0\n");
        patch(r#"{"max_users": -1}"#).await.assert_error(400, "max. number of users must be 0 (unlimited) or greater\n");
        patch(r#"{"max_single_file_size": 20000000}"#).await.assert_error(400,
            "Max. size of zip archive must be equal or greater than max. size of uploaded files\n");
        // Nothing changed.
        let data = app.get("/api/config", None).await.body["data"].clone();
        assert_eq!((data["max_users"].as_i64(), data["max_single_file_size"].as_i64()), (Some(0), Some(1_048_576)));
    }
}

/// The same database as `app`, for a second server on it (the first keeps ownership).
fn reuse(app: &TestApp) -> crate::helpers::TestDb {
    crate::helpers::TestDb::shared(&app.db)
}

each_backend! {
    // In-process too: a module's fairing reads its own section and a bad value stops the
    // ignition, whoever builds the server (the binary checks everything first; a test or an
    // embedding program goes straight to Rocket).
    async fn a_bad_module_section_stops_the_ignition(backend) {
        let db = crate::helpers::TestDb::new(&backend).await;
        for (key, value) in [
            ("registration.per_client", json!(0)),
            ("password_reset.token_ttl", json!("soon")),
            ("sessions.unknown", json!(1)),
        ] {
            let figment = crate::helpers::figment(&db).merge((key, value.clone()));
            let Err(error) = stride::build(figment).ignite().await else {
                panic!("{key} = {value} was accepted");
            };
            // (A Rocket error must be looked at, or it panics when dropped.)
            let rocket::error::ErrorKind::FailedFairings(failed) = error.kind() else {
                panic!("{key} = {value}: {error}");
            };
            // The fairing that failed is the module's own, named as the module.
            let module = key.split('.').next().expect("a section");
            assert!(failed.iter().any(|f| f.name == module), "{key} = {value}: {failed:?}");
        }
        // Switched off, a module still owns its section: the binary's check refuses it.
        if cfg!(feature = "pictures") {
            let figment = crate::helpers::figment(&db)
                .merge(("modules.pictures", false))
                .merge(("pictures.max_size", 0));
            let error = stride::check_config(&figment).expect_err("refused").to_string();
            assert!(error.contains("pictures.max_size"), "{error}");
        }
    }
}
