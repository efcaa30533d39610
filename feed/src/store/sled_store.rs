//! The durable store, on sled 0.34.
//!
//! One sled tree holds everything, so that each call's writes go into one atomic commit (a redo
//! journal, see [`super::durable`]), followed by one `flush` (fsync) before the call returns.
//! Readers see a feed up to its head, which a commit writes last. Keys (big-endian numbers sort
//! numerically):
//!
//! | key | value |
//! |---|---|
//! | `Mformat` | store format version ([`STORE_FORMAT_VERSION`]) |
//! | `Mcommits` | number of commits (u64 BE), written last in every commit |
//! | `Mlast` | the redo journal of the last journaled commit |
//! | `Mindex` | the id index directory ([`super::id_index`]) |
//! | `H` author(32) | head: seq (u64 BE) ‖ entry id (32) |
//! | `C` author(32) first seq(8 BE) | a chunk of consecutive entries, headers and payloads ([`super::chunk`]) |
//! | `X` run number(8 BE) page(4 BE) | a page of a sorted run of the id index ([`super::id_index`]) |
//! | `F` author(32) | fork proof (canonical encoding) |
//! | `D` author(32) | empty: this author's payloads are dropped |
//! | `A` entry id(32) kind | an attachment |
//! | `T` author(32) | empty: some entry of this author has an attachment (written with the first; format 2) |
//!
//! sled 0.34 spends ~11 µs per inserted key whatever the value's size (about a quarter of an
//! ed25519 verify on the target machine), so entries are stored in chunks and ids in sorted runs:
//! a batch of thousands of entries costs tens of inserts, not thousands.
//!
//! sled 0.34 recovers its log up to the first record whose checksum fails and silently drops the
//! rest, so on its own it would turn damage into quiet loss of acknowledged data. After every
//! flush we therefore also write the commit count to a small file beside sled's
//! ([`WATERMARK_FILE`]); on open, a store holding fewer commits than the watermark is reported as
//! [`Error::Corrupt`]. The watermark is written (not fsynced) after sled's fsync, so it is never
//! ahead of what sled made durable: it catches every loss after a process crash, and after power
//! loss catches all but the last commits.
//!
//! Every stored header is self-verifying (its id is its hash, and it carries its signature), so
//! [`SledStore::verify_integrity`] can re-check the whole store from its own bytes.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use super::changes::{ChangeLog, ChangeMark, Changes};
use super::chunk::{Chunk, ChunkWriter};
use super::durable::{DurableDb, Writes};
use super::id_index::{self, IdIndex, IndexError};
use super::plan::{Plan, Tables, VerifiedBatch, Write, plan_ingest};
use super::values::{VALUE_LOG_MIN_BYTES, ValueLog, ValueRef};
use super::{Attachment, IngestReport, PayloadPolicy, Store, check_attachment};
use crate::entry::{Entry, Head, Seq, Timestamp};
use crate::error::{Error, Result};
use crate::fork::ForkProof;
use crate::hash::EntryId;
use crate::identity::{FeedId, Keypair};
use crate::limits::MAX_ATTACHMENTS_PER_ENTRY;
use crate::validate::validate_entry;

/// The on-disk layout version written under `Mformat`: 2 since the `T` keys (every author
/// with an attachment has one). A format 1 store is upgraded when it is opened.
pub const STORE_FORMAT_VERSION: u8 = 2;
/// The layout before the `T` keys, upgraded on open.
const STORE_FORMAT_BEFORE_MARKS: u8 = 1;

const TAG_HEAD: u8 = b'H';
const TAG_CHUNK: u8 = b'C';
const TAG_FORK: u8 = b'F';
const TAG_DROP: u8 = b'D';
const TAG_ATTACHMENT: u8 = b'A';
const TAG_ATTACHED: u8 = b'T';
pub use super::durable::WATERMARK_FILE;

/// Tuning for [`SledStore`].
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// sled's page cache size. Real memory use can be several times this.
    pub cache_capacity_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What [`SledStore::verify_integrity`] checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IntegrityReport {
    /// Feeds checked.
    pub feeds: u64,
    /// Entries checked (signature, link, id index).
    pub entries: u64,
    /// Payloads checked (length and hash).
    pub payloads: u64,
    /// Fork proofs checked.
    pub fork_proofs: u64,
}

/// A [`Store`] on disk, in sled. One process at a time: a second open of the same path fails with
/// [`Error::Locked`].
pub struct SledStore {
    durable: DurableDb,
    /// The same handle as `durable.db()`, for brevity.
    db: sled::Db,
    path: PathBuf,
    /// Serializes read-plan-write cycles (and so commits); reads take no lock.
    writer: Mutex<()>,
    /// The id index directory; write-locked while a commit changes the runs.
    index: RwLock<IdIndex>,
    /// Which feeds were written to, for [`Store::changes_since`].
    changes: ChangeLog,
    /// The chunks of big commits (see [`super::values`]).
    values: ValueLog,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn feed_key(tag: u8, author: &FeedId) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = tag;
    key[1..].copy_from_slice(author.as_bytes());
    key
}

fn chunk_key(author: &FeedId, first: Seq) -> [u8; 41] {
    let mut key = [0u8; 41];
    key[0] = TAG_CHUNK;
    key[1..33].copy_from_slice(author.as_bytes());
    key[33..].copy_from_slice(&first.get().to_be_bytes());
    key
}

fn attachment_prefix(id: &EntryId) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = TAG_ATTACHMENT;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

fn encode_head(head: &Head) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&head.seq.get().to_be_bytes());
    value[8..].copy_from_slice(head.id.as_bytes());
    value
}

fn decode_head(bytes: &[u8]) -> Option<Head> {
    let seq: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let id: [u8; 32] = bytes.get(8..)?.try_into().ok()?;
    Some(Head {
        seq: Seq::new(u64::from_be_bytes(seq)),
        id: EntryId::from_bytes(id),
    })
}

fn author_of_key(key: &[u8]) -> Option<FeedId> {
    let bytes: [u8; 32] = key.get(1..33)?.try_into().ok()?;
    Some(FeedId::from_bytes(bytes))
}

fn seq_of_key(key: &[u8]) -> Option<Seq> {
    let bytes: [u8; 8] = key.get(33..41)?.try_into().ok()?;
    Some(Seq::new(u64::from_be_bytes(bytes)))
}

impl SledStore {
    /// Opens (creating if needed) the store at `path`, checks its format marker, that no
    /// acknowledged commit was lost, and the consistency of every feed head.
    ///
    /// Errors: [`Error::Locked`] if another process has it open; [`Error::Corrupt`] if it is
    /// damaged; [`Error::Io`]/[`Error::Storage`] otherwise.
    pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let (durable, format) = DurableDb::open_formats(
            &path,
            options.cache_capacity_bytes,
            &[&[STORE_FORMAT_VERSION], &[STORE_FORMAT_BEFORE_MARKS]],
        )?;
        let db = durable.db().clone();
        let values = ValueLog::open(&path)?;
        let index = match IdIndex::load(&db) {
            Ok(index) => index,
            Err(err) => return Err(index_error(&shown, err)),
        };
        let store = SledStore {
            durable,
            db,
            path,
            writer: Mutex::new(()),
            index: RwLock::new(index),
            changes: ChangeLog::default(),
            values,
        };
        match catch_unwind(AssertUnwindSafe(|| store.check_heads())) {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Corrupt {
                    path: shown,
                    detail: "the storage engine panicked while reading it".into(),
                });
            }
        }
        if format != 0 {
            store.upgrade_to_marks()?;
        }
        Ok(store)
    }

    /// Upgrades a format 1 store: every author with an attachment gets its `T` key
    /// ([`Store::may_have_attachments`]), in one commit with the new format marker (one pass
    /// over the attachments, each entry located in the id index; a crash before the commit
    /// leaves a format 1 store, upgraded at the next open).
    fn upgrade_to_marks(&self) -> Result<()> {
        let _writer = self.lock_writer();
        // Keys are sorted by entry id: each entry's kinds are neighbours, looked up once.
        let (mut last, mut authors) = (None, BTreeSet::new());
        for key in self.db.scan_prefix([TAG_ATTACHMENT]).keys() {
            let key = key.map_err(|e| self.engine(e))?;
            let id: [u8; 32] = key
                .get(1..33)
                .and_then(|id| id.try_into().ok())
                .ok_or_else(|| self.corrupt("bad attachment key"))?;
            if last == Some(id) {
                continue;
            }
            last = Some(id);
            // An attachment of an entry not held is never read (readers start from entries).
            if let Some((author, _)) = self.locate(&EntryId::from_bytes(id))? {
                authors.insert(author);
            }
        }
        let mut batch = Writes::default();
        for author in authors {
            batch.insert(&feed_key(TAG_ATTACHED, &author)[..], &[][..]);
        }
        self.durable.commit_upgrade(batch, &[STORE_FORMAT_VERSION])
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, detail: impl Into<String>) -> Error {
        self.durable.corrupt(detail)
    }

    fn engine(&self, err: sled::Error) -> Error {
        self.durable.engine(err)
    }

    /// For every feed: the head record points at a stored entry with that id, the id index
    /// points back, nothing is stored after the head, and the head links to its predecessor.
    fn check_heads(&self) -> Result<()> {
        for item in self.db.scan_prefix([TAG_HEAD]) {
            let (key, value) = item.map_err(|e| self.engine(e))?;
            let author = author_of_key(&key).ok_or_else(|| self.corrupt("bad head key"))?;
            let head = decode_head(&value)
                .ok_or_else(|| self.corrupt(format!("bad head record for {author}")))?;
            let entry = self
                .read_entry(&author, head.seq, false)?
                .ok_or_else(|| self.corrupt(format!("head {author} #{} missing", head.seq)))?;
            if entry.id() != head.id {
                return Err(self.corrupt(format!("head {author} #{} has another id", head.seq)));
            }
            if self.locate(&head.id)? != Some((author, head.seq)) {
                return Err(self.corrupt(format!("id index wrong for {author} #{}", head.seq)));
            }
            if let Some(next) = head.seq.next()
                && self.read_entry(&author, next, false)?.is_some()
            {
                return Err(self.corrupt(format!("{author} has entries after its head")));
            }
            if let Some(prev_seq) = head.seq.prev().filter(|s| s.get() > 0) {
                let prev = self
                    .read_entry(&author, prev_seq, false)?
                    .ok_or_else(|| self.corrupt(format!("{author} #{prev_seq} missing")))?;
                if entry.prev() != Some(prev.id()) {
                    return Err(self.corrupt(format!("{author} #{} breaks the chain", head.seq)));
                }
            }
        }
        Ok(())
    }

    /// Makes the next commit's flush fail as a full disk would (tests of what callers report).
    #[doc(hidden)]
    pub fn fail_next_flush(&self) {
        self.durable.fail_next_flush();
    }

    /// Re-checks every stored byte: each feed is a contiguous chain from seq 1 to its head,
    /// every header follows the format rules and its signature and link verify, every payload
    /// matches its header, the id index finds every entry and holds nothing else, and every
    /// fork proof verifies. Slow on big stores (one signature check per entry).
    pub fn verify_integrity(&self) -> Result<IntegrityReport> {
        let mut report = IntegrityReport::default();
        for author in self.authors()? {
            report.feeds = report.feeds.saturating_add(1);
            let head = Tables::head(self, &author)?
                .ok_or_else(|| self.corrupt(format!("{author} has no head")))?;
            let mut prev: Option<Head> = None;
            for item in self.db.scan_prefix(feed_key(TAG_CHUNK, &author)) {
                let (key, bytes) = item.map_err(|e| self.engine(e))?;
                let first = seq_of_key(&key).ok_or_else(|| self.corrupt("bad chunk key"))?;
                let bytes = self.chunk_bytes(&author, first, bytes)?;
                let chunk = Chunk::parse(&bytes)
                    .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
                for i in 0..chunk.len() {
                    let entry = chunk
                        .entry(i, true)
                        .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
                    // Read without the format rules (`Entry::decode_stored`): applied here.
                    crate::validate::validate_header_format(entry.header_bytes())
                        .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
                    let seq = entry.seq();
                    if Some(seq) != first.get().checked_add(i as u64).map(Seq::new) {
                        return Err(self.corrupt(format!("{author} chunk at #{first} misplaced")));
                    }
                    validate_entry(&author, prev.as_ref(), &entry)
                        .map_err(|e| self.corrupt(format!("{author} #{seq}: {e}")))?;
                    if self.locate(&entry.id())? != Some((author, seq)) {
                        return Err(self.corrupt(format!("id index wrong for {author} #{seq}")));
                    }
                    report.entries = report.entries.saturating_add(1);
                    if entry.payload().is_some() {
                        report.payloads = report.payloads.saturating_add(1);
                    }
                    prev = Some(entry.head());
                }
            }
            if prev != Some(head) {
                return Err(self.corrupt(format!("{author}'s head record disagrees with its log")));
            }
        }
        let indexed = self.index_read().len();
        if indexed != report.entries {
            return Err(self.corrupt(format!(
                "the id index holds {indexed} ids for {} entries",
                report.entries
            )));
        }
        report.fork_proofs = self.fork_proofs()?.len() as u64;
        Ok(report)
    }

    /// Commits `batch` durably (see [`DurableDb::commit`]). The caller holds the writer lock.
    fn commit(&self, batch: Writes) -> Result<()> {
        self.durable.commit(batch)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_read(&self) -> std::sync::RwLockReadGuard<'_, IdIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The chunk of `author`'s feed holding `seq`, as (first seq, bytes).
    fn chunk_holding(&self, author: &FeedId, seq: Seq) -> Result<Option<(Seq, sled::IVec)>> {
        let start = chunk_key(author, Seq::new(0));
        let end = chunk_key(author, seq);
        match self.db.range(start..=end).next_back() {
            None => Ok(None),
            Some(item) => {
                let (key, bytes) = item.map_err(|e| self.engine(e))?;
                let first = seq_of_key(&key).ok_or_else(|| self.corrupt("bad chunk key"))?;
                Ok(Some((first, bytes)))
            }
        }
    }

    fn read_entry(&self, author: &FeedId, seq: Seq, with_payload: bool) -> Result<Option<Entry>> {
        let Some((first, bytes)) = self.chunk_holding(author, seq)? else {
            return Ok(None);
        };
        let bytes = self.chunk_bytes(author, first, bytes)?;
        let chunk = Chunk::parse(&bytes)
            .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
        let Some(index) = seq.get().checked_sub(first.get()) else {
            return Ok(None);
        };
        let Some(index) = usize::try_from(index).ok().filter(|&i| i < chunk.len()) else {
            return Ok(None);
        };
        let entry = chunk
            .entry(index, with_payload)
            .map_err(|e| self.corrupt(format!("stored entry {author} #{seq}: {e}")))?;
        if entry.author() != *author || entry.seq() != seq {
            return Err(self.corrupt(format!("stored entry {author} #{seq} is misplaced")));
        }
        Ok(Some(entry))
    }

    /// The bytes of `author`'s chunk at `first` as stored: inline, or read from the value log
    /// (and checked) if `stored` is a reference to it.
    fn chunk_bytes(&self, author: &FeedId, first: Seq, stored: sled::IVec) -> Result<ChunkBytes> {
        match ValueRef::decode(&stored) {
            Ok(None) => Ok(ChunkBytes::Inline(stored)),
            Ok(Some(value)) => self
                .values
                .read(&value)
                .map(ChunkBytes::Logged)
                .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}"))),
            Err(e) => Err(self.corrupt(format!("{author} chunk at #{first}: {e}"))),
        }
    }

    /// `author`'s entry at `seq` with its payload, if the feed's head has reached it: a commit
    /// writes the head last, so what a reader sees is whole (see `ingest_locked`).
    fn read_published(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        match Tables::head(self, author)? {
            Some(head) if seq <= head.seq => self.read_entry(author, seq, true),
            _ => Ok(None),
        }
    }

    fn locate(&self, id: &EntryId) -> Result<Option<(FeedId, Seq)>> {
        self.index_read()
            .lookup(&self.db, id)
            .map_err(|e| index_error(&self.path.display().to_string(), e))
    }

    /// Plans and durably applies an ingest, with `attachments` for its entries (or entries
    /// already stored) in the same commit; the caller holds the writer lock.
    // Long because: the store's one write path (plan, writes, commit, report); its order is the
    // durability argument of feed.md section 10.
    fn ingest_locked(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
        flush: Flush,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        let Plan { writes, report } = plan_ingest(self, batch, &attachments)?;
        // Written in this order, so that a reader (who sees a feed only up to its head) never
        // sees an entry before its chunk, its attachments and its id: attachments, chunks and
        // fork proofs, the id index, then the heads.
        // Chunks and fork proofs, in order; each a chunk's key and bytes, or a write.
        let mut entries: Vec<Stored> = Vec::new();
        let mut heads: std::collections::BTreeMap<FeedId, Head> = Default::default();
        let mut ids = Vec::new();
        let mut chunk: Option<(FeedId, Seq, ChunkWriter)> = None;
        let close = |entries: &mut Vec<Stored>, chunk: Option<(FeedId, Seq, ChunkWriter)>| {
            if let Some((author, first, writer)) = chunk {
                entries.push(Stored::Chunk(chunk_key(&author, first), writer.finish()));
            }
        };
        for write in &writes {
            match write {
                Write::Entry(entry) => {
                    let author = entry.author();
                    let continues =
                        matches!(&chunk, Some((a, _, w)) if *a == author && !w.is_full());
                    if !continues {
                        close(&mut entries, chunk.take());
                        chunk = Some((author, entry.seq(), ChunkWriter::new()));
                    }
                    if let Some((_, _, writer)) = chunk.as_mut() {
                        writer.push(entry);
                    }
                    ids.push(id_index::item(&entry.id(), &author, entry.seq()));
                    // Entries of one feed are planned in seq order, so the last one wins.
                    heads.insert(author, entry.head());
                }
                Write::ForkProof(proof) => {
                    entries.push(Stored::Other(
                        feed_key(TAG_FORK, &proof.author()).to_vec(),
                        proof.encode(),
                    ));
                }
            }
        }
        close(&mut entries, chunk.take());
        let storing: std::collections::HashMap<EntryId, FeedId> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Entry(entry) => Some((entry.id(), entry.author())),
                Write::ForkProof(_) => None,
            })
            .collect();
        let mut touched: BTreeSet<FeedId> = writes
            .iter()
            .map(|w| match w {
                Write::Entry(entry) => entry.author(),
                Write::ForkProof(proof) => proof.author(),
            })
            .collect();
        let mut planned: std::collections::BTreeMap<EntryId, Vec<String>> = Default::default();
        let mut attached = Vec::with_capacity(attachments.len());
        let mut batch = Writes::default();
        let mut marked = BTreeSet::new();
        for item in attachments {
            attached.push(self.plan_attachment(
                item,
                &storing,
                &mut planned,
                &mut touched,
                &mut marked,
                &mut batch,
            )?);
        }
        if writes.is_empty() && planned.values().all(Vec::is_empty) {
            return Ok((report, attached));
        }
        self.place_chunks(entries, flush, &mut batch)?;
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let next_index = if ids.is_empty() {
            None
        } else {
            Some(
                index
                    .plan_commit(&self.db, ids, &mut batch)
                    .map_err(|e| index_error(&self.path.display().to_string(), e))?,
            )
        };
        for (author, head) in heads {
            batch.insert(&feed_key(TAG_HEAD, &author)[..], &encode_head(&head)[..]);
        }
        let committed = match flush {
            Flush::Now => self.commit(batch),
            Flush::Later => self.durable.commit_lazily(batch),
        };
        // Recorded even if the commit failed: it may have been applied (a failed flush), and
        // an extra look costs a reader nothing but time.
        self.changes.record(touched);
        committed?;
        if let Some(next_index) = next_index {
            *index = next_index;
        }
        Ok((report, attached))
    }
}

/// A stored chunk's bytes, as sled holds them or as read from the value log (not copied again).
enum ChunkBytes {
    Inline(sled::IVec),
    Logged(Vec<u8>),
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ChunkBytes::Inline(bytes) => bytes,
            ChunkBytes::Logged(bytes) => bytes,
        }
    }
}

/// A chunk (key and bytes) or another write of a commit, in [`SledStore::ingest_locked`].
enum Stored {
    Chunk([u8; 41], Vec<u8>),
    Other(Vec<u8>, Vec<u8>),
}

impl SledStore {
    /// Adds `entries` to `batch` in order: the chunks inline, or — for a durable commit whose
    /// chunks total at least [`VALUE_LOG_MIN_BYTES`] — appended to the value log and synced
    /// now, with references in their place (see [`super::values`]).
    fn place_chunks(&self, entries: Vec<Stored>, flush: Flush, batch: &mut Writes) -> Result<()> {
        let chunk_bytes: usize = entries
            .iter()
            .map(|s| match s {
                Stored::Chunk(_, bytes) => bytes.len(),
                Stored::Other(..) => 0,
            })
            .sum();
        if !matches!(flush, Flush::Now) || chunk_bytes < VALUE_LOG_MIN_BYTES {
            for stored in entries {
                match stored {
                    Stored::Chunk(key, bytes) => batch.insert(&key[..], bytes),
                    Stored::Other(key, value) => batch.insert(key, value),
                }
            }
            return Ok(());
        }
        let chunks: Vec<&[u8]> = entries
            .iter()
            .filter_map(|s| match s {
                Stored::Chunk(_, bytes) => Some(bytes.as_slice()),
                Stored::Other(..) => None,
            })
            .collect();
        let refs = self.values.append(&chunks)?;
        // Synced before sled's commit, so that no reference sled recovers points past it.
        self.values.sync()?;
        let mut refs = refs.into_iter();
        for stored in entries {
            match stored {
                Stored::Chunk(key, _) => {
                    let value = refs.next().ok_or_else(|| Error::Storage {
                        detail: "a value log reference is missing".into(),
                    })?;
                    batch.insert(&key[..], &value.encode()[..]);
                }
                Stored::Other(key, value) => batch.insert(key, value),
            }
        }
        Ok(())
    }

    /// Decides one attachment of a `put_attachments` call. `Err` only for storage trouble.
    fn plan_attachment(
        &self,
        item: Attachment,
        storing: &std::collections::HashMap<EntryId, FeedId>,
        planned: &mut std::collections::BTreeMap<EntryId, Vec<String>>,
        touched: &mut BTreeSet<FeedId>,
        marked: &mut BTreeSet<FeedId>,
        batch: &mut Writes,
    ) -> Result<Result<bool>> {
        if let Err(err) = check_attachment(&item) {
            return Ok(Err(err));
        }
        let author = match storing.get(&item.entry) {
            Some(author) => *author,
            None => match self.locate(&item.entry)? {
                Some((author, _)) => author,
                None => return Ok(Err(Error::UnknownEntry { id: item.entry })),
            },
        };
        let prefix = attachment_prefix(&item.entry);
        let mut key = prefix.to_vec();
        key.extend_from_slice(item.kind.as_bytes());
        let kinds = planned.entry(item.entry).or_default();
        if kinds.contains(&item.kind) || self.db.contains_key(&key).map_err(|e| self.engine(e))? {
            return Ok(Ok(false));
        }
        let held = self.db.scan_prefix(prefix).count() + kinds.len();
        if held >= MAX_ATTACHMENTS_PER_ENTRY {
            return Ok(Err(Error::TooManyAttachments {
                id: item.entry,
                max: MAX_ATTACHMENTS_PER_ENTRY,
            }));
        }
        kinds.push(item.kind);
        batch.insert(key, item.bytes);
        touched.insert(author);
        let marker = feed_key(TAG_ATTACHED, &author);
        if marked.insert(author) && !self.db.contains_key(marker).map_err(|e| self.engine(e))? {
            batch.insert(&marker[..], &[][..]);
        }
        Ok(Ok(true))
    }
}

/// Whether a commit waits for its flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    Now,
    Later,
}

fn index_error(path: &str, err: IndexError) -> Error {
    match err {
        IndexError::Sled(sled::Error::Io(io)) => Error::io(format!("feed store {path}"), &io),
        IndexError::Sled(other) => Error::Corrupt {
            path: path.to_owned(),
            detail: format!("entry id index: {other}"),
        },
        IndexError::Feed(err) => Error::Corrupt {
            path: path.to_owned(),
            detail: err.to_string(),
        },
    }
}

impl Tables for SledStore {
    fn head(&self, author: &FeedId) -> Result<Option<Head>> {
        match self
            .db
            .get(feed_key(TAG_HEAD, author))
            .map_err(|e| self.engine(e))?
        {
            None => Ok(None),
            Some(value) => decode_head(&value)
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("bad head record for {author}"))),
        }
    }

    fn header_at(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        self.read_entry(author, seq, false)
    }

    fn attachments_of(&self, id: &EntryId) -> Result<crate::fork::Evidence> {
        Store::attachments(self, id)
    }

    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>> {
        match self
            .db
            .get(feed_key(TAG_FORK, author))
            .map_err(|e| self.engine(e))?
        {
            None => Ok(None),
            Some(bytes) => ForkProof::decode(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(format!("stored fork proof for {author}: {e}"))),
        }
    }

    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy> {
        let dropping = self
            .db
            .contains_key(feed_key(TAG_DROP, author))
            .map_err(|e| self.engine(e))?;
        Ok(if dropping {
            PayloadPolicy::Drop
        } else {
            PayloadPolicy::Keep
        })
    }
}

impl Store for SledStore {
    fn ingest_verified(&self, batch: VerifiedBatch) -> Result<IngestReport> {
        let _writer = self.lock_writer();
        Ok(self.ingest_locked(batch, Vec::new(), Flush::Now)?.0)
    }

    fn ingest_with_attachments(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        let _writer = self.lock_writer();
        self.ingest_locked(batch, attachments, Flush::Now)
    }

    fn ingest_without_flush(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        let _writer = self.lock_writer();
        self.ingest_locked(batch, attachments, Flush::Later)
    }

    fn publish(&self, keypair: &Keypair, timestamp: Timestamp, payload: Vec<u8>) -> Result<Entry> {
        let _writer = self.lock_writer();
        let head = Tables::head(self, &keypair.id())?;
        let entry = Entry::create(keypair, head, timestamp, payload)?;
        let (mut report, _) = self.ingest_locked(
            VerifiedBatch::new(vec![entry.clone()]),
            Vec::new(),
            Flush::Now,
        )?;
        match report.outcomes.pop() {
            Some(Ok(_)) => Ok(entry),
            Some(Err(err)) => Err(err),
            None => Err(Error::Storage {
                detail: "ingest returned no outcome".into(),
            }),
        }
    }

    fn get(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        self.read_published(author, seq)
    }

    fn get_by_id(&self, id: &EntryId) -> Result<Option<Entry>> {
        match self.locate(id)? {
            None => Ok(None),
            Some((author, seq)) => self.read_published(&author, seq),
        }
    }

    fn head(&self, author: &FeedId) -> Result<Option<Head>> {
        Tables::head(self, author)
    }

    fn range(&self, author: &FeedId, from: Seq, limit: usize) -> Result<Vec<Entry>> {
        let from = from.max(Seq::FIRST);
        // Up to the head only: a commit writes the head last (see `ingest_locked`).
        let head = match Tables::head(self, author)? {
            Some(head) if from <= head.seq => head.seq,
            _ => return Ok(Vec::new()),
        };
        let limit = usize::try_from(head.get() - from.get() + 1)
            .unwrap_or(usize::MAX)
            .min(limit);
        let start = match self.chunk_holding(author, from)? {
            Some((first, _)) => chunk_key(author, first),
            None => chunk_key(author, from),
        };
        let end = chunk_key(author, head);
        let mut entries = Vec::new();
        for item in self.db.range(start..=end) {
            if entries.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(|e| self.engine(e))?;
            let first = seq_of_key(&key).ok_or_else(|| self.corrupt("bad chunk key"))?;
            let bytes = self.chunk_bytes(author, first, bytes)?;
            let chunk = Chunk::parse(&bytes)
                .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
            let skip =
                usize::try_from(from.get().saturating_sub(first.get())).unwrap_or(usize::MAX);
            let to = skip.saturating_add(limit - entries.len());
            let decoded = chunk
                .entries(skip, to, true)
                .map_err(|e| self.corrupt(format!("{author} chunk at #{first}: {e}")))?;
            entries.extend(decoded);
        }
        Ok(entries)
    }

    fn authors(&self) -> Result<Vec<FeedId>> {
        self.db
            .scan_prefix([TAG_HEAD])
            .keys()
            .map(|key| {
                let key = key.map_err(|e| self.engine(e))?;
                author_of_key(&key).ok_or_else(|| self.corrupt("bad head key"))
            })
            .collect()
    }

    fn set_payload_policy(&self, author: &FeedId, policy: PayloadPolicy) -> Result<()> {
        let _writer = self.lock_writer();
        let mut batch = Writes::default();
        match policy {
            PayloadPolicy::Keep => batch.remove(&feed_key(TAG_DROP, author)[..]),
            PayloadPolicy::Drop => {
                batch.insert(&feed_key(TAG_DROP, author)[..], &[][..]);
                // Rewrite every chunk of the feed without its payloads.
                for item in self.db.scan_prefix(feed_key(TAG_CHUNK, author)) {
                    let (key, bytes) = item.map_err(|e| self.engine(e))?;
                    let first = seq_of_key(&key).ok_or_else(|| self.corrupt("bad chunk key"))?;
                    let bytes = self.chunk_bytes(author, first, bytes)?;
                    let chunk = Chunk::parse(&bytes)
                        .map_err(|e| self.corrupt(format!("{author} chunk: {e}")))?;
                    let mut writer = ChunkWriter::new();
                    for i in 0..chunk.len() {
                        let entry = chunk
                            .entry(i, false)
                            .map_err(|e| self.corrupt(format!("{author} chunk: {e}")))?;
                        writer.push(&entry);
                    }
                    batch.insert(key.to_vec(), writer.finish());
                }
            }
        }
        let committed = self.commit(batch);
        self.changes.record([*author]);
        committed
    }

    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy> {
        Tables::payload_policy(self, author)
    }

    fn add_fork_proof(&self, proof: &ForkProof) -> Result<bool> {
        let _writer = self.lock_writer();
        let key = feed_key(TAG_FORK, &proof.author());
        if self.db.contains_key(key).map_err(|e| self.engine(e))? {
            return Ok(false);
        }
        let mut batch = Writes::default();
        batch.insert(&key[..], proof.encode());
        let committed = self.commit(batch);
        self.changes.record([proof.author()]);
        committed?;
        Ok(true)
    }

    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>> {
        Tables::fork_proof(self, author)
    }

    fn put_attachments(&self, items: Vec<Attachment>) -> Result<Vec<Result<bool>>> {
        let _writer = self.lock_writer();
        let (_, results) = self.ingest_locked(VerifiedBatch::new(Vec::new()), items, Flush::Now)?;
        Ok(results)
    }

    fn changes_since(&self, mark: Option<ChangeMark>) -> (ChangeMark, Changes) {
        self.changes.since(mark)
    }

    fn may_have_attachments(&self, author: &FeedId) -> Result<bool> {
        self.db
            .contains_key(feed_key(TAG_ATTACHED, author))
            .map_err(|e| self.engine(e))
    }

    fn attachments(&self, id: &EntryId) -> Result<Vec<(String, Vec<u8>)>> {
        self.db
            .scan_prefix(attachment_prefix(id))
            .map(|item| {
                let (key, bytes) = item.map_err(|e| self.engine(e))?;
                let kind = key
                    .get(33..)
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .ok_or_else(|| self.corrupt("bad attachment key"))?;
                Ok((kind.to_owned(), bytes.to_vec()))
            })
            .collect()
    }

    fn fork_proofs(&self) -> Result<Vec<ForkProof>> {
        self.db
            .scan_prefix([TAG_FORK])
            .values()
            .map(|bytes| {
                let bytes = bytes.map_err(|e| self.engine(e))?;
                ForkProof::decode(&bytes)
                    .map_err(|e| self.corrupt(format!("stored fork proof: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn publish(store: &SledStore, key: &Keypair, count: u64) -> Vec<Entry> {
        (1..=count)
            .map(|i| {
                store
                    .publish(key, Timestamp::from_millis(i), vec![1, 2, 3])
                    .unwrap()
            })
            .collect()
    }

    fn certificate(entry: &Entry) -> Attachment {
        Attachment {
            entry: entry.id(),
            kind: "scrip/certificate".into(),
            bytes: vec![7; 40],
        }
    }

    /// A feed is marked as soon as one of its entries has an attachment, whichever write
    /// stored it; a feed without any is not; the marks survive reopening.
    #[test]
    fn only_feeds_with_attachments_are_marked_and_the_marks_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob, carol) = (
            Keypair::from_seed(&[1; 32]),
            Keypair::from_seed(&[2; 32]),
            Keypair::from_seed(&[3; 32]),
        );
        {
            let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
            let alices = publish(&store, &alice, 3);
            publish(&store, &bob, 3);
            assert!(!store.may_have_attachments(&alice.id()).unwrap());
            store
                .put_attachments(vec![certificate(&alices[1])])
                .unwrap();
            // Carol's entries arrive with their attachments (as replication stores them).
            let carols: Vec<Entry> = {
                let other = tempfile::tempdir().unwrap();
                let source = SledStore::open(other.path(), SledOptions::default()).unwrap();
                publish(&source, &carol, 2)
            };
            let attachments = vec![certificate(&carols[0])];
            let (_, results) = store
                .ingest_with_attachments(VerifiedBatch::new(carols), attachments)
                .unwrap();
            assert_eq!(results, vec![Ok(true)]);
            for (author, marked) in [(&alice, true), (&bob, false), (&carol, true)] {
                assert_eq!(store.may_have_attachments(&author.id()).unwrap(), marked);
            }
        }
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        for (author, marked) in [(&alice, true), (&bob, false), (&carol, true)] {
            assert_eq!(store.may_have_attachments(&author.id()).unwrap(), marked);
        }
        store.verify_integrity().unwrap();
    }

    /// A format 1 store (attachments, no `T` keys) gets them on its next open, before anything
    /// reads it, together with the format 2 marker.
    #[test]
    fn a_format_1_store_gets_the_marks_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        {
            let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
            let alices = publish(&store, &alice, 3);
            publish(&store, &bob, 3);
            store
                .put_attachments(vec![certificate(&alices[0]), certificate(&alices[2])])
                .unwrap();
            let mut batch = Writes::default();
            batch.remove(feed_key(TAG_ATTACHED, &alice.id()).to_vec());
            store
                .durable
                .commit_upgrade(batch, &[STORE_FORMAT_BEFORE_MARKS])
                .unwrap();
            assert!(!store.may_have_attachments(&alice.id()).unwrap());
        }
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        assert_eq!(
            store.db.get(b"Mformat").unwrap().as_deref(),
            Some(&[STORE_FORMAT_VERSION][..])
        );
        assert!(store.may_have_attachments(&alice.id()).unwrap());
        assert!(!store.may_have_attachments(&bob.id()).unwrap());
        store.verify_integrity().unwrap();
    }
}
