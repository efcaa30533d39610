//! The notary protocol's messages, over the replicate transport (Noise, same network key):
//! one request, one response. Each message is `postcard((NOTARY_WIRE_VERSION: u8, message))`,
//! decoded canonically. Variants are only ever appended.

use scrip_feed::{EntryBytes, EntryId, FeedId, Signature, codec};
use scrip_ledger::content::{Citation, Preimage};
use scrip_ledger::{CertifiedBytes, Fate, Vote};
use serde::{Deserialize, Serialize};

use crate::decision::Refusal;
use crate::error::{Error, Result};

/// Version byte of every notary message.
pub const NOTARY_WIRE_VERSION: u8 = 1;
/// Most certified entries in a proposal's prefix or a fetch answer.
pub const MAX_CERTIFIED_PER_MESSAGE: usize = 64;

/// What a client asks a notary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Vote for this entry.
    Propose(Proposal),
    /// What do you know of this wallet's slots?
    SlotQuery {
        /// The wallet.
        wallet: FeedId,
    },
    /// Send me this wallet's certified entries from `from` (at most `limit`).
    Fetch {
        /// The wallet.
        wallet: FeedId,
        /// First seq wanted.
        from: u64,
        /// At most this many.
        limit: u32,
    },
    /// Asks for a fate vote on an order (`ledger.md` §5a, `notary.md` §3a): answered with
    /// a `Vote` (a fate vote) or a `Refusal`.
    Fate(Box<FateRequest>),
}

/// A proposed entry, with any certified entries the notary is missing before it.
/// A request for a fate vote: the order (cited with its certificate and its wallet's genesis),
/// the fate, the preimage of its hash lock (for a claim of a locked order), and the signature
/// of the requesting wallet over the fate subject (`scrip/fate-request/v1`): the order's
/// receiver for a claim, its sender for a void.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateRequest {
    /// The order.
    pub order: Citation,
    /// The fate asked for.
    pub fate: Fate,
    /// The preimage, for a claim of a hash-locked order.
    pub preimage: Option<Preimage>,
    /// The requesting wallet's signature.
    pub signature: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The entry: signed header and payload (citations are embedded in the payload).
    pub entry: EntryBytes,
    /// Certified entries of the wallet before this one, oldest first.
    pub prefix: Vec<CertifiedBytes>,
}

/// What a notary answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Its vote.
    Vote(Vote),
    /// Why not.
    Refusal(Refusal),
    /// What it knows of a wallet.
    SlotInfo(SlotInfo),
    /// Certified entries, oldest first.
    Certified(Vec<CertifiedBytes>),
}

/// A notary's knowledge of one wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// The wallet.
    pub wallet: FeedId,
    /// The last certified seq it holds.
    pub certified_head: u64,
    /// The highest certified seq it heard of.
    pub heard: u64,
    /// Its latest vote, if any: (seq, entry).
    pub voted: Option<(u64, EntryId)>,
    /// The entry it voted for right after its certified head, if it holds it: a restored
    /// wallet finishes certifying exactly these bytes instead of signing another entry.
    pub pending: Option<EntryBytes>,
}

/// Encodes a message.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    Ok(codec::encode(
        "notary message",
        &(NOTARY_WIRE_VERSION, message),
    )?)
}

/// Decodes a message, refusing another version, non-canonical bytes, or too many entries.
pub fn decode<T: Serialize + serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.first() {
        Some(&NOTARY_WIRE_VERSION) => {}
        other => {
            return Err(Error::Protocol {
                reason: format!("unknown notary message version {other:?}"),
            });
        }
    }
    let (_, message): (u8, T) = codec::decode_canonical("notary message", bytes)?;
    Ok(message)
}

/// Checks a request's bounds.
pub fn check_request(request: &Request) -> Result<()> {
    match request {
        Request::Propose(p) if p.prefix.len() > MAX_CERTIFIED_PER_MESSAGE => Err(Error::Protocol {
            reason: format!(
                "{} prefix entries, at most {MAX_CERTIFIED_PER_MESSAGE}",
                p.prefix.len()
            ),
        }),
        _ => Ok(()),
    }
}
