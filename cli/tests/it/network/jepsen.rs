//! A Jepsen-style run of whole processes: four `scrip serve --notary` daemons and three wallet
//! homes with daemons, driven by random `scrip` commands (pay, accept, reject, reclaim) while
//! notaries and wallet daemons are killed with SIGKILL and paused with SIGSTOP, commands are
//! killed mid-flight, homes are restored from older copies (sometimes with notaries down), and a
//! second copy of a home is used as another device would. At the end everything is brought back
//! and checked from an observer that fetches every wallet: every audit sound, conservation per
//! currency, no order resolved twice, every acknowledged command present, no stuck wallet.
//!
//! CI runs `SCRIP_JEPSEN_STEPS` steps (default 30) with a fixed seed; a long run on demand:
//! `SCRIP_JEPSEN_STEPS=400 SCRIP_JEPSEN_SEED=<seed> cargo test -p scrip-cli --release --test
//! network jepsen -- --nocapture` (the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scrip_feed::rng::SplitMix64;

use super::{NotaryProcess, free_port, notary_group};
use crate::common::{Daemon, Run, TestHome, scrip_bin};

/// Exit statuses a command may end with (docs/cli.md §6); anything else is a bug.
const ALLOWED_EXITS: [i32; 4] = [0, 1, 3, 4];

struct WalletHome {
    name: String,
    home: TestHome,
    listen: String,
    daemon: Option<Daemon>,
    address: String,
    backup: Option<PathBuf>,
}

impl WalletHome {
    fn start(&mut self) {
        if self.daemon.is_none() {
            self.daemon = Some(self.home.serve(&["--listen", &self.listen]));
        }
    }

    fn kill(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.kill();
        }
    }
}

/// What was acknowledged (exit 0) and must be in the final logs.
#[derive(Default)]
struct Acked {
    orders: BTreeSet<String>,
    accepts: BTreeSet<String>,
    rejects: BTreeSet<String>,
    reclaims: BTreeSet<String>,
}

struct World {
    dir: PathBuf,
    rng: SplitMix64,
    notaries: Vec<NotaryProcess>,
    running: Vec<Option<Daemon>>,
    wallets: Vec<WalletHome>,
    acked: Acked,
    exits: BTreeMap<i32, usize>,
    /// Failures seen, by the start of their message (printed at the end).
    failures: BTreeMap<String, usize>,
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    // As `cp -a` would: the copy keeps the home private.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else if path.extension().is_none_or(|e| e != "sock") {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Decimal text (`12.50`) to minor units (2 decimals).
fn cents(text: &str) -> u64 {
    let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let fraction = format!("{fraction:0<2}");
    units.parse::<u64>().unwrap() * 100 + fraction[..2].parse::<u64>().unwrap()
}

impl World {
    fn run(&mut self, i: usize, args: &[&str]) -> Run {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.wallets[i].home.run(&all);
        assert!(
            ALLOWED_EXITS.contains(&run.code),
            "{} {args:?} ended with {}: {run:?}",
            self.wallets[i].name,
            run.code
        );
        if run.code != 0 {
            // A failure is one line on stderr, whatever it is.
            let line: String = run.one_line_error().chars().take(60).collect();
            *self.failures.entry(line).or_default() += 1;
        }
        *self.exits.entry(run.code).or_default() += 1;
        run
    }

    /// A random index below `n`.
    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.below(n as u64)).unwrap()
    }

    fn other(&mut self, i: usize) -> usize {
        let others = self.wallets.len() - 1;
        (i + 1 + self.pick(others)) % self.wallets.len()
    }

    fn down(&self) -> usize {
        self.running.iter().filter(|d| d.is_none()).count()
    }

    fn pay(&mut self, i: usize) {
        let to = self.other(i);
        let amount = format!("{}.{:02}", self.rng.below(6), 1 + self.rng.below(99));
        let address = self.wallets[to].address.clone();
        let run = self.run(i, &["pay", &address, &amount, "EUR"]);
        if run.code == 0 {
            self.acked
                .orders
                .insert(run.json()["id"].as_str().unwrap().to_owned());
        }
    }

    fn answer(&mut self, i: usize) {
        let run = self.run(i, &["orders", "--incoming", "--pending"]);
        if run.code != 0 {
            return;
        }
        let orders = run.json()["orders"].as_array().cloned().unwrap_or_default();
        if orders.is_empty() {
            return;
        }
        let order = orders[self.pick(orders.len())]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let accept = self.rng.below(10) < 7;
        let run = if accept {
            self.run(i, &["accept", &order])
        } else {
            self.run(i, &["reject", &order, "--reason", "test"])
        };
        if run.code == 0 {
            let set = if accept {
                &mut self.acked.accepts
            } else {
                &mut self.acked.rejects
            };
            set.insert(order);
        }
    }

    fn reclaim(&mut self, i: usize) {
        let run = self.run(i, &["orders", "--outgoing"]);
        if run.code != 0 {
            return;
        }
        let rejected: Vec<String> = run.json()["orders"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|o| o["status"] == "rejected")
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        if let Some(order) = rejected.first() {
            let run = self.run(i, &["reclaim", order]);
            if run.code == 0 {
                self.acked.reclaims.insert(order.clone());
            }
        }
    }

    fn notary_fault(&mut self) {
        let n = self.pick(4);
        match self.running[n].take() {
            // At most f + 1 = 2 down at once: sometimes no quorum, never for long.
            Some(daemon) if self.down() < 2 => daemon.kill(),
            Some(daemon) => self.running[n] = Some(daemon),
            None => self.running[n] = Some(self.notaries[n].start()),
        }
    }

    fn wallet_fault(&mut self, i: usize) {
        match self.rng.below(3) {
            0 => {
                self.wallets[i].kill();
                self.wallets[i].start();
            }
            1 => {
                // Paused: a command on its home gives up, naming the daemon (exit 4).
                let Some(pid) = self.wallets[i].daemon.as_ref().map(Daemon::pid) else {
                    return;
                };
                signal("-STOP", pid);
                let run = self.run(i, &["balance"]);
                signal("-CONT", pid);
                assert_eq!(run.code, 4, "{run:?}");
            }
            _ => {
                // A command killed mid-flight.
                let to = self.other(i);
                let mut child = Command::new(scrip_bin())
                    .arg("--home")
                    .arg(&self.wallets[i].home.path)
                    .args(["pay", &self.wallets[to].address, "0.01", "EUR"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_millis(self.rng.below(400)));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Takes a backup of a home (its daemon stopped for a consistent copy), or restores the
    /// last one, sometimes while two notaries are down: then the restored wallet must sign
    /// nothing until a quorum can tell it its head.
    fn backup_or_restore(&mut self, i: usize) {
        self.wallets[i].kill();
        let path = self.wallets[i].home.path.clone();
        match self.wallets[i].backup.clone() {
            Some(backup) if self.rng.below(2) == 0 => {
                std::fs::remove_dir_all(&path).unwrap();
                copy_dir(&backup, &path);
                let notaries_down = self.rng.below(2) == 0 && self.down() == 0;
                let mut stopped = Vec::new();
                if notaries_down {
                    for n in [0, 1] {
                        if let Some(daemon) = self.running[n].take() {
                            daemon.kill();
                            stopped.push(n);
                        }
                    }
                }
                self.wallets[i].start();
                if notaries_down {
                    let to = self.other(i);
                    let address = self.wallets[to].address.clone();
                    let run = self.run(i, &["pay", &address, "0.01", "EUR"]);
                    assert_eq!(
                        run.code, 1,
                        "a restored wallet signed without a quorum: {run:?}"
                    );
                    for n in stopped {
                        self.running[n] = Some(self.notaries[n].start());
                    }
                }
            }
            _ => {
                let backup = self.dir.join(format!("{}-backup", self.wallets[i].name));
                let _ = std::fs::remove_dir_all(&backup);
                copy_dir(&path, &backup);
                self.wallets[i].backup = Some(backup);
                self.wallets[i].start();
            }
        }
    }

    /// Another device: a copy of the home, used while the original is off, then put away.
    fn second_copy(&mut self, i: usize) {
        self.wallets[i].kill();
        let copy = self.dir.join(format!("{}-copy", self.wallets[i].name));
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&self.wallets[i].home.path, &copy);
        let original =
            std::mem::replace(&mut self.wallets[i].home, TestHome { path: copy.clone() });
        self.pay(i);
        self.wallets[i].home = original;
        std::fs::remove_dir_all(&copy).unwrap();
        self.wallets[i].start();
    }

    fn step(&mut self) {
        let i = self.pick(self.wallets.len());
        match self.rng.below(100) {
            0..40 => self.pay(i),
            40..60 => self.answer(i),
            60..68 => self.reclaim(i),
            68..78 => self.notary_fault(),
            78..86 => self.wallet_fault(i),
            86..95 => self.backup_or_restore(i),
            _ => self.second_copy(i),
        }
    }
}

fn signal(which: &str, pid: u32) {
    Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn jepsen_money_is_conserved_and_nothing_acknowledged_is_lost() {
    let _turn = crate::common::whole_network();
    let steps = env_u64("SCRIP_JEPSEN_STEPS").unwrap_or(30);
    let seed = env_u64("SCRIP_JEPSEN_SEED").unwrap_or(0x5c81_9e95);
    eprintln!("jepsen: SCRIP_JEPSEN_SEED={seed} SCRIP_JEPSEN_STEPS={steps}");
    let dir = tempfile::tempdir().unwrap();
    let (notaries, running, create) = notary_group(dir.path());
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let mut wallets = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let home = TestHome::init(dir.path(), name);
        home.set_config("command_timeout", "5");
        wallets.push(WalletHome {
            name: name.into(),
            home,
            listen: free_port(),
            daemon: None,
            address: String::new(),
            backup: None,
        });
    }
    let identities: Vec<String> = wallets.iter().map(|w| w.home.identity()).collect();
    for w in &mut wallets {
        w.home.run(&create).ok();
        w.address = w.home.wallet();
    }
    let listens: Vec<String> = wallets.iter().map(|w| w.listen.clone()).collect();
    for (i, w) in wallets.iter_mut().enumerate() {
        for (j, id) in identities.iter().enumerate() {
            if i != j {
                w.home.run(&["peer", "add", &listens[j], id]).ok();
                w.home.run(&["follow", id]).ok();
            }
        }
        for n in &notaries {
            w.home.run(&["peer", "add", &n.listen]).ok();
        }
        w.start();
    }
    wallets[0].home.run(&["mint", "1000.00", "EUR"]).ok();
    let mut world = World {
        dir: dir.path().to_path_buf(),
        rng: SplitMix64::new(seed),
        notaries,
        running,
        wallets,
        acked: Acked::default(),
        exits: BTreeMap::new(),
        failures: BTreeMap::new(),
    };
    // Everyone gets some money first (once the receiver's wallet reached the payer).
    for to in [1, 2] {
        let address = world.wallets[to].address.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        let run = loop {
            let run = world.run(0, &["pay", &address, "100.00", "EUR"]);
            if run.code == 0 || Instant::now() > deadline {
                break run;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(run.code, 0, "{run:?}");
        world
            .acked
            .orders
            .insert(run.json()["id"].as_str().unwrap().to_owned());
    }
    for _ in 0..steps {
        world.step();
    }

    // Everything comes back; every pending entry is settled; every wallet can still write.
    for n in 0..4 {
        if world.running[n].is_none() {
            world.running[n] = Some(world.notaries[n].start());
        }
    }
    for i in 0..world.wallets.len() {
        world.wallets[i].start();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = world.run(i, &["pending", "--retry"]);
            if run.code == 0 && world.run(i, &["pending"]).json()["pending"].is_null() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} stays pending: {run:?}",
                world.wallets[i].name
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let code = format!("FIN{i}");
        let run = world.run(i, &["mint", "1.00", &code]);
        assert_eq!(run.code, 0, "{} is stuck: {run:?}", world.wallets[i].name);
    }

    // An observer fetches every wallet and audits it.
    let observer = TestHome::init(dir.path(), "observer");
    for w in &world.wallets {
        observer.run(&["peer", "add", &w.listen]).ok();
    }
    let mut minted = 0u64;
    let mut balances = 0u64;
    let mut orders: BTreeMap<String, u64> = BTreeMap::new();
    let mut resolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in &world.wallets {
        let report = observer.json(&["audit", &w.address, "--timeout", "20"]);
        let report = &report["report"];
        assert_eq!(report["verdict"]["verdict"], "sound", "{report}");
        for step in report["steps"].as_array().unwrap() {
            let eur = step["currency"]
                .as_str()
                .is_some_and(|c| c.starts_with("EUR"));
            let amount = step["amount"].as_str().map(cents).unwrap_or(0);
            let id = step["entry"].as_str().unwrap().to_owned();
            match step["kind"].as_str().unwrap() {
                "mint" if eur => minted += amount,
                "order" => {
                    orders.insert(id, amount);
                }
                kind @ ("accept" | "reject" | "reclaim") => resolved
                    .entry(step["order"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(kind.to_owned()),
                _ => {}
            }
        }
        for b in report["balances"].as_array().unwrap() {
            if b["currency"].as_str().unwrap().starts_with("EUR") {
                balances += cents(b["amount"].as_str().unwrap());
            }
        }
    }
    // No order resolved twice: at most one accept or reject, and a reclaim only after a reject.
    for (order, kinds) in &resolved {
        let answers = kinds.iter().filter(|k| *k != "reclaim").count();
        let reclaims = kinds.iter().filter(|k| *k == "reclaim").count();
        assert!(
            answers <= 1 && reclaims <= 1,
            "order {order} resolved as {kinds:?}"
        );
        if reclaims == 1 {
            assert!(kinds.contains(&"reject".to_owned()), "{order}: {kinds:?}");
        }
    }
    // Conservation: what was minted is in balances or in escrow (orders not accepted and not
    // reclaimed).
    let escrow: u64 = orders
        .iter()
        .filter(|(id, _)| {
            resolved.get(*id).is_none_or(|k| {
                !k.contains(&"accept".to_owned()) && !k.contains(&"reclaim".to_owned())
            })
        })
        .map(|(_, amount)| amount)
        .sum();
    assert_eq!(
        balances + escrow,
        minted,
        "EUR: balances {balances} + escrow {escrow}"
    );
    // Every acknowledged command is there.
    for id in &world.acked.orders {
        assert!(
            orders.contains_key(id),
            "acknowledged order {id} is missing"
        );
    }
    for (set, kind) in [
        (&world.acked.accepts, "accept"),
        (&world.acked.rejects, "reject"),
        (&world.acked.reclaims, "reclaim"),
    ] {
        for id in set {
            assert!(
                resolved
                    .get(id)
                    .is_some_and(|k| k.contains(&kind.to_owned())),
                "acknowledged {kind} of {id} is missing"
            );
        }
    }
    eprintln!(
        "jepsen: {steps} steps, exits {:?}, {} orders ({} acknowledged), {} resolved, minted {minted}, escrow {escrow}",
        world.exits,
        orders.len(),
        world.acked.orders.len(),
        resolved.len()
    );
    for (failure, count) in &world.failures {
        eprintln!("jepsen:   {count}× {failure}");
    }
}
