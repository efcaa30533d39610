//! The network a node runs on: real TCP ([`Tcp`]), or anything else that gives byte streams
//! (tests plug in turmoil's simulated network).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::noise::{self, LocalIdentity, SecureStream, TransportConfig};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Listening, accepting and dialing.
pub trait Network: Send + Sync + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A listening socket.
    type Listener: Send + Sync + 'static;

    /// Binds `address`; returns the listener and the address actually bound.
    fn bind(
        &self,
        address: &str,
    ) -> impl Future<Output = io::Result<(Self::Listener, String)>> + Send;

    /// Accepts the next connection; returns it and the remote address.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;

    /// Dials `address`.
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// How work that blocks a thread (store calls) runs beside this network's tasks.
    const BLOCKING: Blocking = Blocking::Pool;
}

/// How work that blocks a thread (store calls: disk I/O, fsync) runs beside a network's tasks:
/// a property of the runtime the network lives in ([`Network::BLOCKING`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blocking {
    /// On tokio's blocking thread pool (real networks).
    #[default]
    Pool,
    /// On the calling task: in a deterministic simulation, where work on other threads would
    /// make runs depend on real time (its stores are in memory).
    Inline,
}

impl Blocking {
    /// Runs `call`; `None` if the runtime shut down before it finished.
    pub async fn run<T: Send + 'static>(
        self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        match self {
            Blocking::Inline => Some(call()),
            Blocking::Pool => tokio::task::spawn_blocking(call).await.ok(),
        }
    }

    /// Runs `call` on the calling task's own thread, for a task that has nothing else to do
    /// until it returns (no `select!`, no timeout around it): on a multi-thread runtime through
    /// `block_in_place` (the runtime hands this worker's other tasks to another thread for the
    /// while), which saves handing the call to a pool thread and waking the task afterwards;
    /// elsewhere as [`Blocking::run`].
    pub async fn run_here<T: Send + 'static>(
        self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        match self {
            Blocking::Pool if multi_thread => Some(tokio::task::block_in_place(call)),
            _ => self.run(call).await,
        }
    }
}

/// Bounds on the connections a listener has not authenticated yet (`docs/protocol/transport.md`,
/// "Incoming connections"): anyone can open a TCP connection, so before the Noise handshake
/// proves who it is, a connection holds only a handshake place, briefly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Handshakes in progress at once, from all sources.
    pub handshakes: usize,
    /// Handshakes in progress at once from one source IP address.
    pub handshakes_per_source: usize,
    /// Longest an incoming handshake may take (the shorter of this and the transport's).
    pub handshake_timeout: Duration,
}

/// Default [`AcceptLimits::handshakes`].
pub const MAX_PENDING_HANDSHAKES: usize = 64;
/// Default [`AcceptLimits::handshakes_per_source`].
pub const MAX_PENDING_HANDSHAKES_PER_SOURCE: usize = 4;
/// Default [`AcceptLimits::handshake_timeout`].
pub const INBOUND_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

impl Default for AcceptLimits {
    fn default() -> Self {
        AcceptLimits {
            handshakes: MAX_PENDING_HANDSHAKES,
            handshakes_per_source: MAX_PENDING_HANDSHAKES_PER_SOURCE,
            handshake_timeout: INBOUND_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The source part of a remote address (`ip` of `ip:port`), which handshake limits count by.
fn source_of(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .to_owned(),
    }
}

/// Handshakes in progress, counted in all and per source.
#[derive(Debug, Default)]
struct Pending {
    total: usize,
    per_source: HashMap<String, usize>,
}

/// A place among the pending handshakes, given back when dropped.
struct PendingPlace {
    pending: Arc<Mutex<Pending>>,
    source: String,
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.total = pending.total.saturating_sub(1);
        if let Some(count) = pending.per_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                pending.per_source.remove(&self.source);
            }
        }
    }
}

/// Takes a pending-handshake place for `source`, if the limits allow one.
fn take_place(
    pending: &Arc<Mutex<Pending>>,
    limits: &AcceptLimits,
    source: String,
) -> Option<PendingPlace> {
    let mut table = pending.lock().unwrap_or_else(|p| p.into_inner());
    let from_source = table.per_source.get(&source).copied().unwrap_or(0);
    if table.total >= limits.handshakes || from_source >= limits.handshakes_per_source {
        return None;
    }
    table.total += 1;
    *table.per_source.entry(source.clone()).or_insert(0) += 1;
    Some(PendingPlace {
        pending: Arc::clone(pending),
        source,
    })
}

/// Accepts connections on `listener` until the task is aborted. Accepting never waits for a
/// free session: a connection takes a pending-handshake place ([`AcceptLimits`]; with none free
/// for its source or in all, it is closed at once), the Noise handshake (mutual
/// authentication) runs on its own task within the inbound timeout, and each authenticated
/// connection goes to `handle` with its remote address, which decides whether a session slot
/// is free for it ([`SlotTable`]). A failed handshake is logged as `what` and the connection
/// dropped.
pub async fn accept_loop<N, F, Fut>(
    network: Arc<N>,
    listener: N::Listener,
    identity: Arc<LocalIdentity>,
    config: TransportConfig,
    limits: AcceptLimits,
    what: &'static str,
    handle: F,
) where
    N: Network,
    F: Fn(SecureStream<N::Stream>, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let pending = Arc::new(Mutex::new(Pending::default()));
    let config = TransportConfig {
        handshake_timeout: config.handshake_timeout.min(limits.handshake_timeout),
        ..config
    };
    loop {
        let (stream, address) = match network.accept(&listener).await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, what, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Some(place) = take_place(&pending, &limits, source_of(&address)) else {
            tracing::debug!(%address, what, "too many handshakes in progress: closed");
            drop(stream);
            continue;
        };
        let identity = Arc::clone(&identity);
        let config = config.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            let accepted = noise::accept(stream, &identity, &config).await;
            drop(place);
            match accepted {
                Ok(stream) => handle(stream, address).await,
                Err(err) => tracing::debug!(%address, %err, what, "refused an incoming connection"),
            }
        });
    }
}

/// Session slots for authenticated incoming connections: at most `capacity` at once; when all
/// are taken, a newcomer takes the slot of the connection that has been useless longest (no
/// useful activity for at least `min_idle`: for replication, entries sent or received; for a
/// notary, a request), which is told to close ([`Slot::evicted`]). If every connection was
/// useful more recently than that, the newcomer is refused. Pure bookkeeping: time comes in as
/// an argument.
#[derive(Debug)]
pub struct SlotTable {
    capacity: usize,
    min_idle: Duration,
    inner: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    next: u64,
    live: BTreeMap<u64, SlotState>,
}

#[derive(Debug)]
struct SlotState {
    last_useful: Instant,
    evict: Arc<Notify>,
    evicted: bool,
}

/// One admitted connection's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    table: Arc<SlotTable>,
    evict: Arc<Notify>,
}

impl SlotTable {
    /// A table of `capacity` slots, evicting connections useless for `min_idle` or more.
    pub fn new(capacity: usize, min_idle: Duration) -> Arc<SlotTable> {
        Arc::new(SlotTable {
            capacity: capacity.max(1),
            min_idle,
            inner: Mutex::new(Slots::default()),
        })
    }

    /// A slot for a newly authenticated connection at `now`: a free one, or the slot of the
    /// connection useless longest (told to close), or `None` if every connection was useful
    /// within `min_idle`.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Option<Slot> {
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let active = slots.live.values().filter(|s| !s.evicted).count();
        if active >= self.capacity {
            let victim = slots
                .live
                .iter_mut()
                .filter(|(_, s)| !s.evicted && now.duration_since(s.last_useful) >= self.min_idle)
                .min_by_key(|(id, s)| (s.last_useful, **id))?;
            victim.1.evicted = true;
            victim.1.evict.notify_one();
        }
        slots.next += 1;
        let id = slots.next;
        let evict = Arc::new(Notify::new());
        slots.live.insert(
            id,
            SlotState {
                last_useful: now,
                evict: Arc::clone(&evict),
                evicted: false,
            },
        );
        Some(Slot {
            id,
            table: Arc::clone(self),
            evict,
        })
    }

    /// Connections holding a slot and not told to close.
    pub fn active(&self) -> usize {
        let slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        slots.live.values().filter(|s| !s.evicted).count()
    }
}

impl Slot {
    /// Notes useful activity at `now` (it protects the connection from eviction).
    pub fn useful(&self, now: Instant) {
        let mut slots = self.table.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = slots.live.get_mut(&self.id) {
            state.last_useful = state.last_useful.max(now);
        }
    }

    /// Resolves when a newcomer took this slot: the connection should close.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.table.inner.lock().unwrap_or_else(|p| p.into_inner());
        slots.live.remove(&self.id);
    }
}

/// Real TCP, on tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tcp;

impl Network for Tcp {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, address: &str) -> io::Result<(Self::Listener, String)> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let local = listener.local_addr()?.to_string();
        Ok((listener, local))
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, String)> {
        let (stream, remote) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, remote.to_string()))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// turmoil's simulated TCP (feature `turmoil`): the same node code, run on a simulated network
/// with partitions, held links and crashes, deterministically from a seed.
#[cfg(feature = "turmoil")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Turmoil;

#[cfg(feature = "turmoil")]
impl Network for Turmoil {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;
    const BLOCKING: Blocking = Blocking::Inline;

    async fn bind(&self, address: &str) -> io::Result<(Self::Listener, String)> {
        let listener = turmoil::net::TcpListener::bind(address).await?;
        let local = listener.local_addr()?.to_string();
        Ok((listener, local))
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<(Self::Stream, String)> {
        let (stream, remote) = listener.accept().await?;
        Ok((stream, remote.to_string()))
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(address).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_ip_addresses() {
        assert_eq!(source_of("127.0.0.2:4000"), "127.0.0.2");
        assert_eq!(source_of("[::1]:4000"), "::1");
        assert_eq!(source_of("node-3:4000"), "node-3");
    }

    #[test]
    fn pending_handshakes_are_capped_per_source_and_in_all() {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let limits = AcceptLimits {
            handshakes: 5,
            handshakes_per_source: 2,
            ..AcceptLimits::default()
        };
        let a1 = take_place(&pending, &limits, "a".into()).unwrap();
        let _a2 = take_place(&pending, &limits, "a".into()).unwrap();
        assert!(
            take_place(&pending, &limits, "a".into()).is_none(),
            "per source"
        );
        let _b: Vec<_> = (0..2)
            .map(|_| take_place(&pending, &limits, "b".into()).unwrap())
            .collect();
        let _c = take_place(&pending, &limits, "c".into()).unwrap();
        assert!(
            take_place(&pending, &limits, "d".into()).is_none(),
            "in all"
        );
        drop(a1);
        assert!(
            take_place(&pending, &limits, "d".into()).is_some(),
            "given back"
        );
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_connection_useless_longest_or_refuses() {
        let table = SlotTable::new(2, Duration::from_secs(5));
        let t0 = Instant::now();
        let first = table.admit(t0).unwrap();
        let second = table.admit(t0 + Duration::from_secs(1)).unwrap();
        // Full, and both were useful within 5 s: refused.
        assert!(table.admit(t0 + Duration::from_secs(4)).is_none());
        // The second is useful again later; at 10 s the first is the one useless longest.
        second.useful(t0 + Duration::from_secs(8));
        let third = table.admit(t0 + Duration::from_secs(10)).unwrap();
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("the first is told to close");
        assert_eq!(table.active(), 2);
        // Not yet gone: the next newcomer finds the other two useful recently.
        assert!(table.admit(t0 + Duration::from_secs(11)).is_none());
        drop(first);
        drop(third);
        assert!(
            table.admit(t0 + Duration::from_secs(11)).is_some(),
            "a freed slot"
        );
    }
}
