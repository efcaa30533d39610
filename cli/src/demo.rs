//! `scrip demo`: a whole network on loopback, in one process but with real parts: every peer
//! is a daemon with its own home, keys and sled store, listening on its own loopback ports, and
//! everything goes through the same operations as the commands.
//!
//! Four notaries; Alice (who issues EUR), Bob and Carol; Mallory, who tries to cheat; and an
//! observer who replicates everything and audits every wallet. Alice pays Bob, who accepts;
//! Alice pays Carol, who rejects, and Alice reclaims; Bob pays Carol. Then an overspend, a
//! payment to a mistyped address, a double accept and an equivocation are each refused with their
//! reason. The observer's fold
//! must show every wallet sound and each currency's total unchanged except by mints.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use indicatif::ProgressBar;
use scrip_feed::{Entry, FeedId, Keypair};
use scrip_ledger::content::{Mint, WalletEntry};
use scrip_ledger::verify::subject_of;
use scrip_ledger::{Amount, Currency, OrderStatus, short_currency};
use scrip_notary::certified;
use scrip_notary::wire::{self, Proposal, Request, Response};
use scrip_notary::{NotaryAddr, Refusal};
use scrip_replicate::transport::{self, LocalIdentity};
use serde::Serialize;

use crate::args::{PeerAdd, WalletCreate};
use crate::config::Config;
use crate::daemon::{Daemon, ServeOptions};
use crate::home::Home;
use crate::ops::{self, Context, Op, transport as transport_config};
use crate::output::Output;

/// How long the demo waits for gossip to bring something before it gives up.
const GOSSIP_WAIT: Duration = Duration::from_secs(20);

struct Peer {
    name: &'static str,
    daemon: Daemon,
}

impl Peer {
    fn ctx(&self) -> &Arc<Context> {
        self.daemon.context()
    }

    async fn run(&self, op: Op) -> Result<Output> {
        ops::execute(self.ctx(), op)
            .await
            .with_context(|| format!("{}'s command", self.name))
    }

    fn wallet(&self) -> Result<FeedId> {
        self.ctx()
            .wallet_id()?
            .ok_or_else(|| anyhow!("{} has no wallet", self.name))
    }
}

/// What the demo found, printed as one JSON object with `--json`.
#[derive(Debug, Default, Serialize)]
struct DemoReport {
    /// Where the homes are.
    dir: String,
    /// Every line of the story, in order.
    steps: Vec<String>,
    /// Each wallet by name.
    wallets: BTreeMap<String, String>,
    /// Each attempt that must fail, with the reason it was refused.
    refused: BTreeMap<String, String>,
    /// How orders ended without their receiver: `cancelled` and `refunded`, each with its line.
    ends: BTreeMap<String, String>,
    /// The observer's audit of each wallet.
    audits: Vec<AuditLine>,
    /// Balances per wallet name, as `amount CODE`.
    balances: BTreeMap<String, Vec<String>>,
    /// Supply per currency.
    supply: Vec<SupplyLine>,
    /// Whether balances + escrow = minted for every currency.
    conservation: bool,
    /// Every check held.
    passed: bool,
    /// Wall-clock seconds.
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct AuditLine {
    name: String,
    wallet: String,
    entries: u64,
    sound: bool,
}

#[derive(Debug, Serialize)]
struct SupplyLine {
    /// `CODE@ISSUER`.
    currency: String,
    minted: String,
    in_balances: String,
    in_escrow: String,
}

/// Tells the story as it happens (text) or collects it (JSON), with a spinner on a terminal
/// while the network works.
struct Narrator {
    json: bool,
    spinner: ProgressBar,
    report: DemoReport,
    /// The first failure to write to stdout (a closed pipe is not one: see [`crate::say`]).
    unwritten: Option<anyhow::Error>,
}

impl Narrator {
    fn new(json: bool) -> Narrator {
        Narrator {
            json,
            spinner: crate::progress::spinner(crate::progress::wanted(), "starting"),
            report: DemoReport::default(),
            unwritten: None,
        }
    }

    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        if !self.json {
            let written = self.spinner.suspend(|| crate::say(&format!("{line}\n")));
            if let Err(err) = written {
                self.unwritten.get_or_insert(err);
            }
        }
        self.report.steps.push(line);
    }

    /// What the spinner says the demo is waiting for.
    fn working(&self, what: &'static str) {
        self.spinner.set_message(what);
    }

    fn finish(self) -> Result<DemoReport> {
        self.spinner.finish_and_clear();
        if let Some(err) = self.unwritten {
            return Err(err);
        }
        if self.json {
            crate::say(&format!(
                "{}\n",
                serde_json::to_string_pretty(&self.report)?
            ))?;
        }
        Ok(self.report)
    }
}

fn short(id: &FeedId) -> String {
    let text = id.to_string();
    text.chars().take(9).collect()
}

fn short_address(wallet: FeedId) -> String {
    crate::ops::address(wallet).chars().take(9).collect()
}

async fn start(dir: &Path, name: &'static str, notary: bool) -> Result<Peer> {
    let home = Home::at(dir.join(name));
    home.init(&Config {
        listen: "127.0.0.1:0".into(),
        notary_listen: "127.0.0.1:0".into(),
        web_listen: "127.0.0.1:0".into(),
        // One machine, one clock: no margin needed around expiries (so that the demo can show
        // an order expiring in seconds).
        clock_skew: 0,
        ..Config::default()
    })?;
    let daemon = Daemon::start(
        home,
        ServeOptions {
            notary,
            ..ServeOptions::default()
        },
    )
    .await
    .with_context(|| format!("starting {name}"))?;
    Ok(Peer { name, daemon })
}

/// Polls `check` until it yields something or [`GOSSIP_WAIT`] passes.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + GOSSIP_WAIT;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `peer` holds an incoming pending order from `from`, and returns its id.
async fn incoming_order(peer: &Peer, from: &FeedId) -> Result<String> {
    let from = crate::ops::address(*from);
    wait_for("an order to arrive by gossip", || async {
        let Output::Orders { orders } = peer
            .run(Op::Orders {
                incoming: true,
                outgoing: false,
                pending: true,
            })
            .await?
        else {
            bail!("unexpected output");
        };
        Ok(orders.into_iter().find(|o| o.from == from).map(|o| o.id))
    })
    .await
}

fn refusal_line(result: Result<Output>) -> Result<String> {
    match result {
        Ok(output) => bail!(
            "this should have been refused, but: {}",
            output.text().trim()
        ),
        Err(err) => Ok(format!("{err:#}")),
    }
}

/// The demo's network: every peer a daemon with its own home.
struct World {
    notaries: Vec<Peer>,
    /// alice, bob, carol, mallory.
    users: Vec<Peer>,
    observer: Peer,
    /// `ID@ADDRESS` of each notary, as `wallet create` takes them.
    notary_args: Vec<String>,
}

impl World {
    fn user(&self, name: &str) -> Result<&Peer> {
        self.users
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(|| anyhow!("no user {name}"))
    }
}

/// Runs the demo in `dir` (a fresh temporary directory if `None`): the network starts, wallets
/// are created, money moves, cheating is refused, and the observer audits everything.
pub async fn run(dir: Option<PathBuf>, json: bool) -> Result<()> {
    let started = Instant::now();
    let mut n = Narrator::new(json);
    let temporary = match &dir {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let dir = match (&dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => bail!("no directory"),
    };
    std::fs::create_dir_all(&dir)?;
    n.report.dir = dir.display().to_string();
    n.say(format!("scrip demo in {}", dir.display()));

    let world = start_world(&dir, &mut n).await?;
    create_wallets(&world, &mut n).await?;
    let order_to_bob = move_money(&world, &mut n).await?;
    orders_end(&world, &mut n).await?;
    attempt_cheats(&world, &mut n, &order_to_bob).await?;
    let passed = audit_everything(&world, &mut n).await?;

    n.working("stopping every peer");
    let World {
        notaries,
        users,
        observer,
        ..
    } = world;
    let stopping: Vec<_> = users
        .into_iter()
        .chain(notaries)
        .chain(std::iter::once(observer))
        .map(|peer| tokio::spawn(peer.daemon.stop()))
        .collect();
    for stop in stopping {
        let _ = stop.await;
    }
    n.report.seconds = started.elapsed().as_secs_f64();
    n.say(format!("demo finished in {:.1} s", n.report.seconds));
    n.report.passed = passed;
    if n.report.passed {
        n.say("all checks passed");
    }
    let report = n.finish()?;
    if !report.passed {
        bail!("the demo's checks failed (see above)");
    }
    Ok(())
}

/// Steps 1 and 2: four notaries, each a daemon with its own store, vote store and ports; the users
/// and the observer; everyone peers with every notary and every user, and the users follow
/// each other.
async fn start_world(dir: &Path, n: &mut Narrator) -> Result<World> {
    n.working("starting 4 notaries");
    let mut notaries = Vec::new();
    for name in ["notary-1", "notary-2", "notary-3", "notary-4"] {
        notaries.push(start(dir, name, true).await?);
    }
    let notary_args: Vec<String> = notaries
        .iter()
        .map(|n| {
            format!(
                "{}@{}",
                n.ctx().identity.id(),
                n.daemon.ready().notary.clone().unwrap_or_default()
            )
        })
        .collect();
    n.say(format!(
        "started 4 notaries (n = 4, f = 1, quorum 3), e.g. {} on {}",
        short(&notaries[0].ctx().identity.id()),
        notaries[0]
            .daemon
            .ready()
            .notary
            .clone()
            .unwrap_or_default()
    ));

    n.working("starting the users and the observer");
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol", "mallory"] {
        users.push(start(dir, name, false).await?);
    }
    let observer = start(dir, "observer", false).await?;
    let mut everyone: Vec<&Peer> = notaries.iter().chain(users.iter()).collect();
    everyone.push(&observer);
    let addresses: Vec<(String, String)> = everyone
        .iter()
        .map(|p| {
            (
                p.daemon.ready().listen.clone(),
                p.ctx().identity.id().to_string(),
            )
        })
        .collect();
    for peer in &everyone {
        for (address, id) in &addresses {
            if *id != peer.ctx().identity.id().to_string() {
                peer.run(Op::PeerAdd(PeerAdd {
                    addr: address.clone(),
                    feed: Some(id.clone()),
                }))
                .await?;
            }
        }
    }
    for user in &users {
        for other in users.iter().chain(std::iter::once(&observer)) {
            if other.name != user.name {
                other
                    .run(Op::Follow {
                        feed: user.ctx().identity.id().to_string(),
                    })
                    .await?;
            }
        }
    }
    // Each names themself: the others, who follow them, show their wallets as `~name`.
    for user in &users {
        user.run(Op::Nick {
            name: user.name.to_owned(),
        })
        .await?;
    }
    n.say(
        "started alice, bob, carol, mallory and an observer; they follow each other and each \
         publishes a nickname",
    );
    Ok(World {
        notaries,
        users,
        observer,
        notary_args,
    })
}

/// Step 3: wallets, certified by the notaries; everyone holds everyone's wallet before anyone
/// pays.
async fn create_wallets(world: &World, n: &mut Narrator) -> Result<()> {
    let World {
        users, notary_args, ..
    } = world;
    n.working("creating wallets");
    for user in users {
        user.run(Op::WalletCreate(WalletCreate {
            notaries: notary_args.clone(),
            allow_unreachable: false,
        }))
        .await?;
    }
    let [alice, bob, carol, mallory] = [&users[0], &users[1], &users[2], &users[3]];
    let (wa, wb, wc) = (alice.wallet()?, bob.wallet()?, carol.wallet()?);
    for user in users {
        n.report
            .wallets
            .insert(user.name.to_owned(), crate::ops::address(user.wallet()?));
    }
    n.say(format!(
        "wallets created: alice {}, bob {}, carol {}, mallory {}",
        short_address(wa),
        short_address(wb),
        short_address(wc),
        short_address(mallory.wallet()?)
    ));

    // Everyone holds everyone's wallet (they follow each other; wallets are two hops out)
    // before anyone pays: a payment needs its receiver's certified genesis.
    let all: Vec<FeedId> = users.iter().map(Peer::wallet).collect::<Result<_>>()?;
    for user in users {
        let store = Arc::clone(&user.ctx().store);
        let wanted = all.clone();
        wait_for("the wallets to replicate", || {
            let (store, wanted) = (Arc::clone(&store), wanted.clone());
            async move {
                let held = tokio::task::spawn_blocking(move || {
                    wanted.iter().try_fold(true, |all, w| {
                        Ok::<_, anyhow::Error>(
                            all && certified::notary_set(store.as_ref(), w)?.is_some(),
                        )
                    })
                })
                .await??;
                Ok(held.then_some(()))
            }
        })
        .await?;
    }
    // And everyone knows the others' wallets by their nicknames (`~bob`) before anyone pays,
    // so that every answer below names them the same way in every run.
    for user in users {
        let others: Vec<FeedId> = users
            .iter()
            .filter(|other| other.name != user.name)
            .map(Peer::wallet)
            .collect::<Result<_>>()?;
        wait_for("the nicknames to replicate", || {
            let others = others.clone();
            async move {
                let names = user.ctx().wallet_names().await?;
                Ok(others.iter().all(|w| names.contains_key(w)).then_some(()))
            }
        })
        .await?;
    }
    Ok(())
}

/// Step 4, money moves: alice mints and pays bob (he accepts) and carol (she rejects, alice
/// reclaims); bob pays carol (she accepts). Returns the id of alice's order to bob.
// Long because: the story's payments in the order they are told.
async fn move_money(world: &World, n: &mut Narrator) -> Result<String> {
    let (alice, bob, carol) = (
        world.user("alice")?,
        world.user("bob")?,
        world.user("carol")?,
    );
    let (wa, wb, wc) = (alice.wallet()?, bob.wallet()?, carol.wallet()?);
    n.working("paying, accepting, rejecting, reclaiming");
    let mint = alice
        .run(Op::Mint {
            amount: "1000.00".into(),
            currency: "EUR".into(),
            decimals: 2,
        })
        .await?;
    n.say(format!("alice: {}", mint.text().trim()));
    let paid = alice
        .run(Op::Pay {
            wallet: crate::ops::address(wb),
            amount: "250.00".into(),
            currency: "EUR".into(),
            memo: Some("rent".into()),
            expires: None,
            condition: None,
        })
        .await?;
    n.say(format!("alice: {}", paid.text().trim()));
    let order_to_bob = incoming_order(bob, &wa).await?;
    let accepted = bob
        .run(Op::Accept {
            order: order_to_bob.to_owned(),
            preimage: None,
        })
        .await?;
    n.say(format!("bob: {}", accepted.text().trim()));

    alice
        .run(Op::Pay {
            wallet: crate::ops::address(wc),
            amount: "100.00".into(),
            currency: "EUR".into(),
            memo: Some("deposit".into()),
            expires: None,
            condition: None,
        })
        .await?;
    let order_to_carol = incoming_order(carol, &wa).await?;
    let rejected = carol
        .run(Op::Reject {
            order: order_to_carol.clone(),
            reason: "wrong amount".into(),
        })
        .await?;
    n.say(format!("carol: {}", rejected.text().trim()));
    let reclaimed = wait_for("carol's rejection to reach alice", || async {
        match alice
            .run(Op::Reclaim {
                order: order_to_carol.clone(),
            })
            .await
        {
            Ok(output) => Ok(Some(output)),
            Err(err) if format!("{err:#}").contains("has not rejected") => Ok(None),
            Err(err) => Err(err),
        }
    })
    .await?;
    n.say(format!("alice: {}", reclaimed.text().trim()));

    wait_for("bob's accept to be certified", || async {
        let Output::Balance { balances, .. } = bob.run(Op::Balance).await? else {
            bail!("unexpected output");
        };
        Ok((!balances.is_empty()).then_some(()))
    })
    .await?;
    bob.run(Op::Pay {
        wallet: crate::ops::address(wc),
        amount: "50.00".into(),
        currency: "EUR".into(),
        memo: None,
        expires: None,
        condition: None,
    })
    .await?;
    let order_bob_carol = incoming_order(carol, &wb).await?;
    carol
        .run(Op::Accept {
            order: order_bob_carol,
            preimage: None,
        })
        .await?;
    n.say("bob paid carol 50.00 EUR; carol accepted");
    Ok(order_to_bob)
}

/// Step 4b, orders that end without their receiver: alice cancels an order to carol (carol's
/// accept afterwards is refused: the order's fate is decided), and an order to bob expires
/// unaccepted and alice's daemon refunds it by itself.
async fn orders_end(world: &World, n: &mut Narrator) -> Result<()> {
    let (alice, bob, carol) = (
        world.user("alice")?,
        world.user("bob")?,
        world.user("carol")?,
    );
    let (wa, wb, wc) = (alice.wallet()?, bob.wallet()?, carol.wallet()?);
    n.working("cancelling and letting an order expire");
    alice
        .run(Op::Pay {
            wallet: crate::ops::address(wc),
            amount: "20.00".into(),
            currency: "EUR".into(),
            memo: Some("ticket".into()),
            expires: None,
            condition: None,
        })
        .await?;
    let to_carol = incoming_order(carol, &wa).await?;
    let cancelled = alice
        .run(Op::Cancel {
            order: to_carol.clone(),
        })
        .await?;
    let line = cancelled.text().trim().to_owned();
    n.say(format!("alice: {line}"));
    n.report.ends.insert("cancelled".into(), line);
    let late = refusal_line(
        carol
            .run(Op::Accept {
                order: to_carol,
                preimage: None,
            })
            .await,
    )?;
    n.say(format!(
        "  carol accepts the cancelled order: refused: {late}"
    ));
    n.report.refused.insert("accept_after_cancel".into(), late);

    alice
        .run(Op::Pay {
            wallet: crate::ops::address(wb),
            amount: "30.00".into(),
            currency: "EUR".into(),
            memo: Some("if you want it".into()),
            expires: Some("2s".into()),
            condition: None,
        })
        .await?;
    let to_bob = incoming_order(bob, &wa).await?;
    n.say(format!(
        "alice paid bob 30.00 EUR expiring in 2 s ({to_bob}); bob does not answer"
    ));
    // Alice's daemon refunds it by itself once it expired.
    let refunded = wait_for("alice's daemon to refund the expired order", || async {
        let Output::Orders { orders } = alice
            .run(Op::Orders {
                incoming: false,
                outgoing: true,
                pending: false,
            })
            .await?
        else {
            bail!("unexpected output");
        };
        Ok(orders
            .into_iter()
            .find(|o| o.id == to_bob && o.status == "refunded"))
    })
    .await?;
    let line = format!(
        "alice's daemon refunded the expired order by itself: {} {} back",
        refunded.amount,
        short_currency(&refunded.currency)
    );
    n.say(line.clone());
    n.report.ends.insert("refunded".into(), line);
    Ok(())
}

/// Step 5: attempts to cheat, each refused with its reason.
async fn attempt_cheats(world: &World, n: &mut Narrator, order_to_bob: &str) -> Result<()> {
    let (alice, bob, carol, mallory) = (
        world.user("alice")?,
        world.user("bob")?,
        world.user("carol")?,
        world.user("mallory")?,
    );
    let (wa, wb) = (alice.wallet()?, bob.wallet()?);
    let notaries = &world.notaries;
    n.working("attempting to cheat");
    n.say("attempts that must fail:");
    // `scrip pay` refuses an overspend before signing it; a cheater's client would not, so
    // this one goes around that check, straight to the notaries.
    let overspend = refusal_line(
        crate::wallet::submit(
            carol.ctx(),
            WalletEntry::Order(scrip_ledger::content::Order {
                to: wb,
                currency: Currency::new(wa, "EUR", 2)?,
                amount: Amount::from_minor(1_000_000),
                memo: String::new(),
                expiry: Some(scrip_ledger::kit::FAR_EXPIRY),
                condition: None,
            }),
        )
        .await
        .map(|submitted| Output::Done {
            message: submitted.certified.entry.id().to_string(),
        }),
    )?;
    n.say(format!(
        "  overspend (carol pays 10000.00 EUR): refused: {overspend}"
    ));
    n.report.refused.insert("overspend".into(), overspend);
    let typo = refusal_line(
        alice
            .run(Op::Pay {
                wallet: mistype(&crate::ops::address(wb)),
                amount: "1.00".into(),
                currency: "EUR".into(),
                memo: None,
                expires: None,
                condition: None,
            })
            .await,
    )?;
    n.say(format!(
        "  typo (alice pays bob's address with one character changed): refused: {typo}"
    ));
    n.report.refused.insert("typo".into(), typo);
    let double = refusal_line(
        bob.run(Op::Accept {
            order: order_to_bob.to_owned(),
            preimage: None,
        })
        .await,
    )?;
    n.say(format!(
        "  double accept (bob accepts alice's order again): refused: {double}"
    ));
    n.report.refused.insert("double_accept".into(), double);
    let equivocation = equivocate(mallory, notaries).await?;
    n.say(format!(
        "  equivocation (mallory signs two entries for one slot): {equivocation}"
    ));
    n.report.refused.insert("equivocation".into(), equivocation);
    Ok(())
}

/// Step 6: the observer replicates every wallet and audits them; the balances, the supply and
/// conservation are checked. Returns whether every check passed.
// Long because: the observer's checks in the order the demo tells them, a few lines each.
async fn audit_everything(world: &World, n: &mut Narrator) -> Result<bool> {
    let (users, observer) = (&world.users, &world.observer);
    let (wa, wb, wc) = (
        world.user("alice")?.wallet()?,
        world.user("bob")?.wallet()?,
        world.user("carol")?.wallet()?,
    );
    let mallory = world.user("mallory")?;
    n.working("the observer replicates every wallet");
    let wallets = vec![wa, wb, wc, mallory.wallet()?];
    for wallet in &wallets {
        if let Some(node) = &observer.ctx().node {
            node.request_feed(*wallet).await?;
        }
    }
    let mut heads = BTreeMap::new();
    for user in users {
        let wallet = user.wallet()?;
        let store = Arc::clone(&user.ctx().store);
        let log =
            tokio::task::spawn_blocking(move || certified::certified_log(store.as_ref(), &wallet))
                .await??;
        heads.insert(wallet, log.len());
    }
    let store = Arc::clone(&observer.ctx().store);
    wait_for("the observer to replicate every wallet", || {
        let store = Arc::clone(&store);
        let heads = heads.clone();
        async move {
            for (wallet, want) in &heads {
                let have = certified::certified_log(store.as_ref(), wallet)?.len();
                if have < *want {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
    })
    .await?;
    n.say("observer: replicated every wallet with its certificates; auditing each one");
    let mut sound = true;
    for (name, wallet) in ["alice", "bob", "carol", "mallory"].iter().zip(&wallets) {
        let Output::Audit { report, .. } = observer
            .run(Op::Audit {
                wallet: wallet.to_string(),
                timeout: 5,
            })
            .await?
        else {
            bail!("unexpected output");
        };
        n.say(format!(
            "  {name:<8} {} {}, {}",
            report.entries,
            if report.entries == 1 {
                "entry"
            } else {
                "entries"
            },
            if report.is_sound() {
                "sound".to_string()
            } else {
                format!("NOT SOUND: {:?}", report.verdict)
            }
        ));
        sound &= report.is_sound();
        n.report.audits.push(AuditLine {
            name: (*name).to_owned(),
            wallet: wallet.to_string(),
            entries: report.entries,
            sound: report.is_sound(),
        });
    }
    let ledger = observer.ctx().ledger().await?;
    summary(n, &ledger, &[("alice", wa), ("bob", wb), ("carol", wc)]);
    let conservation = ledger.check_conservation();
    match &conservation {
        Ok(()) => n.say("conservation: for every currency, balances + escrow = minted  OK"),
        Err(err) => n.say(format!("conservation: VIOLATED: {err}")),
    }
    n.report.conservation = conservation.is_ok();
    // alice: 1000 minted, 250 to bob, 100 to carol taken back; bob: 250 in, 50 to carol.
    let expected = [(wa, "750.00"), (wb, "200.00"), (wc, "50.00")];
    let eur = Currency::new(wa, "EUR", 2)?;
    let mut balances_right = true;
    for (wallet, want) in expected {
        let have = ledger
            .wallet(&wallet)
            .and_then(|w| w.balances.get(&eur).copied())
            .unwrap_or(Amount::ZERO)
            .display(2);
        balances_right &= have == want;
    }
    let open_orders = ledger
        .orders()
        .values()
        .filter(|o| o.status == OrderStatus::Pending)
        .count();
    Ok(sound && conservation.is_ok() && balances_right && open_orders == 0)
}

fn summary(n: &mut Narrator, ledger: &scrip_ledger::LedgerState, names: &[(&str, FeedId)]) {
    n.say("balances:");
    for (name, wallet) in names {
        let state = ledger.wallet(wallet);
        let held: Vec<(String, &Currency)> = state
            .map(|s| {
                s.balances
                    .iter()
                    .map(|(c, a)| (a.display(c.decimals), c))
                    .collect()
            })
            .unwrap_or_default();
        let text: Vec<String> = held
            .iter()
            .map(|(amount, c)| format!("{amount} {}", c.short()))
            .collect();
        n.say(format!("  {name:<8} {}", text.join(", ")));
        n.report.balances.insert(
            (*name).to_owned(),
            held.iter()
                .map(|(amount, c)| format!("{amount} {c}"))
                .collect(),
        );
    }
    n.say("supply:");
    for (currency, totals) in ledger.totals() {
        n.report.supply.push(SupplyLine {
            currency: currency.to_string(),
            minted: totals.supply.display(currency.decimals),
            in_balances: totals.balances.display(currency.decimals),
            in_escrow: totals.escrow.display(currency.decimals),
        });
        n.say(format!(
            "  {}: minted {}, in balances {}, in escrow {}",
            currency.short(),
            totals.supply.display(currency.decimals),
            totals.balances.display(currency.decimals),
            totals.escrow.display(currency.decimals),
        ));
    }
}

/// Mallory signs two different entries for her next slot and sends each to a different half
/// of the notaries, then tries to finish either: neither is ever certified.
async fn equivocate(mallory: &Peer, notaries: &[Peer]) -> Result<String> {
    let ctx = mallory.ctx();
    let key = ctx
        .home
        .wallet_key()?
        .ok_or_else(|| anyhow!("mallory has no wallet"))?;
    let wallet = key.id();
    let store = Arc::clone(&ctx.store);
    let log =
        tokio::task::spawn_blocking(move || certified::certified_log(store.as_ref(), &wallet))
            .await??;
    let previous = log
        .last()
        .ok_or_else(|| anyhow!("mallory's wallet is empty"))?;
    let currency = Currency::new(wallet, "MAL", 0)?;
    let entry = |amount: u64| -> Result<Entry> {
        let content = WalletEntry::Mint(Mint {
            currency,
            amount: Amount::from_minor(amount),
        });
        Ok(Entry::create(
            &key,
            Some(previous.entry.head()),
            scrip_feed::Timestamp::from_millis(amount),
            content.to_payload()?,
        )?)
    };
    let (a, b) = (entry(1)?, entry(2)?);
    let prefix = vec![certified::to_bytes(previous)?];
    let propose = |e: &Entry| -> Result<Request> {
        Ok(Request::Propose(Proposal {
            entry: scrip_feed::EntryBytes::of(e),
            prefix: prefix.clone(),
        }))
    };
    let identity = LocalIdentity::new(Arc::new(Keypair::from_seed(&key.seed())))?;
    let config = transport_config(&ctx.config)?;
    let addrs: Vec<NotaryAddr> = ctx.home.notaries()?;
    let mut votes = [0usize; 2];
    // A to notaries 1 and 2, B to notaries 3 and 4.
    for (i, notary) in addrs.iter().enumerate() {
        let (which, request) = if i < 2 {
            (0, propose(&a)?)
        } else {
            (1, propose(&b)?)
        };
        if let Response::Vote(vote) = ask(notary, &identity, &config, &request).await? {
            let subject = subject_of(if which == 0 { &a } else { &b });
            if vote.verifies(&subject) {
                votes[which] += 1;
            }
        }
    }
    // Now each entry to everyone: the other half is locked.
    let mut locked = 0;
    for request in [propose(&a)?, propose(&b)?] {
        for notary in &addrs {
            if let Response::Refusal(Refusal::Locked { .. }) =
                ask(notary, &identity, &config, &request).await?
            {
                locked += 1;
            }
        }
    }
    let _ = notaries;
    if votes[0] >= 3 || votes[1] >= 3 || locked != 4 {
        bail!("the equivocation was not contained: votes {votes:?}, locked answers {locked}");
    }
    Ok(format!(
        "entry A got {} votes, entry B got {}, quorum is 3; every notary answers the other \
         entry with \"locked\": no certificate, slot #{} stays locked",
        votes[0],
        votes[1],
        a.seq()
    ))
}

async fn ask(
    notary: &NotaryAddr,
    identity: &LocalIdentity,
    config: &transport::TransportConfig,
    request: &Request,
) -> Result<Response> {
    let tcp = tokio::net::TcpStream::connect(&notary.address)
        .await
        .with_context(|| format!("connecting to notary {}", notary.address))?;
    let mut stream = transport::connect(tcp, identity, Some(notary.id), config).await?;
    stream.send(&wire::encode(request)?).await?;
    let answer = stream
        .recv()
        .await?
        .ok_or_else(|| anyhow!("the notary closed the connection"))?;
    Ok(wire::decode::<Response>(&answer)?)
}

/// `address` with one character changed (a typo).
fn mistype(address: &str) -> String {
    let mut chars: Vec<char> = address.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}
