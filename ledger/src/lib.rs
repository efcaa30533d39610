//! scrip-ledger: wallet entries, certificates, the deterministic fold and the audit.
//!
//! Pure and synchronous: no tokio, no sled, no clock. A rule violation is data (an outcome with
//! a [`Rejection`]), not an error.
//!
//! # Layout
//!
//! - [`amount`]: [`Amount`] (u64 minor units, checked arithmetic, exact decimal parsing) and
//!   [`Currency`] (issuer wallet, code, decimals).
//! - [`content`]: what a wallet writes ([`WalletEntry`]: genesis, mint, order, accept, reject,
//!   reclaim), carried as the feed's `App` content; credits embed the certified entries they cite.
//! - [`certificate`]: notary sets, votes (`scrip/vote/v1`), certificates, the quorum
//!   q = n − ⌊(n−1)/3⌋ and the cross-group overlap rule.
//! - [`fate`]: the fate of an order (claimed, or void: cancelled or expired), decided once per
//!   order by a quorum of its sender's notaries and cited by the accept, cancel or refund.
//! - [`verify`]: how signatures are checked ([`SignatureCheck`]) and citation verification.
//! - [`wallet`]: one wallet's state and the rules for its next entry ([`WalletState::evaluate`]
//!   is the exact question a notary asks before voting).
//! - [`state`]: the fold ([`fold`], [`LedgerState`]): balances, orders, supply, conservation,
//!   a canonical state hash.
//! - [`audit`](mod@audit): replaying one wallet's log into a step-by-step report.
//! - [`bench`](mod@bench): the ledger's macro benchmarks.
//!
//! The format and rules are specified in `docs/protocol/ledger.md`.

pub mod address;
pub mod amount;
pub mod audit;
pub mod bench;
pub mod certificate;
pub mod content;
mod error;
pub mod fate;
pub mod kit;
pub mod state;
pub mod verify;
pub mod wallet;

pub use address::WalletAddress;
pub use amount::{Amount, Currency, CurrencyCode, short_currency};
pub use audit::{AuditReport, AuditStep, Auditor, Verdict, audit};
pub use certificate::{Certificate, NotarySet, Vote, VoteSubject, check_overlap, overlap_required};
pub use content::{CertifiedBytes, Citation, WalletEntry};
pub use error::{CertificateError, Error, Rejection};
pub use fate::{Fate, FateCertificate, FateSubject};
pub use state::{CertifiedEntry, LedgerState, OrderStatus, OrderView, Totals, fold};
pub use verify::{Precomputed, SignatureCheck, TrustSignatures, VerifyAll};
pub use wallet::{Effect, Outcome, WalletState};
