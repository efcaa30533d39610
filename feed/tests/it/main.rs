//! scrip-feed integration tests, one binary: the store against its model, crash tests that kill a child process, validation, the frozen vectors.
//!
//! All of a crate's integration tests link into this one binary (one link step instead of one
//! per file); each file is a module. Run one with `cargo test -p <crate> --test it <module>::`.

mod common;

mod crash;
mod model;
mod store;
mod validation;
mod vectors;
