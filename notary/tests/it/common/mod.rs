//! A notary cluster on loopback TCP and wallet clients, for the notary tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod certified_wallet;

use std::sync::Arc;
use std::time::Duration;

use scrip_feed::{Keypair, MemoryStore, Seq, Store};
use scrip_ledger::content::{Mint, Order, OrderRef, Reclaim, Reject, WalletEntry};
use scrip_ledger::{Amount, CertifiedEntry, Currency};
use scrip_notary::certified;
use scrip_notary::{
    ClientConfig, LogVoteStore, Notary, NotaryAddr, NotaryConfig, NotaryHandle, PendingFile,
    VoteStore, WalletClient,
};
use scrip_replicate::transport::{Tcp, TransportConfig};

/// A vote store whose `record` runs `record` (given the inner store) instead: for tests that
/// make the disk fail, hold a batch, or die in it. Everything else is the inner store's.
pub struct InterceptVotes<S, F> {
    pub inner: S,
    pub record: F,
}

impl<S, F> VoteStore for InterceptVotes<S, F>
where
    S: VoteStore,
    F: Fn(
            &S,
            &[scrip_notary::VoteRecord],
            &scrip_notary::votes::StepHook,
        ) -> scrip_notary::Result<()>
        + Send
        + Sync,
{
    fn record(
        &self,
        votes: &[scrip_notary::VoteRecord],
        hook: &scrip_notary::votes::StepHook,
    ) -> scrip_notary::Result<()> {
        (self.record)(&self.inner, votes, hook)
    }

    fn load(&self) -> scrip_notary::Result<Vec<scrip_ledger::VoteSubject>> {
        self.inner.load()
    }

    fn load_fates(&self) -> scrip_notary::Result<Vec<scrip_ledger::FateSubject>> {
        self.inner.load_fates()
    }

    fn voted_entry(
        &self,
        wallet: &scrip_feed::FeedId,
        seq: Seq,
    ) -> scrip_notary::Result<Option<scrip_feed::Entry>> {
        self.inner.voted_entry(wallet, seq)
    }
}

pub fn key(n: u8) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[n; 32]))
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub keys: Vec<Arc<Keypair>>,
    pub notaries: Vec<Option<NotaryHandle>>,
    pub stores: Vec<Arc<dyn Store>>,
    pub addresses: Vec<String>,
    /// The settings every notary starts with (its listen address aside).
    pub config: NotaryConfig,
}

pub fn transport() -> TransportConfig {
    TransportConfig {
        handshake_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    }
}

impl Cluster {
    /// `n` notaries with keys from seed `base`, vote logs, memory feed stores.
    pub async fn start(n: u8, base: u8) -> Cluster {
        Cluster::start_with(
            n,
            base,
            NotaryConfig {
                transport: transport(),
                ..NotaryConfig::default()
            },
        )
        .await
    }

    /// `n` notaries started with `config`.
    pub async fn start_with(n: u8, base: u8, config: NotaryConfig) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            dir,
            keys: (0..n).map(|i| key(base + i)).collect(),
            notaries: Vec::new(),
            stores: (0..n)
                .map(|_| Arc::new(MemoryStore::new()) as Arc<dyn Store>)
                .collect(),
            addresses: vec![String::new(); n as usize],
            config,
        };
        for i in 0..n as usize {
            cluster.notaries.push(None);
            cluster.start_one(i, "127.0.0.1:0").await;
        }
        cluster
    }

    pub async fn start_one(&mut self, i: usize, listen: &str) {
        let votes: Arc<dyn VoteStore> =
            Arc::new(LogVoteStore::open(&self.dir.path().join(format!("votes{i}"))).unwrap());
        let handle = Notary::spawn(
            Arc::clone(&self.keys[i]),
            Arc::clone(&self.stores[i]),
            votes,
            Tcp,
            NotaryConfig {
                listen: listen.into(),
                ..self.config.clone()
            },
            Arc::new(|_| {}),
        )
        .await
        .unwrap();
        self.addresses[i] = handle.address().to_string();
        self.notaries[i] = Some(handle);
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(handle) = self.notaries[i].take() {
            handle.shutdown().await;
        }
    }

    pub fn addrs(&self) -> Vec<NotaryAddr> {
        self.keys
            .iter()
            .zip(&self.addresses)
            .map(|(k, a)| NotaryAddr {
                id: k.id(),
                address: a.clone(),
            })
            .collect()
    }
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        transport: transport(),
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(8),
        retry: Duration::from_millis(50),
    }
}

pub struct Wallet {
    pub client: WalletClient<Tcp>,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
}

pub fn wallet(seed: u8, notaries: Vec<NotaryAddr>) -> Wallet {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    wallet_with(seed, notaries, store, tempfile::tempdir().unwrap())
}

pub fn wallet_with(
    seed: u8,
    notaries: Vec<NotaryAddr>,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
) -> Wallet {
    let client = WalletClient::new(
        key(seed),
        Arc::clone(&store),
        PendingFile::new(dir.path().join("pending")),
        notaries,
        Tcp,
        client_config(),
    )
    .unwrap();
    Wallet { client, store, dir }
}

impl Wallet {
    pub fn id(&self) -> scrip_feed::FeedId {
        self.client.id()
    }

    pub async fn mint(&mut self, currency: &Currency, amount: u64) -> CertifiedEntry {
        self.client
            .submit(&WalletEntry::Mint(Mint {
                currency: *currency,
                amount: Amount::from_minor(amount),
            }))
            .await
            .unwrap()
    }

    pub fn order_content(to: scrip_feed::FeedId, currency: &Currency, amount: u64) -> WalletEntry {
        WalletEntry::Order(Order {
            to,
            currency: *currency,
            amount: Amount::from_minor(amount),
            memo: String::new(),
            expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
            condition: None,
        })
    }

    pub async fn pay(
        &mut self,
        to: &Wallet,
        currency: &Currency,
        amount: u64,
    ) -> scrip_notary::Result<CertifiedEntry> {
        self.client
            .submit(&Wallet::order_content(to.id(), currency, amount))
            .await
    }

    /// Copies `sender`'s certified log into this wallet's store (what replication does).
    pub fn receive_log_of(&self, sender: &Wallet) {
        let log = certified::certified_log(sender.store.as_ref(), &sender.id()).unwrap();
        certified::store_certified(self.store.as_ref(), &log).unwrap();
    }

    /// A citation of `other`'s entry `seq`, after receiving `other`'s log.
    pub fn cite(&self, other: &Wallet, seq: Seq) -> scrip_ledger::Citation {
        self.receive_log_of(other);
        certified::citation(self.store.as_ref(), &other.id(), seq).unwrap()
    }

    pub async fn accept(
        &mut self,
        sender: &Wallet,
        seq: Seq,
    ) -> scrip_notary::Result<CertifiedEntry> {
        let citation = self.cite(sender, seq);
        self.client.accept(citation, None).await
    }

    pub async fn reject(
        &mut self,
        sender: &Wallet,
        seq: Seq,
    ) -> scrip_notary::Result<CertifiedEntry> {
        let citation = self.cite(sender, seq);
        self.client
            .submit(&WalletEntry::Reject(Reject {
                order: citation,
                reason: "no".into(),
            }))
            .await
    }

    pub async fn reclaim(
        &mut self,
        order: &CertifiedEntry,
        receiver: &Wallet,
        rejection: Seq,
    ) -> scrip_notary::Result<CertifiedEntry> {
        let citation = self.cite(receiver, rejection);
        self.client
            .submit(&WalletEntry::Reclaim(Reclaim {
                order: OrderRef {
                    seq: order.entry.seq(),
                    id: order.entry.id(),
                },
                rejection: citation,
            }))
            .await
    }

    pub async fn balance(&self, currency: &Currency) -> u64 {
        self.client.state().await.unwrap().balance(currency).minor()
    }
}

/// A store that counts the entries its readers were given (`get`, `range`), around another.
pub struct CountingStore {
    pub inner: Arc<dyn Store>,
    pub read: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn count(&self, n: usize) {
        self.read.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Store for CountingStore {
    fn ingest_verified(
        &self,
        batch: scrip_feed::store::VerifiedBatch,
    ) -> scrip_feed::Result<scrip_feed::IngestReport> {
        self.inner.ingest_verified(batch)
    }
    fn ingest_with_attachments(
        &self,
        batch: scrip_feed::store::VerifiedBatch,
        attachments: Vec<scrip_feed::Attachment>,
    ) -> scrip_feed::Result<(scrip_feed::IngestReport, Vec<scrip_feed::Result<bool>>)> {
        self.inner.ingest_with_attachments(batch, attachments)
    }
    fn get(
        &self,
        author: &scrip_feed::FeedId,
        seq: Seq,
    ) -> scrip_feed::Result<Option<scrip_feed::Entry>> {
        let found = self.inner.get(author, seq)?;
        self.count(usize::from(found.is_some()));
        Ok(found)
    }
    fn get_by_id(&self, id: &scrip_feed::EntryId) -> scrip_feed::Result<Option<scrip_feed::Entry>> {
        self.inner.get_by_id(id)
    }
    fn head(&self, author: &scrip_feed::FeedId) -> scrip_feed::Result<Option<scrip_feed::Head>> {
        self.inner.head(author)
    }
    fn range(
        &self,
        author: &scrip_feed::FeedId,
        from: Seq,
        limit: usize,
    ) -> scrip_feed::Result<Vec<scrip_feed::Entry>> {
        let found = self.inner.range(author, from, limit)?;
        self.count(found.len());
        Ok(found)
    }
    fn authors(&self) -> scrip_feed::Result<Vec<scrip_feed::FeedId>> {
        self.inner.authors()
    }
    fn set_payload_policy(
        &self,
        author: &scrip_feed::FeedId,
        policy: scrip_feed::PayloadPolicy,
    ) -> scrip_feed::Result<()> {
        self.inner.set_payload_policy(author, policy)
    }
    fn payload_policy(
        &self,
        author: &scrip_feed::FeedId,
    ) -> scrip_feed::Result<scrip_feed::PayloadPolicy> {
        self.inner.payload_policy(author)
    }
    fn add_fork_proof(&self, proof: &scrip_feed::ForkProof) -> scrip_feed::Result<bool> {
        self.inner.add_fork_proof(proof)
    }
    fn fork_proof(
        &self,
        author: &scrip_feed::FeedId,
    ) -> scrip_feed::Result<Option<scrip_feed::ForkProof>> {
        self.inner.fork_proof(author)
    }
    fn fork_proofs(&self) -> scrip_feed::Result<Vec<scrip_feed::ForkProof>> {
        self.inner.fork_proofs()
    }
    fn put_attachments(
        &self,
        items: Vec<scrip_feed::Attachment>,
    ) -> scrip_feed::Result<Vec<scrip_feed::Result<bool>>> {
        self.inner.put_attachments(items)
    }
    fn attachments(&self, id: &scrip_feed::EntryId) -> scrip_feed::Result<Vec<(String, Vec<u8>)>> {
        self.inner.attachments(id)
    }
    fn publish(
        &self,
        keypair: &Keypair,
        timestamp: scrip_feed::Timestamp,
        payload: Vec<u8>,
    ) -> scrip_feed::Result<scrip_feed::Entry> {
        self.inner.publish(keypair, timestamp, payload)
    }
}
