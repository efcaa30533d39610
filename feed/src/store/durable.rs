//! A sled database with scrip's durability discipline, shared by the feed store and the
//! notaries' vote store:
//!
//! - every commit is atomic, carries the commit count, and is followed by a flush (fsync) before
//!   it is acknowledged; after a failed flush nothing more is acknowledged;
//! - a commit is made atomic by a **redo journal**: its writes are first recorded in one value
//!   (`Mlast`: the commit number and the writes), then applied one by one in order, then the
//!   commit count is written. sled 0.34 recovers a prefix of its log, so after a crash either the
//!   journal is missing (and so is every write after it) or it is there and [`DurableDb::open`]
//!   applies its writes again (they set absolute values, so applying twice changes nothing).
//!   Why not sled's own `apply_batch`: it rolls sled's I/O buffer twice per batch (two writes and
//!   two syncs handed to sled's I/O threads, which wakes all of them each time), which cost more
//!   than everything else a small commit does. Commits over [`JOURNAL_MAX_BYTES`] (rare: a big
//!   replication batch, dropping a feed's payloads) still go through `apply_batch`;
//! - readers see a journaled commit's writes one at a time, in the order the caller gave them:
//!   callers order them so that what makes data visible (a feed's head) comes last;
//! - after each flush the commit count is also written to a small watermark file beside sled's
//!   files: sled 0.34 silently drops everything after a damaged log record, and a database
//!   holding fewer commits than acknowledged is reported as [`Error::Corrupt`] on open;
//! - a format marker identifies what the database holds, and an open by a second process is
//!   [`Error::Locked`]; a panic inside sled while opening is turned into [`Error::Corrupt`];
//! - sled lets go of its file lock only when the last of its background threads drops its
//!   handle, a moment after the database is closed: an open of a database *this process* closed
//!   waits for that (at most [`RELEASE_WAIT`]) instead of reporting it locked.

use std::fs;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The file, inside the database's directory, recording how many commits were acknowledged.
pub const WATERMARK_FILE: &str = "scrip-watermark";
const META_FORMAT_KEY: &[u8] = b"Mformat";
const META_COMMITS_KEY: &[u8] = b"Mcommits";
const META_LAST_KEY: &[u8] = b"Mlast";
/// The journal's layout version.
const JOURNAL_VERSION: u8 = 1;
/// Commits whose writes (keys and values) total at most this many bytes are journaled; bigger
/// ones go through sled's atomic batch (see the module docs). Under sled's blob threshold
/// (128 KiB with the default segment size), so the journal stays inline in sled's log.
pub const JOURNAL_MAX_BYTES: usize = 64 * 1024;

/// The longest an open waits for sled's threads to let go of a database this process closed.
pub const RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often such an open tries again.
const RELEASE_POLL: Duration = Duration::from_millis(2);

/// Databases this process closed and has not opened again (canonical paths; see the module
/// docs): only these are waited for, so a database another process holds is reported at once.
static CLOSED_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// At most this many are remembered (the oldest is forgotten first).
const CLOSED_HERE_MAX: usize = 256;

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Notes (`closed`) or forgets a database closed by this process; returns whether it was noted.
fn closed_here(path: &Path, closed: Option<bool>) -> bool {
    let path = canonical(path);
    let mut set = CLOSED_HERE.lock().unwrap_or_else(|e| e.into_inner());
    let known = set.contains(&path);
    match closed {
        Some(true) if !known => {
            if set.len() >= CLOSED_HERE_MAX {
                set.remove(0);
            }
            set.push(path);
        }
        Some(false) => set.retain(|p| p != &path),
        _ => {}
    }
    known
}

/// Starts sled's process-wide I/O threads from the calling thread, if they are not running yet.
/// sled starts them on first use, from whichever thread first hands it a write, and on Linux a
/// thread inherits its creator's scheduling policy and nice value: if that first write came
/// from a thread at idle priority (a notary node's ingest, `scrip_replicate::background`),
/// every store in the process would write through idle-priority threads for good. Call it from
/// a thread at normal priority before starting such a thread; later calls do nothing.
pub fn start_io_threads() -> Result<()> {
    static STARTED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    STARTED
        .get_or_init(|| {
            // A throwaway database: one write and a flush hand sled's pool its first job.
            let db = sled::Config::new()
                .temporary(true)
                .open()
                .map_err(|e| e.to_string())?;
            db.insert(b"start", &b"io threads"[..])
                .map_err(|e| e.to_string())?;
            db.flush().map_err(|e| e.to_string())?;
            Ok(())
        })
        .clone()
        .map_err(|detail| Error::Storage {
            detail: format!("starting the storage engine's I/O threads: {detail}"),
        })
}

/// One write of a commit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum WriteOp {
    Insert {
        #[serde(with = "crate::codec::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
    },
    Remove {
        #[serde(with = "crate::codec::bytes")]
        key: Vec<u8>,
    },
}

/// The writes of one commit, applied in the order they were added (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Writes {
    ops: Vec<WriteOp>,
    bytes: usize,
}

impl Writes {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.bytes = self.bytes.saturating_add(key.len() + value.len());
        self.ops.push(WriteOp::Insert { key, value });
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.bytes = self.bytes.saturating_add(key.len());
        self.ops.push(WriteOp::Remove { key });
    }

    /// Appends `other`'s writes after these.
    pub fn append(&mut self, other: Writes) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.ops.extend(other.ops);
    }
}

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
    /// Set when a write failed part way: what sled holds in memory may not be on disk.
    poisoned: AtomicBool,
    /// Test hook: the next flush fails (see [`DurableDb::fail_next_flush`]).
    fail_next_flush: AtomicBool,
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
        Self::open_formats(path, cache_capacity_bytes, &[format]).map(|(db, _)| db)
    }

    /// [`DurableDb::open`] for a database that may hold any of `formats`: the first is the
    /// current one (an empty database gets it), the others older ones its owner upgrades
    /// ([`DurableDb::commit_upgrade`]). Returns the index in `formats` of the one found.
    pub fn open_formats(
        path: &Path,
        cache_capacity_bytes: u64,
        formats: &[&[u8]],
    ) -> Result<(DurableDb, usize)> {
        let shown = path.display().to_string();
        let aside = check_before_open(path, &shown)?;
        let deadline = Instant::now() + RELEASE_WAIT;
        let opened = loop {
            match Self::open_checked(path, cache_capacity_bytes, formats, &shown) {
                Err(Error::Locked { .. })
                    if Instant::now() < deadline && closed_here(path, None) =>
                {
                    std::thread::sleep(RELEASE_POLL);
                }
                opened => break opened,
            }
        };
        if opened.is_ok() {
            closed_here(path, Some(false));
        }
        match (opened, aside) {
            (Ok(db), Some(aside)) => {
                // It opened and holds every acknowledged commit: the copy is not needed.
                let _ = fs::remove_dir_all(aside);
                Ok(db)
            }
            (Err(Error::Corrupt { path, detail }), Some(aside)) => Err(Error::Corrupt {
                path,
                detail: format!(
                    "{detail} (the files as they were before this open are kept in {})",
                    aside.display()
                ),
            }),
            (Err(err), Some(aside)) => {
                // Not opened (held by another process, an I/O error): nothing was rewritten.
                let _ = fs::remove_dir_all(aside);
                Err(err)
            }
            (opened, None) => opened,
        }
    }

    fn open_checked(
        path: &Path,
        cache_capacity_bytes: u64,
        formats: &[&[u8]],
        shown: &str,
    ) -> Result<(DurableDb, usize)> {
        let shown = shown.to_owned();
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
            fail_next_flush: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            watermark,
        };
        let found = match catch_unwind(AssertUnwindSafe(|| {
            durable.redo_last_commit()?;
            durable.check_format(acknowledged, formats)
        })) {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Corrupt {
                    path: shown,
                    detail: "the storage engine panicked while reading it".into(),
                });
            }
        };
        Ok((durable, found))
    }

    /// Commits `batch` together with a new format marker `format`: an upgrade of the layout
    /// and its marker in one commit, so that a crash leaves the old layout under the old marker.
    pub fn commit_upgrade(&self, mut batch: Writes, format: &[u8]) -> Result<()> {
        batch.insert(META_FORMAT_KEY, format);
        self.commit(batch)
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

    /// A write that failed part way: the store takes no more writes until it is reopened.
    fn uncertain(&self, err: sled::Error) -> Error {
        self.poisoned.store(true, Ordering::SeqCst);
        Error::WriteUncertain {
            path: self.path.display().to_string(),
            detail: plain(&match err {
                sled::Error::Io(io) => io.to_string(),
                other => other.to_string(),
            }),
        }
    }

    /// Makes the next commit's flush fail as a full disk would (for tests of what callers
    /// report; the write itself is made in memory, as when a real flush fails).
    #[doc(hidden)]
    pub fn fail_next_flush(&self) {
        self.fail_next_flush.store(true, Ordering::SeqCst);
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

    fn check_format(&self, acknowledged: u64, formats: &[&[u8]]) -> Result<usize> {
        let current = formats.first().copied().unwrap_or_default();
        let found = self.db.get(META_FORMAT_KEY).map_err(|e| self.engine(e))?;
        let commits = self.stored_commits()?;
        if commits < acknowledged {
            return Err(self.corrupt(format!(
                "it holds {commits} commits but {acknowledged} were acknowledged: \
                 the storage engine lost data"
            )));
        }
        self.commits.store(commits, Ordering::SeqCst);
        match found {
            Some(marker) => match formats.iter().position(|f| *f == marker.as_ref()) {
                Some(index) => Ok(index),
                // A later marker of the same shape: a newer build wrote it.
                None if marker.len() == current.len() && marker.as_ref() > current => {
                    Err(Error::NewerFormat {
                        path: self.path.display().to_string(),
                        found: format_text(&marker),
                        reads: formats
                            .iter()
                            .map(|f| format_text(f))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
                None => Err(self.corrupt(format!(
                    "unknown store format {:?} (this build reads formats {formats:?})",
                    marker.as_ref()
                ))),
            },
            None if self.db.is_empty() => {
                let mut batch = Writes::default();
                batch.insert(META_FORMAT_KEY, current);
                self.commit(batch).map(|()| 0)
            }
            None => Err(self.corrupt("the format marker is missing")),
        }
    }

    /// Applies `batch` atomically with the next commit count, flushes (fsync), then records the
    /// count in the watermark file. Callers must not commit concurrently, and order the writes as
    /// readers may see them (see the module docs).
    pub fn commit(&self, batch: Writes) -> Result<()> {
        self.commit_observed(batch, &|_| {})
    }

    /// [`DurableDb::commit`], telling `observe` when the batch is written (not yet durable) and
    /// when it is flushed: the fail points of crash tests.
    pub fn commit_observed(&self, batch: Writes, observe: &dyn Fn(CommitStep)) -> Result<()> {
        let commits = self.apply_counted(batch)?;
        observe(CommitStep::Written);
        let flushed = if self.fail_next_flush.swap(false, Ordering::SeqCst) {
            Err(sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            )))
        } else {
            self.db.flush().map(|_| ())
        };
        if let Err(err) = flushed {
            return Err(self.uncertain(err));
        }
        observe(CommitStep::Flushed);
        self.commits.store(commits, Ordering::SeqCst);
        self.watermark
            .write_all_at(watermark_line(commits).as_bytes(), 0)
            .map_err(|e| Error::io(format!("writing {WATERMARK_FILE}"), &e))
    }
}

impl DurableDb {
    /// Applies `writes` atomically with the next commit count (refused once a flush failed);
    /// returns that count. Not durable yet.
    fn apply_counted(&self, writes: Writes) -> Result<u64> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::RestartNeeded {
                path: self.path.display().to_string(),
            });
        }
        let commits = self
            .commits
            .load(Ordering::SeqCst)
            .checked_add(1)
            .ok_or_else(|| self.corrupt("commit counter overflow"))?;
        if writes.bytes <= JOURNAL_MAX_BYTES {
            let journal = crate::codec::encode(
                "commit journal",
                &(JOURNAL_VERSION, commits, writes.ops.as_slice()),
            )?;
            // From the journal on, a failure leaves a write that the next open may finish.
            self.db
                .insert(META_LAST_KEY, journal)
                .map_err(|e| self.uncertain(e))?;
            self.apply_in_order(&writes.ops, commits)?;
        } else {
            let mut batch = sled::Batch::default();
            for op in writes.ops {
                match op {
                    WriteOp::Insert { key, value } => batch.insert(key, value),
                    WriteOp::Remove { key } => batch.remove(key),
                }
            }
            batch.insert(META_COMMITS_KEY, &commits.to_be_bytes()[..]);
            self.db.apply_batch(batch).map_err(|e| self.uncertain(e))?;
        }
        Ok(commits)
    }

    /// Applies journaled writes one by one, then the commit count.
    fn apply_in_order(&self, ops: &[WriteOp], commits: u64) -> Result<()> {
        for op in ops {
            match op {
                WriteOp::Insert { key, value } => self.db.insert(key, value.as_slice()).map(|_| ()),
                WriteOp::Remove { key } => self.db.remove(key).map(|_| ()),
            }
            .map_err(|e| self.uncertain(e))?;
        }
        self.db
            .insert(META_COMMITS_KEY, &commits.to_be_bytes()[..])
            .map_err(|e| self.uncertain(e))?;
        Ok(())
    }

    /// After a crash: applies the journaled writes of the last commit again if its commit count
    /// was not written (some of its writes may be missing), and makes that durable.
    fn redo_last_commit(&self) -> Result<()> {
        let Some(journal) = self.db.get(META_LAST_KEY).map_err(|e| self.engine(e))? else {
            return Ok(());
        };
        let (version, commit, ops): (u8, u64, Vec<WriteOp>) =
            crate::codec::decode_canonical("commit journal", &journal)
                .map_err(|e| self.corrupt(format!("the commit journal is damaged: {e}")))?;
        if version != JOURNAL_VERSION {
            return Err(self.corrupt(format!("unknown commit journal version {version}")));
        }
        let commits = self.stored_commits()?;
        if commit <= commits {
            return Ok(());
        }
        if commit != commits.saturating_add(1) {
            return Err(self.corrupt(format!(
                "the commit journal is for commit {commit} but the store holds {commits}"
            )));
        }
        self.apply_in_order(&ops, commit)?;
        self.db.flush().map_err(|e| self.engine(e))?;
        Ok(())
    }

    /// The commit count stored in the database.
    fn stored_commits(&self) -> Result<u64> {
        match self.db.get(META_COMMITS_KEY).map_err(|e| self.engine(e))? {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("bad commit counter")),
        }
    }

    /// Applies `batch` atomically with the next commit count, without waiting for a flush: it
    /// becomes durable with the next [`DurableDb::commit`] or sled's background flush (every
    /// 500 ms). Only for data that can be had again after a crash (copies, caches); never for
    /// anything acknowledged. The watermark is not advanced, so losing it is not corruption.
    pub fn commit_lazily(&self, batch: Writes) -> Result<()> {
        let commits = self.apply_counted(batch)?;
        self.commits.store(commits, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for DurableDb {
    fn drop(&mut self) {
        // Best effort: make the watermark durable too when the database closes cleanly.
        let _ = self.watermark.sync_data();
        closed_here(&self.path, Some(true));
    }
}

fn watermark_line(commits: u64) -> String {
    format!("scrip-watermark v1 {commits:020}\n")
}

/// An engine message for people: sled sometimes wraps an OS error's debug form
/// (`Os { code: 28, kind: StorageFull, message: "No space left on device" }`); its message is
/// what matters.
fn plain(text: &str) -> String {
    match text.split_once("message: \"") {
        Some((_, rest)) if text.contains("Os {") => rest
            .split_once('"')
            .map_or(text, |(message, _)| message)
            .to_owned(),
        _ => text.to_owned(),
    }
}

/// A format marker as people read it: its text if it is a printable word (`scrip-votes/1`),
/// else its bytes as numbers (the feed store's one-byte `2`).
fn format_text(marker: &[u8]) -> String {
    match std::str::from_utf8(marker) {
        Ok(text) if text.len() > 1 && text.chars().all(|c| c.is_ascii_graphic()) => text.to_owned(),
        _ => marker
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// A data file bigger than this held data (a store just created holds a few hundred bytes).
const MIN_DATA_BYTES: u64 = 4096;

/// Looks at a store directory before the storage engine opens it: sled silently starts empty
/// without its snapshot and watermark, and rewrites the files it finds damaged as it opens them.
/// So: data files without the watermark are refused, untouched (the directory is an incomplete
/// copy: opening it could show an empty store); a watermark counting commits without a data
/// file is refused; and a store that committed more than once but has no snapshot file (sled
/// writes one when it reopens a store) is copied aside first, so that a failed open keeps the
/// files as they were. Returns where that copy is.
fn check_before_open(path: &Path, shown: &str) -> Result<Option<PathBuf>> {
    let corrupt = |detail: String| Error::Corrupt {
        path: shown.to_owned(),
        detail,
    };
    if !path.exists() {
        return Ok(None);
    }
    let watermark = path.join(WATERMARK_FILE);
    let data = fs::metadata(path.join("db")).map_or(0, |m| m.len());
    let snapshot = fs::read_dir(path)
        .map_err(|e| Error::io(format!("reading {shown}"), &e))?
        .flatten()
        .any(|f| f.file_name().to_string_lossy().starts_with("snap."));
    if !watermark.exists() {
        if data > MIN_DATA_BYTES {
            return Err(corrupt(format!(
                "it holds {data} bytes of data but no {WATERMARK_FILE}: not a store left in one \
                 piece (an incomplete copy?); it was not opened, and nothing was changed: \
                 restore the whole directory"
            )));
        }
        return Ok(None);
    }
    let acknowledged = read_watermark(&watermark, shown)?;
    if acknowledged > 0 && data == 0 {
        return Err(corrupt(format!(
            "{WATERMARK_FILE} counts {acknowledged} commits but the data file is missing; it \
             was not opened, and nothing was changed"
        )));
    }
    if acknowledged > 1 && !snapshot {
        let aside = PathBuf::from(format!("{}.before-open", path.display()));
        let _ = fs::remove_dir_all(&aside);
        copy_dir(path, &aside)
            .map_err(|e| Error::io(format!("copying {shown} aside before opening it"), &e))?;
        return Ok(Some(aside));
    }
    Ok(None)
}

/// Copies the directory `from` (files and subdirectories) to `to`: a store set aside before
/// opening, or a store read from a copy because it cannot be written where it is. A file that
/// disappears while the directory is copied is left out: another process has the store open
/// and is changing it (sled renames its snapshot files), so the open that follows is refused
/// as [`Error::Locked`] and the copy is not used.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let copied = if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)
        } else {
            fs::copy(entry.path(), &target).map(drop)
        };
        match copied {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FORMAT: &[u8] = b"test";

    fn writes(round: u8, count: u8) -> Writes {
        let mut writes = Writes::default();
        for i in 0..count {
            writes.insert(vec![b'k', i], vec![round; 100]);
        }
        // A removal too: the first key of the previous round's extra.
        writes.remove(vec![b'x', round.wrapping_sub(1)]);
        writes.insert(vec![b'x', round], vec![round]);
        writes
    }

    /// A crash in the middle of a journaled commit leaves the journal and any prefix of its
    /// writes (sled recovers a prefix of its log); the next open applies the rest.
    #[test]
    fn engine_messages_lose_their_debug_form() {
        assert_eq!(
            plain(
                r#"IO error: Os { code: 28, kind: StorageFull, message: "No space left on device" }"#
            ),
            "No space left on device"
        );
        assert_eq!(plain("plain words"), "plain words");
    }

    #[test]
    fn a_commit_cut_after_any_of_its_writes_is_finished_on_open() {
        let ops = writes(2, 5).ops.len();
        for applied in 0..=ops {
            let dir = tempfile::tempdir().unwrap();
            {
                let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
                db.commit(writes(1, 5)).unwrap();
                // What commit 3 (the format marker was 1) leaves when cut after `applied` writes.
                let cut = writes(2, 5);
                let journal =
                    crate::codec::encode("j", &(JOURNAL_VERSION, 3u64, cut.ops.as_slice()))
                        .unwrap();
                db.db.insert(META_LAST_KEY, journal).unwrap();
                for op in &cut.ops[..applied] {
                    match op {
                        WriteOp::Insert { key, value } => db.db.insert(key, value.as_slice()),
                        WriteOp::Remove { key } => db.db.remove(key),
                    }
                    .unwrap();
                }
                db.db.flush().unwrap();
            }
            let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
            assert_eq!(db.stored_commits().unwrap(), 3, "cut after {applied}");
            for i in 0..5u8 {
                assert_eq!(
                    db.db.get([b'k', i]).unwrap().unwrap().as_ref(),
                    &[2u8; 100][..]
                );
            }
            assert_eq!(db.db.get([b'x', 1]).unwrap(), None, "cut after {applied}");
            assert_eq!(db.db.get([b'x', 2]).unwrap().unwrap().as_ref(), &[2u8][..]);
            // And the store goes on from there.
            db.commit(writes(3, 1)).unwrap();
            assert_eq!(db.stored_commits().unwrap(), 4);
        }
    }

    /// sled's threads hold its file lock a moment after the handle is dropped; reopening at once
    /// must wait for them, while a database still open here is reported locked without waiting.
    #[test]
    fn a_database_closed_here_reopens_at_once_and_one_held_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..50u8 {
            let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
            db.commit(writes(round, 3)).unwrap();
        }
        let held = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
        // Open here, so not among the closed ones: a second open is refused without waiting.
        assert!(!closed_here(dir.path(), None));
        assert!(matches!(
            DurableDb::open(dir.path(), 1 << 20, FORMAT),
            Err(Error::Locked { .. })
        ));
        assert_eq!(held.stored_commits().unwrap(), 51);
        drop(held);
        assert!(closed_here(dir.path(), None));
    }

    /// A journal of a commit that finished changes nothing on open, even if later writes
    /// (outside any commit, as a test can make) changed its keys.
    #[test]
    fn a_finished_commit_is_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
            db.commit(writes(1, 2)).unwrap();
            db.db.insert([b'k', 0], &b"later"[..]).unwrap();
            db.db.flush().unwrap();
        }
        let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
        assert_eq!(db.db.get([b'k', 0]).unwrap().unwrap().as_ref(), b"later");
        assert_eq!(db.stored_commits().unwrap(), 2);
    }

    /// A commit too big for the journal goes through sled's batch, counted like any other.
    /// A file that is gone by the time it is copied (here a link to nothing; in life, a file
    /// another process renamed meanwhile) is left out; the rest is copied.
    #[test]
    fn a_file_gone_while_the_directory_is_copied_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("store");
        fs::create_dir_all(from.join("sub")).unwrap();
        fs::write(from.join("db"), b"data").unwrap();
        fs::write(from.join("sub/conf"), b"conf").unwrap();
        std::os::unix::fs::symlink(from.join("nothing"), from.join("snap.gone")).unwrap();
        let to = dir.path().join("copy");
        copy_dir(&from, &to).unwrap();
        assert_eq!(fs::read(to.join("db")).unwrap(), b"data");
        assert_eq!(fs::read(to.join("sub/conf")).unwrap(), b"conf");
        assert!(!to.join("snap.gone").exists());
    }

    #[test]
    fn a_big_commit_is_applied_as_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
        let mut big = Writes::default();
        for i in 0..100u8 {
            big.insert(vec![b'b', i], vec![i; 1024]);
        }
        assert!(big.bytes > JOURNAL_MAX_BYTES);
        db.commit(big).unwrap();
        db.commit(writes(1, 1)).unwrap();
        drop(db);
        let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
        assert_eq!(db.stored_commits().unwrap(), 3);
        assert_eq!(db.db.get([b'b', 99]).unwrap().unwrap().len(), 1024);
    }

    /// A damaged journal is reported, not ignored.
    #[test]
    fn a_damaged_journal_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap();
            db.commit(writes(1, 1)).unwrap();
            db.db
                .insert(META_LAST_KEY, &b"\x01\x07garbage"[..])
                .unwrap();
            db.db.flush().unwrap();
        }
        let err = DurableDb::open(dir.path(), 1 << 20, FORMAT).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    }
}
