//! A store that fails to read is reported and retried with backoff, never spun on. (The node
//! used to take a failed read of a feed for "no entries", and read the feed again at once,
//! forever: a busy loop, and unbounded recursion with store calls run inline.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scrip_feed::store::{Attachment, IngestReport, PayloadPolicy, VerifiedBatch};
use scrip_feed::{
    Content, Entry, EntryId, Error, FeedId, ForkProof, Head, Keypair, MemoryStore, Result, Seq,
    Store, Timestamp,
};
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Event, Node, NodeConfig};

/// A memory store whose reads of one feed's entries fail, counted.
struct FailingReads {
    inner: MemoryStore,
    feed: FeedId,
    failed: AtomicUsize,
}

impl Store for FailingReads {
    fn ingest_verified(&self, batch: VerifiedBatch) -> Result<IngestReport> {
        self.inner.ingest_verified(batch)
    }
    fn ingest_with_attachments(
        &self,
        batch: VerifiedBatch,
        attachments: Vec<Attachment>,
    ) -> Result<(IngestReport, Vec<Result<bool>>)> {
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
        if *author == self.feed {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(Error::io(
                "reading a chunk",
                &std::io::Error::other("injected read failure"),
            ));
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
        self.inner.put_attachments(items)
    }
    fn attachments(&self, id: &EntryId) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.attachments(id)
    }
    fn publish(&self, author: &Keypair, timestamp: Timestamp, payload: Vec<u8>) -> Result<Entry> {
        self.inner.publish(author, timestamp, payload)
    }
}

/// The node's own feed cannot be read for its follows: each failed read is reported as
/// `StoreFailed`, and the second report comes after exactly two reads (a backoff between them),
/// where the node used to read again at once without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_read_is_reported_and_retried_with_backoff() {
    let key = Arc::new(Keypair::from_seed(&[41; 32]));
    let inner = MemoryStore::new();
    inner
        .publish(
            &key,
            Timestamp::from_millis(1),
            Content::Post { text: "hi".into() }.encode().unwrap(),
        )
        .unwrap();
    let store = Arc::new(FailingReads {
        inner,
        feed: key.id(),
        failed: AtomicUsize::new(0),
    });
    let node = Node::spawn(
        Arc::clone(&key),
        Arc::clone(&store) as Arc<dyn Store>,
        Tcp,
        NodeConfig {
            tick: Duration::from_millis(20),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let mut events = node.events();
    let mut reports = 0;
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while reports < 2 {
            match events.recv().await {
                Ok(Event::StoreFailed { feed, reason, .. }) => {
                    assert_eq!(feed, Some(key.id()));
                    assert!(reason.contains("injected read failure"), "{reason}");
                    reports += 1;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(found.is_ok() && reports == 2, "{reports} failures reported");
    // Two reports, two reads (at most one more started since): no spinning.
    let reads = store.failed.load(Ordering::SeqCst);
    assert!((2..=3).contains(&reads), "{reads} reads");
    node.shutdown().await;
}
