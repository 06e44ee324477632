//! Token authentication: a server interceptor that checks `authorization: Bearer <token>` on
//! every service except health, and a client interceptor that adds it.
//!
//! The token is compared in constant time (SHA-256 digests compared with a fold over every
//! byte), so response timing does not reveal how much of a guess was right.

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// How a client passes the token; part of every UNAUTHENTICATED message.
const HOW_TO: &str = "pass the daemon's token as gRPC metadata `authorization: Bearer <token>` (CLI: --token or RETL_TOKEN; grpcurl: -H 'authorization: Bearer <token>')";

/// Server-side interceptor: rejects calls without the configured token.
///
/// Without a token (`TokenAuth::open()`) every call passes; `retl serve` only allows that on a
/// loopback address.
#[derive(Clone)]
pub struct TokenAuth {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("required", &self.digest.is_some())
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl TokenAuth {
    /// Requires `token` on every call.
    pub fn new(token: &str) -> Self {
        TokenAuth {
            digest: Some(digest(token.as_bytes())),
        }
    }

    /// Requires nothing (loopback development only).
    pub fn open() -> Self {
        TokenAuth { digest: None }
    }

    /// From an optional token.
    pub fn from_token(token: Option<&str>) -> Self {
        token.map_or_else(Self::open, Self::new)
    }

    /// Whether a token is required.
    pub fn is_required(&self) -> bool {
        self.digest.is_some()
    }

    /// Checks a request's metadata.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the header is missing, malformed or holds another token; the
    /// message says how to pass it and never echoes what was sent.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        self.check_header(header, HOW_TO)
            .map_err(Status::unauthenticated)
    }

    /// Checks the value of an `authorization` header (any protocol); `how_to` tells the client
    /// how to pass the token.
    ///
    /// # Errors
    /// Why it was refused (missing, malformed or another token), followed by `how_to`; never
    /// echoes what was sent.
    pub fn check_header(&self, header: Option<&str>, how_to: &str) -> Result<(), String> {
        let Some(want) = &self.digest else {
            return Ok(());
        };
        let Some(value) = header else {
            return Err(format!("missing credentials: {how_to}"));
        };
        let presented = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!("malformed authorization header (expected `Bearer <token>`): {how_to}")
            })?;
        if constant_time_eq(&digest(presented.as_bytes()), want) {
            Ok(())
        } else {
            Err(format!("invalid token: {how_to}"))
        }
    }
}

impl Interceptor for TokenAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

/// Client-side interceptor: adds `authorization: Bearer <token>` when a token is set.
#[derive(Clone)]
pub struct BearerToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("set", &self.header.is_some())
            .finish()
    }
}

/// A token that cannot be sent as a header value.
#[derive(Debug, thiserror::Error)]
#[error("the token contains characters that cannot be sent in a gRPC header; use printable ASCII")]
pub struct InvalidToken;

impl BearerToken {
    /// Sends `token` (or nothing when `None`).
    ///
    /// # Errors
    /// [`InvalidToken`] when the token is not printable ASCII.
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        let header = match token {
            Some(t) => {
                let mut value: MetadataValue<tonic::metadata::Ascii> =
                    format!("Bearer {t}").parse().map_err(|_| InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(BearerToken { header })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(header: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut().insert("authorization", h.parse().unwrap());
        }
        r
    }

    #[test]
    fn checks_bearer_token() {
        let auth = TokenAuth::new("s3cret");
        assert!(auth.check(&req(Some("Bearer s3cret"))).is_ok());
        for bad in [
            None,
            Some("s3cret"),
            Some("Bearer "),
            Some("Bearer nope"),
            Some("Basic s3cret"),
        ] {
            let err = auth.check(&req(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(err.message().contains("authorization: Bearer"));
            assert!(!err.message().contains("s3cret"));
        }
    }

    #[test]
    fn open_auth_passes_everything() {
        assert!(TokenAuth::open().check(&req(None)).is_ok());
    }

    #[test]
    fn client_adds_header() {
        let mut c = BearerToken::new(Some("abc")).unwrap();
        let r = c.call(Request::new(())).unwrap();
        assert!(TokenAuth::new("abc").check(&r).is_ok());
        assert!(BearerToken::new(Some("bad\ntoken")).is_err());
        assert!(format!("{c:?}").contains("set: true"));
    }
}
