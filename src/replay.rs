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
//!
//! The memory is part of what a model learned: which examples it holds is
//! written to the store (each change, as the examples' `replay` flag) and
//! taken back at start-up, and with several instances the instance that
//! publishes a version publishes the memory's change with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::SplitMix64;
use crate::base::{ExampleId, Target, TrainingExample};

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

/// What one [`ReplayMemory::remember`] changed: the examples that joined the
/// memory and those that left it (never both), so the store can follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayChange {
    /// Examples now remembered.
    pub added: Vec<ExampleId>,
    /// Examples no longer remembered.
    pub removed: Vec<ExampleId>,
}

impl ReplayChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The pool an example belongs to: its label, or `None` for other targets.
pub fn pool_of(target: &Target) -> Option<String> {
    match target {
        Target::Label(label) => Some(label.clone()),
        _ => None,
    }
}

/// One label's kept examples, shared by copies of the memory until one
/// changes it.
type Pool = Arc<Vec<Arc<TrainingExample>>>;

/// The remembered examples of one (agent, task), each at most once.
/// Cloning is cheap (the pools are shared until a copy changes one), so an
/// update can change a copy and keep it only once its outcome is
/// committed: an update of one example copies the one pool it changes,
/// not the whole memory.
#[derive(Debug, Clone)]
pub struct ReplayMemory {
    capacity: usize,
    /// Per label (one key, `None`, for other targets): the kept examples and
    /// how many were offered.
    pools: BTreeMap<Option<String>, (Pool, u64)>,
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
    /// random where it shrinks, then offers `examples` ([`Self::remember`]);
    /// returns what changed over both.
    pub fn resize_and_remember(&mut self, capacity: usize, examples: &[TrainingExample]) -> ReplayChange {
        let dropped = self.set_capacity(capacity);
        let mut change = self.remember(examples);
        // An example dropped by the new capacity and offered again in the
        // same batch is remembered before and after: no change.
        let back: Vec<ExampleId> = dropped.iter().copied().filter(|id| change.added.contains(id)).collect();
        change.added.retain(|id| !back.contains(id));
        change
            .removed
            .extend(dropped.into_iter().filter(|id| !back.contains(id)));
        change.removed.sort_unstable();
        change
    }

    /// Changes the capacity (from the configuration), dropping examples at
    /// random where it shrinks; returns the examples dropped.
    pub fn set_capacity(&mut self, capacity: usize) -> Vec<ExampleId> {
        if capacity == self.capacity {
            return Vec::new();
        }
        self.capacity = capacity;
        self.fit_capacity()
    }

    /// Drops examples at random until the memory fits its capacity; returns
    /// the ids dropped.
    fn fit_capacity(&mut self) -> Vec<ExampleId> {
        match self.capacity {
            0 => {
                let dropped = self.ids();
                self.pools.clear();
                dropped
            }
            _ => self.trim(),
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

    /// The ids of the remembered examples.
    pub fn ids(&self) -> Vec<ExampleId> {
        self.pools
            .values()
            .flat_map(|(kept, _)| kept.iter().map(|e| e.id))
            .collect()
    }

    /// Replaces the memory with examples remembered earlier (from the store),
    /// at most `capacity` of them: `seen` gives, per pool, how many examples
    /// were offered in all (the reservoir's odds continue from there; at
    /// least the pool's size). Returns the ids that did not fit the capacity.
    pub fn restore(
        &mut self,
        capacity: usize,
        examples: Vec<TrainingExample>,
        seen: &BTreeMap<Option<String>, u64>,
    ) -> Vec<ExampleId> {
        self.capacity = capacity;
        self.pools.clear();
        let mut held = std::collections::HashSet::new();
        for example in examples {
            if held.insert(example.id) {
                let (kept, _) = self.pools.entry(pool_of(&example.expected_output)).or_default();
                Arc::make_mut(kept).push(Arc::new(example));
            }
        }
        for (key, (kept, offered)) in self.pools.iter_mut() {
            *offered = seen.get(key).copied().unwrap_or(0).max(kept.len() as u64);
        }
        self.fit_capacity()
    }

    /// Offers learned examples to the memory; returns what changed. An
    /// example already remembered is not offered again.
    ///
    /// The change is followed as examples join and leave, not found by
    /// comparing the memory before and after: with updates of one example
    /// that comparison (two sets of the whole memory) cost more than the
    /// rest of keeping it.
    pub fn remember(&mut self, examples: &[TrainingExample]) -> ReplayChange {
        if self.capacity == 0 {
            return ReplayChange::default();
        }
        let mut joined = Vec::new();
        let mut left = Vec::new();
        for example in examples {
            let key = pool_of(&example.expected_output);
            let share = self.capacity / (self.pools.len() + usize::from(!self.pools.contains_key(&key))).max(1);
            let (kept, seen) = self.pools.entry(key).or_default();
            if kept.iter().any(|e| e.id == example.id) {
                continue;
            }
            *seen += 1;
            if kept.len() < share.max(1) {
                Arc::make_mut(kept).push(Arc::new(example.clone()));
                joined.push(example.id);
            } else {
                let slot = self.rng.next_u64() % *seen;
                if (slot as usize) < kept.len() {
                    let kept = Arc::make_mut(kept);
                    left.push(kept[slot as usize].id);
                    kept[slot as usize] = Arc::new(example.clone());
                    joined.push(example.id);
                }
            }
        }
        left.extend(self.trim());
        // Each id is remembered at most once, so the times it joined less
        // the times it left is 1 for a new member, -1 for one gone, and 0
        // for one that joined and left in this call (or left and came back).
        let mut net: BTreeMap<ExampleId, i32> = BTreeMap::new();
        for id in joined {
            *net.entry(id).or_default() += 1;
        }
        for id in left {
            *net.entry(id).or_default() -= 1;
        }
        let mut change = ReplayChange::default();
        for (id, n) in net {
            match n {
                1 => change.added.push(id),
                -1 => change.removed.push(id),
                _ => {}
            }
        }
        change
    }

    /// Keeps every pool within an equal share of the capacity, so a label
    /// that appears late still gets its place; returns the ids dropped.
    fn trim(&mut self) -> Vec<ExampleId> {
        let share = (self.capacity / self.pools.len().max(1)).max(1);
        let mut dropped = Vec::new();
        for (kept, _) in self.pools.values_mut() {
            while kept.len() > share {
                let i = (self.rng.next_u64() % kept.len() as u64) as usize;
                dropped.push(Arc::make_mut(kept).swap_remove(i).id);
            }
        }
        dropped
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
        let pools: Vec<&[Arc<TrainingExample>]> = self.pools.values().map(|(kept, _)| kept.as_slice()).collect();
        let mut start = (self.rng.next_u64() % pools.len().max(1) as u64) as usize;
        let mut out = Vec::with_capacity(n);
        while out.len() < n && order.iter().any(|o| !o.is_empty()) {
            let p = start % pools.len();
            if let Some(i) = order[p].pop() {
                out.push(TrainingExample::clone(&pools[p][i]));
            }
            start += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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

    #[test]
    fn changes_name_what_joined_and_left_and_restore_brings_it_back() {
        let mut memory = ReplayMemory::new(4, 3);
        let first = memory.remember(&(0..4).map(|i| labelled(i, "a")).collect::<Vec<_>>());
        assert_eq!(first.added.len(), 4);
        assert!(first.removed.is_empty());
        let mut members: HashSet<ExampleId> = memory.ids().into_iter().collect();
        for round in 0..20u64 {
            let batch: Vec<TrainingExample> = (0..3).map(|i| labelled(100 + round * 3 + i, "a")).collect();
            let change = memory.remember(&batch);
            for id in &change.removed {
                assert!(members.remove(id), "removed {id} was a member");
            }
            for id in &change.added {
                assert!(members.insert(*id), "added {id} was not a member");
            }
            assert_eq!(members, memory.ids().into_iter().collect::<HashSet<_>>());
        }
        let kept: Vec<TrainingExample> = memory.sample(4);
        let mut restored = ReplayMemory::new(4, 9);
        let seen = BTreeMap::from([(Some("a".to_string()), 64)]);
        assert!(restored.restore(4, kept, &seen).is_empty());
        assert_eq!(restored.ids().into_iter().collect::<HashSet<_>>(), members);
        // 64 offered so far: a new example joins with the odds 4/65, not 1.
        let joined = (0..200u64)
            .filter(|i| {
                let mut trial = ReplayMemory::new(4, *i);
                trial.restore(4, restored.sample(4), &seen);
                !trial.remember(&[labelled(1000 + i, "a")]).added.is_empty()
            })
            .count();
        assert!(joined < 40, "{joined} of 200 joined");
    }

    #[test]
    fn a_copy_changes_alone_and_an_example_is_remembered_once() {
        let mut memory = ReplayMemory::new(6, 5);
        memory.remember(&(0..3).map(|i| labelled(i, "a")).collect::<Vec<_>>());
        memory.remember(&(3..6).map(|i| labelled(i, "b")).collect::<Vec<_>>());
        let before: HashSet<ExampleId> = memory.ids().into_iter().collect();

        // The copy shares the pools until it changes one.
        let mut copy = memory.clone();
        let change = copy.remember(&[labelled(0, "a"), labelled(100, "b")]);
        assert!(!change.added.contains(&ExampleId(0)), "a member is not added again");
        assert_eq!(copy.len(), 6);
        assert_eq!(
            memory.ids().into_iter().collect::<HashSet<_>>(),
            before,
            "the original is unchanged"
        );
        let after: HashSet<ExampleId> = copy.ids().into_iter().collect();
        let added: HashSet<ExampleId> = after.difference(&before).copied().collect();
        let removed: HashSet<ExampleId> = before.difference(&after).copied().collect();
        assert_eq!(change.added.iter().copied().collect::<HashSet<_>>(), added);
        assert_eq!(change.removed.iter().copied().collect::<HashSet<_>>(), removed);

        // Offered twice in one batch: remembered once.
        let mut memory = ReplayMemory::new(6, 5);
        let change = memory.remember(&[labelled(7, "a"), labelled(7, "a")]);
        assert_eq!((memory.len(), change.added), (1, vec![ExampleId(7)]));
    }

    #[test]
    fn an_example_that_joins_and_leaves_in_one_call_or_comes_back_is_no_change() {
        // Capacity 1: of a batch of three, at most one stays; the others
        // joined and left within the call, so the store hears nothing of them.
        let mut memory = ReplayMemory::new(1, 2);
        let change = memory.remember(&(0..3).map(|i| labelled(i, "a")).collect::<Vec<_>>());
        let held = memory.ids();
        assert_eq!(held.len(), 1);
        assert_eq!(change.added, held);
        assert!(change.removed.is_empty());

        // Shrunk from 4 to 1, then the same batch offers all four again: an
        // example the shrink dropped can come back, and was remembered
        // before and after. Seeds are tried until that happens.
        let four: Vec<TrainingExample> = (10..14).map(|i| labelled(i, "a")).collect();
        let came_back = (0..100u64).any(|seed| {
            let mut memory = ReplayMemory::new(4, seed);
            memory.remember(&four);
            let dropped = memory.clone().set_capacity(1);
            let change = memory.resize_and_remember(1, &four);
            let after: HashSet<ExampleId> = memory.ids().into_iter().collect();
            assert!(change.added.is_empty(), "all four were remembered before");
            for id in (10..14).map(ExampleId) {
                assert_eq!(change.removed.contains(&id), !after.contains(&id), "{id:?}");
            }
            dropped.iter().any(|id| after.contains(id))
        });
        assert!(came_back, "the case under test: a dropped example came back");
    }
}
