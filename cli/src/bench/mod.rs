//! `scrip bench`: the macro benchmarks of every layer in one process, each figure printed next
//! to the machine ceiling measured in the same run. The workloads are the ones of
//! `cargo bench` (`feed`, `replicate`, `ledger`, `notary` crates' `bench` modules); `--quick`
//! runs smaller ones.

use std::time::Instant;

use anyhow::Result;
use scrip_feed::bench::Figure;
use serde::Serialize;

use crate::args::BenchWhich;

mod load;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    ingest_per_author: usize,
    /// Feeds and entries per feed of the many-feeds ingest figure.
    ingest_spread: (usize, usize),
    replicate_per_author: usize,
    fold_entries: usize,
    audit_entries: usize,
    transfers: scrip_notary::bench::TransferRun,
    /// Silent sockets, idle sessions and entries synced in the flood figure.
    flood: (usize, usize, usize),
    /// Certified entries in the store for the small and the large wallet-reads figure.
    reads: (usize, usize),
    /// Entries in the store for the small and the large commit figure.
    commit: (usize, usize),
    /// Proposals at idle notaries and the social feed replicating through them.
    load: load::LoadRun,
}

const FULL: Sizes = Sizes {
    ingest_per_author: 2000,
    ingest_spread: (1000, 200),
    replicate_per_author: 10_000,
    fold_entries: 1_000_000,
    audit_entries: 100_000,
    transfers: scrip_notary::bench::TransferRun::FULL,
    flood: (2000, 100, 5000),
    reads: (1_000, 1_000_000),
    commit: (10_000, 1_000_000),
    load: load::LoadRun::FULL,
};

const QUICK: Sizes = Sizes {
    ingest_per_author: 300,
    ingest_spread: (100, 100),
    replicate_per_author: 2_000,
    fold_entries: 200_000,
    audit_entries: 10_000,
    transfers: scrip_notary::bench::TransferRun::QUICK,
    flood: (500, 100, 1000),
    reads: (1_000, 100_000),
    commit: (10_000, 100_000),
    load: load::LoadRun::QUICK,
};

/// One line of `--json` output.
#[derive(Debug, Serialize)]
struct JsonFigure<'a> {
    bench: &'a str,
    name: &'a str,
    value: f64,
    unit: &'a str,
    ceiling: Option<f64>,
    ratio: Option<f64>,
}

fn print(bench: &str, figures: &[Figure], json: bool) -> Result<()> {
    for figure in figures {
        if json {
            crate::say(&format!(
                "{}\n",
                serde_json::to_string(&JsonFigure {
                    bench,
                    name: &figure.name,
                    value: figure.value,
                    unit: figure.unit,
                    ceiling: figure.ceiling,
                    ratio: figure.ratio,
                })?
            ))?;
        } else {
            crate::say(&format!("  {figure}\n"))?;
        }
    }
    Ok(())
}

fn heading(json: bool, text: &str) -> Result<()> {
    if !json {
        crate::say(&format!("{text}\n"))?;
    }
    Ok(())
}

/// Runs `which`.
// Long because: a list: one block per benchmark, each printing its heading and figures.
pub async fn run(which: BenchWhich, quick: bool, json: bool) -> Result<()> {
    let sizes = if quick { QUICK } else { FULL };
    let all = which == BenchWhich::All;
    let started = Instant::now();
    let progress = crate::progress::wanted() && !json;
    if all || which == BenchWhich::Ingest {
        let spinner = crate::progress::spinner(progress, "ingest");
        let dir = tempfile::tempdir()?;
        let per_author = sizes.ingest_per_author;
        let figures = tokio::task::spawn_blocking(move || {
            scrip_feed::bench::ingest(dir.path(), 100, per_author, 5000)
        })
        .await??;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "ingest: {} entries from 100 authors into sled, batches of 5000, flushed",
                figures.entries
            ),
        )?;
        print("ingest", &figures.figures(), json)?;
        let (feeds, per_feed) = sizes.ingest_spread;
        let dir = tempfile::tempdir()?;
        let (many, one) = tokio::task::spawn_blocking(move || {
            scrip_feed::bench::ingest_spread(dir.path(), feeds, per_feed)
        })
        .await??;
        heading(
            json,
            &format!(
                "ingest of {feeds} feeds × {per_feed} entries against one feed of {} \
                 (target: ratio at least 0.8)",
                feeds * per_feed
            ),
        )?;
        print(
            "ingest",
            &[
                Figure::plain("ingest, one feed", one, "entries/s"),
                Figure::against(format!("ingest, {feeds} feeds"), many, "entries/s", one),
            ],
            json,
        )?;
    }
    if all || which == BenchWhich::Replicate {
        let spinner = crate::progress::spinner(progress, "replicate");
        let dir = tempfile::tempdir()?;
        let figures =
            scrip_replicate::bench::replicate(dir.path(), 10, sizes.replicate_per_author).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "replicate: {} entries from 10 authors between two nodes over loopback Noise TCP",
                figures.entries
            ),
        )?;
        print("replicate", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Notary {
        let spinner = crate::progress::spinner(progress, "notary");
        let dir = tempfile::tempdir()?;
        let figures = scrip_notary::bench::transfers(dir.path(), sizes.transfers).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "notary: transfers through 4 notaries (vote logs and sled stores, fsync, loopback \
                 Noise TCP): {} one after another, then {} by {} pairs at once",
                figures.latencies.len(),
                figures.transfers,
                figures.pairs
            ),
        )?;
        print("notary", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Audit {
        let spinner = crate::progress::spinner(progress, "fold and audit");
        let (fold, audit) = (sizes.fold_entries, sizes.audit_entries);
        let figures =
            tokio::task::spawn_blocking(move || scrip_ledger::bench::run(fold, audit)).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!("ledger: fold of {fold} certified entries, audit of a {audit}-entry wallet"),
        )?;
        print("audit", &figures, json)?;
    }
    if all || which == BenchWhich::Flood {
        let spinner = crate::progress::spinner(progress, "flood");
        let (sockets, sessions, entries) = sizes.flood;
        let figures = scrip_replicate::bench::flood(sockets, sessions, entries).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "flood: a new peer syncs {} entries from a node, calm, then while {} silent \
                 sockets and {} idle authenticated sessions are held open against it (target: \
                 ratio at least 0.33)",
                figures.entries, figures.sockets, figures.sessions
            ),
        )?;
        print("flood", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Reads {
        let spinner = crate::progress::spinner(progress, "wallet reads");
        let (small, large) = sizes.reads;
        let figures = reads(small, large).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "reads: `balance` and `orders` of one wallet (median of {READ_CALLS}, once the \
                 store is filled and the process quiet; the daemon's incrementally kept \
                 ledger; its history stays the same) with {small} and with \
                 {large} certified entries in the store (target: ratio at least 0.5)"
            ),
        )?;
        print("reads", &figures, json)?;
    }
    if all || which == BenchWhich::Commit {
        let spinner = crate::progress::spinner(progress, "commit");
        let (small, large) = sizes.commit;
        let figures = tokio::task::spawn_blocking(move || -> Result<Vec<Figure>> {
            let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
            let few = scrip_feed::bench::commit_latency(a.path(), small)?.as_secs_f64();
            let many = scrip_feed::bench::commit_latency(b.path(), large)?.as_secs_f64();
            Ok(vec![
                Figure::plain(format!("commit with {small} entries"), few * 1e6, "us"),
                Figure::against(
                    format!("commit with {large} entries (as commits/s)"),
                    1.0 / many.max(1e-9),
                    "commits/s",
                    1.0 / few.max(1e-9),
                ),
            ])
        })
        .await??;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "commit: a one-entry durable commit (median of 200) into a sled store holding \
                 {small} and {large} entries"
            ),
        )?;
        print("commit", &figures, json)?;
    }
    if all || which == BenchWhich::Load {
        let spinner = crate::progress::spinner(progress, "notary under replication");
        let dir = tempfile::tempdir()?;
        let figures = load::proposals_under_replication(dir.path(), sizes.load).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "load: one wallet's proposals, one after another, to 3 of its 4 notaries (every \
                 certificate needs the loaded one): {} idle, then {} while a {}-entry social \
                 feed replicates into one notary's store through its node (target: ratio at \
                 least 0.5)",
                figures.idle.len(),
                figures.loaded.len(),
                figures.social_entries
            ),
        )?;
        print("load", &figures.figures(), json)?;
    }
    heading(
        json,
        &format!("done in {:.1} s", started.elapsed().as_secs_f64()),
    )?;
    Ok(())
}

/// A window in which this process used less than [`SETTLE_CPU`] of one core: settled.
const SETTLE_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);
/// See [`SETTLE_WINDOW`].
const SETTLE_CPU: f64 = 0.1;
/// The longest [`settle`] waits.
const SETTLE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until this process is quiet after a benchmark filled a store, at most
/// [`SETTLE_AT_MOST`]: after a million entries, work the fill left running (the storage
/// engine's, the allocator's: not pinned down) went on for seconds, and reads timed beside it
/// measured that (`balance` at 1,000 entries read 64–158 µs from one run to the next, with 30 timed
/// calls right after the fill). Measured with the process's CPU clock.
async fn settle() {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        std::time::Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    };
    let began = Instant::now();
    while began.elapsed() < SETTLE_AT_MOST {
        let before = cpu();
        tokio::time::sleep(SETTLE_WINDOW).await;
        let used = cpu().saturating_sub(before);
        if used.as_secs_f64() < SETTLE_CPU * SETTLE_WINDOW.as_secs_f64() {
            return;
        }
    }
}

/// Entries of the workload holding the home's wallet in the reads figure.
const READS_OWN_ENTRIES: usize = 1_000;
/// Calls of each read made untimed first, in the reads figure.
const READ_WARMUP: usize = 30;
/// Calls of each read timed (the median is the figure), in the reads figure.
const READ_CALLS: usize = 300;

/// Median time of `ops` on a home whose store holds `entries` certified entries (the ledger
/// benchmark's workload: 101 wallets, placeholder signatures, stored as if already checked),
/// the home's wallet being one of them. The first call builds the ledger and is not timed;
/// then the process is let [`settle`], and [`READ_WARMUP`] calls more are not timed either.
async fn read_latency(entries: usize) -> Result<Vec<(&'static str, f64)>> {
    use crate::ops::{self, Context, Op};
    use scrip_feed::store::VerifiedBatch;
    let dir = tempfile::tempdir()?;
    let home = crate::home::Home::at(dir.path().join("home"));
    home.init(&crate::config::Config::default())?;
    // The workload's wallet 1 (see `scrip_ledger::bench`).
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&1u64.to_le_bytes());
    seed[8] = 0x5c;
    let key = scrip_feed::Keypair::from_seed(&seed);
    scrip_feed::keyfile::write(&dir.path().join("home/wallet.key"), &key)?;
    let store = home.open_store()?;
    // The home's wallet and its 100 counterparts hold a small history (1,000 entries); the
    // rest of the store is other wallets' (a disjoint workload), so that only the store grows.
    let workload = tokio::task::spawn_blocking(move || {
        let mut all = scrip_ledger::bench::fold_workload(READS_OWN_ENTRIES);
        if entries > READS_OWN_ENTRIES {
            all.extend(scrip_ledger::bench::fold_workload_of(
                entries - READS_OWN_ENTRIES,
                1_000,
            ));
        }
        all
    })
    .await?;
    let filling: std::sync::Arc<dyn scrip_feed::Store> = store.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for part in workload.chunks(5000) {
            let batch =
                VerifiedBatch::already_verified(part.iter().map(|c| c.entry.clone()).collect());
            scrip_notary::certified::offer_certified(filling.as_ref(), batch, part, true)?;
        }
        Ok(())
    })
    .await??;
    let ctx = Context::new(home, store, None, false)?;
    ops::execute(&ctx, Op::Balance).await?;
    settle().await;
    let mut figures = Vec::new();
    for (name, op) in [
        ("balance", Op::Balance),
        (
            "orders",
            Op::Orders {
                incoming: false,
                outgoing: false,
                pending: false,
            },
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..READ_WARMUP {
            ops::execute(&ctx, op.clone()).await?;
        }
        for _ in 0..READ_CALLS {
            let started = Instant::now();
            ops::execute(&ctx, op.clone()).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        figures.push((name, times[times.len() / 2]));
    }
    Ok(figures)
}

/// `balance` and `orders` latency with a small and a large store, each against the small one.
async fn reads(small: usize, large: usize) -> Result<Vec<Figure>> {
    let few = read_latency(small).await?;
    let many = read_latency(large).await?;
    let mut figures = Vec::new();
    for ((name, calm), (_, loaded)) in few.into_iter().zip(many) {
        figures.push(Figure::plain(
            format!("{name} with {small} entries"),
            calm * 1000.0,
            "us",
        ));
        // As a rate, so that the ratio is the small store's time over the large one's.
        figures.push(Figure::against(
            format!("{name} with {large} entries (as calls/s)"),
            1000.0 / loaded.max(1e-9),
            "calls/s",
            1000.0 / calm.max(1e-9),
        ));
    }
    Ok(figures)
}
