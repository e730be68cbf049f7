//! Predictions are served by the live model while a copy trains: a thread
//! predicting in a loop during a long update waits at most for the swap.
//! (Wall-clock figures are reported, and compared only as a ratio to the
//! update's own duration measured in the same run.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
                let started = Instant::now();
                let p = c.predict("scout", "news", &text).unwrap();
                latencies.push((started, started.elapsed(), p.model_version));
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
    let longest = latencies.iter().map(|l| l.1).max().unwrap();
    let served_old = latencies.iter().filter(|l| l.2 == 1).count();
    eprintln!(
        "update of {} examples took {:?}; {} predictions meanwhile, longest {:?}",
        record.examples_trained,
        update,
        latencies.len(),
        longest
    );
    assert!(served_old > 10, "the old version kept answering while the copy trained");
    assert!(
        longest * 10 < update,
        "a prediction waited {longest:?}, over a tenth of the update's {update:?}"
    );
}
