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
//! A run is stored in **pages** of at most [`PAGE_ITEMS`] items, one sled value each: sled 0.34
//! keeps values inline in its tree nodes and rewrites a node whole, so a run kept as one value
//! (72 MB for a million ids) made every commit near it cost as much as the run (measured: a
//! one-entry commit took 4 ms in a store of 200,000 entries, against 0.36 ms in one of 10,000).
//! A lookup binary-searches the pages of a run, then the page.
//!
//! Layout: `Mindex` holds the directory (postcard `Vec<RunMeta>`); `X` ‖ number (u64 BE) ‖ page
//! (u32 BE) holds a page of a run: items of [`ITEM_BYTES`] = id (32) ‖ author (32) ‖ seq (u64
//! BE), sorted by id. Runs written by earlier versions are one value under `X` ‖ number; they
//! are read as they are and replaced by paged runs when merged.

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
/// Most items in one page of a run (4,032 bytes).
pub(crate) const PAGE_ITEMS: usize = 56;

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

/// Where earlier versions kept a whole run.
fn whole_run_key(number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = RUN_TAG;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

fn page_key(number: u64, page: usize) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[..9].copy_from_slice(&whole_run_key(number));
    key[9..].copy_from_slice(&u32::try_from(page).unwrap_or(u32::MAX).to_be_bytes());
    key
}

/// The items of stored run bytes (a page or a whole run).
fn items_of(bytes: &[u8]) -> Result<&[u8], IndexError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(ITEM_BYTES) {
        return Err(corrupt("a run has a partial item").into());
    }
    Ok(bytes)
}

/// Binary search of `id` in sorted items.
fn search(items: &[u8], id: &EntryId) -> Result<Option<(FeedId, Seq)>, IndexError> {
    let count = items.len() / ITEM_BYTES;
    let at = |i: usize| &items[i * ITEM_BYTES..(i + 1) * ITEM_BYTES];
    let (mut low, mut high) = (0usize, count);
    while low < high {
        let mid = low + (high - low) / 2;
        match at(mid)[..32].cmp(id.as_bytes()) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => {
                let item = at(mid);
                let author =
                    <[u8; 32]>::try_from(&item[32..64]).map_err(|_| corrupt("bad item"))?;
                let seq = <[u8; 8]>::try_from(&item[64..72]).map_err(|_| corrupt("bad item"))?;
                return Ok(Some((
                    FeedId::from_bytes(author),
                    Seq::new(u64::from_be_bytes(seq)),
                )));
            }
        }
    }
    Ok(None)
}

/// A run in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    level: u8,
    number: u64,
    count: u64,
}

/// How a run is stored.
enum Stored {
    /// In pages (this version).
    Paged {
        /// Page 0, read to find out.
        first: sled::IVec,
        pages: usize,
    },
    /// As one value (earlier versions).
    Whole(sled::IVec),
}

impl RunMeta {
    fn pages(&self) -> usize {
        usize::try_from(self.count)
            .unwrap_or(usize::MAX)
            .div_ceil(PAGE_ITEMS)
    }

    fn stored(&self, db: &sled::Db) -> Result<Stored, IndexError> {
        if let Some(first) = db.get(page_key(self.number, 0))? {
            return Ok(Stored::Paged {
                first,
                pages: self.pages(),
            });
        }
        db.get(whole_run_key(self.number))?
            .map(Stored::Whole)
            .ok_or_else(|| corrupt("a run in the directory is missing").into())
    }

    fn page(&self, db: &sled::Db, page: usize) -> Result<sled::IVec, IndexError> {
        db.get(page_key(self.number, page))?
            .ok_or_else(|| corrupt("a page of a run is missing").into())
    }

    /// Where `id` is, if this run holds it.
    fn find(&self, db: &sled::Db, id: &EntryId) -> Result<Option<(FeedId, Seq)>, IndexError> {
        match self.stored(db)? {
            Stored::Whole(bytes) => search(items_of(&bytes)?, id),
            Stored::Paged { first, pages } => {
                // The last page whose first id is at most `id` holds it, if any does.
                let first_id = |page: &[u8]| -> Result<[u8; 32], IndexError> {
                    let items = items_of(page)?;
                    <[u8; 32]>::try_from(&items[..32]).map_err(|_| corrupt("bad item").into())
                };
                if first_id(&first)?.as_slice() > id.as_bytes().as_slice() {
                    return Ok(None);
                }
                let (mut low, mut high) = (0usize, pages);
                while high - low > 1 {
                    let mid = low + (high - low) / 2;
                    if first_id(&self.page(db, mid)?)?.as_slice() <= id.as_bytes().as_slice() {
                        low = mid;
                    } else {
                        high = mid;
                    }
                }
                let page = if low == 0 { first } else { self.page(db, low)? };
                search(items_of(&page)?, id)
            }
        }
    }

    /// Every item of this run, and the keys that hold them.
    fn read(&self, db: &sled::Db) -> Result<(Vec<Item>, Vec<Vec<u8>>), IndexError> {
        let mut bytes = Vec::new();
        let mut keys = Vec::new();
        match self.stored(db)? {
            Stored::Whole(whole) => {
                bytes.extend_from_slice(items_of(&whole)?);
                keys.push(whole_run_key(self.number).to_vec());
            }
            Stored::Paged { first, pages } => {
                bytes.extend_from_slice(items_of(&first)?);
                keys.push(page_key(self.number, 0).to_vec());
                for page in 1..pages {
                    bytes.extend_from_slice(items_of(&self.page(db, page)?)?);
                    keys.push(page_key(self.number, page).to_vec());
                }
            }
        }
        if bytes.len() / ITEM_BYTES != usize::try_from(self.count).unwrap_or(usize::MAX) {
            return Err(
                corrupt("a run holds another number of items than its directory says").into(),
            );
        }
        let items = bytes
            .chunks_exact(ITEM_BYTES)
            .map(|c| {
                let mut item = [0u8; ITEM_BYTES];
                item.copy_from_slice(c);
                item
            })
            .collect();
        Ok((items, keys))
    }
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
            if let Some(found) = run.find(db, id)? {
                return Ok(Some(found));
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
        let mut merged_away: Vec<Vec<u8>> = Vec::new();
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
                    let (items, keys) = run.read(db)?;
                    merged.extend(items);
                    merged_away.extend(keys);
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
            for (page, items) in items.chunks(PAGE_ITEMS).enumerate() {
                batch.insert(&page_key(number, page)[..], items.concat());
            }
        }
        batch.insert(
            DIRECTORY_KEY,
            codec::encode("entry id index directory", &runs)?,
        );
        for key in merged_away {
            batch.remove(key);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::durable::DurableDb;
    use super::*;

    fn id(n: u64) -> EntryId {
        EntryId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn author(n: u64) -> FeedId {
        FeedId::from_bytes([u8::try_from(n % 7).unwrap(); 32])
    }

    /// Commits `count` ids starting at `from` as one commit.
    fn commit(db: &DurableDb, index: &IdIndex, from: u64, count: u64) -> IdIndex {
        let items = (from..from + count)
            .map(|n| item(&id(n), &author(n), Seq::new(n)))
            .collect();
        let mut writes = Writes::default();
        let next = index.plan_commit(db.db(), items, &mut writes).unwrap();
        db.commit(writes).unwrap();
        next
    }

    fn assert_finds_all(db: &DurableDb, index: &IdIndex, upto: u64) {
        for n in 0..upto {
            assert_eq!(
                index.lookup(db.db(), &id(n)).unwrap(),
                Some((author(n), Seq::new(n))),
                "id {n}"
            );
        }
        assert_eq!(index.lookup(db.db(), &id(u64::MAX)).unwrap(), None);
        assert_eq!(index.len(), upto);
    }

    #[test]
    fn every_id_is_found_across_merges_and_no_stored_value_exceeds_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let db = DurableDb::open(dir.path(), 1 << 22, b"t").unwrap();
        let mut index = IdIndex::default();
        let mut next = 0;
        for round in 0..400u64 {
            // Mostly one id per commit (a wallet, a notary), now and then a big batch.
            let count = if round % 97 == 0 { 700 } else { 1 + round % 3 };
            index = commit(&db, &index, next, count);
            next += count;
        }
        assert_finds_all(&db, &index, next);
        for item in db.db().scan_prefix([RUN_TAG]) {
            let (key, value) = item.unwrap();
            assert_eq!(key.len(), 13);
            assert!(value.len() <= PAGE_ITEMS * ITEM_BYTES);
        }
        // Merged runs left nothing behind.
        let pages: usize = index.runs.iter().map(RunMeta::pages).sum();
        assert_eq!(db.db().scan_prefix([RUN_TAG]).count(), pages);
    }

    /// A store written by an earlier version keeps each run as one value: it is read as it is,
    /// and replaced by pages when merged.
    #[test]
    fn runs_kept_whole_by_earlier_versions_are_read_and_paged_when_merged() {
        let dir = tempfile::tempdir().unwrap();
        let db = DurableDb::open(dir.path(), 1 << 22, b"t").unwrap();
        let mut whole: Vec<Item> = (0..300)
            .map(|n| item(&id(n), &author(n), Seq::new(n)))
            .collect();
        whole.sort_unstable();
        let index = IdIndex {
            runs: vec![RunMeta {
                level: 0,
                number: 0,
                count: 300,
            }],
        };
        let mut writes = Writes::default();
        writes.insert(&whole_run_key(0)[..], whole.concat());
        writes.insert(
            DIRECTORY_KEY,
            codec::encode("directory", &index.runs).unwrap(),
        );
        db.commit(writes).unwrap();
        let index = IdIndex::load(db.db()).unwrap();
        assert_finds_all(&db, &index, 300);
        // Three more level-0 runs merge the whole one away.
        let mut index = index;
        for n in 300..303 {
            index = commit(&db, &index, n, 1);
        }
        assert_eq!(db.db().get(whole_run_key(0)).unwrap(), None);
        assert_finds_all(&db, &index, 303);
    }
}
