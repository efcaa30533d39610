//! scrip-tests: workspace integration tests.
//!
//! Multi-peer and multi-process scenarios that span several crates live here, under `tests/`.
//! This library holds the helpers they share.
