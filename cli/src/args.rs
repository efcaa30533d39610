//! The command line (clap derive). Every command has an example in its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::ops::Op;

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
        /// The web wallet's address for `scrip serve`, or "off" (written to config.toml).
        #[arg(long, value_name = "ADDR")]
        web_listen: Option<String>,
        /// The network key: 64 hex digits, or "default".
        #[arg(long, value_name = "KEY")]
        network_key: Option<String>,
    },
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
    /// Save this home's keys and settings to FILE (owner-only; never overwrites). The logs
    /// are not in it: after `scrip restore` they come back from your peers and notaries. Keep
    /// the file safe: it holds your secret keys. Not for a notary's home (copy that whole).
    ///
    /// Example: `scrip backup ~/scrip-backup.toml`
    Backup {
        /// Where to write the backup.
        file: PathBuf,
    },
    /// Make a new home from a backup FILE (refused if the home exists). Then `scrip serve`:
    /// your feed and wallet come back from your peers, and your wallet's certified head from
    /// its notaries before it signs anything.
    ///
    /// Example: `scrip --home ~/.scrip restore ~/scrip-backup.toml`
    Restore {
        /// The backup to read.
        file: PathBuf,
    },
    /// Manage the peers this node dials.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Name wallets: `scrip pay NAME ...` then pays that wallet, and `orders` shows the name.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Create and inspect your wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// The commands that act on a home (see [`Op`]).
    #[command(flatten)]
    Op(Op),
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
    Add(PeerAdd),
    /// List known peers (and, with a running daemon, the connected ones).
    ///
    /// Example: `scrip peer list`
    List,
}

/// Contact commands.
#[derive(Subcommand, Debug)]
pub enum ContactCommand {
    /// Name a wallet (kept in contacts.toml).
    ///
    /// Example: `scrip contact add bob +8Hq2...`
    Add(ContactAdd),
    /// List your contacts.
    ///
    /// Example: `scrip contact list`
    List,
    /// Forget a contact.
    ///
    /// Example: `scrip contact remove bob`
    Remove {
        /// The name.
        name: String,
    },
}

/// The arguments of `scrip contact add` ([`Op::ContactAdd`]).
#[derive(Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAdd {
    /// The name (1–32 bytes; not starting with +, @ or %).
    pub name: String,
    /// The wallet's address (`+...`, shown by its owner's `scrip id`).
    pub wallet: String,
}

impl ContactCommand {
    /// The operation.
    pub fn op(self) -> Op {
        match self {
            ContactCommand::Add(add) => Op::ContactAdd(add),
            ContactCommand::List => Op::ContactList,
            ContactCommand::Remove { name } => Op::ContactRemove { name },
        }
    }
}

/// The arguments of `scrip peer add` ([`Op::PeerAdd`]).
#[derive(Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAdd {
    /// Its replication address.
    pub addr: String,
    /// The identity expected there (`@...`); without it any identity is accepted.
    pub feed: Option<String>,
}

/// Wallet commands.
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Create your wallet with its notaries (at least one; 4 tolerate one faulty notary).
    ///
    /// Example: `scrip wallet create --notary @N1...@127.0.0.1:7412 --notary @N2...@127.0.0.1:7422`
    Create(WalletCreate),
    /// Give up a wallet whose creation never finished (its genesis was never certified and no
    /// reachable notary voted for it). Its key is kept, renamed, not deleted.
    ///
    /// Example: `scrip wallet abandon`
    Abandon,
    /// Ask each of your wallet's notaries, now, how far they hold your wallet: who answers,
    /// in how long, and its certified head.
    ///
    /// Example: `scrip wallet notaries`
    Notaries,
}

/// The arguments of `scrip wallet create` ([`Op::WalletCreate`]).
#[derive(Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCreate {
    /// A notary as FEED_ID@ADDR (its notary service address); repeat for each.
    #[arg(long = "notary", value_name = "FEED_ID@ADDR", required = true)]
    pub notaries: Vec<String>,
    /// Create the wallet even if some notaries do not answer now (a quorum must).
    #[arg(long)]
    #[serde(default)]
    pub allow_unreachable: bool,
}

impl PeerCommand {
    /// The operation.
    pub fn op(self) -> Op {
        match self {
            PeerCommand::Add(add) => Op::PeerAdd(add),
            PeerCommand::List => Op::PeerList,
        }
    }
}

impl WalletCommand {
    /// The operation.
    pub fn op(self) -> Op {
        match self {
            WalletCommand::Create(create) => Op::WalletCreate(create),
            WalletCommand::Abandon => Op::WalletAbandon,
            WalletCommand::Notaries => Op::WalletNotaries,
        }
    }
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
