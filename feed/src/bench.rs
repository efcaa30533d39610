//! Macro benchmarks of the feed layer, shared by `cargo bench -p scrip-feed` and `scrip bench`.
//!
//! Each figure is reported next to a ceiling measured in the same run on the same machine (here:
//! the raw single-core rate of single signature checks), so that a number can be judged without knowing the
//! hardware.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::entry::{Entry, Timestamp};
use crate::error::Result;
use crate::identity::{AuthorKey, Keypair, domain, signing_bytes};
use crate::store::{SledOptions, SledStore, Store, VerifiedBatch};

/// One measured figure, with the ceiling it is judged against.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The machine's ceiling for it, measured in the same run.
    pub ceiling: Option<f64>,
    /// `value / ceiling`.
    pub ratio: Option<f64>,
}

impl Figure {
    /// A figure without a ceiling.
    pub fn plain(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
            ceiling: None,
            ratio: None,
        }
    }

    /// A figure judged against `ceiling`.
    pub fn against(
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        ceiling: f64,
    ) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
            ceiling: Some(ceiling),
            ratio: (ceiling > 0.0).then(|| value / ceiling),
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<40} {:>12.0} {}", self.name, self.value, self.unit)?;
        if let (Some(ceiling), Some(ratio)) = (self.ceiling, self.ratio) {
            write!(f, "   ceiling {ceiling:.0}   ratio {ratio:.2}")?;
        }
        Ok(())
    }
}

/// A size for a benchmark run from the environment variable `name`, else `default` (the
/// benches' `SCRIP_BENCH_*` knobs).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seeds of a randomized test (simulation seeds, crash loops): fixed, so that CI runs the
/// same ones every time, and printed, so that any run can be replayed.
///
/// - `one` (e.g. `SCRIP_SIM_SEED`) set: that seed alone (replaying a failure);
/// - else `count` (e.g. `SCRIP_SIM_SEEDS`, default `default_count`) seeds derived from
///   `SCRIP_SEED_BASE` (default 0): the long run on demand takes more of them, or another base to
///   explore new ones.
pub fn test_seeds(one: &str, count: &str, default_count: usize) -> Vec<u64> {
    let seeds: Vec<u64> = match std::env::var(one).ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let base: u64 = std::env::var("SCRIP_SEED_BASE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut rng = crate::rng::SplitMix64::new(base);
            (0..env_usize(count, default_count))
                .map(|_| rng.next_u64())
                .collect()
        }
    };
    eprintln!(
        "seeds {seeds:?} (replay one with {one}=<seed>; more with {count}=<n>, others with SCRIP_SEED_BASE=<n>)"
    );
    seeds
}

/// Whether the calling test should run its body here: true in a child process started for
/// this test alone; otherwise starts that child (this test binary, `--exact name`), waits for
/// it, fails if it failed, and returns false. For tests that measure the process (resident
/// memory), which other tests of the same binary running beside them would disturb.
pub fn run_alone(name: &str) -> bool {
    const ALONE: &str = "SCRIP_TEST_ALONE";
    if std::env::var(ALONE).is_ok_and(|v| v == name) {
        return true;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("this test binary: {e}"));
    let status = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, name)
        .status()
        .unwrap_or_else(|e| panic!("starting {name} alone: {e}"));
    assert!(status.success(), "{name}, run alone, failed: {status}");
    false
}

/// A loopback address that no one listens on now and that the system will not hand out by
/// itself: a port below the ephemeral range (`ip_local_port_range`), so that neither a
/// `127.0.0.1:0` bind nor an outgoing connection of another test can take it between this call
/// and the daemon binding it, or while a killed daemon is restarted on it. Ports are tried from
/// a per-process start (the pid spreads concurrent test processes apart) and each is checked free
/// by binding it once.
pub fn fixed_port() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .max(LOWEST + 1_000);
    let span = ephemeral_start - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let address = format!("127.0.0.1:{}", LOWEST + offset);
        if std::net::TcpListener::bind(&address).is_ok() {
            return address;
        }
    }
    panic!("no free loopback port below {ephemeral_start}")
}

/// The seed of a proptest suite: `PROPTEST_RNG_SEED` if set (to replay or explore), else 0, so
/// that CI runs the same cases every time; printed.
pub fn proptest_seed() -> u64 {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("proptest seed {seed} (PROPTEST_RNG_SEED=<n> for another)");
    seed
}

/// This process's resident memory in bytes (Linux `VmRSS`; 0 where it cannot be read), for
/// the tests and benchmarks that bound what a flood makes a process keep.
pub fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Raw single signature checks (feed.md §4) per second on one core, over header-sized messages with the
/// key already decompressed: the ceiling for anything that checks entry signatures. The best of
/// five windows, so that a noisy neighbour lowers the ceiling less than the figures judged by it.
pub fn raw_verify_rate(total: Duration) -> f64 {
    (0..5)
        .map(|_| raw_verify_window(total / 5))
        .fold(0.0, f64::max)
}

fn raw_verify_window(at_least: Duration) -> f64 {
    let key = Keypair::from_seed(&[0x5e; 32]);
    let author = match AuthorKey::new(&key.id()) {
        Ok(author) => author,
        Err(_) => return 0.0,
    };
    let messages: Vec<(Vec<u8>, crate::Signature)> = (0..256u32)
        .map(|i| {
            let mut body = vec![0u8; 120];
            body[..4].copy_from_slice(&i.to_le_bytes());
            let signed = signing_bytes(domain::ENTRY, &body);
            let signature = key.sign_prepared(&signed);
            (signed, signature)
        })
        .collect();
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < at_least {
        for (signed, signature) in &messages {
            if author.verify_prepared(signed, signature) {
                verified += 1;
            }
        }
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

/// Signs `per_author` entries for each of `authors` feeds (in parallel), each with a payload of
/// `payload_bytes`. Returned author-major: all of author 0's entries in seq order, then author
/// 1's, and so on.
pub fn make_feeds(authors: usize, per_author: usize, payload_bytes: usize) -> Vec<Entry> {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let per_thread = authors.div_ceil(cores).max(1);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..authors)
            .step_by(per_thread)
            .map(|first| {
                scope.spawn(move || {
                    let mut entries = Vec::new();
                    for a in first..(first + per_thread).min(authors) {
                        let mut seed = [0u8; 32];
                        seed[..8].copy_from_slice(&(a as u64).to_le_bytes());
                        seed[31] = 0xbe;
                        let key = Keypair::from_seed(&seed);
                        let mut head = None;
                        for i in 0..per_author {
                            let mut payload = vec![0u8; payload_bytes];
                            for (j, byte) in payload.iter_mut().enumerate() {
                                *byte = i.wrapping_add(j).to_le_bytes()[0];
                            }
                            let Ok(entry) = Entry::create(
                                &key,
                                head,
                                Timestamp::from_millis(i as u64),
                                payload,
                            ) else {
                                break;
                            };
                            head = Some(entry.head());
                            entries.push(entry);
                        }
                    }
                    entries
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// What [`ingest`] measured.
#[derive(Clone, Debug)]
pub struct IngestFigures {
    /// Entries ingested.
    pub entries: usize,
    /// Wall time of the ingest (durable: every batch flushed).
    pub elapsed: Duration,
    /// Raw single-core single-check rate measured in the same run.
    pub raw_verify_per_sec: f64,
    /// The same entries' payload and signature checks alone, in batches on all cores
    /// (`store::verify_parallel`), entries per second.
    pub batch_verify_per_sec: f64,
    /// The same entries written by the store alone, already verified (planned, written,
    /// flushed: `ingest_verified` of `VerifiedBatch::already_verified`), entries per second.
    pub write_per_sec: f64,
}

impl IngestFigures {
    /// Entries per second.
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    /// The ceiling of a durable ingest: checking then writing each entry, both at their own
    /// full speed, one after the other (1 / (1/verify + 1/write)).
    pub fn ceiling(&self) -> f64 {
        if self.batch_verify_per_sec <= 0.0 || self.write_per_sec <= 0.0 {
            return 0.0;
        }
        1.0 / (1.0 / self.batch_verify_per_sec + 1.0 / self.write_per_sec)
    }

    /// The figures for a report.
    pub fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::plain(
                "raw single signature checks (1 core)",
                self.raw_verify_per_sec,
                "sig/s",
            ),
            Figure::plain(
                "checks alone, batched on all cores",
                self.batch_verify_per_sec,
                "entries/s",
            ),
            Figure::plain(
                "store writes alone (durable)",
                self.write_per_sec,
                "entries/s",
            ),
            Figure::against(
                "ingest into sled (validated, durable; target 0.9)",
                self.rate(),
                "entries/s",
                self.ceiling(),
            ),
        ]
    }
}

/// Batch-ingests `authors × per_author` entries into a fresh sled store at `dir`, `batch`
/// entries per commit, and measures it against the raw single-core single-check rate.
///
/// Ingest is pipelined the way a replicating node runs it: one thread verifies the next batch
/// on all cores ([`VerifiedBatch::new`]) while the store commits (plans, writes, flushes) the
/// previous one. Every entry is fully validated and every batch is durable.
pub fn ingest(
    dir: &Path,
    authors: usize,
    per_author: usize,
    batch: usize,
) -> Result<IngestFigures> {
    let raw_verify_per_sec = raw_verify_rate(Duration::from_millis(1500));
    let batches = in_batches(make_feeds(authors, per_author, 96), batch);
    // Kept for the ceiling's parts, measured after the ingest.
    let kept = batches.clone();
    let (total, elapsed) = timed_ingest(&dir.join("ingest"), batches)?;
    // The machine's speed drifts; judge against the best raw rate seen before or after.
    let raw_verify_per_sec = raw_verify_per_sec.max(raw_verify_rate(Duration::from_millis(1500)));
    // The ceiling's two parts, each alone on the same entries.
    let entries: Vec<Entry> = kept.iter().flatten().cloned().collect();
    let started = Instant::now();
    let checked = crate::store::verify_parallel(&entries);
    let batch_verify_per_sec = rate_of(checked.len(), started.elapsed());
    let written = SledStore::open(dir.join("written"), SledOptions::default())?;
    let started = Instant::now();
    for batch in kept {
        written.ingest_verified(VerifiedBatch::already_verified(batch))?;
    }
    let write_per_sec = rate_of(entries.len(), started.elapsed());
    Ok(IngestFigures {
        entries: total,
        elapsed,
        raw_verify_per_sec,
        batch_verify_per_sec,
        write_per_sec,
    })
}

/// `entries` cut into batches of `batch`.
fn in_batches(entries: Vec<Entry>, batch: usize) -> Vec<Vec<Entry>> {
    let mut batches: Vec<Vec<Entry>> = Vec::new();
    let mut rest = entries.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(batch.max(1)).collect());
    }
    batches
}

/// Ingests `batches` into a fresh sled store at `dir` as a replicating node does: one thread
/// verifies the next batch on all cores while the store commits (plans, writes, flushes) the
/// previous one. Returns the entries stored and the time it took; an error unless all were.
fn timed_ingest(dir: &Path, batches: Vec<Vec<Entry>>) -> Result<(usize, Duration)> {
    let total: usize = batches.iter().map(Vec::len).sum();
    let store = SledStore::open(dir, SledOptions::default())?;
    let start = Instant::now();
    let stored = thread::scope(|scope| -> Result<usize> {
        // One verified batch waits while the next is being verified: bounded memory.
        let (verified_tx, verified_rx) = mpsc::sync_channel::<VerifiedBatch>(1);
        scope.spawn(move || {
            for batch in batches {
                if verified_tx.send(VerifiedBatch::new(batch)).is_err() {
                    break;
                }
            }
        });
        let mut stored = 0;
        for verified in verified_rx {
            stored += store.ingest_verified(verified)?.stored();
        }
        Ok(stored)
    })?;
    let elapsed = start.elapsed();
    if stored != total {
        return Err(crate::Error::Storage {
            detail: format!("ingest benchmark stored {stored} of {total} entries"),
        });
    }
    Ok((total, elapsed))
}

/// Durable ingest of many feeds against one feed of as many entries (whether ingest slows down
/// as feeds multiply: per-feed heads, index entries and key decompressions): `feeds` feeds of `per_feed` entries, then one feed of `feeds × per_feed`, each into a
/// fresh store under `dir`, batches of 5,000. Returns both rates, entries per second.
pub fn ingest_spread(dir: &Path, feeds: usize, per_feed: usize) -> Result<(f64, f64)> {
    let many = in_batches(make_feeds(feeds, per_feed, 96), 5000);
    let (count, elapsed) = timed_ingest(&dir.join("many"), many)?;
    let many_rate = rate_of(count, elapsed);
    let one = in_batches(make_feeds(1, feeds * per_feed, 96), 5000);
    let (count, elapsed) = timed_ingest(&dir.join("one"), one)?;
    Ok((many_rate, rate_of(count, elapsed)))
}

/// `count` per second over `elapsed`.
fn rate_of(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The median time of a one-entry durable commit (a `publish`: sign, store, flush) into a sled
/// store under `dir` that already holds `entries` entries of 100 other authors (filled in
/// batches of 5,000, not timed). The measure of whether commits slow down as a store grows.
pub fn commit_latency(dir: &Path, entries: usize) -> Result<Duration> {
    let store = SledStore::open(dir, SledOptions::default())?;
    let feeds = make_feeds(100, entries.div_ceil(100).max(1), 96);
    for batch in feeds.chunks(5000) {
        store.ingest(batch.to_vec())?;
    }
    let key = Keypair::from_seed(&[0xc0; 32]);
    let mut times = Vec::with_capacity(200);
    for i in 0..200u64 {
        let started = Instant::now();
        store.publish(&key, Timestamp::from_millis(i), vec![0u8; 200])?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}
