//! Emulator of Google's OAuth 2.0 token endpoint (`POST /token`, as
//! `https://oauth2.googleapis.com/token`) for the Google destinations (`google-sheets`,
//! `google-ads-customer-match`), and the bearer-token check their API emulators apply.
//!
//! # Reuse
//! [`GoogleOAuth`] is a cheap-to-clone handle on the endpoint's state. An API emulator merges
//! [`GoogleOAuth::router`] into its own router (so `<its url>/token` is the token URI) and
//! calls [`GoogleOAuth::check_bearer`] on every API request; [`GoogleOAuthEmulator`] runs the
//! endpoint alone (with `GET /v1/userinfo`, a bearer-protected resource for tests of the
//! 401-then-refresh path).
//!
//! # The contract it enforces
//! `POST /token`, `application/x-www-form-urlencoded`:
//! - `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`
//!   (<https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests>):
//!   the JWT must be `header.claims.signature` with header `{"alg":"RS256","typ":"JWT"}`, an
//!   RS256 signature that the test key pair's public key ([`TEST_PUBLIC_KEY_PEM`]) verifies,
//!   `iss` = the service account's email, `aud` = this token URI (`http://<host>/token`),
//!   `scope` naming the required scope, `iat` not in the future (60 s of skew) and `exp`
//!   after now and at most one hour after `iat`. Failures answer `400` with Google's
//!   `{"error": "invalid_grant" | "invalid_scope", "error_description": ...}`.
//! - `grant_type=refresh_token&client_id&client_secret&refresh_token`
//!   (<https://developers.google.com/identity/protocols/oauth2/web-server#offline>): an
//!   unknown client → `401 {"error": "invalid_client"}`; a wrong or revoked refresh token →
//!   `400 {"error": "invalid_grant", "error_description": "Token has been expired or
//!   revoked."}`.
//! - any other grant → `400 unsupported_grant_type`.
//!
//! Success: `200 {"access_token": "ya29.test-<n>", "expires_in": <options.expires_in>,
//! "token_type": "Bearer", "scope": ...}`. An issued token is valid until it expires or
//! [`GoogleOAuth::expire_tokens`] ends it; [`GoogleOAuth::check_bearer`] answers anything else
//! with Google's `401 {"error": {"code": 401, "status": "UNAUTHENTICATED", ...}}`.
//!
//! The ledger counts every token request ([`GoogleOAuth::token_requests`]); fault controls:
//! [`GoogleOAuth::fail_next`], [`GoogleOAuth::revoke_refresh_token`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, Reply};

/// The private key (PKCS#8 PEM) of the test service account; never used outside tests.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../../testdata/google_test_key.pem");
/// Its public key (PKCS#1 `RSA PUBLIC KEY` PEM), with which the emulator verifies JWTs.
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../../testdata/google_test_key.pub.pem");
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/token";
/// The grant type of a service account's JWT.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest JWT lifetime Google accepts (`exp - iat`).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// Who may get tokens, and for how long they last.
#[derive(Debug, Clone)]
pub struct GoogleOAuthOptions {
    /// The service account's email (the JWT's `iss`).
    pub client_email: String,
    /// The PEM public key (PKCS#1) that verifies the service account's JWTs.
    pub public_key_pem: String,
    /// A scope every token request must include (a JWT's `scope` claim).
    pub required_scope: String,
    /// The OAuth client of the refresh-token grant.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The refresh token that is honoured.
    pub refresh_token: String,
    /// `expires_in` of issued tokens, in seconds (Google issues 3599).
    pub expires_in: u64,
}

impl Default for GoogleOAuthOptions {
    fn default() -> Self {
        GoogleOAuthOptions {
            client_email: "retl-test@retl-test.iam.gserviceaccount.com".to_string(),
            public_key_pem: TEST_PUBLIC_KEY_PEM.to_string(),
            required_scope: "https://www.googleapis.com/auth/spreadsheets".to_string(),
            client_id: "1234-test.apps.googleusercontent.com".to_string(),
            client_secret: "GOCSPX-test-client-secret".to_string(),
            refresh_token: "1//test-refresh-token".to_string(),
            expires_in: 3599,
        }
    }
}

impl GoogleOAuthOptions {
    /// A service account JSON key file for [`Self::client_email`] with the test private key
    /// and this `token_uri`, as the Google Cloud console downloads it.
    pub fn service_account_key_json(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "retl-test",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": TEST_PRIVATE_KEY_PEM,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }
}

/// One token request as the endpoint received it (credentials left out).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: String,
    /// The JWT's claims (service account grant), `Value::Null` otherwise.
    pub claims: Value,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct OAuthState {
    options: GoogleOAuthOptions,
    /// Issued tokens and when they expire.
    issued: BTreeMap<String, Instant>,
    requests: Vec<TokenRequest>,
    faults: Faults,
    refresh_revoked: bool,
    next: u64,
}

/// The token endpoint's state, shared by the routers and tests that hold a clone.
#[derive(Debug, Clone)]
pub struct GoogleOAuth {
    shared: Arc<Mutex<OAuthState>>,
}

impl GoogleOAuth {
    /// A token endpoint for these accounts.
    pub fn new(options: GoogleOAuthOptions) -> Self {
        GoogleOAuth {
            shared: Arc::new(Mutex::new(OAuthState {
                options,
                issued: BTreeMap::new(),
                requests: Vec::new(),
                faults: Faults::default(),
                refresh_revoked: false,
                next: 0,
            })),
        }
    }

    /// The options it was started with.
    pub fn options(&self) -> GoogleOAuthOptions {
        self.lock().options.clone()
    }

    /// A router serving `POST /token`, to merge into an API emulator's router (not nest: the
    /// JWT's `aud` is checked against `http://<Host>/token`).
    pub fn router(&self) -> Router {
        Router::new()
            .route(TOKEN_PATH, axum::routing::any(token_route))
            .with_state(self.clone())
    }

    /// Answers a token request (for an emulator that dispatches paths itself).
    pub fn answer_token(&self, method: &Method, headers: &HeaderMap, body: &[u8]) -> Reply {
        let mut state = self.lock();
        if *method != Method::POST {
            return Reply::json(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "invalid_request", "error_description": "POST required"}),
            );
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let audience = format!("http://{host}{TOKEN_PATH}");
        let form = form(body);
        let grant_type = form.get("grant_type").cloned().unwrap_or_default();
        let mut claims = Value::Null;
        let reply = state
            .faults
            .injected(|status| {
                json!({"error": "internal_failure", "error_description": format!("injected {status}")})
            })
            .unwrap_or_else(|| match grant_type.as_str() {
                JWT_BEARER => {
                    let assertion = form.get("assertion").map_or("", String::as_str);
                    match verify_jwt(&state.options, assertion, &audience) {
                        Ok(verified) => {
                            claims = verified;
                            let scope = claims["scope"].as_str().unwrap_or("").to_string();
                            issue(&mut state, &scope)
                        }
                        Err(reply) => reply,
                    }
                }
                "refresh_token" => refresh(&mut state, &form),
                other => Reply::json(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "unsupported_grant_type", "error_description": format!("Invalid grant_type: {other}")}),
                ),
            });
        state.requests.push(TokenRequest {
            grant_type,
            claims,
            status: reply.status.as_u16(),
        });
        reply
    }

    /// `Ok` when `headers` carry `Authorization: Bearer <a valid issued token>`; else Google's
    /// `401 UNAUTHENTICATED` answer (with `WWW-Authenticate`), for the API emulator to send.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Reply> {
        let state = self.lock();
        let valid = common::bearer(headers)
            .and_then(|token| state.issued.get(&token).copied())
            .is_some_and(|expires| expires > Instant::now());
        if valid {
            return Ok(());
        }
        let mut reply = Reply::json(
            StatusCode::UNAUTHORIZED,
            json!({"error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "status": "UNAUTHENTICATED",
            }}),
        );
        reply.headers.push((
            "www-authenticate",
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"".to_string(),
        ));
        Err(reply)
    }

    /// Every token request so far, in arrival order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.lock().requests.clone()
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.status == 200)
            .count()
    }

    /// Ends every issued token now: the API answers 401 to them, as to a revoked or expired
    /// token.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().issued.values_mut() {
            *expiry = now;
        }
    }

    /// The refresh token is revoked (`invalid_grant`) from now on.
    pub fn revoke_refresh_token(&self) {
        self.lock().refresh_revoked = true;
    }

    /// The next `n` token requests answer `status` (Google's error JSON).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().faults.fail_next(n, status, None);
    }

    fn lock(&self) -> MutexGuard<'_, OAuthState> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn token_route(
    State(oauth): State<GoogleOAuth>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    oauth.answer_token(&method, &headers, &body).into_response()
}

/// `application/x-www-form-urlencoded` decoded (a repeated name keeps its last value).
fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                common::percent_decode(&k.replace('+', " ")),
                common::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn invalid_grant(description: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": description}),
    )
}

/// The claims of `assertion` if it is a JWT the service account signed for `audience`, else
/// Google's error answer.
fn verify_jwt(
    options: &GoogleOAuthOptions,
    assertion: &str,
    audience: &str,
) -> Result<Value, Reply> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(invalid_grant("Invalid JWT: not three segments."));
    };
    let decode = |part: &str| -> Option<Value> {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    };
    let header = decode(header).ok_or_else(|| invalid_grant("Invalid JWT header."))?;
    if header["alg"] != "RS256" || header.get("typ").is_some_and(|t| t != "JWT") {
        return Err(invalid_grant(
            "Invalid JWT: the header must be {\"alg\":\"RS256\",\"typ\":\"JWT\"}.",
        ));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
    let public = pem_der(&options.public_key_pem).unwrap_or_default();
    let signed = &assertion[..assertion.rfind('.').unwrap_or(0)];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
    let claims = decode(claims).ok_or_else(|| invalid_grant("Invalid JWT claims."))?;
    if claims["iss"] != options.client_email.as_str() {
        return Err(invalid_grant("Invalid grant: account not found"));
    }
    if claims["aud"] != audience {
        return Err(invalid_grant(&format!(
            "Invalid JWT: the aud claim must be {audience}."
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err(invalid_grant("Invalid JWT: iat and exp are required."));
    };
    if iat > now + 60 || exp <= now || exp < iat || exp - iat > MAX_ASSERTION_LIFETIME.as_secs() {
        return Err(invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scopes: Vec<&str> = claims["scope"].as_str().unwrap_or("").split(' ').collect();
    if !scopes.contains(&options.required_scope.as_str()) {
        return Err(Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."}),
        ));
    }
    Ok(claims)
}

/// The DER body of a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body.as_bytes()).ok()
}

fn refresh(state: &mut OAuthState, form: &BTreeMap<String, String>) -> Reply {
    let options = &state.options;
    if form.get("client_id") != Some(&options.client_id)
        || form.get("client_secret") != Some(&options.client_secret)
    {
        return Reply::json(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "The OAuth client was not found."}),
        );
    }
    if state.refresh_revoked || form.get("refresh_token") != Some(&options.refresh_token) {
        return invalid_grant("Token has been expired or revoked.");
    }
    let scope = options.required_scope.clone();
    issue(state, &scope)
}

fn issue(state: &mut OAuthState, scope: &str) -> Reply {
    state.next += 1;
    let token = format!("ya29.test-{}", state.next);
    let lifetime = Duration::from_secs(state.options.expires_in);
    state
        .issued
        .insert(token.clone(), Instant::now() + lifetime);
    Reply::json(
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_in": state.options.expires_in,
            "token_type": "Bearer",
            "scope": scope,
        }),
    )
}

/// The token endpoint served alone on `127.0.0.1`, with `GET /v1/userinfo` (a bearer-protected
/// resource answering `{"email": ...}`); stops when dropped.
#[derive(Debug)]
pub struct GoogleOAuthEmulator {
    addr: SocketAddr,
    oauth: GoogleOAuth,
    task: JoinHandle<()>,
}

impl GoogleOAuthEmulator {
    /// Starts the endpoint for these accounts.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: GoogleOAuthOptions) -> std::io::Result<Self> {
        let oauth = GoogleOAuth::new(options);
        let app = oauth.router().merge(
            Router::new()
                .route("/v1/userinfo", axum::routing::get(userinfo))
                .with_state(oauth.clone()),
        );
        let (addr, task) = common::serve(app, "google-oauth").await?;
        Ok(GoogleOAuthEmulator { addr, oauth, task })
    }

    /// The origin, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token URI (`<url>/token`).
    pub fn token_uri(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url())
    }

    /// The shared state: ledger and controls.
    pub fn oauth(&self) -> &GoogleOAuth {
        &self.oauth
    }
}

impl Drop for GoogleOAuthEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn userinfo(State(oauth): State<GoogleOAuth>, _uri: Uri, headers: HeaderMap) -> Response {
    match oauth.check_bearer(&headers) {
        Ok(()) => Reply::json(
            StatusCode::OK,
            json!({"email": oauth.options().client_email, "email_verified": true}),
        )
        .into_response(),
        Err(reply) => reply.into_response(),
    }
}
