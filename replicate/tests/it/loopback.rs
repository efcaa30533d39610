//! Real nodes over loopback TCP: a line of 10 nodes converges on every followed feed; a node
//! joining late catches up; a node restarted from its sled store resumes without re-downloading.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{Content, FeedId, Keypair, MemoryStore, SledOptions, SledStore, Store, Timestamp};
use scrip_replicate::transport::{Tcp, TransportConfig};
use scrip_replicate::{Event, Node, NodeConfig, NodeHandle};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

fn key(n: u8) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[n; 32]))
}

fn config(peers: Vec<(String, Option<FeedId>)>, seed: u64) -> NodeConfig {
    NodeConfig {
        listen: Some("127.0.0.1:0".into()),
        peers,
        hops: 1,
        tick: Duration::from_millis(50),
        request_timeout: Duration::from_secs(2),
        transport: TransportConfig {
            handshake_timeout: Duration::from_secs(5),
            ..TransportConfig::default()
        },
        seed,
        ..NodeConfig::default()
    }
}

/// Publishes follows of every other key, then `posts` posts.
fn seed_feed(store: &dyn Store, me: &Keypair, everyone: &[Arc<Keypair>], posts: usize) {
    let mut t = 0;
    for other in everyone {
        if other.id() != me.id() {
            t += 1;
            store
                .publish(
                    me,
                    Timestamp::from_millis(t),
                    Content::Follow { feed: other.id() }.encode().unwrap(),
                )
                .unwrap();
        }
    }
    for i in 0..posts {
        t += 1;
        let text = format!("post {i} by {}", me.id().short());
        store
            .publish(
                me,
                Timestamp::from_millis(t),
                Content::Post { text }.encode().unwrap(),
            )
            .unwrap();
    }
}

fn heads(store: &dyn Store) -> BTreeMap<FeedId, u64> {
    store.heads().unwrap()
}

async fn converge(stores: &[Arc<dyn Store>], expected: &BTreeMap<FeedId, u64>, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let done = stores.iter().all(|s| heads(s.as_ref()) == *expected);
        if done {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            for (i, s) in stores.iter().enumerate() {
                let h = heads(s.as_ref());
                let missing: u64 = expected
                    .iter()
                    .map(|(f, n)| n - h.get(f).copied().unwrap_or(0).min(*n))
                    .sum();
                let lacking: Vec<String> = expected
                    .iter()
                    .filter(|(f, n)| h.get(f).copied().unwrap_or(0) < **n)
                    .map(|(f, _)| f.short())
                    .collect();
                eprintln!(
                    "node {i}: {} feeds, {missing} entries missing: {lacking:?}",
                    h.len()
                );
            }
            panic!("no convergence within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_in_a_line_converge_and_a_late_node_catches_up() {
    init_logs();
    let keys: Vec<Arc<Keypair>> = (1..=11).map(key).collect();
    let stores: Vec<Arc<dyn Store>> = (0..11)
        .map(|_| Arc::new(MemoryStore::new()) as Arc<dyn Store>)
        .collect();
    for i in 0..11 {
        seed_feed(stores[i].as_ref(), &keys[i], &keys, 20);
    }
    let mut nodes: Vec<NodeHandle<Tcp>> = Vec::new();
    for i in 0..10 {
        // Each node dials only its predecessor: a line.
        let peers = nodes
            .last()
            .map(|prev: &NodeHandle<Tcp>| {
                vec![(prev.listen_address().unwrap().to_string(), Some(prev.id()))]
            })
            .unwrap_or_default();
        let node = Node::spawn(
            Arc::clone(&keys[i]),
            Arc::clone(&stores[i]),
            Tcp,
            config(peers, i as u64),
        )
        .await
        .unwrap();
        nodes.push(node);
    }
    // Everyone's feed: 10 follows + 20 posts (the 11th key is followed but not yet running).
    let mut expected: BTreeMap<FeedId, u64> = keys[..10].iter().map(|k| (k.id(), 30)).collect();
    converge(&stores[..10], &expected, Duration::from_secs(60)).await;

    // Live: a new post on node 0 reaches node 9, nine hops away.
    nodes[0]
        .publish(
            &Content::Post {
                text: "live".into(),
            },
            Timestamp::from_millis(99),
        )
        .await
        .unwrap();
    expected.insert(keys[0].id(), 31);
    converge(&stores[..10], &expected, Duration::from_secs(30)).await;

    // A late node joins at the end of the line and catches up on everything; its own feed
    // spreads back.
    let last = nodes.last().unwrap();
    let late = Node::spawn(
        Arc::clone(&keys[10]),
        Arc::clone(&stores[10]),
        Tcp,
        config(
            vec![(last.listen_address().unwrap().to_string(), Some(last.id()))],
            10,
        ),
    )
    .await
    .unwrap();
    expected.insert(keys[10].id(), 30);
    converge(&stores, &expected, Duration::from_secs(60)).await;
    late.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_from_disk_without_re_downloading() {
    init_logs();
    let keys: Vec<Arc<Keypair>> = (1..=2).map(key).collect();
    let dir = tempfile::tempdir().unwrap();
    let hub_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    seed_feed(hub_store.as_ref(), &keys[0], &keys, 300);
    let hub = Node::spawn(
        Arc::clone(&keys[0]),
        Arc::clone(&hub_store),
        Tcp,
        config(vec![], 1),
    )
    .await
    .unwrap();
    let hub_address = hub.listen_address().unwrap().to_string();

    let open = || -> Arc<dyn Store> {
        Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap())
    };
    {
        let store = open();
        seed_feed(store.as_ref(), &keys[1], &keys, 0);
        let node = Node::spawn(
            Arc::clone(&keys[1]),
            Arc::clone(&store),
            Tcp,
            config(vec![(hub_address.clone(), Some(hub.id()))], 2),
        )
        .await
        .unwrap();
        let expected = BTreeMap::from([(keys[0].id(), 301), (keys[1].id(), 1)]);
        converge(
            &[Arc::clone(&store), Arc::clone(&hub_store)],
            &expected,
            Duration::from_secs(30),
        )
        .await;
        node.shutdown().await;
    }
    // While it is down, the hub publishes 50 more.
    for i in 0..50 {
        hub.publish(
            &Content::Post {
                text: format!("more {i}"),
            },
            Timestamp::from_millis(i),
        )
        .await
        .unwrap();
    }
    let store = open();
    let node = Node::spawn(
        Arc::clone(&keys[1]),
        Arc::clone(&store),
        Tcp,
        config(vec![(hub_address, Some(hub.id()))], 3),
    )
    .await
    .unwrap();
    let mut events = node.events();
    let expected = BTreeMap::from([(keys[0].id(), 351), (keys[1].id(), 1)]);
    converge(&[Arc::clone(&store)], &expected, Duration::from_secs(30)).await;
    // Exactly the 50 missing entries crossed the wire.
    let mut received = 0;
    while let Ok(event) = events.try_recv() {
        if let Event::Stored {
            received: n,
            from: Some(_),
            ..
        } = event
        {
            received += n;
        }
    }
    assert_eq!(received, 50);
    node.shutdown().await;
    hub.shutdown().await;
}

/// A visited feed (`scrip audit`, `scrip sync` in a daemon) is replicated while a visit
/// stands, is dropped from the scope when the last visit ends, and a visit's end never drops a
/// feed the application requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visited_feed_is_replicated_until_the_last_visit_ends() {
    init_logs();
    let keys: Vec<Arc<Keypair>> = (1..=3).map(key).collect();
    let stranger = keys[2].id();
    let hub_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    seed_feed(hub_store.as_ref(), &keys[0], &keys[..1], 0);
    seed_feed(hub_store.as_ref(), &keys[2], &keys[..1], 20);
    let hub = Node::spawn(
        Arc::clone(&keys[0]),
        Arc::clone(&hub_store),
        Tcp,
        config(vec![], 1),
    )
    .await
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let node = Node::spawn(
        Arc::clone(&keys[1]),
        Arc::clone(&store),
        Tcp,
        config(
            vec![(hub.listen_address().unwrap().to_string(), Some(hub.id()))],
            2,
        ),
    )
    .await
    .unwrap();
    let in_scope = |status: scrip_replicate::NodeStatus| status.scope.contains_key(&stranger);
    assert!(!in_scope(node.status().await.unwrap()), "nobody follows it");
    node.visit_feed(stranger).await.unwrap();
    node.visit_feed(stranger).await.unwrap();
    assert!(in_scope(node.status().await.unwrap()), "visited");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.head(&stranger).unwrap().map(|h| h.seq.get()) != Some(21) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the visited feed never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.leave_feed(stranger).await.unwrap();
    assert!(
        in_scope(node.status().await.unwrap()),
        "one visit still stands"
    );
    node.leave_feed(stranger).await.unwrap();
    assert!(
        !in_scope(node.status().await.unwrap()),
        "the last visit ended"
    );
    node.request_feed(stranger).await.unwrap();
    node.visit_feed(stranger).await.unwrap();
    node.leave_feed(stranger).await.unwrap();
    assert!(
        in_scope(node.status().await.unwrap()),
        "still requested by the application"
    );
    node.shutdown().await;
    hub.shutdown().await;
}
