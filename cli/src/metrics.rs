//! The daemon's metrics, served as `GET /metrics` by the web wallet's server in the Prometheus
//! text format (`docs/cli.md` §9), kept with the `prometheus-client` crate:
//!
//! - `scrip_commands` / `scrip_command_seconds`: every operation run (from the command line, the
//!   web page or a script), by operation and outcome, and how long it took;
//! - `scrip_entries_stored` / `scrip_entries_received`: feed entries the node stored, and those
//!   of them that came from peers;
//! - `scrip_peers`, `scrip_known_addresses`, `scrip_feeds_replicated`: the node's state, read at
//!   each scrape;
//! - with `--notary`, `scrip_notary_votes` (by kind: entry or fate) and
//!   `scrip_notary_vote_commit_seconds` (each durable commit of a batch of votes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use scrip_feed::{Entry, FeedId, Seq};
use scrip_ledger::{FateSubject, VoteSubject};
use scrip_notary::votes::StepHook;
use scrip_notary::{VoteRecord, VoteStore};

type Labels = Vec<(String, String)>;
type Latencies = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets from 0.5 ms doubling to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of one daemon.
pub struct Metrics {
    registry: Registry,
    commands: Family<Labels, Counter>,
    command_seconds: Latencies,
    entries_stored: Counter,
    entries_received: Counter,
    peers: Gauge,
    known_addresses: Gauge,
    feeds_replicated: Gauge,
    votes: Family<Labels, Counter>,
    vote_commit_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scrip");
        let commands = Family::<Labels, Counter>::default();
        let command_seconds = Latencies::new_with_constructor(latency_histogram);
        let (entries_stored, entries_received) = (Counter::default(), Counter::default());
        let (peers, known_addresses, feeds_replicated) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let votes = Family::<Labels, Counter>::default();
        let vote_commit_seconds = latency_histogram();
        registry.register(
            "commands",
            "Operations run, by operation and outcome (ok or error)",
            commands.clone(),
        );
        registry.register(
            "command_seconds",
            "How long operations took, by operation",
            command_seconds.clone(),
        );
        registry.register(
            "entries_stored",
            "Feed entries the node stored",
            entries_stored.clone(),
        );
        registry.register(
            "entries_received",
            "Feed entries stored that came from peers",
            entries_received.clone(),
        );
        registry.register("peers", "Open peer connections", peers.clone());
        registry.register(
            "known_addresses",
            "Peer addresses the node knows",
            known_addresses.clone(),
        );
        registry.register(
            "feeds_replicated",
            "Feeds in the node's replication scope",
            feeds_replicated.clone(),
        );
        registry.register(
            "notary_votes",
            "Votes this notary recorded durably, by kind (entry or fate)",
            votes.clone(),
        );
        registry.register(
            "notary_vote_commit_seconds",
            "Durable commits of a batch of votes",
            vote_commit_seconds.clone(),
        );
        Metrics {
            registry,
            commands,
            command_seconds,
            entries_stored,
            entries_received,
            peers,
            known_addresses,
            feeds_replicated,
            votes,
            vote_commit_seconds,
        }
    }

    /// Records an operation named `op` that took `took` and succeeded or not.
    pub fn command(&self, op: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.commands
            .get_or_create(&vec![
                ("op".to_owned(), op.to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc();
        self.command_seconds
            .get_or_create(&vec![("op".to_owned(), op.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// Records entries the node stored (`received` of them from peers).
    pub fn stored(&self, new: usize, received: usize) {
        self.entries_stored.inc_by(new as u64);
        self.entries_received.inc_by(received as u64);
    }

    /// Sets the node's state, read at a scrape.
    pub fn node(&self, peers: usize, known_addresses: usize, feeds: usize) {
        let set = |gauge: &Gauge, value: usize| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.peers, peers);
        set(&self.known_addresses, known_addresses);
        set(&self.feeds_replicated, feeds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A vote store that counts what its inner store records and times each commit.
pub struct CountedVotes {
    inner: Arc<dyn VoteStore>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CountedVotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedVotes").finish_non_exhaustive()
    }
}

impl CountedVotes {
    /// Counts what `inner` records into `metrics`.
    pub fn new(inner: Arc<dyn VoteStore>, metrics: Arc<Metrics>) -> CountedVotes {
        CountedVotes { inner, metrics }
    }
}

impl VoteStore for CountedVotes {
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> scrip_notary::Result<()> {
        let began = Instant::now();
        self.inner.record(votes, hook)?;
        self.metrics
            .vote_commit_seconds
            .observe(began.elapsed().as_secs_f64());
        for vote in votes {
            let kind = match vote {
                VoteRecord::Entry { .. } => "entry",
                VoteRecord::Fate(_) => "fate",
            };
            self.metrics
                .votes
                .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
                .inc();
        }
        Ok(())
    }

    fn load(&self) -> scrip_notary::Result<Vec<VoteSubject>> {
        self.inner.load()
    }

    fn load_fates(&self) -> scrip_notary::Result<Vec<FateSubject>> {
        self.inner.load_fates()
    }

    fn voted_entry(&self, wallet: &FeedId, seq: Seq) -> scrip_notary::Result<Option<Entry>> {
        self.inner.voted_entry(wallet, seq)
    }
}
