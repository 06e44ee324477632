//! S3 configuration: the typed config, its catalog field specs and validation.

use std::path::PathBuf;

use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::change_files::ChangeFormat;
use crate::destinations::invalid_config;

/// The configuration of an S3 destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Config {
    /// Where the objects go: `s3://bucket/prefix/`, or `file:///absolute/directory/` for the
    /// local filesystem (the same object store API on local files).
    pub(crate) url: String,
    /// The bucket's region (default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub(crate) region: Option<String>,
    /// The endpoint of an S3-compatible service (MinIO, Ceph, Cloudflare R2, ...).
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// The access key id (default: the environment's AWS credentials).
    #[serde(default)]
    pub(crate) access_key_id: Option<String>,
    /// The secret access key. Secret.
    #[serde(default)]
    pub(crate) secret_access_key: Option<Secret>,
    /// A session token of temporary credentials. Secret.
    #[serde(default)]
    pub(crate) session_token: Option<Secret>,
    /// Allow an `http://` endpoint (default false).
    #[serde(default)]
    pub(crate) allow_http: bool,
    /// The objects' format: `jsonl` (default), `csv` or `parquet`.
    #[serde(default)]
    pub(crate) format: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Where the objects go: s3://bucket/prefix/ (or file:///absolute/directory/ for local files).",
    },
    ConfigField {
        name: "region",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The bucket's region (default: AWS_REGION, else us-east-1).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The endpoint of an S3-compatible service (MinIO, Ceph, Cloudflare R2), e.g. https://minio.internal:9000.",
    },
    ConfigField {
        name: "access_key_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The access key id (default: the daemon's AWS environment credentials); it needs s3:PutObject and s3:ListBucket on the prefix.",
    },
    ConfigField {
        name: "secret_access_key",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The secret access key (with access_key_id).",
    },
    ConfigField {
        name: "session_token",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The session token of temporary credentials.",
    },
    ConfigField {
        name: "allow_http",
        field_type: FieldType::Boolean,
        required: false,
        secret: false,
        description: "Allow an http:// endpoint (default false).",
    },
    ConfigField {
        name: "format",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The objects' format: jsonl (default; one JSON object per change), csv (RFC 4180 with a header row: op, change, key, then the mapped fields) or parquet (the same columns, typed from the values, zstd-compressed, one row group per object).",
    },
];

/// Where the objects are written.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// An S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// Region, endpoint, credentials as configured.
        config: S3Config,
    },
    /// A local directory (absolute).
    Local(PathBuf),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The store.
    pub(crate) target: Target,
    /// The object key prefix: empty or ending with `/`.
    pub(crate) prefix: String,
    /// The configured URL, for messages.
    pub(crate) url: String,
    /// The format objects are written in.
    pub(crate) format: ChangeFormat,
}

impl S3Config {
    /// Checks every field (no network or filesystem access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let format = match self.format.as_deref() {
            None => ChangeFormat::default(),
            Some(name) => ChangeFormat::parse(name).ok_or_else(|| {
                invalid_config(
                    "format",
                    format!("'{name}' is not a format retl writes; use jsonl, csv or parquet"),
                )
            })?,
        };
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            invalid_config(
                "url",
                format!("not a URL ({e}); expected s3://bucket/prefix/ or file:///directory/"),
            )
        })?;
        let path = url.path().trim_start_matches('/');
        let prefix = if path.is_empty() || path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let target = match url.scheme() {
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(invalid_config(
                        "url",
                        "names no bucket: s3://bucket/prefix/",
                    ));
                }
                if self.access_key_id.is_some() != self.secret_access_key.is_some() {
                    return Err(invalid_config(
                        "secret_access_key",
                        "give both access_key_id and secret_access_key, or neither (the environment's credentials)",
                    ));
                }
                if let Some(endpoint) = &self.endpoint {
                    let parsed = reqwest::Url::parse(endpoint)
                        .map_err(|e| invalid_config("endpoint", format!("not a URL ({e})")))?;
                    if parsed.scheme() == "http" && !self.allow_http {
                        return Err(invalid_config(
                            "allow_http",
                            "must be true for an http:// endpoint",
                        ));
                    }
                }
                Target::S3 {
                    bucket,
                    config: self.clone(),
                }
            }
            "file" => {
                if self.access_key_id.is_some()
                    || self.secret_access_key.is_some()
                    || self.endpoint.is_some()
                {
                    return Err(invalid_config(
                        "url",
                        "a file:// URL takes no credentials nor endpoint",
                    ));
                }
                Target::Local(PathBuf::from(format!(
                    "/{}",
                    url.path().trim_start_matches('/')
                )))
            }
            other => {
                return Err(invalid_config(
                    "url",
                    format!("scheme '{other}' is not supported; use s3:// (or file://)"),
                ));
            }
        };
        Ok(ValidConfig {
            prefix: match target {
                Target::S3 { .. } => prefix,
                Target::Local(_) => String::new(),
            },
            target,
            url: self.url.clone(),
            format,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::S3Config>(super::CONFIG_FIELDS)
            .unwrap();
    }
}
