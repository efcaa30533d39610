//! The notary service: a listener on the replicate transport, and one actor that owns the
//! [`NotaryState`], decides requests in batches, persists new votes (one fsync per batch: group
//! commit) and only then signs and answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Entry, EntryBytes, FeedId, Keypair, Seq, Store};
use scrip_ledger::verify::TrustSignatures;
use scrip_ledger::{CertifiedEntry, FateSubject, Vote, VoteSubject};
use scrip_replicate::transport::{
    AcceptLimits, Blocking, LocalIdentity, Network, SecureStream, Slot, SlotTable, TokenBucket,
    TransportConfig,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::certified::{self, from_bytes, to_bytes};
use crate::decision::{Decision, FateDecision, NotaryState, Refusal};
use crate::error::{Error, Result};
use crate::votes::{StepHook, VoteRecord, VoteStore};
use crate::wire::{
    self, FateRequest, MAX_CERTIFIED_PER_MESSAGE, Proposal, Request, Response, SlotInfo,
};

/// Capacity of the notary actor's job queue.
pub const JOB_QUEUE_CAPACITY: usize = 1024;
/// Most jobs decided per batch (one vote-store flush per batch).
pub const MAX_BATCH: usize = 256;
/// Capacity of the queue of entries waiting to be kept in the notary's feed store (written in
/// the background, so that the next batch of votes does not wait for them).
pub const STORE_QUEUE_CAPACITY: usize = 64;
/// How long the feed-store writer lets learned entries gather before writing them: sled's cost
/// is mostly per commit and per key (a head and a chunk per wallet), so a busy notary writes a
/// few dozen entries per commit instead of one or two. Only gossip waits for these writes.
pub const LEARNED_WRITE_DELAY: Duration = Duration::from_millis(10);
/// Most learned entries written in one commit.
pub const LEARNED_PER_WRITE: usize = 512;
/// Default [`NotaryConfig::idle_before_eviction`].
pub const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(5);
/// Capacity of the notary's event channel (slow subscribers miss events, never block it).
pub const EVENTS_CAPACITY: usize = 1024;

/// What a notary tells the node it runs beside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotaryEvent {
    /// Certified entries of `wallet` (learned from proposals) were written to the notary's
    /// feed store, up to `head`: replicate the wallet and announce them.
    Stored {
        /// The wallet.
        wallet: FeedId,
        /// Its latest seq in the store.
        head: u64,
    },
}

/// Notary service settings.
#[derive(Clone, Debug)]
pub struct NotaryConfig {
    /// Address to listen on.
    pub listen: String,
    /// Transport settings (network key, timeouts).
    pub transport: TransportConfig,
    /// Most clients connected at once (session slots, taken after authentication).
    pub max_clients: usize,
    /// Bounds on incoming connections before they authenticate.
    pub accept: AcceptLimits,
    /// How long a client must have sent no request before a newcomer may take its slot when
    /// all are in use.
    pub idle_before_eviction: Duration,
    /// Requests per second allowed per client connection (a token bucket of one second).
    pub requests_per_sec: u32,
    /// The margin δ of the fate clock rule: the bound this notary assumes on its clock's
    /// error (`notary.md` §3a). Every notary of a set should use the same.
    pub clock_skew: Duration,
    /// Added to the system clock when deciding fates, in milliseconds: 0 in use; tests and
    /// simulations set it to skew a notary's clock.
    pub clock_offset_ms: i64,
    /// Most wallets this notary takes on per hour (a token bucket of an hour; `None`: no
    /// bound). Each wallet it knows costs memory and vote-log space for good (its votes are
    /// never forgotten), and anyone can make a wallet naming any notary, so a notary open to
    /// strangers bounds how fast they can grow it (`notary.md` §2, "New wallets").
    pub new_wallets_per_hour: Option<u32>,
    /// Most entries per second this notary keeps for wallets it does not vouch for (a token
    /// bucket of [`STRANGER_BURST`]; `None`: no bound): its votes about them (entry votes and
    /// fate votes) and the certified entries it learns from their proposals, and at least one
    /// per request about them it decides (a bogus one costs checks too). Each entry is kept
    /// for good and costs signature checks, and a stranger can make a wallet whose other
    /// notaries are its own keys and feed it certified entries as fast as it likes; a notary
    /// open to strangers keeps its members' share of its work and its disk (`notary.md` §2,
    /// "Strangers' entries"). With no [`NotaryConfig::vouched`], every wallet counts.
    pub stranger_entries_per_sec: Option<u32>,
    /// Wallets taken on whatever those bounds say (those its owner vouches for; `None`: none).
    pub vouched: Option<Vouched>,
}

/// Which wallets a notary takes on beyond [`NotaryConfig::new_wallets_per_hour`] and
/// [`NotaryConfig::stranger_entries_per_sec`]: asked on the notary's actor for each request
/// about a wallet (while one of those bounds is set), so it must answer at once (from memory,
/// never from a store).
#[derive(Clone)]
pub struct Vouched(pub Arc<dyn Fn(&FeedId) -> bool + Send + Sync>);

impl std::fmt::Debug for Vouched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vouched(..)")
    }
}

impl Default for NotaryConfig {
    fn default() -> Self {
        NotaryConfig {
            listen: "127.0.0.1:0".into(),
            transport: TransportConfig::default(),
            max_clients: 256,
            accept: AcceptLimits::default(),
            idle_before_eviction: IDLE_BEFORE_EVICTION,
            requests_per_sec: 2000,
            clock_skew: CLOCK_SKEW,
            clock_offset_ms: 0,
            new_wallets_per_hour: None,
            stranger_entries_per_sec: None,
            vouched: None,
        }
    }
}

/// The period of [`NotaryConfig::new_wallets_per_hour`].
pub const NEW_WALLETS_PERIOD: Duration = Duration::from_secs(3600);

/// How many seconds' worth of [`NotaryConfig::stranger_entries_per_sec`] strangers may use at
/// once (the bucket's capacity): room for a wallet's short history learned in one go.
pub const STRANGER_BURST: Duration = Duration::from_secs(10);

/// The default margin δ of the fate clock rule (`notary.md` §3a): notaries keep their clocks
/// within this of true time (NTP keeps them within milliseconds).
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// This notary's clock for fate decisions: the system clock plus `offset_ms`.
pub fn fate_clock(offset_ms: i64) -> scrip_feed::Timestamp {
    let now = scrip_feed::Timestamp::now().as_millis();
    scrip_feed::Timestamp::from_millis(now.saturating_add_signed(offset_ms))
}

enum Job {
    Request {
        request: Request,
        /// The client's identity, as the transport authenticated it (`None`: in process).
        session: Option<FeedId>,
        reply: oneshot::Sender<Response>,
    },
    Learn {
        wallet: FeedId,
    },
    /// What a read started by a `Learn` found (off the actor).
    Read {
        wallet: FeedId,
        read: Option<LearnRead>,
    },
    Wallets {
        reply: oneshot::Sender<Vec<FeedId>>,
    },
    Shutdown,
}

/// A running notary.
pub struct NotaryHandle {
    id: FeedId,
    address: String,
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NotaryEvent>,
    actor: Option<JoinHandle<()>>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NotaryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryHandle")
            .field("id", &self.id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// A clonable way for other tasks (the node bridge) to reach a running notary. It does not
/// keep the notary running.
#[derive(Clone, Debug)]
pub struct NotaryLink {
    jobs: mpsc::Sender<Job>,
}

impl NotaryLink {
    /// See [`NotaryHandle::learn`].
    pub async fn learn(&self, wallet: FeedId) {
        let _ = self.jobs.send(Job::Learn { wallet }).await;
    }

    /// See [`NotaryHandle::wallets`].
    pub async fn wallets(&self) -> Vec<FeedId> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job::Wallets { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// The notary service (see [`Notary::spawn`]).
#[derive(Debug)]
pub struct Notary;

impl Notary {
    /// Starts notary `keypair`: rebuilds its state from `store` (certified wallet entries) and
    /// `votes`, listens on `config.listen`.
    pub async fn spawn<N: Network>(
        keypair: Arc<Keypair>,
        store: Arc<dyn Store>,
        votes: Arc<dyn VoteStore>,
        network: N,
        config: NotaryConfig,
        hook: Arc<StepHook>,
    ) -> Result<NotaryHandle> {
        let me = keypair.id();
        let calls = N::BLOCKING;
        let (rebuild_store, rebuild_votes) = (Arc::clone(&store), Arc::clone(&votes));
        let state = calls
            .run(move || rebuild(me, rebuild_store.as_ref(), rebuild_votes.as_ref()))
            .await
            .ok_or(Error::Shutdown)??;
        let (listener, address) = network
            .bind(&config.listen)
            .await
            .map_err(|e| Error::io("binding the notary address", &e))?;
        let identity = Arc::new(LocalIdentity::new(Arc::clone(&keypair))?);
        let (jobs, jobs_rx) = mpsc::channel(JOB_QUEUE_CAPACITY);
        let (writes, writes_rx) = mpsc::channel(STORE_QUEUE_CAPACITY);
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let writer = tokio::spawn(store_writer(
            Arc::clone(&store),
            calls,
            writes_rx,
            events.clone(),
        ));
        let actor = Actor {
            keypair,
            state,
            store,
            votes,
            calls,
            hook,
            writes: Some(writes),
            writer: Some(writer),
            jobs: jobs.downgrade(),
            learning: BTreeMap::new(),
            clock_skew: config.clock_skew,
            clock_offset_ms: config.clock_offset_ms,
            vouched: config.vouched.clone(),
            new_wallets: config.new_wallets_per_hour.map(|per_hour| NewWallets {
                per_hour,
                bucket: TokenBucket::per(u64::from(per_hour), NEW_WALLETS_PERIOD, Instant::now()),
                refusing: false,
            }),
            strangers: config
                .stranger_entries_per_sec
                .map(|per_sec| StrangerShare {
                    per_sec,
                    bucket: TokenBucket::per(
                        u64::from(per_sec).saturating_mul(STRANGER_BURST.as_secs()),
                        STRANGER_BURST,
                        Instant::now(),
                    ),
                    refusing: false,
                }),
        };
        let actor = tokio::spawn(actor.run(jobs_rx));
        let accept = {
            let jobs = jobs.clone();
            let slots = SlotTable::new(config.max_clients, config.idle_before_eviction);
            let transport = config.transport.clone();
            tokio::spawn(scrip_replicate::transport::accept_loop(
                Arc::new(network),
                listener,
                identity,
                transport,
                config.accept,
                "notary",
                move |stream, address| {
                    let config = config.clone();
                    let jobs = jobs.clone();
                    // A session slot: a free one, or that of the client idle longest.
                    let slot = slots.admit(Instant::now());
                    async move {
                        let Some(slot) = slot else {
                            tracing::debug!(%address, "every client slot is in use: refused");
                            return;
                        };
                        if let Err(err) = serve_client(stream, &config, &jobs, &slot).await {
                            tracing::debug!(%address, %err, "notary client left");
                        }
                    }
                },
            ))
        };
        Ok(NotaryHandle {
            id: me,
            address,
            jobs,
            events,
            actor: Some(actor),
            accept: Some(accept),
        })
    }
}

impl NotaryHandle {
    /// The notary's identity.
    pub fn id(&self) -> FeedId {
        self.id
    }

    /// The address it listens on.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Tells the notary that `wallet`'s entries in its store may have grown (e.g. by
    /// replication): it learns the certified ones.
    pub async fn learn(&self, wallet: FeedId) {
        self.link().learn(wallet).await;
    }

    /// The wallets this notary knows.
    pub async fn wallets(&self) -> Vec<FeedId> {
        self.link().wallets().await
    }

    /// Jobs (requests, learn calls) queued for the notary's actor and not yet taken into a
    /// batch.
    pub fn queued_jobs(&self) -> usize {
        JOB_QUEUE_CAPACITY - self.jobs.capacity()
    }

    /// A [`NotaryLink`] to this notary.
    pub fn link(&self) -> NotaryLink {
        NotaryLink {
            jobs: self.jobs.clone(),
        }
    }

    /// Subscribes to the notary's events.
    pub fn events(&self) -> broadcast::Receiver<NotaryEvent> {
        self.events.subscribe()
    }

    /// Asks the notary directly (in-process), as a client would over the network.
    pub async fn ask(&self, request: Request) -> Result<Response> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Request {
                request,
                session: None,
                reply,
            })
            .await
            .map_err(|_| Error::Shutdown)?;
        answer.await.map_err(|_| Error::Shutdown)
    }

    /// Stops accepting, finishes the queued jobs and stops.
    pub async fn shutdown(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        let _ = self.jobs.send(Job::Shutdown).await;
        if let Some(actor) = self.actor.take() {
            let _ = actor.await;
        }
    }
}

impl Drop for NotaryHandle {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        if let Some(actor) = self.actor.take() {
            actor.abort();
        }
    }
}

/// Wallet entries read per store call while rebuilding.
const REBUILD_BATCH: usize = 256;

/// Rebuilds a notary's state: the certified prefix of every wallet in its store (signatures
/// were verified when stored), then its durable votes. A feed that is no wallet costs one read
/// of its first entry (a notary's store holds the social feeds it replicates too), and a
/// wallet's log is read [`REBUILD_BATCH`] entries at a time.
fn rebuild(me: FeedId, store: &dyn Store, votes: &dyn VoteStore) -> Result<NotaryState> {
    let mut state = NotaryState::new(me);
    for author in store.authors()? {
        let is_wallet = store
            .get(&author, Seq::FIRST)?
            .is_some_and(|first| scrip_ledger::content::wallet_notaries(&first).is_some());
        if !is_wallet {
            continue;
        }
        let mut next = 1;
        'log: loop {
            let batch = certified::log(store, &author, next, REBUILD_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for entry in &batch {
                if entry.certificate.is_none() || state.learn(entry, &TrustSignatures).is_err() {
                    break 'log;
                }
                next = entry.entry.seq().get().saturating_add(1);
            }
        }
    }
    for vote in votes.load()? {
        state.restore_vote(&vote);
    }
    for fate in votes.load_fates()? {
        state.restore_fate(fate.order, fate.fate);
    }
    Ok(state)
}

async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: SecureStream<S>,
    config: &NotaryConfig,
    jobs: &mpsc::Sender<Job>,
    slot: &Slot,
) -> Result<()> {
    let mut bucket = TokenBucket::new(u64::from(config.requests_per_sec), Instant::now());
    loop {
        let received = tokio::select! {
            received = stream.recv() => received?,
            () = slot.evicted() => {
                // A newcomer took the slot of this idle client.
                let _ = stream.goodbye().await;
                return Ok(());
            }
        };
        let Some(bytes) = received else {
            return Ok(());
        };
        let now = Instant::now();
        slot.useful(now);
        let response = if !bucket.try_take(now, 1) {
            Response::Refusal(Refusal::Unavailable {
                reason: format!(
                    "rate limit: {} requests per second",
                    config.requests_per_sec
                ),
            })
        } else {
            match wire::decode::<Request>(&bytes).and_then(|r| wire::check_request(&r).map(|()| r))
            {
                Err(err) => Response::Refusal(Refusal::Malformed {
                    reason: err.to_string(),
                }),
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    jobs.send(Job::Request {
                        request,
                        session: Some(stream.remote()),
                        reply,
                    })
                    .await
                    .map_err(|_| Error::Shutdown)?;
                    answer.await.map_err(|_| Error::Shutdown)?
                }
            }
        };
        stream.send(&wire::encode(&response)?).await?;
    }
}

struct Actor {
    keypair: Arc<Keypair>,
    state: NotaryState,
    store: Arc<dyn Store>,
    votes: Arc<dyn VoteStore>,
    calls: Blocking,
    hook: Arc<StepHook>,
    /// To the background store writer (`None` once shut down).
    writes: Option<mpsc::Sender<StoreWrite>>,
    writer: Option<JoinHandle<()>>,
    /// Its own queue, for the results of reads it started (weak: it does not keep itself
    /// running).
    jobs: mpsc::WeakSender<Job>,
    /// Wallets being read to learn, and whether another read was asked for meanwhile.
    learning: BTreeMap<FeedId, bool>,
    /// The fate clock rule's margin.
    clock_skew: Duration,
    /// Added to the system clock for fate decisions (tests).
    clock_offset_ms: i64,
    /// The bound on wallets taken on ([`NotaryConfig::new_wallets_per_hour`]).
    new_wallets: Option<NewWallets>,
    /// The bound on strangers' entries ([`NotaryConfig::stranger_entries_per_sec`]).
    strangers: Option<StrangerShare>,
    /// Wallets exempt from both ([`NotaryConfig::vouched`]).
    vouched: Option<Vouched>,
}

/// Which bound on strangers refuses a request.
#[derive(Clone, Copy)]
enum Exhausted {
    /// [`NotaryConfig::new_wallets_per_hour`].
    NewWallets { per_hour: u32 },
    /// [`NotaryConfig::stranger_entries_per_sec`].
    Strangers { per_sec: u32 },
}

impl Exhausted {
    /// Said in the log once per run of refusals.
    fn log(self) {
        match self {
            Exhausted::NewWallets { per_hour } => tracing::warn!(
                per_hour,
                "the bound on new wallets is reached: wallets this notary does not know wait \
                 (notary_new_wallets_per_hour; the people it follows are not bound)"
            ),
            Exhausted::Strangers { per_sec } => tracing::warn!(
                per_sec,
                "the strangers' share is used up: wallets this notary does not vouch for wait \
                 (notary_stranger_entries_per_sec; the people it follows are not bound)"
            ),
        }
    }

    /// The reason given with `Unavailable`.
    fn reason(self) -> String {
        match self {
            Exhausted::NewWallets { per_hour } => format!(
                "this notary takes on at most {per_hour} new wallet{} an hour and has taken its \
                 share: try again later",
                if per_hour == 1 { "" } else { "s" }
            ),
            Exhausted::Strangers { per_sec } => format!(
                "this notary keeps at most {per_sec} entr{} a second for wallets it does not \
                 vouch for, and that share is in use: try again later",
                if per_sec == 1 { "y" } else { "ies" }
            ),
        }
    }
}

/// The bound on strangers' entries, as the actor keeps it.
struct StrangerShare {
    per_sec: u32,
    bucket: TokenBucket,
    /// Whether it is refusing now (said once in the log per run of refusals).
    refusing: bool,
}

/// The bound on new wallets, as the actor keeps it.
struct NewWallets {
    per_hour: u32,
    bucket: TokenBucket,
    /// Whether it is refusing now (said once in the log per run of refusals).
    refusing: bool,
}

/// Work for the notary's feed-store writer.
enum StoreWrite {
    /// Certified entries learned from clients, for the notary's feed store (so that this notary
    /// can serve them and its node gossip them). The feed store holds certified entries only:
    /// an entry held without its certificate would never get one by replication, which sends
    /// only what follows a peer's head. Not needed for safety, which rests on the vote store
    /// alone: after a crash they are learned again from the next proposals or by replication.
    Learned(Vec<CertifiedEntry>),
    /// Answered once everything queued before it is in the store (a `Fetch` waits for it, so
    /// that it serves every certified entry the notary reports holding).
    Barrier(oneshot::Sender<()>),
}

/// Writes queued [`StoreWrite`]s, what gathered within [`LEARNED_WRITE_DELAY`] in one commit.
async fn store_writer(
    store: Arc<dyn Store>,
    calls: Blocking,
    mut writes: mpsc::Receiver<StoreWrite>,
    events: broadcast::Sender<NotaryEvent>,
) {
    while let Some(first) = writes.recv().await {
        let (mut learned, mut barriers) = (Vec::new(), Vec::new());
        match first {
            StoreWrite::Learned(entries) => {
                learned = entries;
                tokio::time::sleep(LEARNED_WRITE_DELAY).await;
            }
            StoreWrite::Barrier(done) => barriers.push(done),
        }
        while learned.len() < LEARNED_PER_WRITE
            && let Ok(more) = writes.try_recv()
        {
            match more {
                StoreWrite::Learned(entries) => learned.extend(entries),
                StoreWrite::Barrier(done) => barriers.push(done),
            }
        }
        if !learned.is_empty() {
            write_learned(&store, calls, learned, &events).await;
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// Writes learned entries to the feed store in one commit (no flush) and tells the node.
async fn write_learned(
    store: &Arc<dyn Store>,
    calls: Blocking,
    learned: Vec<CertifiedEntry>,
    events: &broadcast::Sender<NotaryEvent>,
) {
    let store = Arc::clone(store);
    let written = calls
        .run(move || {
            let wallets: BTreeSet<FeedId> = learned.iter().map(|c| c.entry.author()).collect();
            // The actor verified each of them (entry signature and payload) before learning
            // or voting for it.
            let batch =
                VerifiedBatch::already_verified(learned.iter().map(|c| c.entry.clone()).collect());
            let (report, _) = certified::offer_certified(store.as_ref(), batch, &learned, false)?;
            let mut heads = Vec::with_capacity(wallets.len());
            for wallet in wallets {
                if let Some(head) = store.head(&wallet)? {
                    heads.push((wallet, head.seq.get()));
                }
            }
            Ok::<_, Error>((report, heads))
        })
        .await
        .ok_or(Error::Shutdown);
    match written {
        Ok(Ok((report, heads))) => {
            if report.refused() > 0 {
                tracing::debug!(refused = report.refused(), "the feed store refused entries");
            }
            for (wallet, head) in heads {
                let _ = events.send(NotaryEvent::Stored { wallet, head });
            }
        }
        Ok(Err(err)) => tracing::warn!(%err, "writing the notary's feed store failed"),
        Err(err) => tracing::warn!(%err, "writing the notary's feed store failed"),
    }
}

impl Actor {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            // Group commit: whatever is queued now is decided together, with one flush.
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let stop = batch.iter().any(|j| matches!(j, Job::Shutdown));
            self.process(batch).await;
            if stop {
                break;
            }
        }
        // Let the writer finish what is queued.
        self.writes = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }

    fn sign(&self, subject: &VoteSubject) -> Vote {
        Vote::sign(&self.keypair, subject)
    }

    async fn process(&mut self, batch: Vec<Job>) {
        let mut to_persist: Vec<(VoteRecord, oneshot::Sender<Response>)> = Vec::new();
        // Signed answers about a vote that may have been decided in this very batch (the same
        // vote again, or `Locked` carrying it): they wait until the batch's votes are durable.
        let mut to_sign: Vec<(Signed, oneshot::Sender<Response>)> = Vec::new();
        let mut learned: Vec<CertifiedEntry> = Vec::new();
        let mut fetches = Vec::new();
        let mut ahead = self.verify_ahead(&batch).into_iter();
        for job in batch {
            let (parsed, wallet) = ahead.next().unwrap_or((None, None));
            match job {
                Job::Request {
                    request,
                    session,
                    reply,
                } => match request {
                    Request::Propose(_) => {
                        let decided =
                            self.within_bounds(wallet, |actor| actor.propose(parsed, &mut learned));
                        match decided {
                            Decided::Persist(record) => to_persist.push((record, reply)),
                            Decided::Sign(signed) => to_sign.push((signed, reply)),
                            Decided::Answer(response) => {
                                let _ = reply.send(response);
                            }
                        }
                    }
                    Request::Fate(request) => {
                        let decided = self
                            .within_bounds(wallet, |actor| actor.fate(&request, session.as_ref()));
                        match decided {
                            Decided::Persist(record) => to_persist.push((record, reply)),
                            Decided::Sign(signed) => to_sign.push((signed, reply)),
                            Decided::Answer(response) => {
                                let _ = reply.send(response);
                            }
                        }
                    }
                    Request::SlotQuery { wallet } => {
                        let info = self.slot_info(wallet).await;
                        let _ = reply.send(Response::SlotInfo(info));
                    }
                    Request::Fetch {
                        wallet,
                        from,
                        limit,
                    } => fetches.push((wallet, from, limit, reply)),
                },
                Job::Learn { wallet } => self.learn_from_store(wallet),
                Job::Read { wallet, read } => self.learn_read(wallet, read),
                Job::Wallets { reply } => {
                    let _ = reply.send(self.state.wallets().map(|w| w.ledger.wallet).collect());
                }
                Job::Shutdown => {}
            }
        }
        self.state.end_batch();
        // Persist before sign: the batch's new votes (with their entries) in one durable commit.
        let persisted = self.persist(&to_persist).await;
        match &persisted {
            Ok(()) => {
                for (record, reply) in to_persist {
                    // Noted as signed: shown back in a certificate, compared, not verified.
                    let vote = match &record {
                        VoteRecord::Entry { subject, .. } => {
                            let vote = self.sign(subject);
                            self.state.signed_vote(subject, &vote);
                            vote
                        }
                        VoteRecord::Fate(subject) => {
                            let vote = subject.vote(&self.keypair);
                            self.state.signed_fate(subject, &vote);
                            vote
                        }
                    };
                    let _ = reply.send(Response::Vote(vote));
                }
            }
            Err(reason) => {
                tracing::error!(%reason, "recording votes failed: refusing");
                for (record, reply) in to_persist {
                    // Not durable, so not a vote: the slot (or the order's fate) must not
                    // answer `Again` later.
                    match &record {
                        VoteRecord::Entry { subject, .. } => self.state.forget_vote(subject),
                        VoteRecord::Fate(subject) => self.state.forget_fate(subject),
                    }
                    let _ = reply.send(unavailable(reason));
                }
            }
        }
        // Every vote the state holds is durable now. A signed answer about a vote of this batch
        // whose write failed finds it forgotten: it was never a vote, and nothing is signed.
        for (signed, reply) in to_sign {
            let response = match &persisted {
                Err(reason) if !signed.still_held(&self.state) => unavailable(reason),
                _ => signed.answer(&self.keypair, &mut self.state),
            };
            let _ = reply.send(response);
        }
        if !learned.is_empty()
            && let Some(writes) = &self.writes
        {
            let _ = writes.send(StoreWrite::Learned(learned)).await;
        }
        for (wallet, from, limit, reply) in fetches {
            self.fetch(wallet, from, limit, reply).await;
        }
    }

    /// Records `to_persist`'s votes (with their entries) in one durable commit; the error's
    /// text on failure. The actor waits for nothing else meanwhile, so the commit runs on its
    /// own thread ([`Blocking::run_here`]): no hand-off to a pool thread and wake-up after.
    async fn persist(
        &self,
        to_persist: &[(VoteRecord, oneshot::Sender<Response>)],
    ) -> std::result::Result<(), String> {
        if to_persist.is_empty() {
            return Ok(());
        }
        let records: Vec<VoteRecord> = to_persist.iter().map(|(r, _)| r.clone()).collect();
        let votes = Arc::clone(&self.votes);
        let hook = Arc::clone(&self.hook);
        match self
            .calls
            .run_here(move || votes.record(&records, hook.as_ref()))
            .await
            .ok_or(Error::Shutdown)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Answers a `Fetch` from the feed store once the entries learned before it are written
    /// there (on its own task: the actor goes on deciding meanwhile).
    async fn fetch(&self, wallet: FeedId, from: u64, limit: u32, reply: oneshot::Sender<Response>) {
        let (written, barrier) = oneshot::channel();
        if let Some(writes) = &self.writes {
            // If the writer is gone, the barrier's sender goes with the message: no wait.
            let _ = writes.send(StoreWrite::Barrier(written)).await;
        }
        let (store, calls) = (Arc::clone(&self.store), self.calls);
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(MAX_CERTIFIED_PER_MESSAGE);
        tokio::spawn(async move {
            let _ = barrier.await;
            let fetched = calls
                .run(move || certified::log(store.as_ref(), &wallet, from, limit))
                .await
                .ok_or(Error::Shutdown);
            let response = match fetched {
                Ok(Ok(entries)) => Response::Certified(
                    entries
                        .iter()
                        .take_while(|e| e.certificate.is_some())
                        .filter_map(|e| to_bytes(e).ok())
                        .collect(),
                ),
                _ => Response::Refusal(Refusal::Unavailable {
                    reason: "reading the store failed".into(),
                }),
            };
            let _ = reply.send(response);
        });
    }

    async fn slot_info(&self, wallet: FeedId) -> SlotInfo {
        let Some(view) = self.state.wallet(&wallet) else {
            return SlotInfo {
                wallet,
                certified_head: 0,
                heard: 0,
                voted: None,
                pending: None,
            };
        };
        let certified_head = view.certified_head();
        let voted = view.votes.iter().next_back().map(|(s, e)| (*s, *e));
        let mut pending = None;
        if let Some((seq, id)) = voted.filter(|(s, _)| *s == certified_head + 1) {
            let votes = Arc::clone(&self.votes);
            let read = self
                .calls
                .run(move || votes.voted_entry(&wallet, scrip_feed::Seq::new(seq)))
                .await
                .ok_or(Error::Shutdown);
            if let Ok(Ok(Some(entry))) = read
                && entry.id() == id
                && let Some(payload) = entry.payload()
            {
                pending = Some(EntryBytes {
                    header: entry.header_bytes().to_vec(),
                    payload: payload.to_vec(),
                });
            }
        }
        SlotInfo {
            wallet,
            certified_head,
            heard: view.heard,
            voted,
            pending,
        }
    }

    /// Runs `decide` on a request about `wallet` (a proposal's author, a fate request's order
    /// wallet) within the bounds on strangers, the wallets not vouched for: a wallet this
    /// notary does not know yet is taken on only while the bound on new wallets allows one
    /// more, and a stranger's request is decided only while the strangers' share holds an
    /// entry (else `Unavailable`, before anything is checked). Then a new wallet counts against
    /// its bound once the decision left state for it (a vote, a learned entry, a fate vote),
    /// and what the decision kept for a stranger (its vote, the entries it learned; one token
    /// for a request that kept nothing, a bogus one included: deciding it cost checks) is taken
    /// from the share, into debt when a long prefix was learned at once. Vouched wallets are
    /// never refused here, and wallets it knows never by the bound on new wallets.
    fn within_bounds(
        &mut self,
        wallet: Option<FeedId>,
        decide: impl FnOnce(&mut Self) -> Decided,
    ) -> Decided {
        let Some(stranger) = self.stranger(wallet) else {
            return decide(self);
        };
        let now = Instant::now();
        let new = self.new_wallets.is_some() && self.state.wallet(&stranger).is_none();
        if let Some(exhausted) = self.exhausted(new, now) {
            let refusing = match exhausted {
                Exhausted::NewWallets { .. } => self.new_wallets.as_mut().map(|b| &mut b.refusing),
                Exhausted::Strangers { .. } => self.strangers.as_mut().map(|s| &mut s.refusing),
            };
            if let Some(refusing) = refusing
                && !std::mem::replace(refusing, true)
            {
                exhausted.log();
            }
            return unavailable_because(exhausted.reason());
        }
        // A run of refusals ends when a request of its kind passes.
        if new && let Some(bound) = self.new_wallets.as_mut() {
            bound.refusing = false;
        }
        if let Some(share) = self.strangers.as_mut() {
            share.refusing = false;
        }
        let head = |actor: &Self| {
            actor
                .state
                .wallet(&stranger)
                .map_or(0, |w| w.certified_head())
        };
        let before = head(self);
        let decided = decide(self);
        let learned = head(self).saturating_sub(before);
        let voted = matches!(decided, Decided::Persist(_));
        let took = self.state.wallet(&stranger).is_some()
            || matches!(decided, Decided::Persist(VoteRecord::Fate(_)));
        if new
            && took
            && let Some(bound) = self.new_wallets.as_mut()
        {
            let _ = bound.bucket.take(now, 1);
        }
        // Every request decided costs its checks, kept or not (a bogus one too): one token at
        // least.
        let kept = learned.saturating_add(u64::from(voted)).max(1);
        if let Some(share) = self.strangers.as_mut() {
            let _ = share.bucket.take(now, kept);
        }
        decided
    }

    /// `wallet` if the bounds on strangers apply to it: one is set and it is not vouched for.
    fn stranger(&self, wallet: Option<FeedId>) -> Option<FeedId> {
        if self.new_wallets.is_none() && self.strangers.is_none() {
            return None;
        }
        wallet.filter(|w| !self.vouched.as_ref().is_some_and(|v| (v.0)(w)))
    }

    /// Which bound on strangers refuses a request about a stranger's wallet now (`new`: one
    /// this notary does not know yet), if one does.
    fn exhausted(&mut self, new: bool, now: Instant) -> Option<Exhausted> {
        if new
            && let Some(bound) = self.new_wallets.as_mut()
            && !bound.bucket.holds(now, 1)
        {
            return Some(Exhausted::NewWallets {
                per_hour: bound.per_hour,
            });
        }
        let share = self.strangers.as_mut()?;
        (!share.bucket.holds(now, 1)).then_some(Exhausted::Strangers {
            per_sec: share.per_sec,
        })
    }

    /// True if a bound on strangers refuses a request about `wallet` now (so that nothing of
    /// it is verified ahead: [`Actor::within_bounds`] refuses it before any check).
    fn over_bound(&mut self, wallet: Option<FeedId>) -> bool {
        let Some(stranger) = self.stranger(wallet) else {
            return false;
        };
        let new = self.new_wallets.is_some() && self.state.wallet(&stranger).is_none();
        self.exhausted(new, Instant::now()).is_some()
    }

    /// Decides a fate request with this notary's clock.
    fn fate(&mut self, request: &FateRequest, session: Option<&FeedId>) -> Decided {
        let now = fate_clock(self.clock_offset_ms);
        let skew = u64::try_from(self.clock_skew.as_millis()).unwrap_or(u64::MAX);
        match self.state.decide_fate_on(request, session, now, skew) {
            FateDecision::Vote(subject) => Decided::Persist(VoteRecord::Fate(subject)),
            FateDecision::Again(subject) => Decided::Sign(Signed::Fate(subject)),
            FateDecision::Refuse(refusal) => Decided::Answer(Response::Refusal(refusal)),
        }
    }

    /// Verifies ahead, as one batch, the signatures the batch's decisions will check
    /// ([`NotaryState::gather`]: proposals, with their prefixes, and fate requests); returns,
    /// in the batch's order, each job's proposal decoded (`None` for other jobs) and the wallet
    /// it concerns for the bounds on strangers (a proposal's author; a fate request's order
    /// wallet, read only when a bound is set). A request those bounds refuse now gathers
    /// nothing.
    fn verify_ahead(&mut self, batch: &[Job]) -> Vec<(Option<Parsed>, Option<FeedId>)> {
        let gather = scrip_ledger::verify::Gather::default();
        let bounded = self.new_wallets.is_some() || self.strangers.is_some();
        let parsed = batch
            .iter()
            .map(|job| match job {
                Job::Request {
                    request: Request::Propose(proposal),
                    ..
                } => {
                    let parsed = parse_proposal(proposal);
                    let wallet = parsed.as_ref().ok().map(|(entry, _)| entry.author());
                    if let Ok((entry, prefix)) = &parsed
                        && !self.over_bound(wallet)
                    {
                        self.state.gather(entry, prefix, &gather);
                    }
                    (Some(parsed), wallet)
                }
                Job::Request {
                    request: Request::Fate(request),
                    session,
                    ..
                } => {
                    // Read from the order's header only when a bound may need it.
                    let wallet = if bounded { order_wallet(request) } else { None };
                    if !self.over_bound(wallet) {
                        self.state
                            .gather_fate_on(request, session.as_ref(), &gather);
                    }
                    (None, wallet)
                }
                _ => (None, None),
            })
            .collect();
        if !gather.is_empty() {
            self.state.begin_batch(gather.verify());
        }
        parsed
    }

    /// Decides a proposal, as [`parse_proposal`] decoded it.
    fn propose(&mut self, parsed: Option<Parsed>, learned: &mut Vec<CertifiedEntry>) -> Decided {
        let (entry, prefix) = match parsed {
            Some(Ok(parsed)) => parsed,
            Some(Err(reason)) => {
                return Decided::Answer(Response::Refusal(Refusal::Malformed { reason }));
            }
            None => {
                return Decided::Answer(Response::Refusal(Refusal::Malformed {
                    reason: "not a proposal".into(),
                }));
            }
        };
        let before = self
            .state
            .wallet(&entry.author())
            .map_or(0, |w| w.certified_head());
        let now = fate_clock(self.clock_offset_ms);
        let skew = u64::try_from(self.clock_skew.as_millis()).unwrap_or(u64::MAX);
        let decision = self.state.decide_at(&entry, &prefix, now, skew);
        let after = self
            .state
            .wallet(&entry.author())
            .map_or(0, |w| w.certified_head());
        learned.extend(
            prefix
                .into_iter()
                .filter(|c| c.entry.seq().get() > before && c.entry.seq().get() <= after),
        );
        match decision {
            Decision::Vote(subject) => Decided::Persist(VoteRecord::new(subject, entry)),
            Decision::Again(subject) => Decided::Sign(Signed::Again(subject)),
            Decision::Refuse {
                refusal: refusal @ Refusal::Locked { .. },
                existing: Some(existing),
            } => Decided::Sign(Signed::Locked { refusal, existing }),
            Decision::Refuse { refusal, .. } => Decided::Answer(Response::Refusal(refusal)),
        }
    }

    /// Starts learning what the feed store holds of `wallet` beyond what this notary knows: the
    /// reading and the signature checks run off the actor ([`read_to_learn`]); the actor then
    /// only applies the results ([`Job::Read`]), [`LEARN_BATCH`] entries at a time, so that
    /// proposals never wait behind a long feed. A feed whose first entry is not a wallet genesis
    /// costs one read of that entry. One read per wallet at a time; a request meanwhile makes
    /// one more read follow.
    fn learn_from_store(&mut self, wallet: FeedId) {
        if let Some(again) = self.learning.get_mut(&wallet) {
            *again = true;
            return;
        }
        let Some(jobs) = self.jobs.upgrade() else {
            return;
        };
        self.learning.insert(wallet, false);
        let from = self
            .state
            .wallet(&wallet)
            .map_or(1, |w| w.certified_head() + 1);
        let store = Arc::clone(&self.store);
        let calls = self.calls;
        tokio::spawn(async move {
            let read = calls
                .run(move || read_to_learn(store.as_ref(), &wallet, from))
                .await
                .ok_or(Error::Shutdown)
                .ok()
                .and_then(std::result::Result::ok)
                .flatten();
            let _ = jobs.send(Job::Read { wallet, read }).await;
        });
    }

    /// Applies what [`read_to_learn`] read and checked.
    fn learn_read(&mut self, wallet: FeedId, read: Option<LearnRead>) {
        let again = self.learning.remove(&wallet).unwrap_or(false);
        let Some(LearnRead { entries, checked }) = read else {
            return;
        };
        let full = entries.len() >= LEARN_BATCH;
        for entry in entries {
            if entry.certificate.is_none() {
                break;
            }
            if let Err(rejection) = self.state.learn(&entry, &checked) {
                tracing::warn!(%wallet, %rejection, "a stored wallet entry does not verify");
                return;
            }
        }
        if full || again {
            self.learn_from_store(wallet);
        }
    }
}

/// Most stored entries of one wallet read and learned per turn of the notary's actor.
pub const LEARN_BATCH: usize = 64;

/// Entries read from the feed store to learn, with their signatures already checked.
struct LearnRead {
    entries: Vec<CertifiedEntry>,
    checked: scrip_ledger::Precomputed,
}

/// Reads up to [`LEARN_BATCH`] entries of `wallet` from `from` and checks every signature they
/// carry (on the blocking pool, off the notary's actor). `None` if the feed is not a wallet
/// (its first entry is not a wallet genesis: then only that entry was read).
fn read_to_learn(store: &dyn Store, wallet: &FeedId, from: u64) -> Result<Option<LearnRead>> {
    let Some(set) = certified::notary_set(store, wallet)? else {
        return Ok(None);
    };
    let entries = certified::log(store, wallet, from, LEARN_BATCH)?;
    let checked = scrip_ledger::audit::precompute_with(&entries, Some(&set));
    Ok(Some(LearnRead { entries, checked }))
}

/// A proposal decoded: its entry and its certified prefix, or why it does not decode.
type Parsed = std::result::Result<(Entry, Vec<CertifiedEntry>), String>;

/// The wallet of the order a fate request cites, read from its header (not verified yet).
fn order_wallet(request: &FateRequest) -> Option<FeedId> {
    Entry::decode(&request.order.entry.bytes.header, None)
        .ok()
        .map(|order| order.author())
}

/// Decodes a proposal's entry and prefix.
fn parse_proposal(proposal: &Proposal) -> Parsed {
    let entry = proposal.entry.decode().map_err(|err| err.to_string())?;
    let prefix = proposal
        .prefix
        .iter()
        .map(|bytes| from_bytes(bytes).map_err(|err| format!("prefix: {err}")))
        .collect::<std::result::Result<Vec<CertifiedEntry>, String>>()?;
    Ok((entry, prefix))
}

enum Decided {
    /// A new vote (for an entry, or an order's fate): record it durably, then sign it.
    Persist(VoteRecord),
    /// An answer carrying the signature of an existing vote: sent once that vote is durable.
    Sign(Signed),
    /// An answer that carries no signature.
    Answer(Response),
}

/// An answer that carries a signed vote the notary already decided (maybe earlier in the same
/// batch, and so not durable yet).
enum Signed {
    /// The same vote again, for the same entry.
    Again(VoteSubject),
    /// `Locked`, carrying the vote that locks the slot.
    Locked {
        refusal: Refusal,
        existing: VoteSubject,
    },
    /// A fate vote for a fate the order holds here already (the same, or another void).
    Fate(FateSubject),
}

impl Signed {
    /// Whether the state still holds what the answer signs (a vote, or a compatible fate).
    fn still_held(&self, state: &NotaryState) -> bool {
        match self {
            Signed::Again(subject)
            | Signed::Locked {
                existing: subject, ..
            } => state.holds_vote(subject),
            Signed::Fate(subject) => state.holds_fate(subject),
        }
    }

    /// The answer, signed by `keypair`. The signature is noted in `state` as its own (shown
    /// back in a certificate, it is compared instead of verified): a vote signed again — after
    /// a restart, whose votes are read from the log unsigned — is remembered like a new one.
    fn answer(self, keypair: &Keypair, state: &mut NotaryState) -> Response {
        match self {
            Signed::Again(subject) => {
                let vote = Vote::sign(keypair, &subject);
                state.signed_vote(&subject, &vote);
                Response::Vote(vote)
            }
            Signed::Fate(subject) => {
                let vote = subject.vote(keypair);
                state.signed_fate(&subject, &vote);
                Response::Vote(vote)
            }
            Signed::Locked {
                mut refusal,
                existing,
            } => {
                if let Refusal::Locked { vote, .. } = &mut refusal {
                    let signed = Vote::sign(keypair, &existing);
                    state.signed_vote(&existing, &signed);
                    *vote = Some(signed);
                }
                Response::Refusal(refusal)
            }
        }
    }
}

/// The refusal sent when the vote store failed.
fn unavailable(reason: &str) -> Response {
    Response::Refusal(Refusal::Unavailable {
        reason: format!("the vote store failed: {reason}"),
    })
}

/// `Unavailable` for `reason`: not definitive, the client asks again later.
fn unavailable_because(reason: String) -> Decided {
    Decided::Answer(Response::Refusal(Refusal::Unavailable { reason }))
}
