//! Predictions are served by the live model while a copy trains: a thread
//! predicting in a loop during a long update gets answers, from the old
//! version, that start and finish inside the update. The mechanism is
//! asserted, not a duration (wall-clock figures are only reported: a busy
//! machine must not fail the test).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::news;
use onthefly::{Config, Coordinator, NewExample, Priority, Target};

#[test]
fn predictions_never_wait_for_training() {
    let articles = news::load_articles();
    let c = Arc::new(
        Coordinator::new(Config {
            device: onthefly::DeviceChoice::Cpu,
            check_interval_ms: 3_600_000,
            // Checkpoints are tested on their own; here they would only add disk time.
            checkpoints_kept: 0,
            data_dir: common::fresh_data_dir(),
            update_threshold: 1000,
            max_examples_per_update: 1000,
            ..Config::default()
        })
        .unwrap(),
    );
    let add = |range: std::ops::Range<usize>| {
        for a in &articles[range] {
            c.add_training_example(
                NewExample::new("scout", "news", a.text.clone(), Target::Label(a.outlet.clone()))
                    .with_priority(Priority::Medium),
            )
            .unwrap();
        }
        c.force_update_agent("scout").unwrap();
    };
    add(0..200);
    assert!(c.wait_for_idle(Duration::from_secs(120)));

    let stop = Arc::new(AtomicBool::new(false));
    let predictor = {
        let (c, stop, text) = (Arc::clone(&c), Arc::clone(&stop), articles[3000].text.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let (at, started) = (SystemTime::now(), Instant::now());
                let p = c.predict("scout", "news", &text).unwrap();
                latencies.push((at, started.elapsed(), p.model_version, SystemTime::now()));
            }
            latencies
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    add(200..1200); // one long update of about 800 examples
    assert!(c.wait_for_idle(Duration::from_secs(300)));
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Release);
    let latencies = predictor.join().unwrap();

    let record = c.performance_history().last().unwrap().clone();
    assert!(!record.rollback_triggered || record.model_version == 1);
    let update = Duration::from_millis(record.duration_ms);
    let update_end = UNIX_EPOCH + Duration::from_millis(record.update_timestamp_ms);
    let update_start = update_end - update;
    // Answered from start to finish while the copy trained.
    let during: Vec<_> = latencies
        .iter()
        .filter(|l| l.0 >= update_start && l.3 <= update_end)
        .collect();
    let longest = latencies.iter().map(|l| l.1).max().unwrap();
    eprintln!(
        "update of {} examples took {:?}; {} predictions, {} of them inside the update; longest {:?}",
        record.examples_trained,
        update,
        latencies.len(),
        during.len(),
        longest
    );
    assert!(
        during.len() > 10,
        "only {} predictions were answered while the update ran",
        during.len()
    );
    assert!(
        during.iter().all(|l| l.2 == 1),
        "inside the update, the old version answers"
    );
}
