//! `scrip serve`: the node daemon. It owns the home's store and runs, over it:
//!
//! - a replicate node (listener, dialer, gossip), checking received certificates;
//! - with `--notary`, the notary service (its own listener and vote store) and the bridge that
//!   makes it a peer;
//! - the control socket, through which other commands on this home run their operations.
//!
//! Ctrl-C or SIGTERM stops it cleanly: the socket first, then the notary (queued decisions
//! finish), then the node (goodbyes sent); every acknowledged write is already durable.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use scrip_feed::{Content, Store};
use scrip_notary::{LogVoteStore, Notary, NotaryConfig, NotaryHandle};
use scrip_replicate::background::NodeRuntime;
use scrip_replicate::transport::Tcp;
use scrip_replicate::{Node, NodeConfig, NodeHandle};

use crate::bridge::CertificateCheck;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::api;
use crate::home::Home;
use crate::net::known_peers;
use crate::ops::{Context, transport};

/// How `scrip serve` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Replication address (else config.toml's).
    pub listen: Option<String>,
    /// Run the notary service too.
    pub notary: bool,
    /// Notary address (else config.toml's).
    pub notary_listen: Option<String>,
}

/// What a started daemon reports.
#[derive(Clone, Debug, Serialize)]
pub struct Ready {
    /// The identity.
    pub identity: String,
    /// The wallet, if any.
    pub wallet: Option<String>,
    /// The replication address bound.
    pub listen: String,
    /// The notary address bound, with `--notary`.
    pub notary: Option<String>,
    /// The control socket.
    pub socket: String,
    /// The web wallet's address with its token (`scrip open`), if served.
    pub web: Option<String>,
}

/// A running daemon.
pub struct Daemon {
    node: NodeHandle<Tcp>,
    /// What the node runs on when it is not the daemon's runtime (a notary's: lower priority).
    node_runtime: Option<NodeRuntime>,
    notary: Option<NotaryHandle>,
    /// A notary daemon's bridge and the task keeping whom it vouches for.
    bridge: Vec<JoinHandle<()>>,
    api: JoinHandle<()>,
    refunder: Option<JoinHandle<()>>,
    invites: JoinHandle<()>,
    counter: JoinHandle<()>,
    web: Option<crate::web::Web>,
    socket: PathBuf,
    ctx: Arc<Context>,
    ready: Ready,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Starts the daemon of `home`.
    pub async fn start(home: Home, options: ServeOptions) -> Result<Daemon> {
        let config = home.config()?;
        home.check_private()?;
        let identity = Arc::new(home.identity()?);
        // The socket first: a second daemon on this home stops here, before touching the store.
        let listener = api::bind(&home).await?;
        let socket = home.socket();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // What the node's certificate checks verified, for the wallet client (not checked twice).
        let seen = Arc::default();
        let started = start_parts(&home, &options, &config, &identity, &metrics, &seen).await;
        let (node, node_runtime, notary, mut bridge, vouched, store) = match started {
            Ok(parts) => parts,
            Err(err) => {
                api::unbind(&socket);
                return Err(err);
            }
        };
        let mut ctx = Context::new(home.clone(), store, Some(node.link()), false)?;
        ctx.seen = seen;
        let ctx = Arc::new(ctx);
        let _ = ctx.metrics.set(Arc::clone(&metrics));
        if let Some(vouched) = vouched {
            bridge.push(crate::bridge::keep_vouched(
                node.link(),
                Arc::clone(&ctx),
                vouched,
            ));
        }
        let counter = count_stored(node.events(), metrics);
        let api = api::serve(listener, Arc::clone(&ctx));
        let web = match config.web_listen()? {
            None => None,
            Some(address) => match crate::web::start(Arc::clone(&ctx), address).await {
                Ok(web) => {
                    let _ = ctx.web_url.set(web.url.clone());
                    Some(web)
                }
                // The wallet still works from the command line: the daemon goes on without it.
                Err(err) => {
                    tracing::warn!("no web wallet: {err:#}; set web_listen in config.toml");
                    None
                }
            },
        };
        let ready = Ready {
            identity: identity.id().to_string(),
            wallet: home.wallet_key()?.map(|k| k.id().to_string()),
            listen: node.listen_address().unwrap_or_default().to_string(),
            notary: notary.as_ref().map(|n| n.address().to_string()),
            socket: socket.display().to_string(),
            web: web.as_ref().map(|w| w.url.clone()),
        };
        let refunder = config
            .auto_refund
            .then(|| tokio::spawn(refund_expired_orders(Arc::clone(&ctx))));
        let invites = tokio::spawn(tend_invites(Arc::clone(&ctx)));
        let daemon = Daemon {
            node,
            node_runtime,
            notary,
            bridge,
            api,
            refunder,
            invites,
            counter,
            web,
            socket,
            ctx,
            ready,
        };
        // In the background: before it signs, the daemon may wait for its peers to confirm its
        // own feed's head (a home restored from an older copy, or from a backup, must catch up
        // first); until then it tries again, less and less often.
        let (ctx, address) = (Arc::clone(&daemon.ctx), daemon.ready.listen.clone());
        tokio::spawn(async move {
            let mut wait = PUBLISH_RETRY_FIRST;
            while let Err(err) = publish_address(&ctx, address.clone()).await {
                tracing::warn!(
                    "the node's address is not published yet (tried again in {}s): {err:#}",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(PUBLISH_RETRY_MAX);
            }
        });
        Ok(daemon)
    }

    /// What it bound.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Its operation context (the demo drives daemons through it).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Stops everything, in order.
    pub async fn stop(self) {
        self.api.abort();
        self.counter.abort();
        if let Some(web) = self.web {
            web.stop();
        }
        if let Some(refunder) = self.refunder {
            refunder.abort();
        }
        self.invites.abort();
        api::unbind(&self.socket);
        if let Some(notary) = self.notary {
            notary.shutdown().await;
        }
        for task in self.bridge {
            task.abort();
        }
        self.node.shutdown().await;
        drop(self.node_runtime);
    }
}

/// The daemon's invite work (`invite::tend`), every [`crate::invite::TEND_EVERY`]; an error
/// is logged when it differs from the last one (a group waiting for its notaries would
/// otherwise say the same every second).
async fn tend_invites(ctx: Arc<Context>) {
    let mut last = String::new();
    loop {
        tokio::time::sleep(crate::invite::TEND_EVERY).await;
        match crate::invite::tend(&ctx).await {
            Ok(()) => last.clear(),
            Err(err) => {
                let said = format!("{err:#}");
                if said != last {
                    tracing::warn!("invites: {said} (tried again every second)");
                    last = said;
                }
            }
        }
    }
}

/// Longest the refunder sleeps before it looks at the wallet's orders again (a payment made
/// meanwhile wakes it at once).
const REFUND_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The daemon's refunder: takes back this wallet's orders that expired unaccepted, as soon as
/// the notaries' margin allows, and reports each in the log.
async fn refund_expired_orders(ctx: Arc<Context>) {
    loop {
        let wait = match crate::ops::refund_expired(&ctx).await {
            Ok((lines, next)) => {
                for line in lines {
                    tracing::info!("auto-refund: {line}");
                }
                next.map_or(REFUND_RECHECK, |at| {
                    std::time::Duration::from_millis(at.saturating_sub(crate::ops::now_ms()))
                        .min(REFUND_RECHECK)
                })
            }
            Err(err) => {
                tracing::warn!("auto-refund: {err:#}");
                REFUND_RECHECK
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.orders_changed.notified() => {}
        }
    }
}

/// Counts the entries the node stores into `metrics`, until the node stops.
fn count_stored(
    mut events: tokio::sync::broadcast::Receiver<scrip_replicate::Event>,
    metrics: Arc<crate::metrics::Metrics>,
) -> JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(scrip_replicate::Event::Stored { new, received, .. }) => {
                    metrics.stored(new, received);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// The first wait before the daemon tries again to publish its address.
const PUBLISH_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between two tries to publish the daemon's address.
const PUBLISH_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Publishes a `Pub` entry with the replication address if the feed's latest one differs, so
/// that peers who replicate this feed can dial it.
async fn publish_address(ctx: &Context, address: String) -> Result<()> {
    let me = ctx.identity.id();
    // From the names cache: the own feed is read once per daemon, then only what is new.
    let latest = ctx
        .with_people(move |people, store| {
            Ok(crate::ops::own_person(people, store, &me)?.address.clone())
        })
        .await?;
    if latest.as_deref() != Some(address.as_str()) && !address.is_empty() {
        ctx.publish(Content::Pub { address }).await?;
    }
    Ok(())
}

type Parts = (
    NodeHandle<Tcp>,
    Option<NodeRuntime>,
    Option<NotaryHandle>,
    Vec<JoinHandle<()>>,
    Option<crate::bridge::Vouched>,
    Arc<dyn Store>,
);

async fn start_parts(
    home: &Home,
    options: &ServeOptions,
    config: &crate::config::Config,
    identity: &Arc<scrip_feed::Keypair>,
    metrics: &Arc<crate::metrics::Metrics>,
    seen: &Arc<std::sync::Mutex<scrip_ledger::verify::Seen>>,
) -> Result<Parts> {
    let opening = home.clone();
    let store: Arc<dyn Store> = tokio::task::spawn_blocking(move || opening.open_store()).await??;
    let wallet = home.wallet_key()?.map(|k| k.id());
    let node_config = NodeConfig {
        listen: Some(options.listen.clone().unwrap_or(config.listen.clone())),
        peers: known_peers(home)?,
        hops: config.hops,
        // The wallet, and the invites' feeds while they are open (`invite.md` §2).
        explicit: wallet
            .into_iter()
            .chain(crate::invite::invite_feeds(home)?)
            .collect(),
        transport: transport(config)?,
        seed: crate::ops::random_seed()?,
        // A notary's decisions come first when the cores are busy (scrip bench load).
        background_ingest: options.notary,
        // A restored home looks for a peer that holds its feed before anything else.
        seek_own_feed: home.restored(),
        ..NodeConfig::default()
    };
    // A notary's vote log and whom it vouches for come first: its node's check reads both.
    let notary_parts = if options.notary {
        let votes: Arc<dyn scrip_notary::VoteStore> = Arc::new(crate::metrics::CountedVotes::new(
            Arc::new(LogVoteStore::open(&home.votes()).context("opening the vote store")?),
            Arc::clone(metrics),
        ));
        let (store, me) = (Arc::clone(&store), identity.id());
        let vouched =
            tokio::task::spawn_blocking(move || crate::bridge::Vouched::read(store.as_ref(), &me))
                .await?
                .context("reading whom this notary vouches for")?;
        Some((votes, vouched))
    } else {
        None
    };
    let mut check = CertificateCheck::new(Arc::clone(&store)).remembering(Arc::clone(seen));
    if let Some((votes, vouched)) = &notary_parts {
        check = check.for_notary(identity.id(), vouched.clone(), Arc::clone(votes));
    }
    let spawn = Node::spawn_with(
        Arc::clone(identity),
        Arc::clone(&store),
        Tcp,
        node_config,
        Arc::new(check),
    );
    // A notary's node runs on threads of lower priority, so that the notary's decisions come
    // first when the cores are busy (`background::NodeRuntime`, scrip bench load).
    let (node, node_runtime) = if options.notary {
        let runtime = NodeRuntime::start().context("starting the node")?;
        let node = runtime.run(spawn).await.context("starting the node")?;
        (node, Some(runtime))
    } else {
        (spawn.await, None)
    };
    let node = node.context("starting the node")?;
    let (notary, bridge, vouched) = if let Some((votes, vouched)) = notary_parts {
        let started = Notary::spawn(
            Arc::clone(identity),
            Arc::clone(&store),
            votes,
            Tcp,
            NotaryConfig {
                listen: options
                    .notary_listen
                    .clone()
                    .unwrap_or(config.notary_listen.clone()),
                transport: transport(config)?,
                clock_skew: std::time::Duration::from_secs(config.clock_skew),
                new_wallets_per_hour: Some(config.notary_new_wallets_per_hour),
                stranger_entries_per_sec: Some(config.notary_stranger_entries_per_sec),
                vouched: Some(vouched.for_notary()),
                ..NotaryConfig::default()
            },
            Arc::new(|_| {}),
        )
        .await;
        match started {
            Ok(notary) => {
                let bridge = crate::bridge::bridge(node.link(), &notary);
                (Some(notary), vec![bridge], Some(vouched))
            }
            Err(err) => {
                node.shutdown().await;
                return Err(err).context("starting the notary service");
            }
        }
    } else {
        (None, Vec::new(), None)
    };
    Ok((node, node_runtime, notary, bridge, vouched, store))
}

/// Runs the daemon until Ctrl-C or SIGTERM.
pub async fn serve(home: Home, options: ServeOptions, json: bool) -> Result<()> {
    // Listening before anything starts: a SIGTERM sent the moment the daemon says it is ready
    // (a supervisor may) stops it cleanly instead of killing it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let daemon = tokio::select! {
        started = Daemon::start(home, options) => started?,
        // Still starting (waiting for the store, say): stop here, as a kill would.
        _ = interrupt.recv() => return Ok(()),
        _ = terminate.recv() => return Ok(()),
    };
    let ready = daemon.ready().clone();
    if json {
        crate::say(&format!("{}\n", serde_json::to_string(&ready)?))?;
    } else {
        crate::say(&format!(
            "scrip daemon running: identity {}, replication on {}{}, control socket {}\n",
            ready.identity,
            ready.listen,
            ready
                .notary
                .as_ref()
                .map_or(String::new(), |n| format!(", notary on {n}")),
            ready.socket
        ))?;
        if let Some(web) = &ready.web {
            crate::say(&format!(
                "web wallet: {web}\n(the address holds a secret token: `scrip open` shows it again)\n"
            ))?;
        }
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    daemon.stop().await;
    if !json {
        crate::say("scrip daemon stopped; everything is on disk\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_feed::{Keypair, Timestamp};

    /// A notary daemon knows whom it vouches for when its node and notary start, not only once
    /// a task has read it afterwards: the node's first gossip and the notary's first proposals
    /// are judged with the members known (before, a member's wallet arriving by gossip in that
    /// window was declined for a backoff, and its proposals counted as a stranger's).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_notary_daemon_knows_whom_it_vouches_for_when_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("notary"));
        let config = crate::config::Config::default();
        let identity = Arc::new(home.init(&config).unwrap());
        let alice = Keypair::from_seed(&[7; 32]);
        let alice_wallet = Keypair::from_seed(&[8; 32]).id();
        let stranger_wallet = Keypair::from_seed(&[9; 32]).id();
        {
            // Alice's identity links her wallet, and this home follows her; a stranger's
            // identity links one too, unfollowed.
            let store = home.open_store().unwrap();
            let link = scrip_ledger::content::wallet_link_payload;
            let at = Timestamp::from_millis(1);
            store
                .publish(&alice, at, link(alice_wallet).unwrap())
                .unwrap();
            let stranger = Keypair::from_seed(&[10; 32]);
            store
                .publish(&stranger, at, link(stranger_wallet).unwrap())
                .unwrap();
            let follow = Content::Follow { feed: alice.id() }.encode().unwrap();
            store.publish(&identity, at, follow).unwrap();
        }
        let options = ServeOptions {
            listen: Some("127.0.0.1:0".into()),
            notary: true,
            notary_listen: Some("127.0.0.1:0".into()),
        };
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (node, runtime, notary, bridge, vouched, _store) = start_parts(
            &home,
            &options,
            &config,
            &identity,
            &metrics,
            &Arc::default(),
        )
        .await
        .unwrap();
        let vouched = vouched.unwrap();
        assert!(vouched.holds(&alice_wallet), "a member's wallet");
        assert!(!vouched.holds(&stranger_wallet), "a stranger's wallet");
        for task in bridge {
            task.abort();
        }
        if let Some(notary) = notary {
            notary.shutdown().await;
        }
        node.shutdown().await;
        drop(runtime);
    }
}
