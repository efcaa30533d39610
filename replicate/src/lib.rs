//! scrip-replicate: moving feeds between peers.
//!
//! # Layout
//!
//! - [`transport`]: the layer below replication, with a public surface of its own: Noise
//!   `XXpsk3` (the PSK is the network key) over any `AsyncRead + AsyncWrite`, with the Noise
//!   static key bound to the peer's ed25519 feed identity, and length-prefixed, chunked,
//!   authenticated framing; the networks it runs on (TCP, or a simulated one in tests); the
//!   bounded accept loop and session slots. The notary protocol uses it too. Spec:
//!   `docs/protocol/transport.md`.
//! - [`wire`]: the replication messages and their limits. Spec: `docs/protocol/replication.md`.
//! - [`session`]: the replication session with one peer, a sans-IO state machine.
//! - [`connections`]: the node's connections, dialing and rotation as a pure state machine that
//!   the actor feeds events and whose answers it executes.
//! - [`scope`], [`scheduler`], [`peers`], [`policy`]: pure decisions of the node: which feeds to
//!   replicate (follow graph, blocks, explicit requests), which peer to ask each feed of, whom to
//!   dial and when to retry (backoff), which of two connections to a peer to keep, when to
//!   rotate, what a change of scope tells each session. Unit-tested on their own.
//! - [`peer`]: the thin async driver of one session (reader, writer, ingest worker).
//! - [`node`]: the gossip node actor and its [`NodeHandle`].
//! - [`background`]: the lower-priority thread a node may check and store received entries on,
//!   and the lower-priority runtime a whole node may run on beside latency-sensitive work.
//! - [`limits`]: every bound, as a named constant.
//! - [`bench`](mod@bench): the replication macro benchmark (`cargo bench`, `scrip bench`).
//!
//! The crate moves signed entries (validated by `scrip-feed` before they are stored) and opaque
//! attachments; it never decides ledger validity.

pub mod background;
pub mod bench;
pub mod connections;
mod error;
pub mod limits;
pub mod node;
pub mod peer;
pub mod peers;
pub mod policy;
pub mod scheduler;
pub mod scope;
pub mod session;
pub mod transport;
pub mod wire;

pub use error::{Error, Result};
pub use node::{Event, Node, NodeConfig, NodeHandle, NodeLink, NodeStatus, PeerStatus};
pub use peer::{AcceptAll, AttachmentCheck};
