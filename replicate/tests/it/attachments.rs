//! A relayed entry is never readable without the attachments it arrived with: a relay stores
//! each received entry together with its attachments (notary certificates), so a peer reading
//! from the relay at any moment gets both. (Found by `scrip demo`: a peer that read a wallet's
//! entries between a relay's two commits held them without certificates for good, since
//! replication only sends what follows a peer's head.)
#![allow(clippy::unwrap_used)]

use crate::common::HookedStore;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scrip_feed::store::{Attachment, VerifiedBatch};
use scrip_feed::{
    Entry, EntryId, FeedId, Keypair, MemoryStore, SledOptions, SledStore, Store, Timestamp,
};
use scrip_replicate::transport::{Tcp, TransportConfig};
use scrip_replicate::{Node, NodeConfig};

/// How long the relay's write of attachment-carrying entries takes: long enough for a third
/// node to connect and read in the middle of it.
const SLOW_WRITE: Duration = Duration::from_millis(1500);

fn config(peers: Vec<(String, Option<FeedId>)>, feed: FeedId) -> NodeConfig {
    NodeConfig {
        listen: Some("127.0.0.1:0".into()),
        peers,
        hops: 1,
        explicit: [feed].into_iter().collect(),
        tick: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        transport: TransportConfig {
            handshake_timeout: Duration::from_secs(5),
            ..TransportConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// Entries `from..=to` of `author`'s feed (following what `store` holds), each with one
/// attachment, stored in `store` in one commit.
fn write(store: &dyn Store, author: &Keypair, from: u64, to: u64) -> Vec<EntryId> {
    let mut previous = store.head(&author.id()).unwrap();
    let mut entries = Vec::new();
    for seq in from..=to {
        let entry = Entry::create(
            author,
            previous,
            Timestamp::from_millis(seq),
            format!("entry {seq}").into_bytes(),
        )
        .unwrap();
        previous = Some(entry.head());
        entries.push(entry);
    }
    let ids: Vec<EntryId> = entries.iter().map(Entry::id).collect();
    let attachments = ids
        .iter()
        .map(|id| Attachment {
            entry: *id,
            kind: "test/proof".into(),
            bytes: id.as_bytes().to_vec(),
        })
        .collect();
    let (report, attached) = store
        .ingest_with_attachments(VerifiedBatch::new(entries), attachments)
        .unwrap();
    assert_eq!(report.stored(), ids.len());
    assert!(attached.iter().all(|a| matches!(a, Ok(true))));
    ids
}

async fn wait_for_head(store: &dyn Store, feed: &FeedId, head: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.head(feed).unwrap().map_or(0, |h| h.seq.get()) < head {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reading_from_a_relay_mid_write_never_gets_entries_without_their_attachments() {
    let author = Keypair::from_seed(&[9; 32]);
    let feed = author.id();

    // The source holds entry #1 with its attachment; the relay copies it.
    let source_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ids_first = write(source_store.as_ref(), &author, 1, 1);
    let source = Node::spawn(
        Arc::new(Keypair::from_seed(&[1; 32])),
        Arc::clone(&source_store),
        Tcp,
        config(vec![], feed),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The relay's writes of attachments are slow once `slow` is set; `writing` tells when one
    // is under way.
    let (slow, writing) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut hooked = HookedStore::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    let (pausing, started) = (Arc::clone(&slow), Arc::clone(&writing));
    hooked.writing = Box::new(move |attachments| {
        if attachments > 0 && pausing.load(Ordering::SeqCst) {
            started.store(true, Ordering::SeqCst);
            std::thread::sleep(SLOW_WRITE);
        }
    });
    let relay_store = Arc::new(hooked);
    let relay = Node::spawn(
        Arc::new(Keypair::from_seed(&[2; 32])),
        Arc::clone(&relay_store) as Arc<dyn Store>,
        Tcp,
        config(
            vec![(
                source.listen_address().unwrap().to_owned(),
                Some(source.id()),
            )],
            feed,
        ),
    )
    .await
    .unwrap();
    wait_for_head(
        relay_store.as_ref(),
        &feed,
        1,
        "the relay never got entry #1",
    )
    .await;

    // Entries #2..#4 reach the relay, whose write of them is slow; a reader connects meanwhile.
    slow.store(true, Ordering::SeqCst);
    let ids_rest = write(source_store.as_ref(), &author, 2, 4);
    source.announce(feed, 4).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !writing.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never wrote #2..#4"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reader_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let reader = Node::spawn(
        Arc::new(Keypair::from_seed(&[3; 32])),
        Arc::clone(&reader_store),
        Tcp,
        config(
            vec![(relay.listen_address().unwrap().to_owned(), Some(relay.id()))],
            feed,
        ),
    )
    .await
    .unwrap();
    wait_for_head(reader_store.as_ref(), &feed, 4, "the reader never got #4").await;

    for (seq, id) in ids_first.iter().chain(&ids_rest).enumerate() {
        let attachments = reader_store.attachments(id).unwrap();
        assert_eq!(
            attachments,
            vec![("test/proof".to_owned(), id.as_bytes().to_vec())],
            "entry #{} reached the reader without its attachment",
            seq + 1
        );
    }
    reader.shutdown().await;
    relay.shutdown().await;
    source.shutdown().await;
}

/// Takes in entries up to `#upto` of every feed and declines the rest.
struct UpTo {
    upto: Arc<std::sync::atomic::AtomicU64>,
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl scrip_replicate::AttachmentCheck for UpTo {
    fn accept(&self, _entry: &Entry, _kind: &str, _bytes: &[u8], _batch: &[Entry]) -> bool {
        true
    }

    fn admit(&self, entry: &Entry, _batch: &[Entry]) -> Result<(), String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let upto = self.upto.load(Ordering::SeqCst);
        if entry.seq().get() <= upto {
            Ok(())
        } else {
            Err(format!("only up to #{upto} here"))
        }
    }
}

/// A node's policy may decline entries before they are checked (`AttachmentCheck::admit`): what
/// it takes in is stored, the first declined entry and those after it are not checked or
/// stored, and the feed is not taken from that peer for the decline backoff; then it is asked
/// again, and what the policy now takes comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_node_declines_are_not_stored_and_asked_for_again_after_a_while() {
    let author = Keypair::from_seed(&[9; 32]);
    let feed = author.id();
    let source_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    write(source_store.as_ref(), &author, 1, 5);
    let source = Node::spawn(
        Arc::new(Keypair::from_seed(&[1; 32])),
        Arc::clone(&source_store),
        Tcp,
        config(vec![], feed),
    )
    .await
    .unwrap();
    let sink_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (upto, asked) = (
        Arc::new(std::sync::atomic::AtomicU64::new(2)),
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let sink = Node::spawn_with(
        Arc::new(Keypair::from_seed(&[2; 32])),
        Arc::clone(&sink_store),
        Tcp,
        NodeConfig {
            decline_backoff: Duration::from_secs(1),
            ..config(
                vec![(
                    source.listen_address().unwrap().to_owned(),
                    Some(source.id()),
                )],
                feed,
            )
        },
        Arc::new(UpTo {
            upto: Arc::clone(&upto),
            asked: Arc::clone(&asked),
        }),
    )
    .await
    .unwrap();
    let mut events = sink.events();
    let reason = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(scrip_replicate::Event::Declined {
                feed: declined,
                reason,
                ..
            }) = events.recv().await
                && declined == feed
            {
                return reason;
            }
        }
    })
    .await
    .expect("the sink never declined the feed");
    assert_eq!(reason, "only up to #2 here");
    assert_eq!(
        sink_store.head(&feed).unwrap().map(|h| h.seq.get()),
        Some(2)
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "asked about #1..#3: nothing after the first declined entry"
    );

    // The policy now takes everything: after the backoff, the feed is asked for again.
    upto.store(u64::MAX, Ordering::SeqCst);
    wait_for_head(
        sink_store.as_ref(),
        &feed,
        5,
        "the feed was never asked for again",
    )
    .await;
    sink.shutdown().await;
    source.shutdown().await;
}
