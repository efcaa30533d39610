//! Building certified wallet logs directly, with the notaries' keys in hand: for tests,
//! benchmarks and simulations of the ledger rules. (Real wallets get their certificates from
//! notaries through `scrip-notary`; nothing here is used by them.)

use std::sync::Arc;

use scrip_feed::{Entry, FeedId, Head, Keypair, Seq, Timestamp};

use crate::amount::{Amount, Currency};
use crate::certificate::{Certificate, ROUND_ZERO, Vote};
use crate::content::{
    Accept, CertifiedBytes, Citation, Genesis, Mint, Order, OrderRef, Reclaim, Reject, WalletEntry,
};
use crate::error::Error;
use crate::fate::{Fate, FateCertificate, FateSubject};
use crate::state::CertifiedEntry;
use crate::verify::subject_of;

/// A wallet whose entries this kit signs and certifies.
#[derive(Debug, Clone)]
pub struct KitWallet {
    /// The wallet's key.
    pub key: Arc<Keypair>,
    /// The notaries that certify its entries (all of them vote).
    pub notaries: Vec<Arc<Keypair>>,
    /// Its log so far.
    pub log: Vec<CertifiedEntry>,
    /// How many notaries vote (default: all).
    pub voters: usize,
}

impl KitWallet {
    /// A wallet with key `key` and notaries `notaries`; writes its genesis.
    pub fn new(key: Arc<Keypair>, notaries: Vec<Arc<Keypair>>) -> KitWallet {
        let voters = notaries.len();
        let mut wallet = KitWallet {
            key,
            notaries,
            log: Vec::new(),
            voters,
        };
        let genesis = WalletEntry::Genesis(Genesis {
            notaries: wallet.notaries.iter().map(|k| k.id()).collect(),
        });
        wallet.push(&genesis);
        wallet
    }

    /// The wallet's id.
    pub fn id(&self) -> FeedId {
        self.key.id()
    }

    /// The head of its log.
    pub fn head(&self) -> Option<Head> {
        self.log.last().map(|e| e.entry.head())
    }

    /// Signs `content` as the next entry (without certifying it).
    pub fn sign(&self, content: &WalletEntry) -> Entry {
        self.sign_payload(content.to_payload().unwrap_or_default())
    }

    /// Signs `payload` as the next entry (without certifying it).
    pub fn sign_payload(&self, payload: Vec<u8>) -> Entry {
        let seq = self.log.len() as u64;
        Entry::create(&self.key, self.head(), Timestamp::from_millis(seq), payload)
            .unwrap_or_else(|_| unreachable_entry())
    }

    /// A certificate for `entry` with votes of the first `voters` notaries.
    pub fn certify(&self, entry: &Entry) -> Certificate {
        let subject = subject_of(entry);
        Certificate::from_votes(
            entry.id(),
            ROUND_ZERO,
            self.notaries
                .iter()
                .take(self.voters)
                .map(|n| Vote::sign(n, &subject))
                .collect(),
        )
    }

    /// Signs, certifies and appends `content`; returns its seq.
    pub fn push(&mut self, content: &WalletEntry) -> Seq {
        self.push_payload(content.to_payload().unwrap_or_default())
    }

    /// Signs, certifies and appends `content` written in wallet content version 1 (as wallets
    /// wrote before orders had an expiry); returns its seq.
    pub fn push_v1(&mut self, content: &WalletEntry) -> Seq {
        self.push_payload(content.to_payload_v1().unwrap_or_default())
    }

    /// Signs, certifies and appends `payload`; returns its seq.
    pub fn push_payload(&mut self, payload: Vec<u8>) -> Seq {
        let entry = self.sign_payload(payload);
        let certificate = self.certify(&entry);
        let seq = entry.seq();
        self.log.push(CertifiedEntry {
            entry,
            certificate: Some(certificate),
        });
        seq
    }

    /// Signs `content` and has it certified only if the rules allow it after this wallet's log,
    /// as honest notaries would; returns its seq, or why honest notaries refuse it.
    pub fn propose(&mut self, content: &WalletEntry) -> Result<Seq, crate::error::Rejection> {
        let entry = self.sign(content);
        let state = crate::state::fold(self.log.clone(), &crate::verify::TrustSignatures);
        state.check(&entry, &crate::verify::TrustSignatures)?;
        let certificate = self.certify(&entry);
        let seq = entry.seq();
        self.log.push(CertifiedEntry {
            entry,
            certificate: Some(certificate),
        });
        Ok(seq)
    }

    /// Appends an already signed entry with a given certificate (for adversarial tests).
    pub fn push_raw(&mut self, entry: Entry, certificate: Option<Certificate>) {
        self.log.push(CertifiedEntry { entry, certificate });
    }

    /// The certified bytes of entry `seq`.
    pub fn bytes(&self, seq: Seq) -> CertifiedBytes {
        let certified = &self.log[usize::try_from(seq.get() - 1).unwrap_or(0)];
        CertifiedBytes {
            bytes: scrip_feed::EntryBytes::of(&certified.entry),
            certificate: certified.certificate.clone().unwrap_or(Certificate {
                entry: certified.entry.id(),
                round: ROUND_ZERO,
                votes: vec![],
            }),
        }
    }

    /// A citation of entry `seq` (with this wallet's genesis).
    pub fn cite(&self, seq: Seq) -> Citation {
        Citation {
            entry: self.bytes(seq),
            genesis: self.bytes(Seq::FIRST),
        }
    }

    /// The currency `code` issued by this wallet.
    pub fn currency(&self, code: &str, decimals: u8) -> Result<Currency, Error> {
        Currency::new(self.id(), code, decimals)
    }

    /// Mints.
    pub fn mint(&mut self, currency: &Currency, amount: u64) -> Seq {
        self.push(&WalletEntry::Mint(Mint {
            currency: *currency,
            amount: Amount::from_minor(amount),
        }))
    }

    /// Orders a payment expiring at [`FAR_EXPIRY`], without a condition; returns its seq.
    pub fn order(&mut self, to: FeedId, currency: &Currency, amount: u64) -> Seq {
        self.push(&order(to, currency, amount, FAR_EXPIRY, None))
    }

    /// Accepts `sender`'s order at `seq` (without a preimage), with a claim certificate from
    /// the sender's notaries if the order has an expiry.
    pub fn accept(&mut self, sender: &KitWallet, seq: Seq) -> Seq {
        self.push(&sender.accept_of(seq, None))
    }

    /// The accept of this wallet's order at `seq` that its receiver would write: the citation,
    /// `preimage`, and a claim certificate if the order has an expiry.
    pub fn accept_of(&self, seq: Seq, preimage: Option<crate::content::Preimage>) -> WalletEntry {
        let expires = matches!(
            self.content(seq),
            Some(WalletEntry::Order(Order {
                expiry: Some(_),
                ..
            }))
        );
        WalletEntry::Accept(Accept {
            order: self.cite(seq),
            preimage,
            claim: expires.then(|| self.fate(seq, Fate::Claimed)),
        })
    }

    /// The content of this wallet's entry at `seq`, if it decodes.
    pub fn content(&self, seq: Seq) -> Option<WalletEntry> {
        let entry = &self
            .log
            .get(usize::try_from(seq.get().checked_sub(1)?).ok()?)?
            .entry;
        WalletEntry::from_payload(entry.payload()?).ok()
    }

    /// A fate certificate for this wallet's order at `seq`, with votes of the first `voters`
    /// notaries.
    pub fn fate(&self, seq: Seq, fate: Fate) -> FateCertificate {
        let subject = FateSubject {
            wallet: self.id(),
            order: self.order_ref(seq).id,
            fate,
        };
        FateCertificate::from_votes(
            fate,
            self.notaries
                .iter()
                .take(self.voters)
                .map(|n| subject.vote(n))
                .collect(),
        )
    }

    /// Cancels own order at `seq` (with a void certificate of this wallet's notaries).
    pub fn cancel(&mut self, seq: Seq) -> Seq {
        let entry = WalletEntry::Cancel(crate::content::Cancel {
            order: self.order_ref(seq),
            void: self.fate(seq, Fate::Cancelled),
        });
        self.push(&entry)
    }

    /// Refunds own expired order at `seq` (with a void certificate of this wallet's notaries).
    pub fn refund(&mut self, seq: Seq) -> Seq {
        let entry = WalletEntry::Refund(crate::content::Refund {
            order: self.order_ref(seq),
            void: self.fate(seq, Fate::Expired),
        });
        self.push(&entry)
    }

    /// The id of this wallet's entry at `seq`, as an order reference.
    pub fn order_ref(&self, seq: Seq) -> OrderRef {
        let id = self.log[usize::try_from(seq.get() - 1).unwrap_or(0)]
            .entry
            .id();
        OrderRef { seq, id }
    }

    /// Rejects `sender`'s order at `seq`.
    pub fn reject(&mut self, sender: &KitWallet, seq: Seq) -> Seq {
        self.push(&WalletEntry::Reject(Reject {
            order: sender.cite(seq),
            reason: "no thanks".into(),
        }))
    }

    /// Reclaims own order at `order_seq`, citing `receiver`'s rejection at `rejection_seq`.
    pub fn reclaim(&mut self, order_seq: Seq, receiver: &KitWallet, rejection_seq: Seq) -> Seq {
        self.push(&WalletEntry::Reclaim(Reclaim {
            order: self.order_ref(order_seq),
            rejection: receiver.cite(rejection_seq),
        }))
    }
}

/// An expiry far away (2100-01-01), for tests whose orders should not expire.
pub const FAR_EXPIRY: Timestamp = Timestamp::from_millis(4_102_444_800_000);

/// An order of `amount` minor units to `to`, expiring at `expiry`, with an optional hash lock.
pub fn order(
    to: FeedId,
    currency: &Currency,
    amount: u64,
    expiry: Timestamp,
    condition: Option<crate::content::HashLock>,
) -> WalletEntry {
    WalletEntry::Order(Order {
        to,
        currency: *currency,
        amount: Amount::from_minor(amount),
        memo: String::new(),
        expiry: Some(expiry),
        condition,
    })
}

#[cold]
fn unreachable_entry() -> Entry {
    // Entry::create only fails for payloads over the limit or an exhausted seq, which the kit's
    // small logs never reach.
    panic!("the kit made an entry the feed layer refuses")
}

/// `n` notary keys from seeds `base..base + n`.
pub fn notaries(base: u8, n: u8) -> Vec<Arc<Keypair>> {
    (0..n)
        .map(|i| Arc::new(Keypair::from_seed(&[base.wrapping_add(i); 32])))
        .collect()
}
