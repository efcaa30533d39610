//! Feed benchmarks: publish (encode + sign + append), validate, raw single signature checks, and the
//! macro benchmark: batch ingest of 200k entries from 100 authors into sled, reported against the
//! raw single-core single-check rate measured in the same run.
//!
//! `cargo bench -p scrip-feed` (all), `cargo bench -p scrip-feed -- publish` (a filter skips the
//! macro benchmark unless it matches "ingest"). `SCRIP_BENCH_INGEST_PER_AUTHOR` shrinks it.
#![allow(clippy::unwrap_used)]

// The allocator the `scrip` binary uses, so that figures match the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use divan::Bencher;
use scrip_feed::bench;
use scrip_feed::identity::{AuthorKey, domain, signing_bytes};
use scrip_feed::validate::validate_entry;
use scrip_feed::{Content, Entry, Keypair, MemoryStore, SledOptions, SledStore, Store, Timestamp};

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| "ingest".contains(f.as_str())) {
        ingest_macro();
    }
    divan::main();
}

fn ingest_macro() {
    let per_author = bench::env_usize("SCRIP_BENCH_INGEST_PER_AUTHOR", 2000);
    let dir = tempfile::tempdir().unwrap();
    let figures = bench::ingest(dir.path(), 100, per_author, 5000).unwrap();
    println!(
        "ingest: {} entries from 100 authors in {:.2?} (batches of 5000, sled, flushed)",
        figures.entries, figures.elapsed
    );
    for figure in figures.figures() {
        println!("  {figure}");
    }
    println!("  target: ratio >= 1.50 (ingest on both cores vs one core's raw single checks)\n");
}

fn post(i: u64) -> Vec<u8> {
    Content::Post {
        text: format!("benchmark post number {i}, about the length of a short message"),
    }
    .encode()
    .unwrap()
}

/// Encode + sign + append into the in-memory store (no I/O).
#[divan::bench]
fn publish_memory(bencher: Bencher<'_, '_>) {
    let store = MemoryStore::new();
    let key = Keypair::from_seed(&[1; 32]);
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        store
            .publish(&key, Timestamp::from_millis(i), post(i))
            .unwrap()
    });
}

/// Encode + sign + durable append into sled (one fsync per entry).
#[divan::bench(sample_count = 20, sample_size = 10)]
fn publish_sled(bencher: Bencher<'_, '_>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let key = Keypair::from_seed(&[1; 32]);
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        store
            .publish(&key, Timestamp::from_millis(i), post(i))
            .unwrap()
    });
}

/// Full validation of one entry against its predecessor (link, payload, signature).
#[divan::bench]
fn validate(bencher: Bencher<'_, '_>) {
    let key = Keypair::from_seed(&[1; 32]);
    let first = Entry::create(&key, None, Timestamp::from_millis(1), post(1)).unwrap();
    let second =
        Entry::create(&key, Some(first.head()), Timestamp::from_millis(2), post(2)).unwrap();
    let head = first.head();
    bencher.bench_local(|| validate_entry(&key.id(), Some(&head), &second).unwrap());
}

/// Decoding a received header (canonical check, limits, shape).
#[divan::bench]
fn decode_header(bencher: Bencher<'_, '_>) {
    let key = Keypair::from_seed(&[1; 32]);
    let entry = Entry::create(&key, None, Timestamp::from_millis(1), post(1)).unwrap();
    let bytes = entry.header_bytes().to_vec();
    bencher.bench_local(|| Entry::decode(&bytes, None).unwrap());
}

/// The ceiling: one raw single signature check with the key already decompressed.
#[divan::bench]
fn raw_single_check(bencher: Bencher<'_, '_>) {
    let key = Keypair::from_seed(&[1; 32]);
    let signed = signing_bytes(domain::ENTRY, &[7u8; 120]);
    let signature = key.sign_prepared(&signed);
    let author = AuthorKey::new(&key.id()).unwrap();
    bencher.bench_local(|| assert!(author.verify_prepared(&signed, &signature)));
}
