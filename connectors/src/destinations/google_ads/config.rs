//! Google Ads Customer Match configuration: the typed config, its catalog field specs and
//! validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use serde::Deserialize;

use retl_engine::secret::Secret;

use crate::destinations::google_auth::{
    CLIENT_ID_FIELD, CLIENT_SECRET_FIELD, CredentialFields, GoogleCredentials, REFRESH_TOKEN_FIELD,
    SERVICE_ACCOUNT_KEY_FIELD, TOKEN_URI_FIELD, ValidCredentials,
};
use crate::destinations::hashing::DigestEncoding;
use crate::destinations::http::join_url;
use crate::destinations::invalid_config as invalid;

/// The Data Manager API origin.
const DEFAULT_API_URL: &str = "https://datamanager.googleapis.com";
/// The OAuth scope of the Data Manager API.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/datamanager";
/// Where Google's Customer Match terms are accepted.
const TERMS_URL: &str = "https://support.google.com/adspolicy/answer/6299717";

/// The configuration of a Google Ads Customer Match destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GoogleAdsConfig {
    /// A service account's JSON key file (or `client_id`, `client_secret` and
    /// `refresh_token`), for access tokens of the scope
    /// `https://www.googleapis.com/auth/datamanager`. Secret.
    #[serde(default)]
    pub(crate) service_account_key: Option<Secret>,
    /// The OAuth client id that obtained `refresh_token`.
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    /// The OAuth client's secret. Secret.
    #[serde(default)]
    pub(crate) client_secret: Option<Secret>,
    /// A user's refresh token with the datamanager scope. Secret.
    #[serde(default)]
    pub(crate) refresh_token: Option<Secret>,
    /// The OAuth token endpoint (default: the key file's, else Google's).
    #[serde(default)]
    pub(crate) token_uri: Option<String>,
    /// The Google Ads account that owns the audience (`operatingAccount`), e.g.
    /// `123-456-7890` (dashes are removed).
    pub(crate) operating_account_id: String,
    /// The manager account through which the credentials reach the operating account
    /// (`loginAccount`), when they do not have direct access.
    #[serde(default)]
    pub(crate) login_account_id: Option<String>,
    /// The Customer Match audience (user list) id: `productDestinationId`.
    pub(crate) audience_id: String,
    /// Must be `true`: the Customer Match terms of service were accepted for the operating
    /// account; every ingest request says so (`termsOfService`).
    #[serde(default)]
    pub(crate) customer_match_terms_accepted: bool,
    /// How the SHA-256 digests are sent: `HEX` (default) or `BASE64`.
    #[serde(default)]
    pub(crate) encoding: Option<String>,
    /// Country calling code added to phone numbers written without one, e.g. `1` or `44`.
    #[serde(default)]
    pub(crate) default_phone_country_code: Option<String>,
    /// What the model's unique id is, when it is an identifier: `email` or `phone`. Then a
    /// record that left the model is removed from the audience by it; otherwise deletes of
    /// `add_to_audience` are refused per record (the API removes members by identifiers only).
    #[serde(default)]
    pub(crate) unique_id_identifier: Option<String>,
    /// The API origin; default `https://datamanager.googleapis.com` (tests point it at an
    /// emulator).
    #[serde(default)]
    pub(crate) api_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    SERVICE_ACCOUNT_KEY_FIELD,
    CLIENT_ID_FIELD,
    CLIENT_SECRET_FIELD,
    REFRESH_TOKEN_FIELD,
    TOKEN_URI_FIELD,
    ConfigField {
        name: "operating_account_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The Google Ads customer id that owns the audience, e.g. 123-456-7890.",
    },
    ConfigField {
        name: "login_account_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The Google Ads manager account id the credentials use to reach the operating account, when they have no direct access.",
    },
    ConfigField {
        name: "audience_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The id of the Customer Match audience (user list) that receives the members.",
    },
    ConfigField {
        name: "customer_match_terms_accepted",
        field_type: FieldType::Boolean,
        required: true,
        secret: false,
        description: "Set to true once the Customer Match terms (https://support.google.com/adspolicy/answer/6299717) are accepted for the operating account; each upload declares it.",
    },
    ConfigField {
        name: "encoding",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "How SHA-256 digests are encoded: HEX (the default) or BASE64.",
    },
    ConfigField {
        name: "default_phone_country_code",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Country calling code put in front of phone numbers written without one (no '+' or '00'), e.g. '1' or '44'.",
    },
    ConfigField {
        name: "unique_id_identifier",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "'email' or 'phone' when the model's unique id is a customer's email or phone: records that leave the model are then removed from the audience by it.",
    },
    ConfigField {
        name: "api_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The Data Manager API origin (default https://datamanager.googleapis.com).",
    },
];

/// Which identifier the model's unique id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyIdentifier {
    /// An email address (raw or already hashed).
    Email,
    /// A phone number (raw or already hashed).
    Phone,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The credentials, parsed, with their token endpoint.
    pub(crate) credentials: ValidCredentials,
    /// Digits of the operating account id.
    pub(crate) operating_account_id: String,
    /// Digits of the login account id.
    pub(crate) login_account_id: Option<String>,
    /// The audience id.
    pub(crate) audience_id: String,
    /// The digest encoding.
    pub(crate) encoding: DigestEncoding,
    /// Digits of the default country calling code.
    pub(crate) default_phone_country_code: Option<String>,
    /// What the unique id is, when it identifies a member.
    pub(crate) key_identifier: Option<KeyIdentifier>,
    /// `<api_url>/v1/audienceMembers:ingest`.
    pub(crate) ingest_url: Url,
    /// `<api_url>/v1/audienceMembers:remove`.
    pub(crate) remove_url: Url,
}

/// A Google Ads customer id (`123-456-7890` or `1234567890`) as its ten digits.
fn customer_id(field: &str, raw: &str) -> Result<String, DestinationError> {
    let digits: String = raw.trim().chars().filter(|c| *c != '-').collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            field,
            format!(
                "'{raw}' is not a Google Ads customer id: ten digits, e.g. 123-456-7890 (shown at the top of the Google Ads UI)"
            ),
        ));
    }
    Ok(digits)
}

impl GoogleAdsConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let credentials = GoogleCredentials::from_fields(CredentialFields {
            service_account_key: self.service_account_key.as_ref(),
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_ref(),
            refresh_token: self.refresh_token.as_ref(),
            token_uri: self.token_uri.as_deref(),
        })?
        .validate(self.token_uri.as_deref())?;
        let operating_account_id = customer_id("operating_account_id", &self.operating_account_id)?;
        let login_account_id = self
            .login_account_id
            .as_deref()
            .map(|id| customer_id("login_account_id", id))
            .transpose()?;
        let audience_id = self.audience_id.trim().to_string();
        if audience_id.is_empty() || !audience_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "audience_id",
                format!(
                    "'{}' is not an audience id: digits only, e.g. 9876543210 (Tools > Audience manager, or userLists.list)",
                    self.audience_id
                ),
            ));
        }
        if !self.customer_match_terms_accepted {
            return Err(invalid(
                "customer_match_terms_accepted",
                format!(
                    "Google refuses Customer Match uploads without the terms accepted; accept them for the operating account ({TERMS_URL}) and set this to true"
                ),
            ));
        }
        let encoding = match self.encoding.as_deref().map(str::trim) {
            None => DigestEncoding::Hex,
            Some(e) if e.eq_ignore_ascii_case("hex") => DigestEncoding::Hex,
            Some(e) if e.eq_ignore_ascii_case("base64") => DigestEncoding::Base64,
            Some(other) => {
                return Err(invalid(
                    "encoding",
                    format!("'{other}' is not an encoding: HEX or BASE64"),
                ));
            }
        };
        let default_phone_country_code = match &self.default_phone_country_code {
            None => None,
            Some(code) => {
                let digits = code.trim().trim_start_matches('+');
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(invalid(
                        "default_phone_country_code",
                        format!(
                            "'{code}' is not a country calling code: 1 to 3 digits, e.g. 1 or 44"
                        ),
                    ));
                }
                Some(digits.to_string())
            }
        };
        let key_identifier = match self.unique_id_identifier.as_deref().map(str::trim) {
            None => None,
            Some(k) if k.eq_ignore_ascii_case("email") => Some(KeyIdentifier::Email),
            Some(k) if k.eq_ignore_ascii_case("phone") => Some(KeyIdentifier::Phone),
            Some(other) => {
                return Err(invalid(
                    "unique_id_identifier",
                    format!(
                        "'{other}' is not an identifier the audience matches on: email or phone (or leave it out)"
                    ),
                ));
            }
        };
        let origin = self.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        Ok(ValidConfig {
            credentials,
            operating_account_id,
            login_account_id,
            audience_id,
            encoding,
            default_phone_country_code,
            key_identifier,
            ingest_url: join_url("api_url", origin, "/v1/audienceMembers:ingest")?,
            remove_url: join_url("api_url", origin, "/v1/audienceMembers:remove")?,
        })
    }
}
