//! The bounded priority buffer: ordering, eviction, removal by id.

mod common;

use common::buffered;
use onthefly::buffer::{Insert, PriorityBuffer};
use onthefly::{ExampleId, Priority};

fn ids(examples: &[onthefly::TrainingExample]) -> Vec<u64> {
    examples.iter().map(|e| e.id.0).collect()
}

#[test]
fn best_orders_by_priority_then_importance_then_uncertainty_then_recency() {
    let mut buffer = PriorityBuffer::new(10);
    buffer.insert(buffered(1, Priority::Low, 0.9, 0.9));
    buffer.insert(buffered(2, Priority::High, 0.1, 0.1));
    buffer.insert(buffered(3, Priority::Low, 0.9, 0.2));
    buffer.insert(buffered(4, Priority::Medium, 0.5, 0.5));
    buffer.insert(buffered(5, Priority::Low, 0.9, 0.9)); // same scores as 1, but newer
    buffer.insert(buffered(6, Priority::Critical, 0.0, 0.0));
    assert_eq!(ids(&buffer.best(10)), [6, 2, 4, 5, 1, 3]);
    assert_eq!(ids(&buffer.best(2)), [6, 2]);
    assert_eq!(buffer.len(), 6, "best() copies, it does not remove");
    assert_eq!(buffer.max_priority(), Some(Priority::Critical));
}

#[test]
fn full_buffer_evicts_the_least_valuable() {
    let mut buffer = PriorityBuffer::new(3);
    buffer.insert(buffered(1, Priority::Low, 0.5, 0.5));
    buffer.insert(buffered(2, Priority::Low, 0.2, 0.5));
    buffer.insert(buffered(3, Priority::Low, 0.8, 0.5));
    match buffer.insert(buffered(4, Priority::Low, 0.6, 0.5)) {
        Insert::BufferedEvicting(evicted) => assert_eq!(evicted.id, ExampleId(2)),
        other => panic!("expected eviction of example 2, got {other:?}"),
    }
    assert_eq!(ids(&buffer.best(3)), [3, 4, 1]);
    assert!(!buffer.contains(ExampleId(2)));
}

#[test]
fn a_less_valuable_newcomer_is_rejected_when_full() {
    let mut buffer = PriorityBuffer::new(2);
    buffer.insert(buffered(1, Priority::Medium, 0.5, 0.5));
    buffer.insert(buffered(2, Priority::Medium, 0.5, 0.5));
    match buffer.insert(buffered(3, Priority::Low, 1.0, 1.0)) {
        Insert::Rejected(rejected) => assert_eq!(rejected.id, ExampleId(3)),
        other => panic!("expected the newcomer to be rejected, got {other:?}"),
    }
    assert_eq!(ids(&buffer.best(2)), [2, 1]);
}

#[test]
fn corrections_are_never_evicted_for_lower_priority_examples() {
    let mut buffer = PriorityBuffer::new(5);
    for id in 1..=5 {
        buffer.insert(buffered(id, Priority::High, 0.0, 0.0));
    }
    for id in 6..=100 {
        let outcome = buffer.insert(buffered(id, Priority::Medium, 1.0, 1.0));
        assert!(matches!(outcome, Insert::Rejected(_)), "example {id}: {outcome:?}");
    }
    assert_eq!(ids(&buffer.best(5)), [5, 4, 3, 2, 1]);
    // A newer correction of the same priority may replace the oldest one.
    let outcome = buffer.insert(buffered(101, Priority::High, 0.0, 0.0));
    assert!(matches!(outcome, Insert::BufferedEvicting(e) if e.id == ExampleId(1)));
    // A critical correction outranks them all.
    let outcome = buffer.insert(buffered(102, Priority::Critical, 0.0, 0.0));
    assert!(matches!(outcome, Insert::BufferedEvicting(e) if e.id == ExampleId(2)));
    assert_eq!(ids(&buffer.best(1)), [102]);
}

#[test]
fn remove_takes_out_exactly_the_given_ids() {
    let mut buffer = PriorityBuffer::new(100);
    for id in 1..=10 {
        buffer.insert(buffered(id, Priority::Low, id as f64 / 10.0, 0.5));
    }
    let batch = buffer.best(4);
    assert_eq!(ids(&batch), [10, 9, 8, 7]);
    // Newer, more valuable examples arrive while the batch trains.
    buffer.insert(buffered(11, Priority::Low, 1.0, 1.0));
    buffer.insert(buffered(12, Priority::High, 0.0, 0.0));
    let batch_ids: Vec<ExampleId> = batch.iter().map(|e| e.id).collect();
    assert_eq!(buffer.remove(&batch_ids), 4);
    assert_eq!(buffer.len(), 8);
    for id in [1, 2, 3, 4, 5, 6, 11, 12] {
        assert!(buffer.contains(ExampleId(id)), "example {id} must stay");
    }
    // Ids already gone are skipped.
    assert_eq!(buffer.remove(&batch_ids), 0);
    assert_eq!(buffer.remove(&[ExampleId(999)]), 0);
}

#[test]
fn reinserting_an_id_replaces_it_and_oldest_timestamp_is_tracked() {
    let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let mut buffer = PriorityBuffer::new(3);
    assert_eq!(buffer.oldest_timestamp(), None);
    // The oldest example is neither the first inserted nor the least valuable.
    for (id, secs, importance) in [(1, 500, 0.1), (2, 100, 0.9), (3, 300, 0.5)] {
        let mut e = buffered(id, Priority::Low, importance, 0.1);
        e.timestamp = at(secs);
        buffer.insert(e);
    }
    assert_eq!(buffer.oldest_timestamp(), Some(at(100)));
    buffer.remove(&[ExampleId(2)]);
    assert_eq!(buffer.oldest_timestamp(), Some(at(300)));

    buffer.insert(buffered(1, Priority::High, 0.1, 0.1));
    assert_eq!(buffer.len(), 2, "the same id replaces its buffered copy");
    assert_eq!(ids(&buffer.best(1)), [1]);
    assert_eq!(PriorityBuffer::new(0).capacity(), 1);
}
