//! OAuth 2.0 access tokens for Google APIs, shared by the Google destinations
//! (`google-sheets`, `google-ads-customer-match`).
//!
//! # Credentials ([`GoogleCredentials`])
//! A connector's config carries the credential fields flat (the catalog stores secrets as
//! top-level strings), declared by the `*_FIELD` constants below, and turns them into a
//! [`GoogleCredentials`] with [`GoogleCredentials::from_fields`]:
//! - **a service account**: `service_account_key`, the JSON key file (`type`
//!   `service_account`, `client_email`, `private_key` in PKCS#8 PEM, `token_uri`). retl signs
//!   a JWT with RS256 (header `{"alg":"RS256","typ":"JWT"}`, claims `iss` = `client_email`,
//!   `scope`, `aud` = the token URI, `iat` = now, `exp` = now + 1 h, the most Google accepts)
//!   and exchanges it with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   (<https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests>);
//! - **a user's refresh token**: `client_id`, `client_secret` (the OAuth client that obtained
//!   it) and `refresh_token`, exchanged with `grant_type=refresh_token`
//!   (<https://developers.google.com/identity/protocols/oauth2/web-server#offline>); the
//!   scopes are those the user consented to.
//!
//! The token URI is `token_uri` when the config sets it (tests point it at an emulator), else
//! the key file's `token_uri`, else `https://oauth2.googleapis.com/token`.
//!
//! # The cache ([`GoogleAuth`])
//! One access token per destination, reused until [`REFRESH_MARGIN`] before its `expires_in`
//! (Google issues one-hour tokens); one fetch at a time (callers wait for it instead of each
//! fetching). [`GoogleAuth::send`] sends a request with the token and, when the API answers
//! `401`, drops that token, fetches a new one and sends the request once more.
//!
//! # Errors
//! A refused token request (`invalid_grant`, `invalid_client`, `invalid_scope`, ...) is a
//! [`DestinationError::Authentication`] naming the config fields to check; a `429` or `5xx`
//! from the token endpoint is transient. Messages never contain the key, the client secret,
//! the refresh token, the JWT or an access token: Google's `error_description` is quoted with
//! any of them masked.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use retl_engine::destination::{DeliveryContext, DestinationError};
use retl_engine::secret::Secret;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::destinations::http::{self, Answer};

mod credentials;

use self::credentials::Grant;
pub(crate) use self::credentials::{
    CLIENT_ID_FIELD, CLIENT_SECRET_FIELD, CredentialFields, GoogleCredentials, REFRESH_TOKEN_FIELD,
    SERVICE_ACCOUNT_KEY_FIELD, TOKEN_URI_FIELD, ValidCredentials,
};

/// Google's token endpoint.
pub(crate) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The grant type of a service account's signed JWT.
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The lifetime of a JWT assertion: the maximum Google accepts ("exp ... a maximum of 1 hour
/// after the issued time").
pub(crate) const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to its expiry is renewed before use (at most half its lifetime).
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Assumed lifetime when the token endpoint answers without `expires_in`.
const DEFAULT_EXPIRES_IN: u64 = 3600;

/// The signed JWT of a service account's token request (RS256; claims `iss`, `scope`, `aud`,
/// `iat`, `exp` = `iat` + [`ASSERTION_LIFETIME`]).
///
/// # Errors
/// [`DestinationError::Internal`] when signing fails.
pub(crate) fn assertion(
    key: &RsaKeyPair,
    client_email: &str,
    scope: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, DestinationError> {
    let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": scope,
        "aud": audience,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME.as_secs(),
    });
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
        message: "the service account's JWT could not be signed with its private key".to_string(),
    })?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// An access token (redacted in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(Secret);

impl AccessToken {
    /// `Bearer <token>` as a sensitive header value.
    ///
    /// # Errors
    /// When the token endpoint issued a token that is not a valid header value.
    pub(crate) fn header(&self) -> Result<HeaderValue, DestinationError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.0.expose())).map_err(|_| {
                DestinationError::Authentication {
                message:
                    "Google's token endpoint issued an access token that cannot be sent in a header"
                        .to_string(),
            }
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    renew_at: Instant,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token endpoint's error answer.
#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// When a token that lives `expires_in` seconds, fetched at `fetched`, is renewed.
pub(crate) fn renew_at(fetched: Instant, expires_in: u64) -> Instant {
    let lifetime = Duration::from_secs(expires_in);
    fetched + lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2))
}

/// Access tokens for one destination: fetched, cached and renewed.
#[derive(Debug)]
pub(crate) struct GoogleAuth {
    credentials: ValidCredentials,
    scope: String,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

impl GoogleAuth {
    /// Tokens for these credentials and scopes (a service account's JWT asks for them; a
    /// refresh token has the scopes the user granted), fetched with `http`.
    pub(crate) fn new(
        credentials: ValidCredentials,
        scopes: &[&str],
        http: reqwest::Client,
    ) -> Self {
        GoogleAuth {
            credentials,
            scope: scopes.join(" "),
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token: the cached one unless it is due for renewal, else a new one.
    ///
    /// # Errors
    /// As the module docs say: Authentication for refused credentials, Transient otherwise.
    pub(crate) async fn token(&self) -> Result<AccessToken, DestinationError> {
        let mut cached = self.cached.lock().await;
        if let Some(entry) = cached.as_ref()
            && Instant::now() < entry.renew_at
        {
            return Ok(entry.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets `rejected` (an API answered 401 to it) unless a newer token replaced it.
    pub(crate) async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == *rejected) {
            *cached = None;
        }
    }

    /// Sends the request `build` makes with the token's `Authorization` header (through
    /// [`http::exchange`] when `ctx` is a delivery's, else [`http::fetch`]); when the API
    /// answers 401, renews the token and sends once more. Returns the answer whatever its
    /// status.
    ///
    /// # Errors
    /// A token that cannot be had, or a request that got no answer.
    pub(crate) async fn send(
        &self,
        ctx: Option<&DeliveryContext>,
        build: impl Fn(&reqwest::Client, HeaderValue) -> Result<reqwest::Request, DestinationError>,
    ) -> Result<Answer, DestinationError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let request = build(&self.http, token.header()?)?;
            let answer = match ctx {
                Some(ctx) => http::exchange(&self.http, request, ctx).await?,
                None => http::fetch(&self.http, request).await?,
            };
            if answer.status != StatusCode::UNAUTHORIZED || retried {
                return Ok(answer);
            }
            self.invalidate(&token).await;
            retried = true;
        }
    }

    /// One token request (never traced: its body carries the credentials).
    async fn fetch(&self) -> Result<Cached, DestinationError> {
        let token_uri = &self.credentials.token_uri;
        let mut form =
            Url::parse("http://form.invalid/").map_err(|e| DestinationError::Internal {
                message: format!("form encoding: {e}"),
            })?;
        let mut secrets: Vec<String> = Vec::new();
        {
            let mut pairs = form.query_pairs_mut();
            match &self.credentials.grant {
                Grant::ServiceAccount { client_email, key } => {
                    let jwt = assertion(
                        key,
                        client_email,
                        &self.scope,
                        token_uri.as_str(),
                        SystemTime::now(),
                    )?;
                    pairs
                        .append_pair("grant_type", JWT_BEARER_GRANT)
                        .append_pair("assertion", &jwt);
                    secrets.push(jwt);
                }
                Grant::RefreshToken {
                    client_id,
                    client_secret,
                    refresh_token,
                } => {
                    pairs
                        .append_pair("grant_type", "refresh_token")
                        .append_pair("client_id", client_id)
                        .append_pair("client_secret", client_secret.expose())
                        .append_pair("refresh_token", refresh_token.expose());
                    secrets.push(client_secret.expose().to_string());
                    secrets.push(refresh_token.expose().to_string());
                }
            }
        }
        let body = form.query().unwrap_or("").as_bytes().to_vec();
        let request = self
            .http
            .post(token_uri.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let fetched = Instant::now();
        let answer = http::fetch(&self.http, request).await?;
        if answer.status.is_success() {
            let parsed: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|_| {
                DestinationError::Authentication {
                    message: format!(
                        "the token endpoint answered HTTP {} with a body that is not a token answer; check token_uri",
                        answer.status.as_u16()
                    ),
                }
            })?;
            let token = parsed
                .access_token
                .filter(|t| !t.expose().is_empty())
                .ok_or_else(|| DestinationError::Authentication {
                    message: "the token endpoint answered without an access_token; check token_uri"
                        .to_string(),
                })?;
            return Ok(Cached {
                token: AccessToken(token),
                renew_at: renew_at(fetched, parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN)),
            });
        }
        Err(self.refused(&answer, &secrets))
    }

    /// The error of a refused token request, with what to check and no secret in it.
    fn refused(&self, answer: &Answer, secrets: &[String]) -> DestinationError {
        let parsed: TokenError = serde_json::from_slice(&answer.body).unwrap_or_default();
        let code = parsed.error.unwrap_or_else(|| "error".to_string());
        let mut description = parsed
            .error_description
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            description = description.replace(secret.as_str(), "<redacted>");
        }
        let description = http::truncate(description.trim(), 300);
        let status = answer.status.as_u16();
        let said = format!("Google's token endpoint answered HTTP {status} {code}: {description}");
        if http::is_transient(answer.status) {
            return DestinationError::Transient {
                message: said,
                retry_after: http::retry_after(&answer.headers, SystemTime::now()),
                throttled: answer.status == StatusCode::TOO_MANY_REQUESTS,
            };
        }
        let service_account = matches!(self.credentials.grant, Grant::ServiceAccount { .. });
        let fix = match (code.as_str(), service_account) {
            ("invalid_grant", true) => {
                "check service_account_key: the key may have been deleted or disabled in the Google Cloud console, the file edited, or this machine's clock may be off (the JWT's iat and exp are checked)"
            }
            ("invalid_grant", false) => {
                "refresh_token expired or was revoked (access withdrawn, password changed, or an OAuth consent screen in 'Testing' status, whose refresh tokens last 7 days): obtain a new refresh_token"
            }
            ("invalid_client" | "unauthorized_client", false) => {
                "check client_id and client_secret: they must be those of the OAuth client that obtained refresh_token"
            }
            ("invalid_scope" | "unauthorized_client", true) => {
                "the service account may not request this scope; check the key and that the API is enabled for its project"
            }
            _ if service_account => "check service_account_key and token_uri",
            _ => "check client_id, client_secret, refresh_token and token_uri",
        };
        DestinationError::Authentication {
            message: format!("{said}; {fix}"),
        }
    }
}

/// Adds the `Authorization` header to a request builder (for [`GoogleAuth::send`]'s `build`).
pub(crate) fn authorized(
    builder: reqwest::RequestBuilder,
    bearer: HeaderValue,
) -> reqwest::RequestBuilder {
    builder.header(AUTHORIZATION, bearer)
}

#[cfg(test)]
mod tests;
