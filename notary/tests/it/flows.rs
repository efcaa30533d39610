//! Wallets and four notaries over loopback TCP: create, mint, pay, accept, reject, reclaim;
//! refusals that must happen; slow, missing and lagging notaries; restarts.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{Cluster, Wallet, wallet, wallet_with};
use scrip_feed::{Entry, MemoryStore, Seq, Store};
use scrip_ledger::content::{Accept, Cancel, OrderRef, WalletEntry};
use scrip_ledger::{
    Currency, Fate, FateCertificate, FateSubject, TrustSignatures, VerifyAll, fold,
};
use scrip_notary::certified;
use scrip_notary::{Error, PendingFile, Refusal};

/// The ledger rule a definitive refusal names, if that is what `err` is.
fn refused_by_rule(err: &Error) -> Option<&str> {
    match err {
        Error::Refused { refusal, .. } => match refusal.as_ref() {
            Refusal::Rules { code, .. } => Some(code),
            _ => None,
        },
        _ => None,
    }
}

async fn issuer_and_alice(cluster: &Cluster) -> (Wallet, Wallet, Currency) {
    let mut issuer = wallet(1, cluster.addrs());
    let mut alice = wallet(2, cluster.addrs());
    issuer.client.create().await.unwrap();
    alice.client.create().await.unwrap();
    let eur = Currency::new(issuer.id(), "EUR", 2).unwrap();
    issuer.mint(&eur, 100_000).await;
    (issuer, alice, eur)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_accept_reject_reclaim_through_four_notaries() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, mut alice, eur) = issuer_and_alice(&cluster).await;
    let order = issuer.pay(&alice, &eur, 2_500).await.unwrap();
    alice.accept(&issuer, order.entry.seq()).await.unwrap();
    assert_eq!(alice.balance(&eur).await, 2_500);
    assert_eq!(issuer.balance(&eur).await, 97_500);

    let payment = alice.pay(&issuer, &eur, 500).await.unwrap();
    let rejection = issuer.reject(&alice, payment.entry.seq()).await.unwrap();
    alice
        .reclaim(&payment, &issuer, rejection.entry.seq())
        .await
        .unwrap();
    assert_eq!(alice.balance(&eur).await, 2_500);

    // Everything folds and audits from the logs alone.
    let mut all: Vec<_> = certified::certified_log(issuer.store.as_ref(), &issuer.id()).unwrap();
    all.extend(certified::certified_log(alice.store.as_ref(), &alice.id()).unwrap());
    let state = fold(all, &VerifyAll);
    state.check_conservation().unwrap();
    assert!(state.inconsistencies().is_empty());
    let report = scrip_ledger::audit(
        &alice.id(),
        &certified::certified_log(alice.store.as_ref(), &alice.id()).unwrap(),
    );
    assert!(report.is_sound(), "{:?}", report.verdict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_breaking_entries_are_refused_and_free_the_slot() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, mut alice, eur) = issuer_and_alice(&cluster).await;
    // Overspend.
    let err = issuer.pay(&alice, &eur, 100_001).await.unwrap_err();
    assert!(refused_by_rule(&err) == Some("overspend"), "{err}");
    // The slot is free: the next entry takes it.
    let order = issuer.pay(&alice, &eur, 10).await.unwrap();
    assert_eq!(order.entry.seq(), Seq::new(3));
    // Double accept.
    alice.accept(&issuer, order.entry.seq()).await.unwrap();
    let err = alice.accept(&issuer, order.entry.seq()).await.unwrap_err();
    assert!(refused_by_rule(&err) == Some("already-resolved"), "{err}");
    // Mint by a non-issuer.
    let err = alice
        .client
        .submit(&scrip_ledger::content::WalletEntry::Mint(
            scrip_ledger::content::Mint {
                currency: eur,
                amount: scrip_ledger::Amount::from_minor(5),
            },
        ))
        .await
        .unwrap_err();
    assert!(refused_by_rule(&err) == Some("mint-by-non-issuer"), "{err}");
    // Reclaim without a rejection (citing the accept).
    let err = issuer
        .reclaim(&order, &alice, Seq::new(2))
        .await
        .unwrap_err();
    assert!(
        refused_by_rule(&err) == Some("reclaim-without-rejection"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notary_down_is_tolerated_two_is_not() {
    let mut cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    cluster.stop(3).await;
    issuer.pay(&alice, &eur, 1).await.unwrap();
    cluster.stop(2).await;
    let err = issuer.pay(&alice, &eur, 1).await.unwrap_err();
    // Two notaries refuse connections: a quorum cannot be had, and the client says so at once
    // (whether or not the two live votes came first).
    match &err {
        Error::NoQuorum {
            votes,
            needed: 3,
            detail,
        } if *votes <= 2 => assert!(
            detail.contains("2 of 4 notaries cannot be reached"),
            "{detail}"
        ),
        other => panic!("expected no quorum, got {other}"),
    }
    // The entry stays pending; when a notary returns, the same bytes get certified.
    let addresses = cluster.addresses.clone();
    cluster.start_one(2, &addresses[2]).await;
    let resumed = issuer.client.resume().await.unwrap().unwrap();
    let resumed = resumed.certified().expect("finished, not dropped");
    assert_eq!(resumed.entry.seq(), Seq::new(4));
    assert_eq!(issuer.balance(&eur).await, 99_998);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_notary_gets_the_prefix_and_refuses_an_overspend() {
    let mut cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    // Notary 3 is away while the issuer spends almost everything.
    cluster.stop(3).await;
    issuer.pay(&alice, &eur, 99_000).await.unwrap();
    let addresses = cluster.addresses.clone();
    cluster.start_one(3, &addresses[3]).await;
    // Notary 3 lags: asked directly for an overspend after the prefix, it must refuse.
    let entry = {
        let head = issuer.store.head(&issuer.id()).unwrap();
        let payload = Wallet::order_content(alice.id(), &eur, 5_000)
            .to_payload()
            .unwrap();
        scrip_feed::Entry::create(
            &common::key(1),
            head,
            scrip_feed::Timestamp::default(),
            payload,
        )
        .unwrap()
    };
    let notary = cluster.notaries[3].as_ref().unwrap();
    let ask = |prefix| {
        scrip_notary::wire::Request::Propose(scrip_notary::wire::Proposal {
            entry: scrip_feed::EntryBytes::of(&entry),
            prefix,
        })
    };
    let first = notary.ask(ask(vec![])).await.unwrap();
    let scrip_notary::wire::Response::Refusal(Refusal::NeedPrefix { from }) = first else {
        panic!("{first:?}");
    };
    let log = certified::log(issuer.store.as_ref(), &issuer.id(), from, 64).unwrap();
    let prefix = log
        .iter()
        .map(|c| certified::to_bytes(c).unwrap())
        .collect();
    let answer = notary.ask(ask(prefix)).await.unwrap();
    assert!(
        matches!(&answer, scrip_notary::wire::Response::Refusal(Refusal::Rules { code, .. }) if code == "overspend"),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_wallet_fetches_its_certified_head_before_proposing() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    for _ in 0..3 {
        issuer.pay(&alice, &eur, 1).await.unwrap();
    }
    // A second device with an old backup: only the genesis.
    let old: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let genesis = certified::certified_log(issuer.store.as_ref(), &issuer.id()).unwrap();
    certified::store_certified(old.as_ref(), &genesis[..1]).unwrap();
    let mut restored = wallet_with(1, cluster.addrs(), old, tempfile::tempdir().unwrap());
    // Its next entry must not reuse slot 2: it first fetches up to #5, then proposes #6.
    let next = restored.pay(&alice, &eur, 1).await.unwrap();
    assert_eq!(next.entry.seq(), Seq::new(6));
    assert_eq!(restored.balance(&eur).await, 100_000 - 4);
    let state = fold(
        certified::certified_log(restored.store.as_ref(), &issuer.id()).unwrap(),
        &TrustSignatures,
    );
    assert_eq!(state.wallet(&issuer.id()).unwrap().next_seq, 7);
}

/// `certificate` with its first vote's signature broken: what a byzantine notary answering
/// first would give a wallet client, which does not check fate votes before citing them.
fn with_a_broken_vote(mut certificate: FateCertificate) -> FateCertificate {
    let mut bytes = *certificate.votes[0].signature.as_bytes();
    bytes[7] ^= 0x10;
    certificate.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
    certificate
}

/// An order of 700 from `issuer` to `alice`, and alice's accept of it citing its claim with
/// one vote broken ([`with_a_broken_vote`]).
async fn an_accept_citing_a_broken_claim(
    issuer: &mut Wallet,
    alice: &Wallet,
    eur: &Currency,
) -> (scrip_ledger::CertifiedEntry, WalletEntry) {
    let order = issuer.pay(alice, eur, 700).await.unwrap();
    let citation = alice.cite(issuer, order.entry.seq());
    let claim = alice
        .client
        .fate(&citation, Fate::Claimed, None)
        .await
        .unwrap();
    let content = WalletEntry::Accept(Accept {
        order: citation,
        preimage: None,
        claim: Some(with_a_broken_vote(claim)),
    });
    (order, content)
}

/// Every vote of the fate certificate `entry` cites verifies (`notary.md` §5).
fn cites_only_good_fate_votes(entry: &scrip_ledger::CertifiedEntry, order: FateSubject) {
    let cited = match WalletEntry::from_payload(entry.entry.payload().unwrap()).unwrap() {
        WalletEntry::Accept(accept) => accept.claim.unwrap(),
        WalletEntry::Cancel(cancel) => cancel.void,
        other => panic!("not an accept or a cancel: {other:?}"),
    };
    let subject = FateSubject {
        fate: cited.fate,
        ..order
    };
    assert!(cited.votes.len() >= 3);
    scrip_ledger::fate::verify_fate_votes(&cited.votes, &subject).unwrap();
}

/// A wallet client cites fate votes without checking them; the notaries of its next entry check
/// them. An accept (and a cancel) citing a vote that does not verify is refused by them
/// (`invalid-fate`), which frees the slot; the client then checks the votes, gathers the fate
/// again counting only votes that verify, and gets the entry certified citing that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_citing_a_bad_fate_vote_is_refused_then_gathered_again_and_certified() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, mut alice, eur) = issuer_and_alice(&cluster).await;

    let (order, content) = an_accept_citing_a_broken_claim(&mut issuer, &alice, &eur).await;
    // Had the notaries certified it as it is, the accept would cite the broken vote.
    let accepted = alice.client.submit(&content).await.unwrap();
    let subject = FateSubject {
        wallet: issuer.id(),
        order: order.entry.id(),
        fate: Fate::Claimed,
    };
    cites_only_good_fate_votes(&accepted, subject);
    assert_eq!(alice.balance(&eur).await, 700);

    let order = issuer.pay(&alice, &eur, 300).await.unwrap();
    let own = certified::citation(issuer.store.as_ref(), &issuer.id(), order.entry.seq()).unwrap();
    let void = issuer
        .client
        .fate(&own, Fate::Cancelled, None)
        .await
        .unwrap();
    let cancelled = issuer
        .client
        .submit(&WalletEntry::Cancel(Cancel {
            order: OrderRef {
                seq: order.entry.seq(),
                id: order.entry.id(),
            },
            void: with_a_broken_vote(void),
        }))
        .await
        .unwrap();
    cites_only_good_fate_votes(
        &cancelled,
        FateSubject {
            wallet: issuer.id(),
            order: order.entry.id(),
            fate: Fate::Cancelled,
        },
    );
    assert_eq!(issuer.balance(&eur).await, 100_000 - 700);
}

/// The same repair when the entry citing a bad fate vote was left pending by an earlier
/// process (signed and saved, then no quorum before it ended): the next one's `resume` gets it
/// refused (`invalid-fate`), gathers the fate again and certifies the accept re-signed — it
/// is not dropped, and the user does not have to accept again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_entry_citing_a_bad_fate_vote_is_repaired_on_resume_not_dropped() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    let (order, content) = an_accept_citing_a_broken_claim(&mut issuer, &alice, &eur).await;
    // What an earlier process left: the accept signed and saved, not certified.
    let head = alice.store.head(&alice.id()).unwrap();
    let pending = Entry::create(
        &common::key(2),
        head,
        scrip_feed::Timestamp::now(),
        content.to_payload().unwrap(),
    )
    .unwrap();
    let path = alice.dir.path().join("pending");
    PendingFile::new(&path).save(&pending).unwrap();
    let mut restarted = scrip_notary::WalletClient::new(
        common::key(2),
        Arc::clone(&alice.store),
        PendingFile::new(&path),
        cluster.addrs(),
        scrip_replicate::transport::Tcp,
        common::client_config(),
    )
    .unwrap();

    let earlier = restarted.prepare().await.unwrap();
    let Some(scrip_notary::client::Earlier::Finished(accepted)) = earlier else {
        panic!("the pending accept was not finished: {earlier:?}");
    };
    assert_eq!(accepted.entry.seq(), pending.seq());
    assert_ne!(accepted.entry.id(), pending.id(), "signed anew");
    cites_only_good_fate_votes(
        &accepted,
        FateSubject {
            wallet: issuer.id(),
            order: order.entry.id(),
            fate: Fate::Claimed,
        },
    );
    assert_eq!(PendingFile::new(&path).load().unwrap(), None);
    assert_eq!(alice.balance(&eur).await, 700);
}

/// Entries proposed to a notary, by wallet and seq: a slot proposed twice with different
/// bytes is an entry refused and signed anew.
type Proposed =
    Arc<std::sync::Mutex<BTreeMap<(scrip_feed::FeedId, u64), BTreeSet<scrip_feed::EntryId>>>>;

/// A faulty notary: in front of `real` (an honest notary service with key `key`), it answers
/// every fate request at once with a vote under its name that does not verify, forwards every
/// other request to `real`, and notes the entries proposed to it. Returns its address.
async fn a_notary_lying_about_fates(
    real: scrip_notary::NotaryHandle,
    key: Arc<scrip_feed::Keypair>,
    proposed: Proposed,
) -> String {
    use scrip_notary::wire::{self, Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let identity =
        Arc::new(scrip_replicate::transport::LocalIdentity::new(Arc::clone(&key)).unwrap());
    let real = Arc::new(real);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (identity, real, key, proposed) = (
                Arc::clone(&identity),
                Arc::clone(&real),
                Arc::clone(&key),
                Arc::clone(&proposed),
            );
            tokio::spawn(async move {
                let transport = common::transport();
                let Ok(mut stream) =
                    scrip_replicate::transport::accept(tcp, &identity, &transport).await
                else {
                    return;
                };
                while let Ok(Some(bytes)) = stream.recv().await {
                    let request: Request = wire::decode(&bytes).unwrap();
                    let response = match request {
                        Request::Fate(_) => Response::Vote(scrip_ledger::Vote {
                            notary: key.id(),
                            signature: scrip_feed::Signature::from_bytes([7; 64]),
                        }),
                        Request::Propose(ref proposal) => {
                            let entry = proposal.entry.decode().unwrap();
                            proposed
                                .lock()
                                .unwrap()
                                .entry((entry.author(), entry.seq().get()))
                                .or_default()
                                .insert(entry.id());
                            real.ask(request).await.unwrap()
                        }
                        other => real.ask(other).await.unwrap(),
                    };
                    if stream
                        .send(&wire::encode(&response).unwrap())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// A faulty notary whose fate votes never verify costs its wallets one refused proposal, not
/// one per accept: the client remembers it after the first refusal (`invalid-fate`) and checks
/// its fate votes before counting them from then on. With n = 4 and q = 3 the three honest
/// notaries carry every fate and every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_that_sent_a_bad_fate_vote_is_checked_from_then_on() {
    let mut cluster = Cluster::start(4, 100).await;
    let proposed: Proposed = Arc::default();
    let real = cluster.notaries[3].take().unwrap();
    cluster.addresses[3] =
        a_notary_lying_about_fates(real, Arc::clone(&cluster.keys[3]), Arc::clone(&proposed)).await;
    let (mut issuer, mut alice, eur) = issuer_and_alice(&cluster).await;
    let accepts: usize = 5;
    for amount in 10..10 + accepts as u64 {
        let order = issuer.pay(&alice, &eur, amount).await.unwrap();
        alice.accept(&issuer, order.entry.seq()).await.unwrap();
    }
    assert_eq!(
        alice.balance(&eur).await,
        (10..10 + accepts as u64).sum::<u64>()
    );
    let proposed = proposed.lock().unwrap();
    let accepted_slots: Vec<_> = proposed
        .iter()
        .filter(|((wallet, seq), _)| *wallet == alice.id() && *seq > 1)
        .collect();
    assert_eq!(accepted_slots.len(), accepts, "{proposed:?}");
    let signed_again = accepted_slots
        .iter()
        .filter(|(_, entries)| entries.len() > 1)
        .count();
    assert!(
        signed_again <= 1,
        "{signed_again} of {accepts} accepts were refused for the liar's vote: {proposed:?}"
    );
}

/// A signature check that refuses everything: what reaches it was not remembered.
struct NothingVerifies;

impl scrip_ledger::verify::SignatureCheck for NothingVerifies {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        Err(scrip_feed::Error::BadSignature {
            author: entry.author(),
            seq: entry.seq(),
        })
    }
    fn votes(
        &self,
        _: &scrip_ledger::Certificate,
        _: &scrip_ledger::VoteSubject,
    ) -> Result<(), scrip_ledger::CertificateError> {
        Err(scrip_ledger::CertificateError::BadSignature {
            notary: "any".into(),
        })
    }
}

/// A wallet client remembers the entries it got certified (it signed each and checked the q
/// votes as it counted them): citing its own order for a cancel or a refund checks nothing
/// again — and an order it did not certify itself is not taken for remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_remembers_the_entries_it_got_certified() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    let order = issuer.pay(&alice, &eur, 5).await.unwrap();
    let own = certified::citation(issuer.store.as_ref(), &issuer.id(), order.entry.seq()).unwrap();
    let remembered = |seen: &std::sync::Mutex<scrip_ledger::verify::Seen>| {
        let seen = seen.lock().unwrap();
        let check = scrip_ledger::verify::Remembered {
            seen: &seen,
            inner: &NothingVerifies,
        };
        scrip_ledger::verify::verify_citation(&own, &check).is_ok()
    };
    assert!(remembered(issuer.client.seen()));
    assert!(!remembered(alice.client.seen()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_group_accept_needs_enough_overlap() {
    // Sender's notaries 100..106, receivers' 102..108 (4 shared: accepted) and 103..109 (3).
    let big = Cluster::start(9, 100).await;
    let addrs = big.addrs();
    let mut sender = wallet(1, addrs[0..6].to_vec());
    let mut ok = wallet(2, addrs[2..8].to_vec());
    let mut short = wallet(3, addrs[3..9].to_vec());
    sender.client.create().await.unwrap();
    ok.client.create().await.unwrap();
    short.client.create().await.unwrap();
    let eur = Currency::new(sender.id(), "EUR", 2).unwrap();
    sender.mint(&eur, 100).await;
    let to_ok = sender.pay(&ok, &eur, 10).await.unwrap();
    let to_short = sender.pay(&short, &eur, 10).await.unwrap();
    ok.accept(&sender, to_ok.entry.seq()).await.unwrap();
    let err = short
        .accept(&sender, to_short.entry.seq())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("overlap in 3 notaries, 4 are needed"),
        "{message}"
    );
    assert!(
        message.contains("sender set") && message.contains("receiver set"),
        "{message}"
    );
}

/// What `notary` says of `wallet`.
async fn slot_info(
    notary: &scrip_notary::NotaryHandle,
    wallet: scrip_feed::FeedId,
) -> scrip_notary::wire::SlotInfo {
    let info = notary
        .ask(scrip_notary::wire::Request::SlotQuery { wallet })
        .await
        .unwrap();
    let scrip_notary::wire::Response::SlotInfo(info) = info else {
        panic!("{info:?}");
    };
    info
}

/// How a [`lagging_proxy`] holds back the server's answers.
#[derive(Clone, Copy)]
enum Lag {
    /// The first connection's answers start `delay` late.
    FirstConnection(std::time::Duration),
    /// Every chunk of every answer is held back `delay`.
    EveryAnswer(std::time::Duration),
}

/// A TCP proxy to `target` that holds back the server's answers as `lag` says; returns its
/// address and the count of connections made through it.
async fn lagging_proxy(target: String, lag: Lag) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            let target = target.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(&target).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                });
                if let Lag::FirstConnection(delay) = lag
                    && first
                {
                    tokio::time::sleep(delay).await;
                }
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    if let Lag::EveryAnswer(delay) = lag {
                        tokio::time::sleep(delay).await;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    (address, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_notaries_get_the_same_bytes_again_and_the_slot_never_locks() {
    let cluster = Cluster::start(4, 100).await;
    let mut addrs = cluster.addrs();
    // Notaries 2 and 3 answer late on their first connection: the client times out and
    // retries on a new one. A quorum needs one of them.
    for slow in [2, 3] {
        addrs[slow].address = lagging_proxy(
            addrs[slow].address.clone(),
            Lag::FirstConnection(std::time::Duration::from_secs(2)),
        )
        .await
        .0;
    }
    let mut config = common::client_config();
    config.request_timeout = std::time::Duration::from_millis(500);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let mut issuer = common::Wallet {
        client: scrip_notary::WalletClient::new(
            common::key(1),
            Arc::clone(&store),
            scrip_notary::PendingFile::new(dir.path().join("pending")),
            addrs.clone(),
            scrip_replicate::transport::Tcp,
            config,
        )
        .unwrap(),
        store,
        dir,
    };
    // Notaries 0 and 1 cannot make a quorum alone: the genesis needs a retried vote.
    let _ = &cluster;
    issuer.client.create().await.unwrap();
    let eur = Currency::new(issuer.id(), "EUR", 2).unwrap();
    issuer.mint(&eur, 100).await;
    let mut alice = wallet(2, cluster.addrs());
    alice.client.create().await.unwrap();
    for _ in 0..3 {
        issuer.pay(&alice, &eur, 1).await.unwrap();
    }
    assert_eq!(issuer.balance(&eur).await, 97);
    // Every notary voted at most once per slot (a retry got the same vote, not a new one).
    for handle in cluster.notaries.iter().flatten() {
        let info = slot_info(handle, issuer.id()).await;
        assert!(info.voted.is_none_or(|(seq, _)| seq <= 5));
    }
}

/// The client finishes at a quorum without waiting for the slowest notary, but its exchange with
/// that notary is finished, not cut: the notary sees every proposal (it stays current instead of
/// falling behind) and one connection serves them all (no new Noise handshake per proposal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slowest_notary_sees_every_proposal_on_one_connection() {
    use std::sync::atomic::Ordering;
    let cluster = Cluster::start(4, 110).await;
    let mut addrs = cluster.addrs();
    let delay = std::time::Duration::from_millis(100);
    let (address, connections) =
        lagging_proxy(addrs[3].address.clone(), Lag::EveryAnswer(delay)).await;
    addrs[3].address = address;
    let mut issuer = common::wallet(1, addrs);
    issuer.client.create().await.unwrap();
    let eur = Currency::new(issuer.id(), "EUR", 2).unwrap();
    let mut last = None;
    for _ in 0..6 {
        last = Some(issuer.mint(&eur, 1).await);
        // Each proposal finished at the quorum, before the slow notary's answer came back.
        // Leave its exchange time to finish before the next one.
        tokio::time::sleep(delay * 3).await;
    }
    let last = last.unwrap().entry;
    let Some(handle) = cluster.notaries[3].as_ref() else {
        panic!("notary 3 is running");
    };
    let info = slot_info(handle, issuer.id()).await;
    assert_eq!(info.voted, Some((last.seq().get(), last.id())));
    assert_eq!(info.certified_head, last.seq().get() - 1);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_restored_while_its_notaries_are_unreachable_signs_nothing() {
    let mut cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    issuer.pay(&alice, &eur, 1).await.unwrap();
    // A copy of the wallet from before that payment, while two notaries are down.
    let old: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let log = certified::certified_log(issuer.store.as_ref(), &issuer.id()).unwrap();
    certified::store_certified(old.as_ref(), &log[..2]).unwrap();
    cluster.stop(2).await;
    cluster.stop(3).await;
    let mut restored = wallet_with(1, cluster.addrs(), old, tempfile::tempdir().unwrap());
    let err = restored.pay(&alice, &eur, 1).await.unwrap_err();
    // (At once: two notaries refuse connections, so a quorum cannot answer.)
    assert!(
        matches!(err, Error::HeadUnconfirmed { answered, needed: 3, .. } if answered <= 2),
        "{err}"
    );
    // Nothing was signed: no pending entry, and the log is as it was.
    assert_eq!(restored.client.pending().await.unwrap(), None);
    assert_eq!(restored.client.log().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_stuck_with_an_entry_for_a_taken_slot_recovers_on_its_own() {
    let cluster = Cluster::start(4, 100).await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    let paid = issuer.pay(&alice, &eur, 1).await.unwrap();
    // What an older version left on a restored copy: the log before that payment, and a
    // different entry for the payment's slot in its pending file.
    let old: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let log = certified::certified_log(issuer.store.as_ref(), &issuer.id()).unwrap();
    certified::store_certified(old.as_ref(), &log[..2]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stale = Entry::create(
        &common::key(1),
        Some(log[1].entry.head()),
        scrip_feed::Timestamp::from_millis(7),
        common::Wallet::order_content(alice.id(), &eur, 2)
            .to_payload()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stale.seq(), paid.entry.seq());
    PendingFile::new(dir.path().join("pending"))
        .save(&stale)
        .unwrap();
    let mut restored = wallet_with(1, cluster.addrs(), old, dir);
    // The next command fetches the certified head, drops the stale entry with its reason and
    // goes on.
    let earlier = restored.client.prepare().await.unwrap();
    match earlier {
        Some(scrip_notary::client::Earlier::Dropped { entry, reason }) => {
            assert_eq!(entry.id(), stale.id());
            assert!(reason.contains("another certified entry"), "{reason}");
        }
        other => panic!("expected the stale entry dropped, got {other:?}"),
    }
    let next = restored.pay(&alice, &eur, 1).await.unwrap();
    assert_eq!(next.entry.seq(), paid.entry.seq().next().unwrap());
    assert_eq!(restored.balance(&eur).await, 100_000 - 2);
}

/// Opens `n` TCP connections to `target` from source address `source` and sends nothing.
async fn silent_sockets(target: &str, source: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    scrip_replicate::bench::silent_sockets(target.parse().unwrap(), source, n).await
}

/// Silent sockets and idle authenticated clients on every notary's port: a payment still gets
/// its quorum (before, 600 silent sockets made payments fail with "no quorum").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_the_notary_ports_does_not_stop_payments() {
    use scrip_replicate::transport::{self, LocalIdentity};
    let cluster = Cluster::start_with(
        4,
        100,
        scrip_notary::NotaryConfig {
            transport: common::transport(),
            max_clients: 16,
            idle_before_eviction: std::time::Duration::from_millis(300),
            ..scrip_notary::NotaryConfig::default()
        },
    )
    .await;
    let (mut issuer, alice, eur) = issuer_and_alice(&cluster).await;
    let mut held = Vec::new();
    let mut sessions = Vec::new();
    for (i, address) in cluster.addresses.iter().enumerate() {
        held.push(silent_sockets(address, "127.0.0.2", 500).await);
        // 25 idle clients (distinct identities) for 16 slots.
        let target: std::net::SocketAddr = address.parse().unwrap();
        let mut idle = Vec::new();
        for c in 0..25u8 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
            let tcp = socket.connect(target).await.unwrap();
            let identity = LocalIdentity::new(common::key(200 + c)).unwrap();
            if let Ok(session) = transport::connect(
                tcp,
                &identity,
                Some(cluster.keys[i].id()),
                &common::transport(),
            )
            .await
            {
                idle.push(session);
            }
        }
        assert!(idle.len() >= 16);
        sessions.push(idle);
    }
    // Once the idle clients have been idle long enough, the wallet (whose own idle connections
    // may have been evicted too) gets slots back.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    issuer.pay(&alice, &eur, 1).await.unwrap();
    drop((held, sessions));
}
