//! scrip-tests: workspace-level checks.
//!
//! The multi-process scenarios run the real `scrip` binary and live in `cli/tests/` (Cargo builds
//! a binary only for its own package's integration tests). What lives here checks the workspace
//! as a whole: [`layers`], the crate and module arrows against `docs/ARCHITECTURE.md`.

pub mod layers;
