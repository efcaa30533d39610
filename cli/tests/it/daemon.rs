//! The daemon and one-shot commands on one home: they take turns with the store.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Command;

use common::TestHome;

#[test]
fn commands_typed_while_the_daemon_starts_neither_fail_nor_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    // `scrip serve &` then commands at once: whoever gets the store first, the other waits.
    let mut serve = home.spawn_serve(&[]);
    for i in 0..5 {
        home.run(&["post", &format!("post {i}")]).ok();
    }
    let mut ready = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(
        ready.contains("\"listen\""),
        "the daemon did not start: {ready:?}"
    );
    let feed = home.json(&["feed"]);
    let texts: Vec<String> = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    for i in 0..5 {
        assert!(texts.contains(&format!("post {i}")), "{texts:?}");
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(serve.id().to_string())
        .status()
        .unwrap();
    assert_eq!(serve.wait().unwrap().code(), Some(0));
}

/// Each start of a daemon draws a new epoch (replication.md §3), so that a peer remembering the
/// previous process's clock does not resume from it. (Every daemon seeded its node with 0, and so
/// introduced itself with the same epoch after every restart.)
#[test]
fn a_restarted_daemon_introduces_itself_with_a_new_epoch() {
    use std::sync::Arc;

    use scrip_feed::Keypair;
    use scrip_replicate::transport::{self, LocalIdentity, TransportConfig};
    use scrip_replicate::wire::{self, Message};

    let epoch = |listen: &str| -> u64 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let identity = LocalIdentity::new(Arc::new(Keypair::from_seed(&[77; 32]))).unwrap();
            let tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
            let mut stream = transport::connect(tcp, &identity, None, &TransportConfig::default())
                .await
                .unwrap();
            let first = stream.recv().await.unwrap().unwrap();
            match wire::decode(&first).unwrap() {
                Message::Hello(hello) => hello.epoch,
                other => panic!("the first message is not Hello: {other:?}"),
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let first = home.serve(&[]);
    let before = epoch(&first.listen());
    assert_eq!(first.stop(), 0);
    let second = home.serve(&[]);
    let after = epoch(&second.listen());
    assert_ne!(before, after, "the same epoch after a restart");
    assert_eq!(second.stop(), 0);
}

/// `block` then `unblock`: both are entries of the identity's feed, shown by `feed` with the
/// feed they name (without a daemon: the commands write the store directly).
#[test]
fn block_and_unblock_are_published_on_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestHome::init(dir.path(), "alice");
    let bob = TestHome::init(dir.path(), "bob");
    let bob_id = bob.identity();
    let blocked = alice.json(&["block", &bob_id]);
    assert_eq!(blocked["kind"], "block", "{blocked}");
    let unblocked = alice.json(&["unblock", &bob_id]);
    assert_eq!(unblocked["kind"], "unblock", "{unblocked}");
    let feed = alice.json(&["feed"]);
    let kinds: Vec<&str> = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..2], &["unblock", "block"], "{feed}");
    assert!(
        feed["entries"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&bob_id),
        "{feed}"
    );
}

/// The scheduling policy of every thread of process `pid`, by thread name.
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // a thread that ended meanwhile
        };
        // Fields after the command's closing parenthesis start at field 3; the policy is 41.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = rest.split(' ').nth(41 - 3).unwrap().parse().unwrap();
        threads.push((name.trim().to_owned(), policy));
    }
    threads
}

/// A notary daemon runs its replicate node on threads of its own under `SCHED_IDLE`
/// (`background::NodeRuntime`), so that its decisions come first when the cores are busy; the
/// rest of it (the notary, the control socket) stays at normal priority. A daemon that is no
/// notary runs its node on the daemon's runtime.
#[cfg(target_os = "linux")]
#[test]
fn a_notary_daemon_runs_its_node_at_idle_priority_and_its_notary_at_normal_priority() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    let notary = TestHome::init(dir.path(), "notary");
    let daemon = notary.serve(&["--notary"]);
    // The runtime starts its workers as it starts; they may still be naming themselves.
    let mut threads = Vec::new();
    common::wait_until(
        "the node's threads",
        std::time::Duration::from_secs(10),
        || {
            threads = thread_policies(daemon.pid());
            threads.iter().any(|(name, _)| name == "scrip-node")
        },
    );
    let policy_of = |wanted: &str| -> Vec<u32> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(wanted))
            .map(|&(_, policy)| policy)
            .collect()
    };
    let node = policy_of("scrip-node");
    assert!(node.iter().all(|&p| p == SCHED_IDLE), "{threads:?}");
    let daemon_workers = policy_of("tokio");
    assert!(!daemon_workers.is_empty(), "{threads:?}");
    assert!(
        daemon_workers.iter().all(|&p| p == SCHED_OTHER),
        "{threads:?}"
    );
    assert_eq!(daemon.stop(), 0);

    let plain = TestHome::init(dir.path(), "plain");
    let daemon = plain.serve(&[]);
    let threads = thread_policies(daemon.pid());
    assert!(
        !threads.iter().any(|(name, _)| name == "scrip-node"),
        "{threads:?}"
    );
    assert_eq!(daemon.stop(), 0);
}

/// A daemon stops cleanly (exit 0, "stopped") on SIGTERM sent the moment it says it is ready:
/// a supervisor may do that. (It listened for the signal only after printing that line, so a
/// SIGTERM right after it killed the process outright.)
#[test]
fn a_daemon_stops_cleanly_on_sigterm_sent_as_soon_as_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    for _ in 0..5 {
        let daemon = home.serve(&[]);
        assert_eq!(daemon.stop(), 0, "killed instead of stopped");
    }
}
