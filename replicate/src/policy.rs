//! The node's decisions about connections and scope, as pure functions of what the actor knows
//! (time and randomness come in as arguments): which of two connections to one peer to keep,
//! when to rotate a dialed connection out, which address to dial, and what a change of scope
//! tells each session. The actor (`node.rs`) only executes what these decide; the scheduler
//! (`scheduler.rs`), the scope (`scope.rs`) and the peer table with its backoff (`peers.rs`)
//! are its other pure parts.

use std::collections::BTreeMap;
use std::time::Duration;

use scrip_feed::FeedId;
use tokio::time::Instant;

use crate::scope::Scope;

/// Within this long of the first, a second connection dialed by the same side is a double dial
/// and the first is kept; later, the dialer gave up on the first.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);

/// What to do with a new connection to a peer already connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicate {
    /// Keep the existing connection; drop the new one.
    KeepExisting,
    /// Close the existing connection; keep the new one.
    Replace,
}

/// Two connections to one peer. Dialed by both sides at once: both sides keep the one the
/// smaller feed id initiated (they decide alike, without a word). Dialed by the same side
/// twice: within [`DUPLICATE_WINDOW`] that is a double dial and the first is kept; later the
/// dialer gave up on the old one (it restarted, or lost the link without a word), so the new one
/// wins instead of being dropped while the dead one waits for its idle timeout.
pub fn on_duplicate(
    existing_initiator: FeedId,
    existing_age: Duration,
    new_initiator: FeedId,
) -> Duplicate {
    let stale = existing_initiator == new_initiator && existing_age >= DUPLICATE_WINDOW;
    if existing_initiator <= new_initiator && !stale {
        Duplicate::KeepExisting
    } else {
        Duplicate::Replace
    }
}

/// Whether it is time to close the oldest dialed connection so that another candidate gets a
/// turn: every `every` (never if `None`), only with every dial slot in use and more known
/// addresses than dialed connections.
pub fn rotation_due(
    now: Instant,
    last_rotation: Instant,
    every: Option<Duration>,
    dialed: usize,
    max_outgoing: usize,
    known_addresses: usize,
) -> bool {
    every.is_some_and(|every| now.saturating_duration_since(last_rotation) >= every)
        && dialed >= max_outgoing
        && known_addresses > dialed
}

/// One of `candidates`, chosen by `draw` (a number from the node's seeded generator).
pub fn pick<T>(candidates: &[T], draw: u64) -> Option<&T> {
    let len = u64::try_from(candidates.len()).ok().filter(|&n| n > 0)?;
    candidates.get(usize::try_from(draw % len).ok()?)
}

/// What a change of scope tells every session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeChange {
    /// The feed left the scope: no longer replicated.
    Dropped(FeedId),
    /// The feed entered the scope: replicated, not asked of this peer yet (the scheduler picks
    /// its source).
    Added(FeedId),
    /// The feed was blocked (`true`) or unblocked.
    Blocked(FeedId, bool),
}

/// The changes from scope `old` to scope `new`, feeds dropped first, then added, then blocks.
pub fn scope_changes(old: &Scope, new: &Scope) -> Vec<ScopeChange> {
    let dropped = old
        .feeds
        .keys()
        .filter(|f| !new.contains(f))
        .map(|f| ScopeChange::Dropped(*f));
    let added = new
        .feeds
        .keys()
        .filter(|f| !old.contains(f))
        .map(|f| ScopeChange::Added(*f));
    let blocks = old
        .blocked
        .symmetric_difference(&new.blocked)
        .map(|f| ScopeChange::Blocked(*f, new.blocked.contains(f)));
    dropped.chain(added).chain(blocks).collect()
}

/// The feeds newly in scope that the store holds entries of: read for their follows next.
pub fn to_scan(old: &Scope, new: &Scope, held: impl Fn(&FeedId) -> bool) -> Vec<FeedId> {
    new.feeds
        .keys()
        .filter(|f| !old.contains(f) && held(f))
        .copied()
        .collect()
}

/// A visit to `feed` begins (`begins`) or ends, in `visiting` (visits per feed, see
/// `NodeLink::visit_feed`): returns whether the set of visited feeds changed (the first visit
/// began or the last ended). An end without a visit changes nothing.
pub fn count_visit(visiting: &mut BTreeMap<FeedId, usize>, feed: FeedId, begins: bool) -> bool {
    if begins {
        let visits = visiting.entry(feed).or_insert(0);
        *visits = visits.saturating_add(1);
        return *visits == 1;
    }
    match visiting.get_mut(&feed) {
        Some(visits) if *visits > 1 => {
            *visits -= 1;
            false
        }
        Some(_) => {
            visiting.remove(&feed);
            true
        }
        None => false,
    }
}

/// Reads of the store that failed, per feed, and when each may be tried again: never at once
/// (that would spin), after [`crate::peers::backoff`] growing with each consecutive failure.
#[derive(Clone, Debug, Default)]
pub struct Retries {
    failed: BTreeMap<FeedId, (u32, Instant)>,
}

impl Retries {
    /// A read of `feed` failed at `now`: returns how many times in a row.
    pub fn failed(&mut self, feed: FeedId, now: Instant, jitter: u64) -> u32 {
        let failures = self
            .failed
            .get(&feed)
            .map_or(1, |(n, _)| n.saturating_add(1));
        let retry_at = now + crate::peers::backoff(failures, jitter);
        self.failed.insert(feed, (failures, retry_at));
        failures
    }

    /// A read of `feed` succeeded: forgotten.
    pub fn succeeded(&mut self, feed: &FeedId) {
        self.failed.remove(feed);
    }

    /// Whether `feed` must not be read before its backoff is over.
    pub fn waiting(&self, feed: &FeedId, now: Instant) -> bool {
        self.failed
            .get(feed)
            .is_some_and(|(_, retry_at)| *retry_at > now)
    }

    /// The feeds whose backoff is over at `now` (still counted as failing until a read
    /// succeeds, so that the next failure waits longer).
    pub fn due(&self, now: Instant) -> Vec<FeedId> {
        self.failed
            .iter()
            .filter(|(_, (_, retry_at))| *retry_at <= now)
            .map(|(feed, _)| *feed)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    fn id(n: u8) -> FeedId {
        Keypair::from_seed(&[n; 32]).id()
    }

    /// Visits are counted: the visited set changes at the first begin and the last end only,
    /// and an end without a visit (a stray, or one too many) changes nothing.
    #[test]
    fn visits_are_counted_and_only_the_first_and_the_last_change_the_set() {
        let mut visiting = BTreeMap::new();
        let (a, b) = (id(1), id(2));
        assert!(!count_visit(&mut visiting, a, false), "no visit to end");
        assert!(count_visit(&mut visiting, a, true), "the first visit");
        assert!(!count_visit(&mut visiting, a, true), "a second one at once");
        assert!(count_visit(&mut visiting, b, true));
        assert!(
            !count_visit(&mut visiting, a, false),
            "one visit of a still stands"
        );
        assert_eq!(visiting.keys().copied().collect::<Vec<_>>().len(), 2);
        assert!(
            count_visit(&mut visiting, a, false),
            "the last visit of a ends"
        );
        assert!(!count_visit(&mut visiting, a, false), "one end too many");
        assert_eq!(visiting.keys().copied().collect::<Vec<_>>(), vec![b]);
    }

    #[test]
    fn a_simultaneous_dial_keeps_the_connection_the_smaller_id_initiated_on_both_sides() {
        let (a, b) = if id(1) < id(2) {
            (id(1), id(2))
        } else {
            (id(2), id(1))
        };
        let young = Duration::from_millis(100);
        // a < b. At a: the existing one b dialed, the new one a dialed: keep a's (replace).
        assert_eq!(on_duplicate(b, young, a), Duplicate::Replace);
        // At b, the other way round: keep the existing one, a's.
        assert_eq!(on_duplicate(a, young, b), Duplicate::KeepExisting);
    }

    #[test]
    fn a_redial_by_the_same_side_replaces_only_a_stale_connection() {
        let a = id(1);
        assert_eq!(
            on_duplicate(a, Duration::from_secs(1), a),
            Duplicate::KeepExisting,
            "a double dial"
        );
        assert_eq!(
            on_duplicate(a, DUPLICATE_WINDOW, a),
            Duplicate::Replace,
            "the dialer gave up on the old one"
        );
    }

    #[test]
    fn rotation_waits_for_its_period_full_slots_and_other_candidates() {
        let t0 = Instant::now();
        let every = Some(Duration::from_secs(300));
        let later = t0 + Duration::from_secs(300);
        assert!(rotation_due(later, t0, every, 4, 4, 5));
        assert!(!rotation_due(later, t0, None, 4, 4, 5), "disabled");
        assert!(
            !rotation_due(t0 + Duration::from_secs(299), t0, every, 4, 4, 5),
            "too soon"
        );
        assert!(!rotation_due(later, t0, every, 3, 4, 5), "a free dial slot");
        assert!(
            !rotation_due(later, t0, every, 4, 4, 4),
            "nobody else to dial"
        );
    }

    #[test]
    fn pick_draws_among_candidates_and_none_from_nothing() {
        let none: [u8; 0] = [];
        assert_eq!(pick(&none, 7), None);
        let three = ['a', 'b', 'c'];
        assert_eq!(pick(&three, 0), Some(&'a'));
        assert_eq!(pick(&three, 4), Some(&'b'));
        assert_eq!(pick(&three, u64::MAX), Some(&'a'));
    }

    #[test]
    fn a_failed_read_waits_longer_each_time_and_is_forgotten_once_it_works() {
        let t0 = Instant::now();
        let feed = id(5);
        let mut retries = Retries::default();
        assert!(!retries.waiting(&feed, t0));
        assert_eq!(retries.failed(feed, t0, 0), 1);
        assert!(retries.waiting(&feed, t0), "not again at once");
        assert!(retries.due(t0).is_empty());
        let first = crate::peers::BACKOFF_MIN;
        assert_eq!(retries.due(t0 + first), vec![feed]);
        assert_eq!(retries.failed(feed, t0 + first, 0), 2);
        assert!(
            retries.waiting(&feed, t0 + first + first),
            "the second wait is longer"
        );
        assert!(!retries.waiting(&feed, t0 + first * 3));
        retries.succeeded(&feed);
        assert!(retries.due(t0 + first * 10).is_empty());
    }

    #[test]
    fn a_scope_change_lists_dropped_added_and_blocked_feeds() {
        let (f1, f2, f3) = (id(1), id(2), id(3));
        let old = Scope {
            feeds: [(f1, 0), (f2, 1)].into(),
            blocked: [f3].into(),
        };
        let new = Scope {
            feeds: [(f2, 1), (f3, 2)].into(),
            blocked: std::collections::BTreeSet::new(),
        };
        assert_eq!(
            scope_changes(&old, &new),
            vec![
                ScopeChange::Dropped(f1),
                ScopeChange::Added(f3),
                ScopeChange::Blocked(f3, false)
            ]
        );
        assert!(scope_changes(&new, &new).is_empty());
        assert_eq!(to_scan(&old, &new, |f| *f == f3), vec![f3]);
        assert!(to_scan(&old, &new, |_| false).is_empty(), "nothing held");
    }
}
