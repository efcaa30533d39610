//! The in-memory reference store: plain maps behind one mutex. It is the model the sled store
//! is tested against, and a store for tests and simulations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::changes::{ChangeLog, ChangeMark, Changes};
use super::plan::{Plan, Tables, VerifiedBatch, Write, plan_ingest};
use super::{Attachment, IngestReport, PayloadPolicy, Store, check_attachment};
use crate::entry::{Entry, Head, Seq, Timestamp};
use crate::error::{Error, Result};
use crate::fork::ForkProof;
use crate::hash::EntryId;
use crate::identity::{FeedId, Keypair};
use crate::limits::MAX_ATTACHMENTS_PER_ENTRY;

#[derive(Default, Debug)]
struct MemTables {
    /// Each feed's entries, headers only, at index `seq - 1`.
    feeds: BTreeMap<FeedId, Vec<Entry>>,
    payloads: HashMap<(FeedId, Seq), Vec<u8>>,
    ids: HashMap<EntryId, (FeedId, Seq)>,
    forks: BTreeMap<FeedId, ForkProof>,
    dropping: BTreeSet<FeedId>,
    attachments: BTreeMap<(EntryId, String), Vec<u8>>,
}

/// An in-memory [`Store`]. Nothing survives the process; "durable" means "stored".
#[derive(Default, Debug)]
pub struct MemoryStore {
    tables: Mutex<MemTables>,
    /// Which feeds were written to, recorded under the tables' lock.
    changes: ChangeLog,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemTables> {
        // A panic while holding the lock cannot leave the maps half-written in a way that
        // matters more than the panic itself; keep serving.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ingest_locked(
        tables: &mut MemTables,
        changes: &ChangeLog,
        batch: VerifiedBatch,
        incoming: &[Attachment],
    ) -> Result<IngestReport> {
        let Plan { writes, report } = plan_ingest(&*tables, batch, incoming)?;
        let mut touched = BTreeSet::new();
        for write in writes {
            match write {
                Write::Entry(mut entry) => {
                    let key = (entry.author(), entry.seq());
                    touched.insert(key.0);
                    if let Some(payload) = entry.take_payload() {
                        tables.payloads.insert(key, payload);
                    }
                    tables.ids.insert(entry.id(), key);
                    tables.feeds.entry(key.0).or_default().push(entry);
                }
                Write::ForkProof(proof) => {
                    touched.insert(proof.author());
                    tables.forks.entry(proof.author()).or_insert(*proof);
                }
            }
        }
        changes.record(touched);
        Ok(report)
    }

    fn attach_locked(
        tables: &mut MemTables,
        changes: &ChangeLog,
        items: Vec<Attachment>,
    ) -> Vec<Result<bool>> {
        items
            .into_iter()
            .map(|item| {
                check_attachment(&item)?;
                let Some(&(author, _)) = tables.ids.get(&item.entry) else {
                    return Err(Error::UnknownEntry { id: item.entry });
                };
                let key = (item.entry, item.kind);
                if tables.attachments.contains_key(&key) {
                    return Ok(false);
                }
                let held = tables
                    .attachments
                    .range((key.0, String::new())..)
                    .take_while(|((id, _), _)| *id == key.0)
                    .count();
                if held >= MAX_ATTACHMENTS_PER_ENTRY {
                    return Err(Error::TooManyAttachments {
                        id: key.0,
                        max: MAX_ATTACHMENTS_PER_ENTRY,
                    });
                }
                tables.attachments.insert(key, item.bytes);
                changes.record([author]);
                Ok(true)
            })
            .collect()
    }

    fn full_entry(tables: &MemTables, entry: &Entry) -> Entry {
        let payload = tables.payloads.get(&(entry.author(), entry.seq())).cloned();
        entry.clone().with_payload(payload)
    }
}

fn index(seq: Seq) -> Option<usize> {
    usize::try_from(seq.get()).ok()?.checked_sub(1)
}

impl Tables for MemTables {
    fn head(&self, author: &FeedId) -> Result<Option<Head>> {
        Ok(self
            .feeds
            .get(author)
            .and_then(|feed| feed.last())
            .map(Entry::head))
    }

    fn header_at(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        Ok(index(seq).and_then(|i| self.feeds.get(author)?.get(i).cloned()))
    }

    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>> {
        Ok(self.forks.get(author).cloned())
    }

    fn attachments_of(&self, id: &EntryId) -> Result<crate::fork::Evidence> {
        Ok(self
            .attachments
            .range((*id, String::new())..)
            .take_while(|((entry, _), _)| entry == id)
            .map(|((_, kind), bytes)| (kind.clone(), bytes.clone()))
            .collect())
    }

    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy> {
        Ok(if self.dropping.contains(author) {
            PayloadPolicy::Drop
        } else {
            PayloadPolicy::Keep
        })
    }
}

impl Store for MemoryStore {
    fn ingest_verified(&self, batch: VerifiedBatch) -> Result<IngestReport> {
        MemoryStore::ingest_locked(&mut self.lock(), &self.changes, batch, &[])
    }

    fn publish(&self, keypair: &Keypair, timestamp: Timestamp, payload: Vec<u8>) -> Result<Entry> {
        let mut tables = self.lock();
        let head = tables.head(&keypair.id())?;
        let entry = Entry::create(keypair, head, timestamp, payload)?;
        let mut report = MemoryStore::ingest_locked(
            &mut tables,
            &self.changes,
            VerifiedBatch::new(vec![entry.clone()]),
            &[],
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
        let tables = self.lock();
        Ok(tables
            .header_at(author, seq)?
            .map(|e| MemoryStore::full_entry(&tables, &e)))
    }

    fn get_by_id(&self, id: &EntryId) -> Result<Option<Entry>> {
        let location = self.lock().ids.get(id).copied();
        match location {
            Some((author, seq)) => self.get(&author, seq),
            None => Ok(None),
        }
    }

    fn head(&self, author: &FeedId) -> Result<Option<Head>> {
        self.lock().head(author)
    }

    fn range(&self, author: &FeedId, from: Seq, limit: usize) -> Result<Vec<Entry>> {
        let tables = self.lock();
        let Some(feed) = tables.feeds.get(author) else {
            return Ok(Vec::new());
        };
        let start = index(from.max(Seq::FIRST)).unwrap_or(usize::MAX);
        Ok(feed
            .iter()
            .skip(start)
            .take(limit)
            .map(|e| MemoryStore::full_entry(&tables, e))
            .collect())
    }

    fn authors(&self) -> Result<Vec<FeedId>> {
        Ok(self.lock().feeds.keys().copied().collect())
    }

    fn set_payload_policy(&self, author: &FeedId, policy: PayloadPolicy) -> Result<()> {
        let mut tables = self.lock();
        match policy {
            PayloadPolicy::Keep => {
                tables.dropping.remove(author);
            }
            PayloadPolicy::Drop => {
                tables.dropping.insert(*author);
                tables.payloads.retain(|(a, _), _| a != author);
            }
        }
        self.changes.record([*author]);
        Ok(())
    }

    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy> {
        self.lock().payload_policy(author)
    }

    fn add_fork_proof(&self, proof: &ForkProof) -> Result<bool> {
        let mut tables = self.lock();
        if tables.forks.contains_key(&proof.author()) {
            return Ok(false);
        }
        tables.forks.insert(proof.author(), proof.clone());
        self.changes.record([proof.author()]);
        Ok(true)
    }

    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>> {
        self.lock().fork_proof(author)
    }

    fn fork_proofs(&self) -> Result<Vec<ForkProof>> {
        Ok(self.lock().forks.values().cloned().collect())
    }

    fn ingest_with_attachments(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        // Under one lock: no reader sees the entries without their attachments.
        let mut tables = self.lock();
        let report = MemoryStore::ingest_locked(&mut tables, &self.changes, batch, &attachments)?;
        let attached = MemoryStore::attach_locked(&mut tables, &self.changes, attachments);
        Ok((report, attached))
    }

    fn put_attachments(&self, items: Vec<Attachment>) -> Result<Vec<Result<bool>>> {
        Ok(MemoryStore::attach_locked(
            &mut self.lock(),
            &self.changes,
            items,
        ))
    }

    fn changes_since(&self, mark: Option<ChangeMark>) -> (ChangeMark, Changes) {
        self.changes.since(mark)
    }

    fn attachments(&self, id: &EntryId) -> Result<Vec<(String, Vec<u8>)>> {
        self.lock().attachments_of(id)
    }
}
