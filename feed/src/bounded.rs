//! A map that forgets its oldest keys: the bounded memories a party keeps of what it checked or
//! decided before (a notary's own votes, what feeds' first entries say), each under a named
//! capacity of its own.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// At most `capacity` keys. Inserting a new key beyond that forgets the key inserted longest
/// ago (first in, first out); inserting a key already held replaces its value and keeps its
/// place.
#[derive(Clone, Debug)]
pub struct FifoMap<K, V> {
    order: VecDeque<K>,
    values: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// An empty map that keeps at most `capacity` keys.
    pub fn new(capacity: usize) -> FifoMap<K, V> {
        FifoMap {
            order: VecDeque::new(),
            values: HashMap::new(),
            capacity,
        }
    }

    /// Holds `value` under `key`, forgetting the oldest keys beyond the capacity.
    pub fn insert(&mut self, key: K, value: V) {
        if self.values.insert(key.clone(), value).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }

    /// The value held under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never more than the capacity; the oldest key goes first; a key inserted again keeps its
    /// place and takes the new value; a capacity of 0 holds nothing.
    #[test]
    fn it_keeps_the_newest_keys_up_to_its_capacity() {
        let mut map = FifoMap::new(3);
        for k in 0..3u32 {
            map.insert(k, k * 10);
        }
        map.insert(0, 7);
        assert_eq!((map.len(), map.get(&0)), (3, Some(&7)));
        map.insert(3, 30);
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.get(&0),
            None,
            "the oldest inserted, though inserted again"
        );
        assert_eq!(
            [map.get(&1), map.get(&2), map.get(&3)],
            [Some(&10), Some(&20), Some(&30)]
        );
        for k in 4..100 {
            map.insert(k, k);
            assert_eq!(map.len(), 3);
        }
        assert_eq!([map.get(&96), map.get(&97)], [None, Some(&97)]);

        let mut none = FifoMap::new(0);
        none.insert(1u8, ());
        assert!(none.is_empty() && none.get(&1).is_none());
    }
}
