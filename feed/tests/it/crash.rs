//! Crash test: a child process appends to a sled store (single publishes, entries stored with an
//! attachment in one commit, and batch ingests of many authors, about half of them big enough
//! that their chunks go to the value log) and prints each
//! acknowledgement; the parent kills it with SIGKILL at random moments, reopens the store, and
//! checks that every acknowledged entry is present (with its attachment, if it had one) and every
//! chain validates.
//!
//! CI runs `SCRIP_CRASH_KILLS` kills (default 100). A long run, reproducible from the printed
//! seed:
//! `SCRIP_CRASH_KILLS=2000 SCRIP_CRASH_SEED=42 cargo test -p scrip-feed --test it crash:: -- --nocapture`
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scrip_feed::rng::SplitMix64;
use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Attachment, Entry, Keypair, Seq, Store, Timestamp};

const AUTHORS: u64 = 6;
const CHILD_ENV: &str = "SCRIP_CRASH_CHILD_DIR";

fn author(i: u64) -> Keypair {
    common::key(u8::try_from(i + 1).unwrap())
}

/// The child: appends forever, printing `ack <author> <seq>` once each write is acknowledged.
#[test]
#[ignore = "run by crash_test_kills_a_writer_and_loses_nothing_acknowledged as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var("SCRIP_CRASH_CHILD_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = SplitMix64::new(seed);
    let store = common::open_sled(&dir).unwrap();
    let mut out = std::io::stdout().lock();
    let mut clock = 0u64;
    loop {
        clock += 1;
        let pick = rng.below(4);
        if pick == 0 {
            // An entry and an attachment in one commit (as a wallet stores a certified entry).
            let a = rng.below(AUTHORS);
            let key = author(a);
            let head = store.head(&key.id()).unwrap();
            let size = usize::try_from(rng.below(1500)).unwrap();
            let entry =
                Entry::create(&key, head, Timestamp::from_millis(clock), vec![b'e'; size]).unwrap();
            let seq = entry.seq().get();
            let attachment = Attachment {
                entry: entry.id(),
                kind: "crash/test".into(),
                bytes: seq.to_be_bytes().to_vec(),
            };
            let (report, attached) = store
                .ingest_with_attachments(VerifiedBatch::new(vec![entry]), vec![attachment])
                .unwrap();
            assert_eq!(report.refused(), 0, "{report:?}");
            assert_eq!(attached, vec![Ok(true)]);
            writeln!(out, "attached {a} {seq}").unwrap();
        } else if pick == 1 {
            // A single publish.
            let a = rng.below(AUTHORS);
            let size = usize::try_from(rng.below(300)).unwrap();
            let entry = store
                .publish(&author(a), Timestamp::from_millis(clock), vec![b'p'; size])
                .unwrap();
            writeln!(out, "ack {a} {}", entry.seq().get()).unwrap();
        } else {
            // A batch over several authors, each extended by a few entries: about half of them
            // big enough for the value log (chunks over `VALUE_LOG_MIN_BYTES` in total).
            let mut batch = Vec::new();
            let mut tops = Vec::new();
            for a in 0..AUTHORS {
                let n = rng.below(8);
                if n == 0 {
                    continue;
                }
                let key = author(a);
                let mut head = store.head(&key.id()).unwrap();
                for _ in 0..n {
                    let size = usize::try_from(rng.below(6000)).unwrap();
                    let entry =
                        Entry::create(&key, head, Timestamp::from_millis(clock), vec![b'b'; size])
                            .unwrap();
                    head = Some(entry.head());
                    batch.push(entry);
                }
                tops.push((a, head.unwrap().seq.get()));
            }
            let report = store.ingest(batch).unwrap();
            assert_eq!(report.refused(), 0, "{report:?}");
            for (a, seq) in tops {
                writeln!(out, "ack {a} {seq}").unwrap();
            }
        }
        out.flush().unwrap();
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn crash_test_kills_a_writer_and_loses_nothing_acknowledged() {
    let kills = env_u64("SCRIP_CRASH_KILLS").unwrap_or(100);
    let seed = scrip_feed::bench::test_seeds("SCRIP_CRASH_SEED", "SCRIP_CRASH_RUNS", 1)[0];
    eprintln!("crash test: {kills} kills, SCRIP_CRASH_SEED={seed}");
    let mut rng = SplitMix64::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked = vec![0u64; usize::try_from(AUTHORS).unwrap()];
    let mut attached: Vec<(usize, u64)> = Vec::new();
    let exe = std::env::current_exe().unwrap();

    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("SCRIP_CRASH_CHILD_SEED", rng.next_u64().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let stdout = child.stdout.take().unwrap();
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(150)));
        let status = child.try_wait().unwrap();
        if let Some(status) = status {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("round {round}: child exited by itself ({status}): {stderr}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            let (with_attachment, rest) = match line.split_once(' ') {
                Some(("ack", rest)) => (false, rest),
                Some(("attached", rest)) => (true, rest),
                _ => continue,
            };
            let (a, seq) = rest.split_once(' ').unwrap();
            let (a, seq): (usize, u64) = (a.parse().unwrap(), seq.parse().unwrap());
            acked[a] = acked[a].max(seq);
            if with_attachment {
                attached.push((a, seq));
            }
        }

        let store = common::open_sled(dir.path())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        for (a, &seq) in acked.iter().enumerate() {
            let head = store.head(&author(a as u64).id()).unwrap();
            let have = head.map_or(0, |h| h.seq.get());
            assert!(
                have >= seq,
                "round {round} (seed {seed}): author {a} acknowledged up to {seq}, store has {have}"
            );
            if seq > 0 {
                assert!(
                    store
                        .get(&author(a as u64).id(), Seq::new(seq))
                        .unwrap()
                        .is_some()
                );
            }
        }
        for &(a, seq) in &attached {
            let entry = store
                .get(&author(a as u64).id(), Seq::new(seq))
                .unwrap()
                .unwrap();
            assert_eq!(
                store.attachments(&entry.id()).unwrap(),
                vec![("crash/test".to_owned(), seq.to_be_bytes().to_vec())],
                "round {round} (seed {seed}): author {a} #{seq} lost its attachment"
            );
        }
        if round % 25 == 24 || round + 1 == kills {
            store.verify_integrity().unwrap_or_else(|e| {
                panic!("round {round} (seed {seed}): integrity check failed: {e}")
            });
        }
    }
    let total: u64 = acked.iter().sum();
    eprintln!("crash test: {kills} kills survived, {total} acknowledged entries all present");
    assert!(total > 0, "the child never acknowledged anything");
}
