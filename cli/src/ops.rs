//! The operations behind the commands, written once: the CLI runs them on a home it opened
//! itself, or sends them to the home's daemon, which runs them on its own [`Context`] (with its
//! node, so that what they store is gossiped at once). Inputs arrive as the user typed them and
//! are checked here, so both paths give the same errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use scrip_feed::{Content, Entry, EntryId, FeedId, Keypair, Seq, Store, Timestamp};
use scrip_ledger::content::{Accept, Genesis, Mint, Order, OrderRef, Reclaim, Reject};
use scrip_ledger::{
    Amount, Currency, CurrencyCode, LedgerState, OrderStatus, TrustSignatures, WalletEntry,
    WalletState,
};
use scrip_notary::certified;
use scrip_notary::{NotaryAddr, PendingFile, WalletClient};
use scrip_replicate::NodeLink;
use scrip_replicate::transport::{Tcp, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::args::{PeerAdd, WalletCreate};
use crate::config::Config;
use crate::home::{Home, PeerEntry};
use crate::net;
use crate::output::{BalanceLine, FeedLine, OrderLine, Output, PeerLine};

/// An operation: the commands that act on a home, run by the CLI itself or sent to the home's
/// daemon over its control socket (as JSON, `{"op": "pay", ...}`). This one type is both the
/// clap definition of those commands (flattened into [`crate::args::Command`]) and what the
/// socket carries; `peer` and `wallet` subcommands share their argument structs with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Subcommand)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `scrip peer add` (see [`crate::args::PeerCommand`]).
    #[command(skip)]
    PeerAdd(PeerAdd),
    /// `scrip peer list`.
    #[command(skip)]
    PeerList,
    /// `scrip contact add` (see [`crate::args::ContactCommand`]).
    #[command(skip)]
    ContactAdd(crate::args::ContactAdd),
    /// `scrip contact list`.
    #[command(skip)]
    ContactList,
    /// `scrip contact remove`.
    #[command(skip)]
    ContactRemove {
        /// The name.
        name: String,
    },
    /// `scrip wallet create` (see [`crate::args::WalletCommand`]).
    #[command(skip)]
    WalletCreate(WalletCreate),
    /// `scrip wallet abandon`.
    #[command(skip)]
    WalletAbandon,
    /// `scrip wallet notaries`.
    #[command(skip)]
    WalletNotaries,
    /// Show this home's identity and wallet.
    ///
    /// Example: `scrip id`
    Id,
    /// Invite someone: prints a code (one person, once) that `scrip join` takes. With
    /// `--group N`, prints the N − 1 codes of a group of N people who are each other's notaries
    /// (one per line; you are the N-th): when all have joined, every member's wallet is created
    /// with all of them as notaries (docs/protocol/invite.md).
    ///
    /// Example: `scrip invite --group 5`
    Invite {
        /// Form a group of this many members, you included (2–20).
        #[arg(long, value_name = "N")]
        group: Option<u8>,
        /// The replication address the code gives (default: where this home listens).
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        /// List the invites made, and who joined through each, instead.
        #[arg(long, conflicts_with_all = ["group", "address"])]
        #[serde(default)]
        list: bool,
    },
    /// Join through an invite code: sets the network key, peers with and follows the inviter,
    /// and (with `scrip serve` running) creates your wallet with the notaries the invite names,
    /// or with the group's once everyone has joined.
    ///
    /// Example: `scrip join invite:3mYb8x...`
    Join {
        /// The code (`invite:...`).
        code: String,
    },
    /// Follow a feed: replicate it (and what it follows, two hops out).
    ///
    /// Example: `scrip follow @3yZe7d...`
    Follow {
        /// The feed id (`@...`).
        feed: String,
    },
    /// Stop following a feed.
    ///
    /// Example: `scrip unfollow @3yZe7d...`
    Unfollow {
        /// The feed id (`@...`).
        feed: String,
    },
    /// Block a feed: never replicate or relay it.
    ///
    /// Example: `scrip block @3yZe7d...`
    Block {
        /// The feed id (`@...`).
        feed: String,
    },
    /// Undo a block: the feed may be replicated again (follow it again if you want it).
    ///
    /// Example: `scrip unblock @3yZe7d...`
    Unblock {
        /// The feed id (`@...`).
        feed: String,
    },
    /// Publish a post.
    ///
    /// Example: `scrip post "hello, world"`
    Post {
        /// The text.
        text: String,
    },
    /// Set your nickname.
    ///
    /// Example: `scrip nick alice`
    Nick {
        /// The name (at most 64 bytes).
        name: String,
    },
    /// Read a feed, newest first, with nicknames (default: your own).
    ///
    /// Example: `scrip feed @3yZe7d... --limit 10`
    Feed {
        /// The feed id (`@...`).
        feed: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Catch up once from a peer, then stop.
    ///
    /// Example: `scrip sync 127.0.0.1:7411`
    Sync {
        /// The peer's replication address.
        addr: String,
        /// The identity expected there (`@...`).
        id: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// List the fork proofs this node holds (authors who signed two entries for one seq).
    ///
    /// Example: `scrip forks`
    Forks,
    /// Issue money in your own currency (you are its issuer).
    ///
    /// Example: `scrip mint 100.00 EUR`
    Mint {
        /// The amount, as a decimal ("100.00").
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// The currency code (1–8 of A-Z0-9).
        currency: String,
        /// Decimal places, fixed by the first mint of a code.
        #[arg(long, default_value_t = 2)]
        decimals: u8,
    },
    /// Pay another wallet: an order, certified by your notaries, held in escrow until the
    /// receiver accepts or rejects it.
    ///
    /// The receiver is checked before anything is signed: a mistyped address, a person's
    /// identity instead of their wallet, a wallet nobody here knows, or one whose notaries could
    /// never safely settle the payment are refused.
    ///
    /// Example: `scrip pay +8Hq2... 12.50 EUR --memo "lunch"`
    Pay {
        /// The receiving wallet's address (`+...`, shown by the receiver's `scrip id`).
        wallet: String,
        /// The amount, as a decimal ("12.50").
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// The currency: a code you hold ("EUR"), or CODE@ISSUER when several issuers use it.
        currency: String,
        /// A note for the receiver (at most 256 bytes).
        #[arg(long)]
        memo: Option<String>,
        /// How long the receiver can accept it ("90s", "2h", "7d"; default: config.toml's
        /// order_expiry, 7 days); after that you get it back (`scrip reclaim`, or the daemon by
        /// itself).
        #[arg(long)]
        expires: Option<String>,
        /// A hash lock (64 hex digits, from the receiver's `scrip hashlock`): only the holder of
        /// its secret can accept, and the order cannot be cancelled, only refunded after it
        /// expires.
        #[arg(long)]
        condition: Option<String>,
    },
    /// Show the wallet entry signed earlier and still waiting for its notaries, if any (a
    /// command that exited with status 3 left it); `--retry` tries to settle it now.
    ///
    /// A pending entry is sent again, byte for byte, by the next wallet command; it is dropped
    /// only when it can never be certified (refused by enough notaries, or its slot taken by
    /// another certified entry of the wallet), and that is reported.
    ///
    /// Example: `scrip pending --retry`
    Pending {
        /// Try to get it certified now.
        #[arg(long)]
        retry: bool,
    },
    /// List orders to and from your wallet, oldest first: your payment history.
    ///
    /// Example: `scrip orders --incoming --pending`
    #[command(visible_alias = "history")]
    Orders {
        /// Only orders to you.
        #[arg(long)]
        incoming: bool,
        /// Only orders from you.
        #[arg(long)]
        outgoing: bool,
        /// Only orders not yet accepted, or rejected and not yet reclaimed.
        #[arg(long)]
        pending: bool,
    },
    /// Accept an order paid to you: the amount is credited to your wallet.
    ///
    /// Example: `scrip accept %5tGk...`
    Accept {
        /// The order id (`%...`, see `scrip orders`).
        order: String,
        /// The secret (64 hex digits) that opens the order's hash lock, if it has one.
        #[arg(long)]
        preimage: Option<String>,
    },
    /// Reject an order paid to you: the sender can then reclaim it.
    ///
    /// Example: `scrip reject %5tGk... --reason "wrong amount"`
    Reject {
        /// The order id (`%...`).
        order: String,
        /// Why (at most 256 bytes).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Take back an order of yours that its receiver rejected, or that expired unaccepted.
    ///
    /// Example: `scrip reclaim %5tGk...`
    Reclaim {
        /// The order id (`%...`).
        order: String,
    },
    /// Cancel an order of yours that its receiver has not accepted: you get it back at once.
    /// Not for a hash-locked order (it is refunded after it expires).
    ///
    /// Example: `scrip cancel %5tGk...`
    Cancel {
        /// The order id (`%...`).
        order: String,
    },
    /// Make a secret for a hash-locked payment: keep the preimage, give the lock to the payer
    /// (`scrip pay ... --condition LOCK`), accept with `scrip accept ORDER --preimage SECRET`.
    /// Accepting reveals the secret to everyone who reads your wallet.
    ///
    /// Example: `scrip hashlock`
    Hashlock,
    /// Show your wallet's balances.
    ///
    /// Example: `scrip balance`
    Balance,
    /// Open the web wallet `scrip serve` serves (its address, with a secret token, is printed
    /// too: it grants what this command line does, so keep it to yourself).
    ///
    /// Example: `scrip open --print`
    Open {
        /// Only print the address; do not start a browser.
        #[arg(long)]
        print: bool,
    },
    /// Replay and verify a wallet's log step by step (fetching it from peers if needed). Exits
    /// 0 if it is sound, 2 with the first violation otherwise.
    ///
    /// Example: `scrip audit +8Hq2... --json`
    Audit {
        /// The wallet (its address `+...`, or its feed id `@...`).
        wallet: String,
        /// Seconds to spend fetching the log from peers when it is not held.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

impl Op {
    /// Its name, as the control socket spells it (`pay`, `contact_add`, …).
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["op"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether `self` only reads the home (it can run on a copy of a store that cannot be
    /// written: see `run_op`).
    pub fn only_reads(&self) -> bool {
        matches!(
            self,
            Op::Id
                | Op::PeerList
                | Op::ContactList
                | Op::Feed { .. }
                | Op::Forks
                | Op::Balance
                | Op::Orders { .. }
        )
    }

    /// How long a command waits for its daemon to answer `self`: the configured command
    /// timeout, or longer for an operation that is given its own time.
    pub fn patience(&self, command_timeout: u64) -> Duration {
        let own = match self {
            Op::Sync { timeout, .. } | Op::Audit { timeout, .. } => timeout.saturating_add(10),
            _ => 0,
        };
        Duration::from_secs(command_timeout.max(own))
    }
}

/// Everything an operation works with.
pub struct Context {
    /// The home.
    pub home: Home,
    /// Its settings.
    pub config: Config,
    /// The identity.
    pub identity: Arc<Keypair>,
    /// The feed store.
    pub store: Arc<dyn Store>,
    /// The daemon's node, when running inside the daemon.
    pub node: Option<NodeLink<Tcp>>,
    /// Show progress bars (a terminal, not the daemon).
    pub progress: bool,
    wallet: Mutex<Option<WalletClient<Tcp>>>,
    /// The certified entries this home verified: filled by the daemon's node as it checks
    /// certificates, read by the wallet client when it cites them (not checked twice).
    pub seen: Arc<std::sync::Mutex<scrip_ledger::verify::Seen>>,
    /// Whether this daemon's own feed head was checked against its peers (first publish).
    own_head_checked: Mutex<bool>,
    /// Held while invites.toml or joined.toml is read, changed and written back (`scrip
    /// invite`, `scrip join` and the daemon's invite round run concurrently in a daemon).
    pub(crate) invites: Mutex<()>,
    /// The ledger of every wallet held, as far as it was read (see [`Context::ledger`]).
    ledger: Arc<std::sync::Mutex<LedgerCache>>,
    /// Signalled when this wallet pays (the daemon's refunder then looks at its expiries again).
    pub orders_changed: tokio::sync::Notify,
    /// The web wallet's address with its token, once the daemon serves it.
    pub web_url: std::sync::OnceLock<String>,
    /// The daemon's metrics (every operation is counted and timed there).
    pub metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("home", &self.home)
            .field("identity", &self.identity.id())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch, now.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// A seed for a node's random choices, from the operating system: every node process draws
/// its own epoch and dials its own peers (`replication.md` §3, §4). A constant seed gave every
/// daemon the same epoch after every restart and made all of them choose alike.
pub fn random_seed() -> Result<u64> {
    getrandom::u64().map_err(|e| anyhow!("the operating system's randomness: {e}"))
}

/// Parses a feed id as typed, with the input in the error.
pub fn parse_feed(text: &str) -> Result<FeedId> {
    text.trim()
        .parse::<FeedId>()
        .map_err(|e| anyhow!("{text:?} is not a feed id ({e}); feed ids look like @3yZe7d..."))
}

/// Longest a daemon waits, before the first entry it signs on the identity's feed, for a peer
/// to say how far that feed is.
pub const OWN_HEAD_WAIT: Duration = Duration::from_secs(5);

/// The refusal to sign on a feed that peers hold further than this store.
fn own_head_behind(local: u64, claimed: u64) -> String {
    format!(
        "this home holds its own feed up to #{local} but a peer holds it up to #{claimed}: the \
         home was restored from an older copy; the daemon is fetching the missing entries, and \
         nothing is signed until it has them (signing now would fork the feed); try again in a \
         moment"
    )
}

/// The refusal to sign on the identity's feed of a restored home before a peer that replicates
/// it has answered.
fn restored_unconfirmed() -> String {
    "this home was restored from a backup and no peer that replicates its feed has said how \
     far the feed goes yet: nothing is signed on it until then (signing now could fork it); \
     keep `scrip serve` running with your peers reachable (`scrip peer list`), and try again \
     in a moment"
        .to_owned()
}

/// The error for a wallet command on a home without a wallet.
pub(crate) fn no_wallet() -> anyhow::Error {
    anyhow!("no wallet yet: create one with `scrip wallet create --notary FEED_ID@ADDR ...`")
}

/// The text form of wallet `wallet`: its address (`+…`, with a checksum).
pub fn address(wallet: FeedId) -> String {
    scrip_ledger::WalletAddress::of(wallet).to_string()
}

/// Wallet `wallet` as a message names it: its name (`wallet_names`) with its address
/// (`bob (+…)`), or the address alone.
pub async fn named_address(ctx: &Context, wallet: FeedId) -> String {
    let name = match ctx.wallet_names().await {
        Ok(names) => names.get(&wallet).cloned(),
        Err(err) => {
            tracing::debug!("wallet names: {err:#}");
            None
        }
    };
    match name {
        Some(name) => format!("{name} ({})", address(wallet)),
        None => address(wallet),
    }
}

/// A feed named as typed: a wallet address (`+…`, checksum checked) or a feed id (`@…`).
pub fn parse_feed_or_address(text: &str) -> Result<FeedId> {
    if text
        .trim()
        .starts_with(scrip_ledger::address::ADDRESS_PREFIX)
    {
        return scrip_ledger::WalletAddress::parse(text)
            .map(|a| a.wallet())
            .map_err(|defect| anyhow!("{text:?} is not a wallet address: {}", defect.reason()));
    }
    parse_feed(text)
}

fn parse_order(text: &str) -> Result<EntryId> {
    text.trim().parse::<EntryId>().map_err(|e| {
        anyhow!(
            "{text:?} is not an order id ({e}); order ids look like %5tGk... (see `scrip orders`)"
        )
    })
}

/// Parses `FEED_ID@ADDR`.
pub fn parse_notary(text: &str) -> Result<NotaryAddr> {
    let rest = text.strip_prefix('@').unwrap_or(text);
    let (id, address) = rest
        .split_once('@')
        .ok_or_else(|| anyhow!("{text:?} is not FEED_ID@ADDR (e.g. @3yZe7d...@127.0.0.1:7412)"))?;
    if address.is_empty() {
        bail!("{text:?} has no address after the feed id");
    }
    Ok(NotaryAddr {
        id: parse_feed(&format!("@{id}"))?,
        address: address.to_owned(),
    })
}

/// The transport settings of `config`.
pub fn transport(config: &Config) -> Result<TransportConfig> {
    Ok(TransportConfig {
        network_key: config.network_key()?,
        ..TransportConfig::default()
    })
}

impl Context {
    /// A context over an open store.
    pub fn new(
        home: Home,
        store: Arc<dyn Store>,
        node: Option<NodeLink<Tcp>>,
        progress: bool,
    ) -> Result<Context> {
        let config = home.config()?;
        let identity = Arc::new(home.identity()?);
        Ok(Context {
            home,
            config,
            identity,
            store,
            node,
            progress,
            wallet: Mutex::new(None),
            seen: Arc::default(),
            own_head_checked: Mutex::new(false),
            invites: Mutex::new(()),
            ledger: Arc::new(std::sync::Mutex::new(LedgerCache::default())),
            orders_changed: tokio::sync::Notify::new(),
            web_url: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
        })
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(Arc<dyn Store>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(store))
            .await
            .map_err(|e| anyhow!("a store task failed: {e}"))?
    }

    /// Publishes `content` on the identity's feed (durably), and gossips it if a node runs.
    pub async fn publish(&self, content: Content) -> Result<Entry> {
        self.publish_payload(content.encode()?).await
    }

    /// Publishes an encoded payload on the identity's feed (durably), and gossips it.
    pub async fn publish_payload(&self, payload: Vec<u8>) -> Result<Entry> {
        self.own_head_checked().await?;
        let key = Arc::clone(&self.identity);
        let entry = self
            .blocking(move |store| Ok(store.publish(&key, now(), payload)?))
            .await?;
        self.announce(entry.author(), entry.seq().get()).await;
        Ok(entry)
    }

    /// Before the first entry this daemon signs on the identity's feed: its head must not be
    /// behind what peers hold of it (a home restored from an older copy would sign a second
    /// entry for a seq it already used, and peers would freeze the feed as forked). Waits up to
    /// [`OWN_HEAD_WAIT`] for a peer that replicates this feed to say how far it is (and for the
    /// node to fetch what this store lacks); refuses, writing nothing, while it is behind.
    /// Without a daemon there is no node to ask (`docs/cli.md` §3).
    async fn own_head_checked(&self) -> Result<()> {
        let Some(node) = &self.node else {
            if self.home.restored() {
                bail!(restored_unconfirmed());
            }
            return Ok(());
        };
        let mut checked = self.own_head_checked.lock().await;
        if *checked {
            // Checked once; later claims still stop a publish below them.
            let status = node.status().await?;
            if status.own_claimed > status.own_head {
                bail!(own_head_behind(status.own_head, status.own_claimed));
            }
            return Ok(());
        }
        let restored = self.home.restored();
        let deadline = tokio::time::Instant::now() + OWN_HEAD_WAIT;
        loop {
            let status = node.status().await?;
            let caught_up = status.own_claimed <= status.own_head;
            // A restored home needs the word of a peer that replicates its feed; otherwise any
            // peer connected long enough to have sent its clock will do (a new feed has no
            // followers yet).
            // (A claim of 0 proves nothing: any stranger who connects could make it.)
            let heard = if restored {
                status.own_noted > 0 && status.own_claimed > 0
            } else {
                status.settled_peers > 0 || status.known_addresses == 0
            };
            if caught_up && heard {
                if restored {
                    self.home.feed_confirmed()?;
                }
                *checked = true;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                if !caught_up {
                    bail!(own_head_behind(status.own_head, status.own_claimed));
                }
                if restored {
                    bail!(restored_unconfirmed());
                }
                // No peer answered in time: nothing says this store is behind.
                tracing::warn!(
                    "no peer reachable to confirm this feed's head; publishing on the local one"
                );
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn announce(&self, feed: FeedId, head: u64) {
        if let Some(node) = &self.node {
            let _ = node.announce(feed, head).await;
        }
    }

    /// The wallet's id, if created.
    pub fn wallet_id(&self) -> Result<Option<FeedId>> {
        Ok(self.home.wallet_key()?.map(|k| k.id()))
    }

    /// The wallet's client (made on first use), locked for one operation at a time.
    pub(crate) async fn wallet_client(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<WalletClient<Tcp>>>> {
        let mut guard = self.wallet.lock().await;
        if guard.is_none() {
            let key = self.home.wallet_key()?.ok_or_else(|| {
                anyhow!(
                    "no wallet yet: create one with `scrip wallet create --notary FEED_ID@ADDR ...`"
                )
            })?;
            let notaries = self.home.notaries()?;
            if notaries.is_empty() {
                bail!("this wallet has no notaries in wallet.toml");
            }
            *guard = Some(
                WalletClient::new(
                    Arc::new(key),
                    Arc::clone(&self.store),
                    PendingFile::new(self.home.pending()),
                    notaries,
                    Tcp,
                    crate::wallet::client_config(self)?,
                )?
                .remembering(Arc::clone(&self.seen)),
            );
        }
        Ok(guard)
    }

    /// The wallet's client slot, locked (to drop the client when the wallet changes).
    pub(crate) async fn wallet_lock(
        &self,
    ) -> tokio::sync::MutexGuard<'_, Option<WalletClient<Tcp>>> {
        self.wallet.lock().await
    }

    /// Says goodbye to the notaries the wallet client talked to (a one-shot command ends).
    pub async fn close(&self) {
        if let Some(client) = self.wallet.lock().await.as_ref() {
            client.close().await;
        }
    }

    /// Gets `content` certified as the wallet's next entry (see [`crate::wallet::submit`]).
    async fn submit(&self, content: WalletEntry) -> Result<crate::wallet::Submitted> {
        crate::wallet::submit(self, content).await
    }

    /// The wallet's state after its certified log.
    async fn wallet_state(&self) -> Result<WalletState> {
        let wallet = self.wallet_id()?.ok_or_else(no_wallet)?;
        self.with_ledger(move |ledger| {
            ledger
                .wallet(&wallet)
                .cloned()
                .unwrap_or_else(|| WalletState::new(wallet))
        })
        .await
    }

    /// The ledger over every wallet held in the store, kept up to date incrementally: each call
    /// applies only the certified entries stored since the last one (a daemon's context lives
    /// as long as the daemon; a one-shot command builds it once). A copy of the whole state.
    pub async fn ledger(&self) -> Result<LedgerState> {
        self.with_ledger(LedgerState::clone).await
    }

    /// Runs `read` on the up-to-date ledger (see [`Context::ledger`]) without copying it.
    pub async fn with_ledger<T: Send + 'static>(
        &self,
        read: impl FnOnce(&LedgerState) -> T + Send + 'static,
    ) -> Result<T> {
        self.with_cache(move |cache, _| Ok(read(&cache.state)))
            .await
    }

    /// Runs `read` on the up-to-date ledger cache.
    async fn with_cache<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut LedgerCache, &dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cache = Arc::clone(&self.ledger);
        self.blocking(move |store| {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            update_ledger(store.as_ref(), &mut cache)?;
            read(&mut cache, store.as_ref())
        })
        .await
    }

    /// The names shown for wallets: contacts, else names people publish ([`wallet_names`]).
    pub async fn wallet_names(&self) -> Result<BTreeMap<FeedId, String>> {
        let contacts = contact_names(self)?;
        let me = self.identity.id();
        self.with_cache(move |cache, store| {
            update_people(store, &me, &mut cache.people)?;
            Ok(wallet_names(&cache.people, &me, contacts))
        })
        .await
    }

    /// Runs `read` on the names cache's people (this home's identity and the identities it
    /// follows, each read as far as it was) with the store, without bringing the ledger up to
    /// date: `read` reads on only the people it uses ([`own_person`], [`known_nicks`]).
    pub async fn with_people<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut BTreeMap<FeedId, Person>, &dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cache = Arc::clone(&self.ledger);
        self.blocking(move |store| {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            read(&mut cache.people, store.as_ref())
        })
        .await
    }

    /// The nicknames `feeds` gave themselves, for showing them (`cli.md` §5, [`known_nicks`]).
    pub async fn nicks(&self, feeds: Vec<FeedId>) -> Result<BTreeMap<FeedId, String>> {
        let me = self.identity.id();
        self.with_people(move |people, store| known_nicks(people, store, &me, feeds, NICK_LOOKBACK))
            .await
    }

    /// This home's identity and the identities it follows, each with the wallet it links to
    /// (`ledger.md` §1): the names cache's people, read up to date (only what is new).
    pub async fn people_wallets(&self) -> Result<BTreeMap<FeedId, Option<FeedId>>> {
        let me = self.identity.id();
        self.with_cache(move |cache, store| {
            update_people(store, &me, &mut cache.people)?;
            Ok(cache
                .people
                .iter()
                .map(|(id, person)| (*id, person.wallet))
                .collect())
        })
        .await
    }
}

/// The ledger of the wallets in a store, as far as it was read, the feeds known not to be
/// wallets (their first entry is not a wallet genesis; it is not read again), and where the
/// store's record of changed feeds was when it was last read.
#[derive(Debug, Default)]
pub struct LedgerCache {
    /// The ledger.
    pub state: LedgerState,
    not_wallets: std::collections::BTreeSet<FeedId>,
    /// What this home's identity and the identities it follows say of themselves, each read
    /// as far as it was when names were last asked for ([`update_people`]).
    pub people: BTreeMap<FeedId, Person>,
    mark: Option<scrip_feed::store::ChangeMark>,
}

/// What an identity says of itself on its feed: its latest nickname, the wallet it links to
/// (`ledger.md` §1), its latest replication address, and whom it follows; read up to `read`.
#[derive(Clone, Debug, Default)]
pub struct Person {
    /// Its latest `Nick`.
    pub nick: Option<String>,
    /// Its latest wallet link.
    pub wallet: Option<FeedId>,
    /// Its latest `Pub` address.
    pub address: Option<String>,
    /// The feeds it follows (follows minus later unfollows).
    pub follows: std::collections::BTreeSet<FeedId>,
    read: u64,
}

/// What `feed` says of itself, read from its start [`PERSON_READ_BATCH`] entries at a time: a
/// feed of any length (a stranger's, replicated) costs one batch of memory, not the feed.
pub fn read_person(store: &dyn Store, feed: &FeedId) -> Result<Person> {
    let mut person = Person::default();
    update_person(store, feed, &mut person)?;
    Ok(person)
}

#[cfg(test)]
mod name_tests {
    use super::*;

    fn id(n: u8) -> FeedId {
        Keypair::from_seed(&[n; 32]).id()
    }

    fn person(nick: &str, wallet: FeedId, follows: &[FeedId]) -> Person {
        Person {
            nick: Some(nick.into()),
            wallet: Some(wallet),
            address: None,
            follows: follows.iter().copied().collect(),
            read: 1,
        }
    }

    /// What a long feed says of itself is read in batches, and the latest of each kind wins:
    /// nickname, address and wallet link from any batch, follows minus later unfollows.
    #[test]
    fn a_long_feed_is_read_in_batches_and_its_latest_words_win() {
        let store = scrip_feed::MemoryStore::new();
        let key = Keypair::from_seed(&[1; 32]);
        let (wallet, other_wallet, friend) = (id(11), id(12), id(13));
        let post = |i: usize| Content::Post {
            text: format!("post {i}"),
        };
        let batch = PERSON_READ_BATCH;
        let encode = |content: Content| content.encode().unwrap();
        let mut payloads = vec![
            encode(Content::Nick {
                name: "first".into(),
            }),
            encode(Content::Pub {
                address: "127.0.0.1:1".into(),
            }),
            encode(Content::Follow { feed: friend }),
            encode(Content::Follow { feed: other_wallet }),
        ];
        payloads.extend((0..batch).map(|i| encode(post(i))));
        payloads.push(scrip_ledger::content::wallet_link_payload(wallet).unwrap());
        payloads.push(encode(Content::Unfollow { feed: other_wallet }));
        payloads.extend((0..batch).map(|i| encode(post(i))));
        payloads.push(encode(Content::Nick {
            name: "latest".into(),
        }));
        payloads.push(encode(Content::Pub {
            address: "127.0.0.1:2".into(),
        }));
        for (t, payload) in (1..).zip(payloads) {
            store
                .publish(&key, Timestamp::from_millis(t), payload)
                .unwrap();
        }
        let head = store.head(&key.id()).unwrap().unwrap().seq.get();
        assert!(head > 2 * batch as u64 + 4, "three batches at least");
        let person = read_person(&store, &key.id()).unwrap();
        assert_eq!(person.nick.as_deref(), Some("latest"));
        assert_eq!(person.address.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(person.wallet, Some(wallet));
        assert_eq!(person.follows, [friend].into());
        assert_eq!(person.read, head);
        assert_eq!(
            recent_nick(&store, &key.id(), NICK_LOOKBACK)
                .unwrap()
                .as_deref(),
            Some("latest")
        );
        assert_eq!(
            crate::payee::linked_wallet(&store, &key.id()).unwrap(),
            Some(wallet)
        );
    }

    /// Publishes `payloads` on `key`'s feed.
    fn publish_all(store: &scrip_feed::MemoryStore, key: &Keypair, payloads: Vec<Vec<u8>>) {
        let from = store.head(&key.id()).unwrap().map_or(0, |h| h.seq.get());
        for (t, payload) in (from + 1..).zip(payloads) {
            store
                .publish(key, Timestamp::from_millis(t), payload)
                .unwrap();
        }
    }

    fn nick(name: &str) -> Vec<u8> {
        Content::Nick { name: name.into() }.encode().unwrap()
    }

    fn posts(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                Content::Post {
                    text: format!("post {i}"),
                }
                .encode()
                .unwrap()
            })
            .collect()
    }

    /// A stranger's nickname is looked for in its last `lookback` entries only, newest first,
    /// across read batches: found at the oldest entry looked at, not one before it.
    #[test]
    fn a_recent_nick_is_found_within_the_lookback_and_not_before_it() {
        let store = scrip_feed::MemoryStore::new();
        let key = Keypair::from_seed(&[7; 32]);
        assert_eq!(recent_nick(&store, &key.id(), 10).unwrap(), None, "no feed");
        let batch = PERSON_READ_BATCH;
        // #1 and #2 nicknames, then posts: the latest nickname is more than a batch back.
        let mut payloads = vec![nick("first"), nick("second")];
        payloads.extend(posts(batch + 3));
        publish_all(&store, &key, payloads);
        let head = store.head(&key.id()).unwrap().unwrap().seq.get();
        assert_eq!(head, batch as u64 + 5);
        // Looking back `head − 1` entries reaches #2, the latest nickname.
        let reach = head - 1;
        assert_eq!(
            recent_nick(&store, &key.id(), reach).unwrap().as_deref(),
            Some("second"),
            "the oldest entry looked at is #2"
        );
        assert_eq!(
            recent_nick(&store, &key.id(), reach - 1).unwrap(),
            None,
            "#2 is one entry too far back"
        );
        assert_eq!(
            recent_nick(&store, &key.id(), u64::MAX).unwrap().as_deref(),
            Some("second")
        );
        publish_all(&store, &key, vec![nick("third")]);
        assert_eq!(
            recent_nick(&store, &key.id(), 1).unwrap().as_deref(),
            Some("third"),
            "the latest, at the head"
        );
    }

    /// The names shown on a feed: a followed person's nickname however far back it is (the
    /// names cache reads the whole feed once), a stranger's only from its recent entries.
    #[test]
    fn shown_nicks_are_exact_for_people_followed_and_recent_for_strangers() {
        let store = scrip_feed::MemoryStore::new();
        let (me, friend, stranger) = (
            Keypair::from_seed(&[1; 32]),
            Keypair::from_seed(&[2; 32]),
            Keypair::from_seed(&[3; 32]),
        );
        for key in [&friend, &stranger] {
            let mut payloads = vec![nick(if key.id() == friend.id() {
                "friend"
            } else {
                "stranger"
            })];
            payloads.extend(posts(40));
            publish_all(&store, key, payloads);
        }
        publish_all(
            &store,
            &me,
            vec![
                nick("me"),
                Content::Follow { feed: friend.id() }.encode().unwrap(),
                Content::Block {
                    feed: stranger.id(),
                }
                .encode()
                .unwrap(),
            ],
        );
        let mut people = BTreeMap::new();
        let feeds = vec![me.id(), friend.id(), stranger.id()];
        let shown = known_nicks(&mut people, &store, &me.id(), feeds.clone(), 10).unwrap();
        assert_eq!(shown.get(&me.id()).map(String::as_str), Some("me"));
        assert_eq!(shown.get(&friend.id()).map(String::as_str), Some("friend"));
        assert_eq!(
            shown.get(&stranger.id()),
            None,
            "41 entries back, beyond 10"
        );
        assert_eq!(
            people.keys().copied().collect::<Vec<_>>(),
            {
                let mut read = vec![me.id(), friend.id()];
                read.sort_unstable();
                read
            },
            "only the people asked about are read on, no stranger is kept"
        );
        let shown = known_nicks(&mut people, &store, &me.id(), feeds, 41).unwrap();
        assert_eq!(
            shown.get(&stranger.id()).map(String::as_str),
            Some("stranger")
        );
    }

    /// Names people publish count only from people I follow, lose to my contacts, and are
    /// dropped when two people I follow claim one wallet.
    #[test]
    fn published_names_count_from_followed_people_and_yield_to_contacts() {
        let (me, alice, bob, mallory, carol) = (id(1), id(2), id(3), id(4), id(5));
        let (alice_w, bob_w, carol_w, my_w) = (id(12), id(13), id(15), id(11));
        let mut people = BTreeMap::new();
        people.insert(me, person("me", my_w, &[alice, bob, carol]));
        people.insert(alice, person("alice", alice_w, &[]));
        // Mallory (not followed) claims bob's wallet: ignored.
        people.insert(bob, person("bob", bob_w, &[]));
        people.insert(mallory, person("bob-real", bob_w, &[]));
        // Carol (followed) claims alice's wallet too: alice's wallet gets no published name.
        people.insert(carol, person("carol", alice_w, &[]));
        let contacts: BTreeMap<FeedId, String> = [(carol_w, "my carol".to_owned())].into();
        let names = wallet_names(&people, &me, contacts);
        assert_eq!(names.get(&bob_w).map(String::as_str), Some("~bob"));
        assert_eq!(names.get(&alice_w), None, "two followed people claim it");
        assert_eq!(names.get(&carol_w).map(String::as_str), Some("my carol"));
        assert_eq!(names.get(&my_w), None, "I do not follow myself");
    }

    /// A feed shows an identity's wallet link as the wallet's address, another application's
    /// entry by its kind and size.
    #[test]
    fn a_wallet_link_reads_as_the_wallet_address() {
        let key = Keypair::from_seed(&[1; 32]);
        let entry = |payload: Vec<u8>| {
            Entry::create(&key, None, scrip_feed::Timestamp::from_millis(1), payload).unwrap()
        };
        let wallet = id(2);
        let link = entry(scrip_ledger::content::wallet_link_payload(wallet).unwrap());
        assert_eq!(
            describe(&link, &BTreeMap::new()),
            ("wallet-link".to_owned(), address(wallet))
        );
        let other = Content::App {
            kind: "someone/else".into(),
            bytes: vec![1, 2, 3],
        };
        let other = entry(other.encode().unwrap());
        assert_eq!(
            describe(&other, &BTreeMap::new()),
            ("app".to_owned(), "someone/else (3 bytes)".to_owned())
        );
    }
}

/// Most entries of one feed read per store call while reading what an identity says.
pub const PERSON_READ_BATCH: usize = 256;

/// Most entries read back from the end of a feed that is neither this home's identity nor one
/// it follows, looking for the nickname it gave itself last ([`Context::nicks`]).
pub const NICK_LOOKBACK: u64 = 4096;

/// What `me` says of itself, read on in `people` (only what is new since the last read).
pub fn own_person<'a>(
    people: &'a mut BTreeMap<FeedId, Person>,
    store: &dyn Store,
    me: &FeedId,
) -> Result<&'a Person> {
    let person = people.entry(*me).or_default();
    update_person(store, me, person)?;
    Ok(person)
}

/// The nicknames `feeds` gave themselves. `me`'s and those of the identities `me` follows are
/// exact: their latest, read on in `people` (each entry once, only the feeds asked about).
/// Any other feed's is the latest among its last `lookback` entries ([`recent_nick`]), so that
/// a stranger's long feed costs a bounded read. Feeds without one are left out.
pub fn known_nicks(
    people: &mut BTreeMap<FeedId, Person>,
    store: &dyn Store,
    me: &FeedId,
    feeds: Vec<FeedId>,
    lookback: u64,
) -> Result<BTreeMap<FeedId, String>> {
    let follows = own_person(people, store, me)?.follows.clone();
    let mut nicks = BTreeMap::new();
    for feed in feeds {
        let nick = if feed == *me || follows.contains(&feed) {
            let person = people.entry(feed).or_default();
            update_person(store, &feed, person)?;
            person.nick.clone()
        } else {
            recent_nick(store, &feed, lookback)?
        };
        if let Some(nick) = nick {
            nicks.insert(feed, nick);
        }
    }
    Ok(nicks)
}

/// The latest nickname among the last `lookback` entries of `feed`, read from its end
/// [`PERSON_READ_BATCH`] entries at a time, stopping at the first found.
pub fn recent_nick(store: &dyn Store, feed: &FeedId, lookback: u64) -> Result<Option<String>> {
    let head = store.head(feed)?.map_or(0, |h| h.seq.get());
    let oldest = head.saturating_sub(lookback).saturating_add(1);
    let batch = PERSON_READ_BATCH as u64;
    let mut end = head;
    while end >= oldest && end > 0 {
        let from = end.saturating_sub(batch - 1).max(oldest);
        let count = usize::try_from(end - from + 1).unwrap_or(PERSON_READ_BATCH);
        let entries = store.range(feed, Seq::new(from), count)?;
        for entry in entries.iter().rev() {
            if let Some(Ok(Content::Nick { name })) = entry.payload().map(Content::decode) {
                return Ok(Some(name));
            }
        }
        end = from - 1;
    }
    Ok(None)
}

/// Reads what `feed` (an identity) says of itself beyond what `person` holds.
fn update_person(store: &dyn Store, feed: &FeedId, person: &mut Person) -> Result<()> {
    let head = store.head(feed)?.map_or(0, |h| h.seq.get());
    while person.read < head {
        let batch = store.range(feed, Seq::new(person.read + 1), PERSON_READ_BATCH)?;
        if batch.is_empty() {
            break;
        }
        for entry in &batch {
            person.read = entry.seq().get();
            let Some(payload) = entry.payload() else {
                continue;
            };
            if let Some(wallet) = scrip_ledger::content::wallet_link(payload) {
                person.wallet = Some(wallet);
                continue;
            }
            match Content::decode(payload) {
                Ok(Content::Nick { name }) => person.nick = Some(name),
                Ok(Content::Pub { address }) => person.address = Some(address),
                Ok(Content::Follow { feed }) => {
                    person.follows.insert(feed);
                }
                Ok(Content::Unfollow { feed }) => {
                    person.follows.remove(&feed);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads what `me` and the identities `me` follows say beyond what `people` holds (only the new
/// entries of each), and forgets the ones no longer followed: the only people whose names count
/// ([`wallet_names`]), so a store full of strangers' feeds costs nothing here.
pub fn update_people(
    store: &dyn Store,
    me: &FeedId,
    people: &mut BTreeMap<FeedId, Person>,
) -> Result<()> {
    update_person(store, me, people.entry(*me).or_default())?;
    let follows = people
        .get(me)
        .map(|p| p.follows.clone())
        .unwrap_or_default();
    people.retain(|id, _| id == me || follows.contains(id));
    for feed in &follows {
        update_person(store, feed, people.entry(*feed).or_default())?;
    }
    Ok(())
}

/// The names shown for wallets: the ones `me` gave them (contacts, `contacts`), else `~NICK`
/// when exactly one identity `me` follows links to the wallet and publishes the nickname NICK
/// (its own word: anyone can call themselves anything, so only people you follow count, and
/// the `~` says the name is theirs, not yours; `pay` takes contacts' names only).
pub fn wallet_names(
    people: &BTreeMap<FeedId, Person>,
    me: &FeedId,
    contacts: BTreeMap<FeedId, String>,
) -> BTreeMap<FeedId, String> {
    let mut published: BTreeMap<FeedId, Option<String>> = BTreeMap::new();
    let followed = people.get(me).map(|p| &p.follows);
    for (identity, person) in people {
        if !followed.is_some_and(|f| f.contains(identity)) {
            continue;
        }
        if let (Some(wallet), Some(nick)) = (person.wallet, &person.nick) {
            published
                .entry(wallet)
                .and_modify(|name| *name = None)
                .or_insert_with(|| Some(format!("~{nick}")));
        }
    }
    let mut names: BTreeMap<FeedId, String> = published
        .into_iter()
        .filter_map(|(wallet, name)| name.map(|n| (wallet, n)))
        .collect();
    names.extend(contacts);
    names
}

/// Most entries of one wallet read per store call while the ledger cache catches up.
pub const LEDGER_READ_BATCH: usize = 256;

/// Applies to `cache` the certified entries of every wallet in `store` that it has not seen
/// ([`LEDGER_READ_BATCH`] at a time, so a wallet that grew by a million entries since is not
/// read into memory at once):
/// per call, a look at the feeds written to since the last call (at every feed the first time,
/// or when the store no longer remembers that far: see `Store::changes_since`), and the
/// reading of what is new in them.
pub fn update_ledger(store: &dyn Store, cache: &mut LedgerCache) -> Result<()> {
    let LedgerCache {
        state,
        not_wallets,
        mark,
        ..
    } = cache;
    let (now, changes) = store.changes_since(*mark);
    let feeds = match changes {
        scrip_feed::store::Changes::Feeds(feeds) => feeds.into_iter().collect(),
        scrip_feed::store::Changes::Unknown => store.authors()?,
    };
    for wallet in feeds {
        if not_wallets.contains(&wallet) {
            continue;
        }
        if state.wallet(&wallet).is_none() && certified::notary_set(store, &wallet)?.is_none() {
            if store.head(&wallet)?.is_some() {
                not_wallets.insert(wallet);
            }
            continue;
        }
        // Entries considered so far (applied or refused: a refused one is never retried).
        let seen = state
            .wallet(&wallet)
            .and_then(|w| w.outcomes.last())
            .map_or(0, |(seq, _)| *seq);
        let head = store.head(&wallet)?.map_or(0, |h| h.seq.get());
        if head <= seen {
            continue;
        }
        let mut next = seen + 1;
        'log: while next <= head {
            let batch = certified::log(store, &wallet, next, LEDGER_READ_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                if entry.certificate.is_none() {
                    break 'log;
                }
                next = entry.entry.seq().get().saturating_add(1);
                // Signatures were checked when the entries were stored.
                let _ = state.apply(&entry, &TrustSignatures);
            }
        }
    }
    // Only once everything changed before `now` was read: after an error the next call looks
    // at the same feeds again.
    *mark = Some(now);
    Ok(())
}

/// Every wallet feed in `store` (feeds whose first entry is a wallet genesis).
pub fn wallets_in(store: &dyn Store) -> Result<Vec<FeedId>> {
    let mut wallets = Vec::new();
    for author in store.authors()? {
        if certified::notary_set(store, &author)?.is_some() {
            wallets.push(author);
        }
    }
    Ok(wallets)
}

/// The ledger state of every wallet's certified log in `store` (signatures were checked when
/// the entries were stored), built from nothing.
pub fn ledger_of(store: &dyn Store) -> Result<LedgerState> {
    let mut cache = LedgerCache::default();
    update_ledger(store, &mut cache)?;
    Ok(cache.state)
}

fn certified_output(submitted: &crate::wallet::Submitted, summary: String) -> Result<Output> {
    let certified = &submitted.certified;
    let content = certified
        .entry
        .payload()
        .map(WalletEntry::from_payload)
        .transpose()?
        .ok_or_else(|| anyhow!("a certified entry without its payload"))?;
    Ok(Output::Certified {
        kind: content.kind().into(),
        wallet: address(certified.entry.author()),
        seq: certified.entry.seq().get(),
        id: certified.entry.id().to_string(),
        votes: certified.certificate.as_ref().map_or(0, |c| c.votes.len()),
        summary,
        earlier: submitted.earlier.as_ref().map(crate::wallet::earlier_line),
    })
}

/// Finds the currency meant by `text` among `known`: `CODE`, or `CODE@ISSUER` with the issuer's
/// full id or its start (the short form `balance` shows, `EUR@4dFUkGx9`).
fn resolve_currency(text: &str, known: &[Currency]) -> Result<Currency> {
    let (code, issuer) = match text.split_once('@') {
        Some((_, "")) => bail!("{text:?} is not a currency: nothing follows the @"),
        Some((code, issuer)) => (code, Some(format!("@{issuer}"))),
        None => (text, None),
    };
    let code = CurrencyCode::new(code).map_err(|e| anyhow!("{text:?} is not a currency: {e}"))?;
    let matching: Vec<&Currency> = known
        .iter()
        .filter(|c| {
            c.code == code
                && issuer
                    .as_ref()
                    .is_none_or(|i| c.issuer.to_string().starts_with(i.as_str()))
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok(**one),
        [] => {
            let held: Vec<String> = known.iter().map(Currency::short).collect();
            bail!(
                "unknown currency {text}: this wallet holds {}",
                if held.is_empty() {
                    "nothing yet".into()
                } else {
                    held.join(", ")
                }
            )
        }
        _ => bail!(
            "{text} is issued by several wallets: write CODE@ISSUER, one of {}",
            matching
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn parse_amount(text: &str, currency: &Currency) -> Result<Amount> {
    Amount::parse(text, currency.decimals).map_err(|e| {
        anyhow!(
            "{text:?} is not an amount of {} ({} decimals): {e}",
            currency.code.as_str(),
            currency.decimals
        )
    })
}

/// Runs `op` (counted and timed in the daemon's metrics, when run by a daemon).
pub async fn execute(ctx: &Context, op: Op) -> Result<Output> {
    let Some(metrics) = ctx.metrics.get() else {
        return run(ctx, op).await;
    };
    let name = op.name();
    let began = std::time::Instant::now();
    let output = run(ctx, op).await;
    metrics.command(&name, output.is_ok(), began.elapsed());
    output
}

/// Runs `op` (see [`execute`]).
async fn run(ctx: &Context, op: Op) -> Result<Output> {
    match op {
        Op::Id => id(ctx).await,
        Op::PeerAdd(PeerAdd { addr, feed }) => peer_add(ctx, addr, feed).await,
        Op::PeerList => peer_list(ctx).await,
        Op::ContactAdd(add) => {
            let new = ctx.home.add_contact(&add.name, &add.wallet)?;
            Ok(Output::Done {
                message: format!(
                    "{} contact {}: {}",
                    if new { "added" } else { "kept" },
                    add.name,
                    add.wallet.trim()
                ),
            })
        }
        Op::ContactList => Ok(Output::Contacts {
            contacts: ctx
                .home
                .contacts()?
                .into_iter()
                .map(|c| crate::output::ContactLine {
                    name: c.name,
                    wallet: c.wallet,
                })
                .collect(),
        }),
        Op::ContactRemove { name } => {
            if !ctx.home.remove_contact(&name)? {
                bail!("no contact is named {name:?} (`scrip contact list`)");
            }
            Ok(Output::Done {
                message: format!("removed contact {name}"),
            })
        }
        Op::Invite { list: true, .. } => {
            let file = ctx.home.invites()?;
            Ok(Output::Invites {
                group: file.group,
                invites: file.invite,
            })
        }
        Op::Invite { group, address, .. } => {
            let codes = crate::invite::invite(ctx, group, address).await?;
            Ok(Output::Invited {
                codes,
                group: group.unwrap_or(0),
            })
        }
        Op::Join { code } => Ok(Output::Done {
            message: crate::invite::join(ctx, &code).await?,
        }),
        Op::Follow { feed } => follow(ctx, &feed, "follow").await,
        Op::Unfollow { feed } => follow(ctx, &feed, "unfollow").await,
        Op::Block { feed } => follow(ctx, &feed, "block").await,
        Op::Unblock { feed } => follow(ctx, &feed, "unblock").await,
        Op::Post { text } => published(ctx, "post", Content::Post { text }).await,
        Op::Nick { name } => published(ctx, "nick", Content::Nick { name }).await,
        Op::Feed { feed, limit } => read_feed(ctx, feed, limit).await,
        Op::Sync { addr, id, timeout } => sync(ctx, addr, id, timeout).await,
        Op::Forks => {
            let proofs = ctx.blocking(|store| Ok(store.fork_proofs()?)).await?;
            Ok(Output::Forks {
                forks: proofs
                    .iter()
                    .map(|p| (p.author().to_string(), p.seq().get()))
                    .collect(),
            })
        }
        Op::WalletCreate(WalletCreate {
            notaries,
            allow_unreachable,
        }) => wallet_create(ctx, notaries, allow_unreachable).await,
        Op::WalletAbandon => Ok(Output::Done {
            message: crate::wallet::abandon(ctx).await?,
        }),
        Op::WalletNotaries => crate::wallet::notaries_status(ctx).await,
        Op::Pending { retry: false } => {
            ctx.wallet_id()?.ok_or_else(no_wallet)?;
            Ok(Output::Pending {
                pending: crate::wallet::pending_line(ctx)?,
            })
        }
        Op::Pending { retry: true } => Ok(Output::Settled {
            earlier: crate::wallet::retry(ctx).await?,
        }),
        Op::Mint {
            amount,
            currency,
            decimals,
        } => mint(ctx, &amount, &currency, decimals).await,
        Op::Pay {
            wallet,
            amount,
            currency,
            memo,
            expires,
            condition,
        } => {
            let terms = Terms {
                memo,
                expires,
                condition,
            };
            pay(ctx, &wallet, &amount, &currency, terms).await
        }
        Op::Orders {
            incoming,
            outgoing,
            pending,
        } => orders(ctx, incoming, outgoing, pending).await,
        Op::Accept { order, preimage } => resolve(ctx, &order, Resolve::Accept(preimage)).await,
        Op::Reject { order, reason } => resolve(ctx, &order, Resolve::Reject(reason)).await,
        Op::Reclaim { order } => reclaim(ctx, &order).await,
        Op::Cancel { order } => cancel(ctx, &order).await,
        Op::Hashlock => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness: {e}"))?;
            let preimage = scrip_ledger::content::Preimage(secret);
            Ok(Output::Hashlock {
                lock: preimage.lock().to_hex(),
                preimage: preimage.to_hex(),
            })
        }
        Op::Balance => balance(ctx).await,
        Op::Audit { wallet, timeout } => audit(ctx, &wallet, timeout).await,
        Op::Open { .. } => match ctx.web_url.get() {
            Some(url) => Ok(Output::Web { url: url.clone() }),
            None if ctx.node.is_none() => {
                bail!("the web wallet is served by the daemon: start `scrip serve` first")
            }
            None => bail!(
                "this daemon serves no web wallet (web_listen in config.toml is \"off\", or its \
                 address was taken: see the daemon's log)"
            ),
        },
    }
}

async fn id(ctx: &Context) -> Result<Output> {
    let me = ctx.identity.id();
    let nick = ctx
        .with_people(move |people, store| Ok(own_person(people, store, &me)?.nick.clone()))
        .await?;
    let wallet = ctx.wallet_id()?;
    let joining = ctx
        .home
        .joined()?
        .and_then(|j| crate::invite::join_state(&j, wallet.is_some()));
    Ok(Output::Id {
        home: ctx.home.root().display().to_string(),
        identity: me.to_string(),
        nick,
        wallet: wallet.map(address),
        listen: ctx.config.listen.clone(),
        daemon: ctx.node.is_some(),
        joining,
    })
}

/// `scrip id` for a home whose store cannot be opened (read-only): what the keys and settings
/// say, without the nickname (which lives in the store).
pub fn id_without_store(home: &Home) -> Result<Output> {
    let config = home.config()?;
    let wallet = home.wallet_key()?.map(|k| address(k.id()));
    let joining = home
        .joined()?
        .and_then(|j| crate::invite::join_state(&j, wallet.is_some()));
    Ok(Output::Id {
        home: home.root().display().to_string(),
        identity: home.identity()?.id().to_string(),
        nick: None,
        wallet,
        listen: config.listen,
        daemon: false,
        joining,
    })
}

pub(crate) async fn peer_add(ctx: &Context, addr: String, feed: Option<String>) -> Result<Output> {
    let id = feed.as_deref().map(parse_feed).transpose()?;
    if addr.trim().is_empty() || addr.contains(char::is_whitespace) {
        bail!("{addr:?} is not an address (host:port)");
    }
    let new = ctx.home.add_peer(PeerEntry {
        address: addr.clone(),
        id: id.map(|i| i.to_string()),
    })?;
    if let Some(node) = &ctx.node {
        node.add_peer(addr.clone(), id).await?;
    }
    Ok(Output::Done {
        message: format!(
            "{} peer {addr}{}",
            if new { "added" } else { "kept" },
            id.map_or(String::new(), |i| format!(" ({i})"))
        ),
    })
}

async fn peer_list(ctx: &Context) -> Result<Output> {
    let mut peers: Vec<PeerLine> = ctx
        .home
        .peers()?
        .into_iter()
        .map(|p| PeerLine {
            address: p.address,
            id: p.id,
            connected: false,
        })
        .collect();
    if let Some(node) = &ctx.node {
        for connected in node.status().await?.peers {
            let id = connected.peer.to_string();
            match peers
                .iter_mut()
                .find(|p| p.id.as_deref() == Some(&id) || p.address == connected.address)
            {
                Some(known) => {
                    known.connected = true;
                    known.id.get_or_insert(id);
                }
                None => peers.push(PeerLine {
                    address: connected.address,
                    id: Some(id),
                    connected: true,
                }),
            }
        }
    }
    Ok(Output::Peers { peers })
}

pub(crate) async fn follow(ctx: &Context, feed: &str, what: &str) -> Result<Output> {
    let feed = parse_feed_or_address(feed)?;
    if feed == ctx.identity.id() {
        bail!("that is your own feed");
    }
    let content = match what {
        "follow" => Content::Follow { feed },
        "unfollow" => Content::Unfollow { feed },
        "unblock" => Content::Unblock { feed },
        _ => Content::Block { feed },
    };
    published(ctx, what, content).await
}

async fn published(ctx: &Context, kind: &str, content: Content) -> Result<Output> {
    let entry = ctx.publish(content).await?;
    Ok(Output::Published {
        kind: kind.into(),
        seq: entry.seq().get(),
        id: entry.id().to_string(),
    })
}

fn describe(entry: &Entry, nicks: &BTreeMap<FeedId, String>) -> (String, String) {
    let named = |feed: &FeedId| match nicks.get(feed) {
        Some(nick) => format!("{feed} ({nick})"),
        None => feed.to_string(),
    };
    let Some(payload) = entry.payload() else {
        return ("dropped".into(), "(payload not kept)".into());
    };
    match Content::decode(payload) {
        Ok(Content::Post { text }) => ("post".into(), text),
        Ok(Content::Follow { feed }) => ("follow".into(), named(&feed)),
        Ok(Content::Unfollow { feed }) => ("unfollow".into(), named(&feed)),
        Ok(Content::Block { feed }) => ("block".into(), named(&feed)),
        Ok(Content::Unblock { feed }) => ("unblock".into(), named(&feed)),
        Ok(Content::Nick { name }) => ("nick".into(), name),
        Ok(Content::Pub { address }) => ("pub".into(), address),
        Ok(Content::App { kind, bytes }) => match WalletEntry::from_payload(payload) {
            Ok(wallet) => ("wallet".into(), wallet.kind().into()),
            Err(_) => match scrip_ledger::content::wallet_link(payload) {
                // The identity names its wallet (`ledger.md` §1).
                Some(wallet) => ("wallet-link".into(), address(wallet)),
                None => ("app".into(), format!("{kind} ({} bytes)", bytes.len())),
            },
        },
        Err(err) => ("invalid".into(), err.to_string()),
    }
}

async fn read_feed(ctx: &Context, feed: Option<String>, limit: usize) -> Result<Output> {
    let feed = match feed {
        Some(text) => parse_feed(&text)?,
        None => ctx.identity.id(),
    };
    let (head, entries) = ctx
        .blocking(move |store| {
            let head = store.head(&feed)?.map_or(0, |h| h.seq.get());
            let from = head.saturating_sub(u64::try_from(limit).unwrap_or(u64::MAX)) + 1;
            Ok((head, store.range(&feed, Seq::new(from), limit)?))
        })
        .await?;
    // Nicknames of the feed and of the feeds it mentions.
    let mut mentioned = vec![feed];
    for entry in &entries {
        if let Some(Ok(
            Content::Follow { feed }
            | Content::Unfollow { feed }
            | Content::Block { feed }
            | Content::Unblock { feed },
        )) = entry.payload().map(Content::decode)
        {
            mentioned.push(feed);
        }
    }
    mentioned.sort_unstable();
    mentioned.dedup();
    let nicks = ctx.nicks(mentioned).await?;
    let lines = entries
        .iter()
        .rev()
        .map(|entry| {
            let (kind, text) = describe(entry, &nicks);
            FeedLine {
                seq: entry.seq().get(),
                timestamp_ms: entry.header().fields.timestamp.as_millis(),
                kind,
                text,
            }
        })
        .collect();
    Ok(Output::Feed {
        feed: feed.to_string(),
        nick: nicks.get(&feed).cloned(),
        head,
        entries: lines,
    })
}

async fn sync(ctx: &Context, addr: String, id: Option<String>, timeout: u64) -> Result<Output> {
    let id = id.as_deref().map(parse_feed).transpose()?;
    // The peer's own feed comes too, beside whatever the follow graph asks for.
    let stored = net::catch_up(
        ctx,
        vec![(addr.clone(), id)],
        id.into_iter().collect(),
        Duration::from_secs(timeout),
        true,
    )
    .await?;
    Ok(Output::Synced { peer: addr, stored })
}

async fn wallet_create(
    ctx: &Context,
    notaries: Vec<String>,
    allow_unreachable: bool,
) -> Result<Output> {
    let notaries: Vec<NotaryAddr> = notaries
        .iter()
        .map(|n| parse_notary(n))
        .collect::<Result<_>>()?;
    let ids: Vec<FeedId> = notaries.iter().map(|n| n.id).collect();
    let set = scrip_ledger::NotarySet::new(&ids)
        .map_err(|e| anyhow!("these notaries cannot form a set: {e}"))?;
    let wallet = match ctx.home.wallet_key()? {
        // Created before but not certified yet (e.g. the notaries were down): finish it.
        Some(key) => {
            let existing = ctx.home.notaries()?;
            let certified = {
                let id = key.id();
                ctx.blocking(move |store| Ok(certified::notary_set(store.as_ref(), &id)?.is_some()))
                    .await?
            };
            if certified {
                bail!("this home already has a wallet: {}", address(key.id()));
            }
            if existing != notaries {
                bail!(
                    "this home's wallet {} is being created with other notaries; repeat the \
                     same `scrip wallet create` command to finish it, or give it up with \
                     `scrip wallet abandon`",
                    address(key.id())
                );
            }
            key.id()
        }
        None => {
            // Every named notary answers as itself before anything is signed or written.
            crate::wallet::check_notaries(ctx, &notaries, set.quorum(), allow_unreachable).await?;
            ctx.home.set_notaries(&notaries)?;
            let key = ctx.home.create_wallet_key()?;
            // Whoever follows this identity replicates its wallet too, and can tell it is this
            // person's wallet (so that paying the identity by mistake names the wallet).
            ctx.publish(Content::Follow { feed: key.id() }).await?;
            ctx.publish_payload(scrip_ledger::content::wallet_link_payload(key.id())?)
                .await?;
            key.id()
        }
    };
    if let Some(node) = &ctx.node {
        let _ = node.request_feed(wallet).await;
    }
    let submitted = ctx
        .submit(WalletEntry::Genesis(Genesis { notaries: ids }))
        .await?;
    certified_output(
        &submitted,
        format!(
            "wallet {} created: {} notaries, {} votes needed",
            address(wallet),
            set.members().len(),
            set.quorum()
        ),
    )
}

async fn mint(ctx: &Context, amount: &str, code: &str, decimals: u8) -> Result<Output> {
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    let code_parsed =
        CurrencyCode::new(code).map_err(|e| anyhow!("{code:?} is not a currency code: {e}"))?;
    let state = ctx.wallet_state().await?;
    // The first mint of a code fixes its decimals.
    let decimals = state
        .decimals
        .get(&code_parsed)
        .copied()
        .unwrap_or(decimals);
    let currency = Currency::new(wallet, code, decimals)?;
    let amount = parse_amount(amount, &currency)?;
    let submitted = ctx
        .submit(WalletEntry::Mint(Mint { currency, amount }))
        .await?;
    certified_output(
        &submitted,
        format!(
            "minted {} {}",
            amount.display(currency.decimals),
            currency.code.as_str()
        ),
    )
}

/// What `pay` asks beyond the amount: the memo, the expiry, the hash lock.
struct Terms {
    memo: Option<String>,
    expires: Option<String>,
    condition: Option<String>,
}

/// This machine's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    Timestamp::now().as_millis()
}

/// "3d 4h", "12m 5s": a short human duration.
pub fn short_duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

async fn pay(
    ctx: &Context,
    to: &str,
    amount: &str,
    currency: &str,
    terms: Terms,
) -> Result<Output> {
    let Terms {
        memo,
        expires,
        condition,
    } = terms;
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    // What the user typed is checked first, then the receiver (which may ask peers for it).
    let state = ctx.wallet_state().await?;
    let known: Vec<Currency> = state.balances.keys().copied().collect();
    let currency = resolve_currency(currency, &known)?;
    let amount = parse_amount(amount, &currency)?;
    let held = state.balance(&currency);
    if amount > held {
        bail!(
            "you hold {} {}: not enough to pay {}; nothing was signed",
            held.display(currency.decimals),
            currency.code.as_str(),
            amount.display(currency.decimals)
        );
    }
    let lifetime = match &expires {
        Some(text) => crate::config::parse_duration(text).map_err(|e| anyhow!("--expires: {e}"))?,
        None => ctx.config.order_expiry()?,
    };
    // The receiver must be able to claim it: notaries claim only until δ before the expiry.
    let skew = ctx.config.clock_skew.saturating_mul(1000);
    let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
    if lifetime_ms <= skew.saturating_mul(2) {
        bail!(
            "an order expiring in {} could never be accepted: notaries claim orders only until              {}s before their expiry (clock_skew); nothing was signed",
            short_duration(lifetime_ms),
            ctx.config.clock_skew
        );
    }
    let expiry = scrip_feed::Timestamp::from_millis(now_ms().saturating_add(lifetime_ms));
    let condition = condition
        .as_deref()
        .map(scrip_ledger::content::HashLock::from_hex)
        .transpose()
        .map_err(|e| anyhow!("--condition: {e}; nothing was signed"))?;
    let to = crate::payee::check(ctx, to, wallet).await?;
    let submitted = ctx
        .submit(WalletEntry::Order(Order {
            to,
            currency,
            amount,
            memo: memo.unwrap_or_default(),
            expiry: Some(expiry),
            condition,
        }))
        .await?;
    ctx.orders_changed.notify_one();
    certified_output(
        &submitted,
        format!(
            "order {} sent: {} {} to {}; it is in escrow until they accept it, or until it \
             expires at {} and comes back to you{}",
            submitted.certified.entry.id(),
            amount.display(currency.decimals),
            currency.code.as_str(),
            named_address(ctx, to).await,
            crate::output::when(expiry.as_millis()),
            if condition.is_some() {
                " (hash-locked: only the holder of the secret can accept it)"
            } else {
                ""
            }
        ),
    )
}

fn status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "pending",
        OrderStatus::Accepted => "accepted",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Reclaimed => "reclaimed",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Refunded => "refunded",
    }
}

/// What a person should know about where an order stands: the time left to accept it, or
/// that it expired and what follows.
fn order_note(order: &scrip_ledger::OrderView, direction: &str, now: u64, skew: u64) -> String {
    let Some(expiry) = order.expiry.map(|e| e.as_millis()) else {
        return String::new();
    };
    if order.status != OrderStatus::Pending {
        return String::new();
    }
    let locked = if order.condition.is_some() {
        "hash-locked; "
    } else {
        ""
    };
    if now < expiry {
        return format!("{locked}expires in {}", short_duration(expiry - now));
    }
    let refundable = now >= expiry.saturating_add(skew);
    match (direction, refundable) {
        ("outgoing", true) => format!("{locked}expired: `scrip reclaim` refunds it"),
        ("outgoing", false) => format!(
            "{locked}expired: refundable in {}",
            short_duration(expiry.saturating_add(skew) - now)
        ),
        _ => format!("{locked}expired: it goes back to the payer"),
    }
}

async fn orders(ctx: &Context, incoming: bool, outgoing: bool, pending: bool) -> Result<Output> {
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    let (now, skew) = (now_ms(), ctx.config.clock_skew.saturating_mul(1000));
    let (both, open_only) = (incoming == outgoing, pending);
    let names = ctx.wallet_names().await?;
    // With each order, where its receiver rejected it (to read the reason), if it did.
    let mine = ctx
        .with_ledger(move |ledger| {
            ledger
                .orders_of(&wallet)
                .into_iter()
                .map(|(id, order)| {
                    let rejected = ledger
                        .wallet(&order.to)
                        .and_then(|receiver| receiver.resolved.get(&id))
                        .filter(|r| !r.accepted)
                        .map(|r| r.seq);
                    (id, order, rejected)
                })
                .collect::<Vec<_>>()
        })
        .await?;
    ctx.blocking(move |store| {
        let mut lines = Vec::new();
        for (id, order, rejected) in mine {
            let direction = if order.to == wallet {
                "incoming"
            } else if order.from == wallet {
                "outgoing"
            } else {
                continue;
            };
            if !both && (direction == "incoming") != incoming {
                continue;
            }
            let open = match direction {
                "incoming" => order.status == OrderStatus::Pending,
                _ => matches!(order.status, OrderStatus::Pending | OrderStatus::Rejected),
            };
            if open_only && !open {
                continue;
            }
            // By position (a direct read), not by id (an index lookup).
            let entry = store
                .get(&order.from, Seq::new(order.seq))?
                .filter(|entry| entry.id() == id);
            let time = entry
                .as_ref()
                .map(|e| e.timestamp().as_millis())
                .filter(|&t| t >= FIRST_REAL_TIME_MS);
            let memo = entry
                .and_then(|e| e.payload().map(WalletEntry::from_payload))
                .and_then(Result::ok)
                .and_then(|c| match c {
                    WalletEntry::Order(o) => Some(o.memo),
                    _ => None,
                })
                .unwrap_or_default();
            let mut note = order_note(&order, direction, now, skew);
            // The receiver's reason reaches the payer (and is shown to the receiver too).
            if let Some(seq) = rejected
                && let Some(WalletEntry::Reject(reject)) = store
                    .get(&order.to, Seq::new(seq))?
                    .and_then(|e| e.payload().map(WalletEntry::from_payload))
                    .and_then(Result::ok)
            {
                note = if reject.reason.is_empty() {
                    "rejected without a reason".into()
                } else {
                    format!("rejected: {}", reject.reason)
                };
            }
            lines.push(OrderLine {
                id: id.to_string(),
                direction: direction.into(),
                from_name: names.get(&order.from).cloned(),
                to_name: names.get(&order.to).cloned(),
                from: address(order.from),
                to: address(order.to),
                amount: order.amount.display(order.currency.decimals),
                currency: order.currency.to_string(),
                status: status_text(order.status).into(),
                memo,
                expires: order.expiry.map(|e| e.as_millis()),
                condition: order.condition.map(|c| c.to_hex()),
                note,
                time,
            });
        }
        // Oldest first, by the time the payer signed each order (orders without one first).
        lines.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        Ok(Output::Orders { orders: lines })
    })
    .await
}

/// The certified order `id` from the store, with its sender.
async fn find_order(ctx: &Context, id: EntryId) -> Result<(FeedId, Seq, Order)> {
    ctx.blocking(move |store| {
        let entry = store.get_by_id(&id)?.ok_or_else(|| {
            anyhow!(
                "order {id} is not here: follow the payer (scrip follow ID) and let the \
                 daemon replicate their wallet, or `scrip sync ADDR`"
            )
        })?;
        let certified = certified::certificate_of(store.as_ref(), &entry)?.is_some();
        if !certified {
            bail!("order {id} is not certified (yet)");
        }
        match entry.payload().map(WalletEntry::from_payload) {
            Some(Ok(WalletEntry::Order(order))) => Ok((entry.author(), entry.seq(), order)),
            _ => bail!("{id} is not an order"),
        }
    })
    .await
}

/// How an incoming order is answered.
enum Resolve {
    /// Accepted, with the preimage of its hash lock if it has one.
    Accept(Option<String>),
    /// Rejected, with the reason.
    Reject(String),
}

async fn resolve(ctx: &Context, order: &str, answer: Resolve) -> Result<Output> {
    let id = parse_order(order)?;
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    let (sender, seq, order) = find_order(ctx, id).await?;
    if order.to != wallet {
        bail!("order {id} is not addressed to your wallet");
    }
    let citation = ctx
        .blocking(move |store| Ok(certified::citation(store.as_ref(), &sender, seq)?))
        .await?;
    let amount = format!(
        "{} {}",
        order.amount.display(order.currency.decimals),
        order.currency.code.as_str()
    );
    match answer {
        Resolve::Accept(preimage) => {
            let preimage = preimage
                .as_deref()
                .map(scrip_ledger::content::Preimage::from_hex)
                .transpose()
                .map_err(|e| anyhow!("--preimage: {e}; nothing was signed"))?;
            match (&order.condition, &preimage) {
                (Some(lock), Some(p)) if !lock.opens(p) => {
                    bail!("that secret does not open order {id}'s hash lock; nothing was signed")
                }
                (Some(_), None) => bail!(
                    "order {id} is hash-locked: accept it with --preimage SECRET (the secret \
                     whose lock you gave the payer); nothing was signed"
                ),
                (None, Some(_)) => {
                    bail!("order {id} has no hash lock: accept it without --preimage")
                }
                _ => {}
            }
            // Claims are signed only until δ before the expiry; one started later could reach
            // some notaries in time and not others (notary.md section 3a): not started at all.
            if let Some(expiry) = order.expiry {
                let margin = ctx
                    .config
                    .clock_skew
                    .saturating_mul(1000)
                    .saturating_add(CLAIM_TIME_MS);
                if now_ms().saturating_add(margin) >= expiry.as_millis() {
                    bail!(
                        "order {id} expires at {}: too soon to accept it safely (a claim needs \
                         {} before the expiry); it goes back to the payer",
                        crate::output::when(expiry.as_millis()),
                        short_duration(margin)
                    );
                }
            }
            let claim = match order.expiry {
                Some(_) => Some(
                    crate::wallet::fate(
                        ctx,
                        &citation,
                        scrip_ledger::Fate::Claimed,
                        preimage.clone(),
                    )
                    .await?,
                ),
                None => None,
            };
            let submitted = ctx
                .submit(WalletEntry::Accept(Accept {
                    order: citation,
                    preimage,
                    claim,
                }))
                .await?;
            certified_output(
                &submitted,
                format!(
                    "accepted {amount} from {}",
                    named_address(ctx, sender).await
                ),
            )
        }
        Resolve::Reject(reason) => {
            let submitted = ctx
                .submit(WalletEntry::Reject(Reject {
                    order: citation,
                    reason,
                }))
                .await?;
            certified_output(
                &submitted,
                format!(
                    "rejected {amount} from {}; they can reclaim it",
                    named_address(ctx, sender).await
                ),
            )
        }
    }
}

/// Time a claim (then the accept) is given before an order's expiry margin, in milliseconds:
/// the wallet client's certification deadline.
const CLAIM_TIME_MS: u64 = 30_000;

/// The wallets this person named (contacts), by wallet.
fn contact_names(ctx: &Context) -> Result<BTreeMap<FeedId, String>> {
    let mut names = BTreeMap::new();
    for contact in ctx.home.contacts()? {
        if let Ok(address) = scrip_ledger::WalletAddress::parse(&contact.wallet) {
            names.insert(address.wallet(), contact.name);
        }
    }
    Ok(names)
}

/// Wallet entries carry their signer's clock since they carry a real time at all; earlier
/// ones were stamped with their seq − 1. A time before this (2001-09-09) is no real time.
const FIRST_REAL_TIME_MS: u64 = 1_000_000_000_000;

/// This wallet's own certified order named by `order` (`%…`): its id, seq and content.
async fn own_order(ctx: &Context, order: &str) -> Result<(EntryId, Seq, Order)> {
    let id = parse_order(order)?;
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    let (sender, seq, order) = find_order(ctx, id).await?;
    if sender != wallet {
        bail!("order {id} is not yours");
    }
    Ok((id, seq, order))
}

async fn reclaim(ctx: &Context, order: &str) -> Result<Output> {
    let (id, seq, order) = own_order(ctx, order).await?;
    let receiver = order.to;
    // The ledger cache holds the receiver's log folded (read once, then only what is new).
    let resolution = ctx
        .with_ledger(move |state| {
            state
                .wallet(&receiver)
                .and_then(|w| w.resolved.get(&id))
                .cloned()
        })
        .await?;
    let receiver_named = named_address(ctx, receiver).await;
    match resolution {
        Some(resolution) if resolution.accepted => {
            bail!("{receiver_named} accepted order {id}: there is nothing to reclaim")
        }
        Some(resolution) => {
            let rejection = ctx
                .blocking(move |store| {
                    Ok(certified::citation(
                        store.as_ref(),
                        &receiver,
                        Seq::new(resolution.seq),
                    )?)
                })
                .await?;
            let submitted = ctx
                .submit(WalletEntry::Reclaim(Reclaim {
                    order: OrderRef { seq, id },
                    rejection,
                }))
                .await?;
            certified_output(
                &submitted,
                format!(
                    "reclaimed {} {} (rejected by {})",
                    order.amount.display(order.currency.decimals),
                    order.currency.code.as_str(),
                    receiver_named
                ),
            )
        }
        None => {
            let Some(expiry) = order.expiry else {
                bail!(
                    "{} has not rejected order {id} (as far as this node knows: follow them to \
                     replicate their wallet), and the order never expires (an old order): only \
                     its receiver's rejection returns it",
                    receiver_named
                );
            };
            let refundable = expiry
                .as_millis()
                .saturating_add(ctx.config.clock_skew.saturating_mul(1000));
            let now = now_ms();
            if now < refundable {
                bail!(
                    "{} has not rejected order {id} (as far as this node knows: follow them to \
                     replicate their wallet), and it has not expired: it expires at {}, and \
                     can be refunded from {} (in {}){}; nothing was signed",
                    receiver_named,
                    crate::output::when(expiry.as_millis()),
                    crate::output::when(refundable),
                    short_duration(refundable - now),
                    if order.condition.is_none() {
                        "; `scrip cancel` takes it back now if the receiver has not accepted it"
                    } else {
                        ""
                    }
                );
            }
            take_back(ctx, seq, id, &order, scrip_ledger::Fate::Expired).await
        }
    }
}

/// This wallet's pending orders that expired and may be refunded now (expiry + clock_skew
/// passed), and the time the next one may be (milliseconds since the epoch), if any.
async fn expired_orders(ctx: &Context) -> Result<(Vec<(EntryId, u64)>, Option<u64>)> {
    let Some(wallet) = ctx.wallet_id()? else {
        return Ok((Vec::new(), None));
    };
    let (now, skew) = (now_ms(), ctx.config.clock_skew.saturating_mul(1000));
    let mine = ctx
        .with_ledger(move |ledger| ledger.orders_of(&wallet))
        .await?;
    let mut due = Vec::new();
    let mut next: Option<u64> = None;
    for (id, order) in mine {
        if order.from != wallet || order.status != OrderStatus::Pending {
            continue;
        }
        let Some(expiry) = order.expiry else { continue };
        let at = expiry.as_millis().saturating_add(skew);
        if at <= now {
            due.push((id, order.seq));
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok((due, next))
}

/// Refunds this wallet's expired orders (the daemon does it by itself unless
/// `auto_refund = false`); returns a line per order refunded or failed, and when to look
/// again.
pub async fn refund_expired(ctx: &Context) -> Result<(Vec<String>, Option<u64>)> {
    let (due, next) = expired_orders(ctx).await?;
    let mut lines = Vec::new();
    for (id, seq) in due {
        let found = find_order(ctx, id).await;
        let outcome = match found {
            Ok((_, _, order)) => {
                take_back(ctx, Seq::new(seq), id, &order, scrip_ledger::Fate::Expired).await
            }
            Err(err) => Err(err),
        };
        lines.push(match outcome {
            Ok(output) => output.text().trim().to_owned(),
            Err(err) => format!("refunding expired order {id} failed: {err:#}"),
        });
    }
    Ok((lines, next))
}

async fn cancel(ctx: &Context, order: &str) -> Result<Output> {
    let (id, seq, order) = own_order(ctx, order).await?;
    if order.condition.is_some() {
        bail!(
            "order {id} is hash-locked: it cannot be cancelled (its receiver may be relying on \
             it); it comes back to you after it expires (`scrip reclaim`)"
        );
    }
    if order.expiry.is_none() {
        bail!("order {id} is an old order without an expiry: it cannot be cancelled");
    }
    take_back(ctx, seq, id, &order, scrip_ledger::Fate::Cancelled).await
}

/// Takes back this wallet's order `id` at `seq` without its receiver: the void (`fate`) from
/// the wallet's notaries, then the `Cancel` or `Refund` citing it.
async fn take_back(
    ctx: &Context,
    seq: Seq,
    id: EntryId,
    order: &Order,
    fate: scrip_ledger::Fate,
) -> Result<Output> {
    let wallet = ctx.wallet_id()?.ok_or_else(no_wallet)?;
    let citation = ctx
        .blocking(move |store| Ok(certified::citation(store.as_ref(), &wallet, seq)?))
        .await?;
    let void = crate::wallet::fate(ctx, &citation, fate, None).await?;
    let order_ref = OrderRef { seq, id };
    let (content, done) = if fate == scrip_ledger::Fate::Cancelled {
        (
            WalletEntry::Cancel(scrip_ledger::content::Cancel {
                order: order_ref,
                void,
            }),
            "cancelled",
        )
    } else {
        (
            WalletEntry::Refund(scrip_ledger::content::Refund {
                order: order_ref,
                void,
            }),
            "refunded (expired)",
        )
    };
    let submitted = ctx.submit(content).await?;
    certified_output(
        &submitted,
        format!(
            "{done}: order {id}, {} {} back from escrow",
            order.amount.display(order.currency.decimals),
            order.currency.code.as_str(),
        ),
    )
}

async fn balance(ctx: &Context) -> Result<Output> {
    let state = ctx.wallet_state().await?;
    let names = ctx.wallet_names().await?;
    let line = |currency: &Currency, amount: Amount| BalanceLine {
        currency: currency.to_string(),
        amount: amount.display(currency.decimals),
        issuer_name: names.get(&currency.issuer).cloned(),
        issued_here: currency.issuer == state.wallet,
    };
    let balances = state
        .balances
        .iter()
        .filter(|(_, a)| !a.is_zero())
        .map(|(c, a)| line(c, *a))
        .collect();
    let mut escrow: BTreeMap<Currency, Amount> = BTreeMap::new();
    let wallet = state.wallet;
    let mine = ctx
        .with_ledger(move |ledger| ledger.orders_of(&wallet))
        .await?;
    for order in mine.values() {
        if order.from == state.wallet
            && matches!(order.status, OrderStatus::Pending | OrderStatus::Rejected)
        {
            let sum = escrow.entry(order.currency).or_insert(Amount::ZERO);
            *sum = sum.checked_add(order.amount).unwrap_or(*sum);
        }
    }
    Ok(Output::Balance {
        wallet: address(state.wallet),
        balances,
        escrow: escrow.iter().map(|(c, a)| line(c, *a)).collect(),
        pending: crate::wallet::pending_line(ctx)?,
    })
}

/// Certified entries of a wallet read and replayed at a time by `scrip audit`.
pub const AUDIT_READ_BATCH: usize = 4096;

/// The audit of `wallet`'s certified log as this store holds it (up to its first entry without
/// a certificate), read and replayed [`AUDIT_READ_BATCH`] entries at a time: memory for the
/// report and one batch, not the log. `None` if not even its genesis is held certified.
pub fn audit_held(store: &dyn Store, wallet: &FeedId) -> Result<Option<scrip_ledger::AuditReport>> {
    audit_held_in(store, wallet, AUDIT_READ_BATCH)
}

/// [`audit_held`], reading `batch` entries at a time.
fn audit_held_in(
    store: &dyn Store,
    wallet: &FeedId,
    batch: usize,
) -> Result<Option<scrip_ledger::AuditReport>> {
    let mut auditor = scrip_ledger::Auditor::new(*wallet);
    let mut from = 1;
    loop {
        let mut part = certified::log(store, wallet, from, batch)?;
        let read = part.len();
        let certified = part
            .iter()
            .position(|e| e.certificate.is_none())
            .unwrap_or(read);
        part.truncate(certified);
        if from == 1 && part.is_empty() {
            return Ok(None);
        }
        if read == 0 || !auditor.push(&part) || certified < read {
            break;
        }
        from += read as u64;
    }
    Ok(Some(auditor.finish()))
}

async fn audit(ctx: &Context, wallet: &str, timeout: u64) -> Result<Output> {
    let wallet = parse_feed_or_address(wallet)?;
    let held = ctx
        .blocking(move |store| Ok(certified::notary_set(store.as_ref(), &wallet)?.is_some()))
        .await?;
    if !held {
        // Fetch it from the peers we know (the wallet's entries embed what they cite).
        let peers = net::known_peers(&ctx.home)?;
        if peers.is_empty() && ctx.node.is_none() {
            bail!("{wallet} is not held here and no peers are known (scrip peer add ADDR)");
        }
        net::catch_up(
            ctx,
            peers,
            vec![wallet],
            Duration::from_secs(timeout),
            false,
        )
        .await?;
    }
    let spinner = crate::progress::spinner(ctx.progress, "verifying every signature");
    let report = ctx
        .blocking(move |store| audit_held(store.as_ref(), &wallet))
        .await;
    spinner.finish_and_clear();
    let Some(report) = report? else {
        bail!("{wallet} is not a wallet this node could fetch (no certified genesis)");
    };
    let known: BTreeMap<String, String> = ctx
        .wallet_names()
        .await?
        .into_iter()
        .map(|(wallet, name)| (wallet.to_string(), name))
        .collect();
    let mentioned = std::iter::once(&report.wallet).chain(
        report
            .steps
            .iter()
            .filter_map(|step| step.counterparty.as_ref()),
    );
    let mut names = BTreeMap::new();
    for feed in mentioned {
        if let Some(name) = known.get(feed) {
            names.insert(feed.clone(), name.clone());
        }
    }
    Ok(Output::Audit { report, names })
}

/// Checks that the home's keys are readable and private, before anything else happens.
pub fn check_home(home: &Home) -> Result<()> {
    home.identity().context("reading the identity key")?;
    home.check_private()?;
    home.wallet_key().context("reading the wallet key")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_ledger::kit::{KitWallet, notaries};

    /// `scrip audit` reads the held log in batches and gives the report of the whole certified
    /// log: every batch size, a tail without certificates left out, a wallet not held `None`.
    #[test]
    fn the_audit_of_a_held_wallet_read_in_batches_is_the_whole_logs() {
        let store = scrip_feed::MemoryStore::new();
        let set = notaries(30, 4);
        let mut issuer = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
        let mut payee = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), set);
        assert_eq!(audit_held(&store, &issuer.id()).unwrap(), None, "not held");
        let eur = issuer.currency("EUR", 2).unwrap();
        issuer.mint(&eur, 1_000);
        for amount in 1..=4 {
            let order = issuer.order(payee.id(), &eur, amount);
            payee.accept(&issuer, order);
        }
        certified::store_certified(&store, &issuer.log).unwrap();
        let whole = scrip_ledger::audit(&issuer.id(), &issuer.log);
        assert!(whole.is_sound(), "{:?}", whole.verdict);
        assert_eq!(whole.entries, 6);
        for batch in 1..=7 {
            assert_eq!(
                audit_held_in(&store, &issuer.id(), batch).unwrap().as_ref(),
                Some(&whole),
                "batches of {batch}"
            );
        }
        // An entry held without its certificate yet ends the certified log.
        let order = issuer.order(payee.id(), &eur, 5);
        let bare = scrip_ledger::CertifiedEntry {
            entry: issuer.log[usize::try_from(order.get()).unwrap() - 1]
                .entry
                .clone(),
            certificate: None,
        };
        certified::store_certified(&store, &[bare]).unwrap();
        assert_eq!(store.head(&issuer.id()).unwrap().unwrap().seq.get(), 7);
        for batch in [1, 3, 6, 7, 100] {
            assert_eq!(
                audit_held_in(&store, &issuer.id(), batch).unwrap().as_ref(),
                Some(&whole),
                "batches of {batch}, uncertified tail"
            );
        }
    }

    /// The ledger kept up to date entry by entry equals the one built from nothing, and each
    /// update reads only what is new.
    #[test]
    fn the_incremental_ledger_equals_a_fresh_fold() {
        let store = scrip_feed::MemoryStore::new();
        let set = notaries(30, 4);
        let mut issuer = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
        let mut payee = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), set);
        let eur = issuer.currency("EUR", 2).unwrap();
        issuer.mint(&eur, 1_000);
        let mut cache = LedgerCache::default();
        for round in 0..5 {
            let order = issuer.order(payee.id(), &eur, 10 + round);
            if round % 2 == 0 {
                payee.accept(&issuer, order);
            }
            for wallet in [&issuer, &payee] {
                let have = store.head(&wallet.id()).unwrap().map_or(0, |h| h.seq.get());
                let new: Vec<_> = wallet.log[usize::try_from(have).unwrap()..].to_vec();
                if round % 2 == 1 {
                    // The entries first, their certificates later (as replication may bring
                    // them): the ledger takes them in when the certificates arrive.
                    let bare: Vec<_> = new
                        .iter()
                        .map(|c| scrip_ledger::CertifiedEntry {
                            entry: c.entry.clone(),
                            certificate: None,
                        })
                        .collect();
                    certified::store_certified(&store, &bare).unwrap();
                    update_ledger(&store, &mut cache).unwrap();
                }
                certified::store_certified(&store, &new).unwrap();
            }
            update_ledger(&store, &mut cache).unwrap();
            assert_eq!(
                cache.state.hash(),
                ledger_of(&store).unwrap().hash(),
                "round {round}"
            );
        }
        cache.state.check_conservation().unwrap();
    }

    /// A wallet that grew by more than two read batches since the ledger last looked is taken
    /// in whole, batch after batch.
    #[test]
    fn the_ledger_takes_in_a_long_wallet_batch_after_batch() {
        let store = scrip_feed::MemoryStore::new();
        let set = notaries(30, 4);
        let mut issuer = KitWallet::new(Arc::new(Keypair::from_seed(&[1; 32])), set.clone());
        let payee = KitWallet::new(Arc::new(Keypair::from_seed(&[2; 32])), set);
        let eur = issuer.currency("EUR", 2).unwrap();
        issuer.mint(&eur, 1_000_000);
        let mut cache = LedgerCache::default();
        certified::store_certified(&store, &issuer.log).unwrap();
        update_ledger(&store, &mut cache).unwrap();
        let orders = 2 * LEDGER_READ_BATCH as u64 + 7;
        for i in 0..orders {
            issuer.order(payee.id(), &eur, 1 + i);
        }
        let have = usize::try_from(store.head(&issuer.id()).unwrap().unwrap().seq.get()).unwrap();
        certified::store_certified(&store, &issuer.log[have..]).unwrap();
        update_ledger(&store, &mut cache).unwrap();
        let wallet = cache.state.wallet(&issuer.id()).unwrap();
        assert_eq!(wallet.outcomes.len(), issuer.log.len());
        assert_eq!(cache.state.hash(), ledger_of(&store).unwrap().hash());
    }

    /// A currency is named by its code, or CODE@ and its issuer's id, in full or the start of
    /// it that `balance` shows; an ambiguous or unknown name is refused with what is held.
    #[test]
    fn a_currency_is_found_by_code_full_notation_or_short_form() {
        let a = Currency::new(Keypair::from_seed(&[1; 32]).id(), "EUR", 2).unwrap();
        let b = Currency::new(Keypair::from_seed(&[2; 32]).id(), "EUR", 2).unwrap();
        let usd = Currency::new(a.issuer, "USD", 2).unwrap();
        let held = [a, b, usd];
        assert_eq!(resolve_currency("USD", &held).unwrap(), usd);
        assert_eq!(resolve_currency(&a.to_string(), &held).unwrap(), a);
        assert_eq!(resolve_currency(&b.short(), &held).unwrap(), b);
        let several = resolve_currency("EUR", &held).unwrap_err().to_string();
        assert!(several.contains(&a.to_string()) && several.contains(&b.to_string()));
        let unknown = resolve_currency("GBP", &held).unwrap_err().to_string();
        assert!(unknown.contains(&usd.short()), "{unknown}");
        assert!(resolve_currency("EUR@", &held).is_err());
        assert!(resolve_currency("EUR@zzzz", &held).is_err());
    }
}
