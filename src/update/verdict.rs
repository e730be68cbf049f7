//! Stage 3, judge: whether the candidate is kept, by the configured
//! acceptance test ([`crate::judge`]) on the judging examples.

use crate::eval;
use crate::example::TrainingExample;
use crate::judge::{self, AcceptanceTest};

/// What an update is judged on.
#[derive(Clone, Copy)]
pub(super) struct Judging<'a> {
    /// The examples live model and candidate are compared on.
    pub held_out: &'a [TrainingExample],
    /// Replaces `rollback_threshold`, the largest drop tolerated.
    pub max_drop: Option<f64>,
}

/// Why the candidate is rolled back, by the configured acceptance test, or
/// `None` when it is kept.
/// `max_drop` replaces `rollback_threshold` (the largest tolerated drop).
pub(super) fn verdict(
    config: &crate::config::Config,
    before: &eval::Measured,
    after: &eval::Measured,
    max_drop: Option<f64>,
) -> Option<String> {
    let max_drop = max_drop.unwrap_or(config.rollback_threshold);
    match config.acceptance.test {
        AcceptanceTest::Paired => judge::paired_verdict(before, after, &config.acceptance, max_drop),
        AcceptanceTest::Threshold => {
            let (b, a) = (&before.metric, &after.metric);
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
