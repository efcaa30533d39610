//! scrip-feed: identities, signed hash-chained feed entries, validation, fork proofs and the
//! durable feed store.
//!
//! Every identity is an ed25519 key and owns exactly one feed: a hash chain of signed entries.
//! This crate knows nothing about networks or money; it is the layer every other crate trusts to
//! say whether bytes are a valid entry.
//!
//! # Layout
//!
//! - [`identity`]: [`FeedId`] (a public key, text form `@<base58>`), [`Keypair`] (zeroized,
//!   redacted `Debug`), [`Signature`], and the one canonical signature check
//!   [`verify_signature`] that every component uses, and its batch form `verify_batch` (ed25519
//!   under ZIP-215's rules, feed.md §4).
//! - [`hash`]: [`Hash`](struct@Hash) (blake3) and [`EntryId`] (blake3 of a signed header, text form `%<base58>`).
//! - [`entry`]: the signed entry header, [`Entry`] (header bytes exactly as received, plus an
//!   optional detached payload), and entry creation.
//! - [`content`]: the plain-feed payload types ([`Content`]), versioned and canonically encoded.
//! - [`codec`]: canonical postcard decoding (decode, re-encode, compare).
//! - [`validate`]: validation as named free functions, each listing its rules.
//! - [`fork`]: [`ForkProof`], two distinct signed headers by one author at one seq.
//! - [`store`]: the [`Store`] trait, its sled implementation ([`SledStore`]) and the in-memory
//!   reference implementation ([`MemoryStore`]).
//! - [`keyfile`]: the versioned secret key file, and how any file holding secrets is created
//!   (owner-only, whole or not at all, never over an existing one).
//! - [`limits`]: every size bound, as named constants.
//! - [`rng`]: [`rng::SplitMix64`], the seeded generator protocol logic and tests draw from.
//! - [`bench`](mod@bench): the macro benchmarks (`cargo bench`, `scrip bench`).
//! - [`bounded`]: [`bounded::FifoMap`], the map that forgets its oldest keys (bounded memories).
//!
//! # Purity
//!
//! Encoding, decoding, validation and fork proofs are pure and synchronous: time comes in as an
//! argument ([`Timestamp`]) and randomness only through [`Keypair::generate`] (keys) or a seeded
//! [`rng::SplitMix64`]. The store and key files are the only I/O, and they are synchronous too
//! (callers run them off async threads).
//!
//! The format is specified in `docs/protocol/feed.md` and frozen by the vectors in
//! `docs/protocol/vectors/feed.json`.

pub mod bench;
pub mod bounded;
pub mod codec;
pub mod content;
pub mod entry;
mod error;
pub mod fork;
pub mod hash;
pub mod identity;
pub mod keyfile;
pub mod limits;
pub mod rng;
pub mod store;
pub mod validate;

pub use content::Content;
pub use entry::{Entry, EntryBytes, Head, Header, HeaderFields, Seq, Timestamp};
pub use error::{Error, ForkProofDefect, Result};
pub use fork::ForkProof;
pub use hash::{EntryId, Hash};
pub use identity::{AuthorKey, FeedId, Keypair, Signature, verify_signature};
pub use store::{
    Appended, Attachment, IngestReport, MemoryStore, PayloadPolicy, SledOptions, SledStore, Store,
};
