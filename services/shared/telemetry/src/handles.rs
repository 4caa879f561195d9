//! Metric handles kept per label set. `metrics::counter!` with labels builds the label set and
//! finds it in the registry on every call, which costs more than the recording itself; a path
//! that records on every request keeps its handles here instead, made on first use.

use foldhash::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// Handles `H` keyed by a string label (a route, a model) and then by `K` (the labels with few
/// values: method and status, provider and status). The string is looked up borrowed, so a
/// hit allocates nothing.
pub struct HandleCache<K, H> {
    by_name: RwLock<HashMap<String, HashMap<K, H>>>,
    /// Past this many names the cache starts afresh (the registry keeps every series anyway).
    most_names: usize,
}

impl<K: Hash + Eq, H: Clone> HandleCache<K, H> {
    pub fn new(most_names: usize) -> Self {
        Self {
            by_name: RwLock::default(),
            most_names,
        }
    }

    /// The handles for `name` and `key`, made by `make` the first time.
    pub fn get(&self, name: &str, key: K, make: impl FnOnce() -> H) -> H {
        let found = self
            .by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|by_key| by_key.get(&key).cloned());
        if let Some(handles) = found {
            return handles;
        }
        let handles = make();
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        if by_name.len() >= self.most_names && !by_name.contains_key(name) {
            by_name.clear();
        }
        by_name
            .entry(name.to_owned())
            .or_default()
            .insert(key, handles.clone());
        handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_made_once_per_name_and_key() {
        let cache = HandleCache::new(2);
        let mut made = 0;
        let mut get = |name: &str, key: u8| {
            cache.get(name, key, || {
                made += 1;
                made
            })
        };
        assert_eq!(get("a", 1), 1);
        assert_eq!(get("a", 1), 1);
        assert_eq!(get("a", 2), 2);
        assert_eq!(get("b", 1), 3);
        assert_eq!(get("b", 1), 3);
        // A new key under a name already there keeps the rest.
        assert_eq!(get("b", 2), 4);
        assert_eq!(get("a", 1), 1);
        // A third name starts afresh.
        assert_eq!(get("c", 1), 5);
        assert_eq!(get("a", 1), 6);
    }
}
