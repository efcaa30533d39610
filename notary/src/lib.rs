//! scrip-notary: notaries that countersign wallet entries durably, and the wallet client.
//!
//! # Layout
//!
//! - [`decision`]: the notary's decision, a pure state machine over its view of each wallet's
//!   certified prefix and the slots it voted for (vote, same vote again, or a refusal with a
//!   reason).
//! - [`votes`]: durable vote records (appended to a log and synced before any vote is signed).
//! - [`wire`]: the notary protocol (propose, slot query, fetch) over the replicate crate's
//!   transport, the only part of that crate the notary uses. A notary runs beside a replicate
//!   node in `scrip serve --notary`; the two are bridged where they are composed (`scrip-cli`).
//! - [`service`]: the notary service: a listener and one actor deciding requests in batches with
//!   one flush per batch (group commit).
//! - [`client`]: the wallet client: durable pending proposals retried byte for byte, parallel
//!   requests finishing at a quorum, safe restore.
//! - [`certified`]: certified entries in a feed store (certificates as attachments), citations.
//! - [`pending`]: the client's pending-proposal file.
//! - [`bench`](mod@bench): the end-to-end transfer benchmark.
//!
//! The protocol is specified in `docs/protocol/notary.md`.

pub mod bench;
pub mod certified;
pub mod client;
pub mod decision;
mod error;
pub mod pending;
pub mod service;
pub mod votes;
pub mod wire;

pub use client::{ClientConfig, NotaryAddr, WalletClient};
pub use decision::{Decision, NotaryState, Refusal};
pub use error::{Error, Result};
pub use pending::PendingFile;
pub use service::{Notary, NotaryConfig, NotaryEvent, NotaryHandle, NotaryLink, Vouched};
pub use votes::{LogVoteStore, MemoryVoteStore, SledVoteStore, Step, VoteRecord, VoteStore};
