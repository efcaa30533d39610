//! Crash a notary at each step of a vote — before the write, after the write but before the
//! flush, after the flush but before the reply — by pausing a child process there and killing it
//! with SIGKILL; restart it and ask it for a conflicting entry at the same slot. It must never
//! vote for two different entries at one slot.
//!
//! CI runs `SCRIP_NOTARY_CRASH_ROUNDS` rounds per step (default 2).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::certified_wallet::CertifiedWallet;
use common::{InterceptVotes, key};
use scrip_feed::{Entry, SledOptions, SledStore, Store};
use scrip_ledger::verify::subject_of;
use scrip_notary::certified::to_bytes;
use scrip_notary::wire::{self, Proposal, Request, Response};
use scrip_notary::{LogVoteStore, Notary, NotaryConfig, Refusal, Step, VoteStore};
use scrip_replicate::transport::{self, LocalIdentity, Tcp, TransportConfig};

const CHILD_DIR: &str = "SCRIP_NOTARY_CHILD_DIR";
const NOTARY_SEED: u8 = 100;

/// The child: a notary on the given address, pausing forever at the given step.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn notary_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let listen = std::env::var("SCRIP_NOTARY_CHILD_LISTEN").unwrap();
    let pause_at = std::env::var("SCRIP_NOTARY_CHILD_PAUSE").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open(dir.join("feed"), SledOptions::default()).unwrap());
        let hold = std::env::var_os("SCRIP_NOTARY_CHILD_HOLD").is_some();
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // With a hold, the first record waits (saying "holding") until three more jobs are
        // queued and the parent says "go" on stdin, so that they are decided together in the
        // next batch.
        let (held_by_store, queued_by_store) = (Arc::clone(&held), Arc::clone(&queued));
        let votes = Arc::new(InterceptVotes {
            inner: LogVoteStore::open(&dir.join("votes")).unwrap(),
            record: move |inner: &LogVoteStore, votes: &[_], hook: &_| {
                use std::sync::atomic::Ordering;
                if !hold || held_by_store.load(Ordering::SeqCst) {
                    return inner.record(votes, hook);
                }
                println!("holding");
                std::io::stdout().flush().unwrap();
                while queued_by_store.load(Ordering::SeqCst) < 3 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                println!("queued 3");
                std::io::stdout().flush().unwrap();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).unwrap();
                let recorded = inner.record(votes, &|_| {});
                held_by_store.store(true, Ordering::SeqCst);
                recorded
            },
        });
        // With a hold, the steps of the first (held) batch pass: only the next one pauses.
        let hook = move |step: Step| {
            let name = format!("{step:?}");
            let armed = !hold || held.load(std::sync::atomic::Ordering::SeqCst);
            if armed && pause_at.as_deref() == Some(name.as_str()) {
                println!("paused {name}");
                std::io::stdout().flush().unwrap();
                loop {
                    std::thread::sleep(Duration::from_secs(60));
                }
            }
        };
        let handle = Notary::spawn(
            key(NOTARY_SEED),
            store,
            votes,
            Tcp,
            NotaryConfig {
                listen,
                ..NotaryConfig::default()
            },
            Arc::new(hook),
        )
        .await
        .unwrap();
        println!("listening {}", handle.address());
        std::io::stdout().flush().unwrap();
        loop {
            queued.store(handle.queued_jobs(), std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

struct ChildNotary {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn spawn_child(dir: &std::path::Path, listen: &str, pause: Option<&str>) -> ChildNotary {
    spawn_child_with(dir, listen, pause, false)
}

fn spawn_child_with(
    dir: &std::path::Path,
    listen: &str,
    pause: Option<&str>,
    hold: bool,
) -> ChildNotary {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "crash::notary_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env("SCRIP_NOTARY_CHILD_LISTEN", listen)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if hold {
        command.env("SCRIP_NOTARY_CHILD_HOLD", "1");
    }
    if let Some(step) = pause {
        command.env("SCRIP_NOTARY_CHILD_PAUSE", step);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let child = ChildNotary { child, lines };
    child.wait_for("listening");
    child
}

impl ChildNotary {
    fn wait_for(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the child never said {prefix:?}"));
            // The test harness may have written "test notary_child ... " before our line.
            if let Some(at) = line.find(prefix) {
                return line[at..].to_string();
            }
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// A wallet of n = 4 notaries (the child is one of them); the parent holds every notary key to
/// certify the prefix itself.
/// The wallet whose entries the notary is asked to vote for.
fn world() -> CertifiedWallet {
    CertifiedWallet::new(key(1), (0..4).map(|i| key(NOTARY_SEED + i)).collect())
}

/// A proposal of `entry` with the wallet's certified log as its prefix.
trait Propose {
    fn propose(&self, entry: &Entry) -> Request;
}

impl Propose for CertifiedWallet {
    fn propose(&self, entry: &Entry) -> Request {
        Request::Propose(Proposal {
            entry: scrip_feed::EntryBytes::of(entry),
            prefix: self.log.iter().map(|c| to_bytes(c).unwrap()).collect(),
        })
    }
}

async fn ask(address: &str, request: &Request, timeout: Duration) -> Option<Response> {
    let identity = LocalIdentity::new(key(1)).unwrap();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
        let mut stream = transport::connect(
            tcp,
            &identity,
            Some(key(NOTARY_SEED).id()),
            &TransportConfig::default(),
        )
        .await
        .ok()?;
        stream.send(&wire::encode(request).unwrap()).await.ok()?;
        let answer = stream.recv().await.ok()??;
        wire::decode::<Response>(&answer).ok()
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

fn free_port() -> String {
    scrip_feed::bench::fixed_port()
}

/// Starts a child notary on `address` that pauses at `step`, sends it `request` (whose answer
/// never comes: the notary is killed there with SIGKILL), and restarts it on the same store.
async fn crash_and_restart(
    dir: &std::path::Path,
    address: &str,
    step: &str,
    request: Request,
) -> ChildNotary {
    let child = spawn_child(dir, address, Some(step));
    let to = address.to_owned();
    let pending = tokio::spawn(async move { ask(&to, &request, Duration::from_secs(30)).await });
    let paused = child.wait_for("paused");
    assert_eq!(paused, format!("paused {step}"));
    child.kill();
    assert!(
        pending.await.unwrap().is_none(),
        "an answer escaped before the crash"
    );
    spawn_child(dir, address, None)
}

/// One round: propose A, crash the notary at `step`, restart it, propose B then A.
/// Returns the entries the notary voted for at the slot (from votes and lock information).
async fn round(step: &str) -> (Vec<scrip_feed::EntryId>, Option<Refusal>) {
    let dir = tempfile::tempdir().unwrap();
    let world = world();
    let (a, b) = (world.order(10), world.order(20));
    let address = free_port();
    let child = crash_and_restart(dir.path(), &address, step, world.propose(&a)).await;
    let mut voted = Vec::new();
    let mut b_refusal = None;
    for entry in [&b, &a] {
        match ask(&address, &world.propose(entry), Duration::from_secs(10)).await {
            Some(Response::Vote(vote)) => {
                assert!(vote.verifies(&subject_of(entry)));
                voted.push(entry.id());
            }
            Some(Response::Refusal(refusal)) => {
                if let Refusal::Locked {
                    voted: locked,
                    vote,
                    ..
                } = &refusal
                {
                    let vote = vote.expect("a lock carries its vote");
                    assert_eq!(vote.notary, key(NOTARY_SEED).id());
                    voted.push(*locked);
                }
                if entry.id() == b.id() {
                    b_refusal = Some(refusal);
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    child.kill();
    voted.sort();
    voted.dedup();
    (voted, b_refusal)
}

fn rounds() -> usize {
    std::env::var("SCRIP_NOTARY_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_killed_before_the_write_never_votes_twice() {
    for _ in 0..rounds() {
        let (voted, _) = round("BeforeWrite").await;
        assert_eq!(voted.len(), 1, "{voted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_killed_after_the_write_before_the_flush_never_votes_twice() {
    for _ in 0..rounds() {
        let (voted, _) = round("Written").await;
        assert_eq!(voted.len(), 1, "{voted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_killed_after_the_flush_before_the_reply_keeps_its_vote() {
    for _ in 0..rounds() {
        let (voted, b_refusal) = round("Flushed").await;
        assert_eq!(voted.len(), 1, "{voted:?}");
        // The vote for A was durable: B is locked out.
        assert!(
            matches!(b_refusal, Some(Refusal::Locked { .. })),
            "{b_refusal:?}"
        );
    }
}

/// A batch holding the same proposal twice (the second is answered with the same vote) and a
/// conflicting one (answered `Locked` with the vote): the notary is killed at `step` of that
/// batch. No answer may have left it, since each carries a vote that is not durable yet.
async fn one_batch_round(step: &str) {
    let dir = tempfile::tempdir().unwrap();
    let world = world();
    let other = CertifiedWallet::new(key(3), (0..4).map(|i| key(NOTARY_SEED + i)).collect());
    let (a, b) = (world.order(10), world.order(20));
    let address = free_port();
    let mut child = spawn_child_with(dir.path(), &address, Some(step), true);
    let send = |request: Request| {
        let address = address.clone();
        tokio::spawn(async move { ask(&address, &request, Duration::from_secs(30)).await })
    };
    // The first batch (another wallet's order) is held in its write...
    let first = send(other.propose(&other.order(5)));
    child.wait_for("holding");
    // ...while A, A again and B queue up behind it.
    let answers = vec![
        send(world.propose(&a)),
        send(world.propose(&a)),
        send(world.propose(&b)),
    ];
    child.wait_for("queued 3");
    child.say("go");
    assert!(matches!(first.await.unwrap(), Some(Response::Vote(_))));
    let paused = child.wait_for("paused");
    assert_eq!(paused, format!("paused {step}"));
    child.kill();
    for answer in answers {
        let answer = answer.await.unwrap();
        assert!(
            answer.is_none(),
            "an answer left before its vote was durable: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_killed_in_a_batch_with_two_proposals_for_one_slot_sent_no_vote() {
    for _ in 0..rounds() {
        one_batch_round("Written").await;
        one_batch_round("Flushed").await;
    }
}

/// One fate round: ask the child for a claim of an order, kill it at `step` of recording the
/// claim, restart it, ask for a void (a cancel) and then the claim again. Returns the fates it
/// signed for the order and its answer to the void.
async fn fate_round(step: &str) -> (Vec<scrip_ledger::Fate>, Option<Refusal>) {
    use scrip_ledger::{Fate, FateSubject};
    let dir = tempfile::tempdir().unwrap();
    let mut world = world();
    world.extend(10);
    let seq = scrip_feed::Seq::new(world.log.len() as u64);
    let order = world.order_ref(seq).id;
    let request = |fate: Fate| {
        let asker = if fate.is_void() { key(1) } else { key(2) };
        let subject = FateSubject {
            wallet: world.id(),
            order,
            fate,
        };
        Request::Fate(Box::new(wire::FateRequest {
            order: world.cite(seq),
            fate,
            preimage: None,
            signature: subject.request(&asker),
        }))
    };
    let address = free_port();
    let child = crash_and_restart(dir.path(), &address, step, request(Fate::Claimed)).await;
    let mut signed = Vec::new();
    let mut void_refusal = None;
    for fate in [Fate::Cancelled, Fate::Claimed] {
        let subject = FateSubject {
            wallet: world.id(),
            order,
            fate,
        };
        match ask(&address, &request(fate), Duration::from_secs(10)).await {
            Some(Response::Vote(vote)) => {
                scrip_ledger::fate::verify_fate_votes(&[vote], &subject).unwrap();
                signed.push(fate);
            }
            Some(Response::Refusal(refusal)) => {
                if fate == Fate::Cancelled {
                    void_refusal = Some(refusal);
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    child.kill();
    (signed, void_refusal)
}

/// A notary killed at any step of recording a claim never signs both the claim and a void of
/// the order after it restarts; once the claim was flushed, the void is refused for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_killed_while_recording_a_fate_never_signs_the_opposite_one() {
    for _ in 0..rounds() {
        for step in ["BeforeWrite", "Written", "Flushed"] {
            let (signed, void_refusal) = fate_round(step).await;
            assert_eq!(signed.len(), 1, "{step}: signed {signed:?}");
            if step == "Flushed" {
                assert_eq!(signed, vec![scrip_ledger::Fate::Claimed]);
                assert!(
                    matches!(&void_refusal, Some(Refusal::Fate { code, .. }) if code == "order-claimed"),
                    "{void_refusal:?}"
                );
            }
        }
    }
}
