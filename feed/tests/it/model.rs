//! Model test: across random operation sequences (appends of valid, duplicate, forking, gapped,
//! badly signed and payload-less entries; batch ingests; payload policy changes; gossiped fork
//! proofs; reopens), the sled store behaves exactly like the in-memory reference store, and each
//! store's record of changed feeds (`Store::changes_since`) names every feed an operation changed.
//!
//! CI runs `SCRIP_MODEL_CASES` cases (default 48); for a long run:
//! `SCRIP_MODEL_CASES=2000 cargo test -p scrip-feed --release --test it model::`.
//! proptest prints the failing sequence, minimised, and records its seed under
//! `proptest-regressions/`.
#![allow(clippy::unwrap_used)]

use crate::common;

use proptest::prelude::*;
use scrip_feed::store::{ChangeMark, Changes};
use scrip_feed::{
    Entry, FeedId, ForkProof, Keypair, MemoryStore, PayloadPolicy, Seq, SledStore, Store, Timestamp,
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
    Reopen,
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
                assert_eq!(got, expected);
            }
            Op::Policy(author, drop) => {
                let policy = if *drop {
                    PayloadPolicy::Drop
                } else {
                    PayloadPolicy::Keep
                };
                let id = keypair(*author).id();
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
                assert_eq!(
                    self.sled().add_fork_proof(&proof),
                    self.model.add_fork_proof(&proof)
                );
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
    use proptest::test_runner::RngSeed;
    let seed = match ProptestConfig::default().rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => 0,
    };
    eprintln!("proptest seed {seed} (PROPTEST_RNG_SEED=<n> for another)");
    RngSeed::Fixed(seed)
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
