//! Helpers shared by the feed crate's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cases;

use scrip_feed::{Content, Entry, Head, Keypair, SledOptions, SledStore, Timestamp};

/// Opens the sled store at `dir`, waiting up to 5 s while it is locked: after a store of this
/// process is dropped, sled's background threads may hold its lock for a moment longer (a test
/// that reopens at once would see `Locked` now and then on a busy machine).
pub fn open_sled(dir: impl AsRef<std::path::Path>) -> scrip_feed::Result<SledStore> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledStore::open(dir.as_ref(), SledOptions::default()) {
            Err(scrip_feed::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Opens the raw sled database at `dir` (tests that tamper behind the store's back), waiting
/// up to 5 s while the store just dropped still holds its lock, as [`open_sled`] does.
pub fn open_raw_sled(dir: impl AsRef<std::path::Path>) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(dir.as_ref()) {
            Err(sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.unwrap(),
        }
    }
}

/// A deterministic key from a small number.
pub fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

/// The payload of a post.
pub fn post(text: &str) -> Vec<u8> {
    Content::Post { text: text.into() }.encode().unwrap()
}

/// A chain of `len` entries by `key`, each a post "entry i".
pub fn chain(key: &Keypair, len: usize) -> Vec<Entry> {
    extend(key, None, len)
}

/// `len` entries by `key` following `head`.
pub fn extend(key: &Keypair, mut head: Option<Head>, len: usize) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(len);
    for i in 0..len {
        let entry = Entry::create(
            key,
            head,
            Timestamp::from_millis(1_700_000_000_000 + i as u64),
            post(&format!("entry {i}")),
        )
        .unwrap();
        head = Some(entry.head());
        entries.push(entry);
    }
    entries
}
