//! The node's connections as a pure, synchronous state machine: who is connected, which
//! addresses are being dialed, the peer table with its backoff, and the rotation clock. The
//! actor (`node.rs`) feeds it what happened (a connection authenticated or closed, a dial
//! failed, a tick) with the time and random draws as arguments, and executes what it answers
//! (dial these addresses, close that connection). `T` is what the actor keeps per connection
//! (its command channel); this module never looks inside it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use scrip_feed::FeedId;
use tokio::time::Instant;

use crate::peers::{Origin, PeerTable};
use crate::policy::{Duplicate, on_duplicate, pick, rotation_due};

/// One open connection.
#[derive(Clone, Debug)]
pub struct Open<T> {
    /// Its number (a closed connection's late report is told apart from its successor's).
    pub id: u64,
    /// The remote address.
    pub address: String,
    /// Whether we dialed it.
    pub outgoing: bool,
    /// Who initiated it.
    pub initiator: FeedId,
    /// When it was admitted.
    pub since: Instant,
    /// The actor's handle on it.
    pub handle: T,
}

/// What to do with a connection that just authenticated.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<'a, T> {
    /// Drop it: it is to ourselves, or a duplicate the existing connection wins over.
    Drop,
    /// Admit it (then [`Connections::admit`]); `replaces` is an existing connection to the same
    /// peer to close.
    Admit {
        /// The connection the new one replaces, if any.
        replaces: Option<&'a T>,
    },
}

/// The node's connections and dialing.
#[derive(Debug)]
pub struct Connections<T> {
    me: FeedId,
    own_listen: Option<String>,
    max_outgoing: usize,
    rotate_every: Option<Duration>,
    table: PeerTable,
    dialing: BTreeSet<String>,
    open: BTreeMap<FeedId, Open<T>>,
    next_id: u64,
    last_rotation: Instant,
    /// Addresses rotated out while seeking a peer that holds our own feed
    /// ([`Connections::to_rotate_seeking`]): [`Connections::to_dial`] tries others first.
    seek_tried: BTreeSet<String>,
    /// When the last seeking rotation happened, and when the current round of tries began.
    seek_last: Instant,
    seek_round: Instant,
}

impl<T> Connections<T> {
    /// No connections yet; `table` holds the configured addresses.
    pub fn new(
        me: FeedId,
        own_listen: Option<String>,
        max_outgoing: usize,
        rotate_every: Option<Duration>,
        table: PeerTable,
        now: Instant,
    ) -> Connections<T> {
        Connections {
            me,
            own_listen,
            max_outgoing,
            rotate_every,
            table,
            dialing: BTreeSet::new(),
            open: BTreeMap::new(),
            next_id: 0,
            last_rotation: now,
            seek_tried: BTreeSet::new(),
            seek_last: now,
            seek_round: now,
        }
    }

    /// Adds (or updates) an address to dial; true if the table changed.
    pub fn add_address(&mut self, address: String, id: Option<FeedId>, origin: Origin) -> bool {
        self.table.add(address, id, origin)
    }

    /// Known addresses.
    pub fn known_addresses(&self) -> usize {
        self.table.len()
    }

    /// A connection to `peer` authenticated (`outgoing`: we dialed `address`). Decides whether
    /// to keep it ([`on_duplicate`] when `peer` is connected already).
    pub fn arrived(&mut self, peer: FeedId, address: &str, outgoing: bool) -> Arrival<'_, T> {
        if outgoing {
            self.dialing.remove(address);
            self.table.succeeded(address, peer);
        }
        if peer == self.me {
            return Arrival::Drop;
        }
        let initiator = if outgoing { self.me } else { peer };
        match self.open.get(&peer) {
            None => Arrival::Admit { replaces: None },
            Some(existing) => {
                match on_duplicate(existing.initiator, existing.since.elapsed(), initiator) {
                    Duplicate::KeepExisting => Arrival::Drop,
                    Duplicate::Replace => Arrival::Admit {
                        replaces: Some(&existing.handle),
                    },
                }
            }
        }
    }

    /// Admits a connection [`Connections::arrived`] said to admit; returns its number.
    pub fn admit(
        &mut self,
        peer: FeedId,
        address: String,
        outgoing: bool,
        now: Instant,
        handle: T,
    ) -> u64 {
        self.next_id += 1;
        let initiator = if outgoing { self.me } else { peer };
        self.open.insert(
            peer,
            Open {
                id: self.next_id,
                address,
                outgoing,
                initiator,
                since: now,
                handle,
            },
        );
        self.next_id
    }

    /// Connection `id` to `peer` closed. False if it was already replaced (a late report).
    pub fn closed(&mut self, peer: &FeedId, id: u64) -> bool {
        if self.open.get(peer).is_some_and(|c| c.id == id) {
            self.open.remove(peer);
            return true;
        }
        false
    }

    /// A dial of `address` failed: it backs off (`jitter` from the node's generator).
    pub fn dial_failed(&mut self, address: &str, now: Instant, jitter: u64) {
        self.dialing.remove(address);
        self.table.failed(address, now, jitter);
    }

    /// Connections we dialed or are dialing.
    fn outgoing(&self) -> usize {
        self.open.values().filter(|c| c.outgoing).count() + self.dialing.len()
    }

    /// The addresses to dial now, up to `max_outgoing` outgoing connections, each chosen by a
    /// draw from `draws`; they count as being dialed until [`Connections::arrived`] or
    /// [`Connections::dial_failed`]. Never our own address, a connected peer's, an address being
    /// dialed, or one backing off. Peers whose feeds we replicate (`wanted`: the people we
    /// follow) come first: connecting only to peers that hold nothing we want (notaries, say)
    /// would leave the feeds we follow unreplicated until a rotation.
    pub fn to_dial(
        &mut self,
        now: Instant,
        wanted: impl Fn(&FeedId) -> bool,
        mut draws: impl FnMut() -> u64,
    ) -> Vec<(String, Option<FeedId>)> {
        let mut chosen = Vec::new();
        while self.outgoing() < self.max_outgoing {
            let connected: BTreeSet<FeedId> = self.open.keys().copied().collect();
            let addresses: BTreeSet<&String> = self.open.values().map(|c| &c.address).collect();
            let (me, own_listen, dialing) = (self.me, &self.own_listen, &self.dialing);
            let candidates: Vec<(String, Option<FeedId>)> = self
                .table
                .dialable(now, |address, id| {
                    id.is_some_and(|id| *id == me || connected.contains(id))
                        || addresses.contains(&address.to_string())
                        || dialing.contains(address)
                        || own_listen.as_deref() == Some(address)
                })
                .map(|(address, info)| (address.clone(), info.id))
                .collect();
            let preferred: Vec<(String, Option<FeedId>)> = candidates
                .iter()
                .filter(|(_, id)| id.as_ref().is_some_and(&wanted))
                .cloned()
                .collect();
            let untried: Vec<(String, Option<FeedId>)> = candidates
                .iter()
                .filter(|(address, _)| !self.seek_tried.contains(address))
                .cloned()
                .collect();
            let from = if !preferred.is_empty() {
                &preferred
            } else if !untried.is_empty() {
                &untried
            } else {
                &candidates
            };
            if from.is_empty() {
                break;
            }
            let Some(next) = pick(from, draws()).cloned() else {
                break;
            };
            self.dialing.insert(next.0.clone());
            chosen.push(next);
        }
        chosen
    }

    /// Now and then the oldest dialed connection is closed, so that another candidate gets a
    /// turn ([`rotation_due`]): the handle of the one to close, if it is time.
    pub fn to_rotate(&mut self, now: Instant) -> Option<&T> {
        let dialed = self.open.values().filter(|c| c.outgoing).count();
        let due = rotation_due(
            now,
            self.last_rotation,
            self.rotate_every,
            dialed,
            self.max_outgoing,
            self.table.len(),
        );
        // A period is over (whether or not anyone is rotated out): the next one starts.
        if self
            .rotate_every
            .is_some_and(|every| now.saturating_duration_since(self.last_rotation) >= every)
        {
            self.last_rotation = now;
        }
        if !due {
            return None;
        }
        self.open
            .values()
            .filter(|c| c.outgoing)
            .min_by_key(|c| c.since)
            .map(|c| &c.handle)
    }

    /// While this node seeks a peer that replicates its own feed (a home restored from a
    /// backup: its store does not hold the feed, and nothing may be signed on it until a peer
    /// that does has answered), the ordinary rotation is far too slow: with every dial slot
    /// taken by peers that do not replicate the feed (notaries, say), the one that does would
    /// wait minutes for its turn. So: when no open connection is with a peer that holds the
    /// feed (`holds_own`), every dial slot is taken, and an address not tried yet can be
    /// dialed, the oldest dialed connection is closed, at most once per `every`, and its
    /// address is remembered as tried ([`Connections::to_dial`] picks untried addresses first).
    /// When every address has been tried, the next round begins after `rest`. Returns the
    /// handle of the connection to close.
    pub fn to_rotate_seeking(
        &mut self,
        now: Instant,
        every: Duration,
        rest: Duration,
        holds_own: impl Fn(&FeedId) -> bool,
    ) -> Option<&T> {
        if now.saturating_duration_since(self.seek_last) < every
            || self.open.keys().any(&holds_own)
            || self.outgoing() < self.max_outgoing
        {
            return None;
        }
        let addresses: BTreeSet<&String> = self.open.values().map(|c| &c.address).collect();
        let (me, own_listen, dialing, tried, open) = (
            self.me,
            &self.own_listen,
            &self.dialing,
            &self.seek_tried,
            &self.open,
        );
        let untried = self
            .table
            .dialable(now, |address, id| {
                id.is_some_and(|id| *id == me || open.contains_key(id))
                    || addresses.contains(&address.to_string())
                    || dialing.contains(address)
                    || own_listen.as_deref() == Some(address)
                    || tried.contains(address)
            })
            .count();
        if untried == 0 {
            if now.saturating_duration_since(self.seek_round) >= rest {
                self.seek_tried.clear();
                self.seek_round = now;
            }
            return None;
        }
        let oldest = self
            .open
            .iter()
            .filter(|(peer, c)| c.outgoing && !holds_own(peer))
            .min_by_key(|(_, c)| c.since)
            .map(|(_, c)| c)?;
        self.seek_last = now;
        self.seek_tried.insert(oldest.address.clone());
        Some(&oldest.handle)
    }

    /// The connection to `peer`, if open.
    pub fn get(&self, peer: &FeedId) -> Option<&Open<T>> {
        self.open.get(peer)
    }

    /// Every open connection.
    pub fn iter(&self) -> impl Iterator<Item = (&FeedId, &Open<T>)> {
        self.open.iter()
    }

    /// True if no connection is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    fn id(n: u8) -> FeedId {
        Keypair::from_seed(&[n; 32]).id()
    }

    fn table(addresses: &[(&str, Option<FeedId>)]) -> PeerTable {
        let mut table = PeerTable::new();
        for (address, id) in addresses {
            table.add((*address).to_owned(), *id, Origin::Configured);
        }
        table
    }

    #[test]
    fn dialing_fills_the_outgoing_slots_and_never_dials_twice_or_to_itself() {
        let t0 = Instant::now();
        let me = id(1);
        let mut c: Connections<()> = Connections::new(
            me,
            Some("own:1".into()),
            2,
            None,
            table(&[
                ("own:1", None),
                ("self:2", Some(me)),
                ("a:1", Some(id(2))),
                ("b:1", None),
                ("c:1", None),
            ]),
            t0,
        );
        let mut draws = 0u64..;
        let first = c.to_dial(t0, |_| false, || draws.next().unwrap());
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.iter().all(|(a, _)| a != "own:1" && a != "self:2"));
        assert!(
            c.to_dial(t0, |_| false, || 0).is_empty(),
            "both slots are dialing"
        );
        // One fails: its slot is free again, but that address backs off.
        let failed = first[0].0.clone();
        c.dial_failed(&failed, t0, 0);
        let again = c.to_dial(t0, |_| false, || 0);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].0, failed, "a failed address backs off");
    }

    /// Admits a dialed connection to `peer` at `address`.
    fn connect(c: &mut Connections<u8>, peer: FeedId, address: String, now: Instant) {
        assert!(matches!(
            c.arrived(peer, &address, true),
            Arrival::Admit { .. }
        ));
        c.admit(peer, address, true, now, 0);
    }

    /// The oldest dialed connection: its peer and number.
    fn oldest_dialed(c: &Connections<u8>) -> (FeedId, u64) {
        c.open
            .iter()
            .filter(|(_, o)| o.outgoing)
            .min_by_key(|(_, o)| o.since)
            .map(|(p, o)| (*p, o.id))
            .unwrap()
    }

    /// A restored node whose 2 dial slots went to peers that do not hold its feed (notaries)
    /// tries every other address within a few rotations (one per period, untried ones first),
    /// stops once a peer that holds the feed is connected, and rests after a full round.
    #[test]
    fn seeking_the_own_feed_rotates_through_untried_addresses_until_a_holder_is_connected() {
        let t0 = Instant::now();
        let me = id(1);
        let (n1, n2, n3, bob) = (id(10), id(11), id(12), id(20));
        let mut c: Connections<u8> = Connections::new(
            me,
            None,
            2,
            Some(Duration::from_secs(300)),
            table(&[
                ("n1:1", Some(n1)),
                ("n2:1", Some(n2)),
                ("n3:1", Some(n3)),
                ("z-bob:1", Some(bob)),
            ]),
            t0,
        );
        let (every, rest) = (Duration::from_secs(1), Duration::from_secs(60));
        let holds = |peer: &FeedId| *peer == bob;
        let by_address = |a: &str| match a {
            "n1:1" => n1,
            "n2:1" => n2,
            "n3:1" => n3,
            _ => bob,
        };
        // The slots go to n1 and n2 (draw 0 twice: the first candidate each time).
        let mut now = t0;
        for (address, _) in c.to_dial(now, |_| false, || 0) {
            connect(&mut c, by_address(&address), address, now);
        }
        let mut tried = Vec::new();
        let mut found = false;
        for _ in 0..4 {
            now += every;
            let Some(_) = c.to_rotate_seeking(now, every, rest, holds) else {
                break;
            };
            // The oldest dialed connection closes; its slot is dialed again.
            let (closing, number) = oldest_dialed(&c);
            tried.push(closing);
            assert!(c.closed(&closing, number));
            let next = c.to_dial(now, |_| false, || 0);
            assert_eq!(next.len(), 1, "{next:?}");
            let peer = by_address(&next[0].0);
            assert!(!tried.contains(&peer), "an untried address first: {next:?}");
            connect(&mut c, peer, next[0].0.clone(), now);
            if peer == bob {
                found = true;
                break;
            }
        }
        assert!(found, "bob was never dialed; rotated out: {tried:?}");
        assert!(
            tried.len() <= 2,
            "one rotation per untried address: {tried:?}"
        );
        // Connected to a holder: no more seeking rotations.
        assert!(
            c.to_rotate_seeking(now + every * 10, every, rest, holds)
                .is_none()
        );
        // Nobody holds it: after a full round of tries it rests.
        let none = |_: &FeedId| false;
        let mut rotations = 0;
        let mut at = now;
        for _ in 0..10 {
            at += every;
            let Some(_) = c.to_rotate_seeking(at, every, rest, none) else {
                continue;
            };
            rotations += 1;
            let (closing, number) = oldest_dialed(&c);
            assert!(c.closed(&closing, number));
            for (address, _) in c.to_dial(at, |_| false, || 0) {
                connect(&mut c, by_address(&address), address, at);
            }
        }
        assert!(rotations <= 4, "at most one round of tries: {rotations}");
        assert!(
            c.to_rotate_seeking(at + every, every, rest, none).is_none(),
            "resting after the round"
        );
    }

    #[test]
    fn a_connected_peer_is_not_dialed_and_a_duplicate_follows_the_rule() {
        let t0 = Instant::now();
        let (me, other) = (id(1), id(2));
        let mut c: Connections<&str> =
            Connections::new(me, None, 4, None, table(&[("x:1", Some(other))]), t0);
        // It dialed us: admitted.
        assert_eq!(
            c.arrived(other, "x:9", false),
            Arrival::Admit { replaces: None }
        );
        let first = c.admit(other, "x:9".into(), false, t0, "theirs");
        assert!(
            c.to_dial(t0, |_| false, || 0).is_empty(),
            "already connected"
        );
        // We dial it too, at once: the one the smaller id initiated wins on both sides.
        let ours = c.arrived(other, "x:1", true);
        if me < other {
            assert_eq!(
                ours,
                Arrival::Admit {
                    replaces: Some(&"theirs")
                }
            );
        } else {
            assert_eq!(ours, Arrival::Drop);
        }
        // A late report of a replaced connection changes nothing.
        let second = c.admit(other, "x:1".into(), true, t0, "ours");
        assert!(!c.closed(&other, first));
        assert!(c.closed(&other, second));
        assert!(c.is_empty());
        assert_eq!(c.arrived(me, "x:1", true), Arrival::Drop, "ourselves");
    }

    /// Peers whose feeds are wanted are dialed before anonymous addresses, whatever the draws.
    #[test]
    fn peers_we_follow_are_dialed_first() {
        let t0 = Instant::now();
        let (friend, other) = (id(2), id(3));
        let world = || -> Connections<()> {
            Connections::new(
                id(1),
                None,
                2,
                None,
                table(&[
                    ("n1:1", None),
                    ("n2:1", None),
                    ("n3:1", None),
                    ("friend:1", Some(friend)),
                    ("other:1", Some(other)),
                ]),
                t0,
            )
        };
        // Whatever the draw, the one followed peer comes first.
        for draw in 0..5u64 {
            let chosen = world().to_dial(t0, |id| *id == friend, || draw);
            assert_eq!(chosen[0].0, "friend:1", "draw {draw}");
        }
        // Two followed peers fill both slots before any anonymous address.
        let chosen = world().to_dial(t0, |id| [friend, other].contains(id), || 0);
        let mut names: Vec<&str> = chosen.iter().map(|(a, _)| a.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["friend:1", "other:1"]);
    }

    #[test]
    fn rotation_closes_the_oldest_dialed_connection_once_a_period() {
        let t0 = Instant::now();
        let every = Duration::from_secs(300);
        let mut c: Connections<u8> = Connections::new(
            id(1),
            None,
            2,
            Some(every),
            table(&[("a:1", None), ("b:1", None), ("c:1", None)]),
            t0,
        );
        c.admit(id(2), "a:1".into(), true, t0, 2);
        c.admit(id(3), "b:1".into(), true, t0 + Duration::from_secs(1), 3);
        assert_eq!(c.to_rotate(t0 + Duration::from_secs(10)), None, "too soon");
        assert_eq!(c.to_rotate(t0 + every), Some(&2), "the oldest");
        assert_eq!(
            c.to_rotate(t0 + every + Duration::from_secs(1)),
            None,
            "one per period"
        );
    }
}
