//! Chunks: consecutive entries of one feed packed into one stored value.
//!
//! sled 0.34 spends about the same time on an insert whatever the value's size (measured on the
//! 2-core target machine: ~11–16 µs for values up to 1 KB, about a quarter of an ed25519 verify),
//! so the store writes one value per run of up to [`MAX_CHUNK_ENTRIES`] entries instead of one
//! per entry. A chunk has an offset table, so one entry is read without decoding the others.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! chunk  = version u8 (=1) ‖ count u16 ‖ offsets: (count + 1) × u32 ‖ records
//! record = header_len u8 ‖ header ‖ has_payload u8 (0 or 1) ‖ payload (the rest of the record)
//! ```
//!
//! `offsets[i]..offsets[i+1]` is record `i`, relative to the start of `records`.

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::hash::EntryId;
use crate::limits::{MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES};

/// The chunk layout version.
pub const CHUNK_VERSION: u8 = 1;
/// Most entries in one chunk.
pub const MAX_CHUNK_ENTRIES: usize = 256;
/// A chunk is closed once its records reach this many bytes (so one stays under it plus one
/// entry). Small, because sled 0.34 keeps values inline in its tree nodes (16 keys to a leaf)
/// and rewrites a node whole: with 128 KiB chunks, a one-entry commit beside them cost 0.8 ms
/// in a store of 200,000 entries; a key costs ~11 µs, so at ~16 entries per chunk the per-entry
/// share of it is still under a microsecond.
pub const CHUNK_TARGET_BYTES: usize = 4 * 1024;

const _: () = assert!(MAX_HEADER_BYTES <= u8::MAX as usize);
const _: () = assert!(MAX_CHUNK_ENTRIES <= u16::MAX as usize);

/// Packs entries of one feed, consecutive and in seq order, into chunks.
pub(crate) struct ChunkWriter {
    records: Vec<u8>,
    offsets: Vec<u32>,
}

impl ChunkWriter {
    pub(crate) fn new() -> ChunkWriter {
        ChunkWriter {
            records: Vec::new(),
            offsets: vec![0],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when no more entries should be added.
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= MAX_CHUNK_ENTRIES || self.records.len() >= CHUNK_TARGET_BYTES
    }

    pub(crate) fn push(&mut self, entry: &Entry) {
        let header = entry.header_bytes();
        // Headers are at most MAX_HEADER_BYTES (checked by Entry::decode), which fits a u8.
        self.records
            .push(u8::try_from(header.len()).unwrap_or(u8::MAX));
        self.records.extend_from_slice(header);
        match entry.payload() {
            Some(payload) => {
                self.records.push(1);
                self.records.extend_from_slice(payload);
            }
            None => self.records.push(0),
        }
        // Bounded by MAX_CHUNK_ENTRIES × (header + payload limit), far below u32::MAX.
        self.offsets
            .push(u32::try_from(self.records.len()).unwrap_or(u32::MAX));
    }

    /// The chunk's bytes.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(3 + 4 * self.offsets.len() + self.records.len());
        bytes.push(CHUNK_VERSION);
        bytes.extend_from_slice(&u16::try_from(self.len()).unwrap_or(u16::MAX).to_le_bytes());
        for offset in &self.offsets {
            bytes.extend_from_slice(&offset.to_le_bytes());
        }
        bytes.extend_from_slice(&self.records);
        bytes
    }
}

/// A stored chunk, read in place.
pub(crate) struct Chunk<'a> {
    offsets: &'a [u8],
    records: &'a [u8],
    count: usize,
}

fn bad(detail: &str) -> Error {
    Error::Malformed {
        what: "stored chunk",
        detail: detail.into(),
    }
}

impl<'a> Chunk<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Chunk<'a>> {
        if bytes.first() != Some(&CHUNK_VERSION) {
            return Err(bad("unknown chunk version"));
        }
        let count = bytes
            .get(1..3)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_le_bytes)
            .ok_or_else(|| bad("truncated"))? as usize;
        let table_end = count
            .checked_add(1)
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(3))
            .ok_or_else(|| bad("bad count"))?;
        let offsets = bytes.get(3..table_end).ok_or_else(|| bad("truncated"))?;
        let records = bytes.get(table_end..).ok_or_else(|| bad("truncated"))?;
        Ok(Chunk {
            offsets,
            records,
            count,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn offset(&self, i: usize) -> Result<usize> {
        let at = i.checked_mul(4).ok_or_else(|| bad("bad offset"))?;
        self.offsets
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize)
            .ok_or_else(|| bad("bad offset"))
    }

    /// Record `i` as (header bytes, payload).
    pub(crate) fn record(&self, i: usize) -> Result<(&'a [u8], Option<&'a [u8]>)> {
        if i >= self.count {
            return Err(bad("record index out of range"));
        }
        let (start, end) = (self.offset(i)?, self.offset(i + 1)?);
        let record = self
            .records
            .get(start..end)
            .ok_or_else(|| bad("record out of bounds"))?;
        let (&header_len, rest) = record.split_first().ok_or_else(|| bad("empty record"))?;
        let header = rest
            .get(..header_len as usize)
            .ok_or_else(|| bad("truncated header"))?;
        let rest = &rest[header_len as usize..];
        let (&flag, payload) = rest
            .split_first()
            .ok_or_else(|| bad("missing payload flag"))?;
        match flag {
            0 if payload.is_empty() => Ok((header, None)),
            1 if payload.len() <= MAX_PAYLOAD_BYTES => Ok((header, Some(payload))),
            _ => Err(bad("bad payload flag")),
        }
    }

    /// Entry `i`, decoded, with its payload if `with_payload`.
    pub(crate) fn entry(&self, i: usize, with_payload: bool) -> Result<Entry> {
        let (header, payload) = self.record(i)?;
        let payload = if with_payload {
            payload.map(<[u8]>::to_vec)
        } else {
            None
        };
        Entry::decode_stored(header, payload, None)
    }

    /// Entries `from..to`, decoded, with their payloads if `with_payload`. A chunk holds
    /// consecutive entries of one feed, and each entry's `prev` is the id of the one before
    /// it: so the ids of all but the last entry decoded are read from their successors instead
    /// of hashed (a store serving a range hashes one header per chunk, not one per entry). The
    /// chunk was validated when it was written (and its bytes are checked when read, see
    /// [`super::values`]): its headers are decoded without the format checks again
    /// ([`Entry::decode_stored`]); debug builds apply them, hash every header and compare.
    pub(crate) fn entries(&self, from: usize, to: usize, with_payload: bool) -> Result<Vec<Entry>> {
        let to = to.min(self.count);
        let mut entries = Vec::with_capacity(to.saturating_sub(from));
        let mut next_prev: Option<EntryId> = None;
        for i in (from..to).rev() {
            let (header, payload) = self.record(i)?;
            let payload = if with_payload {
                payload.map(<[u8]>::to_vec)
            } else {
                None
            };
            let entry = Entry::decode_stored(header, payload, next_prev)?;
            next_prev = entry.prev();
            entries.push(entry);
        }
        entries.reverse();
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keypair, Timestamp};

    #[test]
    fn chunks_round_trip() {
        let key = Keypair::from_seed(&[1; 32]);
        let mut head = None;
        let mut writer = ChunkWriter::new();
        let mut entries = Vec::new();
        for i in 0..10u8 {
            let entry = Entry::create(
                &key,
                head,
                Timestamp::from_millis(1),
                vec![i; usize::from(i)],
            )
            .unwrap();
            head = Some(entry.head());
            let entry = if i % 3 == 0 {
                entry.without_payload()
            } else {
                entry
            };
            writer.push(&entry);
            entries.push(entry);
        }
        let bytes = writer.finish();
        let chunk = Chunk::parse(&bytes).unwrap();
        assert_eq!(chunk.len(), 10);
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(&chunk.entry(i, true).unwrap(), entry);
            assert_eq!(chunk.entry(i, false).unwrap(), entry.without_payload());
        }
        assert!(chunk.record(10).is_err());
        // A range takes its ids from the chain: the same entries, ids included, for every range
        // (past the end included).
        for from in 0..=10 {
            for to in from..=12 {
                let range = chunk.entries(from, to, true).unwrap();
                let expected = &entries[from..to.min(10)];
                assert_eq!(range, expected);
                let ids = range.iter().map(Entry::id).collect::<Vec<_>>();
                let hashed = expected
                    .iter()
                    .map(|e| EntryId::of_header(e.header_bytes()))
                    .collect::<Vec<_>>();
                assert_eq!(ids, hashed);
            }
        }
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let key = Keypair::from_seed(&[1; 32]);
        let entry = Entry::create(&key, None, Timestamp::from_millis(1), vec![7; 20]).unwrap();
        let mut writer = ChunkWriter::new();
        writer.push(&entry);
        writer.push(&entry);
        let bytes = writer.finish();
        for cut in 0..bytes.len() {
            if let Ok(chunk) = Chunk::parse(&bytes[..cut]) {
                for i in 0..chunk.len() {
                    let _ = chunk.entry(i, true);
                }
            }
        }
        for flip in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[flip] ^= 0xff;
            if let Ok(chunk) = Chunk::parse(&damaged) {
                for i in 0..chunk.len() {
                    let _ = chunk.entry(i, true);
                }
            }
        }
    }
}
