//! The network a node runs on: real TCP ([`Tcp`]), or anything else that gives byte streams
//! (tests plug in turmoil's simulated network).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::transport::{self, LocalIdentity, SecureStream, TransportConfig};

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
}

/// Accepts connections on `listener` for as long as `slots` is open: one permit per
/// connection, held for its life (the cap on incoming connections, so a flood waits in the
/// kernel's backlog); the Noise handshake (mutual authentication) runs on its own task, and
/// each authenticated connection goes to `handle` with its remote address and its permit.
/// A failed handshake is logged as `what` and the connection dropped.
pub async fn accept_loop<N, F, Fut>(
    network: Arc<N>,
    listener: N::Listener,
    identity: Arc<LocalIdentity>,
    config: TransportConfig,
    slots: Arc<Semaphore>,
    what: &'static str,
    handle: F,
) where
    N: Network,
    F: Fn(SecureStream<N::Stream>, String, OwnedSemaphorePermit) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, address) = match network.accept(&listener).await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, what, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let identity = Arc::clone(&identity);
        let config = config.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            match transport::accept(stream, &identity, &config).await {
                Ok(stream) => handle(stream, address, permit).await,
                Err(err) => tracing::info!(%address, %err, what, "refused an incoming connection"),
            }
        });
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
