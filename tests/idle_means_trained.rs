//! `wait_for_idle` returns only when nothing the trainer could take back is
//! left: a caller that streams as fast as it can, with the store on (the
//! default) and a buffer far smaller than the stream, finds at least 99 % of
//! what it handed in trained when the wait returns (the rest held out to
//! judge updates), in every run. The periodic check is off, so no timer can
//! finish the work for the wait.

mod common;

use std::time::Duration;

use common::db::PrivateCluster;
use common::{news, noisy};
use onthefly::{Config, Coordinator, DatabaseConfig, NewExample, StoreConfig, Target};

/// Streams the news articles `rounds` times over (each copy its own text).
fn stream(c: &Coordinator, articles: &[news::Article], rounds: usize) {
    for round in 0..rounds {
        for a in articles {
            c.add_training_example(NewExample::new(
                "scout",
                "news",
                format!("{} {round}", a.text),
                Target::Label(a.outlet.clone()),
            ))
            .unwrap();
        }
    }
}

/// Asserts that at least 99 % of what was not held out is trained and
/// returns how many were.
fn assert_trained(c: &Coordinator, expected: usize, run: &str) -> u64 {
    let agent = c.get_training_status().agents["scout"].clone();
    let settled = agent.examples_trained;
    let to_train = agent.examples_received - agent.examples_held_out;
    println!(
        "{run}: {} received, {} held out, {} trained, {} quarantined, {} buffered, {} evicted, {} taken back",
        agent.examples_received,
        agent.examples_held_out,
        agent.examples_trained,
        agent.examples_quarantined,
        agent.buffer_size,
        agent.examples_evicted,
        agent.examples_taken_back
    );
    assert_eq!(agent.examples_received, expected as u64, "{run}");
    assert!(
        settled as f64 >= 0.99 * to_train as f64,
        "{run}: {settled} of {to_train} trained when wait_for_idle returned: {agent:?}"
    );
    agent.examples_trained
}

#[test]
fn a_fast_callers_stream_is_trained_when_wait_for_idle_returns() {
    let articles = news::load_articles();
    for run in 0..3 {
        let c = Coordinator::new(Config {
            device: onthefly::DeviceChoice::Cpu,
            check_interval_ms: 3_600_000,
            data_dir: common::fresh_data_dir(),
            ..Config::default()
        })
        .unwrap();
        // 11,469 examples, a burst eleven times the buffer.
        stream(&c, &articles, 3);
        assert!(
            c.wait_for_idle(Duration::from_secs(600)),
            "run {run}: not idle after 10 minutes"
        );
        assert_trained(&c, 3 * articles.len(), &format!("run {run}"));
        c.shutdown();
    }
}

/// The database goes away right after the burst, while evicted examples
/// wait in it, and comes back 3 s later: every attempt to take them back
/// in between fails. `wait_for_idle` keeps at it until they are back and
/// trained, instead of returning with most of the stream untrained.
#[test]
fn wait_for_idle_outlasts_a_store_that_cannot_give_evicted_examples_back() {
    let articles = news::load_articles();
    let cluster = PrivateCluster::start();
    let c = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        check_interval_ms: 3_600_000,
        data_dir: common::fresh_data_dir(),
        database: Some(DatabaseConfig {
            url: cluster.url(),
            pool_size: 4,
        }),
        store: StoreConfig {
            retry_max_ms: 500,
            connect_timeout_ms: 1_000,
            ..StoreConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    stream(&c, &articles, 1);
    cluster.stop();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            cluster.resume();
        });
        assert!(c.wait_for_idle(Duration::from_secs(600)), "not idle after 10 minutes");
    });
    assert_trained(&c, articles.len(), "outage");
    c.shutdown();
}

/// Issue 28, part 4, on short texts and on a second stream: the fast
/// caller of `examples/fast_caller.rs` (the VADER snippets but the tweets,
/// and the news articles, each in a fixed-seed shuffle, every label right,
/// the last fifth set aside unseen) with the library's defaults, the store
/// on. In every run at least 99 % of what was not held out is trained (the
/// catch-up after the stream used to be judged on one frozen window, and
/// three identical rejections quarantined 256 or 512 correct snippets in 2
/// runs of 3), and the final model is reproducible: every run's accuracy
/// on the unseen part within `SPREAD` of the runs' mean. On an idle machine
/// every run is within a point of the mean (12 runs each, `fast_caller
/// --runs 12 [--data news]`: VADER 0.6511–0.6693, mean 0.661, news
/// 0.8288–0.8392); while `make test` runs other tests beside it, the caller
/// and the trainer race differently and the runs spread wider (news
/// 0.8157–0.8405 in one run of this test), so the bound here is two points.
const SPREAD: f64 = 0.02;

#[test]
fn a_fast_callers_short_texts_are_trained_and_the_model_is_reproducible() {
    for data in ["vader:rest", "news"] {
        let items = noisy::stream(&noisy::Spec::new(data, "shuffled", 0.0));
        let mut accuracies = Vec::new();
        for run in 0..5 {
            let (outcome, agent) = noisy::run_fast(
                &items,
                Config {
                    device: onthefly::DeviceChoice::Cpu,
                    check_interval_ms: 3_600_000,
                    data_dir: common::fresh_data_dir(),
                    ..Config::default()
                },
            );
            let to_train = agent.examples_received - agent.examples_held_out;
            println!(
                "{data} run {run}: {} of {to_train} trained, {} quarantined, {} rolled back; unseen accuracy {:.4}",
                agent.examples_trained, agent.examples_quarantined, agent.updates_rolled_back, outcome.unseen_accuracy
            );
            assert_eq!(agent.examples_received as usize, outcome.texts, "{data} run {run}");
            assert!(
                agent.examples_trained as f64 >= 0.99 * to_train as f64,
                "{data} run {run}: {} of {to_train} trained when wait_for_idle returned: {agent:?}",
                agent.examples_trained
            );
            accuracies.push(outcome.unseen_accuracy);
        }
        let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
        assert!(
            accuracies.iter().all(|a| (a - mean).abs() <= SPREAD),
            "{data}: unseen accuracy over 5 runs {accuracies:?}, not all within {SPREAD} of their mean {mean:.4}"
        );
    }
}
