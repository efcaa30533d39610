//! The end-to-end transfer benchmark: `cargo bench -p scrip-notary`.
//! `SCRIP_BENCH_LATENCY_TRANSFERS`, `SCRIP_BENCH_PAIRS` and `SCRIP_BENCH_TRANSFERS` (per pair)
//! size it.
#![allow(clippy::unwrap_used)]

// The allocator the `scrip` binary uses, so that figures match the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let full = scrip_notary::bench::TransferRun::FULL;
    let run = scrip_notary::bench::TransferRun {
        latency_transfers: scrip_feed::bench::env_usize(
            "SCRIP_BENCH_LATENCY_TRANSFERS",
            full.latency_transfers,
        ),
        pairs: scrip_feed::bench::env_usize("SCRIP_BENCH_PAIRS", full.pairs),
        per_pair: scrip_feed::bench::env_usize("SCRIP_BENCH_TRANSFERS", full.per_pair),
        held: scrip_feed::bench::env_usize("SCRIP_BENCH_HELD_WALLETS", full.held),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let figures = runtime
        .block_on(scrip_notary::bench::transfers(dir.path(), run))
        .unwrap();
    println!(
        "notary: {} transfers one after another (latency), then {} transfers by {} pairs at once in {:.2?}",
        figures.latencies.len(),
        figures.transfers,
        figures.pairs,
        figures.elapsed
    );
    for figure in figures.figures() {
        println!("  {figure}");
    }
    println!("  targets: ratio >= 0.40 and p50 <= 10 ms");
}
