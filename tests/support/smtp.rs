//! A real SMTP server for the tests: aiosmtpd (Debian's python3-aiosmtpd, or from PyPI) on a
//! free port, storing what it receives in a Maildir; messages parsed with mail-parser.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub has_date: bool,
    pub message_id: Option<String>,
}

impl Received {
    /// The reset link in the text part, and the token in it.
    pub fn link(&self) -> (String, String) {
        let start = self
            .text
            .find("http")
            .unwrap_or_else(|| panic!("no link in {}", self.text));
        let link: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let token = link
            .split_once("token=")
            .map(|(_, t)| t.to_owned())
            .unwrap_or_else(|| panic!("no token in {link}"));
        (link, token)
    }
}

fn python() -> Option<String> {
    let candidates = [
        std::env::var("STRIDE_TEST_PYTHON").ok(),
        Some("/usr/bin/python3".into()),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether tests that need a missing tool must fail (CI) rather than skip (a fresh laptop).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

pub use crate::helpers::free_port;

impl SmtpServer {
    /// Starts aiosmtpd on a free port; `None` (the test skips) when aiosmtpd is not installed
    /// outside CI.
    pub fn start() -> Option<SmtpServer> {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Option<SmtpServer> {
        Self::start_with(port, &[])
    }

    /// STARTTLS (required) with this certificate and key.
    pub fn start_starttls(tls: &TestTls) -> Option<SmtpServer> {
        Self::start_with(free_port(), &["--tlscert", &tls.cert, "--tlskey", &tls.key])
    }

    /// Implicit TLS (SMTPS) with this certificate and key.
    pub fn start_smtps(tls: &TestTls) -> Option<SmtpServer> {
        Self::start_with(
            free_port(),
            &["--smtpscert", &tls.cert, "--smtpskey", &tls.key],
        )
    }

    fn start_with(port: u16, extra: &[&str]) -> Option<SmtpServer> {
        let Some(python) = python() else {
            assert!(
                !required(),
                "aiosmtpd is required in CI (apt-get install python3-aiosmtpd)"
            );
            eprintln!(
                "aiosmtpd is not installed (apt-get install python3-aiosmtpd): email test skipped"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("maildir");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let mut server = SmtpServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited ({status}) before listening on {port}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.dir.path().join("maildir").join(sub)).ok())
            .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
    }

    pub fn received(&self) -> Vec<Received> {
        self.files()
            .iter()
            .map(|path| parse(&std::fs::read(path).expect("message file")))
            .collect()
    }

    /// Waits until `count` messages have arrived (at most 20 s) and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} emails arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn parse(raw: &[u8]) -> Received {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a MIME message");
    Received {
        to: message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned(),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        has_date: message.date().is_some(),
        message_id: message.message_id().map(str::to_owned),
    }
}

/// A private CA and a server certificate for `localhost` signed by it, made with the openssl
/// command-line tool.
pub struct TestTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
    _dir: tempfile::TempDir,
}

impl TestTls {
    pub fn new() -> Option<TestTls> {
        if Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                !required(),
                "openssl is required in CI (apt-get install openssl)"
            );
            eprintln!("openssl is not installed: TLS email test skipped");
            return None;
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            path("leaf.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Stride test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("leaf.ext"),
            "-out",
            &path("server.pem"),
        ]);
        Some(TestTls {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        })
    }
}
