//! Suggested mappings (`SuggestMappings`): which model column fits which action field, with a
//! score and the reason, and the "did you mean" of validation errors ([`closest`]).
//!
//! A column and a field match when, after normalisation (case, `camelCase`, separators, and
//! prefixes such as `user_` or `customer_` dropped), they are the same word, synonyms from a
//! fixed table (`email`/`mail`/`email_address`, `amount`/`total`/`revenue`/
//! `transaction_amount`, ...), or similar by Jaro-Winkler distance. A column whose type can
//! never become the field's type is never suggested. Each column goes to one field, unless a
//! field has no other candidate at all.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use strsim::jaro_winkler;

use crate::destination::spec::{FieldInfo, FieldType};
use crate::mapping::coerce::can_coerce;

/// Words a column name often starts with that say whose value it is, not what it is.
const OWNER_PREFIXES: &[&str] = &[
    "user", "customer", "cust", "contact", "client", "person", "member", "lead", "account",
    "primary", "usr",
];

/// Groups of names meaning the same thing, normalised as [`words`] joins them (lower case, no
/// separators), so they compare as they are.
const SYNONYMS: &[&[&str]] = &[
    &["email", "mail", "emailaddress", "emails"],
    &[
        "phone",
        "mobile",
        "phonenumber",
        "mobilephone",
        "cell",
        "cellphone",
        "telephone",
        "tel",
        "mobilenumber",
    ],
    &[
        "amount",
        "value",
        "total",
        "revenue",
        "transactionamount",
        "price",
        "ordertotal",
        "orderamount",
    ],
    &["zip", "zipcode", "postalcode", "postcode"],
    &["firstname", "givenname", "fname", "forename"],
    &["lastname", "surname", "familyname", "lname"],
    &[
        "company",
        "organization",
        "organisation",
        "accountname",
        "companyname",
        "org",
        "employer",
    ],
    &["name", "fullname", "displayname"],
    &["userid", "uid", "customerid", "externalid", "id"],
    &["city", "town", "locality"],
    &["country", "countrycode", "nation"],
    &["state", "region", "province", "stateprovince"],
    &[
        "address",
        "street",
        "streetaddress",
        "addressline1",
        "address1",
    ],
    &[
        "createdat",
        "created",
        "signupdate",
        "signedupat",
        "creationdate",
        "createdate",
        "createdon",
    ],
    &["jobtitle", "title", "position", "role"],
    &["website", "url", "domain", "homepage", "web"],
    &["plan", "tier", "subscriptionplan", "planname"],
    &[
        "timestamp",
        "eventtime",
        "time",
        "occurredat",
        "eventtimestamp",
    ],
    &["event", "eventname", "eventtype"],
    &["anonymousid", "anonid", "deviceid", "cookieid"],
    &["groupid", "accountid", "companyid", "orgid"],
    &["currency", "currencycode"],
    &["birthday", "dateofbirth", "dob", "birthdate"],
    &["gender", "sex"],
    &["language", "locale", "lang"],
    &["industry", "sector"],
];

/// A name as lower-case words: `customerEmail`, `customer_email` and `Customer Email` all give
/// `["customer", "email"]`.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The synonym group of a normalised name, if any.
fn synonym_group(joined: &str) -> Option<usize> {
    SYNONYMS.iter().position(|group| group.contains(&joined))
}

/// How well `column` fits `field`, from 0 to 1, and why.
fn score(field: &str, column: &str) -> Option<(f64, String)> {
    let field_words = words(field);
    let column_words = words(column);
    let field_joined = field_words.concat();
    let column_joined = column_words.concat();
    if field_joined.is_empty() || column_joined.is_empty() {
        return None;
    }
    if field_joined == column_joined {
        return Some((1.0, "same name".to_string()));
    }
    let same_meaning =
        |a: &str, b: &str| synonym_group(a).is_some_and(|g| synonym_group(b) == Some(g));
    if same_meaning(&field_joined, &column_joined) {
        return Some((0.9, format!("synonyms ('{column}' means '{field}')")));
    }
    // Drop an owner prefix (`customer_email` -> `email`).
    if column_words.len() > 1 && OWNER_PREFIXES.contains(&column_words[0].as_str()) {
        let rest = column_words[1..].concat();
        if rest == field_joined {
            return Some((
                0.85,
                format!("same name after the prefix '{}_'", column_words[0]),
            ));
        }
        if same_meaning(&field_joined, &rest) {
            return Some((
                0.8,
                format!(
                    "synonyms after the prefix '{}_' ('{column}' means '{field}')",
                    column_words[0]
                ),
            ));
        }
    }
    let similarity = jaro_winkler(&field_joined, &column_joined);
    (similarity >= 0.88).then(|| {
        (
            (similarity * 0.75 * 100.0).round() / 100.0,
            format!("similar names ({:.0}% alike)", similarity * 100.0),
        )
    })
}

/// The candidate most similar to `name` when it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (jaro_winkler(&wanted, &c.to_lowercase()), c))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// One suggested pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The action field (a dotted path for a field inside an object).
    pub field: String,
    /// The model column.
    pub column: String,
    /// From 0 to 1.
    pub score: f64,
    /// Why they match.
    pub reason: String,
}

/// A model column and its Arrow type.
#[derive(Debug, Clone)]
pub struct TypedColumn {
    /// The column name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

/// Every declared scalar field path (fields inside declared objects as dotted paths).
fn field_paths(fields: &[FieldInfo], prefix: &str, out: &mut Vec<(String, FieldType)>) {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        if f.field_type == FieldType::Object && !f.children.is_empty() {
            field_paths(&f.children, &format!("{path}."), out);
        } else {
            out.push((path, f.field_type));
        }
    }
}

/// Suggested column for each field of `fields` that some column fits, best first.
pub fn suggest(fields: &[FieldInfo], columns: &[TypedColumn]) -> Vec<Suggestion> {
    let mut paths = Vec::new();
    field_paths(fields, "", &mut paths);
    let mut candidates: Vec<Suggestion> = Vec::new();
    for (path, field_type) in &paths {
        let leaf = path.rsplit('.').next().unwrap_or(path);
        for column in columns {
            if !can_coerce(&column.data_type, *field_type) {
                continue;
            }
            if let Some((score, reason)) = score(leaf, &column.name) {
                candidates.push(Suggestion {
                    field: path.clone(),
                    column: column.name.clone(),
                    score,
                    reason,
                });
            }
        }
    }
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.field.cmp(&b.field))
            .then_with(|| a.column.cmp(&b.column))
    });
    let mut fields_done = BTreeSet::new();
    let mut columns_used = BTreeSet::new();
    let mut chosen = Vec::new();
    // First every column at most once, then a used column for a field nothing else fits.
    for reuse in [false, true] {
        for c in &candidates {
            if fields_done.contains(&c.field) || (!reuse && columns_used.contains(&c.column)) {
                continue;
            }
            fields_done.insert(c.field.clone());
            columns_used.insert(c.column.clone());
            let mut c = c.clone();
            if reuse {
                c.reason
                    .push_str("; this column is also suggested for another field");
            }
            chosen.push(c);
        }
    }
    chosen.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.field.cmp(&b.field))
    });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn field(name: &'static str, field_type: FieldType) -> FieldInfo {
        FieldInfo {
            name: Cow::Borrowed(name),
            field_type,
            required: false,
            description: Cow::Borrowed(""),
            children: Vec::new(),
        }
    }

    fn object(name: &'static str, children: Vec<FieldInfo>) -> FieldInfo {
        FieldInfo {
            children,
            ..field(name, FieldType::Object)
        }
    }

    fn columns(spec: &[(&str, DataType)]) -> Vec<TypedColumn> {
        spec.iter()
            .map(|(name, data_type)| TypedColumn {
                name: (*name).to_string(),
                data_type: data_type.clone(),
            })
            .collect()
    }

    fn pairs(suggestions: &[Suggestion]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = suggestions
            .iter()
            .map(|s| (s.field.clone(), s.column.clone()))
            .collect();
        pairs.sort();
        pairs
    }

    fn expect(fields: &[FieldInfo], cols: &[(&str, DataType)], expected: &[(&str, &str)]) {
        let got = pairs(&suggest(fields, &columns(cols)));
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(f, c)| ((*f).to_string(), (*c).to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "columns {cols:?}");
    }

    use DataType::{Boolean, Float64, Int64, Utf8};

    #[test]
    fn segments_transaction_amount_example() {
        let fields = [
            field("Amount", FieldType::Number),
            field("Currency", FieldType::String),
            field("Order ID", FieldType::String),
        ];
        let cols = [
            ("transaction_amount", Float64),
            ("currency_code", Utf8),
            ("order_id", Int64),
            ("created_at", Utf8),
        ];
        expect(
            &fields,
            &cols,
            &[
                ("Amount", "transaction_amount"),
                ("Currency", "currency_code"),
                ("Order ID", "order_id"),
            ],
        );
        let best = &suggest(&fields, &columns(&cols))[0];
        assert!(best.score > 0.5 && !best.reason.is_empty(), "{best:?}");
    }

    #[test]
    fn crm_contact_columns_map_to_contact_fields() {
        let fields = [
            field("email", FieldType::String),
            field("firstname", FieldType::String),
            field("lastname", FieldType::String),
            field("phone", FieldType::String),
            field("company", FieldType::String),
            field("zip", FieldType::String),
            field("jobtitle", FieldType::String),
        ];
        let cols = [
            ("customer_id", Int64),
            ("email_address", Utf8),
            ("given_name", Utf8),
            ("surname", Utf8),
            ("mobile", Utf8),
            ("organization", Utf8),
            ("postal_code", Utf8),
            ("title", Utf8),
            ("is_active", Boolean),
        ];
        expect(
            &fields,
            &cols,
            &[
                ("company", "organization"),
                ("email", "email_address"),
                ("firstname", "given_name"),
                ("jobtitle", "title"),
                ("lastname", "surname"),
                ("phone", "mobile"),
                ("zip", "postal_code"),
            ],
        );
    }

    #[test]
    fn prefixes_camel_case_and_nested_fields() {
        let fields = [
            field("userId", FieldType::String),
            object(
                "traits",
                vec![
                    field("email", FieldType::String),
                    field("first_name", FieldType::String),
                    field("plan", FieldType::String),
                ],
            ),
        ];
        let cols = [
            ("user_id", Int64),
            ("customerEmail", Utf8),
            ("FirstName", Utf8),
            ("subscription_plan", Utf8),
        ];
        expect(
            &fields,
            &cols,
            &[
                ("traits.email", "customerEmail"),
                ("traits.first_name", "FirstName"),
                ("traits.plan", "subscription_plan"),
                ("userId", "user_id"),
            ],
        );
    }

    #[test]
    fn types_that_cannot_coerce_are_never_suggested_and_columns_are_not_reused() {
        let fields = [
            field("email", FieldType::String),
            field("signup_date", FieldType::Datetime),
        ];
        // `created_at` is a boolean here: it can never be a datetime.
        expect(
            &fields,
            &[("email", Utf8), ("created_at", Boolean)],
            &[("email", "email")],
        );
        // One email column, two email-like fields: the better one takes it, the other gets it
        // too only because nothing else fits, and says so.
        let fields = [
            field("email", FieldType::String),
            field("mail", FieldType::String),
        ];
        let got = suggest(&fields, &columns(&[("email", Utf8)]));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].field.as_str(), got[0].score), ("email", 1.0));
        assert!(got[1].reason.contains("also suggested"), "{got:?}");
    }

    #[test]
    fn unrelated_columns_are_not_suggested() {
        expect(
            &[
                field("email", FieldType::String),
                field("phone", FieldType::String),
            ],
            &[("revenue_q3", Float64), ("is_active", Boolean)],
            &[],
        );
    }

    #[test]
    fn closest_finds_typos() {
        assert_eq!(closest("emial", ["email", "plan"]), Some("email"));
        assert_eq!(closest("zzz", ["email", "plan"]), None);
    }
}
