//! How orders end (ledger.md §3, version 2): expiry and hash locks on orders, accepts with a
//! preimage, cancels and refunds, and version-1 logs folding as before. The kit's notaries
//! certify whatever they are given, so these logs exercise the fold's own checks (the clock
//! and the fate locks are the notaries' part: `notary/tests/it/ends.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use scrip_feed::{Keypair, Seq, Timestamp};
use scrip_ledger::amount::Amount;
use scrip_ledger::content::{Accept, Cancel, HashLock, Preimage, Refund, WalletEntry};
use scrip_ledger::fate::{Fate, FateCertificate};
use scrip_ledger::kit::{FAR_EXPIRY, KitWallet, notaries, order};
use scrip_ledger::{Currency, LedgerState, OrderStatus, Outcome, Rejection, VerifyAll, fold};

fn wallet(seed: u8) -> KitWallet {
    KitWallet::new(Arc::new(Keypair::from_seed(&[seed; 32])), notaries(100, 4))
}

fn world() -> (KitWallet, KitWallet, Currency) {
    let mut issuer = wallet(1);
    let alice = wallet(2);
    let eur = issuer.currency("EUR", 2).unwrap();
    issuer.mint(&eur, 100_000);
    (issuer, alice, eur)
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
        .unwrap()
}

fn rejected(wallets: &[&KitWallet], who: &KitWallet, seq: Seq) -> Rejection {
    match outcome(wallets, who, seq) {
        Outcome::Rejected(r) => *r,
        Outcome::Applied => panic!("entry #{seq} was applied"),
    }
}

fn status(wallets: &[&KitWallet], sender: &KitWallet, seq: Seq) -> OrderStatus {
    state(wallets).orders()[&sender.order_ref(seq).id].status
}

fn secret(byte: u8) -> Preimage {
    Preimage([byte; 32])
}

fn accept_with(receiver: &mut KitWallet, sender: &KitWallet, seq: Seq, p: Option<Preimage>) -> Seq {
    receiver.push(&sender.accept_of(seq, p))
}

fn cancel(wallet: &mut KitWallet, seq: Seq) -> Seq {
    wallet.cancel(seq)
}

fn refund(wallet: &mut KitWallet, seq: Seq) -> Seq {
    wallet.refund(seq)
}

#[test]
fn a_cancel_returns_an_unconditional_orders_escrow() {
    let (mut issuer, alice, eur) = world();
    let paid = issuer.order(alice.id(), &eur, 700);
    assert_eq!(
        status(&[&issuer, &alice], &issuer, paid),
        OrderStatus::Pending
    );
    let back = cancel(&mut issuer, paid);
    assert_eq!(outcome(&[&issuer, &alice], &issuer, back), Outcome::Applied);
    let s = state(&[&issuer, &alice]);
    assert_eq!(
        status(&[&issuer, &alice], &issuer, paid),
        OrderStatus::Cancelled
    );
    assert_eq!(
        s.wallet(&issuer.id()).unwrap().balance(&eur),
        Amount::from_minor(100_000)
    );
    assert_eq!(s.totals()[&eur].escrow, Amount::ZERO);
    s.check_conservation().unwrap();
    // Twice: the escrow is gone.
    let again = cancel(&mut issuer, paid);
    assert_eq!(
        rejected(&[&issuer, &alice], &issuer, again).code(),
        "double-reclaim"
    );
    let after = refund(&mut issuer, paid);
    assert_eq!(
        rejected(&[&issuer, &alice], &issuer, after).code(),
        "double-reclaim"
    );
}

#[test]
fn a_refund_returns_an_expired_orders_escrow_and_names_its_end() {
    let (mut issuer, alice, eur) = world();
    let lock = secret(7).lock();
    let paid = issuer.push(&order(
        alice.id(),
        &eur,
        300,
        Timestamp::from_millis(1_000),
        Some(lock),
    ));
    let back = refund(&mut issuer, paid);
    assert_eq!(outcome(&[&issuer, &alice], &issuer, back), Outcome::Applied);
    assert_eq!(
        status(&[&issuer, &alice], &issuer, paid),
        OrderStatus::Refunded
    );
    state(&[&issuer, &alice]).check_conservation().unwrap();
}

#[test]
fn rejection_conditional_cancel() {
    let (mut issuer, alice, eur) = world();
    let paid = issuer.push(&order(
        alice.id(),
        &eur,
        300,
        FAR_EXPIRY,
        Some(secret(1).lock()),
    ));
    let back = cancel(&mut issuer, paid);
    assert_eq!(
        rejected(&[&issuer, &alice], &issuer, back).code(),
        "conditional-cancel"
    );
}

#[test]
fn rejection_no_expiry_for_a_version_1_order() {
    let (mut issuer, alice, eur) = world();
    let v1 = WalletEntry::Order(scrip_ledger::content::Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(100),
        memo: String::new(),
        expiry: None,
        condition: None,
    });
    let paid = issuer.push_v1(&v1);
    // A version-1 order is never claimed, so it is never voided either: it ends as before
    // (accepted, or rejected and reclaimed).
    let back = refund(&mut issuer, paid);
    assert_eq!(
        rejected(&[&issuer, &alice], &issuer, back).code(),
        "no-expiry"
    );
    let cancelled = cancel(&mut issuer, paid);
    assert_eq!(
        rejected(&[&issuer, &alice], &issuer, cancelled).code(),
        "no-expiry"
    );
}

#[test]
fn cancel_or_refund_of_another_wallets_order_is_an_unknown_order() {
    let (issuer, mut alice, eur) = world();
    let mut issuer = issuer;
    let paid = issuer.order(alice.id(), &eur, 100);
    // Alice names the issuer's order as if it were hers.
    let order = issuer.order_ref(paid);
    let seq = alice.push(&WalletEntry::Cancel(Cancel {
        order,
        void: issuer.fate(paid, Fate::Cancelled),
    }));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, seq).code(),
        "unknown-order"
    );
    let seq = alice.push(&WalletEntry::Refund(Refund {
        order,
        void: issuer.fate(paid, Fate::Expired),
    }));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, seq).code(),
        "unknown-order"
    );
}

#[test]
fn a_hash_locked_order_is_accepted_with_its_preimage_only() {
    let (mut issuer, mut alice, eur) = world();
    let lock = secret(9).lock();
    let paid = issuer.push(&order(alice.id(), &eur, 500, FAR_EXPIRY, Some(lock)));
    let other = issuer.push(&order(
        alice.id(),
        &eur,
        500,
        FAR_EXPIRY,
        Some(secret(8).lock()),
    ));
    let all = |i: &KitWallet, a: &KitWallet| state(&[i, a]);

    let none = accept_with(&mut alice, &issuer, paid, None);
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, none).code(),
        "missing-preimage"
    );
    let wrong = accept_with(&mut alice, &issuer, paid, Some(secret(10)));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, wrong).code(),
        "wrong-preimage"
    );
    // The preimage of another order's lock.
    let for_other = accept_with(&mut alice, &issuer, paid, Some(secret(8)));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, for_other).code(),
        "wrong-preimage"
    );
    let right = accept_with(&mut alice, &issuer, paid, Some(secret(9)));
    assert_eq!(outcome(&[&issuer, &alice], &alice, right), Outcome::Applied);
    assert_eq!(
        status(&[&issuer, &alice], &issuer, paid),
        OrderStatus::Accepted
    );
    assert_eq!(
        all(&issuer, &alice)
            .wallet(&alice.id())
            .unwrap()
            .balance(&eur),
        Amount::from_minor(500)
    );
    // The other order, opened with its own preimage.
    let opened = accept_with(&mut alice, &issuer, other, Some(secret(8)));
    assert_eq!(
        outcome(&[&issuer, &alice], &alice, opened),
        Outcome::Applied
    );
    all(&issuer, &alice).check_conservation().unwrap();
}

#[test]
fn rejection_unexpected_preimage() {
    let (mut issuer, mut alice, eur) = world();
    let paid = issuer.order(alice.id(), &eur, 100);
    let seq = accept_with(&mut alice, &issuer, paid, Some(secret(1)));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, seq).code(),
        "unexpected-preimage"
    );
}

/// A hash lock is plain blake3 of the 32-byte preimage; its hex form round-trips.
#[test]
fn a_hash_lock_is_blake3_of_the_preimage() {
    let preimage = secret(3);
    let lock = preimage.lock();
    assert_eq!(lock.0, *blake3::hash(&[3u8; 32]).as_bytes());
    assert!(lock.opens(&preimage));
    assert_eq!(HashLock::from_hex(&lock.to_hex()).unwrap(), lock);
    assert_eq!(Preimage::from_hex(&preimage.to_hex()).unwrap(), preimage);
    assert!(HashLock::from_hex("zz").is_err());
    assert_eq!(format!("{preimage:?}"), "Preimage(<redacted>)");
}

/// Logs written in wallet content version 1 fold exactly as before, beside version-2 entries.
#[test]
fn a_version_1_log_folds_as_before() {
    let (mut issuer, mut alice, eur) = world();
    let v1_order = WalletEntry::Order(scrip_ledger::content::Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(250),
        memo: "old".into(),
        expiry: None,
        condition: None,
    });
    let paid = issuer.push_v1(&v1_order);
    let accepted = alice.push_v1(&WalletEntry::Accept(Accept {
        order: issuer.cite(paid),
        preimage: None,
        claim: None,
    }));
    assert_eq!(
        outcome(&[&issuer, &alice], &alice, accepted),
        Outcome::Applied
    );
    let s = state(&[&issuer, &alice]);
    assert_eq!(
        s.orders()[&issuer.order_ref(paid).id].status,
        OrderStatus::Accepted
    );
    assert_eq!(
        s.wallet(&alice.id()).unwrap().balance(&eur),
        Amount::from_minor(250)
    );
    s.check_conservation().unwrap();
    // Version 1 cannot say what version 2 added.
    assert!(
        order(alice.id(), &eur, 1, FAR_EXPIRY, None)
            .to_payload_v1()
            .is_err()
    );
}

/// With more than f faulty notaries in the groups, an order can be both accepted and taken
/// back; conservation then breaks, and the inconsistency names both groups.
#[test]
fn an_order_both_accepted_and_cancelled_is_named() {
    let (mut issuer, mut alice, eur) = world();
    let paid = issuer.order(alice.id(), &eur, 400);
    alice.accept(&issuer, paid);
    cancel(&mut issuer, paid);
    let s = state(&[&issuer, &alice]);
    assert!(s.check_conservation().is_err());
    let found = s.inconsistencies();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("both accepted"), "{}", found[0]);
    assert!(
        found[0].contains("signed both its claim and its void"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("the group {"), "{}", found[0]);
}

/// An accept of an order with an expiry needs the claim certificate of the sender's notaries,
/// for that order and that fate; a version-1 order is never claimed.
#[test]
fn rejection_missing_claim_invalid_fate_and_unexpected_claim() {
    let (mut issuer, mut alice, eur) = world();
    let paid = issuer.order(alice.id(), &eur, 100);
    let other = issuer.order(alice.id(), &eur, 100);
    let accept = |claim: Option<FateCertificate>| {
        WalletEntry::Accept(Accept {
            order: issuer.cite(paid),
            preimage: None,
            claim,
        })
    };
    let entries = [
        (accept(None), "missing-claim"),
        // Another order's claim.
        (
            accept(Some(issuer.fate(other, Fate::Claimed))),
            "invalid-fate",
        ),
        // A void is no claim.
        (
            accept(Some(issuer.fate(paid, Fate::Cancelled))),
            "invalid-fate",
        ),
        // A void's votes relabelled as a claim.
        (
            accept(Some(FateCertificate {
                fate: Fate::Claimed,
                votes: issuer.fate(paid, Fate::Cancelled).votes,
            })),
            "invalid-fate",
        ),
        // Too few votes.
        (
            accept(Some(FateCertificate {
                fate: Fate::Claimed,
                votes: issuer.fate(paid, Fate::Claimed).votes[..2].to_vec(),
            })),
            "invalid-fate",
        ),
    ];
    for (entry, code) in entries {
        let seq = alice.push(&entry);
        assert_eq!(rejected(&[&issuer, &alice], &alice, seq).code(), code);
    }
    let seq = accept_with(&mut alice, &issuer, paid, None);
    assert_eq!(outcome(&[&issuer, &alice], &alice, seq), Outcome::Applied);

    // A version-1 order with a claim: refused.
    let v1 = WalletEntry::Order(scrip_ledger::content::Order {
        to: alice.id(),
        currency: eur,
        amount: Amount::from_minor(10),
        memo: String::new(),
        expiry: None,
        condition: None,
    });
    let old = issuer.push_v1(&v1);
    let seq = alice.push(&WalletEntry::Accept(Accept {
        order: issuer.cite(old),
        preimage: None,
        claim: Some(issuer.fate(old, Fate::Claimed)),
    }));
    assert_eq!(
        rejected(&[&issuer, &alice], &alice, seq).code(),
        "unexpected-claim"
    );
}

/// A cancel needs a void certificate for that order with the fate `cancelled`, a refund one
/// with the fate `expired`, both from the wallet's own notaries.
#[test]
fn a_take_back_needs_the_void_of_its_kind() {
    let (mut issuer, alice, eur) = world();
    let paid = issuer.order(alice.id(), &eur, 100);
    let order = issuer.order_ref(paid);
    let wrong = [
        WalletEntry::Cancel(Cancel {
            order,
            void: issuer.fate(paid, Fate::Expired),
        }),
        WalletEntry::Refund(Refund {
            order,
            void: issuer.fate(paid, Fate::Cancelled),
        }),
        WalletEntry::Cancel(Cancel {
            order,
            void: issuer.fate(paid, Fate::Claimed),
        }),
    ];
    for entry in wrong {
        let seq = issuer.push(&entry);
        assert_eq!(
            rejected(&[&issuer, &alice], &issuer, seq).code(),
            "invalid-fate"
        );
    }
    let seq = issuer.refund(paid);
    assert_eq!(outcome(&[&issuer, &alice], &issuer, seq), Outcome::Applied);
}
