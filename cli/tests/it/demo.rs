//! The README's main job: `scrip demo` runs a whole network and its summary is right.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;

use common::scrip_bin;

fn demo(args: &[&str]) -> common::Run {
    let out = Command::new(scrip_bin())
        .arg("demo")
        .args(args)
        .env_remove("SCRIP_HOME")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_demo_prints_a_summary_whose_checks_all_pass() {
    let _turn = common::whole_network();
    let run = demo(&[]).ok();
    let out = &run.stdout;
    // The story: money moves, each attempt to cheat is refused with its reason.
    for needle in [
        "started 4 notaries (n = 4, f = 1, quorum 3)",
        "alice: minted 1000.00 EUR (certified by 3 notaries)",
        // Wallets named as their owners published them (followed people's nicknames).
        "sent: 250.00 EUR to ~bob (+",
        "bob: accepted 250.00 EUR from ~alice (+",
        "carol: rejected 100.00 EUR from ~alice (+",
        "alice: reclaimed 100.00 EUR (rejected by ~carol (+",
        // Orders that end without their receiver: a cancel (and the receiver's accept of it
        // refused), an expired order refunded by the payer's daemon by itself.
        "alice: cancelled: order %",
        "20.00 EUR back from escrow",
        "carol accepts the cancelled order: refused:",
        "the payer has taken this order back",
        "voided for its sender",
        "alice's daemon refunded the expired order by itself: 30.00 EUR",
        "overspend (carol pays 10000.00 EUR): refused:",
        "overspend: balance 5000, order 1000000",
        "double accept (bob accepts alice's order again): refused:",
        "is already resolved",
        "equivocation (mallory signs two entries for one slot): entry A got 2 votes, entry B got 2",
        "slot #2 stays locked",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The summary: every audit sound, the balances, the supply, conservation.
    let summary: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("observer:"))
        .collect();
    let expected = [
        "observer: replicated every wallet with its certificates; auditing each one",
        "  alice    9 entries, sound",
        "  bob      3 entries, sound",
        "  carol    3 entries, sound",
        "  mallory  1 entry, sound",
        "balances:",
    ];
    assert_eq!(&summary[..expected.len()], &expected, "in:\n{out}");
    // Currencies in the short form for people: CODE@ and 8 characters of the issuer.
    let eur = |line: &str, start: &str| {
        line.strip_prefix(start)
            .and_then(|rest| rest.strip_prefix("EUR@"))
            .is_some_and(|issuer| issuer.len() == 8)
    };
    assert!(eur(summary[expected.len()], "  alice    750.00 "), "{out}");
    assert!(
        eur(summary[expected.len() + 1], "  bob      200.00 "),
        "{out}"
    );
    assert!(
        eur(summary[expected.len() + 2], "  carol    50.00 "),
        "{out}"
    );
    assert_eq!(summary[expected.len() + 3], "supply:");
    let supply = expected.len() + 4;
    assert!(
        summary[supply].starts_with("  EUR@")
            && summary[supply].ends_with("minted 1000.00, in balances 1000.00, in escrow 0.00"),
        "{out}"
    );
    assert_eq!(
        summary[supply + 1],
        "conservation: for every currency, balances + escrow = minted  OK"
    );
    assert_eq!(summary.last(), Some(&"all checks passed"));
    // Piped: no progress bar, no log lines.
    assert_eq!(run.stderr, "", "stderr should be empty when piped");
}

#[test]
fn the_demo_keeps_real_homes_in_dir_and_reports_json() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let run = demo(&["--json", "--dir", dir.path().to_str().unwrap()]).ok();
    let report = run.json();
    assert_eq!(report["passed"], true);
    assert_eq!(report["conservation"], true);
    // The full notation for machines: CODE@ISSUER, the issuer's whole id.
    let issuer = report["supply"][0]["currency"].as_str().unwrap().to_owned();
    assert!(issuer.starts_with("EUR@") && issuer.len() > 40, "{issuer}");
    assert_eq!(report["balances"]["alice"][0], format!("750.00 {issuer}"));
    assert_eq!(report["balances"]["bob"][0], format!("200.00 {issuer}"));
    assert_eq!(report["balances"]["carol"][0], format!("50.00 {issuer}"));
    assert_eq!(report["supply"][0]["minted"], "1000.00");
    assert_eq!(report["supply"][0]["in_escrow"], "0.00");
    let audits = report["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 4);
    assert!(audits.iter().all(|a| a["sound"] == true));
    for end in ["cancelled", "refunded"] {
        assert!(
            report["ends"][end].as_str().is_some_and(|r| !r.is_empty()),
            "no {end} order: {report}"
        );
    }
    for attempt in [
        "overspend",
        "double_accept",
        "equivocation",
        "accept_after_cancel",
    ] {
        assert!(
            report["refused"][attempt]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{attempt} has no reason: {report}"
        );
    }
    // Every peer was a real node with its own home: keys, config and a sled store. The homes
    // are ordinary scrip homes, so the commands can read them afterwards.
    for name in [
        "notary-1", "notary-2", "notary-3", "notary-4", "alice", "bob", "carol", "mallory",
        "observer",
    ] {
        let home = dir.path().join(name);
        assert!(home.join("identity.key").is_file(), "{name}");
        assert!(home.join("config.toml").is_file(), "{name}");
        assert!(home.join("store").is_dir(), "{name}");
    }
    let alice = common::TestHome {
        path: dir.path().join("alice"),
    };
    let balance = alice.json(&["balance"]);
    assert_eq!(balance["balances"][0]["amount"], "750.00", "{balance}");
    // How each of alice's orders ended, with carol's reason for the one she rejected.
    let orders = alice.json(&["orders", "--outgoing"]);
    let ends: Vec<(&str, &str)> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["status"].as_str().unwrap(), o["note"].as_str().unwrap()))
        .collect();
    for end in ["accepted", "reclaimed", "cancelled", "refunded"] {
        assert!(
            ends.iter().any(|(s, _)| *s == end),
            "no {end} order: {orders}"
        );
    }
    assert!(
        ends.contains(&("reclaimed", "rejected: wrong amount")),
        "the payer sees the reason: {orders}"
    );
    let bob_wallet = report["wallets"]["bob"].as_str().unwrap();
    let observer = common::TestHome {
        path: dir.path().join("observer"),
    };
    let audit = observer.run(&["audit", bob_wallet]).ok();
    assert!(
        audit.stdout.contains("SOUND: every entry verified"),
        "{}",
        audit.stdout
    );
}

/// `scrip demo | head -1`: the reader goes away after one line; the demo ends quietly (no panic,
/// no backtrace) instead of failing to print.
#[test]
fn a_closed_stdout_ends_the_demo_quietly() {
    let _turn = common::whole_network();
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(scrip_bin())
        .arg("demo")
        .env_remove("SCRIP_HOME")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("scrip demo in "), "{first:?}");
    // The reader is dropped here: every later line meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
