//! A byzantine peer against an honest node over loopback TCP: bad signatures, broken chains,
//! forks, oversized and garbage messages, floods. The honest node must cut it off (or stop
//! taking the feed from it), store nothing invalid, and keep replicating from honest peers.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{Content, Entry, FeedId, Head, Keypair, MemoryStore, Seq, Store, Timestamp};
use scrip_replicate::transport::{self, LocalIdentity, SecureStream, Tcp, TransportConfig};
use scrip_replicate::wire::{self, Entries, Hello, Message, Note, WireEntry};
use scrip_replicate::{Event, Node, NodeConfig, NodeHandle};
use tokio::net::TcpStream;

fn key(n: u8) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[n; 32]))
}

fn config(peers: Vec<(String, Option<FeedId>)>) -> NodeConfig {
    NodeConfig {
        listen: Some("127.0.0.1:0".into()),
        peers,
        hops: 1,
        tick: Duration::from_millis(50),
        request_timeout: Duration::from_secs(1),
        transport: TransportConfig {
            handshake_timeout: Duration::from_secs(5),
            ..TransportConfig::default()
        },
        ..NodeConfig::default()
    }
}

fn chain(author: &Keypair, head: Option<Head>, n: usize, tag: &str) -> Vec<Entry> {
    let mut head = head;
    (0..n)
        .map(|i| {
            let text = format!("{tag} {i}");
            let e = Entry::create(
                author,
                head,
                Timestamp::from_millis(i as u64),
                Content::Post { text }.encode().unwrap(),
            )
            .unwrap();
            head = Some(e.head());
            e
        })
        .collect()
}

fn wire_entries(feed: FeedId, entries: &[Entry]) -> Message {
    Message::Entries(Entries {
        feed,
        items: entries
            .iter()
            .map(|e| WireEntry {
                header: e.header_bytes().to_vec(),
                payload: e.payload().map(<[u8]>::to_vec),
                attachments: vec![],
            })
            .collect(),
    })
}

fn assert_all_valid(store: &dyn Store) {
    for author in store.authors().unwrap() {
        let mut head = None;
        for entry in store.range(&author, Seq::FIRST, usize::MAX).unwrap() {
            scrip_feed::validate::validate_entry(&author, head.as_ref(), &entry).unwrap();
            head = Some(entry.head());
        }
    }
}

/// The honest node under attack: it follows `feed`, and an honest peer holds `honest` of it.
struct Scene {
    node: NodeHandle<Tcp>,
    store: Arc<MemoryStore>,
    honest: NodeHandle<Tcp>,
    honest_store: Arc<MemoryStore>,
}

async fn scene(author: &Keypair, honest_entries: &[Entry]) -> Scene {
    let me = key(1);
    let store = Arc::new(MemoryStore::new());
    store
        .publish(
            &me,
            Timestamp::default(),
            Content::Follow { feed: author.id() }.encode().unwrap(),
        )
        .unwrap();
    let node = Node::spawn(
        Arc::clone(&me),
        store.clone() as Arc<dyn Store>,
        Tcp,
        config(vec![]),
    )
    .await
    .unwrap();
    let honest_store = Arc::new(MemoryStore::new());
    honest_store.ingest(honest_entries.to_vec()).unwrap();
    let honest_key = key(2);
    honest_store
        .publish(
            &honest_key,
            Timestamp::default(),
            Content::Follow { feed: author.id() }.encode().unwrap(),
        )
        .unwrap();
    let honest = Node::spawn(
        honest_key,
        honest_store.clone() as Arc<dyn Store>,
        Tcp,
        NodeConfig {
            listen: None,
            ..config(vec![(
                node.listen_address().unwrap().to_string(),
                Some(node.id()),
            )])
        },
    )
    .await
    .unwrap();
    Scene {
        node,
        store,
        honest,
        honest_store,
    }
}

async fn attacker(node: &NodeHandle<Tcp>, me: u8) -> SecureStream<TcpStream> {
    attacker_with(node, me, &TransportConfig::default()).await
}

async fn attacker_with(
    node: &NodeHandle<Tcp>,
    me: u8,
    transport_config: &TransportConfig,
) -> SecureStream<TcpStream> {
    let identity = LocalIdentity::new(key(me)).unwrap();
    let tcp = TcpStream::connect(node.listen_address().unwrap())
        .await
        .unwrap();
    transport::connect(tcp, &identity, Some(node.id()), transport_config)
        .await
        .unwrap()
}

async fn send(stream: &mut SecureStream<TcpStream>, message: &Message) -> bool {
    stream.send(&wire::encode(message).unwrap()).await.is_ok()
}

async fn hello(stream: &mut SecureStream<TcpStream>, notes: Vec<(FeedId, Note)>) {
    let hello = Message::Hello(Hello {
        protocol: wire::PROTOCOL_NAME.into(),
        version: wire::PROTOCOL_VERSION,
        features: vec![],
        epoch: 99,
        known_epoch: None,
        received_notes: None,
        sent_notes: None,
    });
    assert!(send(stream, &hello).await);
    assert!(send(stream, &Message::Clock(notes)).await);
}

/// Reads until the node closes the connection (or says goodbye); false on timeout.
async fn cut_off(stream: &mut SecureStream<TcpStream>) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.recv().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return true,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Waits (at most 10 s) for the first event that `matches` accepts; fails naming `what` if none
/// comes. Negative tests wait for the refusal they expect, never for time to pass.
async fn expect_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    mut matches: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = matches(&event) {
                        return Some(found);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    found.unwrap_or_else(|| panic!("no event: {what}"))
}

async fn wait_for(store: &dyn Store, feed: &FeedId, seq: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.head(feed).unwrap().map_or(0, |h| h.seq.get()) < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replication up to {seq}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_and_the_feed_comes_from_an_honest_peer() {
    let author = key(9);
    let entries = chain(&author, None, 20, "real");
    let Scene {
        node,
        store,
        honest,
        ..
    } = scene(&author, &entries).await;
    let mut events = node.events();
    let mut bad = attacker(&node, 66).await;
    // Claim more of the feed than anyone, so the node asks us for it.
    hello(
        &mut bad,
        vec![(
            author.id(),
            Note::At {
                seq: 1000,
                send: false,
            },
        )],
    )
    .await;
    // Forge: real headers with flipped signature bits.
    let forged: Vec<Entry> = entries
        .iter()
        .map(|e| {
            let mut bytes = e.header_bytes().to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            Entry::decode(&bytes, e.payload().map(<[u8]>::to_vec)).unwrap()
        })
        .collect();
    send(&mut bad, &wire_entries(author.id(), &forged)).await;
    // The node stops taking the feed from us, and gets it from the honest peer.
    wait_for(store.as_ref(), &author.id(), 20).await;
    assert_eq!(store.range(&author.id(), Seq::FIRST, 100).unwrap(), entries);
    // The refusal is reported (it may come after the honest peer's entries).
    let feed = author.id();
    expect_event(&mut events, "the refusal reported", |e| {
        matches!(e, Event::Refused { feed: f, .. } if *f == feed).then_some(())
    })
    .await;
    assert_all_valid(store.as_ref());
    drop(bad);
    honest.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chain_is_refused() {
    let author = key(9);
    let entries = chain(&author, None, 10, "real");
    let Scene {
        node,
        store,
        honest,
        ..
    } = scene(&author, &entries[..5]).await;
    wait_for(store.as_ref(), &author.id(), 5).await;
    let mut events = node.events();
    let mut bad = attacker(&node, 66).await;
    hello(
        &mut bad,
        vec![(
            author.id(),
            Note::At {
                seq: 1000,
                send: false,
            },
        )],
    )
    .await;
    // Entries 6.. of another branch, which do not link to entry 5: no proof is possible,
    // so the node asks once to resend from 5, then refuses the feed from us.
    let other = chain(&author, None, 7, "other");
    send(&mut bad, &wire_entries(author.id(), &other[5..])).await;
    send(&mut bad, &wire_entries(author.id(), &other[5..])).await;
    let (bad_id, feed) = (key(66).id(), author.id());
    expect_event(&mut events, "the feed refused from the attacker", |e| {
        matches!(e, Event::Refused { peer, feed: f, .. } if *peer == bad_id && *f == feed)
            .then_some(())
    })
    .await;
    assert_eq!(
        store.range(&author.id(), Seq::FIRST, 100).unwrap(),
        entries[..5]
    );
    assert_all_valid(store.as_ref());
    drop(bad);
    honest.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_is_proven_frozen_and_gossiped_to_honest_peers() {
    let author = key(9);
    let entries = chain(&author, None, 6, "real");
    let Scene {
        node,
        store,
        honest,
        honest_store,
    } = scene(&author, &entries).await;
    wait_for(store.as_ref(), &author.id(), 6).await;
    let mut relay = attacker(&node, 66).await;
    hello(
        &mut relay,
        vec![(
            author.id(),
            Note::At {
                seq: 3,
                send: false,
            },
        )],
    )
    .await;
    // The node sends us what we lack; we answer with the author's other branch from #4.
    let rival = chain(&author, Some(entries[2].head()), 3, "rival");
    send(&mut relay, &wire_entries(author.id(), &rival)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let here = store.fork_proof(&author.id()).unwrap();
        let there = honest_store.fork_proof(&author.id()).unwrap();
        if let (Some(here), Some(there)) = (here, there) {
            assert_eq!(here, there);
            assert_eq!(here.seq(), Seq::new(4));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fork was not proven and gossiped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Frozen: the honest branch stays as it was, nothing of the rival branch is stored.
    assert_eq!(store.range(&author.id(), Seq::FIRST, 100).unwrap(), entries);
    assert_all_valid(store.as_ref());
    drop(relay);
    honest.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_fork_proof_is_not_believed() {
    let author = key(9);
    let entries = chain(&author, None, 3, "real");
    let Scene {
        node,
        store,
        honest,
        ..
    } = scene(&author, &entries).await;
    let mut events = node.events();
    let mut bad = attacker(&node, 66).await;
    hello(&mut bad, vec![]).await;
    // Two headers by different authors are no fork proof.
    let other = chain(&key(10), None, 1, "x");
    let fake = postcard::to_stdvec(&(
        1u8,
        entries[0].header_bytes().to_vec(),
        other[0].header_bytes().to_vec(),
    ))
    .unwrap();
    send(&mut bad, &Message::ForkProof(fake)).await;
    send(&mut bad, &Message::ForkProof(vec![1, 2, 3])).await;
    // The node refuses the proof, names the peer and drops it.
    let bad_id = key(66).id();
    let reason = expect_event(&mut events, "the invalid proof refused", |e| match e {
        Event::ProofRefused { peer, reason, .. } if *peer == bad_id => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("invalid fork proof"), "{reason}");
    assert!(cut_off(&mut bad).await, "the peer that sent it is dropped");
    assert_eq!(store.fork_proofs().unwrap(), vec![]);
    drop(bad);
    honest.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_cut_the_peer_off_while_honest_replication_goes_on() {
    let author = key(9);
    let entries = chain(&author, None, 10, "real");
    let Scene {
        node,
        store,
        honest,
        honest_store,
    } = scene(&author, &entries).await;
    wait_for(store.as_ref(), &author.id(), 10).await;

    // Garbage: not a message.
    let mut bad = attacker(&node, 66).await;
    hello(&mut bad, vec![]).await;
    bad.send(&[1, 250, 3, 4]).await.unwrap();
    assert!(cut_off(&mut bad).await, "garbage did not cut the peer off");

    // Oversized: more than the largest message (our side is configured to allow sending it).
    let limit = TransportConfig::default().max_message_bytes;
    let lax = TransportConfig {
        max_message_bytes: limit * 2,
        ..TransportConfig::default()
    };
    let mut big = attacker_with(&node, 67, &lax).await;
    hello(&mut big, vec![]).await;
    let _ = big.send(&vec![0u8; limit + 1]).await;
    assert!(
        cut_off(&mut big).await,
        "an oversized message did not cut the peer off"
    );

    // A message before Hello is a protocol violation.
    let mut early = attacker(&node, 68).await;
    send(&mut early, &Message::Clock(vec![])).await;
    assert!(cut_off(&mut early).await);

    // Honest replication continues: new entries still arrive.
    let more = chain(&author, Some(entries[9].head()), 5, "more");
    honest_store.ingest(more.clone()).unwrap();
    honest.announce(author.id(), 15).await.unwrap();
    wait_for(store.as_ref(), &author.id(), 15).await;
    assert_all_valid(store.as_ref());
    honest.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsolicited_entries_cuts_the_peer_off() {
    let author = key(9);
    let stranger = key(11);
    let entries = chain(&author, None, 3, "real");
    let Scene {
        node,
        store,
        honest,
        ..
    } = scene(&author, &entries).await;
    let mut bad = attacker(&node, 66).await;
    hello(&mut bad, vec![]).await;
    let junk = chain(&stranger, None, 1, "junk");
    let message = wire_entries(stranger.id(), &junk);
    let mut cut = false;
    for _ in 0..1000 {
        if !send(&mut bad, &message).await {
            cut = true;
            break;
        }
    }
    assert!(cut || cut_off(&mut bad).await, "the flood was not cut off");
    assert_eq!(
        store.head(&stranger.id()).unwrap(),
        None,
        "unsolicited entries were stored"
    );
    honest.shutdown().await;
    node.shutdown().await;
}

/// Opens `n` TCP connections to `target` from source address `source` and sends nothing.
async fn silent_sockets(target: &str, source: &str, n: usize) -> Vec<TcpStream> {
    scrip_replicate::bench::silent_sockets(target.parse().unwrap(), source, n).await
}

/// `n` authenticated sessions (distinct identities, from `source`) that then say nothing.
async fn idle_sessions(
    target: &str,
    source: &str,
    n: usize,
    seed: u8,
) -> Vec<SecureStream<TcpStream>> {
    let target: std::net::SocketAddr = target.parse().unwrap();
    let mut sessions = Vec::new();
    for i in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let Ok(tcp) = socket.connect(target).await else {
            continue;
        };
        let mut bytes = [seed; 32];
        bytes[0] = i as u8;
        bytes[1] = (i >> 8) as u8;
        let identity = LocalIdentity::new(Arc::new(Keypair::from_seed(&bytes))).unwrap();
        if let Ok(session) =
            transport::connect(tcp, &identity, None, &TransportConfig::default()).await
        {
            sessions.push(session);
        }
    }
    sessions
}

/// A fresh node syncing `feed` (`entries` of it) from `target`; returns how long it took.
async fn sync_from(target: &str, id: FeedId, feed: FeedId, entries: u64, seed: u8) -> Duration {
    let store = Arc::new(MemoryStore::new());
    let started = tokio::time::Instant::now();
    let node = Node::spawn(
        key(seed),
        Arc::clone(&store) as Arc<dyn Store>,
        Tcp,
        NodeConfig {
            listen: None,
            explicit: [feed].into(),
            ..config(vec![(target.to_owned(), Some(id))])
        },
    )
    .await
    .unwrap();
    let deadline = started + Duration::from_secs(60);
    while store.head(&feed).unwrap().map_or(0, |h| h.seq.get()) < entries {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a legitimate peer could not sync under attack"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    node.shutdown().await;
    took
}

/// Silent sockets hold only a handshake place (a few per source, a short timeout), and idle
/// authenticated sessions give their slot to a newcomer: a legitimate peer still syncs.
/// `SCRIP_FLOOD_SOCKETS` sets the number of silent sockets (default 2,000, or fewer if the
/// file-descriptor limit is low); the sessions are 100 for 32 slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_sockets_and_idle_sessions_does_not_lock_a_peer_out() {
    let sockets = scrip_feed::bench::env_usize("SCRIP_FLOOD_SOCKETS", 2000)
        .min(scrip_replicate::bench::open_files_limit().saturating_sub(512) / 2);
    let author = key(60);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let entries = chain(&author, None, 300, "flood");
    store.ingest(entries).unwrap();
    let victim = Node::spawn(
        key(61),
        Arc::clone(&store),
        Tcp,
        NodeConfig {
            explicit: [author.id()].into(),
            idle_before_eviction: Duration::from_millis(300),
            ..config(vec![])
        },
    )
    .await
    .unwrap();
    let address = victim.listen_address().unwrap().to_owned();
    let calm = sync_from(&address, victim.id(), author.id(), 300, 62).await;

    // Silent sockets from one source, then 100 idle authenticated sessions from another.
    let _silent = silent_sockets(&address, "127.0.0.2", sockets).await;
    let idle = idle_sessions(&address, "127.0.0.3", 100, 63).await;
    assert!(idle.len() >= 32, "{} sessions", idle.len());
    // Every slot is held by one of them; once they have been idle long enough, a newcomer may
    // take one.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let attacked = sync_from(&address, victim.id(), author.id(), 300, 64).await;
    eprintln!(
        "flood: {sockets} silent sockets, 100 idle sessions: sync of 300 entries took {attacked:?} (calm {calm:?})"
    );
    victim.shutdown().await;
}

/// A peer floods notes about made-up feeds (`SCRIP_FLOOD_NOTES`, default 200,000; the long
/// run is 10,000,000): the node keeps at most `MAX_OTHER_NOTES_PER_PEER` of them, reports none,
/// remembers none after the session, and keeps replicating from an honest peer. The resident
/// memory grows by less than 12 MiB (kept, 200,000 notes take about 30 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_notes_about_made_up_feeds_is_not_kept() {
    // Its memory figure is of the whole process: measured in one running this test alone.
    if !scrip_feed::bench::run_alone("byzantine::a_flood_of_notes_about_made_up_feeds_is_not_kept")
    {
        return;
    }
    let notes = scrip_feed::bench::env_usize("SCRIP_FLOOD_NOTES", 200_000);
    let author = key(70);
    let entries = chain(&author, None, 40, "real");
    let Scene {
        node,
        store,
        honest,
        honest_store,
    } = scene(&author, &entries[..20]).await;
    wait_for(store.as_ref(), &author.id(), 20).await;
    let mut stream = attacker(&node, 71).await;
    hello(&mut stream, vec![]).await;
    let before = scrip_feed::bench::resident_bytes();
    let mut rng = scrip_feed::rng::SplitMix64::new(7);
    let mut sent = 0;
    while sent < notes {
        let batch: Vec<(FeedId, Note)> = (0..4096.min(notes - sent))
            .map(|_| {
                let mut bytes = [0u8; 32];
                for chunk in bytes.chunks_mut(8) {
                    chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
                }
                (FeedId::from_bytes(bytes), Note::At { seq: 5, send: true })
            })
            .collect();
        sent += batch.len();
        assert!(
            send(&mut stream, &Message::Clock(batch)).await,
            "cut off at {sent}"
        );
    }
    // Everything sent before it has been handled once the node answers a note about a feed it
    // holds with that feed's entries.
    assert!(
        send(
            &mut stream,
            &Message::Clock(vec![(author.id(), Note::At { seq: 0, send: true })])
        )
        .await
    );
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.recv().await {
                Ok(Some(bytes)) => {
                    if let Ok(Message::Entries(entries)) = wire::decode(&bytes)
                        && entries.feed == author.id()
                    {
                        return true;
                    }
                }
                Ok(None) | Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        answered,
        "the node stopped serving the attacker's real request"
    );
    let grown = scrip_feed::bench::resident_bytes().saturating_sub(before);
    eprintln!(
        "notes flood: {notes} notes, resident memory grew by {} KiB",
        grown / 1024
    );
    assert!(
        grown < 12 << 20,
        "{notes} notes about made-up feeds grew the node by {grown} bytes"
    );
    // Legitimate traffic goes on: new entries from the honest peer arrive.
    honest_store.ingest(entries[20..].to_vec()).unwrap();
    honest.announce(author.id(), 40).await.unwrap();
    wait_for(store.as_ref(), &author.id(), 40).await;
    node.shutdown().await;
    honest.shutdown().await;
}
