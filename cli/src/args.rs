//! The command line (clap derive). Every command has an example in its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// scrip: append-only signed logs replicated peer to peer, with a payments ledger on top that
/// no single peer can cheat.
#[derive(Parser, Debug)]
#[command(
    name = "scrip",
    version,
    about,
    after_help = "Start with `scrip init`, then `scrip serve` in one terminal and the other \
                  commands in another. `scrip demo` runs a whole local network."
)]
pub struct Cli {
    /// The home directory (default: $SCRIP_HOME, then the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print JSON (one object) instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the identity, the configuration and the store in the home directory.
    ///
    /// Example: `scrip init --listen 127.0.0.1:7411`
    Init {
        /// Replication address for `scrip serve` (written to config.toml).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Notary service address for `scrip serve --notary` (written to config.toml).
        #[arg(long, value_name = "ADDR")]
        notary_listen: Option<String>,
        /// The network key: 64 hex digits, or "default".
        #[arg(long, value_name = "KEY")]
        network_key: Option<String>,
    },
    /// Show this home's identity and wallet.
    ///
    /// Example: `scrip id`
    Id,
    /// Run the node daemon: replication, the local control socket, and with --notary the
    /// notary service. Stops cleanly on Ctrl-C or SIGTERM.
    ///
    /// Example: `scrip serve --notary`
    Serve {
        /// Replication address (overrides config.toml).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Also run the notary service.
        #[arg(long)]
        notary: bool,
        /// Notary service address (overrides config.toml).
        #[arg(long, value_name = "ADDR")]
        notary_listen: Option<String>,
    },
    /// Manage the peers this node dials.
    #[command(subcommand)]
    Peer(PeerCommand),
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
    /// Create and inspect your wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
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
    /// List orders to and from your wallet.
    ///
    /// Example: `scrip orders --incoming --pending`
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
    /// Take back an order of yours that its receiver rejected.
    ///
    /// Example: `scrip reclaim %5tGk...`
    Reclaim {
        /// The order id (`%...`).
        order: String,
    },
    /// Show your wallet's balances.
    ///
    /// Example: `scrip balance`
    Balance,
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
    /// Run a whole local network on loopback (4 notaries, several wallets, an auditor) and
    /// print what happened.
    ///
    /// Example: `scrip demo`
    Demo {
        /// Where to put the homes (default: a fresh temporary directory, removed afterwards).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the macro benchmarks and print each figure with the machine ceiling measured in the
    /// same run.
    ///
    /// Example: `scrip bench notary --quick`
    Bench {
        /// Which benchmark.
        #[arg(value_enum, default_value_t = BenchWhich::All)]
        which: BenchWhich,
        /// A short run (under a minute for all).
        #[arg(long)]
        quick: bool,
    },
    /// Print a shell completion script.
    ///
    /// Example: `scrip completions bash > /etc/bash_completion.d/scrip`
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Peer commands.
#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Add a peer to dial (kept in peers.toml).
    ///
    /// Example: `scrip peer add 127.0.0.1:7421 @3yZe7d...`
    Add {
        /// Its replication address.
        addr: String,
        /// The identity expected there (`@...`); without it any identity is accepted.
        feed: Option<String>,
    },
    /// List known peers (and, with a running daemon, the connected ones).
    ///
    /// Example: `scrip peer list`
    List,
}

/// Wallet commands.
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Create your wallet with its notaries (at least one; 4 tolerate one faulty notary).
    ///
    /// Example: `scrip wallet create --notary @N1...@127.0.0.1:7412 --notary @N2...@127.0.0.1:7422`
    Create {
        /// A notary as FEED_ID@ADDR (its notary service address); repeat for each.
        #[arg(long = "notary", value_name = "FEED_ID@ADDR", required = true)]
        notaries: Vec<String>,
        /// Create the wallet even if some notaries do not answer now (a quorum must).
        #[arg(long)]
        allow_unreachable: bool,
    },
    /// Give up a wallet whose creation never finished (its genesis was never certified and no
    /// reachable notary voted for it). Its key is kept, renamed, not deleted.
    ///
    /// Example: `scrip wallet abandon`
    Abandon,
}

/// The benchmarks of `scrip bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchWhich {
    /// Batch ingest into sled (feed layer).
    Ingest,
    /// Two nodes over loopback Noise TCP.
    Replicate,
    /// End-to-end transfers through 4 notaries.
    Notary,
    /// Fold and audit (ledger).
    Audit,
    /// A new peer's sync under a connection flood.
    Flood,
    /// `balance` and `orders` with a small and a large store.
    Reads,
    /// A one-entry durable commit with a small and a large store.
    Commit,
    /// Notary proposal latency while a large social feed replicates through the notaries.
    Load,
    /// All of them.
    All,
}
