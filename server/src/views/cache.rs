//! The one cache type behind [`super::ViewService`]'s three caches (prepared experiment data,
//! built views, RFT selection features): a size-bounded map shared by every clone of the
//! service.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// A map shared by every clone of the service (each request handler holds one) that forgets all
/// its entries at once when an insert finds it full. No eviction order to keep: a refill costs
/// one build per key asked for again, and the bound only guards memory against unbounded keys
/// (every distinct URL is a key of the views' cache).
pub(super) struct Cache<K, V> {
    map: Arc<Mutex<HashMap<K, V>>>,
    /// Entries held at most.
    limit: usize,
}

// Not derived: a derive would ask `K: Clone, V: Clone`, and a clone shares the map anyway.
impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            limit: self.limit,
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    /// An empty cache that holds at most `limit` entries.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            map: Arc::default(),
            limit,
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.map.lock().unwrap().get(key).cloned()
    }

    /// Stores `value` under `key`, first emptying the cache when it already holds `limit`
    /// entries (even when `key` is one of them: the check comes first, as it always did).
    pub(super) fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap();
        if map.len() >= self.limit {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// Values stored with the experiment stamp they were built under: valid while the stamp holds.
impl<K: Eq + Hash, V: Clone> Cache<K, (String, V)> {
    /// The value under `key` if it was built under `stamp`; a stale one is left to be replaced.
    pub(super) fn get_fresh(&self, key: &K, stamp: &str) -> Option<V> {
        match self.map.lock().unwrap().get(key) {
            Some((s, v)) if s == stamp => Some(v.clone()),
            _ => None,
        }
    }
}
