//! Deterministic simulation with turmoil: real nodes (transport, sessions, scheduler) on a
//! simulated network with partitions and heals, held messages, latency jitter, and nodes that
//! crash and restart (their stores survive, like disks). All honest nodes must converge.
//!
//! Each run prints its seed; `SCRIP_SIM_SEED=<seed>` reproduces one run, `SCRIP_SIM_SEEDS=<n>`
//! runs n seeds (CI: 3). A 20-node run measures how many copies of each new entry a node
//! receives.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use scrip_feed::{Content, FeedId, Keypair, MemoryStore, Store, Timestamp};
use scrip_replicate::transport::{TransportConfig, Turmoil};
use scrip_replicate::{Event, Node, NodeConfig};

fn key(n: usize) -> Arc<Keypair> {
    Arc::new(Keypair::from_seed(&[u8::try_from(n + 1).unwrap(); 32]))
}

fn host(n: usize) -> String {
    format!("node{n}")
}

const PORT: u16 = 7000;

fn heads(store: &dyn Store) -> BTreeMap<FeedId, u64> {
    store.heads().unwrap()
}

/// The simulated world: `n` nodes, each dialing `links[i]`, each following everyone, each
/// publishing `posts` posts over time.
struct World {
    n: usize,
    stores: Vec<Arc<MemoryStore>>,
    received: Vec<Arc<AtomicU64>>,
}

fn build(
    sim: &mut turmoil::Sim<'_>,
    n: usize,
    links: &[Vec<usize>],
    posts: u64,
    seed: u64,
) -> World {
    let keys: Vec<Arc<Keypair>> = (0..n).map(key).collect();
    let stores: Vec<Arc<MemoryStore>> = (0..n).map(|_| Arc::new(MemoryStore::new())).collect();
    let received: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    // Everyone follows everyone (written before the simulation starts).
    for i in 0..n {
        for j in 0..n {
            if i != j {
                stores[i]
                    .publish(
                        &keys[i],
                        Timestamp::from_millis(j as u64),
                        Content::Follow { feed: keys[j].id() }.encode().unwrap(),
                    )
                    .unwrap();
            }
        }
    }
    for i in 0..n {
        let keypair = Arc::clone(&keys[i]);
        let store = Arc::clone(&stores[i]);
        let counter = Arc::clone(&received[i]);
        let peers: Vec<(String, Option<FeedId>)> = links[i]
            .iter()
            .map(|&j| (format!("{}:{PORT}", host(j)), Some(keys[j].id())))
            .collect();
        sim.host(host(i), move || {
            let keypair = Arc::clone(&keypair);
            let store = Arc::clone(&store);
            let counter = Arc::clone(&counter);
            let peers = peers.clone();
            async move {
                let config = NodeConfig {
                    listen: Some(format!("0.0.0.0:{PORT}")),
                    peers,
                    hops: 1,
                    tick: Duration::from_millis(200),
                    request_timeout: Duration::from_secs(3),
                    rotate_every: None,
                    transport: TransportConfig {
                        handshake_timeout: Duration::from_secs(5),
                        idle_timeout: Duration::from_secs(15),
                        ..TransportConfig::default()
                    },
                    seed: seed ^ (i as u64),
                    ..NodeConfig::default()
                };
                let node = Node::spawn(
                    Arc::clone(&keypair),
                    store.clone() as Arc<dyn Store>,
                    Turmoil,
                    config,
                )
                .await
                .map_err(|e| e.to_string())?;
                let mut events = node.events();
                let counting = tokio::spawn(async move {
                    while let Ok(event) = events.recv().await {
                        if let Event::Stored {
                            received,
                            from: Some(_),
                            ..
                        } = event
                        {
                            counter.fetch_add(received as u64, Ordering::Relaxed);
                        }
                    }
                });
                // Publish the posts not yet published (a restarted node carries on).
                loop {
                    let have = store
                        .head(&keypair.id())
                        .unwrap()
                        .map_or(0, |h| h.seq.get())
                        .saturating_sub(n as u64 - 1);
                    if have >= posts {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(700 + 97 * i as u64)).await;
                    let text = format!("post {have} of node {i}");
                    node.publish(&Content::Post { text }, Timestamp::from_millis(have))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                std::future::pending::<()>().await;
                counting.abort();
                Ok(())
            }
        });
    }
    World {
        n,
        stores,
        received,
    }
}

impl World {
    fn expected(&self, posts: u64) -> BTreeMap<FeedId, u64> {
        (0..self.n)
            .map(|i| (key(i).id(), self.n as u64 - 1 + posts))
            .collect()
    }

    fn converged(&self, posts: u64) -> bool {
        let expected = self.expected(posts);
        self.stores.iter().all(|s| heads(s.as_ref()) == expected)
    }

    fn report(&self, posts: u64) -> String {
        let expected = self.expected(posts);
        self.stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let h = heads(s.as_ref());
                let missing: u64 = expected
                    .iter()
                    .map(|(f, n)| n.saturating_sub(h.get(f).copied().unwrap_or(0)))
                    .sum();
                format!("node{i}: {missing} missing")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn seeds() -> Vec<u64> {
    scrip_feed::bench::test_seeds("SCRIP_SIM_SEED", "SCRIP_SIM_SEEDS", 3)
}

/// Steps the simulation until `done` holds or `limit` of simulated time passes.
fn run_until(sim: &mut turmoil::Sim<'_>, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = sim.elapsed();
    while sim.elapsed() - start < limit {
        sim.step().unwrap();
        if done() {
            return true;
        }
    }
    false
}

fn run_faults(seed: u64) {
    eprintln!("simulation: SCRIP_SIM_SEED={seed}");
    let n = 6;
    let posts = 12;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(60))
        .build();
    // A ring with one chord: every node dials its successor; node 0 also dials node 3.
    let mut links: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
    links[0].push(3);
    let world = build(&mut sim, n, &links, posts, seed);

    // Phase 1: a partition splits the ring in two halves while everyone publishes.
    run_until(&mut sim, Duration::from_secs(2), || false);
    for a in 0..3 {
        for b in 3..n {
            sim.partition(host(a), host(b));
        }
    }
    run_until(&mut sim, Duration::from_secs(4), || false);
    // Phase 2: messages on one link are held, then released; a node crashes.
    sim.hold(host(1), host(2));
    sim.crash(host(4));
    run_until(&mut sim, Duration::from_secs(3), || false);
    sim.release(host(1), host(2));
    // Phase 3: heal everything, restart the crashed node.
    for a in 0..3 {
        for b in 3..n {
            sim.repair(host(a), host(b));
        }
    }
    sim.bounce(host(4));
    let converged = run_until(&mut sim, Duration::from_secs(240), || {
        world.converged(posts)
    });
    assert!(
        converged,
        "seed {seed}: no convergence after healing: {}",
        world.report(posts)
    );
    // Every stored chain is valid.
    for store in &world.stores {
        for author in store.authors().unwrap() {
            let mut head = None;
            for entry in store
                .range(&author, scrip_feed::Seq::FIRST, usize::MAX)
                .unwrap()
            {
                scrip_feed::validate::validate_entry(&author, head.as_ref(), &entry).unwrap();
                head = Some(entry.head());
            }
        }
    }
}

#[test]
fn partitions_held_messages_and_crashes_heal_into_convergence() {
    for seed in seeds() {
        run_faults(seed);
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    // Determinism: two runs of one seed end with byte-identical stores at the same step.
    let seed = 7;
    let run = || {
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .simulation_duration(Duration::from_secs(120))
            .max_message_latency(Duration::from_millis(40))
            .build();
        let links: Vec<Vec<usize>> = (0..4).map(|i| vec![(i + 1) % 4]).collect();
        let world = build(&mut sim, 4, &links, 3, seed);
        run_until(&mut sim, Duration::from_secs(6), || false);
        world
            .stores
            .iter()
            .map(|s| heads(s.as_ref()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn new_entries_arrive_about_once_in_a_20_node_network() {
    let seed = std::env::var("SCRIP_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("20-node simulation: SCRIP_SIM_SEED={seed}");
    let n = 20;
    let posts = 5;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(600))
        .max_message_latency(Duration::from_millis(30))
        .build();
    // Each node dials its successor and the node 7 places ahead: a connected, sparse mesh.
    let links: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n, (i + 7) % n]).collect();
    let world = build(&mut sim, n, &links, posts, seed);
    let converged = run_until(&mut sim, Duration::from_secs(300), || {
        world.converged(posts)
    });
    assert!(converged, "no convergence: {}", world.report(posts));
    // Entries each node had to receive: everyone else's follows and posts.
    let needed = (n as u64 - 1) * (n as u64 - 1 + posts);
    let received: u64 = world
        .received
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    let copies = received as f64 / (needed * n as u64) as f64;
    eprintln!("20-node simulation: {copies:.2} copies received per needed entry per node");
    assert!(copies <= 2.0, "{copies:.2} copies per entry");
}
