//! The wallet client's pending proposal: the exact signed entry it is getting certified, written
//! durably before it is sent anywhere, so that after a crash it retries those bytes and never
//! signs a different entry for the slot.
//!
//! File format: `postcard((version: u8 = 2, header: bytes, payload: bytes))` followed by the
//! blake3 hash of those bytes (32 bytes). An empty file means nothing is pending.
//!
//! Durability, with one fsync per proposal:
//! - **save** overwrites the file in place and fsyncs it (`fdatasync`; the directory too when the
//!   file was just created). Nothing is sent before that returns, so a save torn by a crash is
//!   an entry that never left the process: a file whose hash does not match reads as nothing
//!   pending.
//! - **clear** empties the file without an fsync. If a crash brings the old content back, the
//!   client resumes it: it finds the entry certified in its store, or resends the same bytes,
//!   which is always safe.
//! - A save only happens when nothing is pending, so an overwrite never destroys an entry still
//!   in flight.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use scrip_feed::{Entry, EntryBytes, codec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const PENDING_VERSION: u8 = 2;
const CHECKSUM_BYTES: usize = 32;

#[derive(Serialize, Deserialize)]
struct PendingWire {
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
        let wire = PendingWire {
            version: PENDING_VERSION,
            entry: EntryBytes::of(entry),
        };
        let mut bytes = codec::encode("pending entry", &wire)?;
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
        file.write_all_at(&bytes, 0).map_err(fail)?;
        file.set_len(bytes.len() as u64).map_err(fail)?;
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
        if bytes.is_empty() {
            return Ok(None);
        }
        let Some(split) = bytes.len().checked_sub(CHECKSUM_BYTES) else {
            return Ok(self.torn());
        };
        let (body, checksum) = bytes.split_at(split);
        if blake3::hash(body).as_bytes() != checksum {
            return Ok(self.torn());
        }
        let wire: PendingWire = codec::decode_canonical("pending entry", body)?;
        if wire.version != PENDING_VERSION {
            return Err(Error::Wallet(format!(
                "{} has an unknown version {}",
                self.path.display(),
                wire.version
            )));
        }
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
                .set_len(0)
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
        // A shorter entry over a longer one leaves no trailing bytes.
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
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(pending.load().unwrap(), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[5] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(pending.load().unwrap(), None);
    }

    #[test]
    fn an_unknown_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending");
        let wire = PendingWire {
            version: 9,
            entry: EntryBytes::default(),
        };
        let mut bytes = codec::encode("pending entry", &wire).unwrap();
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(checksum.as_bytes());
        fs::write(&path, &bytes).unwrap();
        assert!(PendingFile::new(&path).load().is_err());
    }
}
