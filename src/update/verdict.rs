//! Stage 3, judge: whether the candidate is kept, by the configured
//! acceptance test ([`crate::judge`]) on the judging examples.

use crate::base::TrainingExample;
use crate::eval;
use crate::judge::{self, AcceptanceTest};

/// What an update is judged on.
#[derive(Clone, Copy)]
pub(super) struct Judging<'a> {
    /// The examples live model and candidate are compared on.
    pub held_out: &'a [TrainingExample],
    /// Whether the candidate must do no harm at all (part of a batch
    /// already rolled back, see `isolate_harm`): its loss per judging
    /// example may not rise, besides the usual test.
    pub strict: bool,
}

/// Why the candidate is rolled back, by the configured acceptance test, or
/// `None` when it is kept; with `strict` (see [`Judging::strict`]) any harm
/// rolls it back.
pub(super) fn verdict(
    config: &crate::config::Config,
    before: &eval::Measured,
    after: &eval::Measured,
    strict: bool,
) -> Option<String> {
    let max_drop = match strict {
        true => 0.0,
        false => config.rollback_threshold,
    };
    match config.acceptance.test {
        AcceptanceTest::Paired => {
            let harm = strict.then(|| judge::any_harm(before, after)).flatten();
            harm.or_else(|| judge::paired_verdict(before, after, &config.acceptance, config.rollback_threshold))
        }
        AcceptanceTest::Threshold => {
            // The guard: for tags the token accuracy, as documented (entity
            // F1 on a window of few entities moved past 0.05 on harmless
            // updates; see `eval::Measured::guard`).
            let (b, a) = (&before.guard, &after.guard);
            (a.drop_from(b) > max_drop).then(|| {
                format!(
                    "held-out {} fell from {:.4} to {:.4} on {} examples, more than the rollback threshold {max_drop}",
                    a.name.as_str(),
                    b.value,
                    a.value,
                    a.examples,
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Measured, Metric, MetricName};

    fn measured(f1: f64, token_accuracy: f64) -> Measured {
        let metric = |name, value| Metric {
            name,
            value,
            examples: 100,
        };
        Measured {
            metric: metric(MetricName::EntityF1, f1),
            guard: metric(MetricName::TokenAccuracy, token_accuracy),
            losses: vec![0.0; 100],
            comparison: crate::eval::Comparison::Signs,
        }
    }

    #[test]
    fn the_threshold_rule_judges_tags_on_their_token_accuracy() {
        let mut config = crate::config::Config::default();
        config.acceptance.test = AcceptanceTest::Threshold;
        // Entity F1 down 0.2, token accuracy down 0.01: kept.
        assert_eq!(
            verdict(&config, &measured(0.6, 0.90), &measured(0.4, 0.89), false),
            None
        );
        // Token accuracy down 0.1: rolled back, naming it.
        let why = verdict(&config, &measured(0.6, 0.90), &measured(0.6, 0.80), false).unwrap();
        assert!(why.contains("token"), "{why}");
    }
}
