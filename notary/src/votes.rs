//! Durable vote records: a notary persists (and fsyncs) every vote before it signs it, and
//! never records a second entry for a slot.
//!
//! Layout (one sled database under scrip's [`DurableDb`] discipline, format marker
//! `scrip-votes/1`): key `V` ‖ wallet (32) ‖ seq (u64 BE) → entry id (32) ‖ round (u32 BE).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use scrip_feed::store::durable::{CommitStep, DurableDb};
use scrip_feed::{EntryId, FeedId, Seq};
use scrip_ledger::VoteSubject;

use crate::error::{Error, Result};

/// The vote store's format marker.
pub const VOTES_FORMAT: &[u8] = b"scrip-votes/1";
const TAG_VOTE: u8 = b'V';

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
    /// Durably records `votes` in one commit. Refuses (and records nothing) if a slot already
    /// holds another entry.
    fn record(&self, votes: &[VoteSubject], hook: &StepHook) -> Result<()>;
    /// Every recorded vote.
    fn load(&self) -> Result<Vec<VoteSubject>>;
}

fn key(wallet: &FeedId, seq: Seq) -> [u8; 41] {
    let mut key = [0u8; 41];
    key[0] = TAG_VOTE;
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
    fn record(&self, votes: &[VoteSubject], hook: &StepHook) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        hook(Step::BeforeWrite);
        let db = self.durable.db();
        let mut batch = sled::Batch::default();
        for vote in votes {
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
}

/// Votes in memory (tests and simulations).
#[derive(Debug, Default)]
pub struct MemoryVoteStore {
    votes: Mutex<BTreeMap<(FeedId, Seq), (EntryId, u32)>>,
}

impl MemoryVoteStore {
    /// An empty store.
    pub fn new() -> MemoryVoteStore {
        MemoryVoteStore::default()
    }
}

impl VoteStore for MemoryVoteStore {
    fn record(&self, votes: &[VoteSubject], hook: &StepHook) -> Result<()> {
        let mut map = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        hook(Step::BeforeWrite);
        for vote in votes {
            if let Some(existing) = map.get(&(vote.wallet, vote.seq))
                && *existing != (vote.entry, vote.round)
            {
                return Err(Error::SlotTaken {
                    wallet: vote.wallet,
                    seq: vote.seq.get(),
                });
            }
        }
        for vote in votes {
            map.insert((vote.wallet, vote.seq), (vote.entry, vote.round));
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
            .map(|((wallet, seq), (entry, round))| VoteSubject {
                wallet: *wallet,
                seq: *seq,
                entry: *entry,
                round: *round,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    fn vote(entry: &[u8], seq: u64) -> VoteSubject {
        VoteSubject {
            wallet: Keypair::from_seed(&[1; 32]).id(),
            seq: Seq::new(seq),
            entry: EntryId::of_header(entry),
            round: 0,
        }
    }

    #[test]
    fn votes_survive_reopen_and_slots_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledVoteStore::open(dir.path()).unwrap();
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
        let store = SledVoteStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), vec![vote(b"a", 1), vote(b"b", 2)]);
    }

    #[test]
    fn memory_store_behaves_alike() {
        let store = MemoryVoteStore::new();
        store.record(&[vote(b"a", 1)], &|_| {}).unwrap();
        assert!(store.record(&[vote(b"x", 1)], &|_| {}).is_err());
        assert_eq!(store.load().unwrap(), vec![vote(b"a", 1)]);
    }
}
