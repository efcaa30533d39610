//! The entry-id index of the sled store, as a small log-structured merge tree of sorted runs.
//!
//! An index keyed by id needs one key per entry, and sled 0.34 spends ~11 µs per inserted key
//! whatever its size: as much as all other storage work of an entry together. So each commit
//! writes the ids it stores as **one sorted run** (one sled value), and whenever a level holds
//! [`RUNS_PER_LEVEL`] runs they are merged into one run of the next level, inside the same atomic
//! batch. Each id is thus rewritten about log4(n / batch) times as part of a large sequential
//! value, which costs far less than a key of its own. A lookup binary-searches each run, newest
//! first (a few dozen runs at most).
//!
//! Layout: `Mindex` holds the directory (postcard `Vec<RunMeta>`); `X` ‖ number (u64 BE) holds a
//! run: items of [`ITEM_BYTES`] = id (32) ‖ author (32) ‖ seq (u64 BE), sorted by id.

use serde::{Deserialize, Serialize};

use super::durable::Writes;
use crate::codec;
use crate::entry::Seq;
use crate::error::{Error, Result};
use crate::hash::EntryId;
use crate::identity::FeedId;

/// Bytes per index item.
pub(crate) const ITEM_BYTES: usize = 72;
/// Runs a level may hold before they are merged into one run of the next level.
pub(crate) const RUNS_PER_LEVEL: usize = 4;
/// Where the directory is stored.
pub(crate) const DIRECTORY_KEY: &[u8] = b"Mindex";
const RUN_TAG: u8 = b'X';

/// One index item.
pub(crate) type Item = [u8; ITEM_BYTES];

/// Builds the index item locating `id` at (`author`, `seq`).
pub(crate) fn item(id: &EntryId, author: &FeedId, seq: Seq) -> Item {
    let mut item = [0u8; ITEM_BYTES];
    item[..32].copy_from_slice(id.as_bytes());
    item[32..64].copy_from_slice(author.as_bytes());
    item[64..].copy_from_slice(&seq.get().to_be_bytes());
    item
}

fn run_key(number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = RUN_TAG;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

/// A run in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    level: u8,
    number: u64,
    count: u64,
}

/// The index directory: which runs exist.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    runs: Vec<RunMeta>,
}

fn corrupt(detail: &str) -> Error {
    Error::Malformed {
        what: "entry id index",
        detail: detail.into(),
    }
}

impl IdIndex {
    /// Reads the directory.
    pub(crate) fn load(db: &sled::Db) -> Result<IdIndex, IndexError> {
        match db.get(DIRECTORY_KEY)? {
            None => Ok(IdIndex::default()),
            Some(bytes) => Ok(IdIndex {
                runs: codec::decode_canonical("entry id index directory", &bytes)?,
            }),
        }
    }

    /// Finds where `id` is stored, searching the newest runs first.
    pub(crate) fn lookup(
        &self,
        db: &sled::Db,
        id: &EntryId,
    ) -> Result<Option<(FeedId, Seq)>, IndexError> {
        for run in self.runs.iter().rev() {
            let bytes = db
                .get(run_key(run.number))?
                .ok_or_else(|| corrupt("a run in the directory is missing"))?;
            if bytes.len() % ITEM_BYTES != 0 {
                return Err(corrupt("a run has a partial item").into());
            }
            let items = bytes.len() / ITEM_BYTES;
            let at = |i: usize| &bytes[i * ITEM_BYTES..(i + 1) * ITEM_BYTES];
            let (mut low, mut high) = (0usize, items);
            while low < high {
                let mid = low + (high - low) / 2;
                match at(mid)[..32].cmp(id.as_bytes()) {
                    std::cmp::Ordering::Less => low = mid + 1,
                    std::cmp::Ordering::Greater => high = mid,
                    std::cmp::Ordering::Equal => {
                        let item = at(mid);
                        let author =
                            <[u8; 32]>::try_from(&item[32..64]).map_err(|_| corrupt("bad item"))?;
                        let seq =
                            <[u8; 8]>::try_from(&item[64..72]).map_err(|_| corrupt("bad item"))?;
                        return Ok(Some((
                            FeedId::from_bytes(author),
                            Seq::new(u64::from_be_bytes(seq)),
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Adds `items` as a new run, merges full levels, and puts every resulting write into
    /// `batch`. Returns the directory to use once the batch is applied.
    pub(crate) fn plan_commit(
        &self,
        db: &sled::Db,
        mut items: Vec<Item>,
        batch: &mut Writes,
    ) -> Result<IdIndex, IndexError> {
        if items.is_empty() {
            return Ok(self.clone());
        }
        let mut runs = self.runs.clone();
        let mut next = runs.iter().map(|r| r.number).max().map_or(0, |n| n + 1);
        // Runs created by this commit, not yet in sled.
        let mut fresh: Vec<(u64, Vec<Item>)> = Vec::new();
        // Merged runs are removed only after the new directory is written.
        let mut merged_away: Vec<[u8; 9]> = Vec::new();
        items.sort_unstable();
        runs.push(RunMeta {
            level: 0,
            number: next,
            count: items.len() as u64,
        });
        fresh.push((next, items));
        next += 1;

        while let Some(level) = (0..=u8::MAX)
            .find(|&level| runs.iter().filter(|r| r.level == level).count() >= RUNS_PER_LEVEL)
        {
            let (merging, kept): (Vec<RunMeta>, Vec<RunMeta>) =
                runs.into_iter().partition(|r| r.level == level);
            runs = kept;
            let mut merged: Vec<Item> = Vec::new();
            for run in &merging {
                if let Some(i) = fresh.iter().position(|(n, _)| *n == run.number) {
                    merged.extend(fresh.swap_remove(i).1);
                } else {
                    let key = run_key(run.number);
                    let bytes = db
                        .get(key)?
                        .ok_or_else(|| corrupt("a run in the directory is missing"))?;
                    if bytes.len() % ITEM_BYTES != 0 {
                        return Err(corrupt("a run has a partial item").into());
                    }
                    merged.extend(bytes.chunks_exact(ITEM_BYTES).map(|c| {
                        let mut item = [0u8; ITEM_BYTES];
                        item.copy_from_slice(c);
                        item
                    }));
                    merged_away.push(key);
                }
            }
            merged.sort_unstable();
            runs.push(RunMeta {
                level: level.saturating_add(1),
                number: next,
                count: merged.len() as u64,
            });
            fresh.push((next, merged));
            next += 1;
        }

        for (number, items) in fresh {
            batch.insert(&run_key(number)[..], items.concat());
        }
        batch.insert(
            DIRECTORY_KEY,
            codec::encode("entry id index directory", &runs)?,
        );
        for key in merged_away {
            batch.remove(&key[..]);
        }
        Ok(IdIndex { runs })
    }

    /// Number of ids indexed.
    pub(crate) fn len(&self) -> u64 {
        self.runs.iter().map(|r| r.count).sum()
    }
}

/// Errors of the index: sled's or ours.
#[derive(Debug)]
pub(crate) enum IndexError {
    Sled(sled::Error),
    Feed(Error),
}

impl From<sled::Error> for IndexError {
    fn from(err: sled::Error) -> Self {
        IndexError::Sled(err)
    }
}

impl From<Error> for IndexError {
    fn from(err: Error) -> Self {
        IndexError::Feed(err)
    }
}
