//! Signed entry headers and entries.
//!
//! An entry is a signed **header** plus a **detached payload**. The signature covers the header
//! only (which commits to the payload by length and blake3 hash), so a peer may drop payloads it
//! does not want while the chain of headers still verifies. Layout (postcard, in this order):
//!
//! | field | encoding |
//! |---|---|
//! | version | `u8`, currently [`ENTRY_FORMAT_VERSION`] |
//! | author | 32 bytes (ed25519 public key) |
//! | seq | varint `u64`, first entry is 1 |
//! | prev | `0x00` (seq 1 only) or `0x01` + 32-byte id of entry `seq - 1` |
//! | timestamp | varint `u64`, author's clock in ms since the Unix epoch |
//! | payload_len | varint `u32` |
//! | payload_hash | 32 bytes, blake3 of the payload |
//! | signature | 64 bytes, ed25519 over `"scrip/entry/v1" || 0x00 || all the fields above` |
//!
//! The entry id is the blake3 hash of all the header bytes, signature included.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::hash::{EntryId, Hash};
use crate::identity::{FeedId, Keypair, Signature, domain, signing_bytes};
use crate::limits::MAX_PAYLOAD_BYTES;
use crate::validate;

/// The entry header format version this crate writes and accepts.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// Size of the signature at the end of every header.
const SIGNATURE_BYTES: usize = 64;

/// A position in a feed. The first entry has seq 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// The first entry's seq.
    pub const FIRST: Seq = Seq(1);
    /// The largest seq.
    pub const MAX: Seq = Seq(u64::MAX);

    /// Wraps a raw number.
    pub const fn new(n: u64) -> Seq {
        Seq(n)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next seq, or `None` at [`Seq::MAX`].
    pub fn next(self) -> Option<Seq> {
        self.0.checked_add(1).map(Seq)
    }

    /// The previous seq, or `None` at 0.
    pub fn prev(self) -> Option<Seq> {
        self.0.checked_sub(1).map(Seq)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

/// An author's clock reading, in milliseconds since the Unix epoch. Informational: nothing in
/// validation depends on it.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug, Default,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Wraps milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This machine's clock now (the one place scrip reads it; 0 before the epoch).
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Timestamp(ms)
    }
}

/// The signed fields of a header (everything but the signature), in wire order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HeaderFields {
    /// Format version, [`ENTRY_FORMAT_VERSION`].
    pub version: u8,
    /// The feed this entry belongs to.
    pub author: FeedId,
    /// Position in the feed, from 1.
    pub seq: Seq,
    /// Id of entry `seq - 1`; absent only at seq 1.
    pub prev: Option<EntryId>,
    /// The author's clock.
    pub timestamp: Timestamp,
    /// Length of the payload in bytes.
    pub payload_len: u32,
    /// blake3 of the payload.
    pub payload_hash: Hash,
}

/// A signed entry header: the fields followed by the author's signature over them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The signed fields.
    pub fields: HeaderFields,
    /// ed25519 signature over `"scrip/entry/v1" || 0x00 || encode(fields)`.
    pub signature: Signature,
}

/// The latest entry of a feed, as far as some store knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Head {
    /// The entry's seq.
    pub seq: Seq,
    /// The entry's id.
    pub id: EntryId,
}

/// An entry: a decoded header, the exact header bytes it was decoded from, its id, and the
/// payload if held.
///
/// Holding an `Entry` means its header is well-formed (canonical, within limits, correctly
/// shaped); it does **not** mean its signature, payload or link were checked. See
/// [`validate::validate_entry`].
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    header: Header,
    header_bytes: Vec<u8>,
    id: EntryId,
    payload: Option<Vec<u8>>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("author", &self.header.fields.author)
            .field("seq", &self.header.fields.seq)
            .field("id", &self.id)
            .field("payload_len", &self.header.fields.payload_len)
            .field("has_payload", &self.payload.is_some())
            .finish()
    }
}

/// An entry as bytes: its signed header exactly as signed, and its payload (empty if the entry
/// has none). The one shape in which entries travel inside other messages and files (notary
/// proposals, certified entries and citations, vote records, the pending file): on the wire,
/// `header: Vec<u8> ‖ payload: Vec<u8>` (`feed.md` §1). Decoding it checks the header's format
/// ([`Entry::decode`]), not its signature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBytes {
    /// The signed header, exactly as signed.
    #[serde(with = "codec::bytes")]
    pub header: Vec<u8>,
    /// The payload.
    #[serde(with = "codec::bytes")]
    pub payload: Vec<u8>,
}

impl EntryBytes {
    /// The bytes of `entry`.
    pub fn of(entry: &Entry) -> EntryBytes {
        EntryBytes {
            header: entry.header_bytes().to_vec(),
            payload: entry.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        }
    }

    /// The entry these bytes hold (format checked, signature not).
    pub fn decode(&self) -> Result<Entry> {
        Entry::decode(&self.header, Some(self.payload.clone()))
    }
}

impl Entry {
    /// Creates and signs the entry following `prev` (or the first entry if `prev` is `None`) in
    /// `keypair`'s feed, carrying `payload`.
    ///
    /// Errors: [`Error::TooLarge`] if the payload exceeds [`MAX_PAYLOAD_BYTES`];
    /// [`Error::SeqExhausted`] if `prev` is at [`Seq::MAX`].
    pub fn create(
        keypair: &Keypair,
        prev: Option<Head>,
        timestamp: Timestamp,
        payload: Vec<u8>,
    ) -> Result<Entry> {
        validate::validate_payload_size(payload.len())?;
        let payload_len = u32::try_from(payload.len()).map_err(|_| Error::TooLarge {
            what: "payload",
            max: MAX_PAYLOAD_BYTES,
            found: payload.len(),
        })?;
        let (seq, prev_id) = match prev {
            None => (Seq::FIRST, None),
            Some(head) => {
                let seq = head.seq.next().ok_or(Error::SeqExhausted {
                    author: keypair.id(),
                })?;
                (seq, Some(head.id))
            }
        };
        let fields = HeaderFields {
            version: ENTRY_FORMAT_VERSION,
            author: keypair.id(),
            seq,
            prev: prev_id,
            timestamp,
            payload_len,
            payload_hash: Hash::of(&payload),
        };
        let mut header_bytes = codec::encode("entry header", &fields)?;
        let signature = keypair.sign_prepared(&signing_bytes(domain::ENTRY, &header_bytes));
        header_bytes.extend_from_slice(signature.as_bytes());
        let id = EntryId::of_header(&header_bytes);
        Ok(Entry {
            header: Header { fields, signature },
            header_bytes,
            id,
            payload: Some(payload),
        })
    }

    /// Decodes a signed header received as `header_bytes`, with its payload if one came along.
    ///
    /// Applies the format rules of [`validate::validate_header_format`]; does not check the
    /// signature, the payload or the link to the previous entry.
    pub fn decode(header_bytes: &[u8], payload: Option<Vec<u8>>) -> Result<Entry> {
        let header = Entry::decode_checks(header_bytes, payload.as_deref())?;
        Ok(Entry {
            header,
            id: EntryId::of_header(header_bytes),
            header_bytes: header_bytes.to_vec(),
            payload,
        })
    }

    /// [`Entry::decode`], keeping the header's bytes it is given instead of copying them (an
    /// entry taken off the wire).
    pub fn decode_owned(header_bytes: Vec<u8>, payload: Option<Vec<u8>>) -> Result<Entry> {
        let header = Entry::decode_checks(&header_bytes, payload.as_deref())?;
        Ok(Entry {
            header,
            id: EntryId::of_header(&header_bytes),
            header_bytes,
            payload,
        })
    }

    /// The rules [`Entry::decode`] applies: the header's format, the payload's size.
    fn decode_checks(header_bytes: &[u8], payload: Option<&[u8]>) -> Result<Header> {
        let header = validate::validate_header_format(header_bytes)?;
        if let Some(payload) = payload {
            validate::validate_payload_size(payload.len())?;
        }
        Ok(header)
    }

    /// Decodes a header its store validated ([`Entry::decode`]'s rules) when it wrote it: a
    /// stored chunk's record, whose bytes are checked against damage when read (sled's records
    /// carry checksums, and so do the value log's). Nothing is checked again: the comparison
    /// with the canonical encoding costs as much as the decoding, and a store serving
    /// replication decodes every entry it sends. `id` is the header's id when known (a chunk's
    /// next entry names it as its `prev`: nothing hashed), else it is hashed. Debug builds apply
    /// every rule (a header that breaks one is an error there), hash the header and compare.
    pub(crate) fn decode_stored(
        header_bytes: &[u8],
        payload: Option<Vec<u8>>,
        id: Option<EntryId>,
    ) -> Result<Entry> {
        let header: Header = codec::decode_checked_before("entry header", header_bytes)?;
        if cfg!(debug_assertions) {
            debug_assert_eq!(validate::validate_header_format(header_bytes)?, header);
        }
        let id = id.unwrap_or_else(|| EntryId::of_header(header_bytes));
        debug_assert_eq!(
            id,
            EntryId::of_header(header_bytes),
            "a chunk's chain is broken"
        );
        Ok(Entry {
            header,
            id,
            header_bytes: header_bytes.to_vec(),
            payload,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The signed header bytes, exactly as created or received.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The bytes the signature covers (the header without its signature), without the domain.
    pub fn signed_fields_bytes(&self) -> &[u8] {
        // Every decoded header ends with its 64 signature bytes (checked by the decoder).
        let end = self.header_bytes.len().saturating_sub(SIGNATURE_BYTES);
        &self.header_bytes[..end]
    }

    /// The entry id.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The author.
    pub fn author(&self) -> FeedId {
        self.header.fields.author
    }

    /// The seq.
    pub fn seq(&self) -> Seq {
        self.header.fields.seq
    }

    /// The prev link.
    pub fn prev(&self) -> Option<EntryId> {
        self.header.fields.prev
    }

    /// The author's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.header.fields.timestamp
    }

    /// This entry as a feed head.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq(),
            id: self.id,
        }
    }

    /// The payload, if held.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The signed header's bytes and the payload, moved out (nothing copied).
    pub fn into_bytes(self) -> (Vec<u8>, Option<Vec<u8>>) {
        (self.header_bytes, self.payload)
    }

    /// Takes the payload out, leaving the header.
    pub fn take_payload(&mut self) -> Option<Vec<u8>> {
        self.payload.take()
    }

    /// The same entry without its payload.
    pub fn without_payload(&self) -> Entry {
        Entry {
            header: self.header.clone(),
            header_bytes: self.header_bytes.clone(),
            id: self.id,
            payload: None,
        }
    }

    /// The same entry carrying `payload` (not checked here; see
    /// [`validate::validate_payload`]).
    pub fn with_payload(mut self, payload: Option<Vec<u8>>) -> Entry {
        self.payload = payload;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_entries_decode_to_themselves() {
        let key = Keypair::from_seed(&[3; 32]);
        let first = Entry::create(&key, None, Timestamp::from_millis(5), b"one".to_vec()).unwrap();
        let second = Entry::create(
            &key,
            Some(first.head()),
            Timestamp::from_millis(6),
            b"two".to_vec(),
        )
        .unwrap();
        for entry in [&first, &second] {
            let decoded =
                Entry::decode(entry.header_bytes(), entry.payload().map(<[u8]>::to_vec)).unwrap();
            assert_eq!(&decoded, entry);
        }
        assert_eq!(second.prev(), Some(first.id()));
        assert_eq!(second.seq(), Seq::new(2));
        // The signed fields are the header minus the trailing signature.
        assert_eq!(
            first.signed_fields_bytes(),
            codec::encode("h", &first.header().fields).unwrap()
        );
    }

    #[test]
    fn seq_arithmetic_is_checked() {
        assert_eq!(Seq::MAX.next(), None);
        assert_eq!(Seq::new(0).prev(), None);
        let key = Keypair::from_seed(&[3; 32]);
        let head = Head {
            seq: Seq::MAX,
            id: EntryId::from_bytes([0; 32]),
        };
        let err = Entry::create(&key, Some(head), Timestamp::default(), vec![]).unwrap_err();
        assert_eq!(err, Error::SeqExhausted { author: key.id() });
    }
}
