//! The vote log: a notary's votes in one append-only file, one frame per commit, synced
//! (`fdatasync`) before the commit is acknowledged (`docs/protocol/notary.md` §4).
//!
//! Why a file of its own and not sled: a vote commit is a small append followed by a sync, on
//! the path of every payment. In sled it shared the process's I/O threads with the feed store
//! (and went through its redo journal and watermark), and its tail grew to tens of ms while a
//! feed replicated into the same process; here it is one `pwrite` and one `fdatasync`.
//!
//! Layout of `log` in the store's directory:
//! - the 16-byte magic [`VOTE_LOG_MAGIC`] (the format and its version);
//! - frames, one per commit: `length: u32 LE` (of the body, 1 ..= [`MAX_FRAME_BYTES`]),
//!   `check: [u8; 8]` (the first 8 bytes of `blake3(length ‖ body)`), then the body,
//!   `postcard(Vec<LogRecord>)`;
//! - then zeros: the file is extended [`LOG_RESERVE_BYTES`] at a time, zero-filled (synced with
//!   the commit that needed the room), so that most commits overwrite bytes the file already has
//!   and their `fdatasync` commits no file-system metadata (a size change made every commit a
//!   journal commit of the file system, slow while other writes load the disk). A frame length
//!   of 0 followed by nothing but zeros is the end of the log. On a full disk the extension
//!   fails before any byte of the frame is written: [`Error::VoteLogFull`], nothing written,
//!   and the log goes on taking commits once there is room.
//!
//! A commit is acknowledged only after its frame is synced, so only the last frame can be
//! unfinished after a crash (or a full disk). Opening reads every frame; at the first frame that
//! is incomplete or fails its check, the rest of the file is an unacknowledged commit if it is
//! no longer than one frame can be and nothing after it reads as a frame: it is cut off. Anything
//! else is damage, reported as [`Error::VoteLogDamaged`] with the file left as it is.
//!
//! The votes and fates are indexed in memory at open (each vote ~100 bytes, with its record's
//! place in the file); the entry voted for is read back from that record alone when asked for
//! (`SlotInfo.pending`: anyone can ask, so it must not cost a whole frame of up to a batch's
//! entries), and its id is checked again.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use scrip_feed::{EntryBytes, EntryId, FeedId, Seq, codec};
use scrip_ledger::{FateSubject, VoteSubject};

use super::{SledVoteStore, Step, StepHook, VoteRecord, VoteStore};
use crate::error::{Error, Result};

/// The first 16 bytes of a vote log: its format and version.
pub const VOTE_LOG_MAGIC: &[u8; 16] = b"scrip-votelog/2\n";
/// The biggest frame body. A commit holds at most one batch (256 requests, each with an entry
/// of at most ~66 KiB), well under this.
pub const MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;
/// A frame's length and check.
const FRAME_HEADER: usize = 12;
/// The file grows by this many zero-filled bytes at a time (see the module docs).
pub const LOG_RESERVE_BYTES: u64 = 1024 * 1024;
/// The log's file name inside the store's directory.
const LOG_FILE: &str = "log";
/// The lock file's name (an exclusive `flock` while the store is open).
const LOCK_FILE: &str = "lock";
/// Where a sled vote store (format `scrip-votes/1`) found in the directory is moved once its
/// votes are in the log.
pub const MIGRATED_DIR: &str = "sled-v1";

/// One record of a frame. Variant order is the format: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum LogRecord {
    /// A vote and the entry voted for.
    Vote {
        subject: VoteSubject,
        voted: EntryBytes,
    },
    /// A fate vote.
    Fate(FateSubject),
}

/// A vote held, and where its record is in the log (so that reading its entry back reads that
/// record alone, not its whole frame).
#[derive(Clone, Copy, Debug)]
struct Held {
    entry: EntryId,
    round: u32,
    /// The record's first byte in the file.
    at: u64,
    /// The record's length.
    len: u32,
}

/// What the log holds, indexed in memory.
#[derive(Debug, Default)]
struct Index {
    votes: BTreeMap<(FeedId, Seq), Held>,
    fates: HashMap<EntryId, FateSubject>,
}

impl Index {
    /// Indexes the records of the frame at byte `frame`, each with its span in the frame's body
    /// (a fate: the first one recorded stays).
    fn add(&mut self, frame: u64, records: Vec<LogRecord>, spans: &[(usize, usize)]) {
        let body = frame + FRAME_HEADER as u64;
        for (record, &(start, len)) in records.into_iter().zip(spans) {
            match record {
                LogRecord::Vote { subject, .. } => {
                    self.votes.insert(
                        (subject.wallet, subject.seq),
                        Held {
                            entry: subject.entry,
                            round: subject.round,
                            at: body + start as u64,
                            len: u32::try_from(len).unwrap_or(u32::MAX),
                        },
                    );
                }
                LogRecord::Fate(fate) => {
                    self.fates.entry(fate.order).or_insert(fate);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// End of the last acknowledged frame: where the next one goes.
    len: u64,
    /// The file's size: `len` and the zeros after it.
    size: u64,
    index: Index,
    /// A write or sync failed: nothing more is written until the store is reopened.
    failed: bool,
}

/// Votes in an append-only file, synced before any is acknowledged.
#[derive(Debug)]
pub struct LogVoteStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Held (locked) for as long as the store is open.
    _lock: File,
}

impl LogVoteStore {
    /// Opens (creating if needed) the vote store in directory `dir`. A sled vote store found
    /// there (the previous format) is copied into a new log first, then moved to
    /// [`MIGRATED_DIR`].
    pub fn open(dir: &Path) -> Result<LogVoteStore> {
        // Owner only, whatever the umask (as the home and its feed store).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
        let lock = lock(dir)?;
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            if holds_sled(dir)? {
                migrate(dir, &path)?;
            } else {
                write_new(&path, &[])?;
            }
        }
        if holds_sled(dir)? {
            // A migration that stopped after its log was in place.
            move_sled_aside(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
        let read = read_log(&file, &path)?;
        if let Some(torn) = read.torn {
            tracing::warn!(
                log = %path.display(),
                bytes = torn,
                "the vote log ended in a commit that was never acknowledged; cut off"
            );
            file.set_len(read.len)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(format!("cutting {}", path.display()), &e))?;
        }
        let size = if read.torn.is_some() {
            read.len
        } else {
            read.size
        };
        Ok(LogVoteStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                len: read.len,
                size,
                index: read.index,
                failed: false,
            }),
            _lock: lock,
        })
    }

    fn path(&self) -> String {
        self.dir.join(LOG_FILE).display().to_string()
    }
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::VoteLogLocked {
            path: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", path.display()), &e))
        }
    }
}

/// True if `dir` holds a sled database (the previous vote store format).
fn holds_sled(dir: &Path) -> Result<bool> {
    Ok(dir.join("db").exists() || dir.join("conf").exists())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), &e))
}

/// Where each record of a frame's body is: (offset in the body, length).
type Spans = Vec<(usize, usize)>;

/// The body of a frame holding `records` (exactly `postcard(records)`: the count, then each
/// record) and each record's span in it.
fn body(records: &[LogRecord]) -> Result<(Vec<u8>, Spans)> {
    let mut body = codec::encode("vote log frame", &records.len())?;
    let mut spans = Vec::with_capacity(records.len());
    for record in records {
        let encoded = codec::encode("vote log record", record)?;
        spans.push((body.len(), encoded.len()));
        body.extend_from_slice(&encoded);
    }
    Ok((body, spans))
}

/// Encodes `records` as one frame; returns it with each record's span in the frame's body.
fn frame(records: &[LogRecord]) -> Result<(Vec<u8>, Spans)> {
    let (body, spans) = body(records)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(Error::Protocol {
            reason: format!(
                "a vote commit of {} bytes is over the log's frame bound ({MAX_FRAME_BYTES})",
                body.len()
            ),
        });
    }
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(FRAME_HEADER + body.len());
    out.extend_from_slice(&length);
    out.extend_from_slice(&check(&length, &body));
    out.extend_from_slice(&body);
    Ok((out, spans))
}

fn check(length: &[u8; 4], body: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(length);
    hasher.update(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

/// Writes a new log holding `frames` at `path`, through a temporary file renamed into place
/// once synced (a crash leaves either no log or the whole one).
fn write_new(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = path.with_extension("new");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| Error::io(format!("creating {}", temp.display()), &e))?;
    let write = |file: &mut File| -> std::io::Result<()> {
        file.write_all(VOTE_LOG_MAGIC)?;
        for frame in frames {
            file.write_all(frame)?;
        }
        file.sync_all()
    };
    write(&mut file).map_err(|e| Error::io(format!("writing {}", temp.display()), &e))?;
    fs::rename(&temp, path).map_err(|e| Error::io(format!("renaming {}", temp.display()), &e))?;
    sync_dir(dir)
}

/// Copies the sled vote store in `dir` into a new log at `path`, then moves sled's files aside.
fn migrate(dir: &Path, path: &Path) -> Result<()> {
    let mut records = Vec::new();
    {
        let sled = SledVoteStore::open(dir)?;
        for subject in sled.load()? {
            let entry = sled
                .voted_entry(&subject.wallet, subject.seq)?
                .ok_or_else(|| Error::VoteLogDamaged {
                    path: dir.display().to_string(),
                    detail: format!(
                        "the sled vote store holds a vote at {} #{} without its entry",
                        subject.wallet, subject.seq
                    ),
                })?;
            records.push(LogRecord::Vote {
                subject,
                voted: EntryBytes::of(&entry),
            });
        }
        records.extend(sled.load_fates()?.into_iter().map(LogRecord::Fate));
    }
    let mut frames = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    for record in records {
        let size = codec::encode("vote log record", &record)?.len();
        if !chunk.is_empty() && bytes + size > MAX_FRAME_BYTES / 2 {
            frames.push(frame(&chunk)?.0);
            chunk.clear();
            bytes = 0;
        }
        bytes += size;
        chunk.push(record);
    }
    if !chunk.is_empty() {
        frames.push(frame(&chunk)?.0);
    }
    let count = frames.len();
    write_new(path, &frames)?;
    tracing::info!(
        dir = %dir.display(),
        frames = count,
        "the sled vote store was copied into the vote log; sled's files move to {MIGRATED_DIR}/"
    );
    move_sled_aside(dir)
}

/// Moves everything in `dir` but the log and the lock into [`MIGRATED_DIR`].
fn move_sled_aside(dir: &Path) -> Result<()> {
    let aside = dir.join(MIGRATED_DIR);
    fs::create_dir_all(&aside)
        .map_err(|e| Error::io(format!("creating {}", aside.display()), &e))?;
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), &e))?;
        let name = entry.file_name();
        if [LOG_FILE, LOCK_FILE, MIGRATED_DIR]
            .iter()
            .any(|keep| name == *keep)
        {
            continue;
        }
        fs::rename(entry.path(), aside.join(&name))
            .map_err(|e| Error::io(format!("moving {}", entry.path().display()), &e))?;
    }
    sync_dir(&aside)?;
    sync_dir(dir)
}

/// What [`read_log`] found.
struct Read {
    len: u64,
    /// The file's size (the zeros after `len` included).
    size: u64,
    index: Index,
    /// Bytes of an unacknowledged commit after `len`, to cut off.
    torn: Option<u64>,
}

/// One frame read at an offset: its body, or why not.
enum FrameRead {
    Whole {
        body: Vec<u8>,
        end: u64,
    },
    /// Incomplete or failing its check; `end` where it would end if its length is plausible.
    Bad {
        end: Option<u64>,
    },
}

fn read_frame(file: &File, at: u64, size: u64) -> std::io::Result<FrameRead> {
    let mut header = [0u8; FRAME_HEADER];
    if size.saturating_sub(at) < FRAME_HEADER as u64 {
        return Ok(FrameRead::Bad { end: None });
    }
    file.read_exact_at(&mut header, at)?;
    let length: [u8; 4] = header[..4].try_into().unwrap_or_default();
    let body_len = u32::from_le_bytes(length) as usize;
    if body_len == 0 || body_len > MAX_FRAME_BYTES {
        return Ok(FrameRead::Bad { end: None });
    }
    let end = at + (FRAME_HEADER + body_len) as u64;
    if end > size {
        return Ok(FrameRead::Bad { end: None });
    }
    let mut body = vec![0u8; body_len];
    file.read_exact_at(&mut body, at + FRAME_HEADER as u64)?;
    if header[4..] != check(&length, &body) {
        return Ok(FrameRead::Bad { end: Some(end) });
    }
    Ok(FrameRead::Whole { body, end })
}

/// Whether the file holds only zeros from `at` to `size`.
fn zeros_to_end(file: &File, at: u64, size: u64) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut from = at;
    while from < size {
        let n = usize::try_from((size - from).min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.read_exact_at(&mut chunk[..n], from)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        from += n as u64;
    }
    Ok(true)
}

fn read_log(file: &File, path: &Path) -> Result<Read> {
    let damaged = |detail: String| Error::VoteLogDamaged {
        path: path.display().to_string(),
        detail,
    };
    let io = |e: std::io::Error| Error::io(format!("reading {}", path.display()), &e);
    let size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; VOTE_LOG_MAGIC.len()];
    if size < VOTE_LOG_MAGIC.len() as u64 {
        return Err(damaged(format!("{size} bytes: shorter than its header")));
    }
    file.read_exact_at(&mut magic, 0).map_err(io)?;
    if &magic != VOTE_LOG_MAGIC {
        return Err(damaged(
            "not a scrip vote log (format scrip-votelog/2)".into(),
        ));
    }
    let mut read = Read {
        len: VOTE_LOG_MAGIC.len() as u64,
        size,
        index: Index::default(),
        torn: None,
    };
    while read.len < size {
        let at = read.len;
        match read_frame(file, at, size).map_err(io)? {
            FrameRead::Whole { body, end } => {
                let records: Vec<LogRecord> = codec::decode_canonical("vote log frame", &body)
                    .map_err(|e| damaged(format!("the frame at byte {at}: {e}")))?;
                // Canonical, so the records' encodings, one after another, are the body.
                let (_, spans) = self::body(&records)?;
                read.index.add(at, records, &spans);
                read.len = end;
            }
            FrameRead::Bad { end: None } if zeros_to_end(file, at, size).map_err(io)? => {
                // The zero-filled reserve: the log ends here.
                break;
            }
            FrameRead::Bad { end } => {
                let rest = size - at;
                let followed = match end {
                    Some(end) if end < size => {
                        matches!(
                            read_frame(file, end, size).map_err(io)?,
                            FrameRead::Whole { .. }
                        )
                    }
                    _ => false,
                };
                if followed || rest > (FRAME_HEADER + MAX_FRAME_BYTES) as u64 {
                    return Err(damaged(format!(
                        "the frame at byte {at} of {size} fails its check and is not the last"
                    )));
                }
                read.torn = Some(rest);
                break;
            }
        }
    }
    Ok(read)
}

impl VoteStore for LogVoteStore {
    fn record(&self, votes: &[VoteRecord], hook: &StepHook) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.failed {
            return Err(Error::VoteLogRestartNeeded { path: self.path() });
        }
        hook(Step::BeforeWrite);
        // What this commit adds, checked against what is held and against itself.
        let mut records = Vec::new();
        let mut slots: HashMap<(FeedId, Seq), (EntryId, u32)> = HashMap::new();
        let mut fates: HashMap<EntryId, FateSubject> = HashMap::new();
        for record in votes {
            match record {
                VoteRecord::Entry { subject, entry } => {
                    let slot = (subject.wallet, subject.seq);
                    let held = inner
                        .index
                        .votes
                        .get(&slot)
                        .map(|h| (h.entry, h.round))
                        .or_else(|| slots.get(&slot).copied());
                    match held {
                        Some(held) if held == (subject.entry, subject.round) => continue,
                        Some(_) => {
                            return Err(Error::SlotTaken {
                                wallet: subject.wallet,
                                seq: subject.seq.get(),
                            });
                        }
                        None => {}
                    }
                    slots.insert(slot, (subject.entry, subject.round));
                    records.push(LogRecord::Vote {
                        subject: *subject,
                        voted: EntryBytes::of(entry),
                    });
                }
                VoteRecord::Fate(fate) => {
                    let held = inner
                        .index
                        .fates
                        .get(&fate.order)
                        .or_else(|| fates.get(&fate.order));
                    match held {
                        Some(held) if held.fate.excludes(fate.fate) => {
                            return Err(Error::FateTaken { order: fate.order });
                        }
                        Some(_) => continue,
                        None => {}
                    }
                    fates.insert(fate.order, *fate);
                    records.push(LogRecord::Fate(*fate));
                }
            }
        }
        if records.is_empty() {
            hook(Step::Written);
            hook(Step::Flushed);
            return Ok(());
        }
        let (bytes, spans) = frame(&records)?;
        let at = inner.len;
        let frame_end = at + bytes.len() as u64;
        if frame_end > inner.size {
            // Zeros up to the next reserve boundary first (synced with the frame below): if the
            // disk is full, this fails before any byte of the frame is written.
            let new_size = frame_end.div_ceil(LOG_RESERVE_BYTES) * LOG_RESERVE_BYTES;
            let zeros = vec![0u8; usize::try_from(new_size - inner.size).unwrap_or(0)];
            inner
                .file
                .write_all_at(&zeros, inner.size)
                .map_err(|e| Error::VoteLogFull {
                    path: self.path(),
                    detail: e.to_string(),
                })?;
            inner.size = new_size;
        }
        if let Err(err) = inner.file.write_all_at(&bytes, at) {
            inner.failed = true;
            return Err(Error::VoteLogWriteUncertain {
                path: self.path(),
                detail: err.to_string(),
            });
        }
        hook(Step::Written);
        if let Err(err) = inner.file.sync_data() {
            inner.failed = true;
            return Err(Error::VoteLogWriteUncertain {
                path: self.path(),
                detail: err.to_string(),
            });
        }
        hook(Step::Flushed);
        inner.len = frame_end;
        inner.index.add(at, records, &spans);
        Ok(())
    }

    fn load(&self) -> Result<Vec<VoteSubject>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(inner
            .index
            .votes
            .iter()
            .map(|((wallet, seq), held)| VoteSubject {
                wallet: *wallet,
                seq: *seq,
                entry: held.entry,
                round: held.round,
            })
            .collect())
    }

    fn load_fates(&self) -> Result<Vec<FateSubject>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut fates: Vec<FateSubject> = inner.index.fates.values().copied().collect();
        fates.sort_by_key(|f| f.order);
        Ok(fates)
    }

    fn voted_entry(&self, wallet: &FeedId, seq: Seq) -> Result<Option<scrip_feed::Entry>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(held) = inner.index.votes.get(&(*wallet, seq)).copied() else {
            return Ok(None);
        };
        let path = self.path();
        let damaged = |detail: String| Error::VoteLogDamaged {
            path: path.clone(),
            detail: format!("the vote at {wallet} #{seq} (byte {}): {detail}", held.at),
        };
        let mut bytes = vec![0u8; held.len as usize];
        inner
            .file
            .read_exact_at(&mut bytes, held.at)
            .map_err(|e| Error::io(format!("reading {path}"), &e))?;
        drop(inner);
        // Its frame was checked at open or written by this process; the entry id (a hash of the
        // header, which holds the payload's hash) is checked again here.
        let record: LogRecord = codec::decode_canonical("vote log record", &bytes)
            .map_err(|e| damaged(e.to_string()))?;
        let LogRecord::Vote { subject, voted } = record else {
            return Err(damaged("not a vote record".into()));
        };
        let entry = voted.decode().map_err(|e| damaged(e.to_string()))?;
        if (subject.wallet, subject.seq) != (*wallet, seq)
            || entry.id() != held.entry
            || scrip_feed::validate::validate_payload(&entry).is_err()
        {
            return Err(damaged(
                "the record does not hold the entry voted for".into(),
            ));
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::{Entry, Keypair, Timestamp};

    fn vote(text: &[u8], seq: u64) -> VoteRecord {
        let key = Keypair::from_seed(&[1; 32]);
        let entry = Entry::create(&key, None, Timestamp::from_millis(seq), text.to_vec()).unwrap();
        VoteRecord::new(
            VoteSubject {
                wallet: key.id(),
                seq: Seq::new(seq),
                entry: entry.id(),
                round: 0,
            },
            entry,
        )
    }

    /// The file's size.
    fn log_len(dir: &Path) -> usize {
        fs::read(dir.join(LOG_FILE)).unwrap().len()
    }

    /// Where the log's frames end (the zeros of its reserve follow).
    fn frames_end(store: &LogVoteStore) -> usize {
        usize::try_from(store.inner.lock().unwrap().len).unwrap()
    }

    #[test]
    fn a_frame_body_is_the_postcard_encoding_of_its_records_and_each_span_is_one_record() {
        let records: Vec<LogRecord> = [vote(b"a", 1), vote(b"bb", 2), vote(b"ccc", 3)]
            .into_iter()
            .map(|r| match r {
                VoteRecord::Entry { subject, entry } => LogRecord::Vote {
                    subject,
                    voted: EntryBytes::of(&entry),
                },
                VoteRecord::Fate(fate) => LogRecord::Fate(fate),
            })
            .collect();
        let (bytes, spans) = body(&records).unwrap();
        assert_eq!(bytes, codec::encode("records", &records).unwrap());
        for (record, (start, len)) in records.iter().zip(spans) {
            let one: LogRecord =
                codec::decode_canonical("record", &bytes[start..start + len]).unwrap();
            assert_eq!(&one, record);
        }
    }

    #[test]
    fn the_log_and_its_directory_are_the_owner_s_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let votes = dir.path().join("votes");
        let _store = LogVoteStore::open(&votes).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&votes), 0o700);
        assert_eq!(mode(&votes.join(LOG_FILE)), 0o600);
        assert_eq!(mode(&votes.join(LOCK_FILE)), 0o600);
    }

    #[test]
    fn a_second_open_of_the_same_log_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let _first = LogVoteStore::open(dir.path()).unwrap();
        assert!(matches!(
            LogVoteStore::open(dir.path()),
            Err(Error::VoteLogLocked { .. })
        ));
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_the_acknowledged_votes_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (acknowledged, second_end);
        {
            let store = LogVoteStore::open(dir.path()).unwrap();
            store.record(&[vote(b"a", 1)], &|_| {}).unwrap();
            acknowledged = frames_end(&store);
            store.record(&[vote(b"b", 2)], &|_| {}).unwrap();
            second_end = frames_end(&store);
        }
        // Every cut inside the second frame reads as that commit never made.
        let full = fs::read(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(full.len() as u64, LOG_RESERVE_BYTES);
        assert!(full[second_end..].iter().all(|&b| b == 0));
        for cut in acknowledged..second_end {
            fs::write(dir.path().join(LOG_FILE), &full[..cut]).unwrap();
            let store = LogVoteStore::open(dir.path()).unwrap();
            assert_eq!(store.load().unwrap().len(), 1, "cut at {cut}");
            assert_eq!(log_len(dir.path()), acknowledged);
            // The log takes new commits where the torn one was.
            store.record(&[vote(b"c", 2)], &|_| {}).unwrap();
            drop(store);
            let store = LogVoteStore::open(dir.path()).unwrap();
            assert_eq!(store.load().unwrap().len(), 2);
        }
        // Zeros where the second frame's end should be (the reserve's zeros showing through a
        // write cut short) are an unfinished commit too.
        let mut zeroed = full.clone();
        zeroed[second_end - 8..second_end].fill(0);
        fs::write(dir.path().join(LOG_FILE), &zeroed).unwrap();
        assert_eq!(
            LogVoteStore::open(dir.path())
                .unwrap()
                .load()
                .unwrap()
                .len(),
            1
        );
        // A last frame of the right length with damaged bytes is also an unfinished commit.
        let mut damaged = full.clone();
        let last = second_end - 1;
        damaged[last] ^= 0xff;
        fs::write(dir.path().join(LOG_FILE), &damaged).unwrap();
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap().len(), 1);
    }

    /// The zeros after the last frame are the log's reserve: a reopen keeps them (nothing is
    /// cut, the file's size stays), and commits go on where the frames end.
    #[test]
    fn the_zero_filled_reserve_is_the_log_s_end_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let store = LogVoteStore::open(dir.path()).unwrap();
            for seq in 1..=3 {
                store.record(&[vote(b"a", seq)], &|_| {}).unwrap();
            }
            frames_end(&store)
        };
        assert_eq!(log_len(dir.path()) as u64, LOG_RESERVE_BYTES);
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(frames_end(&store), end);
        assert_eq!(
            log_len(dir.path()) as u64,
            LOG_RESERVE_BYTES,
            "nothing was cut"
        );
        store.record(&[vote(b"a", 4)], &|_| {}).unwrap();
        drop(store);
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(slots(&store), vec![1, 2, 3, 4]);
        // A frame bigger than what is left of the reserve grows the file by whole reserves.
        let big = vec![b'b'; 60 * 1024];
        let many: Vec<_> = (5..25).map(|seq| vote(&big, seq)).collect();
        store.record(&many, &|_| {}).unwrap();
        assert_eq!(log_len(dir.path()) as u64, 2 * LOG_RESERVE_BYTES);
        drop(store);
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(slots(&store), (1..25).collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_frame_followed_by_others_is_refused_and_the_file_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let first_end;
        {
            let store = LogVoteStore::open(dir.path()).unwrap();
            store.record(&[vote(b"a", 1)], &|_| {}).unwrap();
            first_end = frames_end(&store);
            store.record(&[vote(b"b", 2)], &|_| {}).unwrap();
        }
        let mut bytes = fs::read(dir.path().join(LOG_FILE)).unwrap();
        bytes[first_end - 1] ^= 0xff; // the first frame's last byte
        fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
        let err = LogVoteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::VoteLogDamaged { .. }), "{err}");
        assert!(err.to_string().contains("must not vote"), "{err}");
        assert_eq!(fs::read(dir.path().join(LOG_FILE)).unwrap(), bytes);
        // Not a vote log at all.
        fs::write(dir.path().join(LOG_FILE), b"something else entirely").unwrap();
        assert!(matches!(
            LogVoteStore::open(dir.path()),
            Err(Error::VoteLogDamaged { .. })
        ));
    }

    #[test]
    fn a_sled_vote_store_is_copied_into_the_log_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let fate = FateSubject {
            wallet: Keypair::from_seed(&[2; 32]).id(),
            order: EntryId::of_header(b"o1"),
            fate: scrip_ledger::Fate::Claimed,
        };
        let (a, b) = (vote(b"a", 1), vote(b"b", 2));
        {
            let sled = SledVoteStore::open(dir.path()).unwrap();
            sled.record(&[a.clone(), b.clone(), VoteRecord::Fate(fate)], &|_| {})
                .unwrap();
        }
        let store = LogVoteStore::open(dir.path()).unwrap();
        let subjects = store.load().unwrap();
        assert_eq!(subjects.len(), 2);
        assert_eq!(store.load_fates().unwrap(), vec![fate]);
        let VoteRecord::Entry { entry, subject } = a else {
            unreachable!()
        };
        assert_eq!(
            store.voted_entry(&subject.wallet, subject.seq).unwrap(),
            Some(*entry)
        );
        assert!(!dir.path().join("db").exists());
        assert!(dir.path().join(MIGRATED_DIR).join("db").exists());
        // The migrated votes still bind: another entry for slot 1 is refused.
        assert!(matches!(
            store.record(&[vote(b"x", 1)], &|_| {}),
            Err(Error::SlotTaken { seq: 1, .. })
        ));
        drop(store);
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), subjects);
    }

    /// The slots a log holds votes for, in order.
    fn slots(store: &LogVoteStore) -> Vec<u64> {
        store.load().unwrap().iter().map(|s| s.seq.get()).collect()
    }

    #[test]
    fn a_failed_write_is_uncertain_and_nothing_more_is_written_until_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let store = LogVoteStore::open(dir.path()).unwrap();
        store.record(&[vote(b"a", 1)], &|_| {}).unwrap();
        let acknowledged = fs::read(&path).unwrap();
        // The disk fails: the log's handle is swapped for one that cannot write.
        store.inner.lock().unwrap().file = File::open(&path).unwrap();
        let failed = store.record(&[vote(b"b", 2)], &|_| {}).unwrap_err();
        assert!(
            matches!(failed, Error::VoteLogWriteUncertain { .. }),
            "{failed:?}"
        );
        assert!(failed.to_string().contains("may or may not"), "{failed}");
        assert_eq!(slots(&store), vec![1], "a failed commit is not held");
        // The disk is back, but the log takes nothing more before it is opened again.
        store.inner.lock().unwrap().file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let later = store.record(&[vote(b"c", 3)], &|_| {}).unwrap_err();
        assert!(
            matches!(later, Error::VoteLogRestartNeeded { .. }),
            "{later:?}"
        );
        assert!(later.to_string().contains("restart"), "{later}");
        assert_eq!(fs::read(&path).unwrap(), acknowledged);
        drop(store);
        let store = LogVoteStore::open(dir.path()).unwrap();
        assert_eq!(slots(&store), vec![1]);
        store.record(&[vote(b"b", 2)], &|_| {}).unwrap();
        assert_eq!(slots(&store), vec![1, 2]);
    }

    /// A small tmpfs mounted over a directory, unmounted when dropped (tests of a full disk;
    /// `None` without permission to mount). Mounted by the system call itself, not by a `mount`
    /// child: a fork shares the open log's lock for a moment, which another test reopening
    /// its own log at that moment would see as a second holder.
    struct Tmpfs<'a>(&'a Path);

    impl<'a> Tmpfs<'a> {
        fn mount(dir: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
            let options = std::ffi::CString::new(format!("size={size}")).unwrap();
            rustix::mount::mount(
                "tmpfs",
                dir,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                options.as_c_str(),
            )
            .ok()
            .map(|()| Tmpfs(dir))
        }

        fn resize(&self, size: &str) {
            rustix::mount::mount_remount(
                self.0,
                rustix::mount::MountFlags::empty(),
                format!("size={size}").as_str(),
            )
            .unwrap();
        }
    }

    impl Drop for Tmpfs<'_> {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::empty());
        }
    }

    /// On a real full disk: a 4 MiB tmpfs filled by commits of ~20 KiB. The log grows a reserve
    /// at a time, so the commit that finds no room fails before any byte of its frame is
    /// written: refused as `VoteLogFull`, nothing of it in the log, and the same store takes
    /// commits again once there is room (needs permission to mount; says when it was skipped).
    #[test]
    fn a_full_disk_refuses_the_commit_that_needs_room_and_loses_no_acknowledged_vote() {
        let dir = tempfile::tempdir().unwrap();
        let Some(tmpfs) = Tmpfs::mount(dir.path(), "4m") else {
            eprintln!("no permission to mount a tmpfs here: the full-disk test was skipped");
            return;
        };
        let votes = dir.path().join("votes");
        let mut acknowledged = Vec::new();
        let payload = vec![b'v'; 20 * 1024];
        let store = LogVoteStore::open(&votes).unwrap();
        let mut seq = 1;
        let failed = loop {
            match store.record(&[vote(&payload, seq)], &|_| {}) {
                Ok(()) => acknowledged.push(seq),
                Err(err) => break err,
            }
            seq += 1;
            assert!(seq < 1000, "a 4 MiB disk never filled up");
        };
        eprintln!(
            "full disk after {} vote commits: {failed}",
            acknowledged.len()
        );
        assert!(matches!(failed, Error::VoteLogFull { .. }), "{failed:?}");
        assert!(
            failed.to_string().contains("nothing was recorded"),
            "{failed}"
        );
        assert!(acknowledged.len() > 10);
        assert_eq!(
            slots(&store),
            acknowledged,
            "the refused commit is not held"
        );
        // Still full: refused again, the same way.
        let again = store.record(&[vote(&payload, seq)], &|_| {});
        assert!(matches!(again, Err(Error::VoteLogFull { .. })), "{again:?}");
        // Room again, as a user would make it: the same store goes on, no restart needed.
        tmpfs.resize("8m");
        store.record(&[vote(&payload, seq)], &|_| {}).unwrap();
        acknowledged.push(seq);
        drop(store);
        let store = LogVoteStore::open(&votes).unwrap();
        assert_eq!(slots(&store), acknowledged);
    }

    #[test]
    fn two_votes_for_one_slot_in_one_commit_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogVoteStore::open(dir.path()).unwrap();
        let before = log_len(dir.path());
        assert!(matches!(
            store.record(&[vote(b"a", 1), vote(b"x", 1)], &|_| {}),
            Err(Error::SlotTaken { seq: 1, .. })
        ));
        assert_eq!(log_len(dir.path()), before);
        assert!(store.load().unwrap().is_empty());
    }
}
