//! Hashes: [`Hash`](struct@Hash) (blake3 of anything) and [`EntryId`] (blake3 of a signed entry header).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, clip};

/// A blake3 hash (32 bytes). Displayed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The blake3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// The id of an entry: the blake3 hash of its signed header bytes, exactly as signed and sent.
///
/// Text form: `%` followed by the base58 (bitcoin alphabet) encoding of the 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryId([u8; 32]);

impl EntryId {
    /// The text form's prefix.
    pub const PREFIX: char = '%';

    /// The id of the signed header `header_bytes`.
    pub fn of_header(header_bytes: &[u8]) -> EntryId {
        EntryId(*blake3::hash(header_bytes).as_bytes())
    }

    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> EntryId {
        EntryId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({self})")
    }
}

impl FromStr for EntryId {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        parse_prefixed_base58(input, EntryId::PREFIX)
            .map(EntryId)
            .map_err(|reason| Error::InvalidEntryId {
                input: clip(input),
                reason,
            })
    }
}

/// Parses `<prefix><base58 of 32 bytes>` strictly: the text must be exactly the canonical
/// encoding (so each value has one text form).
pub(crate) fn parse_prefixed_base58(input: &str, prefix: char) -> Result<[u8; 32], &'static str> {
    let body = input.strip_prefix(prefix).ok_or(match prefix {
        '@' => "must start with '@'",
        _ => "must start with '%'",
    })?;
    // 32 bytes are at most 44 base58 characters; refuse long input before decoding it.
    if body.len() > 44 {
        return Err("too long");
    }
    let bytes = bs58::decode(body)
        .into_vec()
        .map_err(|_| "not base58 (bitcoin alphabet)")?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "not 32 bytes")?;
    if bs58::encode(bytes).into_string() != body {
        return Err("not in canonical form");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_id_text_round_trips() {
        let id = EntryId::of_header(b"hello");
        let text = id.to_string();
        assert!(text.starts_with('%'));
        assert_eq!(text.parse::<EntryId>().unwrap(), id);
    }

    #[test]
    fn entry_id_text_is_strict() {
        let id = EntryId::of_header(b"hello").to_string();
        for bad in [
            "",
            "%",
            &id[1..],
            &format!("@{}", &id[1..]),
            &format!("{id} "),
            &format!(" {id}"),
            &format!("{id}1"),
            "%0OIl",
            &format!("%1{}", &id[1..]),
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn hash_displays_as_hex() {
        assert_eq!(
            Hash::of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
