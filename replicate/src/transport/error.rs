//! The transport's error type: what can go wrong on one connection, below replication.

use std::time::Duration;

use scrip_feed::FeedId;

/// Result with the transport's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while dialing, accepting or using one encrypted connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An I/O error on the connection.
    #[error("{context}: {message}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// The peer closed the connection without an authenticated goodbye.
    #[error("the peer closed the connection {during}")]
    Closed {
        /// What we were doing (e.g. "during the handshake (is it on the same network key?)").
        during: &'static str,
    },
    /// The Noise handshake failed.
    #[error("handshake failed: {reason}")]
    Handshake {
        /// Why (the most likely cause first).
        reason: String,
    },
    /// Something took too long.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The peer proved an identity other than the one we dialed.
    #[error("expected peer {expected}, but {found} answered")]
    UnexpectedPeer {
        /// Whom we dialed.
        expected: FeedId,
        /// Who answered.
        found: FeedId,
    },
    /// The peer's proof of identity does not verify.
    #[error("the peer's identity proof is invalid: {reason}")]
    BadIdentityProof {
        /// Why.
        reason: String,
    },
    /// A frame on the wire is malformed.
    #[error("malformed frame: {reason}")]
    BadFrame {
        /// Why.
        reason: String,
    },
    /// A message exceeds the size limit.
    #[error("message too large: {found} bytes, the limit is {max}")]
    MessageTooLarge {
        /// The limit.
        max: usize,
        /// The size seen (at least).
        found: usize,
    },
}

impl Error {
    /// Wraps an I/O error; an unexpected end of stream becomes [`Error::Closed`].
    pub fn io(context: &'static str, err: &std::io::Error) -> Error {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::Closed { during: context };
        }
        Error::Io {
            context,
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}
