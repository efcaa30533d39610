//! Validation, as named free functions. Each lists the rules it applies and the error each rule
//! raises. Together they decide whether bytes are a valid entry of a feed:
//!
//! 1. [`validate_header_format`]: size, version, canonical encoding, shape (applied by
//!    [`Entry::decode`], so every `Entry` value satisfies it).
//! 2. [`validate_signature`]: the author's strict ed25519 signature.
//! 3. [`validate_payload`]: a held payload matches the header's length and hash.
//! 4. [`validate_link`]: the entry extends the feed's known head.
//!
//! [`validate_entry`] applies 2–4; a store applies it to everything it stores.

use crate::codec;
use crate::entry::{ENTRY_FORMAT_VERSION, Entry, Head, Header, Seq};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::identity::{AuthorKey, FeedId, domain, signing_bytes};
use crate::limits::{MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES};

/// Decodes and checks the format of a signed header.
///
/// Rules, in order:
/// - size: at most [`MAX_HEADER_BYTES`] bytes ([`Error::TooLarge`]);
/// - version: the first byte is [`ENTRY_FORMAT_VERSION`] ([`Error::UnsupportedVersion`]; empty
///   input is [`Error::Malformed`]);
/// - encoding: the bytes decode ([`Error::Malformed`]) and are the canonical encoding of what they
///   decode to ([`Error::NonCanonical`]);
/// - payload size: the header's payload length is at most [`MAX_PAYLOAD_BYTES`]
///   ([`Error::TooLarge`]);
/// - shape: see [`validate_header_shape`].
pub fn validate_header_format(bytes: &[u8]) -> Result<Header> {
    if bytes.len() > MAX_HEADER_BYTES {
        return Err(Error::TooLarge {
            what: "entry header",
            max: MAX_HEADER_BYTES,
            found: bytes.len(),
        });
    }
    validate_version(bytes)?;
    let header: Header = codec::decode_canonical("entry header", bytes)?;
    validate_payload_size(header.fields.payload_len as usize)?;
    validate_header_shape(&header)?;
    Ok(header)
}

/// Checks the leading version byte before anything else is decoded, so that a header from a
/// future format is reported as such rather than as garbage.
///
/// Rules: at least one byte ([`Error::Malformed`]); the first byte is
/// [`ENTRY_FORMAT_VERSION`] ([`Error::UnsupportedVersion`]).
pub fn validate_version(bytes: &[u8]) -> Result<()> {
    match bytes.first() {
        None => Err(Error::Malformed {
            what: "entry header",
            detail: "empty".into(),
        }),
        Some(&ENTRY_FORMAT_VERSION) => Ok(()),
        Some(&found) => Err(Error::UnsupportedVersion {
            what: "entry header",
            expected: ENTRY_FORMAT_VERSION,
            found,
        }),
    }
}

/// Checks a payload size against the limit.
///
/// Rule: at most [`MAX_PAYLOAD_BYTES`] ([`Error::TooLarge`]).
pub fn validate_payload_size(len: usize) -> Result<()> {
    if len > MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            what: "payload",
            max: MAX_PAYLOAD_BYTES,
            found: len,
        });
    }
    Ok(())
}

/// Checks the seq and prev fields agree with each other.
///
/// Rules:
/// - seq is at least 1 ([`Error::ZeroSeq`]);
/// - seq 1 has no prev ([`Error::UnexpectedPrev`]);
/// - every later seq has a prev ([`Error::MissingPrev`]).
pub fn validate_header_shape(header: &Header) -> Result<()> {
    let fields = &header.fields;
    match (fields.seq.get(), fields.prev) {
        (0, _) => Err(Error::ZeroSeq {
            author: fields.author,
        }),
        (1, Some(found)) => Err(Error::UnexpectedPrev {
            author: fields.author,
            found,
        }),
        (1, None) => Ok(()),
        (_, None) => Err(Error::MissingPrev {
            author: fields.author,
            seq: fields.seq,
        }),
        (_, Some(_)) => Ok(()),
    }
}

/// Checks the author's signature over the header.
///
/// Rules:
/// - the author is a valid ed25519 point ([`Error::InvalidAuthorKey`]) with neither small order
///   nor a small-order component ([`Error::WeakAuthorKey`]);
/// - the signature passes feed.md §4 over `"scrip/entry/v1" || 0x00 || fields`
///   ([`Error::BadSignature`]).
pub fn validate_signature(entry: &Entry) -> Result<()> {
    validate_signature_with(&AuthorKey::cached(&entry.author())?, entry)
}

/// [`validate_signature`] with the author's key already decompressed (for batches).
///
/// Rules: as [`validate_signature`]; additionally `key` must be the entry's author
/// ([`Error::AuthorMismatch`]).
pub fn validate_signature_with(key: &AuthorKey, entry: &Entry) -> Result<()> {
    if *key.id() != entry.author() {
        return Err(Error::AuthorMismatch {
            expected: *key.id(),
            found: entry.author(),
        });
    }
    if key.verify_prepared(&entry_signed_bytes(entry), &entry.header().signature) {
        Ok(())
    } else {
        Err(Error::BadSignature {
            author: entry.author(),
            seq: entry.seq(),
        })
    }
}

/// The bytes an entry's signature covers: `"scrip/entry/v1" ‖ 0x00 ‖ fields`.
pub fn entry_signed_bytes(entry: &Entry) -> Vec<u8> {
    signing_bytes(domain::ENTRY, entry.signed_fields_bytes())
}

/// Checks a held payload against the header. An entry without its payload passes (payloads are
/// detached and may be dropped).
///
/// Rules:
/// - size: at most [`MAX_PAYLOAD_BYTES`] ([`Error::TooLarge`]);
/// - length: equals the header's `payload_len` ([`Error::PayloadLengthMismatch`]);
/// - hash: blake3 equals the header's `payload_hash` ([`Error::PayloadHashMismatch`]).
pub fn validate_payload(entry: &Entry) -> Result<()> {
    let Some(payload) = entry.payload() else {
        return Ok(());
    };
    validate_payload_size(payload.len())?;
    let fields = &entry.header().fields;
    if payload.len() != fields.payload_len as usize {
        return Err(Error::PayloadLengthMismatch {
            author: fields.author,
            seq: fields.seq,
            expected: fields.payload_len,
            found: payload.len(),
        });
    }
    let found = Hash::of(payload);
    if found != fields.payload_hash {
        return Err(Error::PayloadHashMismatch {
            author: fields.author,
            seq: fields.seq,
            expected: fields.payload_hash,
            found,
        });
    }
    Ok(())
}

/// Checks that `entry` extends `author`'s feed whose latest known entry is `head` (`None` for an
/// empty feed).
///
/// Rules:
/// - author continuity: the entry's author is `author` ([`Error::AuthorMismatch`]);
/// - seq: the entry's seq is `head.seq + 1`, or 1 for an empty feed ([`Error::SeqMismatch`]);
/// - prev: the entry's prev is `head.id` ([`Error::PrevMismatch`]; absence at seq 1 is checked by
///   [`validate_header_shape`]).
pub fn validate_link(author: &FeedId, head: Option<&Head>, entry: &Entry) -> Result<()> {
    if entry.author() != *author {
        return Err(Error::AuthorMismatch {
            expected: *author,
            found: entry.author(),
        });
    }
    let expected = match head {
        None => Seq::FIRST,
        Some(head) => head
            .seq
            .next()
            .ok_or(Error::SeqExhausted { author: *author })?,
    };
    if entry.seq() != expected {
        return Err(Error::SeqMismatch {
            author: *author,
            expected,
            found: entry.seq(),
        });
    }
    if let (Some(head), Some(found)) = (head, entry.prev())
        && found != head.id
    {
        return Err(Error::PrevMismatch {
            author: *author,
            seq: entry.seq(),
            expected: head.id,
            found,
        });
    }
    Ok(())
}

/// Everything a store checks before it stores `entry` in `author`'s feed after `head`:
/// [`validate_link`], then [`validate_payload`], then [`validate_signature`] (cheapest first).
pub fn validate_entry(author: &FeedId, head: Option<&Head>, entry: &Entry) -> Result<()> {
    validate_link(author, head, entry)?;
    validate_payload(entry)?;
    validate_signature(entry)
}
