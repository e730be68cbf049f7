//! The bounded priority buffer of one agent.
//!
//! Examples are ordered by value: correction priority first, then importance,
//! then uncertainty, then recency (a newer example is worth more). When the
//! buffer is full the least valuable example leaves, which may be the one just
//! offered; because priority comes first, a correction of priority ≥ 2 never
//! leaves in favour of an example of lower priority. Training takes the most
//! valuable examples and removes exactly those, by id, when it is done.
//!
//! All operations are O(log n) except [`PriorityBuffer::oldest_timestamp`], which
//! scans (it runs once per background check).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use crate::base::{ExampleId, Priority, TrainingExample};

/// The sort key of an example: larger is more valuable.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    priority: Priority,
    importance: f64,
    uncertainty: f64,
    id: ExampleId,
}

impl Value {
    fn of(example: &TrainingExample) -> Value {
        Value {
            priority: example.correction_priority,
            importance: example.importance_score,
            uncertainty: example.uncertainty_score,
            id: example.id,
        }
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(self.importance.total_cmp(&other.importance))
            .then(self.uncertainty.total_cmp(&other.uncertainty))
            .then(self.id.cmp(&other.id))
    }
}

/// What happened to an example offered to a full buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Insert {
    /// It was buffered and nothing left.
    Buffered,
    /// It was buffered and this less valuable example left.
    BufferedEvicting(TrainingExample),
    /// It was the least valuable one and was not buffered.
    Rejected(TrainingExample),
}

/// A bounded buffer of examples, ordered by value.
#[derive(Debug)]
pub struct PriorityBuffer {
    capacity: usize,
    by_value: BTreeMap<Value, TrainingExample>,
    value_of: HashMap<ExampleId, Value>,
}

impl PriorityBuffer {
    /// An empty buffer holding at most `capacity` examples (at least one).
    pub fn new(capacity: usize) -> PriorityBuffer {
        PriorityBuffer {
            capacity: capacity.max(1),
            by_value: BTreeMap::new(),
            value_of: HashMap::new(),
        }
    }

    /// Examples buffered.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// The most examples it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Offers an example. An id already buffered replaces the buffered copy.
    pub fn insert(&mut self, example: TrainingExample) -> Insert {
        if let Some(old) = self.value_of.remove(&example.id) {
            self.by_value.remove(&old);
        }
        let value = Value::of(&example);
        if self.by_value.len() < self.capacity {
            self.put(value, example);
            return Insert::Buffered;
        }
        let least = *self.by_value.keys().next().expect("a full buffer is not empty");
        if value < least {
            return Insert::Rejected(example);
        }
        let evicted = self.take(&least).expect("the least key is present");
        self.put(value, example);
        Insert::BufferedEvicting(evicted)
    }

    /// Copies of the `n` most valuable examples, most valuable first. They stay
    /// buffered until [`PriorityBuffer::remove`] takes them out.
    pub fn best(&self, n: usize) -> Vec<TrainingExample> {
        self.best_where(n, |_| true)
    }

    /// The `n` most valuable examples among those that pass `keep`.
    pub fn best_where(&self, n: usize, keep: impl Fn(&TrainingExample) -> bool) -> Vec<TrainingExample> {
        self.by_value
            .values()
            .rev()
            .filter(|e| keep(e))
            .take(n)
            .cloned()
            .collect()
    }

    /// Removes the examples with these ids; ids not buffered (evicted meanwhile)
    /// are skipped. Returns how many were removed.
    pub fn remove(&mut self, ids: &[ExampleId]) -> usize {
        ids.iter()
            .filter(|id| match self.value_of.remove(id) {
                Some(value) => self.by_value.remove(&value).is_some(),
                None => false,
            })
            .count()
    }

    /// Whether an example with this id is buffered.
    pub fn contains(&self, id: ExampleId) -> bool {
        self.value_of.contains_key(&id)
    }

    /// The highest priority buffered, if any.
    pub fn max_priority(&self) -> Option<Priority> {
        self.by_value.keys().next_back().map(|v| v.priority)
    }

    /// When the oldest buffered example was accepted.
    pub fn oldest_timestamp(&self) -> Option<SystemTime> {
        self.by_value.values().map(|e| e.timestamp).min()
    }

    /// All buffered examples, least valuable first.
    pub fn iter(&self) -> impl Iterator<Item = &TrainingExample> {
        self.by_value.values()
    }

    fn put(&mut self, value: Value, example: TrainingExample) {
        self.value_of.insert(example.id, value);
        self.by_value.insert(value, example);
    }

    fn take(&mut self, value: &Value) -> Option<TrainingExample> {
        let example = self.by_value.remove(value)?;
        self.value_of.remove(&example.id);
        Some(example)
    }
}
