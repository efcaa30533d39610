//! Every bound of the transport, the replication protocol and the node, as named constants.
//! Defaults of the configurable ones live in [`crate::transport::TransportConfig`] and
//! [`crate::NodeConfig`].

use std::time::Duration;

/// Largest Noise message, tag included (the Noise specification's limit).
pub const NOISE_MAX_MESSAGE: usize = 65_535;
/// Noise's authentication tag.
pub const NOISE_TAG: usize = 16;
/// Largest plaintext in one Noise transport message.
pub const MAX_FRAME_PLAINTEXT: usize = NOISE_MAX_MESSAGE - NOISE_TAG;
/// Largest application data in one frame (one byte is the frame kind).
pub const MAX_FRAME_DATA: usize = MAX_FRAME_PLAINTEXT - 1;

/// Largest replication message (checked when sending and while receiving, chunk by chunk).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Default time allowed for the whole handshake, identity proofs included.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may stay silent before it is dropped (keepalives are sent at a
/// third of it).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most entries in one `Entries` message.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 512;
/// Most notes in one `Clock` message (a larger clock is sent in several messages).
pub const MAX_NOTES_PER_MESSAGE: usize = 4096;
pub use scrip_feed::limits::{
    MAX_ATTACHMENT_BYTES, MAX_ATTACHMENT_KIND_BYTES, MAX_ATTACHMENTS_PER_ENTRY,
};
/// Most feature strings in a `Hello`, and their longest length.
pub const MAX_FEATURES: usize = 16;
/// Longest feature or protocol string.
pub const MAX_NAME_BYTES: usize = 64;
/// Most notes kept from one peer about feeds this node neither replicates nor holds (beyond
/// it they are dropped, and that peer's clock is not remembered for resuming).
pub const MAX_OTHER_NOTES_PER_PEER: usize = 4096;
/// Most peers whose clocks are remembered between sessions (the least recently seen is
/// forgotten first).
pub const MAX_PEER_MEMORIES: usize = 256;
/// Most fork proofs sent to a peer when a session starts.
pub const MAX_FORK_PROOFS_ON_CONNECT: usize = 256;
/// Most fork proofs held in memory, unjudged, about feeds whose first entry the node does not
/// hold yet (judged once it does; beyond this, the oldest is forgotten: a peer that holds the
/// proof sends it again on its next connection).
pub const MAX_UNJUDGED_PROOFS: usize = 256;

/// Most bytes (entries' headers and payloads, and their attachments) in one ingest batch (beside
/// the entry count, `NodeConfig::ingest_batch`): a connection holds at most three batches —
/// one being checked, one checked and waiting, one being stored — plus its queued messages.
pub const MAX_INGEST_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Most entries in one ingest batch of a node that ingests on its background thread (a
/// notary's node, `NodeConfig::background_ingest`), whatever `NodeConfig::ingest_batch` says:
/// a shorter check and a smaller commit at a time leave the cores and the disk to the notary
/// sooner. Measured with `scrip bench load` (loaded proposal p99, idle 1.5–2.3 ms): 2,048 per
/// batch 5.6–7.3 ms, 512 4.9–5.4 ms, 256 4.0–4.7 ms, 128 4.1–4.9 ms, 64 5.2–5.5 ms. The price:
/// the feed replicated into the notary at 34–36 k entries/s instead of 41–47 k, and the whole
/// run wrote 480–494 MB to the disk instead of 397 MB (smaller commits, more of sled's
/// rewriting).
pub const BACKGROUND_INGEST_BATCH: usize = 256;

/// Capacity of a connection's outgoing message queue (messages, each at most
/// [`MAX_MESSAGE_BYTES`]).
pub const SEND_QUEUE_CAPACITY: usize = 16;
/// Capacity of the node's command channel.
pub const COMMAND_CHANNEL_CAPACITY: usize = 256;
/// Capacity of the event broadcast (slow subscribers miss events and are told how many).
pub const EVENT_CHANNEL_CAPACITY: usize = 4096;
/// Capacity of the channel announcing newly stored entries to live sessions.
pub const STORED_CHANNEL_CAPACITY: usize = 8192;

/// Default cap on inbound bytes per second from one peer.
pub const DEFAULT_PEER_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
/// Default number of entries a session ingests per store batch.
pub const DEFAULT_INGEST_BATCH: usize = 2048;

/// Ingest jobs waiting for a node's background thread (see [`crate::background`]): a
/// connection has at most one in flight, so this only makes connections wait their turn.
pub const BACKGROUND_QUEUE: usize = 16;
