//! Model test: across random operation sequences (appends of valid, duplicate, forking, gapped,
//! badly signed and payload-less entries; batch ingests; payload policy changes; gossiped fork
//! proofs; attachments; reopens):
//!
//! - both stores hold exactly what an **independent reference** (`Reference`, below) says they
//!   must, written from feed.md's rules directly, not through the planner the two stores share:
//!   each feed's chain, which entries keep their payload, which feeds are frozen, and every
//!   entry's attachments (first of a kind wins, at most 4, only on held entries, bounds);
//! - the sled store behaves exactly like the in-memory store (same reports, same reads);
//! - each store's record of changed feeds (`Store::changes_since`) names every feed an
//!   operation changed.
//!
//! CI runs `SCRIP_MODEL_CASES` cases (default 48); for a long run:
//! `SCRIP_MODEL_CASES=2000 cargo test -p scrip-feed --release --test it model::`.
//! proptest prints the failing sequence, minimised, and records its seed under
//! `proptest-regressions/`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use scrip_feed::store::{Attachment, ChangeMark, Changes};
use scrip_feed::validate::{validate_payload, validate_signature_with};
use scrip_feed::{
    AuthorKey, Entry, EntryId, FeedId, ForkProof, Keypair, MemoryStore, PayloadPolicy, Seq,
    SledStore, Store, Timestamp,
};

const AUTHORS: u8 = 3;

#[derive(Clone, Debug)]
enum Make {
    Next,
    NextWithoutPayload,
    NextWithWrongPayload,
    NextBadSignature,
    Duplicate(u8),
    Fork(u8),
    Gap,
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8, Make),
    Ingest(Vec<(u8, Make)>),
    Publish(u8),
    Policy(u8, bool),
    GossipForkProof(u8, u8),
    /// An attachment on one of an author's entries (`pick`; past the head: an entry not held),
    /// of kind number `kind` (some invalid; one past the last: every kind at once, in one call)
    /// and `size` bytes (some too large).
    Attach {
        author: u8,
        pick: u8,
        kind: u8,
        size: u16,
    },
    Reopen,
}

/// Kinds the model attaches: five valid ones (more than an entry may carry) and an invalid one.
const KINDS: [&str; 6] = ["a", "b/c", "d.e", "f-g", "h_i", "Bad Kind"];

/// What a store must hold, from feed.md's rules alone (sections 8 to 10), independent of the
/// stores' shared planner.
#[derive(Default)]
struct Reference {
    /// Each feed's entries, from seq 1, as held (without payload where it is dropped).
    chains: BTreeMap<FeedId, Vec<Entry>>,
    /// Feeds with a fork proof: frozen.
    frozen: BTreeSet<FeedId>,
    /// Feeds whose payloads are dropped.
    dropped: BTreeSet<FeedId>,
    /// Each held entry's attachments by kind.
    attachments: BTreeMap<EntryId, BTreeMap<String, Vec<u8>>>,
}

impl Reference {
    /// An entry offered alone or in a batch (a batch is taken in (author, seq) order).
    fn offer(&mut self, entry: &Entry) {
        let author = entry.author();
        let valid = AuthorKey::new(&author)
            // One check per entry, never a batch: the stores' batched checks must agree.
            .and_then(|key| {
                validate_payload(entry)?;
                validate_signature_with(&key, entry)
            })
            .is_ok();
        if !valid {
            return; // refused: bad signature or payload
        }
        let chain = self.chains.entry(author).or_default();
        let seq = usize::try_from(entry.seq().get()).unwrap();
        if seq <= chain.len() {
            if chain[seq - 1].id() != entry.id() {
                self.frozen.insert(author); // two entries for one seq: a fork
            }
            return; // else a duplicate
        }
        if self.frozen.contains(&author) || seq != chain.len() + 1 {
            return; // frozen, or a gap
        }
        if entry.prev() != chain.last().map(Entry::id) {
            return; // does not link to the head
        }
        chain.push(if self.dropped.contains(&author) {
            entry.without_payload()
        } else {
            entry.clone()
        });
    }

    fn ingest(&mut self, entries: &[Entry]) {
        let mut sorted: Vec<&Entry> = entries.iter().collect();
        sorted.sort_by_key(|e| (e.author(), e.seq()));
        for entry in sorted {
            self.offer(entry);
        }
    }

    fn set_policy(&mut self, author: FeedId, drop: bool) {
        if drop {
            self.dropped.insert(author);
            for entry in self.chains.get_mut(&author).into_iter().flatten() {
                *entry = entry.without_payload();
            }
        } else {
            self.dropped.remove(&author);
        }
    }

    fn fork_proof(&mut self, author: FeedId) {
        if self.chains.get(&author).is_some_and(|c| !c.is_empty()) {
            self.frozen.insert(author);
        }
    }

    /// `Ok(true)` kept, `Ok(false)` a kind already held, `Err(())` refused.
    fn attach(&mut self, entry: EntryId, kind: &str, bytes: &[u8]) -> Result<bool, ()> {
        let kind_ok = !kind.is_empty()
            && kind.len() <= 32
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "/._-".contains(c));
        let held = self.chains.values().flatten().any(|e| e.id() == entry);
        if !kind_ok || bytes.len() > 8192 || !held {
            return Err(());
        }
        let kinds = self.attachments.entry(entry).or_default();
        if kinds.contains_key(kind) {
            return Ok(false);
        }
        if kinds.len() >= 4 {
            return Err(());
        }
        kinds.insert(kind.to_owned(), bytes.to_vec());
        Ok(true)
    }

    /// Panics unless `store` holds what the reference says.
    fn check(&self, store: &dyn Store, name: &str) {
        for author in 0..AUTHORS {
            let id = keypair(author).id();
            let want = self.chains.get(&id).cloned().unwrap_or_default();
            let have = store.range(&id, Seq::FIRST, usize::MAX).unwrap();
            let ids = |c: &[Entry]| {
                c.iter()
                    .map(|e| (e.id(), e.payload().is_some()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                ids(&have),
                ids(&want),
                "{name}: the chain of author {author}"
            );
            assert_eq!(
                store.fork_proof(&id).unwrap().is_some(),
                self.frozen.contains(&id),
                "{name}: whether author {author} is frozen"
            );
            for entry in &want {
                let want: Vec<(String, Vec<u8>)> = self
                    .attachments
                    .get(&entry.id())
                    .map(|k| k.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                assert_eq!(
                    store.attachments(&entry.id()).unwrap(),
                    want,
                    "{name}: attachments of {}",
                    entry.id()
                );
            }
        }
    }
}

fn make() -> impl Strategy<Value = Make> {
    prop_oneof![
        6 => Just(Make::Next),
        1 => Just(Make::NextWithoutPayload),
        1 => Just(Make::NextWithWrongPayload),
        1 => Just(Make::NextBadSignature),
        2 => any::<u8>().prop_map(Make::Duplicate),
        1 => any::<u8>().prop_map(Make::Fork),
        1 => Just(Make::Gap),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..AUTHORS, make()).prop_map(|(a, m)| Op::Append(a, m)),
        3 => proptest::collection::vec((0..AUTHORS, make()), 1..12).prop_map(Op::Ingest),
        2 => (0..AUTHORS).prop_map(Op::Publish),
        1 => (0..AUTHORS, any::<bool>()).prop_map(|(a, d)| Op::Policy(a, d)),
        1 => (0..AUTHORS, any::<u8>()).prop_map(|(a, s)| Op::GossipForkProof(a, s)),
        // Few entries picked, so that some carry several kinds and reach the limit.
        4 => (0..AUTHORS, 0..3u8, 0..=u8::try_from(KINDS.len()).unwrap(), prop_oneof![9 => 0..64u16, 1 => Just(8193u16)])
            .prop_map(|(author, pick, kind, size)| Op::Attach { author, pick, kind, size }),
        1 => Just(Op::Reopen),
    ]
}

fn keypair(author: u8) -> Keypair {
    common::key(author + 1)
}

/// Builds a concrete entry from the model's state. `salt` makes entries distinct.
struct Maker<'a> {
    model: &'a MemoryStore,
    /// Valid next entries made in this batch but not yet in the model, per author.
    pending: Vec<Vec<Entry>>,
    salt: u64,
}

impl Maker<'_> {
    fn head(&self, author: u8) -> Option<scrip_feed::Head> {
        self.pending[author as usize]
            .last()
            .map(Entry::head)
            .or_else(|| self.model.head(&keypair(author).id()).unwrap())
    }

    fn at(&self, author: u8, seq: Seq) -> Option<Entry> {
        self.pending[author as usize]
            .iter()
            .find(|e| e.seq() == seq)
            .cloned()
            .or_else(|| self.model.get(&keypair(author).id(), seq).unwrap())
    }

    fn held(&self, author: u8, pick: u8) -> Option<Entry> {
        let head = self.head(author)?;
        self.at(author, Seq::new(u64::from(pick) % head.seq.get() + 1))
    }

    fn create(&mut self, author: u8, prev: Option<scrip_feed::Head>) -> Entry {
        self.salt += 1;
        Entry::create(
            &keypair(author),
            prev,
            Timestamp::from_millis(self.salt),
            common::post(&format!("{author}/{}", self.salt)),
        )
        .unwrap()
    }

    fn make(&mut self, author: u8, how: &Make) -> Option<Entry> {
        let head = self.head(author);
        let entry = match how {
            Make::Next => {
                let e = self.create(author, head);
                self.pending[author as usize].push(e.clone());
                e
            }
            Make::NextWithoutPayload => {
                let e = self.create(author, head).without_payload();
                self.pending[author as usize].push(e.clone());
                e
            }
            Make::NextWithWrongPayload => {
                let e = self.create(author, head);
                e.with_payload(Some(b"not the payload".to_vec()))
            }
            Make::NextBadSignature => {
                let e = self.create(author, head);
                let mut bytes = e.header_bytes().to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x04;
                Entry::decode(&bytes, e.payload().map(<[u8]>::to_vec)).unwrap()
            }
            Make::Duplicate(pick) => self.held(author, *pick)?,
            Make::Fork(pick) => {
                let held = self.held(author, *pick)?;
                let prev = match held.seq().prev().filter(|s| s.get() > 0) {
                    None => None,
                    Some(s) => Some(self.at(author, s)?.head()),
                };
                self.create(author, prev)
            }
            Make::Gap => {
                let skipped = self.create(author, head);
                self.create(author, Some(skipped.head()))
            }
        };
        Some(entry)
    }
}

struct Harness {
    dir: tempfile::TempDir,
    sled: Option<SledStore>,
    model: MemoryStore,
    reference: Reference,
    salt: u64,
    /// Each store's change mark (sled, model), taken before the operation under test.
    marks: [Option<ChangeMark>; 2],
}

/// What a reader of one feed could see change.
type Seen = (
    Option<scrip_feed::Head>,
    Option<ForkProof>,
    scrip_feed::Result<PayloadPolicy>,
);

fn seen(store: &dyn Store, id: &FeedId) -> Seen {
    (
        store.head(id).unwrap(),
        store.fork_proof(id).unwrap(),
        store.payload_policy(id),
    )
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let sled = common::open_sled(dir.path()).unwrap();
        Harness {
            dir,
            sled: Some(sled),
            model: MemoryStore::new(),
            reference: Reference::default(),
            salt: 0,
            marks: [None, None],
        }
    }

    fn sled(&self) -> &SledStore {
        self.sled.as_ref().unwrap()
    }

    fn ingest(&mut self, specs: &[(u8, Make)]) {
        let mut maker = Maker {
            model: &self.model,
            pending: vec![Vec::new(); AUTHORS as usize],
            salt: self.salt,
        };
        let entries: Vec<Entry> = specs
            .iter()
            .filter_map(|(a, m)| maker.make(*a, m))
            .collect();
        self.salt = maker.salt;
        self.reference.ingest(&entries);
        let expected = self.model.ingest(entries.clone()).unwrap();
        let got = self.sled().ingest(entries).unwrap();
        assert_eq!(got, expected);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(author, how) => self.ingest(&[(*author, how.clone())]),
            Op::Ingest(specs) => self.ingest(specs),
            Op::Publish(author) => {
                self.salt += 1;
                let payload = common::post(&format!("published {}", self.salt));
                let at = Timestamp::from_millis(self.salt);
                let expected = self.model.publish(&keypair(*author), at, payload.clone());
                let got = self.sled().publish(&keypair(*author), at, payload);
                if let Ok(entry) = &got {
                    self.reference.offer(entry);
                }
                assert_eq!(got, expected);
            }
            Op::Policy(author, drop) => {
                let policy = if *drop {
                    PayloadPolicy::Drop
                } else {
                    PayloadPolicy::Keep
                };
                let id = keypair(*author).id();
                self.reference.set_policy(id, *drop);
                self.model.set_payload_policy(&id, policy).unwrap();
                self.sled().set_payload_policy(&id, policy).unwrap();
            }
            Op::GossipForkProof(author, pick) => {
                let mut maker = Maker {
                    model: &self.model,
                    pending: vec![Vec::new(); AUTHORS as usize],
                    salt: self.salt,
                };
                let (Some(held), Some(rival)) = (
                    maker.make(*author, &Make::Duplicate(*pick)),
                    maker.make(*author, &Make::Fork(*pick)),
                ) else {
                    return;
                };
                self.salt = maker.salt;
                let proof = ForkProof::new(&held, &rival).unwrap();
                self.reference.fork_proof(keypair(*author).id());
                assert_eq!(
                    self.sled().add_fork_proof(&proof),
                    self.model.add_fork_proof(&proof)
                );
            }
            Op::Attach {
                author,
                pick,
                kind,
                size,
            } => {
                let id = keypair(*author).id();
                let held = self.model.head(&id).unwrap().map_or(0, |h| h.seq.get());
                // One past the head half the time: an entry nobody holds.
                let seq = u64::from(*pick) % (held + 1) + 1;
                let entry = self
                    .model
                    .get(&id, Seq::new(seq))
                    .unwrap()
                    .map_or_else(|| EntryId::of_header(&[*pick]), |e| e.id());
                let kinds: Vec<&str> = KINDS
                    .get(usize::from(*kind))
                    .map_or(KINDS.to_vec(), |k| vec![*k]);
                let bytes = vec![*pick; usize::from(*size)];
                let want: Vec<Result<bool, ()>> = kinds
                    .iter()
                    .map(|kind| self.reference.attach(entry, kind, &bytes))
                    .collect();
                let items = || {
                    kinds
                        .iter()
                        .map(|kind| Attachment {
                            entry,
                            kind: (*kind).to_owned(),
                            bytes: bytes.clone(),
                        })
                        .collect::<Vec<_>>()
                };
                for (name, store) in [("sled", self.sled() as &dyn Store), ("memory", &self.model)]
                {
                    let got: Vec<Result<bool, ()>> = store
                        .put_attachments(items())
                        .unwrap()
                        .iter()
                        .map(|r| r.as_ref().map(|kept| *kept).map_err(|_| ()))
                        .collect();
                    assert_eq!(
                        got,
                        want,
                        "{name}: attaching {kinds:?} ({} bytes)",
                        bytes.len()
                    );
                }
            }
            Op::Reopen => {
                self.sled = None;
                self.sled = Some(common::open_sled(self.dir.path()).unwrap());
            }
        }
    }

    /// Applies `op`, checking that each store's change record names every feed it changed.
    fn apply_and_check_changes(&mut self, op: &Op) {
        let ids: Vec<FeedId> = (0..AUTHORS).map(|a| keypair(a).id()).collect();
        let before: Vec<Vec<Seen>> = [self.sled() as &dyn Store, &self.model]
            .iter()
            .map(|store| ids.iter().map(|id| seen(*store, id)).collect())
            .collect();
        self.apply(op);
        let stores = [self.sled() as &dyn Store, &self.model];
        let mut marks = self.marks;
        for (i, store) in stores.iter().enumerate() {
            let (mark, changes) = store.changes_since(marks[i]);
            marks[i] = Some(mark);
            let Changes::Feeds(changed) = changes else {
                continue;
            };
            for (id, was) in ids.iter().zip(&before[i]) {
                if seen(*store, id) != *was {
                    assert!(
                        changed.contains(id),
                        "store {i}: {id} changed by {op:?} but is not named"
                    );
                }
            }
        }
        self.marks = marks;
    }

    fn assert_same(&self) {
        let (sled, model) = (self.sled(), &self.model);
        self.reference.check(sled, "sled");
        self.reference.check(model, "memory");
        assert_eq!(sled.authors().unwrap(), model.authors().unwrap());
        assert_eq!(sled.fork_proofs().unwrap(), model.fork_proofs().unwrap());
        for author in 0..AUTHORS {
            let id = keypair(author).id();
            assert_eq!(sled.head(&id).unwrap(), model.head(&id).unwrap());
            assert_eq!(sled.payload_policy(&id), model.payload_policy(&id));
            assert_eq!(
                sled.fork_proof(&id).unwrap(),
                model.fork_proof(&id).unwrap()
            );
            let all = model.range(&id, Seq::FIRST, usize::MAX).unwrap();
            assert_eq!(sled.range(&id, Seq::FIRST, usize::MAX).unwrap(), all);
            for entry in &all {
                assert_eq!(sled.get_by_id(&entry.id()).unwrap().as_ref(), Some(entry));
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("SCRIP_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// A fixed seed in CI (0), `PROPTEST_RNG_SEED` to replay or explore another; printed.
fn rng_seed() -> proptest::test_runner::RngSeed {
    proptest::test_runner::RngSeed::Fixed(scrip_feed::bench::proptest_seed())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), rng_seed: rng_seed(), ..ProptestConfig::default() })]

    #[test]
    fn sled_store_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.apply_and_check_changes(op);
            harness.assert_same();
        }
        harness.apply(&Op::Reopen);
        harness.assert_same();
        harness.sled().verify_integrity().unwrap();
    }
}
