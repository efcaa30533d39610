//! Durable vote records: a notary persists (and fsyncs) every vote before it signs it, and
//! never records a second entry for a slot. The entry voted for is kept with its vote, so that
//! a wallet restored without its pending proposal can finish certifying exactly those bytes
//! (the notary's feed store holds certified entries only).
//!
//! Layout (one sled database under scrip's [`DurableDb`] discipline, format marker
//! `scrip-votes/1`), both keys written in the same atomic batch:
//! - `V` ‖ wallet (32) ‖ seq (u64 BE) → entry id (32) ‖ round (u32 BE);
//! - `E` ‖ wallet (32) ‖ seq (u64 BE) → `postcard((header: bytes, payload: bytes))`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use scrip_feed::store::durable::{CommitStep, DurableDb};
use scrip_feed::{Entry, EntryBytes, EntryId, FeedId, Seq, codec};
use scrip_ledger::VoteSubject;

use crate::error::{Error, Result};

/// The vote store's format marker.
pub const VOTES_FORMAT: &[u8] = b"scrip-votes/1";
const TAG_VOTE: u8 = b'V';
const TAG_ENTRY: u8 = b'E';

/// A vote to record, with the entry it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    /// What the vote says.
    pub subject: VoteSubject,
    /// The entry voted for (its header and payload).
    pub entry: Entry,
}

impl VoteRecord {
    /// The record of a vote for `entry`.
    pub fn new(subject: VoteSubject, entry: Entry) -> VoteRecord {
        VoteRecord { subject, entry }
    }
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
    /// Durably records `votes` (with their entries) in one commit. Refuses (and records
    /// nothing) if a slot already holds another entry.
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> Result<()>;
    /// Every recorded vote.
    fn load(&self) -> Result<Vec<VoteSubject>>;
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

/// Votes in sled, fsynced before any is acknowledged.
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
        for VoteRecord {
            subject: vote,
            entry,
        } in votes
        {
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
        hook(Step::BeforeWrite);
        for VoteRecord { subject: vote, .. } in votes {
            if let Some((entry, round, _)) = map.get(&(vote.wallet, vote.seq))
                && (*entry, *round) != (vote.entry, vote.round)
            {
                return Err(Error::SlotTaken {
                    wallet: vote.wallet,
                    seq: vote.seq.get(),
                });
            }
        }
        for VoteRecord {
            subject: vote,
            entry,
        } in votes
        {
            map.insert(
                (vote.wallet, vote.seq),
                (vote.entry, vote.round, entry.clone()),
            );
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
        VoteRecord {
            subject: VoteSubject {
                wallet: key.id(),
                seq: Seq::new(seq),
                entry: entry.id(),
                round: 0,
            },
            entry,
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

    fn check(store: &dyn VoteStore) {
        let (a, b) = (vote(b"a", 1), vote(b"b", 2));
        assert_eq!(store.load().unwrap(), vec![a.subject, b.subject]);
        let wallet = a.subject.wallet;
        assert_eq!(
            store.voted_entry(&wallet, Seq::new(1)).unwrap(),
            Some(a.entry)
        );
        assert_eq!(
            store.voted_entry(&wallet, Seq::new(2)).unwrap(),
            Some(b.entry)
        );
        assert_eq!(store.voted_entry(&wallet, Seq::new(3)).unwrap(), None);
    }

    #[test]
    fn votes_and_their_entries_survive_reopen_and_slots_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledVoteStore::open(dir.path()).unwrap();
            exercise(&store);
            check(&store);
        }
        check(&SledVoteStore::open(dir.path()).unwrap());
    }

    #[test]
    fn memory_store_behaves_alike() {
        let store = MemoryVoteStore::new();
        exercise(&store);
        check(&store);
    }
}
