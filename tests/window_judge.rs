//! The judge's derived scores (`onthefly::eval::measure_after_pass`): a
//! candidate's scores on the judging window, derived from the live model's
//! and the rows its pass changed, are the scores it would compute afresh,
//! give the same answers and the same verdict, and are scored afresh after
//! `DERIVED_AT_MOST` derivations in a row.

mod common;

use onthefly::eval::{measure, measure_after_pass, measure_reusing, Judged, DERIVED_AT_MOST};
use onthefly::models::{AgentModel, KnownScores, Scored, TextClassifier, TextRegressor};
use onthefly::optim::Touched;
use onthefly::{train_one_epoch, Target, TrainingExample};
use tch::Device;

use common::news::labelled_examples as news;
use common::text_model_of_2_14_buckets as small;

/// A classifier that knows every outlet of the stream (a pass that grows
/// it by a label is scored afresh) and trained on `range`.
fn classifier_trained_on(range: std::ops::Range<usize>) -> TextClassifier {
    let mut model = TextClassifier::new(small(), Device::Cpu, 1).unwrap();
    model.prepare(&news(0..3823)).unwrap();
    train_one_epoch(&mut model, &news(range), 1, &[]).unwrap();
    model
}

fn texts(examples: &[TrainingExample]) -> Vec<&str> {
    examples.iter().map(|e| e.input_text.as_str()).collect()
}

/// One pass of the model's closed form over `batch`, as an update of
/// `batch.len()` trains the trainer's copy; what it changed.
fn one_pass(model: &mut dyn AgentModel, batch: &[TrainingExample]) -> Touched {
    model.prepare(batch).unwrap();
    let refs: Vec<&TrainingExample> = batch.iter().collect();
    let (_, touched) = model.closed_form_pass(&refs, &[]).unwrap().expect("a closed form");
    touched
}

fn scored(model: &dyn AgentModel, inputs: &[&str], scores: &[Option<&[f32]>], since: Option<&Touched>) -> Vec<Scored> {
    let known = KnownScores { scores, since };
    model.scored_answers(inputs, known).expect("raw scores").unwrap()
}

/// The largest gap between two lists of scores, relative to the largest
/// score.
fn relative_gap(a: &[Scored], b: &[Scored]) -> f64 {
    let pairs = a.iter().zip(b).flat_map(|(x, y)| x.scores.iter().zip(&y.scores));
    let (mut gap, mut scale) = (0f64, 0f64);
    for (x, y) in pairs {
        gap = gap.max(f64::from((x - y).abs()));
        scale = scale.max(f64::from(x.abs()));
    }
    gap / scale
}

/// Derived from derived scores more times in a row than the judge allows,
/// a classifier's scores stay within 3·10⁻⁵ of fresh ones (relative to
/// the largest; measured: 2·10⁻⁶ after one derivation, 1.7·10⁻⁵ after 100,
/// 2.8·10⁻⁵ after 160) and its answers are the same, while each pass moves
/// them by 10⁻³ to 0.3: a derivation that missed a changed row, counted one
/// twice or used a wrong value would be off by a share of that.
#[test]
fn derived_window_scores_are_the_fresh_scores() {
    let mut model = classifier_trained_on(0..300);
    let window = news(3000..3100);
    let inputs = texts(&window);
    let unknown = vec![None; inputs.len()];
    let mut before = scored(&model, &inputs, &unknown, None);
    for k in 0..DERIVED_AT_MOST as usize + 2 {
        let touched = one_pass(&mut model, &news(300 + 2 * k..302 + 2 * k));
        let known: Vec<Option<&[f32]>> = before.iter().map(|s| Some(s.scores.as_slice())).collect();
        let derived = scored(&model, &inputs, &known, Some(&touched));
        let fresh = scored(&model, &inputs, &unknown, None);
        assert!(
            derived.iter().all(|s| s.derived),
            "update {k}: not every score was derived"
        );
        assert!(fresh.iter().all(|s| !s.derived));
        let gap = relative_gap(&derived, &fresh);
        assert!(
            gap <= 3e-5,
            "update {k}: derived scores are {gap} (relative) from fresh ones"
        );
        let moved = relative_gap(&before, &fresh);
        assert!(moved > 1e-3, "update {k}: the pass moved the scores by only {moved}");
        let answers = |s: &[Scored]| s.iter().map(|s| s.answer.clone()).collect::<Vec<Target>>();
        assert_eq!(answers(&derived), answers(&fresh), "update {k}");
        before = derived;
    }
}

/// The same for the regressor's single score.
#[test]
fn derived_regressor_scores_are_the_fresh_scores() {
    let as_scores = |examples: Vec<TrainingExample>| -> Vec<TrainingExample> {
        examples
            .into_iter()
            .map(|mut e| {
                let outlet = e.expected_output.as_label().unwrap().len();
                e.expected_output = Target::Score((outlet % 5) as f64 / 4.0);
                e
            })
            .collect()
    };
    let mut model = TextRegressor::new(small(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &as_scores(news(0..200)), 1, &[]).unwrap();
    let window = as_scores(news(400..450));
    let inputs = texts(&window);
    let unknown = vec![None; inputs.len()];
    let mut before = scored(&model, &inputs, &unknown, None);
    for k in 0..10 {
        let touched = one_pass(&mut model, &as_scores(news(200 + 3 * k..203 + 3 * k)));
        let known: Vec<Option<&[f32]>> = before.iter().map(|s| Some(s.scores.as_slice())).collect();
        let derived = scored(&model, &inputs, &known, Some(&touched));
        let fresh = scored(&model, &inputs, &unknown, None);
        assert!(derived.iter().all(|s| s.derived));
        let gap = relative_gap(&derived, &fresh);
        assert!(
            gap <= 1e-5,
            "update {k}: derived scores are {gap} (relative) from fresh ones"
        );
        for (d, f) in derived.iter().zip(&fresh) {
            let (Target::Score(d), Target::Score(f)) = (&d.answer, &f.answer) else {
                panic!("a regressor answers scores");
            };
            assert!((d - f).abs() <= 1e-5, "update {k}: {d} against {f}");
        }
        before = derived;
    }
}

/// Scores are derived only from a change one pass recorded: with a dense
/// change (every variable whole, as back-propagation with a dense
/// optimiser records it) or nothing recorded, every input is scored
/// afresh, and so is one whose scores have another width than the
/// model's outputs (a classifier that grew).
#[test]
fn without_one_recorded_pass_inputs_are_scored_afresh() {
    let mut model = classifier_trained_on(0..200);
    let window = news(400..420);
    let inputs = texts(&window);
    let unknown = vec![None; inputs.len()];
    let before = scored(&model, &inputs, &unknown, None);
    let known: Vec<Option<&[f32]>> = before.iter().map(|s| Some(s.scores.as_slice())).collect();
    let touched = one_pass(&mut model, &news(200..202));
    let fresh = scored(&model, &inputs, &unknown, None);
    let all_fresh = |s: &[Scored]| s.iter().all(|s| !s.derived) && relative_gap(s, &fresh) == 0.0;
    assert!(all_fresh(&scored(
        &model,
        &inputs,
        &known,
        Some(&Touched::everything(model.var_store()))
    )));
    assert!(all_fresh(&scored(&model, &inputs, &known, Some(&Touched::new()))));
    let narrow: Vec<Vec<f32>> = before.iter().map(|s| s.scores[1..].to_vec()).collect();
    let narrow: Vec<Option<&[f32]>> = narrow.iter().map(|s| Some(s.as_slice())).collect();
    assert!(all_fresh(&scored(&model, &inputs, &narrow, Some(&touched))));
    assert!(scored(&model, &inputs, &known, Some(&touched))
        .iter()
        .all(|s| s.derived));
}

/// Through the judge's memory: each candidate's measurement equals a fresh
/// one's, the derivations count up, and after `DERIVED_AT_MOST` in a row
/// the next candidate scores the window afresh.
#[test]
fn the_judge_derives_then_rescores_afresh() {
    let mut model = classifier_trained_on(0..300);
    let window = news(400..500);
    let mut live = Judged::new();
    measure_reusing(&model, &window, &mut live).unwrap();
    let rounds = DERIVED_AT_MOST as usize + 3;
    for k in 0..rounds {
        let touched = one_pass(&mut model, &news(300 + 2 * k..302 + 2 * k));
        let mut candidate = Judged::new();
        let derived = measure_after_pass(&model, &window, &live, Some(&touched), &mut candidate)
            .unwrap()
            .unwrap();
        let fresh = measure(&model, &window).unwrap().unwrap();
        assert_eq!(derived.losses, fresh.losses, "update {k}");
        assert_eq!(derived.metric, fresh.metric, "update {k}");
        let expected = (k as u32 + 1) % (DERIVED_AT_MOST + 1);
        for example in &window {
            assert_eq!(candidate[&example.id].derivations(), expected, "update {k}");
        }
        live = candidate;
    }
}
