//! scrip-cli integration tests, one binary: the real `scrip` binary on bad input, with daemons, the demo, a network with faults (Jepsen-style), and the notary-node bridge.
//!
//! All of a crate's integration tests link into this one binary (one link step instead of one
//! per file); each file is a module. Run one with `cargo test -p <crate> --test it <module>::`.

mod common;

mod bad_input;
mod bridge;
mod daemon;
mod demo;
mod network;
mod web;
