//! `scrip bench load`: a notary's proposal latency while a big social feed replicates into it
//! through the replicate node beside it, composed as `scrip serve --notary` composes them (the
//! node and the notary are bridged here, in the CLI, where both are known).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use scrip_feed::bench::Figure;
use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Keypair, SledOptions, SledStore, Store};
use scrip_notary::bench::{Rig, percentile, propose};
use scrip_replicate::background::NodeRuntime;
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Node, NodeConfig, NodeHandle};

use crate::bridge::CertificateCheck;

/// How big a run [`proposals_under_replication`] makes.
#[derive(Clone, Copy, Debug)]
pub struct LoadRun {
    /// Proposals timed with nothing else going on, before the social feed and again after it
    /// (the ceiling is the p99 of both sets: one set alone varied 3–13 ms between runs).
    pub idle_proposals: usize,
    /// Entries of the social feed that replicates into every notary's store meanwhile.
    pub social_entries: usize,
}

impl LoadRun {
    /// The default run: the 100 k-entry social feed.
    pub const FULL: LoadRun = LoadRun {
        idle_proposals: 500,
        social_entries: 100_000,
    };
    /// A short run.
    pub const QUICK: LoadRun = LoadRun {
        idle_proposals: 150,
        social_entries: 20_000,
    };
}

/// Notaries the social feed replicates into in [`proposals_under_replication`].
const LOADED_NOTARIES: usize = 1;

/// What [`proposals_under_replication`] measured: each proposal's latency (an order proposed
/// to its certificate assembled and stored by the wallet), sorted.
#[derive(Clone, Debug)]
pub struct LoadFigures {
    /// With nothing else going on.
    pub idle: Vec<Duration>,
    /// While the social feed replicated into the loaded notary's store.
    pub loaded: Vec<Duration>,
    /// Entries of the social feed.
    pub social_entries: usize,
    /// Time until every notary held the whole social feed.
    pub replicated_in: Duration,
}

impl LoadFigures {
    /// The figures for a report: p50 and p99 of each phase, the loaded p99 against the idle one
    /// (as proposals per second, so that the ratio reads like the others: target at least 0.5).
    pub fn figures(&self) -> Vec<Figure> {
        let at = |latencies: &[Duration], per_mille: usize| {
            percentile(latencies, per_mille).as_secs_f64()
        };
        let (idle99, loaded99) = (at(&self.idle, 990), at(&self.loaded, 990));
        vec![
            Figure::plain("proposal p50, idle", at(&self.idle, 500) * 1000.0, "ms"),
            Figure::plain("proposal p99, idle", idle99 * 1000.0, "ms"),
            Figure::plain(
                "proposal p50 while replicating",
                at(&self.loaded, 500) * 1000.0,
                "ms",
            ),
            Figure::plain("proposal p99 while replicating", loaded99 * 1000.0, "ms"),
            Figure::against(
                "proposal p99 while replicating (as proposals/s)",
                1.0 / loaded99.max(1e-9),
                "proposals/s",
                1.0 / idle99.max(1e-9),
            ),
            Figure::plain(
                "social feed replicated into the notary",
                self.social_entries as f64 / self.replicated_in.as_secs_f64().max(1e-9),
                "entries/s",
            ),
        ]
    }
}

/// A node serving a store from a thread and runtime of its own, at the lowest CPU priority: it
/// stands for another machine, so its work (reading the feed, encrypting it) must not take
/// the cores from the notaries under test. At normal priority it did, and the loaded p99 then
/// measured this machine playing two peers at once (3.5–3.7 ms against 3.1–3.3 ms, alternated
/// runs; the feed replicated at the same rate either way).
struct SourcePeer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SourcePeer {
    /// Starts the node; returns it with its address and identity.
    async fn start(store: Arc<dyn Store>) -> Result<(SourcePeer, String, scrip_feed::FeedId)> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(err) = scrip_replicate::background::lower_priority() {
                tracing::info!(%err, "the social feed's peer runs at normal CPU priority");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready_tx.send(Err(anyhow!("a runtime: {err}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let config = NodeConfig {
                    listen: Some("127.0.0.1:0".into()),
                    ..NodeConfig::default()
                };
                let key = Arc::new(Keypair::from_seed(&[0x7f; 32]));
                match Node::spawn(key, store, Tcp, config).await {
                    Ok(node) => {
                        let address = node.listen_address().map(str::to_owned);
                        let _ = ready_tx.send(Ok((address, node.id())));
                        let _ = stopped.await;
                        node.shutdown().await;
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.into()));
                    }
                }
            });
        });
        let (address, id) = ready
            .await
            .map_err(|_| anyhow!("the social feed's node did not start"))??;
        let address = address.ok_or_else(|| anyhow!("the social feed's node has no address"))?;
        let peer = SourcePeer {
            stop: Some(stop),
            thread: Some(thread),
        };
        Ok((peer, address, id))
    }

    /// Stops the node and waits for its thread.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Proposal latency at a notary while a social feed of `run.social_entries` entries replicates
/// into its store, against its idle latency. The wallet's group is 4 notaries of which 3 stay
/// up, so that every certificate waits for the loaded notary's vote. The loaded notary runs as
/// `scrip serve --notary` runs it: a replicate node on the notary's feed store (certificates
/// checked) on a runtime of lower priority ([`NodeRuntime`]), bridged to the notary service,
/// so that every stored batch of the social feed
/// reaches the notary as something to learn from. One wallet proposes orders one after
/// another in both phases; the loaded phase lasts until the notary holds the whole feed. All
/// of it shares this machine's cores and disk (the other notaries and the wallet too; the peer
/// serving the feed runs on a runtime of its own, at the lowest CPU priority: [`SourcePeer`]).
// Long because: a benchmark: setup, idle phase, loaded phase, teardown, in sequence.
pub async fn proposals_under_replication(dir: &Path, run: LoadRun) -> Result<LoadFigures> {
    let mut rig = Rig::start(dir).await?;
    let mut pair = rig.pairs(b'R', 1).await?.remove(0);
    // Three notaries of four stay up, so that every certificate needs the loaded one's vote.
    if let Some(last) = rig.notaries.pop() {
        last.shutdown().await;
    }
    let mut idle = Vec::with_capacity(run.idle_proposals);
    for _ in 0..run.idle_proposals {
        idle.push(propose(&mut pair).await?);
    }
    idle.sort();

    // The social feed, in a store of its own served by a node.
    let social: Arc<dyn Store> =
        Arc::new(SledStore::open(dir.join("social"), SledOptions::default())?);
    let filling = Arc::clone(&social);
    let entries = run.social_entries;
    let author = tokio::task::spawn_blocking(move || -> Result<scrip_feed::FeedId> {
        let feed = scrip_feed::bench::make_feeds(1, entries, 96);
        let author = feed
            .first()
            .map(scrip_feed::Entry::author)
            .ok_or_else(|| anyhow!("an empty social feed"))?;
        for part in feed.chunks(5000) {
            filling.ingest_verified(VerifiedBatch::already_verified(part.to_vec()))?;
        }
        Ok(author)
    })
    .await
    .map_err(|_| anyhow!("a benchmark task failed"))??;
    // The peer serving it stands for another machine: a runtime and thread of its own.
    let (source, address, source_id) = SourcePeer::start(social).await?;

    let began = Instant::now();
    let mut nodes: Vec<NodeHandle<Tcp>> = Vec::new();
    let mut bridges = Vec::new();
    // As `scrip serve --notary` runs its node: on threads of lower priority.
    let node_runtime = NodeRuntime::start()?;
    for ((key, store), notary) in rig.parts.iter().zip(&rig.notaries).take(LOADED_NOTARIES) {
        let node = node_runtime
            .run(Node::spawn_with(
                Arc::clone(key),
                Arc::clone(store),
                Tcp,
                NodeConfig {
                    listen: None,
                    peers: vec![(address.clone(), Some(source_id))],
                    explicit: [author].into(),
                    // As `scrip serve --notary` runs its node.
                    background_ingest: true,
                    ..NodeConfig::default()
                },
                Arc::new(CertificateCheck::new(Arc::clone(store))),
            ))
            .await??;
        bridges.push(crate::bridge::bridge(node.link(), notary));
        nodes.push(node);
    }
    let target = u64::try_from(entries).unwrap_or(u64::MAX);
    let all_there = |stores: &[(Arc<Keypair>, Arc<dyn Store>)]| -> Result<bool> {
        for (_, store) in stores.iter().take(LOADED_NOTARIES) {
            if store.head(&author)?.map_or(0, |h| h.seq.get()) < target {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut loaded = Vec::new();
    let deadline = Duration::from_secs(600);
    while !all_there(&rig.parts)? {
        if began.elapsed() > deadline {
            return Err(anyhow!(
                "the social feed did not replicate within {deadline:?}"
            ));
        }
        loaded.push(propose(&mut pair).await?);
    }
    let replicated_in = began.elapsed();
    loaded.sort();

    for bridge in bridges {
        bridge.abort();
    }
    for node in nodes {
        node.shutdown().await;
    }
    drop(node_runtime);
    source.stop();
    // Idle again (nothing replicates any more): the ceiling is measured on both sides of the
    // loaded phase.
    for _ in 0..run.idle_proposals {
        idle.push(propose(&mut pair).await?);
    }
    idle.sort();
    rig.shutdown().await;
    Ok(LoadFigures {
        idle,
        loaded,
        social_entries: entries,
        replicated_in,
    })
}
