//! Operations: the probes, request ids and the metrics (the graceful shutdown of the real
//! binary: tests/e2e/shutdown.rs).

// Built without the pictures module, the tests that need it are left out, and with them the
// only users of some imports and helpers.
#![cfg_attr(not(feature = "pictures"), allow(unused_imports, dead_code))]

use std::time::Duration;

use serde_json::json;

use crate::helpers::{each_backend, TestApp, PASSWORD};

/// The value of one series (`name{labels}` exactly as exposed), 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

async fn scrape(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let reply = app.raw("GET", "/metrics", headers, None).await;
    assert_eq!(
        reply.status.code,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        reply
            .header("Content-Type")
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.header("Content-Type")
    );
    String::from_utf8(reply.body).expect("text")
}

const METRICS_TOKEN: &str = "scrape-me-0123456789";

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "stride_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
    )
}

each_backend! {
    async fn probes_answer_and_ready_needs_every_migration(backend) {
        let app = TestApp::new(&backend).await;
        app.get("/health", None).await.assert_success(200, "alive");
        app.get("/ready", None).await.assert_success(200, "ready");
        // A database that lacks one of the binary's migrations cannot serve it.
        app.sql("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)").await;
        app.get("/ready", None).await
            .assert_error(503, "not ready: database migrations are not applied");
        app.get("/health", None).await.assert_success(200, "alive");
    }

    async fn every_answer_carries_a_request_id(backend) {
        let app = TestApp::new(&backend).await;
        let fresh = app.raw("GET", "/api/ping", &[], None).await;
        let id = fresh.header("X-Request-Id").to_owned();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let other = app.raw("GET", "/nowhere", &[], None).await;
        assert_eq!(other.status.code, 404);
        assert_ne!(other.header("X-Request-Id"), id, "one id per request, errors included");
        // A well-formed incoming id is kept (a proxy's or a client's, to follow a request
        // across services); anything else is replaced.
        let kept = app.raw("GET", "/api/ping", &[("X-Request-Id", "lb-7f3a.2:x_Y")], None).await;
        assert_eq!(kept.header("X-Request-Id"), "lb-7f3a.2:x_Y");
        let long = "a".repeat(65);
        for bad in [long.as_str(), "two words", "<script>"] {
            let replaced = app.raw("GET", "/api/ping", &[("X-Request-Id", bad)], None).await;
            assert_eq!(replaced.header("X-Request-Id").len(), 32, "{bad}");
        }
    }

    #[cfg(feature = "pictures")] // uses the pictures module
    async fn metrics_follow_a_flow(backend) {
        // Emails written as files: the courier counts them sent as it does through SMTP.
        let outbox = tempfile::tempdir().expect("a folder");
        let url = format!("file://{}", outbox.path().display());
        let app = TestApp::with(&backend, move |f| f.merge(("email.url", url))
            .merge(("metrics.token", METRICS_TOKEN))).await;
        let bearer = format!("Bearer {METRICS_TOKEN}");
        let token = [("Authorization", bearer.as_str())];
        let before = scrape(&app, &token).await;
        assert!(before.contains("# TYPE stride_db_pool_connections gauge"), "{before}");
        assert!(before.trim_end().ends_with("# EOF"), "OpenMetrics text");

        app.register("sam").await;
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        app.login("nobody@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        app.get("/api/users/nobody/picture", None).await;
        app.get("/no/such/path/42", None).await;
        app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        // The courier counts the delivery once the file is written, then records it in the
        // outbox: wait for both.
        let mut after = scrape(&app, &token).await;
        for _ in 0..200 {
            if sample(&after, "stride_emails_total{event=\"sent\"}") >= 1.0
                && sample(&after, "stride_outbox_pending") == 0.0 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = scrape(&app, &token).await;
        }

        let moved = |series: &str| sample(&after, series) - sample(&before, series);
        assert_eq!(moved(&requests("/api/auth/register", "POST", 201)), 1.0, "{after}");
        assert_eq!(moved(&requests("/api/auth/login", "POST", 200)), 1.0, "{after}");
        assert_eq!(moved(&requests("/api/auth/login", "POST", 401)), 2.0, "{after}");
        // Routes are counted by their template, never by the path asked for.
        assert_eq!(moved(&requests("/api/users/<username>/picture", "GET", 404)), 1.0, "{after}");
        assert_eq!(moved(&requests("unmatched", "GET", 404)), 1.0, "{after}");
        assert!(!after.contains("nobody") && !after.contains("/no/such/path"), "{after}");
        assert_eq!(moved("stride_logins_total{outcome=\"ok\"}"), 1.0, "{after}");
        assert_eq!(moved("stride_logins_total{outcome=\"failed\"}"), 2.0, "{after}");
        assert_eq!(moved("stride_emails_total{event=\"queued\"}"), 1.0, "{after}");
        assert_eq!(moved("stride_emails_total{event=\"sent\"}"), 1.0, "{after}");
        assert_eq!(sample(&after, "stride_outbox_pending"), 0.0, "{after}");
        assert!(sample(&after, "stride_db_pool_connections") >= 1.0, "{after}");
        assert!(sample(&after, "stride_db_pool_max_connections") >= 1.0, "{after}");
        assert!(after.contains("stride_db_pool_idle_connections "), "{after}");
        let login_latency = "stride_http_request_duration_seconds_count{method=\"POST\",route=\"/api/auth/login\"}";
        assert_eq!(sample(&after, login_latency) - sample(&before, login_latency), 3.0, "{after}");
    }

    /// Every connection the instance opens belongs to one of its pools, is counted in the
    /// metrics and is closed at shutdown: on PostgreSQL the session check's pool of its own
    /// too (`DbPool::own_pool`), which the shutdown once left open.
    async fn every_connection_is_counted_and_closed_at_shutdown(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("metrics.token", METRICS_TOKEN)).merge(("databases.main.max_connections", 3))
        })
        .await;
        let token = app.register("ann").await;
        assert_eq!(app.profile(&token).await.status.code, 200);
        let bearer = format!("Bearer {METRICS_TOKEN}");
        let metrics = scrape(&app, &[("Authorization", bearer.as_str())]).await;
        let postgres = matches!(backend, crate::helpers::Backend::Postgres(_));
        let own = if postgres { 1.0 } else { 0.0 };
        assert_eq!(sample(&metrics, "stride_db_pool_max_connections"), 3.0 + own, "{metrics}");
        let db = <kernel::Db as rocket_db_pools::Database>::fetch(app.client.rocket()).expect("database");
        let (open, _, most) = db.connections();
        assert_eq!(f64::from(most), 3.0 + own);
        assert!(open > u32::from(postgres), "{open} connections open");

        db.close_when_stopped().await;
        // sqlx's `close` returns once every connection is back, and one returned by a task
        // still running (the session's "last used" write) may be a moment closing.
        let mut open = db.connections().0;
        for _ in 0..50 {
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            open = db.connections().0;
        }
        assert_eq!(open, 0, "a connection is still open");
        if postgres {
            // The server agrees: no connection to this test's database is left but ours.
            use sqlx::Connection as _;
            let mut ours = sqlx::PgConnection::connect(&app.db.url).await.expect("a connection");
            let mut left = -1;
            for _ in 0..50 {
                left = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&mut ours)
                .await
                .expect("a count");
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(left, 0, "connections to the database left open");
        }
    }

    // Scraped without a token, as the default configuration serves them to anyone, the
    // metrics move alike for a reset request of an address with an account and of one
    // without: the series that would tell (emails, the outbox, the pool) are not there.
    async fn metrics_without_a_token_tell_nothing_of_accounts(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        let path = "/api/auth/password/reset-request";
        let s0 = scrape(&app, &[]).await;
        app.post(path, json!({"email": "nobody@example.com"})).await
            .assert_success(200, "password reset request processed");
        app.login("nobody@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s1 = scrape(&app, &[]).await;
        app.post(path, json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        for _ in 0..50 {
            if app.count("SELECT COUNT(*) AS n FROM outbox").await == 1 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox").await, 1, "the known address got its email");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s2 = scrape(&app, &[]).await;
        for hidden in ["stride_emails", "stride_outbox", "stride_db_pool"] {
            assert!(!s2.contains(hidden), "{hidden} served without a token:\n{s2}");
        }
        // Latency buckets depend on the machine's load, not on the address; counts do not.
        let series = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.contains("_bucket{") && !l.contains("_sum{"))
                .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
                .collect()
        };
        let mut names = series(&s0);
        names.extend(series(&s2));
        names.sort();
        names.dedup();
        for name in names {
            let (a, b, c) = (sample(&s0, &name), sample(&s1, &name), sample(&s2, &name));
            assert_eq!(b - a, c - b, "{name} moved differently for a known address:\n{s1}\n{s2}");
        }
    }

    async fn metrics_can_require_a_token_or_be_off(backend) {
        const TOKEN: &str = "scrape-me-0123456789";
        let app = TestApp::with(&backend, |f| f.merge(("metrics.token", TOKEN))).await;
        let refused = app.raw("GET", "/metrics", &[], None).await.json();
        refused.assert_error(401, "provide a valid metrics token");
        let session = app.register("sam").await;
        let bearer = format!("Bearer {session}");
        app.raw("GET", "/metrics", &[("Authorization", &bearer)], None).await.json()
            .assert_error(401, "provide a valid metrics token");
        let bearer = format!("Bearer {TOKEN}");
        scrape(&app, &[("Authorization", &bearer)]).await;

        let off = TestApp::with(&backend, |f| f.merge(("metrics.enabled", false))).await;
        off.get("/metrics", None).await.assert_error(404, "error, page not found");
        let document = off.get("/api/openapi.json", None).await.body;
        assert!(document["paths"]["/metrics"].is_null(), "not described when not mounted");
    }

    /// The pool lends a connection used within the last second unpinged (db.rs,
    /// `PING_AFTER_IDLE`); one idle longer is pinged first, so the connections a database
    /// restart ended are replaced before a request sees them.
    async fn connections_the_database_ended_are_replaced_unseen(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let profile = |reply: crate::helpers::Reply| {
            assert_eq!(reply.status.code, 200, "{:?}", reply.body);
            assert_eq!(reply.body["data"]["username"], "sam");
        };
        profile(app.profile(&token).await);
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            if matches!(backend, crate::helpers::Backend::Postgres(_)) {
                // As a restart does: every connection of the pool but the one asking ends.
                app.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .await;
                tokio::time::sleep(Duration::from_millis(1_200)).await;
            }
            // Several at once, each on a connection of its own.
            let replies = futures::future::join_all((0..4).map(|_| app.profile(&token))).await;
            replies.into_iter().for_each(profile);
            app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        }
    }
}
