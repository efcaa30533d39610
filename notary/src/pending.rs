//! The wallet client's pending proposal: the exact signed entry it is getting certified, written
//! durably before it is sent anywhere, so that after a crash it retries those bytes and never
//! signs a different entry for the slot.
//!
//! File format (version 3): `3u8 ‖ length: u32 LE ‖ body ‖ blake3(3u8 ‖ length ‖ body)`, where
//! `body` is `postcard((header: bytes, payload: bytes))` (the entry's [`EntryBytes`]) and
//! `length` its length; whatever follows the hash (left by a longer earlier entry, or zeros the
//! file was padded with) is not read. An empty file, or one whose first byte is 0, means nothing
//! is pending. Version 2 files (`postcard((2u8, header, payload)) ‖ blake3 of those bytes`, the
//! whole file) are still read.
//!
//! Durability, with one fsync per proposal:
//! - **save** overwrites the start of the file in place and fsyncs it (`fdatasync`; the
//!   directory too when the file was just created). The file never shrinks and grows in whole
//!   [`PAD_BYTES`] blocks, so a save after the first changes no file size and its `fdatasync`
//!   writes the data alone, no file-system journal commit (measured: half the cost while other
//!   writes load the disk). Nothing is sent before that returns, so a save torn by a crash is
//!   an entry that never left the process: a record whose hash does not match reads as nothing
//!   pending.
//! - **clear** overwrites the first byte with 0, without an fsync. If a crash brings the old
//!   content back, the client resumes it: it finds the entry certified in its store, or resends
//!   the same bytes, which is always safe.
//! - A save only happens when nothing is pending, so an overwrite never destroys an entry still
//!   in flight.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use scrip_feed::{Entry, EntryBytes, codec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file's first byte for the current format.
const PENDING_VERSION: u8 = 3;
/// The first byte of a version 2 file.
const PENDING_VERSION_2: u8 = 2;
/// The first byte of a file with nothing pending.
const NOTHING_PENDING: u8 = 0;
const CHECKSUM_BYTES: usize = 32;
/// Version byte and length.
const RECORD_HEADER: usize = 5;
/// The file grows in blocks of this many bytes (zero-filled), so that most saves overwrite
/// bytes it already has.
pub const PAD_BYTES: usize = 4096;

/// A version 2 file's content (before its hash).
#[derive(Serialize, Deserialize)]
struct PendingWireV2 {
    version: u8,
    entry: EntryBytes,
}

/// The pending-proposal file.
#[derive(Clone, Debug)]
pub struct PendingFile {
    path: PathBuf,
}

fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", dir.display()), &e))?;
    }
    Ok(())
}

impl PendingFile {
    /// The pending file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> PendingFile {
        PendingFile { path: path.into() }
    }

    /// Durably records `entry` as pending (there must be none).
    pub fn save(&self, entry: &Entry) -> Result<()> {
        let body = codec::encode("pending entry", &EntryBytes::of(entry))?;
        let length = u32::try_from(body.len())
            .map_err(|_| Error::Wallet("a pending entry longer than 4 GiB".into()))?;
        let mut bytes = Vec::with_capacity(RECORD_HEADER + body.len() + CHECKSUM_BYTES);
        bytes.push(PENDING_VERSION);
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&body);
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(checksum.as_bytes());
        let shown = self.path.display().to_string();
        let fail = |e: std::io::Error| Error::io(format!("writing {shown}"), &e);
        let created = !self.path.exists();
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(fail)?;
        let size = file.metadata().map_err(fail)?.len();
        if size < bytes.len() as u64 {
            // Grow by whole blocks, zero-filled: later saves overwrite them without a size change.
            bytes.resize(bytes.len().div_ceil(PAD_BYTES) * PAD_BYTES, 0);
        }
        file.write_all_at(&bytes, 0).map_err(fail)?;
        file.sync_data().map_err(fail)?;
        if created {
            sync_dir(&self.path)?;
        }
        Ok(())
    }

    /// The pending entry, if any.
    pub fn load(&self) -> Result<Option<Entry>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), &e)),
        };
        match bytes.first() {
            None | Some(&NOTHING_PENDING) => Ok(None),
            Some(&PENDING_VERSION) => {
                let Some(length) = bytes
                    .get(1..RECORD_HEADER)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_le_bytes)
                    .and_then(|l| usize::try_from(l).ok())
                else {
                    return Ok(self.torn());
                };
                let end = RECORD_HEADER.saturating_add(length);
                let (Some(record), Some(checksum)) = (
                    bytes.get(..end),
                    bytes.get(end..end.saturating_add(CHECKSUM_BYTES)),
                ) else {
                    return Ok(self.torn());
                };
                if blake3::hash(record).as_bytes() != checksum {
                    return Ok(self.torn());
                }
                let entry: EntryBytes =
                    codec::decode_canonical("pending entry", &record[RECORD_HEADER..])?;
                Ok(Some(entry.decode()?))
            }
            Some(&PENDING_VERSION_2) => self.load_v2(&bytes),
            Some(&other) => Err(Error::Wallet(format!(
                "{} has an unknown version {other}",
                self.path.display(),
            ))),
        }
    }

    /// A version 2 file: the whole file is the record and its hash.
    fn load_v2(&self, bytes: &[u8]) -> Result<Option<Entry>> {
        let Some(split) = bytes.len().checked_sub(CHECKSUM_BYTES) else {
            return Ok(self.torn());
        };
        let (body, checksum) = bytes.split_at(split);
        if blake3::hash(body).as_bytes() != checksum {
            return Ok(self.torn());
        }
        let wire: PendingWireV2 = codec::decode_canonical("pending entry", body)?;
        Ok(Some(wire.entry.decode()?))
    }

    /// A save cut short by a crash: that entry was never sent, so nothing is pending.
    fn torn(&self) -> Option<Entry> {
        tracing::warn!(
            path = %self.path.display(),
            "the pending file holds an unfinished write: nothing was sent from it"
        );
        None
    }

    /// Forgets the pending entry (it is certified and stored, or definitively refused). Not
    /// synced: see the module docs.
    pub fn clear(&self) -> Result<()> {
        match fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(file) => file
                .write_all_at(&[NOTHING_PENDING], 0)
                .map_err(|e| Error::io(format!("clearing {}", self.path.display()), &e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("clearing {}", self.path.display()), &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use scrip_feed::{Keypair, Timestamp};

    use super::*;

    fn entry(payload: &[u8]) -> Entry {
        let key = Keypair::from_seed(&[3; 32]);
        Entry::create(&key, None, Timestamp::from_millis(0), payload.to_vec()).unwrap()
    }

    #[test]
    fn saved_entry_loads_back_and_clear_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingFile::new(dir.path().join("pending"));
        assert_eq!(pending.load().unwrap(), None);
        let first = entry(b"a longer payload than the next one");
        pending.save(&first).unwrap();
        assert_eq!(pending.load().unwrap(), Some(first));
        pending.clear().unwrap();
        assert_eq!(pending.load().unwrap(), None);
        // A shorter entry over a longer one reads back alone (bytes after its hash are not read).
        let second = entry(b"short");
        pending.save(&second).unwrap();
        assert_eq!(pending.load().unwrap(), Some(second));
    }

    #[test]
    fn a_torn_save_reads_as_nothing_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending");
        let pending = PendingFile::new(&path);
        pending.save(&entry(b"payload")).unwrap();
        let bytes = fs::read(&path).unwrap();
        let length = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
        let record = RECORD_HEADER + length + CHECKSUM_BYTES;
        for cut in [1, 3, record / 2, record - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(pending.load().unwrap(), None, "cut at {cut}");
        }
        // Cut short inside the file's padding: the record's end reads as zeros.
        let mut zeroed = bytes.clone();
        zeroed[record - 10..record].fill(0);
        fs::write(&path, &zeroed).unwrap();
        assert_eq!(pending.load().unwrap(), None);
        let mut flipped = bytes.clone();
        flipped[5] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(pending.load().unwrap(), None);
        // A length reaching past the file's end.
        let mut long = bytes.clone();
        long[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &long).unwrap();
        assert_eq!(pending.load().unwrap(), None);
    }

    /// After the first save, saves and clears overwrite bytes the file has: its size never
    /// changes (so a save's fdatasync commits no file-system metadata).
    #[test]
    fn saves_after_the_first_change_no_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending");
        let pending = PendingFile::new(&path);
        pending.save(&entry(&[7; 300])).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(size, PAD_BYTES as u64);
        for payload in [&b"short"[..], &[1; 1000][..], b"", &[2; 200][..]] {
            pending.clear().unwrap();
            assert_eq!(pending.load().unwrap(), None);
            assert_eq!(fs::metadata(&path).unwrap().len(), size);
            pending.save(&entry(payload)).unwrap();
            assert_eq!(pending.load().unwrap(), Some(entry(payload)));
            assert_eq!(fs::metadata(&path).unwrap().len(), size);
        }
        // A bigger entry grows the file by whole blocks.
        pending.clear().unwrap();
        pending.save(&entry(&[3; 5000])).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 2 * PAD_BYTES as u64);
        assert_eq!(pending.load().unwrap(), Some(entry(&[3; 5000])));
    }

    /// A file in the version 2 layout (the whole file: the record and its hash), with `version`
    /// as its first byte.
    fn v2_file(version: u8, entry: EntryBytes) -> Vec<u8> {
        let mut bytes = codec::encode("pending entry", &PendingWireV2 { version, entry }).unwrap();
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(checksum.as_bytes());
        bytes
    }

    /// A file written by the version 2 format (the whole file: record and hash) still loads,
    /// and a clear and a save over it work as over any other.
    #[test]
    fn a_version_2_file_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending");
        let old = entry(b"saved by an earlier version");
        fs::write(&path, v2_file(PENDING_VERSION_2, EntryBytes::of(&old))).unwrap();
        let pending = PendingFile::new(&path);
        assert_eq!(pending.load().unwrap(), Some(old));
        pending.clear().unwrap();
        assert_eq!(pending.load().unwrap(), None);
        let new = entry(b"x");
        pending.save(&new).unwrap();
        assert_eq!(pending.load().unwrap(), Some(new));
    }

    #[test]
    fn an_unknown_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending");
        fs::write(&path, v2_file(9, EntryBytes::default())).unwrap();
        assert!(PendingFile::new(&path).load().is_err());
    }
}
