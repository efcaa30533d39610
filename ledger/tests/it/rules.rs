//! Every rejection reason has a named test that produces it, plus the flows that must work.
//! The kit's notaries certify whatever they are given (as if byzantine), so these logs exercise
//! the fold's own checks.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;

use scrip_feed::{Content, Entry, FeedId, Keypair, Seq, Timestamp};
use scrip_ledger::amount::Amount;
use scrip_ledger::certificate::{Certificate, ROUND_ZERO, Vote};
use scrip_ledger::content::{Genesis, Mint, Order, OrderRef, Reclaim, WalletEntry};
use scrip_ledger::kit::{KitWallet, notaries};
use scrip_ledger::verify::subject_of;
use scrip_ledger::{
    CertificateError, Currency, Effect, LedgerState, OrderStatus, Outcome, Rejection, VerifyAll,
    fold,
};

fn wallet(seed: u8, notary_base: u8) -> KitWallet {
    KitWallet::new(
        Arc::new(Keypair::from_seed(&[seed; 32])),
        notaries(notary_base, 4),
    )
}

/// Issuer (with 1000.00 EUR) and two more wallets, all with the same notaries.
fn world() -> (KitWallet, KitWallet, KitWallet, Currency) {
    let mut issuer = wallet(1, 100);
    let alice = wallet(2, 100);
    let bob = wallet(3, 100);
    let eur = issuer.currency("EUR", 2).unwrap();
    issuer.mint(&eur, 100_000);
    (issuer, alice, bob, eur)
}

fn state(wallets: &[&KitWallet]) -> LedgerState {
    fold(
        wallets.iter().flat_map(|w| w.log.iter().cloned()).collect(),
        &VerifyAll,
    )
}

fn outcome(wallets: &[&KitWallet], who: &KitWallet, seq: Seq) -> Outcome {
    state(wallets)
        .outcome(&who.id(), seq.get())
        .cloned()
        .unwrap_or_else(|| panic!("no outcome for #{seq}"))
}

fn rejected(wallets: &[&KitWallet], who: &KitWallet, seq: Seq) -> Rejection {
    match outcome(wallets, who, seq) {
        Outcome::Rejected(r) => *r,
        Outcome::Applied => panic!("entry #{seq} was applied"),
    }
}

fn applied(wallets: &[&KitWallet], who: &KitWallet, seq: Seq) {
    assert_eq!(outcome(wallets, who, seq), Outcome::Applied, "entry #{seq}");
}

// ----- flows -----

#[test]
fn pay_and_accept_moves_money() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 2_500);
    let accept = alice.accept(&issuer, order);
    let s = state(&[&issuer, &alice]);
    applied(&[&issuer, &alice], &alice, accept);
    assert_eq!(
        s.wallet(&issuer.id()).unwrap().balance(&eur),
        Amount::from_minor(97_500)
    );
    assert_eq!(
        s.wallet(&alice.id()).unwrap().balance(&eur),
        Amount::from_minor(2_500)
    );
    let id = issuer.log[order.get() as usize - 1].entry.id();
    assert_eq!(s.orders()[&id].status, OrderStatus::Accepted);
    s.check_conservation().unwrap();
}

#[test]
fn reject_then_reclaim_returns_the_escrow() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 700);
    let id = issuer.log[order.get() as usize - 1].entry.id();
    assert_eq!(
        state(&[&issuer, &alice]).orders()[&id].status,
        OrderStatus::Pending
    );
    let rejection = alice.reject(&issuer, order);
    let s = state(&[&issuer, &alice]);
    assert_eq!(s.orders()[&id].status, OrderStatus::Rejected);
    assert_eq!(s.totals()[&eur].escrow, Amount::from_minor(700));
    s.check_conservation().unwrap();
    let reclaim = issuer.reclaim(order, &alice, rejection);
    applied(&[&issuer, &alice], &issuer, reclaim);
    let s = state(&[&issuer, &alice]);
    assert_eq!(s.orders()[&id].status, OrderStatus::Reclaimed);
    assert_eq!(
        s.wallet(&issuer.id()).unwrap().balance(&eur),
        Amount::from_minor(100_000)
    );
    assert_eq!(s.totals()[&eur].escrow, Amount::ZERO);
    s.check_conservation().unwrap();
}

#[test]
fn check_answers_whether_an_entry_would_be_valid_next() {
    let (mut issuer, alice, _, eur) = world();
    let s = state(&[&issuer]);
    let good = issuer.sign(&WalletEntry::Order(Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(10),
        memo: String::new(),
        expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
        condition: None,
    }));
    assert!(matches!(
        s.check(&good, &VerifyAll),
        Ok(Effect::Order { .. })
    ));
    let greedy = issuer.sign(&WalletEntry::Order(Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(100_001),
        memo: String::new(),
        expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
        condition: None,
    }));
    assert!(matches!(
        s.check(&greedy, &VerifyAll),
        Err(Rejection::Overspend { .. })
    ));
    // The check changed nothing.
    assert_eq!(s, state(&[&issuer]));
    issuer.order(alice.id(), &eur, 10);
}

// ----- log shape -----

#[test]
fn rejection_not_certified() {
    let (mut issuer, alice, _, eur) = world();
    let entry = issuer.sign(&order_to(alice.id(), &eur, 1));
    issuer.push_raw(entry, None);
    let seq = issuer.head().unwrap().seq;
    assert_eq!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::NotCertified { seq: seq.get() }
    );
}

#[test]
fn rejection_invalid_certificate_below_quorum() {
    let (mut issuer, alice, _, eur) = world();
    issuer.voters = 2;
    let seq = issuer.order(alice.id(), &eur, 1);
    assert!(matches!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::InvalidCertificate {
            error: CertificateError::BelowQuorum { have: 2, need: 3 },
            ..
        }
    ));
}

#[test]
fn rejection_gap_and_everything_after_a_halt() {
    let (mut issuer, alice, _, eur) = world();
    issuer.order(alice.id(), &eur, 1);
    issuer.order(alice.id(), &eur, 1);
    let removed = issuer.log.remove(2); // seq 3
    assert_eq!(removed.entry.seq(), Seq::new(3));
    let s = state(&[&issuer]);
    assert_eq!(
        s.outcome(&issuer.id(), 4),
        Some(&Outcome::Rejected(Box::new(Rejection::Gap {
            expected: 3,
            found: 4
        })))
    );
}

#[test]
fn rejection_invalid_entry_bad_signature() {
    let (mut issuer, alice, _, eur) = world();
    let entry = issuer.sign(&order_to(alice.id(), &eur, 1));
    let mut bytes = entry.header_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = Entry::decode(&bytes, entry.payload().map(<[u8]>::to_vec)).unwrap();
    let certificate = issuer.certify(&forged);
    issuer.push_raw(forged, Some(certificate));
    let seq = issuer.head().unwrap().seq;
    assert!(matches!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::InvalidEntry { reason, .. } if reason.contains("bad signature")
    ));
}

#[test]
fn rejection_invalid_entry_broken_link() {
    let (mut issuer, alice, _, eur) = world();
    // Entry #3 linking to something other than entry #2.
    let payload = order_to(alice.id(), &eur, 1).to_payload().unwrap();
    let wrong_head = scrip_feed::Head {
        seq: Seq::new(2),
        id: scrip_feed::EntryId::of_header(b"not the mint"),
    };
    let stray =
        Entry::create(&issuer.key, Some(wrong_head), Timestamp::default(), payload).unwrap();
    let certificate = issuer.certify(&stray);
    issuer.push_raw(stray, Some(certificate));
    assert!(matches!(
        rejected(&[&issuer], &issuer, Seq::new(3)),
        Rejection::InvalidEntry { reason, .. } if reason.contains("prev")
    ));
}

#[test]
fn rejection_not_wallet_content() {
    let (mut issuer, _, _, _) = world();
    let post = Content::Post {
        text: "hello".into(),
    }
    .encode()
    .unwrap();
    let entry = Entry::create(&issuer.key, issuer.head(), Timestamp::default(), post).unwrap();
    let certificate = issuer.certify(&entry);
    issuer.push_raw(entry, Some(certificate));
    let seq = issuer.head().unwrap().seq;
    assert!(matches!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::NotWalletContent { .. }
    ));
}

#[test]
fn rejection_missing_genesis() {
    let key = Arc::new(Keypair::from_seed(&[7; 32]));
    let mut w = wallet(7, 100);
    w.log.clear();
    let eur = Currency::new(key.id(), "EUR", 2).unwrap();
    let payload = WalletEntry::Mint(Mint {
        currency: eur,
        amount: Amount::from_minor(1),
    })
    .to_payload()
    .unwrap();
    let entry = Entry::create(&key, None, Timestamp::default(), payload).unwrap();
    let certificate = w.certify(&entry);
    w.push_raw(entry, Some(certificate));
    assert_eq!(rejected(&[&w], &w, Seq::FIRST), Rejection::MissingGenesis);
}

#[test]
fn rejection_genesis_not_first() {
    let (mut issuer, _, _, _) = world();
    let seq = issuer.push(&WalletEntry::Genesis(Genesis {
        notaries: notaries(100, 4).iter().map(|k| k.id()).collect(),
    }));
    assert_eq!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::GenesisNotFirst
    );
}

#[test]
fn rejection_bad_notary_set_with_duplicates() {
    let mut w = wallet(7, 100);
    w.log.clear();
    let dup = notaries(100, 1)[0].id();
    w.push(&WalletEntry::Genesis(Genesis {
        notaries: vec![dup, dup],
    }));
    assert!(matches!(
        rejected(&[&w], &w, Seq::FIRST),
        Rejection::BadNotarySet { reason } if reason.contains("twice")
    ));
}

// ----- ledger rules -----

fn order_to(to: FeedId, currency: &Currency, amount: u64) -> WalletEntry {
    WalletEntry::Order(Order {
        to,
        currency: *currency,
        amount: Amount::from_minor(amount),
        memo: String::new(),
        expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
        condition: None,
    })
}

#[test]
fn rejection_overspend() {
    let (mut issuer, alice, _, eur) = world();
    let seq = issuer.order(alice.id(), &eur, 100_001);
    assert_eq!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::Overspend {
            currency: eur.to_string(),
            balance: Amount::from_minor(100_000),
            amount: Amount::from_minor(100_001)
        }
    );
    // Rejected entries change nothing: the whole balance can still be spent.
    let next = issuer.order(alice.id(), &eur, 100_000);
    applied(&[&issuer], &issuer, next);
}

#[test]
fn rejection_unknown_currency() {
    let (_, mut alice, bob, _) = world();
    let usd = Currency::new(bob.id(), "USD", 2).unwrap();
    let seq = alice.order(bob.id(), &usd, 1);
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::UnknownCurrency { .. }
    ));
}

#[test]
fn rejection_zero_amount() {
    let (mut issuer, alice, _, eur) = world();
    let seq = issuer.order(alice.id(), &eur, 0);
    assert_eq!(rejected(&[&issuer], &issuer, seq), Rejection::ZeroAmount);
}

#[test]
fn rejection_self_payment() {
    let (mut issuer, _, _, eur) = world();
    let me = issuer.id();
    let seq = issuer.order(me, &eur, 1);
    assert_eq!(rejected(&[&issuer], &issuer, seq), Rejection::SelfPayment);
}

#[test]
fn rejection_mint_by_non_issuer() {
    let (issuer, mut alice, _, eur) = world();
    let seq = alice.mint(&eur, 5);
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::MintByNonIssuer { issuer: i, .. } if i == issuer.id().to_string()
    ));
}

#[test]
fn rejection_decimals_mismatch() {
    let (mut issuer, _, _, _) = world();
    let eur3 = issuer.currency("EUR", 3).unwrap();
    let seq = issuer.mint(&eur3, 5);
    assert_eq!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::DecimalsMismatch {
            code: "EUR".into(),
            first: 2,
            found: 3
        }
    );
}

#[test]
fn rejection_overflow_at_u64_max() {
    let (mut issuer, _, _, _) = world();
    let big = issuer.currency("BIG", 0).unwrap();
    let first = issuer.mint(&big, u64::MAX);
    applied(&[&issuer], &issuer, first);
    let second = issuer.mint(&big, 1);
    assert_eq!(rejected(&[&issuer], &issuer, second), Rejection::Overflow);
}

#[test]
fn rejection_too_long_memo() {
    let (mut issuer, alice, _, eur) = world();
    let seq = issuer.push(&WalletEntry::Order(Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(1),
        memo: "m".repeat(257),
        expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
        condition: None,
    }));
    assert!(matches!(
        rejected(&[&issuer], &issuer, seq),
        Rejection::TooLong {
            field: "memo",
            len: 257,
            max: 256
        }
    ));
}

#[test]
fn rejection_not_addressed_to_you() {
    let (mut issuer, alice, mut bob, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let seq = bob.accept(&issuer, order);
    assert!(matches!(
        rejected(&[&issuer, &bob], &bob, seq),
        Rejection::NotAddressedToYou { .. }
    ));
}

#[test]
fn rejection_already_resolved_double_accept() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let first = alice.accept(&issuer, order);
    let second = alice.accept(&issuer, order);
    applied(&[&issuer, &alice], &alice, first);
    assert!(matches!(
        rejected(&[&issuer, &alice], &alice, second),
        Rejection::AlreadyResolved { .. }
    ));
    // Also: accept after reject.
    let third = alice.reject(&issuer, order);
    assert!(matches!(
        rejected(&[&issuer, &alice], &alice, third),
        Rejection::AlreadyResolved { .. }
    ));
    let s = state(&[&issuer, &alice]);
    assert_eq!(
        s.wallet(&alice.id()).unwrap().balance(&eur),
        Amount::from_minor(10)
    );
    s.check_conservation().unwrap();
}

#[test]
fn rejection_double_reclaim() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let rejection = alice.reject(&issuer, order);
    let first = issuer.reclaim(order, &alice, rejection);
    let second = issuer.reclaim(order, &alice, rejection);
    applied(&[&issuer, &alice], &issuer, first);
    assert!(matches!(
        rejected(&[&issuer, &alice], &issuer, second),
        Rejection::DoubleReclaim { .. }
    ));
}

#[test]
fn rejection_reclaim_without_rejection() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let accept = alice.accept(&issuer, order);
    // Cite the receiver's accept as if it were a rejection.
    let seq = issuer.reclaim(order, &alice, accept);
    assert!(matches!(
        rejected(&[&issuer, &alice], &issuer, seq),
        Rejection::ReclaimWithoutRejection { reason, .. } if reason.contains("accept")
    ));
    // Cite a rejection of another order.
    let other = issuer.order(alice.id(), &eur, 5);
    let other_rejection = alice.reject(&issuer, other);
    let third = issuer.order(alice.id(), &eur, 6);
    let seq = issuer.reclaim(third, &alice, other_rejection);
    assert!(matches!(
        rejected(&[&issuer, &alice], &issuer, seq),
        Rejection::ReclaimWithoutRejection { reason, .. } if reason.contains("of order")
    ));
}

#[test]
fn rejection_not_the_receivers_rejection() {
    let (mut issuer, alice, mut bob, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    // Bob (not the receiver) rejects it; his byzantine notaries certify that.
    let bobs = bob.reject(&issuer, order);
    let seq = issuer.reclaim(order, &bob, bobs);
    assert!(matches!(
        rejected(&[&issuer, &bob], &issuer, seq),
        Rejection::NotTheReceiversRejection { .. }
    ));
}

#[test]
fn rejection_unknown_order() {
    let (mut issuer, mut alice, mut bob, eur) = world();
    // Alice reclaims the issuer's order: not hers.
    let order = issuer.order(bob.id(), &eur, 10);
    let rejection = bob.reject(&issuer, order);
    let id = issuer.log[order.get() as usize - 1].entry.id();
    let seq = alice.push(&WalletEntry::Reclaim(Reclaim {
        order: OrderRef { seq: order, id },
        rejection: bob.cite(rejection),
    }));
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::UnknownOrder { .. }
    ));
}

#[test]
fn rejection_missing_citation() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let mut citation = issuer.cite(order);
    citation.entry.bytes.header = vec![1, 2, 3];
    let seq = alice.push(&WalletEntry::Accept(scrip_ledger::content::Accept {
        order: citation,
        preimage: None,
        claim: None,
    }));
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::MissingCitation { .. }
    ));
}

#[test]
fn rejection_cited_certificate_invalid() {
    let (mut issuer, mut alice, _, eur) = world();
    issuer.voters = 2;
    let order = issuer.order(alice.id(), &eur, 10);
    let seq = alice.accept(&issuer, order);
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::CitedCertificate {
            error: CertificateError::BelowQuorum { .. }
        }
    ));
}

#[test]
fn rejection_not_an_order() {
    let (issuer, mut alice, _, _) = world();
    // Cite the issuer's mint as if it were an order.
    let seq = alice.accept(&issuer, Seq::new(2));
    assert_eq!(rejected(&[&alice], &alice, seq), Rejection::NotAnOrder);
}

#[test]
fn rejection_overlap_too_small() {
    let (mut issuer, _, _, eur) = world();
    // Carol's notaries are disjoint from the issuer's.
    let mut carol = wallet(4, 150);
    let order = issuer.order(carol.id(), &eur, 10);
    let seq = carol.accept(&issuer, order);
    assert!(matches!(
        rejected(&[&issuer, &carol], &carol, seq),
        Rejection::OverlapTooSmall {
            overlap: 0,
            required: 4,
            ..
        }
    ));
}

// ----- adversarial certificates and citations -----

fn forge_certificate(
    issuer: &KitWallet,
    entry: &Entry,
    edit: impl FnOnce(&mut Vec<Vote>),
) -> Certificate {
    let subject = subject_of(entry);
    let mut votes: Vec<Vote> = issuer
        .notaries
        .iter()
        .map(|n| Vote::sign(n, &subject))
        .collect();
    votes.sort_by_key(|v| v.notary);
    edit(&mut votes);
    Certificate {
        entry: entry.id(),
        round: ROUND_ZERO,
        votes,
    }
}

fn with_certificate(
    issuer: &mut KitWallet,
    content: &WalletEntry,
    edit: impl FnOnce(&mut Vec<Vote>),
) -> Seq {
    let entry = issuer.sign(content);
    let certificate = forge_certificate(issuer, &entry, edit);
    issuer.push_raw(entry, Some(certificate));
    issuer.head().unwrap().seq
}

fn certificate_error(issuer: &KitWallet, seq: Seq) -> CertificateError {
    match rejected(&[issuer], issuer, seq) {
        Rejection::InvalidCertificate { error, .. } => error,
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicated_signer_is_refused() {
    let (mut issuer, alice, _, eur) = world();
    let seq = with_certificate(&mut issuer, &order_to(alice.id(), &eur, 1), |votes| {
        votes[1] = votes[0];
    });
    assert!(matches!(
        certificate_error(&issuer, seq),
        CertificateError::DuplicateSigner { .. }
    ));
}

#[test]
fn signer_outside_the_set_is_refused() {
    let (mut issuer, alice, _, eur) = world();
    let entry = issuer.sign(&order_to(alice.id(), &eur, 1));
    let outsider = Keypair::from_seed(&[250; 32]);
    let certificate = forge_certificate(&issuer, &entry, |votes| {
        votes[0] = Vote::sign(&outsider, &subject_of(&entry));
        votes.sort_by_key(|v| v.notary);
    });
    issuer.push_raw(entry, Some(certificate));
    let seq = issuer.head().unwrap().seq;
    assert!(matches!(
        certificate_error(&issuer, seq),
        CertificateError::UnknownSigner { .. }
    ));
}

#[test]
fn forged_vote_signature_is_refused() {
    let (mut issuer, alice, _, eur) = world();
    let seq = with_certificate(&mut issuer, &order_to(alice.id(), &eur, 1), |votes| {
        let mut bytes = *votes[2].signature.as_bytes();
        bytes[5] ^= 1;
        votes[2].signature = scrip_feed::Signature::from_bytes(bytes);
    });
    assert!(matches!(
        certificate_error(&issuer, seq),
        CertificateError::BadSignature { .. }
    ));
}

#[test]
fn vote_with_the_wrong_domain_is_refused() {
    let (mut issuer, alice, _, eur) = world();
    let entry = issuer.sign(&order_to(alice.id(), &eur, 1));
    let subject = subject_of(&entry);
    let notary = Arc::clone(&issuer.notaries[0]);
    let certificate = forge_certificate(&issuer, &entry, |votes| {
        let i = votes.iter().position(|v| v.notary == notary.id()).unwrap();
        votes[i].signature = notary.sign(b"scrip/other/v1", &subject.message());
    });
    issuer.push_raw(entry, Some(certificate));
    let seq = issuer.head().unwrap().seq;
    assert!(matches!(
        certificate_error(&issuer, seq),
        CertificateError::BadSignature { .. }
    ));
}

#[test]
fn certificate_for_another_entry_is_refused() {
    let (mut issuer, alice, _, eur) = world();
    let other = issuer.sign(&order_to(alice.id(), &eur, 2));
    let entry = issuer.sign(&order_to(alice.id(), &eur, 1));
    let certificate = issuer.certify(&other);
    issuer.push_raw(entry, Some(certificate));
    let seq = issuer.head().unwrap().seq;
    assert!(matches!(
        certificate_error(&issuer, seq),
        CertificateError::WrongEntry { .. }
    ));
}

#[test]
fn non_canonical_certificate_bytes_are_refused() {
    let (issuer, _, _, _) = world();
    let bytes = issuer.log[0].certificate.as_ref().unwrap().encode();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Certificate::decode(&trailing),
        Err(CertificateError::Malformed { .. })
    ));
    let mut version = bytes;
    version[0] = 9;
    assert!(matches!(
        Certificate::decode(&version),
        Err(CertificateError::Malformed { .. })
    ));
}

#[test]
fn accept_citing_a_forked_order_is_refused() {
    let (mut issuer, mut alice, _, eur) = world();
    // The issuer signs two orders for one slot; only one is certified. Alice cites the other
    // one, with the certified one's certificate.
    let certified = issuer.order(alice.id(), &eur, 10);
    let twin = {
        let mut earlier = issuer.clone();
        earlier.log.truncate(certified.get() as usize - 1);
        earlier.sign(&order_to(alice.id(), &eur, 99))
    };
    let mut citation = issuer.cite(certified);
    citation.entry.bytes = scrip_feed::EntryBytes::of(&twin);
    let seq = alice.push(&WalletEntry::Accept(scrip_ledger::content::Accept {
        order: citation,
        preimage: None,
        claim: None,
    }));
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::CitedCertificate {
            error: CertificateError::WrongEntry { .. }
        }
    ));
}

#[test]
fn accept_citing_an_uncertified_order_is_refused() {
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 10);
    let mut citation = issuer.cite(order);
    citation.entry.certificate.votes.clear();
    let seq = alice.push(&WalletEntry::Accept(scrip_ledger::content::Accept {
        order: citation,
        preimage: None,
        claim: None,
    }));
    assert!(matches!(
        rejected(&[&alice], &alice, seq),
        Rejection::CitedCertificate {
            error: CertificateError::BelowQuorum { have: 0, .. }
        }
    ));
}

#[test]
fn amounts_at_u64_max_move_without_overflow() {
    let (mut issuer, mut alice, _, _) = world();
    let max = issuer.currency("MAX", 0).unwrap();
    issuer.mint(&max, u64::MAX);
    let order = issuer.order(alice.id(), &max, u64::MAX);
    let accept = alice.accept(&issuer, order);
    applied(&[&issuer, &alice], &alice, accept);
    let s = state(&[&issuer, &alice]);
    assert_eq!(
        s.wallet(&alice.id()).unwrap().balance(&max),
        Amount::from_minor(u64::MAX)
    );
    s.check_conservation().unwrap();
}

#[test]
fn cross_group_overlap_at_the_threshold_is_accepted_one_less_refused() {
    // n = 6 on both sides (f = 1): 2·1 + 1 + 1 = 4 shared notaries needed.
    let pool = notaries(180, 9);
    let set = |range: std::ops::Range<usize>| pool[range].to_vec();
    let mut sender = KitWallet::new(Arc::new(Keypair::from_seed(&[41; 32])), set(0..6));
    let eur = sender.currency("EUR", 2).unwrap();
    sender.mint(&eur, 1_000);
    let mut at_threshold = KitWallet::new(Arc::new(Keypair::from_seed(&[42; 32])), set(2..8));
    let mut one_less = KitWallet::new(Arc::new(Keypair::from_seed(&[43; 32])), set(3..9));
    let to_first = sender.order(at_threshold.id(), &eur, 10);
    let to_second = sender.order(one_less.id(), &eur, 10);
    let ok = at_threshold.accept(&sender, to_first);
    let refused = one_less.accept(&sender, to_second);
    applied(&[&sender, &at_threshold], &at_threshold, ok);
    assert!(matches!(
        rejected(&[&sender, &one_less], &one_less, refused),
        Rejection::OverlapTooSmall {
            overlap: 3,
            required: 4,
            ..
        }
    ));
    // The refusal names both sets and the overlap needed.
    let message = rejected(&[&sender, &one_less], &one_less, refused).to_string();
    assert!(message.contains("3 notaries, 4 are needed"), "{message}");
}

#[test]
fn a_faulty_quorum_creating_money_is_exposed_by_the_cross_check() {
    // The issuer's notaries (all byzantine here) certify an overspending order; the receiver,
    // seeing a valid certificate, accepts it. Each log alone replays cleanly for the receiver;
    // the fold of both logs shows where the money came from nowhere.
    let (mut issuer, mut alice, _, eur) = world();
    let order = issuer.order(alice.id(), &eur, 1_000_000);
    let accept = alice.accept(&issuer, order);
    applied(&[&alice], &alice, accept);
    let both = state(&[&issuer, &alice]);
    assert!(both.check_conservation().is_err());
    let found = both.inconsistencies();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("does not apply as a valid order"),
        "{found:?}"
    );
    assert!(
        found[0].contains("certified by the group {"),
        "names the group: {found:?}"
    );
    // With honest notaries the overspend is never certified.
    let mut honest = issuer.clone();
    let refused = honest.propose(&order_to(alice.id(), &eur, 1_000_000));
    assert!(matches!(refused, Err(Rejection::Overspend { .. })));
}

#[test]
fn a_falsely_certified_order_after_an_uncertified_entry_is_exposed_too() {
    // The issuer's log stops at an uncertified entry; a faulty quorum certifies an order after
    // it anyway, and the receiver accepts it. The issuer's log reaches the order's seq, so it
    // is not "just behind": the credit has no debit, and the cross-check says so.
    let (mut issuer, mut alice, _, eur) = world();
    let stray = issuer.sign(&order_to(alice.id(), &eur, 1));
    issuer.push_raw(stray, None);
    let order = issuer.order(alice.id(), &eur, 500);
    let accept = alice.accept(&issuer, order);
    applied(&[&alice], &alice, accept);
    let both = state(&[&issuer, &alice]);
    assert!(both.check_conservation().is_err());
    let found = both.inconsistencies();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("does not apply as a valid order"),
        "{found:?}"
    );
    // A copy of the issuer's log that stops before the order is only behind: nothing to say.
    let mut behind = issuer.clone();
    behind.log.truncate(2);
    assert!(state(&[&behind, &alice]).inconsistencies().is_empty());
}
