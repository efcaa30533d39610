//! A sled database with scrip's durability discipline, shared by the feed store and the
//! notaries' vote store:
//!
//! - every commit is one atomic sled batch, carrying the commit count, followed by a flush
//!   (fsync) before it is acknowledged; after a failed flush nothing more is acknowledged;
//! - after each flush the commit count is also written to a small watermark file beside sled's
//!   files: sled 0.34 silently drops everything after a damaged log record, and a database
//!   holding fewer commits than acknowledged is reported as [`Error::Corrupt`] on open;
//! - a format marker identifies what the database holds, and an open by a second process is
//!   [`Error::Locked`]; a panic inside sled while opening is turned into [`Error::Corrupt`].

use std::fs;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The file, inside the database's directory, recording how many commits were acknowledged.
pub const WATERMARK_FILE: &str = "scrip-watermark";
const META_FORMAT_KEY: &[u8] = b"Mformat";
const META_COMMITS_KEY: &[u8] = b"Mcommits";

/// Where a commit is (see [`DurableDb::commit_observed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStep {
    /// Applied in sled's memory, not yet flushed.
    Written,
    /// Flushed to disk.
    Flushed,
}

/// A sled database committed durably (see the module docs).
pub struct DurableDb {
    db: sled::Db,
    path: PathBuf,
    /// Set when a flush failed: what sled holds in memory may not be on disk.
    poisoned: AtomicBool,
    /// Commits so far (the value under `Mcommits`). Callers serialize commits.
    commits: AtomicU64,
    /// The watermark file, rewritten in place after every commit.
    watermark: fs::File,
}

impl std::fmt::Debug for DurableDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DurableDb {
    /// Opens (creating if needed) the database at `path`, whose format marker must be `format`
    /// (an empty database gets it), and checks that no acknowledged commit was lost.
    pub fn open(path: &Path, cache_capacity_bytes: u64, format: &[u8]) -> Result<DurableDb> {
        let shown = path.display().to_string();
        let opened = catch_unwind(AssertUnwindSafe(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(cache_capacity_bytes)
                .open()
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(err)) => return Err(open_error(&shown, err)),
            Err(_) => {
                return Err(Error::Corrupt {
                    path: shown,
                    detail: "the storage engine panicked while opening it".into(),
                });
            }
        };
        let watermark_path = path.join(WATERMARK_FILE);
        let acknowledged = read_watermark(&watermark_path, &shown)?;
        let watermark = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&watermark_path)
            .map_err(|e| Error::io(format!("opening {}", watermark_path.display()), &e))?;
        let durable = DurableDb {
            db,
            path: path.to_path_buf(),
            poisoned: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            watermark,
        };
        match catch_unwind(AssertUnwindSafe(|| {
            durable.check_format(acknowledged, format)
        })) {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Corrupt {
                    path: shown,
                    detail: "the storage engine panicked while reading it".into(),
                });
            }
        }
        Ok(durable)
    }

    /// The sled database (reads; writes go through [`DurableDb::commit`]).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A [`Error::Corrupt`] about this database.
    pub fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }

    /// Maps a sled error.
    pub fn engine(&self, err: sled::Error) -> Error {
        match err {
            sled::Error::Corruption { .. } => self.corrupt(err.to_string()),
            sled::Error::Io(io) => Error::io(format!("store {}", self.path.display()), &io),
            other => Error::Storage {
                detail: other.to_string(),
            },
        }
    }

    fn check_format(&self, acknowledged: u64, format: &[u8]) -> Result<()> {
        let found = self.db.get(META_FORMAT_KEY).map_err(|e| self.engine(e))?;
        let commits = match self.db.get(META_COMMITS_KEY).map_err(|e| self.engine(e))? {
            None => 0,
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("bad commit counter"))?,
        };
        if commits < acknowledged {
            return Err(self.corrupt(format!(
                "it holds {commits} commits but {acknowledged} were acknowledged: \
                 the storage engine lost data"
            )));
        }
        self.commits.store(commits, Ordering::SeqCst);
        match found {
            Some(marker) if marker.as_ref() == format => Ok(()),
            Some(marker) => Err(self.corrupt(format!(
                "unknown store format {:?} (this build reads format {format:?})",
                marker.as_ref()
            ))),
            None if self.db.is_empty() => {
                let mut batch = sled::Batch::default();
                batch.insert(META_FORMAT_KEY, format);
                self.commit(batch)
            }
            None => Err(self.corrupt("the format marker is missing")),
        }
    }

    /// Applies `batch` atomically with the next commit count, flushes (fsync), then records the
    /// count in the watermark file. Callers must not commit concurrently.
    pub fn commit(&self, batch: sled::Batch) -> Result<()> {
        self.commit_observed(batch, &|_| {})
    }

    /// [`DurableDb::commit`], telling `observe` when the batch is written (not yet durable) and
    /// when it is flushed: the fail points of crash tests.
    pub fn commit_observed(&self, batch: sled::Batch, observe: &dyn Fn(CommitStep)) -> Result<()> {
        let commits = self.apply_counted(batch)?;
        observe(CommitStep::Written);
        if let Err(err) = self.db.flush() {
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(self.engine(err));
        }
        observe(CommitStep::Flushed);
        self.commits.store(commits, Ordering::SeqCst);
        self.watermark
            .write_all_at(watermark_line(commits).as_bytes(), 0)
            .map_err(|e| Error::io(format!("writing {WATERMARK_FILE}"), &e))
    }
}

impl DurableDb {
    /// Applies `batch` atomically with the next commit count (refused once a flush failed);
    /// returns that count. Not durable yet.
    fn apply_counted(&self, mut batch: sled::Batch) -> Result<u64> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Storage {
                detail: format!(
                    "an earlier flush of {} failed; reopen the store before writing again",
                    self.path.display()
                ),
            });
        }
        let commits = self
            .commits
            .load(Ordering::SeqCst)
            .checked_add(1)
            .ok_or_else(|| self.corrupt("commit counter overflow"))?;
        batch.insert(META_COMMITS_KEY, &commits.to_be_bytes()[..]);
        self.db.apply_batch(batch).map_err(|e| self.engine(e))?;
        Ok(commits)
    }

    /// Applies `batch` atomically with the next commit count, without waiting for a flush: it
    /// becomes durable with the next [`DurableDb::commit`] or sled's background flush (every
    /// 500 ms). Only for data that can be had again after a crash (copies, caches); never for
    /// anything acknowledged. The watermark is not advanced, so losing it is not corruption.
    pub fn commit_lazily(&self, batch: sled::Batch) -> Result<()> {
        let commits = self.apply_counted(batch)?;
        self.commits.store(commits, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for DurableDb {
    fn drop(&mut self) {
        // Best effort: make the watermark durable too when the database closes cleanly.
        let _ = self.watermark.sync_data();
    }
}

fn watermark_line(commits: u64) -> String {
    format!("scrip-watermark v1 {commits:020}\n")
}

/// Reads the watermark file: the number of commits acknowledged, or 0 if there is none yet.
fn read_watermark(path: &Path, store: &str) -> Result<u64> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
    };
    if text.is_empty() {
        // Created, but the first commit never finished.
        return Ok(0);
    }
    text.strip_prefix("scrip-watermark v1 ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            path: store.to_owned(),
            detail: format!("{WATERMARK_FILE} is damaged"),
        })
}

fn open_error(path: &str, err: sled::Error) -> Error {
    match err {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::Locked {
            path: path.to_owned(),
        },
        sled::Error::Io(io) => Error::io(format!("opening store {path}"), &io),
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => Error::Corrupt {
            path: path.to_owned(),
            detail: err.to_string(),
        },
        other => Error::Storage {
            detail: format!("opening store {path}: {other}"),
        },
    }
}
