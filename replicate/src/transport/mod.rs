//! The transport: encrypted, mutually authenticated connections between scrip identities, and
//! the networks they run on. Spec: `docs/protocol/transport.md`.
//!
//! This module is a layer of its own: it knows nothing of feeds' replication (sessions, the
//! node, scope), and replication and the notary protocol both run on top of it. Its public
//! surface is what this module re-exports; the notary uses nothing of this crate but it
//! (checked by the `layers` test of `scrip-tests`, against the diagram in
//! `docs/ARCHITECTURE.md`).
//!
//! - [`noise`]: the Noise `XXpsk3` handshake (the PSK is the network key) with the Noise static
//!   key bound to the peer's ed25519 feed identity, and length-prefixed, chunked, authenticated
//!   framing ([`SecureStream`]).
//! - [`net`]: the [`Network`] a connection runs on ([`Tcp`], or turmoil's simulated one in
//!   tests) and how blocking work runs beside it ([`Blocking`]); the bounded accept loop
//!   ([`accept_loop`], [`AcceptLimits`]) and the table of session slots with idle eviction
//!   ([`SlotTable`]).
//! - [`TokenBucket`]: the rate limit on what a connection may send us.
//! - [`Error`]: what can go wrong on one connection.

mod error;
pub mod net;
pub mod noise;
mod rate;

pub use error::{Error, Result};
#[cfg(feature = "turmoil")]
pub use net::Turmoil;
pub use net::{
    AcceptLimits, Blocking, INBOUND_HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES,
    MAX_PENDING_HANDSHAKES_PER_SOURCE, Network, Slot, SlotTable, Tcp, accept_loop,
};
pub use noise::{
    HANDSHAKE_DOMAIN, IDENTITY_PROOF_VERSION, IdentityProof, LocalIdentity, NOISE_PARAMS,
    NetworkKey, PROLOGUE, Role, SecureReader, SecureStream, SecureWriter, TransportConfig, accept,
    connect, verify_identity_proof,
};
pub use rate::TokenBucket;
