//! Invites (`docs/protocol/invite.md`): five people become each other's notaries with three
//! commands each (`init`, `invite --group 5` or `join CODE`, `serve --notary`), then pay each
//! other; a mistyped code and one's own code are refused.

use std::time::Duration;

use crate::common::{self, Daemon, TestHome, wait_until};

#[test]
fn five_people_become_each_others_notaries_with_three_commands_each_and_pay() {
    let _turn = common::whole_network();
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave", "erin"];
    // Command 1: a home, with addresses the others can dial.
    let homes: Vec<TestHome> = names
        .iter()
        .map(|name| {
            TestHome::init_with(
                dir.path(),
                name,
                &[
                    "--listen",
                    &common::fixed_port(),
                    "--notary-listen",
                    &common::fixed_port(),
                    "--web-listen",
                    "off",
                ],
            )
        })
        .collect();
    // Command 2: alice invites four people into a group of five; each joins with their code.
    let invited = homes[0].run(&["invite", "--group", "5"]).ok();
    let codes: Vec<&str> = invited.stdout.lines().collect();
    assert_eq!(codes.len(), 4, "{}", invited.stdout);
    // A code mistyped, and one's own code, are refused before anything is written.
    let mut typo: Vec<char> = codes[0].chars().collect();
    let at = typo.len() / 2;
    typo[at] = if typo[at] == 'x' { 'y' } else { 'x' };
    let typo: String = typo.into_iter().collect();
    let refused = homes[1].run(&["join", &typo]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("mistyped"), "{}", refused.stderr);
    let own = homes[0].run(&["join", codes[0]]);
    assert_ne!(own.code, 0);
    assert!(own.stderr.contains("your own invite"), "{}", own.stderr);
    for (home, code) in homes[1..].iter().zip(&codes) {
        let joined = home.run(&["join", code]).ok();
        assert!(
            joined.stdout.contains("signed the join"),
            "{}",
            joined.stdout
        );
    }
    // `scrip id` says where a join stands while the group forms.
    let waiting = homes[1].json(&["id"]);
    assert!(
        waiting["joining"]
            .as_str()
            .is_some_and(|j| j.contains("group of 5") && j.contains("when everyone has joined")),
        "{waiting}"
    );
    // Command 3: everyone serves, as a notary.
    let daemons: Vec<Daemon> = homes.iter().map(|h| h.serve(&["--notary"])).collect();

    // Every member's wallet is created, certified by the five of them.
    let identities: Vec<String> = daemons.iter().map(Daemon::identity).collect();
    for home in &homes {
        wait_until("every member's wallet", Duration::from_secs(60), || {
            home.json(&["id"])["wallet"].is_string() && home.run(&["wallet", "notaries"]).code == 0
        });
        let status = home.json(&["wallet", "notaries"]);
        let mut ids: Vec<String> = status["notaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut expected = identities.clone();
        expected.sort();
        assert_eq!(ids, expected, "{status}");
        // Nothing left to say about the join once the wallet exists.
        let id = home.json(&["id"]);
        assert!(id.get("joining").is_none(), "{id}");
    }
    let again = homes[0].run(&["invite", "--group", "5"]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("formed a group of 5 already"),
        "{}",
        again.stderr
    );
    let list = homes[0].json(&["invite", "--list"]);
    assert_eq!(list["group"]["published"], true, "{list}");
    assert!(
        list["invites"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["joined"].is_string()),
        "{list}"
    );

    // They pay each other: alice mints, pays erin (a joiner she never typed an address for but
    // learns from the group), erin accepts.
    homes[0].run(&["mint", "100.00", "EUR"]).ok();
    let erin_wallet = homes[4].wallet();
    wait_until("erin's wallet at alice's", Duration::from_secs(30), || {
        homes[0].run(&["pay", &erin_wallet, "12.50", "EUR"]).code == 0
    });
    let order = std::cell::RefCell::new(String::new());
    wait_until("the order at erin's", Duration::from_secs(30), || {
        let orders = homes[4].json(&["orders", "--incoming"]);
        match orders["orders"].as_array().and_then(|o| o.first()) {
            Some(first) => {
                *order.borrow_mut() = first["id"].as_str().unwrap().to_owned();
                true
            }
            None => false,
        }
    });
    homes[4].run(&["accept", &order.borrow()]).ok();
    let balance = homes[4].json(&["balance"]);
    assert!(balance.to_string().contains("12.50"), "{balance}");

    // Someone outside the group: a plain invite, and frank's wallet gets the group's notaries.
    let frank = TestHome::init_with(
        dir.path(),
        "frank",
        &["--listen", &common::fixed_port(), "--web-listen", "off"],
    );
    let code = homes[0].run(&["invite"]).ok().stdout;
    frank.run(&["join", code.trim()]).ok();
    let frank_daemon = frank.serve(&[]);
    wait_until("frank's wallet", Duration::from_secs(60), || {
        frank.json(&["id"])["wallet"].is_string() && frank.run(&["wallet", "notaries"]).code == 0
    });
    assert_eq!(
        frank.json(&["wallet", "notaries"])["notaries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Alice's daemon followed frank back when his join arrived.
    wait_until("alice follows frank", Duration::from_secs(30), || {
        homes[0].json(&["invite", "--list"])["invites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| !i["group"].as_bool().unwrap() && i["joined"] == frank_daemon.identity())
    });
    drop(daemons);
}
