//! Bounded in-process caches whose entries lapse a fixed time after they were kept.
//!
//! `quick_cache` rather than `moka`: a read here is a hash and a shard's read lock, where moka's
//! also queues the read for its eviction bookkeeping and now and then drains that queue inside
//! the read (a third of a recommendation request's CPU, and some of its slowest requests).
//! A lapsed entry reads as absent and stays until it is replaced or evicted.

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::Equivalent;

pub struct ExpiringCache<K, V> {
    entries: quick_cache::sync::Cache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> ExpiringCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { entries: quick_cache::sync::Cache::new(capacity), ttl }
    }

    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<V> {
        let (kept_at, value) = self.entries.get(key)?;
        (kept_at.elapsed() < self.ttl).then_some(value)
    }

    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) {
        self.entries.remove(key);
    }

    pub fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_until_its_time_is_up_or_it_is_removed() {
        let cache = ExpiringCache::new(10, Duration::from_millis(50));
        cache.insert("a".to_owned(), 1);
        cache.insert("b".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(1));
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None, "lapsed");
        cache.insert("b".to_owned(), 3);
        assert_eq!(cache.get("b"), Some(3), "kept again, from now");
        cache.clear();
        assert_eq!(cache.get("b"), None);
    }
}
