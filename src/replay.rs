//! Experience replay: a bounded memory of examples an (agent, task) already
//! learned, a sample of which is mixed into every update.
//!
//! Online learners forget what a run of similar examples pushes out: the news
//! stream in date order holds runs of up to 156 articles of one outlet, and an
//! update of 50 of them alone taught the classifier to name that outlet for
//! everything (the acceptance test rolled back 9 of 16 such updates). Replay
//! of a small episodic memory beats regularisation alone in single-pass
//! continual learning (Chaudhry et al. 2019, "On Tiny Episodic Memories";
//! Rolnick et al. 2019, CLEAR). Labels are kept class-balanced (each label
//! its own reservoir of an equal share) so the sample shows every class
//! however skewed the recent stream; other targets share one reservoir
//! (Vitter's algorithm R: every example seen has the same chance to be kept).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::example::{Target, TrainingExample};
use crate::features::SplitMix64;

/// Replay settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Most examples remembered per (agent, task); 0 turns replay off.
    pub capacity: usize,
    /// Replayed examples per new example of an update (rounded up).
    pub ratio: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            capacity: 1000,
            ratio: 1.0,
        }
    }
}

/// The remembered examples of one (agent, task).
#[derive(Debug, Clone)]
pub struct ReplayMemory {
    capacity: usize,
    /// Per label (one key, `None`, for other targets): the kept examples and
    /// how many were offered.
    pools: BTreeMap<Option<String>, (Vec<TrainingExample>, u64)>,
    rng: SplitMix64,
}

impl ReplayMemory {
    /// An empty memory of at most `capacity` examples.
    pub fn new(capacity: usize, seed: u64) -> ReplayMemory {
        ReplayMemory {
            capacity,
            pools: BTreeMap::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Changes the capacity (from the configuration), dropping examples at
    /// random where it shrinks.
    pub fn set_capacity(&mut self, capacity: usize) {
        if capacity != self.capacity {
            self.capacity = capacity;
            match capacity {
                0 => self.pools.clear(),
                _ => self.trim(),
            }
        }
    }

    /// Examples remembered.
    pub fn len(&self) -> usize {
        self.pools.values().map(|(kept, _)| kept.len()).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offers learned examples to the memory.
    pub fn remember(&mut self, examples: &[TrainingExample]) {
        if self.capacity == 0 {
            return;
        }
        for example in examples {
            let key = match &example.expected_output {
                Target::Label(label) => Some(label.clone()),
                _ => None,
            };
            let share = self.capacity / (self.pools.len() + usize::from(!self.pools.contains_key(&key))).max(1);
            let (kept, seen) = self.pools.entry(key).or_default();
            *seen += 1;
            if kept.len() < share.max(1) {
                kept.push(example.clone());
            } else {
                let slot = self.rng.next_u64() % *seen;
                if (slot as usize) < kept.len() {
                    kept[slot as usize] = example.clone();
                }
            }
        }
        self.trim();
    }

    /// Keeps every pool within an equal share of the capacity, so a label
    /// that appears late still gets its place.
    fn trim(&mut self) {
        let share = (self.capacity / self.pools.len().max(1)).max(1);
        for (kept, _) in self.pools.values_mut() {
            while kept.len() > share {
                let i = (self.rng.next_u64() % kept.len() as u64) as usize;
                kept.swap_remove(i);
            }
        }
    }

    /// `n` remembered examples (fewer when fewer are kept), drawn in turn
    /// from each label's pool, at random within it, without repeats.
    pub fn sample(&mut self, n: usize) -> Vec<TrainingExample> {
        let mut order: Vec<Vec<usize>> = self
            .pools
            .values()
            .map(|(kept, _)| {
                let mut idx: Vec<usize> = (0..kept.len()).collect();
                self.rng.shuffle(&mut idx);
                idx
            })
            .collect();
        let pools: Vec<&Vec<TrainingExample>> = self.pools.values().map(|(kept, _)| kept).collect();
        let mut start = (self.rng.next_u64() % pools.len().max(1) as u64) as usize;
        let mut out = Vec::with_capacity(n);
        while out.len() < n && order.iter().any(|o| !o.is_empty()) {
            let p = start % pools.len();
            if let Some(i) = order[p].pop() {
                out.push(pools[p][i].clone());
            }
            start += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(i: u64, label: &str) -> TrainingExample {
        TrainingExample::new(i, "a", "t", format!("text {i}"), Target::Label(label.into()))
    }

    #[test]
    fn a_skewed_stream_is_sampled_class_balanced() {
        let mut memory = ReplayMemory::new(100, 7);
        let stream: Vec<TrainingExample> = (0..1000)
            .map(|i| labelled(i, if i % 10 == 0 { "rare" } else { "common" }))
            .collect();
        memory.remember(&stream);
        assert_eq!(memory.len(), 100);
        let sample = memory.sample(20);
        let rare = sample
            .iter()
            .filter(|e| e.expected_output == Target::Label("rare".into()))
            .count();
        assert_eq!(rare, 10, "half of the sample is the rare class");
        let mut ids: Vec<u64> = sample.iter().map(|e| e.id.0).collect();
        ids.dedup();
        assert_eq!(ids.len(), 20, "no repeats");
    }

    #[test]
    fn a_late_label_gets_its_share_and_capacity_holds() {
        let mut memory = ReplayMemory::new(10, 1);
        memory.remember(&(0..50).map(|i| labelled(i, "a")).collect::<Vec<_>>());
        memory.remember(&[labelled(50, "b")]);
        assert!(memory.len() <= 10);
        assert!(memory
            .sample(10)
            .iter()
            .any(|e| e.expected_output == Target::Label("b".into())));
        assert!(ReplayMemory::new(0, 1).sample(5).is_empty());
    }
}
