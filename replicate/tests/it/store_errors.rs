//! A store that fails to read is reported and retried with backoff, never spun on. (The node
//! used to take a failed read of a feed for "no entries", and read the feed again at once,
//! forever: a busy loop, and unbounded recursion with store calls run inline.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scrip_feed::{Content, Error, Keypair, MemoryStore, Store, Timestamp};

use crate::common::HookedStore;
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Event, Node, NodeConfig};

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
    // Every read of the node's own feed fails, counted.
    let failed = Arc::new(AtomicUsize::new(0));
    let mut store = HookedStore::new(inner);
    let (counter, own) = (Arc::clone(&failed), key.id());
    store.read = Box::new(move |feed| {
        (*feed == own).then(|| {
            counter.fetch_add(1, Ordering::SeqCst);
            Error::io(
                "reading a chunk",
                &std::io::Error::other("injected read failure"),
            )
        })
    });
    let store = Arc::new(store);
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
    let reads = failed.load(Ordering::SeqCst);
    assert!((2..=3).contains(&reads), "{reads} reads");
    node.shutdown().await;
}
