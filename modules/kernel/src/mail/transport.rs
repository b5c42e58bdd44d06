//! Where messages go: an SMTP server (lettre, async, over tokio) or a folder of .eml files.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::EmailConfig;
use crate::error::ConfigError;
use crate::error::Failure;

const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    Opportunistic,
    Required,
    Wrapper,
}

/// The TLS mode and host of an SMTP URL, read as lettre reads it.
fn tls_of(url: &str) -> Result<(TlsMode, String), String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no host")?
        .to_owned();
    let mode = if parsed.scheme() == "smtps" {
        TlsMode::Wrapper
    } else {
        match parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned())
            .as_deref()
        {
            Some("required") => TlsMode::Required,
            Some("opportunistic") => TlsMode::Opportunistic,
            _ => TlsMode::None,
        }
    };
    Ok((mode, host))
}

/// Extra trust for the SMTP server's certificate: a private CA or a self-signed certificate.
fn tls_parameters(host: &str, ca_file: &str) -> Result<TlsParameters, ConfigError> {
    let invalid = |e: &dyn std::fmt::Display| {
        ConfigError::invalid("email.ca_file", format!("{ca_file}: {e}"))
    };
    let pem = std::fs::read(ca_file).map_err(|e| invalid(&e))?;
    let certificate = Certificate::from_pem(&pem).map_err(|e| invalid(&e))?;
    TlsParameters::builder(host.to_owned())
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|e| invalid(&e))
}

/// An email URL as an error message may show it: without its credentials.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url:?}");
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("\"{scheme}://{rest}\"")
}

impl Transport {
    /// The folder of a `file://` URL (not URL-parsed: `file://data/outbox` is relative).
    fn folder(url: &str) -> Option<PathBuf> {
        url.strip_prefix("file://").map(PathBuf::from)
    }

    /// Checks the configuration without connecting or creating anything. Errors name the key.
    pub fn check(config: &EmailConfig) -> Result<(), ConfigError> {
        let url = config.url.as_str();
        if let Some(folder) = Self::folder(url) {
            if folder.as_os_str().is_empty() {
                return Err(ConfigError::invalid(
                    "email.url",
                    format!("file:// needs a folder (got {})", shown(url)),
                ));
            }
            return match config.ca_file {
                Some(_) => Err(ConfigError::invalid(
                    "email.ca_file",
                    "only used with SMTP over TLS",
                )),
                None => Ok(()),
            };
        }
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(ConfigError::invalid(
                "email.url",
                format!(
                    "must be smtp://host:port, smtps://host or file://DIR (got {})",
                    shown(url)
                ),
            ));
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ConfigError::invalid("email.url", format!("{e} (got {})", shown(url))))?;
        let (mode, host) = tls_of(url)
            .map_err(|e| ConfigError::invalid("email.url", format!("{e} (got {})", shown(url))))?;
        if let Some(ca_file) = &config.ca_file {
            if mode == TlsMode::None {
                return Err(ConfigError::invalid(
                    "email.ca_file",
                    "only used with smtps:// or ?tls=required|opportunistic",
                ));
            }
            tls_parameters(&host, ca_file)?;
        }
        Ok(())
    }

    pub fn open(config: &EmailConfig) -> Result<Transport, Failure> {
        Self::check(config).map_err(|e| Failure::new("email", e))?;
        if let Some(folder) = Self::folder(&config.url) {
            std::fs::create_dir_all(&folder)
                .map_err(|e| Failure::new(format!("email folder {}", folder.display()), e))?;
            return Ok(Transport::File(AsyncFileTransport::new(folder)));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| Failure::new("email.url", e))?;
        if let Some(ca_file) = &config.ca_file {
            let (mode, host) = tls_of(&config.url).map_err(|e| Failure::new("email.url", e))?;
            let parameters =
                tls_parameters(&host, ca_file).map_err(|e| Failure::new("email", e))?;
            builder = builder.tls(match mode {
                TlsMode::Wrapper => Tls::Wrapper(parameters),
                TlsMode::Required => Tls::Required(parameters),
                TlsMode::Opportunistic => Tls::Opportunistic(parameters),
                TlsMode::None => Tls::None,
            });
        }
        Ok(Transport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
    }

    pub async fn send(&self, message: Message) -> Result<(), Failure> {
        match self {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| Failure::new("SMTP", e)),
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| Failure::new("email file", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_show_the_url_without_its_credentials() {
        assert_eq!(
            shown("smtp://user:p%40ss@mail.example.org:587"),
            "\"smtp://mail.example.org:587\""
        );
        assert_eq!(shown("mail.example.org"), "\"mail.example.org\"");
        let config = EmailConfig {
            url: "http://user:secret@mail.example.org".into(),
            ..Default::default()
        };
        let error = Transport::check(&config).unwrap_err().to_string();
        assert!(
            error.contains("email.url") && error.contains("http://mail.example.org"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }

    use super::*;

    #[test]
    fn tls_modes() {
        assert_eq!(
            tls_of("smtps://mail.example.org").ok(),
            Some((TlsMode::Wrapper, "mail.example.org".into()))
        );
        assert_eq!(
            tls_of("smtp://u:p@localhost:587?tls=required").ok(),
            Some((TlsMode::Required, "localhost".into()))
        );
        assert_eq!(
            tls_of("smtp://h:25?tls=opportunistic").ok().map(|t| t.0),
            Some(TlsMode::Opportunistic)
        );
        assert_eq!(
            tls_of("smtp://127.0.0.1:2525").ok().map(|t| t.0),
            Some(TlsMode::None)
        );
    }
}
