//! One-shot network work for commands: catch up from peers (`scrip sync`, `scrip audit` of a
//! wallet not held), through the daemon's node when one runs, else through a temporary node on
//! the home's store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use scrip_feed::FeedId;
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Event, Node, NodeConfig, NodeLink};

use crate::bridge::CertificateCheck;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::home::Home;
use crate::ops::{Context, parse_feed, transport};

/// How long nothing must arrive before a catch-up counts as done.
const QUIET: Duration = Duration::from_millis(1500);

/// The peers of peers.toml.
pub fn known_peers(home: &Home) -> Result<Vec<(String, Option<FeedId>)>> {
    home.peers()?
        .into_iter()
        .map(|p| Ok((p.address, p.id.as_deref().map(parse_feed).transpose()?)))
        .collect()
}

/// Connects to `peers`, asks for `feeds` (beside the follow graph), and waits until nothing more
/// arrives (or `timeout`). Returns how many entries were stored. With `require`, failing to
/// reach the (first) peer is an error.
pub async fn catch_up(
    ctx: &Context,
    peers: Vec<(String, Option<FeedId>)>,
    feeds: Vec<FeedId>,
    timeout: Duration,
    require: bool,
) -> Result<u64> {
    match &ctx.node {
        Some(node) => {
            // A visit, not a request: once this command is done (or dropped), the daemon no
            // longer replicates feeds nobody follows.
            let _visit = Visit::begin(node, &feeds).await?;
            watch(node, &peers, timeout, require, ctx.progress).await
        }
        None => {
            let config = NodeConfig {
                listen: None,
                peers: peers.clone(),
                hops: ctx.config.hops,
                explicit: feeds.iter().copied().collect(),
                transport: transport(&ctx.config)?,
                seed: crate::ops::random_seed()?,
                ..NodeConfig::default()
            };
            let node = Node::spawn_with(
                Arc::clone(&ctx.identity),
                Arc::clone(&ctx.store),
                Tcp,
                config,
                Arc::new(CertificateCheck::new(Arc::clone(&ctx.store))),
            )
            .await?;
            let result = watch(&node.link(), &peers, timeout, require, ctx.progress).await;
            node.shutdown().await;
            result
        }
    }
}

/// Feeds a command visits through the daemon's node ([`NodeLink::visit_feed`]), left when it
/// is dropped (the command finished, failed or was cancelled).
struct Visit {
    node: NodeLink<Tcp>,
    feeds: Vec<FeedId>,
}

impl Visit {
    async fn begin(node: &NodeLink<Tcp>, feeds: &[FeedId]) -> Result<Visit> {
        let mut visit = Visit {
            node: node.clone(),
            feeds: Vec::with_capacity(feeds.len()),
        };
        for feed in feeds {
            node.visit_feed(*feed).await?;
            visit.feeds.push(*feed);
        }
        Ok(visit)
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        let (node, feeds) = (self.node.clone(), std::mem::take(&mut self.feeds));
        if feeds.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for feed in feeds {
                    let _ = node.leave_feed(feed).await;
                }
            });
        }
    }
}

async fn watch(
    node: &NodeLink<Tcp>,
    peers: &[(String, Option<FeedId>)],
    timeout: Duration,
    require: bool,
    progress: bool,
) -> Result<u64> {
    let mut events = node.events();
    let targets: Vec<&str> = peers.iter().map(|(a, _)| a.as_str()).collect();
    let ids: Vec<FeedId> = peers.iter().filter_map(|(_, id)| *id).collect();
    let status = node.status().await?;
    let mut connected = status
        .peers
        .iter()
        .any(|p| targets.contains(&p.address.as_str()) || ids.contains(&p.peer));
    for (address, id) in peers {
        node.add_peer(address.clone(), *id).await?;
    }
    let bar = crate::progress::counter(progress, "catching up");
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut stored = 0u64;
    let mut remaining = 0u64;
    let mut failure: Option<String> = None;
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(100));
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::PeerConnected { address, peer, .. })
                    if targets.contains(&address.as_str()) || ids.contains(&peer) => {
                    connected = true;
                    last = Instant::now();
                }
                Ok(Event::DialFailed { address, reason }) if targets.contains(&address.as_str()) => {
                    failure = Some(format!("cannot reach {address}: {reason}"));
                    if require && targets.len() == 1 {
                        bar.finish_and_clear();
                        bail!("{}", failure.unwrap_or_default());
                    }
                }
                Ok(Event::Stored { new, .. }) => {
                    stored += u64::try_from(new).unwrap_or(0);
                    bar.set_position(stored);
                    last = Instant::now();
                }
                Ok(Event::CatchUp { entries, .. }) => {
                    remaining = entries;
                    last = Instant::now();
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            () = tick => {}
        }
        if connected && remaining == 0 && last.elapsed() >= QUIET {
            break;
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            if !connected {
                return Err(anyhow!(
                    "{}",
                    failure.unwrap_or_else(|| format!(
                        "could not reach {} within {}s",
                        targets.join(", "),
                        timeout.as_secs()
                    ))
                ));
            }
            break;
        }
    }
    bar.finish_and_clear();
    Ok(stored)
}

/// Asks peers for `feed` (through the daemon's node, else a temporary node dialing the known
/// peers) until its first entry is held or `timeout` passes. Returns whether it is held.
pub async fn fetch_feed(ctx: &Context, feed: FeedId, timeout: Duration) -> Result<bool> {
    let held = |store: Arc<dyn scrip_feed::Store>| async move {
        tokio::task::spawn_blocking(move || store.get(&feed, scrip_feed::Seq::FIRST))
            .await
            .map_err(|e| anyhow!("a store task failed: {e}"))?
            .map(|first| first.is_some())
            .map_err(anyhow::Error::from)
    };
    if held(Arc::clone(&ctx.store)).await? {
        return Ok(true);
    }
    let temporary = match &ctx.node {
        Some(node) => {
            node.request_feed(feed).await?;
            None
        }
        None => {
            let peers = known_peers(&ctx.home)?;
            if peers.is_empty() {
                return Ok(false);
            }
            let config = NodeConfig {
                listen: None,
                peers,
                hops: ctx.config.hops,
                explicit: [feed].into(),
                transport: transport(&ctx.config)?,
                seed: crate::ops::random_seed()?,
                ..NodeConfig::default()
            };
            Some(
                Node::spawn_with(
                    Arc::clone(&ctx.identity),
                    Arc::clone(&ctx.store),
                    Tcp,
                    config,
                    Arc::new(CertificateCheck::new(Arc::clone(&ctx.store))),
                )
                .await?,
            )
        }
    };
    let deadline = Instant::now() + timeout;
    let mut found = false;
    while Instant::now() < deadline {
        if held(Arc::clone(&ctx.store)).await? {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(node) = temporary {
        node.shutdown().await;
    }
    Ok(found)
}
