//! The wallet client: gets a wallet's entries certified by its notaries, survives crashes, and
//! never forks its own log.
//!
//! - The exact signed entry is written durably ([`PendingFile`]) before it is sent; until it is
//!   certified or definitively refused, only those bytes are ever proposed for the slot (after a
//!   restart too: [`WalletClient::resume`]).
//! - All notaries are asked in parallel; the client finishes at q votes and tolerates f silent,
//!   slow or lagging ones (a notary missing the certified prefix gets it sent).
//! - f + 1 equal definitive refusals prove that no honest notary voted: the slot is free again
//!   and the pending entry is dropped.
//! - Before its first proposal, the client asks the notaries how far the wallet is certified and
//!   fetches what it lacks (a restored backup, a second device): it refuses to propose behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{Entry, EntryBytes, FeedId, Keypair, Seq, Store, Timestamp};
use scrip_ledger::certificate::ROUND_ZERO;
use scrip_ledger::content::Genesis;
use scrip_ledger::content::Preimage;
use scrip_ledger::verify::{Remembered, Seen, VerifyAll, subject_of};
use scrip_ledger::{
    Certificate, CertifiedEntry, Fate, FateCertificate, FateSubject, NotarySet, Vote, WalletEntry,
    WalletState,
};
use scrip_replicate::transport::{self, LocalIdentity, Network, SecureStream, TransportConfig};
use tokio::sync::{Mutex, Semaphore, mpsc};

use crate::certified::{self, from_bytes, to_bytes};
use crate::decision::Refusal;
use crate::error::{Error, Result};
use crate::pending::PendingFile;
use crate::wire::{
    self, FateRequest, MAX_CERTIFIED_PER_MESSAGE, Proposal, Request, Response, SlotInfo,
};

/// A notary as a client reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotaryAddr {
    /// Its identity.
    pub id: FeedId,
    /// Its notary service address.
    pub address: String,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Transport settings (network key, timeouts).
    pub transport: TransportConfig,
    /// Time allowed for one request to one notary.
    pub request_timeout: Duration,
    /// Time allowed to gather a quorum before giving up for now (the entry stays pending).
    pub deadline: Duration,
    /// Longest pause before asking a notary again after a failure or a "not now": the pauses
    /// of one request start at [`FIRST_RETRY`] and double up to it ([`Backoff`]).
    pub retry: Duration,
}

/// The first pause before asking a notary again. Short, because the common failure is brief: a
/// listener closes a connection at once when every handshake place for its source address is
/// taken (`transport.md`, "Incoming connections"), and a place frees within a handshake's time;
/// 16 wallets started at once on one machine waited 4 × 200 ms for their 4 notaries with a
/// fixed pause.
pub const FIRST_RETRY: Duration = Duration::from_millis(10);

/// The ledger rule code (`ledger.md` §4) of an entry citing a fate certificate that does not
/// verify: the refusal after which [`WalletClient::propose`] checks the votes it cited.
const INVALID_FATE: &str = "invalid-fate";

/// Whether `refusal` is [`INVALID_FATE`]'s.
fn is_invalid_fate(refusal: &Refusal) -> bool {
    matches!(refusal, Refusal::Rules { code, .. } if code == INVALID_FATE)
}

/// The pauses between the attempts of one request: [`FIRST_RETRY`], then doubling up to the
/// configured longest pause (no randomness: attempts that collide once are spread by the
/// listener, which lets a few in at a time).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
    longest: Duration,
}

impl Backoff {
    /// Pauses up to `longest`.
    pub fn new(longest: Duration) -> Backoff {
        Backoff {
            next: FIRST_RETRY.min(longest),
            longest,
        }
    }

    /// The next pause.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.longest);
        pause
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            transport: TransportConfig::default(),
            request_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(30),
            retry: Duration::from_millis(200),
        }
    }
}

/// Exchanges at most in flight or waiting per notary connection. A caller that finds them all
/// taken is told the notary is busy at once (and retries after a pause), so that a dead or slow
/// notary never gathers an unbounded queue.
pub const EXCHANGES_PER_NOTARY: usize = 4;

/// One notary's connection, opened on demand and reopened after a failure.
///
/// Each request/answer exchange runs on its own task holding the connection. A caller that stops
/// waiting (a quorum was reached elsewhere) leaves the exchange to finish: the answer is still
/// read, so the connection stays usable (reopening costs a Noise handshake), and the notary still
/// sees the proposal (a notary that misses proposals falls behind and must be sent the prefix).
/// Exchanges take the connection in turn (the lock is fair), so a notary gets a wallet's
/// proposals in order.
struct NotaryConn<N: Network> {
    notary: NotaryAddr,
    network: Arc<N>,
    identity: Arc<LocalIdentity>,
    config: ClientConfig,
    stream: Mutex<Option<SecureStream<N::Stream>>>,
    exchanges: Arc<Semaphore>,
}

impl<N: Network> NotaryConn<N> {
    async fn ask(self: &Arc<Self>, request: &Request) -> Result<Response> {
        let bytes = wire::encode(request)?;
        let Ok(permit) = Arc::clone(&self.exchanges).try_acquire_owned() else {
            return Err(Error::Busy {
                notary: self.notary.id.to_string(),
            });
        };
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let conn = Arc::clone(self);
        let exchange = tokio::spawn(async move {
            let answer = conn.exchange(&bytes, deadline).await;
            drop(permit);
            answer
        });
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::Wallet("a notary exchange task failed".into())),
            Err(_) => Err(self.timed_out("a notary request")),
        }
    }

    /// Says goodbye on the open connection, if any (the transport's clean close).
    async fn close(&self) {
        if let Some(mut stream) = self.stream.lock().await.take() {
            let _ = stream.goodbye().await;
        }
    }

    fn timed_out(&self, what: &'static str) -> Error {
        Error::Transport(transport::Error::Timeout {
            what,
            after: self.config.request_timeout,
        })
    }

    /// Sends `bytes` and reads the answer on the connection (opened if needed), by `deadline`.
    async fn exchange(&self, bytes: &[u8], deadline: tokio::time::Instant) -> Result<Response> {
        let mut slot = self.stream.lock().await;
        // Nobody waits past the deadline (the caller has moved on): do not start late.
        if tokio::time::Instant::now() >= deadline {
            return Err(self.timed_out("a notary request (waiting for the connection)"));
        }
        let talk = async {
            let stream = match slot.as_mut() {
                Some(stream) => stream,
                None => {
                    let tcp = self
                        .network
                        .connect(&self.notary.address)
                        .await
                        .map_err(|e| Error::Unreachable {
                            notary: self.notary.id.to_string(),
                            address: self.notary.address.clone(),
                            reason: e.to_string(),
                        })?;
                    let stream = transport::connect(
                        tcp,
                        &self.identity,
                        Some(self.notary.id),
                        &self.config.transport,
                    )
                    .await?;
                    slot.insert(stream)
                }
            };
            stream.send(bytes).await?;
            match stream.recv().await? {
                Some(answer) => Ok(wire::decode::<Response>(&answer)?),
                None => Err(Error::Transport(transport::Error::Closed {
                    during: "waiting for the notary's answer",
                })),
            }
        };
        let answer = tokio::time::timeout_at(deadline, talk)
            .await
            .unwrap_or_else(|_| Err(self.timed_out("a notary request")));
        if answer.is_err() {
            // A failed or unfinished exchange may leave half an answer on the connection.
            *slot = None;
        }
        answer
    }
}

/// A wallet and its way to its notaries.
pub struct WalletClient<N: Network> {
    key: Arc<Keypair>,
    store: Arc<dyn Store>,
    pending: PendingFile,
    conns: Vec<Arc<NotaryConn<N>>>,
    config: ClientConfig,
    synced: bool,
    /// The pending file is known to hold nothing. Only this client writes it (the wallet's store
    /// lock keeps a second process out), so after one read it is followed in memory and not
    /// read again before each proposal.
    pending_clear: bool,
    /// The wallet's notary set, once its genesis is stored.
    notaries: Option<NotarySet>,
    /// The entry this client certified last, sent along with the next proposal.
    last_certified: Option<CertifiedEntry>,
    /// The certified entries this wallet verified (its own checks, and the replication beside
    /// it when shared: [`WalletClient::remembering`]), not verified again when cited.
    seen: Arc<std::sync::Mutex<Seen>>,
    /// Notaries that sent this client a fate vote that did not verify: their fate votes are
    /// checked before they are counted from then on, so that a faulty notary costs one refused
    /// proposal, not one per accept. At most one per notary this client knows (only the
    /// notaries it asks are ever put here).
    suspects: BTreeSet<FeedId>,
}

impl<N: Network> std::fmt::Debug for WalletClient<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletClient")
            .field("wallet", &self.key.id())
            .finish_non_exhaustive()
    }
}

/// Asks each of `notaries` once (within the request timeout) what it holds of `wallet`,
/// connecting with `key`: a notary that answers is reachable, is who it should be (the
/// transport checks its identity) and speaks the notary protocol. For checks before a wallet is
/// created or abandoned.
pub async fn probe<N: Network>(
    key: Arc<Keypair>,
    notaries: &[NotaryAddr],
    wallet: FeedId,
    network: N,
    config: &ClientConfig,
) -> Result<Vec<(NotaryAddr, Result<SlotInfo>)>> {
    let identity = Arc::new(LocalIdentity::new(key)?);
    let network = Arc::new(network);
    let asks: Vec<_> = notaries
        .iter()
        .map(|notary| {
            let conn = Arc::new(NotaryConn {
                notary: notary.clone(),
                network: Arc::clone(&network),
                identity: Arc::clone(&identity),
                config: config.clone(),
                stream: Mutex::new(None),
                exchanges: Arc::new(Semaphore::new(EXCHANGES_PER_NOTARY)),
            });
            tokio::spawn(async move {
                let answer = match conn.ask(&Request::SlotQuery { wallet }).await {
                    Ok(Response::SlotInfo(info)) => Ok(info),
                    Ok(other) => Err(Error::Protocol {
                        reason: format!("it answered {}", describe_response(&other)),
                    }),
                    Err(Error::Unreachable { reason, .. }) => Err(Error::Protocol { reason }),
                    Err(err) => Err(Error::Protocol {
                        reason: format!("it does not answer as a notary ({err})"),
                    }),
                };
                conn.close().await;
                answer
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(notaries.len());
    for (notary, ask) in notaries.iter().zip(asks) {
        let answer = ask.await.unwrap_or_else(|_| {
            Err(Error::Protocol {
                reason: "the query task failed".into(),
            })
        });
        answers.push((notary.clone(), answer));
    }
    Ok(answers)
}

/// A response's kind, for messages.
fn describe_response(response: &Response) -> String {
    match response {
        Response::Vote(_) => "a vote".into(),
        Response::Refusal(refusal) => format!("a refusal: {refusal}"),
        Response::SlotInfo(_) => "slot info".into(),
        Response::Certified(_) => "certified entries".into(),
    }
}

/// The first certified entry a refusing notary lacks, if it lacks some.
fn missing_from(refusal: &Refusal) -> Option<u64> {
    match refusal {
        Refusal::NeedPrefix { from } => Some(*from),
        Refusal::Behind { have, .. } => Some(have.saturating_add(1)),
        _ => None,
    }
}

enum Answer {
    Vote(Vote),
    Refused(Refusal),
    /// The notary could not be reached (the connection failed); it is tried again.
    Unreachable(String),
    /// The notary said "not now" (a refusal that is not definitive: `Unavailable`, `Behind`)
    /// for this reason, new since its last answer; it is asked again.
    NotNow(String),
    /// The notary answered (anything but a vote or a definitive refusal): it is reachable.
    Reached,
}

/// What became of an entry an earlier call left pending (signed and saved, not yet certified),
/// finished or dropped before anything new is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Earlier {
    /// It is certified (now, or already before) and stored.
    Finished(CertifiedEntry),
    /// It can never be certified and was dropped: f + 1 notaries refused it, or its slot holds
    /// another certified entry of this wallet (a restored copy, another device).
    Dropped {
        /// The entry.
        entry: Entry,
        /// Why.
        reason: String,
    },
}

impl Earlier {
    /// The certified entry, if it was finished.
    pub fn certified(&self) -> Option<&CertifiedEntry> {
        match self {
            Earlier::Finished(certified) => Some(certified),
            Earlier::Dropped { .. } => None,
        }
    }

    /// The entry.
    pub fn entry(&self) -> &Entry {
        match self {
            Earlier::Finished(certified) => &certified.entry,
            Earlier::Dropped { entry, .. } => entry,
        }
    }
}

impl<N: Network> WalletClient<N> {
    /// A client for wallet `key`, whose log lives in `store`, with its pending proposal at
    /// `pending`, reaching `notaries` over `network`.
    pub fn new(
        key: Arc<Keypair>,
        store: Arc<dyn Store>,
        pending: PendingFile,
        notaries: Vec<NotaryAddr>,
        network: N,
        config: ClientConfig,
    ) -> Result<WalletClient<N>> {
        let identity = Arc::new(LocalIdentity::new(Arc::clone(&key))?);
        let network = Arc::new(network);
        let conns = notaries
            .into_iter()
            .map(|notary| {
                Arc::new(NotaryConn {
                    notary,
                    network: Arc::clone(&network),
                    identity: Arc::clone(&identity),
                    config: config.clone(),
                    stream: Mutex::new(None),
                    exchanges: Arc::new(Semaphore::new(EXCHANGES_PER_NOTARY)),
                })
            })
            .collect();
        Ok(WalletClient {
            key,
            store,
            pending,
            conns,
            config,
            synced: false,
            pending_clear: false,
            suspects: BTreeSet::new(),
            notaries: None,
            last_certified: None,
            seen: Arc::default(),
        })
    }

    /// Shares `seen` as this client's memory of verified certified entries: the memory the
    /// replication beside it fills as it checks certificates (the daemon's node), so that an
    /// order replicated and checked there is not checked again when this wallet claims it.
    #[must_use]
    pub fn remembering(mut self, seen: Arc<std::sync::Mutex<Seen>>) -> WalletClient<N> {
        self.seen = seen;
        self
    }

    /// This client's memory of verified certified entries.
    pub fn seen(&self) -> &Arc<std::sync::Mutex<Seen>> {
        &self.seen
    }

    /// The wallet's id.
    pub fn id(&self) -> FeedId {
        self.key.id()
    }

    /// Closes the connections to the notaries with the transport's goodbye (a client that goes
    /// away calls it; dropping the client closes them without one).
    pub async fn close(&self) {
        for conn in &self.conns {
            conn.close().await;
        }
    }

    /// The store holding the wallet's log.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The wallet's certified log.
    pub async fn log(&self) -> Result<Vec<CertifiedEntry>> {
        let store = Arc::clone(&self.store);
        let wallet = self.id();
        N::BLOCKING
            .run(move || certified::certified_log(store.as_ref(), &wallet))
            .await
            .ok_or(Error::Shutdown)?
    }

    /// The wallet's state after its certified log.
    pub async fn state(&self) -> Result<WalletState> {
        let log = self.log().await?;
        let state = scrip_ledger::fold(log, &scrip_ledger::TrustSignatures);
        Ok(state
            .wallet(&self.id())
            .cloned()
            .unwrap_or_else(|| WalletState::new(self.id())))
    }

    /// Creates the wallet: its genesis names the configured notaries, certified by them.
    pub async fn create(&mut self) -> Result<CertifiedEntry> {
        let notaries = self.conns.iter().map(|c| c.notary.id).collect();
        self.submit(&WalletEntry::Genesis(Genesis { notaries }))
            .await
    }

    /// [`WalletClient::prepare`], then [`WalletClient::propose`]: what an earlier call left
    /// pending is finished or dropped first (and only logged: callers that report it to a user
    /// call the two themselves).
    pub async fn submit(&mut self, content: &WalletEntry) -> Result<CertifiedEntry> {
        if let Some(earlier) = self.prepare().await? {
            tracing::info!(entry = %earlier.entry().id(), ?earlier, "an earlier entry was settled first");
        }
        self.propose(content).await
    }

    /// Gets a fate certificate for `order` (a certified order, cited with its wallet's genesis)
    /// from a quorum of the **order wallet's** notaries (`ledger.md` §5a): `Claimed` when this
    /// wallet is the order's receiver (with the preimage of a hash-locked order), `Cancelled` or
    /// `Expired` when it is its sender. The request is signed with this wallet's key. Asks every
    /// notary of that set this client has an address for, in parallel, retrying failures until
    /// the deadline; finishes at q votes, or at f + 1 equal definitive refusals
    /// ([`Error::Refused`]: e.g. `order-claimed`, `order-voided`, `order-expired`,
    /// `not-expired`). Nothing is written: a fate vote is no wallet entry.
    ///
    /// The votes are **not checked** here (`notary.md` §5): the certificate is only ever cited
    /// by this wallet's next entry, whose notaries check every vote in it before they vote. If
    /// one does not verify they refuse that entry (`invalid-fate`) and
    /// [`WalletClient::propose`] then checks the votes itself and gathers them again, counting
    /// only votes that verify. An honest set's votes always verify: this saves q checks per
    /// accept, cancel and refund.
    pub async fn fate(
        &self,
        order: &scrip_ledger::Citation,
        fate: Fate,
        preimage: Option<Preimage>,
    ) -> Result<FateCertificate> {
        self.gather_fate(order, fate, preimage, false).await
    }

    /// [`WalletClient::fate`], counting only votes that verify if `check_votes`.
    async fn gather_fate(
        &self,
        order: &scrip_ledger::Citation,
        fate: Fate,
        preimage: Option<Preimage>,
        check_votes: bool,
    ) -> Result<FateCertificate> {
        let (subject, set) = self.fate_subject(order, fate)?;
        let request = FateRequest {
            order: order.clone(),
            fate,
            preimage,
            signature: subject.request(&self.key),
        };
        let known: Vec<_> = self
            .conns
            .iter()
            .filter(|c| set.contains(&c.notary.id))
            .cloned()
            .collect();
        // A quorum of the order's set; or, for a claim, the notaries this wallet shares with
        // the sender (`ledger.md` §5a): those it has addresses for.
        let own = match &self.notaries {
            Some(own) => Some(own.clone()),
            None => {
                let (store, wallet) = (Arc::clone(&self.store), self.id());
                N::BLOCKING
                    .run(move || certified::notary_set(store.as_ref(), &wallet))
                    .await
                    .ok_or(Error::Shutdown)??
            }
        };
        let (members, needed) = match own {
            _ if known.len() >= set.quorum() => (known, set.quorum()),
            Some(own) if fate == Fate::Claimed => {
                let shared: Vec<_> = known
                    .into_iter()
                    .filter(|c| own.contains(&c.notary.id))
                    .collect();
                let needed = scrip_ledger::fate::claim_threshold_in_overlap(&set, &own).max(1);
                (shared, needed)
            }
            _ => (known, set.quorum()),
        };
        if members.len() < needed {
            return Err(Error::NoQuorum {
                votes: 0,
                needed,
                detail: format!(
                    "this wallet knows the address of {} of the order's {} notaries; this \
                     fate needs {needed} of them",
                    members.len(),
                    set.n(),
                ),
            });
        }
        let (answers, mut answers_rx) = mpsc::channel::<(FeedId, Answer)>(members.len());
        let deadline = tokio::time::Instant::now() + self.config.deadline;
        let tasks: Vec<_> = members
            .iter()
            .map(|conn| {
                tokio::spawn(ask_fate(
                    Arc::clone(conn),
                    request.clone(),
                    self.config.retry,
                    answers.clone(),
                ))
            })
            .collect();
        drop(answers);
        let outcome = gather(
            Tally::with(needed, members.len()),
            &mut answers_rx,
            deadline,
            &tasks,
            |vote| {
                let check = check_votes || self.suspects.contains(&vote.notary);
                !check || scrip_ledger::fate::verify_fate_votes(&[*vote], &subject).is_ok()
            },
        )
        .await;
        match outcome {
            Ok(votes) => Ok(FateCertificate::from_votes(fate, votes)),
            Err(Settled::Refused(refusal)) => Err(Error::Refused {
                refusal: Box::new(refusal),
                count: members.len() - needed + 1,
            }),
            Err(Settled::Failed(err)) => Err(err),
        }
    }

    /// Accepts `order` (addressed to this wallet): for an order with an expiry, first its claim
    /// from the order wallet's notaries ([`WalletClient::fate`], with `preimage` for a
    /// hash-locked order), then the `Accept` citing it, certified as this wallet's next entry.
    /// A version-1 order is accepted without a claim.
    pub async fn accept(
        &mut self,
        order: scrip_ledger::Citation,
        preimage: Option<Preimage>,
    ) -> Result<CertifiedEntry> {
        let expires = matches!(
            WalletEntry::from_payload(&order.entry.bytes.payload),
            Ok(WalletEntry::Order(scrip_ledger::content::Order {
                expiry: Some(_),
                ..
            }))
        );
        let claim = if expires {
            Some(self.fate(&order, Fate::Claimed, preimage.clone()).await?)
        } else {
            None
        };
        self.submit(&WalletEntry::Accept(scrip_ledger::content::Accept {
            order,
            preimage,
            claim,
        }))
        .await
    }

    /// Takes back this wallet's own order at `seq` without its receiver: its void from this
    /// wallet's notaries ([`WalletClient::fate`], `Cancelled` or `Expired`), then the `Cancel`
    /// or `Refund` citing it, certified as the next entry.
    pub async fn take_back(&mut self, seq: Seq, fate: Fate) -> Result<CertifiedEntry> {
        let (store, wallet) = (Arc::clone(&self.store), self.id());
        let order = N::BLOCKING
            .run(move || certified::citation(store.as_ref(), &wallet, seq))
            .await
            .ok_or(Error::Shutdown)??;
        let order_ref = scrip_ledger::content::OrderRef {
            seq,
            id: order.cited_id(),
        };
        let void = self.fate(&order, fate, None).await?;
        let content = match fate {
            Fate::Cancelled => WalletEntry::Cancel(scrip_ledger::content::Cancel {
                order: order_ref,
                void,
            }),
            Fate::Expired => WalletEntry::Refund(scrip_ledger::content::Refund {
                order: order_ref,
                void,
            }),
            Fate::Claimed => {
                return Err(Error::Wallet(
                    "an order is taken back by a cancel or a refund, not a claim".into(),
                ));
            }
        };
        self.submit(&content).await
    }

    /// Makes the wallet ready for a new entry: learns its certified head from a quorum of its
    /// notaries (once per client: [`WalletClient::sync`]) and settles the entry an earlier call
    /// left pending ([`WalletClient::resume`]). Returns what became of that entry.
    pub async fn prepare(&mut self) -> Result<Option<Earlier>> {
        if !self.synced {
            self.sync().await?;
        }
        self.resume().await
    }

    /// Gets `content` certified as the wallet's next entry and stores it with its certificate.
    /// Call [`WalletClient::prepare`] first: with an earlier entry still pending, this refuses
    /// ([`Error::Pending`]) and signs nothing.
    ///
    /// If the notaries refuse it because the fate certificate it cites does not verify
    /// (`invalid-fate`: [`WalletClient::fate`] does not check votes), the refusal freed the
    /// slot; the votes are checked then, and if one does not verify the certificate is
    /// gathered again counting only votes that verify, and the entry, citing it, signed and
    /// proposed once more.
    pub async fn propose(&mut self, content: &WalletEntry) -> Result<CertifiedEntry> {
        let first = self.propose_once(content).await;
        let cites_a_bad_fate =
            matches!(&first, Err(Error::Refused { refusal, .. }) if is_invalid_fate(refusal));
        if !cites_a_bad_fate {
            return first;
        }
        match self.with_checked_fate(content).await? {
            Some(repaired) => {
                tracing::warn!("a notary sent a fate vote that does not verify: gathered again");
                self.propose_once(&repaired).await
            }
            None => first,
        }
    }

    /// `content` citing its fate certificate gathered again with every vote checked, if the
    /// one it cites holds a vote that does not verify; `None` if it cites none, or every vote
    /// in it verifies (then something else is wrong with it, and gathering again cannot help).
    async fn with_checked_fate(&mut self, content: &WalletEntry) -> Result<Option<WalletEntry>> {
        let (certificate, order, preimage) = match content {
            WalletEntry::Accept(accept) => match &accept.claim {
                Some(claim) => (claim, accept.order.clone(), accept.preimage.clone()),
                None => return Ok(None),
            },
            WalletEntry::Cancel(scrip_ledger::content::Cancel { order, void })
            | WalletEntry::Refund(scrip_ledger::content::Refund { order, void }) => {
                let (store, wallet, seq) = (Arc::clone(&self.store), self.id(), order.seq);
                let cited = N::BLOCKING
                    .run(move || certified::citation(store.as_ref(), &wallet, seq))
                    .await
                    .ok_or(Error::Shutdown)??;
                (void, cited, None)
            }
            _ => return Ok(None),
        };
        let (subject, _) = self.fate_subject(&order, certificate.fate)?;
        let culprits: Vec<FeedId> = certificate
            .votes
            .iter()
            .filter(|vote| scrip_ledger::fate::verify_fate_votes(&[**vote], &subject).is_err())
            .map(|vote| vote.notary)
            .collect();
        if culprits.is_empty() {
            return Ok(None);
        }
        for culprit in culprits {
            if self.conns.iter().any(|c| c.notary.id == culprit) {
                tracing::warn!(notary = %culprit, "sent a fate vote that does not verify");
                self.suspects.insert(culprit);
            }
        }
        let checked = self
            .gather_fate(&order, certificate.fate, preimage, true)
            .await?;
        let mut repaired = content.clone();
        match &mut repaired {
            WalletEntry::Accept(accept) => accept.claim = Some(checked),
            WalletEntry::Cancel(cancel) => cancel.void = checked,
            WalletEntry::Refund(refund) => refund.void = checked,
            _ => return Ok(None),
        }
        Ok(Some(repaired))
    }

    /// What a fate vote on `order` signs, and the order wallet's notary set: from the citation,
    /// checked (what this wallet's replication or an earlier call checked is remembered).
    fn fate_subject(
        &self,
        order: &scrip_ledger::Citation,
        fate: Fate,
    ) -> Result<(FateSubject, NotarySet)> {
        let cited = {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let check = Remembered {
                seen: &seen,
                inner: &VerifyAll,
            };
            scrip_ledger::verify::verify_citation(order, &check)
        }
        .map_err(|e| Error::Wallet(format!("the order to decide: {e}")))?;
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remember_citation(order);
        let subject = FateSubject {
            wallet: cited.author,
            order: cited.id,
            fate,
        };
        Ok((subject, cited.notaries))
    }

    /// [`WalletClient::propose`] without the second try.
    async fn propose_once(&mut self, content: &WalletEntry) -> Result<CertifiedEntry> {
        if !self.synced {
            self.sync().await?;
        }
        if !self.pending_clear
            && let Some(entry) = self.load_pending().await?
        {
            return Err(Error::Pending {
                seq: entry.seq().get(),
                entry: entry.id().to_string(),
            });
        }
        let payload = content.to_payload()?;
        let (key, store, pending, wallet) = (
            Arc::clone(&self.key),
            Arc::clone(&self.store),
            self.pending.clone(),
            self.id(),
        );
        self.pending_clear = false;
        let entry = N::BLOCKING
            .run(move || {
                let head = store.head(&wallet)?;
                // The wallet's clock, never before its previous entry's time (a clock set back
                // does not make history run backwards).
                let previous = match head {
                    Some(h) => store
                        .get(&wallet, h.seq)?
                        .map_or(0, |e| e.timestamp().as_millis()),
                    None => 0,
                };
                let timestamp = Timestamp::from_millis(Timestamp::now().as_millis().max(previous));
                let entry = Entry::create(&key, head, timestamp, payload)?;
                // Durable before it leaves this process: from now on only these bytes go out.
                pending.save(&entry)?;
                Ok::<_, Error>(entry)
            })
            .await
            .ok_or(Error::Shutdown)??;
        self.certify(entry).await
    }

    /// The entry in the pending file, if any (and notes when there is none).
    async fn load_pending(&mut self) -> Result<Option<Entry>> {
        let pending = self.pending.clone();
        let loaded = N::BLOCKING
            .run(move || pending.load())
            .await
            .ok_or(Error::Shutdown)??;
        if loaded.is_none() {
            self.pending_clear = true;
        }
        Ok(loaded)
    }

    /// The entry an earlier call left pending, if any, without doing anything with it.
    pub async fn pending(&mut self) -> Result<Option<Entry>> {
        self.load_pending().await
    }

    /// Clears the pending file: `reason` says why `entry` can never be certified.
    async fn drop_pending(&mut self, entry: Entry, reason: String) -> Result<Earlier> {
        self.pending.clear()?;
        self.pending_clear = true;
        tracing::warn!(entry = %entry.id(), %reason, "a pending entry was dropped");
        Ok(Earlier::Dropped { entry, reason })
    }

    /// Settles the entry an earlier call left pending (same bytes): returns `None` if nothing
    /// was pending, [`Earlier::Finished`] once it is certified and stored, or
    /// [`Earlier::Dropped`] if it can never be certified (f + 1 notaries refused it, or its
    /// slot holds another certified entry of this wallet). Any other failure (no quorum yet)
    /// is an error, and the entry stays pending. An entry refused because a fate vote it cites
    /// does not verify is repaired as [`WalletClient::propose`] repairs one: finished, the
    /// certified entry is the one signed anew (same slot, same content but the fate).
    pub async fn resume(&mut self) -> Result<Option<Earlier>> {
        if self.pending_clear {
            return Ok(None);
        }
        let Some(entry) = self.load_pending().await? else {
            return Ok(None);
        };
        if let Some(earlier) = self.settled_in_store(&entry).await? {
            return Ok(Some(earlier));
        }
        match self.certify(entry.clone()).await {
            Ok(certified) => Ok(Some(Earlier::Finished(certified))),
            Err(Error::Refused { refusal, count }) if is_invalid_fate(&refusal) => {
                // As `propose` does: the refusal freed the slot (and certify cleared the
                // pending file); the same entry, citing its fate gathered again with every
                // vote checked, is signed and proposed once more.
                let reason = format!("refused by {count} notaries: {refusal}");
                let content = entry
                    .payload()
                    .and_then(|payload| WalletEntry::from_payload(payload).ok());
                let repaired = match content {
                    Some(content) => self.with_checked_fate(&content).await?,
                    None => None,
                };
                match repaired {
                    Some(repaired) => {
                        tracing::warn!(
                            entry = %entry.id(),
                            "a pending entry cited a fate vote that does not verify: gathered \
                             again and signed anew"
                        );
                        self.propose_once(&repaired)
                            .await
                            .map(|certified| Some(Earlier::Finished(certified)))
                    }
                    None => Ok(Some(Earlier::Dropped { entry, reason })),
                }
            }
            Err(Error::Refused { refusal, count }) => {
                // No honest notary voted for it (certify cleared the pending file). If the slot
                // is certified with another entry, fetch that one before anything new.
                if matches!(*refusal, Refusal::AlreadyCertified { .. }) {
                    self.synced = false;
                }
                Ok(Some(Earlier::Dropped {
                    entry,
                    reason: format!("refused by {count} notaries: {refusal}"),
                }))
            }
            Err(Error::Locked { seq }) => {
                // Notaries voted for another entry of this wallet at this slot (the copy this
                // device was restored from, another device): fetch it if it is certified, or
                // finish certifying those bytes; this device's entry then lost its slot.
                self.sync_taking_over().await?;
                match self.settled_in_store(&entry).await? {
                    Some(earlier) => Ok(Some(earlier)),
                    None => Err(Error::Locked { seq }),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// If the store already holds an entry at `entry`'s slot: `entry` itself, certified (it was
    /// certified before a crash), or another certified entry (then `entry` is dropped).
    async fn settled_in_store(&mut self, entry: &Entry) -> Result<Option<Earlier>> {
        let store = Arc::clone(&self.store);
        let (wallet, seq) = (entry.author(), entry.seq());
        let stored = N::BLOCKING
            .run(move || certified::log(store.as_ref(), &wallet, seq.get(), 1))
            .await
            .ok_or(Error::Shutdown)??
            .into_iter()
            .find(|c| c.entry.seq() == seq && c.certificate.is_some());
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.entry.id() == entry.id() {
            self.pending.clear()?;
            self.pending_clear = true;
            return Ok(Some(Earlier::Finished(stored)));
        }
        let reason = format!(
            "slot #{} holds another certified entry of this wallet ({}): this one was never \
             certified and never will be",
            seq.get(),
            stored.entry.id()
        );
        self.drop_pending(entry.clone(), reason).await.map(Some)
    }

    async fn store_head(&self) -> Result<Option<scrip_feed::Head>> {
        let store = Arc::clone(&self.store);
        let wallet = self.id();
        Ok(N::BLOCKING
            .run(move || store.head(&wallet))
            .await
            .ok_or(Error::Shutdown)??)
    }

    /// The certified entry `entry` follows, if any: the one this client certified last if it is
    /// that one (same id), else read from the store.
    fn previous_certified(&self, entry: &Entry) -> Option<CertifiedEntry> {
        let prev = entry.prev()?;
        if let Some(last) = &self.last_certified
            && last.entry.id() == prev
        {
            return Some(last.clone());
        }
        let seq = entry.seq().prev()?.get();
        certified::log(self.store.as_ref(), &entry.author(), seq, 1)
            .ok()?
            .into_iter()
            .find(|c| c.entry.id() == prev && c.certificate.is_some())
    }

    async fn notary_set(&mut self, entry: &Entry) -> Result<NotarySet> {
        if let Some(set) = &self.notaries {
            return Ok(set.clone());
        }
        if entry.seq() == Seq::FIRST {
            let Some(WalletEntry::Genesis(genesis)) = entry
                .payload()
                .and_then(|p| WalletEntry::from_payload(p).ok())
            else {
                return Err(Error::Wallet(
                    "the first entry of a wallet must be its genesis".into(),
                ));
            };
            return Ok(NotarySet::new(&genesis.notaries)?);
        }
        let set = certified::notary_set(self.store.as_ref(), &self.id())?.ok_or_else(|| {
            Error::Wallet("this wallet has no genesis yet: create it first".into())
        })?;
        // A stored genesis never changes (the store refuses forks).
        self.notaries = Some(set.clone());
        Ok(set)
    }

    /// Safe restore: asks the notaries how far this wallet is certified and fetches what the
    /// local log lacks. Needs answers from a quorum of the wallet's notaries
    /// ([`Error::HeadUnconfirmed`] otherwise): any quorum holds an honest notary of the quorum
    /// that certified (or voted for) the wallet's latest entry, so a device restored from an
    /// older copy learns of every slot already taken. Refuses ([`Error::Behind`]) if it cannot
    /// fetch what is certified.
    pub async fn sync(&mut self) -> Result<u64> {
        self.sync_inner(false).await
    }

    /// [`WalletClient::sync`], finishing an entry the notaries voted for right after the
    /// certified head even if this device has its own pending entry for that slot (which
    /// then can never be certified).
    async fn sync_taking_over(&mut self) -> Result<u64> {
        self.sync_inner(true).await
    }

    // Long because: safe restore as notary.md section 5 lists it, step by step.
    async fn sync_inner(&mut self, take_over: bool) -> Result<u64> {
        let wallet = self.id();
        let local = self.store_head().await?.map_or(0, |h| h.seq.get());
        let store = Arc::clone(&self.store);
        let held_set = N::BLOCKING
            .run(move || certified::notary_set(store.as_ref(), &wallet))
            .await
            .ok_or(Error::Shutdown)??;
        let set = match held_set {
            Some(set) => set,
            // Not created yet: the notaries it is being created with.
            None => NotarySet::new(&self.conns.iter().map(|c| c.notary.id).collect::<Vec<_>>())?,
        };
        let mut infos = Vec::new();
        let mut pendings = Vec::new();
        for (info, conn) in self.query_heads(&set).await? {
            if let Some(pending) = info.pending {
                pendings.push(pending);
            }
            // A notary votes at slot v only once it holds v - 1 certified.
            let voted = info.voted.map_or(0, |(seq, _)| seq);
            infos.push((
                info.certified_head
                    .max(info.heard)
                    .max(voted.saturating_sub(1)),
                info.certified_head,
                conn,
            ));
        }
        let certified = infos.iter().map(|(c, _, _)| *c).max().unwrap_or(0);
        if certified <= local {
            let now = self
                .finish_found_pending(local, pendings, take_over)
                .await?;
            self.synced = true;
            return Ok(now);
        }
        // Fetch from the notaries that hold the most, checking everything.
        infos.sort_by_key(|(_, held, _)| std::cmp::Reverse(*held));
        let mut log = self.log().await?;
        let mut state = WalletState::new(wallet);
        for entry in &log {
            let decision =
                state.evaluate(&entry.entry, entry.certificate.as_ref(), true, &VerifyAll);
            state.commit(&entry.entry, &decision);
        }
        for (_, held, conn) in &infos {
            while state.next_seq <= *held {
                let request = Request::Fetch {
                    wallet,
                    from: state.next_seq,
                    limit: u32::try_from(MAX_CERTIFIED_PER_MESSAGE).unwrap_or(64),
                };
                let Ok(Response::Certified(entries)) = conn.ask(&request).await else {
                    break;
                };
                if entries.is_empty() {
                    break;
                }
                let mut fetched = Vec::new();
                for bytes in &entries {
                    let certified = from_bytes(bytes)?;
                    let decision = state.evaluate(
                        &certified.entry,
                        certified.certificate.as_ref(),
                        true,
                        &VerifyAll,
                    );
                    if let Err(rejection) = &decision
                        && rejection.halts()
                    {
                        return Err(Error::Protocol {
                            reason: format!(
                                "a notary sent an invalid certified entry: {rejection}"
                            ),
                        });
                    }
                    state.commit(&certified.entry, &decision);
                    fetched.push(certified);
                }
                let store = Arc::clone(&self.store);
                let to_store = fetched.clone();
                N::BLOCKING
                    .run(move || certified::store_certified(store.as_ref(), &to_store))
                    .await
                    .ok_or(Error::Shutdown)??;
                log.extend(fetched);
            }
        }
        let now = state.next_seq.saturating_sub(1);
        if now < certified {
            return Err(Error::Behind {
                local: now,
                certified,
            });
        }
        let now = self.finish_found_pending(now, pendings, take_over).await?;
        self.synced = true;
        Ok(now)
    }

    /// Asks the notaries of `set` what they hold of this wallet, each retried until the
    /// deadline, and returns once all answered, or a quorum answered and the others had one
    /// more request's time; fewer than a quorum by the deadline (or so many unreachable that a
    /// quorum cannot answer) is [`Error::HeadUnconfirmed`].
    async fn query_heads(&self, set: &NotarySet) -> Result<Vec<(SlotInfo, Arc<NotaryConn<N>>)>> {
        let wallet = self.id();
        let members: Vec<_> = self
            .conns
            .iter()
            .filter(|conn| set.contains(&conn.notary.id))
            .cloned()
            .collect();
        let (found, mut found_rx) = mpsc::channel(members.len().max(1));
        let retry = self.config.retry;
        let tasks: Vec<_> = members
            .iter()
            .map(|conn| {
                let (conn, found) = (Arc::clone(conn), found.clone());
                tokio::spawn(async move {
                    let mut backoff = Backoff::new(retry);
                    loop {
                        let answer = conn.ask(&Request::SlotQuery { wallet }).await;
                        let done = matches!(answer, Ok(Response::SlotInfo(_)));
                        if found.send((Arc::clone(&conn), answer)).await.is_err() || done {
                            return;
                        }
                        tokio::time::sleep(backoff.pause()).await;
                    }
                })
            })
            .collect();
        drop(found);
        let deadline = tokio::time::Instant::now() + self.config.deadline;
        let mut grace: Option<tokio::time::Instant> = None;
        let mut answers = Vec::new();
        let mut failures: BTreeMap<FeedId, String> = BTreeMap::new();
        let mut unreachable = std::collections::BTreeSet::new();
        while answers.len() < members.len() {
            let until = grace.map_or(deadline, |g| g.min(deadline));
            let Ok(Some((conn, answer))) = tokio::time::timeout_at(until, found_rx.recv()).await
            else {
                break;
            };
            let id = conn.notary.id;
            match answer {
                Ok(Response::SlotInfo(info)) => {
                    failures.remove(&id);
                    unreachable.remove(&id);
                    answers.push((info, conn));
                    if answers.len() >= set.quorum() && grace.is_none() {
                        grace = Some(tokio::time::Instant::now() + self.config.request_timeout);
                    }
                }
                Ok(other) => {
                    unreachable.remove(&id);
                    failures.insert(id, format!("answered {}", describe_response(&other)));
                }
                Err(err) => {
                    if matches!(err, Error::Unreachable { .. }) {
                        unreachable.insert(id);
                    }
                    failures.insert(id, err.to_string());
                    if unreachable.len() > members.len() - set.quorum() {
                        break;
                    }
                }
            }
        }
        for task in &tasks {
            task.abort();
        }
        if answers.len() < set.quorum() {
            return Err(Error::HeadUnconfirmed {
                answered: answers.len(),
                needed: set.quorum(),
                detail: failures
                    .iter()
                    .map(|(n, why)| format!("{}: {why}", n.short()))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok(answers)
    }

    /// A notary voted for an entry of this wallet right after the local head that this device
    /// does not hold (another device, or a backup taken before it): certify exactly that entry
    /// before signing anything for its slot.
    async fn finish_found_pending(
        &mut self,
        local: u64,
        pendings: Vec<EntryBytes>,
        take_over: bool,
    ) -> Result<u64> {
        if pendings.is_empty() || (!take_over && self.load_pending().await?.is_some()) {
            // This device's own pending entry goes first (`resume`); if notaries locked its
            // slot for another entry, `resume` comes back here to take over.
            return Ok(local);
        }
        let head = self.store_head().await?;
        for bytes in pendings {
            let Ok(entry) = bytes.decode() else {
                continue;
            };
            let follows = entry.author() == self.id()
                && entry.seq().get() == local + 1
                && entry.prev() == head.map(|h| h.id)
                && scrip_feed::validate::validate_entry(&self.id(), head.as_ref(), &entry).is_ok();
            if !follows {
                continue;
            }
            let pending = self.pending.clone();
            let saved = entry.clone();
            self.pending_clear = false;
            N::BLOCKING
                .run(move || pending.save(&saved))
                .await
                .ok_or(Error::Shutdown)??;
            let certified = self.certify(entry).await?;
            return Ok(certified.entry.seq().get());
        }
        Ok(local)
    }

    /// Gathers a quorum of votes for `entry` (already pending), retrying the same bytes, then
    /// stores it with its certificate and clears the pending file.
    // Long because: one certification as notary.md section 5 describes it: a loop over the
    // notaries' answers, each kind of answer a few lines.
    async fn certify(&mut self, entry: Entry) -> Result<CertifiedEntry> {
        let set = self.notary_set(&entry).await?;
        let (answers, mut answers_rx) = mpsc::channel::<(FeedId, Answer)>(self.conns.len().max(1));
        let deadline = tokio::time::Instant::now() + self.config.deadline;
        // The preceding certified entry goes along: a notary learns of a certification when the
        // next entry is proposed, and would otherwise ask for it (one more round trip).
        let previous: Vec<_> = self
            .previous_certified(&entry)
            .iter()
            .filter_map(|c| to_bytes(c).ok())
            .collect();
        let tasks: Vec<_> = self
            .conns
            .iter()
            .filter(|c| set.contains(&c.notary.id))
            .map(|conn| {
                tokio::spawn(propose_to(
                    Arc::clone(conn),
                    entry.clone(),
                    Arc::clone(&self.store),
                    previous.clone(),
                    self.config.retry,
                    answers.clone(),
                ))
            })
            .collect();
        drop(answers);
        let subject = subject_of(&entry);
        let outcome = gather(
            Tally::new(&set),
            &mut answers_rx,
            deadline,
            &tasks,
            |vote| vote.verifies(&subject),
        )
        .await;
        let outcome = match outcome {
            Ok(votes) => Ok(votes),
            Err(Settled::Refused(refusal)) => Err(refusal),
            Err(Settled::Failed(err)) => return Err(err),
        };
        match outcome {
            Ok(votes) => {
                let certificate = Certificate::from_votes(entry.id(), ROUND_ZERO, votes);
                let certified = CertifiedEntry {
                    entry,
                    certificate: Some(certificate),
                };
                let store = Arc::clone(&self.store);
                let to_store = certified.clone();
                let pending = self.pending.clone();
                // Durable in the store first; only then is the pending entry forgotten.
                N::BLOCKING
                    .run(move || {
                        certified::store_own_certified(store.as_ref(), &to_store)?;
                        pending.clear()
                    })
                    .await
                    .ok_or(Error::Shutdown)??;
                self.pending_clear = true;
                // This client signed the entry and checked each of the q votes as it counted
                // them: citing it later (a cancel's void, a refund's) checks nothing again.
                if let Some(certificate) = &certified.certificate {
                    self.seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(certified.entry.id(), certificate);
                }
                self.last_certified = Some(certified.clone());
                Ok(certified)
            }
            Err(Refusal::Locked { seq, .. }) => Err(Error::Locked { seq }),
            Err(refusal) => {
                // f + 1 equal definitive refusals: no honest notary voted; the slot is free.
                self.pending.clear()?;
                self.pending_clear = true;
                Err(Error::Refused {
                    refusal: Box::new(refusal),
                    count: set.f() + 1,
                })
            }
        }
    }
}

/// Proposes `entry` to one notary until it votes or definitively refuses (the caller aborts
/// the task once it has what it needs), reporting to `answers`: a vote, a definitive refusal,
/// and whether the notary can be reached (on each change).
async fn propose_to<N: Network>(
    conn: Arc<NotaryConn<N>>,
    entry: Entry,
    store: Arc<dyn Store>,
    previous: Vec<scrip_ledger::CertifiedBytes>,
    retry: Duration,
    answers: mpsc::Sender<(FeedId, Answer)>,
) {
    let notary = conn.notary.id;
    let mut prefix = previous;
    let mut sent_from: Option<u64> = None;
    let mut unreachable = false;
    let mut not_now = None;
    let mut backoff = Backoff::new(retry);
    loop {
        // The prefix goes along on every try until the notary votes: a notary that said "not
        // now" (busy, or a stranger's share in use) before deciding still lacks it.
        let request = Request::Propose(Proposal {
            entry: EntryBytes::of(&entry),
            prefix: std::mem::take(&mut prefix),
        });
        let answer = conn.ask(&request).await;
        if let Request::Propose(proposal) = request {
            prefix = proposal.prefix;
        }
        report_reach(&answer, &mut unreachable, notary, &answers).await;
        match answer {
            // Verified by `gather`, only while it still needs votes.
            Ok(Response::Vote(vote)) if vote.notary == notary => {
                let _ = answers.send((notary, Answer::Vote(vote))).await;
                return;
            }
            // A notary that lacks certified entries gets them sent: it asked for them, or it
            // heard of later ones and will not vote until it holds them (a certificate
            // replication cannot bring it: it voted for the entry and so already holds it).
            // Each starting point is sent once; a notary that stays behind after that is
            // retried after a pause.
            Ok(Response::Refusal(refusal))
                if missing_from(&refusal).is_some_and(|f| sent_from != Some(f)) =>
            {
                let from = missing_from(&refusal).unwrap_or(1).max(1);
                sent_from = Some(from);
                let upto = entry.seq().get().saturating_sub(1);
                let limit = usize::try_from(upto.saturating_sub(from) + 1)
                    .unwrap_or(usize::MAX)
                    .min(MAX_CERTIFIED_PER_MESSAGE);
                if let Ok(log) = certified::log(store.as_ref(), &entry.author(), from, limit) {
                    prefix = log.iter().filter_map(|c| to_bytes(c).ok()).collect();
                    continue;
                }
            }
            Ok(Response::Refusal(refusal)) if refusal.is_definitive() => {
                let _ = answers.send((notary, Answer::Refused(refusal))).await;
                return;
            }
            Ok(Response::Refusal(refusal)) => {
                report_not_now(&refusal, &mut not_now, notary, &answers).await;
            }
            Ok(_) | Err(_) => {}
        }
        tokio::time::sleep(backoff.pause()).await;
    }
}

/// Asks one notary for a fate vote until it votes or definitively refuses (the caller aborts
/// the task once it has what it needs), reporting to `answers` as [`propose_to`] does.
async fn ask_fate<N: Network>(
    conn: Arc<NotaryConn<N>>,
    request: FateRequest,
    retry: Duration,
    answers: mpsc::Sender<(FeedId, Answer)>,
) {
    let notary = conn.notary.id;
    let request = Request::Fate(Box::new(request));
    let mut unreachable = false;
    let mut not_now = None;
    let mut backoff = Backoff::new(retry);
    loop {
        let answer = conn.ask(&request).await;
        report_reach(&answer, &mut unreachable, notary, &answers).await;
        match answer {
            // Verified by `gather`, only while it still needs votes.
            Ok(Response::Vote(vote)) if vote.notary == notary => {
                let _ = answers.send((notary, Answer::Vote(vote))).await;
                return;
            }
            Ok(Response::Refusal(refusal)) if refusal.is_definitive() => {
                let _ = answers.send((notary, Answer::Refused(refusal))).await;
                return;
            }
            Ok(Response::Refusal(refusal)) => {
                report_not_now(&refusal, &mut not_now, notary, &answers).await;
            }
            Ok(_) | Err(_) => {}
        }
        tokio::time::sleep(backoff.pause()).await;
    }
}

/// Counts the answers the notary tasks report until `tally` settles or `deadline` passes, then
/// stops the tasks. Votes are verified here (`verifies`), as they are counted: once the tally
/// settles, the votes still arriving are not verified at all (a wallet checks q votes, not n).
/// A vote that does not verify is not counted, and its notary is not asked again for this
/// entry (an honest notary never sends one).
async fn gather(
    mut tally: Tally,
    answers: &mut mpsc::Receiver<(FeedId, Answer)>,
    deadline: tokio::time::Instant,
    tasks: &[tokio::task::JoinHandle<()>],
    verifies: impl Fn(&Vote) -> bool,
) -> std::result::Result<Vec<Vote>, Settled> {
    let outcome = loop {
        match tokio::time::timeout_at(deadline, answers.recv()).await {
            Ok(Some((notary, Answer::Vote(vote)))) if !verifies(&vote) => {
                tracing::warn!(%notary, "a notary sent a vote that does not verify");
            }
            Ok(Some((notary, answer))) => {
                if let Some(outcome) = tally.add(notary, answer) {
                    break outcome;
                }
            }
            Ok(None) | Err(_) => {
                break Err(tally.no_quorum("the others did not answer in time"));
            }
        }
    };
    for task in tasks {
        task.abort();
    }
    outcome
}

/// Tells `answers` a notary's "not now" (a refusal that is not definitive), when its reason
/// differs from the last one told (`last`), so that a certification without a quorum can say why.
async fn report_not_now(
    refusal: &Refusal,
    last: &mut Option<String>,
    notary: FeedId,
    answers: &mpsc::Sender<(FeedId, Answer)>,
) {
    let reason = refusal.to_string();
    if last.as_deref() != Some(reason.as_str()) {
        *last = Some(reason.clone());
        let _ = answers.send((notary, Answer::NotNow(reason))).await;
    }
}

/// Tells `answers` when a notary becomes unreachable (its connection failed) or reachable again
/// (it answered anything), once per change.
async fn report_reach(
    answer: &Result<Response>,
    unreachable: &mut bool,
    notary: FeedId,
    answers: &mpsc::Sender<(FeedId, Answer)>,
) {
    match answer {
        Err(Error::Unreachable { reason, .. }) if !*unreachable => {
            *unreachable = true;
            let _ = answers
                .send((notary, Answer::Unreachable(reason.clone())))
                .await;
        }
        Ok(_) if *unreachable => {
            *unreachable = false;
            let _ = answers.send((notary, Answer::Reached)).await;
        }
        _ => {}
    }
}

/// How a certification ended without a certificate.
enum Settled {
    /// f + 1 equal definitive refusals (no honest notary voted for it).
    Refused(Refusal),
    /// No quorum now (the entry stays pending).
    Failed(Error),
}

/// The answers gathered for one proposal.
struct Tally {
    quorum: usize,
    enough_refusals: usize,
    members: usize,
    votes: BTreeMap<FeedId, Vote>,
    refusals: BTreeMap<String, (Refusal, usize)>,
    unreachable: BTreeMap<FeedId, String>,
    /// Each notary's latest "not now", until it votes or refuses for good.
    not_now: BTreeMap<FeedId, String>,
}

impl Tally {
    fn new(set: &NotarySet) -> Tally {
        Tally::with(set.quorum(), set.members().len())
    }

    /// A tally of `members` asked, finished at `needed` votes, or at `members − needed + 1`
    /// equal definitive refusals (then fewer than `needed` can ever vote; for a set's quorum
    /// that is f + 1).
    fn with(needed: usize, members: usize) -> Tally {
        Tally {
            quorum: needed,
            enough_refusals: members.saturating_sub(needed) + 1,
            members,
            votes: BTreeMap::new(),
            refusals: BTreeMap::new(),
            unreachable: BTreeMap::new(),
            not_now: BTreeMap::new(),
        }
    }

    /// Counts `answer`; returns how the certification ends, once it does: the quorum's votes,
    /// f + 1 equal definitive refusals, or (at once) so many notaries unreachable that a quorum
    /// cannot be had now.
    fn add(&mut self, notary: FeedId, answer: Answer) -> Option<Result<Vec<Vote>, Settled>> {
        match answer {
            Answer::Vote(vote) => {
                self.unreachable.remove(&notary);
                self.not_now.remove(&notary);
                self.votes.insert(notary, vote);
                if self.votes.len() >= self.quorum {
                    return Some(Ok(std::mem::take(&mut self.votes).into_values().collect()));
                }
            }
            Answer::Refused(refusal) => {
                self.unreachable.remove(&notary);
                self.not_now.remove(&notary);
                let slot = self
                    .refusals
                    .entry(refusal.kind())
                    .or_insert_with(|| (refusal.clone(), 0));
                slot.1 += 1;
                if slot.1 >= self.enough_refusals {
                    return Some(Err(Settled::Refused(refusal)));
                }
            }
            Answer::Unreachable(reason) => {
                self.unreachable.insert(notary, reason);
                if self.unreachable.len() > self.members - self.quorum {
                    return Some(Err(self.no_quorum("")));
                }
            }
            Answer::Reached => {
                self.unreachable.remove(&notary);
            }
            Answer::NotNow(reason) => {
                self.unreachable.remove(&notary);
                self.not_now.insert(notary, reason);
            }
        }
        None
    }

    /// No quorum: what the notaries said (refusals, unreachable ones), else `otherwise`.
    fn no_quorum(&self, otherwise: &str) -> Settled {
        let mut parts: Vec<String> = self
            .refusals
            .values()
            .map(|(r, n)| format!("{n}× {r}"))
            .collect();
        let mut not_now: BTreeMap<&str, usize> = BTreeMap::new();
        for reason in self.not_now.values() {
            *not_now.entry(reason).or_default() += 1;
        }
        parts.extend(
            not_now
                .into_iter()
                .map(|(reason, n)| format!("{n}× not now: {reason}")),
        );
        if !self.unreachable.is_empty() {
            parts.push(format!(
                "{} of {} notaries cannot be reached ({})",
                self.unreachable.len(),
                self.members,
                self.unreachable
                    .iter()
                    .map(|(n, r)| format!("{}: {r}", n.short()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if parts.is_empty() {
            parts.push(otherwise.to_owned());
        }
        Settled::Failed(Error::NoQuorum {
            votes: self.votes.len(),
            needed: self.quorum,
            detail: parts.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_ledger::VoteSubject;
    use scrip_ledger::certificate::ROUND_ZERO;

    #[test]
    fn retry_pauses_start_short_and_double_up_to_the_configured_one() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(200));
        let pauses: Vec<_> = (0..8).map(|_| backoff.pause()).collect();
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 200, 200, 200].map(ms).to_vec()
        );
        // A configured pause shorter than the first one is used from the start.
        let mut short = Backoff::new(ms(3));
        assert_eq!([short.pause(), short.pause()], [ms(3), ms(3)]);
        assert_eq!(FIRST_RETRY, ms(10));
    }

    /// The collector verifies votes as it counts them: a vote that does not verify is not
    /// counted, and once the quorum is there nothing more is verified (a wallet checks q votes).
    #[tokio::test]
    async fn votes_are_verified_as_counted_and_only_until_the_quorum() {
        let notaries: Vec<Keypair> = (1..=4).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let subject = VoteSubject {
            wallet: Keypair::from_seed(&[9; 32]).id(),
            seq: scrip_feed::Seq::new(2),
            entry: scrip_feed::EntryId::of_header(b"an entry"),
            round: ROUND_ZERO,
        };
        let mut forged = Vote::sign(&notaries[0], &subject);
        let mut bytes = *forged.signature.as_bytes();
        bytes[3] ^= 1;
        forged.signature = scrip_feed::Signature::from_bytes(bytes);
        let (tx, mut rx) = mpsc::channel(8);
        tx.send((notaries[0].id(), Answer::Vote(forged)))
            .await
            .unwrap();
        for notary in &notaries[1..] {
            tx.send((notary.id(), Answer::Vote(Vote::sign(notary, &subject))))
                .await
                .unwrap();
        }
        let checked = std::sync::atomic::AtomicUsize::new(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let outcome = gather(Tally::with(2, 4), &mut rx, deadline, &[], |vote| {
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vote.verifies(&subject)
        })
        .await;
        let Ok(votes) = outcome else {
            panic!("no quorum");
        };
        let voters: Vec<FeedId> = votes.iter().map(|v| v.notary).collect();
        assert_eq!(voters.len(), 2);
        assert!(
            !voters.contains(&notaries[0].id()),
            "the forged vote is not counted"
        );
        assert!(votes.iter().all(|v| v.verifies(&subject)));
        // The forged one and two good ones; the fourth vote is not verified.
        assert_eq!(checked.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}
