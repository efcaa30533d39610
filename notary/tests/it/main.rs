//! scrip-notary integration tests, one binary: wire vectors, flows, adversarial clients and notaries, SIGKILL crash tests, the Jepsen-style bank.
//!
//! All of a crate's integration tests link into this one binary (one link step instead of one
//! per file); each file is a module. Run one with `cargo test -p <crate> --test it <module>::`.

mod common;

mod adversarial;
mod bank;
mod crash;
mod fate_sim;
mod fates;
mod flows;
mod wire;
