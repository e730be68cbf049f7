//! What does the priority buffer cost against the original's `deque(maxlen)`?
//!
//! Both sides insert into a full buffer of the same capacity (every insert
//! evicts), then take a batch of 50. The baseline is a `VecDeque` that drops the
//! oldest element, as the original did whatever its priority; the ratio between
//! the two is the price of never evicting a correction and of training on the
//! most valuable examples.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use onthefly::buffer::PriorityBuffer;
use onthefly::{Priority, Target, TrainingExample};

fn example(id: u64) -> TrainingExample {
    TrainingExample {
        uncertainty_score: (id % 97) as f64 / 97.0,
        importance_score: (id % 89) as f64 / 89.0,
        correction_priority: Priority::try_from((id % 4) as u8).unwrap(),
        ..TrainingExample::new(
            id,
            "scout",
            "news",
            format!("article {id}"),
            Target::Label("bbc".into()),
        )
    }
}

/// A priority buffer and the original's deque, both full with `capacity` examples.
fn filled(capacity: u64) -> (PriorityBuffer, VecDeque<TrainingExample>) {
    let mut buffer = PriorityBuffer::new(capacity as usize);
    let mut deque = VecDeque::with_capacity(capacity as usize);
    for id in 0..capacity {
        buffer.insert(example(id));
        deque.push_back(example(id));
    }
    (buffer, deque)
}

fn insert_into_full_buffer(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert_full");
    for capacity in [1_000u64, 100_000] {
        let (mut buffer, mut deque) = filled(capacity);
        let mut next = capacity;
        group.bench_with_input(BenchmarkId::new("priority_buffer", capacity), &capacity, |b, _| {
            b.iter(|| {
                next += 1;
                black_box(buffer.insert(example(next)));
            })
        });
        let mut next = capacity;
        group.bench_with_input(BenchmarkId::new("deque_baseline", capacity), &capacity, |b, _| {
            b.iter(|| {
                next += 1;
                if deque.len() == capacity as usize {
                    black_box(deque.pop_front());
                }
                deque.push_back(example(next));
            })
        });
    }
    group.finish();
}

fn take_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("take_batch_50");
    for capacity in [1_000u64, 100_000] {
        let (buffer, deque) = filled(capacity);
        group.bench_with_input(BenchmarkId::new("priority_buffer", capacity), &capacity, |b, _| {
            b.iter(|| black_box(buffer.best(50)))
        });
        group.bench_with_input(BenchmarkId::new("deque_baseline", capacity), &capacity, |b, _| {
            b.iter(|| black_box(deque.iter().take(50).cloned().collect::<Vec<_>>()))
        });
    }
    group.finish();
}

criterion_group!(benches, insert_into_full_buffer, take_batch);
criterion_main!(benches);
