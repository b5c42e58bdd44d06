//! Emails as a test server's courier delivers them through lettre's file transport
//! (`email.url = "file://…"`), read back with mail-parser: the in-process tests' view of what a
//! user receives.

/// Where a test server's courier writes its messages (lettre's file transport), read back.
pub struct Mail(tempfile::TempDir);

impl Mail {
    pub fn new() -> Mail {
        Mail(tempfile::tempdir().expect("temp dir"))
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.0.path().display())
    }

    /// The text of every message delivered to `to`, oldest first.
    pub fn to(&self, to: &str) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.0.path())
            .expect("the mail folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| {
                let raw = std::fs::read(p).ok()?;
                let message = mail_parser::MessageParser::default().parse(&raw)?;
                let recipient = message.to()?.first()?.address()?.to_owned();
                (recipient == to).then(|| message.body_text(0).unwrap_or_default().into_owned())
            })
            .collect()
    }

    /// The token of the last confirmation link delivered to `to`, waiting for one (the courier
    /// sends after the answer).
    pub async fn token(&self, to: &str) -> String {
        self.tokens(to, 1).await.pop().expect("a token")
    }

    /// The tokens of the first `count` confirmation links delivered to `to`, waiting for them.
    pub async fn tokens(&self, to: &str, count: usize) -> Vec<String> {
        self.links(to, "/account-confirmation", count).await
    }

    /// Waits until `count` messages reached `to`, and returns their texts.
    pub async fn wait(&self, to: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let texts = self.to(to);
            if texts.len() >= count {
                return texts;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{count} emails to {to} did not arrive: {:?}", self.to(to));
    }

    /// The tokens of the `page` links in the first `count` messages to `to` (a message without
    /// one is skipped), waiting for the messages.
    pub async fn links(&self, to: &str, page: &str, count: usize) -> Vec<String> {
        let marker = format!("http://127.0.0.1:8000{page}?token=");
        self.wait(to, count)
            .await
            .iter()
            .filter_map(|text| {
                let (_, rest) = text.split_once(&marker)?;
                rest.split_whitespace().next().map(str::to_owned)
            })
            .collect()
    }
}

impl super::TestApp {
    /// A test server whose courier delivers to `mail`, with the registrations of one client
    /// unthrottled (tests make many), changed by `tweak`.
    pub async fn with_mail(
        backend: &super::Backend,
        mail: &Mail,
        tweak: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment,
    ) -> super::TestApp {
        let url = mail.url();
        super::TestApp::with(backend, |f| {
            tweak(
                f.merge(("email.url", url))
                    .merge(("registration.per_client", 1000)),
            )
        })
        .await
    }
}
