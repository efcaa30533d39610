//! Durable vote records: a notary persists (and fsyncs) every vote before it signs it, and
//! never records a second entry for a slot. The entry voted for is kept with its vote, so that
//! a wallet restored without its pending proposal can finish certifying exactly those bytes
//! (the notary's feed store holds certified entries only).
//!
//! Fate votes are recorded the same way: the fate a notary signed for an order, before it signs
//! it, never overwritten by an excluding one (`docs/protocol/notary.md` §3a).
//!
//! Layout (one sled database under scrip's [`DurableDb`] discipline, format marker
//! `scrip-votes/1`), a batch's keys written in one atomic commit:
//! - `V` ‖ wallet (32) ‖ seq (u64 BE) → entry id (32) ‖ round (u32 BE);
//! - `E` ‖ wallet (32) ‖ seq (u64 BE) → `postcard((header: bytes, payload: bytes))`;
//! - `F` ‖ order id (32) → fate (u8: 0 claimed, 1 cancelled, 2 expired) ‖ order wallet (32).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use scrip_feed::store::durable::{CommitStep, DurableDb};
use scrip_feed::{Entry, EntryBytes, EntryId, FeedId, Seq, codec};
use scrip_ledger::{Fate, FateSubject, VoteSubject};

use crate::error::{Error, Result};

mod log;
pub use log::{LogVoteStore, MAX_FRAME_BYTES, MIGRATED_DIR, VOTE_LOG_MAGIC};

/// The vote store's format marker.
pub const VOTES_FORMAT: &[u8] = b"scrip-votes/1";
const TAG_VOTE: u8 = b'V';
const TAG_ENTRY: u8 = b'E';
const TAG_FATE: u8 = b'F';

/// A vote to record: for a wallet entry (with the entry), or for an order's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoteRecord {
    /// A vote for a wallet's entry at a slot.
    Entry {
        /// What the vote says.
        subject: VoteSubject,
        /// The entry voted for (its header and payload).
        entry: Box<Entry>,
    },
    /// A fate vote.
    Fate(FateSubject),
}

impl VoteRecord {
    /// The record of a vote for `entry`.
    pub fn new(subject: VoteSubject, entry: Entry) -> VoteRecord {
        VoteRecord::Entry {
            subject,
            entry: Box::new(entry),
        }
    }
}

fn fate_key(order: &EntryId) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = TAG_FATE;
    key[1..].copy_from_slice(order.as_bytes());
    key
}

fn fate_byte(fate: Fate) -> u8 {
    match fate {
        Fate::Claimed => 0,
        Fate::Cancelled => 1,
        Fate::Expired => 2,
    }
}

fn fate_value(subject: &FateSubject) -> [u8; 33] {
    let mut value = [0u8; 33];
    value[0] = fate_byte(subject.fate);
    value[1..].copy_from_slice(subject.wallet.as_bytes());
    value
}

fn decode_fate(key: &[u8], value: &[u8]) -> Option<FateSubject> {
    let order: [u8; 32] = key.get(1..33)?.try_into().ok()?;
    let fate = match value.first()? {
        0 => Fate::Claimed,
        1 => Fate::Cancelled,
        2 => Fate::Expired,
        _ => return None,
    };
    let wallet: [u8; 32] = value.get(1..33)?.try_into().ok()?;
    Some(FateSubject {
        wallet: FeedId::from_bytes(wallet),
        order: EntryId::from_bytes(order),
        fate,
    })
}

fn entry_bytes(entry: &Entry) -> Result<Vec<u8>> {
    Ok(codec::encode("voted entry", &EntryBytes::of(entry))?)
}

fn entry_from_bytes(bytes: &[u8]) -> Result<Entry> {
    let wire: EntryBytes = codec::decode_canonical("voted entry", bytes)?;
    Ok(wire.decode()?)
}

/// Where a vote is on its way to the client: the crash-test fail points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Decided, nothing written yet.
    BeforeWrite,
    /// Written in the store's memory, not yet flushed.
    Written,
    /// Flushed (durable), not yet signed or sent.
    Flushed,
}

/// Observes the steps (tests pause a child process there and kill it).
pub type StepHook = dyn Fn(Step) + Send + Sync;

/// Where votes are kept.
pub trait VoteStore: Send + Sync {
    /// Durably records `votes` (entry votes with their entries, fate votes) in one commit.
    /// Refuses (and records nothing) if a slot already holds another entry, or an order a fate
    /// that excludes the one recorded. A fate compatible with the one held is not written
    /// again (the first stays).
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> Result<()>;
    /// Every recorded entry vote.
    fn load(&self) -> Result<Vec<VoteSubject>>;
    /// Every recorded fate (the first signed for each order).
    fn load_fates(&self) -> Result<Vec<FateSubject>>;
    /// The entry voted for at (wallet, seq), if any.
    fn voted_entry(&self, wallet: &FeedId, seq: Seq) -> Result<Option<Entry>>;
}

fn key(wallet: &FeedId, seq: Seq) -> [u8; 41] {
    tagged_key(TAG_VOTE, wallet, seq)
}

fn tagged_key(tag: u8, wallet: &FeedId, seq: Seq) -> [u8; 41] {
    let mut key = [0u8; 41];
    key[0] = tag;
    key[1..33].copy_from_slice(wallet.as_bytes());
    key[33..].copy_from_slice(&seq.get().to_be_bytes());
    key
}

fn value(vote: &VoteSubject) -> [u8; 36] {
    let mut value = [0u8; 36];
    value[..32].copy_from_slice(vote.entry.as_bytes());
    value[32..].copy_from_slice(&vote.round.to_be_bytes());
    value
}

fn decode(key: &[u8], value: &[u8]) -> Option<VoteSubject> {
    let wallet: [u8; 32] = key.get(1..33)?.try_into().ok()?;
    let seq: [u8; 8] = key.get(33..41)?.try_into().ok()?;
    let entry: [u8; 32] = value.get(..32)?.try_into().ok()?;
    let round: [u8; 4] = value.get(32..36)?.try_into().ok()?;
    Some(VoteSubject {
        wallet: FeedId::from_bytes(wallet),
        seq: Seq::new(u64::from_be_bytes(seq)),
        entry: EntryId::from_bytes(entry),
        round: u32::from_be_bytes(round),
    })
}

/// Votes in sled, fsynced before any is acknowledged: the previous format (`scrip-votes/1`),
/// kept to read a notary's votes into a [`LogVoteStore`] (which does so on open).
#[derive(Debug)]
pub struct SledVoteStore {
    durable: DurableDb,
    writer: Mutex<()>,
}

impl SledVoteStore {
    /// Opens (creating if needed) the vote store at `path`.
    pub fn open(path: &Path) -> Result<SledVoteStore> {
        Ok(SledVoteStore {
            durable: DurableDb::open(path, 16 * 1024 * 1024, VOTES_FORMAT)?,
            writer: Mutex::new(()),
        })
    }
}

impl VoteStore for SledVoteStore {
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        hook(Step::BeforeWrite);
        let db = self.durable.db();
        let mut batch = scrip_feed::store::durable::Writes::default();
        for record in votes {
            let (vote, entry) = match record {
                VoteRecord::Entry { subject, entry } => (subject, entry),
                VoteRecord::Fate(fate) => {
                    let key = fate_key(&fate.order);
                    if let Some(existing) = db.get(key).map_err(|e| self.durable.engine(e))? {
                        match decode_fate(&key, &existing) {
                            Some(held) if held.fate.excludes(fate.fate) => {
                                return Err(Error::FateTaken { order: fate.order });
                            }
                            Some(_) => continue,
                            None => {
                                return Err(Error::Feed(
                                    self.durable.corrupt("a fate record is damaged"),
                                ));
                            }
                        }
                    }
                    batch.insert(&key[..], &fate_value(fate)[..]);
                    continue;
                }
            };
            let key = key(&vote.wallet, vote.seq);
            if let Some(existing) = db.get(key).map_err(|e| self.durable.engine(e))? {
                if existing.as_ref() != value(vote) {
                    return Err(Error::SlotTaken {
                        wallet: vote.wallet,
                        seq: vote.seq.get(),
                    });
                }
                continue;
            }
            batch.insert(&key[..], &value(vote)[..]);
            batch.insert(
                &tagged_key(TAG_ENTRY, &vote.wallet, vote.seq)[..],
                entry_bytes(entry)?,
            );
        }
        self.durable.commit_observed(batch, &|step| match step {
            CommitStep::Written => hook(Step::Written),
            CommitStep::Flushed => hook(Step::Flushed),
        })?;
        Ok(())
    }

    fn load(&self) -> Result<Vec<VoteSubject>> {
        let db = self.durable.db();
        db.scan_prefix([TAG_VOTE])
            .map(|item| {
                let (key, value) = item.map_err(|e| self.durable.engine(e))?;
                decode(&key, &value)
                    .ok_or_else(|| Error::Feed(self.durable.corrupt("a vote record is damaged")))
            })
            .collect()
    }

    fn load_fates(&self) -> Result<Vec<FateSubject>> {
        let db = self.durable.db();
        db.scan_prefix([TAG_FATE])
            .map(|item| {
                let (key, value) = item.map_err(|e| self.durable.engine(e))?;
                decode_fate(&key, &value)
                    .ok_or_else(|| Error::Feed(self.durable.corrupt("a fate record is damaged")))
            })
            .collect()
    }

    fn voted_entry(&self, wallet: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        let bytes = self
            .durable
            .db()
            .get(tagged_key(TAG_ENTRY, wallet, seq))
            .map_err(|e| self.durable.engine(e))?;
        bytes
            .map(|b| {
                entry_from_bytes(&b).map_err(|e| {
                    Error::Feed(
                        self.durable
                            .corrupt(format!("the entry voted for at {wallet} #{seq}: {e}")),
                    )
                })
            })
            .transpose()
    }
}

/// A vote held by [`MemoryVoteStore`]: entry id, round, entry.
type MemoryVote = (EntryId, u32, Entry);

/// Votes in memory (tests and simulations).
#[derive(Debug, Default)]
pub struct MemoryVoteStore {
    votes: Mutex<BTreeMap<(FeedId, Seq), MemoryVote>>,
    fates: Mutex<BTreeMap<EntryId, FateSubject>>,
}

impl MemoryVoteStore {
    /// An empty store.
    pub fn new() -> MemoryVoteStore {
        MemoryVoteStore::default()
    }
}

impl VoteStore for MemoryVoteStore {
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> Result<()> {
        let mut map = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        let mut fates = self.fates.lock().unwrap_or_else(|p| p.into_inner());
        hook(Step::BeforeWrite);
        for record in votes {
            match record {
                VoteRecord::Entry { subject: vote, .. } => {
                    if let Some((entry, round, _)) = map.get(&(vote.wallet, vote.seq))
                        && (*entry, *round) != (vote.entry, vote.round)
                    {
                        return Err(Error::SlotTaken {
                            wallet: vote.wallet,
                            seq: vote.seq.get(),
                        });
                    }
                }
                VoteRecord::Fate(fate) => {
                    if fates
                        .get(&fate.order)
                        .is_some_and(|held| held.fate.excludes(fate.fate))
                    {
                        return Err(Error::FateTaken { order: fate.order });
                    }
                }
            }
        }
        for record in votes {
            match record {
                VoteRecord::Entry {
                    subject: vote,
                    entry,
                } => {
                    map.insert(
                        (vote.wallet, vote.seq),
                        (vote.entry, vote.round, (**entry).clone()),
                    );
                }
                VoteRecord::Fate(fate) => {
                    fates.entry(fate.order).or_insert(*fate);
                }
            }
        }
        hook(Step::Written);
        hook(Step::Flushed);
        Ok(())
    }

    fn load(&self) -> Result<Vec<VoteSubject>> {
        Ok(self
            .votes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((wallet, seq), (entry, round, _))| VoteSubject {
                wallet: *wallet,
                seq: *seq,
                entry: *entry,
                round: *round,
            })
            .collect())
    }

    fn load_fates(&self) -> Result<Vec<FateSubject>> {
        Ok(self
            .fates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .copied()
            .collect())
    }

    fn voted_entry(&self, wallet: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        Ok(self
            .votes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(*wallet, seq))
            .map(|(_, _, entry)| entry.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::{Keypair, Timestamp};

    fn vote(text: &[u8], seq: u64) -> VoteRecord {
        let key = Keypair::from_seed(&[1; 32]);
        let entry = Entry::create(&key, None, Timestamp::from_millis(seq), text.to_vec()).unwrap();
        VoteRecord::Entry {
            subject: VoteSubject {
                wallet: key.id(),
                seq: Seq::new(seq),
                entry: entry.id(),
                round: 0,
            },
            entry: Box::new(entry),
        }
    }

    fn exercise(store: &dyn VoteStore) {
        store
            .record(&[vote(b"a", 1), vote(b"b", 2)], &|_| {})
            .unwrap();
        // The same vote again is fine; another entry for a voted slot is refused.
        store.record(&[vote(b"a", 1)], &|_| {}).unwrap();
        assert!(matches!(
            store.record(&[vote(b"x", 1)], &|_| {}),
            Err(Error::SlotTaken { seq: 1, .. })
        ));
    }

    fn subject(record: &VoteRecord) -> VoteSubject {
        match record {
            VoteRecord::Entry { subject, .. } => *subject,
            VoteRecord::Fate(_) => unreachable!(),
        }
    }

    fn entry(record: VoteRecord) -> Entry {
        match record {
            VoteRecord::Entry { entry, .. } => *entry,
            VoteRecord::Fate(_) => unreachable!(),
        }
    }

    fn fate(order: &[u8], fate: Fate) -> VoteRecord {
        VoteRecord::Fate(FateSubject {
            wallet: Keypair::from_seed(&[2; 32]).id(),
            order: EntryId::of_header(order),
            fate,
        })
    }

    /// A claim and a void of one order are never both recorded; a second void is compatible
    /// and the first stays.
    fn exercise_fates(store: &dyn VoteStore) {
        store
            .record(
                &[fate(b"o1", Fate::Claimed), fate(b"o2", Fate::Cancelled)],
                &|_| {},
            )
            .unwrap();
        assert!(matches!(
            store.record(&[fate(b"o1", Fate::Expired)], &|_| {}),
            Err(Error::FateTaken { .. })
        ));
        assert!(matches!(
            store.record(&[fate(b"o2", Fate::Claimed)], &|_| {}),
            Err(Error::FateTaken { .. })
        ));
        store
            .record(&[fate(b"o2", Fate::Expired)], &|_| {})
            .unwrap();
    }

    fn check_fates(store: &dyn VoteStore) {
        let mut found: Vec<(EntryId, Fate)> = store
            .load_fates()
            .unwrap()
            .iter()
            .map(|f| (f.order, f.fate))
            .collect();
        found.sort();
        let mut expected = vec![
            (EntryId::of_header(b"o1"), Fate::Claimed),
            (EntryId::of_header(b"o2"), Fate::Cancelled),
        ];
        expected.sort();
        assert_eq!(found, expected);
    }

    fn check(store: &dyn VoteStore) {
        let (a, b) = (vote(b"a", 1), vote(b"b", 2));
        assert_eq!(store.load().unwrap(), vec![subject(&a), subject(&b)]);
        let wallet = subject(&a).wallet;
        assert_eq!(
            store.voted_entry(&wallet, Seq::new(1)).unwrap(),
            Some(entry(a))
        );
        assert_eq!(
            store.voted_entry(&wallet, Seq::new(2)).unwrap(),
            Some(entry(b))
        );
        assert_eq!(store.voted_entry(&wallet, Seq::new(3)).unwrap(), None);
    }

    #[test]
    fn votes_and_their_entries_survive_reopen_and_slots_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledVoteStore::open(dir.path()).unwrap();
            exercise(&store);
            exercise_fates(&store);
            check(&store);
            check_fates(&store);
        }
        let store = SledVoteStore::open(dir.path()).unwrap();
        check(&store);
        check_fates(&store);
    }

    #[test]
    fn the_vote_log_keeps_votes_and_fates_across_reopen_and_never_overwrites_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogVoteStore::open(dir.path()).unwrap();
            exercise(&store);
            exercise_fates(&store);
            check(&store);
            check_fates(&store);
        }
        let store = LogVoteStore::open(dir.path()).unwrap();
        check(&store);
        check_fates(&store);
    }

    #[test]
    fn memory_store_behaves_alike() {
        let store = MemoryVoteStore::new();
        exercise(&store);
        exercise_fates(&store);
        check(&store);
        check_fates(&store);
    }
}
