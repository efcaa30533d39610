//! The end-to-end transfer benchmark: `cargo bench -p scrip-notary`.
//! `SCRIP_BENCH_PAIRS` and `SCRIP_BENCH_TRANSFERS` (per pair) size it.
#![allow(clippy::unwrap_used)]

// The allocator the `scrip` binary uses, so that figures match the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let pairs = env("SCRIP_BENCH_PAIRS", 4);
    let per_pair = env("SCRIP_BENCH_TRANSFERS", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let figures = runtime
        .block_on(scrip_notary::bench::transfers(dir.path(), pairs, per_pair))
        .unwrap();
    println!(
        "notary: {} transfers ({pairs} pairs in parallel) in {:.2?}",
        figures.transfers, figures.elapsed
    );
    for figure in figures.figures() {
        println!("  {figure}");
    }
    println!("  targets: ratio >= 0.40 and p50 <= 10 ms");
}
