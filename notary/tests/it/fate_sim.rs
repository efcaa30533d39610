//! A seeded simulation of order fates (`ledger.md` §5a, `notary.md` §3a): one sender's notary
//! set decides the fates of several orders (hash-locked and not) while the receiver claims and
//! the sender cancels or refunds at random times; every request reaches every notary after its
//! own random delay (so deliveries interleave and reorder, and some are delivered twice);
//! notaries crash at every step of a decision (before the fate is durable: forgotten and never
//! signed; after it is durable, before the answer: kept and not sent) and restart from their
//! durable fates; up to f of them are byzantine and sign whatever they are asked; every honest
//! clock is off by up to the margin δ. Each notary runs the real pure decision
//! (`NotaryState::decide_fate`) on real signed requests.
//!
//! What must hold, from every vote signed:
//! 1. no order has both a claim certificate and a void certificate (q signers each);
//! 2. no order has an expiry certificate all of whose signers signed before the expiry (true
//!    time): nothing is refunded early;
//! 3. no order has a claim certificate all of whose signers decided the claim (made it durable;
//!    a byzantine one: signed it) at or after the expiry: nothing is claimed late. (A notary may
//!    *send* a claim after the expiry, signing again a claim it decided before: a crash after the
//!    record and before the answer does that.)
//!
//! Negative controls show the test can fail: f + 1 byzantine notaries break (1); clocks ahead by
//! more than δ break (2); clocks behind by more than δ break (3).
//!
//! CI runs a short fixed budget; `SCRIP_FATE_SEEDS=<n>` runs more, `SCRIP_FATE_SEED=<seed>`
//! replays one (seeds are printed).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use scrip_feed::rng::SplitMix64;
use scrip_feed::{Keypair, Seq, Timestamp};
use scrip_ledger::content::Preimage;
use scrip_ledger::kit::{KitWallet, notaries, order};
use scrip_ledger::{Fate, FateSubject, TrustSignatures};
use scrip_notary::decision::{FateDecision, NotaryState};
use scrip_notary::wire::FateRequest;

/// The margin δ every notary uses, in (simulated) milliseconds.
const SKEW: u64 = 1_000;
/// Orders per run.
const ORDERS: usize = 6;

#[derive(Clone, Copy, Debug)]
struct Setup {
    /// Notaries in the set.
    n: u8,
    /// How many of them are byzantine.
    byzantine: usize,
    /// Each honest clock is off by a random amount in [-error, error] ...
    clock_error: u64,
    /// ... plus this bias.
    clock_bias: i64,
}

/// What a run found: the first violation of each property, if any.
#[derive(Debug, Default)]
struct Found {
    both: Option<String>,
    early_refund: Option<String>,
    late_claim: Option<String>,
    certificates: usize,
}

struct Notary {
    key: Arc<Keypair>,
    state: NotaryState,
    durable: Vec<FateSubject>,
    byzantine: bool,
    offset: i64,
}

impl Notary {
    fn restart(&mut self, sender: &KitWallet) {
        let mut state = NotaryState::new(self.key.id());
        for entry in &sender.log {
            state.learn(entry, &TrustSignatures).unwrap();
        }
        for fate in &self.durable {
            state.restore_fate(fate.order, fate.fate);
        }
        self.state = state;
    }
}

/// One request, delivered to one notary at a true time.
struct Delivery {
    at: u64,
    notary: usize,
    order: usize,
    request: FateRequest,
}

fn run(seed: u64, setup: Setup) -> Found {
    let mut rng = SplitMix64::new(seed);
    let set = notaries(120, setup.n);
    let mut sender = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
    let receiver = Keypair::from_seed(&[2; 32]);
    let eur = sender.currency("EUR", 2).unwrap();
    sender.mint(&eur, 1_000_000);
    // Orders expiring between 10 s and 30 s of simulated time; half of them hash-locked.
    let mut orders: Vec<(Seq, u64, Option<Preimage>)> = Vec::new();
    for i in 0..ORDERS {
        let expiry = 10_000 + rng.below(20_000);
        let preimage = (i % 2 == 0).then(|| Preimage([i as u8 + 1; 32]));
        let seq = sender.push(&order(
            receiver.id(),
            &eur,
            10,
            Timestamp::from_millis(expiry),
            preimage.as_ref().map(Preimage::lock),
        ));
        orders.push((seq, expiry, preimage));
    }
    let mut notaries: Vec<Notary> = set
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let error = if setup.clock_error == 0 {
                0
            } else {
                rng.below(2 * setup.clock_error + 1) as i64 - setup.clock_error as i64
            };
            let mut notary = Notary {
                key: Arc::clone(key),
                state: NotaryState::new(key.id()),
                durable: Vec::new(),
                byzantine: i < setup.byzantine,
                offset: error + setup.clock_bias,
            };
            notary.restart(&sender);
            notary
        })
        .collect();

    // Requests: claims by the receiver, cancels (unlocked orders) and expiry voids by the
    // sender, each at a random time and sent to every notary with its own delay.
    let mut deliveries: Vec<Delivery> = Vec::new();
    for (index, (seq, expiry, preimage)) in orders.iter().enumerate() {
        let attempts = 2 + rng.below(5);
        for _ in 0..attempts {
            let fate = match rng.below(3) {
                0 => Fate::Claimed,
                1 if preimage.is_none() => Fate::Cancelled,
                _ => Fate::Expired,
            };
            // Around the expiry most of the time: that is where the rules bite.
            let at = if rng.below(3) == 0 {
                rng.below(40_000)
            } else {
                (expiry + rng.below(6 * SKEW)).saturating_sub(3 * SKEW)
            };
            let asker = if fate.is_void() {
                &sender.key
            } else {
                &receiver
            };
            let subject = FateSubject {
                wallet: sender.id(),
                order: sender.order_ref(*seq).id,
                fate,
            };
            let request = FateRequest {
                order: sender.cite(*seq),
                fate,
                preimage: if fate == Fate::Claimed {
                    preimage.clone()
                } else {
                    None
                },
                signature: subject.request(asker),
            };
            for notary in 0..notaries.len() {
                let copies = if rng.below(5) == 0 { 2 } else { 1 };
                for _ in 0..copies {
                    deliveries.push(Delivery {
                        at: at + rng.below(4 * SKEW),
                        notary,
                        order: index,
                        request: request.clone(),
                    });
                }
            }
        }
    }
    deliveries.sort_by_key(|d| d.at);

    // Every vote signed: per order, per fate, the earliest true time each notary signed it; and
    // when each notary decided each fate (made it durable; a byzantine one: signed it).
    let mut votes: Vec<BTreeMap<Fate, BTreeMap<usize, u64>>> = vec![BTreeMap::new(); ORDERS];
    let mut decided: Vec<BTreeMap<Fate, BTreeMap<usize, u64>>> = vec![BTreeMap::new(); ORDERS];
    for delivery in deliveries {
        let notary = &mut notaries[delivery.notary];
        let signed = if notary.byzantine {
            Some(delivery.request.fate)
        } else {
            let now = Timestamp::from_millis(delivery.at.saturating_add_signed(notary.offset));
            let crash = rng.below(10);
            match notary.state.decide_fate(&delivery.request, now, SKEW) {
                FateDecision::Vote(subject) => match crash {
                    // Crashed before the fate was durable: never signed, forgotten.
                    0 => {
                        notary.restart(&sender);
                        None
                    }
                    // Crashed after it was durable, before answering: kept, not sent.
                    1 => {
                        notary.durable.push(subject);
                        notary.restart(&sender);
                        decided[delivery.order]
                            .entry(subject.fate)
                            .or_default()
                            .entry(delivery.notary)
                            .or_insert(delivery.at);
                        None
                    }
                    _ => {
                        notary.durable.push(subject);
                        decided[delivery.order]
                            .entry(subject.fate)
                            .or_default()
                            .entry(delivery.notary)
                            .or_insert(delivery.at);
                        Some(subject.fate)
                    }
                },
                FateDecision::Again(subject) => Some(subject.fate),
                FateDecision::Refuse(_) => None,
            }
        };
        if let Some(fate) = signed
            && notaries[delivery.notary].byzantine
        {
            decided[delivery.order]
                .entry(fate)
                .or_default()
                .entry(delivery.notary)
                .or_insert(delivery.at);
        }
        if let Some(fate) = signed {
            votes[delivery.order]
                .entry(fate)
                .or_default()
                .entry(delivery.notary)
                .or_insert(delivery.at);
        }
    }

    let quorum = set.len() - (set.len() - 1) / 3;
    let mut found = Found::default();
    for (index, (_, expiry, _)) in orders.iter().enumerate() {
        let signers = |fate: Fate| votes[index].get(&fate).cloned().unwrap_or_default();
        let claim = signers(Fate::Claimed);
        let voids: BTreeSet<usize> = signers(Fate::Cancelled)
            .keys()
            .chain(signers(Fate::Expired).keys())
            .copied()
            .collect();
        if claim.len() >= quorum {
            found.certificates += 1;
        }
        if voids.len() >= quorum {
            found.certificates += 1;
        }
        if claim.len() >= quorum && voids.len() >= quorum {
            found.both.get_or_insert(format!(
                "order {index}: claim signed by {:?}, void by {voids:?}",
                claim.keys().collect::<Vec<_>>()
            ));
        }
        let early = signers(Fate::Expired)
            .values()
            .filter(|&&at| at < *expiry)
            .count();
        if early >= quorum {
            found.early_refund.get_or_insert(format!(
                "order {index}: {early} expiry votes before {expiry}"
            ));
        }
        let claim_decided = decided[index]
            .get(&Fate::Claimed)
            .cloned()
            .unwrap_or_default();
        let late = claim
            .keys()
            .filter(|n| claim_decided.get(n).is_none_or(|&at| at >= *expiry))
            .count();
        if late >= quorum {
            found.late_claim.get_or_insert(format!(
                "order {index}: {late} claims decided from {expiry}"
            ));
        }
    }
    found
}

fn seeds(default: usize) -> Vec<u64> {
    scrip_feed::bench::test_seeds("SCRIP_FATE_SEED", "SCRIP_FATE_SEEDS", default)
}

/// With at most f byzantine notaries and clocks within δ, across many seeds and set sizes:
/// never both fates, nothing refunded early, nothing claimed late; and the runs did decide
/// fates (certificates formed).
#[test]
fn fates_never_conflict_with_f_byzantine_crashes_and_skew_within_the_bound() {
    let mut certificates = 0;
    for n in [4u8, 7] {
        let f = (usize::from(n) - 1) / 3;
        for seed in seeds(60) {
            let setup = Setup {
                n,
                byzantine: f,
                clock_error: SKEW,
                clock_bias: 0,
            };
            let found = run(seed, setup);
            assert!(found.both.is_none(), "seed {seed} {setup:?}: {found:?}");
            assert!(
                found.early_refund.is_none(),
                "seed {seed} {setup:?}: {found:?}"
            );
            assert!(
                found.late_claim.is_none(),
                "seed {seed} {setup:?}: {found:?}"
            );
            certificates += found.certificates;
        }
    }
    assert!(certificates > 0, "no fate was ever decided");
}

/// Negative control: f + 1 byzantine notaries can certify both fates of an order.
#[test]
fn negative_control_f_plus_1_byzantine_notaries_decide_both_fates() {
    let violated = seeds(30).into_iter().any(|seed| {
        run(
            seed,
            Setup {
                n: 4,
                byzantine: 2,
                clock_error: 0,
                clock_bias: 0,
            },
        )
        .both
        .is_some()
    });
    assert!(
        violated,
        "f + 1 byzantine notaries never broke a fate: the test is blind"
    );
}

/// Negative controls: clocks beyond the bound refund early (ahead) or claim late (behind).
#[test]
fn negative_control_clocks_beyond_the_bound_refund_early_or_claim_late() {
    let run_with = |bias: i64| {
        seeds(30).into_iter().map(move |seed| {
            run(
                seed,
                Setup {
                    n: 4,
                    byzantine: 0,
                    clock_error: 0,
                    clock_bias: bias,
                },
            )
        })
    };
    assert!(
        run_with(3 * SKEW as i64).any(|f| f.early_refund.is_some()),
        "clocks 3δ ahead never refunded early: the test is blind"
    );
    assert!(
        run_with(-3 * SKEW as i64).any(|f| f.late_claim.is_some()),
        "clocks 3δ behind never claimed late: the test is blind"
    );
}
