//! FitTrackee 1.x's shapes of existing answers, served while `cookies.enabled` (the default) is
//! on, and FitTrackee 0.5's exact shapes with it off (docs/users-api.md, "FitTrackee 1.x's
//! keys").

use rocket::figment::Figment;
use serde_json::{json, Value};

use crate::helpers::{each_backend, sleep, sorted_keys, Mail, TestApp, PASSWORD, USER_KEYS_05};

fn off(f: Figment) -> Figment {
    f.merge(("cookies.enabled", false))
}

/// The values of FitTrackee 1.x's keys for a new user.
fn new_user_1x() -> Value {
    json!({
        "accepted_privacy_policy": true,
        "analysis_visibility": "private",
        "calories_visibility": "private",
        "date_format": "MM/dd/yyyy",
        "display_ascent": true,
        "followers": 0,
        "following": 0,
        "hide_profile_in_users_directory": true,
        "hr_visibility": "private",
        "manually_approves_followers": true,
        "map_visibility": "private",
        "media_visibility": "private",
        "messages_preferences": {},
        "missing_elevations_processing": "file",
        "notification_preferences": {},
        "sanctions_count": 0,
        "segments_creation_event": "only_manual",
        "split_workout_charts": true,
        "start_elevation_at_zero": true,
        "suspended_at": null,
        "total_ascent": 0.0,
        "use_dark_mode": null,
        "use_raw_gpx_speed": false,
        "workouts_visibility": "private",
    })
}

/// The lifecycle's keys (with the accounts module).
const LIFECYCLE: [&str; 3] = ["email_to_confirm", "is_active", "role"];

fn expected_keys(with_1x: bool) -> Vec<String> {
    let mut expected: Vec<String> = USER_KEYS_05.iter().map(|k| k.to_string()).collect();
    if cfg!(feature = "accounts") {
        expected.extend(LIFECYCLE.iter().map(|k| k.to_string()));
    }
    if with_1x {
        expected.extend(sorted_keys(&new_user_1x()));
    }
    expected.sort();
    expected
}

/// The preferences as FitTrackee 1.3.6's client sends them (its 20 keys).
fn preferences_1x() -> Value {
    json!({
        "analysis_visibility": "private", "calories_visibility": "followers_only",
        "date_format": "dd/MM/yyyy", "display_ascent": false,
        "hide_profile_in_users_directory": true, "hr_visibility": "private",
        "imperial_units": true, "language": "fr", "manually_approves_followers": true,
        "map_visibility": "private", "media_visibility": "public",
        "missing_elevations_processing": "none", "segments_creation_event": "none",
        "split_workout_charts": false, "start_elevation_at_zero": false,
        "timezone": "America/New_York", "use_dark_mode": true, "use_raw_gpx_speed": true,
        "weekm": true, "workouts_visibility": "private",
    })
}

const PREFERENCES: &str = "/api/auth/profile/edit/preferences";

each_backend! {
    async fn the_user_object_carries_the_1x_keys(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("registration.per_client", 1000))).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        let profile = app.profile(&sam).await.body["data"].clone();
        assert_eq!(sorted_keys(&profile), expected_keys(true), "{profile}");
        for (key, value) in new_user_1x().as_object().expect("object") {
            assert_eq!(&profile[key], value, "{key}");
        }
        assert!(profile["total_ascent"].is_f64());
        // The users API's object grows alike; another user still does not see the address.
        let seen = app.get("/api/users/sam", Some(&kim)).await.body["data"]["users"][0].clone();
        assert!(seen.get("email").is_none(), "{seen}");
        for (key, value) in new_user_1x().as_object().expect("object") {
            assert_eq!(&seen[key], value, "{key}");
        }
        let own = app.get("/api/users/sam", Some(&sam)).await.body["data"]["users"][0].clone();
        assert_eq!(own, profile);
        let listed = app.get("/api/users", Some(&sam)).await.body["data"]["users"].clone();
        let listed = listed.as_array().expect("users").iter().find(|u| u["username"] == "sam").cloned();
        assert_eq!(listed, Some(profile));
    }

    async fn with_cookies_off_the_user_object_is_05s(backend) {
        let app = TestApp::with(&backend, |f| off(f).merge(("registration.per_client", 1000))).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        let profile = app.profile(&sam).await.body["data"].clone();
        assert_eq!(sorted_keys(&profile), expected_keys(false), "{profile}");
        let mut seen = expected_keys(false);
        seen.retain(|k| !["email", "is_active", "email_to_confirm"].contains(&k.as_str()));
        let other = app.get("/api/users/sam", Some(&kim)).await.body["data"]["users"][0].clone();
        assert_eq!(sorted_keys(&other), seen);
        let reply = app.post_auth(PREFERENCES, &sam, preferences_1x()).await;
        reply.assert_success(200, "user preferences updated");
        assert_eq!(sorted_keys(&reply.body["data"]), expected_keys(false));
        let reply = app.post_auth("/api/auth/profile/edit", &sam,
            json!({"first_name": "", "last_name": "", "location": "", "bio": "", "birth_date": ""})).await;
        reply.assert_success(200, "user profile updated");
        assert_eq!(sorted_keys(&reply.body["data"]), expected_keys(false));
    }

    async fn preferences_keep_date_format_and_dark_mode(backend) {
        let app = TestApp::new(&backend).await;
        let sam = app.register("sam").await;
        let reply = app.post_auth(PREFERENCES, &sam, preferences_1x()).await;
        reply.assert_success(200, "user preferences updated");
        let data = &reply.body["data"];
        assert_eq!((&data["date_format"], &data["use_dark_mode"]), (&json!("dd/MM/yyyy"), &json!(true)));
        assert_eq!((&data["timezone"], &data["language"]), (&json!("America/New_York"), &json!("fr")));
        assert_eq!((&data["weekm"], &data["imperial_units"]), (&json!(true), &json!(true)));
        // The 14 keys Stride does not keep answer their constants.
        for key in ["display_ascent", "split_workout_charts", "start_elevation_at_zero"] {
            assert_eq!(data[key], true, "{key}");
        }
        assert_eq!(data["use_raw_gpx_speed"], false);
        assert_eq!(data["missing_elevations_processing"], "file");
        assert_eq!(data["calories_visibility"], "private");
        assert_eq!(app.profile(&sam).await.body["data"], *data);

        for (format, dark) in [("yyyy-MM-dd", json!(false)), ("date_string", Value::Null), ("MM/dd/yyyy", json!(true))] {
            let mut body = preferences_1x();
            body["date_format"] = format.into();
            body["use_dark_mode"] = dark.clone();
            let reply = app.post_auth(PREFERENCES, &sam, body).await;
            reply.assert_success(200, "user preferences updated");
            assert_eq!((&reply.body["data"]["date_format"], &reply.body["data"]["use_dark_mode"]), (&json!(format), &dark));
        }
        // 0.5's four alone keep the other two as they are.
        let reply = app.post_auth(PREFERENCES, &sam,
            json!({"timezone": "Europe/Paris", "weekm": false, "language": null, "imperial_units": false})).await;
        reply.assert_success(200, "user preferences updated");
        assert_eq!((&reply.body["data"]["date_format"], &reply.body["data"]["use_dark_mode"]), (&json!("MM/dd/yyyy"), &json!(true)));
    }

    async fn preferences_refusals(backend) {
        let app = TestApp::new(&backend).await;
        let sam = app.register("sam").await;
        let mut bad: Vec<Value> = Vec::new();
        for (key, value) in [
            ("date_format", json!("dd.MM.yyyy")), ("date_format", json!("")), ("date_format", Value::Null),
            ("date_format", json!(1)), ("use_dark_mode", json!("true")), ("use_dark_mode", json!(0)),
            ("analysis_visibility", json!(false)), ("calories_visibility", Value::Null),
            ("hr_visibility", json!(1)), ("map_visibility", json!(["private"])), ("media_visibility", json!({})),
            ("workouts_visibility", json!(true)), ("missing_elevations_processing", json!(0)),
            ("segments_creation_event", Value::Null), ("display_ascent", json!("true")),
            ("hide_profile_in_users_directory", json!(1)), ("manually_approves_followers", Value::Null),
            ("split_workout_charts", json!("false")), ("start_elevation_at_zero", json!(0)),
            ("use_raw_gpx_speed", json!("no")),
        ] {
            let mut body = preferences_1x();
            body[key] = value;
            bad.push(body);
        }
        // The four 0.5 keys stay required.
        for key in ["timezone", "weekm", "language", "imperial_units"] {
            let mut body = preferences_1x();
            body.as_object_mut().expect("object").remove(key);
            bad.push(body);
        }
        for body in bad {
            app.post_auth(PREFERENCES, &sam, body.clone()).await.assert_error(400, "invalid payload");
        }
        // Nothing was stored.
        let profile = app.profile(&sam).await.body["data"].clone();
        for (key, value) in new_user_1x().as_object().expect("object") {
            assert_eq!(&profile[key], value, "{key}");
        }
        assert_eq!(profile["timezone"], "Europe/Paris");
    }

    async fn with_cookies_off_the_1x_preferences_are_ignored(backend) {
        let app = TestApp::with(&backend, off).await;
        let sam = app.register("sam").await;
        let mut body = preferences_1x();
        body["date_format"] = "dd.MM.yyyy".into();
        body["use_dark_mode"] = "maybe".into();
        body["display_ascent"] = 3.into();
        app.post_auth(PREFERENCES, &sam, body).await.assert_success(200, "user preferences updated");
        let stored = app.count("SELECT COUNT(*) AS n FROM users WHERE date_format = 'MM/dd/yyyy' AND use_dark_mode IS NULL").await;
        assert_eq!(stored, 1);
    }

    async fn an_empty_profile_field_is_null(backend) {
        let app = TestApp::new(&backend).await;
        let sam = app.register("sam").await;
        let path = "/api/auth/profile/edit";
        let full = json!({"first_name": "Sam", "last_name": "Ré", "location": "Lyon", "bio": "runs", "birth_date": "1980-07-14"});
        app.post_auth(path, &sam, full).await.assert_success(200, "user profile updated");
        let reply = app.post_auth(path, &sam,
            json!({"first_name": "", "last_name": "", "location": "", "bio": "", "birth_date": ""})).await;
        reply.assert_success(200, "user profile updated");
        for key in ["first_name", "last_name", "location", "bio", "birth_date"] {
            assert_eq!(reply.body["data"][key], Value::Null, "{key}");
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users WHERE first_name IS NULL AND last_name IS NULL \
            AND location IS NULL AND bio IS NULL AND birth_date IS NULL").await, 1);
        // A bad date is still refused.
        app.post_auth(path, &sam, json!({"first_name": "", "last_name": "", "location": "", "bio": "", "birth_date": "14/07/1980"})).await
            .assert_error(400, "birth_date: valid date (YYYY-MM-DD) required\n");
    }

    async fn with_cookies_off_an_empty_profile_field_is_kept(backend) {
        let app = TestApp::with(&backend, off).await;
        let sam = app.register("sam").await;
        let reply = app.post_auth("/api/auth/profile/edit", &sam,
            json!({"first_name": "", "last_name": "", "location": "", "bio": "", "birth_date": ""})).await;
        reply.assert_success(200, "user profile updated");
        for key in ["first_name", "last_name", "location", "bio"] {
            assert_eq!(reply.body["data"][key], "", "{key}");
        }
        assert_eq!(reply.body["data"]["birth_date"], Value::Null);
    }

    async fn registration_without_password_conf(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("registration.per_client", 1000))).await;
        let reply = app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com",
            "password": PASSWORD, "accepted_policy": true, "language": "en", "timezone": "Europe/Paris"})).await;
        assert_eq!(reply.status.code, 201, "{}", reply.body);
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        // Sent, it is checked.
        app.post("/api/auth/register", json!({"username": "kim", "email": "kim@example.com",
            "password": PASSWORD, "password_conf": "something else"})).await
            .assert_error(400, "password: password and password confirmation do not match\n");
        app.post("/api/auth/register", json!({"username": "kim", "email": "kim@example.com",
            "password": PASSWORD, "password_conf": 1})).await
            .assert_error(400, "invalid payload");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 1);
    }

    async fn with_cookies_off_registration_needs_password_conf(backend) {
        let app = TestApp::with(&backend, off).await;
        app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD})).await
            .assert_error(400, "invalid payload");
        app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD,
            "password_conf": null})).await
            .assert_error(400, "invalid payload");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 0);
    }

    async fn password_update_without_password_conf(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        app.register("sam").await;
        app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        let token = mail.links("sam@example.com", "/password-reset", 1).await.pop().expect("a reset link");
        // Sent, it is checked, after the token.
        app.post("/api/auth/password/update", json!({"token": token, "password": "a fresh passphrase",
            "password_conf": "another passphrase"})).await
            .assert_error(400, "password: password and password confirmation do not match\n");
        app.post("/api/auth/password/update", json!({"token": "nope", "password": "a fresh passphrase"})).await
            .assert_error(401, "invalid token, please request a new token");
        app.post("/api/auth/password/update", json!({"token": token, "password": "a fresh passphrase"})).await
            .assert_success(200, "password updated");
        app.login("sam@example.com", "a fresh passphrase").await.assert_success(200, "successfully logged in");
    }

    async fn with_cookies_off_password_update_needs_password_conf(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, off).await;
        app.register("sam").await;
        app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        let token = mail.links("sam@example.com", "/password-reset", 1).await.pop().expect("a reset link");
        app.post("/api/auth/password/update", json!({"token": token, "password": "a fresh passphrase"})).await
            .assert_error(400, "invalid payload");
        app.post("/api/auth/password/update", json!({"token": token, "password": "a fresh passphrase",
            "password_conf": "a fresh passphrase"})).await
            .assert_success(200, "password updated");
    }

    async fn the_config_carries_the_1x_keys(backend) {
        let app = TestApp::new(&backend).await;
        let data = app.get("/api/config", None).await.body["data"].clone();
        assert_eq!(sorted_keys(&data), ["about", "admin_contact", "elevation_services", "file_limit_import",
            "file_sync_limit_import", "global_map_workouts_limit", "gpx_limit_import", "is_email_sending_enabled",
            "is_registration_enabled", "map_attribution", "max_image_size", "max_single_file_size", "max_users",
            "max_zip_file_size", "privacy_policy", "privacy_policy_date", "stats_workouts_limit", "version",
            "weather_provider"]);
        let expected = json!({
            "about": null, "admin_contact": null, "privacy_policy": null, "privacy_policy_date": null,
            "elevation_services": {"open_elevation": false, "valhalla": false}, "weather_provider": null,
            "file_limit_import": 10, "file_sync_limit_import": 10, "gpx_limit_import": 10,
            "max_image_size": 1_048_576, "max_single_file_size": 1_048_576,
            "stats_workouts_limit": 10_000, "global_map_workouts_limit": 10_000, "is_email_sending_enabled": true,
        });
        for (key, value) in expected.as_object().expect("object") {
            assert_eq!(&data[key], value, "{key}");
        }
    }

    async fn with_cookies_off_the_config_is_05s(backend) {
        let app = TestApp::with(&backend, off).await;
        let data = app.get("/api/config", None).await.body["data"].clone();
        assert_eq!(sorted_keys(&data), ["gpx_limit_import", "is_email_sending_enabled", "is_registration_enabled",
            "map_attribution", "max_single_file_size", "max_users", "max_zip_file_size", "version"]);
        // 1.x's keys are ignored, unchecked.
        let admin = app.admin("admin").await;
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_image_size": 2048}"#)).await
            .assert_error(400, "invalid payload");
        let reply = app.send("PATCH", "/api/config", Some(&admin),
            Some(r#"{"max_users": 3, "max_image_size": "big", "file_limit_import": 2, "about": 1}"#)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        let data = &reply.body["data"];
        assert_eq!((data["max_users"].as_i64(), data["max_single_file_size"].as_i64()), (Some(3), Some(1_048_576)));
        assert_eq!(data["gpx_limit_import"], 10);
        assert!(data.get("max_image_size").is_none());
    }

    async fn the_1x_admin_form_patches_the_config(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        // As FitTrackee 1.3.6's admin form sends it: max_image_size is the pictures limit.
        let form = json!({"admin_contact": "admin@example.com", "max_users": 20, "max_image_size": 2_097_152,
            "max_single_file_size": 1_048_576, "max_zip_file_size": 10_485_760, "file_limit_import": 5,
            "file_sync_limit_import": 7, "about": "An instance", "privacy_policy": null,
            "stats_workouts_limit": 500, "global_map_workouts_limit": 600});
        let reply = app.send("PATCH", "/api/config", Some(&admin), Some(&form.to_string())).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        let data = reply.body["data"].clone();
        assert_eq!((data["max_image_size"].as_i64(), data["max_single_file_size"].as_i64()), (Some(2_097_152), Some(2_097_152)));
        assert_eq!((data["file_limit_import"].as_i64(), data["gpx_limit_import"].as_i64()), (Some(5), Some(5)));
        assert_eq!(data["file_sync_limit_import"], 5);
        assert_eq!(data["max_users"], 20);
        // The texts are kept; what Stride has no use for is dropped.
        assert_eq!((&data["about"], &data["admin_contact"]), (&json!("An instance"), &json!("admin@example.com")));
        assert_eq!((&data["privacy_policy"], &data["privacy_policy_date"]), (&Value::Null, &Value::Null));
        assert_eq!(data["stats_workouts_limit"], 10_000);
        assert_eq!(app.get("/api/config", None).await.body["data"], data);
        // Any one of the form's keys is a change; the registration switch stays Stride's.
        let reply = app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"about": "x"}"#)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        let reply = app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"is_registration_enabled": false}"#)).await;
        assert_eq!(reply.body["data"]["is_registration_enabled"], false);
        let reply = app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_image_size": 4096}"#)).await;
        assert_eq!(reply.body["data"]["max_single_file_size"], 4096);
    }

    async fn the_instance_texts_are_kept_and_cleared(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        let patch = |body: Value| {
            let (app, admin) = (&app, &admin);
            async move { app.send("PATCH", "/api/config", Some(admin), Some(&body.to_string())).await }
        };
        let data = patch(json!({"privacy_policy": "We keep nothing.", "about": "Runs **here**"})).await.body["data"].clone();
        assert_eq!((&data["privacy_policy"], &data["about"]), (&json!("We keep nothing."), &json!("Runs **here**")));
        let date = data["privacy_policy_date"].as_str().expect("the policy's date").to_owned();
        assert!(date.ends_with(" GMT"), "{date}");
        // The same policy again keeps its date; other keys leave the texts alone.
        sleep(1).await;
        let data = patch(json!({"privacy_policy": "We keep nothing.", "max_users": 5})).await.body["data"].clone();
        assert_eq!(data["privacy_policy_date"], date.as_str());
        assert_eq!(patch(json!({"max_users": 6})).await.body["data"]["about"], "Runs **here**");
        // A new policy, a new date; "" and null clear.
        let data = patch(json!({"privacy_policy": "We keep less."})).await.body["data"].clone();
        assert_ne!(data["privacy_policy_date"], date.as_str());
        let data = patch(json!({"privacy_policy": "", "about": null, "admin_contact": "  "})).await.body["data"].clone();
        for key in ["privacy_policy", "privacy_policy_date", "about", "admin_contact"] {
            assert_eq!(data[key], Value::Null, "{key}");
        }
        // The contact must be an address; nothing changes otherwise.
        patch(json!({"admin_contact": "not an address", "about": "x"})).await
            .assert_error(400, "valid email must be provided for admin contact\n");
        assert_eq!(app.get("/api/config", None).await.body["data"]["about"], Value::Null);
        assert_eq!(patch(json!({"admin_contact": "Admin@Example.org"})).await.body["data"]["admin_contact"], "Admin@Example.org");
    }

    async fn the_1x_admin_form_refusals(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        for body in [r#"{"max_image_size": "2048"}"#, r#"{"max_image_size": 1.5}"#, r#"{"max_image_size": null}"#,
                     r#"{"file_limit_import": "5"}"#, r#"{"file_sync_limit_import": true}"#,
                     r#"{"stats_workouts_limit": "10"}"#, r#"{"global_map_workouts_limit": []}"#,
                     r#"{"about": 1}"#, r#"{"admin_contact": false}"#, r#"{"privacy_policy": {}}"#,
                     r#"{"max_users": 3, "about": 1}"#] {
            app.send("PATCH", "/api/config", Some(&admin), Some(body)).await.assert_error(400, "invalid payload");
        }
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_image_size": 0}"#)).await
            .assert_error(400, "Max. size of uploaded files must be greater than 0\n");
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"file_limit_import": 0}"#)).await
            .assert_error(400, "Max. files in a zip archive must be greater than 0\n");
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_image_size": 20000000}"#)).await
            .assert_error(400, "Max. size of zip archive must be equal or greater than max. size of uploaded files\n");
        let data = app.get("/api/config", None).await.body["data"].clone();
        assert_eq!((data["max_users"].as_i64(), data["max_image_size"].as_i64()), (Some(0), Some(1_048_576)));
    }

    async fn timezones(backend) {
        for cookies in [true, false] {
            let app = TestApp::with(&backend, |f| f.merge(("cookies.enabled", cookies))).await;
            let reply = app.get("/api/auth/timezones", None).await;
            assert_eq!(reply.status.code, 200, "{}", reply.body);
            assert_eq!(sorted_keys(&reply.body), ["status", "timezones"]);
            assert_eq!(reply.body["status"], "success");
            let names: Vec<&str> = reply.body["timezones"].as_array().expect("a list")
                .iter().map(|n| n.as_str().expect("a name")).collect();
            assert!(names.len() > 500, "{}", names.len());
            for name in ["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"] {
                assert!(names.contains(&name), "{name}");
            }
        }
    }
}
