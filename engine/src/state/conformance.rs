//! The conformance suite every [`StateStore`] implementation must pass (run from each
//! implementation's tests). A store error is returned; a violated duty panics with an
//! assertion naming it.

use crate::id::MappingId;
use crate::state::{Fingerprint, StateError, StateStore, StateWrite};

fn put(key: &[u8], fp: u128) -> StateWrite {
    StateWrite::Put {
        key: key.to_vec(),
        fingerprint: Fingerprint(fp),
    }
}

fn all(
    store: &dyn StateStore,
    m: &MappingId,
    page: usize,
) -> Result<Vec<(Vec<u8>, Fingerprint)>, StateError> {
    let mut out: Vec<(Vec<u8>, Fingerprint)> = Vec::new();
    loop {
        let after = out.last().map(|(k, _)| k.clone());
        let p = store.scan_page(m, after.as_deref(), page)?;
        if p.is_empty() {
            return Ok(out);
        }
        out.extend(p);
    }
}

/// Runs every duty check against `store`, which must start empty.
pub fn run_all(store: &dyn StateStore) -> Result<(), StateError> {
    let a = MappingId::new("conf-a");
    let b = MappingId::new("conf-a2");
    // Ordered scan across pages, independent of insertion order.
    store.commit(
        &a,
        &[put(b"c", 3), put(b"a", 1), put(b"b", 2), put(&[0xff, 0], 9)],
    )?;
    store.commit(&b, &[put(b"a", 100)])?;
    let keys: Vec<Vec<u8>> = all(store, &a, 2)?.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), vec![0xff, 0]]
    );
    assert_eq!(store.count(&a)?, 4);
    // Mappings whose ids share a prefix stay independent.
    assert_eq!(store.count(&b)?, 1);
    assert_eq!(store.fingerprint(&b, b"a")?, Some(Fingerprint(100)));
    assert_eq!(store.fingerprint(&a, b"a")?, Some(Fingerprint(1)));
    // Commit overwrites and deletes atomically.
    store.commit(
        &a,
        &[put(b"a", 11), StateWrite::Delete { key: b"b".to_vec() }],
    )?;
    assert_eq!(store.fingerprint(&a, b"a")?, Some(Fingerprint(11)));
    assert_eq!(store.fingerprint(&a, b"b")?, None);
    assert_eq!(store.count(&a)?, 3);
    // Deleting an absent key is not an error (a re-sent delete after a crash).
    store.commit(
        &a,
        &[StateWrite::Delete {
            key: b"zz".to_vec(),
        }],
    )?;
    // An empty key is a valid key.
    store.commit(&a, &[put(b"", 5)])?;
    assert_eq!(
        all(store, &a, 10)?.first().map(|(k, _)| k.clone()),
        Some(Vec::new())
    );
    // Sync keeps what was committed.
    store.sync()?;
    assert_eq!(store.count(&a)?, 4);
    // Reset forgets one mapping only.
    store.reset(&a)?;
    assert_eq!(store.count(&a)?, 0);
    assert_eq!(store.count(&b)?, 1);
    store.reset(&b)?;
    Ok(())
}
