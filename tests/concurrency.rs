//! Many producers at once, with training running: exact counts, unique ids, no
//! deadlock.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{label, small_config};
use onthefly::{Config, Coordinator, NewExample, Placement, Priority};

const THREADS: usize = 8;
const PER_THREAD: usize = 10_000;
const AGENTS: [&str; 4] = ["scout", "analyst", "critic", "fact_checker"];

#[test]
fn eight_producers_times_ten_thousand_examples_are_all_accounted_for() {
    let coordinator = Arc::new(
        Coordinator::new(Config {
            update_threshold: 500,
            max_buffer_size: 2_000,
            held_out_fraction: 0.2,
            max_examples_per_update: 256,
            max_concurrent_updates: 2,
            ..small_config()
        })
        .unwrap(),
    );

    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    for t in 0..THREADS {
        let (c, done) = (Arc::clone(&coordinator), done_tx.clone());
        std::thread::spawn(move || {
            let mut receipts = Vec::with_capacity(PER_THREAD);
            for i in 0..PER_THREAD {
                let agent = AGENTS[(t + i) % AGENTS.len()];
                let outlet = ["bbc", "cnn", "rte"][i % 3];
                let mut example = NewExample::new(
                    agent,
                    "news",
                    format!("thread {t} item {i} {outlet} report"),
                    label(outlet),
                )
                .with_importance((i % 10) as f64 / 10.0);
                if i % 1000 == 0 {
                    example = example.with_priority(Priority::High);
                }
                receipts.push(c.add_training_example(example).expect("valid example"));
            }
            done.send(receipts).unwrap();
        });
    }
    drop(done_tx);

    // While producers and updates run, every status read adds up.
    for _ in 0..50 {
        for (name, a) in coordinator.get_training_status().agents {
            let placed = a.buffer_size as u64
                + a.examples_held_out
                + a.examples_trained
                + a.examples_evicted
                + a.examples_discarded
                + a.examples_quarantined
                + a.examples_failed
                + a.examples_kept;
            assert_eq!(a.examples_received, placed, "{name} mid-run: {a:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    let mut receipts = Vec::new();
    for _ in 0..THREADS {
        // A deadlock fails the test instead of hanging it.
        let batch = done_rx
            .recv_timeout(Duration::from_secs(300))
            .expect("a producer did not finish: deadlock?");
        receipts.extend(batch);
    }
    assert_eq!(receipts.len(), THREADS * PER_THREAD);
    let ids: HashSet<u64> = receipts.iter().map(|r| r.id.0).collect();
    assert_eq!(ids.len(), THREADS * PER_THREAD, "every example has its own id");

    assert!(
        coordinator.wait_for_idle(Duration::from_secs(300)),
        "updates did not finish"
    );
    let status = coordinator.get_training_status();
    let held = receipts.iter().filter(|r| r.placement == Placement::HeldOut).count() as u64;
    let not_buffered = receipts
        .iter()
        .filter(|r| r.placement == Placement::NotBuffered)
        .count() as u64;

    let mut totals = [0u64; 8];
    for name in AGENTS {
        let a = &status.agents[name];
        assert_eq!(
            a.examples_received,
            (THREADS * PER_THREAD / AGENTS.len()) as u64,
            "{name}"
        );
        assert!(a.buffer_size <= a.buffer_capacity);
        assert_eq!(a.updates_failed, 0, "{name}: {:?}", a.last_error);
        // Every accepted example is in exactly one place.
        assert_eq!(
            a.examples_received,
            a.buffer_size as u64
                + a.examples_held_out
                + a.examples_trained
                + a.examples_evicted
                + a.examples_discarded
                + a.examples_quarantined
                + a.examples_failed
                + a.examples_kept,
            "{name}: {a:?}"
        );
        assert!(a.updates_accepted > 0, "{name} never trained");
        for (total, value) in totals.iter_mut().zip([
            a.examples_received,
            a.examples_held_out,
            a.examples_evicted,
            a.examples_trained,
            a.buffer_size as u64,
            a.examples_discarded,
            a.examples_failed,
            a.examples_taken_back,
        ]) {
            *total += value;
        }
    }
    assert_eq!(totals[0], (THREADS * PER_THREAD) as u64);
    // Held-out examples count as held out while they judge updates; the ones
    // pushed out of a full window were buffered for training.
    assert!(totals[1] <= held, "held-out receipts cover the counters");
    // An evicted example may have been taken back from the store (and
    // counted under its new state) once the trainer caught up.
    assert!(
        totals[2] + totals[7] >= not_buffered,
        "evictions include every example refused by a full buffer"
    );
    assert_eq!(status.total_examples as u64, totals[4]);
}
