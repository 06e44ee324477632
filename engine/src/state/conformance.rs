//! The conformance suite every [`StateStore`] implementation must pass (run from each
//! implementation's tests). A store error is returned; a violated duty panics with an
//! assertion naming it.

use crate::id::MappingId;
use crate::state::{
    Fingerprint, RunStamp, StateEntry, StateError, StateStore, StateWrite, SyncedBy,
};

fn put(key: &[u8], fp: u128) -> StateWrite {
    StateWrite::Put {
        key: key.to_vec(),
        fingerprint: Fingerprint(fp),
        synced_by: None,
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
    entries_keep_the_run_that_wrote_them(store, &a)?;
    Ok(())
}

/// An entry keeps the run that wrote it (and whether it sent the record); an entry written
/// without one reads back without one; `fingerprint` and `scan_page` see the fingerprint of
/// either.
fn entries_keep_the_run_that_wrote_them(
    store: &dyn StateStore,
    m: &MappingId,
) -> Result<(), StateError> {
    let run = RunStamp([0x01, 0xa2, 0x2f, 0xa7, 0x7b, 0x67]);
    assert_eq!(
        RunStamp::of("01a22fa7-7b67-70d3-8ec8-6c6cf55959e4"),
        Some(run),
        "a run's stamp is the start of its id"
    );
    let sent = SyncedBy { run, sent: true };
    let advanced = SyncedBy { run, sent: false };
    let with = |key: &[u8], fp: u128, by: SyncedBy| StateWrite::Put {
        key: key.to_vec(),
        fingerprint: Fingerprint(fp),
        synced_by: Some(by),
    };
    store.commit(
        m,
        &[with(b"s", 1, sent), with(b"n", 2, advanced), put(b"o", 3)],
    )?;
    let entry = |fp: u128, synced_by| StateEntry {
        fingerprint: Fingerprint(fp),
        synced_by,
    };
    assert_eq!(store.entry(m, b"s")?, Some(entry(1, Some(sent))));
    assert_eq!(store.entry(m, b"n")?, Some(entry(2, Some(advanced))));
    assert_eq!(store.entry(m, b"o")?, Some(entry(3, None)));
    assert_eq!(store.entry(m, b"x")?, None);
    assert_eq!(store.fingerprint(m, b"s")?, Some(Fingerprint(1)));
    let entries = store.scan_entries(m, None, 10)?;
    let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"n"[..], b"o", b"s"]);
    assert_eq!(entries[2].1, entry(1, Some(sent)));
    let fps: Vec<Fingerprint> = all(store, m, 1)?.into_iter().map(|(_, f)| f).collect();
    assert_eq!(fps, vec![Fingerprint(2), Fingerprint(3), Fingerprint(1)]);
    // Overwriting without a run forgets the old one.
    store.commit(m, &[put(b"s", 4)])?;
    assert_eq!(store.entry(m, b"s")?, Some(entry(4, None)));
    assert_eq!(run.run_id_prefix(), "01a22fa7-7b67");
    store.reset(m)?;
    Ok(())
}
