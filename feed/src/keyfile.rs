//! The secret key file.
//!
//! Format (UTF-8, exactly three lines, each ending in `\n`):
//!
//! ```text
//! scrip-secret-key v1
//! feed @<base58 public key>
//! seed <64 lowercase hex digits: the 32-byte ed25519 secret seed>
//! ```
//!
//! The `feed` line lets a reader check that the seed is the key it expects. On Unix the file is
//! created with mode `0600`, and reading refuses a file that group or others can read. It is
//! created whole or not at all, never over an existing file ([`create_secret_file`], which
//! backups use too).

use std::fs;
use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::Keypair;
use crate::limits::MAX_KEY_FILE_BYTES;

/// The first line of a key file: its format and version.
pub const KEY_FILE_MAGIC: &str = "scrip-secret-key v1";

/// The text of a key file for `keypair`. The result holds the secret: it is zeroized on drop.
pub fn encode(keypair: &Keypair) -> Zeroizing<String> {
    let seed = keypair.seed();
    Zeroizing::new(format!(
        "{KEY_FILE_MAGIC}\nfeed {}\nseed {}\n",
        keypair.id(),
        Zeroizing::new(hex::encode(seed.as_ref())).as_str()
    ))
}

/// Parses the text of a key file (`path` is only used in error messages).
pub fn decode(path: &str, text: &str) -> Result<Keypair> {
    let bad = |reason: &str| Error::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("does not end with a newline"))?;
    let lines: Vec<&str> = body.split('\n').collect();
    let [magic, feed, seed] = lines[..] else {
        return Err(bad("expected exactly three lines"));
    };
    if magic != KEY_FILE_MAGIC {
        return Err(bad(&format!(
            "first line is not {KEY_FILE_MAGIC:?} (unknown format or version)"
        )));
    }
    let feed = feed
        .strip_prefix("feed ")
        .ok_or_else(|| bad("second line does not start with \"feed \""))?;
    let seed_hex = seed
        .strip_prefix("seed ")
        .ok_or_else(|| bad("third line does not start with \"seed \""))?;
    if seed_hex.len() != 64
        || !seed_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("seed is not 64 lowercase hex digits"));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed_hex, seed.as_mut())
        .map_err(|_| bad("seed is not 64 lowercase hex digits"))?;
    let keypair = Keypair::from_seed(&seed);
    if keypair.id().to_string() != feed {
        return Err(bad(
            "the seed does not belong to the feed id on the second line",
        ));
    }
    Ok(keypair)
}

/// Writes a new key file at `path` (which must not exist) with [`create_secret_file`]:
/// readable only by its owner, flushed to disk, whole or not at all.
pub fn write(path: &Path, keypair: &Keypair) -> Result<()> {
    create_secret_file(path, encode(keypair).as_bytes())
        .map_err(|e| Error::io(format!("writing key file {}", path.display()), &e))
}

/// Creates the file `path` (which must not exist: [`std::io::ErrorKind::AlreadyExists`])
/// holding `bytes`, readable only by its owner, flushed to disk with its directory — whole or
/// not at all, for files that hold secrets (key files, backups). It is written and flushed
/// beside `path` first, under a hidden name of this call's own
/// (`.NAME.<pid>-<n>.scrip-partial`), then linked to `path`, which fails if `path` exists (so
/// nothing is ever overwritten), and the staging name is removed. A reader (`scrip id` while
/// the daemon creates the wallet) never sees a file half written; of two writers racing for
/// one `path` exactly one succeeds, and the file holds what that one wrote; a crash in the
/// middle leaves nothing at `path` — no key file that could never be read, no backup that
/// looks whole and is not — only its staging file, removed by a later write once the process
/// that made it has ended. Where the file system has no hard links, the staged file is renamed
/// to `path` after checking that `path` does not exist.
pub fn create_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let exists = || std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    if path.exists() {
        return Err(exists());
    }
    remove_stale_staging(path);
    let staged = staging(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&staged)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let placed = written.and_then(|()| match fs::hard_link(&staged, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        // No hard links here (some file systems): rename, having checked above and again.
        Err(_) if !path.exists() => fs::rename(&staged, path),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&staged);
    placed?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The end of every staging file's name.
const STAGING_SUFFIX: &str = ".scrip-partial";

/// Where one call of [`create_secret_file`] prepares `path`: in the same directory,
/// `.NAME.<pid>-<n>.scrip-partial`, unique to this call (process id, and a counter within the
/// process), so that no writer ever writes into, links or removes another's; hidden and
/// scrip's by its name (a backup's `path` is the user's choice: none of their files is ever
/// taken for a staging file).
fn staging(path: &Path) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}-{n}{STAGING_SUFFIX}", std::process::id()));
    path.with_file_name(name)
}

/// Removes the staging files of `path` ([`staging`]) whose process has ended: writes cut short
/// by a crash. A running process's are left alone (it may be writing).
fn remove_stale_staging(path: &Path) {
    let (Some(name), Some(dir)) = (path.file_name().and_then(|n| n.to_str()), path.parent()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(tag) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(STAGING_SUFFIX))
        else {
            continue;
        };
        let Some((pid, n)) = tag.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` is running (where that cannot be told, it is taken to be).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Reads the key file at `path`, refusing one that others can read.
pub fn read(path: &Path) -> Result<Keypair> {
    let shown = path.display().to_string();
    let metadata =
        fs::metadata(path).map_err(|e| Error::io(format!("reading key file {shown}"), &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFilePermissions { path: shown, mode });
        }
    }
    if metadata.len() > MAX_KEY_FILE_BYTES as u64 {
        return Err(Error::KeyFile {
            path: shown,
            reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes"),
        });
    }
    let bytes = Zeroizing::new(
        fs::read(path).map_err(|e| Error::io(format!("reading key file {shown}"), &e))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::KeyFile {
        path: shown.clone(),
        reason: "not UTF-8".into(),
    })?;
    decode(&shown, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let key = Keypair::from_seed(&[8; 32]);
        write(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().id(), key.id());
        // Never overwrites.
        assert!(write(&path, &key).is_err());
    }

    /// A reader never sees a key file half written: at its path there is no file, or the
    /// whole key (a daemon writes the wallet key while `scrip id` reads it; a crash in the
    /// middle of the write must not leave a file that can never be read). Reads race writes
    /// of `SCRIP_KEYFILE_RACES` keys (default 300).
    #[test]
    fn a_key_file_is_never_read_half_written() {
        let rounds: usize = std::env::var("SCRIP_KEYFILE_RACES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(300);
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::from_seed(&[8; 32]);
        let paths: Vec<_> = (0..rounds)
            .map(|i| dir.path().join(format!("k{i}")))
            .collect();
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut torn = Vec::new();
                for path in &paths {
                    loop {
                        match read(path) {
                            Ok(read) => {
                                assert_eq!(read.id(), key.id());
                                break;
                            }
                            Err(Error::Io {
                                kind: std::io::ErrorKind::NotFound,
                                ..
                            }) => {}
                            Err(err) => torn.push(err.to_string()),
                        }
                    }
                }
                torn
            });
            for path in &paths {
                write(path, &key).unwrap();
            }
            let torn = reader.join().unwrap();
            assert!(
                torn.is_empty(),
                "{} torn reads: {:?}",
                torn.len(),
                torn.first()
            );
        });
    }

    /// A process id that is not running: a child's, once it has exited.
    fn ended_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// What a crash in the middle of a write left beside the key's path does not stop the
    /// next write, and is gone after it; a staging file of a running process is left alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_cut_short_does_not_block_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let stale = dir
            .path()
            .join(format!(".secret.{}-0{STAGING_SUFFIX}", ended_pid()));
        fs::write(&stale, b"scrip-secret-key v1\nfee").unwrap();
        let running = dir
            .path()
            .join(format!(".other.{}-0{STAGING_SUFFIX}", std::process::id()));
        fs::write(&running, b"being written").unwrap();
        let key = Keypair::from_seed(&[8; 32]);
        write(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().id(), key.id());
        assert!(!stale.exists());
        assert!(running.exists());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "only the key and the running one: {left:?}");
    }

    /// Writers racing for one path: exactly one succeeds, the others are told it exists, and
    /// the file holds the key of the one that succeeded (with one staging name for all, a
    /// writer could link another's file and take its own key for the one written).
    #[test]
    fn of_racing_writers_one_wins_and_the_file_holds_its_key() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..50 {
            let path = dir.path().join(format!("k{round}"));
            let winners: Vec<_> = std::thread::scope(|scope| {
                let writers: Vec<_> = (0..4u8)
                    .map(|i| {
                        let path = &path;
                        scope.spawn(move || {
                            let key = Keypair::from_seed(&[i; 32]);
                            write(path, &key).ok().map(|()| key.id())
                        })
                    })
                    .collect();
                writers
                    .into_iter()
                    .filter_map(|w| w.join().unwrap())
                    .collect()
            });
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            assert_eq!(read(&path).unwrap().id(), winners[0], "round {round}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write(&path, &Keypair::from_seed(&[8; 32])).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read(&path),
            Err(Error::KeyFilePermissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let good = encode(&Keypair::from_seed(&[8; 32]));
        let other = Keypair::from_seed(&[9; 32]).id().to_string();
        let mismatched = good.replace(&Keypair::from_seed(&[8; 32]).id().to_string(), &other);
        let cases = [
            String::new(),
            good.trim_end().to_string(),
            good.replace("v1", "v2"),
            good.replace("seed ", "seed  "),
            good.replace("feed ", "id "),
            good.to_uppercase(),
            format!("{}extra\n", good.as_str()),
            mismatched,
        ];
        for case in cases {
            assert!(decode("k", &case).is_err(), "accepted {case:?}");
        }
        assert!(decode("k", &good).is_ok());
    }
}
