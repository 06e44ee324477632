//! Elasticsearch configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// Elasticsearch's limit on an index name, in bytes.
const MAX_INDEX_BYTES: usize = 255;

/// The configuration of an Elasticsearch destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ElasticsearchConfig {
    /// The cluster's base URL, e.g. `https://my-deployment.es.europe-west1.gcp.cloud.es.io`
    /// or `http://127.0.0.1:9200`.
    pub(crate) url: String,
    /// The index (or alias) the documents are written to.
    pub(crate) index: String,
    /// An API key in its encoded form (base64 of `id:api_key`, the `encoded` value of the
    /// create API key answer), sent as `Authorization: ApiKey <key>`. Secret.
    #[serde(default)]
    pub(crate) api_key: Option<Secret>,
    /// A user for basic authentication (instead of an API key).
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// The user's password. Secret.
    #[serde(default)]
    pub(crate) password: Option<Secret>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The cluster's base URL, e.g. https://my-deployment.es.europe-west1.gcp.cloud.es.io or http://127.0.0.1:9200.",
    },
    ConfigField {
        name: "index",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The index (or alias) the documents are written to; the record's unique id is the document _id.",
    },
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "An API key, encoded (the 'encoded' value Elasticsearch returns when the key is created), with the index privileges write (or index and delete) and view_index_metadata on the index.",
    },
    ConfigField {
        name: "username",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "A user for basic authentication, instead of api_key.",
    },
    ConfigField {
        name: "password",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The user's password (with username).",
    },
];

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: ApiKey <encoded>`.
    ApiKey(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: Secret,
    },
    /// No credentials (a cluster without security).
    None,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The index.
    pub(crate) index: String,
    /// `<url>/<index>/_bulk`.
    pub(crate) bulk_url: Url,
    /// `<url>/<index>/_mapping`.
    pub(crate) mapping_url: Url,
    /// The credentials.
    pub(crate) auth: Auth,
}

/// Checks an index name against Elasticsearch's rules (lowercase, no `\ / * ? " < > | , #`
/// or space, not starting with `-`, `_` or `+`, not `.` or `..`, at most 255 bytes).
fn check_index(index: &str) -> Result<(), DestinationError> {
    let problem = if index.is_empty() {
        Some("must not be empty".to_string())
    } else if index.len() > MAX_INDEX_BYTES {
        Some(format!("is longer than {MAX_INDEX_BYTES} bytes"))
    } else if index.chars().any(char::is_uppercase) {
        Some("must be lowercase".to_string())
    } else if let Some(c) = index.chars().find(|c| {
        matches!(
            *c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' '
        ) || c.is_control()
    }) {
        Some(format!("must not contain {c:?}"))
    } else if index.starts_with(['-', '_', '+']) {
        Some("must not start with '-', '_' or '+'".to_string())
    } else if index == "." || index == ".." {
        Some("must not be '.' or '..'".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(invalid_config(
            "index",
            format!("'{index}' {problem} (Elasticsearch's index name rules)"),
        )),
        None => Ok(()),
    }
}

impl ElasticsearchConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        check_index(&self.index)?;
        let auth = match (&self.api_key, &self.username, &self.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid_config(
                    "api_key",
                    "give either api_key or username and password, not both",
                ));
            }
            (Some(key), None, None) => {
                let key_text = key.expose();
                if key_text.is_empty() || key_text.chars().any(|c| c.is_whitespace()) {
                    return Err(invalid_config(
                        "api_key",
                        "must be the encoded API key (one base64 word, no spaces)",
                    ));
                }
                Auth::ApiKey(key.clone())
            }
            (None, Some(username), Some(password)) => {
                if username.is_empty() || username.contains(':') {
                    return Err(invalid_config(
                        "username",
                        "must not be empty nor contain ':'",
                    ));
                }
                Auth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                }
            }
            (None, Some(_), None) => {
                return Err(invalid_config("password", "is required with username"));
            }
            (None, None, Some(_)) => {
                return Err(invalid_config("username", "is required with password"));
            }
            (None, None, None) => Auth::None,
        };
        Ok(ValidConfig {
            index: self.index.clone(),
            bulk_url: join_url("url", &self.url, &format!("/{}/_bulk", self.index))?,
            mapping_url: join_url("url", &self.url, &format!("/{}/_mapping", self.index))?,
            auth,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::ElasticsearchConfig>(
            super::CONFIG_FIELDS,
        )
        .unwrap();
    }
}
