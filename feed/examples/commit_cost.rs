//! What one durable commit costs: `threads` threads, each publishing into its own sled store,
//! one entry (and one flush) per publish. Run under `/usr/bin/time` or `strace -c` to see the
//! CPU and system calls per commit:
//!
//! ```text
//! cargo run --release -p scrip-feed --example commit_cost -- 8
//! ```
#![allow(clippy::unwrap_used)]

use scrip_feed::{Keypair, SledOptions, SledStore, Store, Timestamp};

const PUBLISHES: usize = 4000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1)
        .clamp(1, 255);
    let per_thread = PUBLISHES / threads;
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for i in 0..threads {
            let path = dir.path().join(format!("store{i}"));
            scope.spawn(move || {
                let store = SledStore::open(&path, SledOptions::default()).unwrap();
                let key = Keypair::from_seed(&[u8::try_from(i + 1).unwrap(); 32]);
                for r in 0..per_thread {
                    let at = Timestamp::from_millis(u64::try_from(r).unwrap());
                    store.publish(&key, at, vec![0u8; 200]).unwrap();
                }
            });
        }
    });
    let total = per_thread * threads;
    println!(
        "{threads} threads: {total} publishes, {:.0} us of wall time each",
        start.elapsed().as_secs_f64() * 1e6 / total as f64
    );
}
