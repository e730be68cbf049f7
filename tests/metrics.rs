//! The metrics text, read by a real Prometheus text parser: every family
//! documented, and the values equal to what happened (examples, updates,
//! predictions, the store).

mod common;

use std::time::Duration;

use common::{example, small_config};
use onthefly::{Config, Coordinator};
use prometheus_parse::{Scrape, Value};

fn scrape(c: &Coordinator) -> Scrape {
    let text = c.metrics_text();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// The value of the sample `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {metric} {labels:?}"));
    match &sample.value {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("{metric} is {other:?}"),
    }
}

#[test]
fn the_metrics_text_parses_and_counts_what_happened() {
    let c = Coordinator::new(Config {
        update_threshold: 20,
        held_out_fraction: 0.2,
        ..small_config()
    })
    .unwrap();
    for i in 0..100 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    let inputs = ["article number 3 about bbc things", "article number 4 about cnn things"];
    for input in inputs {
        c.predict("scout", "news", input).unwrap();
    }
    c.predict_batch("scout", "news", &inputs).unwrap();
    c.flush(Duration::from_secs(30)).unwrap();

    let status = c.get_training_status();
    let scout = &status.agents["scout"];
    let s = scrape(&c);
    for family in [
        "onthefly_examples_received_total",
        "onthefly_examples",
        "onthefly_updates_total",
        "onthefly_update_duration_seconds",
        "onthefly_prediction_duration_seconds",
        "onthefly_predictions_total",
        "onthefly_store_backlog",
    ] {
        assert!(s.docs.contains_key(family), "no HELP for {family}");
    }
    let agent = [("agent", "scout")];
    assert_eq!(value(&s, "onthefly_examples_received_total", &agent), 100.0);
    let states = [
        "buffered",
        "held_out",
        "trained",
        "evicted",
        "discarded",
        "quarantined",
        "failed",
        "kept",
    ];
    let in_states: f64 = states
        .iter()
        .map(|state| value(&s, "onthefly_examples", &[("agent", "scout"), ("state", state)]))
        .sum();
    assert_eq!(in_states, 100.0, "each example in one state");
    assert_eq!(
        value(&s, "onthefly_examples", &[("agent", "scout"), ("state", "trained")]),
        scout.examples_trained as f64
    );
    let accepted = value(
        &s,
        "onthefly_updates_total",
        &[("agent", "scout"), ("outcome", "accepted")],
    );
    let rolled_back = value(
        &s,
        "onthefly_updates_total",
        &[("agent", "scout"), ("outcome", "rolled_back")],
    );
    assert_eq!(accepted, scout.updates_accepted as f64);
    assert!(accepted >= 1.0);
    let task = [("agent", "scout"), ("task", "news")];
    // Every update (kept or rolled back) is in the histogram, in order of its buckets.
    let updates = value(&s, "onthefly_update_duration_seconds_count", &task);
    assert_eq!(updates, accepted + rolled_back);
    let buckets = s
        .samples
        .iter()
        .find_map(|x| match &x.value {
            Value::Histogram(b) if x.metric == "onthefly_update_duration_seconds" => Some(b.clone()),
            _ => None,
        })
        .expect("the update histogram's buckets");
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative buckets"
    );
    assert_eq!(buckets.last().unwrap().count, updates, "+Inf holds every update");
    // Two single calls and one batch of two.
    assert_eq!(value(&s, "onthefly_predictions_total", &task), 4.0);
    assert_eq!(value(&s, "onthefly_prediction_duration_seconds_count", &task), 3.0);
    assert_eq!(
        value(&s, "onthefly_model_version", &task),
        scout.models["news"].version as f64
    );
    let store = status.store.unwrap();
    let backend = [("backend", "sqlite")];
    assert_eq!(value(&s, "onthefly_store_backlog", &backend), 0.0);
    assert_eq!(
        value(&s, "onthefly_store_operations_durable_total", &backend),
        store.durable as f64
    );
    assert_eq!(value(&s, "onthefly_store_connected", &backend), 1.0);
    c.shutdown();
}
