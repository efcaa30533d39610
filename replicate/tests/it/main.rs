//! scrip-replicate integration tests, one binary: transport, session, loopback nodes, attachments, hostile peers, the turmoil simulation.
//!
//! All of a crate's integration tests link into this one binary (one link step instead of one
//! per file); each file is a module. Run one with `cargo test -p <crate> --test it <module>::`.

mod common;

mod attachments;
mod byzantine;
mod loopback;
mod session;
mod simulation;
mod store_errors;
mod transport;
