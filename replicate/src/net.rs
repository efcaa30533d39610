//! The network a node runs on: real TCP ([`Tcp`]), or anything else that gives byte streams
//! (tests plug in turmoil's simulated network).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

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
