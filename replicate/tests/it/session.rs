//! The session state machine, driven synchronously over in-memory "pipes" (every message is
//! encoded and decoded with the wire format) between nodes backed by memory stores: catch-up,
//! live streaming, reconnect with skipping, attachments, an invalid entry mid-stream, forks.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use scrip_feed::{
    Attachment as StoredAttachment, Content, Entry, FeedId, ForkProof, Head, Keypair, MemoryStore,
    Seq, Store, Timestamp,
};
use scrip_replicate::session::{Action, IngestResult, PeerMemory, Session};
use scrip_replicate::wire::{self, Attachment, Entries, Message, Note, WireEntry};

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

fn post(text: &str) -> Vec<u8> {
    Content::Post { text: text.into() }.encode().unwrap()
}

fn extend(key: &Keypair, mut head: Option<Head>, n: usize, tag: &str) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let e = Entry::create(
                key,
                head,
                Timestamp::from_millis(i as u64),
                post(&format!("{tag} {i}")),
            )
            .unwrap();
            head = Some(e.head());
            e
        })
        .collect()
}

/// A node of the harness: a store and a session per link.
struct Node {
    store: MemoryStore,
    epoch: u64,
    replicates: BTreeSet<FeedId>,
    sessions: BTreeMap<usize, Session>,
    inbox: VecDeque<(usize, Message)>,
    refused: Vec<(usize, FeedId, String)>,
    notes_seen: Vec<(usize, FeedId, Note)>,
}

#[derive(Default, Debug)]
struct Stats {
    messages: usize,
    bytes: usize,
    clock_notes: usize,
    entries_sent: usize,
}

struct Net {
    nodes: Vec<Node>,
    stats: Stats,
}

impl Net {
    fn new(count: usize) -> Net {
        Net {
            nodes: (0..count)
                .map(|i| Node {
                    store: MemoryStore::new(),
                    epoch: 1000 + i as u64,
                    replicates: BTreeSet::new(),
                    sessions: BTreeMap::new(),
                    inbox: VecDeque::new(),
                    refused: Vec::new(),
                    notes_seen: Vec::new(),
                })
                .collect(),
            stats: Stats::default(),
        }
    }

    fn heads(store: &MemoryStore) -> BTreeMap<FeedId, u64> {
        store.heads().unwrap()
    }

    /// Opens a session between `a` and `b`, each asking the other for every feed it replicates.
    fn link(&mut self, a: usize, b: usize, memories: Option<(PeerMemory, PeerMemory)>) {
        let (ma, mb) = memories.map_or((None, None), |(x, y)| (Some(x), Some(y)));
        for (me, peer, memory) in [(a, b, ma), (b, a, mb)] {
            let node = &self.nodes[me];
            let wanted = node.replicates.iter().map(|f| (*f, true)).collect();
            let mut session = Session::new(
                node.epoch,
                Net::heads(&node.store),
                wanted,
                BTreeSet::new(),
                memory,
            );
            session.start();
            self.nodes[me].sessions.insert(peer, session);
        }
    }

    fn unlink(&mut self, a: usize, b: usize) -> (PeerMemory, PeerMemory) {
        let sa = self.nodes[a].sessions.remove(&b).unwrap();
        let sb = self.nodes[b].sessions.remove(&a).unwrap();
        self.nodes[a].inbox.retain(|(from, _)| *from != b);
        self.nodes[b].inbox.retain(|(from, _)| *from != a);
        (sa.memory().unwrap(), sb.memory().unwrap())
    }

    fn append(&mut self, node: usize, entries: &[Entry]) {
        let report = self.nodes[node].store.ingest(entries.to_vec()).unwrap();
        assert_eq!(report.refused(), 0, "{report:?}");
        self.announce(node, None);
    }

    /// Tells every session of `node` (except `except`) the store's heads.
    fn announce(&mut self, node: usize, except: Option<usize>) {
        let heads = Net::heads(&self.nodes[node].store);
        for (peer, session) in self.nodes[node].sessions.iter_mut() {
            if Some(*peer) == except {
                continue;
            }
            for (feed, seq) in &heads {
                session.stored(*feed, *seq);
            }
        }
    }

    fn broadcast_proof(&mut self, node: usize, bytes: Vec<u8>, except: Option<usize>) {
        for (peer, session) in self.nodes[node].sessions.iter_mut() {
            if Some(*peer) != except {
                session.send_fork_proof(bytes.clone());
            }
        }
    }

    /// Runs every session until nothing is left to do.
    fn pump(&mut self) {
        for _round in 0..10_000 {
            let mut busy = false;
            for me in 0..self.nodes.len() {
                let peers: Vec<usize> = self.nodes[me].sessions.keys().copied().collect();
                for peer in peers {
                    while let Some(action) = self.nodes[me]
                        .sessions
                        .get_mut(&peer)
                        .and_then(|s| s.poll_action().or_else(|| s.poll_read()))
                    {
                        busy = true;
                        self.act(me, peer, action);
                    }
                }
                while let Some((from, message)) = self.nodes[me].inbox.pop_front() {
                    busy = true;
                    if let Some(session) = self.nodes[me].sessions.get_mut(&from) {
                        session.handle(message).unwrap();
                    }
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the sessions never went quiet");
    }

    fn act(&mut self, me: usize, peer: usize, action: Action) {
        match action {
            Action::Send(message) => {
                let bytes = wire::encode(&message).unwrap();
                self.stats.messages += 1;
                self.stats.bytes += bytes.len();
                match &message {
                    Message::Clock(notes) => self.stats.clock_notes += notes.len(),
                    Message::Entries(e) => self.stats.entries_sent += e.items.len(),
                    _ => {}
                }
                if self.nodes[peer].sessions.contains_key(&me) {
                    self.nodes[peer]
                        .inbox
                        .push_back((me, wire::decode(&bytes).unwrap()));
                }
            }
            Action::Read { feed, from, limit } => {
                let store = &self.nodes[me].store;
                let items = store
                    .range(&feed, from, limit)
                    .unwrap()
                    .into_iter()
                    .map(|e| {
                        let atts = store
                            .attachments(&e.id())
                            .unwrap()
                            .into_iter()
                            .map(|(kind, bytes)| Attachment { kind, bytes })
                            .collect();
                        (e, atts)
                    })
                    .collect();
                let session = self.nodes[me].sessions.get_mut(&peer).unwrap();
                session.read_done(feed, items);
            }
            Action::Ingest { feed, items } => {
                let store = &self.nodes[me].store;
                let entries: Vec<Entry> = items.iter().map(|(e, _)| e.clone()).collect();
                let report = store.ingest(entries).unwrap();
                let fork = report.outcomes.iter().find_map(|o| match o {
                    Err(scrip_feed::Error::Fork { author, .. }) => Some(*author),
                    _ => None,
                });
                let attachments = items
                    .iter()
                    .flat_map(|(e, atts)| {
                        atts.iter().map(|a| StoredAttachment {
                            entry: e.id(),
                            kind: a.kind.clone(),
                            bytes: a.bytes.clone(),
                        })
                    })
                    .collect();
                store.put_attachments(attachments).unwrap();
                let head = store.head(&feed).unwrap().map_or(0, |h| h.seq.get());
                let result = IngestResult::from_report(&report, head);
                self.nodes[me]
                    .sessions
                    .get_mut(&peer)
                    .unwrap()
                    .ingested(feed, result);
                if let Some(author) = fork {
                    let proof = self.nodes[me].store.fork_proof(&author).unwrap().unwrap();
                    self.broadcast_proof(me, proof.encode(), None);
                }
                self.announce(me, None);
            }
            Action::PeerNote { feed, note } => self.nodes[me].notes_seen.push((peer, feed, note)),
            Action::ForkProof(bytes) => {
                let proof = ForkProof::decode(&bytes).unwrap();
                if self.nodes[me].store.add_fork_proof(&proof).unwrap() {
                    self.broadcast_proof(me, bytes, Some(peer));
                }
            }
            Action::Refused { feed, reason } | Action::Declined { feed, reason } => {
                self.nodes[me].refused.push((peer, feed, reason))
            }
        }
    }

    fn feed(&self, node: usize, feed: &FeedId) -> Vec<Entry> {
        self.nodes[node]
            .store
            .range(feed, Seq::FIRST, usize::MAX)
            .unwrap()
    }
}

#[test]
fn catch_up_then_live() {
    let mut net = Net::new(2);
    let (alice, bob) = (key(1), key(2));
    for n in &mut net.nodes {
        n.replicates.extend([alice.id(), bob.id()]);
    }
    let alices = extend(&alice, None, 1200, "a");
    let bobs = extend(&bob, None, 30, "b");
    net.append(0, &alices);
    net.append(1, &bobs);
    net.link(0, 1, None);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()), alices);
    assert_eq!(net.feed(0, &bob.id()), bobs);
    // Each entry crossed once.
    assert_eq!(net.stats.entries_sent, 1230);

    // Live: new entries on either side flow without any new clock.
    let notes_before = net.stats.clock_notes;
    let more = extend(&alice, Some(alices.last().unwrap().head()), 5, "live");
    net.append(0, &more);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()).len(), 1205);
    assert_eq!(net.stats.clock_notes, notes_before);
}

#[test]
fn feeds_not_replicated_are_not_sent() {
    let mut net = Net::new(2);
    let (alice, carol) = (key(1), key(3));
    net.nodes[0].replicates.extend([alice.id(), carol.id()]);
    net.nodes[1].replicates.insert(alice.id());
    net.append(0, &extend(&alice, None, 3, "a"));
    net.append(0, &extend(&carol, None, 3, "c"));
    net.link(0, 1, None);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()).len(), 3);
    assert_eq!(net.feed(1, &carol.id()).len(), 0);
}

#[test]
fn reconnect_sends_only_changed_notes() {
    let mut net = Net::new(2);
    let feeds: Vec<Keypair> = (1..=20).map(key).collect();
    for n in &mut net.nodes {
        n.replicates.extend(feeds.iter().map(Keypair::id));
    }
    let mut heads = BTreeMap::new();
    for k in &feeds {
        let entries = extend(k, None, 3, "x");
        heads.insert(k.id(), entries.last().unwrap().head());
        net.append(0, &entries);
    }
    net.link(0, 1, None);
    net.pump();
    let first_notes = net.stats.clock_notes;
    assert_eq!(first_notes, 40, "a full clock each way");

    let memories = net.unlink(0, 1);
    // While apart, one feed grows.
    let k = &feeds[7];
    let more = extend(k, Some(heads[&k.id()]), 2, "y");
    net.append(0, &more);
    net.stats = Stats::default();
    net.link(0, 1, Some(memories));
    net.pump();
    assert_eq!(net.stats.clock_notes, 1, "only the changed feed's note");
    assert_eq!(net.stats.entries_sent, 2);
    assert_eq!(net.feed(1, &k.id()).len(), 5);
}

#[test]
fn reconnect_after_a_restart_sends_full_clocks() {
    let mut net = Net::new(2);
    let feeds: Vec<Keypair> = (1..=5).map(key).collect();
    for n in &mut net.nodes {
        n.replicates.extend(feeds.iter().map(Keypair::id));
    }
    for k in &feeds {
        net.append(0, &extend(k, None, 2, "x"));
    }
    net.link(0, 1, None);
    net.pump();
    let memories = net.unlink(0, 1);
    // Node 1 restarts: a new epoch. Remembered clocks are useless now.
    net.nodes[1].epoch += 1;
    net.stats = Stats::default();
    net.link(0, 1, Some(memories));
    net.pump();
    assert_eq!(net.stats.clock_notes, 10);
    assert_eq!(
        net.stats.entries_sent, 0,
        "nothing is re-sent: the notes say who has what"
    );
}

#[test]
fn attachments_travel_with_their_entries() {
    let mut net = Net::new(2);
    let alice = key(1);
    for n in &mut net.nodes {
        n.replicates.insert(alice.id());
    }
    let entries = extend(&alice, None, 3, "a");
    net.append(0, &entries);
    net.nodes[0]
        .store
        .put_attachments(vec![StoredAttachment {
            entry: entries[1].id(),
            kind: "scrip/certificate".into(),
            bytes: vec![42; 300],
        }])
        .unwrap();
    net.link(0, 1, None);
    net.pump();
    assert_eq!(
        net.nodes[1].store.attachments(&entries[1].id()).unwrap(),
        vec![("scrip/certificate".to_string(), vec![42; 300])]
    );
}

#[test]
fn invalid_entry_mid_stream_stops_the_feed_from_that_peer() {
    let mut net = Net::new(2);
    let alice = key(1);
    for n in &mut net.nodes {
        n.replicates.insert(alice.id());
    }
    net.link(0, 1, None);
    net.pump();
    // A byzantine node 0 sends entries 1..3 and a forged 4th, then a valid-looking 5th.
    let entries = extend(&alice, None, 5, "a");
    let mut forged = entries[3].header_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let items: Vec<WireEntry> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| WireEntry {
            header: if i == 3 {
                forged.clone()
            } else {
                e.header_bytes().to_vec()
            },
            payload: e.payload().map(<[u8]>::to_vec),
            attachments: vec![],
        })
        .collect();
    net.nodes[1].inbox.push_back((
        0,
        Message::Entries(Entries {
            feed: alice.id(),
            items,
        }),
    ));
    net.stats = Stats::default();
    net.pump();
    // The valid prefix is stored; nothing after the forged entry.
    assert_eq!(net.feed(1, &alice.id()), entries[..3].to_vec());
    let refused = &net.nodes[1].refused;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1, alice.id());
    assert!(refused[0].2.contains("bad signature"), "{}", refused[0].2);
    // Node 1 told node 0 to stop sending alice's feed.
    assert!(
        net.nodes[0]
            .notes_seen
            .iter()
            .any(|(_, f, note)| *f == alice.id() && !note.wants())
    );
    net.nodes[1].store.verify_integrity_for_test();
}

trait VerifyForTest {
    fn verify_integrity_for_test(&self);
}

impl VerifyForTest for MemoryStore {
    fn verify_integrity_for_test(&self) {
        for author in self.authors().unwrap() {
            let mut head = None;
            for entry in self.range(&author, Seq::FIRST, usize::MAX).unwrap() {
                scrip_feed::validate::validate_entry(&author, head.as_ref(), &entry).unwrap();
                head = Some(entry.head());
            }
        }
    }
}

#[test]
fn entries_out_of_order_or_by_another_author_are_refused() {
    for case in ["out-of-order", "other-author", "garbage"] {
        let mut net = Net::new(2);
        let (alice, bob) = (key(1), key(2));
        for n in &mut net.nodes {
            n.replicates.insert(alice.id());
        }
        net.link(0, 1, None);
        net.pump();
        let a = extend(&alice, None, 3, "a");
        let b = extend(&bob, None, 1, "b");
        let headers: Vec<Vec<u8>> = match case {
            "out-of-order" => vec![a[0].header_bytes().into(), a[2].header_bytes().into()],
            "other-author" => vec![a[0].header_bytes().into(), b[0].header_bytes().into()],
            _ => vec![vec![1, 2, 3]],
        };
        let items = headers
            .into_iter()
            .map(|header| WireEntry {
                header,
                payload: None,
                attachments: vec![],
            })
            .collect();
        net.nodes[1].inbox.push_back((
            0,
            Message::Entries(Entries {
                feed: alice.id(),
                items,
            }),
        ));
        net.pump();
        assert!(net.feed(1, &alice.id()).is_empty(), "{case}");
        assert_eq!(net.nodes[1].refused.len(), 1, "{case}");
    }
}

#[test]
fn a_fork_is_detected_proven_and_gossiped() {
    // Alice forks her feed: node 0 holds branch x, node 2 holds branch y. Node 1 learns both,
    // detects the fork, and gossips the proof; everyone ends up with it and freezes the feed.
    let mut net = Net::new(3);
    let alice = key(1);
    for n in &mut net.nodes {
        n.replicates.insert(alice.id());
    }
    let common = extend(&alice, None, 2, "common");
    let x = extend(&alice, Some(common[1].head()), 2, "x");
    // The y branch is longer, so node 2 has something to send node 1: its entry #5 does not
    // link to node 1's #4, node 1 asks for #4 again and finds two entries at #4.
    let y = extend(&alice, Some(common[1].head()), 3, "y");
    net.append(0, &[common.clone(), x.clone()].concat());
    net.append(2, &[common.clone(), y.clone()].concat());
    net.append(1, &common);
    net.link(0, 1, None);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()).len(), 4);
    net.link(1, 2, None);
    net.pump();
    for node in 0..3 {
        let proof = net.nodes[node].store.fork_proof(&alice.id()).unwrap();
        let proof = proof.unwrap_or_else(|| panic!("node {node} has no fork proof"));
        assert_eq!(proof.seq(), Seq::new(4));
    }
}

#[test]
fn unsolicited_entries_are_dropped_and_a_flood_closes_the_session() {
    let mut net = Net::new(2);
    let (alice, carol) = (key(1), key(3));
    net.nodes[1].replicates.insert(alice.id());
    net.link(0, 1, None);
    net.pump();
    let c = extend(&carol, None, 1, "c");
    let message = Message::Entries(Entries {
        feed: carol.id(),
        items: vec![WireEntry {
            header: c[0].header_bytes().to_vec(),
            payload: None,
            attachments: vec![],
        }],
    });
    let session = net.nodes[1].sessions.get_mut(&0).unwrap();
    let mut result = Ok(());
    for _ in 0..=scrip_replicate::session::MAX_UNSOLICITED_MESSAGES {
        result = session.handle(message.clone());
        if result.is_err() {
            break;
        }
    }
    assert!(result.is_err());
    assert!(net.feed(1, &carol.id()).is_empty());
}

/// Entries of a feed our policy declined (`Session::decline`) that the peer sent before our
/// note reached it are dropped, and not held against it, however many; asked again, the feed is
/// taken in again.
#[test]
fn a_declined_feed_is_noted_as_not_asked_and_its_late_entries_dropped() {
    let mut net = Net::new(2);
    let alice = key(1);
    let entries = extend(&alice, None, 2, "a");
    net.nodes[1].replicates.insert(alice.id());
    net.link(0, 1, None);
    net.pump();
    let session = net.nodes[1].sessions.get_mut(&0).unwrap();
    session.decline(alice.id(), "not now".into());
    let mut said = Vec::new();
    while let Some(action) = session.poll_action() {
        said.push(action);
    }
    assert!(said.iter().any(|a| matches!(
        a,
        Action::Send(Message::Clock(notes))
            if notes.contains(&(alice.id(), Note::At { seq: 0, send: false }))
    )));
    assert!(said.iter().any(|a| matches!(a, Action::Declined { .. })));
    let message = Message::Entries(Entries {
        feed: alice.id(),
        items: vec![WireEntry {
            header: entries[0].header_bytes().to_vec(),
            payload: Some(entries[0].payload().unwrap().to_vec()),
            attachments: vec![],
        }],
    });
    for _ in 0..=2 * scrip_replicate::session::MAX_UNSOLICITED_MESSAGES {
        session.handle(message.clone()).unwrap();
        assert!(
            !std::iter::from_fn(|| session.poll_action())
                .any(|a| matches!(a, Action::Ingest { .. })),
            "a declined feed's entries were taken in"
        );
    }
    // Asked again: taken in.
    session.set_wanted(alice.id(), Some(true));
    net.append(0, &entries);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()), entries);
}

#[test]
fn messages_before_hello_and_a_second_hello_are_violations() {
    let mut session = Session::new(1, BTreeMap::new(), BTreeMap::new(), BTreeSet::new(), None);
    session.start();
    assert!(session.handle(Message::Clock(vec![])).is_err());
    let mut session = Session::new(1, BTreeMap::new(), BTreeMap::new(), BTreeSet::new(), None);
    session.start();
    let hello = match session.poll_action() {
        Some(Action::Send(Message::Hello(hello))) => hello,
        other => panic!("{other:?}"),
    };
    session.handle(Message::Hello(hello.clone())).unwrap();
    assert!(session.handle(Message::Hello(hello.clone())).is_err());
    let mut incompatible = hello;
    incompatible.version = 99;
    let mut session = Session::new(1, BTreeMap::new(), BTreeMap::new(), BTreeSet::new(), None);
    assert!(matches!(
        session.handle(Message::Hello(incompatible)),
        Err(scrip_replicate::Error::Incompatible { .. })
    ));
}

#[test]
fn a_blocked_feed_is_never_relayed() {
    let mut net = Net::new(2);
    let (alice, mallory) = (key(1), key(6));
    net.nodes[0].replicates.extend([alice.id(), mallory.id()]);
    net.nodes[1].replicates.extend([alice.id(), mallory.id()]);
    net.append(0, &extend(&alice, None, 2, "a"));
    net.append(0, &extend(&mallory, None, 2, "m"));
    net.link(0, 1, None);
    // Node 0 blocks mallory before anything is exchanged.
    net.nodes[0]
        .sessions
        .get_mut(&1)
        .unwrap()
        .set_blocked(mallory.id(), true);
    net.pump();
    assert_eq!(net.feed(1, &alice.id()).len(), 2);
    assert!(
        net.feed(1, &mallory.id()).is_empty(),
        "a blocked feed was relayed"
    );
}

/// Drives `session` through the peer's Hello, dropping what it queued.
fn running(session: &mut Session) {
    session.start();
    let hello = Message::Hello(wire::Hello {
        protocol: wire::PROTOCOL_NAME.into(),
        version: wire::PROTOCOL_VERSION,
        features: vec![],
        epoch: 7,
        known_epoch: None,
        received_notes: None,
        sent_notes: None,
    });
    session.handle(hello).unwrap();
    while session.poll_action().is_some() {}
}

fn peer_notes(session: &mut Session) -> Vec<(FeedId, Note)> {
    let mut notes = Vec::new();
    while let Some(action) = session.poll_action() {
        if let Action::PeerNote { feed, note } = action {
            notes.push((feed, note));
        }
    }
    notes
}

#[test]
fn notes_about_feeds_out_of_scope_are_bounded_and_reported_once_they_matter() {
    use scrip_replicate::limits::MAX_OTHER_NOTES_PER_PEER;
    let mut session = Session::new(1, BTreeMap::new(), BTreeMap::new(), BTreeSet::new(), None);
    running(&mut session);
    let later = key(40).id();
    let made_up = |i: u64| {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        FeedId::from_bytes(bytes)
    };
    // The peer tells us about a feed we do not replicate yet, then floods made-up ones.
    let mut notes = vec![(
        later,
        Note::At {
            seq: 9,
            send: false,
        },
    )];
    notes.extend(
        (0..2 * MAX_OTHER_NOTES_PER_PEER as u64)
            .map(|i| (made_up(i), Note::At { seq: 1, send: true })),
    );
    for chunk in notes.chunks(4096) {
        session.handle(Message::Clock(chunk.to_vec())).unwrap();
    }
    assert!(
        peer_notes(&mut session).is_empty(),
        "nothing out of scope is reported"
    );
    assert_eq!(session.notes_kept(), MAX_OTHER_NOTES_PER_PEER);
    assert!(
        session.memory().is_none(),
        "an incomplete clock is not remembered"
    );
    // The feed comes into scope: the peer's note about it is reported now.
    session.set_wanted(later, Some(false));
    assert_eq!(
        peer_notes(&mut session),
        vec![(
            later,
            Note::At {
                seq: 9,
                send: false
            }
        )]
    );
}
