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
