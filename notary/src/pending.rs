//! The wallet client's pending proposal: the exact signed entry it is getting certified, written
//! durably before it is sent anywhere, so that after a crash it retries those bytes and never
//! signs a different entry for the slot.
//!
//! File format: `postcard((version: u8 = 1, header: bytes, payload: bytes))`, written to a
//! temporary file, fsynced, renamed over the pending file, and the directory fsynced.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use scrip_feed::{Entry, codec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const PENDING_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct PendingWire {
    version: u8,
    #[serde(with = "scrip_feed::codec::bytes")]
    header: Vec<u8>,
    #[serde(with = "scrip_feed::codec::bytes")]
    payload: Vec<u8>,
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

    /// Durably records `entry` as pending (replacing nothing: there must be none).
    pub fn save(&self, entry: &Entry) -> Result<()> {
        let wire = PendingWire {
            version: PENDING_VERSION,
            header: entry.header_bytes().to_vec(),
            payload: entry.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        };
        let bytes = codec::encode("pending entry", &wire)?;
        let temporary = self.path.with_extension("tmp");
        let shown = self.path.display().to_string();
        let mut file =
            fs::File::create(&temporary).map_err(|e| Error::io(format!("writing {shown}"), &e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("writing {shown}"), &e))?;
        fs::rename(&temporary, &self.path)
            .map_err(|e| Error::io(format!("writing {shown}"), &e))?;
        sync_dir(&self.path)
    }

    /// The pending entry, if any.
    pub fn load(&self) -> Result<Option<Entry>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), &e)),
        };
        let wire: PendingWire = codec::decode_canonical("pending entry", &bytes)?;
        if wire.version != PENDING_VERSION {
            return Err(Error::Wallet(format!(
                "{} has an unknown version {}",
                self.path.display(),
                wire.version
            )));
        }
        Ok(Some(Entry::decode(&wire.header, Some(wire.payload))?))
    }

    /// Removes the pending entry (it is certified and stored, or definitively refused).
    pub fn clear(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", self.path.display()), &e)),
        }
    }
}
