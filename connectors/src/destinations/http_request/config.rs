//! HTTP Request configuration: the typed config, its catalog field specs and validation
//! (templates parsed, the URL's host fixed, statuses checked).

use std::collections::BTreeMap;

use super::template::RequestTemplates as Templates;
use reqwest::Method;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config as invalid;

/// Header names the HTTP client sets itself; a config may not set them (`Content-Type` may
/// be set: the default is `application/json` when there is a body).
const RESERVED_HEADERS: &[&str] = &["content-length", "host"];

/// Names every template may read besides a record's fields.
pub(crate) const RESERVED_NAMES: &[&str] = &[
    "action", "change", "fields", "key", "mapping", "records", "run",
];

/// Names a template may read when a request carries an array of records.
const ARRAY_NAMES: &[&str] = &["action", "mapping", "records", "run"];

/// The configuration of an HTTP Request destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpRequestConfig {
    /// URL template of the `upsert` action, e.g. `https://api.example.com/users/{{ id }}`.
    pub(crate) url: String,
    /// Method of the `upsert` action: `POST` (default), `PUT`, `PATCH` or `DELETE`.
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// Body template of the `upsert` action; default: the mapped fields as JSON.
    #[serde(default)]
    pub(crate) body: Option<String>,
    /// URL template of the `delete` action; without it the destination has no deletes.
    #[serde(default)]
    pub(crate) delete_url: Option<String>,
    /// Method of the `delete` action: `DELETE` (default), `POST`, `PUT` or `PATCH`.
    #[serde(default)]
    pub(crate) delete_method: Option<String>,
    /// Body template of the `delete` action; default: none for one record, the JSON array of
    /// keys for an array.
    #[serde(default)]
    pub(crate) delete_body: Option<String>,
    /// `one` (a request per record; `limits.batch_size` must be 1) or `array` (default: a JSON
    /// array of up to `limits.batch_size` records per request).
    #[serde(default)]
    pub(crate) records_per_request: Option<String>,
    /// Headers sent with every request (not secret).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Credential headers, as the text of a JSON object of name to value, e.g.
    /// `{"Authorization": "Bearer abc"}`. Secret.
    #[serde(default)]
    pub(crate) secret_headers: Option<Secret>,
    /// JSON pointer to the array of per-record errors in a 2xx answer (e.g. `/errors`); unset:
    /// the status alone decides for the whole request.
    #[serde(default)]
    pub(crate) errors_pointer: Option<String>,
    /// Member of an error entry holding the record's index in the request (default `index`).
    #[serde(default)]
    pub(crate) error_index_field: Option<String>,
    /// Member of an error entry holding the reason (default `message`).
    #[serde(default)]
    pub(crate) error_message_field: Option<String>,
    /// Statuses that mean "throttled": the destination pauses for `Retry-After` (default
    /// `[429]`).
    #[serde(default)]
    pub(crate) throttle_statuses: Option<Vec<u16>>,
    /// Statuses that answer a delete of records the API does not have: counted as deleted
    /// (default `[404]`).
    #[serde(default)]
    pub(crate) delete_gone_statuses: Option<Vec<u16>>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "URL template of the upsert action, e.g. 'https://api.example.com/users/{{ id | urlencode }}'. Scheme and host must be literal.",
    },
    ConfigField {
        name: "method",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Method of the upsert action: POST (default), PUT, PATCH or DELETE.",
    },
    ConfigField {
        name: "body",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Body template of the upsert action, e.g. '{\"email\": {{ email | tojson }}}'. Default: the mapped fields as a JSON object (one record) or array (records_per_request 'array').",
    },
    ConfigField {
        name: "delete_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "URL template of the delete action, e.g. 'https://api.example.com/users/{{ key }}'. Without it the delete action is refused.",
    },
    ConfigField {
        name: "delete_method",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Method of the delete action: DELETE (default), POST, PUT or PATCH.",
    },
    ConfigField {
        name: "delete_body",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Body template of the delete action. Default: no body (one record) or the JSON array of keys (array).",
    },
    ConfigField {
        name: "records_per_request",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "'array' (default): a request carries up to limits.batch_size records; 'one': a request per record (set limits.batch_size to 1).",
    },
    ConfigField {
        name: "headers",
        field_type: FieldType::Object,
        required: false,
        secret: false,
        description: "Headers sent with every request, as an object of name to value. Not secret: use secret_headers for credentials.",
    },
    ConfigField {
        name: "secret_headers",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "Credential headers as the text of a JSON object, e.g. '{\"Authorization\": \"Bearer abc\"}'. Stored as a secret.",
    },
    ConfigField {
        name: "errors_pointer",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "JSON pointer to the array of per-record errors in a 2xx answer, e.g. '/errors'; each entry names the record's index. Unset: the status decides for the whole request.",
    },
    ConfigField {
        name: "error_index_field",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Member of an error entry holding the record's index in the request (default 'index').",
    },
    ConfigField {
        name: "error_message_field",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Member of an error entry holding the reason (default 'message').",
    },
    ConfigField {
        name: "throttle_statuses",
        field_type: FieldType::Array,
        required: false,
        secret: false,
        description: "Statuses that mean throttled: the whole destination waits for Retry-After (default [429]).",
    },
    ConfigField {
        name: "delete_gone_statuses",
        field_type: FieldType::Array,
        required: false,
        secret: false,
        description: "Statuses answering a delete of records the API does not have; they count as deleted (default [404]).",
    },
];

/// How many records a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One record per request; templates read its fields by name.
    One,
    /// A JSON array of records per request; templates read `records`.
    Array,
}

/// One action's request: method, URL and body templates (handles into [`ValidConfig::templates`]).
#[derive(Debug, Clone)]
pub(crate) struct RequestTemplate {
    /// The method.
    pub(crate) method: Method,
    /// The URL template's handle.
    pub(crate) url: usize,
    /// The body template's handle; `None`: the default body.
    pub(crate) body: Option<usize>,
    /// `scheme://host:port` every rendered URL must keep.
    pub(crate) origin: String,
}

/// Where per-record errors are in a 2xx answer.
#[derive(Debug, Clone)]
pub(crate) struct ErrorsAt {
    /// JSON pointer to the array.
    pub(crate) pointer: String,
    /// Member holding the index.
    pub(crate) index_field: String,
    /// Member holding the reason.
    pub(crate) message_field: String,
}

/// A validated configuration, ready to build requests from.
#[derive(Debug)]
pub(crate) struct ValidConfig {
    /// Every template of the config.
    pub(crate) templates: Templates,
    /// The upsert request.
    pub(crate) upsert: RequestTemplate,
    /// The delete request, if configured.
    pub(crate) delete: Option<RequestTemplate>,
    /// Records per request.
    pub(crate) shape: Shape,
    /// Static and secret headers (secret values marked sensitive).
    pub(crate) headers: HeaderMap,
    /// Per-record errors, if the API reports them.
    pub(crate) errors: Option<ErrorsAt>,
    /// Statuses that mean throttled.
    pub(crate) throttle_statuses: Vec<u16>,
    /// Statuses that answer a delete of missing records.
    pub(crate) delete_gone_statuses: Vec<u16>,
    /// `host`, `port` of the upsert URL, for `test()`.
    pub(crate) authority: (String, u16),
}

impl HttpRequestConfig {
    /// Checks every field (no network access) against the effective `batch_size`.
    pub(crate) fn validate(&self, batch_size: usize) -> Result<ValidConfig, DestinationError> {
        let shape = match self.records_per_request.as_deref() {
            None | Some("array") => Shape::Array,
            Some("one") => Shape::One,
            Some(other) => {
                return Err(invalid(
                    "records_per_request",
                    format!("'{other}' is not one of 'one', 'array'"),
                ));
            }
        };
        if shape == Shape::One && batch_size != 1 {
            return Err(invalid(
                "limits.batch_size",
                format!(
                    "records_per_request 'one' sends one record per request, but limits.batch_size is {batch_size}: set \"limits\": {{\"batch_size\": 1}}"
                ),
            ));
        }
        let mut templates = Templates::default();
        let upsert = request(
            &mut templates,
            shape,
            ("url", &self.url),
            ("method", self.method.as_deref(), Method::POST),
            ("body", self.body.as_deref()),
        )?;
        let delete = match &self.delete_url {
            None => {
                for (field, set) in [
                    ("delete_method", self.delete_method.is_some()),
                    ("delete_body", self.delete_body.is_some()),
                ] {
                    if set {
                        return Err(invalid(field, "set delete_url too, or remove it"));
                    }
                }
                None
            }
            Some(url) => Some(request(
                &mut templates,
                shape,
                ("delete_url", url),
                (
                    "delete_method",
                    self.delete_method.as_deref(),
                    Method::DELETE,
                ),
                ("delete_body", self.delete_body.as_deref()),
            )?),
        };
        let authority = authority(&self.url)?;
        Ok(ValidConfig {
            templates,
            upsert,
            delete,
            shape,
            headers: self.headers()?,
            errors: self.errors_at()?,
            throttle_statuses: statuses("throttle_statuses", &self.throttle_statuses, 429)?,
            delete_gone_statuses: statuses(
                "delete_gone_statuses",
                &self.delete_gone_statuses,
                404,
            )?,
            authority,
        })
    }

    /// The static and secret headers.
    fn headers(&self) -> Result<HeaderMap, DestinationError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let (name, value) = header(&field, name, value)?;
            if name == reqwest::header::AUTHORIZATION {
                return Err(invalid(
                    field,
                    "credentials must not go in 'headers' (they are shown by the API); put them in 'secret_headers', which is stored as a secret",
                ));
            }
            headers.insert(name, value);
        }
        let Some(secret) = &self.secret_headers else {
            return Ok(headers);
        };
        // The message never quotes the text: it is a credential.
        let parsed: BTreeMap<String, String> = serde_json::from_str(secret.expose())
            .map_err(|_| {
                invalid(
                    "secret_headers",
                    "must be the text of a JSON object of header name to string value, e.g. {\"Authorization\": \"Bearer abc\"}",
                )
            })?;
        for (name, value) in &parsed {
            let field = format!("secret_headers.{name}");
            let (name, mut value) = header(&field, name, value)?;
            if headers.contains_key(&name) {
                return Err(invalid(field, "this header is also set in 'headers'"));
            }
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// Where per-record errors are, if configured.
    fn errors_at(&self) -> Result<Option<ErrorsAt>, DestinationError> {
        let Some(pointer) = &self.errors_pointer else {
            for (field, set) in [
                ("error_index_field", self.error_index_field.is_some()),
                ("error_message_field", self.error_message_field.is_some()),
            ] {
                if set {
                    return Err(invalid(field, "set errors_pointer too, or remove it"));
                }
            }
            return Ok(None);
        };
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(invalid(
                "errors_pointer",
                format!(
                    "'{pointer}' is not a JSON pointer: it starts with '/' (e.g. /errors, /data/failures), or is empty for an answer that is the array itself"
                ),
            ));
        }
        let member = |field: &str, value: &Option<String>, default: &str| match value {
            Some(v) if v.is_empty() => Err(invalid(field, "must not be empty")),
            Some(v) => Ok(v.clone()),
            None => Ok(default.to_string()),
        };
        Ok(Some(ErrorsAt {
            pointer: pointer.clone(),
            index_field: member("error_index_field", &self.error_index_field, "index")?,
            message_field: member("error_message_field", &self.error_message_field, "message")?,
        }))
    }
}

/// Parses one action's method, URL and body templates.
fn request(
    templates: &mut Templates,
    shape: Shape,
    (url_field, url): (&str, &str),
    (method_field, method, default_method): (&str, Option<&str>, Method),
    (body_field, body): (&str, Option<&str>),
) -> Result<RequestTemplate, DestinationError> {
    let origin = origin(url_field, url)?;
    let method = match method.map(str::to_ascii_uppercase).as_deref() {
        None => default_method,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        Some(other) => {
            return Err(invalid(
                method_field,
                format!("'{other}' is not one of POST, PUT, PATCH, DELETE"),
            ));
        }
    };
    let url = template(templates, shape, url_field, url)?;
    let body = body
        .map(|source| template(templates, shape, body_field, source))
        .transpose()?;
    Ok(RequestTemplate {
        method,
        url,
        body,
        origin,
    })
}

/// Parses a template; with arrays of records it may read only [`ARRAY_NAMES`].
fn template(
    templates: &mut Templates,
    shape: Shape,
    field: &str,
    source: &str,
) -> Result<usize, DestinationError> {
    let (handle, names) = templates
        .add(source)
        .map_err(|e| invalid(field, format!("the template does not parse: {e}")))?;
    if shape == Shape::Array
        && let Some(name) = names.iter().find(|n| !ARRAY_NAMES.contains(&n.as_str()))
    {
        return Err(invalid(
            field,
            format!(
                "reads '{name}', but with records_per_request 'array' a request carries many records: use {} (e.g. {{% for r in records %}}{{{{ r.fields.{name} }}}}{{% endfor %}}), or records_per_request 'one'",
                ARRAY_NAMES.join(", ")
            ),
        ));
    }
    Ok(handle)
}

/// `scheme://host[:port]` of a URL template, whose scheme and host must be literal (a record
/// must not choose where the credential headers go).
pub(crate) fn origin(field: &str, source: &str) -> Result<String, DestinationError> {
    let literal = source.split('{').next().unwrap_or("");
    let (scheme, rest) = literal.split_once("://").ok_or_else(|| {
        invalid(
            field,
            "must start with http:// or https:// and a literal host, e.g. https://api.example.com/users/{{ id }}",
        )
    })?;
    let ends_host = rest.find(['/', '?', '#']).is_some() || literal.len() == source.len();
    if !ends_host {
        return Err(invalid(
            field,
            "the host must be literal (no template before the first '/' of the path): a record must not choose where the credentials are sent",
        ));
    }
    let host_part = rest.split(['/', '?', '#']).next().unwrap_or("");
    let url = Url::parse(&format!("{scheme}://{host_part}/"))
        .map_err(|e| invalid(field, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must be an http or https URL with a host"));
    }
    Ok(url.origin().ascii_serialization())
}

/// `host`, `port` of a URL template's literal origin.
fn authority(source: &str) -> Result<(String, u16), DestinationError> {
    let url = Url::parse(&origin("url", source)?)
        .map_err(|e| invalid("url", format!("not a valid URL ({e})")))?;
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => Ok((host.to_string(), port)),
        _ => Err(invalid("url", "the URL has no host or port")),
    }
}

/// A header from config field `field`.
fn header(
    field: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), DestinationError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(field, "not a valid HTTP header name"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(invalid(
            field,
            format!("'{name}' is set by retl and cannot be configured"),
        ));
    }
    let value = HeaderValue::from_str(value).map_err(|_| {
        invalid(
            field,
            "not a valid HTTP header value (no control characters)",
        )
    })?;
    Ok((name, value))
}

/// A list of statuses (each 400..=599), or `[default]`.
fn statuses(
    field: &str,
    value: &Option<Vec<u16>>,
    default: u16,
) -> Result<Vec<u16>, DestinationError> {
    let Some(list) = value else {
        return Ok(vec![default]);
    };
    if let Some(bad) = list.iter().find(|s| !(400..=599).contains(*s)) {
        return Err(invalid(
            field,
            format!("{bad} is not an error status (400 to 599)"),
        ));
    }
    Ok(list.clone())
}
