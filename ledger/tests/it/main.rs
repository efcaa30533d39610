//! scrip-ledger integration tests, one binary: the rules, the audit, the fold invariants (proptest).
//!
//! All of a crate's integration tests link into this one binary (one link step instead of one
//! per file); each file is a module. Run one with `cargo test -p <crate> --test it <module>::`.

mod audit;
mod ends;
mod invariants;
mod rules;
mod vectors;
