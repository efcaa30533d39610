//! The ledger's macro benchmarks, shared by `cargo bench -p scrip-ledger` and `scrip bench`:
//!
//! - the fold of certified entries whose signatures were verified before (the rules, decoding
//!   and bookkeeping alone);
//! - the audit of one wallet with n = 4 notaries, every signature re-checked, against the
//!   same-run ceiling: (both cores × raw single-check rate) / signatures per entry.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use scrip_feed::bench::{Figure, raw_verify_rate};
use scrip_feed::{
    Entry, EntryId, FeedId, Hash, Head, HeaderFields, Keypair, Seq, Signature, Timestamp,
};

use crate::amount::{Amount, Currency};
use crate::audit::audit;
use crate::certificate::{Certificate, ROUND_ZERO, Vote};
use crate::content::{Accept, CertifiedBytes, Citation, Genesis, Mint, WalletEntry};
use crate::kit::{KitWallet, notaries};
use crate::state::{CertifiedEntry, fold};
use crate::verify::TrustSignatures;

/// A wallet writing entries with placeholder signatures (for the pre-verified fold).
struct Unsigned {
    id: FeedId,
    head: Option<Head>,
    notaries: Vec<FeedId>,
    log: Vec<CertifiedEntry>,
}

impl Unsigned {
    fn new(seed: u64, notaries: &[FeedId]) -> Unsigned {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8] = 0x5c;
        let mut wallet = Unsigned {
            id: Keypair::from_seed(&bytes).id(),
            head: None,
            notaries: notaries.to_vec(),
            log: Vec::new(),
        };
        wallet.push(&WalletEntry::Genesis(Genesis {
            notaries: notaries.to_vec(),
        }));
        wallet
    }

    fn push(&mut self, content: &WalletEntry) -> Seq {
        let payload = content.to_payload().unwrap_or_default();
        let seq = self.head.and_then(|h| h.seq.next()).unwrap_or(Seq::FIRST);
        let fields = HeaderFields {
            version: 1,
            author: self.id,
            seq,
            prev: self.head.map(|h| h.id),
            timestamp: Timestamp::from_millis(seq.get()),
            payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            payload_hash: Hash::of(&payload),
        };
        let mut header = scrip_feed::codec::encode("header", &fields).unwrap_or_default();
        header.extend_from_slice(&[0u8; 64]);
        let Ok(entry) = Entry::decode(&header, Some(payload)) else {
            return seq;
        };
        let mut votes: Vec<Vote> = self
            .notaries
            .iter()
            .map(|n| Vote {
                notary: *n,
                signature: Signature::from_bytes([0; 64]),
            })
            .collect();
        votes.sort_by_key(|v| v.notary);
        self.head = Some(entry.head());
        self.log.push(CertifiedEntry {
            certificate: Some(Certificate {
                entry: entry.id(),
                round: ROUND_ZERO,
                votes,
            }),
            entry,
        });
        seq
    }

    fn bytes(&self, seq: Seq) -> CertifiedBytes {
        let e = &self.log[usize::try_from(seq.get() - 1).unwrap_or(0)];
        CertifiedBytes {
            bytes: scrip_feed::EntryBytes::of(&e.entry),
            certificate: e.certificate.clone().unwrap_or(Certificate {
                entry: EntryId::of_header(b""),
                round: 0,
                votes: vec![],
            }),
        }
    }
}

/// About `entries` certified entries over 101 wallets: an issuer mints and pays 100 wallets,
/// which accept every tenth payment and pay each other; signatures are placeholders (the fold
/// is run trusting them).
pub fn fold_workload(entries: usize) -> Vec<CertifiedEntry> {
    fold_workload_of(entries, 0)
}

/// [`fold_workload`] with wallets made from seeds `first_seed..=first_seed + 100` (the issuer
/// is the first): workloads with different first seeds share no wallet.
pub fn fold_workload_of(entries: usize, first_seed: u64) -> Vec<CertifiedEntry> {
    let notary_ids: Vec<FeedId> = notaries(200, 4).iter().map(|k| k.id()).collect();
    let mut issuer = Unsigned::new(first_seed, &notary_ids);
    let currency = Currency::new(issuer.id, "EUR", 2).unwrap_or_else(|_| unreachable());
    issuer.push(&WalletEntry::Mint(Mint {
        currency,
        amount: Amount::from_minor(u64::MAX / 2),
    }));
    let mut wallets: Vec<Unsigned> = (1..=100)
        .map(|i| Unsigned::new(first_seed + i, &notary_ids))
        .collect();
    let order = |to: FeedId, amount: u64| {
        crate::kit::order(to, &currency, amount, crate::kit::FAR_EXPIRY, None)
    };
    let budget = entries.saturating_sub(102);
    let funding = budget / 10;
    for i in 0..funding / 2 {
        let to = i % wallets.len();
        let seq = issuer.push(&order(wallets[to].id, 1_000_000));
        let citation = Citation {
            entry: issuer.bytes(seq),
            genesis: issuer.bytes(Seq::FIRST),
        };
        let claim = crate::fate::FateCertificate::from_votes(
            crate::fate::Fate::Claimed,
            notary_ids
                .iter()
                .map(|n| Vote {
                    notary: *n,
                    signature: Signature::from_bytes([0; 64]),
                })
                .collect(),
        );
        wallets[to].push(&WalletEntry::Accept(Accept {
            order: citation,
            preimage: None,
            claim: Some(claim),
        }));
    }
    let mut made = 102 + (funding / 2) * 2;
    let mut i = 0usize;
    while made < entries {
        let from = i % wallets.len();
        let to = wallets[(i * 7 + 1) % wallets.len()].id;
        if to != wallets[from].id {
            wallets[from].push(&order(to, 1));
            made += 1;
        }
        i += 1;
    }
    let mut all = issuer.log;
    for wallet in wallets {
        all.extend(wallet.log);
    }
    all
}

#[cold]
fn unreachable() -> ! {
    panic!("a constant currency is valid")
}

/// Folds `entries` pre-verified certified entries; returns entries per second.
pub fn fold_rate(entries: usize) -> (usize, Duration) {
    let workload = fold_workload(entries);
    let count = workload.len();
    let start = Instant::now();
    let state = fold(workload, &TrustSignatures);
    let elapsed = start.elapsed();
    debug_assert!(state.check_conservation().is_ok());
    (count, elapsed)
}

/// A wallet with n = 4 notaries (3 vote per certificate): genesis, a mint, then orders, every
/// signature real. Signatures per entry: 1 + 3.
pub fn audit_workload(entries: usize) -> (FeedId, Vec<CertifiedEntry>) {
    let notary_keys = notaries(210, 4);
    let mut wallet = KitWallet::new(Arc::new(Keypair::from_seed(&[209; 32])), notary_keys);
    wallet.voters = 3;
    let currency = wallet.currency("EUR", 2).unwrap_or_else(|_| unreachable());
    wallet.mint(&currency, u64::MAX / 2);
    let receiver = Keypair::from_seed(&[208; 32]).id();
    // Sign the chain (sequential), then the votes (in parallel).
    let mut unsigned: Vec<Entry> = Vec::with_capacity(entries);
    let mut head = wallet.head();
    for i in 2..entries {
        let content = crate::kit::order(receiver, &currency, 1, crate::kit::FAR_EXPIRY, None);
        let payload = content.to_payload().unwrap_or_default();
        let Ok(entry) = Entry::create(&wallet.key, head, Timestamp::from_millis(i as u64), payload)
        else {
            break;
        };
        head = Some(entry.head());
        unsigned.push(entry);
    }
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let chunk = unsigned.len().div_ceil(cores).max(1);
    let wallet_ref = &wallet;
    let certified: Vec<CertifiedEntry> = thread::scope(|scope| {
        let handles: Vec<_> = unsigned
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|entry| CertifiedEntry {
                            certificate: Some(wallet_ref.certify(entry)),
                            entry: entry.clone(),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut log = wallet.log.clone();
    log.extend(certified);
    (wallet.id(), log)
}

/// Runs both macro benchmarks and returns their figures.
pub fn run(fold_entries: usize, audit_entries: usize) -> Vec<Figure> {
    let (folded, fold_time) = fold_rate(fold_entries);
    let (wallet, log) = audit_workload(audit_entries);
    let raw = raw_verify_rate(Duration::from_millis(1500));
    let start = Instant::now();
    let report = audit(&wallet, &log);
    let audit_time = start.elapsed();
    let raw = raw.max(raw_verify_rate(Duration::from_millis(1500)));
    let cores = thread::available_parallelism().map_or(1, usize::from) as f64;
    let signatures_per_entry = 4.0;
    let audit_rate = report.entries as f64 / audit_time.as_secs_f64();
    vec![
        Figure::plain(
            "fold, signatures pre-verified",
            folded as f64 / fold_time.as_secs_f64(),
            "entries/s",
        ),
        Figure::plain("raw single signature checks (1 core)", raw, "sig/s"),
        Figure::against(
            "audit, n = 4, every signature re-checked",
            audit_rate,
            "entries/s",
            cores * raw / signatures_per_entry,
        ),
    ]
}
