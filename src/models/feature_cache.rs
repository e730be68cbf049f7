//! The hashed n-gram features of texts a hashed model has seen, kept so a
//! text is tokenised once, not at every update that meets it again.
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

/// Features a model's cache holds at most: 16 MiB of ids and values, about
/// 3,000 news articles (a judging window of 100, a replay memory of 1,000
/// and the examples in between).
pub(crate) const MAX_CACHED_IDS: usize = 1 << 21;

/// A text's features: its distinct ids in the order they first occur, each
/// with its value (the values of a repeated id added up).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Features {
    /// The distinct ids.
    pub ids: Vec<u32>,
    /// Each id's value.
    pub values: Vec<f32>,
}

/// Hashed features by text digest, bounded, shared by a model's copies.
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
    features: Arc<Features>,
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

    /// The features of `text`: cached, or `compute(text)` (then cached,
    /// unless they alone would take more than a quarter of the cache).
    pub fn features(&self, text: &str, compute: impl FnOnce(&str) -> Features) -> Arc<Features> {
        let key = xxh3_128(text.as_bytes());
        if let Some(entry) = self.inner.lock().entries.get_mut(&key) {
            entry.referenced = true;
            return Arc::clone(&entry.features);
        }
        let features = Arc::new(compute(text));
        if features.ids.len() <= self.max_ids / 4 {
            self.insert(key, Arc::clone(&features));
        }
        features
    }

    fn insert(&self, key: u128, features: Arc<Features>) {
        let mut inner = self.inner.lock();
        if inner.entries.contains_key(&key) {
            return; // Another thread computed it meanwhile.
        }
        let ids = features.ids.len();
        while inner.ids_held + ids > self.max_ids {
            let Some(hand) = inner.clock.pop_front() else { break };
            let Some(entry) = inner.entries.get_mut(&hand) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                inner.clock.push_back(hand);
            } else if let Some(gone) = inner.entries.remove(&hand) {
                inner.ids_held -= gone.features.ids.len();
            }
        }
        inner.ids_held += ids;
        inner.clock.push_back(key);
        inner.entries.insert(
            key,
            Entry {
                features,
                referenced: false,
            },
        );
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

    /// A feature per byte (distinct bytes in these tests), value 1.
    fn of_bytes(text: &str) -> Features {
        Features {
            ids: text.bytes().map(u32::from).collect(),
            values: vec![1.0; text.len()],
        }
    }

    #[test]
    fn a_text_is_computed_once_and_the_bound_holds() {
        let cache = FeatureCache::new(12);
        let computed = Cell::new(0);
        let compute = |text: &str| {
            computed.set(computed.get() + 1);
            of_bytes(text)
        };
        assert_eq!(cache.features("abc", compute).ids, [97, 98, 99]);
        assert_eq!(cache.features("abc", compute).ids, [97, 98, 99]);
        assert_eq!(computed.get(), 1, "the second read is a hit");
        // Four texts of 3 ids fill the 12; a fifth evicts one.
        for text in ["def", "ghi", "jkl", "mno"] {
            cache.features(text, compute);
        }
        assert_eq!(cache.len(), 4);
        assert!(cache.inner.lock().ids_held <= 12);
    }

    #[test]
    fn a_text_read_again_gets_a_second_chance() {
        let cache = FeatureCache::new(12);
        let compute = of_bytes;
        for text in ["aaa", "bbb", "ccc", "ddd"] {
            cache.features(text, compute);
        }
        cache.features("aaa", compute); // Read again: survives the next eviction.
        cache.features("eee", compute);
        let recomputed = |text: &str| {
            let computed = Cell::new(false);
            cache.features(text, |t| {
                computed.set(true);
                compute(t)
            });
            computed.get()
        };
        assert!(!recomputed("aaa"), "the text read again was kept");
        assert!(recomputed("bbb"), "the oldest text not read again was evicted");
        // A text longer than a quarter of the cache is returned, not cached.
        assert_eq!(cache.features("0123456789", compute).ids.len(), 10);
        assert!(cache.inner.lock().ids_held <= 12);
    }
}
