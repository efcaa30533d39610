//! Fuzz target: histories of four wallets in which a faulty group certifies whatever the bytes
//! say (overspends, second resolutions, reclaims of accepted orders, entries left uncertified,
//! forks). Whenever the fold of all the logs breaks conservation, the cross-check must name
//! what broke it (`LedgerState::inconsistencies`, `docs/protocol/ledger.md` §6).
//!
//! Run: `cargo install cargo-fuzz; cd fuzz; cargo fuzz run inconsistencies --sanitizer none`
//! (the property test `every_break_of_conservation_is_named` in `ledger/tests/it/invariants.rs`
//! checks the same in CI).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use scrip_feed::{Entry, Keypair, Seq, Timestamp};
use scrip_ledger::content::{Accept, Mint, Order, OrderRef, Reclaim, Reject, WalletEntry};
use scrip_ledger::kit::{KitWallet, notaries};
use scrip_ledger::{Amount, CertifiedEntry, TrustSignatures, fold};

const WALLETS: usize = 4;

fuzz_target!(|bytes: &[u8]| {
    let set = notaries(60, 4);
    let mut wallets: Vec<KitWallet> = (0..WALLETS)
        .map(|i| {
            KitWallet::new(
                Arc::new(Keypair::from_seed(&[i as u8 + 1; 32])),
                set.clone(),
            )
        })
        .collect();
    let currencies = [
        wallets[0].currency("EUR", 2).expect("currency"),
        wallets[1].currency("USD", 0).expect("currency"),
    ];
    wallets[0].push(&WalletEntry::Mint(Mint {
        currency: currencies[0],
        amount: Amount::from_minor(10_000),
    }));
    wallets[1].push(&WalletEntry::Mint(Mint {
        currency: currencies[1],
        amount: Amount::from_minor(10_000),
    }));
    let mut orders: Vec<(usize, Seq, usize)> = Vec::new();
    let mut rejects: Vec<(usize, Seq, usize)> = Vec::new();
    for step in bytes.chunks(4).take(40) {
        let [kind, a, b, c] = [
            step[0],
            *step.get(1).unwrap_or(&0),
            *step.get(2).unwrap_or(&0),
            *step.get(3).unwrap_or(&0),
        ];
        let (a, b) = (a as usize % WALLETS, b as usize % WALLETS);
        let amount = Amount::from_minor(u64::from(c) * 50);
        match kind % 7 {
            0 => {
                let currency = currencies[b % 2];
                wallets[a].push(&WalletEntry::Mint(Mint { currency, amount }));
            }
            1 => {
                let content = WalletEntry::Order(Order {
                    to: wallets[b].id(),
                    currency: currencies[c as usize % 2],
                    amount,
                    memo: String::new(),
                    expiry: None,
                    condition: None,
                });
                let seq = wallets[a].push(&content);
                orders.push((a, seq, b));
            }
            2 | 3 if !orders.is_empty() => {
                let index = c as usize % orders.len();
                let (sender, seq, receiver) = orders[index];
                let by = if a == 0 {
                    (receiver + 1) % WALLETS
                } else {
                    receiver
                };
                let order = wallets[sender].cite(seq);
                if kind % 7 == 2 {
                    wallets[by].push(&WalletEntry::Accept(Accept {
                        order,
                        preimage: None,
                        claim: None,
                    }));
                } else {
                    let at = wallets[by].push(&WalletEntry::Reject(Reject {
                        order,
                        reason: String::new(),
                    }));
                    rejects.push((by, at, index));
                }
            }
            4 if !rejects.is_empty() => {
                let (rejector, at, index) = rejects[c as usize % rejects.len()];
                let (sender, order_seq, _) = orders[index];
                let id = wallets[sender].log[order_seq.get() as usize - 1].entry.id();
                let rejection = wallets[rejector].cite(at);
                let by = if a == 0 {
                    (sender + 1) % WALLETS
                } else {
                    sender
                };
                wallets[by].push(&WalletEntry::Reclaim(Reclaim {
                    order: OrderRef { seq: order_seq, id },
                    rejection,
                }));
            }
            5 => {
                let content = WalletEntry::Order(Order {
                    to: wallets[b].id(),
                    currency: currencies[0],
                    amount,
                    memo: String::new(),
                    expiry: None,
                    condition: None,
                });
                let entry = wallets[a].sign(&content);
                wallets[a].push_raw(entry, None);
            }
            6 if wallets[a].log.len() >= 2 => {
                let previous = wallets[a].log[wallets[a].log.len() - 2].entry.head();
                let content = WalletEntry::Order(Order {
                    to: wallets[b].id(),
                    currency: currencies[0],
                    amount,
                    memo: "fork".into(),
                    expiry: None,
                    condition: None,
                });
                let Ok(payload) = content.to_payload() else {
                    continue;
                };
                let Ok(entry) = Entry::create(
                    &wallets[a].key,
                    Some(previous),
                    Timestamp::from_millis(u64::from(c)),
                    payload,
                ) else {
                    continue;
                };
                let certificate = wallets[a].certify(&entry);
                let seq = entry.seq();
                wallets[a].push_raw(entry, Some(certificate));
                orders.push((a, seq, b));
            }
            _ => {}
        }
        let entries: Vec<CertifiedEntry> =
            wallets.iter().flat_map(|w| w.log.iter().cloned()).collect();
        let state = fold(entries, &TrustSignatures);
        if let Err(broken) = state.check_conservation() {
            assert!(
                !state.inconsistencies().is_empty(),
                "conservation broken ({broken}) and nothing named"
            );
        }
    }
});
