//! The main demo (`make demo`): a scout agent reads the news stream of
//! `data/news` in date order and learns, while it runs, to tell which outlet
//! published an article.
//!
//! For each article the scout first predicts the outlet with its live model
//! (prequential evaluation: predict, then learn), then hands the true outlet to
//! the library: as prediction feedback when it was unsure, as a person's
//! correction for some confident mistakes, and as a plain example otherwise.
//! Updates run in the background while the stream goes on.
//!
//! A progress bar runs while it streams; at the end a summary table is
//! printed and `target/demo-data/updates.svg` shows the held-out accuracy
//! before and after every update, rollbacks marked.
//!
//! Options: `--rate N` articles per second (default 150), `--limit N` articles.

#[path = "../tests/common/news.rs"]
mod news;
#[path = "common/plot.rs"]
mod plot;

use std::time::{Duration, Instant};

use onthefly::{Config, Coordinator, NewExample, PredictionFeedback, Target, UserCorrection};

const AGENT: &str = "scout";
const TASK: &str = "news_classification";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rate = option("--rate").unwrap_or(150.0);
    let limit = option("--limit").map(|v| v as usize);

    let mut articles = news::load_articles();
    if let Some(limit) = limit {
        articles.truncate(limit);
    }
    // The demo starts from nothing each time: its checkpoints from an earlier
    // run would otherwise be loaded at start-up.
    let data_dir = std::path::PathBuf::from("target/demo-data");
    let _ = std::fs::remove_dir_all(&data_dir);
    // The store and the rest from the environment, as the library reads it
    // (`DATABASE_URL` or `POSTGRES_*`: watch your PostgreSQL fill; SQLite in
    // the demo's folder otherwise). The folder is always the demo's own: it
    // is emptied first.
    let config = Config {
        check_interval_ms: 1_000,
        data_dir: data_dir.clone(),
        checkpoints_kept: 3,
        // The demo knows every answer and hands it in itself (below).
        predict_feedback_threshold: 0.0,
        ..Config::from_env()?
    };
    let store_place = match &config.database {
        Some(_) => "PostgreSQL from DATABASE_URL / POSTGRES_*".to_string(),
        None => data_dir.join(onthefly::store::SQLITE_FILE).display().to_string(),
    };
    println!(
        "onthefly {} — scout learns the outlet of {} news articles, {:.0} per second",
        env!("CARGO_PKG_VERSION"),
        articles.len(),
        rate
    );
    let coordinator = Coordinator::new(config)?;
    println!(
        "device {}, update threshold {}, rollback threshold {}",
        coordinator.get_training_status().device,
        coordinator.config().update_threshold,
        coordinator.config().rollback_threshold
    );
    println!();

    let started = Instant::now();
    let (mut predicted, mut correct, mut recent_correct) = (0usize, 0usize, Vec::new());
    let (mut feedback, mut corrections, mut plain) = (0usize, 0usize, 0usize);
    let mut printed = 0usize;
    let bar = indicatif::ProgressBar::new(articles.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} articles  {msg}").expect("a valid template"),
    );
    for (i, article) in articles.iter().enumerate() {
        bar.inc(1);
        let truth = Target::Label(article.outlet.clone());
        let prediction = coordinator.predict(AGENT, TASK, &article.text).ok();
        let right = prediction.as_ref().is_some_and(|p| p.output == truth);
        if prediction.is_some() {
            predicted += 1;
        }
        correct += usize::from(right);
        recent_correct.push(right);

        match prediction {
            Some(p) if p.confidence < 0.7 => {
                coordinator.add_prediction_feedback(PredictionFeedback {
                    agent_name: AGENT.into(),
                    task_type: TASK.into(),
                    input_text: article.text.clone(),
                    predicted_output: p.output,
                    actual_output: Some(truth),
                    confidence_score: p.confidence,
                    source_url: article.url.clone(),
                })?;
                feedback += 1;
            }
            // An editor notices one confident mistake in five.
            Some(p) if !right && i % 5 == 0 => {
                coordinator.add_user_correction(UserCorrection::new(
                    AGENT,
                    TASK,
                    article.text.clone(),
                    p.output,
                    truth,
                ))?;
                corrections += 1;
            }
            other => {
                let uncertainty = other.map_or(1.0, |p| 1.0 - p.confidence);
                coordinator.add_training_example(
                    NewExample::new(AGENT, TASK, article.text.clone(), truth)
                        .with_uncertainty(uncertainty)
                        .with_source(article.url.clone()),
                )?;
                plain += 1;
            }
        }

        for record in coordinator.performance_history().iter().skip(printed) {
            let window = &recent_correct[recent_correct.len().saturating_sub(200)..];
            let streaming = window.iter().filter(|&&c| c).count() as f64 / window.len().max(1) as f64;
            bar.set_message(format!(
                "model v{}  stream accuracy (last 200) {streaming:.3}",
                record.model_version
            ));
            let line = format!(
                "[{:>6.1}s] article {:>4}  update → v{:<3} {:<9} held-out {} {} → {}  ({} examples, loss {:.3}, {} ms)  stream acc (last 200) {:.3}",
                started.elapsed().as_secs_f64(),
                i + 1,
                record.model_version,
                if record.rollback_triggered { "ROLLBACK" } else { "accepted" },
                record.metric,
                fmt_metric(record.accuracy_before),
                fmt_metric(record.accuracy_after),
                record.examples_trained,
                record.train_loss,
                record.duration_ms,
                streaming,
            );
            // Without a terminal the bar is hidden, and so would be its lines.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
            printed += 1;
        }
        std::thread::sleep(Duration::from_secs_f64(1.0 / rate));
    }

    bar.finish_and_clear();
    coordinator.force_update_agent(AGENT)?;
    coordinator.wait_for_idle(Duration::from_secs(120));
    let status = coordinator.get_training_status();
    let scout = &status.agents[AGENT];
    let model = &scout.models[TASK];
    println!();
    println!("=== final status after {:.1} s ===", started.elapsed().as_secs_f64());
    println!(
        "articles {}  predicted {}  prequential accuracy {:.3} (predict, then learn; majority-class rate {:.3})",
        articles.len(),
        predicted,
        correct as f64 / articles.len().max(1) as f64,
        majority_rate(&articles)
    );
    println!("sent as: feedback {feedback}, corrections {corrections}, plain examples {plain}");
    println!(
        "updates accepted {}  rolled back {}  failed {}  examples trained {}  held out {}  evicted {}",
        scout.updates_accepted,
        scout.updates_rolled_back,
        scout.updates_failed,
        scout.examples_trained,
        scout.examples_held_out,
        scout.examples_evicted
    );
    println!(
        "model {} v{}  labels {}  buffer {}/{}  last error {}",
        model.model_kind.as_deref().unwrap_or("-"),
        model.version,
        model.labels.len(),
        scout.buffer_size,
        scout.buffer_capacity,
        scout.last_error.as_deref().unwrap_or("none")
    );
    println!(
        "checkpoints of the last versions: {}",
        data_dir.join("models").join(AGENT).join(TASK).display()
    );
    let history = coordinator.performance_history();
    let chart_path = data_dir.join("updates.svg");
    std::fs::write(&chart_path, updates_chart(&history).svg())?;
    println!();
    println!("{:<28} {:>10}", "updates", history.len());
    println!("{:<28} {:>10}", "  accepted", scout.updates_accepted);
    println!("{:<28} {:>10}", "  rolled back", scout.updates_rolled_back);
    let gains: Vec<f64> = history
        .iter()
        .filter(|r| !r.rollback_triggered)
        .filter_map(|r| Some(r.accuracy_after? - r.accuracy_before?))
        .collect();
    println!(
        "{:<28} {:>+10.3}",
        "  mean held-out gain, kept",
        gains.iter().sum::<f64>() / gains.len().max(1) as f64
    );
    println!(
        "{:<28} {:>10.0}",
        "  mean update time (ms)",
        history.iter().map(|r| r.duration_ms as f64).sum::<f64>() / history.len().max(1) as f64
    );
    println!("chart of every update: {}", chart_path.display());
    coordinator.flush(std::time::Duration::from_secs(60))?;
    if let Some(store) = coordinator.get_training_status().store {
        println!(
            "store {} ({}): {} operations written, backlog {}, spooled {}, rejected {}",
            store.backend, store_place, store.written, store.backlog, store.spooled, store.rejected
        );
    }
    coordinator.shutdown();
    Ok(())
}

/// Held-out accuracy before and after each update; rollbacks marked.
fn updates_chart(history: &[onthefly::ModelPerformance]) -> plot::Chart {
    let series = |name: &str, value: fn(&onthefly::ModelPerformance) -> Option<f64>, dashed| plot::Series {
        name: name.into(),
        points: history
            .iter()
            .enumerate()
            .filter_map(|(i, r)| value(r).map(|v| ((i + 1) as f64, v)))
            .collect(),
        dashed,
    };
    plot::Chart {
        x_label: "update".into(),
        y_label: "held-out accuracy".into(),
        series: vec![
            series("before", |r| r.accuracy_before, true),
            series("after", |r| r.accuracy_after, false),
        ],
        marks: history
            .iter()
            .enumerate()
            .filter(|(_, r)| r.rollback_triggered)
            .filter_map(|(i, r)| r.accuracy_after.map(|a| ((i + 1) as f64, a)))
            .collect(),
        marks_name: "rolled back".into(),
    }
}

fn fmt_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "  -  ".to_string(), |v| format!("{v:.3}"))
}

fn majority_rate(articles: &[news::Article]) -> f64 {
    let most = news::OUTLETS
        .iter()
        .map(|o| articles.iter().filter(|a| a.outlet == *o).count())
        .max()
        .unwrap_or(0);
    most as f64 / articles.len().max(1) as f64
}
