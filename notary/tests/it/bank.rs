//! A Jepsen-style bank test in turmoil's deterministic simulation: three wallets and two
//! currencies make random concurrent orders, accepts (each claimed first from the payer's
//! notaries), rejects, reclaims and cancels (racing the receiver's claim) through four notaries
//! that crash and restart, while links between wallets and notaries partition and heal. At the
//! end, on every store, the fold is sound and conservation holds, and every entry a client
//! acknowledged is certified and present.
//!
//! The seed is printed; `SCRIP_SIM_SEED=<seed>` reproduces a run, `SCRIP_BANK_SEEDS=<n>` runs n
//! seeds (CI: 2).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::needless_range_loop
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrip_feed::rng::SplitMix64;
use scrip_feed::{EntryId, FeedId, Keypair, MemoryStore, Seq, Store};
use scrip_ledger::content::{Mint, Order, OrderRef, Reclaim, Reject, WalletEntry};
use scrip_ledger::{Amount, CertifiedEntry, Currency, Fate, OrderStatus, VerifyAll, fold};
use scrip_notary::certified;
use scrip_notary::{
    ClientConfig, MemoryVoteStore, Notary, NotaryAddr, NotaryConfig, PendingFile, VoteStore,
    WalletClient,
};
use scrip_replicate::transport::{TransportConfig, Turmoil};

const NOTARIES: usize = 4;
const WALLETS: usize = 3;
const PORT: u16 = 9000;

fn notary_key(i: usize) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[100 + i as u8; 32]))
}

fn wallet_key(i: usize) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[1 + i as u8; 32]))
}

/// What the wallets see of each other (stands in for replication): each wallet's certified log.
type Board = Arc<Mutex<BTreeMap<FeedId, Vec<CertifiedEntry>>>>;

fn transport() -> TransportConfig {
    TransportConfig {
        handshake_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(30),
        ..TransportConfig::default()
    }
}

fn publish(board: &Board, store: &dyn Store, wallet: FeedId) {
    let log = certified::certified_log(store, &wallet).unwrap();
    board.lock().unwrap().insert(wallet, log);
}

fn copy_from_board(board: &Board, store: &dyn Store, wallet: &FeedId) {
    let log = board
        .lock()
        .unwrap()
        .get(wallet)
        .cloned()
        .unwrap_or_default();
    let _ = certified::store_certified(store, &log);
}

async fn wallet_loop(
    i: usize,
    seed: u64,
    steps: usize,
    store: Arc<dyn Store>,
    board: Board,
    acked: Arc<Mutex<Vec<(FeedId, Seq, EntryId)>>>,
    dir: std::path::PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let notaries: Vec<NotaryAddr> = (0..NOTARIES)
        .map(|n| NotaryAddr {
            id: notary_key(n).id(),
            address: format!("notary{n}:{PORT}"),
        })
        .collect();
    let config = ClientConfig {
        transport: transport(),
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(8),
        retry: Duration::from_millis(300),
    };
    let me = wallet_key(i);
    let mut client = WalletClient::new(
        Arc::clone(&me),
        Arc::clone(&store),
        PendingFile::new(dir.join(format!("pending{i}"))),
        notaries,
        Turmoil,
        config,
    )?;
    let ack = |entry: &CertifiedEntry| {
        acked
            .lock()
            .unwrap()
            .push((entry.entry.author(), entry.entry.seq(), entry.entry.id()));
    };
    // Create the wallet (retrying through faults).
    loop {
        match client.create().await {
            Ok(genesis) => {
                ack(&genesis);
                break;
            }
            Err(_) => {
                if let Ok(Some(scrip_notary::client::Earlier::Finished(done))) =
                    client.resume().await
                {
                    ack(&done);
                    break;
                }
                if client.log().await?.len() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    publish(&board, store.as_ref(), me.id());
    let mut rng = SplitMix64::new(seed ^ (i as u64 * 0x1234_5678));
    let currencies: Vec<Currency> = (0..2)
        .map(|c| Currency::new(wallet_key(c).id(), if c == 0 { "EUR" } else { "USD" }, 2).unwrap())
        .collect();
    for _ in 0..steps {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        // Finish anything pending first (same bytes).
        if let Ok(Some(scrip_notary::client::Earlier::Finished(done))) = client.resume().await {
            ack(&done);
            publish(&board, store.as_ref(), me.id());
        }
        let content = match rng.below(10) {
            0 | 1 if i < 2 => Some(Act::Submit(WalletEntry::Mint(Mint {
                currency: currencies[i],
                amount: Amount::from_minor(1 + rng.below(5_000)),
            }))),
            0..=4 => {
                let to = wallet_key(
                    ((i as u64 + 1 + rng.below(WALLETS as u64 - 1)) % WALLETS as u64) as usize,
                )
                .id();
                Some(Act::Submit(WalletEntry::Order(Order {
                    to,
                    currency: currencies[rng.below(2) as usize],
                    amount: Amount::from_minor(1 + rng.below(3_000)),
                    memo: String::new(),
                    expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                    condition: None,
                })))
            }
            5..=8 => {
                // Resolve an order addressed to me, or reclaim a rejected one of mine.
                let snapshot = board.lock().unwrap().clone();
                let all: Vec<CertifiedEntry> = snapshot.values().flatten().cloned().collect();
                let state = fold(all, &scrip_ledger::TrustSignatures);
                let orders = state.orders();
                let mine_pending: Vec<_> = orders
                    .iter()
                    .filter(|(_, o)| o.to == me.id() && o.status == OrderStatus::Pending)
                    .collect();
                let mine_rejected: Vec<_> = orders
                    .iter()
                    .filter(|(_, o)| o.from == me.id() && o.status == OrderStatus::Rejected)
                    .collect();
                if let Some((id, order)) =
                    mine_pending.get(rng.below(mine_pending.len().max(1) as u64) as usize)
                {
                    copy_from_board(&board, store.as_ref(), &order.from);
                    let seq = state.wallet(&order.from).unwrap().orders[*id].seq;
                    let citation = certified::citation(store.as_ref(), &order.from, Seq::new(seq))?;
                    Some(if rng.below(3) == 0 {
                        Act::Submit(WalletEntry::Reject(Reject {
                            order: citation,
                            reason: "no".into(),
                        }))
                    } else {
                        // Claimed first from the payer's notaries, then accepted.
                        Act::Accept(citation)
                    })
                } else if let Some((id, order)) = mine_rejected.first() {
                    copy_from_board(&board, store.as_ref(), &order.to);
                    let receiver = state.wallet(&order.to).unwrap();
                    let rejection_seq = receiver.resolved[*id].seq;
                    let own_seq = state.wallet(&me.id()).unwrap().orders[*id].seq;
                    Some(Act::Submit(WalletEntry::Reclaim(Reclaim {
                        order: OrderRef {
                            seq: Seq::new(own_seq),
                            id: **id,
                        },
                        rejection: certified::citation(
                            store.as_ref(),
                            &order.to,
                            Seq::new(rejection_seq),
                        )?,
                    })))
                } else {
                    None
                }
            }
            9 => {
                // Cancel one of my pending orders (its receiver may be claiming it meanwhile:
                // the fate decides, never both).
                let snapshot = board.lock().unwrap().clone();
                let all: Vec<CertifiedEntry> = snapshot.values().flatten().cloned().collect();
                let state = fold(all, &scrip_ledger::TrustSignatures);
                state
                    .orders()
                    .values()
                    .find(|o| o.from == me.id() && o.status == OrderStatus::Pending)
                    .map(|o| Act::Cancel(Seq::new(o.seq)))
            }
            _ => None,
        };
        let Some(act) = content else { continue };
        let done = match act {
            Act::Submit(content) => client.submit(&content).await,
            Act::Accept(citation) => client.accept(citation, None).await,
            Act::Cancel(seq) => client.take_back(seq, Fate::Cancelled).await,
        };
        match done {
            Ok(entry) => {
                ack(&entry);
                publish(&board, store.as_ref(), me.id());
            }
            Err(err) => tracing::debug!(wallet = i, %err, "submit failed"),
        }
    }
    // Finish what is pending, through the end of the faults.
    for _ in 0..40 {
        match client.resume().await {
            Ok(Some(scrip_notary::client::Earlier::Finished(done))) => ack(&done),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    publish(&board, store.as_ref(), me.id());
    Ok(())
}

/// What a wallet does in one step.
enum Act {
    /// Submit this entry.
    Submit(WalletEntry),
    /// Claim and accept this order.
    Accept(scrip_ledger::Citation),
    /// Cancel my order at this seq.
    Cancel(Seq),
}

/// Runs one seed; returns how many orders ended accepted and cancelled.
fn run_bank(seed: u64) -> (usize, usize) {
    eprintln!("bank test: SCRIP_SIM_SEED={seed}");
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(900))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let dir = tempfile::tempdir().unwrap();
    let notary_stores: Vec<Arc<dyn Store>> = (0..NOTARIES)
        .map(|_| Arc::new(MemoryStore::new()) as Arc<dyn Store>)
        .collect();
    let vote_stores: Vec<Arc<dyn VoteStore>> = (0..NOTARIES)
        .map(|_| Arc::new(MemoryVoteStore::new()) as Arc<dyn VoteStore>)
        .collect();
    for n in 0..NOTARIES {
        let store = Arc::clone(&notary_stores[n]);
        let votes = Arc::clone(&vote_stores[n]);
        sim.host(format!("notary{n}"), move || {
            let store = Arc::clone(&store);
            let votes = Arc::clone(&votes);
            async move {
                let handle = Notary::spawn(
                    notary_key(n),
                    store,
                    votes,
                    Turmoil,
                    NotaryConfig {
                        listen: format!("0.0.0.0:{PORT}"),
                        transport: transport(),
                        ..NotaryConfig::default()
                    },
                    Arc::new(|_| {}),
                )
                .await
                .map_err(|e| e.to_string())?;
                std::future::pending::<()>().await;
                drop(handle);
                Ok(())
            }
        });
    }
    let board: Board = Arc::new(Mutex::new(BTreeMap::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let wallet_stores: Vec<Arc<dyn Store>> = (0..WALLETS)
        .map(|_| Arc::new(MemoryStore::new()) as Arc<dyn Store>)
        .collect();
    for i in 0..WALLETS {
        let store = Arc::clone(&wallet_stores[i]);
        let board = Arc::clone(&board);
        let acked = Arc::clone(&acked);
        let path = dir.path().to_path_buf();
        sim.client(format!("wallet{i}"), async move {
            wallet_loop(i, seed, 40, store, board, acked, path).await
        });
    }
    // Faults while the clients work: a notary down at a time (crash, then restart), and
    // partitions between wallets and notaries.
    let mut rng = SplitMix64::new(seed);
    let mut elapsed = Duration::ZERO;
    let mut down: Option<usize> = None;
    while elapsed < Duration::from_secs(40) {
        for _ in 0..100 {
            if !sim.step().unwrap() {
                break;
            }
        }
        elapsed = sim.elapsed();
        match rng.below(20) {
            0 => {
                if let Some(n) = down.take() {
                    sim.bounce(format!("notary{n}"));
                } else {
                    let n = rng.below(NOTARIES as u64) as usize;
                    sim.crash(format!("notary{n}"));
                    down = Some(n);
                }
            }
            1 => {
                let (w, n) = (rng.below(WALLETS as u64), rng.below(NOTARIES as u64));
                sim.partition(format!("wallet{w}"), format!("notary{n}"));
            }
            2 => {
                for w in 0..WALLETS {
                    for n in 0..NOTARIES {
                        sim.repair(format!("wallet{w}"), format!("notary{n}"));
                    }
                }
            }
            _ => {}
        }
    }
    // Heal everything and let the clients finish.
    if let Some(n) = down.take() {
        sim.bounce(format!("notary{n}"));
    }
    for w in 0..WALLETS {
        for n in 0..NOTARIES {
            sim.repair(format!("wallet{w}"), format!("notary{n}"));
        }
    }
    sim.run().unwrap();

    // Checks on every store, and on the union of the wallets' logs.
    let mut union: Vec<CertifiedEntry> = Vec::new();
    for (i, store) in wallet_stores.iter().enumerate() {
        union.extend(certified::certified_log(store.as_ref(), &wallet_key(i).id()).unwrap());
    }
    let state = fold(union.clone(), &VerifyAll);
    state.check_conservation().unwrap();
    assert!(
        state.inconsistencies().is_empty(),
        "{:?}",
        state.inconsistencies()
    );
    for wallet in state.wallets() {
        assert!(!wallet.halted, "a wallet log stopped");
        assert!(
            wallet
                .outcomes
                .iter()
                .all(|(_, o)| *o == scrip_ledger::Outcome::Applied),
            "a certified entry broke a rule"
        );
    }
    for (wallet, seq, id) in acked.lock().unwrap().iter() {
        let held = union
            .iter()
            .find(|c| c.entry.author() == *wallet && c.entry.seq() == *seq)
            .unwrap_or_else(|| panic!("acknowledged {wallet} #{seq} is missing"));
        assert_eq!(held.entry.id(), *id);
        assert!(held.certificate.is_some());
    }
    for store in notary_stores.iter().chain(wallet_stores.iter()) {
        let mut all = Vec::new();
        for author in store.authors().unwrap() {
            all.extend(certified::certified_log(store.as_ref(), &author).unwrap());
        }
        let partial = fold(all, &VerifyAll);
        assert!(partial.inconsistencies().is_empty());
        assert!(partial.wallets().all(|w| !w.halted));
    }
    let entries = union.len();
    let orders = state.orders();
    let ended = |status: OrderStatus| orders.values().filter(|o| o.status == status).count();
    let (accepted, cancelled) = (ended(OrderStatus::Accepted), ended(OrderStatus::Cancelled));
    eprintln!(
        "bank test: {entries} certified entries, {} orders ({accepted} accepted, {cancelled} \
         cancelled), all invariants hold",
        orders.len()
    );
    assert!(!orders.is_empty(), "the run made no orders");
    (accepted, cancelled)
}

/// Seeds run beyond the chosen ones, at most, until an accept and a cancel were both seen.
const MORE_SEEDS_FOR_COVERAGE: usize = 6;

#[test]
fn bank_invariants_hold_through_crashes_and_partitions() {
    let seeds = scrip_feed::bench::test_seeds("SCRIP_SIM_SEED", "SCRIP_BANK_SEEDS", 2);
    let (mut accepted, mut cancelled) = (0, 0);
    for &seed in &seeds {
        let (a, c) = run_bank(seed);
        accepted += a;
        cancelled += c;
    }
    // The runs must have claimed and accepted orders, and cancelled some (the paths under test
    // ran). A seed does not replay exactly: store calls run on real threads beside turmoil's
    // simulated time, so one seed's run may see no accept (measured: the second default seed
    // gave none in 8 runs of 12, the first in 1 of 13, and CI hit both at once). So when a
    // path has not run yet, more seeds run, each checking every invariant, up to
    // MORE_SEEDS_FOR_COVERAGE.
    let mut more = scrip_feed::rng::SplitMix64::new(seeds.iter().fold(0, |a, s| a ^ s));
    for _ in 0..MORE_SEEDS_FOR_COVERAGE {
        if accepted > 0 && cancelled > 0 {
            break;
        }
        let seed = more.next_u64();
        eprintln!("bank test: an accept and a cancel not both seen yet; one more seed {seed}");
        let (a, c) = run_bank(seed);
        accepted += a;
        cancelled += c;
    }
    assert!(
        accepted > 0 && cancelled > 0,
        "accepted {accepted}, cancelled {cancelled}"
    );
}
