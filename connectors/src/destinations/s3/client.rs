//! The object store behind an S3 destination (opened on first use): one `PutObject` per batch
//! (with its `Content-Type` on S3), a `LIST` for `test()`, object store errors as
//! `DestinationError`s.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, PutOptions, PutPayload, RetryConfig,
};
use retl_engine::destination::{DeliveryContext, DestinationError, Exchange};
use serde_json::{Value, json};

use super::config::{Target, ValidConfig};
use crate::destinations::change_files::ChangeFormat;
use crate::destinations::invalid_config;

/// Writes a destination's objects.
#[derive(Debug)]
pub(crate) struct S3Client {
    config: ValidConfig,
    timeout: Duration,
    store: tokio::sync::OnceCell<Arc<dyn ObjectStore>>,
}

impl S3Client {
    /// A client of this config; `timeout` bounds each request.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Self {
        S3Client {
            config,
            timeout,
            store: tokio::sync::OnceCell::new(),
        }
    }

    /// A client writing to `store` instead of the one its config names (tests: an in-memory
    /// store, which keeps objects' attributes as S3 does).
    #[cfg(test)]
    pub(crate) fn with_store(config: ValidConfig, store: Arc<dyn ObjectStore>) -> Self {
        S3Client {
            config,
            timeout: Duration::from_secs(30),
            store: tokio::sync::OnceCell::new_with(Some(store)),
        }
    }

    /// The object key prefix (empty or ending with `/`).
    pub(crate) fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The format objects are written in.
    pub(crate) fn format(&self) -> ChangeFormat {
        self.config.format
    }

    /// The store, built on first use (a local directory is created then).
    async fn store(&self) -> Result<&Arc<dyn ObjectStore>, DestinationError> {
        self.store
            .get_or_try_init(|| async {
                let store: Arc<dyn ObjectStore> = match &self.config.target {
                    Target::S3 { bucket, config } => {
                        let mut builder = AmazonS3Builder::from_env()
                            .with_bucket_name(bucket)
                            // The engine retries (with backoff); the store must not retry too.
                            .with_retry(RetryConfig {
                                max_retries: 0,
                                ..RetryConfig::default()
                            })
                            .with_client_options(ClientOptions::new().with_timeout(self.timeout))
                            .with_allow_http(config.allow_http);
                        if let Some(region) = &config.region {
                            builder = builder.with_region(region);
                        }
                        if let Some(endpoint) = &config.endpoint {
                            builder = builder.with_endpoint(endpoint);
                        }
                        if let (Some(id), Some(secret)) =
                            (&config.access_key_id, &config.secret_access_key)
                        {
                            builder = builder
                                .with_access_key_id(id)
                                .with_secret_access_key(secret.expose());
                        }
                        if let Some(token) = &config.session_token {
                            builder = builder.with_token(token.expose());
                        }
                        Arc::new(builder.build().map_err(|e| {
                            invalid_config("url", format!("cannot use this S3 configuration: {e}"))
                        })?)
                    }
                    Target::Local(dir) => {
                        tokio::fs::create_dir_all(dir).await.map_err(|e| {
                            DestinationError::Transient {
                                message: format!("cannot create {}: {e}", dir.display()),
                                retry_after: None,
                                throttled: false,
                            }
                        })?;
                        Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                            invalid_config("url", format!("cannot use {}: {e}", dir.display()))
                        })?)
                    }
                };
                Ok(store)
            })
            .await
    }

    /// Writes one object (`PutObject`: whole or not at all), with `content_type` as its
    /// `Content-Type` on S3 (the local filesystem keeps no content types).
    pub(crate) async fn put(
        &self,
        ctx: &DeliveryContext,
        key: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(), DestinationError> {
        let store = self.store().await?;
        let size = body.len();
        let path = ObjectPath::from(key);
        let mut attributes = Attributes::new();
        if matches!(self.config.target, Target::S3 { .. }) {
            attributes.insert(Attribute::ContentType, content_type.into());
        }
        let options = PutOptions::from(attributes);
        let result = store.put_opts(&path, PutPayload::from(body), options).await;
        ctx.record(|| Exchange {
            request: format!("PUT {key}"),
            request_body: json!({"bytes": size, "content_type": content_type}),
            status: None,
            response_body: match &result {
                Ok(put) => json!({"e_tag": put.e_tag}),
                Err(e) => Value::String(e.to_string()),
            },
        });
        result.map(drop).map_err(|e| self.error(&e))
    }

    /// `test()`: lists the prefix (`ListObjectsV2` with a delimiter; changes nothing).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let store = self.store().await?;
        let prefix = ObjectPath::from(self.config.prefix.as_str());
        let listed = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.error(&e))?;
        Ok(format!(
            "listed {} ({} objects and {} folders directly under it); each batch is written as one object there",
            self.config.url,
            listed.objects.len(),
            listed.common_prefixes.len()
        ))
    }

    /// An object store error as a `DestinationError`.
    fn error(&self, error: &object_store::Error) -> DestinationError {
        let url = &self.config.url;
        match error {
            object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. } => DestinationError::Authentication {
                message: format!(
                    "{url} refused the credentials: {error}; check access_key_id and secret_access_key, and that they allow s3:PutObject and s3:ListBucket on the prefix"
                ),
            },
            object_store::Error::NotFound { .. } => invalid_config(
                "url",
                format!("{url} was not found: {error}; check the bucket's name and region"),
            ),
            object_store::Error::InvalidPath { .. } | object_store::Error::NotSupported { .. } => {
                DestinationError::Rejected {
                    message: format!("{url} refused the object: {error}"),
                }
            }
            // Network failures, 5xx and S3's 503 SlowDown, local I/O: retried with backoff.
            _ => DestinationError::Transient {
                message: format!("writing to {url} failed: {error}"),
                retry_after: None,
                throttled: false,
            },
        }
    }
}
