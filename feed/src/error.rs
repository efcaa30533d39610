//! The feed crate's one error type.
//!
//! Every validation rule has its own variant carrying what was expected and what was found, so
//! that a peer can log precisely why it refused an entry. [`Error::code`] gives a stable,
//! machine-readable name for each variant; the test vectors refer to errors by that name.

use crate::{EntryId, FeedId, Hash, Seq};

/// Result with the feed crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a fork proof is not a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForkProofDefect {
    /// Both halves are the same entry: one entry is not a fork.
    #[error("both headers are the same entry")]
    SameEntry,
    /// The halves were written by different authors.
    #[error("the headers have different authors")]
    DifferentAuthors,
    /// The halves sit at different sequence numbers.
    #[error("the headers have different sequence numbers ({first} and {second})")]
    DifferentSeqs {
        /// Seq of the first header.
        first: Seq,
        /// Seq of the second header.
        second: Seq,
    },
    /// The halves are not in canonical order (first id < second id).
    #[error("the headers are not in canonical order")]
    NotCanonicalOrder,
    /// A half's evidence is not sorted by kind, or names a kind twice.
    #[error("a half's evidence is not sorted by kind, or names a kind twice")]
    EvidenceOrder,
}

/// Everything that can go wrong in the feed crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- text forms, keys and key files -----
    /// A feed id's text form did not parse.
    #[error("invalid feed id {input:?}: {reason}")]
    InvalidFeedId {
        /// The text given (truncated).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry id's text form did not parse.
    #[error("invalid entry id {input:?}: {reason}")]
    InvalidEntryId {
        /// The text given (truncated).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key file is malformed.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// Path of the key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file can be read by other users.
    #[error(
        "key file {path} is readable by other users (mode {mode:o}); \
         if nobody else could have read it, run `chmod 600 {path}`, otherwise create a new key"
    )]
    KeyFilePermissions {
        /// Path of the key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system's random number generator failed.
    #[error("could not read random bytes from the operating system: {0}")]
    Randomness(String),

    // ----- encoding -----
    /// Something exceeds its size limit.
    #[error("{what} is too large: {found} bytes, the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The size found.
        found: usize,
    },
    /// Bytes do not decode as the expected type.
    #[error("{what} could not be decoded: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// Bytes decode, but are not the canonical encoding of what they decode to (over-long
    /// varints, trailing bytes, ...).
    #[error("{what} is not canonically encoded")]
    NonCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// A version byte we do not understand.
    #[error("unsupported {what} version: expected {expected}, found {found}")]
    UnsupportedVersion {
        /// What carries the version.
        what: &'static str,
        /// The version we speak.
        expected: u8,
        /// The version found.
        found: u8,
    },
    /// A content field breaks its rule (length, characters).
    #[error("invalid {field}: {reason}")]
    InvalidContent {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    // ----- entry validation rules -----
    /// The author is not a valid ed25519 point.
    #[error("author {author} is not a valid ed25519 public key")]
    InvalidAuthorKey {
        /// The author.
        author: FeedId,
    },
    /// The author key has small order: one signature could verify many messages.
    #[error("author {author} is a weak (small-order) ed25519 key")]
    WeakAuthorKey {
        /// The author.
        author: FeedId,
    },
    /// The signature does not verify (strict ed25519).
    #[error("bad signature on entry {author} #{seq}")]
    BadSignature {
        /// The author.
        author: FeedId,
        /// The entry's seq.
        seq: Seq,
    },
    /// Sequence numbers start at 1.
    #[error("entry by {author} has seq 0; sequence numbers start at 1")]
    ZeroSeq {
        /// The author.
        author: FeedId,
    },
    /// The first entry links to nothing.
    #[error("entry {author} #1 has a prev link {found}; the first entry has none")]
    UnexpectedPrev {
        /// The author.
        author: FeedId,
        /// The link found.
        found: EntryId,
    },
    /// Every entry after the first links to its predecessor.
    #[error("entry {author} #{seq} has no prev link")]
    MissingPrev {
        /// The author.
        author: FeedId,
        /// The entry's seq.
        seq: Seq,
    },
    /// The entry is not the next one after the known head.
    #[error("entry by {author}: expected seq {expected}, found {found}")]
    SeqMismatch {
        /// The author.
        author: FeedId,
        /// The seq that would extend the chain.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// The entry links to something other than the previous entry.
    #[error("entry {author} #{seq}: prev is {found}, expected {expected}")]
    PrevMismatch {
        /// The author.
        author: FeedId,
        /// The entry's seq.
        seq: Seq,
        /// The id of the previous entry.
        expected: EntryId,
        /// The link found.
        found: EntryId,
    },
    /// The entry is by someone else than the feed it is appended to.
    #[error("entry by {found} offered for feed {expected}")]
    AuthorMismatch {
        /// The feed's author.
        expected: FeedId,
        /// The entry's author.
        found: FeedId,
    },
    /// The payload length differs from the header's.
    #[error("payload of {author} #{seq} is {found} bytes, the header says {expected}")]
    PayloadLengthMismatch {
        /// The author.
        author: FeedId,
        /// The entry's seq.
        seq: Seq,
        /// Length in the header.
        expected: u32,
        /// Length of the payload given.
        found: usize,
    },
    /// The payload hash differs from the header's.
    #[error("payload of {author} #{seq} hashes to {found}, the header says {expected}")]
    PayloadHashMismatch {
        /// The author.
        author: FeedId,
        /// The entry's seq.
        seq: Seq,
        /// Hash in the header.
        expected: Hash,
        /// Hash of the payload given.
        found: Hash,
    },
    /// A feed has reached the largest sequence number.
    #[error("feed {author} has no sequence numbers left")]
    SeqExhausted {
        /// The author.
        author: FeedId,
    },

    // ----- fork proofs -----
    /// A fork proof does not prove a fork.
    #[error("invalid fork proof: {defect}")]
    InvalidForkProof {
        /// Why not.
        defect: ForkProofDefect,
    },
    /// Appending found a different entry already at that seq: the author forked its feed.
    /// The proof has been stored and the feed frozen.
    #[error("fork detected: {author} signed two different entries at seq {seq}")]
    Fork {
        /// The author.
        author: FeedId,
        /// The seq signed twice.
        seq: Seq,
    },
    /// The feed has a known fork and accepts no more entries.
    #[error("feed {author} is frozen: it forked at seq {seq}")]
    Frozen {
        /// The author.
        author: FeedId,
        /// Where it forked.
        seq: Seq,
    },

    /// An attachment names an entry the store does not hold.
    #[error("no stored entry {id} to attach to")]
    UnknownEntry {
        /// The entry id.
        id: EntryId,
    },
    /// The entry arrived without an attachment its feed requires (e.g. a wallet entry without
    /// its notaries' certificate): it does not count, and is not stored.
    #[error("entry {id} has no valid {kind} attachment, which its feed requires")]
    MissingAttachment {
        /// The entry id.
        id: EntryId,
        /// The kind required.
        kind: String,
    },
    /// An entry already has the most attachments allowed.
    #[error("entry {id} already has {max} attachments")]
    TooManyAttachments {
        /// The entry id.
        id: EntryId,
        /// The limit.
        max: usize,
    },

    // ----- storage -----
    /// An I/O error.
    #[error("{context}: {message}")]
    Io {
        /// What we were doing.
        context: String,
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// The storage engine failed.
    #[error("storage error: {detail}")]
    Storage {
        /// The engine's message.
        detail: String,
    },
    /// A write failed part way (a full disk, an I/O error): it may or may not have been made.
    /// The store refuses further writes until it is reopened ([`Error::RestartNeeded`]), which
    /// finishes or drops the last commit (the redo journal) and checks it.
    #[error(
        "writing the store at {path} failed ({detail}): the write may or may not have been made; \
         restart (the store then finishes or drops its last write and checks itself; nothing \
         needs to be moved)"
    )]
    WriteUncertain {
        /// Path of the store.
        path: String,
        /// What failed.
        detail: String,
    },
    /// An earlier write failed: the store takes no more writes until it is reopened.
    #[error(
        "an earlier write to the store at {path} failed (a full disk?): nothing was written; \
         free some space if needed and restart, so that the store checks itself"
    )]
    RestartNeeded {
        /// Path of the store.
        path: String,
    },
    /// The store is damaged.
    #[error(
        "the feed store at {path} is corrupt ({detail}). Move the directory aside (keep it: it \
         may hold data worth recovering), then re-sync from peers or restore from a backup"
    )]
    Corrupt {
        /// Path of the store.
        path: String,
        /// What was found.
        detail: String,
    },
    /// The store was written by a newer version of scrip (a later format than this build
    /// reads): it was not changed.
    #[error(
        "the store at {path} was written by a newer version of scrip (store format {found}; this \
         build reads {reads}): it was not changed; use that version or a later one"
    )]
    NewerFormat {
        /// Path of the store.
        path: String,
        /// The format marker found, as text.
        found: String,
        /// The formats this build reads, as text.
        reads: String,
    },
    /// Another process has the store open.
    #[error("the feed store at {path} is in use by another process (is a daemon running?)")]
    Locked {
        /// Path of the store.
        path: String,
    },
}

impl Error {
    /// A stable, machine-readable name for the variant (used by the test vectors and in logs).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidFeedId { .. } => "invalid-feed-id",
            Error::InvalidEntryId { .. } => "invalid-entry-id",
            Error::KeyFile { .. } => "key-file",
            Error::KeyFilePermissions { .. } => "key-file-permissions",
            Error::Randomness(_) => "randomness",
            Error::TooLarge { .. } => "too-large",
            Error::Malformed { .. } => "malformed",
            Error::NonCanonical { .. } => "non-canonical",
            Error::UnsupportedVersion { .. } => "unsupported-version",
            Error::InvalidContent { .. } => "invalid-content",
            Error::InvalidAuthorKey { .. } => "invalid-author-key",
            Error::WeakAuthorKey { .. } => "weak-author-key",
            Error::BadSignature { .. } => "bad-signature",
            Error::ZeroSeq { .. } => "zero-seq",
            Error::UnexpectedPrev { .. } => "unexpected-prev",
            Error::MissingPrev { .. } => "missing-prev",
            Error::SeqMismatch { .. } => "seq-mismatch",
            Error::PrevMismatch { .. } => "prev-mismatch",
            Error::AuthorMismatch { .. } => "author-mismatch",
            Error::PayloadLengthMismatch { .. } => "payload-length-mismatch",
            Error::PayloadHashMismatch { .. } => "payload-hash-mismatch",
            Error::SeqExhausted { .. } => "seq-exhausted",
            Error::InvalidForkProof { defect } => match defect {
                ForkProofDefect::SameEntry => "fork-proof-same-entry",
                ForkProofDefect::DifferentAuthors => "fork-proof-different-authors",
                ForkProofDefect::DifferentSeqs { .. } => "fork-proof-different-seqs",
                ForkProofDefect::NotCanonicalOrder => "fork-proof-order",
                ForkProofDefect::EvidenceOrder => "fork-proof-evidence-order",
            },
            Error::Fork { .. } => "fork",
            Error::UnknownEntry { .. } => "unknown-entry",
            Error::TooManyAttachments { .. } => "too-many-attachments",
            Error::MissingAttachment { .. } => "missing-attachment",
            Error::Frozen { .. } => "frozen",
            Error::Io { .. } => "io",
            Error::Storage { .. } => "storage",
            Error::Corrupt { .. } => "corrupt",
            Error::NewerFormat { .. } => "newer-format",
            Error::WriteUncertain { .. } => "write-uncertain",
            Error::RestartNeeded { .. } => "restart-needed",
            Error::Locked { .. } => "locked",
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, err: &std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    /// True for errors that say the entry itself is invalid (as opposed to storage trouble).
    pub fn is_invalid_entry(&self) -> bool {
        !matches!(
            self,
            Error::Io { .. }
                | Error::Storage { .. }
                | Error::Corrupt { .. }
                | Error::NewerFormat { .. }
                | Error::Locked { .. }
                | Error::WriteUncertain { .. }
                | Error::RestartNeeded { .. }
        )
    }
}

/// Shortens untrusted text before it goes into an error message.
pub(crate) fn clip(input: &str) -> String {
    const MAX: usize = 80;
    if input.len() <= MAX {
        return input.to_owned();
    }
    let mut end = MAX;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}
