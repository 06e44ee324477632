//! The token check of Flight calls.
//!
//! Accepted, on every Flight call:
//! - `authorization: Bearer <token>` (ADBC's `adbc.flight.sql.authorization_header`, the JDBC
//!   driver's `token=` parameter, `pyarrow.flight` call headers): the same header as the rest of
//!   the API;
//! - `authorization: Basic base64(<any user>:<token>)`: what clients send to `Handshake` when
//!   given a user and a password (the JDBC driver's `user=`/`password=`, ADBC's `username` and
//!   `password`, `pyarrow.flight`'s `authenticate_basic_token`). The handshake answers with
//!   `authorization: Bearer <token>`, which those clients send on every later call.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::TokenAuth;

/// How a Flight SQL client passes the token; part of every UNAUTHENTICATED message.
const HOW_TO: &str = "pass the daemon's token as the header `authorization: Bearer <token>` (ADBC: db_kwargs adbc.flight.sql.authorization_header; JDBC: token=<token>), or as the password of basic auth (any user name)";

/// Checks Flight calls: the bearer token, or basic auth whose password is the token.
#[derive(Debug, Clone)]
pub struct FlightAuth {
    tokens: TokenAuth,
}

impl FlightAuth {
    /// Checks against the daemon's token check.
    pub fn new(tokens: TokenAuth) -> Self {
        FlightAuth { tokens }
    }

    /// Whether a token is required.
    pub fn is_required(&self) -> bool {
        self.tokens.is_required()
    }

    /// The token presented by an `authorization` header, in either form, once checked.
    ///
    /// `Ok(None)` when no token is required and none was sent.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the header is missing, malformed or holds another token; the
    /// message says how to pass it and never echoes what was sent.
    pub fn check_header(&self, header: Option<&str>) -> Result<Option<String>, Status> {
        let bearer = match header {
            Some(value) if has_scheme(value, "basic") => {
                Some(format!("Bearer {}", basic_password(value)?))
            }
            Some(value) => Some(value.to_string()),
            None => None,
        };
        self.tokens
            .check_header(bearer.as_deref(), HOW_TO)
            .map_err(Status::unauthenticated)?;
        Ok(bearer.and_then(|b| b.get(7..).map(|t| t.trim().to_string())))
    }

    /// Checks a request's `authorization` metadata (see [`FlightAuth::check_header`]).
    ///
    /// # Errors
    /// As [`FlightAuth::check_header`].
    pub fn check<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        self.check_header(header)
    }
}

/// Whether `value` starts with `scheme` and a space, in any case.
fn has_scheme(value: &str, scheme: &str) -> bool {
    value
        .get(..scheme.len() + 1)
        .is_some_and(|s| s.eq_ignore_ascii_case(&format!("{scheme} ")))
}

/// The password of a `Basic` header.
fn basic_password(value: &str) -> Result<String, Status> {
    let malformed = || {
        Status::unauthenticated(format!(
            "malformed basic authorization header (expected `Basic base64(user:token)`): {HOW_TO}"
        ))
    };
    let encoded = value.get(6..).map(str::trim).ok_or_else(malformed)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (_, password) = text.split_once(':').ok_or_else(malformed)?;
    Ok(password.to_string())
}

impl Interceptor for FlightAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn accepts_the_token_as_bearer_or_basic_password() {
        let auth = FlightAuth::new(TokenAuth::new("s3cret"));
        for ok in ["Bearer s3cret".to_string(), basic("anyone", "s3cret")] {
            assert_eq!(
                auth.check_header(Some(&ok)).unwrap().as_deref(),
                Some("s3cret"),
                "{ok}"
            );
        }
        for bad in [
            None,
            Some("s3cret".to_string()),
            Some("Bearer nope".to_string()),
            Some(basic("s3cret", "nope")),
            Some("Basic !!!".to_string()),
            Some(basic("", "")),
        ] {
            let err = auth.check_header(bad.as_deref()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(err.message().contains("authorization: Bearer"), "{err:?}");
            assert!(!err.message().contains("s3cret"));
        }
    }

    #[test]
    fn open_daemon_passes_everything() {
        let auth = FlightAuth::new(TokenAuth::open());
        assert_eq!(auth.check_header(None).unwrap(), None);
        assert!(auth.check_header(Some(&basic("u", "p"))).is_ok());
    }
}
