//! Held-out evaluation decides: a batch of corrections with shuffled labels is
//! rejected and the live weights stay bit-identical; a clean batch is accepted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::news;
use onthefly::{Config, Coordinator, NewExample, Priority, Target};
use tch::Tensor;

const AGENT: &str = "scout";
const TASK: &str = "news_classification";

fn identical(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> bool {
    a.len() == b.len() && a.iter().all(|(name, t)| b.get(name).is_some_and(|u| t.equal(u)))
}

/// A coordinator on a folder of its own, on the CPU, updated only by what
/// the test hands in (the periodic check waits an hour) and without
/// checkpoints (tested on their own; here they would only add disk time).
fn coordinator(config: Config) -> Coordinator {
    Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        check_interval_ms: 3_600_000,
        checkpoints_kept: 0,
        data_dir: common::fresh_data_dir(),
        ..config
    })
    .unwrap()
}

/// Hands in `articles` with their true outlets, one at a time, waiting for
/// each update they trigger.
fn learn(c: &Coordinator, articles: &[news::Article]) {
    for article in articles {
        c.add_training_example(NewExample::new(
            AGENT,
            TASK,
            article.text.clone(),
            Target::Label(article.outlet.clone()),
        ))
        .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(120)));
    }
}

/// Wrong corrections in one batch. Since an article's step is bounded
/// (`full_step_ngrams`) rather than the same for every text, 60 rotated
/// corrections cost 3 points on the window (0.77 → 0.74, not significant
/// and kept) and nothing on the next 200 articles (0.745 with and without
/// them); 120 cost more and are what is rolled back here.
const WRONG: usize = 120;

#[test]
fn shuffled_corrections_roll_back_and_a_clean_batch_is_accepted() {
    let articles = news::load_articles();
    let c = coordinator(Config {
        // Above the corrections below, so they form one batch.
        update_threshold: 200,
        max_examples_per_update: 1000,
        ..Config::default()
    });
    // Learn the first 1,500 articles of the stream, one update at a time.
    learn(&c, &articles[..1500]);
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    let (version, before) = c.live_weights(AGENT, TASK).unwrap();
    let history = c.performance_history().len();
    let quarantined = c.get_training_status().agents[AGENT].examples_quarantined;

    // People "correct" 120 later articles to the wrong outlets (labels rotated),
    // at priority 1 so they form one batch, trained when forced.
    for (i, article) in articles[1500..1500 + WRONG].iter().enumerate() {
        c.add_user_correction(news::rotated_correction(AGENT, TASK, article, i))
            .unwrap();
    }
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    // The batch, then each half of it, rolled back: the harm is spread
    // through it. Rejected once, it stays buffered for another judgement
    // (a harmless batch rolled back on noise is not lost).
    let first_judgement = c.performance_history()[history..].to_vec();
    let scout = &c.get_training_status().agents[AGENT];
    assert_eq!(
        (scout.examples_quarantined - quarantined, scout.buffer_size),
        (0, WRONG)
    );
    // Judged twice more (here at once, by force; a stream judges them again
    // only beside fresh examples): rolled back each time, so all of it is
    // quarantined and nothing is trained.
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    let scout = &c.get_training_status().agents[AGENT];
    assert_eq!(
        (scout.examples_quarantined - quarantined, scout.buffer_size),
        (0, WRONG)
    );
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    let records = c.performance_history()[history..].to_vec();
    assert_eq!(first_judgement.len(), 3, "{first_judgement:?}");
    assert_eq!(records.len(), 9, "{records:?}");
    assert!(records.iter().all(|r| r.rollback_triggered), "{records:?}");
    for judgement in records.chunks(3) {
        assert_eq!(judgement[0].examples_trained, WRONG);
        assert_eq!(judgement[1].examples_trained + judgement[2].examples_trained, WRONG);
    }
    let record = &records[0];
    assert!(record.rollback_triggered, "the shuffled batch was accepted: {record:?}");
    let (b, a) = (record.accuracy_before.unwrap(), record.accuracy_after.unwrap());
    assert!(b - a > 0.05, "held-out accuracy {b} → {a}");
    let reason = record.rollback_reason.as_deref().unwrap();
    assert!(
        reason.contains("sign test") || reason.contains("rollback threshold"),
        "{reason}"
    );
    let (same_version, after) = c.live_weights(AGENT, TASK).unwrap();
    assert_eq!(same_version, version);
    assert!(identical(&before, &after), "the live weights changed after a rollback");
    let scout = &c.get_training_status().agents[AGENT];
    assert_eq!(
        (scout.examples_quarantined - quarantined, scout.buffer_size),
        (WRONG as u64, 0)
    );
    // A person is offered every quarantined example, with why, before any
    // prediction; a label for one becomes a correction.
    let wrong_texts: Vec<&str> = articles[1500..1500 + WRONG].iter().map(|a| a.text.as_str()).collect();
    let offered = c.next_for_review(AGENT, TASK, 1000).unwrap();
    assert_eq!(offered.len() as u64, scout.examples_quarantined);
    assert!(offered.iter().all(|item| item.quarantined.is_some()));
    let reason = offered[0].quarantined.as_deref().unwrap();
    assert!(reason.contains("rolled back"), "{reason}");
    let wrong_offered = offered
        .iter()
        .filter(|item| wrong_texts.contains(&item.input_text.as_str()))
        .count();
    assert_eq!(wrong_offered, WRONG);
    let first = offered
        .iter()
        .find(|item| wrong_texts.contains(&item.input_text.as_str()))
        .unwrap();
    let truth = &articles[1500 + wrong_texts.iter().position(|t| *t == first.input_text).unwrap()].outlet;
    c.label(first.review_id, Target::Label(truth.clone()), Some(Priority::Low))
        .unwrap();
    for item in &offered {
        c.skip(item.review_id).ok();
    }

    // The same articles with their true outlets are accepted.
    for article in &articles[1500..1500 + WRONG] {
        c.add_training_example(
            NewExample::new(AGENT, TASK, article.text.clone(), Target::Label(article.outlet.clone()))
                .with_priority(Priority::Medium),
        )
        .unwrap();
    }
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    let record = c.performance_history().last().unwrap().clone();
    assert!(
        !record.rollback_triggered,
        "the clean batch was rolled back: {record:?}"
    );
    let (new_version, changed) = c.live_weights(AGENT, TASK).unwrap();
    assert_eq!(new_version, version + 1);
    assert!(!identical(&before, &changed));

    // The quarantined examples wait for a person across a restart too.
    let config = c.config().clone();
    let still_quarantined = offered.len() - 1;
    let counted = c.get_training_status().agents[AGENT].clone();
    c.shutdown();
    drop(c);
    let restarted = Coordinator::new(config).unwrap();
    // The labelled one still counts as quarantined (as "reviewed" it left
    // the counts at a restart).
    let recounted = restarted.get_training_status().agents[AGENT].clone();
    assert_eq!(
        (recounted.examples_quarantined, recounted.examples_received),
        (counted.examples_quarantined, counted.examples_received)
    );
    let offered_again = restarted.next_for_review(AGENT, TASK, 1000).unwrap();
    assert_eq!(offered_again.len(), still_quarantined);
    assert!(offered_again.iter().all(|item| item.quarantined.is_some()));
    assert!(offered_again.iter().all(|item| item.review_id != first.review_id));
}

#[test]
fn a_registered_evaluation_set_judges_updates() {
    let c = Coordinator::new(common::small_config()).unwrap();
    let set: Vec<(String, Target)> = (0..10)
        .map(|i| (format!("sport match report {i}"), Target::Label("sport".into())))
        .collect();
    c.set_evaluation_set("critic", "topic", set).unwrap();
    c.add_training_example(NewExample::new(
        "critic",
        "topic",
        "sport match report",
        Target::Label("sport".into()),
    ))
    .unwrap();
    c.force_update_agent("critic").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let first = c.performance_history().pop().unwrap();
    assert_eq!(first.held_out_examples, 10, "judged on the registered set");
    assert_eq!(first.accuracy_after, Some(1.0));
    // Teach the opposite of the evaluation set: the update makes it worse.
    for i in 0..20 {
        c.add_training_example(
            NewExample::new(
                "critic",
                "topic",
                format!("sport match report {i}"),
                Target::Label("politics".into()),
            )
            .with_priority(Priority::Medium),
        )
        .unwrap();
    }
    c.force_update_agent("critic").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let second = c.performance_history().pop().unwrap();
    assert!(second.rollback_triggered, "{second:?}");
    assert_eq!(c.get_training_status().agents["critic"].models["topic"].version, 1);
    // The set's target kind must match the task's.
    let bad = vec![("text".to_string(), Target::Score(0.3))];
    assert!(matches!(
        c.set_evaluation_set("critic", "topic", bad),
        Err(onthefly::Error::Invalid(_))
    ));
}

/// Wrong corrections handed in amid a clean stream, with the defaults:
/// rejected, they wait for fresh articles and are judged again beside them
/// until quarantined, and the correct articles beside them are not
/// quarantined with them.
#[test]
fn wrong_corrections_amid_a_clean_stream_are_quarantined_not_diluted() {
    let articles = news::load_articles();
    let c = coordinator(Config::default());
    learn(&c, &articles[..1500]);
    for (i, article) in articles[1500..1560].iter().enumerate() {
        c.add_user_correction(news::rotated_correction(AGENT, TASK, article, i))
            .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(120)));
    }
    learn(&c, &articles[1560..2500]);
    let wrong_texts: Vec<&str> = articles[1500..1560].iter().map(|a| a.text.as_str()).collect();
    let offered = c.next_for_review(AGENT, TASK, 1000).unwrap();
    let quarantined_wrong = offered
        .iter()
        .filter(|i| i.quarantined.is_some() && wrong_texts.contains(&i.input_text.as_str()))
        .count();
    let scout = &c.get_training_status().agents[AGENT];
    eprintln!(
        "wrong quarantined {quarantined_wrong} of 60; all quarantined {}; buffered {}; rolled back {}",
        scout.examples_quarantined, scout.buffer_size, scout.updates_rolled_back
    );
    // Measured: 50 of the 60 quarantined, no correct article. Before
    // rejected examples waited for fresh ones (judged twice, at once): 47,
    // and 78 correct articles quarantined with them; judged four times
    // beside fresh ones, all 60 were learned.
    assert!(
        quarantined_wrong >= 45,
        "{quarantined_wrong} of 60 wrong corrections quarantined"
    );
    let correct_quarantined = scout.examples_quarantined as usize - quarantined_wrong;
    assert!(
        correct_quarantined <= 10,
        "{correct_quarantined} correct articles quarantined"
    );
}
