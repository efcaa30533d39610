//! The whole system as separate processes: 4 `scrip serve --notary` daemons and 2 wallet
//! daemons on loopback, driven by `scrip` commands. A notary is killed with SIGKILL mid-run and
//! restarted; another is killed later, so the restarted one must have caught up. At the end
//! the balances are right and `scrip audit` finds both wallets sound, from a wallet's home and
//! from a fresh observer that fetches the logs from peers.
#![allow(clippy::unwrap_used)]

use crate::common;
#[path = "network/browser.rs"]
mod browser;
#[path = "network/invite.rs"]
mod invite;
#[path = "network/jepsen.rs"]
mod jepsen;

use std::time::Duration;

use common::{Daemon, TestHome, wait_until};
use serde_json::Value;

fn free_port() -> String {
    common::fixed_port()
}

struct NotaryProcess {
    home: TestHome,
    listen: String,
    notary: String,
}

impl NotaryProcess {
    fn start(&self) -> Daemon {
        self.home.serve(&[
            "--notary",
            "--listen",
            &self.listen,
            "--notary-listen",
            &self.notary,
        ])
    }
}

fn pending_orders(home: &TestHome) -> Vec<Value> {
    home.json(&["orders", "--incoming", "--pending"])["orders"]
        .as_array()
        .unwrap()
        .clone()
}

fn balance(home: &TestHome) -> String {
    let balance = home.json(&["balance"]);
    balance["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {}",
                b["amount"].as_str().unwrap(),
                // The code of `CODE@ISSUER`.
                b["currency"].as_str().unwrap().split('@').next().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn payments_survive_a_notary_killed_mid_run() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    // They know each other and the notaries' nodes, and follow each other.
    let TwoPeople {
        notaries,
        mut running,
        alice,
        alice_daemon,
        bob,
        bob_daemon,
    } = two_people(dir.path());
    let bob_wallet = bob.wallet();
    alice.run(&["mint", "100.00", "EUR"]).ok();

    let mut paid = 0;
    let pay = |paid: &mut u32| {
        alice
            .run(&["pay", &bob_wallet, "7.25", "EUR", "--memo", "test"])
            .ok();
        *paid += 1;
    };
    pay(&mut paid);
    pay(&mut paid);
    // Notary 1 dies without warning; payments go on with the other three.
    running[1].take().unwrap().kill();
    pay(&mut paid);
    pay(&mut paid);
    // It comes back on the same addresses, and notary 2 dies: now notary 1 must vote, so it
    // has to learn what was certified while it was down.
    running[1] = Some(notaries[1].start());
    running[2].take().unwrap().kill();
    pay(&mut paid);

    // Bob accepts every order as it arrives.
    let mut accepted = 0;
    wait_until(
        "bob to receive every order",
        Duration::from_secs(60),
        || {
            for order in pending_orders(&bob) {
                bob.run(&["accept", order["id"].as_str().unwrap()]).ok();
                accepted += 1;
            }
            accepted == paid
        },
    );
    assert_eq!(balance(&bob), "36.25 EUR");
    assert_eq!(balance(&alice), "63.75 EUR");

    // Audits: from bob's home (alice's wallet is replicated there) and a fresh observer.
    for (who, wallet) in [(&bob, alice.wallet()), (&bob, bob.wallet())] {
        let report = who.json(&["audit", &wallet]);
        assert_eq!(report["report"]["verdict"]["verdict"], "sound", "{report}");
    }
    let observer = TestHome::init(dir.path(), "observer");
    observer.run(&["peer", "add", &alice_daemon.listen()]).ok();
    let text = observer.run(&["audit", &alice.wallet()]).ok();
    assert!(text.stdout.contains("SOUND"), "{}", text.stdout);
    assert!(
        text.stdout.contains("63.75 EUR"),
        "the observer's audit shows the final balance: {}",
        text.stdout
    );

    // Everything stops cleanly.
    assert_eq!(alice_daemon.stop(), 0);
    assert_eq!(bob_daemon.stop(), 0);
    for daemon in running.into_iter().flatten() {
        assert_eq!(daemon.stop(), 0);
    }
}

/// Two people with running daemons become each other's peers and followers, add the notaries'
/// nodes as peers, and create their wallets with `create` (`scrip wallet create --notary ...`).
fn befriend(people: [(&TestHome, &Daemon); 2], notaries: &[NotaryProcess], create: &[&str]) {
    for (i, (home, _)) in people.iter().enumerate() {
        let (other, other_daemon) = people[1 - i];
        home.run(&["peer", "add", &other_daemon.listen(), &other.identity()])
            .ok();
        home.run(&["follow", &other.identity()]).ok();
        for n in notaries {
            home.run(&["peer", "add", &n.listen]).ok();
        }
    }
    for (home, _) in people {
        home.run(create).ok();
    }
}

/// Four notary daemons, and alice and bob served, peered, following each other, each with a
/// wallet in that group.
struct TwoPeople {
    notaries: Vec<NotaryProcess>,
    running: Vec<Option<Daemon>>,
    alice: TestHome,
    alice_daemon: Daemon,
    bob: TestHome,
    bob_daemon: Daemon,
}

fn two_people(dir: &std::path::Path) -> TwoPeople {
    let (notaries, running, create) = notary_group(dir);
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let alice = TestHome::init(dir, "alice");
    let bob = TestHome::init(dir, "bob");
    let alice_daemon = alice.serve(&[]);
    let bob_daemon = bob.serve(&[]);
    befriend(
        [(&alice, &alice_daemon), (&bob, &bob_daemon)],
        &notaries,
        &create,
    );
    TwoPeople {
        notaries,
        running,
        alice,
        alice_daemon,
        bob,
        bob_daemon,
    }
}

/// Four notary processes and their `--notary` arguments.
fn notary_group(dir: &std::path::Path) -> (Vec<NotaryProcess>, Vec<Option<Daemon>>, Vec<String>) {
    notary_group_with(dir, &[])
}

/// [`notary_group`] with these config.toml settings in each notary's home.
fn notary_group_with(
    dir: &std::path::Path,
    settings: &[(&str, &str)],
) -> (Vec<NotaryProcess>, Vec<Option<Daemon>>, Vec<String>) {
    let notaries: Vec<NotaryProcess> = (0..4)
        .map(|i| {
            let home = TestHome::init(dir, &format!("notary{i}"));
            for (key, value) in settings {
                home.set_config(key, value);
            }
            NotaryProcess {
                home,
                listen: free_port(),
                notary: free_port(),
            }
        })
        .collect();
    let running: Vec<Option<Daemon>> = notaries.iter().map(|n| Some(n.start())).collect();
    let mut create = vec!["wallet".to_owned(), "create".to_owned()];
    for (n, daemon) in notaries.iter().zip(&running) {
        create.push("--notary".into());
        create.push(format!(
            "{}@{}",
            daemon.as_ref().unwrap().identity(),
            n.notary
        ));
    }
    (notaries, running, create)
}

/// Notaries bounded to one new wallet an hour: a stranger's wallet takes each notary's one,
/// the next stranger's stays pending with the reason, and a person the notaries follow gets
/// their wallet all the same (the notaries vouch for the wallet their identity links to).
#[test]
fn notaries_take_on_strangers_within_their_bound_and_the_people_they_follow_beyond_it() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let (notaries, running, create) =
        notary_group_with(dir.path(), &[("notary_new_wallets_per_hour", "1")]);
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let alice = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    let carol = TestHome::init(dir.path(), "carol");
    let _alice_daemon = alice.serve(&[]);
    let _bob_daemon = bob.serve(&[]);
    let _carol_daemon = carol.serve(&[]);
    // The notaries follow carol, and she peers with them: they hold what she publishes.
    for (notary, daemon) in notaries.iter().zip(&running) {
        let daemon = daemon.as_ref().unwrap();
        notary.home.run(&["follow", &carol.identity()]).ok();
        carol
            .run(&["peer", "add", &daemon.listen(), &daemon.identity()])
            .ok();
    }
    alice.run(&create).ok();
    let refused = bob.run(&create);
    assert_ne!(refused.code, 0, "{refused:?}");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        said.contains("at most 1 new wallet an hour"),
        "the reason is not given: {said}"
    );
    let created = carol.run(&create);
    assert_eq!(created.code, 0, "{created:?}");
    assert!(carol.wallet().starts_with('+'));
}

/// Notaries keeping at most one stranger's entry a second (ten at once): a stranger minting as
/// fast as it can soon uses up their share, and they say so in their logs; its mints are paced
/// (each waits for the share to refill: "not now" is not definitive), not refused. That the
/// people a notary follows are not bound is tested on the notary itself
/// (`a_notary_keeps_strangers_entries_within_their_share`).
#[test]
fn notaries_pace_a_strangers_entries_to_their_share() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let (notaries, _running, create) =
        notary_group_with(dir.path(), &[("notary_stranger_entries_per_sec", "1")]);
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let alice = TestHome::init(dir.path(), "alice");
    let _alice_daemon = alice.serve(&[]);
    alice.run(&create).ok();
    let said = || {
        notaries.iter().any(|n| {
            std::fs::read_to_string(n.home.log_path())
                .unwrap_or_default()
                .contains("the strangers' share is used up")
        })
    };
    // Each mint costs a notary two of the share (its vote, and the entry before it learned).
    let mut mints = 0;
    while !said() {
        assert!(mints < 40, "40 mints by a stranger and no notary paced it");
        alice.run(&["mint", "1.00", "EUR"]).ok();
        mints += 1;
    }
    // Paced, not refused: the next mints go through too.
    for _ in 0..2 {
        alice.run(&["mint", "1.00", "EUR"]).ok();
    }
    let balance = alice.json(&["balance"]);
    assert_eq!(
        balance["balances"][0]["amount"],
        format!("{}.00", mints + 2),
        "{balance}"
    );
}

#[test]
fn a_payment_without_a_quorum_stays_visible_and_the_next_command_reports_it() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let (notaries, mut running, create) = notary_group(dir.path());
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let alice = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    let _alice_daemon = alice.serve(&[]);
    let bob_daemon = bob.serve(&[]);
    alice
        .run(&["peer", "add", &bob_daemon.listen(), &bob.identity()])
        .ok();
    alice.run(&create).ok();
    bob.run(&create).ok();
    alice.run(&["mint", "100.00", "EUR"]).ok();
    let bob_wallet = bob.wallet();

    // Two of four notaries die: no quorum. The payment is signed and kept, and the command
    // says so with its own exit status (not "nothing written").
    running[2].take().unwrap().kill();
    running[3].take().unwrap().kill();
    let run = alice.run(&["pay", &bob_wallet, "1.00", "EUR"]);
    assert_eq!(run.code, 3, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("do not repeat this command"), "{line}");
    assert!(line.contains("cannot be reached"), "{line}");
    let json = alice.run(&["--json", "pay", &bob_wallet, "1.00", "EUR"]);
    assert_ne!(json.code, 0);
    // A second payment is not signed while the first is pending.
    assert_eq!(json.code, 1, "{json:?}");
    let error = json.json();
    assert_eq!(error["result"], "error");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("nothing new was signed"),
        "{error}"
    );
    let pending = alice.json(&["pending"]);
    let what = pending["pending"]["what"].as_str().unwrap();
    assert!(what.contains("order 1.00 EUR"), "{pending}");
    assert!(
        alice.run(&["balance"]).ok().stdout.contains("pending:"),
        "the balance shows the pending payment"
    );

    // A notary comes back: the next, unrelated command finishes the payment first and says so.
    running[2] = Some(notaries[2].start());
    let minted = alice.json(&["mint", "1.00", "EUR"]);
    assert_eq!(minted["earlier"]["outcome"], "finished", "{minted}");
    assert!(
        minted["earlier"]["what"]
            .as_str()
            .unwrap()
            .contains("order 1.00 EUR"),
        "{minted}"
    );
    assert!(alice.json(&["pending"])["pending"].is_null());
    // Exactly one order reached the escrow.
    let balance = alice.json(&["balance"]);
    assert_eq!(balance["escrow"][0]["amount"], "1.00", "{balance}");
    assert_eq!(balance["balances"][0]["amount"], "100.00", "{balance}");

    // Every notary refuses connections: said at once, and the entry is kept.
    for daemon in running.iter_mut() {
        if let Some(daemon) = daemon.take() {
            daemon.kill();
        }
    }
    let run = alice.run(&["pay", &bob_wallet, "2.00", "EUR"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.one_line_error().contains("cannot be reached"),
        "{:?}",
        run.stderr
    );
}

/// Copies a home directory as a user would (a backup), without the daemon's socket.
fn copy_home(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    // As `cp -a` would: the copy keeps the home private.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_home(&entry.path(), &target);
        } else if entry.path().extension().is_none_or(|e| e != "sock") {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn feed_head(home: &TestHome, feed: &str) -> u64 {
    home.json(&["feed", feed])["head"].as_u64().unwrap()
}

#[test]
fn a_home_restored_from_an_older_copy_does_not_fork_its_feed() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let alice = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    let alice_listen = free_port();
    let bob_daemon = bob.serve(&[]);
    let alice_id = alice.identity();
    bob.run(&["follow", &alice_id]).ok();
    let serve_alice = || alice.serve(&["--listen", &alice_listen]);
    let mut alice_daemon = serve_alice();
    alice
        .run(&["peer", "add", &bob_daemon.listen(), &bob.identity()])
        .ok();
    bob.run(&["peer", "add", &alice_listen, &alice_id]).ok();
    alice.run(&["post", "one"]).ok();
    // A backup, taken as a user would: the daemon stopped, the directory copied.
    assert_eq!(alice_daemon.stop(), 0);
    let backup = dir.path().join("alice-backup");
    copy_home(&alice.path, &backup);
    alice_daemon = serve_alice();
    alice.run(&["post", "two"]).ok();
    alice.run(&["post", "three"]).ok();
    let head = feed_head(&alice, &alice_id);
    wait_until("bob to hold alice's feed", Duration::from_secs(30), || {
        feed_head(&bob, &alice_id) >= head
    });
    // The home is restored from the backup and its daemon started again.
    assert_eq!(alice_daemon.stop(), 0);
    std::fs::remove_dir_all(&alice.path).unwrap();
    copy_home(&backup, &alice.path);
    assert!(feed_head(&alice, &alice_id) < head);
    // On another port: at start the daemon publishes its new address, the first thing it signs.
    let _alice_daemon = alice.serve(&["--listen", &free_port()]);
    // Its next entry comes after what it had published, never beside it: refused while the
    // daemon fetches its feed back, then signed at the right seq.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = alice.run(&["--json", "post", "after the restore"]);
        if run.code == 0 {
            assert!(run.json()["seq"].as_u64().unwrap() > head, "{run:?}");
            break;
        }
        assert!(
            run.one_line_error().contains("restored from an older copy"),
            "{run:?}"
        );
        assert!(std::time::Instant::now() < deadline, "never caught up");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Nobody holds a fork proof for alice, and bob gets the new post.
    wait_until("bob to get the new post", Duration::from_secs(30), || {
        feed_head(&bob, &alice_id) > head
    });
    assert!(bob.json(&["forks"])["forks"].as_array().unwrap().is_empty());
    assert!(
        alice.json(&["forks"])["forks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// How orders end, through the real binary and daemons: an expiry too short is refused before
/// signing; an order is not refunded before it expires and the payer's daemon refunds it by
/// itself after; a hash-locked order cannot be cancelled and is accepted only with its secret
/// (revealed in the receiver's audit); a cancelled order cannot be accepted afterwards.
#[test]
fn orders_expire_cancel_and_unlock_as_documented() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    // One machine, one clock: a margin of 1 s keeps the test short.
    let (_notaries, running, create) = notary_group_with(dir.path(), &[("clock_skew", "1")]);
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let alice = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    for home in [&alice, &bob] {
        home.set_config("clock_skew", "1");
    }
    let alice_daemon = alice.serve(&[]);
    let bob_daemon = bob.serve(&[]);
    befriend([(&alice, &alice_daemon), (&bob, &bob_daemon)], &[], &create);
    let bob_wallet = bob.wallet();
    alice.run(&["mint", "100.00", "EUR"]).ok();
    let order_of = |run: common::Run| run.ok().json()["id"].as_str().unwrap().to_owned();

    // An expiry within twice the margin: nothing signed.
    let short = alice.run(&["pay", &bob_wallet, "1.00", "EUR", "--expires", "2s"]);
    assert_eq!(short.code, 1, "{short:?}");
    assert!(short.one_line_error().contains("could never be accepted"));
    let typo = alice.run(&["pay", &bob_wallet, "1.00", "EUR", "--expires", "soon"]);
    assert!(typo.one_line_error().contains("not a duration"), "{typo:?}");

    // Expires in 5 s: not refundable before; the payer's daemon refunds it after.
    let expiring = order_of(alice.run(&[
        "--json",
        "pay",
        &bob_wallet,
        "2.00",
        "EUR",
        "--expires",
        "5s",
    ]));
    let early = alice.run(&["reclaim", &expiring]);
    assert!(
        early.one_line_error().contains("has not expired"),
        "{early:?}"
    );
    let status = |home: &TestHome, id: &str| -> String {
        home.json(&["orders"])["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .map(|o| o["status"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    wait_until(
        "alice's daemon to refund the expired order",
        Duration::from_secs(60),
        || status(&alice, &expiring) == "refunded",
    );
    // ... and says so in its log, as plain text (not a terminal: no colour codes).
    let log = std::fs::read_to_string(alice.log_path()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("auto-refund: refunded (expired)"))
        .unwrap_or_else(|| panic!("no auto-refund line in:\n{log}"));
    assert!(line.contains(&expiring), "{line}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
    wait_until("bob to see the order", Duration::from_secs(30), || {
        !status(&bob, &expiring).is_empty()
    });
    let late = bob.run(&["accept", &expiring]);
    assert_ne!(late.code, 0, "{late:?}");

    // A hash-locked order: no cancel; accepted only with the secret.
    let lock = bob.json(&["hashlock"]);
    let (secret, lock) = (
        lock["preimage"].as_str().unwrap().to_owned(),
        lock["lock"].as_str().unwrap().to_owned(),
    );
    let locked = order_of(alice.run(&[
        "--json",
        "pay",
        &bob_wallet,
        "3.00",
        "EUR",
        "--condition",
        &lock,
    ]));
    let cancel = alice.run(&["cancel", &locked]);
    assert!(
        cancel.one_line_error().contains("hash-locked"),
        "{cancel:?}"
    );
    wait_until(
        "bob to receive the locked order",
        Duration::from_secs(30),
        || status(&bob, &locked) == "pending",
    );
    let without = bob.run(&["accept", &locked]);
    assert!(
        without.one_line_error().contains("--preimage"),
        "{without:?}"
    );
    let wrong = bob.run(&["accept", &locked, "--preimage", &"00".repeat(32)]);
    assert!(
        wrong.one_line_error().contains("does not open"),
        "{wrong:?}"
    );
    bob.run(&["accept", &locked, "--preimage", &secret]).ok();
    let audit = bob.json(&["audit", &bob.wallet()]);
    let steps = audit["report"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["preimage"] == secret.as_str()),
        "the accept reveals the secret: {audit}"
    );

    // A cancelled order cannot be accepted afterwards (paid by name: bob is a contact).
    alice.run(&["contact", "add", "bob", &bob_wallet]).ok();
    let paid = alice
        .run(&["--json", "pay", "Bob", "4.00", "EUR"])
        .ok()
        .json();
    assert!(
        paid["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("to bob ({bob_wallet})")),
        "the payment names its receiver as the contact: {paid}"
    );
    let cancelled = paid["id"].as_str().unwrap().to_owned();
    let named = alice.json(&["orders", "--outgoing"]);
    assert!(
        named["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == cancelled.as_str() && o["to_name"] == "bob"),
        "{named}"
    );
    let unknown = alice.run(&["pay", "robert", "1.00", "EUR"]);
    assert!(
        unknown.one_line_error().contains("nor a contact"),
        "{unknown:?}"
    );
    wait_until("bob to receive the order", Duration::from_secs(30), || {
        status(&bob, &cancelled) == "pending"
    });
    alice.run(&["cancel", &cancelled]).ok();
    let refused = bob.run(&["accept", &cancelled]);
    assert!(refused.one_line_error().contains("voided"), "{refused:?}");

    // Orders carry the time they were signed and are listed oldest first.
    let listed = alice.json(&["orders", "--outgoing"]);
    let times: Vec<u64> = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["time"].as_u64().unwrap())
        .collect();
    assert!(times.is_sorted(), "{listed}");
    let now = scrip_feed::Timestamp::now().as_millis();
    assert!(
        times.iter().all(|t| now.abs_diff(*t) < 300_000),
        "real times: {times:?} vs {now}"
    );

    // 100 minted; 2.00 refunded, 3.00 accepted, 4.00 cancelled.
    assert_eq!(balance(&alice), "97.00 EUR");
    wait_until("bob's balance", Duration::from_secs(30), || {
        balance(&bob) == "3.00 EUR"
    });
    for wallet in [alice.wallet(), bob.wallet()] {
        let report = bob.json(&["audit", &wallet]);
        assert_eq!(report["report"]["verdict"]["verdict"], "sound", "{report}");
    }
    drop((alice_daemon, bob_daemon, running));
}

/// A lost device: alice's home is gone, she has only `scrip backup`'s file. Restored into a new
/// home and served, her wallet comes back from her peers and her next entry is signed on the
/// certified head (not on an empty log). Her identity's feed is not signed on until a peer that
/// replicates it has answered: while bob (the one who follows her) is away, a post is refused
/// (her notaries do not replicate that feed: signing would fork it); once bob is back, her node
/// finds him among her peers (the dial slots rotate while it seeks), her feed comes back, she
/// posts on after it and pays him, and no fork is seen anywhere.
#[test]
fn a_home_restored_from_a_backup_gets_its_wallet_back_and_pays_on() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let TwoPeople {
        running,
        alice,
        alice_daemon,
        bob,
        bob_daemon,
        ..
    } = two_people(dir.path());
    let (alice_wallet, bob_wallet) = (alice.wallet(), bob.wallet());
    alice.run(&["mint", "100.00", "EUR"]).ok();
    alice.run(&["pay", &bob_wallet, "10.00", "EUR"]).ok();
    alice.run(&["post", "before the loss"]).ok();
    let backup = dir.path().join("alice.backup");
    alice.run(&["backup", backup.to_str().unwrap()]).ok();
    let alice_id = alice.identity();
    let feed_head = |home: &TestHome| {
        home.json(&["feed", &alice_id])["head"]
            .as_u64()
            .unwrap_or(0)
    };
    let old_head = feed_head(&alice);
    // Bob holds alice's whole wallet and feed before the device is lost.
    wait_until(
        "bob to hold alice's wallet and feed",
        Duration::from_secs(30),
        || {
            bob.json(&["audit", &alice_wallet])["report"]["entries"] == 3
                && feed_head(&bob) == old_head
        },
    );
    assert_eq!(alice_daemon.stop(), 0);
    std::fs::rename(&alice.path, dir.path().join("alice-lost")).unwrap();
    // Bob is away when she restores.
    assert_eq!(bob_daemon.stop(), 0);

    let restored = TestHome {
        path: dir.path().join("alice-new"),
    };
    restored.run(&["restore", backup.to_str().unwrap()]).ok();
    assert_eq!(restored.wallet(), alice_wallet);
    let _restored_daemon = restored.serve(&[]);
    wait_until(
        "the restored home to get its wallet back",
        Duration::from_secs(60),
        || balance(&restored) == "90.00 EUR",
    );
    // Only her notaries answer, and they do not replicate her identity's feed.
    let refused = restored.run(&["post", "too early"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.one_line_error().contains("restored from a backup"),
        "{refused:?}"
    );
    assert_eq!(feed_head(&restored), 0, "nothing signed on her feed");

    // Bob is back, at a new address she is told of.
    let bob_daemon = bob.serve(&[]);
    restored
        .run(&["peer", "add", &bob_daemon.listen(), &bob.identity()])
        .ok();
    wait_until(
        "the restored home to get its feed back and post on",
        Duration::from_secs(60),
        || restored.run(&["post", "back again"]).code == 0,
    );
    let feed = restored.json(&["feed", &alice_id]);
    let posted = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"] == "back again")
        .unwrap_or_else(|| panic!("{feed}"));
    assert!(
        posted["seq"].as_u64().unwrap() > old_head,
        "signed after the feed's old head #{old_head}: {feed}"
    );
    // Her next wallet entry takes the next slot after the certified head (learned from a
    // quorum of her notaries), not slot 2 of an empty log: a payment to bob, whose wallet came
    // back with her follows.
    let paid = restored.json(&["pay", &bob_wallet, "1.00", "EUR"]);
    assert_eq!(
        paid["seq"], 4,
        "the next slot after the certified head: {paid}"
    );
    wait_until("bob to see the new entry", Duration::from_secs(30), || {
        bob.json(&["audit", &alice_wallet])["report"]["entries"] == 4
    });
    let report = bob.json(&["audit", &alice_wallet]);
    assert_eq!(report["report"]["verdict"]["verdict"], "sound", "{report}");
    wait_until("bob to hold her new post", Duration::from_secs(30), || {
        feed_head(&bob) >= posted["seq"].as_u64().unwrap()
    });
    for home in [&bob, &restored] {
        let forks = home.json(&["forks"]);
        assert_eq!(forks["forks"], serde_json::json!([]), "{forks}");
    }
    drop((bob_daemon, running));
}
