//! Replication benchmarks: the macro benchmark (100k entries from 10 authors between two nodes
//! over loopback Noise TCP, sled on both sides, against the same-run local ingest rate), then
//! divan micro benchmarks of the wire format.
//!
//! `cargo bench -p scrip-replicate`; `SCRIP_BENCH_REPLICATE_PER_AUTHOR` shrinks the macro run.
#![allow(clippy::unwrap_used)]

// The allocator the `scrip` binary uses, so that figures match the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use divan::Bencher;
use scrip_feed::bench::make_feeds;
use scrip_replicate::wire::{self, Entries, Message, WireEntry};

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| "replicate".contains(f.as_str())) {
        let per_author = scrip_feed::bench::env_usize("SCRIP_BENCH_REPLICATE_PER_AUTHOR", 10_000);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let figures = runtime
            .block_on(scrip_replicate::bench::replicate(
                dir.path(),
                10,
                per_author,
            ))
            .unwrap();
        println!(
            "replicate: {} entries from 10 authors in {:.2?}",
            figures.entries, figures.elapsed
        );
        for figure in figures.figures() {
            println!("  {figure}");
        }
        println!("  targets: >= 25000 entries/s and ratio >= 0.70\n");
    }
    divan::main();
}

fn entries_message() -> Message {
    let entries = make_feeds(1, 512, 96);
    Message::Entries(Entries {
        feed: entries[0].author(),
        items: entries
            .iter()
            .map(|e| WireEntry {
                header: e.header_bytes().to_vec(),
                payload: e.payload().map(<[u8]>::to_vec),
                attachments: vec![],
            })
            .collect(),
    })
}

/// Encoding a full 512-entry message.
#[divan::bench]
fn encode_entries(bencher: Bencher<'_, '_>) {
    let message = entries_message();
    bencher.bench_local(|| wire::encode(&message).unwrap());
}

/// Decoding (canonically) a full 512-entry message.
#[divan::bench]
fn decode_entries(bencher: Bencher<'_, '_>) {
    let bytes = wire::encode(&entries_message()).unwrap();
    bencher.bench_local(|| wire::decode(&bytes).unwrap());
}
