//! Webhook configuration: the typed config, its catalog field specs and validation.

use std::collections::BTreeMap;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

/// Header names retl sets itself; a config may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-retl-mapping",
    "x-retl-run",
    "x-retl-signature",
];

/// The configuration of a webhook destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    /// The endpoint every batch is `POST`ed to; `http` or `https`.
    pub(crate) url: String,
    /// Extra headers sent with every request. Not secret: they are returned by the API, so put
    /// credentials in `auth_header` instead.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Value of a credential header sent with every request, e.g. `Bearer abc123`. Secret.
    #[serde(default)]
    pub(crate) auth_header: Option<Secret>,
    /// Name of the credential header carrying `auth_header`; default `Authorization`.
    #[serde(default)]
    pub(crate) auth_header_name: Option<String>,
    /// Key of the request signature. When set, each request carries
    /// `X-Retl-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact request body. Secret.
    #[serde(default)]
    pub(crate) signing_secret: Option<Secret>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The endpoint every batch is POSTed to (http or https).",
    },
    ConfigField {
        name: "headers",
        field_type: FieldType::Object,
        required: false,
        secret: false,
        description: "Extra headers sent with every request, as an object of name to value. Not secret: use auth_header for credentials.",
    },
    ConfigField {
        name: "auth_header",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "Value of a credential header sent with every request, e.g. 'Bearer abc123'.",
    },
    ConfigField {
        name: "auth_header_name",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Name of the header carrying auth_header (default 'Authorization').",
    },
    ConfigField {
        name: "signing_secret",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "When set, each request carries 'X-Retl-Signature: sha256=<hex>', the HMAC-SHA256 of the exact request body with this key.",
    },
];

/// A validated configuration, ready to build requests from.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The endpoint.
    pub(crate) url: Url,
    /// Static headers (the config's `headers`).
    pub(crate) headers: HeaderMap,
    /// The credential header, if any; its value is marked sensitive.
    pub(crate) auth: Option<(HeaderName, HeaderValue)>,
    /// The signing key, if any.
    pub(crate) signing_secret: Option<Secret>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> DestinationError {
    DestinationError::InvalidConfig {
        field: field.into(),
        message: message.into(),
    }
}

impl WebhookConfig {
    /// Checks the shape of every field (no network access) and prepares the headers.
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let url = Url::parse(&self.url).map_err(|e| {
            invalid(
                "url",
                format!("not a valid URL ({e}); expected e.g. https://example.com/hooks/retl"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "url",
                format!(
                    "scheme '{}' is not supported; use http or https",
                    url.scheme()
                ),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("url", "the URL has no host"));
        }

        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&field, "not a valid HTTP header name"))?;
            check_not_reserved(&field, &header_name)?;
            if header_name == reqwest::header::AUTHORIZATION {
                return Err(invalid(
                    &field,
                    "credentials must not go in 'headers' (they are shown by the API); put the value in 'auth_header', which is stored as a secret",
                ));
            }
            let header_value = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    &field,
                    "not a valid HTTP header value (no control characters)",
                )
            })?;
            headers.insert(header_name, header_value);
        }

        let auth = match (&self.auth_header, &self.auth_header_name) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(
                    "auth_header_name",
                    "set 'auth_header' too, or remove 'auth_header_name'",
                ));
            }
            (Some(secret), name) => {
                let name = name.as_deref().unwrap_or("Authorization");
                let header_name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| invalid("auth_header_name", "not a valid HTTP header name"))?;
                check_not_reserved("auth_header_name", &header_name)?;
                let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                    invalid(
                        "auth_header",
                        "not a valid HTTP header value (no control characters)",
                    )
                })?;
                value.set_sensitive(true);
                Some((header_name, value))
            }
        };
        if let Some((name, _)) = &auth
            && headers.contains_key(name)
        {
            return Err(invalid(
                format!("headers.{name}"),
                "this header is already set by 'auth_header'",
            ));
        }
        if self
            .signing_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return Err(invalid(
                "signing_secret",
                "must not be empty; remove it to send unsigned requests",
            ));
        }

        Ok(ValidConfig {
            url,
            headers,
            auth,
            signing_secret: self.signing_secret.clone(),
        })
    }
}

fn check_not_reserved(field: &str, name: &HeaderName) -> Result<(), DestinationError> {
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(invalid(
            field,
            format!("'{name}' is set by retl and cannot be configured"),
        ));
    }
    Ok(())
}
