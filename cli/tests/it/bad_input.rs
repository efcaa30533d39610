//! Bad input, each its own test, through the real binary: one clear line on stderr, a non-zero
//! exit, and nothing written.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{TestHome, notaries};

/// What a home holds, as its commands report it (feeds, wallet, orders).
fn logical_state(home: &TestHome) -> String {
    let mut state = home.json(&["feed"]).to_string();
    if home.json(&["id"])["wallet"].is_string() {
        state += &home.json(&["balance"]).to_string();
        state += &home.json(&["orders"]).to_string();
    }
    state
}

/// Runs `args`, expecting the refusal to mention `needle`, and nothing written.
fn refused(home: &TestHome, args: &[&str], needle: &str) {
    let before = logical_state(home);
    let run = home.run(args);
    let line = run.one_line_error();
    assert!(
        line.contains(needle),
        "{args:?}: expected {needle:?} in {line:?}"
    );
    assert_eq!(logical_state(home), before, "{args:?} wrote something");
    assert_eq!(
        scrip_notary::PendingFile::new(home.path.join("wallet.pending"))
            .load()
            .unwrap(),
        None,
        "{args:?} left a pending proposal"
    );
}

/// A home with a wallet (one notary) holding 100.00 EUR it issued.
fn funded(dir: &std::path::Path) -> (TestHome, Vec<(TestHome, common::Daemon)>) {
    let (notaries, args) = notaries(dir, 1);
    let home = TestHome::init(dir, "alice");
    let mut create = vec!["wallet", "create"];
    create.extend(args.iter().map(String::as_str));
    home.run(&create).ok();
    home.run(&["mint", "100.00", "EUR"]).ok();
    (home, notaries)
}

#[test]
fn malformed_feed_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    for bad in [
        "@xyz",
        "abc",
        "@",
        "",
        "%5tGk",
        "@0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OI",
    ] {
        refused(&home, &["follow", bad], "is not a feed id");
        refused(&home, &["block", bad], "is not a feed id");
        refused(&home, &["unblock", bad], "is not a feed id");
        refused(&home, &["feed", bad], "is not a feed id");
        refused(
            &home,
            &["peer", "add", "127.0.0.1:7411", bad],
            "is not a feed id",
        );
        refused(&home, &["audit", bad], "is not a feed id");
    }
}

#[test]
fn a_negative_amount_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(&home, &["pay", &bob, "-5", "EUR"], "cannot be negative");
    refused(&home, &["mint", "-5", "EUR"], "cannot be negative");
}

#[test]
fn a_zero_amount_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(&home, &["pay", &bob, "0", "EUR"], "more than zero");
    refused(&home, &["pay", &bob, "0.00", "EUR"], "more than zero");
}

#[test]
fn an_exponent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(&home, &["pay", &bob, "1e3", "EUR"], "is not an amount");
}

#[test]
fn more_decimals_than_the_currency_has_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(&home, &["pay", &bob, "12.345", "EUR"], "2 decimal places");
}

#[test]
fn an_amount_that_overflows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(
        &home,
        &["pay", &bob, "99999999999999999999", "EUR"],
        "too large",
    );
    refused(
        &home,
        &["mint", "184467440737095516.16", "EUR"],
        "too large",
    );
}

#[test]
fn an_unknown_currency_or_more_than_is_held_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let bob = TestHome::init(dir.path(), "bob").identity();
    refused(&home, &["pay", &bob, "1.00", "USD"], "unknown currency USD");
    refused(
        &home,
        &["pay", &bob, "100.01", "EUR"],
        "you hold 100.00 EUR: not enough to pay 100.01",
    );
    refused(&home, &["pay", &bob, "1.00", "eur!"], "is not a currency");
}

#[test]
fn paying_yourself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    let wallet = home.wallet();
    let identity = home.identity();
    refused(
        &home,
        &["pay", &wallet, "1.00", "EUR"],
        "cannot pay yourself",
    );
    refused(
        &home,
        &["pay", &identity, "1.00", "EUR"],
        "cannot pay yourself",
    );
}

#[test]
fn an_unreachable_peer_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    // A port nobody listens on: bind, note it, close.
    let port = common::fixed_port();
    refused(&home, &["sync", &port, "--timeout", "5"], "cannot reach");
}

#[test]
fn a_peer_with_the_wrong_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    let carol = TestHome::init(dir.path(), "carol").identity();
    let daemon = bob.serve(&[]);
    refused(
        &home,
        &["sync", &daemon.listen(), &carol, "--timeout", "5"],
        "answered",
    );
}

#[test]
fn a_corrupt_store_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    home.run(&["post", "hello"]).ok();
    let db = home.path.join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    for i in (64..bytes.len()).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    // sled's own recovery rewrites its files when it opens them (it truncates a damaged log):
    // that is outside our control, so "nothing written" is checked on everything else.
    let outside_store = |home: &TestHome| {
        let store = home.path.join("store");
        home.snapshot()
            .into_iter()
            .filter(|(path, _, _)| !path.starts_with(&store))
            .collect::<Vec<_>>()
    };
    let before = outside_store(&home);
    for args in [&["id"][..], &["post", "again"], &["feed"]] {
        let run = home.run(args);
        let line = run.one_line_error();
        assert!(line.contains("corrupt"), "{line}");
    }
    assert!(
        outside_store(&home) == before,
        "a command wrote to a corrupt home"
    );
}

#[test]
fn a_world_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let key = home.path.join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = home.snapshot();
    for args in [&["id"][..], &["post", "hello"], &["serve"]] {
        let run = home.run(args);
        let line = run.one_line_error();
        assert!(line.contains("readable by other users"), "{line}");
    }
    assert!(home.snapshot() == before, "a command wrote something");
}

#[test]
fn two_daemons_on_one_home_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let first = home.serve(&[]);
    let run = home.run(&["serve", "--listen", "127.0.0.1:0"]);
    let line = run.one_line_error();
    assert!(line.contains("already running"), "{line}");
    // The first one still serves.
    home.run(&["post", "still here"]).ok();
    assert_eq!(first.stop(), 0);
}

#[test]
fn a_second_init_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let before = home.snapshot();
    let run = home.run(&["init"]);
    assert!(run.one_line_error().contains("already a scrip home"));
    assert!(home.snapshot() == before, "a second init wrote something");
}

#[test]
fn commands_on_a_missing_home_say_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome {
        path: dir.path().join("nothing"),
    };
    let run = home.run(&["id"]);
    assert!(run.one_line_error().contains("scrip init"));
    assert!(!home.path.exists());
}

/// `scrip history` is `scrip orders` (what a first-time user looking for their payments types).
#[test]
fn history_is_the_orders_command() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let orders = home.run(&["--json", "orders"]);
    let history = home.run(&["--json", "history"]);
    assert_eq!(history.code, orders.code);
    assert_eq!(history.stdout, orders.stdout);
    assert!(
        history.stdout.contains("wallet"),
        "no wallet yet, said the same way: {history:?}"
    );
}

/// `address` with one character changed.
fn mistype(address: &str) -> String {
    let mut chars: Vec<char> = address.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}

#[test]
fn payments_to_a_wrong_receiver_are_refused_before_anything_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _notaries) = funded(dir.path());
    // Bob has a wallet in another, disjoint notary group; his daemon serves his feeds.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (_others, other_args) = notaries(&elsewhere, 1);
    let bob = TestHome::init(dir.path(), "bob");
    let mut create = vec!["wallet", "create"];
    create.extend(other_args.iter().map(String::as_str));
    bob.run(&create).ok();
    let bob_daemon = bob.serve(&[]);
    let (bob_identity, bob_wallet) = (bob.identity(), bob.wallet());
    assert!(bob_wallet.starts_with('+'), "{bob_wallet}");
    home.run(&["peer", "add", &bob_daemon.listen(), &bob_identity])
        .ok();

    refused(
        &home,
        &["pay", &mistype(&bob_wallet), "1.00", "EUR"],
        "checksum does not match",
    );
    refused(
        &home,
        &["pay", "bob", "1.00", "EUR"],
        "a wallet address starts with '+'",
    );
    // His identity (fetched from his daemon) names his wallet.
    refused(
        &home,
        &["pay", &bob_identity, "1.00", "EUR"],
        &format!("is a person's identity, not a wallet: their wallet is {bob_wallet}"),
    );
    // His wallet (fetched too) is in a group that shares no notary with ours.
    refused(
        &home,
        &["pay", &bob_wallet, "1.00", "EUR"],
        "cannot safely be paid from this wallet",
    );
    // A well-formed address of a wallet nobody here has.
    let stranger = scrip_ledger::WalletAddress::of(scrip_feed::Keypair::from_seed(&[77; 32]).id());
    refused(
        &home,
        &["pay", &stranger.to_string(), "1.00", "EUR"],
        "is not known here",
    );
}

#[test]
fn a_wallet_is_created_only_with_notaries_that_answer_as_notaries() {
    let dir = tempfile::tempdir().unwrap();
    let (notaries, args) = notaries(dir.path(), 4);
    let home = TestHome::init(dir.path(), "alice");
    let create = |args: &[String], extra: &[&str]| {
        let mut all = vec!["wallet", "create"];
        all.extend(args.iter().map(String::as_str));
        all.extend_from_slice(extra);
        home.run(&all)
    };
    // One wrong port: refused, naming it; nothing written.
    let nobody = common::fixed_port();
    let mut wrong_port = args.clone();
    let (id, _) = wrong_port[7].split_once("@127").unwrap();
    wrong_port[7] = format!("{id}@{nobody}");
    let before = logical_state(&home);
    let line = create(&wrong_port, &[]).one_line_error().to_owned();
    assert!(
        line.contains("1 of the named notaries do not answer"),
        "{line}"
    );
    assert!(line.contains(&nobody), "{line}");
    // A replication address instead of a notary address: refused too.
    let mut not_a_notary = args.clone();
    let (id, _) = not_a_notary[7].split_once("@127").unwrap();
    not_a_notary[7] = format!("{id}@{}", notaries[3].1.listen());
    let line = create(&not_a_notary, &[]).one_line_error().to_owned();
    assert!(line.contains("do not answer"), "{line}");
    assert_eq!(
        logical_state(&home),
        before,
        "a refused create published something"
    );
    for file in ["wallet.key", "wallet.toml", "wallet.pending"] {
        assert!(
            !home.path.join(file).exists(),
            "a refused create wrote {file}"
        );
    }
    // Told to, it creates the wallet with the three that answer (a quorum).
    let created = create(&wrong_port, &["--allow-unreachable"]).ok();
    assert!(created.stdout.contains("created"), "{}", created.stdout);
}

#[test]
fn an_unfinished_wallet_can_be_abandoned_and_a_created_one_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (_notaries, args) = notaries(dir.path(), 1);
    let home = TestHome::init(dir.path(), "alice");
    // What a `wallet create` killed before it reached any notary leaves: a key and notaries.
    let key = scrip_feed::Keypair::generate().unwrap();
    scrip_feed::keyfile::write(&home.path.join("wallet.key"), &key).unwrap();
    let (id, address) = args[1].split_once("@127").unwrap();
    std::fs::write(
        home.path.join("wallet.toml"),
        format!("[[notary]]\nid = \"{id}\"\naddress = \"127{address}\"\n"),
    )
    .unwrap();
    let abandoned = home.run(&["wallet", "abandon"]).ok();
    assert!(
        abandoned.stdout.contains("abandoned wallet"),
        "{}",
        abandoned.stdout
    );
    assert!(home.json(&["id"])["wallet"].is_null());
    assert!(
        std::fs::read_dir(&home.path).unwrap().flatten().any(|f| f
            .file_name()
            .to_string_lossy()
            .starts_with("wallet.key.abandoned-")),
        "the key is kept"
    );
    // A new wallet can be created, and then it cannot be abandoned.
    let mut create = vec!["wallet", "create"];
    create.extend(args.iter().map(String::as_str));
    home.run(&create).ok();
    refused(&home, &["wallet", "abandon"], "cannot be abandoned");
}

#[test]
fn a_usage_error_has_its_own_status_and_json_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let run = home.run(&["pay"]);
    assert_eq!(run.code, 64, "{run:?}");
    assert_eq!(home.run(&["--help"]).code, 0);
    let run = home.run(&["--json", "follow", "@xyz"]);
    assert_eq!(run.code, 1);
    let error = run.json();
    assert_eq!(error["result"], "error");
    assert_eq!(error["exit"], 1);
    assert!(
        error["error"].as_str().unwrap().contains("not a feed id"),
        "{error}"
    );
}

#[test]
fn a_paused_daemon_is_named_by_its_pid_within_the_command_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    home.set_config("command_timeout", "5");
    let daemon = home.serve(&[]);
    let pid = daemon.pid();
    let signal = |which: &str| {
        std::process::Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let run = home.run(&["id"]);
    signal("-CONT");
    assert_eq!(run.code, 4, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains(&format!("pid {pid}")), "{line}");
    assert!(line.contains("did not answer within 5s"), "{line}");
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_home_made_under_umask_000_stays_private_and_an_opened_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice");
    // `scrip init` under umask 000 (run through a shell to set it).
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && {} --home {} init",
            common::scrip_bin(),
            path.display()
        ))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("config.toml")), 0o600);
    assert_eq!(mode(&path.join("store")), 0o700);
    let home = TestHome { path };
    home.run(&["peer", "add", "127.0.0.1:9"]).ok();
    assert_eq!(mode(&home.path.join("peers.toml")), 0o600);
    // Opened to others later: refused, saying how to fix it.
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [&["id"][..], &["post", "hello"], &["serve"]] {
        let run = home.run(args);
        assert!(
            run.one_line_error().contains("chmod 700"),
            "{args:?}: {run:?}"
        );
    }
}

/// A read-only bind mount of a directory onto itself, undone when dropped.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    /// `None` where this process may not mount (the test then says it was skipped).
    fn mount(path: &std::path::Path) -> Option<ReadOnly> {
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let at = path.to_str().unwrap();
        if !run(&["--bind", at, at]) {
            return None;
        }
        let guard = ReadOnly(path.to_path_buf());
        run(&["-o", "remount,bind,ro", at]).then_some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A home on read-only media (here a read-only bind mount, which even root cannot write) can
/// still be inspected: `id` from its keys, `feed` and the other reading commands from a
/// temporary copy of its store; a writing command fails with one readable line; nothing in the
/// home changes.
#[test]
fn a_read_only_home_can_still_be_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    home.run(&["post", "written before the home became read-only"])
        .ok();
    let identity = home.identity();
    let before = home.snapshot();
    let Some(read_only) = ReadOnly::mount(&home.path) else {
        eprintln!("no permission to mount here: the read-only home test was skipped");
        return;
    };
    assert_eq!(home.identity(), identity);
    let feed = home.run(&["feed"]).ok();
    assert!(
        feed.stdout
            .contains("written before the home became read-only"),
        "{}",
        feed.stdout
    );
    assert!(feed.stderr.contains("temporary copy"), "{}", feed.stderr);
    home.run(&["peer", "list"]).ok();
    home.run(&["forks"]).ok();
    let line = home.run(&["post", "more"]).one_line_error().to_owned();
    assert!(
        line.contains("read-only") || line.contains("Read-only"),
        "{line}"
    );
    drop(read_only);
    assert_eq!(home.snapshot(), before, "the read-only home changed");
}
