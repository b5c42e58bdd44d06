//! The process's logs: a `tracing` subscriber, installed before Rocket starts (Rocket logs
//! through `log`, bridged into it, and then keeps it). One line per event, as text (the
//! default) or JSON (`log_format = "json"`), each with the id of the request it belongs to.
//!
//! Secrets are redacted from every line. Rocket prints every request line with its query
//! string, so opening a reset link would otherwise log a live reset token; at debug level it
//! also prints the `Authorization` header.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::LazyLock;

use kernel::RequestIds;
use regex::Regex;
use rocket::config::LogLevel;
use rocket::figment::Figment;
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    // Tokens are base64url (reset tokens, Biscuits). The values of secret fields, in JSON
    // (`"password": "…"`) or as Rocket prints form fields at debug level (`("password", "…")`),
    // run to their closing quote.
    Regex::new(
        r#"(?i)((?:token=|bearer\s+))[A-Za-z0-9_\-.=+/%~]+|("(?:auth_token|token|password|password_conf)"\s*[:,]\s*")[^"]*"#,
    )
        .expect("the redaction pattern compiles")
});

/// Field names whose values are never written.
const SECRET_FIELDS: [&str; 5] = ["password", "password_conf", "token", "auth_token", "link"];

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("\x1b\\[[0-9;]*m").expect("the ANSI pattern compiles"));

/// Replaces what follows `token=` and `Bearer `, and the values of secret fields, with
/// `[redacted]`.
pub fn redact(line: &str) -> Cow<'_, str> {
    SECRETS.replace_all(line, "${1}${2}[redacted]")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The logging keys: Rocket's `log_level`, and Stride's `log_format` and `log_filter`.
#[derive(Deserialize, Default)]
struct LogConfig {
    log_format: Option<String>,
    log_filter: Option<String>,
}

/// What `log_level` means as a filter. As Rocket does, the HTTP and TLS stacks speak only at
/// debug level.
fn default_filter(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Off => "off",
        LogLevel::Critical => "warn,hyper=off,rustls=off",
        LogLevel::Normal => "info,hyper=off,rustls=off",
        LogLevel::Debug => "trace",
    }
}

/// The format and filter the configuration asks for; an error names the key at fault.
pub fn settings(figment: &Figment) -> Result<(Format, EnvFilter), String> {
    let config: LogConfig = figment.extract().map_err(|e| e.to_string())?;
    let format = match config.log_format.as_deref().map(str::to_ascii_lowercase) {
        None => Format::Text,
        Some(f) if f == "text" => Format::Text,
        Some(f) if f == "json" => Format::Json,
        Some(other) => return Err(format!("log_format: \"{other}\" is neither text nor json")),
    };
    let level = rocket::Config::try_from(figment).map_or(LogLevel::Normal, |c| c.log_level);
    let directives = config
        .log_filter
        .unwrap_or_else(|| default_filter(level).to_owned());
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| format!("log_filter: {e}"))?;
    Ok((format, filter))
}

/// Installs the subscriber. `ids` tells which request a task works for.
pub fn init(figment: &Figment, ids: RequestIds) -> Result<(), String> {
    let (format, filter) = settings(figment)?;
    // Fails only when a subscriber is already installed (a test calling twice): keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(Lines { format, ids })
        .try_init();
    Ok(())
}

/// Writes each event as one line on stdout.
struct Lines {
    format: Format,
    ids: RequestIds,
}

/// The fields of an event or a span, secrets redacted.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // The `log` bridge's own fields: the target is used, the rest is noise.
        if name.starts_with("log.") {
            return;
        }
        let value = match value {
            _ if SECRET_FIELDS.contains(&name) => Value::from("[redacted]"),
            Value::String(s) => Value::from(redact(&s).into_owned()),
            other => other,
        };
        if name == "message" {
            self.message = value.as_str().map(str::to_owned);
        } else {
            self.values.retain(|(n, _)| *n != name);
            self.values.push((name, value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

fn timestamp() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// A value as text: bare when it is one word, quoted otherwise.
fn text_value(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() && !s.contains([' ', '"', '=', '\n']) => s.clone(),
        other => other.to_string(),
    }
}

impl<S> Layer<S> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Rocket marks indented lines with a target ending in "::_".
        let (target, indented) = match metadata.target().strip_suffix("::_") {
            Some(target) => (target, true),
            None => (metadata.target(), false),
        };
        let message = fields.message.take().unwrap_or_default();
        let spans: Vec<(String, Vec<(&'static str, Value)>)> = ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let values = span
                    .extensions()
                    .get::<Fields>()
                    .map(|f| f.values.clone())
                    .unwrap_or_default();
                (span.name().to_owned(), values)
            })
            .collect();
        let request_id = self.ids.current();
        let line = match self.format {
            Format::Text => {
                let mut line = format!("{} {:>5} {target}: ", timestamp(), metadata.level());
                for (name, values) in &spans {
                    line.push_str(name);
                    if !values.is_empty() {
                        let inner: Vec<String> = values
                            .iter()
                            .map(|(k, v)| format!("{k}={}", text_value(v)))
                            .collect();
                        let _ = write!(line, "{{{}}}", inner.join(" "));
                    }
                    line.push_str(": ");
                }
                if indented {
                    line.push_str(">> ");
                }
                line.push_str(&message);
                for (name, value) in &fields.values {
                    let _ = write!(line, " {name}={}", text_value(value));
                }
                if let Some(id) = &request_id {
                    let _ = write!(line, " request_id={id}");
                }
                redact(&line).into_owned()
            }
            Format::Json => {
                let mut object = Map::new();
                object.insert("timestamp".into(), timestamp().into());
                object.insert("level".into(), metadata.level().as_str().into());
                object.insert("target".into(), target.into());
                object.insert(
                    "message".into(),
                    ANSI.replace_all(&redact(&message), "").into(),
                );
                if let Some(id) = &request_id {
                    object.insert("request_id".into(), id.to_string().into());
                }
                for (name, value) in fields.values {
                    object.entry(name).or_insert(value);
                }
                if !spans.is_empty() {
                    let spans = spans
                        .into_iter()
                        .map(|(name, values)| {
                            let mut span: Map<String, Value> =
                                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                            span.insert("name".into(), name.into());
                            Value::Object(span)
                        })
                        .collect();
                    object.insert("spans".into(), Value::Array(spans));
                }
                Value::Object(object).to_string()
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::Serialized;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("GET /password-reset?token=abc-DEF_123:"),
            "GET /password-reset?token=[redacted]:"
        );
        assert_eq!(
            redact("\"authorization\": \"Bearer EvAB.c_d-e=\","),
            "\"authorization\": \"Bearer [redacted]\","
        );
        assert_eq!(
            redact(r#"{"password": "hunter22", "email": "a@b.co"}"#),
            r#"{"password": "[redacted]", "email": "a@b.co"}"#
        );
        assert_eq!(
            redact("POST /api/auth/login application/json:"),
            "POST /api/auth/login application/json:"
        );
        assert_eq!(
            redact(r#"   >> url-encoded field: ("password", "hunter22")"#),
            r#"   >> url-encoded field: ("password", "[redacted]")"#
        );
    }

    #[test]
    fn settings_name_the_key_at_fault() {
        let figment = |key: &str, value: &str| Figment::from(Serialized::default(key, value));
        assert_eq!(
            settings(&figment("log_format", "JSON")).map(|s| s.0),
            Ok(Format::Json)
        );
        assert_eq!(settings(&Figment::new()).map(|s| s.0), Ok(Format::Text));
        let e = settings(&figment("log_format", "xml")).map(|s| s.0);
        assert!(e.is_err_and(|e| e.starts_with("log_format")));
        let e = settings(&figment("log_filter", "info,=[")).map(|s| s.0);
        assert!(e.is_err_and(|e| e.starts_with("log_filter")));
    }
}
