//! Helpers the replicate tests share.
#![allow(dead_code)]

use scrip_feed::store::{Attachment, IngestReport, PayloadPolicy, VerifiedBatch};
use scrip_feed::{
    Entry, EntryId, Error, FeedId, ForkProof, Head, Keypair, Result, Seq, Store, Timestamp,
};

/// May fail a read of a feed's entries.
pub type ReadHook = Box<dyn Fn(&FeedId) -> Option<Error> + Send + Sync>;
/// Runs before a write that carries attachments (given how many).
pub type WriteHook = Box<dyn Fn(usize) + Send + Sync>;

/// A store that does what `inner` does, with two hooks a test uses to make it misbehave: `read`
/// may fail a read of a feed's entries (return the error), and `writing` runs before a write
/// that carries attachments (given how many), e.g. to make it slow.
pub struct HookedStore<S> {
    pub inner: S,
    pub read: ReadHook,
    pub writing: WriteHook,
}

impl<S> HookedStore<S> {
    /// `inner` with hooks that do nothing.
    pub fn new(inner: S) -> HookedStore<S> {
        HookedStore {
            inner,
            read: Box::new(|_| None),
            writing: Box::new(|_| {}),
        }
    }
}

impl<S: Store> Store for HookedStore<S> {
    fn ingest_verified(&self, batch: VerifiedBatch) -> Result<IngestReport> {
        self.inner.ingest_verified(batch)
    }
    fn ingest_with_attachments(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
        (self.writing)(attachments.len());
        self.inner.ingest_with_attachments(batch, attachments)
    }
    fn get(&self, author: &FeedId, seq: Seq) -> Result<Option<Entry>> {
        self.inner.get(author, seq)
    }
    fn get_by_id(&self, id: &EntryId) -> Result<Option<Entry>> {
        self.inner.get_by_id(id)
    }
    fn head(&self, author: &FeedId) -> Result<Option<Head>> {
        self.inner.head(author)
    }
    fn range(&self, author: &FeedId, from: Seq, limit: usize) -> Result<Vec<Entry>> {
        if let Some(err) = (self.read)(author) {
            return Err(err);
        }
        self.inner.range(author, from, limit)
    }
    fn authors(&self) -> Result<Vec<FeedId>> {
        self.inner.authors()
    }
    fn set_payload_policy(&self, author: &FeedId, policy: PayloadPolicy) -> Result<()> {
        self.inner.set_payload_policy(author, policy)
    }
    fn payload_policy(&self, author: &FeedId) -> Result<PayloadPolicy> {
        self.inner.payload_policy(author)
    }
    fn add_fork_proof(&self, proof: &ForkProof) -> Result<bool> {
        self.inner.add_fork_proof(proof)
    }
    fn fork_proof(&self, author: &FeedId) -> Result<Option<ForkProof>> {
        self.inner.fork_proof(author)
    }
    fn fork_proofs(&self) -> Result<Vec<ForkProof>> {
        self.inner.fork_proofs()
    }
    fn put_attachments(&self, items: Vec<Attachment>) -> Result<Vec<Result<bool>>> {
        (self.writing)(items.len());
        self.inner.put_attachments(items)
    }
    fn attachments(&self, id: &EntryId) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.attachments(id)
    }
    fn publish(&self, author: &Keypair, timestamp: Timestamp, payload: Vec<u8>) -> Result<Entry> {
        self.inner.publish(author, timestamp, payload)
    }
}
