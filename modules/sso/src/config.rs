//! The section `sso.*` (docs/sso.md, "Configuration").

use std::collections::BTreeSet;

use ipnet::IpNet;
use kernel::config::{ConfigError, Section};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsoConfig {
    /// OpenID Connect providers, each at `/api/auth/sso/<id>/start`.
    pub providers: Vec<ProviderConfig>,
    /// Where the callback sends the browser with its one-time code (`?code=…` is appended).
    /// Relative to `public_url` when it starts with `/`.
    pub return_url: String,
    /// Where `GET /api/auth/sso/complete` sends a browser once its session is in its cookies
    /// (the web client). Relative to `public_url` when it starts with `/`.
    pub web_url: String,
    /// Seconds a started login (its `state`, `nonce` and PKCE verifier) waits for its callback.
    pub flow_ttl: u64,
    /// Seconds a one-time code waits for its exchange.
    pub code_ttl: u64,
    /// Seconds a provider's discovery document and keys are kept (they are fetched again at
    /// once when an ID token names a key they lack).
    pub discovery_ttl: u64,
    /// The value of the SSO-only switch before an admin sets it (`PATCH /api/auth/sso/settings`).
    pub only: bool,
    /// Logins begun (each a row and a call to the provider) from one client per
    /// `throttle.window`, before a 429.
    pub starts_per_client: i64,
    pub trusted_header: TrustedHeaderConfig,
}

impl Default for SsoConfig {
    fn default() -> Self {
        SsoConfig {
            providers: Vec::new(),
            return_url: "/".into(),
            web_url: "/".into(),
            flow_ttl: 600,
            code_ttl: 60,
            discovery_ttl: 3600,
            only: false,
            starts_per_client: 30,
            trusted_header: TrustedHeaderConfig::default(),
        }
    }
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's name in Stride's paths: letters, digits, `-` and `_`.
    pub id: String,
    /// What a login page shows.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer: discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

impl ProviderConfig {
    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }
}

/// What a forward-auth proxy's header identifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identifies {
    #[default]
    Email,
    Username,
}

/// A header set by a forward-auth proxy, believed only from the proxy's addresses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedHeaderConfig {
    /// The header's name (`Remote-User`, `X-Forwarded-Email`); none = off.
    pub header: Option<String>,
    /// What its value is: an account's email or its username.
    pub identifies: Identifies,
    /// The proxies' addresses (CIDRs, or single addresses): the connecting peer must be one.
    pub proxies: Vec<String>,
}

impl TrustedHeaderConfig {
    /// The proxies as networks (checked by `validate`).
    pub fn networks(&self) -> Vec<IpNet> {
        self.proxies.iter().filter_map(|p| parse_net(p)).collect()
    }
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Section for SsoConfig {
    const NAME: &'static str = "sso";

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = BTreeSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            if !valid_id(&provider.id) {
                return Err(ConfigError::invalid(
                    &format!("sso.providers[{i}].id"),
                    format!(
                        "must be 1 to 32 letters, digits, '-' or '_' (got {:?})",
                        provider.id
                    ),
                ));
            }
            if !seen.insert(provider.id.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("sso.providers[{i}].id"),
                    format!("{:?} is named twice", provider.id),
                ));
            }
            if openidconnect::IssuerUrl::new(provider.issuer.clone()).is_err()
                || !(provider.issuer.starts_with("https://")
                    || provider.issuer.starts_with("http://"))
            {
                return Err(ConfigError::invalid(
                    &format!("sso.providers[{i}].issuer"),
                    format!("must be an http(s) URL (got {:?})", provider.issuer),
                ));
            }
            if provider.client_id.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("sso.providers[{i}].client_id"),
                    "must not be empty",
                ));
            }
        }
        for (key, value) in [
            ("sso.flow_ttl", self.flow_ttl),
            ("sso.code_ttl", self.code_ttl),
            ("sso.discovery_ttl", self.discovery_ttl),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be at least 1 second (got 0)",
                ));
            }
        }
        if self.starts_per_client < 1 {
            return Err(ConfigError::invalid(
                "sso.starts_per_client",
                format!("must be at least 1 (got {})", self.starts_per_client),
            ));
        }
        for (key, url) in [
            ("sso.return_url", &self.return_url),
            ("sso.web_url", &self.web_url),
        ] {
            if !(url.starts_with('/') || url.starts_with("https://") || url.starts_with("http://"))
                || url.contains('#')
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be a path or an http(s) URL, without a fragment (got {url:?})"),
                ));
            }
        }
        let trusted = &self.trusted_header;
        if let Some(header) = &trusted.header {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"-_".contains(&b);
            if header.is_empty() || !header.bytes().all(token) {
                return Err(ConfigError::invalid(
                    "sso.trusted_header.header",
                    format!("must be a header name (got {header:?})"),
                ));
            }
            if trusted.proxies.is_empty() {
                return Err(ConfigError::invalid(
                    "sso.trusted_header.proxies",
                    "must name the proxies' addresses when a header is set",
                ));
            }
        }
        for (i, proxy) in trusted.proxies.iter().enumerate() {
            if parse_net(proxy).is_none() {
                return Err(ConfigError::invalid(
                    &format!("sso.trusted_header.proxies[{i}]"),
                    format!("must be an address or a CIDR (got {proxy:?})"),
                ));
            }
        }
        Ok(())
    }
}
