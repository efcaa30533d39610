//! scrip-ledger: wallet content, certificates, the deterministic fold and the audit.
//!
//! This crate will own (see issue "[ledger]"):
//! - wallet content types (`Genesis`, `Mint`, `Order`, `Accept`, `Reject`, `Reclaim`) carried as
//!   the ledger's app content in feed payloads;
//! - notary votes and certificates, the quorum rule and the cross-group overlap rule;
//! - `fold`, a pure function from certified logs to balances, orders and supply, with an outcome
//!   for every entry, and `check`, the question a notary asks before voting;
//! - `audit`, a step-by-step replay of one wallet's log.
//!
//! It is pure and synchronous: no tokio, no sled, no clock.
