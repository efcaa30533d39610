//! The ledger crate's error type (malformed input) and its rejection reasons (rule violations,
//! which are data, not errors: an entry that breaks a rule gets an outcome saying why).

use scrip_feed::{EntryId, FeedId};
use serde::Serialize;

use crate::amount::{Amount, Currency};

/// Malformed input: bytes that are not a wallet entry, a certificate or a citation, or text that
/// is not an amount or currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An amount's text form is invalid.
    #[error("invalid amount {input:?}: {reason}")]
    InvalidAmount {
        /// The text (clipped).
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A currency is invalid.
    #[error("invalid currency: {reason}")]
    InvalidCurrency {
        /// What is wrong.
        reason: String,
    },
    /// A wallet address's text form is invalid (typed wrong, or not an address at all).
    #[error("{input:?} is not a wallet address: {}", defect.reason())]
    InvalidAddress {
        /// The text (clipped).
        input: String,
        /// What is wrong.
        defect: crate::address::AddressDefect,
    },
    /// A notary set is invalid.
    #[error("invalid notary set: {reason}")]
    InvalidNotarySet {
        /// What is wrong.
        reason: String,
    },
    /// Bytes do not decode canonically, or break a size limit.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// What was decoded.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The feed layer refused something.
    #[error(transparent)]
    Feed(#[from] scrip_feed::Error),
}

/// Why a certificate does not certify an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum CertificateError {
    /// The certificate is for another entry.
    #[error("the certificate is for entry {found}, not {expected}")]
    WrongEntry {
        /// The entry to certify.
        expected: String,
        /// The entry the certificate names.
        found: String,
    },
    /// The certificate is for another round.
    #[error("the certificate is for round {found}, expected round {expected}")]
    WrongRound {
        /// Expected round.
        expected: u32,
        /// Found round.
        found: u32,
    },
    /// A notary signed twice (or votes are not in canonical order).
    #[error("notary {notary} appears twice or out of order")]
    DuplicateSigner {
        /// The notary.
        notary: String,
    },
    /// A signer is not in the wallet's notary set.
    #[error("{notary} is not one of the wallet's notaries")]
    UnknownSigner {
        /// The signer.
        notary: String,
    },
    /// Too few votes.
    #[error("{have} votes, the quorum is {need}")]
    BelowQuorum {
        /// Votes present.
        have: usize,
        /// Votes needed.
        need: usize,
    },
    /// A vote's signature does not verify.
    #[error("the vote of {notary} does not verify")]
    BadSignature {
        /// The notary.
        notary: String,
    },
    /// A fate certificate for another fate.
    #[error("the certificate is for the fate {found}, expected {expected}")]
    WrongFate {
        /// The fate expected.
        expected: &'static str,
        /// The fate the certificate names.
        found: &'static str,
    },
    /// The certificate bytes are malformed or not canonical.
    #[error("malformed certificate: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
}

/// Why a wallet entry does not count. Every variant has a named unit test that produces it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum Rejection {
    // ----- certification and log shape (the wallet's log stops here) -----
    /// The entry has no certificate.
    #[error("entry #{seq} is not certified")]
    NotCertified {
        /// Its seq.
        seq: u64,
    },
    /// The entry's certificate is invalid.
    #[error("entry #{seq} has an invalid certificate: {error}")]
    InvalidCertificate {
        /// Its seq.
        seq: u64,
        /// Why.
        error: CertificateError,
    },
    /// Entries are missing before this one, or an earlier entry stopped the log.
    #[error("gap in the log: expected entry #{expected}, found #{found}")]
    Gap {
        /// The seq that would come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The entry fails the feed's rules (signature, link, payload).
    #[error("entry #{seq} is not a valid feed entry: {reason}")]
    InvalidEntry {
        /// Its seq.
        seq: u64,
        /// The feed layer's reason.
        reason: String,
    },
    /// The entry's payload is not wallet content.
    #[error("entry #{seq} is not wallet content: {reason}")]
    NotWalletContent {
        /// Its seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The first entry is not a valid genesis.
    #[error("the wallet's first entry is not a genesis")]
    MissingGenesis,
    /// A genesis after the first entry.
    #[error("a genesis can only be the first entry")]
    GenesisNotFirst,
    /// The genesis's notary set is invalid.
    #[error("invalid notary set: {reason}")]
    BadNotarySet {
        /// Why.
        reason: String,
    },

    // ----- ledger rules (the entry changes nothing; the log goes on) -----
    /// An order for more than the balance.
    #[error("overspend: balance {balance}, order {amount} (minor units of {currency})")]
    Overspend {
        /// The currency.
        currency: String,
        /// The balance before.
        balance: Amount,
        /// The amount ordered.
        amount: Amount,
    },
    /// An order in a currency the wallet holds none of.
    #[error("unknown currency {currency}: this wallet has never held it")]
    UnknownCurrency {
        /// The currency.
        currency: String,
    },
    /// An amount of zero.
    #[error("the amount is zero")]
    ZeroAmount,
    /// A wallet paying itself.
    #[error("a wallet cannot pay itself")]
    SelfPayment,
    /// A mint by someone other than the currency's issuer.
    #[error("only {issuer} may mint {currency}")]
    MintByNonIssuer {
        /// The currency.
        currency: String,
        /// Its issuer.
        issuer: String,
    },
    /// A mint with other decimals than the currency's first mint.
    #[error("{code} was first minted with {first} decimals, not {found}")]
    DecimalsMismatch {
        /// The code.
        code: String,
        /// Decimals of the first mint.
        first: u8,
        /// Decimals now.
        found: u8,
    },
    /// Arithmetic would overflow (a u64 of minor units).
    #[error("amount overflow")]
    Overflow,
    /// A memo or reason longer than allowed.
    #[error("{field} is {len} bytes, the limit is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An accept or reject of an order addressed to another wallet.
    #[error("order {order} is addressed to {to}, not to this wallet")]
    NotAddressedToYou {
        /// The order.
        order: String,
        /// Its receiver.
        to: String,
    },
    /// A second accept or reject of one order.
    #[error("order {order} is already resolved")]
    AlreadyResolved {
        /// The order.
        order: String,
    },
    /// A second reclaim, cancel or refund of one order: its escrow was already taken back.
    #[error("order {order} is already taken back")]
    DoubleReclaim {
        /// The order.
        order: String,
    },
    /// A reclaim whose citation is not a rejection of the order.
    #[error("reclaim of order {order} without a rejection of it: {reason}")]
    ReclaimWithoutRejection {
        /// The order.
        order: String,
        /// What was cited instead.
        reason: String,
    },
    /// A reclaim citing a rejection by someone other than the order's receiver.
    #[error("the rejection is by {by}, but order {order} was addressed to {to}")]
    NotTheReceiversRejection {
        /// The order.
        order: String,
        /// Who rejected.
        by: String,
        /// The receiver.
        to: String,
    },
    /// A reclaim of an order this wallet did not make (or not in its log).
    #[error("order {order} is not an order of this wallet")]
    UnknownOrder {
        /// The order.
        order: String,
    },
    /// An accept of a hash-locked order without its preimage.
    #[error("order {order} is hash-locked: accepting it needs the preimage")]
    MissingPreimage {
        /// The order.
        order: String,
    },
    /// An accept whose preimage does not open the order's hash lock.
    #[error("the preimage does not open the hash lock of order {order}")]
    WrongPreimage {
        /// The order.
        order: String,
    },
    /// An accept carrying a preimage for an order without a hash lock.
    #[error("order {order} has no hash lock, yet the accept carries a preimage")]
    UnexpectedPreimage {
        /// The order.
        order: String,
    },
    /// A cancel of a hash-locked order (it is refunded after its expiry only).
    #[error("order {order} is hash-locked: it cannot be cancelled, only refunded after its expiry")]
    ConditionalCancel {
        /// The order.
        order: String,
    },
    /// A refund of an order without an expiry (a version-1 order: cancel it instead).
    #[error("order {order} has no expiry: cancel it instead")]
    NoExpiry {
        /// The order.
        order: String,
    },
    /// An accept of an order with an expiry that does not carry the claim certificate.
    #[error("order {order} has an expiry: accepting it needs its claim certificate")]
    MissingClaim {
        /// The order.
        order: String,
    },
    /// An accept of a version-1 order carrying a claim certificate (such orders are not claimed).
    #[error("order {order} has no expiry and is not claimed, yet the accept carries a claim")]
    UnexpectedClaim {
        /// The order.
        order: String,
    },
    /// A claim or void certificate that does not verify under the order wallet's set.
    #[error("the fate certificate of order {order} is invalid: {error}")]
    InvalidFate {
        /// The order.
        order: String,
        /// Why.
        error: CertificateError,
    },
    /// A citation that cannot be read.
    #[error("missing or unreadable citation: {reason}")]
    MissingCitation {
        /// Why.
        reason: String,
    },
    /// A cited entry or genesis whose certificate does not verify.
    #[error("the cited entry's certificate is invalid: {error}")]
    CitedCertificate {
        /// Why.
        error: CertificateError,
    },
    /// A cited entry that is not an order (for accept/reject).
    #[error("the cited entry is not an order")]
    NotAnOrder,
    /// Notary sets that do not overlap enough for a cross-group transfer.
    #[error(
        "the notary sets overlap in {overlap} notaries, {required} are needed \
         (sender set {sender_set}, receiver set {receiver_set})"
    )]
    OverlapTooSmall {
        /// Notaries in both sets.
        overlap: usize,
        /// Needed: 2·f_sender + f_receiver + 1.
        required: usize,
        /// The set whose certificate is trusted.
        sender_set: String,
        /// The set relying on it.
        receiver_set: String,
    },
}

impl Rejection {
    /// True for rejections that stop the wallet's log: nothing after them counts.
    pub fn halts(&self) -> bool {
        matches!(
            self,
            Rejection::NotCertified { .. }
                | Rejection::InvalidCertificate { .. }
                | Rejection::Gap { .. }
                | Rejection::InvalidEntry { .. }
                | Rejection::MissingGenesis
                | Rejection::BadNotarySet { .. }
        )
    }

    /// A stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotCertified { .. } => "not-certified",
            Rejection::InvalidCertificate { .. } => "invalid-certificate",
            Rejection::Gap { .. } => "gap",
            Rejection::InvalidEntry { .. } => "invalid-entry",
            Rejection::NotWalletContent { .. } => "not-wallet-content",
            Rejection::MissingGenesis => "missing-genesis",
            Rejection::GenesisNotFirst => "genesis-not-first",
            Rejection::BadNotarySet { .. } => "bad-notary-set",
            Rejection::Overspend { .. } => "overspend",
            Rejection::UnknownCurrency { .. } => "unknown-currency",
            Rejection::ZeroAmount => "zero-amount",
            Rejection::SelfPayment => "self-payment",
            Rejection::MintByNonIssuer { .. } => "mint-by-non-issuer",
            Rejection::DecimalsMismatch { .. } => "decimals-mismatch",
            Rejection::Overflow => "overflow",
            Rejection::TooLong { .. } => "too-long",
            Rejection::NotAddressedToYou { .. } => "not-addressed-to-you",
            Rejection::AlreadyResolved { .. } => "already-resolved",
            Rejection::DoubleReclaim { .. } => "double-reclaim",
            Rejection::MissingPreimage { .. } => "missing-preimage",
            Rejection::WrongPreimage { .. } => "wrong-preimage",
            Rejection::UnexpectedPreimage { .. } => "unexpected-preimage",
            Rejection::ConditionalCancel { .. } => "conditional-cancel",
            Rejection::NoExpiry { .. } => "no-expiry",
            Rejection::MissingClaim { .. } => "missing-claim",
            Rejection::UnexpectedClaim { .. } => "unexpected-claim",
            Rejection::InvalidFate { .. } => "invalid-fate",
            Rejection::ReclaimWithoutRejection { .. } => "reclaim-without-rejection",
            Rejection::NotTheReceiversRejection { .. } => "not-the-receivers-rejection",
            Rejection::UnknownOrder { .. } => "unknown-order",
            Rejection::MissingCitation { .. } => "missing-citation",
            Rejection::CitedCertificate { .. } => "cited-certificate",
            Rejection::NotAnOrder => "not-an-order",
            Rejection::OverlapTooSmall { .. } => "overlap-too-small",
        }
    }
}

/// Shorthand used in rejections: ids as text.
pub(crate) fn id_text(id: &EntryId) -> String {
    id.to_string()
}

pub(crate) fn feed_text(id: &FeedId) -> String {
    id.to_string()
}

pub(crate) fn currency_text(currency: &Currency) -> String {
    currency.to_string()
}
