//! Salesforce OAuth 2.0: the client credentials flow and the JWT bearer flow (an RS256-signed
//! assertion), both `POST <login_url>/services/oauth2/token`; the token is cached and fetched
//! again when older than [`MAX_TOKEN_AGE`] or when the API answers `INVALID_SESSION_ID`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use retl_engine::destination::DestinationError;

use crate::destinations::http;
use crate::destinations::invalid_config as invalid;

/// The token endpoint's path under `login_url`.
pub(crate) const TOKEN_PATH: &str = "/services/oauth2/token";

/// Salesforce answers no `expires_in` (the org's session timeout applies, 2 hours by default):
/// a token older than this is fetched again before use.
pub(crate) const MAX_TOKEN_AGE: Duration = Duration::from_secs(60 * 60);

/// How long a JWT assertion is valid (Salesforce accepts at most 3 minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// The OAuth flow.
#[derive(Debug)]
pub(crate) enum Flow {
    /// `grant_type=client_credentials` with the connected app's consumer key and secret.
    ClientCredentials {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: String,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an assertion signed by
    /// the connected app's certificate key.
    JwtBearer {
        /// Consumer key (`iss`).
        client_id: String,
        /// The user (`sub`).
        username: String,
        /// The private key (boxed: a key pair is much larger than the other variant).
        key: Box<RsaKeyPair>,
    },
}

/// An access token and the instance it is for.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// The bearer token.
    pub(crate) access_token: String,
    /// The org's instance URL, e.g. `https://mydomain.my.salesforce.com`.
    pub(crate) instance_url: String,
    fetched: Instant,
}

/// Fetches and caches tokens.
#[derive(Debug)]
pub(crate) struct TokenSource {
    login_url: String,
    flow: Flow,
    cached: Mutex<Option<Token>>,
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
}

/// The token endpoint's error: `{"error": "invalid_client", "error_description": "..."}`.
#[derive(Debug, Default, Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Parses a PEM RSA private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE
/// KEY`).
pub(crate) fn parse_private_key(pem: &str) -> Result<RsaKeyPair, DestinationError> {
    let bad = |why: &str| {
        invalid(
            "private_key",
            format!(
                "{why}; paste the PEM RSA private key of the connected app's certificate (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
            ),
        )
    };
    let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| bad("not PEM (the base64 body does not decode)"))?;
    let key = if pkcs1 {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    };
    key.map_err(|e| bad(&format!("not a usable RSA private key ({e})")))
}

/// The signed JWT bearer assertion: `{"alg":"RS256"}` header, claims `iss`, `sub`, `aud`
/// (the login URL) and `exp`.
pub(crate) fn assertion(
    key: &RsaKeyPair,
    client_id: &str,
    username: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, DestinationError> {
    let exp = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ASSERTION_LIFETIME)
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims =
        serde_json::json!({"iss": client_id, "sub": username, "aud": audience, "exp": exp});
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| DestinationError::Internal {
        message: "the JWT assertion could not be signed with the private key".to_string(),
    })?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

impl TokenSource {
    /// A source for this login URL (no trailing slash) and flow.
    pub(crate) fn new(login_url: String, flow: Flow) -> Self {
        TokenSource {
            login_url,
            flow,
            cached: Mutex::new(None),
        }
    }

    /// A valid token: the cached one unless it is older than [`MAX_TOKEN_AGE`] or is
    /// `rejected` (the API answered `INVALID_SESSION_ID` to it), else a new one.
    pub(crate) async fn token(
        &self,
        http_client: &reqwest::Client,
        rejected: Option<&str>,
    ) -> Result<Token, DestinationError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            let stale = token.fetched.elapsed() > MAX_TOKEN_AGE;
            if !stale && rejected != Some(token.access_token.as_str()) {
                return Ok(token.clone());
            }
        }
        let token = self.fetch(http_client).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// `POST <login_url>/services/oauth2/token` (form-encoded). Never traced: its body
    /// carries the credentials.
    async fn fetch(&self, http_client: &reqwest::Client) -> Result<Token, DestinationError> {
        let form: Vec<(&str, String)> = match &self.flow {
            Flow::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
            Flow::JwtBearer {
                client_id,
                username,
                key,
            } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
                ),
                (
                    "assertion",
                    assertion(key, client_id, username, &self.login_url, SystemTime::now())?,
                ),
            ],
        };
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = http_client
            .post(format!("{}{TOKEN_PATH}", self.login_url))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(http::classify_send_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(http::classify_send_error)?;
        if status.is_success() {
            let answer: TokenAnswer =
                serde_json::from_slice(&bytes).map_err(|e| DestinationError::Authentication {
                    message: format!("Salesforce's token answer could not be read ({e})"),
                })?;
            return Ok(Token {
                access_token: answer.access_token,
                instance_url: answer.instance_url.trim_end_matches('/').to_string(),
                fetched: Instant::now(),
            });
        }
        let error: TokenError = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = format!(
            "Salesforce refused the token request (HTTP {}): {}: {}; check client_id and client_secret (client credentials flow) or client_id, username and private_key (JWT bearer flow), and login_url",
            status.as_u16(),
            error.error.as_deref().unwrap_or("error"),
            error
                .error_description
                .unwrap_or_else(|| http::truncate(&String::from_utf8_lossy(&bytes), 200)),
        );
        if http::is_transient(status) {
            return Err(DestinationError::Transient {
                message,
                retry_after: None,
                throttled: status == reqwest::StatusCode::TOO_MANY_REQUESTS,
            });
        }
        Err(DestinationError::Authentication { message })
    }
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
