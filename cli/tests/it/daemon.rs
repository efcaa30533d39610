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
