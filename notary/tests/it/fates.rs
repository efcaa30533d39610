//! The fate decision (`notary.md` §3a), one rule at a time, on the pure state machine with an
//! explicit clock: the deadline and its margin on both sides, the fate lock in both directions,
//! preimages, who may ask, and restoring fates after a restart. The seeded simulation of many
//! notaries with skewed clocks, crashes and byzantine members is `fate_sim.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use scrip_feed::{Keypair, Seq, Timestamp};
use scrip_ledger::content::{HashLock, Preimage, WalletEntry};
use scrip_ledger::kit::{KitWallet, notaries, order};
use scrip_ledger::{Currency, Fate, FateSubject, TrustSignatures};
use scrip_notary::decision::{FateDecision, NotaryState};
use scrip_notary::wire::FateRequest;

/// The margin δ used here.
const SKEW: u64 = 30_000;
/// The order's expiry.
const EXPIRY: u64 = 1_000_000_000;

struct World {
    sender: KitWallet,
    receiver: KitWallet,
    eur: Currency,
}

fn world() -> World {
    let set = notaries(50, 4);
    let mut sender = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
    let receiver = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), set);
    let eur = sender.currency("EUR", 2).unwrap();
    sender.mint(&eur, 10_000);
    World {
        sender,
        receiver,
        eur,
    }
}

impl World {
    fn order(&mut self, lock: Option<HashLock>) -> Seq {
        let to = self.receiver.id();
        self.sender.push(&order(
            to,
            &self.eur,
            100,
            Timestamp::from_millis(EXPIRY),
            lock,
        ))
    }

    /// A request for `fate` of the order at `seq`, signed by whoever should ask.
    fn request(&self, seq: Seq, fate: Fate, preimage: Option<Preimage>) -> FateRequest {
        let asker = if fate.is_void() {
            &self.sender.key
        } else {
            &self.receiver.key
        };
        self.signed_by(seq, fate, preimage, asker)
    }

    fn signed_by(
        &self,
        seq: Seq,
        fate: Fate,
        preimage: Option<Preimage>,
        asker: &Keypair,
    ) -> FateRequest {
        let subject = FateSubject {
            wallet: self.sender.id(),
            order: self.sender.order_ref(seq).id,
            fate,
        };
        FateRequest {
            order: self.sender.cite(seq),
            fate,
            preimage,
            signature: subject.request(asker),
        }
    }

    /// The state of the sender's first notary.
    fn notary(&self) -> NotaryState {
        NotaryState::new(self.sender.notaries[0].id())
    }

    /// The same, knowing the sender's certified log (the fast path: no citation checks).
    fn notary_knowing(&self) -> NotaryState {
        let mut state = self.notary();
        for entry in &self.sender.log {
            state.learn(entry, &TrustSignatures).unwrap();
        }
        state
    }
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn code(decision: &FateDecision) -> String {
    match decision {
        FateDecision::Refuse(refusal) => refusal.kind(),
        FateDecision::Vote(_) => "vote".into(),
        FateDecision::Again(_) => "again".into(),
    }
}

#[test]
fn a_claim_is_signed_only_before_the_expiry_minus_the_margin() {
    let mut w = world();
    let seq = w.order(None);
    let claim = w.request(seq, Fate::Claimed, None);
    let last = EXPIRY - SKEW - 1;
    assert_eq!(
        code(&w.notary().decide_fate(&claim, at(last), SKEW)),
        "vote"
    );
    assert_eq!(
        code(&w.notary().decide_fate(&claim, at(last + 1), SKEW)),
        "fate:order-expired"
    );
    assert_eq!(
        code(&w.notary().decide_fate(&claim, at(EXPIRY + 5), SKEW)),
        "fate:order-expired"
    );
}

#[test]
fn an_expiry_void_is_signed_only_from_the_expiry_plus_the_margin() {
    let mut w = world();
    let seq = w.order(Some(Preimage([3; 32]).lock()));
    let expired = w.request(seq, Fate::Expired, None);
    assert_eq!(
        code(
            &w.notary()
                .decide_fate(&expired, at(EXPIRY + SKEW - 1), SKEW)
        ),
        "fate:not-expired"
    );
    assert_eq!(
        code(&w.notary().decide_fate(&expired, at(EXPIRY), SKEW)),
        "fate:not-expired"
    );
    assert_eq!(
        code(&w.notary().decide_fate(&expired, at(EXPIRY + SKEW), SKEW)),
        "vote"
    );
}

/// A claim excludes every void and a void a claim, at one notary, whatever the clock; the same
/// fate is signed again (even past the deadline); a second void of a voided order is fine.
#[test]
fn the_fate_lock_holds_both_ways() {
    let mut w = world();
    let claimed = w.order(None);
    let cancelled = w.order(None);
    let mut notary = w.notary_knowing();
    let early = at(EXPIRY - 10 * SKEW);
    let late = at(EXPIRY + 10 * SKEW);
    assert_eq!(
        code(&notary.decide_fate(&w.request(claimed, Fate::Claimed, None), early, SKEW)),
        "vote"
    );
    // A cancel after the claim, and an expiry void later: refused with the reason.
    for (fate, when) in [(Fate::Cancelled, early), (Fate::Expired, late)] {
        assert_eq!(
            code(&notary.decide_fate(&w.request(claimed, fate, None), when, SKEW)),
            "fate:order-claimed"
        );
    }
    // The claim again, after the deadline: the same vote.
    assert_eq!(
        code(&notary.decide_fate(&w.request(claimed, Fate::Claimed, None), late, SKEW)),
        "again"
    );

    assert_eq!(
        code(&notary.decide_fate(&w.request(cancelled, Fate::Cancelled, None), early, SKEW)),
        "vote"
    );
    assert_eq!(
        code(&notary.decide_fate(&w.request(cancelled, Fate::Claimed, None), early, SKEW)),
        "fate:order-voided"
    );
    // Another void of a voided order: its clock rule, then signed without a new record.
    assert_eq!(
        code(&notary.decide_fate(&w.request(cancelled, Fate::Expired, None), early, SKEW)),
        "fate:not-expired"
    );
    assert_eq!(
        code(&notary.decide_fate(&w.request(cancelled, Fate::Expired, None), late, SKEW)),
        "again"
    );
}

#[test]
fn a_claim_needs_the_preimage_of_its_own_lock() {
    let mut w = world();
    let locked = w.order(Some(Preimage([7; 32]).lock()));
    let other = w.order(Some(Preimage([8; 32]).lock()));
    let plain = w.order(None);
    let now = at(EXPIRY - 10 * SKEW);
    let cases = [
        (locked, None, "fate:missing-preimage"),
        (locked, Some(Preimage([9; 32])), "fate:wrong-preimage"),
        // The preimage of another order's lock.
        (locked, Some(Preimage([8; 32])), "fate:wrong-preimage"),
        (plain, Some(Preimage([7; 32])), "fate:unexpected-preimage"),
        (locked, Some(Preimage([7; 32])), "vote"),
        (other, Some(Preimage([8; 32])), "vote"),
    ];
    let mut notary = w.notary();
    for (seq, preimage, expected) in cases {
        let request = w.request(seq, Fate::Claimed, preimage);
        assert_eq!(code(&notary.decide_fate(&request, now, SKEW)), expected);
    }
}

#[test]
fn a_hash_locked_order_cannot_be_cancelled() {
    let mut w = world();
    let seq = w.order(Some(Preimage([7; 32]).lock()));
    let cancel = w.request(seq, Fate::Cancelled, None);
    assert_eq!(
        code(&w.notary().decide_fate(&cancel, at(0), SKEW)),
        "fate:conditional-cancel"
    );
}

/// Only the receiver claims and only the sender voids: nobody decides someone else's payment.
#[test]
fn only_the_receiver_claims_and_only_the_sender_voids() {
    let mut w = world();
    let seq = w.order(None);
    let stranger = Keypair::from_seed(&[99; 32]);
    let now = at(0);
    let wrong = [
        w.signed_by(seq, Fate::Claimed, None, &stranger),
        w.signed_by(seq, Fate::Claimed, None, &w.sender.key),
        w.signed_by(seq, Fate::Cancelled, None, &w.receiver.key),
        w.signed_by(seq, Fate::Cancelled, None, &stranger),
    ];
    for request in wrong {
        assert_eq!(
            code(&w.notary().decide_fate(&request, now, SKEW)),
            "malformed"
        );
        assert_eq!(
            code(&w.notary_knowing().decide_fate(&request, now, SKEW)),
            "malformed"
        );
    }
}

#[test]
fn a_version_1_order_has_no_fate_and_a_stranger_notary_signs_none() {
    let mut w = world();
    let to = w.receiver.id();
    let v1 = WalletEntry::Order(scrip_ledger::content::Order {
        to,
        currency: w.eur,
        amount: scrip_ledger::Amount::from_minor(10),
        memo: String::new(),
        expiry: None,
        condition: None,
    });
    let old = w.sender.push_v1(&v1);
    assert_eq!(
        code(
            &w.notary()
                .decide_fate(&w.request(old, Fate::Cancelled, None), at(0), SKEW)
        ),
        "fate:no-expiry"
    );
    let seq = w.order(None);
    let mut outsider = NotaryState::new(Keypair::from_seed(&[77; 32]).id());
    assert_eq!(
        code(&outsider.decide_fate(&w.request(seq, Fate::Claimed, None), at(0), SKEW)),
        "not-a-notary"
    );
}

/// A citation that does not verify is refused before anything else (a notary that does not
/// know the order checks it).
#[test]
fn a_forged_citation_is_refused() {
    let mut w = world();
    let seq = w.order(None);
    let mut request = w.request(seq, Fate::Claimed, None);
    request.order.entry.certificate.votes.truncate(1);
    assert_eq!(
        code(&w.notary().decide_fate(&request, at(0), SKEW)),
        "malformed"
    );
}

/// After a restart the notary's fates come back from its records: the opposite fate stays
/// refused, the same is signed again.
#[test]
fn restored_fates_keep_their_promise() {
    let mut w = world();
    let seq = w.order(None);
    let mut before = w.notary();
    let FateDecision::Vote(subject) =
        before.decide_fate(&w.request(seq, Fate::Claimed, None), at(0), SKEW)
    else {
        panic!("expected a vote");
    };
    let mut after = w.notary();
    after.restore_fate(subject.order, subject.fate);
    assert_eq!(
        code(&after.decide_fate(&w.request(seq, Fate::Cancelled, None), at(0), SKEW)),
        "fate:order-claimed"
    );
    assert_eq!(
        code(&after.decide_fate(&w.request(seq, Fate::Claimed, None), at(0), SKEW)),
        "again"
    );
    // A fate decided but never made durable is forgotten: the opposite one is then allowed.
    after.forget_fate(&subject);
    assert_eq!(
        code(&after.decide_fate(&w.request(seq, Fate::Cancelled, None), at(0), SKEW)),
        "vote"
    );
}

/// A notary that verified an order's certificate does not check it again when an accept cites
/// the very same bytes, but a citation whose certificate differs is checked in full: a forged
/// one is refused.
#[test]
fn a_remembered_certificate_never_vouches_for_other_bytes() {
    let mut w = world();
    let seq = w.order(None);
    let mut notary = w.notary_knowing();
    for entry in &w.receiver.log {
        notary.learn(entry, &TrustSignatures).unwrap();
    }
    let claim = w.sender.fate(seq, Fate::Claimed);
    let accept = |citation: scrip_ledger::Citation| {
        WalletEntry::Accept(scrip_ledger::content::Accept {
            order: citation,
            preimage: None,
            claim: Some(claim.clone()),
        })
    };
    // The order's certificate with one vote's signature broken.
    let mut forged = w.sender.cite(seq);
    let vote = &mut forged.entry.certificate.votes[0];
    let mut bytes = *vote.signature.as_bytes();
    bytes[0] ^= 1;
    vote.signature = scrip_feed::Signature::from_bytes(bytes);
    let entry = w.receiver.sign(&accept(forged));
    match notary.decide(&entry, &[]) {
        scrip_notary::Decision::Refuse { refusal, .. } => {
            assert_eq!(refusal.kind(), "rules:cited-certificate", "{refusal:?}");
        }
        other => panic!("a forged citation was accepted: {other:?}"),
    }
    // The genuine bytes: voted for.
    let entry = w.receiver.sign(&accept(w.sender.cite(seq)));
    assert!(matches!(
        notary.decide(&entry, &[]),
        scrip_notary::Decision::Vote(_)
    ));
}

/// A request nobody entitled signed costs the notary one signature check (the request's), not
/// the citation's eight: who asks is checked first. (Counted in a process of its own: the
/// counter is process-wide.)
#[test]
fn a_strangers_request_costs_one_signature_check() {
    if !scrip_feed::bench::run_alone("fates::a_strangers_request_costs_one_signature_check") {
        return;
    }
    let mut w = world();
    let seq = w.order(None);
    let stranger = Keypair::from_seed(&[99; 32]);
    let request = w.signed_by(seq, Fate::Cancelled, None, &stranger);
    let mut notary = w.notary();
    let before = scrip_feed::identity::signature_checks();
    assert_eq!(
        code(&notary.decide_fate(&request, at(0), SKEW)),
        "malformed"
    );
    assert_eq!(scrip_feed::identity::signature_checks() - before, 1);
}

/// A notary that voted for an accept and then learns it certified (sent along with the
/// receiver's next proposal) checks the accept's own certificate and nothing it embeds: the
/// claim's fate votes and the citation were checked at the vote. (Counted in a process of its
/// own: the counter is process-wide.)
#[test]
fn learning_an_accept_it_voted_for_checks_only_its_certificate() {
    if !scrip_feed::bench::run_alone(
        "fates::learning_an_accept_it_voted_for_checks_only_its_certificate",
    ) {
        return;
    }
    let (mut notary, accept, next, certified) = accept_then_next();
    let WalletEntry::Accept(content) =
        WalletEntry::from_payload(accept.payload().unwrap()).unwrap()
    else {
        panic!("not an accept");
    };
    assert!(
        content.claim.is_some(),
        "an order with an expiry is claimed"
    );
    assert!(matches!(
        notary.decide(&accept, &[]),
        scrip_notary::Decision::Vote(_)
    ));
    let certificate = certified.certificate.clone().unwrap();
    let before = scrip_feed::identity::signature_checks();
    assert!(matches!(
        notary.decide(&next, &[certified]),
        scrip_notary::Decision::Vote(_)
    ));
    // The next entry's signature and the accept's certificate: nothing else.
    assert_eq!(
        scrip_feed::identity::signature_checks() - before,
        1 + certificate.votes.len() as u64
    );
}

/// An order of `amount` EUR to `to` with the test's expiry (content only).
fn eur_order(w: &World, to: scrip_feed::FeedId, amount: u64) -> WalletEntry {
    order(to, &w.eur, amount, Timestamp::from_millis(EXPIRY), None)
}

/// The order at the sender's next slot, voted for by `notary` (its vote noted as signed when
/// `noted`), certified by the kit's notaries and appended; returns it certified.
fn voted_order(
    w: &mut World,
    notary: &mut NotaryState,
    noted: bool,
) -> scrip_ledger::CertifiedEntry {
    let entry = w.sender.sign(&eur_order(w, w.receiver.id(), 100));
    let scrip_notary::Decision::Vote(subject) = notary.decide(&entry, &[]) else {
        panic!("expected a vote");
    };
    if noted {
        let mine = scrip_ledger::Vote::sign(&w.sender.notaries[0], &subject);
        notary.signed_vote(&subject, &mine);
    }
    let certificate = w.sender.certify(&entry);
    assert!(certificate.votes.iter().any(|v| v.notary == notary.id()));
    w.sender.push_raw(entry.clone(), Some(certificate.clone()));
    scrip_ledger::CertifiedEntry {
        entry,
        certificate: Some(certificate),
    }
}

/// Its own vote in a certificate it is shown is the very bytes it signed: compared, not
/// verified, so learning the order it voted for costs the other notaries' votes only.
/// (Counted in a process of its own.)
#[test]
fn a_notary_compares_its_own_vote_in_a_certificate_instead_of_verifying_it() {
    if !scrip_feed::bench::run_alone(
        "fates::a_notary_compares_its_own_vote_in_a_certificate_instead_of_verifying_it",
    ) {
        return;
    }
    let mut w = world();
    let mut notary = w.notary_knowing();
    let certified = voted_order(&mut w, &mut notary, true);
    assert_eq!(notary.own_votes().len(), 1);
    let next = w.sender.sign(&eur_order(&w, w.receiver.id(), 1));
    let others = certified.certificate.as_ref().unwrap().votes.len() as u64 - 1;
    let before = scrip_feed::identity::signature_checks();
    assert!(matches!(
        notary.decide(&next, &[certified]),
        scrip_notary::Decision::Vote(_)
    ));
    // The next entry's signature and the other notaries' votes.
    assert_eq!(
        scrip_feed::identity::signature_checks() - before,
        1 + others
    );
}

/// Bytes under its own name that are not what it signed are verified like any vote: a
/// certificate carrying a broken signature of this notary for an entry it did vote for is
/// refused.
#[test]
fn a_broken_signature_under_the_notary_s_own_name_is_still_refused() {
    let mut w = world();
    let mut notary = w.notary_knowing();
    let mut certified = voted_order(&mut w, &mut notary, true);
    let me = notary.id();
    let certificate = certified.certificate.as_mut().unwrap();
    let mine = certificate
        .votes
        .iter_mut()
        .find(|v| v.notary == me)
        .unwrap();
    let mut bytes = *mine.signature.as_bytes();
    bytes[0] ^= 1;
    mine.signature = scrip_feed::Signature::from_bytes(bytes);
    let next = w.sender.sign(&eur_order(&w, w.receiver.id(), 1));
    match notary.decide(&next, &[certified]) {
        scrip_notary::Decision::Refuse { refusal, .. } => {
            assert_eq!(refusal.kind(), "malformed", "{refusal:?}");
        }
        other => panic!("a broken own vote was taken as signed: {other:?}"),
    }
}

/// An entry stamped ahead of the notary's clock by more than the margin waits (`Unavailable`,
/// retried: never a definitive refusal that honest notaries could split on); at the margin it
/// is voted for; an old time is no reason to refuse (a pending entry may be sent late).
#[test]
fn an_entry_stamped_ahead_of_the_clock_waits_until_the_clock_catches_up() {
    let w = world();
    let now = 1_800_000_000_000u64;
    let order = order(
        w.receiver.id(),
        &w.eur,
        5,
        scrip_ledger::kit::FAR_EXPIRY,
        None,
    );
    let stamped = |ms: u64| {
        scrip_feed::Entry::create(
            &w.sender.key,
            w.sender.head(),
            Timestamp::from_millis(ms),
            order.to_payload().unwrap(),
        )
        .unwrap()
    };
    let decide = |entry: &scrip_feed::Entry, at_ms: u64| {
        let mut notary = w.notary_knowing();
        match notary.decide_at(entry, &[], Timestamp::from_millis(at_ms), SKEW) {
            scrip_notary::Decision::Refuse { refusal, .. } => refusal.kind(),
            scrip_notary::Decision::Vote(_) => "vote".into(),
            scrip_notary::Decision::Again(_) => "again".into(),
        }
    };
    let ahead = stamped(now + SKEW + 1);
    assert_eq!(decide(&ahead, now), "unavailable");
    assert!(
        !scrip_notary::Refusal::Unavailable {
            reason: String::new()
        }
        .is_definitive()
    );
    assert_eq!(decide(&ahead, now + 1), "vote", "the clock caught up");
    assert_eq!(decide(&stamped(now + SKEW), now), "vote");
    assert_eq!(
        decide(&stamped(now - 86_400_000), now),
        "vote",
        "an old time"
    );
}

/// The receiver's accept (with its claim and citation) and, certified, the proposal after it:
/// what the check-counting tests of this file decide. Returns the notary (knowing both wallets),
/// the accept, and the next entry with the certified accept as its prefix.
fn accept_then_next() -> (
    NotaryState,
    scrip_feed::Entry,
    scrip_feed::Entry,
    scrip_ledger::CertifiedEntry,
) {
    let mut w = world();
    let seq = w.order(None);
    let mut notary = w.notary_knowing();
    for entry in &w.receiver.log {
        notary.learn(entry, &TrustSignatures).unwrap();
    }
    let accept = w.receiver.sign(&w.sender.accept_of(seq, None));
    let certificate = w.receiver.certify(&accept);
    let certified = scrip_ledger::CertifiedEntry {
        entry: accept.clone(),
        certificate: Some(certificate.clone()),
    };
    w.receiver.push_raw(accept.clone(), Some(certificate));
    let next = w.receiver.sign(&eur_order(&w, w.sender.id(), 10));
    (notary, accept, next, certified)
}

/// A notary verifies a batch's signatures ahead, in one batch, and then decides each proposal
/// with what it gathered: it gathers exactly what the decisions would verify one by one (an
/// accept's entry, citation and claim; then the next entry and the accept's certificate when
/// it is learned without having been voted for), and the decisions then verify nothing more.
/// (Counted in a process of its own: the counter is process-wide.)
#[test]
fn gathering_ahead_gathers_exactly_what_the_decisions_check() {
    if !scrip_feed::bench::run_alone(
        "fates::gathering_ahead_gathers_exactly_what_the_decisions_check",
    ) {
        return;
    }
    let checks = scrip_feed::identity::signature_checks;
    let (notary, accept, next, certified) = accept_then_next();
    for (entry, prefix) in [(&accept, vec![]), (&next, vec![certified.clone()])] {
        let mut single = notary.clone();
        let before = checks();
        let alone = single.decide(entry, &prefix);
        let one_by_one = checks() - before;
        assert!(matches!(alone, scrip_notary::Decision::Vote(_)));

        let mut batched = notary.clone();
        let gather = scrip_ledger::verify::Gather::default();
        batched.gather(entry, &prefix, &gather);
        assert_eq!(gather.len() as u64, one_by_one, "gathered what is checked");
        batched.begin_batch(gather.verify());
        let before = checks();
        let decided = batched.decide(entry, &prefix);
        assert_eq!(checks() - before, 0, "nothing verified again");
        batched.end_batch();
        assert_eq!(decided, alone);
    }

    // A claim of an order this notary voted for and has not learned yet (the claim round of
    // every transfer): learned from the request's citation, its own vote compared.
    let mut w = world();
    let mut notary = w.notary_knowing();
    let order = voted_order(&mut w, &mut notary, true);
    let claim = w.request(order.entry.seq(), Fate::Claimed, None);
    let now = at(EXPIRY - 10 * SKEW);
    let mut single = notary.clone();
    let before = checks();
    let alone = single.decide_fate(&claim, now, SKEW);
    let one_by_one = checks() - before;
    assert!(matches!(alone, FateDecision::Vote(_)), "{alone:?}");
    let mut batched = notary.clone();
    let gather = scrip_ledger::verify::Gather::default();
    let before = checks();
    batched.gather_fate(&claim, &gather);
    // The request's own signature is verified while gathering, singly: whether to gather the
    // rest depends on it.
    assert_eq!(checks() - before, 1, "the request's signature, at once");
    assert_eq!(
        gather.len() as u64 + 1,
        one_by_one,
        "gathered what is checked"
    );
    batched.begin_batch(gather.verify());
    let before = checks();
    let decided = batched.decide_fate(&claim, now, SKEW);
    assert_eq!(checks() - before, 0, "nothing verified again");
    batched.end_batch();
    assert_eq!(decided, alone);
}

/// A forged signature in a batch verified ahead fails the batch, yet the honest proposal beside
/// it is voted for and the forged one refused, exactly as one by one: a batch that does not
/// verify is checked again signature by signature, and only good ones are remembered.
#[test]
fn gathering_ahead_refuses_a_forgery_and_votes_for_its_honest_neighbour() {
    let (notary, accept, next, certified) = accept_then_next();
    // The accept's certificate with one vote forged: the next proposal's prefix.
    let mut forged_prefix = certified.clone();
    let votes = &mut forged_prefix.certificate.as_mut().unwrap().votes;
    let mut bytes = *votes[1].signature.as_bytes();
    bytes[7] ^= 1;
    votes[1].signature = scrip_feed::Signature::from_bytes(bytes);

    let mut batched = notary.clone();
    let gather = scrip_ledger::verify::Gather::default();
    batched.gather(&accept, &[], &gather);
    batched.gather(&next, std::slice::from_ref(&forged_prefix), &gather);
    assert!(gather.len() >= 4, "a batch, not single checks");
    batched.begin_batch(gather.verify());
    assert!(matches!(
        batched.decide(&accept, &[]),
        scrip_notary::Decision::Vote(_)
    ));
    let refused = batched.decide(&next, std::slice::from_ref(&forged_prefix));
    batched.end_batch();
    let mut single = notary.clone();
    assert!(matches!(
        single.decide(&accept, &[]),
        scrip_notary::Decision::Vote(_)
    ));
    let alone = single.decide(&next, std::slice::from_ref(&forged_prefix));
    assert_eq!(refused, alone, "as one by one");
    match refused {
        scrip_notary::Decision::Refuse { refusal, .. } => {
            assert_eq!(refusal.kind(), "malformed", "{refusal:?}");
        }
        other => panic!("a forged certificate was accepted: {other:?}"),
    }
    // And the honest prefix still works after it.
    assert!(matches!(
        batched.decide(&next, &[certified]),
        scrip_notary::Decision::Vote(_)
    ));
}

/// The sender's log copied into the receiver's store as its node's replication does (each
/// certificate checked, each entry checked by the store), remembering what it checked; then the
/// receiver's citation of the order, read back from its store.
fn replicated_order() -> (
    World,
    std::sync::Mutex<scrip_ledger::verify::Seen>,
    scrip_ledger::Citation,
) {
    let mut w = world();
    let seq = w.order(None);
    let from = scrip_feed::MemoryStore::default();
    scrip_notary::certified::store_certified(&from, &w.sender.log).unwrap();
    let to = scrip_feed::MemoryStore::default();
    let seen = std::sync::Mutex::new(scrip_ledger::verify::Seen::default());
    scrip_notary::certified::copy_certified(&from, &to, &w.sender.id(), &seen).unwrap();
    let citation = scrip_notary::certified::citation(&to, &w.sender.id(), seq).unwrap();
    (w, seen, citation)
}

/// What a wallet's replication verified (the sender's genesis and order, with their
/// certificates) is not verified again when the wallet cites the order to claim it: not one
/// signature. (Counted in a process of its own: the counter is process-wide.)
#[test]
fn a_wallet_claiming_an_order_its_replication_checked_checks_nothing_again() {
    if !scrip_feed::bench::run_alone(
        "fates::a_wallet_claiming_an_order_its_replication_checked_checks_nothing_again",
    ) {
        return;
    }
    let (_, seen, citation) = replicated_order();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "genesis, mint and order remembered");
    let check = scrip_ledger::verify::Remembered {
        seen: &seen,
        inner: &scrip_ledger::VerifyAll,
    };
    let before = scrip_feed::identity::signature_checks();
    scrip_ledger::verify::verify_citation(&citation, &check).unwrap();
    assert_eq!(scrip_feed::identity::signature_checks() - before, 0);
}

/// The memory vouches only for the bytes checked: a citation of the same order with one vote
/// of its certificate forged, or with its payload changed, is refused.
#[test]
fn a_remembered_order_with_other_bytes_is_checked_and_refused() {
    let (_, seen, citation) = replicated_order();
    let seen = seen.lock().unwrap();
    let check = scrip_ledger::verify::Remembered {
        seen: &seen,
        inner: &scrip_ledger::VerifyAll,
    };
    let mut forged_vote = citation.clone();
    let mut bytes = *forged_vote.entry.certificate.votes[0].signature.as_bytes();
    bytes[5] ^= 1;
    forged_vote.entry.certificate.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
    assert!(scrip_ledger::verify::verify_citation(&forged_vote, &check).is_err());
    let mut forged_payload = citation.clone();
    let last = forged_payload.entry.bytes.payload.len() - 1;
    forged_payload.entry.bytes.payload[last] ^= 1;
    assert!(scrip_ledger::verify::verify_citation(&forged_payload, &check).is_err());
    assert!(scrip_ledger::verify::verify_citation(&citation, &check).is_ok());
}

/// A proposal the decision refuses before it looks at the payload (here: a wallet this notary
/// holds nothing of, at seq 2) makes no batch work beyond its own signature, however much its
/// payload embeds (an accept: a citation and a claim).
#[test]
fn gathering_ahead_stops_where_the_decision_would_refuse() {
    let mut w = world();
    let seq = w.order(None);
    let notary = w.notary_knowing();
    let accept = w.receiver.sign(&w.sender.accept_of(seq, None));
    let gather = scrip_ledger::verify::Gather::default();
    notary.gather(&accept, &[], &gather);
    assert_eq!(gather.len(), 1, "the proposal's own signature only");
    let mut decided = notary.clone();
    assert!(matches!(
        decided.decide(&accept, &[]),
        scrip_notary::Decision::Refuse { .. }
    ));
}

/// A fate request whose own signature does not verify makes no batch work at all, however big
/// the citation it carries: the decision refuses it at that first, cheapest check.
#[test]
fn gathering_ahead_gathers_nothing_for_a_request_with_a_bad_signature() {
    let mut w = world();
    let seq = w.order(None);
    let notary = w.notary();
    let mut claim = w.request(seq, Fate::Claimed, None);
    let mut bytes = *claim.signature.as_bytes();
    bytes[2] ^= 1;
    claim.signature = scrip_feed::Signature::from_bytes(bytes);
    let gather = scrip_ledger::verify::Gather::default();
    notary.gather_fate(&claim, &gather);
    assert!(gather.is_empty());
    assert_eq!(gather.verify().len(), 0, "not even the request's signature");
    assert_eq!(
        code(&notary.clone().decide_fate(&claim, at(0), SKEW)),
        "malformed"
    );
}

/// A fate request that came on the requester's own session (the transport proved its key) is
/// not checked for its signature (`notary.md` §3a, step 4): a claim whose signature is garbage
/// is signed on the receiver's session and refused on the sender's or with no session; a
/// properly signed request is signed on any session (it may be relayed); and on the
/// requester's session the decision makes exactly one signature check less, gathered ahead or
/// not. (Counted in a process of its own: the counter is process-wide.)
#[test]
fn the_requesters_own_session_stands_for_the_requests_signature() {
    if !scrip_feed::bench::run_alone(
        "fates::the_requesters_own_session_stands_for_the_requests_signature",
    ) {
        return;
    }
    let checks = scrip_feed::identity::signature_checks;
    let mut w = world();
    let seq = w.order(None);
    let (receiver, sender) = (w.receiver.id(), w.sender.id());
    let signed = w.request(seq, Fate::Claimed, None);
    let mut garbage = signed.clone();
    garbage.signature = scrip_feed::Signature::from_bytes([7; 64]);
    let decide = |request: &FateRequest, session: Option<&scrip_feed::FeedId>| {
        code(&w.notary().decide_fate_on(request, session, at(0), SKEW))
    };
    assert_eq!(decide(&garbage, Some(&receiver)), "vote");
    assert_eq!(decide(&garbage, Some(&sender)), "malformed");
    assert_eq!(decide(&garbage, None), "malformed");
    assert_eq!(decide(&signed, Some(&sender)), "vote");
    assert_eq!(decide(&signed, None), "vote");

    let count = |session: Option<&scrip_feed::FeedId>, ahead: bool| {
        let mut notary = w.notary();
        let before = checks();
        if ahead {
            let gather = scrip_ledger::verify::Gather::default();
            notary.gather_fate_on(&signed, session, &gather);
            notary.begin_batch(gather.verify());
        }
        let decided = notary.decide_fate_on(&signed, session, at(0), SKEW);
        assert_eq!(code(&decided), "vote");
        checks() - before
    };
    for ahead in [false, true] {
        assert_eq!(
            count(Some(&receiver), ahead) + 1,
            count(None, ahead),
            "gathered ahead: {ahead}"
        );
    }
}
