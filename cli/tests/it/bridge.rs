//! Notaries as ordinary peers: each notary runs beside a replicate node sharing its store,
//! joined by the bridge (`scrip_cli::bridge`, where the two are composed). A notary that was down while a wallet moved on catches up from
//! the other notaries by replication alone (no client talks to it), and its certificates are
//! checked on the way in.
#![allow(clippy::unwrap_used)]

// The notary tests' cluster and wallet helpers (one definition, shared).
#[path = "../../../notary/tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{key, transport, wallet};
use scrip_cli::bridge::{self, CertificateCheck};
use scrip_feed::{FeedId, Keypair, MemoryStore, Store};
use scrip_ledger::Currency;
use scrip_notary::wire::{Request, Response};
use scrip_notary::{MemoryVoteStore, Notary, NotaryAddr, NotaryConfig, NotaryHandle, VoteStore};
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Node, NodeConfig, NodeHandle};

/// One notary peer: a node and a notary service over one store, bridged.
struct Peer {
    node: NodeHandle<Tcp>,
    /// The node's events since it started.
    events: tokio::sync::broadcast::Receiver<scrip_replicate::Event>,
    notary: NotaryHandle,
    bridge: tokio::task::JoinHandle<()>,
}

/// What survives a peer's restart: its key, stores and addresses.
struct Disk {
    key: Arc<Keypair>,
    store: Arc<dyn Store>,
    votes: Arc<dyn VoteStore>,
    notary_address: String,
}

async fn start_peer(disk: &Disk, peers: Vec<(String, Option<FeedId>)>) -> (Peer, String) {
    start_peer_vouching(disk, peers, None).await
}

/// [`start_peer`], as `scrip serve --notary` runs it when `vouched` is given: the bounds on
/// strangers apply to every wallet outside `vouched`, and the node takes in of a stranger's
/// wallet only what the notary voted for.
async fn start_peer_vouching(
    disk: &Disk,
    peers: Vec<(String, Option<FeedId>)>,
    vouched: Option<bridge::Vouched>,
) -> (Peer, String) {
    let mut check = CertificateCheck::new(Arc::clone(&disk.store));
    if let Some(vouched) = &vouched {
        check = check.for_notary(disk.key.id(), vouched.clone(), Arc::clone(&disk.votes));
    }
    let node = Node::spawn_with(
        Arc::clone(&disk.key),
        Arc::clone(&disk.store),
        Tcp,
        NodeConfig {
            listen: Some("127.0.0.1:0".into()),
            peers,
            transport: transport(),
            tick: Duration::from_millis(50),
            ..NodeConfig::default()
        },
        Arc::new(check),
    )
    .await
    .unwrap();
    let events = node.events();
    let notary = Notary::spawn(
        Arc::clone(&disk.key),
        Arc::clone(&disk.store),
        Arc::clone(&disk.votes),
        Tcp,
        NotaryConfig {
            listen: disk.notary_address.clone(),
            transport: transport(),
            new_wallets_per_hour: vouched.as_ref().map(|_| 1000),
            stranger_entries_per_sec: vouched.as_ref().map(|_| 1000),
            vouched: vouched.as_ref().map(bridge::Vouched::for_notary),
            ..NotaryConfig::default()
        },
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    let bridge = bridge::bridge(node.link(), &notary);
    let node_address = node.listen_address().unwrap().to_string();
    (
        Peer {
            node,
            events,
            notary,
            bridge,
        },
        node_address,
    )
}

/// Where the notaries of `disks` answer.
fn notary_addrs(disks: &[Disk]) -> Vec<NotaryAddr> {
    disks
        .iter()
        .map(|d| NotaryAddr {
            id: d.key.id(),
            address: d.notary_address.clone(),
        })
        .collect()
}

async fn stop_peer(peer: Peer) {
    peer.notary.shutdown().await;
    peer.node.shutdown().await;
    let _ = peer.bridge.await;
}

async fn certified_head(notary: &NotaryHandle, wallet: FeedId) -> u64 {
    match notary.ask(Request::SlotQuery { wallet }).await.unwrap() {
        Response::SlotInfo(info) => info.certified_head,
        other => panic!("expected slot info, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_that_was_down_catches_up_by_gossip_alone() {
    let mut disks = Vec::new();
    for i in 0..4u8 {
        // A fixed notary port, so that the wallet's address book stays right across a restart.
        let notary_address = crate::common::fixed_port();
        disks.push(Disk {
            key: key(40 + i),
            store: Arc::new(MemoryStore::new()),
            votes: Arc::new(MemoryVoteStore::new()),
            notary_address,
        });
    }
    let mut peers: Vec<Option<Peer>> = Vec::new();
    let mut node_addresses: Vec<(String, Option<FeedId>)> = Vec::new();
    for disk in &disks {
        let (peer, address) = start_peer(disk, node_addresses.clone()).await;
        node_addresses.push((address, Some(disk.key.id())));
        peers.push(Some(peer));
    }
    let addrs = notary_addrs(&disks);

    let mut alice = wallet(1, addrs);
    alice.client.create().await.unwrap();
    let eur = Currency::new(alice.id(), "EUR", 2).unwrap();
    alice.mint(&eur, 1_000).await;

    // Notary 3 goes down; the wallet goes on with the other three (q = 3).
    stop_peer(peers[3].take().unwrap()).await;
    let bob = key(2).id();
    for amount in 1..=4 {
        alice
            .client
            .submit(&common::Wallet::order_content(bob, &eur, amount))
            .await
            .unwrap();
    }
    // The others learned #2..#5 as certified from the proposals that followed each of them;
    // #6 is certified only at the wallet so far.
    let expected = 5;
    for peer in peers.iter().flatten() {
        assert_eq!(certified_head(&peer.notary, alice.id()).await, expected);
    }

    // Notary 3 comes back with its old store: nobody but its peers talks to it.
    let others: Vec<_> = node_addresses[..3].to_vec();
    let (peer, _) = start_peer(&disks[3], others).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let head = certified_head(&peer.notary, alice.id()).await;
        if head >= expected {
            assert_eq!(head, expected);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notary 3 is stuck at #{head}, its peers hold #{expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it learned came with valid certificates, kept in its store.
    let log = scrip_notary::certified::certified_log(disks[3].store.as_ref(), &alice.id()).unwrap();
    assert_eq!(log.len() as u64, expected);

    // And it votes for the wallet's next entry again.
    peers[3] = Some(peer);
    alice
        .client
        .submit(&common::Wallet::order_content(bob, &eur, 5))
        .await
        .unwrap();
    for peer in peers.into_iter().flatten() {
        stop_peer(peer).await;
    }
}

/// A notary open to strangers takes in by gossip, of a stranger's wallet that names it, only the
/// entries it voted for: such a wallet names other notaries of its owner's choosing, which
/// could certify entries for gossip to store without end. Back after a stop, it catches up by
/// gossip on the wallet it vouches for, and declines the stranger's entries it did not vote
/// for (they come with the stranger's next proposal, within the strangers' share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_takes_in_by_gossip_only_what_it_voted_for_of_a_strangers_wallet() {
    let disks: Vec<Disk> = (0..4u8)
        .map(|i| Disk {
            key: key(70 + i),
            store: Arc::new(MemoryStore::new()),
            votes: Arc::new(MemoryVoteStore::new()),
            notary_address: crate::common::fixed_port(),
        })
        .collect();
    let addrs = notary_addrs(&disks);
    let mut alice = wallet(11, addrs.clone());
    let mut stranger = wallet(12, addrs);
    let vouched = bridge::Vouched::of([alice.id()]);
    let mut peers: Vec<Option<Peer>> = Vec::new();
    let mut node_addresses: Vec<(String, Option<FeedId>)> = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let only = (i == 0).then(|| vouched.clone());
        let (peer, address) = start_peer_vouching(disk, node_addresses.clone(), only).await;
        node_addresses.push((address, Some(disk.key.id())));
        peers.push(Some(peer));
    }

    alice.client.create().await.unwrap();
    let eur = Currency::new(alice.id(), "EUR", 2).unwrap();
    alice.mint(&eur, 100).await;
    stranger.client.create().await.unwrap();
    let xyz = Currency::new(stranger.id(), "XYZ", 0).unwrap();
    stranger.mint(&xyz, 5).await;
    stranger.mint(&xyz, 1).await;
    // Each notary learned #1..#2 with the proposals and voted for #3.
    wait_head(&disks[0].store, stranger.id(), 2).await;

    // Notary 0 stops; both wallets go on with the other three, which learn up to #3 of each.
    stop_peer(peers[0].take().unwrap()).await;
    for amount in 1..=2 {
        alice.mint(&eur, amount).await;
        stranger.mint(&xyz, amount).await;
    }
    let (peer, _) =
        start_peer_vouching(&disks[0], node_addresses[1..].to_vec(), Some(vouched)).await;
    let mut peer = peer;
    // Back, it catches up by gossip on the wallet it vouches for (#2, #3: it held #1)…
    wait_head(&disks[0].store, alice.id(), 3).await;
    // …and takes in the stranger's #3, which it voted for, and declines #4, which it did not.
    let stranger_id = stranger.id();
    let reason = wait_event(
        &mut peer.events,
        "the stranger's entries declined",
        |event| match event {
            scrip_replicate::Event::Declined { feed, reason, .. } if *feed == stranger_id => {
                Some(reason.clone())
            }
            _ => None,
        },
    )
    .await;
    assert!(reason.contains("did not vote for"), "{reason}");
    assert_eq!(
        disks[0]
            .store
            .head(&stranger_id)
            .unwrap()
            .map(|h| h.seq.get()),
        Some(3),
        "the entry it voted for taken in, the one it did not declined"
    );
    peers[0] = Some(peer);
    for peer in peers.into_iter().flatten() {
        stop_peer(peer).await;
    }
}

/// A wallet (notaries `key(60..64)`) with its genesis and a mint, and two entries for slot #3:
/// `honest` (the wallet's certified order) and `other` (a second entry signed for #3), each
/// followed by one entry (#4).
struct SplitWallet {
    kit: scrip_ledger::kit::KitWallet,
    honest: [scrip_ledger::CertifiedEntry; 2],
    other: [scrip_feed::Entry; 2],
}

fn split_wallet() -> SplitWallet {
    use scrip_ledger::content::{Order, WalletEntry};
    use scrip_ledger::kit::KitWallet;
    let notaries: Vec<Arc<Keypair>> = (60..64).map(key).collect();
    let mut kit = KitWallet::new(key(70), notaries);
    let eur = kit.currency("EUR", 2).unwrap();
    kit.mint(&eur, 1_000);
    let order = |amount| {
        WalletEntry::Order(Order {
            to: key(71).id(),
            currency: eur,
            amount: scrip_ledger::Amount::from_minor(amount),
            memo: String::new(),
            expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
            condition: None,
        })
    };
    let mut other_kit = kit.clone();
    let other3 = other_kit.sign(&order(99));
    other_kit.push_raw(other3.clone(), None);
    let other4 = other_kit.sign(&order(98));
    let mut honest_kit = kit.clone();
    honest_kit.push(&order(10));
    honest_kit.push(&order(20));
    let honest = [honest_kit.log[2].clone(), honest_kit.log[3].clone()];
    SplitWallet {
        kit,
        honest,
        other: [other3, other4],
    }
}

/// A certificate of `entry` with the votes of notaries `voters` (indices into `key(60..64)`).
fn votes_of(entry: &scrip_feed::Entry, voters: &[u8]) -> scrip_ledger::Certificate {
    let subject = scrip_ledger::verify::subject_of(entry);
    scrip_ledger::Certificate::from_votes(
        entry.id(),
        scrip_ledger::certificate::ROUND_ZERO,
        voters
            .iter()
            .map(|&i| scrip_ledger::Vote::sign(&key(60 + i), &subject))
            .collect(),
    )
}

/// A plain replicate node with the certificate check, replicating `wallet`.
async fn wallet_node(
    seed: u8,
    store: &Arc<dyn Store>,
    wallet: FeedId,
    peers: Vec<(String, Option<FeedId>)>,
) -> NodeHandle<Tcp> {
    Node::spawn_with(
        key(seed),
        Arc::clone(store),
        Tcp,
        NodeConfig {
            listen: Some("127.0.0.1:0".into()),
            peers,
            explicit: [wallet].into(),
            transport: transport(),
            tick: Duration::from_millis(50),
            ..NodeConfig::default()
        },
        Arc::new(CertificateCheck::new(Arc::clone(store))),
    )
    .await
    .unwrap()
}

/// Waits for the first event `matches` picks, within 20 s.
async fn wait_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<scrip_replicate::Event>,
    what: &str,
    mut matches: impl FnMut(&scrip_replicate::Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => {
                if let Some(found) = matches(&event) {
                    return found;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(err)) => panic!("events ended waiting for {what}: {err}"),
            Err(_) => panic!("gave up waiting for {what}"),
        }
    }
}

/// Waits (20 s at most) until `store` holds `feed` up to `seq`.
async fn wait_head(store: &Arc<dyn Store>, feed: FeedId, seq: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.head(&feed).unwrap().map_or(0, |h| h.seq.get()) < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{feed} never reached #{seq}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stores `entries` with their certificates (if any) as a peer would hold them.
fn hold(store: &dyn Store, entries: &[scrip_ledger::CertifiedEntry]) {
    let (report, _) = scrip_notary::certified::offer_certified(
        store,
        scrip_feed::store::VerifiedBatch::new(entries.iter().map(|c| c.entry.clone()).collect()),
        entries,
        true,
    )
    .unwrap();
    assert_eq!(report.refused(), 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_proposal_gossiped_beside_the_certified_entry_freezes_nothing() {
    let split = split_wallet();
    let wallet = split.kit.id();
    let bare = |entry: &scrip_feed::Entry| scrip_ledger::CertifiedEntry {
        entry: entry.clone(),
        certificate: None,
    };
    // The faulty notary 0 relays the refused proposal for #3 (and one after it) and a fork
    // proof pairing it, with its own lone vote, with the certified entry.
    let attacker: Arc<dyn Store> = Arc::new(MemoryStore::new());
    hold(attacker.as_ref(), &split.kit.log);
    hold(
        attacker.as_ref(),
        &[bare(&split.other[0]), bare(&split.other[1])],
    );
    let evidence = |certificate: scrip_ledger::Certificate| {
        vec![(
            scrip_ledger::certificate::CERTIFICATE_KIND.to_owned(),
            certificate.encode(),
        )]
    };
    let proof = scrip_feed::ForkProof::with_evidence(
        &split.other[0],
        evidence(votes_of(&split.other[0], &[0])),
        &split.honest[0].entry,
        evidence(split.honest[0].certificate.clone().unwrap()),
    )
    .unwrap();
    attacker.add_fork_proof(&proof).unwrap();
    // An honest relay holding the certified #3, and a newcomer.
    let relay: Arc<dyn Store> = Arc::new(MemoryStore::new());
    hold(relay.as_ref(), &split.kit.log);
    hold(relay.as_ref(), &split.honest[..1]);
    let newcomer: Arc<dyn Store> = Arc::new(MemoryStore::new());

    let relay_node = wallet_node(80, &relay, wallet, vec![]).await;
    let mut relay_events = relay_node.events();
    let relay_address = relay_node.listen_address().unwrap().to_string();
    let to_relay = vec![(relay_address, Some(key(80).id()))];
    let attacker_node = wallet_node(81, &attacker, wallet, to_relay.clone()).await;
    // The relay refuses the uncertified entries and the proof, naming the attacker.
    let attacker_id = key(81).id();
    let mut refused_entry = false;
    let mut refused_proof = false;
    while !(refused_entry && refused_proof) {
        let (entry, proof) = wait_event(&mut relay_events, "the relay's refusals", |e| match e {
            scrip_replicate::Event::Refused { peer, feed, reason }
                if *peer == attacker_id && *feed == wallet =>
            {
                assert!(reason.contains("certificate"), "{reason}");
                Some((true, false))
            }
            scrip_replicate::Event::ProofRefused { peer, author, .. }
                if *peer == attacker_id && *author == Some(wallet) =>
            {
                Some((false, true))
            }
            scrip_replicate::Event::ForkDetected { author, .. } if *author == wallet => {
                panic!("the relay froze the wallet on a refused proposal")
            }
            _ => None,
        })
        .await;
        refused_entry |= entry;
        refused_proof |= proof;
    }
    // The wallet goes on: its certified #4 reaches the relay, and the newcomer replicates the
    // whole wallet through it.
    hold(relay.as_ref(), &split.honest[1..]);
    relay_node.announce(wallet, 4).await.unwrap();
    let newcomer_node = wallet_node(82, &newcomer, wallet, to_relay).await;
    wait_head(&newcomer, wallet, 4).await;
    for store in [&relay, &newcomer] {
        assert!(store.fork_proofs().unwrap().is_empty());
        let log = scrip_notary::certified::certified_log(store.as_ref(), &wallet).unwrap();
        assert_eq!(log.len(), 4);
        assert!(scrip_ledger::audit(&wallet, &log).is_sound());
    }
    for node in [newcomer_node, attacker_node, relay_node] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_two_certified_entries_for_one_slot_give_a_gossiped_proof() {
    let split = split_wallet();
    let wallet = split.kit.id();
    // f + 1 = 2 faulty notaries (0 and 1) vote for both entries of #3 (and of #4): each gets a
    // quorum with one honest notary.
    let certified = |entry: &scrip_feed::Entry, voters: &[u8]| scrip_ledger::CertifiedEntry {
        entry: entry.clone(),
        certificate: Some(votes_of(entry, voters)),
    };
    let forker: Arc<dyn Store> = Arc::new(MemoryStore::new());
    hold(forker.as_ref(), &split.kit.log);
    hold(
        forker.as_ref(),
        &[
            certified(&split.other[0], &[0, 1, 2]),
            certified(&split.other[1], &[0, 1, 2]),
        ],
    );
    let relay: Arc<dyn Store> = Arc::new(MemoryStore::new());
    hold(relay.as_ref(), &split.kit.log);
    hold(
        relay.as_ref(),
        &[certified(&split.honest[0].entry, &[0, 1, 3])],
    );
    let newcomer: Arc<dyn Store> = Arc::new(MemoryStore::new());

    let relay_node = wallet_node(83, &relay, wallet, vec![]).await;
    let relay_address = relay_node.listen_address().unwrap().to_string();
    let to_relay = vec![(relay_address, Some(key(83).id()))];
    // The newcomer first, so that the proof reaches it by gossip, not on connect.
    let newcomer_node = wallet_node(84, &newcomer, wallet, to_relay.clone()).await;
    let mut newcomer_events = newcomer_node.events();
    wait_head(&newcomer, wallet, 3).await;
    let forker_node = wallet_node(85, &forker, wallet, to_relay).await;
    let seq = wait_event(
        &mut newcomer_events,
        "the gossiped fork proof",
        |e| match e {
            scrip_replicate::Event::ForkDetected { author, seq } if *author == wallet => Some(*seq),
            _ => None,
        },
    )
    .await;
    assert_eq!(seq.get(), 3);
    for store in [&relay, &newcomer] {
        let proof = store.fork_proof(&wallet).unwrap().expect("a proof");
        assert!(!proof.is_bare(), "the proof carries both certificates");
    }
    for node in [forker_node, newcomer_node, relay_node] {
        node.shutdown().await;
    }
}

/// Replication tells the notary about every feed it stores, wallets or not: a social feed costs
/// one read of its first entry each time (it was read whole, from seq 1, inline in the decision
/// loop), and a wallet is learned in bounded batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_from_the_store_reads_what_is_new_only() {
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let poster = key(90);
    let mut head = None;
    let mut posts = Vec::new();
    for i in 0..2_000u64 {
        let entry = scrip_feed::Entry::create(
            &poster,
            head,
            scrip_feed::Timestamp::from_millis(i),
            scrip_feed::Content::Post {
                text: format!("post {i}"),
            }
            .encode()
            .unwrap(),
        )
        .unwrap();
        head = Some(entry.head());
        posts.push(entry);
    }
    inner.ingest(posts).unwrap();
    let counting = Arc::new(common::CountingStore {
        inner,
        read: std::sync::atomic::AtomicUsize::new(0),
    });
    let notary = Notary::spawn(
        key(91),
        Arc::clone(&counting) as Arc<dyn Store>,
        Arc::new(MemoryVoteStore::new()),
        Tcp,
        NotaryConfig {
            transport: transport(),
            ..NotaryConfig::default()
        },
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    let before = counting.read.load(std::sync::atomic::Ordering::SeqCst);
    // Starting, it looked at the social feed's first entry only (no wallet genesis).
    assert!(
        before <= 1,
        "{before} entries read at start for a 2,000-entry social feed"
    );
    for _ in 0..50 {
        notary.learn(poster.id()).await;
    }
    // Once the notary answered a later job, it has handled every notice (the old code read the
    // whole feed for each, inline, before answering anything else).
    let _ = notary.wallets().await;
    let read = counting.read.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        read <= 50,
        "{read} entries read for 50 notices about a 2,000-entry social feed"
    );
    assert!(notary.wallets().await.is_empty());
    notary.shutdown().await;
}
