//! The web wallet in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against 4 notary daemons and two wallet daemons. Alice pays bob by name through
//! her page; bob's page shows the payment arrive without a reload; bob accepts on his page; both
//! balances and histories update; a mistyped address and an overspend show their errors.
//! Screenshots of each step are kept in `target/browser-screenshots/` (test artifacts).
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver` packages,
//! which `.ci/run` installs); `SCRIP_CHROMIUM` and `SCRIP_CHROMEDRIVER` name other binaries.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{TwoPeople, balance, free_port, two_people};
use crate::common::{self, wait_until};

/// A chromedriver process, killed on drop with the browsers it started.
struct Driver {
    child: Child,
    url: String,
    /// The browsers' profile directories (unique temporary paths, named on their command lines).
    profiles: std::cell::RefCell<Vec<PathBuf>>,
}

impl Drop for Driver {
    /// Kills chromedriver and every browser started for this test (found by its unique profile
    /// directory), even when the test failed before closing its sessions.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in self.profiles.borrow().iter() {
            let _ = Command::new("pkill")
                .arg("-KILL")
                .arg("-f")
                .arg("--")
                .arg(format!("--user-data-dir={}", profile.display()))
                .status();
        }
    }
}

fn binary(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// Starts chromedriver on a free port and waits until it answers.
fn start_driver() -> Driver {
    let program = binary("SCRIP_CHROMEDRIVER", "/usr/bin/chromedriver");
    let address = free_port();
    let port = address.rsplit(':').next().unwrap().to_owned();
    let child = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{program} did not start ({e}): the browser test needs Debian's chromium and \
                 chromium-driver packages (.ci/run installs them)"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://{address}"),
        profiles: std::cell::RefCell::new(Vec::new()),
    }
}

/// A headless Chromium session with a fresh profile.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    driver.profiles.borrow_mut().push(profile.to_path_buf());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary("SCRIP_CHROMIUM", "/usr/bin/chromium"),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1100,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no browser session: {e}"))
}

/// The text of the element `id`.
async fn text_of(page: &Client, id: &str) -> String {
    page.execute(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
        vec![json!(id)],
    )
    .await
    .ok()
    .and_then(|v| v.as_str().map(str::to_owned))
    .unwrap_or_default()
}

/// Waits until the element `id` shows `needle` (panics, with what it showed, after 60 s).
async fn shows(page: &Client, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = text_of(page, id).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "#{id} never showed {needle:?}; it shows {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `value` into the field `id` (replacing what it held).
async fn fill(page: &Client, id: &str, value: &str) {
    let field = page.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Fills the pay form and submits it.
async fn pay(page: &Client, to: &str, amount: &str, memo: &str) {
    fill(page, "payTo", to).await;
    fill(page, "payAmount", amount).await;
    fill(page, "payMemo", memo).await;
    page.find(Locator::Id("payButton"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Saves a screenshot of `page` as `name`.png among the test artifacts.
async fn screenshot(page: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = page.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Opens the tab `tab` of the page.
async fn tab(page: &Client, tab: &str) {
    page.find(Locator::Css(&format!("#tabs button[data-tab='{tab}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[test]
fn alice_pays_bob_by_name_in_the_browser_and_bob_accepts_on_his_page() {
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
    let bob_wallet = bob.wallet();
    // Alice names herself; bob, who follows her but has no contact for her, sees `~alice`.
    alice.run(&["nick", "alice"]).ok();
    alice.run(&["mint", "100.00", "EUR"]).ok();
    alice.run(&["contact", "add", "bob", &bob_wallet]).ok();
    // Alice's node holds bob's wallet (through her follow) before she pays it.
    wait_until(
        "alice to hold bob's wallet",
        Duration::from_secs(30),
        || alice.run(&["audit", &bob_wallet, "--timeout", "1"]).code == 0,
    );
    let url = |daemon: &common::Daemon| daemon.ready["web"].as_str().unwrap().to_owned();
    let (alice_url, bob_url) = (url(&alice_daemon), url(&bob_daemon));
    let driver = start_driver();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let alice_page = browser(&driver, &dir.path().join("alice-browser")).await;
        let bob_page = browser(&driver, &dir.path().join("bob-browser")).await;
        alice_page.goto(&alice_url).await.unwrap();
        bob_page.goto(&bob_url).await.unwrap();
        shows(&alice_page, "balances", "100.00 EUR").await;
        shows(&bob_page, "incoming", "none waiting").await;
        screenshot(&alice_page, "1-alice-before").await;

        // A mistyped address and an overspend: refused before anything is signed.
        let mut typo: Vec<char> = bob_wallet.chars().collect();
        let at = typo.len() / 2;
        typo[at] = if typo[at] == 'x' { 'y' } else { 'x' };
        let typo: String = typo.into_iter().collect();
        pay(&alice_page, &typo, "1.00", "").await;
        shows(&alice_page, "payMsg", "checksum does not match").await;
        screenshot(&alice_page, "2-alice-typo").await;
        pay(&alice_page, "bob", "1000.00", "").await;
        shows(&alice_page, "payMsg", "not enough to pay 1000.00").await;
        screenshot(&alice_page, "3-alice-overspend").await;

        // Alice pays bob by name.
        pay(&alice_page, "bob", "12.50", "lunch").await;
        shows(&alice_page, "payMsg", "sent: 12.50 EUR").await;
        shows(&alice_page, "balances", "87.50 EUR").await;
        shows(&alice_page, "escrow", "12.50 EUR").await;
        screenshot(&alice_page, "4-alice-paid").await;

        // Bob's page shows it arrive, without a reload: the order and a notification.
        shows(&bob_page, "incoming", "12.50 EUR from ~alice").await;
        shows(&bob_page, "incoming", "lunch").await;
        shows(&bob_page, "toast", "Payment from").await;
        screenshot(&bob_page, "5-bob-notified").await;
        bob_page
            .find(Locator::Css("#incoming button.act"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        shows(&bob_page, "balances", "12.50 EUR").await;
        shows(&bob_page, "incoming", "none waiting").await;
        tab(&bob_page, "history").await;
        shows(&bob_page, "historyRows", "accepted").await;
        shows(&bob_page, "historyRows", "lunch").await;
        screenshot(&bob_page, "6-bob-accepted").await;

        // Bob's page shows his notaries answering.
        tab(&bob_page, "social").await;
        shows(&bob_page, "notarySummary", "4 of 4 answered").await;
        shows(&bob_page, "notaryRows", "holds your wallet up to #").await;
        screenshot(&bob_page, "6b-bob-notaries").await;

        // Bob makes an invite code on his page; it is listed as open.
        tab(&bob_page, "contacts").await;
        bob_page
            .find(Locator::Id("inviteButton"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        shows(&bob_page, "inviteMsg", "give this code to one person").await;
        shows(&bob_page, "inviteRows", "open").await;
        let code = bob_page
            .execute(
                "return document.getElementById('inviteCode').value;",
                vec![],
            )
            .await
            .unwrap();
        assert!(code.as_str().unwrap().starts_with("invite:"), "{code}");
        // Bob has no contacts: the tab says so, without an error.
        shows(&bob_page, "contactRows", "no contacts yet").await;
        assert_eq!(text_of(&bob_page, "contactMsg").await, "");
        screenshot(&bob_page, "6c-bob-invite").await;

        // Alice's page learns the end of her order by itself too.
        tab(&alice_page, "history").await;
        shows(&alice_page, "historyRows", "accepted").await;
        shows(&alice_page, "historyRows", "to bob").await;
        shows(&alice_page, "escrow", "").await;
        screenshot(&alice_page, "7-alice-history").await;
        let escrow = text_of(&alice_page, "escrow").await;
        assert!(escrow.is_empty(), "nothing left in escrow: {escrow:?}");

        alice_page.close().await.unwrap();
        bob_page.close().await.unwrap();
    });
    // The command line agrees with the pages.
    assert_eq!(balance(&alice), "87.50 EUR");
    assert_eq!(balance(&bob), "12.50 EUR");
    let orders: Value = bob.json(&["orders"]);
    assert_eq!(orders["orders"][0]["status"], "accepted", "{orders}");
    // `scrip wallet notaries`: all four answer; with one stopped, it is named as not answering.
    let status = alice.json(&["wallet", "notaries"]);
    let answered = |status: &Value| {
        status["notaries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["answered"] == true)
            .count()
    };
    assert_eq!(answered(&status), 4, "{status}");
    assert!(
        status["notaries"][0]["certified_head"].as_u64().unwrap() >= 3,
        "{status}"
    );
    let mut running = running;
    let stopped = running[3].take().unwrap();
    let stopped_id = stopped.identity();
    assert_eq!(stopped.stop(), 0);
    let status = alice.json(&["wallet", "notaries"]);
    assert_eq!(answered(&status), 3, "{status}");
    let silent: Vec<&Value> = status["notaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["answered"] == false)
        .collect();
    assert_eq!(silent.len(), 1, "{status}");
    assert_eq!(silent[0]["id"], stopped_id.as_str(), "{status}");
    assert!(
        silent[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    // Every notary counted its votes: the order, the claim (a fate) and the accept at least.
    for notary in running.iter().flatten() {
        let (address, _) = crate::web::web(notary);
        let (status, metrics) = crate::web::request(
            &address,
            &format!("GET /metrics HTTP/1.1\r\nHost: {address}"),
            "",
        );
        assert_eq!(status, 200);
        for kind in ["entry", "fate"] {
            let line = metrics
                .lines()
                .find(|l| l.starts_with(&format!("scrip_notary_votes_total{{kind=\"{kind}\"}}")))
                .unwrap_or_else(|| panic!("no {kind} votes counted: {metrics}"));
            let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(count >= 1, "{line}");
        }
    }
    drop((alice_daemon, bob_daemon, running));
}
