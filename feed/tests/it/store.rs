//! Behaviour every `Store` must have, run against both the sled store and the memory store,
//! plus what only the sled store has (reopen, locking, corruption).
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{chain, extend, key, post};
use scrip_feed::store::verify_parallel;
use scrip_feed::{
    Appended, Entry, Error, ForkProof, MemoryStore, PayloadPolicy, Seq, SledOptions, SledStore,
    Store, Timestamp,
};

/// Runs `$test` against a fresh memory store and a fresh sled store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name(&scrip_feed::MemoryStore::new()); })*
        }
        mod sled {
            $(#[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = crate::common::open_sled(dir.path()).unwrap();
                super::$name(&store);
                // Whatever the test did, the store re-verifies from its own bytes.
                store.verify_integrity().unwrap();
            })*
        }
    };
}

on_both_stores!(
    appends_a_chain_and_reads_it_back,
    duplicate_is_reported_and_changes_nothing,
    gap_is_refused,
    wrong_prev_is_refused,
    bad_signature_is_refused,
    bad_payload_is_refused,
    fork_is_proven_stored_and_freezes_the_feed,
    a_fork_proof_carries_both_halves_attachments_as_evidence,
    gossiped_fork_proof_freezes_at_the_fork_point,
    ingest_validates_across_a_shuffled_batch,
    payloads_can_be_dropped_and_kept,
    entries_without_payload_are_stored,
    publish_signs_the_next_entry,
    lookups_of_missing_things_are_none,
    attachments_are_kept_with_their_entry,
    entries_and_their_attachments_are_stored_together,
    a_reader_never_sees_an_entry_before_its_attachments,
    an_attachment_alone_is_a_change_of_its_feed,
);

fn appends_a_chain_and_reads_it_back(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 5);
    for entry in &entries {
        assert_eq!(store.append(entry.clone()), Ok(Appended::Stored));
    }
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[4].head()));
    assert_eq!(store.authors().unwrap(), vec![alice.id()]);
    for entry in &entries {
        assert_eq!(
            store.get(&alice.id(), entry.seq()).unwrap().as_ref(),
            Some(entry)
        );
        assert_eq!(store.get_by_id(&entry.id()).unwrap().as_ref(), Some(entry));
    }
    assert_eq!(
        store.range(&alice.id(), Seq::new(2), 2).unwrap(),
        entries[1..3].to_vec()
    );
    assert_eq!(
        store.range(&alice.id(), Seq::new(4), 100).unwrap(),
        entries[3..].to_vec()
    );
    assert_eq!(store.range(&alice.id(), Seq::new(9), 100).unwrap(), vec![]);
}

fn duplicate_is_reported_and_changes_nothing(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 3);
    store.ingest(entries.clone()).unwrap();
    assert_eq!(store.append(entries[1].clone()), Ok(Appended::Duplicate));
    let report = store.ingest(entries.clone()).unwrap();
    assert_eq!(report.duplicates(), 3);
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[2].head()));
}

fn gap_is_refused(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 3);
    store.append(entries[0].clone()).unwrap();
    assert_eq!(
        store.append(entries[2].clone()),
        Err(Error::SeqMismatch {
            author: alice.id(),
            expected: Seq::new(2),
            found: Seq::new(3)
        })
    );
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[0].head()));
}

fn wrong_prev_is_refused(store: &dyn Store) {
    let alice = key(1);
    let first = chain(&alice, 1);
    let other_first =
        Entry::create(&alice, None, Timestamp::from_millis(9), post("other")).unwrap();
    let second_on_other = extend(&alice, Some(other_first.head()), 1);
    store.append(first[0].clone()).unwrap();
    assert_eq!(
        store.append(second_on_other[0].clone()),
        Err(Error::PrevMismatch {
            author: alice.id(),
            seq: Seq::new(2),
            expected: first[0].id(),
            found: other_first.id()
        })
    );
}

fn bad_signature_is_refused(store: &dyn Store) {
    let alice = key(1);
    let entry = &chain(&alice, 1)[0];
    let mut bytes = entry.header_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let forged = Entry::decode(&bytes, entry.payload().map(<[u8]>::to_vec)).unwrap();
    assert_eq!(
        store.append(forged),
        Err(Error::BadSignature {
            author: alice.id(),
            seq: Seq::FIRST
        })
    );
    assert_eq!(store.head(&alice.id()).unwrap(), None);
    assert_eq!(store.authors().unwrap(), vec![]);
}

fn bad_payload_is_refused(store: &dyn Store) {
    let alice = key(1);
    let entry = chain(&alice, 1).remove(0);
    let swapped = entry.clone().with_payload(Some(post("not this")));
    assert!(matches!(
        store.append(swapped),
        Err(Error::PayloadLengthMismatch { .. } | Error::PayloadHashMismatch { .. })
    ));
    assert_eq!(store.head(&alice.id()).unwrap(), None);
}

fn fork_is_proven_stored_and_freezes_the_feed(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 3);
    store.ingest(entries.clone()).unwrap();
    let rival = Entry::create(
        &alice,
        Some(entries[0].head()),
        Timestamp::from_millis(1),
        post("rival"),
    )
    .unwrap();
    assert_eq!(
        store.append(rival.clone()),
        Err(Error::Fork {
            author: alice.id(),
            seq: Seq::new(2)
        })
    );
    let proof = store.fork_proof(&alice.id()).unwrap().unwrap();
    assert_eq!(proof, ForkProof::new(&entries[1], &rival).unwrap());
    assert_eq!(store.fork_proofs().unwrap(), vec![proof.clone()]);
    // Frozen: nothing new beyond the fork point, though what was held stays readable.
    let next = extend(&alice, Some(entries[2].head()), 1).remove(0);
    assert_eq!(
        store.append(next),
        Err(Error::Frozen {
            author: alice.id(),
            seq: Seq::new(2)
        })
    );
    assert_eq!(store.append(entries[2].clone()), Ok(Appended::Duplicate));
    assert_eq!(store.add_fork_proof(&proof), Ok(false));
}

fn a_fork_proof_carries_both_halves_attachments_as_evidence(store: &dyn Store) {
    use scrip_feed::Attachment;
    use scrip_feed::store::VerifiedBatch;
    let alice = key(1);
    let entries = chain(&alice, 2);
    let att = |entry: &Entry, bytes: Vec<u8>| Attachment {
        entry: entry.id(),
        kind: "test/evidence".into(),
        bytes,
    };
    store
        .ingest_with_attachments(
            VerifiedBatch::new(entries.clone()),
            vec![att(&entries[1], vec![1])],
        )
        .unwrap();
    let rival = Entry::create(
        &alice,
        Some(entries[0].head()),
        Timestamp::from_millis(1),
        post("rival"),
    )
    .unwrap();
    let (report, _) = store
        .ingest_with_attachments(
            VerifiedBatch::new(vec![rival.clone()]),
            vec![att(&rival, vec![2])],
        )
        .unwrap();
    assert!(matches!(report.outcomes[0], Err(Error::Fork { .. })));
    let proof = store.fork_proof(&alice.id()).unwrap().unwrap();
    let evidence = |bytes: Vec<u8>| vec![("test/evidence".to_owned(), bytes)];
    assert_eq!(
        proof,
        ForkProof::with_evidence(&entries[1], evidence(vec![1]), &rival, evidence(vec![2]))
            .unwrap()
    );
    // What is kept is what is sent: the proof decodes with its evidence.
    assert_eq!(ForkProof::decode(&proof.encode()).unwrap(), proof);
}

fn gossiped_fork_proof_freezes_at_the_fork_point(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 4);
    let rival = Entry::create(
        &alice,
        Some(entries[1].head()),
        Timestamp::from_millis(1),
        post("rival"),
    )
    .unwrap();
    let proof = ForkProof::new(&entries[2], &rival).unwrap();
    assert_eq!(store.add_fork_proof(&proof), Ok(true));
    let report = store.ingest(entries.clone()).unwrap();
    // Entries before the fork point are still accepted; from it on, refused.
    assert_eq!(report.stored(), 2);
    assert_eq!(
        report.outcomes[2],
        Err(Error::Frozen {
            author: alice.id(),
            seq: Seq::new(3)
        })
    );
}

fn ingest_validates_across_a_shuffled_batch(store: &dyn Store) {
    let mut all = Vec::new();
    let keys: Vec<_> = (1..=5).map(key).collect();
    for k in &keys {
        all.extend(chain(k, 20));
    }
    // A deterministic shuffle: reverse and interleave.
    all.reverse();
    let (odd, even): (Vec<_>, Vec<_>) = all.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let shuffled: Vec<Entry> = odd.into_iter().chain(even).map(|(_, e)| e).collect();
    let report = store.ingest(shuffled).unwrap();
    assert_eq!(report.stored(), 100, "{report:?}");
    for k in &keys {
        assert_eq!(store.head(&k.id()).unwrap().unwrap().seq, Seq::new(20));
    }
    let mut expected: Vec<_> = keys.iter().map(|k| k.id()).collect();
    expected.sort();
    assert_eq!(store.authors().unwrap(), expected);
}

fn payloads_can_be_dropped_and_kept(store: &dyn Store) {
    let alice = key(1);
    let entries = chain(&alice, 4);
    store.ingest(entries[..2].to_vec()).unwrap();
    store
        .set_payload_policy(&alice.id(), PayloadPolicy::Drop)
        .unwrap();
    assert_eq!(store.payload_policy(&alice.id()), Ok(PayloadPolicy::Drop));
    store.append(entries[2].clone()).unwrap();
    for seq in 1..=3 {
        let got = store.get(&alice.id(), Seq::new(seq)).unwrap().unwrap();
        assert_eq!(got.payload(), None, "payload of #{seq} kept");
    }
    store
        .set_payload_policy(&alice.id(), PayloadPolicy::Keep)
        .unwrap();
    store.append(entries[3].clone()).unwrap();
    assert_eq!(
        store.get(&alice.id(), Seq::new(4)).unwrap().as_ref(),
        Some(&entries[3])
    );
    // Payloads are not resurrected by a duplicate carrying them.
    assert_eq!(store.append(entries[0].clone()), Ok(Appended::Duplicate));
}

fn entries_without_payload_are_stored(store: &dyn Store) {
    let alice = key(1);
    let entries: Vec<Entry> = chain(&alice, 3)
        .iter()
        .map(Entry::without_payload)
        .collect();
    assert_eq!(store.ingest(entries.clone()).unwrap().stored(), 3);
    assert_eq!(
        store.get(&alice.id(), Seq::new(3)).unwrap(),
        Some(entries[2].clone())
    );
}

fn publish_signs_the_next_entry(store: &dyn Store) {
    let alice = key(1);
    let first = store
        .publish(&alice, Timestamp::from_millis(1), post("one"))
        .unwrap();
    let second = store
        .publish(&alice, Timestamp::from_millis(2), post("two"))
        .unwrap();
    assert_eq!(first.seq(), Seq::FIRST);
    assert_eq!(second.prev(), Some(first.id()));
    assert_eq!(store.head(&alice.id()).unwrap(), Some(second.head()));
}

fn attachments_are_kept_with_their_entry(store: &dyn Store) {
    use scrip_feed::Attachment;
    use scrip_feed::limits::{MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS_PER_ENTRY};
    let alice = key(1);
    let entries = chain(&alice, 2);
    store.ingest(entries.clone()).unwrap();
    let id = entries[0].id();
    let att = |kind: &str, bytes: Vec<u8>| Attachment {
        entry: id,
        kind: kind.into(),
        bytes,
    };
    let results = store
        .put_attachments(vec![
            att("scrip/certificate", vec![1, 2, 3]),
            att("scrip/certificate", vec![9]),
            att("Bad Kind", vec![]),
            att("big", vec![0; MAX_ATTACHMENT_BYTES + 1]),
            Attachment {
                entry: scrip_feed::EntryId::of_header(b"nothing"),
                kind: "x".into(),
                bytes: vec![],
            },
        ])
        .unwrap();
    assert_eq!(results[0], Ok(true));
    assert_eq!(
        results[1],
        Ok(false),
        "the first attachment of a kind is kept"
    );
    assert!(matches!(results[2], Err(Error::InvalidContent { .. })));
    assert!(matches!(results[3], Err(Error::TooLarge { .. })));
    assert!(matches!(results[4], Err(Error::UnknownEntry { .. })));
    assert_eq!(
        store.attachments(&id).unwrap(),
        vec![("scrip/certificate".to_string(), vec![1, 2, 3])]
    );
    assert_eq!(store.attachments(&entries[1].id()).unwrap(), vec![]);
    let more: Vec<_> = (0..MAX_ATTACHMENTS_PER_ENTRY)
        .map(|i| att(&format!("k{i}"), vec![]))
        .collect();
    let results = store.put_attachments(more).unwrap();
    assert_eq!(
        results.iter().filter(|r| **r == Ok(true)).count(),
        MAX_ATTACHMENTS_PER_ENTRY - 1
    );
    assert!(matches!(
        results.last(),
        Some(Err(Error::TooManyAttachments { .. }))
    ));
}

/// A certificate that arrives after its entry changes what a ledger reader sees: the change
/// record names the entry's feed (and only it), and a refused attachment changes nothing.
fn an_attachment_alone_is_a_change_of_its_feed(store: &dyn Store) {
    use scrip_feed::Attachment;
    use scrip_feed::store::Changes;
    let (alice, bob) = (key(1), key(2));
    let entries = chain(&alice, 2);
    store.ingest(entries.clone()).unwrap();
    store.ingest(chain(&bob, 1)).unwrap();
    let (mark, first) = store.changes_since(None);
    assert_eq!(first, Changes::Unknown, "a first look is at every feed");
    let (mark, none) = store.changes_since(Some(mark));
    assert_eq!(none, Changes::Feeds(Default::default()));
    let certificate = |entry: &Entry, kind: &str| Attachment {
        entry: entry.id(),
        kind: kind.into(),
        bytes: vec![1],
    };
    let results = store
        .put_attachments(vec![certificate(&entries[1], "scrip/certificate")])
        .unwrap();
    assert_eq!(results, vec![Ok(true)]);
    let (mark, changed) = store.changes_since(Some(mark));
    assert_eq!(changed, Changes::Feeds([alice.id()].into()));
    let results = store
        .put_attachments(vec![
            certificate(&entries[1], "scrip/certificate"),
            certificate(&entries[0], "Bad Kind"),
        ])
        .unwrap();
    assert_eq!(results[0], Ok(false));
    assert_eq!(
        store.changes_since(Some(mark)).1,
        Changes::Feeds(Default::default())
    );
}

fn entries_and_their_attachments_are_stored_together(store: &dyn Store) {
    use scrip_feed::Attachment;
    use scrip_feed::store::VerifiedBatch;
    let alice = key(1);
    let entries = chain(&alice, 4);
    store.ingest(entries[..1].to_vec()).unwrap();
    let mut bytes = entries[3].header_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let forged = Entry::decode(&bytes, entries[3].payload().map(<[u8]>::to_vec)).unwrap();
    let att = |entry: &Entry, bytes: Vec<u8>| Attachment {
        entry: entry.id(),
        kind: "scrip/certificate".into(),
        bytes,
    };
    // #1 is held already, #2 and #3 are new, and the forged #4 is refused.
    let (report, attached) = store
        .ingest_with_attachments(
            VerifiedBatch::new(vec![entries[1].clone(), entries[2].clone(), forged.clone()]),
            vec![
                att(&entries[0], vec![0]),
                att(&entries[1], vec![1]),
                att(&entries[2], vec![2]),
                att(&entries[2], vec![22]),
                att(&forged, vec![3]),
            ],
        )
        .unwrap();
    assert_eq!(report.stored(), 2);
    assert_eq!(report.refused(), 1);
    assert_eq!(attached[..4], [Ok(true), Ok(true), Ok(true), Ok(false)]);
    assert!(matches!(attached[4], Err(Error::UnknownEntry { .. })));
    for (i, entry) in entries[..3].iter().enumerate() {
        assert_eq!(
            store.attachments(&entry.id()).unwrap(),
            vec![(
                "scrip/certificate".to_string(),
                vec![u8::try_from(i).unwrap()]
            )]
        );
    }
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[2].head()));
}

/// While entries are stored with their attachments, a concurrent reader (a replication session
/// streaming the feed) never sees an entry whose attachments are not there yet, by any read.
fn a_reader_never_sees_an_entry_before_its_attachments(store: &dyn Store) {
    use scrip_feed::Attachment;
    use scrip_feed::store::VerifiedBatch;
    use std::sync::atomic::{AtomicBool, Ordering};
    let alice = key(1);
    let entries = chain(&alice, 300);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for pair in entries.chunks(2) {
                let attachments = pair
                    .iter()
                    .map(|entry| Attachment {
                        entry: entry.id(),
                        kind: "scrip/certificate".into(),
                        bytes: entry.id().as_bytes().to_vec(),
                    })
                    .collect();
                let (report, _) = store
                    .ingest_with_attachments(VerifiedBatch::new(pair.to_vec()), attachments)
                    .unwrap();
                assert_eq!(report.stored(), pair.len());
            }
            done.store(true, Ordering::SeqCst);
        });
        // The newest entry is the one at risk: check it as soon as it shows, in a tight loop;
        // now and then, everything readable so far.
        let mut reads = 0u64;
        while !done.load(Ordering::SeqCst) || reads == 0 {
            reads += 1;
            if let Some(head) = store.head(&alice.id()).unwrap() {
                let newest = store.get(&alice.id(), head.seq).unwrap().unwrap();
                assert!(
                    !store.attachments(&newest.id()).unwrap().is_empty(),
                    "#{} was readable before its attachment",
                    head.seq
                );
                let next = store
                    .get(&alice.id(), Seq::new(head.seq.get() + 1))
                    .unwrap();
                if let Some(next) = next {
                    assert!(!store.attachments(&next.id()).unwrap().is_empty());
                }
            }
            if reads.is_multiple_of(64) {
                for entry in store.range(&alice.id(), Seq::FIRST, usize::MAX).unwrap() {
                    assert!(!store.attachments(&entry.id()).unwrap().is_empty());
                    assert_eq!(store.get_by_id(&entry.id()).unwrap().as_ref(), Some(&entry));
                }
            }
        }
    });
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[299].head()));
}

fn lookups_of_missing_things_are_none(store: &dyn Store) {
    let alice = key(1);
    assert_eq!(store.head(&alice.id()).unwrap(), None);
    assert_eq!(store.get(&alice.id(), Seq::FIRST).unwrap(), None);
    assert_eq!(store.get(&alice.id(), Seq::new(0)).unwrap(), None);
    assert_eq!(store.range(&alice.id(), Seq::new(0), 10).unwrap(), vec![]);
    assert_eq!(store.fork_proof(&alice.id()).unwrap(), None);
    assert_eq!(store.payload_policy(&alice.id()), Ok(PayloadPolicy::Keep));
}

#[test]
fn concurrent_publishes_never_fork_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_sled(dir.path()).unwrap();
    let alice = key(1);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, alice) = (&store, &alice);
            scope.spawn(move || {
                for i in 0..10 {
                    store
                        .publish(alice, Timestamp::from_millis(i), post(&format!("{t}/{i}")))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.head(&alice.id()).unwrap().unwrap().seq, Seq::new(40));
    assert_eq!(store.fork_proofs().unwrap(), vec![]);
    assert_eq!(store.verify_integrity().unwrap().entries, 40);
}

#[test]
fn sled_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let alice = key(1);
    let bob = key(2);
    let entries = chain(&alice, 10);
    let rival = Entry::create(
        &alice,
        Some(entries[0].head()),
        Timestamp::default(),
        vec![],
    )
    .unwrap();
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(entries.clone()).unwrap();
        store.ingest(chain(&bob, 3)).unwrap();
        store
            .set_payload_policy(&bob.id(), PayloadPolicy::Drop)
            .unwrap();
        assert!(matches!(
            store.append(rival.clone()),
            Err(Error::Fork { .. })
        ));
    }
    let store = common::open_sled(dir.path()).unwrap();
    assert_eq!(store.head(&alice.id()).unwrap(), Some(entries[9].head()));
    assert_eq!(
        store.get(&alice.id(), Seq::new(5)).unwrap().as_ref(),
        Some(&entries[4])
    );
    assert_eq!(store.payload_policy(&bob.id()), Ok(PayloadPolicy::Drop));
    assert_eq!(
        store.fork_proof(&alice.id()).unwrap().unwrap().seq(),
        Seq::new(2)
    );
    let report = store.verify_integrity().unwrap();
    assert_eq!(
        (
            report.feeds,
            report.entries,
            report.payloads,
            report.fork_proofs
        ),
        (2, 13, 10, 1)
    );
}

/// The first byte of each of `author`'s stored chunks, in seq order (1: inline, 2: a value log
/// reference), read from sled directly.
fn chunk_kinds(dir: &std::path::Path, author: &scrip_feed::FeedId) -> Vec<u8> {
    let db = common::open_raw_sled(dir);
    let mut prefix = vec![b'C'];
    prefix.extend_from_slice(author.as_bytes());
    db.scan_prefix(prefix)
        .values()
        .map(|v| v.unwrap()[0])
        .collect()
}

fn values_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(scrip_feed::store::values::VALUES_FILE))
        .unwrap()
        .len()
}

#[test]
fn a_big_commit_puts_its_chunks_in_the_value_log_and_small_ones_stay_inline() {
    let dir = tempfile::tempdir().unwrap();
    let alice = key(1);
    let small = chain(&alice, 10);
    let big = extend(&alice, Some(small[9].head()), 1000);
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(small.clone()).unwrap();
        assert_eq!(values_len(dir.path()), 0, "a small commit stays inline");
        store.ingest(big.clone()).unwrap();
        let written = values_len(dir.path());
        assert!(
            written >= scrip_feed::store::values::VALUE_LOG_MIN_BYTES as u64,
            "{written}"
        );
        store
            .publish(&alice, Timestamp::from_millis(1), post("after"))
            .unwrap();
        assert_eq!(values_len(dir.path()), written, "a publish stays inline");
    }
    let kinds = chunk_kinds(dir.path(), &alice.id());
    assert_eq!(kinds.first(), Some(&1), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&1), "{kinds:?}");
    assert!(
        kinds[1..kinds.len() - 1].iter().all(|&k| k == 2),
        "{kinds:?}"
    );

    let store = common::open_sled(dir.path()).unwrap();
    assert_eq!(
        store.head(&alice.id()).unwrap().unwrap().seq,
        Seq::new(1011)
    );
    assert_eq!(
        store.get(&alice.id(), Seq::new(5)).unwrap().as_ref(),
        Some(&small[4])
    );
    assert_eq!(
        store.get(&alice.id(), Seq::new(510)).unwrap().as_ref(),
        Some(&big[499])
    );
    assert_eq!(
        store.get_by_id(&big[999].id()).unwrap().as_ref(),
        Some(&big[999])
    );
    assert_eq!(
        store.range(&alice.id(), Seq::new(8), 20).unwrap(),
        [&small[7..], &big[..17]].concat()
    );
    assert_eq!(store.verify_integrity().unwrap().entries, 1011);
    // Dropping payloads rewrites the chunks (inline, without payloads); reads follow.
    store
        .set_payload_policy(&alice.id(), PayloadPolicy::Drop)
        .unwrap();
    let read = store.get(&alice.id(), Seq::new(510)).unwrap().unwrap();
    assert_eq!((read.id(), read.payload()), (big[499].id(), None));
    assert_eq!(store.verify_integrity().unwrap().payloads, 0);
}

#[test]
fn a_damaged_value_log_is_reported_as_corrupt_never_read_as_entries() {
    let alice = key(1);
    let entries = chain(&alice, 1000);
    for damage in ["flip", "truncate", "remove"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = common::open_sled(dir.path()).unwrap();
            store.ingest(entries.clone()).unwrap();
        }
        let path = dir.path().join(scrip_feed::store::values::VALUES_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        match damage {
            "flip" => bytes[1000] ^= 0x01,
            "truncate" => bytes.truncate(bytes.len() / 2),
            // A copy of the store made without it: the open makes an empty one.
            _ => bytes.clear(),
        }
        if damage == "remove" {
            std::fs::remove_file(&path).unwrap();
        } else {
            std::fs::write(&path, bytes).unwrap();
        }
        // The head's chunk is read on open; others when asked for.
        let err = match common::open_sled(dir.path()) {
            Err(err) => err,
            Ok(store) => store.verify_integrity().unwrap_err(),
        };
        assert!(matches!(err, Error::Corrupt { .. }), "{damage}: {err:?}");
        assert!(err.to_string().contains("scrip-values"), "{damage}: {err}");
    }
}

#[test]
fn bytes_a_crash_left_after_the_last_commit_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let alice = key(1);
    let first = chain(&alice, 1000);
    let second = extend(&alice, Some(first[999].head()), 1000);
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(first.clone()).unwrap();
    }
    // An append whose sled commit never happened (killed in between).
    let path = dir.path().join(scrip_feed::store::values::VALUES_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xa5; 5000]);
    std::fs::write(&path, bytes).unwrap();
    let store = common::open_sled(dir.path()).unwrap();
    store.ingest(second.clone()).unwrap();
    assert_eq!(
        store.get(&alice.id(), Seq::new(1500)).unwrap().as_ref(),
        Some(&second[499])
    );
    drop(store);
    let store = common::open_sled(dir.path()).unwrap();
    assert_eq!(store.verify_integrity().unwrap().entries, 2000);
}

#[test]
fn second_open_of_a_sled_store_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = common::open_sled(dir.path()).unwrap();
    // sled's lock is per process and file; a second open in this process must fail too.
    let err = SledStore::open(dir.path(), SledOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another process"));
}

#[test]
fn damaged_config_is_reported_as_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(chain(&key(1), 5)).unwrap();
    }
    std::fs::write(dir.path().join("conf"), b"\xff\xfe garbage").unwrap();
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(!err.is_invalid_entry(), "{err:?}");
}

#[test]
fn damaged_data_is_reported_never_silently_lost() {
    // Flip bytes all over sled's data file. sled 0.34 alone recovers up to the first bad checksum
    // and quietly drops the rest; the store must instead refuse to open (Corrupt), or open with
    // every acknowledged entry present and every chain valid.
    let alice = key(1);
    for offset_step in [97usize, 131, 211, 4001] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = common::open_sled(dir.path()).unwrap();
            store.ingest(chain(&alice, 50)).unwrap();
        }
        let db_file = dir.path().join("db");
        let mut bytes = std::fs::read(&db_file).unwrap();
        let mut offset = offset_step;
        while offset < bytes.len() {
            bytes[offset] ^= 0x5a;
            offset += offset_step * 7;
        }
        std::fs::write(&db_file, bytes).unwrap();
        match common::open_sled(dir.path()) {
            Err(err) => {
                assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
                assert!(err.to_string().contains("re-sync"), "{err}");
            }
            Ok(store) => {
                assert_eq!(store.head(&alice.id()).unwrap().unwrap().seq, Seq::new(50));
                store.verify_integrity().unwrap();
            }
        }
    }
}

#[test]
fn damaged_watermark_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(chain(&key(1), 2)).unwrap();
    }
    std::fs::write(dir.path().join(scrip_feed::store::WATERMARK_FILE), b"junk").unwrap();
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

#[test]
fn store_with_a_foreign_format_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = common::open_raw_sled(dir.path());
        db.insert(b"Mformat", &[1u8, 2]).unwrap();
        db.flush().unwrap();
    }
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown store format"), "{err}");
}

/// A store a later build wrote (a higher format marker) is refused as such, not as damage
/// (the advice for damage, moving the directory aside, would be wrong), and left as it was.
#[test]
fn store_written_by_a_newer_build_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = common::open_raw_sled(dir.path());
        db.insert(b"Mformat", &[99u8]).unwrap();
        db.flush().unwrap();
    }
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
    assert_eq!(err.code(), "newer-format");
    let text = err.to_string();
    assert!(
        text.contains("newer version of scrip (store format 99; this build reads 2, 1)"),
        "{text}"
    );
    let db = common::open_raw_sled(dir.path());
    assert_eq!(db.get(b"Mformat").unwrap().as_deref(), Some(&[99u8][..]));
}

#[test]
fn inconsistent_head_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let alice = key(1);
    {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(chain(&alice, 3)).unwrap();
    }
    {
        // Remove the chunk holding the entries behind the store's back.
        let db = common::open_raw_sled(dir.path());
        let mut k = vec![b'C'];
        k.extend_from_slice(alice.id().as_bytes());
        k.extend_from_slice(&1u64.to_be_bytes());
        assert!(db.remove(k).unwrap().is_some());
        db.flush().unwrap();
    }
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

#[test]
fn parallel_verification_matches_sequential() {
    let mut entries = Vec::new();
    for n in 1..=4 {
        entries.extend(chain(&key(n), 100));
    }
    // Corrupt a few signatures and payloads.
    for i in [5usize, 150, 399] {
        let mut bytes = entries[i].header_bytes().to_vec();
        let at = bytes.len() - 3;
        bytes[at] ^= 0x10;
        entries[i] = Entry::decode(&bytes, entries[i].payload().map(<[u8]>::to_vec)).unwrap();
    }
    entries[200] = entries[200].clone().with_payload(Some(b"x".to_vec()));
    let parallel = verify_parallel(&entries);
    let sequential: Vec<_> = entries
        .iter()
        .map(|e| {
            scrip_feed::validate::validate_payload(e)?;
            scrip_feed::validate::validate_signature(e)
        })
        .collect();
    assert_eq!(parallel, sequential);
    assert_eq!(parallel.iter().filter(|r| r.is_err()).count(), 4);
}

#[test]
fn memory_store_is_a_store() {
    // The trait is object safe and both stores are usable through it.
    let stores: Vec<Box<dyn Store>> = vec![Box::new(MemoryStore::new())];
    assert_eq!(stores[0].authors().unwrap(), vec![]);
}

/// Every file under `dir`, with its bytes.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files(&path));
        } else {
            all.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    all
}

/// A store with 50 entries written over three opens (so that sled wrote a snapshot).
fn used_store(dir: &std::path::Path) -> scrip_feed::FeedId {
    let alice = key(1);
    let entries = chain(&alice, 50);
    for part in entries.chunks(20) {
        let store = common::open_sled(dir).unwrap();
        store.ingest(part.to_vec()).unwrap();
    }
    alice.id()
}

#[test]
fn a_copy_without_its_snapshot_and_watermark_is_refused_untouched() {
    // What a careless copy of a home can leave: sled alone would open it as an empty store.
    let dir = tempfile::tempdir().unwrap();
    used_store(dir.path());
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") || name == scrip_feed::store::WATERMARK_FILE {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let before = files(dir.path());
    let err = common::open_sled(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert!(
        files(dir.path()) == before,
        "the refused store was written to"
    );
}

#[test]
fn a_store_without_its_snapshot_opens_whole_or_keeps_a_copy_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let alice = used_store(dir.path());
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let before = files(dir.path());
    let aside = std::path::PathBuf::from(format!("{}.before-open", dir.path().display()));
    match common::open_sled(dir.path()) {
        Ok(store) => {
            assert_eq!(store.head(&alice).unwrap().unwrap().seq, Seq::new(50));
            assert!(
                !aside.exists(),
                "the copy is removed once the store opened whole"
            );
        }
        Err(err) => {
            assert!(err.to_string().contains("before-open"), "{err}");
            let kept: std::collections::BTreeMap<_, _> = files(&aside)
                .into_iter()
                .map(|(path, bytes)| (dir.path().join(path.strip_prefix(&aside).unwrap()), bytes))
                .collect();
            assert!(kept == before, "the copy holds the files as they were");
            std::fs::remove_dir_all(&aside).unwrap();
        }
    }
}

/// What a write that failed part way must give: an error saying the write may have been made;
/// then a refusal of every write saying a restart is needed (never "corrupt"); and after the
/// reopen, a consistent store holding every acknowledged entry (the last one or not).
/// After a write of `batch` entries failed as uncertain with `acknowledged` entries stored
/// before it: the reopened store holds those, or those and the whole batch, and takes writes.
fn check_after_a_failed_write(
    dir: &std::path::Path,
    failed: Error,
    acknowledged: usize,
    batch: usize,
) {
    let alice = key(1);
    assert!(matches!(failed, Error::WriteUncertain { .. }), "{failed:?}");
    assert!(
        failed.to_string().contains("may or may not have been made"),
        "{failed}"
    );
    let reopened = common::open_sled(dir).unwrap();
    let head = reopened.head(&alice.id()).unwrap().unwrap().seq.get();
    assert!(
        head == acknowledged as u64 || head == (acknowledged + batch) as u64,
        "head {head}, {acknowledged} acknowledged"
    );
    reopened.verify_integrity().unwrap();
    // And it takes writes again.
    let next = extend(&alice, reopened.head(&alice.id()).unwrap(), 1).remove(0);
    assert_eq!(reopened.append(next), Ok(Appended::Stored));
}

#[test]
fn a_failed_flush_is_reported_as_uncertain_and_then_restart_needed() {
    let dir = tempfile::tempdir().unwrap();
    let alice = key(1);
    let entries = chain(&alice, 12);
    let failed = {
        let store = common::open_sled(dir.path()).unwrap();
        store.ingest(entries[..10].to_vec()).unwrap();
        store.fail_next_flush();
        let failed = store.append(entries[10].clone()).unwrap_err();
        // Every later write is refused, saying what to do; reads still work.
        let later = store.append(entries[11].clone()).unwrap_err();
        assert!(matches!(later, Error::RestartNeeded { .. }), "{later:?}");
        assert!(later.to_string().contains("restart"), "{later}");
        assert!(store.head(&alice.id()).unwrap().unwrap().seq.get() >= 10);
        failed
    };
    check_after_a_failed_write(dir.path(), failed, 10, 1);
}

/// The same on a real full disk: a 2 MiB tmpfs (needs permission to mount; where there is none,
/// the injected failure above covers the store's side, and this says it was skipped).
#[test]
fn a_full_disk_is_reported_as_uncertain_and_a_reopen_is_consistent() {
    fill_a_small_disk(1);
}

/// The same with batches big enough for the value log: a failure there (before the sled commit)
/// stored nothing and says so; one in sled's commit is uncertain as above.
#[test]
fn a_full_disk_under_big_batches_loses_nothing_acknowledged() {
    fill_a_small_disk(64);
}

/// Writes entries of ~4 KB, `batch` per commit, to a store on a 2 MiB tmpfs until a write
/// fails; makes room, reopens and checks what the failure said.
fn fill_a_small_disk(batch: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("no permission to mount a tmpfs here: the full-disk test was skipped");
        return;
    }
    let unmount = || {
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
    };
    let alice = key(1);
    let store_dir = dir.path().join("store");
    let mut acknowledged = 0;
    let mut failure = None;
    {
        let store = common::open_sled(&store_dir).unwrap();
        let mut head = None;
        for _ in 0..100_000 {
            let mut entries = Vec::with_capacity(batch);
            for _ in 0..batch {
                let entry = Entry::create(
                    &alice,
                    head,
                    Timestamp::from_millis(1),
                    post(&"x".repeat(4000)),
                )
                .unwrap();
                head = Some(entry.head());
                entries.push(entry);
            }
            let written = if batch == 1 {
                store.append(entries.remove(0)).map(drop)
            } else {
                store.ingest(entries).map(|report| {
                    assert_eq!(report.refused(), 0, "{report:?}");
                })
            };
            match written {
                Ok(()) => acknowledged += batch,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
    }
    let failed = failure.expect("a 2 MiB disk filled up");
    eprintln!("full disk after {acknowledged} entries ({batch} a commit): {failed}");
    // Room again (as a user would make it), then the reopen.
    let _ = std::fs::write(dir.path().join("filler"), b"");
    std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(dir.path())
        .status()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        if matches!(failed, Error::WriteUncertain { .. }) {
            check_after_a_failed_write(&store_dir, failed, acknowledged, batch);
        } else {
            // Refused before sled was written to: nothing uncertain, the store as it was.
            if batch > 1 {
                assert!(
                    failed.to_string().contains("nothing was stored"),
                    "{failed}"
                );
            }
            let reopened = common::open_sled(&store_dir).unwrap();
            assert_eq!(
                reopened.head(&alice.id()).unwrap().unwrap().seq.get(),
                acknowledged as u64,
                "{failed:?}"
            );
            reopened.verify_integrity().unwrap();
        }
    });
    unmount();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
