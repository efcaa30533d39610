//! scrip-cli: the `scrip` command.
//!
//! # Layout
//!
//! - [`args`]: the command line (clap derive).
//! - [`home`]: the home directory (keys, settings, store) and its files.
//! - [`config`]: `config.toml` with documented defaults.
//! - [`ops`]: every operation behind the commands, written once over a [`ops::Context`]; the
//!   CLI runs them itself or sends them to the home's daemon.
//! - [`output`]: what operations return, as text or JSON.
//! - [`failure`]: exit statuses, and failures as they cross the control socket.
//! - [`api`]: the daemon's control socket (JSON lines over a Unix socket).
//! - [`daemon`]: `scrip serve` (replicate node, optional notary service, control socket, web
//!   wallet).
//! - [`metrics`]: the daemon's counters and latencies, as `/metrics` (Prometheus text).
//! - [`web`]: the web wallet: one bundled page (`cli/web/index.html`) and a JSON API on
//!   loopback, behind a token, a cookie and cross-site checks; live updates by server-sent
//!   events.
//! - [`bridge`]: where a notary and a replicate node meet (the notary crate uses only the
//!   replicate crate's transport): the bridge between them and the node's certificate check.
//! - [`net`]: one-shot catch-up from peers (`scrip sync`, audits of wallets not held).
//! - [`invite`]: invite codes, the join and group entries (pure), `scrip invite` / `scrip join`
//!   and the daemon's round that follows joiners and forms groups.
//! - [`payee`]: the checks on a payment's receiver, made before anything is signed.
//! - [`demo`]: `scrip demo`, a whole network on loopback.
//! - [`bench`](mod@bench): `scrip bench`, every layer's macro benchmark with its ceiling.
//! - [`progress`]: progress bars on a terminal only.
//! - [`wallet`]: the wallet's lifecycle around the notary client: entries left pending,
//!   checks before a wallet is created or abandoned.
//!
//! `anyhow` is used here and nowhere else: library crates return their own error enums.

pub mod api;
pub mod args;
pub mod bench;
pub mod bridge;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod failure;
pub mod home;
pub mod invite;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod output;
pub mod payee;
pub mod progress;
pub mod wallet;
pub mod web;

use anyhow::Result;
use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::config::Config;
use crate::home::Home;
use crate::ops::{Context, Op};
use crate::output::Output;

/// Runs a parsed command line; returns the exit status.
pub async fn run(cli: Cli) -> Result<i32> {
    let json = cli.json;
    let op = match cli.command {
        Command::Init {
            listen,
            notary_listen,
            web_listen,
            network_key,
        } => {
            let home = Home::resolve(cli.home)?;
            let defaults = Config::default();
            let config = Config {
                listen: listen.unwrap_or(defaults.listen),
                notary_listen: notary_listen.unwrap_or(defaults.notary_listen),
                network_key: network_key.unwrap_or(defaults.network_key),
                web_listen: web_listen.unwrap_or(defaults.web_listen),
                ..defaults
            };
            // Checks the values before anything is written.
            Config::parse(&config.to_toml())?;
            let key = home.init(&config)?;
            return print(
                &Output::Initialized {
                    home: home.root().display().to_string(),
                    identity: key.id().to_string(),
                },
                json,
            );
        }
        Command::Serve {
            listen,
            notary,
            notary_listen,
        } => {
            let home = Home::resolve(cli.home)?;
            daemon::serve(
                home,
                daemon::ServeOptions {
                    listen,
                    notary,
                    notary_listen,
                },
                json,
            )
            .await?;
            return Ok(0);
        }
        Command::Backup { file } => {
            let home = Home::resolve(cli.home)?;
            let saved = home.backup(&file)?;
            return print(
                &Output::Done {
                    message: format!(
                        "saved {} to {}: it holds your secret keys, keep it safe; the logs are \
                         not in it (they come back from your peers and notaries)",
                        saved.join(", "),
                        file.display()
                    ),
                },
                json,
            );
        }
        Command::Restore { file } => {
            let home = Home::resolve(cli.home)?;
            let restored = home.restore(&file)?;
            return print(
                &Output::Done {
                    message: format!(
                        "restored {} into {}; now `scrip serve`: your feed and wallet come back \
                         from your peers, and your wallet checks its certified head with its \
                         notaries before it signs anything",
                        restored.join(", "),
                        home.root().display()
                    ),
                },
                json,
            );
        }
        Command::Demo { dir } => {
            demo::run(dir, json).await?;
            return Ok(0);
        }
        Command::Bench { which, quick } => {
            bench::run(which, quick, json).await?;
            return Ok(0);
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "scrip", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Peer(peer) => peer.op(),
        Command::Contact(contact) => contact.op(),
        Command::Wallet(wallet) => wallet.op(),
        Command::Op(op) => op,
    };
    let home = Home::resolve(cli.home)?;
    let browse = matches!(op, Op::Open { print: false });
    let output = run_op(home, op).await?;
    if let (true, Output::Web { url }) = (browse, &output) {
        open_in_browser(url);
    }
    print(&output, json)
}

/// Starts the desktop's browser on `url` (`xdg-open`, or `open` on macOS); says so on stderr
/// when none starts (the address is printed either way).
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok();
    if !started {
        eprintln!("note: no browser could be started ({opener}): open this address yourself");
    }
}

/// Runs `op` on `home`: through its daemon if one answers, else on the store directly.
pub async fn run_op(home: Home, op: Op) -> Result<Output> {
    // The keys are checked (readable, not by others) whichever process will use them.
    ops::check_home(&home)?;
    // Either a daemon answers, or the store is free; while neither (a daemon starting up,
    // another command running), wait a little.
    let deadline = tokio::time::Instant::now() + home::STORE_WAIT;
    let store = loop {
        if let Some(stream) = api::connect(&home).await {
            let timeout = op.patience(home.config()?.command_timeout);
            return api::call(stream, &op, timeout).await;
        }
        let probe = home.clone();
        match tokio::task::spawn_blocking(move || probe.try_open_store()).await? {
            Ok(Some(store)) => break store,
            Ok(None) => {}
            // A home that cannot be written (read-only media, another user's copy) can still
            // say who it is, and show what it holds from a copy of its store.
            Err(err) if op == Op::Id && read_only(&err) => return ops::id_without_store(&home),
            Err(err) if op.only_reads() && read_only(&err) => {
                return run_on_a_copy(home, op).await;
            }
            Err(err) => return Err(err),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(home.in_use());
        }
        tokio::time::sleep(home::STORE_RETRY).await;
    };
    let ctx = Context::new(home, store, None, progress::wanted())?;
    let output = ops::execute(&ctx, op).await;
    ctx.close().await;
    output
}

/// Runs `op` (one that only reads) on a temporary copy of `home`'s store, which cannot be
/// written where it is (sled opens a store for writing only). The copy is deleted afterwards.
async fn run_on_a_copy(home: Home, op: Op) -> Result<Output> {
    let copying = home.clone();
    let (copy, store) = tokio::task::spawn_blocking(move || copying.open_store_copy()).await??;
    eprintln!(
        "note: {} cannot be written; reading a temporary copy of its store",
        home.root().display()
    );
    let ctx = Context::new(home, store, None, progress::wanted())?;
    let output = ops::execute(&ctx, op).await;
    ctx.close().await;
    drop(ctx);
    drop(copy);
    output
}

/// True if `err` says the store cannot be written (not that it is damaged or in use).
fn read_only(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<scrip_feed::Error>(),
            Some(scrip_feed::Error::Io {
                kind: std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem,
                ..
            })
        )
    })
}

fn print(output: &Output, json: bool) -> Result<i32> {
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(output)?)
    } else {
        output.text()
    };
    say(&text)?;
    Ok(output.exit_code())
}

/// Writes `text` to stdout. A reader that went away (`scrip feed | head`) is not an error: the
/// command ends quietly.
pub fn say(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
