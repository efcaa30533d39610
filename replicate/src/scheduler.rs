//! Which peer each feed is asked of: pure and synchronous (time comes in as an argument).
//!
//! Each replicated feed is asked of **one** connected peer at a time (its *source*), so a new
//! entry normally arrives once. Rules:
//!
//! - a feed without a source gets the connected peer that claims the most of it (ties broken by
//!   a per-peer random rank), or, before anyone has said anything, the first peer to connect;
//! - a source that claims no more than we hold is replaced at once by a peer that claims more;
//! - a source that claims more but delivers nothing for `request_timeout` is replaced by another
//!   peer that claims more;
//! - a source that disconnects, or that sent something invalid for the feed (refused), is
//!   replaced, and a refused peer is never asked for that feed again in this run;
//! - a source whose entries of the feed our policy declined is replaced, and that peer is not
//!   asked for that feed again for the decline backoff; a feed left without a source is given
//!   one again at the next tick once a peer claiming more than we hold may be asked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use scrip_feed::FeedId;
use tokio::time::Instant;

/// Default time a source may claim more than we hold without delivering it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a peer is not asked for a feed after our policy declined entries of it that
/// the peer sent (`AttachmentCheck::admit`): by then the policy may take them (a notary has
/// voted for them, or learned them from the wallet's proposals).
pub const DEFAULT_DECLINE_BACKOFF: Duration = Duration::from_secs(30);

/// Ask (`true`) or stop asking (`false`) `peer` for `feed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The peer.
    pub peer: FeedId,
    /// The feed.
    pub feed: FeedId,
    /// Whether to ask.
    pub ask: bool,
}

#[derive(Clone, Debug)]
struct Assignment {
    source: Option<FeedId>,
    local: u64,
    last_progress: Instant,
}

#[derive(Clone, Debug, Default)]
struct PeerView {
    rank: u64,
    claims: BTreeMap<FeedId, u64>,
    refused: BTreeSet<FeedId>,
}

/// The scheduler's state.
#[derive(Clone, Debug)]
pub struct Scheduler {
    request_timeout: Duration,
    decline_backoff: Duration,
    feeds: BTreeMap<FeedId, Assignment>,
    peers: BTreeMap<FeedId, PeerView>,
    /// Refusals outlive connections.
    refused: BTreeSet<(FeedId, FeedId)>,
    /// (peer, feed) declined, until when (at most one per connected peer and replicated
    /// feed: expired ones are dropped at each tick, and those of a peer when it disconnects).
    declined: BTreeMap<(FeedId, FeedId), Instant>,
}

impl Scheduler {
    /// A scheduler with no feeds and no peers ([`DEFAULT_DECLINE_BACKOFF`]).
    pub fn new(request_timeout: Duration) -> Scheduler {
        Scheduler::with_backoff(request_timeout, DEFAULT_DECLINE_BACKOFF)
    }

    /// A scheduler with no feeds and no peers, and this decline backoff.
    pub fn with_backoff(request_timeout: Duration, decline_backoff: Duration) -> Scheduler {
        Scheduler {
            request_timeout,
            decline_backoff,
            feeds: BTreeMap::new(),
            peers: BTreeMap::new(),
            refused: BTreeSet::new(),
            declined: BTreeMap::new(),
        }
    }

    /// The feed's current source.
    pub fn source(&self, feed: &FeedId) -> Option<FeedId> {
        self.feeds.get(feed).and_then(|a| a.source)
    }

    /// Replicated feeds and how far the best claim of a connected peer is ahead of us.
    pub fn behind(&self) -> BTreeMap<FeedId, u64> {
        self.feeds
            .iter()
            .filter_map(|(feed, a)| {
                let best = self.best_claim(feed);
                (best > a.local).then(|| (*feed, best - a.local))
            })
            .collect()
    }

    fn best_claim(&self, feed: &FeedId) -> u64 {
        self.peers
            .values()
            .filter_map(|p| p.claims.get(feed).copied())
            .max()
            .unwrap_or(0)
    }

    /// Sets the replicated feeds with our latest seq of each. Returns the changes for new feeds;
    /// feeds that left are forgotten (the node tells every session to ignore them).
    pub fn set_scope(&mut self, feeds: &BTreeMap<FeedId, u64>, now: Instant) -> Vec<Change> {
        self.feeds.retain(|feed, _| feeds.contains_key(feed));
        let mut changes = Vec::new();
        for (feed, &local) in feeds {
            if self.feeds.contains_key(feed) {
                continue;
            }
            self.feeds.insert(
                *feed,
                Assignment {
                    source: None,
                    local,
                    last_progress: now,
                },
            );
            changes.extend(self.choose(feed, now));
        }
        changes
    }

    /// A peer connected; returns what to ask it for (every replicated feed, `true` for those it
    /// becomes the source of).
    pub fn peer_connected(
        &mut self,
        peer: FeedId,
        rank: u64,
        now: Instant,
    ) -> BTreeMap<FeedId, bool> {
        self.peers.insert(
            peer,
            PeerView {
                rank,
                ..PeerView::default()
            },
        );
        let feeds: Vec<FeedId> = self.feeds.keys().copied().collect();
        let mut wanted = BTreeMap::new();
        for feed in feeds {
            let mut ask = false;
            if self.source(&feed).is_none()
                && !self.refused.contains(&(peer, feed))
                && !self.declined.contains_key(&(peer, feed))
            {
                if let Some(a) = self.feeds.get_mut(&feed) {
                    a.source = Some(peer);
                    a.last_progress = now;
                }
                ask = true;
            }
            wanted.insert(feed, ask);
        }
        wanted
    }

    /// A peer disconnected; its feeds go to others.
    pub fn peer_disconnected(&mut self, peer: &FeedId, now: Instant) -> Vec<Change> {
        self.peers.remove(peer);
        self.declined.retain(|(p, _), _| p != peer);
        let orphaned: Vec<FeedId> = self
            .feeds
            .iter_mut()
            .filter(|(_, a)| a.source == Some(*peer))
            .map(|(feed, a)| {
                a.source = None;
                *feed
            })
            .collect();
        orphaned
            .iter()
            .flat_map(|feed| self.choose(feed, now))
            .collect()
    }

    /// `peer` says it holds `feed` up to `seq`.
    pub fn peer_claims(
        &mut self,
        peer: &FeedId,
        feed: &FeedId,
        seq: u64,
        now: Instant,
    ) -> Vec<Change> {
        let Some(view) = self.peers.get_mut(peer) else {
            return Vec::new();
        };
        view.claims.insert(*feed, seq);
        let Some(assignment) = self.feeds.get(feed) else {
            return Vec::new();
        };
        match assignment.source {
            None => self.choose(feed, now),
            Some(source) if source != *peer => {
                let source_claim = self.claim(&source, feed);
                if source_claim <= assignment.local && seq > assignment.local {
                    // The source has nothing for us and this peer has.
                    self.switch(feed, Some(*peer), now)
                } else {
                    Vec::new()
                }
            }
            Some(_) => Vec::new(),
        }
    }

    /// We stopped taking `feed` from `peer` (it sent something invalid).
    pub fn refused(&mut self, peer: &FeedId, feed: &FeedId, now: Instant) -> Vec<Change> {
        self.refused.insert((*peer, *feed));
        if let Some(view) = self.peers.get_mut(peer) {
            view.refused.insert(*feed);
        }
        self.replace_source(peer, feed, now)
    }

    /// If `peer` is `feed`'s source, another one (the best candidate left) is chosen.
    fn replace_source(&mut self, peer: &FeedId, feed: &FeedId, now: Instant) -> Vec<Change> {
        if self.source(feed) != Some(*peer) {
            return Vec::new();
        }
        if let Some(a) = self.feeds.get_mut(feed) {
            a.source = None;
        }
        self.choose(feed, now)
    }

    /// Our policy declined entries of `feed` that `peer` sent: it is not asked for the feed
    /// again for the backoff, and another peer is.
    pub fn declined(&mut self, peer: &FeedId, feed: &FeedId, now: Instant) -> Vec<Change> {
        if !self.peers.contains_key(peer) || !self.feeds.contains_key(feed) {
            return Vec::new();
        }
        self.declined
            .insert((*peer, *feed), now + self.decline_backoff);
        self.replace_source(peer, feed, now)
    }

    /// Our store now holds `feed` up to `local`.
    pub fn progress(&mut self, feed: &FeedId, local: u64, now: Instant) {
        if let Some(a) = self.feeds.get_mut(feed)
            && local > a.local
        {
            a.local = local;
            a.last_progress = now;
        }
    }

    /// Replaces sources that claim more than we hold but delivered nothing for the timeout, and
    /// gives a source to feeds without one that a peer claiming more may be asked for (a
    /// decline's backoff ran out).
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        self.declined.retain(|_, until| *until > now);
        let sourceless: Vec<FeedId> = self
            .feeds
            .iter()
            .filter(|(feed, a)| a.source.is_none() && self.best_claim(feed) > a.local)
            .map(|(feed, _)| *feed)
            .collect();
        let mut changes: Vec<Change> = sourceless
            .iter()
            .flat_map(|feed| self.choose(feed, now))
            .collect();
        let stalled: Vec<FeedId> = self
            .feeds
            .iter()
            .filter(|(feed, a)| {
                a.source.is_some()
                    && now.saturating_duration_since(a.last_progress) >= self.request_timeout
                    && self.best_claim(feed) > a.local
            })
            .map(|(feed, _)| *feed)
            .collect();
        for feed in stalled {
            let Some(a) = self.feeds.get(&feed) else {
                continue;
            };
            let (current, local) = (a.source, a.local);
            let next = self
                .candidates(&feed)
                .filter(|(peer, claim)| Some(*peer) != current && *claim > local)
                .max_by_key(|(peer, claim)| (*claim, self.rank(peer)))
                .map(|(peer, _)| peer);
            match next {
                Some(next) => changes.extend(self.switch(&feed, Some(next), now)),
                None => {
                    // Nobody better: keep the source, wait another period.
                    if let Some(a) = self.feeds.get_mut(&feed) {
                        a.last_progress = now;
                    }
                }
            }
        }
        changes
    }

    fn claim(&self, peer: &FeedId, feed: &FeedId) -> u64 {
        self.peers
            .get(peer)
            .and_then(|p| p.claims.get(feed).copied())
            .unwrap_or(0)
    }

    fn rank(&self, peer: &FeedId) -> u64 {
        self.peers.get(peer).map_or(0, |p| p.rank)
    }

    fn candidates<'a>(&'a self, feed: &'a FeedId) -> impl Iterator<Item = (FeedId, u64)> + 'a {
        self.peers
            .iter()
            .filter(move |(peer, view)| {
                !view.refused.contains(feed)
                    && !self.refused.contains(&(**peer, *feed))
                    && !self.declined.contains_key(&(**peer, *feed))
            })
            .map(move |(peer, view)| (*peer, view.claims.get(feed).copied().unwrap_or(0)))
    }

    /// Picks a source for a feed that has none.
    fn choose(&mut self, feed: &FeedId, now: Instant) -> Vec<Change> {
        if self.source(feed).is_some() {
            return Vec::new();
        }
        let best = self
            .candidates(feed)
            .max_by_key(|(peer, claim)| (*claim, self.rank(peer)))
            .map(|(peer, _)| peer);
        self.switch(feed, best, now)
    }

    fn switch(&mut self, feed: &FeedId, to: Option<FeedId>, now: Instant) -> Vec<Change> {
        let Some(a) = self.feeds.get_mut(feed) else {
            return Vec::new();
        };
        let from = a.source;
        if from == to {
            return Vec::new();
        }
        a.source = to;
        a.last_progress = now;
        let mut changes = Vec::new();
        if let Some(peer) = from
            && self.peers.contains_key(&peer)
        {
            changes.push(Change {
                peer,
                feed: *feed,
                ask: false,
            });
        }
        if let Some(peer) = to {
            changes.push(Change {
                peer,
                feed: *feed,
                ask: true,
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    fn id(n: u8) -> FeedId {
        Keypair::from_seed(&[n; 32]).id()
    }

    #[test]
    fn first_peer_gets_everything_then_better_claims_win() {
        let now = Instant::now();
        let mut s = Scheduler::new(Duration::from_secs(10));
        let (f, g) = (id(1), id(2));
        let (p, q) = (id(10), id(11));
        s.set_scope(&BTreeMap::from([(f, 5), (g, 0)]), now);
        let wanted = s.peer_connected(p, 1, now);
        assert_eq!(wanted, BTreeMap::from([(f, true), (g, true)]));
        let wanted = s.peer_connected(q, 2, now);
        assert_eq!(wanted, BTreeMap::from([(f, false), (g, false)]));
        // p has no more of f than we do; q has more: switch at once.
        assert!(s.peer_claims(&p, &f, 5, now).is_empty());
        assert_eq!(
            s.peer_claims(&q, &f, 9, now),
            vec![
                Change {
                    peer: p,
                    feed: f,
                    ask: false
                },
                Change {
                    peer: q,
                    feed: f,
                    ask: true
                }
            ]
        );
        assert_eq!(s.source(&f), Some(q));
        // q disconnects: f goes back to p.
        let changes = s.peer_disconnected(&q, now);
        assert_eq!(
            changes,
            vec![Change {
                peer: p,
                feed: f,
                ask: true
            }]
        );
    }

    /// A peer whose entries our policy declined is not asked for the feed for the backoff
    /// (another peer is); once the backoff ran out, the next tick asks it again if nobody else
    /// has more.
    #[test]
    fn a_declined_peer_is_asked_again_after_the_backoff() {
        let now = Instant::now();
        let backoff = Duration::from_secs(30);
        let mut s = Scheduler::with_backoff(Duration::from_secs(10), backoff);
        let f = id(1);
        let (p, q) = (id(10), id(11));
        s.set_scope(&BTreeMap::from([(f, 0)]), now);
        s.peer_connected(p, 1, now);
        s.peer_connected(q, 2, now);
        s.peer_claims(&p, &f, 50, now);
        s.peer_claims(&q, &f, 40, now);
        assert_eq!(s.source(&f), Some(p));
        let changes = s.declined(&p, &f, now);
        assert_eq!(s.source(&f), Some(q), "{changes:?}");
        // q declined too: nobody is asked.
        s.declined(&q, &f, now);
        assert_eq!(s.source(&f), None);
        assert!(s.tick(now + backoff - Duration::from_secs(1)).is_empty());
        assert_eq!(s.source(&f), None, "asked again before the backoff ran out");
        let changes = s.tick(now + backoff);
        assert_eq!(
            changes,
            vec![Change {
                peer: p,
                feed: f,
                ask: true
            }],
            "the peer claiming the most is asked again"
        );
        // A refusal is for good, a decline is not.
        s.refused(&p, &f, now + backoff);
        assert_eq!(s.source(&f), Some(q));
    }

    #[test]
    fn a_stalled_source_is_replaced_after_the_timeout() {
        let now = Instant::now();
        let mut s = Scheduler::new(Duration::from_secs(10));
        let f = id(1);
        let (p, q) = (id(10), id(11));
        s.set_scope(&BTreeMap::from([(f, 0)]), now);
        s.peer_connected(p, 1, now);
        s.peer_connected(q, 2, now);
        s.peer_claims(&p, &f, 50, now);
        s.peer_claims(&q, &f, 40, now);
        assert_eq!(s.source(&f), Some(p));
        assert!(s.tick(now + Duration::from_secs(5)).is_empty());
        s.progress(&f, 10, now + Duration::from_secs(6));
        assert!(
            s.tick(now + Duration::from_secs(12)).is_empty(),
            "it delivered"
        );
        let changes = s.tick(now + Duration::from_secs(17));
        assert_eq!(
            changes,
            vec![
                Change {
                    peer: p,
                    feed: f,
                    ask: false
                },
                Change {
                    peer: q,
                    feed: f,
                    ask: true
                }
            ]
        );
    }

    #[test]
    fn a_refused_peer_is_not_asked_again() {
        let now = Instant::now();
        let mut s = Scheduler::new(Duration::from_secs(10));
        let f = id(1);
        let (p, q) = (id(10), id(11));
        s.set_scope(&BTreeMap::from([(f, 0)]), now);
        s.peer_connected(p, 5, now);
        s.peer_connected(q, 1, now);
        let changes = s.refused(&p, &f, now);
        assert_eq!(
            changes,
            vec![Change {
                peer: q,
                feed: f,
                ask: true
            }]
        );
        s.peer_disconnected(&p, now);
        let wanted = s.peer_connected(p, 5, now);
        assert_eq!(wanted.get(&f), Some(&false));
        s.peer_disconnected(&q, now);
        assert_eq!(s.source(&f), None, "p refused, q gone: nobody");
    }
}
