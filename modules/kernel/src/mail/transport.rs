//! Where messages go: an SMTP server (lettre, async, over tokio) or a folder of .eml files.

use std::path::PathBuf;
use std::time::Duration;

use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Transport {
    /// The folder of a `file://` URL (not URL-parsed: `file://data/outbox` is relative).
    fn folder(url: &str) -> Option<PathBuf> {
        url.strip_prefix("file://").map(PathBuf::from)
    }

    /// Checks a URL without connecting or creating anything.
    pub fn check(url: &str) -> Result<(), String> {
        if let Some(folder) = Self::folder(url) {
            return if folder.as_os_str().is_empty() {
                Err("file:// needs a folder".into())
            } else {
                Ok(())
            };
        }
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err("must be smtp://host:port, smtps://host or file://DIR".into());
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn open(url: &str) -> Result<Transport, String> {
        Self::check(url)?;
        if let Some(folder) = Self::folder(url) {
            std::fs::create_dir_all(&folder)
                .map_err(|e| format!("email folder {}: {e}", folder.display()))?;
            return Ok(Transport::File(AsyncFileTransport::new(folder)));
        }
        let builder =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| e.to_string())?;
        Ok(Transport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
    }

    pub async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}
