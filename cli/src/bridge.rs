//! Where a notary and a replicate node are composed (`scrip serve --notary`, `scrip bench
//! load`): notaries are ordinary peers, so a notary service runs beside a replicate node that
//! shares its feed store, and this bridge connects the two. Neither crate knows the other: the
//! notary uses only the replicate crate's transport (docs/ARCHITECTURE.md, "Layers").
//!
//! - Node → notary: when the node stores entries of a feed received from a peer, the notary
//!   learns the certified ones ([`NotaryHandle::learn`]). A notary that was down or partitioned
//!   catches up from other notaries, wallets or any peer holding the wallet, with no client
//!   involved; its amnesia guard lifts as soon as it holds what it heard of. (Of a stranger's
//!   wallet, a daemon's notary takes in this way only the entries it voted for: see
//!   [`CertificateCheck::for_notary`].)
//! - Notary → node: when the notary keeps entries of a wallet (certified ones learned from a
//!   proposal, or the one it voted for), the node is asked to replicate that wallet and told of
//!   the new entries, so that peers get them. At start, every wallet the notary knows is asked
//!   for.
//!
//! Certificates travel as the `scrip/certificate` attachment of their entry; the node must run
//! with [`CertificateCheck`] as its attachment check so that only valid ones are kept.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use scrip_feed::bounded::FifoMap;
use scrip_feed::{Entry, FeedId, Seq, Store};
use scrip_ledger::certificate::CERTIFICATE_KIND;
use scrip_ledger::content::wallet_notaries;
use scrip_ledger::verify::{Seen, VerifyAll, certify};
use scrip_ledger::{Certificate, NotarySet};
use scrip_notary::VoteStore;
use scrip_notary::service::{NotaryEvent, NotaryHandle, NotaryLink};
use scrip_replicate::transport::Network;
use scrip_replicate::{AttachmentCheck, Event, NodeLink};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// Starts the bridge between `notary` and the node behind `node` (which must share the
/// notary's feed store). It stops when either side shuts down.
pub fn bridge<N: Network>(node: NodeLink<N>, notary: &NotaryHandle) -> JoinHandle<()> {
    let mut node_events = node.events();
    let mut notary_events = notary.events();
    let link = notary.link();
    tokio::spawn(async move {
        if !replicate_known_wallets(&node, &link).await {
            return;
        }
        loop {
            tokio::select! {
                event = node_events.recv() => match event {
                    Ok(Event::Stored { feed, from: Some(_), received, .. }) if received > 0 => {
                        link.learn(feed).await;
                    }
                    Ok(_) => {}
                    // Missed events: look at every wallet again.
                    Err(RecvError::Lagged(_)) => {
                        for wallet in link.wallets().await {
                            link.learn(wallet).await;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                event = notary_events.recv() => match event {
                    Ok(NotaryEvent::Stored { wallet, head }) => {
                        if node.request_feed(wallet).await.is_err()
                            || node.announce(wallet, head).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if !replicate_known_wallets(&node, &link).await {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}

/// The wallets a notary daemon takes on whatever its bound on new wallets says (`notary.md`
/// §2, "New wallets"): the ones its home's identity, or an identity it follows, links to
/// (`ledger.md` §1) — the people its owner vouches for. Read by the notary from memory
/// ([`Vouched::for_notary`]), kept up to date by [`keep_vouched`].
#[derive(Clone, Debug, Default)]
pub struct Vouched(Arc<RwLock<BTreeSet<FeedId>>>);

impl Vouched {
    /// A set holding `wallets` (tests; a daemon's is kept by [`keep_vouched`]).
    pub fn of(wallets: impl IntoIterator<Item = FeedId>) -> Vouched {
        Vouched(Arc::new(RwLock::new(wallets.into_iter().collect())))
    }

    /// Whether the notary vouches for `wallet`.
    pub fn holds(&self, wallet: &FeedId) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(wallet)
    }

    /// The set as the store holds it now: the wallets that this home's identity (`me`) and the
    /// identities it follows link to. A notary daemon reads it before its node and notary
    /// start, so that their first decisions already know the members ([`keep_vouched`] keeps
    /// it up to date from then on); an empty set there would decline members' wallets by
    /// gossip, for a backoff, and count them against the strangers' bounds.
    pub fn read(store: &dyn Store, me: &FeedId) -> anyhow::Result<Vouched> {
        let mut people = std::collections::BTreeMap::new();
        crate::ops::update_people(store, me, &mut people)?;
        Ok(Vouched::of(
            people.into_values().filter_map(|person| person.wallet),
        ))
    }

    /// What the notary asks.
    pub fn for_notary(&self) -> scrip_notary::Vouched {
        let this = self.clone();
        scrip_notary::Vouched(Arc::new(move |wallet| this.holds(wallet)))
    }
}

/// Fills `vouched` now, then again whenever the node stores entries of the home's identity or
/// of an identity it follows: the wallets they link to, from the names cache's people
/// ([`Context::people_wallets`](crate::ops::Context::people_wallets), read incrementally: only
/// their new entries; other feeds, however busy, cost nothing here). It stops when the node
/// shuts down.
pub fn keep_vouched<N: Network>(
    node: NodeLink<N>,
    ctx: Arc<crate::ops::Context>,
    vouched: Vouched,
) -> JoinHandle<()> {
    let mut events = node.events();
    tokio::spawn(async move {
        let mut people = BTreeSet::new();
        loop {
            match ctx.people_wallets().await {
                Ok(read) => {
                    people = read.keys().copied().collect();
                    let wallets = read.into_values().flatten().collect();
                    *vouched
                        .0
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = wallets;
                }
                Err(err) => tracing::warn!("reading whom this notary vouches for: {err:#}"),
            }
            // Until entries of one of these people are stored (the home's own too); whatever
            // else arrived meanwhile is looked at with them.
            let relevant = |event: &Event| matches!(event, Event::Stored { feed, .. } if people.contains(feed));
            loop {
                match events.recv().await {
                    Ok(event) if relevant(&event) => break,
                    Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                }
            }
            while events.try_recv().is_ok() {}
        }
    })
}

/// Asks the node to replicate every wallet the notary knows. False if the node is gone.
async fn replicate_known_wallets<N: Network>(node: &NodeLink<N>, notary: &NotaryLink) -> bool {
    for wallet in notary.wallets().await {
        if node.request_feed(wallet).await.is_err() {
            return false;
        }
    }
    true
}

/// Feeds whose first entry a [`CertificateCheck`] remembers the verdict of (the notary set of
/// a wallet's genesis, or "not a wallet"), the oldest forgotten first. The check needs it for
/// every entry received; read from the store each time, it took a fifth of a notary node's
/// ingest thread while a social feed replicated (`scrip bench load`). A remembered verdict
/// never goes stale: a feed's first entry in the store never changes (feeds are append-only
/// and the store refuses a second entry for a seq), and only a first entry read from the
/// store is remembered, not one from a batch the store may still refuse.
pub const FIRST_ENTRIES_REMEMBERED: usize = 1024;

/// Keeps a `scrip/certificate` attachment only if it certifies its entry under the wallet's
/// notary set (from the wallet's genesis in the store); other kinds are kept as they are.
#[derive(Clone)]
pub struct CertificateCheck {
    store: Arc<dyn Store>,
    /// Where certified entries whose certificate verified are remembered (shared with the
    /// wallet client beside the node, so that it does not check them again when cited).
    seen: Option<Arc<Mutex<Seen>>>,
    /// What the first entries of recently received feeds say ([`FIRST_ENTRIES_REMEMBERED`]).
    first: Arc<Mutex<FifoMap<FeedId, Option<NotarySet>>>>,
    /// A notary's node: what it takes in of strangers' wallets ([`StrangersVoted`]).
    strangers: Option<StrangersVoted>,
}

/// What a notary's node takes in by gossip of a wallet that names the notary but that it does
/// not vouch for: the entries it voted for, no more (`notary.md` §2, "Strangers' entries").
/// Such a wallet names other notaries of its owner's choosing, which can certify entries as
/// fast as they like, and gossip would store them all, unpaced; what this notary voted for is
/// already within the strangers' share (each vote took a token). The rest of a stranger's log
/// reaches the notary with the stranger's proposals, within the share.
#[derive(Clone)]
struct StrangersVoted {
    notary: FeedId,
    vouched: Vouched,
    votes: Arc<dyn VoteStore>,
}

impl std::fmt::Debug for CertificateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateCheck")
    }
}

impl CertificateCheck {
    /// A check reading genesis entries from `store`.
    pub fn new(store: Arc<dyn Store>) -> CertificateCheck {
        CertificateCheck {
            store,
            seen: None,
            first: Arc::new(Mutex::new(FifoMap::new(FIRST_ENTRIES_REMEMBERED))),
            strangers: None,
        }
    }

    /// The check of notary `notary`'s node: of a wallet that names it but that it does not
    /// vouch for (`vouched`), only the entries it voted for (in `votes`) are taken in
    /// ([`AttachmentCheck::admit`]).
    #[must_use]
    pub fn for_notary(
        mut self,
        notary: FeedId,
        vouched: Vouched,
        votes: Arc<dyn VoteStore>,
    ) -> CertificateCheck {
        self.strangers = Some(StrangersVoted {
            notary,
            vouched,
            votes,
        });
        self
    }

    /// Also remembers each entry whose certificate verified in `seen` (the entry's signature
    /// was checked before: see [`AttachmentCheck`]).
    #[must_use]
    pub fn remembering(mut self, seen: Arc<Mutex<Seen>>) -> CertificateCheck {
        self.seen = Some(seen);
        self
    }
}

impl CertificateCheck {
    /// The notary set named by the first entry of `entry`'s feed if that is a wallet genesis
    /// (`None`: not a wallet, or no first entry known). The first entry comes from the store
    /// (its verdict remembered: [`FIRST_ENTRIES_REMEMBERED`]), else from the batch received
    /// with it (the entry itself, if it is the first). A batch genesis the store then refuses
    /// (a fork) takes its entries down with it: entries that do not link to the stored chain
    /// are refused.
    fn wallet_set(&self, entry: &Entry, batch: &[Entry]) -> Option<NotarySet> {
        let author = entry.author();
        if entry.seq() == Seq::FIRST {
            return wallet_notaries(entry);
        }
        let first = || {
            self.first
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(verdict) = first().get(&author) {
            return verdict.clone();
        }
        if let Ok(Some(stored)) = self.store.get(&author, Seq::FIRST) {
            let verdict = wallet_notaries(&stored);
            first().insert(author, verdict.clone());
            return verdict;
        }
        batch
            .iter()
            .find(|e| e.author() == author && e.seq() == Seq::FIRST)
            .and_then(wallet_notaries)
    }
}

/// True if `evidence` holds a certificate of `entry` under `set`.
fn certified_by(evidence: &scrip_feed::fork::Evidence, entry: &Entry, set: &NotarySet) -> bool {
    evidence.iter().any(|(kind, bytes)| {
        kind == CERTIFICATE_KIND
            && Certificate::decode(bytes).is_ok_and(|c| certify(&c, set, entry, &VerifyAll).is_ok())
    })
}

impl AttachmentCheck for CertificateCheck {
    fn accept(&self, entry: &Entry, kind: &str, bytes: &[u8], batch: &[Entry]) -> bool {
        if kind != CERTIFICATE_KIND {
            return true;
        }
        let Ok(certificate) = Certificate::decode(bytes) else {
            return false;
        };
        // Under the set the wallet's genesis names (the genesis is certified by that set too).
        let verified = self
            .wallet_set(entry, batch)
            .is_some_and(|set| certify(&certificate, &set, entry, &VerifyAll).is_ok());
        if verified && let Some(seen) = &self.seen {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(entry.id(), &certificate);
        }
        verified
    }

    /// A notary's node takes in, of a wallet that names it but that it does not vouch for, only
    /// the entries it voted for ([`CertificateCheck::for_notary`]); everything else is taken
    /// in (and checked).
    fn admit(&self, entry: &Entry, batch: &[Entry]) -> Result<(), String> {
        let Some(rule) = &self.strangers else {
            return Ok(());
        };
        let wallet = entry.author();
        if rule.vouched.holds(&wallet)
            || !self
                .wallet_set(entry, batch)
                .is_some_and(|set| set.contains(&rule.notary))
        {
            return Ok(());
        }
        match rule.votes.voted_entry(&wallet, entry.seq()) {
            Ok(Some(voted)) if voted.id() == entry.id() => Ok(()),
            Ok(_) => Err(format!(
                "#{} of a wallet this notary does not vouch for, which it did not vote for: \
                 taken in only with the wallet's proposals",
                entry.seq()
            )),
            Err(err) => Err(format!("reading the vote log: {err}")),
        }
    }

    /// Every entry of a wallet (a feed whose first entry is a wallet genesis) needs its
    /// certificate: a proposal its notaries refused is not part of the wallet.
    fn required(&self, entry: &Entry, batch: &[Entry]) -> Option<&'static str> {
        self.wallet_set(entry, batch).map(|_| CERTIFICATE_KIND)
    }

    /// A wallet's fork proof counts only if both halves carry a certificate under the set of
    /// the genesis held here: two certified entries for one slot (more than f faulty notaries).
    /// A signed proposal next to the certified entry proves nothing.
    fn proof_counts(&self, proof: &scrip_feed::ForkProof, first: &Entry) -> bool {
        let Some(set) = wallet_notaries(first) else {
            return true;
        };
        proof
            .halves()
            .iter()
            .all(|(entry, evidence)| certified_by(evidence, entry, &set))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_feed::{Keypair, MemoryStore};
    use scrip_ledger::SignatureCheck;
    use scrip_ledger::kit::{KitWallet, notaries};
    use scrip_ledger::verify::Remembered;

    /// The node's certificate check remembers the entries whose certificate verified (for the
    /// wallet client beside it), and only those.
    #[test]
    fn the_certificate_check_remembers_what_it_verified_and_nothing_else() {
        let wallet = KitWallet::new(Arc::new(Keypair::from_seed(&[3; 32])), notaries(60, 4));
        let genesis = wallet.log[0].clone();
        let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
        let check =
            CertificateCheck::new(Arc::new(MemoryStore::new())).remembering(Arc::clone(&seen));
        let certificate = genesis.certificate.clone().unwrap();
        let mut forged = certificate.clone();
        let mut bytes = *forged.votes[0].signature.as_bytes();
        bytes[1] ^= 1;
        forged.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
        let batch = [genesis.entry.clone()];
        assert!(!check.accept(&genesis.entry, CERTIFICATE_KIND, &forged.encode(), &batch));
        assert!(
            seen.lock().unwrap().is_empty(),
            "a refused certificate is not remembered"
        );
        assert!(check.accept(
            &genesis.entry,
            CERTIFICATE_KIND,
            &certificate.encode(),
            &batch
        ));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let remembered = Remembered {
            seen: &seen,
            inner: &VerifyAll,
        };
        let subject = scrip_ledger::verify::subject_of(&genesis.entry);
        assert!(remembered.votes(&certificate, &subject).is_ok());
        assert!(
            remembered.votes(&forged, &subject).is_err(),
            "other bytes are verified"
        );
    }

    /// The check reads a feed's first entry from the store once and remembers what it says (a
    /// wallet's notary set, or not a wallet), for at most [`FIRST_ENTRIES_REMEMBERED`] feeds,
    /// the oldest forgotten first; a first entry known only from the batch (which the store
    /// may still refuse) is used, not remembered.
    #[test]
    fn the_first_entry_of_a_stored_feed_is_remembered_within_a_bound() {
        let store = Arc::new(MemoryStore::new());
        let social = scrip_feed::bench::make_feeds(1, 2, 96);
        let mut wallet = KitWallet::new(Arc::new(Keypair::from_seed(&[3; 32])), notaries(60, 4));
        let eur = wallet.currency("EUR", 2).unwrap();
        wallet.mint(&eur, 100);
        let (genesis, minted) = (wallet.log[0].entry.clone(), wallet.log[1].entry.clone());
        let check = CertificateCheck::new(Arc::clone(&store) as Arc<dyn Store>);
        let remembered = || check.first.lock().unwrap().len();

        assert_eq!(check.required(&social[1], &social), None);
        let batch = [genesis.clone(), minted.clone()];
        assert_eq!(check.required(&minted, &batch), Some(CERTIFICATE_KIND));
        assert_eq!(
            remembered(),
            0,
            "first entries from a batch are not remembered"
        );

        store.ingest(social.clone()).unwrap();
        store.ingest(vec![genesis]).unwrap();
        assert_eq!(check.required(&social[1], &[]), None);
        assert_eq!(check.required(&minted, &[]), Some(CERTIFICATE_KIND));
        assert_eq!(remembered(), 2);
        assert_eq!(check.required(&minted, &[]), Some(CERTIFICATE_KIND));
        assert_eq!(remembered(), 2);

        // The bound: past it the oldest feeds' verdicts are forgotten (read again if needed).
        let feed = |i: usize| {
            let mut bytes = [0; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            FeedId::from_bytes(bytes)
        };
        for i in 0..FIRST_ENTRIES_REMEMBERED + 10 {
            check.first.lock().unwrap().insert(feed(i), None);
        }
        let first = check.first.lock().unwrap();
        assert_eq!(first.len(), FIRST_ENTRIES_REMEMBERED);
        assert_eq!(first.get(&feed(9)), None, "the oldest are forgotten");
        assert_eq!(first.get(&feed(10)), Some(&None));
    }
}
