//! Google Ads Customer Match actions: their specs and fields, and a batch encoded as the
//! `audienceMembers` of an ingest or remove request: per record one `AudienceMember` whose
//! `userData.userIdentifiers` hold the normalised, SHA-256 hashed email, phone and address
//! (hashing in `destinations/hashing.rs`), with its consent when mapped.

use retl_engine::destination::spec::{ActionKind, ChangeKind};
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload};
use serde_json::{Map, Value, json};

use super::config::KeyIdentifier;
use crate::destinations::event_fields::id_text;
use crate::destinations::hashing::{self, DigestEncoding};

/// Audience members per request (<https://developers.google.com/data-manager/api/devguides/limits>).
pub(crate) const MAX_MEMBERS: usize = 10_000;

/// The fields of both actions.
static MEMBER_FIELDS: [FieldSpec; 8] = [
    field(
        "email",
        "Email; whitespace removed and lowercased (gmail.com and googlemail.com: periods and a +suffix of the name removed), then SHA-256 hashed. A SHA-256 hex digest is sent as is.",
    ),
    field(
        "phone",
        "Phone in E.164: symbols removed, country code kept or default_phone_country_code added, then hashed.",
    ),
    field(
        "first_name",
        "First name for the address identifier; lowercased without punctuation, then hashed.",
    ),
    field(
        "last_name",
        "Last name for the address identifier; lowercased without punctuation, then hashed.",
    ),
    field(
        "country_code",
        "ISO 3166-1 alpha-2 country of the address, e.g. US (not hashed). The address is sent only with first_name, last_name, country_code and postal_code together.",
    ),
    field("postal_code", "Postal code of the address (not hashed)."),
    field(
        "ad_user_data_consent",
        "Consent to send the user's data to Google for advertising: granted or denied (true/false accepted). Left out when not mapped.",
    ),
    field(
        "ad_personalization_consent",
        "Consent to ad personalization: granted or denied (true/false accepted). Left out when not mapped.",
    ),
];

const fn field(name: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type: FieldType::String,
        required: false,
        description,
        children: &[],
    }
}

/// The actions, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "add_to_audience",
        display_name: "Add To Audience",
        description: "Adds added and updated records to the Customer Match audience (audienceMembers:ingest); records that leave the model are removed (audienceMembers:remove) by their unique id when unique_id_identifier says it is an email or phone.",
        kind: ActionKind::Mirror,
        fields: &MEMBER_FIELDS,
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "remove_from_audience",
        display_name: "Remove From Audience",
        description: "Removes the model's records from the audience (audienceMembers:remove), e.g. a model of opted-out customers.",
        kind: ActionKind::Upsert,
        fields: &MEMBER_FIELDS,
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Google Ads Customer Match action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudienceAction {
    /// `add_to_audience`: ingest, and remove the deleted records.
    Add,
    /// `remove_from_audience`: remove.
    Remove,
}

impl AudienceAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "add_to_audience" => Some(AudienceAction::Add),
            "remove_from_audience" => Some(AudienceAction::Remove),
            _ => None,
        }
    }
}

/// How records are turned into members.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    /// The digest encoding.
    pub(crate) encoding: DigestEncoding,
    /// Digits of the default country calling code.
    pub(crate) phone_code: Option<String>,
    /// What the unique id is, when it identifies a member.
    pub(crate) key_identifier: Option<KeyIdentifier>,
}

/// The members of one request and the records they come from.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// `AudienceMember` objects.
    pub(crate) members: Vec<Value>,
    /// For each member, the index of its record in the batch.
    pub(crate) rows: Vec<usize>,
}

/// A batch split into the members to ingest and to remove, and the records refused before
/// sending.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// Members for `audienceMembers:ingest`.
    pub(crate) ingest: Members,
    /// Members for `audienceMembers:remove`.
    pub(crate) remove: Members,
    /// Records refused before sending, with the reason (never the value).
    pub(crate) refused: Vec<(usize, String)>,
}

/// A field's text, trimmed; `None` for null, empty or unmapped.
fn value(payload: &Payload, name: &str) -> Option<String> {
    payload
        .fields
        .get(name)
        .and_then(id_text)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A consent field as a `ConsentStatus`.
fn consent(raw: &str) -> Option<&'static str> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "granted" | "consent_granted" | "true" | "yes" | "1" => Some("CONSENT_GRANTED"),
        "denied" | "consent_denied" | "false" | "no" | "0" => Some("CONSENT_DENIED"),
        _ => None,
    }
}

impl Encoder {
    /// A hex digest in the request's encoding.
    fn digest_text(&self, hex_digest: String) -> Option<String> {
        hashing::encode_digest(&hex_digest, self.encoding)
    }

    fn email(&self, raw: &str) -> Option<String> {
        self.digest_text(hashing::hash_normalized(raw, hashing::email_google)?)
    }

    fn phone(&self, raw: &str) -> Option<String> {
        let code = self.phone_code.as_deref();
        self.digest_text(hashing::hash_normalized(raw, |p| {
            hashing::phone_e164(p, code)
        })?)
    }

    fn name(&self, raw: &str) -> Option<String> {
        self.digest_text(hashing::hash_normalized(raw, hashing::name)?)
    }

    /// The member of an added or updated record, or why it cannot be sent.
    pub(crate) fn member(&self, payload: &Payload, with_consent: bool) -> Result<Value, String> {
        let mut identifiers = Vec::new();
        let mut problems = Vec::new();
        if let Some(raw) = value(payload, "email") {
            match self.email(&raw) {
                Some(h) => identifiers.push(json!({"emailAddress": h})),
                None => problems.push("email is not an email address".to_string()),
            }
        }
        if let Some(raw) = value(payload, "phone") {
            match self.phone(&raw) {
                Some(h) => identifiers.push(json!({"phoneNumber": h})),
                None => problems.push(
                    "phone is not a number with a country code (7 to 15 digits; set default_phone_country_code for national numbers)"
                        .to_string(),
                ),
            }
        }
        let parts = ["first_name", "last_name", "country_code", "postal_code"]
            .map(|name| (name, value(payload, name)));
        if parts.iter().any(|(_, v)| v.is_some()) {
            match self.address(&parts) {
                Ok(address) => identifiers.push(json!({"address": address})),
                Err(problem) => problems.push(problem),
            }
        }
        if identifiers.is_empty() {
            return Err(if problems.is_empty() {
                "no identifier: map email, phone, or first_name, last_name, country_code and postal_code together".to_string()
            } else {
                format!("no usable identifier: {}", problems.join("; "))
            });
        }
        let mut member = Map::new();
        member.insert(
            "userData".to_string(),
            json!({"userIdentifiers": identifiers}),
        );
        if with_consent {
            let mut given = Map::new();
            for (field, key) in [
                ("ad_user_data_consent", "adUserData"),
                ("ad_personalization_consent", "adPersonalization"),
            ] {
                if let Some(raw) = value(payload, field) {
                    let status = consent(&raw)
                        .ok_or_else(|| format!("{field} must be granted or denied"))?;
                    given.insert(key.to_string(), json!(status));
                }
            }
            if !given.is_empty() {
                member.insert("consent".to_string(), Value::Object(given));
            }
        }
        Ok(Value::Object(member))
    }

    /// The `AddressInfo` of the four address fields, all required together.
    fn address(&self, parts: &[(&str, Option<String>); 4]) -> Result<Value, String> {
        let missing: Vec<&str> = parts
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the address needs first_name, last_name, country_code and postal_code together ({} missing)",
                missing.join(", ")
            ));
        }
        let text = |i: usize| parts[i].1.clone().unwrap_or_default();
        let given = self
            .name(&text(0))
            .ok_or("first_name has no letters after normalisation")?;
        let family = self
            .name(&text(1))
            .ok_or("last_name has no letters after normalisation")?;
        let region = hashing::country(&text(2))
            .ok_or("country_code is not an ISO 3166-1 alpha-2 code such as US")?
            .to_ascii_uppercase();
        Ok(json!({
            "givenName": given,
            "familyName": family,
            "regionCode": region,
            "postalCode": text(3),
        }))
    }

    /// The member of a record that left the model, identified by its unique id.
    pub(crate) fn deleted_member(&self, key: &Value) -> Result<Value, String> {
        let raw = id_text(key).unwrap_or_default();
        let identifier = match self.key_identifier {
            Some(KeyIdentifier::Email) => self
                .email(&raw)
                .map(|h| json!({"emailAddress": h}))
                .ok_or("the unique id is not an email address (unique_id_identifier: email)")?,
            Some(KeyIdentifier::Phone) => self
                .phone(&raw)
                .map(|h| json!({"phoneNumber": h}))
                .ok_or("the unique id is not a phone number (unique_id_identifier: phone)")?,
            None => {
                return Err("cannot remove a record that left the model: the API removes members by their identifiers and a deleted record carries only its unique id; set unique_id_identifier (email or phone) when the unique id is one, or unselect deleted records".to_string());
            }
        };
        Ok(json!({"userData": {"userIdentifiers": [identifier]}}))
    }

    /// Splits and encodes a batch: `Add` ingests added and updated records and removes
    /// deleted ones; `Remove` removes every record by its mapped identifiers. A record without
    /// a usable identifier is refused with the reason (no personal data in it).
    pub(crate) fn encode(&self, action: AudienceAction, batch: &[Payload]) -> Encoded {
        let mut encoded = Encoded::default();
        for (index, payload) in batch.iter().enumerate() {
            let (member, target) = match (action, payload.change) {
                (AudienceAction::Add, ChangeKind::Deleted) => {
                    (self.deleted_member(&payload.key), &mut encoded.remove)
                }
                (AudienceAction::Add, _) => (self.member(payload, true), &mut encoded.ingest),
                (AudienceAction::Remove, _) => (self.member(payload, false), &mut encoded.remove),
            };
            match member {
                Ok(member) => {
                    target.members.push(member);
                    target.rows.push(index);
                }
                Err(reason) => encoded.refused.push((index, reason)),
            }
        }
        encoded
    }
}
