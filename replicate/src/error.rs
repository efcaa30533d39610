//! The replicate crate's error type. The transport below it has its own
//! ([`crate::transport::Error`]), so that a user of the transport alone (the notary) needs nothing
//! of replication.

/// Result with the replicate crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while connecting to or replicating with a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The connection failed (I/O, handshake, framing, timeouts): see [`crate::transport::Error`].
    #[error(transparent)]
    Transport(#[from] crate::transport::Error),
    /// The peer broke the replication protocol.
    #[error("protocol violation by the peer: {reason}")]
    Protocol {
        /// What it did.
        reason: String,
    },
    /// The peer speaks a protocol version we do not.
    #[error("the peer speaks {found}, we speak {expected}")]
    Incompatible {
        /// Our protocol and version.
        expected: String,
        /// Theirs.
        found: String,
    },
    /// The peer exceeded a rate limit.
    #[error("the peer exceeded its limit of {limit}")]
    RateLimited {
        /// Which limit.
        limit: &'static str,
    },
    /// The feed layer refused something (storage or validation).
    #[error(transparent)]
    Feed(#[from] scrip_feed::Error),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Shutdown,
}

impl Error {
    /// Wraps an I/O error (see [`crate::transport::Error::io`]).
    pub fn io(context: &'static str, err: &std::io::Error) -> Error {
        Error::Transport(crate::transport::Error::io(context, err))
    }

    /// A timeout of `what` after `after`.
    pub fn timeout(what: &'static str, after: std::time::Duration) -> Error {
        Error::Transport(crate::transport::Error::Timeout { what, after })
    }
}
