//! Adversarial cases against the notary's decision (the pure state machine, with real signed
//! votes): an equivocating client, byzantine notaries (with a negative control that shows the
//! check can fail), malformed certificates in a proposal.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::certified_wallet::{CertifiedWallet, certify};
use common::{InterceptVotes, key};
use scrip_feed::{Entry, Keypair};
use scrip_ledger::certificate::{ROUND_ZERO, VOTE_DOMAIN};
use scrip_ledger::verify::subject_of;
use scrip_ledger::{Certificate, CertifiedEntry, NotarySet, VerifyAll, Vote, fold};
use scrip_notary::{Decision, NotaryState, Refusal};

/// A wallet with `n` notaries: its genesis and a mint, certified by all of them.
type Setup = CertifiedWallet;

fn setup(n: u8) -> Setup {
    CertifiedWallet::new(key(1), (0..n).map(|i| key(100 + i)).collect())
}

/// An honest notary of the set.
trait Honest {
    fn honest(&self, i: usize) -> NotaryState;
}

impl Honest for Setup {
    fn honest(&self, i: usize) -> NotaryState {
        let mut state = NotaryState::new(self.notaries[i].id());
        for entry in &self.log {
            state.learn(entry, &VerifyAll).unwrap();
        }
        state
    }
}

fn vote_of(notary: &Keypair, decision: &Decision) -> Option<Vote> {
    match decision {
        Decision::Vote(subject) | Decision::Again(subject) => Some(Vote::sign(notary, subject)),
        Decision::Refuse { .. } => None,
    }
}

/// Checks a certificate as any peer would.
fn certifies(set: &NotarySet, entry: &Entry, votes: Vec<Vote>) -> bool {
    let certificate = Certificate::from_votes(entry.id(), ROUND_ZERO, votes);
    scrip_ledger::verify::certify(&certificate, set, entry, &VerifyAll).is_ok()
}

#[test]
fn an_equivocating_client_gets_no_certificate_and_locks_the_slot() {
    let setup = setup(4);
    let (a, b) = (setup.order(10), setup.order(20));
    let mut notaries: Vec<NotaryState> = (0..4).map(|i| setup.honest(i)).collect();
    // A to notaries 0 and 1, B to 2 and 3 (disjoint halves).
    let mut votes_a = Vec::new();
    let mut votes_b = Vec::new();
    for (i, state) in notaries.iter_mut().enumerate() {
        let (entry, bucket) = if i < 2 {
            (&a, &mut votes_a)
        } else {
            (&b, &mut votes_b)
        };
        bucket.extend(vote_of(&setup.notaries[i], &state.decide(entry, &[])));
    }
    // Then each half is asked for the other entry: locked, with the existing vote attached.
    for (i, state) in notaries.iter_mut().enumerate() {
        let other = if i < 2 { &b } else { &a };
        match state.decide(other, &[]) {
            Decision::Refuse {
                refusal: Refusal::Locked { seq: 3, voted, .. },
                existing: Some(existing),
            } => assert_eq!(existing.entry, voted),
            other => panic!("notary {i}: {other:?}"),
        }
    }
    let set = NotarySet::new(&setup.notaries.iter().map(|k| k.id()).collect::<Vec<_>>()).unwrap();
    assert_eq!((votes_a.len(), votes_b.len()), (2, 2));
    assert!(!certifies(&set, &a, votes_a.clone()));
    assert!(!certifies(&set, &b, votes_b.clone()));
    // Neither folds: the wallet's log stops at the mint; the slot stays locked.
    let mut log = setup.log.clone();
    log.push(CertifiedEntry {
        certificate: Some(Certificate::from_votes(a.id(), ROUND_ZERO, votes_a)),
        entry: a,
    });
    let state = fold(log, &VerifyAll);
    assert_eq!(
        state
            .wallet(&setup.id())
            .unwrap()
            .balance(&setup.currency)
            .minor(),
        1_000
    );
}

/// Runs an equivocation against `n` notaries of which `byzantine` vote for anything, for every
/// split of the honest ones between the two entries; returns whether two certificates for one
/// slot ever came out.
fn two_certificates_possible(n: u8, byzantine: usize) -> bool {
    let setup = setup(n);
    let (a, b) = (setup.order(10), setup.order(20));
    let set = NotarySet::new(&setup.notaries.iter().map(|k| k.id()).collect::<Vec<_>>()).unwrap();
    let honest = usize::from(n) - byzantine;
    for split in 0..(1u32 << honest) {
        let mut votes_a = Vec::new();
        let mut votes_b = Vec::new();
        for i in 0..usize::from(n) {
            let notary = &setup.notaries[i];
            if i >= honest {
                // Byzantine: signs both.
                votes_a.push(Vote::sign(notary, &subject_of(&a)));
                votes_b.push(Vote::sign(notary, &subject_of(&b)));
                continue;
            }
            // Honest: asked for its side of the split first, then for the other entry.
            let mut state = setup.honest(i);
            let (first, second) = if split & (1 << i) == 0 {
                (&a, &b)
            } else {
                (&b, &a)
            };
            for entry in [first, second] {
                if let Some(vote) = vote_of(notary, &state.decide(entry, &[])) {
                    if entry.id() == a.id() {
                        votes_a.push(vote);
                    } else {
                        votes_b.push(vote);
                    }
                }
            }
        }
        if certifies(&set, &a, votes_a) && certifies(&set, &b, votes_b) {
            return true;
        }
    }
    false
}

#[test]
fn f_byzantine_notaries_cannot_make_two_certificates_for_one_slot() {
    // n = 4 (f = 1) and n = 7 (f = 2).
    assert!(!two_certificates_possible(4, 1));
    assert!(!two_certificates_possible(7, 2));
}

#[test]
fn negative_control_f_plus_one_byzantine_notaries_can() {
    // The check above is not vacuous: with one more faulty notary it finds the violation.
    assert!(two_certificates_possible(4, 2));
    assert!(two_certificates_possible(7, 3));
}

#[test]
fn an_honest_notary_repeats_its_vote_and_refuses_after_certification() {
    let setup = setup(4);
    let a = setup.order(10);
    let mut state = setup.honest(0);
    let first = state.decide(&a, &[]);
    let again = state.decide(&a, &[]);
    assert!(matches!(first, Decision::Vote(_)));
    assert!(matches!(again, Decision::Again(_)));
    assert_eq!(
        vote_of(&setup.notaries[0], &first),
        vote_of(&setup.notaries[0], &again)
    );
}

#[test]
fn a_notary_asks_for_the_missing_prefix_and_never_votes_ahead() {
    let setup = setup(4);
    let mut state = NotaryState::new(setup.notaries[0].id());
    let a = setup.order(10);
    assert!(matches!(
        state.decide(&a, &[]),
        Decision::Refuse {
            refusal: Refusal::NeedPrefix { from: 1 },
            ..
        }
    ));
    assert!(matches!(state.decide(&a, &setup.log), Decision::Vote(_)));
}

#[test]
fn the_amnesia_guard_refuses_until_caught_up() {
    let setup = setup(4);
    let mut state = NotaryState::new(setup.notaries[0].id());
    state.learn(&setup.log[0], &VerifyAll).unwrap();
    // It hears (by replication) that #2 is certified, without holding it: it may have lost
    // data; it refuses to vote for the wallet until it has #2.
    state.heard_of(setup.id(), 2);
    let a = setup.order(10);
    assert!(matches!(
        state.decide(&a, &[]),
        Decision::Refuse {
            refusal: Refusal::Behind {
                have: 1,
                certified: 2
            },
            ..
        }
    ));
    state.learn(&setup.log[1], &VerifyAll).unwrap();
    assert!(matches!(state.decide(&a, &[]), Decision::Vote(_)));
}

#[test]
fn a_notary_outside_the_set_refuses() {
    let setup = setup(4);
    let mut outsider = NotaryState::new(key(250).id());
    for entry in &setup.log {
        outsider.learn(entry, &VerifyAll).unwrap();
    }
    assert!(matches!(
        outsider.decide(&setup.order(10), &[]),
        Decision::Refuse {
            refusal: Refusal::NotANotary,
            ..
        }
    ));
}

/// Every malformed certificate for `certified`'s entry, by name.
fn malformed_certificates(
    setup: &Setup,
    certified: &CertifiedEntry,
) -> Vec<(&'static str, Certificate)> {
    let subject = subject_of(&certified.entry);
    let good = certified.certificate.clone().unwrap();
    let outsider = key(250);
    let signer_of = |vote: &Vote| {
        setup
            .notaries
            .iter()
            .find(|k| k.id() == vote.notary)
            .unwrap()
            .clone()
    };
    let mut cases: Vec<(&str, Certificate)> = Vec::new();
    let mut duplicate = good.clone();
    duplicate.votes[1] = duplicate.votes[0];
    cases.push(("duplicate signer", duplicate));
    let mut unknown = good.clone();
    unknown.votes[0] = Vote::sign(&outsider, &subject);
    unknown.votes.sort_by_key(|v| v.notary);
    cases.push(("outside signer", unknown));
    let mut below = good.clone();
    below.votes.truncate(2);
    cases.push(("below quorum", below));
    let mut domain = good.clone();
    let signer = signer_of(&domain.votes[0]);
    domain.votes[0].signature = signer.sign(b"scrip/entry/v1", &subject.message());
    cases.push(("wrong domain tag", domain));
    assert_ne!(VOTE_DOMAIN, b"scrip/entry/v1");
    let mut other_slot = good.clone();
    let signer = signer_of(&other_slot.votes[2]);
    let mut elsewhere = subject;
    elsewhere.seq = elsewhere.seq.next().unwrap();
    other_slot.votes[2] = Vote::sign(&signer, &elsewhere);
    cases.push(("a vote for another slot", other_slot));
    cases
}

fn assert_malformed(decision: &Decision, name: &str) {
    assert!(
        matches!(
            decision,
            Decision::Refuse {
                refusal: Refusal::Malformed { .. },
                ..
            }
        ),
        "{name}: {decision:?}"
    );
}

/// Proposals whose certified prefix carries a malformed certificate are refused, and nothing is
/// learned from them.
#[test]
fn malformed_certificates_in_a_prefix_are_refused() {
    let setup = setup(4);
    let mint = &setup.log[1];
    for (name, certificate) in malformed_certificates(&setup, mint) {
        // Knows the genesis only.
        let mut state = NotaryState::new(setup.notaries[0].id());
        state.learn(&setup.log[0], &VerifyAll).unwrap();
        let prefix = vec![CertifiedEntry {
            entry: mint.entry.clone(),
            certificate: Some(certificate),
        }];
        let decision = state.decide(&setup.order(10), &prefix);
        assert_malformed(&decision, name);
        assert_eq!(
            state.wallet(&setup.id()).unwrap().certified_head(),
            1,
            "{name}"
        );
    }
}

/// A notary learning the very entry it voted for checks only its certificate (the entry was
/// checked before the vote): every malformed certificate is still refused, and a good one is
/// learned.
#[test]
fn the_certificate_of_an_entry_a_notary_voted_for_is_still_checked() {
    let mut setup = setup(4);
    setup.extend(10);
    let order = setup.log[2].clone();
    let next = setup.order(20);
    let fresh = |setup: &Setup| {
        let mut state = NotaryState::new(setup.notaries[0].id());
        for certified in &setup.log[..2] {
            state.learn(certified, &VerifyAll).unwrap();
        }
        assert!(matches!(state.decide(&order.entry, &[]), Decision::Vote(_)));
        state
    };
    for (name, certificate) in malformed_certificates(&setup, &order) {
        let mut state = fresh(&setup);
        let prefix = vec![CertifiedEntry {
            entry: order.entry.clone(),
            certificate: Some(certificate),
        }];
        let decision = state.decide(&next, &prefix);
        assert_malformed(&decision, name);
        assert_eq!(
            state.wallet(&setup.id()).unwrap().certified_head(),
            2,
            "{name}"
        );
    }
    let mut state = fresh(&setup);
    assert!(matches!(
        state.decide(&next, std::slice::from_ref(&order)),
        Decision::Vote(_)
    ));
    assert_eq!(state.wallet(&setup.id()).unwrap().certified_head(), 3);
}

#[test]
fn non_canonical_request_bytes_are_refused() {
    use scrip_notary::wire::{self, Proposal, Request};
    let setup = setup(4);
    let a = setup.order(10);
    let request = Request::Propose(Proposal {
        entry: scrip_feed::EntryBytes::of(&a),
        prefix: vec![],
    });
    let mut bytes = wire::encode(&request).unwrap();
    assert_eq!(wire::decode::<Request>(&bytes).unwrap(), request);
    bytes.push(0);
    assert!(wire::decode::<Request>(&bytes).is_err());
    let certificate = setup.log[0].certificate.clone().unwrap();
    let mut cert_bytes = certificate.encode();
    cert_bytes.push(0);
    assert!(Certificate::decode(&cert_bytes).is_err());
}

#[tokio::test]
async fn a_vote_the_store_failed_to_record_is_never_signed() {
    use scrip_notary::wire::{Proposal, Request, Response};
    use scrip_notary::{Notary, NotaryConfig, VoteStore};
    let setup = setup(4);
    let store: Arc<dyn scrip_feed::Store> = Arc::new(scrip_feed::MemoryStore::new());
    scrip_notary::certified::store_certified(store.as_ref(), &setup.log).unwrap();
    // The disk fails for the first two records.
    let failures = std::sync::atomic::AtomicUsize::new(2);
    let votes = Arc::new(InterceptVotes {
        inner: scrip_notary::MemoryVoteStore::new(),
        record: move |inner: &scrip_notary::MemoryVoteStore, votes: &[_], hook: &_| {
            use std::sync::atomic::Ordering;
            if failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(scrip_notary::Error::Wallet("disk failure (test)".into()));
            }
            inner.record(votes, hook)
        },
    });
    let notary = Notary::spawn(
        Arc::clone(&setup.notaries[0]),
        store,
        Arc::clone(&votes) as Arc<dyn VoteStore>,
        scrip_replicate::transport::Tcp,
        NotaryConfig::default(),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    let order = setup.order(10);
    let propose = || {
        Request::Propose(Proposal {
            entry: scrip_feed::EntryBytes::of(&order),
            prefix: vec![],
        })
    };
    // The same proposal while the disk fails: refused each time, never a vote from memory.
    for _ in 0..2 {
        match notary.ask(propose()).await.unwrap() {
            Response::Refusal(Refusal::Unavailable { .. }) => {}
            other => panic!("a vote that is not durable must not be signed: {other:?}"),
        }
        assert!(votes.load().unwrap().is_empty());
    }
    // The disk is back: now the vote is recorded, then signed.
    match notary.ask(propose()).await.unwrap() {
        Response::Vote(vote) => assert!(vote.verifies(&subject_of(&order))),
        other => panic!("expected a vote, got {other:?}"),
    }
    assert_eq!(votes.load().unwrap(), vec![subject_of(&order)]);
    notary.shutdown().await;
}

#[test]
fn a_prefix_beyond_what_a_notary_holds_is_heard_of_and_the_rest_asked_for() {
    let mut setup = setup(4);
    setup.extend(10);
    setup.extend(20);
    // This notary holds only the genesis (#1); the wallet is certified up to #4.
    let mut state = NotaryState::new(setup.notaries[0].id());
    state.learn(&setup.log[0], &VerifyAll).unwrap();
    let next = setup.order(30);
    let last = setup.log[3].clone();
    match state.decide(&next, std::slice::from_ref(&last)) {
        Decision::Refuse {
            refusal:
                Refusal::Behind {
                    have: 1,
                    certified: 4,
                },
            ..
        } => {}
        other => panic!("expected Behind (have 1, certified 4), got {other:?}"),
    }
    // Sent what it lacks, it votes.
    assert!(matches!(
        state.decide(&next, &setup.log[1..]),
        Decision::Vote(_)
    ));
}

#[test]
fn a_made_up_seq_in_a_prefix_changes_nothing() {
    let mut setup = setup(4);
    setup.extend(10);
    setup.extend(20);
    let mut state = NotaryState::new(setup.notaries[0].id());
    state.learn(&setup.log[0], &VerifyAll).unwrap();
    // #4 with a certificate from outsiders: not believed, so no amnesia guard either.
    let outsiders: Vec<Arc<Keypair>> = (0..4).map(|i| key(200 + i)).collect();
    let forged = CertifiedEntry {
        entry: setup.log[3].entry.clone(),
        certificate: Some(certify(&outsiders, &setup.log[3].entry)),
    };
    let next = setup.order(30);
    assert!(matches!(
        state.decide(&next, &[forged]),
        Decision::Refuse {
            refusal: Refusal::NeedPrefix { from: 2 },
            ..
        }
    ));
    assert_eq!(state.wallet(&setup.id()).unwrap().heard, 1);
}

/// What the vote store of [`one_batch_for_one_slot`] does from its second record on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterGate {
    /// The disk fails.
    Fail,
    /// The process dies after writing (modelled by never coming back from the write).
    DieAfterWrite,
}

/// Two proposals for one slot decided in one batch — the same entry twice and a conflicting
/// one — while the batch's write fails or the process dies in it. Returns the answers that
/// left the notary (none may carry a signature before the vote is durable).
async fn one_batch_for_one_slot(after: AfterGate) -> Vec<Option<scrip_notary::wire::Response>> {
    use scrip_notary::wire::{Proposal, Request};
    use scrip_notary::{Notary, NotaryConfig, VoteStore};
    let setup = setup(4);
    let other = CertifiedWallet::new(key(3), (0..4).map(|i| key(100 + i)).collect());
    let store: Arc<dyn scrip_feed::Store> = Arc::new(scrip_feed::MemoryStore::new());
    scrip_notary::certified::store_certified(store.as_ref(), &setup.log).unwrap();
    scrip_notary::certified::store_certified(store.as_ref(), &other.log).unwrap();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    // The first record is held until released (so that the requests sent meanwhile are
    // decided together in the next batch); the next one behaves as `after` says.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let release_rx = std::sync::Mutex::new(release_rx);
    let votes = Arc::new(InterceptVotes {
        inner: scrip_notary::MemoryVoteStore::new(),
        record: move |inner: &scrip_notary::MemoryVoteStore, votes: &[_], hook: &_| {
            let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = entered_tx.lock().unwrap().send(call);
            if call == 0 {
                let _ = release_rx.lock().unwrap().recv();
                return inner.record(votes, hook);
            }
            match after {
                AfterGate::Fail => Err(scrip_notary::Error::Wallet("disk failure (test)".into())),
                AfterGate::DieAfterWrite => {
                    inner.record(votes, hook)?;
                    // Written and flushed, but the process never gets further.
                    let _ = release_rx.lock().unwrap().recv();
                    Err(scrip_notary::Error::Wallet("killed (test)".into()))
                }
            }
        },
    });
    let notary = Arc::new(
        Notary::spawn(
            Arc::clone(&setup.notaries[0]),
            store,
            Arc::clone(&votes) as Arc<dyn VoteStore>,
            scrip_replicate::transport::Tcp,
            NotaryConfig::default(),
            Arc::new(|_| {}),
        )
        .await
        .unwrap(),
    );
    let propose = |entry: &Entry| {
        Request::Propose(Proposal {
            entry: scrip_feed::EntryBytes::of(entry),
            prefix: vec![],
        })
    };
    let ask = |request: Request| {
        let notary = Arc::clone(&notary);
        tokio::spawn(async move { notary.ask(request).await.unwrap() })
    };
    let entered = Arc::new(std::sync::Mutex::new(entered));
    let wait_entered = || {
        let entered = Arc::clone(&entered);
        tokio::task::spawn_blocking(move || entered.lock().unwrap().recv().unwrap())
    };
    // Batch 1 (another wallet) is held in its write...
    let first = ask(propose(&other.order(5)));
    assert_eq!(wait_entered().await.unwrap(), 0);
    // ...while A, A again and B (same slot) queue up, so that they are decided together.
    let (a, b) = (setup.order(10), setup.order(20));
    let asks = vec![ask(propose(&a)), ask(propose(&a)), ask(propose(&b))];
    while notary.queued_jobs() < 3 {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    assert!(first.await.is_ok());
    assert_eq!(
        wait_entered().await.unwrap(),
        1,
        "the second batch is written"
    );
    let mut answers = Vec::new();
    if after == AfterGate::DieAfterWrite {
        // The batch is written and the process "dies" there: whatever left it left before.
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        for ask in asks {
            answers.push(if ask.is_finished() {
                Some(ask.await.unwrap())
            } else {
                ask.abort();
                None
            });
        }
        release.send(()).unwrap();
    } else {
        for ask in asks {
            answers.push(Some(ask.await.unwrap()));
        }
        assert!(
            votes.load().unwrap().iter().all(|v| v.wallet != setup.id()),
            "nothing of the failed batch is recorded"
        );
    }
    answers
}

#[tokio::test]
async fn no_signed_answer_leaves_a_batch_whose_vote_write_fails() {
    use scrip_notary::wire::Response;
    for answer in one_batch_for_one_slot(AfterGate::Fail).await {
        match answer {
            Some(Response::Refusal(Refusal::Unavailable { .. })) => {}
            other => panic!("a vote that is not durable must not be signed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn no_signed_answer_leaves_a_batch_before_its_votes_are_flushed() {
    let answers = one_batch_for_one_slot(AfterGate::DieAfterWrite).await;
    assert!(
        answers.iter().all(Option::is_none),
        "an answer left the notary before its vote was durable: {answers:?}"
    );
}

/// A proposal of `key`'s wallet genesis naming `notaries`, its signature broken if `broken`.
fn genesis_proposal(
    key: &Keypair,
    notaries: &[scrip_feed::FeedId],
    broken: bool,
) -> scrip_notary::wire::Request {
    let genesis = scrip_ledger::content::WalletEntry::Genesis(scrip_ledger::content::Genesis {
        notaries: notaries.to_vec(),
    })
    .to_payload()
    .unwrap();
    let entry = Entry::create(
        key,
        None,
        scrip_feed::Timestamp::from_millis(0),
        genesis.clone(),
    )
    .unwrap();
    let mut header = entry.header_bytes().to_vec();
    if broken {
        let last = header.len() - 1;
        header[last] ^= 1;
    }
    scrip_notary::wire::Request::Propose(scrip_notary::wire::Proposal {
        entry: scrip_feed::EntryBytes {
            header,
            payload: genesis,
        },
        prefix: vec![],
    })
}

/// Notary 0 of `setup` on loopback with in-memory stores, holding `setup`'s log if
/// `holding_log`, with `config`.
async fn in_memory_notary(
    setup: &Setup,
    holding_log: bool,
    config: scrip_notary::NotaryConfig,
) -> scrip_notary::NotaryHandle {
    let store: Arc<dyn scrip_feed::Store> = Arc::new(scrip_feed::MemoryStore::new());
    if holding_log {
        scrip_notary::certified::store_certified(store.as_ref(), &setup.log).unwrap();
    }
    scrip_notary::Notary::spawn(
        Arc::clone(&setup.notaries[0]),
        store,
        Arc::new(scrip_notary::MemoryVoteStore::new()),
        scrip_replicate::transport::Tcp,
        config,
        Arc::new(|_| {}),
    )
    .await
    .unwrap()
}

/// A notary's vouching for `friend` alone.
fn vouching_for(friend: scrip_feed::FeedId) -> Option<scrip_notary::Vouched> {
    Some(scrip_notary::Vouched(Arc::new(move |w| *w == friend)))
}

/// Proposals that do not verify (`SCRIP_FLOOD_PROPOSALS` of them, default 20,000; the long run
/// is 1,000,000), each by another author: every one is refused as malformed, the notary keeps
/// no state for any of them, and it still votes for a real proposal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_proposals_leave_no_state_behind() {
    // Its memory figure is of the whole process: measured in one running this test alone.
    if !scrip_feed::bench::run_alone("adversarial::bogus_proposals_leave_no_state_behind") {
        return;
    }
    use scrip_notary::NotaryConfig;
    use scrip_notary::wire::{Proposal, Request, Response};
    let count = scrip_feed::bench::env_usize("SCRIP_FLOOD_PROPOSALS", 20_000);
    let setup = setup(4);
    let notary = Arc::new(in_memory_notary(&setup, true, NotaryConfig::default()).await);
    let known = notary.wallets().await.len();
    let before = scrip_feed::bench::resident_bytes();
    // A genesis naming this notary, by a new author each time, its signature broken.
    let notaries: Vec<_> = setup.notaries.iter().map(|k| k.id()).collect();
    let bogus = |i: usize| {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        seed[8] = 0xb0;
        genesis_proposal(&scrip_feed::Keypair::from_seed(&seed), &notaries, true)
    };
    for chunk in (0..count).collect::<Vec<_>>().chunks(256) {
        let asks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (notary, request) = (Arc::clone(&notary), bogus(i));
                tokio::spawn(async move { notary.ask(request).await.unwrap() })
            })
            .collect();
        for ask in asks {
            match ask.await.unwrap() {
                Response::Refusal(Refusal::Malformed { .. }) => {}
                other => panic!("a bogus proposal got {other:?}"),
            }
        }
    }
    assert_eq!(
        notary.wallets().await.len(),
        known,
        "state for bogus authors"
    );
    let grown = scrip_feed::bench::resident_bytes().saturating_sub(before);
    eprintln!(
        "proposal flood: {count} bogus proposals, resident memory grew by {} KiB",
        grown / 1024
    );
    assert!(
        grown < 16 << 20,
        "{count} bogus proposals grew the notary by {grown} bytes"
    );
    // A real proposal still gets its vote.
    let order = setup.order(10);
    let real = Request::Propose(Proposal {
        entry: scrip_feed::EntryBytes::of(&order),
        prefix: vec![],
    });
    assert!(matches!(notary.ask(real).await.unwrap(), Response::Vote(_)));
}

/// A notary bounded to 3 new wallets an hour votes for the geneses of 3 new keys, then answers
/// `Unavailable` (not definitive: the entry stays pending) to the next ones, a bogus one
/// included, before checking anything and without keeping state for them; a wallet it already
/// serves, or one it vouches for, is not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_takes_on_new_wallets_within_its_bound() {
    use scrip_notary::NotaryConfig;
    use scrip_notary::wire::{Proposal, Request, Response};
    let setup = setup(4);
    let friend = Keypair::from_seed(&[206; 32]).id();
    let config = NotaryConfig {
        new_wallets_per_hour: Some(3),
        vouched: vouching_for(friend),
        ..NotaryConfig::default()
    };
    let notary = in_memory_notary(&setup, true, config).await;
    let known = notary.wallets().await.len();
    let notaries: Vec<_> = setup.notaries.iter().map(|k| k.id()).collect();
    let proposal = |seed: u8, broken: bool| {
        genesis_proposal(&Keypair::from_seed(&[seed; 32]), &notaries, broken)
    };
    for seed in 200..203 {
        let answer = notary.ask(proposal(seed, false)).await.unwrap();
        assert!(
            matches!(answer, Response::Vote(_)),
            "new wallet {seed}: {answer:?}"
        );
    }
    for (seed, broken) in [(203, false), (204, false), (205, true)] {
        match notary.ask(proposal(seed, broken)).await.unwrap() {
            Response::Refusal(refusal @ Refusal::Unavailable { .. }) => {
                assert!(!refusal.is_definitive());
                assert!(
                    refusal
                        .to_string()
                        .contains("at most 3 new wallets an hour")
                );
            }
            other => panic!("wallet {seed} over the bound got {other:?}"),
        }
    }
    assert_eq!(notary.wallets().await.len(), known + 3);
    // A wallet it vouches for is taken on beyond the bound.
    assert!(matches!(
        notary.ask(proposal(206, false)).await.unwrap(),
        Response::Vote(_)
    ));
    // A wallet this notary serves goes on as before.
    let order = setup.order(10);
    let real = Request::Propose(Proposal {
        entry: scrip_feed::EntryBytes::of(&order),
        prefix: vec![],
    });
    assert!(matches!(notary.ask(real).await.unwrap(), Response::Vote(_)));
    // A genesis it voted for is answered again, not refused (the wallet is known now).
    assert!(matches!(
        notary.ask(proposal(200, false)).await.unwrap(),
        Response::Vote(_)
    ));
    notary.shutdown().await;
}

/// Past the bound on new wallets, a stranger's proposal or fate request costs no signature
/// check: it is refused before its batch is verified ahead. (Counted in a process of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_bound_a_new_wallet_costs_no_signature_check() {
    use scrip_notary::NotaryConfig;
    use scrip_notary::wire::Response;
    if !scrip_feed::bench::run_alone(
        "adversarial::over_the_bound_a_new_wallet_costs_no_signature_check",
    ) {
        return;
    }
    let setup = setup(4);
    let config = NotaryConfig {
        new_wallets_per_hour: Some(1),
        ..NotaryConfig::default()
    };
    let notary = in_memory_notary(&setup, false, config).await;
    let notaries: Vec<_> = setup.notaries.iter().map(|k| k.id()).collect();
    let first = genesis_proposal(&Keypair::from_seed(&[210; 32]), &notaries, false);
    assert!(matches!(
        notary.ask(first).await.unwrap(),
        Response::Vote(_)
    ));
    let before = scrip_feed::identity::signature_checks();
    for seed in 211..231 {
        let answer = notary
            .ask(genesis_proposal(
                &Keypair::from_seed(&[seed; 32]),
                &notaries,
                false,
            ))
            .await
            .unwrap();
        assert!(
            matches!(answer, Response::Refusal(Refusal::Unavailable { .. })),
            "{answer:?}"
        );
    }
    let checked = scrip_feed::identity::signature_checks() - before;
    assert_eq!(checked, 0, "signatures checked for refused new wallets");
    notary.shutdown().await;
}

/// A proposal of `wallet`'s next entry (an order) with its whole certified log as the prefix.
fn proposal_with_log(wallet: &CertifiedWallet) -> scrip_notary::wire::Request {
    scrip_notary::wire::Request::Propose(scrip_notary::wire::Proposal {
        entry: scrip_feed::EntryBytes::of(&wallet.order(1)),
        prefix: wallet
            .log
            .iter()
            .map(|c| scrip_notary::certified::to_bytes(c).unwrap())
            .collect(),
    })
}

/// A notary holding nothing yet, bounded to `per_sec` strangers' entries a second and vouching
/// for `friend`.
async fn notary_with_strangers_share(
    setup: &Setup,
    per_sec: u32,
    friend: Option<scrip_feed::FeedId>,
) -> scrip_notary::NotaryHandle {
    let config = scrip_notary::NotaryConfig {
        stranger_entries_per_sec: Some(per_sec),
        vouched: friend.and_then(vouching_for),
        ..scrip_notary::NotaryConfig::default()
    };
    in_memory_notary(setup, false, config).await
}

/// A stranger can make a wallet whose other notaries are its own keys (here: the test's) and
/// feed a notary certified entries as fast as it likes. Bounded to 1 stranger's entry a second
/// (10 at once), the notary still learns a 32-entry log shown at once and votes (the share goes
/// into debt), then answers the stranger `Unavailable` (not definitive: the entry stays pending)
/// and keeps nothing more; a wallet it vouches for is not bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_keeps_strangers_entries_within_their_share() {
    use scrip_notary::wire::Response;
    let mut stranger = setup(4);
    for _ in 0..30 {
        stranger.extend(1);
    }
    let mut friend = CertifiedWallet::new(key(3), stranger.notaries.clone());
    friend.extend(1);
    let notary = notary_with_strangers_share(&stranger, 1, Some(friend.id())).await;
    assert!(matches!(
        notary.ask(proposal_with_log(&stranger)).await.unwrap(),
        Response::Vote(_)
    ));
    assert_eq!(notary.wallets().await, vec![stranger.id()]);
    // In debt now: the stranger's next request is refused, not decided.
    stranger.extend(1);
    match notary.ask(proposal_with_log(&stranger)).await.unwrap() {
        Response::Refusal(refusal @ Refusal::Unavailable { .. }) => {
            assert!(!refusal.is_definitive());
            assert!(
                refusal
                    .to_string()
                    .contains("at most 1 entry a second for wallets it does not vouch for"),
                "{refusal}"
            );
        }
        other => panic!("a stranger over its share got {other:?}"),
    }
    // A wallet it vouches for is decided whatever the strangers did.
    assert!(matches!(
        notary.ask(proposal_with_log(&friend)).await.unwrap(),
        Response::Vote(_)
    ));
    let mut wallets = notary.wallets().await;
    wallets.sort();
    let mut expected = vec![stranger.id(), friend.id()];
    expected.sort();
    assert_eq!(wallets, expected, "the refused request left state behind");
    notary.shutdown().await;
}

/// Bogus proposals by strangers (a broken signature, by a new key each time: nothing is kept
/// for them) still cost checks: each takes one of the strangers' share, so a flood of them is
/// soon refused before any check instead of taking the notary's processor, while a wallet it
/// vouches for is decided as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_proposals_by_strangers_drain_their_share_not_the_notary() {
    use scrip_notary::wire::Response;
    let mut friend = setup(4);
    friend.extend(1);
    let notary = notary_with_strangers_share(&friend, 1, Some(friend.id())).await;
    let notaries: Vec<_> = friend.notaries.iter().map(|k| k.id()).collect();
    // Keys no test wallet or notary has (those are `key(1)`, `key(100..)`).
    let bogus = |i: u8| genesis_proposal(&Keypair::from_seed(&[150 + i; 32]), &notaries, true);
    // Ten seconds' worth at once: ten bogus proposals are decided (and refused as malformed).
    for i in 0..10 {
        let answer = notary.ask(bogus(i)).await.unwrap();
        assert!(
            matches!(answer, Response::Refusal(Refusal::Malformed { .. })),
            "{answer:?}"
        );
    }
    match notary.ask(bogus(10)).await.unwrap() {
        Response::Refusal(refusal @ Refusal::Unavailable { .. }) => assert!(
            refusal.to_string().contains("does not vouch for"),
            "{refusal}"
        ),
        other => panic!("the eleventh bogus proposal got {other:?}"),
    }
    assert!(matches!(
        notary.ask(proposal_with_log(&friend)).await.unwrap(),
        Response::Vote(_)
    ));
    notary.shutdown().await;
}

/// Over the strangers' share, a stranger's proposal costs no signature check: it is refused
/// before its batch is verified ahead. (Counted in a process of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_strangers_share_a_proposal_costs_no_signature_check() {
    use scrip_notary::wire::Response;
    if !scrip_feed::bench::run_alone(
        "adversarial::over_the_strangers_share_a_proposal_costs_no_signature_check",
    ) {
        return;
    }
    let mut stranger = setup(4);
    for _ in 0..12 {
        stranger.extend(1);
    }
    let notary = notary_with_strangers_share(&stranger, 1, None).await;
    assert!(matches!(
        notary.ask(proposal_with_log(&stranger)).await.unwrap(),
        Response::Vote(_)
    ));
    let before = scrip_feed::identity::signature_checks();
    for _ in 0..20 {
        let answer = notary.ask(proposal_with_log(&stranger)).await.unwrap();
        assert!(
            matches!(answer, Response::Refusal(Refusal::Unavailable { .. })),
            "{answer:?}"
        );
    }
    let checked = scrip_feed::identity::signature_checks() - before;
    assert_eq!(
        checked, 0,
        "signatures checked for a stranger over its share"
    );
    notary.shutdown().await;
}

/// After a restart a notary's votes come back from its log unsigned. A vote it signs again
/// (`Again`, the client retrying the same bytes) is remembered as its own like a new one: the
/// certificate carrying it, in the next proposal's prefix, costs the other notaries' votes and
/// the entry's signature, not its own vote again. (Counted in a process of its own.)
#[test]
fn a_vote_signed_again_after_a_restart_is_compared_not_verified_when_shown_back() {
    use scrip_notary::wire::{Proposal, Request, Response};
    use scrip_notary::{MemoryVoteStore, Notary, NotaryConfig, VoteStore};
    if !scrip_feed::bench::run_alone(
        "adversarial::a_vote_signed_again_after_a_restart_is_compared_not_verified_when_shown_back",
    ) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut setup = setup(4);
        let store: Arc<dyn scrip_feed::Store> = Arc::new(scrip_feed::MemoryStore::new());
        scrip_notary::certified::store_certified(store.as_ref(), &setup.log).unwrap();
        let votes: Arc<dyn VoteStore> = Arc::new(MemoryVoteStore::new());
        let spawn = || {
            Notary::spawn(
                Arc::clone(&setup.notaries[0]),
                Arc::clone(&store),
                Arc::clone(&votes),
                scrip_replicate::transport::Tcp,
                NotaryConfig::default(),
                Arc::new(|_| {}),
            )
        };
        let propose = |entry: &Entry, prefix| {
            Request::Propose(Proposal {
                entry: scrip_feed::EntryBytes::of(entry),
                prefix,
            })
        };
        let order = setup.order(10);
        let notary = spawn().await.unwrap();
        let first = notary.ask(propose(&order, vec![])).await.unwrap();
        assert!(matches!(first, Response::Vote(_)), "{first:?}");
        notary.shutdown().await;
        // Restarted: the vote is read back from the store, and signed again when asked again.
        let notary = spawn().await.unwrap();
        let again = notary.ask(propose(&order, vec![])).await.unwrap();
        assert!(matches!(again, Response::Vote(_)), "{again:?}");
        let certificate = setup.kit.certify(&order);
        assert!(
            certificate
                .votes
                .iter()
                .any(|v| v.notary == setup.notaries[0].id())
        );
        let certified = CertifiedEntry {
            entry: order.clone(),
            certificate: Some(certificate.clone()),
        };
        setup.kit.push_raw(order, Some(certificate.clone()));
        let next = setup.order(1);
        let prefix = vec![scrip_notary::certified::to_bytes(&certified).unwrap()];
        let before = scrip_feed::identity::signature_checks();
        let vote = notary.ask(propose(&next, prefix)).await.unwrap();
        assert!(matches!(vote, Response::Vote(_)), "{vote:?}");
        assert_eq!(
            scrip_feed::identity::signature_checks() - before,
            1 + (certificate.votes.len() as u64 - 1),
            "the next entry's signature and the other notaries' votes"
        );
        notary.shutdown().await;
    });
}
