//! Ledger benchmarks: the fold of 1M certified entries (signatures pre-verified) and the audit
//! of a 100k-entry wallet with n = 4 notaries (every signature re-checked, against the same-run
//! ceiling), then divan micro benchmarks.
//!
//! `cargo bench -p scrip-ledger`; `SCRIP_BENCH_FOLD_ENTRIES` and `SCRIP_BENCH_AUDIT_ENTRIES`
//! shrink the macro runs.
#![allow(clippy::unwrap_used)]

// The allocator the `scrip` binary uses, so that figures match the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use divan::Bencher;
use scrip_feed::Keypair;
use scrip_ledger::kit::{KitWallet, notaries};
use scrip_ledger::{TrustSignatures, VerifyAll, bench};

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| "macro".contains(f.as_str())) {
        let fold = scrip_feed::bench::env_usize("SCRIP_BENCH_FOLD_ENTRIES", 1_000_000);
        let audit = scrip_feed::bench::env_usize("SCRIP_BENCH_AUDIT_ENTRIES", 100_000);
        println!("ledger: fold of {fold} entries, audit of {audit} entries");
        for figure in bench::run(fold, audit) {
            println!("  {figure}");
        }
        println!("  targets: fold >= 1000000 entries/s; audit ratio >= 0.70\n");
    }
    divan::main();
}

fn paying_pair() -> (KitWallet, KitWallet) {
    let mut issuer = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), notaries(100, 4));
    let mut alice = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), notaries(100, 4));
    let eur = issuer.currency("EUR", 2).unwrap();
    issuer.mint(&eur, 1_000_000);
    let order = issuer.order(alice.id(), &eur, 10);
    alice.accept(&issuer, order);
    (issuer, alice)
}

/// The notary's question for an order, signatures checked.
#[divan::bench]
fn check_order(bencher: Bencher<'_, '_>) {
    let (issuer, alice) = paying_pair();
    let state = scrip_ledger::fold(issuer.log.clone(), &TrustSignatures);
    let eur = issuer.currency("EUR", 2).unwrap();
    let mut next = issuer.clone();
    next.order(alice.id(), &eur, 1);
    let entry = next.log.last().unwrap().entry.clone();
    bencher.bench_local(|| state.check(&entry, &VerifyAll).unwrap());
}

/// The notary's question for an accept (its citation's signatures checked: 1 + 3 + 1 + 3 + 1).
#[divan::bench]
fn check_accept(bencher: Bencher<'_, '_>) {
    let (issuer, alice) = paying_pair();
    let mut before = alice.clone();
    before.log.truncate(1);
    let state = scrip_ledger::fold(before.log.clone(), &TrustSignatures);
    let entry = alice.log[1].entry.clone();
    let _ = issuer;
    bencher.bench_local(|| state.check(&entry, &VerifyAll).unwrap());
}
