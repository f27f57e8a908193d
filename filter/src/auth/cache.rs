//! Per-VM cache of verified tokens, so a client's steady stream of calls costs
//! one signature check. Bounded in entries, and an entry never outlives the
//! token's `exp` (leeway included). It only accelerates: a miss re-verifies,
//! so replicas with cold caches decide exactly the same.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

pub struct TokenCache<T> {
    entries: HashMap<Box<str>, (Rc<T>, u64)>,
    /// Insertion order, for evicting the oldest entry when full.
    order: VecDeque<Box<str>>,
    capacity: usize,
}

impl<T> TokenCache<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// The cached value for a token still valid at `now` (Unix seconds).
    pub fn get(&mut self, token: &str, now: u64) -> Option<Rc<T>> {
        match self.entries.get(token) {
            Some((value, valid_until)) if now < *valid_until => Some(value.clone()),
            Some(_) => {
                self.entries.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, token: &str, value: Rc<T>, valid_until: u64) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        let key: Box<str> = token.into();
        if self
            .entries
            .insert(key.clone(), (value, valid_until))
            .is_none()
        {
            self.order.push_back(key);
        }
        // Keys of entries dropped on expiry linger in `order`; trim them.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    /// Forget everything (the key set changed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_until_its_expiry_and_not_after() {
        let mut cache = TokenCache::new(4);
        cache.insert("t", Rc::new(1), 100);
        assert_eq!(cache.get("t", 99).as_deref(), Some(&1));
        assert!(cache.get("t", 100).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_oldest_entry_is_evicted_when_full() {
        let mut cache = TokenCache::new(2);
        cache.insert("a", Rc::new(1), 100);
        cache.insert("b", Rc::new(2), 100);
        cache.insert("c", Rc::new(3), 100);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a", 0).is_none());
        assert!(cache.get("c", 0).is_some());
    }

    #[test]
    fn churn_of_expiring_tokens_stays_bounded() {
        let mut cache = TokenCache::new(3);
        for i in 0..1000u64 {
            let token = format!("t{i}");
            cache.insert(&token, Rc::new(i), i + 1);
            let _ = cache.get(&token, i + 2);
        }
        assert!(cache.len() <= 3);
        assert!(cache.order.len() <= 6);
    }
}
