//! Notaries as ordinary peers: each notary runs beside a replicate node sharing its store,
//! joined by the gossip bridge. A notary that was down while a wallet moved on catches up from
//! the other notaries by replication alone (no client talks to it), and its certificates are
//! checked on the way in.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{key, transport, wallet};
use scrip_feed::{FeedId, Keypair, MemoryStore, Store};
use scrip_ledger::Currency;
use scrip_notary::certified::CertificateCheck;
use scrip_notary::wire::{Request, Response};
use scrip_notary::{
    MemoryVoteStore, Notary, NotaryAddr, NotaryConfig, NotaryHandle, VoteStore, gossip,
};
use scrip_replicate::{Node, NodeConfig, NodeHandle, Tcp};

/// One notary peer: a node and a notary service over one store, bridged.
struct Peer {
    node: NodeHandle<Tcp>,
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
        Arc::new(CertificateCheck::new(Arc::clone(&disk.store))),
    )
    .await
    .unwrap();
    let notary = Notary::spawn(
        Arc::clone(&disk.key),
        Arc::clone(&disk.store),
        Arc::clone(&disk.votes),
        Tcp,
        NotaryConfig {
            listen: disk.notary_address.clone(),
            transport: transport(),
            ..NotaryConfig::default()
        },
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    let bridge = gossip::bridge(node.link(), &notary);
    let node_address = node.listen_address().unwrap().to_string();
    (
        Peer {
            node,
            notary,
            bridge,
        },
        node_address,
    )
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
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let notary_address = probe.local_addr().unwrap().to_string();
        drop(probe);
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
    let addrs: Vec<NotaryAddr> = disks
        .iter()
        .map(|d| NotaryAddr {
            id: d.key.id(),
            address: d.notary_address.clone(),
        })
        .collect();

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
