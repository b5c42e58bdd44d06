//! The process's logger, installed before Rocket's (Rocket then keeps it): Rocket's levels and
//! filters, plain lines, and secrets redacted. Rocket prints every request line with its query
//! string, so opening a reset link would otherwise log a live reset token; at debug level it
//! also prints the `Authorization` header.

use std::io::Write;
use std::sync::LazyLock;

use log::{LevelFilter, Log, Metadata, Record};
use regex::Regex;
use rocket::config::LogLevel;
use rocket::figment::Figment;

static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    // Tokens are base64url (reset tokens, Biscuits). The values of secret fields, in JSON
    // (`"password": "…"`) or as Rocket prints form fields at debug level (`("password", "…")`),
    // run to their closing quote.
    Regex::new(
        r#"(?i)((?:token=|bearer\s+))[A-Za-z0-9_\-.=+/%~]+|("(?:auth_token|token|password|password_conf)"\s*[:,]\s*")[^"]*"#,
    )
        .expect("the redaction pattern compiles")
});

/// Replaces what follows `token=` and `Bearer `, and the values of secret fields, with
/// `[redacted]`.
pub fn redact(line: &str) -> std::borrow::Cow<'_, str> {
    SECRETS.replace_all(line, "${1}${2}[redacted]")
}

struct Redacting {
    max: LevelFilter,
}

impl Log for Redacting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.max
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // As Rocket does: the HTTP and TLS stacks speak only at debug level.
        let from = |path| record.module_path().is_some_and(|m| m.starts_with(path));
        if self.max < LevelFilter::Debug && (from("hyper") || from("rustls")) {
            return;
        }
        // Rocket marks indented lines with a target ending in "_".
        let indent = if record.target().ends_with('_') {
            "   >> "
        } else {
            ""
        };
        let line = format!("{indent}{}", record.args());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", redact(&line));
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Installs the logger at the configured `log_level`.
pub fn init(figment: &Figment) {
    let level = rocket::Config::try_from(figment).map_or(LogLevel::Normal, |c| c.log_level);
    let max = match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Critical => LevelFilter::Warn,
        LogLevel::Normal => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(Redacting { max })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

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
}
