//! scrip-notary: notaries that countersign wallet entries, and the wallet client.
//!
//! This crate will own (see issue "[notary]"):
//! - the notary decision, a pure state machine over a notary's view of a wallet's certified prefix;
//! - vote persistence (persist and fsync before signing) and the amnesia guard;
//! - the notary service and the wallet client protocol over the replicate transport.
//!
//! It must never trust a client's claims: every claim is re-checked against certified data.
