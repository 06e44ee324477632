//! HubSpot configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use reqwest::header::HeaderValue;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

/// The public API's base URL, used when `base_url` is not set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The id property of contacts when `contact_id_property` is not set: `email`, unique for
/// contacts in every account.
pub(crate) const DEFAULT_CONTACT_ID_PROPERTY: &str = "email";

/// The configuration of a HubSpot destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HubSpotConfig {
    /// The access token of a private app (`pat-...`), sent as `Authorization: Bearer`. Secret.
    pub(crate) access_token: Secret,
    /// The API's base URL; default `https://api.hubapi.com` (tests point it at an emulator).
    #[serde(default)]
    pub(crate) base_url: Option<String>,
    /// The unique property contacts are matched by; default `email`.
    #[serde(default)]
    pub(crate) contact_id_property: Option<String>,
    /// The unique property companies are matched by (no default: `domain` is not unique in
    /// HubSpot, so companies need a custom property with unique values).
    #[serde(default)]
    pub(crate) company_id_property: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "access_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Access token of a HubSpot private app (Settings > Integrations > Private Apps), with the scopes crm.objects.contacts.read/write, crm.objects.companies.read/write and crm.schemas.contacts.read/crm.schemas.companies.read.",
    },
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API's base URL (default https://api.hubapi.com).",
    },
    ConfigField {
        name: "contact_id_property",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The unique property contacts are matched by (default 'email'); a custom property must have unique values.",
    },
    ConfigField {
        name: "company_id_property",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The unique property companies are matched by: a custom property with unique values (required for the company actions; 'domain' is not unique in HubSpot).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// `Bearer <token>`, marked sensitive.
    pub(crate) authorization: HeaderValue,
    /// The id property of contacts.
    pub(crate) contact_id_property: String,
    /// The id property of companies, if configured.
    pub(crate) company_id_property: Option<String>,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> DestinationError {
    DestinationError::InvalidConfig {
        field: field.into(),
        message: message.into(),
    }
}

impl HubSpotConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let raw = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let mut base_url = Url::parse(raw).map_err(|e| {
            invalid(
                "base_url",
                format!("not a valid URL ({e}); expected e.g. {DEFAULT_BASE_URL}"),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(invalid(
                "base_url",
                format!("must be an http(s) URL with a host, e.g. {DEFAULT_BASE_URL}"),
            ));
        }
        let path = base_url.path().trim_end_matches('/').to_string();
        base_url.set_path(&path);
        let token = self.access_token.expose().trim();
        if token.is_empty() {
            return Err(invalid(
                "access_token",
                "must not be empty; copy the access token of the private app",
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid("access_token", "contains characters a header cannot carry"))?;
        authorization.set_sensitive(true);
        let contact_id_property = property_name(
            "contact_id_property",
            self.contact_id_property
                .as_deref()
                .unwrap_or(DEFAULT_CONTACT_ID_PROPERTY),
        )?;
        let company_id_property = self
            .company_id_property
            .as_deref()
            .map(|p| property_name("company_id_property", p))
            .transpose()?;
        Ok(ValidConfig {
            base_url,
            authorization,
            contact_id_property,
            company_id_property,
        })
    }
}

/// A property's internal name: lower-case letters, digits and `_` (HubSpot's rule for names).
fn property_name(field: &str, name: &str) -> Result<String, DestinationError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(invalid(
            field,
            format!(
                "'{name}' is not a property's internal name (lower-case letters, digits and '_', e.g. 'email' or 'external_id'); use the internal name, not the label"
            ),
        ));
    }
    if name == "hs_object_id" {
        return Err(invalid(
            field,
            "'hs_object_id' cannot match records: HubSpot assigns it, so an upsert cannot create a record by it; use a unique property whose values the model holds",
        ));
    }
    Ok(name.to_string())
}
