//! The notary crate's one error type.

use scrip_feed::FeedId;

use crate::decision::Refusal;

/// Result with the notary crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong for a notary or a wallet client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The feed layer (store, entry) failed.
    #[error(transparent)]
    Feed(#[from] scrip_feed::Error),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] scrip_replicate::transport::Error),
    /// Ledger content is malformed.
    #[error(transparent)]
    Ledger(#[from] scrip_ledger::Error),
    /// The notary service (or the runtime under a client) is shutting down.
    #[error("the notary is shutting down")]
    Shutdown,
    /// A vote store already holds another entry for a slot.
    #[error("slot #{seq} of {wallet} already holds a vote for another entry")]
    SlotTaken {
        /// The wallet.
        wallet: FeedId,
        /// The slot.
        seq: u64,
    },
    /// A vote store already holds a fate of an order that excludes the one to record.
    #[error("order {order} already holds a fate that excludes this one")]
    FateTaken {
        /// The order.
        order: scrip_feed::EntryId,
    },
    /// The vote log is damaged (not a torn last commit, which is cut off at open).
    #[error(
        "the vote log at {path} is damaged ({detail}). This notary must not vote until it is \
         repaired: a lost vote could let it vote twice for one slot. Keep the file as it is and \
         stop serving as a notary (`docs/protocol/notary.md` §4)"
    )]
    VoteLogDamaged {
        /// The log's path.
        path: String,
        /// What was found.
        detail: String,
    },
    /// Another process has the vote store open.
    #[error("the vote store at {path} is in use by another process (is a daemon running?)")]
    VoteLogLocked {
        /// The store's directory.
        path: String,
    },
    /// Writing or syncing a vote commit failed: it may or may not be in the log.
    #[error(
        "writing the vote log at {path} failed ({detail}): the votes may or may not have been \
         recorded, and none was signed. Restart the notary (it then reads the log again and cuts \
         off an unfinished commit)"
    )]
    VoteLogWriteUncertain {
        /// The log's path.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The vote log needed room and the disk had none: nothing of the commit was written (the
    /// log takes commits again once there is room).
    #[error(
        "the vote log at {path} needs room and could not get it ({detail}): nothing was \
         recorded and none of these votes was signed; free some space"
    )]
    VoteLogFull {
        /// The log's path.
        path: String,
        /// What failed.
        detail: String,
    },
    /// An earlier vote commit failed: the log takes no more until the notary restarts.
    #[error(
        "an earlier write to the vote log at {path} failed (a full disk?): nothing was \
         written; free some space if needed and restart the notary"
    )]
    VoteLogRestartNeeded {
        /// The log's path.
        path: String,
    },
    /// Enough notaries refused the entry the same way that no honest one voted for it: the slot
    /// is free again and nothing was written.
    #[error("refused by {count} notaries: {refusal}")]
    Refused {
        /// The refusal.
        refusal: Box<Refusal>,
        /// How many notaries gave it.
        count: usize,
    },
    /// The slot is locked by another entry of this wallet (the wallet equivocated, e.g. two
    /// devices proposed different entries). The slot stays locked: see `docs/protocol/notary.md`.
    #[error("slot #{seq} is locked by another entry of this wallet; it cannot be certified")]
    Locked {
        /// The slot.
        seq: u64,
    },
    /// No quorum before the deadline (notaries down or slow); the proposal is kept and will be
    /// retried, byte for byte.
    #[error(
        "no quorum yet: {votes} of {needed} votes ({detail}); the entry is kept and will be retried"
    )]
    NoQuorum {
        /// Votes gathered.
        votes: usize,
        /// Votes needed.
        needed: usize,
        /// What the others said.
        detail: String,
    },
    /// The local log is behind what the notaries certified (a restored backup, a second
    /// device) and the missing entries could not be fetched: refusing to propose.
    #[error("this wallet's log is at #{local} but #{certified} is certified; fetch it first")]
    Behind {
        /// Local head.
        local: u64,
        /// Certified head reported by notaries.
        certified: u64,
    },
    /// Fewer than a quorum of the wallet's notaries answered a question about its head: this
    /// device cannot tell which slots are taken (it may be a restored copy), so it signs
    /// nothing.
    #[error(
        "only {answered} of the {needed} notaries needed answered about this wallet's head \
         ({detail}); nothing was signed"
    )]
    HeadUnconfirmed {
        /// Notaries that answered.
        answered: usize,
        /// A quorum.
        needed: usize,
        /// What the others said.
        detail: String,
    },
    /// An entry an earlier call signed is still waiting for its certificate: nothing new is
    /// signed before it is settled (`WalletClient::prepare`).
    #[error("entry #{seq} ({entry}) signed earlier is still pending; settle it first")]
    Pending {
        /// Its slot.
        seq: u64,
        /// Its id.
        entry: String,
    },
    /// A notary could not be reached.
    #[error("notary {notary} at {address} cannot be reached: {reason}")]
    Unreachable {
        /// The notary.
        notary: String,
        /// Its address.
        address: String,
        /// Why.
        reason: String,
    },
    /// This client already has as many exchanges with the notary in flight or waiting as it
    /// allows ([`crate::client::EXCHANGES_PER_NOTARY`]): the notary is slow or unreachable.
    #[error("notary {notary} is busy with earlier requests from this client")]
    Busy {
        /// The notary.
        notary: String,
    },
    /// A peer broke the notary protocol.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What happened.
        reason: String,
    },
    /// The wallet has no genesis yet, or its content is not what was expected.
    #[error("{0}")]
    Wallet(String),
    /// A local file could not be read or written.
    #[error("{context}: {message}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error.
    pub fn io(context: impl Into<String>, err: &std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            message: err.to_string(),
        }
    }
}
