//! Invariants of the fold on random histories of several wallets and two currencies. Every step
//! is proposed to honest notaries, which certify only what the rules allow after the wallet's
//! log: overspends, double accepts, reclaims without rejections... are attempted and refused.
//!
//! - conservation at every step, per currency: Σ balances + Σ escrow = Σ mints;
//! - no balance above the supply (so none wrapped negative); no order resolved twice; no order
//!   reclaimed unless rejected; no order both accepted and taken back (cancelled or refunded:
//!   the world's fate table plays the honest notaries' fate locks, notary.md section 3);
//! - the fold is independent of arrival order, and applying entries one by one equals refolding.
//!
//! CI runs `SCRIP_LEDGER_CASES` cases (default 64); proptest prints a failing history minimised.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use scrip_feed::{Keypair, Seq};
use scrip_ledger::content::{
    Cancel, Mint, Order, OrderRef, Preimage, Reclaim, Refund, Reject, WalletEntry,
};
use scrip_ledger::fate::Fate;
use scrip_ledger::kit::{KitWallet, notaries};
use scrip_ledger::{
    Amount, CertifiedEntry, Currency, LedgerState, OrderStatus, Outcome, TrustSignatures,
    VerifyAll, fold,
};

const WALLETS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Mint {
        issuer: usize,
        amount: u64,
    },
    Order {
        from: usize,
        to: usize,
        currency: usize,
        amount: u64,
        /// With a hash lock (accepted with its preimage).
        locked: bool,
    },
    /// The order's receiver (or, with `stranger`, another wallet) accepts it.
    Accept {
        pick: usize,
        stranger: bool,
    },
    /// The order's receiver rejects it.
    Reject {
        pick: usize,
    },
    /// The sender of a rejected order reclaims it (or, with `stranger`, another wallet tries).
    Reclaim {
        pick: usize,
        stranger: bool,
    },
    /// The sender takes an order back without the receiver: a cancel, or with `expired` a
    /// refund (the kit has no clock: as if the expiry had passed).
    TakeBack {
        pick: usize,
        expired: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WALLETS;
    prop_oneof![
        1 => (0..2usize, 1..5_000u64).prop_map(|(issuer, amount)| Op::Mint { issuer, amount }),
        5 => (w.clone(), w.clone(), 0..2usize, 0..3_000u64, proptest::bool::weighted(0.3))
            .prop_map(|(from, to, currency, amount, locked)| Op::Order { from, to, currency, amount, locked }),
        4 => (any::<usize>(), proptest::bool::weighted(0.15))
            .prop_map(|(pick, stranger)| Op::Accept { pick, stranger }),
        2 => any::<usize>().prop_map(|pick| Op::Reject { pick }),
        2 => (any::<usize>(), proptest::bool::weighted(0.15))
            .prop_map(|(pick, stranger)| Op::Reclaim { pick, stranger }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, expired)| Op::TakeBack { pick, expired }),
    ]
}

struct World {
    wallets: Vec<KitWallet>,
    currencies: Vec<Currency>,
    /// Every order written: (sender, seq, receiver).
    orders: Vec<(usize, Seq, usize)>,
    /// Every reject written: (rejector, seq, order index).
    rejects: Vec<(usize, Seq, usize)>,
    /// Each order's fate as the honest notaries locked it (by order index): accepted (true)
    /// or taken back (false).
    fates: BTreeMap<usize, bool>,
}

/// The sender's cancel (or, `expired`, refund) of its order, with the void of its notaries.
fn take_back(sender: &KitWallet, order: OrderRef, expired: bool) -> WalletEntry {
    if expired {
        WalletEntry::Refund(Refund {
            order,
            void: sender.fate(order.seq, Fate::Expired),
        })
    } else {
        WalletEntry::Cancel(Cancel {
            order,
            void: sender.fate(order.seq, Fate::Cancelled),
        })
    }
}

/// The preimage of the hash lock of the order at `index`.
fn preimage(index: usize) -> Preimage {
    Preimage(*blake3::hash(&index.to_le_bytes()).as_bytes())
}

impl World {
    fn new() -> World {
        let set = notaries(60, 4);
        let wallets: Vec<KitWallet> = (0..WALLETS)
            .map(|i| {
                KitWallet::new(
                    Arc::new(Keypair::from_seed(&[u8::try_from(i).unwrap() + 1; 32])),
                    set.clone(),
                )
            })
            .collect();
        let currencies = vec![
            wallets[0].currency("EUR", 2).unwrap(),
            wallets[1].currency("USD", 0).unwrap(),
        ];
        let mut world = World {
            wallets,
            currencies,
            orders: Vec::new(),
            rejects: Vec::new(),
            fates: BTreeMap::new(),
        };
        world.apply(&Op::Mint {
            issuer: 0,
            amount: 10_000,
        });
        world.apply(&Op::Mint {
            issuer: 1,
            amount: 10_000,
        });
        world
    }

    /// Proposes the op's entry to honest notaries (the kit certifies it only if the rules
    /// allow it): invalid proposals (overspends, double accepts, ...) are refused and never
    /// enter a log, as with real notaries.
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Mint { issuer, amount } => {
                let currency = self.currencies[issuer];
                let _ = self.wallets[issuer].propose(&WalletEntry::Mint(Mint {
                    currency,
                    amount: Amount::from_minor(amount),
                }));
            }
            Op::Order {
                from,
                to,
                currency,
                amount,
                locked,
            } => {
                let content = WalletEntry::Order(Order {
                    to: self.wallets[to].id(),
                    currency: self.currencies[currency],
                    amount: Amount::from_minor(amount),
                    memo: String::new(),
                    expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                    condition: locked.then(|| preimage(self.orders.len()).lock()),
                });
                if let Ok(seq) = self.wallets[from].propose(&content) {
                    self.orders.push((from, seq, to));
                }
            }
            Op::Accept { pick, stranger } => {
                if self.orders.is_empty() {
                    return;
                }
                let index = pick % self.orders.len();
                let (sender, seq, receiver) = self.orders[index];
                let by = if stranger {
                    (receiver + 1) % WALLETS
                } else {
                    receiver
                };
                // Honest notaries refuse to accept an order they locked as taken back.
                if self.fates.get(&index) == Some(&false) {
                    return;
                }
                let citation = self.wallets[sender].cite(seq);
                let locked = matches!(
                    WalletEntry::from_payload(
                        self.wallets[sender].log[seq.get() as usize - 1]
                            .entry
                            .payload()
                            .unwrap()
                    ),
                    Ok(WalletEntry::Order(Order {
                        condition: Some(_),
                        ..
                    }))
                );
                drop(citation);
                let accept = self.wallets[sender].accept_of(seq, locked.then(|| preimage(index)));
                if self.wallets[by].propose(&accept).is_ok() {
                    self.fates.insert(index, true);
                }
            }
            Op::TakeBack { pick, expired } => {
                if self.orders.is_empty() {
                    return;
                }
                let index = pick % self.orders.len();
                let (sender, seq, _) = self.orders[index];
                // Honest notaries refuse to take back an order they locked as accepted.
                if self.fates.get(&index) == Some(&true) {
                    return;
                }
                let order = self.wallets[sender].order_ref(seq);
                let content = take_back(&self.wallets[sender], order, expired);
                if self.wallets[sender].propose(&content).is_ok() {
                    self.fates.insert(index, false);
                }
            }
            Op::Reject { pick } => {
                if self.orders.is_empty() {
                    return;
                }
                let index = pick % self.orders.len();
                let (sender, seq, receiver) = self.orders[index];
                let content = WalletEntry::Reject(Reject {
                    order: self.wallets[sender].cite(seq),
                    reason: String::new(),
                });
                if let Ok(at) = self.wallets[receiver].propose(&content) {
                    self.rejects.push((receiver, at, index));
                }
            }
            Op::Reclaim { pick, stranger } => {
                if self.rejects.is_empty() {
                    return;
                }
                let (rejector, at, index) = self.rejects[pick % self.rejects.len()];
                let (sender, order_seq, _) = self.orders[index];
                let id = self.wallets[sender].log[order_seq.get() as usize - 1]
                    .entry
                    .id();
                let content = WalletEntry::Reclaim(Reclaim {
                    order: OrderRef { seq: order_seq, id },
                    rejection: self.wallets[rejector].cite(at),
                });
                let by = if stranger {
                    (sender + 1) % WALLETS
                } else {
                    sender
                };
                let _ = self.wallets[by].propose(&content);
            }
        }
    }

    fn entries(&self) -> Vec<CertifiedEntry> {
        self.wallets
            .iter()
            .flat_map(|w| w.log.iter().cloned())
            .collect()
    }
}

fn assert_invariants(state: &LedgerState) {
    state.check_conservation().unwrap();
    let totals = state.totals();
    for ((_, currency), amount) in state.balances() {
        assert!(
            amount <= totals[&currency].supply,
            "a balance above the supply"
        );
    }
    // No order resolved twice: count applied accepts/rejects per order across all wallets.
    let mut resolutions: BTreeMap<_, usize> = BTreeMap::new();
    for wallet in state.wallets() {
        for order in wallet.resolved.keys() {
            *resolutions.entry(*order).or_default() += 1;
        }
    }
    assert!(
        resolutions.values().all(|&n| n == 1),
        "an order resolved twice"
    );
    // No order both accepted and taken back.
    for wallet in state.wallets() {
        for (id, own) in &wallet.orders {
            if own.returned.is_some()
                && let Some(receiver) = state.wallet(&own.to)
            {
                assert!(
                    !matches!(receiver.resolved.get(id), Some(r) if r.accepted),
                    "an order both accepted and taken back"
                );
            }
        }
    }
    // No order reclaimed unless rejected by its receiver.
    for wallet in state.wallets() {
        for (id, own) in &wallet.orders {
            if matches!(
                own.returned,
                Some(scrip_ledger::wallet::Returned::Reclaimed { .. })
            ) {
                let receiver = state.wallet(&own.to).unwrap();
                assert!(matches!(receiver.resolved.get(id), Some(r) if !r.accepted));
            }
        }
    }
    for order in state.orders().values() {
        if order.status == OrderStatus::Reclaimed {
            let receiver = state.wallet(&order.to).unwrap();
            assert!(receiver.resolved.values().any(|r| !r.accepted));
        }
    }
}

fn cases() -> u32 {
    std::env::var("SCRIP_LEDGER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// A fixed seed in CI (0), `PROPTEST_RNG_SEED` to replay or explore another; printed.
fn rng_seed() -> proptest::test_runner::RngSeed {
    proptest::test_runner::RngSeed::Fixed(scrip_feed::bench::proptest_seed())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), rng_seed: rng_seed(), ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_at_every_step(ops in proptest::collection::vec(op(), 1..40), seed in any::<u64>()) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            assert_invariants(&fold(world.entries(), &TrustSignatures));
        }
        let entries = world.entries();
        let full = fold(entries.clone(), &VerifyAll);
        // Signatures were all valid: trusting them changes nothing.
        prop_assert_eq!(full.hash(), fold(entries.clone(), &TrustSignatures).hash());

        // Order-independence: a deterministic shuffle of the input gives a byte-identical state.
        let mut shuffled = entries.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let again = fold(shuffled, &VerifyAll);
        prop_assert_eq!(again.encode(), full.encode());

        // Incremental: wallets' entries applied one at a time, wallets interleaved.
        let mut incremental = LedgerState::new();
        let mut cursors = [0usize; WALLETS];
        let mut turn = seed as usize;
        loop {
            let pending: Vec<usize> = (0..WALLETS).filter(|&w| cursors[w] < world.wallets[w].log.len()).collect();
            if pending.is_empty() {
                break;
            }
            turn = turn.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let w = pending[(turn >> 33) % pending.len()];
            let _ = incremental.apply(&world.wallets[w].log[cursors[w]], &VerifyAll);
            cursors[w] += 1;
        }
        prop_assert_eq!(incremental.hash(), full.hash());

        // One wallet's orders, found through the index, are exactly its share of all orders.
        let all = full.orders();
        for wallet in &world.wallets {
            let id = wallet.id();
            let mine: BTreeMap<_, _> = all
                .iter()
                .filter(|(_, o)| o.from == id || o.to == id)
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            prop_assert_eq!(&full.orders_of(&id), &mine);
            prop_assert_eq!(&incremental.orders_of(&id), &mine);
        }

        // Honest notaries certified only valid entries: every one of them is applied.
        let outcomes: usize = full.wallets().map(|w| w.outcomes.len()).sum();
        prop_assert_eq!(outcomes, entries.len());
        prop_assert!(full.wallets().flat_map(|w| w.outcomes.iter()).all(|(_, o)| *o == Outcome::Applied));
    }
}

#[test]
fn the_parallel_fold_equals_applying_entries_one_by_one() {
    // Large enough for the fold to split wallets across threads.
    let mut workload = scrip_ledger::bench::fold_workload(30_000);
    let parallel = fold(workload.clone(), &TrustSignatures);
    workload.sort_by_key(|e| (e.entry.author(), e.entry.seq()));
    let mut sequential = LedgerState::new();
    for entry in &workload {
        let _ = sequential.apply(entry, &TrustSignatures);
    }
    assert_eq!(parallel.hash(), sequential.hash());
    parallel.check_conservation().unwrap();
    assert!(parallel.inconsistencies().is_empty());
}

/// What a faulty group (more than f faulty notaries) does beyond what honest notaries would.
#[derive(Clone, Debug)]
enum Fault {
    /// Certify the op's entry whatever the rules say (an overspend, a second resolution, a
    /// reclaim of an accepted order, ...).
    CertifyAnything(Op),
    /// Leave an entry of `wallet` uncertified in its log (what follows is certified anyway).
    Uncertified { wallet: usize, amount: u64 },
    /// Certify a second entry at the latest slot of `wallet`: an order to `to`.
    Fork {
        wallet: usize,
        to: usize,
        amount: u64,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    let w = 0..WALLETS;
    prop_oneof![
        6 => op().prop_map(Fault::CertifyAnything),
        1 => (w.clone(), 0..3_000u64).prop_map(|(wallet, amount)| Fault::Uncertified { wallet, amount }),
        1 => (w.clone(), w, 0..3_000u64).prop_map(|(wallet, to, amount)| Fault::Fork { wallet, to, amount }),
    ]
}

impl World {
    /// The content `op` stands for in this world, if it names anything yet.
    fn content(&self, op: &Op) -> Option<(usize, WalletEntry)> {
        Some(match *op {
            Op::Mint { issuer, amount } => (
                issuer,
                WalletEntry::Mint(Mint {
                    currency: self.currencies[issuer % 2],
                    amount: Amount::from_minor(amount),
                }),
            ),
            Op::Order {
                from,
                to,
                currency,
                amount,
                locked,
            } => (
                from,
                WalletEntry::Order(Order {
                    to: self.wallets[to].id(),
                    currency: self.currencies[currency],
                    amount: Amount::from_minor(amount),
                    memo: String::new(),
                    expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                    condition: locked.then(|| preimage(self.orders.len()).lock()),
                }),
            ),
            Op::Accept { pick, stranger } => {
                let index = pick % self.orders.len().max(1);
                let (sender, seq, receiver) = *self.orders.get(index)?;
                let by = if stranger {
                    (receiver + 1) % WALLETS
                } else {
                    receiver
                };
                (
                    by,
                    self.wallets[sender].accept_of(seq, Some(preimage(index))),
                )
            }
            Op::TakeBack { pick, expired } => {
                let (sender, seq, _) = *self.orders.get(pick % self.orders.len().max(1))?;
                let order = self.wallets[sender].order_ref(seq);
                let content = take_back(&self.wallets[sender], order, expired);
                (sender, content)
            }
            Op::Reject { pick } => {
                let (sender, seq, receiver) = *self.orders.get(pick % self.orders.len().max(1))?;
                let order = self.wallets[sender].cite(seq);
                (
                    receiver,
                    WalletEntry::Reject(Reject {
                        order,
                        reason: String::new(),
                    }),
                )
            }
            Op::Reclaim { pick, stranger } => {
                let (rejector, at, index) = *self.rejects.get(pick % self.rejects.len().max(1))?;
                let (sender, order_seq, _) = self.orders[index];
                let id = self.wallets[sender].log[order_seq.get() as usize - 1]
                    .entry
                    .id();
                let by = if stranger {
                    (sender + 1) % WALLETS
                } else {
                    sender
                };
                let rejection = self.wallets[rejector].cite(at);
                (
                    by,
                    WalletEntry::Reclaim(Reclaim {
                        order: OrderRef { seq: order_seq, id },
                        rejection,
                    }),
                )
            }
        })
    }

    /// Applies `fault` as a faulty group would.
    fn apply_fault(&mut self, fault: &Fault) {
        match fault {
            Fault::CertifyAnything(op) => {
                let Some((by, content)) = self.content(op) else {
                    return;
                };
                let seq = self.wallets[by].push(&content);
                match (op, &content) {
                    (Op::Order { to, .. }, _) => self.orders.push((by, seq, *to)),
                    (Op::Reject { pick }, _) => {
                        let index = pick % self.orders.len().max(1);
                        self.rejects.push((by, seq, index));
                    }
                    _ => {}
                }
            }
            Fault::Uncertified { wallet, amount } => {
                let content = WalletEntry::Order(Order {
                    to: self.wallets[(wallet + 1) % WALLETS].id(),
                    currency: self.currencies[0],
                    amount: Amount::from_minor(*amount),
                    memo: String::new(),
                    expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                    condition: None,
                });
                let entry = self.wallets[*wallet].sign(&content);
                self.wallets[*wallet].push_raw(entry, None);
            }
            Fault::Fork { wallet, to, amount } => {
                let kit = &self.wallets[*wallet];
                if kit.log.len() < 2 {
                    return;
                }
                let previous = kit.log[kit.log.len() - 2].entry.head();
                let content = WalletEntry::Order(Order {
                    to: self.wallets[*to].id(),
                    currency: self.currencies[0],
                    amount: Amount::from_minor(*amount),
                    memo: String::from("fork"),
                    expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                    condition: None,
                });
                let entry = scrip_feed::Entry::create(
                    &kit.key,
                    Some(previous),
                    scrip_feed::Timestamp::from_millis(u64::MAX / 2),
                    content.to_payload().unwrap(),
                )
                .unwrap();
                let certificate = kit.certify(&entry);
                let seq = entry.seq();
                self.wallets[*wallet].push_raw(entry, Some(certificate));
                self.orders.push((*wallet, seq, *to));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), rng_seed: rng_seed(), ..ProptestConfig::default() })]

    /// With a faulty group certifying anything, leaving entries uncertified and forking logs,
    /// conservation may break: whenever it does, the cross-check names what broke it.
    #[test]
    fn every_break_of_conservation_is_named(
        honest in proptest::collection::vec(op(), 0..15),
        faults in proptest::collection::vec(fault(), 1..25),
    ) {
        let mut world = World::new();
        for op in &honest {
            world.apply(op);
        }
        for fault in &faults {
            world.apply_fault(fault);
            let state = fold(world.entries(), &TrustSignatures);
            if let Err(broken) = state.check_conservation() {
                let named = state.inconsistencies();
                prop_assert!(!named.is_empty(), "conservation broken ({broken}) and nothing named");
                prop_assert!(named.iter().all(|n| n.contains("the group {")), "{named:?}");
            }
        }
    }
}
