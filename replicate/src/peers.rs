//! The peer table: addresses to dial, from configuration and from `Pub` entries, with backoff.
//! Pure and synchronous: time and randomness come in as arguments.

use std::collections::BTreeMap;
use std::time::Duration;

use scrip_feed::FeedId;
use tokio::time::Instant;

/// Most addresses kept (configured ones are never dropped).
pub const MAX_PEER_TABLE: usize = 1024;
/// First reconnect delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How long to wait after `failures` consecutive failures (at least 1): [`BACKOFF_MIN`]
/// doubling per failure up to [`BACKOFF_MAX`], stretched by up to half by `jitter` (0..1000,
/// from the node's seeded generator) so that peers do not retry in step. The one backoff of the
/// node: dials, and store reads that failed.
pub fn backoff(failures: u32, jitter: u64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX);
    base.mul_f64(1.0 + (jitter % 1000) as f64 / 2000.0)
        .min(BACKOFF_MAX)
}

/// Where an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Given by the user or the application.
    Configured,
    /// Announced in a `Pub` entry of a replicated feed.
    Announced,
}

/// A dialable peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The identity expected there, if known.
    pub id: Option<FeedId>,
    /// Where the address came from.
    pub origin: Origin,
    /// Consecutive failures.
    pub failures: u32,
    /// Not before this instant.
    pub retry_at: Option<Instant>,
}

/// The addresses a node may dial.
#[derive(Clone, Debug, Default)]
pub struct PeerTable {
    peers: BTreeMap<String, PeerInfo>,
}

impl PeerTable {
    /// An empty table.
    pub fn new() -> PeerTable {
        PeerTable::default()
    }

    /// Adds or updates an address. Announced addresses beyond [`MAX_PEER_TABLE`] are dropped.
    pub fn add(&mut self, address: String, id: Option<FeedId>, origin: Origin) -> bool {
        if let Some(info) = self.peers.get_mut(&address) {
            if id.is_some() && info.id != id {
                info.id = id;
                return true;
            }
            if origin == Origin::Configured {
                info.origin = Origin::Configured;
            }
            return false;
        }
        if origin == Origin::Announced && self.peers.len() >= MAX_PEER_TABLE {
            return false;
        }
        self.peers.insert(
            address,
            PeerInfo {
                id,
                origin,
                failures: 0,
                retry_at: None,
            },
        );
        true
    }

    /// Every known address.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PeerInfo)> {
        self.peers.iter()
    }

    /// Number of known addresses.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True if no address is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Addresses that may be dialed now, excluding `skip` (e.g. connected or own).
    pub fn dialable<'a>(
        &'a self,
        now: Instant,
        skip: impl Fn(&str, Option<&FeedId>) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a String, &'a PeerInfo)> + 'a {
        self.peers.iter().filter(move |(address, info)| {
            info.retry_at.is_none_or(|at| at <= now) && !skip(address, info.id.as_ref())
        })
    }

    /// Records a failed dial: exponential backoff with jitter (`jitter` in 0..1000, from the
    /// node's seeded generator).
    pub fn failed(&mut self, address: &str, now: Instant, jitter: u64) {
        if let Some(info) = self.peers.get_mut(address) {
            info.failures = info.failures.saturating_add(1);
            info.retry_at = Some(now + backoff(info.failures, jitter));
        }
    }

    /// Records a successful connection.
    pub fn succeeded(&mut self, address: &str, id: FeedId) {
        if let Some(info) = self.peers.get_mut(address) {
            info.failures = 0;
            info.retry_at = None;
            info.id.get_or_insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_resets() {
        let now = Instant::now();
        let mut table = PeerTable::new();
        table.add("a:1".into(), None, Origin::Configured);
        assert_eq!(table.dialable(now, |_, _| false).count(), 1);
        table.failed("a:1", now, 0);
        assert_eq!(table.dialable(now, |_, _| false).count(), 0);
        assert_eq!(table.dialable(now + BACKOFF_MIN, |_, _| false).count(), 1);
        for _ in 0..20 {
            table.failed("a:1", now, 999);
        }
        let info = table.iter().next().unwrap().1.clone();
        assert!(info.retry_at.unwrap() <= now + BACKOFF_MAX);
        table.succeeded("a:1", scrip_feed::Keypair::from_seed(&[1; 32]).id());
        assert_eq!(table.dialable(now, |_, _| false).count(), 1);
    }
}
