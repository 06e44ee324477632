//! Identifier newtypes. Ids of user objects are short slugs chosen by the user (or generated);
//! run ids are time-ordered UUIDv7s so that listing runs in key order lists them by time.

use serde::{Deserialize, Serialize};

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 63;

/// Checks that `id` is a valid object id: 1 to 63 characters of `a-z`, `0-9`, `-`, `_`,
/// starting with a letter or digit.
///
/// # Errors
/// Why the id is not valid, and the rule, as a message for the field that holds it.
pub fn validate_slug(id: &str) -> Result<(), String> {
    let ok_first = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if id.is_empty() || id.len() > MAX_ID_LEN || !ok_first || !ok_rest {
        return Err(format!(
            "'{id}' is not a valid id: use 1 to {MAX_ID_LEN} characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string without validating it (use for ids read back from the catalog).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Id of a source (a warehouse connection).
    SourceId
);
id_type!(
    /// Id of a model (SQL + unique identifier).
    ModelId
);
id_type!(
    /// Id of a configured destination.
    DestinationId
);
id_type!(
    /// Id of a mapping (a sync from a model to a destination action).
    MappingId
);
id_type!(
    /// Id of one sync run (a time-ordered UUIDv7).
    RunId
);

impl RunId {
    /// A fresh, time-ordered run id.
    pub fn generate() -> Self {
        RunId(uuid::Uuid::now_v7().to_string())
    }
}

/// Generates an id for an object created without one: `<prefix>-<8 hex chars>`.
pub fn generate_slug(prefix: &str) -> String {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    // The low bits of a v7 UUID are random.
    format!("{prefix}-{}", &uuid[uuid.len() - 8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(validate_slug("users-2024_a").is_ok());
        assert!(validate_slug("").is_err());
        assert!(validate_slug("-x").is_err());
        assert!(validate_slug("Users").is_err());
        assert!(validate_slug(&"a".repeat(64)).is_err());
        assert!(validate_slug(&generate_slug("src")).is_ok());
    }
}
