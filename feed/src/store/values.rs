//! The value log: the entry chunks of big commits, appended to one file beside sled's, with
//! only a small reference to each kept in sled.
//!
//! Why: sled 0.34 keeps values inline in its tree nodes (16 keys to a leaf), rewrites a node
//! whole every 10 changes to it and relocates live pages out of half-empty segments, so a
//! replicated feed's chunks were written to disk 8–28 times over (measured: 220–740 MB for the
//! 26 MB of a 100,000-entry feed). That write stream is what slowed every `fsync` on the same
//! disk — a notary's vote, a wallet's pending entry — while a feed replicated. Appended here,
//! a chunk is written once; sled writes only its 21-byte reference.
//!
//! Layout of [`VALUES_FILE`]: chunk bytes, one after another, nothing else (no header: a
//! reference says where a chunk is and how to check it). A reference, as stored in sled in place
//! of the chunk:
//!
//! ```text
//! ref = REF_TAG u8 (=2) ‖ offset u64 LE ‖ len u32 LE ‖ check [u8; 8]
//! check = the first 8 bytes of blake3(chunk)
//! ```
//!
//! Inline chunks start with `CHUNK_VERSION` (1), so the first byte tells the two apart: stores
//! written before the value log read as they are, and small commits (one published entry, a
//! notary's learned entries) keep their chunks inline, costing no second `fsync`.
//!
//! Durability: a commit appends its chunks and syncs this file **before** its sled commit, so a
//! reference that sled recovers always points at synced bytes. A crash between the two leaves
//! bytes at the end of the file that nothing refers to; appends go on after them. Bytes a
//! reference no longer points at (a payload-dropping rewrite) stay in the file: the log is never
//! compacted (a known limit, `docs/ARCHITECTURE.md`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The value log's file name inside the store's directory.
pub const VALUES_FILE: &str = "scrip-values";
/// The first byte of a reference (an inline chunk starts with its version, 1).
pub(crate) const REF_TAG: u8 = 2;
const _: () = assert!(REF_TAG != super::chunk::CHUNK_VERSION);
/// Bytes of an encoded reference.
pub(crate) const REF_BYTES: usize = 21;
/// A commit whose chunks total at least this many bytes appends them to the value log (and
/// pays a second `fsync`); smaller ones keep them inline in sled.
pub const VALUE_LOG_MIN_BYTES: usize = 64 * 1024;

/// Most bytes [`ValueLog::append`] gathers into one write (a chunk bigger than this is written
/// alone): the copy a batch costs in memory stays small however big the batch.
const APPEND_WRITE_BYTES: usize = 1024 * 1024;

/// The longest value a reference may point at: more than any chunk can be (checked below), so
/// that a damaged reference is refused before its length is allocated.
pub(crate) const MAX_VALUE_BYTES: usize = 1024 * 1024;
const _: () = assert!(
    3 + 4 * (super::chunk::MAX_CHUNK_ENTRIES + 1)
        + super::chunk::CHUNK_TARGET_BYTES
        + 2
        + crate::limits::MAX_HEADER_BYTES
        + crate::limits::MAX_PAYLOAD_BYTES
        <= MAX_VALUE_BYTES
);

/// Where a chunk is in the value log, and its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueRef {
    offset: u64,
    len: u32,
    check: [u8; 8],
}

impl ValueRef {
    pub(crate) fn encode(&self) -> [u8; REF_BYTES] {
        let mut out = [0u8; REF_BYTES];
        out[0] = REF_TAG;
        out[1..9].copy_from_slice(&self.offset.to_le_bytes());
        out[9..13].copy_from_slice(&self.len.to_le_bytes());
        out[13..].copy_from_slice(&self.check);
        out
    }

    /// `Some` if `stored` is a reference (its first byte is [`REF_TAG`]), `None` if it is
    /// something else (an inline chunk); `Err` for a reference of the wrong length.
    pub(crate) fn decode(stored: &[u8]) -> std::result::Result<Option<ValueRef>, &'static str> {
        if stored.first() != Some(&REF_TAG) {
            return Ok(None);
        }
        let bytes: &[u8; REF_BYTES] = stored
            .try_into()
            .map_err(|_| "a value log reference of the wrong length")?;
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&bytes[1..9]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[9..13]);
        let mut check = [0u8; 8];
        check.copy_from_slice(&bytes[13..]);
        Ok(Some(ValueRef {
            offset: u64::from_le_bytes(offset),
            len: u32::from_le_bytes(len),
            check,
        }))
    }
}

fn check_of(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..8]);
    out
}

/// The value log of one store. Appends are serialized by the store's writer lock; reads take
/// no lock.
#[derive(Debug)]
pub(crate) struct ValueLog {
    file: File,
    path: PathBuf,
    /// Where the next append goes: the file's length at open, then past each append.
    end: AtomicU64,
}

impl ValueLog {
    /// Opens (creating if needed) the value log in the store's directory `dir`.
    pub(crate) fn open(dir: &Path) -> Result<ValueLog> {
        let path = dir.join(VALUES_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
        let end = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?
            .len();
        Ok(ValueLog {
            file,
            path,
            end: AtomicU64::new(end),
        })
    }

    /// Appends `chunks`, gathered into writes of up to [`APPEND_WRITE_BYTES`]; returns a
    /// reference to each. Not durable until [`ValueLog::sync`]. The caller holds the store's
    /// writer lock.
    pub(crate) fn append(&self, chunks: &[&[u8]]) -> Result<Vec<ValueRef>> {
        let start = self.end.load(Ordering::SeqCst);
        let mut refs = Vec::with_capacity(chunks.len());
        let mut at = start;
        let mut buffer: Vec<u8> = Vec::new();
        let mut buffer_at = start;
        for chunk in chunks {
            let len = u32::try_from(chunk.len()).map_err(|_| Error::Storage {
                detail: "a chunk over 4 GiB".into(),
            })?;
            refs.push(ValueRef {
                offset: at,
                len,
                check: check_of(chunk),
            });
            at = at
                .checked_add(u64::from(len))
                .ok_or_else(|| Error::Storage {
                    detail: "the value log is full".into(),
                })?;
            if !buffer.is_empty() && buffer.len() + chunk.len() > APPEND_WRITE_BYTES {
                self.write_at(&buffer, buffer_at)?;
                buffer_at += buffer.len() as u64;
                buffer.clear();
            }
            buffer.extend_from_slice(chunk);
        }
        self.write_at(&buffer, buffer_at)?;
        self.end.store(at, Ordering::SeqCst);
        Ok(refs)
    }

    fn write_at(&self, bytes: &[u8], at: u64) -> Result<()> {
        self.file.write_all_at(bytes, at).map_err(|e| {
            Error::io(
                format!("writing {} (nothing was stored)", self.path.display()),
                &e,
            )
        })
    }

    /// Makes every append so far durable (`fdatasync`). A failure leaves the appended bytes
    /// unreferenced: the commit that would have referred to them is not made.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| {
            Error::io(
                format!("syncing {} (nothing was stored)", self.path.display()),
                &e,
            )
        })
    }

    /// The chunk `value` refers to, checked. `Err(detail)` if it is missing or fails its check.
    pub(crate) fn read(&self, value: &ValueRef) -> std::result::Result<Vec<u8>, String> {
        // Bounded before anything is allocated: a damaged reference must not ask for 4 GiB.
        let ends = value.offset.checked_add(u64::from(value.len));
        if value.len as usize > MAX_VALUE_BYTES
            || ends.is_none_or(|ends| ends > self.end.load(Ordering::SeqCst))
        {
            return Err(format!(
                "a reference to {} bytes at {} of {VALUES_FILE}: past its end or longer than a \
                 chunk can be",
                value.len, value.offset
            ));
        }
        let mut bytes = vec![0u8; value.len as usize];
        self.file
            .read_exact_at(&mut bytes, value.offset)
            .map_err(|e| {
                format!(
                    "{} bytes at {} of {VALUES_FILE}: {e}",
                    value.len, value.offset
                )
            })?;
        if check_of(&bytes) != value.check {
            return Err(format!(
                "{} bytes at {} of {VALUES_FILE} fail their check",
                value.len, value.offset
            ));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn appends_gathered_into_several_writes_read_back_and_a_bad_reference_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = ValueLog::open(dir.path()).unwrap();
        // Over APPEND_WRITE_BYTES in total, with one chunk as big as a write on its own.
        let chunks: Vec<Vec<u8>> = (0..40u8)
            .map(|i| vec![i; if i == 7 { MAX_VALUE_BYTES } else { 60_000 }])
            .collect();
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let refs = log.append(&slices).unwrap();
        log.sync().unwrap();
        let more = log.append(&[b"after".as_slice()]).unwrap();
        for (chunk, value) in chunks.iter().zip(&refs) {
            assert_eq!(ValueRef::decode(&value.encode()), Ok(Some(*value)));
            assert_eq!(&log.read(value).unwrap(), chunk);
        }
        assert_eq!(log.read(&more[0]).unwrap(), b"after");
        drop(log);
        // Reopened: appends go on after what is there.
        let log = ValueLog::open(dir.path()).unwrap();
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum::<u64>() + 5;
        assert_eq!(log.append(&[b"x".as_slice()]).unwrap()[0].offset, total);
        // A reference whose check does not match, or past the end, is an error, not bytes.
        let mut wrong = refs[3];
        wrong.check[0] ^= 1;
        assert!(log.read(&wrong).unwrap_err().contains("fail their check"));
        let past = ValueRef {
            offset: total + 100,
            ..refs[0]
        };
        assert!(log.read(&past).is_err());
        let huge = ValueRef {
            len: u32::MAX,
            ..refs[0]
        };
        assert!(log.read(&huge).unwrap_err().contains("longer than a"));
        assert_eq!(ValueRef::decode(&[1, 2, 3]), Ok(None));
        assert!(ValueRef::decode(&[REF_TAG, 0]).is_err());
    }
}
