//! scrip-replicate: moving feeds between peers.
//!
//! This crate will own (see issue "[replicate]"):
//! - the Noise transport (`Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`, the PSK being the network key)
//!   with the Noise static key bound to the peer's ed25519 feed identity;
//! - length-prefixed, versioned framing within Noise's 65,535-byte message limit;
//! - the replication session: a sans-IO state machine (hello, vector clocks, catch-up, live
//!   streaming, fork-proof gossip), driven by a thin tokio task;
//! - the gossip node: listener, dialer, peer table, follow-graph scope.
//!
//! It must not decide ledger validity: it moves signed entries (validated by `scrip-feed`) and
//! opaque attachments.
