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
//! created with mode `0600`, and reading refuses a file that group or others can read.

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

/// Writes a new key file at `path` (which must not exist), readable only by its owner, and
/// flushes it to disk.
pub fn write(path: &Path, keypair: &Keypair) -> Result<()> {
    let shown = path.display().to_string();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::io(format!("creating key file {shown}"), &e))?;
    let text = encode(keypair);
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing key file {shown}"), &e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("syncing directory of {shown}"), &e))?;
    }
    Ok(())
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
