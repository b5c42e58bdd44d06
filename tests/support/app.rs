//! The in-process server of a test, and its answers.

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket_db_pools::Database;
use serde_json::{json, Value};

use super::*;

pub struct TestApp {
    pub client: Client,
    pub db: TestDb,
}

pub struct Reply {
    pub status: Status,
    pub body: Value,
}

impl Reply {
    pub fn message(&self) -> &str {
        self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", self.body))
    }

    /// Asserts an error envelope with this status and message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.code, status, "{}", self.body);
        assert_eq!(self.body["status"], "error", "{}", self.body);
        assert_eq!(self.message(), message, "{}", self.body);
    }

    #[track_caller]
    pub fn assert_success(&self, status: u16, message: &str) {
        assert_eq!(self.status.code, status, "{}", self.body);
        assert_eq!(self.body["status"], "success", "{}", self.body);
        assert_eq!(self.message(), message, "{}", self.body);
    }

    pub fn token(&self) -> String {
        self.body["auth_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {}", self.body))
            .to_owned()
    }
}

pub async fn reply(response: LocalResponse<'_>) -> Reply {
    let status = response.status();
    let is_json = response.content_type().is_some_and(|c| c.is_json());
    let text = response.into_string().await.unwrap_or_default();
    let body = if status == Status::NoContent && text.is_empty() {
        Value::Null
    } else {
        assert!(is_json, "not JSON ({status}): {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"))
    };
    Reply { status, body }
}

impl TestApp {
    pub async fn new(backend: &Backend) -> TestApp {
        Self::with(backend, |f| f).await
    }

    pub async fn with(backend: &Backend, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
        let db = TestDb::new(backend).await;
        Self::on(db, tweak).await
    }

    /// A server on an existing test database (to restart one, or run two on one database).
    pub async fn on(db: TestDb, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
        let rocket = stride::build(tweak(figment(&db)));
        // Untracked: the client keeps no cookie between requests, as a Bearer client (0.5's)
        // does; a browser's cookies are sent explicitly (tests/api/cookies.rs).
        let client = Client::untracked(rocket)
            .await
            .expect("a valid test server");
        TestApp { client, db }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let method = method.parse().expect("an HTTP method");
        let mut request = self.client.req(method, path.to_owned());
        if let Some(token) = token {
            request = request.header(Header::new("Authorization", format!("Bearer {token}")));
        }
        if let Some(body) = body {
            request = request.header(ContentType::JSON).body(body);
        }
        reply(request.dispatch().await).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, None, Some(&body.to_string())).await
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send("POST", path, Some(token), Some(&body.to_string()))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None).await
    }

    pub async fn register_as(&self, username: &str, email: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/register",
            json!({"username": username, "email": email, "password": password, "password_conf": password}),
        )
        .await
    }

    /// Registers `name` (email `name@example.com`, password `PASSWORD`) and returns its token.
    pub async fn register(&self, name: &str) -> String {
        let reply = self
            .register_as(name, &format!("{name}@example.com"), PASSWORD)
            .await;
        reply.assert_success(201, "successfully registered");
        reply.token()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn profile(&self, token: &str) -> Reply {
        self.get("/api/auth/profile", Some(token)).await
    }

    /// Runs SQL on the server's own database.
    pub async fn sql(&self, statement: &str) {
        let db = kernel::Db::fetch(self.client.rocket()).expect("database");
        sqlx::query(statement)
            .execute(&***db)
            .await
            .expect("test SQL");
    }

    /// The single integer a query returns (`SELECT COUNT(*) AS n …`), on the server's database.
    pub async fn count(&self, query: &str) -> i64 {
        let db = kernel::Db::fetch(self.client.rocket()).expect("database");
        let row = sqlx::query(query)
            .fetch_one(&***db)
            .await
            .expect("test SQL");
        sqlx::Row::try_get(&row, "n").expect("a column n")
    }

    /// Registers `name` and makes it an instance admin; returns its token.
    pub async fn admin(&self, name: &str) -> String {
        let token = self.register(name).await;
        let db = kernel::Db::fetch(self.client.rocket()).expect("database");
        let mut conn = db.acquire().await.expect("connection");
        assert!(kernel::users::set_admin(&mut conn, name)
            .await
            .expect("set admin"));
        token
    }
}

/// An answer whatever its body (an image, or nothing), with its headers.
pub struct RawReply {
    pub status: Status,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    /// Every value of a header (case-insensitive name).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of a header; fails when absent or repeated.
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        match self.header_values(name)[..] {
            [value] => value,
            ref values => panic!("{name}: {values:?}"),
        }
    }

    /// The answer as a JSON reply.
    #[track_caller]
    pub fn json(&self) -> Reply {
        let is_json = self
            .header_values("Content-Type")
            .first()
            .is_some_and(|c| c.starts_with("application/json"));
        let text = String::from_utf8_lossy(&self.body);
        assert!(is_json, "not JSON ({}): {text}", self.status);
        let body =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"));
        Reply {
            status: self.status,
            body,
        }
    }
}

impl TestApp {
    /// Any request, with any headers and body; the answer whatever its type.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> RawReply {
        let method = method.parse().expect("an HTTP method");
        let mut request = self.client.req(method, path.to_owned());
        for (name, value) in headers {
            // Rocket's local client reads cookies from its own jar, not from a `Cookie` header.
            if name.eq_ignore_ascii_case("Cookie") {
                for pair in value.split(';') {
                    if let Some((n, v)) = pair.trim().split_once('=') {
                        request = request.cookie(Cookie::new(n.to_owned(), v.to_owned()));
                    }
                }
                continue;
            }
            request = request.header(Header::new(name.to_string(), value.to_string()));
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.dispatch().await;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let body = response.into_bytes().await.unwrap_or_default();
        RawReply {
            status,
            headers,
            body,
        }
    }

    /// `POST /api/auth/picture` with a multipart body.
    pub async fn upload_body(&self, token: &str, body: Vec<u8>) -> Reply {
        let bearer = format!("Bearer {token}");
        let content_type = multipart_content_type();
        self.raw(
            "POST",
            "/api/auth/picture",
            &[("Authorization", &bearer), ("Content-Type", &content_type)],
            Some(body),
        )
        .await
        .json()
    }

    /// Uploads `content` as the picture, under the file name `file_name`.
    pub async fn upload_picture(&self, token: &str, file_name: &str, content: &[u8]) -> Reply {
        self.upload_body(token, file_body(file_name, content)).await
    }

    /// `GET /api/users/<username>/picture`, with extra request headers.
    #[cfg(feature = "pictures")]
    pub async fn picture(&self, username: &str, headers: &[(&str, &str)]) -> RawReply {
        self.raw(
            "GET",
            &format!("/api/users/{username}/picture"),
            headers,
            None,
        )
        .await
    }
}
