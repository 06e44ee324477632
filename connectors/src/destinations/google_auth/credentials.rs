//! The credential config fields of the Google destinations and their validation: a service
//! account's key file (parsed, its RSA key loaded) or an OAuth client with a user's refresh
//! token, and the token endpoint they are exchanged at.

use std::sync::Arc;

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use ring::signature::RsaKeyPair;
use serde::Deserialize;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::DEFAULT_TOKEN_URI;
use crate::destinations::http;
use crate::destinations::invalid_config as invalid;

/// Config field: the service account's JSON key file (secret).
pub(crate) const SERVICE_ACCOUNT_KEY_FIELD: ConfigField = ConfigField {
    name: "service_account_key",
    field_type: FieldType::String,
    required: false,
    secret: true,
    description: "A service account's JSON key file, pasted whole (Google Cloud console: IAM & Admin > Service accounts > Keys > Add key > JSON). Set this, or client_id, client_secret and refresh_token.",
};
/// Config field: the OAuth client id of the refresh-token credentials.
pub(crate) const CLIENT_ID_FIELD: ConfigField = ConfigField {
    name: "client_id",
    field_type: FieldType::String,
    required: false,
    secret: false,
    description: "OAuth client id (…apps.googleusercontent.com) that obtained refresh_token; with client_secret and refresh_token, instead of service_account_key.",
};
/// Config field: the OAuth client secret (secret).
pub(crate) const CLIENT_SECRET_FIELD: ConfigField = ConfigField {
    name: "client_secret",
    field_type: FieldType::String,
    required: false,
    secret: true,
    description: "The OAuth client's secret (with client_id and refresh_token).",
};
/// Config field: a user's refresh token (secret).
pub(crate) const REFRESH_TOKEN_FIELD: ConfigField = ConfigField {
    name: "refresh_token",
    field_type: FieldType::String,
    required: false,
    secret: true,
    description: "A refresh token the user granted to client_id with offline access (with client_id and client_secret).",
};
/// Config field: the token endpoint override.
pub(crate) const TOKEN_URI_FIELD: ConfigField = ConfigField {
    name: "token_uri",
    field_type: FieldType::String,
    required: false,
    secret: false,
    description: "The OAuth 2.0 token endpoint (default: the key file's token_uri, else https://oauth2.googleapis.com/token).",
};

/// The credential fields of a connector's config, as written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CredentialFields<'a> {
    /// `service_account_key`.
    pub(crate) service_account_key: Option<&'a Secret>,
    /// `client_id`.
    pub(crate) client_id: Option<&'a str>,
    /// `client_secret`.
    pub(crate) client_secret: Option<&'a Secret>,
    /// `refresh_token`.
    pub(crate) refresh_token: Option<&'a Secret>,
    /// `token_uri`.
    pub(crate) token_uri: Option<&'a str>,
}

/// How retl authenticates to Google.
#[derive(Debug, Clone)]
pub(crate) enum GoogleCredentials {
    /// A service account's JSON key file.
    ServiceAccount {
        /// The key file's text.
        key_json: Secret,
    },
    /// A user's refresh token and the OAuth client that obtained it.
    RefreshToken {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// The refresh token.
        refresh_token: Secret,
    },
}

/// The fields of a service account key file retl reads.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<Secret>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// Validated credentials: the key parsed and the token URI resolved.
#[derive(Debug, Clone)]
pub(crate) struct ValidCredentials {
    /// How the token is requested.
    pub(super) grant: Grant,
    /// The token endpoint.
    pub(crate) token_uri: Url,
}

/// The grant of a token request, with what it needs.
#[derive(Debug, Clone)]
pub(super) enum Grant {
    ServiceAccount {
        client_email: String,
        key: Arc<RsaKeyPair>,
    },
    RefreshToken {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
}

/// A config text that must be one word (an id, a secret, a token).
fn one_word(field: &str, value: &str, what: &str) -> Result<(), DestinationError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            format!("must be {what}, one word without spaces; copy it again"),
        ));
    }
    Ok(())
}

impl CredentialFields<'_> {
    /// The credentials, validated, with `token_uri` resolved:
    /// [`GoogleCredentials::from_fields`] then [`GoogleCredentials::validate`].
    ///
    /// # Errors
    /// As those two.
    pub(crate) fn validate(self) -> Result<ValidCredentials, DestinationError> {
        GoogleCredentials::from_fields(self)?.validate(self.token_uri)
    }
}

impl GoogleCredentials {
    /// The credentials the fields describe: `service_account_key`, or `client_id` +
    /// `client_secret` + `refresh_token`, never both.
    ///
    /// # Errors
    /// [`DestinationError::InvalidConfig`] naming the missing or conflicting field.
    pub(crate) fn from_fields(fields: CredentialFields<'_>) -> Result<Self, DestinationError> {
        let oauth_set = fields.client_id.is_some()
            || fields.client_secret.is_some()
            || fields.refresh_token.is_some();
        match (fields.service_account_key, oauth_set) {
            (Some(_), true) => Err(invalid(
                "service_account_key",
                "set either service_account_key (a service account) or client_id, client_secret and refresh_token (a user's consent), not both",
            )),
            (Some(key), false) => Ok(GoogleCredentials::ServiceAccount {
                key_json: key.clone(),
            }),
            (None, true) => {
                let missing = |field: &str| {
                    invalid(
                        field,
                        "is required with a refresh token: set client_id, client_secret and refresh_token (or service_account_key instead of all three)",
                    )
                };
                Ok(GoogleCredentials::RefreshToken {
                    client_id: fields
                        .client_id
                        .ok_or_else(|| missing("client_id"))?
                        .to_string(),
                    client_secret: fields
                        .client_secret
                        .ok_or_else(|| missing("client_secret"))?
                        .clone(),
                    refresh_token: fields
                        .refresh_token
                        .ok_or_else(|| missing("refresh_token"))?
                        .clone(),
                })
            }
            (None, false) => Err(invalid(
                "service_account_key",
                "no Google credentials: set service_account_key (a service account's JSON key file) or client_id, client_secret and refresh_token (an OAuth client and a user's refresh token)",
            )),
        }
    }

    /// Parses the key file (or checks the refresh-token fields) and resolves the token URI;
    /// no network access.
    ///
    /// # Errors
    /// [`DestinationError::InvalidConfig`] naming the field and how to fix it; never quoting
    /// the key.
    pub(crate) fn validate(
        &self,
        token_uri: Option<&str>,
    ) -> Result<ValidCredentials, DestinationError> {
        let (grant, file_uri) = match self {
            GoogleCredentials::ServiceAccount { key_json } => {
                let (client_email, key, file_uri) = parse_key_file(key_json)?;
                (
                    Grant::ServiceAccount {
                        client_email,
                        key: Arc::new(key),
                    },
                    file_uri,
                )
            }
            GoogleCredentials::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                one_word("client_id", client_id, "the OAuth client id")?;
                one_word("client_secret", client_secret.expose(), "the client secret")?;
                one_word("refresh_token", refresh_token.expose(), "a refresh token")?;
                (
                    Grant::RefreshToken {
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        refresh_token: refresh_token.clone(),
                    },
                    None,
                )
            }
        };
        let (field, uri) = match (token_uri, &file_uri) {
            (Some(uri), _) => ("token_uri", uri),
            (None, Some(uri)) => ("service_account_key", uri.as_str()),
            (None, None) => ("token_uri", DEFAULT_TOKEN_URI),
        };
        let token_uri = http::join_url(field, uri, "")?;
        Ok(ValidCredentials { grant, token_uri })
    }
}

/// `(client_email, key, token_uri)` of a service account key file.
fn parse_key_file(
    key_json: &Secret,
) -> Result<(String, RsaKeyPair, Option<String>), DestinationError> {
    const FIELD: &str = "service_account_key";
    const HOW: &str = "paste the whole JSON key file of the service account (Google Cloud console: IAM & Admin > Service accounts > Keys > Add key > JSON)";
    // serde's message may quote the text: only its position is reported.
    let file: KeyFile = serde_json::from_str(key_json.expose()).map_err(|e| {
        invalid(
            FIELD,
            format!(
                "is not a JSON key file (invalid at line {}, column {}); {HOW}",
                e.line(),
                e.column()
            ),
        )
    })?;
    match file.kind.as_deref() {
        Some("service_account") => {}
        Some("authorized_user") => {
            return Err(invalid(
                FIELD,
                "is an 'authorized_user' file (a user's credentials): put its client_id, client_secret and refresh_token in those fields instead",
            ));
        }
        other => {
            return Err(invalid(
                FIELD,
                format!(
                    "has type {} instead of \"service_account\"; {HOW}",
                    other.map_or_else(|| "(none)".to_string(), |t| format!("'{t}'"))
                ),
            ));
        }
    }
    let client_email = file
        .client_email
        .filter(|e| e.contains('@'))
        .ok_or_else(|| invalid(FIELD, format!("has no client_email; {HOW}")))?;
    let pem = file
        .private_key
        .ok_or_else(|| invalid(FIELD, format!("has no private_key; {HOW}")))?;
    let key = parse_private_key(pem.expose())
        .map_err(|why| invalid(FIELD, format!("private_key is {why}; {HOW}")))?;
    Ok((client_email, key, file.token_uri.filter(|u| !u.is_empty())))
}

/// An RSA key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, what Google's key files hold);
/// the error says why (never quoting the key).
pub(super) fn parse_private_key(pem: &str) -> Result<RsaKeyPair, String> {
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("not a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----)".to_string());
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "not PEM (its base64 body does not decode)".to_string())?;
    RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("not a usable RSA private key ({e})"))
}
