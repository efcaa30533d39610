//! Which feeds changed: an in-memory record, per open store, of the feeds written to (entries or
//! attachments), so that a reader keeping state derived from the store (the daemon's ledger)
//! looks only at the feeds written since it last looked instead of at every feed.
//!
//! The record is bounded ([`MAX_REMEMBERED_CHANGES`]); a reader further behind than that, or
//! holding a mark from another store or an earlier process, is told [`Changes::Unknown`] and
//! looks at every feed, as it does the first time. A write is recorded after it is visible to
//! readers, so a reader that saw a mark never misses what was written before it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::FeedId;

/// Most feed changes remembered per store; a reader further behind looks at every feed.
pub const MAX_REMEMBERED_CHANGES: usize = 4096;

/// Where a reader stopped in a store's record of changes (see [`crate::Store::changes_since`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeMark {
    /// Which record (one per open store in this process; 0 for none).
    log: u64,
    /// Changes recorded up to here.
    version: u64,
}

impl ChangeMark {
    /// The mark of a store that keeps no record: every call answers [`Changes::Unknown`].
    pub const UNTRACKED: ChangeMark = ChangeMark { log: 0, version: 0 };
}

/// What changed since a [`ChangeMark`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// Exactly these feeds may have new entries or attachments (possibly none).
    Feeds(BTreeSet<FeedId>),
    /// Not known: any feed may have changed.
    Unknown,
}

/// Record ids, so that a mark of one store is never taken for a mark of another.
static NEXT_LOG: AtomicU64 = AtomicU64::new(1);

/// The record itself, kept by a store.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    log: u64,
    inner: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Changes recorded so far.
    version: u64,
    /// The last [`MAX_REMEMBERED_CHANGES`] changes, as (version, feed), oldest first.
    changes: VecDeque<(u64, FeedId)>,
}

impl Default for ChangeLog {
    fn default() -> Self {
        ChangeLog {
            log: NEXT_LOG.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::new(Recent::default()),
        }
    }
}

impl ChangeLog {
    /// Records that `feeds` were written to (call after the write is visible to readers).
    pub(crate) fn record(&self, feeds: impl IntoIterator<Item = FeedId>) {
        let mut recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for feed in feeds {
            recent.version += 1;
            let version = recent.version;
            recent.changes.push_back((version, feed));
            if recent.changes.len() > MAX_REMEMBERED_CHANGES {
                recent.changes.pop_front();
            }
        }
    }

    /// The current mark and the feeds changed since `mark` (see [`crate::Store::changes_since`]).
    pub(crate) fn since(&self, mark: Option<ChangeMark>) -> (ChangeMark, Changes) {
        let recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = ChangeMark {
            log: self.log,
            version: recent.version,
        };
        let Some(mark) = mark.filter(|m| m.log == self.log && m.version <= recent.version) else {
            return (now, Changes::Unknown);
        };
        let oldest = recent
            .changes
            .front()
            .map_or(recent.version + 1, |(version, _)| *version);
        if mark.version + 1 < oldest {
            // Some of what changed since `mark` is no longer remembered.
            return (now, Changes::Unknown);
        }
        let feeds = recent
            .changes
            .iter()
            .rev()
            .take_while(|(version, _)| *version > mark.version)
            .map(|(_, feed)| *feed)
            .collect();
        (now, Changes::Feeds(feeds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    fn feed(i: u8) -> FeedId {
        Keypair::from_seed(&[i; 32]).id()
    }

    #[test]
    fn a_reader_gets_what_changed_since_its_mark_and_unknown_when_too_far_behind() {
        let log = ChangeLog::default();
        let (first, changes) = log.since(None);
        assert_eq!(changes, Changes::Unknown, "the first look is at every feed");
        let (mark, changes) = log.since(Some(first));
        assert_eq!(changes, Changes::Feeds(BTreeSet::new()));
        assert_eq!(mark, first);

        log.record([feed(1), feed(2)]);
        log.record([feed(1)]);
        let (later, changes) = log.since(Some(mark));
        assert_eq!(changes, Changes::Feeds([feed(1), feed(2)].into()));
        assert_eq!(log.since(Some(later)).1, Changes::Feeds(BTreeSet::new()));

        // A mark of another record, or one from the future, is not trusted.
        let other = ChangeLog::default();
        assert_eq!(other.since(Some(later)).1, Changes::Unknown);
        assert_eq!(log.since(Some(ChangeMark::UNTRACKED)).1, Changes::Unknown);

        // Exactly MAX_REMEMBERED_CHANGES behind is still answered; one more is not.
        let (edge, _) = log.since(None);
        let many: Vec<FeedId> = (0..200).map(feed).collect();
        log.record((0..MAX_REMEMBERED_CHANGES).map(|i| many[i % many.len()]));
        assert!(matches!(log.since(Some(edge)).1, Changes::Feeds(f) if f.len() == 200));
        let (edge, _) = log.since(None);
        log.record((0..=MAX_REMEMBERED_CHANGES).map(|_| feed(3)));
        assert_eq!(log.since(Some(edge)).1, Changes::Unknown);
        assert_eq!(log.recent_len(), MAX_REMEMBERED_CHANGES);
    }

    impl ChangeLog {
        fn recent_len(&self) -> usize {
            self.inner.lock().map(|r| r.changes.len()).unwrap_or(0)
        }
    }
}
