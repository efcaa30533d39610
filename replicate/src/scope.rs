//! Which feeds a node replicates: the follow graph in plain feeds, pure and synchronous.
//!
//! Scope = own feed, the feeds it follows, their follows, … up to `hops`, plus feeds the
//! application asks for explicitly (wallets, notaries), minus every feed the local identity
//! blocks. A blocked feed is never replicated and never relayed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use scrip_feed::{Content, Entry, FeedId};

/// Default follow distance replicated.
pub const DEFAULT_HOPS: u8 = 2;

/// What each author follows and blocks, as its feed says so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowGraph {
    follows: BTreeMap<FeedId, BTreeSet<FeedId>>,
    blocks: BTreeMap<FeedId, BTreeSet<FeedId>>,
    /// Highest seq applied per author (entries must be applied in order).
    applied: BTreeMap<FeedId, u64>,
    /// Addresses announced by `Pub` entries: author -> address.
    pubs: BTreeMap<FeedId, String>,
}

/// The result of [`FollowGraph::scope`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Replicated feeds and their follow distance (0 for own and explicit feeds).
    pub feeds: BTreeMap<FeedId, u8>,
    /// Feeds the local identity blocks.
    pub blocked: BTreeSet<FeedId>,
}

impl Scope {
    /// True if `feed` is replicated.
    pub fn contains(&self, feed: &FeedId) -> bool {
        self.feeds.contains_key(feed)
    }
}

impl FollowGraph {
    /// An empty graph.
    pub fn new() -> FollowGraph {
        FollowGraph::default()
    }

    /// The next seq of `author` to apply.
    pub fn next_seq(&self, author: &FeedId) -> u64 {
        self.applied
            .get(author)
            .copied()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Applies an entry (in seq order per author; entries already applied are ignored).
    /// Returns true if the graph or the announced addresses changed.
    pub fn apply(&mut self, entry: &Entry) -> bool {
        let author = entry.author();
        let seq = entry.seq().get();
        if seq < self.next_seq(&author) {
            return false;
        }
        self.applied.insert(author, seq);
        let Some(content) = entry.payload().and_then(|p| Content::decode(p).ok()) else {
            return false;
        };
        match content {
            Content::Follow { feed } if feed != author => {
                self.follows.entry(author).or_default().insert(feed)
            }
            Content::Unfollow { feed } => self
                .follows
                .get_mut(&author)
                .is_some_and(|set| set.remove(&feed)),
            Content::Block { feed } if feed != author => {
                let unfollowed = self
                    .follows
                    .get_mut(&author)
                    .is_some_and(|set| set.remove(&feed));
                self.blocks.entry(author).or_default().insert(feed) || unfollowed
            }
            Content::Unblock { feed } => self
                .blocks
                .get_mut(&author)
                .is_some_and(|set| set.remove(&feed)),
            Content::Pub { address } => self.pubs.insert(author, address.clone()) != Some(address),
            _ => false,
        }
    }

    /// Whom `author` follows.
    pub fn follows(&self, author: &FeedId) -> impl Iterator<Item = &FeedId> {
        self.follows.get(author).into_iter().flatten()
    }

    /// The address `author` announced for its node, if any.
    pub fn pub_address(&self, author: &FeedId) -> Option<&str> {
        self.pubs.get(author).map(String::as_str)
    }

    /// Every announced address.
    pub fn pubs(&self) -> impl Iterator<Item = (&FeedId, &String)> {
        self.pubs.iter()
    }

    /// The scope of `own` (see the module docs).
    pub fn scope(&self, own: &FeedId, hops: u8, explicit: &BTreeSet<FeedId>) -> Scope {
        let blocked: BTreeSet<FeedId> = self.blocks.get(own).cloned().unwrap_or_default();
        let mut feeds = BTreeMap::new();
        let mut queue = VecDeque::new();
        feeds.insert(*own, 0u8);
        queue.push_back((*own, 0u8));
        while let Some((feed, distance)) = queue.pop_front() {
            if distance >= hops {
                continue;
            }
            for next in self.follows(&feed) {
                if blocked.contains(next) || feeds.contains_key(next) {
                    continue;
                }
                let next_distance = distance.saturating_add(1);
                feeds.insert(*next, next_distance);
                queue.push_back((*next, next_distance));
            }
        }
        for feed in explicit {
            if !blocked.contains(feed) {
                feeds.entry(*feed).or_insert(0);
            }
        }
        Scope { feeds, blocked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::{Keypair, Timestamp};

    struct Feed {
        key: Keypair,
        head: Option<scrip_feed::Head>,
    }

    impl Feed {
        fn new(n: u8) -> Feed {
            Feed {
                key: Keypair::from_seed(&[n; 32]),
                head: None,
            }
        }
        fn id(&self) -> FeedId {
            self.key.id()
        }
        fn say(&mut self, content: Content) -> Entry {
            let entry = Entry::create(
                &self.key,
                self.head,
                Timestamp::default(),
                content.encode().unwrap(),
            )
            .unwrap();
            self.head = Some(entry.head());
            entry
        }
    }

    #[test]
    fn scope_follows_up_to_hops_minus_blocks_plus_explicit() {
        let (mut me, mut a, mut b, c, d, e) = (
            Feed::new(1),
            Feed::new(2),
            Feed::new(3),
            Feed::new(4),
            Feed::new(5),
            Feed::new(6),
        );
        let mut graph = FollowGraph::new();
        graph.apply(&me.say(Content::Follow { feed: a.id() }));
        graph.apply(&me.say(Content::Follow { feed: d.id() }));
        graph.apply(&a.say(Content::Follow { feed: b.id() }));
        graph.apply(&b.say(Content::Follow { feed: c.id() }));
        let explicit = BTreeSet::from([e.id()]);
        let scope = graph.scope(&me.id(), 2, &explicit);
        assert_eq!(scope.feeds.get(&me.id()), Some(&0));
        assert_eq!(scope.feeds.get(&a.id()), Some(&1));
        assert_eq!(scope.feeds.get(&b.id()), Some(&2));
        assert_eq!(scope.feeds.get(&c.id()), None, "three hops away");
        assert_eq!(scope.feeds.get(&e.id()), Some(&0));
        assert_eq!(
            graph.scope(&me.id(), 3, &explicit).feeds.get(&c.id()),
            Some(&3)
        );

        // Blocking removes a feed, what is reached only through it, and explicit requests.
        graph.apply(&me.say(Content::Block { feed: a.id() }));
        graph.apply(&me.say(Content::Block { feed: e.id() }));
        let scope = graph.scope(&me.id(), 2, &explicit);
        assert!(!scope.contains(&a.id()));
        assert!(!scope.contains(&b.id()));
        assert!(!scope.contains(&e.id()));
        assert!(scope.contains(&d.id()));
        assert!(scope.blocked.contains(&a.id()));
    }

    #[test]
    fn unfollow_removes_and_entries_apply_once_in_order() {
        let (mut me, a) = (Feed::new(1), Feed::new(2));
        let mut graph = FollowGraph::new();
        let follow = me.say(Content::Follow { feed: a.id() });
        assert!(graph.apply(&follow));
        assert!(!graph.apply(&follow), "already applied");
        assert!(graph.apply(&me.say(Content::Unfollow { feed: a.id() })));
        assert!(!graph.scope(&me.id(), 2, &BTreeSet::new()).contains(&a.id()));
    }

    /// An unblock lifts the block (explicit requests and follows reach the feed again), but
    /// does not bring back the follow the block removed.
    #[test]
    fn unblock_lifts_a_block_but_not_the_follow_it_removed() {
        let (mut me, a) = (Feed::new(1), Feed::new(2));
        let mut graph = FollowGraph::new();
        graph.apply(&me.say(Content::Follow { feed: a.id() }));
        graph.apply(&me.say(Content::Block { feed: a.id() }));
        let explicit = BTreeSet::from([a.id()]);
        assert!(!graph.scope(&me.id(), 2, &explicit).contains(&a.id()));
        assert!(graph.apply(&me.say(Content::Unblock { feed: a.id() })));
        let scope = graph.scope(&me.id(), 2, &BTreeSet::new());
        assert!(!scope.blocked.contains(&a.id()));
        assert!(!scope.contains(&a.id()), "the follow is not restored");
        assert!(graph.scope(&me.id(), 2, &explicit).contains(&a.id()));
        graph.apply(&me.say(Content::Follow { feed: a.id() }));
        assert!(graph.scope(&me.id(), 2, &BTreeSet::new()).contains(&a.id()));
        // An unblock of a feed that was never blocked changes nothing.
        assert!(!graph.apply(&me.say(Content::Unblock { feed: a.id() })));
    }

    #[test]
    fn pub_addresses_are_learned() {
        let mut a = Feed::new(2);
        let mut graph = FollowGraph::new();
        assert!(graph.apply(&a.say(Content::Pub {
            address: "10.0.0.1:8008".into()
        })));
        assert_eq!(graph.pub_address(&a.id()), Some("10.0.0.1:8008"));
    }
}
