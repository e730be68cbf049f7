//! The hashed n-gram ids of texts a hashed model has seen, kept so a text is
//! tokenised once, not at every update that meets it again.
//!
//! An update of the default classifier reads its judging window (the same
//! 100 examples, a few new each time), its replayed examples (drawn again
//! and again from the memory) and its new examples (predicted when they
//! arrived): tokenising and hashing them again was a third of the update.
//! The cache is keyed by a 128-bit xxh3 digest of the text (a fraction of a
//! microsecond for an article, against about 10 µs to tokenise it; two
//! texts sharing a digest are not a practical concern at 2⁻¹²⁸) and bounded
//! by the number of ids it holds, evicting with the CLOCK policy: an entry
//! read since the hand last passed gets a second chance, so the window and
//! the replay memory stay while one-off predictions pass through.
//!
//! A model and the trainer's copy of it share one cache (same
//! configuration, same ids), behind its own lock, held only to look up or
//! insert; ids are computed outside it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_128;

/// Ids a model's cache holds at most: 8 MiB of `u32`, about 2,000 news
/// articles (a judging window of 100, a replay memory of 1,000 and the
/// examples in between).
pub(crate) const MAX_CACHED_IDS: usize = 1 << 21;

/// Hashed feature ids by text digest, bounded, shared by a model's copies.
#[derive(Debug)]
pub(crate) struct FeatureCache {
    max_ids: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u128, Entry>,
    /// The CLOCK: digests in insertion order, the hand at the front.
    clock: VecDeque<u128>,
    ids_held: usize,
}

#[derive(Debug)]
struct Entry {
    ids: Arc<[u32]>,
    referenced: bool,
}

impl FeatureCache {
    /// An empty cache of at most `max_ids` ids.
    pub fn new(max_ids: usize) -> FeatureCache {
        FeatureCache {
            max_ids,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The ids of `text`: cached, or `compute(text)` (then cached, unless
    /// they alone would take more than a quarter of the cache).
    pub fn ids(&self, text: &str, compute: impl FnOnce(&str) -> Vec<u32>) -> Arc<[u32]> {
        let key = xxh3_128(text.as_bytes());
        if let Some(entry) = self.inner.lock().entries.get_mut(&key) {
            entry.referenced = true;
            return Arc::clone(&entry.ids);
        }
        let ids: Arc<[u32]> = compute(text).into();
        if ids.len() <= self.max_ids / 4 {
            self.insert(key, Arc::clone(&ids));
        }
        ids
    }

    fn insert(&self, key: u128, ids: Arc<[u32]>) {
        let mut inner = self.inner.lock();
        if inner.entries.contains_key(&key) {
            return; // Another thread computed it meanwhile.
        }
        while inner.ids_held + ids.len() > self.max_ids {
            let Some(hand) = inner.clock.pop_front() else { break };
            let Some(entry) = inner.entries.get_mut(&hand) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                inner.clock.push_back(hand);
            } else if let Some(gone) = inner.entries.remove(&hand) {
                inner.ids_held -= gone.ids.len();
            }
        }
        inner.ids_held += ids.len();
        inner.clock.push_back(key);
        inner.entries.insert(key, Entry { ids, referenced: false });
    }

    /// Texts cached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_text_is_computed_once_and_the_bound_holds() {
        let cache = FeatureCache::new(12);
        let computed = Cell::new(0);
        let compute = |text: &str| {
            computed.set(computed.get() + 1);
            text.bytes().map(u32::from).collect::<Vec<u32>>()
        };
        assert_eq!(&*cache.ids("abc", compute), &[97, 98, 99]);
        assert_eq!(&*cache.ids("abc", compute), &[97, 98, 99]);
        assert_eq!(computed.get(), 1, "the second read is a hit");
        // Four texts of 3 ids fill the 12; a fifth evicts one.
        for text in ["def", "ghi", "jkl", "mno"] {
            cache.ids(text, compute);
        }
        assert_eq!(cache.len(), 4);
        assert!(cache.inner.lock().ids_held <= 12);
    }

    #[test]
    fn a_text_read_again_gets_a_second_chance() {
        let cache = FeatureCache::new(12);
        let compute = |text: &str| text.bytes().map(u32::from).collect::<Vec<u32>>();
        for text in ["aaa", "bbb", "ccc", "ddd"] {
            cache.ids(text, compute);
        }
        cache.ids("aaa", compute); // Read again: survives the next eviction.
        cache.ids("eee", compute);
        let recomputed = |text: &str| {
            let computed = Cell::new(false);
            cache.ids(text, |t| {
                computed.set(true);
                compute(t)
            });
            computed.get()
        };
        assert!(!recomputed("aaa"), "the text read again was kept");
        assert!(recomputed("bbb"), "the oldest text not read again was evicted");
        // A text longer than a quarter of the cache is returned, not cached.
        assert_eq!(cache.ids("0123456789", compute).len(), 10);
        assert!(cache.inner.lock().ids_held <= 12);
    }
}
