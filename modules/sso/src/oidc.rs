//! OpenID Connect with the `openidconnect` crate: discovery (kept `sso.discovery_ttl`, fetched
//! again when an ID token names a key the cached set lacks: the provider rotated its keys),
//! the authorization URL with `state`, `nonce` and PKCE, and the code exchange with the ID
//! token's checks (issuer, audience, expiry, signature, nonce).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use tokio::sync::RwLock;

use crate::config::ProviderConfig;

/// A client made from a provider's discovery document.
type Discovered = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The longest Stride waits for a provider's answer (discovery, keys, token, user info).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong with a provider, as the callback page tells it apart.
#[derive(Debug)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense (discovery, token endpoint).
    Provider(String),
    /// The ID token failed a check: issuer, audience, expiry, signature or nonce.
    IdToken(String),
}

impl std::fmt::Display for OidcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OidcError::Provider(e) => write!(f, "provider: {e}"),
            OidcError::IdToken(e) => write!(f, "ID token: {e}"),
        }
    }
}

/// A login begun: where to send the browser, and what to keep for its callback.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says logged in.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
}

/// One configured provider and its cached discovery.
pub struct Provider {
    pub config: ProviderConfig,
    redirect_url: RedirectUrl,
    ttl: Duration,
    http: openidconnect::reqwest::Client,
    cached: RwLock<Option<(Arc<Discovered>, Instant)>>,
}

impl Provider {
    pub fn new(config: ProviderConfig, public_url: &str, ttl: Duration) -> Result<Self, String> {
        let redirect = format!(
            "{}/api/auth/sso/{}/callback",
            public_url.trim_end_matches('/'),
            config.id
        );
        let redirect_url = RedirectUrl::new(redirect).map_err(|e| e.to_string())?;
        // No redirects: a provider's endpoint that redirects elsewhere is not followed (SSRF).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Provider {
            config,
            redirect_url,
            ttl,
            http,
            cached: RwLock::new(None),
        })
    }

    async fn discover(&self) -> Result<Arc<Discovered>, OidcError> {
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect_url.clone());
        let client = Arc::new(client);
        *self.cached.write().await = Some((client.clone(), Instant::now()));
        tracing::info!(provider = %self.config.id, "OpenID provider discovered");
        Ok(client)
    }

    /// The cached client while fresh, else a new discovery.
    async fn client(&self) -> Result<Arc<Discovered>, OidcError> {
        if let Some((client, at)) = self.cached.read().await.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(client.clone());
            }
        }
        self.discover().await
    }

    /// The authorization URL, with a fresh `state`, `nonce` and PKCE challenge (S256).
    pub async fn start(&self) -> Result<Started, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the callback's code (with the PKCE verifier) and checks the ID token. A
    /// signature by a key the cached set lacks fetches the provider's keys again, once.
    pub async fn finish(
        &self,
        code: String,
        pkce_verifier: String,
        nonce: String,
    ) -> Result<Identity, OidcError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Provider("no ID token in the token response".into()))?;
        let nonce = Nonce::new(nonce);
        let (client, claims): (Arc<Discovered>, CoreIdTokenClaims) =
            match id_token.claims(&client.id_token_verifier(), &nonce) {
                Ok(claims) => (client.clone(), claims.clone()),
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) => {
                    tracing::info!(
                        provider = %self.config.id,
                        "ID token signed by an unknown key: fetching the provider's keys again"
                    );
                    let fresh = self.discover().await?;
                    let claims = id_token
                        .claims(&fresh.id_token_verifier(), &nonce)
                        .map_err(|e| OidcError::IdToken(e.to_string()))?
                        .clone();
                    (fresh, claims)
                }
                Err(e) => return Err(OidcError::IdToken(e.to_string())),
            };
        let mut identity = Identity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            preferred_username: claims.preferred_username().map(|u| u.to_string()),
        };
        // Some providers put the email in the user info only.
        if identity.email.is_none() {
            if let Ok(request) = client.user_info(
                response.access_token().clone(),
                Some(claims.subject().clone()),
            ) {
                let info: CoreUserInfoClaims = request
                    .request_async(&self.http)
                    .await
                    .map_err(|e| OidcError::Provider(format!("user info: {e}")))?;
                identity.email = info.email().map(|e| e.to_string());
                identity.email_verified = info.email_verified().unwrap_or(false);
                if identity.preferred_username.is_none() {
                    identity.preferred_username = info.preferred_username().map(|u| u.to_string());
                }
            }
        }
        Ok(identity)
    }
}
