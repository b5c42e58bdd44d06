//! Every request gets an id: a well-formed incoming `X-Request-Id` is kept, anything else is
//! replaced by a fresh one. The id goes back in the `X-Request-Id` response header and onto
//! every log line the request causes, and each request ends with one access line (method,
//! route template, status, latency) and its count in the metrics.
//!
//! How the id reaches log lines: Rocket 0.5 runs each request, from its fairings to the last
//! byte of the response, in a tokio task of its own, and logs its own lines from it. The
//! request binds its id to that task in [`RequestIds`], which the process's log formatter
//! reads; tasks started for the request ([`crate::background::Background`]) inherit it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

use crate::metrics::Metrics;

pub const HEADER: &str = "X-Request-Id";
/// Longer incoming ids are replaced: they would only bloat every log line.
const MAX_LENGTH: usize = 64;

/// Which request each running tokio task works for. Shared by the server (managed state) and
/// the log formatter; cheap to clone.
#[derive(Clone, Default)]
pub struct RequestIds(Arc<Mutex<HashMap<tokio::task::Id, Arc<str>>>>);

impl RequestIds {
    /// The id of the request the current task works for.
    pub fn current(&self) -> Option<Arc<str>> {
        let task = tokio::task::try_id()?;
        self.0.lock().ok()?.get(&task).cloned()
    }

    /// Binds the current task to `id` until the returned binding is dropped.
    pub fn bind(&self, id: Arc<str>) -> Option<Binding> {
        let task = tokio::task::try_id()?;
        self.0.lock().ok()?.insert(task, id);
        Some(Binding {
            ids: self.clone(),
            task,
        })
    }
}

/// Unbinds its task when dropped.
pub struct Binding {
    ids: RequestIds,
    task: tokio::task::Id,
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Ok(mut map) = self.ids.0.lock() {
            map.remove(&self.task);
        }
    }
}

/// What the fairing keeps on a request (Rocket's local cache, dropped with the request, which
/// unbinds its task).
struct Context {
    id: Arc<str>,
    started: Instant,
    _binding: Option<Binding>,
}

fn well_formed(id: &str) -> bool {
    (1..=MAX_LENGTH).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn fresh_id() -> Arc<str> {
    let mut bytes = [0u8; 16];
    // Without OS randomness, an id from the clock still tells requests apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    hex::encode(bytes).into()
}

fn context<'r>(request: &'r Request<'_>) -> &'r Context {
    request.local_cache(|| {
        let id = request
            .headers()
            .get_one(HEADER)
            .filter(|id| well_formed(id))
            .map_or_else(fresh_id, Arc::from);
        let binding = request
            .rocket()
            .state::<RequestIds>()
            .and_then(|ids| ids.bind(id.clone()));
        Context {
            id,
            started: Instant::now(),
            _binding: binding,
        }
    })
}

/// The kernel's request fairing: ids, access lines and request metrics.
pub struct Requests;

#[rocket::async_trait]
impl Fairing for Requests {
    fn info(&self) -> Info {
        Info {
            name: "Stride requests",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        context(request);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let context = context(request);
        response.set_header(Header::new(HEADER, context.id.to_string()));
        let elapsed = context.started.elapsed();
        let route = request.route().map(|r| r.uri.as_str());
        let method = request.method().as_str();
        let status = response.status().code;
        if let Some(metrics) = request.rocket().state::<Metrics>() {
            metrics.request(method, route, status, elapsed);
        }
        tracing::info!(
            target: "stride::access",
            method,
            route = route.unwrap_or("unmatched"),
            status,
            latency_ms = (elapsed.as_secs_f64() * 1e4).round() / 10.0,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids() {
        assert!(well_formed("3f2c-1a:b.c_D"));
        assert!(well_formed(&"a".repeat(64)));
        assert!(!well_formed(&"a".repeat(65)));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert!(!well_formed("a\nINFO forged line"));
        assert!(!well_formed("é"));
        assert_eq!(fresh_id().len(), 32);
    }

    #[tokio::test]
    async fn a_binding_lasts_as_long_as_it_lives() {
        let ids = RequestIds::default();
        let other = ids.clone();
        tokio::spawn(async move {
            assert!(ids.current().is_none());
            let binding = ids.bind("abc".into());
            assert_eq!(ids.current().as_deref(), Some("abc"));
            // Another task does not see it.
            let elsewhere = tokio::spawn(async move { other.current() }).await;
            assert!(elsewhere.expect("join").is_none());
            drop(binding);
            assert!(ids.current().is_none());
        })
        .await
        .expect("the task passes");
    }
}
