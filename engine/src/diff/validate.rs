//! Key validation: why a row is rejected instead of synced. A rejected row never touches the
//! state: a null key has no state entry to touch, and a duplicated key's entry is left as it
//! was (neither updated nor deleted), so a broken model causes no false delete.

/// The key text shown for a row whose unique id is null.
pub const NULL_KEY_TEXT: &str = "<null>";

/// Why a row with a null unique id is rejected.
pub fn null_key_reason(unique_id: &str) -> String {
    format!(
        "unique id column '{unique_id}' is null; rows without an id cannot be synced (filter them out in the model or fix the data)"
    )
}

/// Why each of the `count` rows sharing the unique id `key` is rejected.
pub fn duplicate_key_reason(key: &str, count: usize) -> String {
    format!(
        "unique id '{key}' occurs {count} times in the extract; ids must be unique (deduplicate in the model); this key's sync state is left untouched"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_column_or_key_and_the_fix() {
        let null = null_key_reason("user_id");
        assert!(null.contains("'user_id'") && null.contains("filter them out"));
        let dup = duplicate_key_reason("42", 3);
        assert!(dup.contains("'42' occurs 3 times") && dup.contains("deduplicate"));
    }
}
