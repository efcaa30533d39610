//! `scrip`: the command-line interface.
//!
//! Today only the skeleton exists; the node daemon, wallet commands, audit, demo and bench arrive
//! with the `[cli]` issue, on top of the replicate, ledger and notary crates.

use clap::{Parser, Subcommand};

/// Append-only signed logs replicated peer to peer, with a payments ledger on top.
#[derive(Parser, Debug)]
#[command(name = "scrip", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a whole local network (notaries, wallets, an auditor) on loopback and print a summary.
    ///
    /// Example: `scrip demo`
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => anyhow::bail!(
            "scrip demo is not built yet: it needs the replicate, ledger and notary layers \
             (only the feed layer exists so far; see README.md, \"Status\")"
        ),
    }
}
