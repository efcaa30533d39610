//! The replication macro benchmark, shared by `cargo bench -p scrip-replicate` and `scrip bench`:
//! two nodes on loopback Noise TCP, durable sled stores on both sides, one replicating
//! `authors × per_author` entries from the other; reported next to the same-run local batch
//! ingest rate.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use scrip_feed::bench::{Figure, make_feeds};
use scrip_feed::store::VerifiedBatch;
use scrip_feed::{Entry, Keypair, SledOptions, SledStore, Store};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};
use crate::node::{Event, Node, NodeConfig};
use crate::transport::{Network, Tcp};

/// A stream that counts the bytes it carries.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    bytes: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.bytes.fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled {
            self.bytes.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// TCP whose connections count the bytes they carry (both directions).
#[derive(Clone, Debug, Default)]
pub struct CountingTcp {
    /// Bytes sent and received so far.
    pub bytes: Arc<AtomicU64>,
}

impl Network for CountingTcp {
    type Stream = Counted<tokio::net::TcpStream>;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, address: &str) -> io::Result<(Self::Listener, String)> {
        Tcp.bind(address).await
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, String)> {
        let (inner, address) = Tcp.accept(listener).await?;
        Ok((
            Counted {
                inner,
                bytes: Arc::clone(&self.bytes),
            },
            address,
        ))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let inner = Tcp.connect(address).await?;
        Ok(Counted {
            inner,
            bytes: Arc::clone(&self.bytes),
        })
    }
}

/// What [`replicate`] measured.
#[derive(Clone, Debug)]
pub struct ReplicateFigures {
    /// Entries replicated.
    pub entries: u64,
    /// From the receiver's start to its last entry stored durably.
    pub elapsed: Duration,
    /// Bytes on the wire, both directions, handshake included.
    pub wire_bytes: u64,
    /// The same machine's local batch ingest rate into sled (entries/s), measured in this run
    /// on the same entries.
    pub local_ingest_per_sec: f64,
}

impl ReplicateFigures {
    /// Entries per second.
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    /// The figures for a report.
    pub fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::plain(
                "local batch ingest (sled)",
                self.local_ingest_per_sec,
                "entries/s",
            ),
            Figure::against(
                "replicate over loopback Noise TCP (sled)",
                self.rate(),
                "entries/s",
                self.local_ingest_per_sec,
            ),
            Figure::plain(
                "bytes on the wire per entry",
                self.wire_bytes as f64 / self.entries.max(1) as f64,
                "bytes",
            ),
        ]
    }
}

/// Fills a sled store under `dir/source` with `authors × per_author` entries (timing that as the
/// local ingest rate), then replicates them to an empty sled store under `dir/sink` over
/// loopback TCP and times it.
// Long because: a benchmark's setup, run and measurement, in sequence.
pub async fn replicate(dir: &Path, authors: usize, per_author: usize) -> Result<ReplicateFigures> {
    let entries = tokio::task::spawn_blocking(move || make_feeds(authors, per_author, 96))
        .await
        .map_err(|_| Error::Shutdown)?;
    let total = entries.len() as u64;
    let feeds: BTreeSet<_> = entries.iter().map(Entry::author).collect();

    let source_dir = dir.join("source");
    let source: Arc<dyn Store> = Arc::new(SledStore::open(&source_dir, SledOptions::default())?);
    let filling = Arc::clone(&source);
    let local_ingest_per_sec = tokio::task::spawn_blocking(move || -> Result<f64> {
        let start = Instant::now();
        let mut batches: Vec<Vec<Entry>> = Vec::new();
        let mut rest = entries.into_iter().peekable();
        while rest.peek().is_some() {
            batches.push(rest.by_ref().take(5000).collect());
        }
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<VerifiedBatch>(1);
            scope.spawn(move || {
                for batch in batches {
                    if tx.send(VerifiedBatch::new(batch)).is_err() {
                        break;
                    }
                }
            });
            for verified in rx {
                filling.ingest_verified(verified)?;
            }
            Ok(())
        })?;
        Ok(total as f64 / start.elapsed().as_secs_f64())
    })
    .await
    .map_err(|_| Error::Shutdown)??;

    let config = NodeConfig {
        listen: Some("127.0.0.1:0".into()),
        tick: Duration::from_millis(50),
        ..NodeConfig::default()
    };
    let source_node = Node::spawn(
        Arc::new(Keypair::from_seed(&[0xa0; 32])),
        source,
        Tcp,
        config.clone(),
    )
    .await?;
    let address = source_node
        .listen_address()
        .map(str::to_owned)
        .ok_or(Error::Shutdown)?;

    let sink: Arc<dyn Store> = Arc::new(SledStore::open(dir.join("sink"), SledOptions::default())?);
    let network = CountingTcp::default();
    let bytes = Arc::clone(&network.bytes);
    let start = Instant::now();
    let sink_node = Node::spawn(
        Arc::new(Keypair::from_seed(&[0xa1; 32])),
        Arc::clone(&sink),
        network,
        NodeConfig {
            listen: None,
            peers: vec![(address, Some(source_node.id()))],
            explicit: feeds,
            ..config
        },
    )
    .await?;
    let mut events = sink_node.events();
    let mut stored = 0u64;
    while stored < total {
        match tokio::time::timeout(Duration::from_secs(120), events.recv()).await {
            Ok(Ok(Event::Stored {
                new, from: Some(_), ..
            })) => stored += new as u64,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                // Count from the store instead.
                let sink = Arc::clone(&sink);
                stored = tokio::task::spawn_blocking(move || -> Result<u64> {
                    let mut sum = 0;
                    for author in sink.authors()? {
                        sum += sink.head(&author)?.map_or(0, |h| h.seq.get());
                    }
                    Ok(sum)
                })
                .await
                .map_err(|_| Error::Shutdown)??;
            }
            _ => {
                return Err(Error::timeout(
                    "the replication benchmark",
                    Duration::from_secs(120),
                ));
            }
        }
    }
    let elapsed = start.elapsed();
    let wire_bytes = bytes.load(Ordering::Relaxed);
    sink_node.shutdown().await;
    source_node.shutdown().await;
    Ok(ReplicateFigures {
        entries: total,
        elapsed,
        wire_bytes,
        local_ingest_per_sec,
    })
}

/// What [`flood`] measured.
#[derive(Clone, Debug)]
pub struct FloodFigures {
    /// Silent sockets held open against the node.
    pub sockets: usize,
    /// Idle authenticated sessions held open against it.
    pub sessions: usize,
    /// Entries a new peer synced.
    pub entries: u64,
    /// How long that took with nobody attacking.
    pub calm: Duration,
    /// How long it took under the flood.
    pub attacked: Duration,
}

impl FloodFigures {
    /// The figures for a report: the attacked sync rate against the calm one (the target is a
    /// ratio of at least 1/3: a sync under attack within 3× its calm time).
    pub fn figures(&self) -> Vec<Figure> {
        let rate = |took: Duration| self.entries as f64 / took.as_secs_f64().max(1e-9);
        vec![
            Figure::plain("sync with nobody attacking", rate(self.calm), "entries/s"),
            Figure::against(
                format!(
                    "sync under {} silent sockets and {} idle sessions",
                    self.sockets, self.sessions
                ),
                rate(self.attacked),
                "entries/s",
                rate(self.calm),
            ),
        ]
    }
}

/// A TCP connection to `target` from source address `source` (an attacker's, in the flood
/// figure and tests: `127.0.0.2` and the like are all loopback on Linux).
pub async fn connect_from(
    source: &str,
    target: std::net::SocketAddr,
) -> io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    let source: std::net::SocketAddr = format!("{source}:0")
        .parse()
        .map_err(|_| io::Error::other("bad source address"))?;
    socket.bind(source)?;
    socket.connect(target).await
}

/// `n` TCP connections to `target` from `source` that will never send anything (as many as
/// could be opened).
pub async fn silent_sockets(
    target: std::net::SocketAddr,
    source: &str,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut silent = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(stream) = connect_from(source, target).await {
            silent.push(stream);
        }
    }
    silent
}

/// How many files (sockets) this process may hold open: the soft limit (1,024 where it cannot
/// be read).
pub fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1024)
}

/// A fresh in-memory node syncing `feed` (`entries` of it) from the node `id` at `target`.
async fn timed_sync(
    target: &str,
    id: scrip_feed::FeedId,
    feed: scrip_feed::FeedId,
    entries: u64,
    seed: u8,
) -> Result<Duration> {
    let store: Arc<dyn Store> = Arc::new(scrip_feed::MemoryStore::new());
    let started = Instant::now();
    let node = Node::spawn(
        Arc::new(Keypair::from_seed(&[seed; 32])),
        Arc::clone(&store),
        Tcp,
        NodeConfig {
            peers: vec![(target.to_owned(), Some(id))],
            explicit: [feed].into(),
            tick: Duration::from_millis(50),
            ..NodeConfig::default()
        },
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.head(&feed)?.map_or(0, |h| h.seq.get()) < entries {
        if Instant::now() > deadline {
            node.shutdown().await;
            return Err(Error::timeout(
                "a sync under attack",
                Duration::from_secs(120),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    node.shutdown().await;
    Ok(took)
}

/// The connection-flood figure: a node holding one feed of `entries` entries is synced by a new
/// peer, calm, then while `sockets` silent TCP connections (from 127.0.0.2) and `sessions` idle
/// authenticated sessions (from 127.0.0.3) are held open against it (as many as the process's
/// file descriptors allow: the figures say how many were).
pub async fn flood(sockets: usize, sessions: usize, entries: usize) -> Result<FloodFigures> {
    let feed = make_feeds(1, entries, 96);
    let store: Arc<dyn Store> = Arc::new(scrip_feed::MemoryStore::new());
    store.ingest(feed)?;
    let victim = Node::spawn(
        Arc::new(Keypair::from_seed(&[91; 32])),
        Arc::clone(&store),
        Tcp,
        NodeConfig {
            listen: Some("127.0.0.1:0".into()),
            idle_before_eviction: Duration::from_millis(500),
            ..NodeConfig::default()
        },
    )
    .await?;
    let feed_id = store.authors()?.into_iter().next().ok_or(Error::Shutdown)?;
    let address = victim.listen_address().unwrap_or_default().to_owned();
    let target: std::net::SocketAddr = address
        .parse()
        .map_err(|_| Error::io("the node's address", &io::Error::other(address.clone())))?;
    let calm = timed_sync(&address, victim.id(), feed_id, entries as u64, 92).await?;
    let silent = silent_sockets(target, "127.0.0.2", sockets).await;
    let mut idle = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let Ok(tcp) = connect_from("127.0.0.3", target).await else {
            continue;
        };
        let mut seed = [93u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let identity = crate::transport::LocalIdentity::new(Arc::new(Keypair::from_seed(&seed)))?;
        if let Ok(session) =
            crate::transport::connect(tcp, &identity, None, &Default::default()).await
        {
            idle.push(session);
        }
    }
    // Let the idle sessions become evictable, as they would be in a longer attack.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let attacked = timed_sync(&address, victim.id(), feed_id, entries as u64, 94).await;
    let (sockets, sessions) = (silent.len(), idle.len());
    drop((silent, idle));
    victim.shutdown().await;
    Ok(FloodFigures {
        sockets,
        sessions,
        entries: entries as u64,
        calm,
        attacked: attacked?,
    })
}
