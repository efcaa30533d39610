//! The feed store: per-author chains of validated entries, fork proofs and payload policies.
//!
//! [`Store`] is implemented by [`SledStore`] (durable, on disk) and [`MemoryStore`] (the simple
//! reference the sled store is tested against). Both decide what to store with the same planner
//! (the private `plan` module): only their tables differ.
//!
//! # Durability contract
//!
//! When [`Store::ingest`], [`Store::append`], [`Store::set_payload_policy`] or
//! [`Store::add_fork_proof`] returns `Ok`, what it stored survives `kill -9` and power loss: the
//! sled store applies each call's writes as one atomic batch and flushes (fsync) before returning.
//! A crash during a call leaves the store as it was before the call or as it is after it, never in
//! between, so a reopened store never holds a broken chain. Opening a store checks its format
//! marker and the consistency of every feed's head, and reports damage as [`Error::Corrupt`].

pub mod changes;
mod chunk;
pub mod durable;
mod id_index;
mod memory;
mod plan;
mod sled_store;
pub mod values;

pub use changes::{ChangeMark, Changes};
pub use memory::MemoryStore;
pub use plan::{VerifiedBatch, verify_parallel};
pub use sled_store::{
    IntegrityReport, STORE_FORMAT_VERSION, SledOptions, SledStore, WATERMARK_FILE,
};

use crate::entry::{Entry, Head, Seq};
use crate::error::{Error, Result};
use crate::fork::ForkProof;
use crate::hash::EntryId;
use crate::identity::FeedId;
use crate::limits::{MAX_ATTACHMENT_BYTES, MAX_ATTACHMENT_KIND_BYTES};

/// Opaque bytes to keep with a stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The entry.
    pub entry: EntryId,
    /// What the bytes are: 1 to [`MAX_ATTACHMENT_KIND_BYTES`] bytes of `[a-z0-9/._-]`.
    pub kind: String,
    /// At most [`MAX_ATTACHMENT_BYTES`].
    pub bytes: Vec<u8>,
}

/// Checks an attachment's kind and size.
///
/// Rules: the kind is 1 to [`MAX_ATTACHMENT_KIND_BYTES`] bytes of `[a-z0-9/._-]`
/// ([`Error::InvalidContent`]); the bytes are at most [`MAX_ATTACHMENT_BYTES`]
/// ([`Error::TooLarge`]).
pub fn check_attachment(attachment: &Attachment) -> Result<()> {
    check_attachment_parts(&attachment.kind, &attachment.bytes)
}

/// [`check_attachment`]'s rules for a kind and its bytes (also the rules of a fork proof's
/// evidence).
pub fn check_attachment_parts(kind: &str, bytes: &[u8]) -> Result<()> {
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '/' | '.' | '_' | '-')
    };
    if kind.is_empty() || kind.len() > MAX_ATTACHMENT_KIND_BYTES || !kind.chars().all(allowed) {
        return Err(Error::InvalidContent {
            field: "attachment kind",
            reason: format!("must be 1 to {MAX_ATTACHMENT_KIND_BYTES} bytes of [a-z0-9/._-]"),
        });
    }
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(Error::TooLarge {
            what: "attachment",
            max: MAX_ATTACHMENT_BYTES,
            found: bytes.len(),
        });
    }
    Ok(())
}

/// What happened to an entry offered to a store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Appended {
    /// The entry was new and is now stored.
    Stored,
    /// The store already held this exact entry; nothing changed.
    Duplicate,
}

/// Whether a store keeps the payloads of an author's entries.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum PayloadPolicy {
    /// Keep payloads (the default).
    #[default]
    Keep,
    /// Drop payloads: stored ones are deleted, new ones are not stored. Headers are kept, so the
    /// chain still verifies.
    Drop,
}

/// The result of a batch ingest: one outcome per offered entry, in the order offered.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct IngestReport {
    /// For each offered entry: stored, duplicate, or why it was refused.
    pub outcomes: Vec<Result<Appended>>,
}

impl IngestReport {
    /// How many entries were newly stored.
    pub fn stored(&self) -> usize {
        self.count(|o| matches!(o, Ok(Appended::Stored)))
    }

    /// How many entries were already held.
    pub fn duplicates(&self) -> usize {
        self.count(|o| matches!(o, Ok(Appended::Duplicate)))
    }

    /// How many entries were refused.
    pub fn refused(&self) -> usize {
        self.count(Result::is_err)
    }

    fn count(&self, pred: impl Fn(&Result<Appended>) -> bool) -> usize {
        self.outcomes.iter().filter(|o| pred(o)).count()
    }
}

/// A store of feeds. All methods are synchronous; async callers run them on a blocking thread.
///
/// Every stored entry passed [`crate::validate::validate_entry`] against the feed's head at the
/// time; every feed is a contiguous chain from seq 1.
pub trait Store: Send + Sync {
    /// Validates each entry against its feed (including entries earlier in the same batch) and
    /// stores the valid ones, durably, with one flush. Entries may be of many authors, in any
    /// order. Returns `Err` only if storage failed (then nothing of this call was stored);
    /// invalid entries are refused in the report.
    ///
    /// An entry that differs from a stored one at the same seq yields a fork proof, which is
    /// stored (freezing the feed) and reported as [`Error::Fork`].
    fn ingest(&self, entries: Vec<Entry>) -> Result<IngestReport> {
        self.ingest_verified(VerifiedBatch::new(entries))
    }

    /// [`Store::ingest`] for a batch whose stateless checks already ran (see [`VerifiedBatch`]).
    fn ingest_verified(&self, batch: VerifiedBatch) -> Result<IngestReport>;

    /// [`Store::ingest_verified`] and [`Store::put_attachments`] in one durable commit (one
    /// flush instead of two), atomic for readers too: no reader ever sees an entry of the batch
    /// without the attachments given with it (replication reads the store at any moment and
    /// sends what it finds; an entry sent without its certificate would never get one, since
    /// a peer is only sent what follows its head). `attachments` may belong to entries of the
    /// batch or to entries already stored. Returns the ingest report and one result per
    /// attachment, as `put_attachments` would; an attachment for an entry the batch refused is
    /// [`Error::UnknownEntry`].
    fn ingest_with_attachments(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)>;

    /// [`Store::ingest_with_attachments`] without waiting for the flush: the commit becomes
    /// durable with the next flushed commit or the engine's background flush (within about a
    /// second). A crash may lose it (never partly: the commit is atomic). Only for copies that
    /// can be fetched again, such as a notary's copies of the wallet entries it decided on;
    /// never for anything acknowledged to anyone.
    fn ingest_without_flush(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        self.ingest_with_attachments(batch, attachments)
    }

    /// Validates and durably stores one entry. See [`Store::ingest`].
    fn append(&self, entry: Entry) -> Result<Appended> {
        let mut report = self.ingest(vec![entry])?;
        report.outcomes.pop().unwrap_or(Err(Error::Storage {
            detail: "ingest returned no outcome".into(),
        }))
    }

    /// The entry at `seq` in `author`'s feed, with its payload if held.
    fn get(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>>;

    /// The entry with id `id`, with its payload if held.
    fn get_by_id(&self, id: &EntryId) -> Result<Option<Entry>>;

    /// The latest entry of `author`'s feed.
    fn head(&self, author: &FeedId) -> Result<Option<Head>>;

    /// Up to `limit` entries of `author`'s feed from `from` on, in seq order.
    fn range(&self, author: &FeedId, from: Seq, limit: usize) -> Result<Vec<Entry>>;

    /// Every author with at least one stored entry, in id order.
    fn authors(&self) -> Result<Vec<FeedId>>;

    /// The head seq of every stored feed, by author.
    fn heads(&self) -> Result<std::collections::BTreeMap<FeedId, u64>> {
        let mut heads = std::collections::BTreeMap::new();
        for author in self.authors()? {
            if let Some(head) = self.head(&author)? {
                heads.insert(author, head.seq.get());
            }
        }
        Ok(heads)
    }

    /// Sets whether `author`'s payloads are kept. [`PayloadPolicy::Drop`] also deletes the
    /// payloads already stored.
    fn set_payload_policy(&self, author: &FeedId, policy: PayloadPolicy) -> Result<()>;

    /// Whether `author`'s payloads are kept.
    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy>;

    /// Stores a (verified) fork proof, freezing the author's feed at the fork point. Returns
    /// `false` if a proof for that author was already held (one proof is enough).
    fn add_fork_proof(&self, proof: &ForkProof) -> Result<bool>;

    /// The fork proof held for `author`, if any.
    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>>;

    /// Every fork proof held, in author order.
    fn fork_proofs(&self) -> Result<Vec<ForkProof>>;

    /// Stores attachments (opaque bytes kept with an entry, e.g. notary certificates), durably,
    /// in one commit. For each: `Ok(true)` if stored, `Ok(false)` if the entry already has one of
    /// that kind (the first is kept), or why it was refused (see [`check_attachment`]; the entry
    /// must be stored; at most [`crate::limits::MAX_ATTACHMENTS_PER_ENTRY`] kinds per entry).
    fn put_attachments(&self, items: Vec<Attachment>) -> Result<Vec<Result<bool>>>;

    /// The attachments of entry `id`, in kind order.
    fn attachments(&self, id: &EntryId) -> Result<Vec<(String, Vec<u8>)>>;

    /// `false` only if no entry of `author` has an attachment, so that a reader of many
    /// entries (replication sending a feed) can skip asking for each one's
    /// ([`Store::attachments`] costs a lookup per entry). `true` may be said of any feed.
    fn may_have_attachments(&self, author: &FeedId) -> Result<bool> {
        let _ = author;
        Ok(true)
    }

    /// Signs `payload` as the next entry of `keypair`'s feed and durably appends it, holding the
    /// store's write lock from reading the head to storing the entry, so that two concurrent
    /// publishes can never sign two entries for one seq. Returns the entry.
    fn publish(
        &self,
        keypair: &crate::Keypair,
        timestamp: crate::Timestamp,
        payload: Vec<u8>,
    ) -> Result<Entry>;

    /// The feeds written to (entries, attachments, fork proofs, payload policy) since `mark`,
    /// and the mark to pass next time. `None`, or a mark further back than the store remembers
    /// ([`changes::MAX_REMEMBERED_CHANGES`]), answers [`Changes::Unknown`]: look at every feed.
    /// The record lives in memory, per open store (see [`changes`]); a store that keeps none
    /// always answers `Unknown`.
    fn changes_since(&self, mark: Option<ChangeMark>) -> (ChangeMark, Changes) {
        let _ = mark;
        (ChangeMark::UNTRACKED, Changes::Unknown)
    }
}
