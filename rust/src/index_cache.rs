//! A bounded LRU cache of decoded shard indexes, so repeated crops of the
//! same shards do not read their indexes again.
//!
//! Entries are keyed by the shard's path or URL and carry the object's
//! length and version stamp (modification time of a local file, ETag of a
//! remote object): a local lookup passes the current values and a changed
//! file misses. Remote lookups made before any request (to skip the index
//! request itself) accept the cached version; [`crate::remote::invalidate`]
//! drops remote entries. The budget is `TESSERA_INDEX_CACHE_BYTES` (default
//! 64 MiB), changeable with [`set_capacity`].

use crate::error::Result;
use crate::shard::IndexEntry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Default budget of the cache in bytes.
pub const DEFAULT_CAPACITY: u64 = 64 << 20;

/// A decoded shard index and the object version it was read from.
#[derive(Debug)]
pub struct CachedIndex {
    /// Length of the shard object in bytes.
    pub len: u64,
    /// Version stamp of the shard object (0: unknown).
    pub stamp: u64,
    /// The index entries, in inner-grid C order.
    pub entries: Vec<IndexEntry>,
}

impl CachedIndex {
    fn cost(&self, key: &str) -> u64 {
        (self.entries.len() * std::mem::size_of::<IndexEntry>() + key.len() + 64) as u64
    }
}

struct Cache {
    entries: lru::LruCache<String, Arc<CachedIndex>>,
    bytes: u64,
    capacity: u64,
}

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let capacity = std::env::var("TESSERA_INDEX_CACHE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_CAPACITY);
        Mutex::new(Cache {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            capacity,
        })
    })
}

impl Cache {
    fn evict(&mut self) {
        while self.bytes > self.capacity {
            match self.entries.pop_lru() {
                Some((key, entry)) => self.bytes -= entry.cost(&key),
                None => break,
            }
        }
    }
}

/// The cached index under `key`; with `version` `(len, stamp)`, only one
/// read from that version.
pub fn get(key: &str, version: Option<(u64, u64)>) -> Option<Arc<CachedIndex>> {
    let mut cache = cache().lock().expect("index cache");
    let hit = cache
        .entries
        .get(key)
        .filter(|e| version.is_none_or(|(len, stamp)| e.len == len && e.stamp == stamp))
        .cloned();
    match &hit {
        Some(_) => HITS.fetch_add(1, Ordering::Relaxed),
        None => MISSES.fetch_add(1, Ordering::Relaxed),
    };
    hit
}

/// Stores an index under `key`, evicting least recently used ones beyond the budget.
pub fn put(key: String, entry: CachedIndex) -> Arc<CachedIndex> {
    let entry = Arc::new(entry);
    let mut cache = cache().lock().expect("index cache");
    let cost = entry.cost(&key);
    if cost <= cache.capacity {
        if let Some(old) = cache.entries.put(key.clone(), entry.clone()) {
            cache.bytes -= old.cost(&key);
        }
        cache.bytes += cost;
        cache.evict();
    }
    entry
}

/// The index under `key` at `version`, cached, or loaded by `load` and cached.
pub fn get_or_load(
    key: &str,
    version: (u64, u64),
    load: impl FnOnce() -> Result<Vec<IndexEntry>>,
) -> Result<Arc<CachedIndex>> {
    if let Some(hit) = get(key, Some(version)) {
        return Ok(hit);
    }
    let entries = load()?;
    Ok(put(
        key.to_string(),
        CachedIndex {
            len: version.0,
            stamp: version.1,
            entries,
        },
    ))
}

/// Sets the budget in bytes (0 disables caching), evicting as needed.
pub fn set_capacity(bytes: u64) {
    let mut cache = cache().lock().expect("index cache");
    cache.capacity = bytes;
    cache.evict();
}

/// Drops the entries whose key satisfies `matches`; returns how many.
pub fn invalidate(matches: impl Fn(&str) -> bool) -> usize {
    let mut cache = cache().lock().expect("index cache");
    let keys: Vec<String> = cache
        .entries
        .iter()
        .filter(|(k, _)| matches(k))
        .map(|(k, _)| k.clone())
        .collect();
    for key in &keys {
        if let Some(old) = cache.entries.pop(key) {
            cache.bytes -= old.cost(key);
        }
    }
    keys.len()
}

/// `[hits, misses, entries, bytes, capacity]` since the process started.
pub fn stats() -> [u64; 5] {
    let cache = cache().lock().expect("index cache");
    [
        HITS.load(Ordering::Relaxed),
        MISSES.load(Ordering::Relaxed),
        cache.entries.len() as u64,
        cache.bytes,
        cache.capacity,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_checks_versions() {
        let entry = |len| CachedIndex {
            len,
            stamp: 7,
            entries: vec![Some((0, 1)); 100],
        };
        let cost = entry(1).cost("test:a");
        set_capacity(2 * cost);
        put("test:a".into(), entry(1));
        put("test:b".into(), entry(1));
        assert!(get("test:a", Some((1, 7))).is_some()); // a is now the most recent
        put("test:c".into(), entry(1));
        assert!(get("test:b", None).is_none(), "b was least recently used");
        assert!(get("test:a", None).is_some() && get("test:c", None).is_some());
        assert!(
            get("test:a", Some((2, 7))).is_none(),
            "another length misses"
        );
        assert_eq!(invalidate(|k| k.starts_with("test:")), 2);
        set_capacity(DEFAULT_CAPACITY);
    }
}
