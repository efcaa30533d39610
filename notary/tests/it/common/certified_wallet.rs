//! A wallet certified in memory by notary keys (no service running), on the ledger's test kit:
//! its genesis and a mint, for tests of the notary's decision and of its crash behaviour.

use std::sync::Arc;

use scrip_feed::{Entry, Keypair};
use scrip_ledger::certificate::ROUND_ZERO;
use scrip_ledger::content::{Order, WalletEntry};
use scrip_ledger::kit::KitWallet;
use scrip_ledger::verify::subject_of;
use scrip_ledger::{Amount, Certificate, Currency, Vote};

use super::key;

/// A certificate for `entry` with a vote of each of `notaries` (any keys: tests make bad ones).
pub fn certify(notaries: &[Arc<Keypair>], entry: &Entry) -> Certificate {
    let subject = subject_of(entry);
    Certificate::from_votes(
        entry.id(),
        ROUND_ZERO,
        notaries.iter().map(|n| Vote::sign(n, &subject)).collect(),
    )
}

/// A kit wallet with its currency.
pub struct CertifiedWallet {
    pub kit: KitWallet,
    pub currency: Currency,
}

impl std::ops::Deref for CertifiedWallet {
    type Target = KitWallet;
    fn deref(&self) -> &KitWallet {
        &self.kit
    }
}

impl CertifiedWallet {
    /// `wallet` with `notaries`: its genesis and a mint of 1,000 minor units of its own EUR,
    /// each certified by all of them.
    pub fn new(wallet: Arc<Keypair>, notaries: Vec<Arc<Keypair>>) -> CertifiedWallet {
        let mut kit = KitWallet::new(wallet, notaries);
        let currency = kit.currency("EUR", 2).unwrap();
        kit.mint(&currency, 1_000);
        CertifiedWallet { kit, currency }
    }

    /// The next entry: an order of `amount` to wallet `key(2)` (signed, not appended).
    pub fn order(&self, amount: u64) -> Entry {
        self.kit.sign(&WalletEntry::Order(Order {
            to: key(2).id(),
            currency: self.currency,
            amount: Amount::from_minor(amount),
            memo: String::new(),
            expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
            condition: None,
        }))
    }

    /// Appends a certified order of `amount`.
    pub fn extend(&mut self, amount: u64) {
        let entry = self.order(amount);
        let certificate = self.kit.certify(&entry);
        self.kit.push_raw(entry, Some(certificate));
    }
}
