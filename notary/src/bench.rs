//! The end-to-end transfer benchmark, shared by `cargo bench -p scrip-notary` and `scrip bench`:
//! n = 4 notaries, each with its own sled feed store and sled vote store (real fsync), wallets
//! with sled stores, all over loopback Noise TCP in one process on this machine. A transfer is
//! an order certified, then its accept certified.
//!
//! The ceiling is the machine's crypto budget for the signatures a transfer makes and checks,
//! measured in the same run: with n = 4 and q = 3, per certification the client signs 1 entry,
//! each of the 4 notaries checks the entry's signature, the previous entry (sent along) with its
//! 4 votes, and for an accept the citation (the order and its 4 votes, the sender's genesis and
//! its 4 votes), then signs 1 vote; the client checks the 4 votes. So an order costs 5 signatures
//! made and 4 × (1 + 5) + 4 = 28 checked, an accept 5 made and 4 × (1 + 5 + 10) + 4 = 68
//! checked: 10 made and 96 checked per transfer.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scrip_feed::bench::{Figure, raw_verify_rate};
use scrip_feed::identity::signing_bytes;
use scrip_feed::{Keypair, SledOptions, SledStore, Store};
use scrip_ledger::content::{Accept, Mint, Order, WalletEntry};
use scrip_ledger::{Amount, Currency};
use scrip_replicate::Tcp;

use crate::certified;
use crate::client::{ClientConfig, NotaryAddr, WalletClient};
use crate::error::{Error, Result};
use crate::pending::PendingFile;
use crate::service::{Notary, NotaryConfig, NotaryHandle};
use crate::votes::SledVoteStore;

/// Signatures made per transfer (see the module docs).
pub const SIGNS_PER_TRANSFER: f64 = 10.0;
/// Signatures checked per transfer (see the module docs).
pub const VERIFIES_PER_TRANSFER: f64 = 96.0;

/// What [`transfers`] measured.
#[derive(Clone, Debug)]
pub struct TransferFigures {
    /// Transfers completed.
    pub transfers: usize,
    /// Wall time for all of them.
    pub elapsed: Duration,
    /// Each transfer's latency (order proposed to accept certified), sorted.
    pub latencies: Vec<Duration>,
    /// Raw single-core signing rate (signatures/s), same run.
    pub sign_per_sec: f64,
    /// Raw single-core `verify_strict` rate, same run.
    pub verify_per_sec: f64,
    /// Cores the ceiling counts.
    pub cores: f64,
}

impl TransferFigures {
    /// Transfers per second.
    pub fn rate(&self) -> f64 {
        self.transfers as f64 / self.elapsed.as_secs_f64()
    }

    /// The crypto ceiling in transfers per second.
    pub fn ceiling(&self) -> f64 {
        let seconds =
            SIGNS_PER_TRANSFER / self.sign_per_sec + VERIFIES_PER_TRANSFER / self.verify_per_sec;
        self.cores / seconds
    }

    fn percentile(&self, per_mille: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        // Nearest rank, in integers: p is given in thousandths.
        let last = self.latencies.len() - 1;
        let index = (last * per_mille + 500) / 1000;
        self.latencies[index.min(last)]
    }

    /// The figures for a report.
    pub fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::plain("raw sign (1 core)", self.sign_per_sec, "sig/s"),
            Figure::plain("raw verify_strict (1 core)", self.verify_per_sec, "sig/s"),
            Figure::against(
                "transfers (order + accept), n = 4, fsync",
                self.rate(),
                "transfers/s",
                self.ceiling(),
            ),
            Figure::plain(
                "transfer latency p50",
                self.percentile(500).as_secs_f64() * 1000.0,
                "ms",
            ),
            Figure::plain(
                "transfer latency p99",
                self.percentile(990).as_secs_f64() * 1000.0,
                "ms",
            ),
        ]
    }
}

/// Raw single-core signing rate: ed25519 signatures per second over header-sized messages.
pub fn raw_sign_rate(total: Duration) -> f64 {
    let key = Keypair::from_seed(&[0x5d; 32]);
    let message = signing_bytes(b"scrip/bench/v1", &[7u8; 120]);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut signed = 0u64;
        while start.elapsed() < total / 5 {
            for _ in 0..64 {
                std::hint::black_box(key.sign_prepared(&message));
                signed += 1;
            }
        }
        best = best.max(signed as f64 / start.elapsed().as_secs_f64());
    }
    best
}

fn open_store(path: &Path) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(SledStore::open(path, SledOptions::default())?))
}

/// Runs `pairs` wallet pairs concurrently, each making `per_pair` transfers one after another,
/// through 4 notaries; everything durable under `dir`.
pub async fn transfers(dir: &Path, pairs: usize, per_pair: usize) -> Result<TransferFigures> {
    let notary_keys: Vec<Arc<Keypair>> = (0..4u8)
        .map(|i| Arc::new(Keypair::from_seed(&[0x70 + i; 32])))
        .collect();
    let mut notaries: Vec<NotaryHandle> = Vec::new();
    for (i, key) in notary_keys.iter().enumerate() {
        let votes = Arc::new(SledVoteStore::open(&dir.join(format!("notary{i}/votes")))?);
        let store = open_store(&dir.join(format!("notary{i}/feed")))?;
        notaries.push(
            Notary::spawn(
                Arc::clone(key),
                store,
                votes,
                Tcp,
                NotaryConfig::default(),
                Arc::new(|_| {}),
            )
            .await?,
        );
    }
    let addrs: Vec<NotaryAddr> = notaries
        .iter()
        .map(|n| NotaryAddr {
            id: n.id(),
            address: n.address().to_string(),
        })
        .collect();
    let client = |seed: u8, name: String| -> Result<WalletClient<Tcp>> {
        let key = Arc::new(Keypair::from_seed(&[seed; 32]));
        let store = open_store(&dir.join(format!("{name}/feed")))?;
        WalletClient::new(
            key,
            store,
            PendingFile::new(dir.join(format!("{name}/pending"))),
            addrs.clone(),
            Tcp,
            ClientConfig::default(),
        )
    };
    // Set up every pair: both wallets created, the sender funded by its own mint.
    let mut setups = Vec::new();
    for p in 0..pairs {
        let seed = u8::try_from(p).unwrap_or(0).wrapping_mul(2).wrapping_add(1);
        let mut sender = client(seed, format!("sender{p}"))?;
        let mut receiver = client(seed.wrapping_add(1), format!("receiver{p}"))?;
        sender.create().await?;
        receiver.create().await?;
        let currency = Currency::new(sender.id(), "EUR", 2)?;
        sender
            .submit(&WalletEntry::Mint(Mint {
                currency,
                amount: Amount::from_minor(u64::MAX / 4),
            }))
            .await?;
        setups.push((sender, receiver, currency));
    }
    let sign_per_sec = raw_sign_rate(Duration::from_millis(800));
    let verify_per_sec = raw_verify_rate(Duration::from_millis(800));
    let start = Instant::now();
    let runs: Vec<_> = setups
        .into_iter()
        .map(|(mut sender, mut receiver, currency)| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_pair);
                for _ in 0..per_pair {
                    let began = Instant::now();
                    let order = sender
                        .submit(&WalletEntry::Order(Order {
                            to: receiver.id(),
                            currency,
                            amount: Amount::from_minor(1),
                            memo: String::new(),
                        }))
                        .await?;
                    // The receiver gets the sender's log (replication's job in a real node).
                    let log = certified::certified_log(sender.store().as_ref(), &sender.id())?;
                    certified::store_certified(receiver.store().as_ref(), &log)?;
                    let citation = certified::citation(
                        receiver.store().as_ref(),
                        &sender.id(),
                        order.entry.seq(),
                    )?;
                    receiver
                        .submit(&WalletEntry::Accept(Accept { order: citation }))
                        .await?;
                    latencies.push(began.elapsed());
                }
                Ok::<_, Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for run in runs {
        latencies.extend(
            run.await
                .map_err(|_| Error::Wallet("a benchmark task failed".into()))??,
        );
    }
    let elapsed = start.elapsed();
    latencies.sort();
    for notary in notaries {
        notary.shutdown().await;
    }
    Ok(TransferFigures {
        transfers: latencies.len(),
        elapsed,
        latencies,
        sign_per_sec,
        verify_per_sec: verify_per_sec.max(raw_verify_rate(Duration::from_millis(500))),
        cores: std::thread::available_parallelism().map_or(1, usize::from) as f64,
    })
}
