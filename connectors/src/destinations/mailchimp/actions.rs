//! Mailchimp actions: their specs, the encoding of one record as a batch member, and the
//! subscriber hash of an archive.

use md5::{Digest, Md5};
use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload};
use serde_json::{Value, json};

use super::config::STATUSES;
use crate::destinations::event_fields::{self, open_object, optional_text, required_text};

static MEMBER_FIELDS: [FieldSpec; 3] = [
    FieldSpec {
        name: "email",
        field_type: FieldType::String,
        required: true,
        description: "The member's email address (email_address), its identifier in the audience.",
        children: &[],
    },
    FieldSpec {
        name: "status",
        field_type: FieldType::String,
        required: false,
        description: "Subscription status to set on new and existing members (subscribed, unsubscribed, cleaned, pending, transactional); unmapped, existing members keep theirs and new ones get status_if_new.",
        children: &[],
    },
    FieldSpec {
        name: "merge_fields",
        field_type: FieldType::Object,
        required: false,
        description: "Merge field values keyed by their tag (FNAME, LNAME, or the audience's own); any field the action does not declare is added to them. Merge fields must exist in the audience.",
        children: &[],
    },
];

/// The actions of the Mailchimp destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_member",
        display_name: "Upsert Member",
        description: "Adds or updates the audience members of added and updated records through the batch subscribe endpoint (POST /3.0/lists/{list_id}, update_existing: true).",
        kind: ActionKind::Upsert,
        fields: &MEMBER_FIELDS,
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "archive_member",
        display_name: "Archive Member",
        description: "Archives the member whose email is the record's unique id (DELETE /3.0/lists/{list_id}/members/{subscriber_hash}, one request each); a member that is not there is success. The model's unique id must be the email.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Mailchimp action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailchimpAction {
    /// `upsert_member`: batch subscribe.
    UpsertMember,
    /// `archive_member`: `DELETE` of one member.
    ArchiveMember,
}

impl MailchimpAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_member" => Some(MailchimpAction::UpsertMember),
            "archive_member" => Some(MailchimpAction::ArchiveMember),
            _ => None,
        }
    }
}

/// Mailchimp's subscriber hash: the MD5 of the lower-cased email, in hex.
pub(crate) fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.to_lowercase().as_bytes()))
}

/// The batch member of one record, and its lower-cased email (to find it in the answer).
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn member(
    spec: &ActionSpec,
    payload: &Payload,
    status_if_new: &str,
) -> Result<(Value, String), String> {
    let email = required_text(payload, "email")?;
    let mut member = json!({"email_address": email, "status_if_new": status_if_new});
    if let Some(status) = optional_text(payload, "status")? {
        if !STATUSES.contains(&status.as_str()) {
            return Err(format!(
                "field 'status' must be one of {}, not '{status}'",
                STATUSES.join(", ")
            ));
        }
        member["status"] = json!(status);
    }
    let merge = open_object(spec, payload, "merge_fields")?;
    if !merge.is_empty() {
        member["merge_fields"] = Value::Object(merge);
    }
    Ok((member, email.to_lowercase()))
}

/// The subscriber hash an archive names: of the record's unique id, an email.
///
/// # Errors
/// When the key is not an email address.
pub(crate) fn archive_hash(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .filter(|k| k.contains('@'))
        .map(|k| subscriber_hash(&k))
        .ok_or_else(|| {
            format!(
                "Mailchimp finds members by email: the record's unique id {} is not an email address (make the model's unique id the email column)",
                payload.key
            )
        })
}
