//! The gossip node: a listener and a dialer, a peer table, the follow-graph scope, the
//! per-feed source scheduler, and one [`peer`](crate::peer) task per connection, all steered by
//! one actor task that never waits on a connection.
//!
//! The application talks to it through a [`NodeHandle`]: publish, request feeds, add peers,
//! subscribe to [`Event`]s, shut down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::rng::SplitMix64;
use scrip_feed::{Content, Entry, FeedId, ForkProof, Keypair, Seq, Store, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::connections::{Arrival, Connections};
use crate::error::{Error, Result};
use crate::limits::{
    BACKGROUND_INGEST_BATCH, COMMAND_CHANNEL_CAPACITY, DEFAULT_INGEST_BATCH,
    DEFAULT_PEER_BYTES_PER_SEC, EVENT_CHANNEL_CAPACITY, MAX_FORK_PROOFS_ON_CONNECT,
    MAX_PEER_MEMORIES, MAX_UNJUDGED_PROOFS, STORED_CHANNEL_CAPACITY,
};
use crate::peer::{AcceptAll, AttachmentCheck, PeerCommand, PeerContext, PeerHandle, PeerReport};
use crate::peers::{Origin, PeerTable};
use crate::policy::ScopeChange;
use crate::scheduler::{Change, DEFAULT_DECLINE_BACKOFF, DEFAULT_REQUEST_TIMEOUT, Scheduler};

/// Default [`NodeConfig::idle_before_eviction`].
pub const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(5);

/// Most entries read at once when applying a feed to the follow graph.
const SCAN_BATCH: usize = 4096;
use crate::scope::{DEFAULT_HOPS, FollowGraph, Scope};
use crate::session::{PeerMemory, Session};
use crate::transport::{self, Blocking, LocalIdentity, Network, SecureStream, TransportConfig};

/// Capacity of each connection's command queue. The node never waits on it: a connection too
/// slow to take its commands is closed (`PeerHandle::send`).
const PEER_COMMAND_CAPACITY: usize = 1024;
/// Time allowed to open a TCP connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address to listen on (`None`: dial only).
    pub listen: Option<String>,
    /// Peers to dial: address and, if known, the identity expected there.
    pub peers: Vec<(String, Option<FeedId>)>,
    /// Follow distance replicated.
    pub hops: u8,
    /// Feeds replicated whatever the follow graph says (wallets, notaries).
    pub explicit: BTreeSet<FeedId>,
    /// Transport settings (network key, timeouts, message size).
    pub transport: TransportConfig,
    /// Most connections this node dials.
    pub max_outgoing: usize,
    /// Most connections this node accepts (session slots, taken after authentication).
    pub max_incoming: usize,
    /// Bounds on incoming connections before they authenticate.
    pub accept: crate::transport::AcceptLimits,
    /// How long an inbound peer must have been useless (no entries sent or received) before a
    /// newcomer may take its slot when all are in use.
    pub idle_before_eviction: Duration,
    /// How often one dialed connection is dropped for another candidate (`None`: never).
    pub rotate_every: Option<Duration>,
    /// How long a peer may claim more of a feed without delivering it before another is asked.
    pub request_timeout: Duration,
    /// How long a peer is not asked for a feed after the node's policy declined entries of it
    /// that the peer sent (`AttachmentCheck::admit`).
    pub decline_backoff: Duration,
    /// Cap on inbound bytes per second from one peer.
    pub peer_bytes_per_sec: u64,
    /// Entries ingested per store batch.
    pub ingest_batch: usize,
    /// How often the node checks timeouts, dials and reports progress.
    pub tick: Duration,
    /// Seed of the node's random choices (peer order, backoff jitter, epoch).
    pub seed: u64,
    /// Check and store received entries on a thread of lower CPU priority (see
    /// [`crate::background`]) instead of tokio's blocking pool: for a node sharing its
    /// process with latency-sensitive work (a notary). Ignored on a network whose blocking work
    /// runs inline ([`Blocking::Inline`]: simulations). Such a node ingests at most
    /// [`BACKGROUND_INGEST_BATCH`] entries per batch.
    pub background_ingest: bool,
    /// This node's store does not hold its own feed as far as it went (a home restored from a
    /// backup): until a peer that replicates the feed is connected, dial slots rotate quickly
    /// through the known addresses ([`SEEK_ROTATE_EVERY`], `replication.md` §4) instead of
    /// every `rotate_every`.
    pub seek_own_feed: bool,
}

/// How often a node seeking its own feed ([`NodeConfig::seek_own_feed`]) closes a dialed
/// connection to a peer that does not replicate the feed, to try another address.
pub const SEEK_ROTATE_EVERY: Duration = Duration::from_secs(1);

/// How long a node seeking its own feed waits, after it tried every known address without
/// finding a peer that replicates the feed, before it tries them again.
pub const SEEK_REST: Duration = Duration::from_secs(60);

/// How this crate runs its (synchronous) store calls: as the node's network wants blocking work
/// run ([`Network::BLOCKING`]), with this crate's error when the runtime is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoreCalls(pub(crate) Blocking);

impl StoreCalls {
    /// Runs `call` as configured.
    pub(crate) async fn run<T: Send + 'static>(
        self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.0.run(call).await.ok_or(Error::Shutdown)
    }
}

impl NodeConfig {
    /// Entries per ingest batch as this node runs them: [`NodeConfig::ingest_batch`], at most
    /// [`BACKGROUND_INGEST_BATCH`] with [`NodeConfig::background_ingest`].
    pub fn effective_ingest_batch(&self) -> usize {
        if self.background_ingest {
            self.ingest_batch.min(BACKGROUND_INGEST_BATCH)
        } else {
            self.ingest_batch
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: None,
            peers: Vec::new(),
            hops: DEFAULT_HOPS,
            explicit: BTreeSet::new(),
            transport: TransportConfig::default(),
            max_outgoing: 4,
            max_incoming: 32,
            accept: crate::transport::AcceptLimits::default(),
            idle_before_eviction: IDLE_BEFORE_EVICTION,
            rotate_every: Some(Duration::from_secs(300)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            decline_backoff: DEFAULT_DECLINE_BACKOFF,
            peer_bytes_per_sec: DEFAULT_PEER_BYTES_PER_SEC,
            ingest_batch: DEFAULT_INGEST_BATCH,
            tick: Duration::from_secs(1),
            seed: 0,
            background_ingest: false,
            seek_own_feed: false,
        }
    }
}

/// Something that happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A connection was established.
    PeerConnected {
        /// The peer's identity.
        peer: FeedId,
        /// Its address.
        address: String,
        /// Whether we dialed it.
        outgoing: bool,
    },
    /// A connection ended.
    PeerDisconnected {
        /// The peer.
        peer: FeedId,
        /// Why.
        reason: String,
    },
    /// Entries were stored (received from `from`, or published locally if `None`).
    Stored {
        /// The feed.
        feed: FeedId,
        /// Its latest seq now.
        head: u64,
        /// How many were new.
        new: usize,
        /// How many were received (new ones and ones already held).
        received: usize,
        /// Who sent them.
        from: Option<FeedId>,
    },
    /// A fork proof for `author` was stored; the feed is frozen.
    ForkDetected {
        /// The author who forked.
        author: FeedId,
        /// The seq signed twice.
        seq: Seq,
    },
    /// A fork proof `peer` sent was not kept: it is invalid, or it lacks the evidence its
    /// feed's rules require (`docs/protocol/feed.md` §9).
    ProofRefused {
        /// The peer.
        peer: FeedId,
        /// The author it is about, if it decoded.
        author: Option<FeedId>,
        /// Why.
        reason: String,
    },
    /// We stopped taking `feed` from `peer` because it sent something invalid.
    Refused {
        /// The peer.
        peer: FeedId,
        /// The feed.
        feed: FeedId,
        /// Why.
        reason: String,
    },
    /// We stopped taking `feed` from `peer` for [`NodeConfig::decline_backoff`]: our policy
    /// declined entries of it that the peer sent (`AttachmentCheck::admit`).
    Declined {
        /// The peer.
        peer: FeedId,
        /// The feed.
        feed: FeedId,
        /// Why.
        reason: String,
    },
    /// How far behind the best claims of connected peers we are (sent when it changes).
    CatchUp {
        /// Feeds with entries still to fetch.
        feeds: usize,
        /// Entries still to fetch.
        entries: u64,
    },
    /// An authenticated incoming connection was turned away: every inbound slot is held by a
    /// peer that was useful recently.
    ConnectionRefused {
        /// The peer.
        peer: FeedId,
        /// Its address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A dial failed.
    DialFailed {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// Reading the store failed (the node goes on, and retries the read with backoff).
    StoreFailed {
        /// What the node was reading for.
        what: &'static str,
        /// The feed concerned, if any.
        feed: Option<FeedId>,
        /// Why.
        reason: String,
    },
}

/// A connection, as the node status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub peer: FeedId,
    /// Its address.
    pub address: String,
    /// Whether we dialed it.
    pub outgoing: bool,
}

/// A snapshot of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Our identity.
    pub id: FeedId,
    /// The address we listen on.
    pub listen: Option<String>,
    /// Open connections.
    pub peers: Vec<PeerStatus>,
    /// Replicated feeds.
    pub scope: BTreeMap<FeedId, u8>,
    /// Feeds we block.
    pub blocked: BTreeSet<FeedId>,
    /// Known addresses.
    pub known_addresses: usize,
    /// Our own feed's head in the store.
    pub own_head: u64,
    /// The highest seq of our own feed a peer claimed to hold (since the node started). Above
    /// `own_head`, this store is older than the feed (a home restored from an older copy): it
    /// must not sign anything until it has caught up, or it would fork its own feed.
    pub own_claimed: u64,
    /// Connections open for at least [`OWN_HEAD_SETTLE`] (long enough for the peer's clock,
    /// with its note about our feed if it replicates it, to have arrived).
    pub settled_peers: usize,
    /// Connected peers that replicate our own feed (each sent a note with its seq of it).
    pub own_noted: usize,
}

/// How long a connection must have been open before its peer's clock counts as heard.
pub const OWN_HEAD_SETTLE: Duration = Duration::from_millis(500);

enum Command<S> {
    Connected {
        stream: Box<SecureStream<S>>,
        address: String,
        outgoing: bool,
        /// An incoming connection's session slot is taken by the actor.
        slot: Option<crate::transport::Slot>,
    },
    DialFailed {
        address: String,
        reason: String,
    },
    LocalStored {
        feed: FeedId,
        head: u64,
    },
    Scanned {
        feed: FeedId,
        entries: Vec<Entry>,
    },
    ScanFailed {
        feed: FeedId,
        reason: String,
    },
    ProofChecked {
        from: Option<FeedId>,
        proof: Option<Box<ForkProof>>,
        new: bool,
    },
    /// A peer's fork proof was not kept, or is waiting for its feed (`verdict`).
    ProofNotKept {
        from: Option<FeedId>,
        verdict: Verdict,
    },
    RequestFeed(FeedId, bool),
    /// A visit to a feed begins (`true`) or ends (`false`): see [`NodeLink::visit_feed`].
    Visit(FeedId, bool),
    AddPeer(String, Option<FeedId>),
    Status(oneshot::Sender<NodeStatus>),
    Shutdown(oneshot::Sender<()>),
}

/// The application's handle on a running node.
pub struct NodeHandle<N: Network> {
    id: FeedId,
    store_calls: StoreCalls,
    keypair: Arc<Keypair>,
    store: Arc<dyn Store>,
    commands: mpsc::Sender<Command<N::Stream>>,
    events: broadcast::Sender<Event>,
    listen: Option<String>,
    actor: Option<JoinHandle<()>>,
}

impl<N: Network> std::fmt::Debug for NodeHandle<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// A running node (see [`Node::spawn`]).
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Starts a node for `keypair` on `store` over `network`, accepting every attachment.
    pub async fn spawn<N: Network>(
        keypair: Arc<Keypair>,
        store: Arc<dyn Store>,
        network: N,
        config: NodeConfig,
    ) -> Result<NodeHandle<N>> {
        Node::spawn_with(keypair, store, network, config, Arc::new(AcceptAll)).await
    }

    /// Starts a node whose received attachments are checked by `attachments`.
    // Long because: a constructor: binds, reads the heads, and fills the actor's fields.
    pub async fn spawn_with<N: Network>(
        keypair: Arc<Keypair>,
        store: Arc<dyn Store>,
        network: N,
        config: NodeConfig,
        attachments: Arc<dyn AttachmentCheck>,
    ) -> Result<NodeHandle<N>> {
        let network = Arc::new(network);
        let identity = Arc::new(LocalIdentity::new(Arc::clone(&keypair))?);
        let (commands, commands_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
        let (reports, reports_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let (stored, _) = broadcast::channel(STORED_CHANNEL_CAPACITY);

        let mut listen = None;
        let mut accept_task = None;
        if let Some(address) = &config.listen {
            let (listener, bound) = network
                .bind(address)
                .await
                .map_err(|e| Error::io("binding the listen address", &e))?;
            listen = Some(bound);
            let commands = commands.clone();
            accept_task = Some(tokio::spawn(crate::transport::accept_loop(
                Arc::clone(&network),
                listener,
                Arc::clone(&identity),
                config.transport.clone(),
                config.accept,
                "replication",
                move |stream, address| {
                    let commands = commands.clone();
                    async move {
                        let _ = commands
                            .send(Command::Connected {
                                stream: Box::new(stream),
                                address,
                                outgoing: false,
                                slot: None,
                            })
                            .await;
                    }
                },
            )));
        }

        let store_for_heads = Arc::clone(&store);
        let store_calls = StoreCalls(N::BLOCKING);
        let heads = store_calls.run(move || store_for_heads.heads()).await??;

        let mut rng = SplitMix64::new(config.seed ^ 0x5c21_7a0b_9d3e_4f61);
        let epoch = rng.next_u64();
        let mut table = PeerTable::new();
        for (address, id) in &config.peers {
            table.add(address.clone(), *id, Origin::Configured);
        }
        let context = Arc::new(PeerContext {
            store: Arc::clone(&store),
            store_calls,
            reports,
            attachments,
            bytes_per_sec: config.peer_bytes_per_sec,
            ingest_batch: config.effective_ingest_batch(),
            keepalive: config.transport.idle_timeout / 3,
            background: match N::BLOCKING {
                // One thread for checking and storing: they take turns, which leaves more of
                // the cores to the latency-sensitive work beside the node (measured with a
                // thread for each: replication 10 % faster, a notary's proposal p99 while it
                // ran 18–25 ms against 14–17 ms).
                Blocking::Pool if config.background_ingest => {
                    Some(crate::background::Background::start()?)
                }
                _ => None,
            },
        });
        let (request_timeout, seek_own_feed) = (config.request_timeout, config.seek_own_feed);
        let decline_backoff = config.decline_backoff;
        let (max_incoming, idle_before_eviction) =
            (config.max_incoming, config.idle_before_eviction);
        let connections = Connections::new(
            keypair.id(),
            listen.clone(),
            config.max_outgoing,
            config.rotate_every,
            table,
            Instant::now(),
        );
        let actor = Actor {
            id: keypair.id(),
            config,
            network,
            identity,
            store: Arc::clone(&store),
            context,
            commands: commands.clone(),
            events: events.clone(),
            stored,
            rng,
            epoch,
            listen: listen.clone(),
            heads,
            graph: FollowGraph::new(),
            scope: Scope::default(),
            scheduler: Scheduler::with_backoff(request_timeout, decline_backoff),
            connections,
            memories: BTreeMap::new(),
            last_catch_up: (0, 0),
            scanning: BTreeSet::new(),
            scan_retries: crate::policy::Retries::default(),
            visiting: BTreeMap::new(),
            unjudged: VecDeque::new(),
            accept_task,
            inbound: crate::transport::SlotTable::new(max_incoming, idle_before_eviction),
            own_claimed: 0,
            own_noted: BTreeSet::new(),
            seeking: seek_own_feed,
            tasks: JoinSet::new(),
        };
        let handle = tokio::spawn(actor.run(commands_rx, reports_rx));
        Ok(NodeHandle {
            id: keypair.id(),
            store_calls,
            keypair,
            store,
            commands,
            events,
            listen,
            actor: Some(handle),
        })
    }
}

/// A clonable way for other tasks to reach a running node (the application side of a daemon,
/// a notary service sharing the node's store): announce entries stored outside the node, ask
/// for feeds, watch events. It does not keep the node running.
pub struct NodeLink<N: Network> {
    commands: mpsc::Sender<Command<N::Stream>>,
    events: broadcast::Sender<Event>,
}

impl<N: Network> Clone for NodeLink<N> {
    fn clone(&self) -> Self {
        NodeLink {
            commands: self.commands.clone(),
            events: self.events.clone(),
        }
    }
}

impl<N: Network> std::fmt::Debug for NodeLink<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeLink")
    }
}

impl<N: Network> NodeLink<N> {
    /// Tells the node that the application stored entries of `feed` up to `head` itself (e.g.
    /// a wallet client storing a certified entry), so that peers get them.
    pub async fn announce(&self, feed: FeedId, head: u64) -> Result<()> {
        self.send(Command::LocalStored { feed, head }).await
    }

    /// Replicates `feed` whatever the follow graph says.
    pub async fn request_feed(&self, feed: FeedId) -> Result<()> {
        self.send(Command::RequestFeed(feed, true)).await
    }

    /// Undoes [`NodeLink::request_feed`].
    pub async fn release_feed(&self, feed: FeedId) -> Result<()> {
        self.send(Command::RequestFeed(feed, false)).await
    }

    /// Replicates `feed` for a while, whatever the follow graph says, until a matching
    /// [`NodeLink::leave_feed`]: for a command that fetches a feed once (`scrip audit`,
    /// `scrip sync`), so that a feed nobody follows is not replicated for the rest of the
    /// node's run. Visits are counted (two at once end with the second leave) and are apart
    /// from [`NodeLink::request_feed`]: a visit's end never drops a requested or followed feed.
    pub async fn visit_feed(&self, feed: FeedId) -> Result<()> {
        self.send(Command::Visit(feed, true)).await
    }

    /// Ends a visit begun by [`NodeLink::visit_feed`].
    pub async fn leave_feed(&self, feed: FeedId) -> Result<()> {
        self.send(Command::Visit(feed, false)).await
    }

    /// Adds a peer address to dial (with the identity expected there, if known).
    pub async fn add_peer(&self, address: String, id: Option<FeedId>) -> Result<()> {
        self.send(Command::AddPeer(address, id)).await
    }

    /// A snapshot of the node.
    pub async fn status(&self) -> Result<NodeStatus> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Status(reply)).await?;
        answer.await.map_err(|_| Error::Shutdown)
    }

    /// Subscribes to events.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn send(&self, command: Command<N::Stream>) -> Result<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Shutdown)
    }
}

impl<N: Network> NodeHandle<N> {
    /// Our identity.
    pub fn id(&self) -> FeedId {
        self.id
    }

    /// A [`NodeLink`] to this node.
    pub fn link(&self) -> NodeLink<N> {
        NodeLink {
            commands: self.commands.clone(),
            events: self.events.clone(),
        }
    }

    /// The address the node listens on, if any.
    pub fn listen_address(&self) -> Option<&str> {
        self.listen.as_deref()
    }

    /// Subscribes to events.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Signs and durably stores `content` as our next entry, then streams it to peers.
    pub async fn publish(&self, content: &Content, timestamp: Timestamp) -> Result<Entry> {
        self.publish_payload(content.encode()?, timestamp).await
    }

    /// Signs and durably stores an already encoded payload as our next entry, then streams it.
    pub async fn publish_payload(&self, payload: Vec<u8>, timestamp: Timestamp) -> Result<Entry> {
        let store = Arc::clone(&self.store);
        let keypair = Arc::clone(&self.keypair);
        let entry = self
            .store_calls
            .run(move || store.publish(&keypair, timestamp, payload))
            .await??;
        self.announce(entry.author(), entry.seq().get()).await?;
        Ok(entry)
    }

    /// See [`NodeLink::announce`].
    pub async fn announce(&self, feed: FeedId, head: u64) -> Result<()> {
        self.link().announce(feed, head).await
    }

    /// See [`NodeLink::request_feed`].
    pub async fn request_feed(&self, feed: FeedId) -> Result<()> {
        self.link().request_feed(feed).await
    }

    /// See [`NodeLink::release_feed`].
    pub async fn release_feed(&self, feed: FeedId) -> Result<()> {
        self.link().release_feed(feed).await
    }

    /// See [`NodeLink::visit_feed`].
    pub async fn visit_feed(&self, feed: FeedId) -> Result<()> {
        self.link().visit_feed(feed).await
    }

    /// See [`NodeLink::leave_feed`].
    pub async fn leave_feed(&self, feed: FeedId) -> Result<()> {
        self.link().leave_feed(feed).await
    }

    /// See [`NodeLink::add_peer`].
    pub async fn add_peer(&self, address: String, id: Option<FeedId>) -> Result<()> {
        self.link().add_peer(address, id).await
    }

    /// See [`NodeLink::status`].
    pub async fn status(&self) -> Result<NodeStatus> {
        self.link().status().await
    }

    /// Closes every connection (with goodbyes) and stops the node. Everything acknowledged is
    /// already durable in the store.
    pub async fn shutdown(mut self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        if let Some(actor) = self.actor.take() {
            let _ = actor.await;
        }
    }

    async fn send(&self, command: Command<N::Stream>) -> Result<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Shutdown)
    }
}

impl<N: Network> Drop for NodeHandle<N> {
    fn drop(&mut self) {
        if let Some(actor) = self.actor.take() {
            actor.abort();
        }
    }
}

struct Actor<N: Network> {
    id: FeedId,
    config: NodeConfig,
    network: Arc<N>,
    identity: Arc<LocalIdentity>,
    store: Arc<dyn Store>,
    context: Arc<PeerContext>,
    commands: mpsc::Sender<Command<N::Stream>>,
    events: broadcast::Sender<Event>,
    stored: broadcast::Sender<(FeedId, u64)>,
    rng: SplitMix64,
    epoch: u64,
    listen: Option<String>,
    heads: BTreeMap<FeedId, u64>,
    graph: FollowGraph,
    scope: Scope,
    scheduler: Scheduler,
    /// Open connections (each with its command channel), dialing and the peer table: the pure
    /// state machine of `connections.rs`.
    connections: Connections<PeerHandle>,
    /// Clocks remembered per peer, with when each was stored (at most
    /// [`MAX_PEER_MEMORIES`], the oldest forgotten first).
    memories: BTreeMap<FeedId, (Instant, PeerMemory)>,
    last_catch_up: (usize, u64),
    /// Feeds whose entries are being read for the follow graph.
    scanning: BTreeSet<FeedId>,
    /// Feeds whose last read for the follow graph failed, and when to read them again: never at
    /// once, which would spin (and recurse, with store calls run inline).
    scan_retries: crate::policy::Retries,
    /// Feeds visited for now ([`NodeLink::visit_feed`]), each with its number of visits.
    visiting: BTreeMap<FeedId, usize>,
    /// Verified fork proofs about feeds whose first entry is not held yet, oldest first (at
    /// most [`MAX_UNJUDGED_PROOFS`], one per author): judged when the feed's entries arrive.
    unjudged: VecDeque<(Option<FeedId>, Box<ForkProof>)>,
    accept_task: Option<JoinHandle<()>>,
    /// Session slots of incoming connections.
    inbound: Arc<crate::transport::SlotTable>,
    /// The highest seq of our own feed any peer claimed to hold.
    own_claimed: u64,
    /// Connected peers that replicate our own feed (they noted a seq of it).
    own_noted: BTreeSet<FeedId>,
    /// Whether this node still seeks a peer that replicates its own feed
    /// ([`NodeConfig::seek_own_feed`], until one is found).
    seeking: bool,
    /// Every task the actor started that may hold the store: awaited at shutdown, so that the
    /// store is closed when [`NodeHandle::shutdown`] returns.
    tasks: JoinSet<()>,
}

impl<N: Network> Actor<N> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command<N::Stream>>,
        mut reports: mpsc::Receiver<PeerReport>,
    ) {
        // Build the follow graph from what the store holds, then the scope.
        self.rescan_all();
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        shutdown = Some(reply);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                report = reports.recv() => {
                    if let Some(report) = report {
                        self.on_report(report);
                    }
                },
                _ = tick.tick() => self.on_tick(),
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
        // Shut down: stop accepting, close every connection, wait for them to report.
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
        for (_, open) in self.connections.iter() {
            open.handle.close();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.connections.is_empty() {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(report)) => self.on_report(report),
                _ => break,
            }
        }
        // Wait for every task holding the store (reports they send now are dropped).
        drop(reports);
        drop(commands);
        let _ = tokio::time::timeout_at(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    // Long because: a dispatcher: one short arm per command.
    fn on_command(&mut self, command: Command<N::Stream>) {
        match command {
            Command::Connected {
                stream,
                address,
                outgoing,
                slot,
            } => self.on_connected(*stream, address, outgoing, slot),
            Command::DialFailed { address, reason } => {
                let jitter = self.rng.next_u64();
                self.connections
                    .dial_failed(&address, Instant::now(), jitter);
                self.emit(Event::DialFailed { address, reason });
            }
            Command::LocalStored { feed, head } => self.on_stored(feed, head, 0, 0, None),
            Command::Scanned { feed, entries } => self.on_scanned(feed, entries),
            Command::ScanFailed { feed, reason } => self.on_scan_failed(feed, reason),
            Command::ProofNotKept { from, verdict } => match verdict {
                Verdict::NotHeld(proof) => {
                    // Judged once the feed's first entry is here (it may be on its way).
                    if self.unjudged.len() >= MAX_UNJUDGED_PROOFS {
                        self.unjudged.pop_front();
                    }
                    self.unjudged.retain(|(_, p)| p.author() != proof.author());
                    self.unjudged.push_back((from, proof));
                }
                Verdict::Refused { author, reason } => {
                    if let Some(peer) = from {
                        self.emit(Event::ProofRefused {
                            peer,
                            author,
                            reason,
                        });
                    }
                }
                Verdict::Keep(_) => {}
            },
            Command::ProofChecked { from, proof, new } => {
                if let (Some(proof), true) = (proof, new) {
                    self.emit(Event::ForkDetected {
                        author: proof.author(),
                        seq: proof.seq(),
                    });
                    self.broadcast_proof(&proof, from);
                }
            }
            Command::RequestFeed(feed, wanted) => {
                let changed = if wanted {
                    self.config.explicit.insert(feed)
                } else {
                    self.config.explicit.remove(&feed)
                };
                if changed {
                    self.recompute_scope();
                }
            }
            Command::Visit(feed, begins) => {
                if crate::policy::count_visit(&mut self.visiting, feed, begins) {
                    self.recompute_scope();
                }
            }
            Command::AddPeer(address, id) => {
                self.connections
                    .add_address(address, id, Origin::Configured);
                self.dial();
            }
            Command::Status(reply) => {
                let _ = reply.send(NodeStatus {
                    id: self.id,
                    listen: self.listen.clone(),
                    peers: self
                        .connections
                        .iter()
                        .map(|(peer, c)| PeerStatus {
                            peer: *peer,
                            address: c.address.clone(),
                            outgoing: c.outgoing,
                        })
                        .collect(),
                    scope: self.scope.feeds.clone(),
                    blocked: self.scope.blocked.clone(),
                    known_addresses: self.connections.known_addresses(),
                    own_head: self.heads.get(&self.id).copied().unwrap_or(0),
                    own_claimed: self.own_claimed,
                    settled_peers: self
                        .connections
                        .iter()
                        .filter(|(_, c)| c.since.elapsed() >= OWN_HEAD_SETTLE)
                        .count(),
                    own_noted: self.own_noted.len(),
                });
            }
            Command::Shutdown(_) => {}
        }
    }

    // Long because: one new connection from start to finish: duplicate rule, slot admission,
    // session, tasks; the decisions themselves are in policy.rs.
    fn on_connected(
        &mut self,
        stream: SecureStream<N::Stream>,
        address: String,
        outgoing: bool,
        slot: Option<crate::transport::Slot>,
    ) {
        let peer = stream.remote();
        // Two connections to one peer, or one to ourselves: `policy::on_duplicate` decides.
        match self.connections.arrived(peer, &address, outgoing) {
            Arrival::Drop => {
                tracing::debug!(peer = %peer.short(), %address, "a second connection to a peer (or to ourselves): dropped");
                return;
            }
            Arrival::Admit { replaces } => {
                if let Some(old) = replaces {
                    old.close();
                }
            }
        }
        let now = Instant::now();
        // An incoming connection needs a session slot: a free one, or that of the inbound
        // peer useless longest (told to close).
        let slot = match (outgoing, slot) {
            (true, slot) => slot,
            (false, Some(slot)) => Some(slot),
            (false, None) => match self.inbound.admit(now) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(peer = %peer.short(), %address, "every inbound slot is in use: refused");
                    self.emit(Event::ConnectionRefused {
                        peer,
                        address,
                        reason: "every inbound slot is in use by a useful peer".into(),
                    });
                    return;
                }
            },
        };
        let rank = self.rng.next_u64();
        let wanted = self.scheduler.peer_connected(peer, rank, now);
        let session = Session::new(
            self.epoch,
            self.heads.clone(),
            wanted,
            self.scope.blocked.clone(),
            self.memories.remove(&peer).map(|(_, memory)| memory),
        );
        let (commands, commands_rx) = PeerHandle::new(PEER_COMMAND_CAPACITY);
        let id = self
            .connections
            .admit(peer, address.clone(), outgoing, now, commands.clone());
        // Known fork proofs go to every new peer.
        let store = Arc::clone(&self.store);
        let proofs_to = commands;
        self.store_task(move || {
            if let Ok(proofs) = store.fork_proofs() {
                for proof in proofs.into_iter().take(MAX_FORK_PROOFS_ON_CONNECT) {
                    proofs_to.offer(PeerCommand::ForkProof(proof.encode()));
                }
            }
            None
        });
        let context = Arc::clone(&self.context);
        // Subscribed together with the heads snapshot above: no announcement is missed.
        let stored_rx = self.stored.subscribe();
        self.tasks.spawn(async move {
            crate::peer::run(stream, session, context, commands_rx, stored_rx, id, slot).await;
        });
        self.emit(Event::PeerConnected {
            peer,
            address,
            outgoing,
        });
    }

    fn on_report(&mut self, report: PeerReport) {
        let now = Instant::now();
        match report {
            PeerReport::Note { peer, feed, note } => {
                tracing::debug!(node = %self.id.short(), peer = %peer.short(), feed = %feed.short(), ?note, "note");
                if feed == self.id {
                    self.own_claimed = self.own_claimed.max(note.seq());
                    if matches!(note, crate::wire::Note::At { .. }) {
                        self.own_noted.insert(peer);
                        self.seeking = false;
                    } else {
                        self.own_noted.remove(&peer);
                    }
                }
                let changes = self.scheduler.peer_claims(&peer, &feed, note.seq(), now);
                self.apply(changes);
            }
            PeerReport::Refused { peer, feed, reason } => {
                let changes = self.scheduler.refused(&peer, &feed, now);
                self.apply(changes);
                self.emit(Event::Refused { peer, feed, reason });
            }
            PeerReport::Declined { peer, feed, reason } => {
                let changes = self.scheduler.declined(&peer, &feed, now);
                self.apply(changes);
                self.emit(Event::Declined { peer, feed, reason });
            }
            PeerReport::ForkProof { peer, bytes } => self.check_proof(Some(peer), bytes),
            PeerReport::Stored {
                peer,
                feed,
                head,
                new,
                received,
            } => self.on_stored(feed, head, new, received, Some(peer)),
            PeerReport::Forked { author } => {
                let store = Arc::clone(&self.store);
                self.store_task(move || {
                    let proof = store.fork_proof(&author).ok().flatten().map(Box::new);
                    Some(Command::ProofChecked {
                        from: None,
                        proof,
                        new: true,
                    })
                });
            }
            PeerReport::Closed {
                peer,
                connection,
                memory,
                reason,
            } => {
                if self.connections.closed(&peer, connection) {
                    self.own_noted.remove(&peer);
                    self.remember(peer, memory, now);
                    let changes = self.scheduler.peer_disconnected(&peer, now);
                    self.apply(changes);
                    self.emit(Event::PeerDisconnected { peer, reason });
                }
            }
        }
    }

    /// Keeps what a closed session learned of `peer`'s clock (or forgets it), within
    /// [`MAX_PEER_MEMORIES`].
    fn remember(&mut self, peer: FeedId, memory: Option<PeerMemory>, now: Instant) {
        let Some(memory) = memory else {
            self.memories.remove(&peer);
            return;
        };
        if !self.memories.contains_key(&peer) && self.memories.len() >= MAX_PEER_MEMORIES {
            let oldest = self
                .memories
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(peer, _)| *peer);
            if let Some(oldest) = oldest {
                self.memories.remove(&oldest);
            }
        }
        self.memories.insert(peer, (now, memory));
    }

    fn check_proof(&mut self, from: Option<FeedId>, bytes: Vec<u8>) {
        // Believe nothing unverified: decode checks both signatures.
        match ForkProof::decode(&bytes) {
            Ok(proof) => self.judge_proof(from, Box::new(proof)),
            Err(err) => {
                // Two signatures that do not verify are no honest mistake: the peer is dropped
                // (and named), once, without a log line per proof.
                let reason = format!("invalid fork proof: {err}");
                tracing::debug!(peer = ?from, %reason, "a peer sent an invalid fork proof");
                if let Some(peer) = from {
                    if let Some(open) = self.connections.get(&peer) {
                        open.handle.close();
                    }
                    self.emit(Event::ProofRefused {
                        peer,
                        author: None,
                        reason,
                    });
                }
            }
        }
    }

    /// Judges a verified proof by its feed's rules (off the actor: it reads the store), and
    /// stores it if it counts.
    fn judge_proof(&mut self, from: Option<FeedId>, proof: Box<ForkProof>) {
        let store = Arc::clone(&self.store);
        let check = Arc::clone(&self.context.attachments);
        self.store_task(
            move || match judge_proof(store.as_ref(), check.as_ref(), proof) {
                Verdict::Keep(proof) => {
                    let new = store.add_fork_proof(&proof).unwrap_or(false);
                    Some(Command::ProofChecked {
                        from,
                        proof: Some(proof),
                        new,
                    })
                }
                verdict => Some(Command::ProofNotKept { from, verdict }),
            },
        );
    }

    /// Runs a store call off the actor (or inline, see [`Blocking`]); the command it returns
    /// is then handled by the actor.
    fn store_task(&mut self, call: impl FnOnce() -> Option<Command<N::Stream>> + Send + 'static) {
        match N::BLOCKING {
            Blocking::Inline => {
                if let Some(command) = call() {
                    self.on_command(command);
                }
            }
            Blocking::Pool => {
                let commands = self.commands.clone();
                self.tasks.spawn(async move {
                    if let Ok(Some(command)) = tokio::task::spawn_blocking(call).await {
                        let _ = commands.send(command).await;
                    }
                });
            }
        }
    }

    fn broadcast_proof(&self, proof: &ForkProof, except: Option<FeedId>) {
        let bytes = proof.encode();
        for (peer, open) in self.connections.iter() {
            if Some(*peer) != except {
                open.handle.offer(PeerCommand::ForkProof(bytes.clone()));
            }
        }
    }

    fn on_stored(
        &mut self,
        feed: FeedId,
        head: u64,
        new: usize,
        received: usize,
        from: Option<FeedId>,
    ) {
        let now = Instant::now();
        let entry = self.heads.entry(feed).or_insert(0);
        *entry = (*entry).max(head);
        let head = *entry;
        self.scheduler.progress(&feed, head, now);
        let _ = self.stored.send((feed, head));
        self.emit(Event::Stored {
            feed,
            head,
            new,
            received,
            from,
        });
        if self.scope.contains(&feed) || feed == self.id {
            self.scan(feed);
        }
        if let Some(at) = self.unjudged.iter().position(|(_, p)| p.author() == feed)
            && let Some((from, proof)) = self.unjudged.remove(at)
        {
            self.judge_proof(from, proof);
        }
    }

    /// Reads `feed`'s entries not yet applied to the follow graph (on a blocking thread).
    fn scan(&mut self, feed: FeedId) {
        if self.scan_retries.waiting(&feed, Instant::now()) {
            // It failed lately: the tick reads it again when its backoff is over.
            return;
        }
        if !self.scanning.insert(feed) {
            return;
        }
        let from = Seq::new(self.graph.next_seq(&feed));
        let store = Arc::clone(&self.store);
        self.store_task(move || {
            Some(match store.range(&feed, from, SCAN_BATCH) {
                Ok(entries) => Command::Scanned { feed, entries },
                Err(err) => Command::ScanFailed {
                    feed,
                    reason: err.to_string(),
                },
            })
        });
    }

    /// A read for the follow graph failed: reported, and retried later with backoff.
    fn on_scan_failed(&mut self, feed: FeedId, reason: String) {
        self.scanning.remove(&feed);
        let jitter = self.rng.below(1000);
        let failures = self.scan_retries.failed(feed, Instant::now(), jitter);
        tracing::warn!(feed = %feed.short(), %reason, failures, "reading a feed from the store failed; retrying later");
        self.emit(Event::StoreFailed {
            what: "reading a feed for its follows",
            feed: Some(feed),
            reason,
        });
    }

    /// Reads again the feeds whose failed read's backoff is over.
    fn retry_failed_scans(&mut self, now: Instant) {
        for feed in self.scan_retries.due(now) {
            self.scan(feed);
        }
    }

    /// Builds the scope from scratch: own feed and explicit feeds first; scanning them reveals
    /// follows, which widen the scope and are scanned in turn.
    fn rescan_all(&mut self) {
        self.scope = Scope::default();
        self.recompute_scope();
        let feeds: Vec<FeedId> = self.scope.feeds.keys().copied().collect();
        for feed in feeds {
            if self.heads.contains_key(&feed) {
                self.scan(feed);
            }
        }
    }

    fn on_scanned(&mut self, feed: FeedId, entries: Vec<Entry>) {
        self.scanning.remove(&feed);
        self.scan_retries.succeeded(&feed);
        let mut changed = false;
        for entry in &entries {
            changed |= self.graph.apply(entry);
        }
        if changed {
            for (author, address) in self.graph.pubs() {
                if *author != self.id {
                    self.connections
                        .add_address(address.clone(), Some(*author), Origin::Announced);
                }
            }
            self.recompute_scope();
        }
        // More may have arrived while reading.
        if self.heads.get(&feed).copied().unwrap_or(0) >= self.graph.next_seq(&feed)
            && (self.scope.contains(&feed) || feed == self.id)
        {
            self.scan(feed);
        }
    }

    fn recompute_scope(&mut self) {
        let scope = if self.visiting.is_empty() {
            self.graph
                .scope(&self.id, self.config.hops, &self.config.explicit)
        } else {
            let mut wanted = self.config.explicit.clone();
            wanted.extend(self.visiting.keys().copied());
            self.graph.scope(&self.id, self.config.hops, &wanted)
        };
        if scope == self.scope {
            return;
        }
        let old = std::mem::replace(&mut self.scope, scope);
        let feeds: BTreeMap<FeedId, u64> = self
            .scope
            .feeds
            .keys()
            .map(|f| (*f, self.heads.get(f).copied().unwrap_or(0)))
            .collect();
        let changes = self.scheduler.set_scope(&feeds, Instant::now());
        let told: Vec<PeerCommand> = crate::policy::scope_changes(&old, &self.scope)
            .into_iter()
            .map(|change| match change {
                ScopeChange::Dropped(feed) => PeerCommand::SetWanted(feed, None),
                ScopeChange::Added(feed) => PeerCommand::SetWanted(feed, Some(false)),
                ScopeChange::Blocked(feed, blocked) => PeerCommand::Blocked(feed, blocked),
            })
            .collect();
        for (_, open) in self.connections.iter() {
            // A connection that cannot take them all is closed (`PeerHandle::send`).
            for command in &told {
                if !open.handle.send(command.clone()) {
                    break;
                }
            }
        }
        self.apply(changes);
        // Newly reachable feeds may follow others.
        let heads = &self.heads;
        for feed in crate::policy::to_scan(&old, &self.scope, |f| heads.contains_key(f)) {
            self.scan(feed);
        }
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for Change { peer, feed, ask } in changes {
            tracing::debug!(node = %self.id.short(), peer = %peer.short(), feed = %feed.short(), ask, "source change");
            if let Some(open) = self.connections.get(&peer)
                && !open.handle.send(PeerCommand::SetWanted(feed, Some(ask)))
            {
                tracing::debug!(%peer, "closing a connection too slow to take commands");
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let changes = self.scheduler.tick(now);
        self.apply(changes);
        self.retry_failed_scans(now);
        self.dial();
        self.rotate(now);
        let behind = self.scheduler.behind();
        let progress = (behind.len(), behind.values().sum::<u64>());
        if progress != self.last_catch_up {
            self.last_catch_up = progress;
            self.emit(Event::CatchUp {
                feeds: progress.0,
                entries: progress.1,
            });
        }
    }

    /// Dials what the connection table picks (`Connections::to_dial`), each on a task of its own.
    fn dial(&mut self) {
        let rng = &mut self.rng;
        // The feeds we replicate: their authors' addresses are dialed first.
        let scope = &self.scope;
        let chosen =
            self.connections
                .to_dial(Instant::now(), |id| scope.contains(id), || rng.next_u64());
        for (address, expected) in chosen {
            let network = Arc::clone(&self.network);
            let identity = Arc::clone(&self.identity);
            let transport = self.config.transport.clone();
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let dialed = async {
                    let stream = tokio::time::timeout(DIAL_TIMEOUT, network.connect(&address))
                        .await
                        .map_err(|_| transport::Error::Timeout {
                            what: "connecting",
                            after: DIAL_TIMEOUT,
                        })?
                        .map_err(|e| transport::Error::io("connecting", &e))?;
                    transport::connect(stream, &identity, expected, &transport).await
                };
                let command = match dialed.await {
                    Ok(stream) => Command::Connected {
                        stream: Box::new(stream),
                        address,
                        outgoing: true,
                        slot: None,
                    },
                    Err(err) => Command::DialFailed {
                        address,
                        reason: err.to_string(),
                    },
                };
                let _ = commands.send(command).await;
            });
        }
    }

    /// Now and then, drops the oldest dialed connection so that another candidate gets a turn.
    fn rotate(&mut self, now: Instant) {
        if let Some(oldest) = self.connections.to_rotate(now) {
            oldest.close();
        }
        if self.seeking {
            let noted = &self.own_noted;
            if let Some(useless) =
                self.connections
                    .to_rotate_seeking(now, SEEK_ROTATE_EVERY, SEEK_REST, |peer| {
                        noted.contains(peer)
                    })
            {
                useless.close();
            }
        }
    }
}

/// What becomes of a peer's (verified) fork proof.
#[derive(Debug)]
enum Verdict {
    /// It counts: store it, freezing the feed.
    Keep(Box<ForkProof>),
    /// The feed's first entry is not held, so it can be neither judged nor used yet.
    NotHeld(Box<ForkProof>),
    /// It does not count by the feed's rules.
    Refused {
        author: Option<FeedId>,
        reason: String,
    },
}

/// Judges a fork proof whose signatures verified (`docs/protocol/feed.md` §9): it counts only
/// for a feed whose first entry this node holds, and only if the feed's rules accept its
/// evidence (a wallet's proof needs both halves certified).
fn judge_proof(store: &dyn Store, check: &dyn AttachmentCheck, proof: Box<ForkProof>) -> Verdict {
    let author = proof.author();
    match store.get(&author, Seq::FIRST) {
        Ok(Some(first)) if check.proof_counts(&proof, &first) => Verdict::Keep(proof),
        Ok(Some(_)) => {
            let reason = format!(
                "fork proof for {author} at #{} without the evidence its feed requires",
                proof.seq().get()
            );
            tracing::debug!(%reason, "a fork proof is not kept");
            Verdict::Refused {
                author: Some(author),
                reason,
            }
        }
        Ok(None) => Verdict::NotHeld(proof),
        Err(err) => Verdict::Refused {
            author: Some(author),
            reason: format!("reading the store to judge a fork proof failed: {err}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_ingesting_in_the_background_takes_smaller_batches() {
        let config = NodeConfig::default();
        assert_eq!(config.effective_ingest_batch(), DEFAULT_INGEST_BATCH);
        let background = NodeConfig {
            background_ingest: true,
            ..NodeConfig::default()
        };
        const { assert!(DEFAULT_INGEST_BATCH > BACKGROUND_INGEST_BATCH) };
        assert_eq!(background.effective_ingest_batch(), BACKGROUND_INGEST_BATCH);
        // A smaller batch asked for is kept.
        let small = NodeConfig {
            background_ingest: true,
            ingest_batch: 16,
            ..NodeConfig::default()
        };
        assert_eq!(small.effective_ingest_batch(), 16);
    }
}
