//! The store's decision procedure, shared by every [`Store`](super::Store) implementation: which
//! offered entries are stored, which are duplicates, which prove forks and which are refused.
//!
//! 1. [`verify_parallel`] runs the stateless checks (payload, signature) on all cores, before any
//!    lock is taken.
//! 2. [`plan_ingest`] walks the entries in (author, seq) order against the store's tables and the
//!    entries planned so far in the batch, and produces the writes to apply atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::{Appended, Attachment, IngestReport, PayloadPolicy};
use crate::entry::{Entry, Head, Seq};
use crate::error::{Error, Result};
use crate::fork::{Evidence, ForkProof};
use crate::hash::EntryId;
use crate::identity::{AuthorKey, FeedId};
use crate::identity::{Signature, verify_batch};
use crate::validate::{entry_signed_bytes, validate_link, validate_payload};

/// Below this many entries per thread, spawning threads costs more than it saves.
const MIN_ENTRIES_PER_THREAD: usize = 64;
/// Pieces of work per verifying thread (for balance when a core is slowed down).
const PIECES_PER_THREAD: usize = 8;
/// Fewest entries in a piece of a batch check, when the batch is big enough that every thread
/// still gets one: a batch check costs less per signature as it grows (curve25519-dalek's
/// multiscalar multiplication switches from Straus to Pippenger at 190 points), measured here
/// (one core, `verify_batch`): 117 k signatures/s in batches of 128, 146 k at 256, 155 k at 512.
const MIN_PIECE: usize = 256;

/// What a planner reads from a store.
pub(crate) trait Tables {
    /// The latest stored entry of `author`.
    fn head(&self, author: &FeedId) -> Result<Option<Head>>;
    /// The stored entry (header only is enough) at `seq`.
    fn header_at(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>>;
    /// The fork proof held for `author`.
    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>>;
    /// Whether `author`'s payloads are kept.
    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy>;
    /// The attachments of stored entry `id`, in kind order (a fork proof's evidence).
    fn attachments_of(&self, id: &EntryId) -> Result<Evidence>;
}

/// A write the planner asks the store to apply.
// Nearly every write is an entry; boxing them would add an allocation per stored entry.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Write {
    /// Store this entry (its payload already removed if the policy drops it) and make it the
    /// feed's head.
    Entry(Entry),
    /// Store this fork proof.
    ForkProof(Box<ForkProof>),
}

/// The writes to apply atomically, and the report to return once they are durable.
#[derive(Debug)]
pub(crate) struct Plan {
    pub writes: Vec<Write>,
    pub report: IngestReport,
}

/// Entries whose stateless checks (payload and signature, [`verify_parallel`]) have run, with
/// their results: the input of [`Store::ingest_verified`](super::Store::ingest_verified).
///
/// Verifying is the expensive part of an ingest and needs no store, so a caller can verify the
/// next batch (on all cores) while the store commits the previous one.
#[derive(Debug)]
pub struct VerifiedBatch {
    entries: Vec<Entry>,
    checked: Vec<Result<()>>,
}

impl VerifiedBatch {
    /// Runs the stateless checks on `entries`, in parallel across the machine's cores.
    pub fn new(entries: Vec<Entry>) -> VerifiedBatch {
        let checked = verify_parallel(&entries);
        VerifiedBatch { entries, checked }
    }

    /// Entries whose stateless checks the caller already ran and passed, moments ago, on these
    /// very values (e.g. a notary storing the entry it just verified and voted for, or a
    /// wallet storing the entry it just signed): nothing is checked again. Only for entries
    /// whose checks really ran; anything else goes through [`VerifiedBatch::new`].
    pub fn already_verified(entries: Vec<Entry>) -> VerifiedBatch {
        let checked = entries.iter().map(|_| Ok(())).collect();
        VerifiedBatch { entries, checked }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether entry `index` passed its stateless checks (an index out of range did not).
    pub fn passed(&self, index: usize) -> bool {
        self.checked.get(index).is_some_and(Result::is_ok)
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Refuses entry `index` with `error` (a check the caller made beyond the stateless ones,
    /// e.g. that it arrived with the attachment its feed requires): the store reports `error`
    /// for it and stores nothing of it. An index out of range changes nothing.
    pub fn refuse(&mut self, index: usize, error: Error) {
        if let Some(checked) = self.checked.get_mut(index) {
            *checked = Err(error);
        }
    }
}

/// Runs the stateless checks ([`validate_payload`], then the signatures in batches) over
/// `entries`, in parallel across the
/// machine's cores, decompressing each author's key once per run of consecutive entries.
/// Returns one result per entry, in order.
pub fn verify_parallel(entries: &[Entry]) -> Vec<Result<()>> {
    let threads = cores()
        .min(entries.len().div_ceil(MIN_ENTRIES_PER_THREAD))
        .max(1);
    if threads == 1 {
        return verify_run(entries);
    }
    // Many small pieces handed out on demand, so that a thread slowed down by a noisy neighbour
    // does not leave the others idle at the end.
    let piece = entries
        .len()
        .div_ceil(threads * PIECES_PER_THREAD)
        .max(MIN_ENTRIES_PER_THREAD / 4);
    // Big batches in pieces of at least `MIN_PIECE` (cheaper per signature) while every thread
    // still gets 4 of them; smaller batches (a notary node's, `BACKGROUND_INGEST_BATCH` in
    // replicate) keep short pieces: short stretches between the yields below.
    let piece = if entries.len() >= threads * 4 * MIN_PIECE {
        piece.max(MIN_PIECE)
    } else {
        piece
    };
    let pieces: Vec<&[Entry]> = entries.chunks(piece).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = pieces.get(i) else {
                return done;
            };
            done.push((i, verify_run(part)));
            // A moment for anything waiting for this core: a thread at idle priority (a notary
            // node's ingest) is otherwise taken off it only at the next scheduling decision,
            // up to a timer tick later (4 ms at HZ = 250). Measured alternately, `scrip bench
            // load`: loaded proposal p99 3.6–4.2 ms against 4.5–5.4 ms without; `scrip bench
            // ingest` unchanged (206–210 k against 206–217 k entries/s).
            thread::yield_now();
        }
    };
    let mut done: Vec<(usize, Vec<Result<()>>)> = thread::scope(|scope| {
        // The calling thread works too.
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for helper in helpers {
            match helper.join() {
                Ok(more) => done.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

/// The number of cores to verify on. Cached: `available_parallelism` reads cgroup files on every
/// call (~30 µs measured), which would cost half a signature check per single-entry append.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, usize::from))
}

/// The stateless checks of `entries` (in order): keys decompressed once per run of one author,
/// payloads checked one by one, and the signatures of those that passed checked as one batch
/// ([`verify_batch`]: the same answers as one check each, at a fraction of the cost).
fn verify_run(entries: &[Entry]) -> Vec<Result<()>> {
    let mut cached: Option<(FeedId, Result<AuthorKey>)> = None;
    let mut keys = Vec::with_capacity(entries.len());
    let mut results: Vec<Result<()>> = entries
        .iter()
        .map(|entry| {
            let author = entry.author();
            let key = match &cached {
                Some((id, key)) if *id == author => key.clone(),
                _ => cached
                    .insert((author, AuthorKey::cached(&author)))
                    .1
                    .clone(),
            };
            key.and_then(|key| {
                validate_payload(entry)?;
                keys.push(key);
                Ok(())
            })
        })
        .collect();
    let signed: Vec<(usize, Vec<u8>)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| (i, entry_signed_bytes(&entries[i])))
        .collect();
    let items: Vec<(&AuthorKey, &[u8], &Signature)> = signed
        .iter()
        .zip(&keys)
        .map(|((i, bytes), key)| (key, bytes.as_slice(), &entries[*i].header().signature))
        .collect();
    for ((i, _), good) in signed.iter().zip(verify_batch(&items)) {
        if !good {
            results[*i] = Err(Error::BadSignature {
                author: entries[*i].author(),
                seq: entries[*i].seq(),
            });
        }
    }
    results
}

/// What the planner knows about one feed during a batch.
struct FeedState {
    head: Option<Head>,
    frozen_at: Option<Seq>,
    has_proof: bool,
    policy: PayloadPolicy,
    /// Entries of this feed planned in this batch: seq -> index in `writes`.
    planned: BTreeMap<Seq, usize>,
}

impl FeedState {
    fn load(tables: &impl Tables, author: &FeedId) -> Result<FeedState> {
        let proof = tables.fork_proof(author)?;
        Ok(FeedState {
            head: tables.head(author)?,
            frozen_at: proof.as_ref().map(ForkProof::seq),
            has_proof: proof.is_some(),
            policy: tables.payload_policy(author)?,
            planned: BTreeMap::new(),
        })
    }
}

/// Decides the fate of every entry of a verified batch. Returns `Err` only when reading the
/// tables fails.
///
/// `incoming` are the attachments offered with the batch: a fork proof the planner builds
/// carries each half's attachments as its evidence (`fork.rs`), the stored half's from the
/// tables.
pub(crate) fn plan_ingest(
    tables: &impl Tables,
    batch: VerifiedBatch,
    incoming: &[Attachment],
) -> Result<Plan> {
    let VerifiedBatch { entries, checked } = batch;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].author(), entries[i].seq()));
    let mut outcomes: Vec<Option<Result<Appended>>> = vec![None; entries.len()];
    let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let mut writes = Vec::new();
    let mut feeds: HashMap<FeedId, FeedState> = HashMap::new();

    for i in order {
        let Some(entry) = slots[i].take() else {
            continue;
        };
        if let Some(Err(err)) = checked.get(i) {
            outcomes[i] = Some(Err(err.clone()));
            continue;
        }
        let author = entry.author();
        let state = match feeds.entry(author) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(FeedState::load(tables, &author)?)
            }
        };
        outcomes[i] = Some(decide(tables, state, entry, incoming, &mut writes)?);
    }

    let outcomes = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Err(Error::Storage {
                detail: "planner skipped an entry".into(),
            }))
        })
        .collect();
    Ok(Plan {
        writes,
        report: IngestReport { outcomes },
    })
}

fn decide(
    tables: &impl Tables,
    state: &mut FeedState,
    mut entry: Entry,
    incoming: &[Attachment],
    writes: &mut Vec<Write>,
) -> Result<Result<Appended>> {
    let author = entry.author();
    let seq = entry.seq();

    if let Some(head) = state.head
        && seq <= head.seq
    {
        let existing = match state.planned.get(&seq) {
            Some(&index) => match &writes[index] {
                Write::Entry(planned) => Some(planned.without_payload()),
                Write::ForkProof(_) => None,
            },
            None => tables.header_at(&author, seq)?,
        };
        let existing = existing.ok_or_else(|| Error::Storage {
            detail: format!("feed {author} has head {} but no entry at {seq}", head.seq),
        })?;
        if existing.id() == entry.id() {
            return Ok(Ok(Appended::Duplicate));
        }
        let offered = |id: &EntryId| -> Evidence {
            incoming
                .iter()
                .filter(|a| a.entry == *id)
                .map(|a| (a.kind.clone(), a.bytes.clone()))
                .collect()
        };
        let existing_evidence = if state.planned.contains_key(&seq) {
            offered(&existing.id())
        } else {
            tables.attachments_of(&existing.id())?
        };
        // With both halves' attachments as evidence (what a feed's rules may ask of a proof),
        // or bare if they exceed a proof's bounds.
        let proof =
            ForkProof::with_evidence(&existing, existing_evidence, &entry, offered(&entry.id()))
                .or_else(|_| ForkProof::new(&existing, &entry));
        let proof = match proof {
            Ok(proof) => proof,
            Err(err) => return Ok(Err(err)),
        };
        if !state.has_proof {
            writes.push(Write::ForkProof(Box::new(proof)));
            state.has_proof = true;
            state.frozen_at = Some(seq);
        }
        return Ok(Err(Error::Fork { author, seq }));
    }

    if let Some(frozen_at) = state.frozen_at
        && seq >= frozen_at
    {
        return Ok(Err(Error::Frozen {
            author,
            seq: frozen_at,
        }));
    }
    if let Err(err) = validate_link(&author, state.head.as_ref(), &entry) {
        return Ok(Err(err));
    }
    if state.policy == PayloadPolicy::Drop {
        entry.take_payload();
    }
    state.head = Some(entry.head());
    state.planned.insert(seq, writes.len());
    writes.push(Write::Entry(entry));
    Ok(Ok(Appended::Stored))
}
